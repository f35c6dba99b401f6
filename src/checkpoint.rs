//! The checkpoint of one identity in the data dir (DESIGN.md §6).
//!
//! A checkpoint is one JSON document with a format version: who the node is, the view it last
//! knew, how far it delivered, and its outbox of accepted but undelivered lines (G2). It is
//! written atomically (temp file, rename), so after `kill -9` at any instant the file holds
//! either the old or the new snapshot, never a mix (G5); [`sync`] then makes it durable
//! against a crash of the machine (fsync the file and the directory).
//!
//! No protocol logic here, and no decisions about when to checkpoint: callers decide that.
//! Errors are [`StorageError`].

use crate::protocol::types::{NodeId, Pending, Seq, ServerId, View};
use crate::store::atomic::{parent_dir, sync_dir, temp_path, write_file};
use crate::store::error::StorageError;
use crate::store::journal::JournalMark;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

/// The checkpoint format this build writes and the newest it reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Largest checkpoint file [`load`] reads. An outbox of this size is far beyond any real use;
/// the cap keeps a damaged or foreign file from making the reader allocate without bound.
pub const MAX_CHECKPOINT_BYTES: u64 = 64 << 20;

/// A node's durable state apart from its replica.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version; [`CHECKPOINT_VERSION`] when written by this build.
    pub version: u32,
    /// The node's identity, stable across `--resume`.
    pub node: NodeId,
    /// The node's display name.
    pub name: String,
    /// The epoch and members the node last knew.
    pub view: View,
    /// Highest seq delivered; equals the replica's last seq when written.
    pub delivered: Seq,
    /// Replica length when written, to tell a replica that grew since from one that was cut.
    pub replica_len_bytes: u64,
    /// Accepted lines not yet delivered, in typing order (G2).
    pub outbox: Vec<Pending>,
    /// How much of the outbox journal `outbox` covers; lines appended after it are only in
    /// the journal. Absent for the server, which has no outbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalMark>,
    /// The server's random id (`CoordinatorConfig::server_id`), kept across restarts so that
    /// its own earlier views, delayed or replayed, never count as another server's. Absent
    /// for a client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<ServerId>,
    /// Wall clock when written, ms since the Unix epoch.
    pub saved_at_ms: u64,
}

/// Just enough of a checkpoint to read its version before trusting the rest of its shape.
#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
}

/// Writes `cp` to `path` atomically and durably: [`save_unsynced`], then [`sync`]. The
/// runtime calls the two halves itself, so that the fsync happens outside its writer lock.
pub fn save(path: &Path, cp: &Checkpoint) -> Result<(), StorageError> {
    save_unsynced(path, cp)?;
    sync(path)
}

/// Makes the checkpoint at `path` durable (fsync the file, then its directory): after
/// [`save_unsynced`], and outside any lock, since it syncs whatever version is there, at
/// least as new as the one just written.
pub fn sync(path: &Path) -> Result<(), StorageError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| StorageError::io(path, e))?;
    sync_dir(parent_dir(path))
}

/// Writes `cp` to a temp file in the same dir and renames it over `path`: atomic against a
/// crash of the process (`kill -9`), which leaves the page cache to the kernel, not against a
/// crash of the machine until [`sync`] has run.
pub fn save_unsynced(path: &Path, cp: &Checkpoint) -> Result<(), StorageError> {
    let tmp = temp_path(path)?;
    let mut bytes =
        serde_json::to_vec_pretty(cp).map_err(|e| StorageError::io(path, io::Error::other(e)))?;
    bytes.push(b'\n');
    if let Err(e) = write_file(&tmp, &bytes) {
        // Best effort: a leftover temp file is harmless, it is overwritten next time.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path).map_err(|e| StorageError::io(path, e))
}

/// Reads the checkpoint at `path`; `Ok(None)` when the file does not exist (a missing
/// checkpoint next to a replica is a valid start).
///
/// A newer format version is [`StorageError::NewerVersion`]; content that does not parse, or a
/// file over [`MAX_CHECKPOINT_BYTES`], is [`StorageError::CorruptCheckpoint`].
pub fn load(path: &Path) -> Result<Option<Checkpoint>, StorageError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(path, e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_CHECKPOINT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| StorageError::io(path, e))?;
    if bytes.len() as u64 > MAX_CHECKPOINT_BYTES {
        let reason = format!("larger than {MAX_CHECKPOINT_BYTES} bytes");
        return Err(corrupt(path, reason));
    }
    parse(path, &bytes).map(Some)
}

/// Checks the version first, so that a newer format is reported as such rather than as
/// corruption.
fn parse(path: &Path, bytes: &[u8]) -> Result<Checkpoint, StorageError> {
    let probe: VersionProbe = serde_json::from_slice(bytes)
        .map_err(|e| corrupt(path, format!("not a checkpoint: {e}")))?;
    if probe.version > CHECKPOINT_VERSION {
        return Err(StorageError::NewerVersion {
            path: path.to_path_buf(),
            found: probe.version,
            supported: CHECKPOINT_VERSION,
        });
    }
    if probe.version == 0 {
        return Err(corrupt(path, "format version 0 does not exist".to_string()));
    }
    serde_json::from_slice(bytes).map_err(|e| corrupt(path, format!("not a checkpoint: {e}")))
}

