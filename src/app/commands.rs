//! Slash commands typed at the client: a stdin line that starts with `/` is parsed into a
//! [`Command`] and run here; its answer is a notice (or, for `/history`, messages). The one
//! exception is `/me ACTION`: a message, stored as typed, that the display shows as an action.
//!
//! What this module must not do: send anything to the ring or change the core's state; a
//! command only reads (the view, the counters, the replica). `/quit` is parsed here but acted
//! on by the input loop, which owns leaving.

use crate::protocol::member::MemberCore;
use crate::protocol::types::{count, Epoch, Seq};
use crate::runtime::{lock, Node};
use crate::ui::authors::tagged;
use crate::ui::display::{action, wrap_list, NOTICE_WIDTH};
use std::ops::ControlFlow;

/// How many messages `/history` without N shows.
const DEFAULT_HISTORY: u64 = 20;

/// The most messages one `/history` shows: a larger N would read the whole of a long history
/// into memory at once (ten million lines are about 2 GB). The replica file holds the rest.
pub const MAX_HISTORY: u64 = 10_000;

const HELP: &str = "commands: /help, /who, /history [N], /stats, /quit; /me ACTION sends an \
                    action (* you ACTION); anything else is a message";

/// A slash command, as parsed from a line that starts with `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `/help`: list the commands.
    Help,
    /// `/who`: the members of the current view, marking this client and the token holder.
    Who,
    /// `/history [N]`: the last N delivered messages (20 when N is absent).
    History(Option<u64>),
    /// `/stats`: the protocol's and the network's counters.
    Stats,
    /// `/quit`: leave the ring and exit, as at EOF.
    Quit,
    /// A known command with arguments it cannot use; holds its usage line.
    Usage(&'static str),
    /// Anything else; holds the first word after `/` (empty for a bare `/`).
    Unknown(String),
}

impl Command {
    /// The command in `line`, or `None` when the line is a message (does not start with `/`,
    /// or is an action, `/me ACTION`).
    ///
    /// The first word names the command and extra words are ignored, except that `/quit`
    /// takes none: "/quit now" is more likely a message typed too fast than a request to go.
    pub fn parse(line: &str) -> Option<Command> {
        if action(line).is_some() {
            return None;
        }
        let command = line.strip_prefix('/')?;
        if command.trim() == "quit" {
            return Some(Command::Quit);
        }
        let mut words = command.split_whitespace();
        let (name, arg) = (words.next().unwrap_or(""), words.next());
        Some(match name {
            "help" => Command::Help,
            "who" => Command::Who,
            "stats" => Command::Stats,
            "me" => Command::Usage("usage: /me ACTION, e.g. /me waves"),
            "history" => match arg.map(str::parse::<u64>).transpose() {
                Ok(n) => Command::History(n),
                Err(_) => Command::Usage("usage: /history [N]"),
            },
            other => Command::Unknown(other.to_string()),
        })
    }
}

/// Runs `command` and prints its answer. `Break` for [`Command::Quit`]: the caller leaves.
pub fn execute(node: &Node<MemberCore>, command: &Command) -> ControlFlow<()> {
    let text = match command {
        Command::Quit => return ControlFlow::Break(()),
        Command::History(n) => {
            history(node, n.unwrap_or(DEFAULT_HISTORY));
            return ControlFlow::Continue(());
        }
        Command::Help => HELP.to_string(),
        Command::Who => who(node),
        Command::Stats => stats(node),
        Command::Usage(usage) => usage.to_string(),
        Command::Unknown(name) => format!("unknown command /{name}; try /help"),
    };
    lock(&node.sink).notice(&text);
    ControlFlow::Continue(())
}

fn who(node: &Node<MemberCore>) -> String {
    let core = lock(&node.core);
    let waiting = core.quorum_wait().map(|w| {
        format!(
            "waiting for a quorum: {} of {} voters reachable",
            w.reachable, w.voters
        )
    });
    if !core.is_admitted() {
        return waiting.unwrap_or_else(|| "not in the ring yet".into());
    }
    // A member our pass does not reach is marked silent, not as the token's holder: the
    // token is stuck on its way to it.
    let silent = core.stalled_on();
    let members = &core.view().members;
    // Two members of one name are told apart by their identities.
    let shared = |name: &str| members.iter().filter(|m| m.name == name).count() > 1;
    let names: Vec<String> = members
        .iter()
        .map(|m| {
            let name = match shared(&m.name) {
                true => tagged(&m.name, m.id),
                false => m.name.clone(),
            };
            let you = if m.id == core.id() { " (you)" } else { "" };
            let mark = match (silent == Some(m.id), core.token_holder() == Some(m.id)) {
                (true, _) => " (silent)",
                (false, true) => " (token)",
                (false, false) => "",
            };
            format!("{name}{you}{mark}")
        })
        .collect();
    let text = who_text(core.view().epoch, &names);
    match waiting {
        Some(w) => format!("{text}\n{w}"),
        None => text,
    }
}

