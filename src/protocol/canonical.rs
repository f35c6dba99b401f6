//! The hot path's JSON, by hand: a chat record written byte for byte as `serde_json` writes
//! it (a replica line, a `--json` message event, a record in a data pack), and a data pack read
//! when it is in exactly the shape this program writes.
//!
//! Every record of a flood is read once and written twice at every node; through serde's
//! generic machinery that was a third of a client's CPU. `serde_json` stays the reference:
//! the writer's output equals `serde_json::to_vec` for every record (property-tested), and the
//! reader accepts only the canonical shape (no whitespace, keys in order, no escapes in a
//! string) and returns `None` for anything else, which then goes the general way, so a
//! datagram decodes to the same message, or the same error, either way.
//!
//! No validation of values here (range and text checks stay in `wire::check`), no I/O.

use crate::protocol::types::{ChatRecord, Epoch, GroupId, NodeId, Seq};
use uuid::Uuid;

/// Appends `rec` as `serde_json::to_writer` would: `{"seq":..,"id":..,"from":..,"name":..,
/// "text":..,"sent_at_ms":..}`.
pub fn write_record(buf: &mut Vec<u8>, rec: &ChatRecord) {
    buf.extend_from_slice(b"{\"seq\":");
    write_u64(buf, rec.seq.0);
    buf.extend_from_slice(b",\"id\":");
    write_uuid(buf, &rec.id);
    buf.extend_from_slice(b",\"from\":");
    write_uuid(buf, &rec.from.0);
    buf.extend_from_slice(b",\"name\":");
    write_str(buf, &rec.name);
    buf.extend_from_slice(b",\"text\":");
    write_str(buf, &rec.text);
    buf.extend_from_slice(b",\"sent_at_ms\":");
    write_u64(buf, rec.sent_at_ms);
    buf.push(b'}');
}

/// A whole data pack, as serde writes its frame: `{"v":..,"type":"data","epoch":..,
/// "group":..,"recs":[..]}`.
pub fn write_data_pack(
    buf: &mut Vec<u8>,
    version: u64,
    epoch: Epoch,
    group: GroupId,
    recs: &[ChatRecord],
) {
    buf.extend_from_slice(b"{\"v\":");
    write_u64(buf, version);
    buf.extend_from_slice(b",\"type\":\"data\",\"epoch\":");
    write_u64(buf, epoch.0);
    buf.extend_from_slice(b",\"group\":");
    write_u64(buf, group.0);
    buf.extend_from_slice(b",\"recs\":[");
    for (i, rec) in recs.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_record(buf, rec);
    }
    buf.extend_from_slice(DATA_TAIL);
}

/// The close of a data pack's frame, after its last record.
const DATA_TAIL: &[u8] = b"]}";

fn write_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

fn write_uuid(buf: &mut Vec<u8>, id: &Uuid) {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    buf.push(b'"');
    buf.extend_from_slice(id.hyphenated().encode_lower(&mut text).as_bytes());
    buf.push(b'"');
}

fn write_str(buf: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        // Rare (a quote, a backslash, a tab): serde_json's own escaping, so the bytes agree.
        if serde_json::to_writer(&mut *buf, s).is_err() {
            unreachable!("writing a str to a Vec cannot fail");
        }
        return;
    }
    buf.push(b'"');
    buf.extend_from_slice(s.as_bytes());
    buf.push(b'"');
}

/// Whether JSON needs an escape for any of these bytes: branch-free, so it runs as one pass.
fn needs_escape(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |acc, &b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// A data pack in the canonical shape: its version, epoch, group and records; `None` for
/// anything else (which may still be a valid datagram: read it the general way).
pub fn read_data_pack(bytes: &[u8]) -> Option<(u64, Epoch, GroupId, Vec<ChatRecord>)> {
    let mut r = Reader { bytes, at: 0 };
    r.expect(b"{\"v\":")?;
    let version = r.u64()?;
    r.expect(b",\"type\":\"data\",\"epoch\":")?;
    let epoch = Epoch(r.u64()?);
    r.expect(b",\"group\":")?;
    let group = GroupId(r.u64()?);
    r.expect(b",\"recs\":[")?;
    let mut recs = Vec::with_capacity(16);
    loop {
        recs.push(r.record()?);
        if r.expect(b",").is_none() {
            break;
        }
    }
    r.expect(DATA_TAIL)?;
    (r.at == bytes.len()).then_some((version, epoch, group, recs))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn expect(&mut self, literal: &[u8]) -> Option<()> {
        let rest = self.bytes.get(self.at..)?;
        rest.starts_with(literal).then(|| self.at += literal.len())
    }

    fn record(&mut self) -> Option<ChatRecord> {
        self.expect(b"{\"seq\":")?;
        let seq = Seq(self.u64()?);
        self.expect(b",\"id\":")?;
        let id = self.uuid()?;
        self.expect(b",\"from\":")?;
        let from = NodeId(self.uuid()?);
        self.expect(b",\"name\":")?;
        let name = self.string()?.to_owned();
        self.expect(b",\"text\":")?;
        let text = self.string()?.to_owned();
        self.expect(b",\"sent_at_ms\":")?;
        let sent_at_ms = self.u64()?;
        self.expect(b"}")?;
        Some(ChatRecord {
            seq,
            id,
            from,
            name,
            text,
            sent_at_ms,
        })
    }

    /// A number as JSON writes a u64: digits, no sign, no leading zero, no fraction, no
    /// overflow (each of which serde either refuses or reads as another type).
    fn u64(&mut self) -> Option<u64> {
        let rest = self.bytes.get(self.at..)?;
        let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let digits = &rest[..len];
        if len == 0 || (len > 1 && digits[0] == b'0') {
            return None;
        }
        let mut n: u64 = 0;
        for &d in digits {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        if matches!(rest.get(len), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.at += len;
        Some(n)
    }

    /// A string with no escapes and no control characters, valid UTF-8.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b"\"")?;
        let rest = self.bytes.get(self.at..)?;
        let len = rest.iter().position(|&b| b == b'"')?;
        let raw = &rest[..len];
        if needs_escape(raw) {
            return None;
        }
        let text = std::str::from_utf8(raw).ok()?;
        self.at += len + 1;
        Some(text)
    }

    fn uuid(&mut self) -> Option<Uuid> {
        let text = self.string()?;
        // The length check keeps the reader to the hyphenated form; serde's reader would
        // take the other forms too, and then does.
        if text.len() != uuid::fmt::Hyphenated::LENGTH {
            return None;
        }
        Uuid::try_parse_ascii(text.as_bytes()).ok()
    }
}

#[cfg(test)]
mod tests;
