//! The client program: picks or resumes an identity, restores the outbox and history from the
//! data dir, joins the ring, reads lines and commands from stdin, prints what is delivered,
//! and leaves cleanly at EOF, `/quit`, SIGINT or SIGTERM.
//!
//! Wiring only: the protocol is in [`crate::protocol::member`], the threads in [`crate::runtime`].

use crate::app::cli::{ClientConfig, Resume};
use crate::checkpoint::Checkpoint;
use crate::net::seal::{Key, KeyError};
use crate::net::{NetConfig, NetError, Transport};
use crate::protocol::events::MemberStop;
use crate::protocol::member::{MemberConfig, MemberCore, Restored};
use crate::protocol::types::{Incarnation, NodeId, Pending, Seq};
use crate::protocol::wire;
use crate::replica::Replica;
use crate::runtime::datagram::DropStats;
use crate::runtime::{self, lock, Node, NodeInfo, Outcome};
use crate::store::journal::Journal;
use crate::store::{self, Identity, StorageError};
use crate::ui::display::Printer;
use crate::ui::terminal::{self, LineOut, LineSource};
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Why the client could not run or stopped with a failure.
#[derive(Debug)]
pub enum ClientError {
    /// A file in the data dir could not be used.
    Storage(StorageError),
    /// The multicast socket could not be set up.
    Net(NetError),
    /// `--resume` could not pick an identity.
    Identity(String),
    /// The `--key-file` cannot be used.
    Key(KeyError),
    /// No server answered the join.
    JoinTimeout {
        net: NetConfig,
        after: Duration,
        /// Datagrams from the group that could not be read meanwhile: a hint that the
        /// server is there but uses another key (or none).
        unreadable: Unreadable,
    },
    /// The server refused the join.
    Refused(String),
    /// Something failed while running.
    Runtime(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Storage(e) => write!(f, "{e}"),
            ClientError::Net(e) => write!(f, "{e}"),
            ClientError::Identity(why) => write!(f, "{why}"),
            ClientError::Key(e) => write!(f, "{e}"),
            ClientError::JoinTimeout {
                net,
                after,
                unreadable,
            } => {
                write!(
                    f,
                    "no server answered on {}:{} via {} within {}",
                    net.group,
                    net.port,
                    net.interface,
                    humantime::format_duration(*after)
                )?;
                match unreadable.hint() {
                    Some(hint) => write!(f, "; {hint}"),
                    None => write!(
                        f,
                        "; start `server` with the same --group/--port/--interface (and check \
                         that multicast reaches this host)"
                    ),
                }
            }
            ClientError::Refused(why) => write!(f, "the server refused the join: {why}"),
            ClientError::Runtime(why) => write!(f, "{why}"),
        }
    }
}

/// The variants print their cause themselves; `source` would repeat it.
impl std::error::Error for ClientError {}

/// Datagrams dropped while joining, and whether this client has a key: together they tell a
/// missing server from one that speaks with another key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unreadable {
    /// Did not open with our key (plaintext, or another key).
    pub unauthenticated: u64,
    /// Did not decode (without a key: sealed datagrams look like this).
    pub malformed: u64,
    /// Whether this client runs with `--key-file`.
    pub keyed: bool,
}

impl Unreadable {
    fn from_drops(drops: &DropStats, keyed: bool) -> Unreadable {
        Unreadable {
            unauthenticated: drops.unauthenticated.load(Ordering::Relaxed),
            malformed: drops.malformed.load(Ordering::Relaxed),
            keyed,
        }
    }

    /// What to add to the "no server answered" message, if anything.
    fn hint(&self) -> Option<String> {
        if self.unauthenticated > 0 {
            return Some(format!(
                "{} from the group failed authentication: is --key-file the same as the \
                 server's?",
                crate::protocol::types::count(self.unauthenticated as usize, "datagram")
            ));
        }
        if self.malformed > 0 && !self.keyed {
            return Some(format!(
                "{} from the group could not be read: does the server use a --key-file?",
                crate::protocol::types::count(self.malformed as usize, "datagram")
            ));
        }
        None
    }
}

impl From<StorageError> for ClientError {
    fn from(e: StorageError) -> Self {
        ClientError::Storage(e)
    }
}

