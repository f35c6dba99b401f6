//! The datagram format: one JSON object per datagram, `{"v":1,"type":...,...}`, typed with
//! serde; encoding, decoding, size limits and the packing of history into datagrams.
//!
//! Pure: no sockets here. Decoding never panics on any input; it returns a [`DecodeError`]
//! that the caller logs, counts and drops.

use crate::token_ring::Token;
use crate::types::{ChatRecord, Epoch, Member, NodeId, Seq};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Protocol version carried in every datagram as `"v"`.
pub const VERSION: u64 = 1;
/// Largest datagram we send or accept, so that datagrams survive a real LAN's MTU unfragmented.
pub const MAX_DATAGRAM_BYTES: usize = 1400;
/// Largest chat line, in bytes of UTF-8 text. A longer line is refused at the prompt.
pub const MAX_LINE_BYTES: usize = 1000;
/// Largest display name, in bytes.
pub const MAX_NAME_BYTES: usize = 32;
/// Largest ring. A join beyond it is refused, so a view always fits in one datagram.
pub const MAX_MEMBERS: usize = 16;
/// Most retransmission requests a token carries at once.
pub const MAX_RTR: usize = 32;

/// Every kind of datagram. Internally tagged: `{"v":1,"type":"token",...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    /// Client → server: let me in. Repeated until a view that includes the client arrives.
    Hello {
        from: NodeId,
        /// Random per process start: tells a restarted client from a delayed duplicate Hello.
        incarnation: u64,
        name: String,
        delivered: Seq,
    },
    /// Client → server: I am leaving the ring. Repeated until a view without it arrives.
    Leave { from: NodeId, incarnation: u64 },
    /// Server → client: the join is refused (ring full, name too long for the view).
    Refuse { to: NodeId, reason: String },
    /// Server → proposed members: a new epoch begins; stop the old ring and report.
    Gather { epoch: Epoch, members: Vec<NodeId> },
    /// Member → server: what I hold, for the gather of `epoch`.
    Report {
        epoch: Epoch,
        from: NodeId,
        incarnation: u64,
        name: String,
        /// The view in which `aru` was collected; an `aru` from an older view is not trusted.
        view_epoch: Epoch,
        /// Highest seq up to which the member received everything (delivered or held back).
        aru: Seq,
        /// Highest seq the member delivered (final).
        delivered: Seq,
    },
    /// Server → all: the installed view (sent at install and as the server's heartbeat).
    View {
        epoch: Epoch,
        members: Vec<Member>,
        /// Every seq up to `cut` is final and held by the server.
        cut: Seq,
        /// The server's archive high-water mark (reconciliation announces this).
        high: Seq,
        /// The server's token timeout, from which members derive their retransmit timer.
        token_timeout_ms: u64,
    },
    /// The token (see [`Token`]).
    Token(Token),
    /// An ordered chat message, stamped by the token holder.
    Data { epoch: Epoch, rec: ChatRecord },
    /// A member with something to send asks an idle holder to pass the token at once.
    Wake { epoch: Epoch, from: NodeId },
    /// Ask `to` for final records `lo..=hi`.
    Fetch {
        from: NodeId,
        to: NodeId,
        lo: Seq,
        hi: Seq,
    },
    /// Final records for `to`, in seq order (a reply to [`Msg::Fetch`]).
    History {
        to: NodeId,
        records: Vec<ChatRecord>,
    },
}

#[derive(Serialize)]
struct OutFrame<'a> {
    v: u64,
    #[serde(flatten)]
    msg: &'a Msg,
}

#[derive(Deserialize)]
struct InFrame {
    v: u64,
    #[serde(flatten)]
    msg: Msg,
}

