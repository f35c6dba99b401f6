//! How delivered messages and notices look on stdout: `[#SEQ HH:MM:SS] NAME: TEXT` and
//! `* notice`, or one JSON object per line with `--json`. On a terminal each author's name
//! gets its own colour (never with `NO_COLOR` or when stdout is not a terminal).
//!
//! A line typed as `/me waves` is stored as typed, so every reader of a replica still reads
//! it, and shows as an action: `[#SEQ HH:MM:SS] * alice waves`. On a terminal, a message of
//! someone else that mentions this client's name is shown in reverse video and rings the bell
//! once (unless `--no-bell`; a burst of them, as when catching up, rings once).
//!
//! A notice of several lines (a long `/who`) prints its later lines indented under the first;
//! in JSON it stays one event whose text has line breaks.
//!
//! Formatting only: no protocol, no files.

use crate::protocol::canonical;
use crate::protocol::events::{CoordinatorEvent, MemberEvent};
use crate::protocol::types::{count, ChatRecord, NodeId};
use crate::runtime::Sink;
use crate::ui::authors::Authors;
use crate::ui::terminal::LineOut;
use chrono::{Local, TimeZone};
use serde::Serialize;
use std::cell::RefCell;
use std::fmt;
use std::io::Write;
use std::time::{Duration, Instant};

/// Writes messages and notices to stdout, or above the prompt of a line editor.
pub struct Printer {
    json: bool,
    color: bool,
    out: LineOut,
    /// Whose mentions to highlight; `None` for the server and for output that is no terminal.
    me: Option<Mentions>,
    /// When the bell last rang: a burst of mentions (catching up, `/history`) rings once.
    last_bell: Option<Instant>,
    /// Tells apart authors who share a name (text output only).
    authors: Authors,
    /// The JSON line being written, kept from line to line: no allocation per message.
    scratch: Vec<u8>,
}

/// How a client on a terminal marks the messages that mention it.
#[derive(Clone, Debug)]
pub struct Mentions {
    /// This client: its own lines never count as mentions.
    pub id: NodeId,
    /// The name to look for, as a whole word, in any case.
    pub name: String,
    /// Ring the terminal bell once per mentioning message.
    pub bell: bool,
}

/// Reverse video, and back to normal: a highlight that needs no colour.
const HIGHLIGHT: (&str, &str) = ("\x1b[7m", "\x1b[0m");

/// The terminal bell.
const BELL: char = '\u{7}';

/// After a bell, mentions within this long ring no more.
const BELL_QUIET: Duration = Duration::from_secs(2);

impl Printer {
    /// A printer in the human format, or JSON lines with `json`, to a stream.
    pub fn new(json: bool, out: Box<dyn Write + Send>) -> Printer {
        Printer::to(json, false, LineOut::Stream(out))
    }

    /// A printer to `out`, with coloured names when `color` (ignored for JSON).
    pub fn to(json: bool, color: bool, out: LineOut) -> Printer {
        Printer {
            json,
            color,
            out,
            me: None,
            last_bell: None,
            authors: Authors::default(),
            scratch: Vec::new(),
        }
    }

    /// Highlights the messages that mention `me` (ignored for JSON): only for a terminal.
    pub fn with_mentions(mut self, me: Mentions) -> Printer {
        self.authors = Authors::with_me(me.id, &me.name);
        self.me = Some(me);
        self
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

/// Appends `{"event":"message",` and the record's fields, as serde writes a record flattened
/// into an event (a test holds them equal), without serde's map machinery: every line of a
/// `--json` client passes here.
fn write_message_event(bytes: &mut Vec<u8>, rec: &ChatRecord) {
    const HEAD: &[u8] = b"{\"event\":\"message\",";
    bytes.extend_from_slice(HEAD);
    let start = bytes.len();
    canonical::write_record(bytes, rec);
    bytes.remove(start); // the record's own `{`
}

#[derive(Serialize)]
struct NoticeEvent<'a> {
    event: &'static str,
    text: &'a str,
}

/// `[#SEQ HH:MM:SS] NAME: TEXT`, the time being the author's local clock reading; an action
/// (`/me waves`) reads `[#SEQ HH:MM:SS] * NAME waves`.
pub fn format_message(rec: &ChatRecord) -> String {
    let stamp = format!("[#{} {}]", rec.seq, clock(rec.sent_at_ms));
    match action(&rec.text) {
        Some(act) => format!("{stamp} * {} {act}", rec.name),
        None => format!("{stamp} {}: {}", rec.name, rec.text),
    }
}

/// What a `/me ACTION` line does (`waves` in `/me waves`); `None` for any other text.
pub fn action(text: &str) -> Option<&str> {
    let act = text.strip_prefix("/me ")?.trim();
    (!act.is_empty()).then_some(act)
}

/// Whether `text` mentions `name`: as a whole word (not `alice` in `malice`), in any case.
pub fn mentions(text: &str, name: &str) -> bool {
    let (text, name) = (text.to_lowercase(), name.to_lowercase());
    if name.is_empty() {
        return false;
    }
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    text.match_indices(&name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !is_word(before) && !is_word(after)
    })
}

