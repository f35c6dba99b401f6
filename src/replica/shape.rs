//! A fast check of a replica line that this program wrote: the exact shape that
//! `serde_json::to_string(&ChatRecord)` produces, checked byte by byte without building a
//! record, so that opening a replica of ten million lines takes a second or two rather than
//! a full JSON parse of every line.
//!
//! The check is sound, never complete: [`canonical_seq`] accepts a line only if the full
//! parse would accept it with the same seq; anything it does not recognise (other field
//! orders, extra fields, `\u` escapes, spaces) returns `None` and the caller falls back to the
//! full parse, which accepts or reports it as before. No file access and no allocation here.

/// The seq of `line` (without its newline) if it is a chat record in exactly the shape this
/// program writes; `None` when unsure, never a false `Some`.
pub fn canonical_seq(line: &[u8]) -> Option<u64> {
    // Strings may hold any UTF-8; everything else below is ASCII.
    std::str::from_utf8(line).ok()?;
    let mut at = Cursor { line, pos: 0 };
    at.literal(b"{\"seq\":")?;
    let seq = at.number()?;
    at.literal(b",\"id\":")?;
    at.uuid()?;
    at.literal(b",\"from\":")?;
    at.uuid()?;
    at.literal(b",\"name\":")?;
    at.string()?;
    at.literal(b",\"text\":")?;
    at.string()?;
    at.literal(b",\"sent_at_ms\":")?;
    at.number()?;
    at.literal(b"}")?;
    (at.pos == line.len()).then_some(seq)
}

/// The digits and `a` to `f`: what a uuid as the serializer writes it is made of.
const LOWER_HEX: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(b as u8, b'0'..=b'9' | b'a'..=b'f');
        b += 1;
    }
    table
};

/// Whether any byte of `word` is `"`, `\` or a control character (below 0x20): the bytes
/// that end a plain run of string content. Exact for "any" (the classic has-zero-byte test
/// on `word ^ pattern`, and has-less-than for the control characters).
fn may_be_special(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    quote | backslash | control != 0
}