#[derive(Deserialize)]
struct VersionProbe {
    v: u64,
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Larger than [`MAX_DATAGRAM_BYTES`].
    Oversize(usize),
    /// A `"v"` other than [`VERSION`].
    WrongVersion(u64),
    /// Not a datagram of ours: bad JSON, wrong types, unknown kind.
    Malformed(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Oversize(n) => {
                write!(f, "oversize datagram ({n} bytes > {MAX_DATAGRAM_BYTES})")
            }
            DecodeError::WrongVersion(v) => write!(f, "protocol version {v}, expected {VERSION}"),
            DecodeError::Malformed(why) => write!(f, "malformed datagram: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Encodes a message. Errors only if the result would exceed [`MAX_DATAGRAM_BYTES`], which
/// the senders prevent by construction (line limits, view limits, history packing).
pub fn encode(msg: &Msg) -> Result<Vec<u8>, EncodeError> {
    let bytes = serde_json::to_vec(&OutFrame { v: VERSION, msg })
        .map_err(|e| EncodeError(format!("serialize: {e}")))?;
    if bytes.len() > MAX_DATAGRAM_BYTES {
        return Err(EncodeError(format!(
            "{} bytes exceeds the {MAX_DATAGRAM_BYTES}-byte datagram limit",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// A message that cannot be sent as one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot encode datagram: {}", self.0)
    }
}

impl std::error::Error for EncodeError {}

/// Decodes one datagram; never panics.
pub fn decode(bytes: &[u8]) -> Result<Msg, DecodeError> {
    if bytes.len() > MAX_DATAGRAM_BYTES {
        return Err(DecodeError::Oversize(bytes.len()));
    }
    match serde_json::from_slice::<InFrame>(bytes) {
        Ok(frame) if frame.v == VERSION => Ok(frame.msg),
        Ok(frame) => Err(DecodeError::WrongVersion(frame.v)),
        Err(e) => match serde_json::from_slice::<VersionProbe>(bytes) {
            Ok(p) if p.v != VERSION => Err(DecodeError::WrongVersion(p.v)),
            _ => Err(DecodeError::Malformed(e.to_string())),
        },
    }
}

/// Why a chat line was refused at the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// Empty after trimming the line ending.
    Empty,
    /// More than [`MAX_LINE_BYTES`].
    TooLong { bytes: usize },
    /// Contains control characters (other than tab), which would garble other terminals.
    ControlCharacters,
    /// Escaping makes it too large for one datagram.
    TooLargeEncoded { bytes: usize },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Empty => write!(f, "empty line not sent"),
            LineError::TooLong { bytes } => write!(
                f,
                "line not sent: {bytes} bytes is over the {MAX_LINE_BYTES}-byte limit; split it"
            ),
            LineError::ControlCharacters => {
                write!(f, "line not sent: it contains control characters")
            }
            LineError::TooLargeEncoded { bytes } => write!(
                f,
                "line not sent: it takes {bytes} bytes once escaped, over the \
                 {MAX_DATAGRAM_BYTES}-byte datagram limit; split it"
            ),
        }
    }
}

impl std::error::Error for LineError {}

/// Checks that a line by `name` can travel as one datagram in every form it takes
/// (as `Data` and inside `History`), with the largest numbers it could carry.
pub fn check_line(name: &str, text: &str) -> Result<(), LineError> {
    if text.is_empty() {
        return Err(LineError::Empty);
    }
    if text.len() > MAX_LINE_BYTES {
        return Err(LineError::TooLong { bytes: text.len() });
    }
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(LineError::ControlCharacters);
    }
    let rec = ChatRecord {
        seq: Seq(u64::MAX),
        id: Uuid::max(),
        from: NodeId(Uuid::max()),
        name: name.to_string(),
        text: text.to_string(),
        sent_at_ms: u64::MAX,
    };
    let data = Msg::Data {
        epoch: Epoch(u64::MAX),
        rec: rec.clone(),
    };
    let history = Msg::History {
        to: NodeId(Uuid::max()),
        records: vec![rec],
    };
    let bytes = encoded_len(&data).max(encoded_len(&history));
    if bytes > MAX_DATAGRAM_BYTES {
        return Err(LineError::TooLargeEncoded { bytes });
    }
    Ok(())
}

fn encoded_len(msg: &Msg) -> usize {
    serde_json::to_vec(&OutFrame { v: VERSION, msg }).map_or(usize::MAX, |b| b.len())
}

/// Packs final records (in seq order) into as few `History` datagrams for `to` as fit.
/// A record that cannot fit even alone (impossible for lines that passed [`check_line`]) is
/// skipped with a warning rather than sent oversize.
pub fn pack_history(to: NodeId, records: Vec<ChatRecord>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut batch: Vec<ChatRecord> = Vec::new();
    for rec in records {
        batch.push(rec);
        if encoded_len(&history(to, &batch)) <= MAX_DATAGRAM_BYTES {
            continue;
        }
        let Some(overflow) = batch.pop() else {
            continue;
        };
        if !batch.is_empty() {
            out.extend(encode(&history(to, &batch)).ok());
            batch.clear();
        }
        batch.push(overflow);
        if encoded_len(&history(to, &batch)) > MAX_DATAGRAM_BYTES {
            log::warn!("record {} too large for a datagram; not sent", batch[0].seq);
            batch.clear();
        }
    }
    if !batch.is_empty() {
        out.extend(encode(&history(to, &batch)).ok());
    }
    out
}

fn history(to: NodeId, records: &[ChatRecord]) -> Msg {
    Msg::History {
        to,
        records: records.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, text: &str) -> ChatRecord {
        ChatRecord {
            seq: Seq(seq),
            id: Uuid::new_v4(),
            from: NodeId::random(),
            name: "alice".into(),
            text: text.into(),
            sent_at_ms: 1_700_000_000_000,
        }
    }

    fn all_kinds() -> Vec<Msg> {
        let id = NodeId::random();
        vec![
            Msg::Hello {
                from: id,
                incarnation: 7,
                name: "bob".into(),
                delivered: Seq(3),
            },
            Msg::Leave {
                from: id,
                incarnation: 7,
            },
            Msg::Refuse {
                to: id,
                reason: "full".into(),
            },
            Msg::Gather {
                epoch: Epoch(2),
                members: vec![id],
            },
            Msg::Report {
                epoch: Epoch(2),
                from: id,
                incarnation: 1,
                name: "bob".into(),
                view_epoch: Epoch(1),
                aru: Seq(9),
                delivered: Seq(8),
            },
            Msg::View {
                epoch: Epoch(2),
                members: vec![Member {
                    id,
                    name: "bob".into(),
                }],
                cut: Seq(9),
                high: Seq(9),
                token_timeout_ms: 3000,
            },
            Msg::Token(Token::first(Epoch(2), id, id, Seq(9))),
            Msg::Data {
                epoch: Epoch(2),
                rec: rec(10, "hi"),
            },
            Msg::Wake {
                epoch: Epoch(2),
                from: id,
            },
            Msg::Fetch {
                from: id,
                to: id,
                lo: Seq(1),
                hi: Seq(5),
            },
            Msg::History {
                to: id,
                records: vec![rec(1, "a"), rec(2, "b")],
            },
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for msg in all_kinds() {
            let bytes = encode(&msg).unwrap();
            assert!(bytes.starts_with(br#"{"v":1,"type":""#), "{:?}", bytes);
            assert_eq!(decode(&bytes).unwrap(), msg);
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(decode(b""), Err(DecodeError::Malformed(_))));
        assert!(matches!(
            decode(b"\xff\x00garbage"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode(br#"{"v":1,"type":"nonsense"}"#),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode(br#"{"v":1,"type":"wake","epoch":"x","from":"y"}"#),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(
            decode(br#"{"v":2,"type":"wake"}"#),
            Err(DecodeError::WrongVersion(2))
        );
        assert_eq!(
            decode(&vec![b' '; 60_000]),
            Err(DecodeError::Oversize(60_000))
        );
    }

    #[test]
    fn lines_are_checked_against_every_limit() {
        assert_eq!(check_line("a", ""), Err(LineError::Empty));
        assert!(check_line("a", &"x".repeat(MAX_LINE_BYTES)).is_ok());
        assert_eq!(
            check_line("a", &"x".repeat(MAX_LINE_BYTES + 1)),
            Err(LineError::TooLong {
                bytes: MAX_LINE_BYTES + 1
            })
        );
        assert_eq!(
            check_line("a", "bell\x07"),
            Err(LineError::ControlCharacters)
        );
        assert!(matches!(
            check_line("a", &"\"".repeat(MAX_LINE_BYTES)),
            Err(LineError::TooLargeEncoded { .. })
        ));
        assert!(check_line(&"n".repeat(MAX_NAME_BYTES), &"x".repeat(MAX_LINE_BYTES)).is_ok());
    }

    #[test]
    fn history_packs_into_datagrams_under_the_limit_in_order() {
        let records: Vec<_> = (1..=200)
            .map(|s| rec(s, &"y".repeat(s as usize % 300)))
            .collect();
        let to = NodeId::random();
        let datagrams = pack_history(to, records.clone());
        assert!(datagrams.len() > 1);
        let mut got = Vec::new();
        for d in &datagrams {
            assert!(d.len() <= MAX_DATAGRAM_BYTES);
            match decode(d).unwrap() {
                Msg::History { to: t, records } => {
                    assert_eq!(t, to);
                    got.extend(records);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, records);
    }

    #[test]
    fn a_full_ring_view_fits_in_one_datagram() {
        let members = (0..MAX_MEMBERS)
            .map(|_| Member {
                id: NodeId::random(),
                name: "n".repeat(MAX_NAME_BYTES),
            })
            .collect();
        let view = Msg::View {
            epoch: Epoch(u64::MAX),
            members,
            cut: Seq(u64::MAX),
            high: Seq(u64::MAX),
            token_timeout_ms: u64::MAX,
        };
        assert!(
            encode(&view).is_err(),
            "names this long do not fit 16 members"
        );
    }
}
