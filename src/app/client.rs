//! The client program: picks or resumes an identity, restores the outbox and history from the
//! data dir, joins the ring, reads lines and commands from stdin, prints what is delivered,
//! and leaves cleanly at EOF, `/quit`, SIGINT or SIGTERM.
//!
//! Wiring only: the identity is in [`super::identity`], the restore in [`super::restore`],
//! stdin in [`super::input`] and [`super::commands`], the protocol in
//! [`crate::protocol::member`], the threads in [`crate::runtime`]. What this module must not
//! do: decide the exit code (that is [`super::exit`]) or print the final error.

use super::cli::{default_name, ClientConfig, Resume};
use super::identity::{resolve_identity, resumed_name};
use super::input::spawn_input;
use super::restore::{drop_unsendable, restore, shorten};
use crate::net::seal::Key;
use crate::net::{NetConfig, Transport};
use crate::protocol::events::MemberStop;
use crate::protocol::member::{MemberConfig, MemberCore, Restored};
use crate::protocol::types::{Incarnation, NodeId, Pending};
use crate::protocol::wire::LineError;
use crate::protocol::wire::Msg;
use crate::runtime::backlog::OnAppendFailure;
use crate::runtime::storage::{sync_data_dir, Storage};
use crate::runtime::{self, lock, Node, NodeInfo, Outcome};
use crate::store::journal::Journal;
use crate::store::{self, vote_file, Identity};
use crate::ui::display::{Mentions, Printer};
use crate::ui::log_notices;
use crate::ui::terminal::{self, LineOut, LineSource};
use std::sync::Arc;
use uuid::Uuid;

pub use super::error::{ClientError, Unreadable};
pub use super::input::MAX_OUTBOX_LINES;

/// Runs a client until it leaves. Reads stdin, writes stdout.
pub fn run(cfg: ClientConfig) -> Result<(), ClientError> {
    // The key first: a bad file fails before anything in the data dir is touched.
    let key = Key::load(cfg.common.key_file.as_deref())?;
    let Start {
        uuid,
        name,
        storage,
        journal,
        restored,
        unsendable,
    } = start(&cfg)?;
    let transport = Transport::open(&cfg.common.net)?;
    let identity = Identity::Client(uuid);
    let id = NodeId(uuid);
    let incarnation = Incarnation::random();
    let mut member_cfg = MemberConfig::new(id, name.clone(), incarnation);
    member_cfg.join_timeout = cfg.join_timeout;
    let pending = restored.outbox.len();
    let core = MemberCore::new(member_cfg, restored, std::time::Instant::now());
    let info = NodeInfo {
        identity,
        id,
        name: name.clone(),
        data_dir: cfg.common.data_dir.clone(),
        checkpoint_interval: cfg.common.checkpoint_interval,
        key,
        server_id: None,
        durability: cfg.common.durability,
        // A client that cannot write its replica cannot go on; saying Leave lets the server
        // recover the ring at once rather than after a token timeout.
        on_append_failure: OnAppendFailure::Stop {
            farewell: Some(Msg::Leave {
                from: id,
                incarnation,
            }),
        },
    };
    let mentions = Mentions {
        id,
        name: name.clone(),
        bell: cfg.bell,
    };
    let (source, printer) = console(cfg.json, mentions);
    let editor = matches!(source, LineSource::Editor(_));
    let node = Node::new(
        core,
        storage,
        transport,
        Box::new(printer),
        info,
        Some(journal),
    );
    greet(&node, uuid, pending, &unsendable, &cfg.common.net);
    node.spawn_workers().map_err(|source| ClientError::Spawn {
        thread: "threads",
        source,
    })?;
    spawn_input(&node, name, source)?;
    spawn_signal_watch(&node)?;
    match editor {
        true => spawn_log_notices(&node)?,
        false => log_notices::stop_diverting(),
    }
    let outcome = node.wait();
    log_notices::stop_diverting();
    if let Err(e) = node.write_checkpoint(true) {
        log::warn!("final checkpoint failed: {e}");
    }
    if matches!(outcome, Outcome::Stopped(MemberStop::Left)) {
        lock(&node.sink).notice(&format!(
            "you left the chat; bye, {}. Continue later with --resume {uuid}",
            node.info.name
        ));
    }
    node.transport.shutdown();
    forget_if_never_joined(&cfg, &node, uuid);
    match outcome {
        Outcome::Stopped(MemberStop::Left) | Outcome::Interrupted => Ok(()),
        Outcome::Stopped(MemberStop::JoinTimeout { ring_heard }) => Err(ClientError::JoinTimeout {
            net: Box::new(cfg.common.net),
            after: cfg.join_timeout,
            unreadable: Unreadable::from_drops(&node.drops, node.info.key.is_some()),
            ring_heard,
        }),
        Outcome::Stopped(MemberStop::Refused(reason)) => Err(ClientError::Refused { reason }),
        Outcome::Failed(e) => Err(ClientError::Storage(e)),
    }
}

