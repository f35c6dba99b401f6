//! The server program: restores the archive and view from the data dir, coordinates the ring,
//! archives every message, reconciles every `--sync-interval`, and stops on SIGINT/SIGTERM
//! after a final checkpoint.
//!
//! Wiring only: the protocol is in [`crate::protocol::coordinator`], the threads in [`crate::runtime`].

use crate::app::cli::ServerConfig;
use crate::net::seal::{Key, KeyError};
use crate::net::{NetError, Transport};
use crate::protocol::coordinator::{Coordinator, CoordinatorConfig};
use crate::protocol::events::CoordinatorStop;
use crate::protocol::types::{NodeId, ServerId};
use crate::runtime::{self, lock, Node, NodeInfo, Outcome};
use crate::store::{Identity, StorageError};
use crate::ui::display::Printer;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why the server could not run.
#[derive(Debug)]
pub enum ServerError {
    /// A file in the data dir could not be used.
    Storage(StorageError),
    /// The multicast socket could not be set up.
    Net(NetError),
    /// The `--key-file` cannot be used.
    Key(KeyError),
    /// Something failed while running.
    Runtime(String),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Storage(e) => write!(f, "{e}"),
            ServerError::Net(e) => write!(f, "{e}"),
            ServerError::Key(e) => write!(f, "{e}"),
            ServerError::Runtime(why) => write!(f, "{why}"),
        }
    }
}

/// The variants print their cause themselves; `source` would repeat it.
impl std::error::Error for ServerError {}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(cfg: ServerConfig) -> Result<(), ServerError> {
    let key = Key::load(cfg.common.key_file.as_deref()).map_err(ServerError::Key)?;
    let dir = cfg.common.data_dir.clone();
    let (storage, cp) =
        runtime::storage::open_storage(&dir, Identity::Server).map_err(ServerError::Storage)?;
    // Kept across restarts: this server's own earlier views never look like a rival's.
    let server_id = cp
        .as_ref()
        .and_then(|cp| cp.server_id)
        .unwrap_or_else(ServerId::random);
    let view = cp.map(|cp| cp.view).unwrap_or_default();
    let archived = storage.replica.last_seq();
    let transport = Transport::open(&cfg.common.net).map_err(ServerError::Net)?;
    let mut core_cfg = CoordinatorConfig::new(cfg.token_timeout);
    core_cfg.server_id = server_id;
    let core = Coordinator::new(core_cfg, view, archived, Instant::now());
    let info = NodeInfo {
        identity: Identity::Server,
        id: NodeId::SERVER,
        name: "server".into(),
        data_dir: dir.clone(),
        checkpoint_interval: cfg.common.checkpoint_interval,
        key,
        server_id: Some(server_id),
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
            None => "no key: anyone who reaches the group can read and post".to_string(),
        }
    ));
    node.spawn_workers()
        .map_err(|e| ServerError::Runtime(format!("cannot start threads: {e}")))?;
    node.request_checkpoint(); // keeps the server id from the first moment
    spawn_reconciliation(&node, cfg.sync_interval)?;
    let stopper = Arc::clone(&node);
    runtime::signals::on_signal(move || stopper.finish(Outcome::Interrupted))
        .map_err(|e| ServerError::Runtime(format!("cannot handle signals: {e}")))?;
    let outcome = node.wait();
    if let Err(e) = node.write_checkpoint(true) {
        log::warn!("final checkpoint failed: {e}");
    }
    node.transport.shutdown();
    match outcome {
        Outcome::Stopped(CoordinatorStop::AnotherServer) => Err(ServerError::Runtime(format!(
            "another server already coordinates {}; stop it, or use another --port or --group",
            cfg.common.net
        ))),
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
        .map_err(|e| ServerError::Runtime(format!("cannot start the reconciliation thread: {e}")))
}