/// `/who`'s answer: the count and the epoch, then the names in ring order, on the same line
/// when they fit a notice, else wrapped below it (a ring of up to 128 must stay readable).
fn who_text(epoch: Epoch, names: &[String]) -> String {
    let head = format!("{} in epoch {epoch}", count(names.len(), "member"));
    let one_line = format!("{head}: {}", names.join(", "));
    if one_line.chars().count() <= NOTICE_WIDTH {
        return one_line;
    }
    format!("{head}:\n{}", wrap_list(names, NOTICE_WIDTH).join("\n"))
}

/// `/stats`: a few groups of counters in plain words, one line each. Only refused
/// datagrams mark their line with `!`: every other counter also grows on a healthy chat (a
/// node hears its own multicasts, say, and ignores them as copies already held).
fn stats(node: &Node<MemberCore>) -> String {
    let (s, delivered, outbox) = {
        let core = lock(&node.core);
        (core.stats().clone(), core.delivered(), core.outbox_len())
    };
    let net = node.transport.stats().snapshot();
    let refused = node.drops.total();
    let rows = [
        (
            "chat",
            format!(
                "delivered {} (up to #{delivered}), typed and sent {}, waiting {outbox}",
                s.delivered, s.stamped
            ),
        ),
        (
            "timing",
            node.phases
                .summary()
                .unwrap_or_else(|| "none of our lines delivered yet".into()),
        ),
        (
            "ring",
            format!(
                "token visits {}, views {}, passes resent {}, collects {} (cut short {}, by a wake {})",
                s.tokens_held,
                s.views,
                s.token_retransmits,
                s.collects,
                s.collects_unanswered,
                s.collects_woken
            ),
        ),
        (
            "repairs",
            format!(
                "re-sent for others {}, copies already held {}, from old views {}",
                s.retransmissions, s.duplicates, s.stale
            ),
        ),
        (
            "network",
            format!(
                "datagrams out {}, in {}, simulated drops {}, simulated copies {}",
                net.sent, net.received, net.sim_dropped, net.sim_duplicated
            ),
        ),
        ("refused", node.drops.summary()),
    ];
    let mut text = String::from("counters since this node started:");
    for (group, row) in rows {
        let mark = if group == "refused" && refused > 0 {
            "!"
        } else {
            " "
        };
        text.push_str(&format!("\n{mark} {group:<8} {row}"));
    }
    text
}

/// Prints the last `n` messages of the replica (at most [`MAX_HISTORY`]); the sink is held
/// throughout, so that no delivery lands in the middle of them.
fn history(node: &Node<MemberCore>, n: u64) {
    let (records, path) = {
        let storage = lock(&node.storage);
        let (lo, hi) = history_range(storage.replica.last_seq(), n);
        let path = storage.replica.path().display().to_string();
        (storage.replica.read_range(lo, hi), path)
    };
    let mut sink = lock(&node.sink);
    match records {
        Ok(records) if records.is_empty() => sink.notice("no history yet"),
        Ok(records) => {
            if n > MAX_HISTORY {
                sink.notice(&format!(
                    "/history shows at most {MAX_HISTORY} messages; the whole history is in {path}"
                ));
            }
            sink.notice(&format!("the last {} messages:", records.len()));
            records.iter().for_each(|r| sink.message(r));
            sink.flush();
        }
        Err(e) => sink.notice(&format!("cannot read history: {e}")),
    }
}