/// A position in the line; each step checks one token and moves past it.
struct Cursor<'a> {
    line: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn literal(&mut self, want: &[u8]) -> Option<()> {
        let end = self.pos.checked_add(want.len())?;
        (self.line.get(self.pos..end)? == want).then(|| self.pos = end)
    }

    /// A JSON number that fits a `u64`: digits without a leading zero (unless it is 0).
    fn number(&mut self) -> Option<u64> {
        let rest = &self.line[self.pos..];
        let digits = rest
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 || (digits > 1 && rest[0] == b'0') {
            return None;
        }
        // Nineteen digits always fit a u64; only a twentieth needs the overflow check.
        let (head, tail) = rest[..digits].split_at(digits.min(19));
        let mut value = head.iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
        for &d in tail {
            value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.pos += digits;
        Some(value)
    }

    /// A quoted uuid in its hyphenated lowercase form, the only one the serializer writes.
    fn uuid(&mut self) -> Option<()> {
        let quoted = self.line.get(self.pos..self.pos + 38)?;
        let inner = &quoted[1..37];
        let hyphens = [inner[8], inner[13], inner[18], inner[23]];
        let groups = [
            &inner[..8],
            &inner[9..13],
            &inner[14..18],
            &inner[19..23],
            &inner[24..],
        ];
        let ok = quoted[0] == b'"'
            && quoted[37] == b'"'
            && hyphens == [b'-'; 4]
            && groups
                .iter()
                .all(|g| g.iter().all(|&b| LOWER_HEX[usize::from(b)]));
        ok.then(|| self.pos += 38)
    }

    /// A quoted JSON string with only the short escapes (`\"`, `\\`, `\n`, ...); a `\u`
    /// escape or a raw control character is left to the full parse.
    fn string(&mut self) -> Option<()> {
        self.literal(b"\"")?;
        loop {
            // Plain text eight bytes at a time; the byte-wise match below takes the rest.
            while let Some(chunk) = self.line.get(self.pos..self.pos + 8) {
                let word = u64::from_le_bytes(chunk.try_into().ok()?);
                if may_be_special(word) {
                    break;
                }
                self.pos += 8;
            }
            match *self.line.get(self.pos)? {
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                b'\\' => match *self.line.get(self.pos + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 2,
                    _ => return None,
                },
                b if b < 0x20 => return None,
                _ => self.pos += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::{ChatRecord, NodeId, Seq};
    use proptest::prelude::*;
    use uuid::Uuid;

    fn record(seq: u64, name: &str, text: &str, sent_at_ms: u64) -> ChatRecord {
        ChatRecord {
            seq: Seq(seq),
            id: Uuid::from_u128(u128::from(seq) * 0x1234_5678_9abc_def1),
            from: NodeId(Uuid::from_u128(7)),
            name: name.into(),
            text: text.into(),
            sent_at_ms,
        }
    }

    fn full_parse(line: &[u8]) -> Option<u64> {
        serde_json::from_slice::<ChatRecord>(line)
            .ok()
            .map(|r| r.seq.0)
    }

    #[test]
    fn what_the_serializer_writes_is_recognised() {
        for (seq, name, text, ms) in [
            (1, "alice", "hi", 0),
            (
                u64::MAX,
                "ünï",
                "tab\there \"quoted\" back\\slash / ∑ 😀",
                u64::MAX,
            ),
            (10, "", "", 1_700_000_000_000),
        ] {
            let line = serde_json::to_vec(&record(seq, name, text, ms)).unwrap();
            assert_eq!(
                canonical_seq(&line),
                Some(seq),
                "{}",
                String::from_utf8_lossy(&line)
            );
        }
    }

    #[test]
    fn anything_else_is_left_to_the_full_parse() {
        let good =
            String::from_utf8(serde_json::to_vec(&record(5, "al", "x", 9)).unwrap()).unwrap();
        let cases = [
            good.replace("{\"seq\":5", "{\"seq\":05"),
            good.replace("{\"seq\":5", "{ \"seq\":5"),
            good.replace(":9}", ":9,\"extra\":1}"),
            good.replace("\"x\"", "\"\\u0041\""),
            good.replace("\"x\"", "\"a\u{1}b\""),
            good.replace("\"x\"", "\"bad \\q escape\""),
            good.to_uppercase(),
            good.replace(":9}", ":99999999999999999999}"),
            good[..good.len() - 1].to_string(),
            format!("{good} "),
            String::new(),
        ];
        for case in cases {
            assert_eq!(canonical_seq(case.as_bytes()), None, "{case}");
        }
        assert_eq!(canonical_seq(&[0xff, b'{']), None);
    }

    proptest! {
        #[test]
        fn recognised_lines_round_trip(
            seq in 1u64.., name in ".{0,32}", text in "\\PC{0,200}", ms in any::<u64>()
        ) {
            let rec = record(seq, &name, &text, ms);
            let line = serde_json::to_vec(&rec).unwrap();
            // Control characters take `\u` escapes, which the full parse handles.
            if !line.windows(2).any(|w| w == b"\\u") {
                prop_assert_eq!(canonical_seq(&line), Some(seq));
            }
        }

        /// Soundness: damage to a line never makes the fast check accept what the full parse
        /// refuses, or accept it with another seq.
        #[test]
        fn the_check_never_accepts_what_the_full_parse_refuses(
            seq in 1u64..1_000_000,
            text in "[a-z \"\\\\]{0,40}",
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
        ) {
            let mut line = serde_json::to_vec(&record(seq, "bob", &text, 42)).unwrap();
            for (at, byte, kind) in edits {
                let i = at.index(line.len() + 1);
                match kind {
                    0 if i < line.len() => line[i] = byte,
                    1 => line.insert(i, byte),
                    _ if i < line.len() => { line.remove(i); }
                    _ => {}
                }
            }
            if let Some(found) = canonical_seq(&line) {
                prop_assert_eq!(full_parse(&line), Some(found));
            }
        }
    }
}
