//! Opening a node's files at start-up: the identity's lock, the replica (repaired if a crash
//! tore its last line) and the checkpoint.
//!
//! No protocol logic here.

use super::backlog::Backlog;
use crate::checkpoint::{self, Checkpoint};
use crate::replica::Replica;
use crate::store::atomic::sync_dir;
use crate::store::lock::DirLock;
use crate::store::{Durability, Identity, StorageError};
use std::fs;
use std::path::Path;

/// The node's files that stay open while it runs: the replica (appended by the io thread
/// only) and the identity's lock.
pub struct Storage {
    /// The replica.
    pub replica: Replica,
    /// Records delivered but not in the replica yet (the server, while its disk fails).
    pub held: Backlog,
    /// Held for the life of the node so no other process shares this identity.
    _lock: DirLock,
}

/// Opens the node's files: takes the identity's lock, opens (and if need be repairs) the
/// replica, and loads the checkpoint if there is one.
pub fn open_storage(
    data_dir: &Path,
    identity: Identity,
) -> Result<(Storage, Option<Checkpoint>), StorageError> {
    if data_dir.exists() && !data_dir.is_dir() {
        return Err(StorageError::NotADirectory {
            path: data_dir.to_path_buf(),
        });
    }
    fs::create_dir_all(data_dir).map_err(|e| StorageError::io(data_dir, e))?;
    let lock = DirLock::acquire(data_dir, identity)?;
    let (replica, report) = Replica::open(&identity.replica_path(data_dir))?;
    if report.torn_tail_bytes_cut > 0 {
        log::warn!(
            "{}: cut a torn last line ({} bytes) left by a crash; kept {} records",
            replica.path().display(),
            report.torn_tail_bytes_cut,
            report.records
        );
    }
    let cp = checkpoint::load(&identity.checkpoint_path(data_dir))?;
    Ok((
        Storage {
            replica,
            held: Backlog::default(),
            _lock: lock,
        },
        cp,
    ))
}

/// With `--durability fsync`, syncs the data dir once its files exist, so that they (and not
/// only their contents) survive a power loss.
pub fn sync_data_dir(data_dir: &Path, durability: Durability) -> Result<(), StorageError> {
    match durability.syncs() {
        true => sync_dir(data_dir),
        false => Ok(()),
    }
}
