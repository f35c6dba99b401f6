//! The server program: restores the archive and vote from the data dir, coordinates the ring
//! or stands by for the server that does, archives every safe message, reconciles every
//! `--sync-interval`, and stops on SIGINT/SIGTERM after a final checkpoint.
//!
//! Wiring only: the protocol is in [`crate::protocol::coordinator`], the threads in
//! [`crate::runtime`]. What this module must not do: decide the exit code (that is
//! [`super::exit`]) or print the final error.

use super::cli::ServerConfig;
use crate::net::seal::Key;
use crate::net::Transport;
use crate::protocol::coordinator::{Coordinator, CoordinatorConfig};
use crate::protocol::events::CoordinatorStop;
use crate::protocol::types::{GroupId, Incarnation, NodeId, ServerId};
use crate::runtime::backlog::OnAppendFailure;
use crate::runtime::{self, lock, Node, NodeInfo, Outcome};
use crate::store::{vote_file, Identity};
use crate::ui::display::Printer;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use super::error::ServerError;

/// Runs the server until SIGINT or SIGTERM.
pub fn run(cfg: ServerConfig) -> Result<(), ServerError> {
    // The key first: a bad file fails before anything in the data dir is touched.
    let key = Key::load(cfg.common.key_file.as_deref())?;
    let dir = cfg.common.data_dir.clone();
    let (storage, cp) = runtime::storage::open_storage(&dir, Identity::Server)?;
    runtime::storage::sync_data_dir(&dir, cfg.common.durability)?;
    // Kept across restarts: the server's node id and its rank among equals.
    let server_id = cp
        .as_ref()
        .and_then(|cp| cp.server_id)
        .unwrap_or_else(ServerId::random);
    let vote = vote_file::load(&Identity::Server.vote_path(&dir))?.unwrap_or_default();
    let archived = storage.replica.last_seq();
    let transport = Transport::open(&cfg.common.net)?;
    let mut core_cfg = CoordinatorConfig::new(cfg.token_timeout);
    core_cfg.server_id = server_id;
    core_cfg.new_group = GroupId::random();
    core_cfg.incarnation = Incarnation::random();
    let core = Coordinator::new(core_cfg, vote, archived, Instant::now());
    let info = NodeInfo {
        identity: Identity::Server,
        id: NodeId::server(server_id),
        name: "server".into(),
        data_dir: dir.clone(),
        checkpoint_interval: cfg.common.checkpoint_interval,
        key,
        server_id: Some(server_id),
        durability: cfg.common.durability,
        // The server is not a token holder: the ring chats on while it holds what it cannot
        // archive, and it catches up once the disk takes the records again.
        on_append_failure: OnAppendFailure::Hold,
    };
    let printer = Printer::new(false, Box::new(std::io::BufWriter::new(std::io::stdout())));
    let node = Node::new(core, storage, transport, Box::new(printer), info, None);
    lock(&node.sink).notice(&format!(
        "server on {}, archive {} ({} messages), sync every {}, {}",
        cfg.common.net,
        Identity::Server.replica_path(&dir).display(),
        archived,
        humantime::format_duration(cfg.sync_interval),
        match &node.info.key {
            Some(key) => format!("datagrams sealed with key file {}", key.path().display()),
            None if cfg.common.net.unicast.is_some() => {
                "no key: anyone who reaches this port can read and post".to_string()
            }
            None => "no key: anyone who reaches the group can read and post".to_string(),
        }
    ));
    node.spawn_workers().map_err(|source| ServerError::Spawn {
        thread: "threads",
        source,
    })?;
    node.request_checkpoint(); // keeps the server id from the first moment
    spawn_reconciliation(&node, cfg.sync_interval)?;
    let stopper = Arc::clone(&node);
    runtime::signals::on_signal(move || stopper.finish(Outcome::Interrupted))
        .map_err(ServerError::Signals)?;
    let outcome = node.wait();
    if let Err(e) = node.write_checkpoint(true) {
        log::warn!("final checkpoint failed: {e}");
    }
    node.transport.shutdown();
    match outcome {
        Outcome::Stopped(CoordinatorStop::AnotherChat) => Err(ServerError::AnotherChat {
            net: Box::new(cfg.common.net),
        }),
        Outcome::Interrupted => Ok(()),
        Outcome::Failed(e) => Err(ServerError::Storage(e)),
    }
}

/// Every `sync_interval`: announce the archive's high-water mark, pull what it lacks.
fn spawn_reconciliation(node: &Arc<Node<Coordinator>>, every: Duration) -> Result<(), ServerError> {
    let node = Arc::clone(node);
    std::thread::Builder::new()
        .name("reconcile".into())
        .spawn(move || {
            let mut next = Instant::now() + every;
            while !node.is_stopped() {
                let now = Instant::now();
                if now >= next {
                    node.with_core(|core, now| core.handle_sync(now));
                    next = now + every;
                }
                std::thread::sleep(next.saturating_duration_since(now));
            }
        })
        .map(|_| ())
        .map_err(|source| ServerError::Spawn {
            thread: "the reconciliation thread",
            source,
        })
}
