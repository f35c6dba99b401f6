//! The files of a node apart from the replica and checkpoint formats: their names
//! ([`Identity`]), the lock that keeps two processes off one identity, the vote file, the
//! client's outbox journal, the JSON Lines reader, crash-safe whole-file replacement and space reservation that
//! the formats share, and [`StorageError`], the one error type of every file in the data dir.
//!
//! No protocol logic here.

pub mod atomic;
pub mod error;
pub mod journal;
pub mod lines;
pub mod lock;
pub mod reserve;
pub mod vote_file;

pub use error::StorageError;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// What a node's writes survive (`--durability`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Appends reach the page cache, which survives `kill -9` but not a power loss; the
    /// periodic checkpoint is fsynced. As fast as the disk's cache.
    #[default]
    PageCache,
    /// A typed line counts as accepted once its journal append is fdatasynced, and each
    /// batch of deliveries is fdatasynced before any datagram that follows it goes out; every
    /// checkpoint is fsynced before the journal drops what it covers. Survives a power loss.
    Fsync,
}

impl Durability {
    /// Whether writes are synced as they happen.
    pub fn syncs(self) -> bool {
        self == Durability::Fsync
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Durability::PageCache => "page-cache",
            Durability::Fsync => "fsync",
        })
    }
}

/// Which node's files: the server or a client uuid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// The server; one per data dir.
    Server,
    /// A client, by its uuid.
    Client(Uuid),
}

impl Identity {
    /// `replica_server.jsonl` or `replica_<uuid>.jsonl` in `dir`.
    pub fn replica_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("replica_{}.jsonl", self.file_tag()))
    }

    /// `checkpoint_server.json` or `checkpoint_<uuid>.json` in `dir`.
    pub fn checkpoint_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("checkpoint_{}.json", self.file_tag()))
    }

    /// `outbox_server.jsonl` or `outbox_<uuid>.jsonl` in `dir` (only clients have one).
    pub fn journal_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("outbox_{}.jsonl", self.file_tag()))
    }

    /// `vote_server.json` or `vote_<uuid>.json` in `dir`.
    pub fn vote_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("vote_{}.json", self.file_tag()))
    }

    /// `lock_server` or `lock_<uuid>` in `dir`.
    pub fn lock_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("lock_{}", self.file_tag()))
    }

    /// `server`, or the uuid hyphenated in lower case.
    fn file_tag(&self) -> String {
        match self {
            Identity::Server => "server".to_string(),
            Identity::Client(id) => id.hyphenated().to_string(),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Server => write!(f, "server"),
            Identity::Client(id) => write!(f, "client {}", id.hyphenated()),
        }
    }
}

/// Client uuids that have a replica or a checkpoint in `dir`, sorted and without duplicates.
/// A missing `dir` has none.
/// Removes every file of client identity `uuid` from `dir` (replica, checkpoint, outbox
/// journal, lock); a file already gone is no error.
pub fn remove_client_files(dir: &Path, uuid: Uuid) -> Result<(), StorageError> {
    let id = Identity::Client(uuid);
    for path in [
        id.replica_path(dir),
        id.checkpoint_path(dir),
        id.journal_path(dir),
        id.lock_path(dir),
    ] {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(StorageError::io(&path, e))
            }
            _ => {}
        }
    }
    Ok(())
}

pub fn find_client_identities(dir: &Path) -> Result<Vec<Uuid>, StorageError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io(dir, e)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        if let Some(id) = entry.file_name().to_str().and_then(client_id_of_file) {
            ids.push(id);
        }
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// The client uuid in a replica or checkpoint file name, if it is one. Only the exact names
/// [`Identity`] produces count, so temp files and foreign files are ignored.
fn client_id_of_file(name: &str) -> Option<Uuid> {
    let tag = name
        .strip_prefix("replica_")
        .and_then(|rest| rest.strip_suffix(".jsonl"))
        .or_else(|| {
            name.strip_prefix("checkpoint_")
                .and_then(|rest| rest.strip_suffix(".json"))
        })?;
    let id = Uuid::parse_str(tag).ok()?;
    (id.hyphenated().to_string() == tag).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_the_design() {
        let dir = Path::new("/data");
        let id = Uuid::parse_str("6F9619FF-8B86-D011-B42D-00CF4FC964FF").unwrap();
        let client = Identity::Client(id);
        let tag = "6f9619ff-8b86-d011-b42d-00cf4fc964ff";
        assert_eq!(
            Identity::Server.replica_path(dir),
            dir.join("replica_server.jsonl")
        );
        assert_eq!(
            Identity::Server.checkpoint_path(dir),
            dir.join("checkpoint_server.json")
        );
        assert_eq!(Identity::Server.lock_path(dir), dir.join("lock_server"));
        assert_eq!(
            client.replica_path(dir),
            dir.join(format!("replica_{tag}.jsonl"))
        );
        assert_eq!(
            client.checkpoint_path(dir),
            dir.join(format!("checkpoint_{tag}.json"))
        );
        assert_eq!(client.lock_path(dir), dir.join(format!("lock_{tag}")));
    }

    #[test]
    fn find_client_identities_lists_replicas_and_checkpoints_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (a, b, c) = (Uuid::from_u128(3), Uuid::from_u128(1), Uuid::from_u128(2));
        fs::write(Identity::Client(a).replica_path(d), "").unwrap();
        fs::write(Identity::Client(a).checkpoint_path(d), "{}").unwrap();
        fs::write(Identity::Client(b).checkpoint_path(d), "{}").unwrap();
        fs::write(Identity::Client(c).replica_path(d), "").unwrap();
        // Not identities: the server, a lock alone, temp files, odd names.
        let lonely = Uuid::from_u128(9);
        fs::write(Identity::Client(lonely).lock_path(d), "").unwrap();
        fs::write(Identity::Server.replica_path(d), "").unwrap();
        fs::write(d.join(format!(".checkpoint_{lonely}.json.tmp")), "").unwrap();
        fs::write(d.join(format!("replica_{}.jsonl", lonely.simple())), "").unwrap();
        fs::write(d.join("replica_nope.jsonl"), "").unwrap();
        fs::write(d.join(format!("replica_{lonely}.jsonl.bak")), "").unwrap();

        assert_eq!(find_client_identities(d).unwrap(), vec![b, c, a]);
        assert!(find_client_identities(&d.join("absent"))
            .unwrap()
            .is_empty());
    }
}
