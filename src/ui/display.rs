//! How delivered messages and notices look on stdout: `[#SEQ HH:MM:SS] NAME: TEXT` and
//! `* notice`, or one JSON object per line with `--json`. On a terminal each author's name
//! gets its own colour (never with `NO_COLOR` or when stdout is not a terminal).
//!
//! Formatting only: no protocol, no files.

use crate::protocol::events::{CoordinatorEvent, MemberEvent};
use crate::protocol::types::{count, ChatRecord};
use crate::runtime::Sink;
use crate::ui::terminal::LineOut;
use chrono::{Local, TimeZone};
use serde::Serialize;
use std::fmt;
use std::io::Write;

/// Writes messages and notices to stdout, or above the prompt of a line editor.
pub struct Printer {
    json: bool,
    color: bool,
    out: LineOut,
}

impl Printer {
    /// A printer in the human format, or JSON lines with `json`, to a stream.
    pub fn new(json: bool, out: Box<dyn Write + Send>) -> Printer {
        Printer::to(json, false, LineOut::Stream(out))
    }

    /// A printer to `out`, with coloured names when `color` (ignored for JSON).
    pub fn to(json: bool, color: bool, out: LineOut) -> Printer {
        Printer { json, color, out }
    }

    fn line(&mut self, line: &str) {
        self.out.line(line);
    }
}

/// The colour of a name: one of six, the same for a name on every node.
fn paint(name: &str) -> String {
    let hash = name
        .bytes()
        .fold(5381u32, |h, b| h.wrapping_mul(33) ^ u32::from(b));
    format!("\x1b[1;{}m{name}\x1b[0m", 31 + hash % 6)
}

#[derive(Serialize)]
struct MessageEvent<'a> {
    event: &'static str,
    #[serde(flatten)]
    rec: &'a ChatRecord,
}

#[derive(Serialize)]
struct NoticeEvent<'a> {
    event: &'static str,
    text: &'a str,
}

/// `[#SEQ HH:MM:SS] NAME: TEXT`, the time being the author's local clock reading.
pub fn format_message(rec: &ChatRecord) -> String {
    format!(
        "[#{} {}] {}: {}",
        rec.seq,
        clock(rec.sent_at_ms),
        rec.name,
        rec.text
    )
}

/// `HH:MM:SS` in local time.
pub fn clock(ms: u64) -> String {
    Local
        .timestamp_millis_opt(ms as i64)
        .single()
        .map_or_else(|| "--:--:--".into(), |t| t.format("%H:%M:%S").to_string())
}

impl Sink for Printer {
    fn message(&mut self, rec: &ChatRecord) {
        let line = if self.json {
            serde_json::to_string(&MessageEvent {
                event: "message",
                rec,
            })
            .unwrap_or_default()
        } else if self.color {
            format_message(&ChatRecord {
                name: paint(&rec.name),
                ..rec.clone()
            })
        } else {
            format_message(rec)
        };
        self.line(&line);
    }

    fn notice(&mut self, text: &str) {
        let line = if self.json {
            serde_json::to_string(&NoticeEvent {
                event: "notice",
                text,
            })
            .unwrap_or_default()
        } else {
            format!("* {text}")
        };
        self.line(&line);
        self.out.flush();
    }

    fn flush(&mut self) {
        self.out.flush();
    }
}

/// The words for a client's events, as notices.
impl fmt::Display for MemberEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberEvent::Joined { epoch, members } => write!(
                f,
                "joined the ring (epoch {epoch}, {})",
                count(*members, "member")
            ),
            MemberEvent::MemberJoined(name) => write!(f, "{name} joined"),
            MemberEvent::MemberLeft(name) => write!(f, "{name} left"),
            MemberEvent::LeftOut => {
                write!(f, "left out of the ring by the server; joining again")
            }
            MemberEvent::ServerUnreachable => write!(
                f,
                "server unreachable: the ring keeps chatting; joins and token recovery wait \
                 for it"
            ),
            MemberEvent::ServerBack => write!(f, "server is back"),
            MemberEvent::CatchingUp { missing } => {
                write!(f, "catching up on history: {missing} messages")
            }
            MemberEvent::CatchUpProgress { at, target } => {
                write!(f, "catching up: #{at} of #{target}")
            }
            MemberEvent::CaughtUp { at } => write!(f, "caught up at #{at}"),
            MemberEvent::LeaveUnconfirmed => write!(
                f,
                "the server did not confirm the leave; what only this node holds reaches the \
                 group when it comes back with --resume"
            ),
        }
    }
}

/// The words for the server's events, as notices.
impl fmt::Display for CoordinatorEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoordinatorEvent::Coordinating => {
                write!(f, "no other server on the group: coordinating")
            }
            CoordinatorEvent::ViewInstalled {
                epoch,
                members,
                cut,
            } => write!(
                f,
                "view {epoch}: {}, cut at #{cut}",
                count(*members, "member")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::{NodeId, Seq};
    use std::sync::{Arc, Mutex};
    use uuid::Uuid;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn rec() -> ChatRecord {
        ChatRecord {
            seq: Seq(7),
            id: Uuid::nil(),
            from: NodeId(Uuid::nil()),
            name: "alice".into(),
            text: "hi there".into(),
            sent_at_ms: 0,
        }
    }

    #[test]
    fn human_format_has_seq_time_name_and_text() {
        let line = format_message(&rec());
        assert!(line.starts_with("[#7 "), "{line}");
        assert!(line.ends_with("] alice: hi there"), "{line}");
        assert_eq!(line.len(), "[#7 00:00:00] alice: hi there".len());
    }

    #[test]
    fn names_get_a_stable_colour_only_when_asked() {
        let buf = Shared::default();
        let mut p = Printer::to(false, true, LineOut::Stream(Box::new(buf.clone())));
        p.message(&rec());
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains(&format!("{}: hi there", paint("alice"))),
            "{text:?}"
        );
        assert_eq!(paint("alice"), paint("alice"));
        assert!(!format_message(&rec()).contains('\x1b'));
    }

    #[test]
    fn json_lines_carry_the_event_and_the_replica_fields() {
        let buf = Shared::default();
        let mut p = Printer::new(true, Box::new(buf.clone()));
        p.message(&rec());
        p.notice("joined");
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["event"], "message");
        assert_eq!(lines[0]["seq"], 7);
        assert_eq!(lines[0]["text"], "hi there");
        assert_eq!(lines[1]["event"], "notice");
        assert_eq!(lines[1]["text"], "joined");
    }
}