fn corrupt(path: &Path, reason: String) -> StorageError {
    StorageError::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::{Epoch, Member};
    use crate::store::{find_client_identities, Identity};
    use uuid::Uuid;

    fn sample(delivered: u64) -> Checkpoint {
        let node = NodeId(Uuid::from_u128(0xabc));
        Checkpoint {
            version: CHECKPOINT_VERSION,
            node,
            name: "alice".into(),
            view: View {
                epoch: Epoch(3),
                members: vec![Member {
                    id: node,
                    name: "alice".into(),
                }],
                servers: vec![ServerId(5)],
            },
            delivered: Seq(delivered),
            replica_len_bytes: 1234,
            outbox: vec![
                Pending {
                    id: Uuid::from_u128(1),
                    text: "first".into(),
                    sent_at_ms: 10,
                },
                Pending {
                    id: Uuid::from_u128(2),
                    text: "second \"quoted\"".into(),
                    sent_at_ms: 11,
                },
            ],
            journal: Some(JournalMark {
                generation: 2,
                bytes: 345,
            }),
            server_id: None,
            saved_at_ms: 1_700_000_000_000,
        }
    }

    fn expect_corrupt(path: &Path) -> String {
        let err = load(path).unwrap_err();
        assert!(
            matches!(&err, StorageError::CorruptCheckpoint { path: p, .. } if p == path),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("delete it"), "{msg}");
        msg
    }

    #[test]
    fn g5_save_load_round_trip_and_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = Identity::Server.checkpoint_path(dir.path());
        save(&path, &sample(5)).unwrap();
        assert_eq!(load(&path).unwrap(), Some(sample(5)));
        save(&path, &sample(6)).unwrap();
        assert_eq!(load(&path).unwrap(), Some(sample(6)));
        // jq-readable: a plain JSON document.
        let value: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(value["version"], 1);
        // No temp file left behind.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_save_on_a_full_disk_fails_and_leaves_the_previous_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint_x.json");
        save(&path, &sample(4)).unwrap();
        let before = fs::read(&path).unwrap();
        // Every write to /dev/full fails with ENOSPC, as on a full disk.
        let tmp = temp_path(&path).unwrap();
        std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
        let err = save(&path, &sample(5)).unwrap_err();
        assert!(
            err.cause_and_file()
                .starts_with("no space left on device writing"),
            "{err}"
        );
        assert!(err.to_string().contains("free some space"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), before);
        assert_eq!(load(&path).unwrap(), Some(sample(4)));
        assert!(!tmp.exists(), "the temp file is removed");
        save(&path, &sample(6)).unwrap();
        assert_eq!(load(&path).unwrap(), Some(sample(6)));
    }

    #[test]
    fn missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            load(&dir.path().join("checkpoint_server.json")).unwrap(),
            None
        );
    }

    #[test]
    fn g5_leftover_temp_file_from_a_crashed_save_is_harmless() {
        let dir = tempfile::tempdir().unwrap();
        let path = Identity::Client(Uuid::from_u128(5)).checkpoint_path(dir.path());
        save(&path, &sample(1)).unwrap();
        // A crash mid-save: the temp file holds half of the new snapshot, the target the old.
        let tmp = temp_path(&path).unwrap();
        let new = serde_json::to_vec_pretty(&sample(2)).unwrap();
        fs::write(&tmp, &new[..new.len() / 2]).unwrap();
        assert_eq!(load(&path).unwrap(), Some(sample(1)));
        assert_eq!(
            find_client_identities(dir.path()).unwrap(),
            vec![Uuid::from_u128(5)]
        );
        // The next save overwrites the leftover.
        save(&path, &sample(2)).unwrap();
        assert_eq!(load(&path).unwrap(), Some(sample(2)));
        assert!(!tmp.exists());
    }

    #[test]
    fn g6_newer_version_names_the_file_and_says_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint_server.json");
        // A newer format may change anything but the version field.
        fs::write(&path, r#"{"version": 2, "totally": "different"}"#).unwrap();
        let err = load(&path).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::NewerVersion {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("upgrade"), "{msg}");
    }

    #[test]
    fn g6_garbage_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint_server.json");
        fs::write(&path, [0xff, 0x00, 0x13, b'{']).unwrap();
        expect_corrupt(&path);
        fs::write(&path, "").unwrap();
        expect_corrupt(&path);
        fs::write(&path, r#"{"version": 1, "node": "not a uuid"}"#).unwrap();
        expect_corrupt(&path);
        fs::write(&path, r#"{"version": 0}"#).unwrap();
        expect_corrupt(&path);
        let mut truncated = serde_json::to_vec(&sample(1)).unwrap();
        truncated.truncate(truncated.len() - 3);
        fs::write(&path, truncated).unwrap();
        expect_corrupt(&path);
    }

    #[test]
    fn g6_oversized_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint_server.json");
        let file = File::create(&path).unwrap();
        file.set_len(MAX_CHECKPOINT_BYTES + 1).unwrap(); // sparse, cheap
        let msg = expect_corrupt(&path);
        assert!(msg.contains("larger than"), "{msg}");
    }
}
