//! How delivered messages and notices look on stdout: `[#SEQ HH:MM:SS] NAME: TEXT` and
//! `* notice`, or one JSON object per line with `--json`. On a terminal each author's name
//! gets its own colour (never with `NO_COLOR` or when stdout is not a terminal).
//!
//! A notice of several lines (a long `/who`) prints its later lines indented under the first;
//! in JSON it stays one event whose text has line breaks.
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

/// How wide a notice's lines may be after the `* ` (or the indent of a later line), so that a
/// long list, such as `/who` in a large ring, prints within 100 columns.
pub const NOTICE_WIDTH: usize = 98;

/// `items` separated by ", " in lines of at most `width` characters, each line but the last
/// ending with ","; an item too wide for a line has one of its own, never broken.
pub fn wrap_list<S: AsRef<str>>(items: &[S], width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_chars = 0;
    for (i, item) in items.iter().enumerate() {
        let comma = if i + 1 < items.len() { "," } else { "" };
        let word = format!("{}{comma}", item.as_ref());
        let word_chars = word.chars().count();
        if line_chars > 0 && line_chars + 1 + word_chars > width {
            lines.push(std::mem::take(&mut line));
            line_chars = 0;
        }
        if line_chars > 0 {
            line.push(' ');
            line_chars += 1;
        }
        line.push_str(&word);
        line_chars += word_chars;
    }
    if line_chars > 0 {
        lines.push(line);
    }
    lines
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
            format!("* {}", text.replace('\n', "\n  "))
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

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("member{i:02}")).collect()
    }

    #[test]
    fn a_short_list_is_one_line() {
        assert_eq!(wrap_list(&["alice (you)", "bob"], 98), ["alice (you), bob"]);
        assert_eq!(wrap_list(&["alice"], 98), ["alice"]);
        assert!(wrap_list::<&str>(&[], 98).is_empty());
    }

    #[test]
    fn a_long_list_wraps_at_the_width_keeping_every_item_whole_and_in_order() {
        let items = names(40);
        for width in [10, 20, 37, 98] {
            let lines = wrap_list(&items, width);
            assert!(lines.len() > 1, "{width}: {lines:?}");
            for l in &lines {
                assert!(l.chars().count() <= width, "{width}: {l:?}");
            }
            let (last, rest) = lines.split_last().unwrap();
            assert!(rest.iter().all(|l| l.ends_with(',')), "{lines:?}");
            assert!(!last.ends_with(','), "{lines:?}");
            assert_eq!(lines.join(" ").split(", ").collect::<Vec<_>>(), items);
        }
        // Names of 8 characters with ", ": nine take 89 columns, ten would take 99.
        let lines = wrap_list(&items, 98);
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0], items[..9].join(", ") + ",");
    }

    #[test]
    fn an_item_wider_than_the_line_gets_a_line_of_its_own() {
        let wide = "w".repeat(12);
        let lines = wrap_list(&["a", wide.as_str(), "b"], 8);
        assert_eq!(lines, ["a,", &format!("{wide},"), "b"]);
        let lines = wrap_list(&["ü".repeat(4), "é".repeat(4)], 10);
        assert_eq!(lines, ["üüüü, éééé"], "width counts characters, not bytes");
    }

    #[test]
    fn a_notice_of_several_lines_is_indented_under_its_first() {
        let buf = Shared::default();
        let mut p = Printer::new(false, Box::new(buf.clone()));
        p.notice("3 members in epoch 4:\na,\nb, c");
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "* 3 members in epoch 4:\n  a,\n  b, c\n");
        let buf = Shared::default();
        let mut p = Printer::new(true, Box::new(buf.clone()));
        p.notice("two\nlines");
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "{\"event\":\"notice\",\"text\":\"two\\nlines\"}\n");
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