/// `HH:MM:SS` in local time. The local time zone is looked up once per second of `ms`, not
/// once per line: in a flood that lookup was half of what showing a line cost.
pub fn clock(ms: u64) -> String {
    thread_local! {
        static LAST: RefCell<Option<(u64, String)>> = const { RefCell::new(None) };
    }
    let second = ms / 1000;
    LAST.with_borrow_mut(|last| match last {
        Some((s, text)) if *s == second => text.clone(),
        _ => {
            let text = Local
                .timestamp_millis_opt(ms as i64)
                .single()
                .map_or_else(|| "--:--:--".into(), |t| t.format("%H:%M:%S").to_string());
            *last = Some((second, text.clone()));
            text
        }
    })
}

impl Printer {
    /// Whether `rec` mentions this client, and if so whether to ring the bell now.
    fn mentioned(&mut self, rec: &ChatRecord) -> Option<bool> {
        let me = self.me.as_ref().filter(|me| rec.from != me.id)?;
        if !mentions(&rec.text, &me.name) {
            return None;
        }
        let now = Instant::now();
        let quiet = self
            .last_bell
            .is_some_and(|t| now.duration_since(t) < BELL_QUIET);
        let ring = me.bell && !quiet;
        if ring {
            self.last_bell = Some(now);
        }
        Some(ring)
    }
}