/// The seqs the last `n` (at most [`MAX_HISTORY`]) of `last` messages run over.
fn history_range(last: Seq, n: u64) -> (Seq, Seq) {
    let n = n.min(MAX_HISTORY);
    (Seq(last.0.saturating_sub(n.saturating_sub(1)).max(1)), last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Option<Command> {
        Command::parse(line)
    }

    #[test]
    fn who_fits_a_small_ring_on_one_line() {
        let names = ["alice (you) (token)".to_string(), "bob".to_string()];
        assert_eq!(
            who_text(Epoch(2), &names),
            "2 members in epoch 2: alice (you) (token), bob"
        );
    }

    #[test]
    fn who_puts_a_large_ring_below_its_count_in_lines_that_fit() {
        let mut names: Vec<String> = (0..40).map(|i| format!("c{i:02}")).collect();
        names[0].push_str(" (you)");
        names[7].push_str(" (token)");
        let text = who_text(Epoch(3), &names);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "40 members in epoch 3:");
        assert!(lines.len() > 2, "{text}");
        assert!(lines.iter().all(|l| l.chars().count() <= NOTICE_WIDTH));
        assert!(lines[1].starts_with("c00 (you), c01,"), "{text}");
        assert!(text.contains("c07 (token),"), "{text}");
        assert_eq!(lines[1..].join(" ").split(", ").collect::<Vec<_>>(), names);
    }

    #[test]
    fn lines_without_a_leading_slash_are_messages() {
        for line in ["hello", " /help", "", "help", "\\/who"] {
            assert_eq!(parse(line), None, "{line:?}");
        }
    }

    #[test]
    fn each_command_by_its_first_word() {
        assert_eq!(parse("/help"), Some(Command::Help));
        assert_eq!(parse("/help me"), Some(Command::Help));
        assert_eq!(parse("/who"), Some(Command::Who));
        assert_eq!(parse("/who  is there"), Some(Command::Who));
        assert_eq!(parse("/stats"), Some(Command::Stats));
        assert_eq!(parse("/ stats"), Some(Command::Stats));
    }

    #[test]
    fn history_shows_the_last_n_up_to_the_cap() {
        assert_eq!(history_range(Seq(100), 20), (Seq(81), Seq(100)));
        assert_eq!(history_range(Seq(5), 20), (Seq(1), Seq(5)));
        assert_eq!(history_range(Seq(0), 20), (Seq(1), Seq(0)));
        let last = Seq(10_000_000);
        let (lo, hi) = history_range(last, u64::MAX);
        assert_eq!((hi.0 - lo.0 + 1, hi), (MAX_HISTORY, last));
    }

    #[test]
    fn history_takes_an_optional_count() {
        assert_eq!(parse("/history"), Some(Command::History(None)));
        assert_eq!(parse("/history 5"), Some(Command::History(Some(5))));
        assert_eq!(parse("/history 3 4"), Some(Command::History(Some(3))));
        assert_eq!(parse("/history 0"), Some(Command::History(Some(0))));
        let usage = Some(Command::Usage("usage: /history [N]"));
        for bad in [
            "/history x",
            "/history -1",
            "/history 1.5",
            "/history 99999999999999999999",
        ] {
            assert_eq!(parse(bad), usage, "{bad:?}");
        }
    }

    #[test]
    fn an_action_is_a_message_and_a_bare_me_is_a_usage_error() {
        assert_eq!(parse("/me waves"), None);
        assert_eq!(parse("/me waves at bob"), None);
        let usage = Some(Command::Usage("usage: /me ACTION, e.g. /me waves"));
        assert_eq!(parse("/me"), usage);
        assert_eq!(parse("/me   "), usage);
        assert_eq!(parse("/meet"), Some(Command::Unknown("meet".into())));
    }

    #[test]
    fn quit_takes_no_words_after_it() {
        assert_eq!(parse("/quit"), Some(Command::Quit));
        assert_eq!(parse("/ quit "), Some(Command::Quit));
        assert_eq!(parse("/quit now"), Some(Command::Unknown("quit".into())));
    }

    #[test]
    fn anything_else_is_unknown_and_named_by_its_first_word() {
        assert_eq!(parse("/HELP"), Some(Command::Unknown("HELP".into())));
        assert_eq!(parse("/foo bar"), Some(Command::Unknown("foo".into())));
        assert_eq!(parse("/"), Some(Command::Unknown(String::new())));
        assert_eq!(parse("/   "), Some(Command::Unknown(String::new())));
        assert_eq!(parse("//x"), Some(Command::Unknown("/x".into())));
    }
}