/// Runs a client until it leaves. Reads stdin, writes stdout.
pub fn run(cfg: ClientConfig) -> Result<(), ClientError> {
    let key = Key::load(cfg.common.key_file.as_deref()).map_err(ClientError::Key)?;
    let dir = cfg.common.data_dir.clone();
    let uuid = resolve_identity(&cfg.resume, &dir)?;
    let identity = Identity::Client(uuid);
    let (storage, cp) = runtime::storage::open_storage(&dir, identity)?;
    let cp = cp.filter(|cp| cp.node == NodeId(uuid));
    let (journal, journaled) = Journal::open(
        &identity.journal_path(&dir),
        cp.as_ref().and_then(|cp| cp.journal),
    )?;
    let name = cfg
        .name
        .clone()
        .or_else(|| cp.as_ref().and_then(|cp| resumed_name(&cp.name)))
        .unwrap_or_else(crate::app::cli::default_name);
    let mut restored = restore(&storage.replica, cp.as_ref(), journaled.lines)?;
    let unsendable = drop_unsendable(&mut restored.outbox, &name);
    let transport = Transport::open(&cfg.common.net).map_err(ClientError::Net)?;
    let id = NodeId(uuid);
    let mut member_cfg = MemberConfig::new(id, name.clone(), Incarnation::random());
    member_cfg.join_timeout = cfg.join_timeout;
    let pending = restored.outbox.len();
    let core = MemberCore::new(member_cfg, restored, std::time::Instant::now());
    let info = NodeInfo {
        identity,
        id,
        name: name.clone(),
        data_dir: dir,
        checkpoint_interval: cfg.common.checkpoint_interval,
        key,
        server_id: None,
    };
    // On a terminal: a line editor, with incoming lines printed above the one being typed.
    let mut source = LineSource::stdin(!cfg.json);
    let out = match source.printer() {
        Some(p) => LineOut::Terminal(p),
        None => LineOut::Stream(Box::new(std::io::BufWriter::new(std::io::stdout()))),
    };
    let printer = Printer::to(cfg.json, !cfg.json && terminal::color_wanted(), out);
    let node = Node::new(
        core,
        storage,
        transport,
        Box::new(printer),
        info,
        Some(journal),
    );
    {
        let mut sink = lock(&node.sink);
        sink.notice(&format!(
            "you are {name} ({uuid}); continue later with --resume {uuid}"
        ));
        if pending > 0 {
            sink.notice(&format!(
                "{pending} lines from last time are waiting to be sent"
            ));
        }
        for (line, why) in &unsendable {
            sink.notice(&format!(
                "a line from last time cannot be sent as {name} ({why}), dropped: {}",
                shorten(&line.text, 60)
            ));
        }
        sink.notice(&format!("joining {} ...", cfg.common.net));
    }
    node.spawn_workers()
        .map_err(|e| ClientError::Runtime(format!("cannot start threads: {e}")))?;
    spawn_input(&node, name, source)?;
    spawn_signal_watch(&node)?;
    let outcome = node.wait();
    if let Err(e) = node.write_checkpoint(true) {
        log::warn!("final checkpoint failed: {e}");
    }
    node.transport.shutdown();
    match outcome {
        Outcome::Stopped(MemberStop::Left) | Outcome::Interrupted => Ok(()),
        Outcome::Stopped(MemberStop::JoinTimeout) => Err(ClientError::JoinTimeout {
            net: cfg.common.net,
            after: cfg.join_timeout,
            unreadable: Unreadable::from_drops(&node.drops, node.info.key.is_some()),
        }),
        Outcome::Stopped(MemberStop::Refused(why)) => Err(ClientError::Refused(why)),
        Outcome::Failed(e) => Err(ClientError::Storage(e)),
    }
}

/// The name kept in the checkpoint, if it is still a valid name (the file may have been
/// edited): an invalid one would make every line of ours fail to decode elsewhere.
fn resumed_name(saved: &str) -> Option<String> {
    match crate::app::cli::parse_name(saved) {
        Ok(name) => Some(name),
        Err(why) if !saved.is_empty() => {
            log::warn!("ignoring the name in the checkpoint ({why}); give one with --name");
            None
        }
        Err(_) => None,
    }
}