impl Sink for Printer {
    fn message(&mut self, rec: &ChatRecord) {
        let shown = match self.json {
            true => None,
            false => Some(self.authors.shown(rec.from, &rec.name)),
        };
        let named;
        let rec = match shown {
            Some(name) if name != rec.name => {
                named = ChatRecord {
                    name,
                    ..rec.clone()
                };
                &named
            }
            _ => rec,
        };
        if self.json {
            let mut line = std::mem::take(&mut self.scratch);
            line.clear();
            write_message_event(&mut line, rec);
            if let Ok(text) = std::str::from_utf8(&line) {
                self.line(text);
            }
            self.scratch = line;
            return;
        }
        let line = if let Some(ring) = self.mentioned(rec) {
            // Plain inside: a name's colour would end the highlight with its reset.
            let bell = if ring {
                BELL.to_string()
            } else {
                String::new()
            };
            format!(
                "{}{}{}{bell}",
                HIGHLIGHT.0,
                format_message(rec),
                HIGHLIGHT.1
            )
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
                "no server reachable: the ring keeps chatting; joins, leaves and token \
                 recovery wait for one"
            ),
            MemberEvent::ServerBack => write!(f, "a server is reachable again"),
            MemberEvent::WaitingForQuorum { reachable, voters } => write!(
                f,
                "waiting for a quorum: {reachable} of {voters} voters reachable; your lines \
                 are kept"
            ),
            MemberEvent::RingStalled { silent } => write!(
                f,
                "the ring is stalled: {silent} does not answer and no server is reachable; \
                 your lines are kept"
            ),
            MemberEvent::RingMoves => write!(f, "the ring moves again"),
            MemberEvent::NoServerForRing => write!(
                f,
                "a ring is chatting on the group, but no server answers: it is down, and \
                 joins wait for one"
            ),
            MemberEvent::CatchingUp { missing: 1 } => {
                write!(f, "catching up on history: 1 message")
            }
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
            CoordinatorEvent::Started => {
                write!(f, "no chat heard on the group; starting one: coordinating")
            }
            CoordinatorEvent::RingWithoutServer => write!(
                f,
                "a ring is chatting on the group, but none of its servers is heard: waiting for \
                 one (a new chat beside it would split the group); start one of its servers, or \
                 give this one another --port"
            ),
            CoordinatorEvent::Coordinating => {
                write!(f, "no server ranked before this one is heard: coordinating")
            }
            CoordinatorEvent::Standby {
                coordinator: Some(server),
            } => write!(
                f,
                "standing by: server {server} coordinates; this one archives and takes over if \
                 it falls silent"
            ),
            CoordinatorEvent::Standby { coordinator: None } => write!(
                f,
                "standing by: archiving, and waiting for the coordinating server to add this one"
            ),
            CoordinatorEvent::TakingOver => {
                write!(
                    f,
                    "the servers ranked before this one are silent: taking over"
                )
            }
            CoordinatorEvent::WaitingForQuorum { reachable, voters } => write!(
                f,
                "waiting for a quorum: {reachable} of {voters} voters reachable; no view \
                 changes until more are back"
            ),
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

    #[test]
    fn the_clock_reads_the_time_zone_once_a_second_and_still_moves() {
        let direct = |ms: u64| {
            Local
                .timestamp_millis_opt(ms as i64)
                .unwrap()
                .format("%H:%M:%S")
                .to_string()
        };
        let t = 1_764_489_600_000;
        for ms in [t, t + 999, t + 1000, t + 61_000, t, t + 3_600_000] {
            assert_eq!(clock(ms), direct(ms), "{ms}");
        }
    }

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
    fn an_action_line_shows_as_the_author_doing_it() {
        let waves = ChatRecord {
            text: "/me waves at bob".into(),
            ..rec()
        };
        assert!(format_message(&waves).ends_with("] * alice waves at bob"));
        assert_eq!(action("/me  waves "), Some("waves"));
        for not in ["/me", "/me ", "/meet", " /me waves", "me waves"] {
            assert_eq!(action(not), None, "{not:?}");
        }
    }

    #[test]
    fn a_mention_is_the_name_as_a_whole_word_in_any_case() {
        for yes in [
            "alice",
            "hi Alice!",
            "@ALICE: look",
            "ask alice, bob",
            "x\talice",
        ] {
            assert!(mentions(yes, "alice"), "{yes:?}");
        }
        for no in ["malice", "alices", "al ice", "", "alice2"] {
            assert!(!mentions(no, "alice"), "{no:?}");
        }
        assert!(mentions("bonjour Zoé.", "zoé"));
        assert!(mentions("ask the big boss", "big boss"));
        assert!(!mentions("anything", ""));
    }

    /// What a terminal printer for `me` prints for `recs`, one after the other.
    fn printed_all(me: Mentions, recs: &[&ChatRecord]) -> String {
        let buf = Shared::default();
        let out = LineOut::Stream(Box::new(buf.clone()));
        let mut p = Printer::to(false, true, out).with_mentions(me);
        recs.iter().for_each(|r| p.message(r));
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text
    }

    fn printed(me: Mentions, rec: &ChatRecord) -> String {
        printed_all(me, &[rec])
    }

    #[test]
    fn a_message_that_mentions_me_is_highlighted_and_rings_once_unless_asked_not_to() {
        let me = Mentions {
            id: NodeId(Uuid::from_u128(1)),
            name: "Bob".into(),
            bell: true,
        };
        let hi = ChatRecord {
            text: "hi bob".into(),
            ..rec()
        };
        let text = printed(me.clone(), &hi);
        assert!(text.starts_with("\x1b[7m[#7 "), "{text:?}");
        assert!(text.ends_with("alice: hi bob\x1b[0m\u{7}\n"), "{text:?}");
        assert_eq!(text.matches('\u{7}').count(), 1);
        let burst = printed_all(me.clone(), &[&hi, &hi, &hi]);
        assert_eq!(burst.matches("\x1b[7m").count(), 3, "{burst:?}");
        assert_eq!(burst.matches('\u{7}').count(), 1, "a burst rings once");
        let quiet = printed(
            Mentions {
                bell: false,
                ..me.clone()
            },
            &hi,
        );
        assert!(
            quiet.starts_with("\x1b[7m") && !quiet.contains('\u{7}'),
            "{quiet:?}"
        );
        let mine = ChatRecord {
            from: me.id,
            ..hi.clone()
        };
        let own = printed(me.clone(), &mine);
        assert!(
            !own.contains("\x1b[7m") && !own.contains('\u{7}'),
            "{own:?}"
        );
        let other = printed(me, &rec());
        assert!(!other.contains("\x1b[7m"), "{other:?}");
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

    #[test]
    fn a_message_event_is_what_serde_writes_for_the_record_flattened() {
        #[derive(Serialize)]
        struct MessageEvent<'a> {
            event: &'static str,
            #[serde(flatten)]
            rec: &'a ChatRecord,
        }
        for text in ["hi there", "a \"quote\", a \\ and a\ttab", "é ✓"] {
            let rec = ChatRecord {
                text: text.into(),
                ..rec()
            };
            let by_serde = serde_json::to_string(&MessageEvent {
                event: "message",
                rec: &rec,
            });
            let mut mine = Vec::new();
            write_message_event(&mut mine, &rec);
            assert_eq!(String::from_utf8(mine).unwrap(), by_serde.unwrap());
        }
    }
}