/// A new identity that never joined and holds no line removes its files, so failed starts
/// leave nothing behind; one with lines typed keeps them, to send with `--resume`.
fn forget_if_never_joined(cfg: &ClientConfig, node: &Node<MemberCore>, uuid: Uuid) {
    let (joined, waiting) = node.with_core(|core, _| (core.stats().views > 0, core.outbox_len()));
    if cfg.resume != Resume::New || joined {
        return;
    }
    let name = &node.info.name;
    if waiting > 0 {
        lock(&node.sink).notice(&format!(
            "{name} never joined; its {waiting} line(s) are kept: send them with --resume {uuid}"
        ));
        return;
    }
    match store::remove_client_files(&cfg.common.data_dir, uuid) {
        Ok(()) => lock(&node.sink).notice(&format!(
            "{name} never joined and holds no line: its files are removed"
        )),
        Err(e) => log::warn!("could not remove the files of an identity that never joined: {e}"),
    }
}

/// What the data dir gives a client before it joins.
struct Start {
    uuid: Uuid,
    /// `--name`, else the checkpoint's, else `$USER`.
    name: String,
    /// Locked: no other process runs as this identity until we exit.
    storage: Storage,
    journal: Journal,
    /// The outbox to send, and how far the replica goes.
    restored: Restored,
    /// Lines of the outbox that cannot go out under `name`, with the reason.
    unsendable: Vec<(Pending, LineError)>,
}

/// Picks the identity, opens (and locks) its files, and restores the outbox.
fn start(cfg: &ClientConfig) -> Result<Start, ClientError> {
    let dir = &cfg.common.data_dir;
    let uuid = resolve_identity(&cfg.resume, dir)?;
    let identity = Identity::Client(uuid);
    let (storage, cp) = runtime::storage::open_storage(dir, identity)?;
    // A checkpoint of another node (a file copied by hand) restores nothing.
    let cp = cp.filter(|cp| cp.node == NodeId(uuid));
    let (mut journal, journaled) = Journal::open(
        &identity.journal_path(dir),
        cp.as_ref().and_then(|cp| cp.journal),
    )?;
    journal.sync_appends(cfg.common.durability.syncs());
    sync_data_dir(dir, cfg.common.durability)?;
    let name = cfg
        .name
        .clone()
        .or_else(|| cp.as_ref().and_then(|cp| resumed_name(&cp.name)))
        .unwrap_or_else(default_name);
    let mut restored = restore(&storage.replica, cp.as_ref(), journaled.lines)?;
    restored.vote = vote_file::load(&identity.vote_path(dir))?.unwrap_or_default();
    let unsendable = drop_unsendable(&mut restored.outbox, &name);
    Ok(Start {
        uuid,
        name,
        storage,
        journal,
        restored,
        unsendable,
    })
}

/// Stdin, and the printer of everything the client shows. On a terminal: a line editor, with
/// incoming lines printed above the one being typed, and messages that mention us
/// highlighted.
fn console(json: bool, mentions: Mentions) -> (LineSource, Printer) {
    let mut source = LineSource::stdin(!json);
    let out = match source.printer() {
        Some(p) => LineOut::Terminal(p),
        None => LineOut::Stream(Box::new(std::io::BufWriter::new(std::io::stdout()))),
    };
    let printer = Printer::to(json, !json && terminal::color_wanted(), out);
    match !json && terminal::on_terminal() {
        true => (source, printer.with_mentions(mentions)),
        false => (source, printer),
    }
}

/// The first notices: who we are and how to come back as the same identity, what is left
/// from last time, and where we join.
fn greet(
    node: &Node<MemberCore>,
    uuid: Uuid,
    pending: usize,
    unsendable: &[(Pending, LineError)],
    net: &NetConfig,
) {
    let name = &node.info.name;
    let mut sink = lock(&node.sink);
    sink.notice(&format!(
        "you are {name} ({uuid}); continue later with --resume {uuid}"
    ));
    if pending > 0 {
        sink.notice(&format!(
            "{pending} lines from last time are waiting to be sent"
        ));
    }
    for (line, why) in unsendable {
        sink.notice(&format!(
            "a line from last time cannot be sent as {name} ({why}), dropped: {}",
            shorten(&line.text, 60)
        ));
    }
    match &net.unicast {
        Some(u) => sink.notice(&format!(
            "joining through {} ({net}) ...",
            u.named.join(", ")
        )),
        None => sink.notice(&format!("joining {net} ...")),
    }
}

/// While the line editor owns the screen, warnings show as notices above the prompt rather
/// than tearing it on stderr; this thread prints them until the diversion stops.
fn spawn_log_notices(node: &Arc<Node<MemberCore>>) -> Result<(), ClientError> {
    let Some(records) = log_notices::take_notices() else {
        return Ok(());
    };
    let node = Arc::clone(node);
    std::thread::Builder::new()
        .name("log-notices".into())
        .spawn(move || {
            for text in records {
                lock(&node.sink).notice(&text);
            }
        })
        .map(|_| ())
        .map_err(|source| ClientError::Spawn {
            thread: "the log notice thread",
            source,
        })
}

/// SIGINT or SIGTERM: leave cleanly (a second one exits at once).
fn spawn_signal_watch(node: &Arc<Node<MemberCore>>) -> Result<(), ClientError> {
    let node = Arc::clone(node);
    runtime::signals::on_signal(move || node.with_core(|core, now| core.leave(now)))
        .map_err(ClientError::Signals)
}