/// The uuid to run as: a new one, the only one in the data dir, or the one named.
fn resolve_identity(resume: &Resume, dir: &std::path::Path) -> Result<Uuid, ClientError> {
    match resume {
        Resume::New => Ok(Uuid::new_v4()),
        Resume::Id(uuid) => {
            let id = Identity::Client(*uuid);
            if id.replica_path(dir).exists() || id.checkpoint_path(dir).exists() {
                Ok(*uuid)
            } else {
                Err(ClientError::Identity(format!(
                    "nothing to resume: no files of identity {uuid} in {}",
                    dir.display()
                )))
            }
        }
        Resume::Only => match store::find_client_identities(dir)?.as_slice() {
            [one] => Ok(*one),
            [] => Err(ClientError::Identity(format!(
                "nothing to resume: no client identity in {}; start without --resume",
                dir.display()
            ))),
            many => Err(ClientError::Identity(format!(
                "{} identities in {}; name one with --resume UUID: {}",
                many.len(),
                dir.display(),
                many.iter()
                    .map(Uuid::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
    }
}

/// The outbox as last persisted (the checkpoint's, then the journal's lines past its mark),
/// minus lines the replica already holds (delivered after that checkpoint was written).
fn restore(
    replica: &Replica,
    cp: Option<&Checkpoint>,
    journaled: Vec<Pending>,
) -> Result<Restored, StorageError> {
    let delivered = replica.last_seq();
    let (from, saved) = match cp {
        Some(cp) => (cp.delivered.min(delivered).next(), cp.outbox.clone()),
        None => (Seq(1), Vec::new()),
    };
    let candidates = saved.into_iter().chain(journaled).collect::<Vec<_>>();
    if candidates.is_empty() {
        return Ok(Restored {
            delivered,
            outbox: Vec::new(),
        });
    }
    let mut seen: HashSet<Uuid> = replica
        .read_range(from, delivered)?
        .into_iter()
        .map(|r| r.id)
        .collect();
    // `insert` is false for a line already delivered, or already taken (the same line in
    // the checkpoint and past the journal mark cannot happen, but costs nothing to rule out).
    let outbox = candidates
        .into_iter()
        .filter(|p| seen.insert(p.id))
        .collect();
    Ok(Restored { delivered, outbox })
}

/// Takes out of `outbox` the lines that cannot go out under `name` (a longer `--name` than
/// when they were typed, or a hand-edited file): sent, such a line would hold a seq that no
/// datagram can carry, and stall the ring. Returns them with the reason.
fn drop_unsendable(outbox: &mut Vec<Pending>, name: &str) -> Vec<(Pending, wire::LineError)> {
    let mut dropped = Vec::new();
    outbox.retain(|line| match wire::check_line(name, &line.text) {
        Ok(()) => true,
        Err(why) => {
            log::warn!("outbox line {} cannot be sent: {why}; dropped", line.id);
            dropped.push((line.clone(), why));
            false
        }
    });
    dropped
}

/// At most `max` characters of `text`, with `...` when cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

fn spawn_input(
    node: &Arc<Node<MemberCore>>,
    name: String,
    source: LineSource,
) -> Result<(), ClientError> {
    let node = Arc::clone(node);
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || input_loop(&node, &name, source))
        .map(|_| ())
        .map_err(|e| ClientError::Runtime(format!("cannot start the input thread: {e}")))
}

/// SIGINT or SIGTERM: leave cleanly (a second one exits at once).
fn spawn_signal_watch(node: &Arc<Node<MemberCore>>) -> Result<(), ClientError> {
    let node = Arc::clone(node);
    runtime::signals::on_signal(move || node.with_core(|core, now| core.leave(now)))
        .map_err(|e| ClientError::Runtime(format!("cannot handle signals: {e}")))
}

/// Reads stdin: lines are accepted in batches (one journal append per batch), commands run
/// here.
fn input_loop(node: &Node<MemberCore>, name: &str, mut input: LineSource) {
    let mut batch: Vec<Pending> = Vec::new();
    loop {
        let line = match input.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                lock(&node.sink).notice(&format!("cannot read input: {e}"));
                break;
            }
        };
        if let Some(command) = line.strip_prefix('/') {
            if command.trim() == "quit" {
                break;
            }
            run_command(node, command);
        } else if let Err(e) = wire::check_line(name, &line) {
            lock(&node.sink).notice(&e.to_string());
        } else {
            batch.push(Pending {
                id: Uuid::new_v4(),
                text: line,
                sent_at_ms: runtime::wall_ms(),
            });
        }
        // More lines already buffered (a paste, a pipe): take them into the same batch.
        if !batch.is_empty() && (!input.has_buffered_line() || batch.len() >= 1024) {
            accept(node, std::mem::take(&mut batch));
        }
    }
    accept(node, batch);
    node.with_core(|core, now| core.leave(now));
}

/// Flow control: past this many lines waiting in the outbox, stdin is not read until the ring
/// has sent some, so a paste or a pipe of a huge file stays bounded in memory and on disk
/// (the checkpoint holds the outbox).
pub const MAX_OUTBOX_LINES: usize = 10_000;

/// Puts lines on disk (the outbox journal), then into the ring.
fn accept(node: &Node<MemberCore>, lines: Vec<Pending>) {
    if lines.is_empty() {
        return;
    }
    wait_for_outbox_room(node);
    let n = lines.len();
    if let Err(e) = node.accept_lines(lines, |core, now, lines| core.submit(now, lines)) {
        lock(&node.sink).notice(&format!(
            "{n} lines not accepted: cannot write the outbox: {e}"
        ));
    }
}

/// Waits while the outbox is full (see [`MAX_OUTBOX_LINES`]), saying so once.
fn wait_for_outbox_room(node: &Node<MemberCore>) {
    let mut said = false;
    while !node.is_stopped() && lock(&node.core).outbox_len() >= MAX_OUTBOX_LINES {
        if !said {
            said = true;
            lock(&node.sink).notice(&format!(
                "{MAX_OUTBOX_LINES} lines are waiting to be sent; reading more input once the \
                 ring has sent some"
            ));
        }
        // The outbox drains at ring speed (thousands of lines a second): polling is enough.
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn run_command(node: &Node<MemberCore>, command: &str) {
    let mut words = command.split_whitespace();
    let text = match (words.next().unwrap_or(""), words.next()) {
        ("help", _) => "commands: /help, /who, /history [N], /stats, /quit; \
                        anything else is a message"
            .to_string(),
        ("who", _) => who(node),
        ("stats", _) => stats(node),
        ("history", n) => match n.map_or(Ok(20), str::parse::<u64>) {
            Ok(n) => return history(node, n),
            Err(_) => "usage: /history [N]".into(),
        },
        (other, _) => format!("unknown command /{other}; try /help"),
    };
    lock(&node.sink).notice(&text);
}

fn who(node: &Node<MemberCore>) -> String {
    let core = lock(&node.core);
    if !core.is_admitted() {
        return "not in the ring yet".into();
    }
    let names: Vec<String> = core
        .view()
        .members
        .iter()
        .map(|m| {
            let you = if m.id == core.id() { " (you)" } else { "" };
            let token = if core.token_holder() == Some(m.id) {
                " (token)"
            } else {
                ""
            };
            format!("{}{you}{token}", m.name)
        })
        .collect();
    format!(
        "{} in epoch {}: {}",
        crate::protocol::types::count(names.len(), "member"),
        core.view().epoch,
        names.join(", ")
    )
}

fn stats(node: &Node<MemberCore>) -> String {
    let (s, delivered, outbox) = {
        let core = lock(&node.core);
        (
            core.stats().clone(),
            core.delivered(),
            core.outbox().count(),
        )
    };
    let net = node.transport.stats().snapshot();
    format!(
        "delivered up to #{delivered} ({} this run), outbox {outbox}, stamped {}, token visits \
         {}, token resends {}, retransmissions {}, duplicates {}, stale {}, views {}; network: \
         sent {}, received {}, simulated drops {}, simulated duplicates {}; dropped datagrams: {}",
        s.delivered,
        s.stamped,
        s.tokens_held,
        s.token_retransmits,
        s.retransmissions,
        s.duplicates,
        s.stale,
        s.views,
        net.sent,
        net.received,
        net.sim_dropped,
        net.sim_duplicated,
        node.drops.summary()
    )
}

fn history(node: &Node<MemberCore>, n: u64) {
    let records = {
        let storage = lock(&node.storage);
        let last = storage.replica.last_seq();
        let lo = Seq(last.0.saturating_sub(n.saturating_sub(1)).max(1));
        storage.replica.read_range(lo, last)
    };
    let mut sink = lock(&node.sink);
    match records {
        Ok(records) if records.is_empty() => sink.notice("no history yet"),
        Ok(records) => {
            sink.notice(&format!("the last {} messages:", records.len()));
            records.iter().for_each(|r| sink.message(r));
            sink.flush();
        }
        Err(e) => sink.notice(&format!("cannot read history: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::CHECKPOINT_VERSION;
    use crate::protocol::types::{ChatRecord, View};
    use crate::store::journal::JournalMark;

    fn line(n: u128) -> Pending {
        Pending {
            id: Uuid::from_u128(n),
            text: format!("line {n}"),
            sent_at_ms: n as u64,
        }
    }

    /// A replica holding `delivered` (in that order as seq 1, 2, ...).
    fn replica_with(dir: &std::path::Path, delivered: &[Pending]) -> Replica {
        let (mut replica, _) = Replica::open(&dir.join("replica_test.jsonl")).unwrap();
        let records: Vec<ChatRecord> = delivered
            .iter()
            .enumerate()
            .map(|(i, p)| ChatRecord {
                seq: Seq(i as u64 + 1),
                id: p.id,
                from: NodeId(Uuid::from_u128(99)),
                name: "me".into(),
                text: p.text.clone(),
                sent_at_ms: p.sent_at_ms,
            })
            .collect();
        replica.append(&records).unwrap();
        replica
    }

    fn checkpoint(delivered: u64, outbox: Vec<Pending>) -> Checkpoint {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            node: NodeId(Uuid::from_u128(99)),
            name: "me".into(),
            view: View::default(),
            delivered: Seq(delivered),
            replica_len_bytes: 0,
            outbox,
            journal: Some(JournalMark::default()),
            server_id: None,
            saved_at_ms: 0,
        }
    }

    fn ids(r: &Restored) -> Vec<u128> {
        r.outbox.iter().map(|p| p.id.as_u128()).collect()
    }

    #[test]
    fn g2_restore_takes_the_checkpoint_then_the_journal_minus_what_was_delivered() {
        let dir = tempfile::tempdir().unwrap();
        // Checkpoint at #1 with lines 2 and 3 waiting; then 2 and 4 were delivered, and 4 and
        // 5 were typed after the checkpoint (only in the journal).
        let replica = replica_with(dir.path(), &[line(1), line(2), line(4)]);
        let cp = checkpoint(1, vec![line(2), line(3)]);
        let restored = restore(&replica, Some(&cp), vec![line(4), line(5)]).unwrap();
        assert_eq!(restored.delivered, Seq(3));
        assert_eq!(ids(&restored), [3, 5]);
    }

    #[test]
    fn g6_a_restored_line_that_cannot_be_sent_under_this_name_is_dropped_not_stamped() {
        // The longest line of quotes (two bytes each on the wire) that fits under a short
        // name: the longest name makes it too large for one datagram.
        let fits_short = (1..=crate::protocol::limits::MAX_LINE_BYTES)
            .map(|n| "\"".repeat(n))
            .take_while(|t| crate::protocol::wire::check_line("al", t).is_ok())
            .last()
            .unwrap();
        let long_name = "n".repeat(crate::protocol::limits::MAX_NAME_BYTES);
        let outbox = vec![
            line(1),
            Pending {
                text: fits_short.clone(),
                ..line(2)
            },
            Pending {
                text: "bell \u{7}".into(),
                ..line(3)
            },
        ];
        let mut under_short = outbox.clone();
        assert_eq!(drop_unsendable(&mut under_short, "al").len(), 1);
        let mut under_long = outbox;
        let dropped = drop_unsendable(&mut under_long, &long_name);
        let kept: Vec<u128> = under_long.iter().map(|p| p.id.as_u128()).collect();
        assert_eq!(kept, [1]);
        assert_eq!(dropped.len(), 2);
        assert_eq!(shorten(&fits_short, 3), "\"\"\"...");
        assert_eq!(shorten("short", 60), "short");
    }

    #[test]
    fn g2_without_a_checkpoint_the_journal_is_checked_against_the_whole_replica() {
        let dir = tempfile::tempdir().unwrap();
        let replica = replica_with(dir.path(), &[line(1), line(2)]);
        let restored = restore(&replica, None, vec![line(1), line(3), line(3)]).unwrap();
        assert_eq!(ids(&restored), [3]);
        let restored = restore(&replica, None, Vec::new()).unwrap();
        assert_eq!(restored.delivered, Seq(2));
        assert!(restored.outbox.is_empty());
    }
}
