//! Checkpoints, file names and the lock file of one identity in the data dir (DESIGN.md §6).
//!
//! A checkpoint is one JSON document with a format version: who the node is, the view it last
//! knew, how far it delivered, and its outbox of accepted but undelivered lines (G2). It is
//! written atomically (temp file, rename), so after `kill -9` at any instant the file holds
//! either the old or the new snapshot, never a mix (G5); [`sync`] then makes it durable
//! against a crash of the machine (fsync the file and the directory).
//!
//! [`DirLock`] keeps two processes from using the same identity's files at once.
//!
//! No protocol logic here, and no decisions about when to checkpoint: callers decide that.
//! Errors are [`StorageError`] from `replica.rs`.

use crate::journal::JournalMark;
use crate::replica::StorageError;
use crate::types::{NodeId, Pending, Seq, View};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use uuid::Uuid;

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
    pub server_id: Option<u64>,
    /// Wall clock when written, ms since the Unix epoch.
    pub saved_at_ms: u64,
}

/// Just enough of a checkpoint to read its version before trusting the rest of its shape.
#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
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

/// Client uuids that have a replica or a checkpoint in `dir`, sorted and without duplicates.
/// A missing `dir` has none.
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

/// An exclusive lock on one identity's lock file, held while the value lives.
///
/// Uses `flock`-style locks (`File::try_lock`): the kernel releases them when the process
/// dies, even by `kill -9`, so a stale lock file never blocks a restart.
#[derive(Debug)]
pub struct DirLock {
    /// The locked file; dropping it releases the lock.
    _file: File,
    /// Where the lock file is.
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of `who` in `dir` without waiting. If another process (or another
    /// `DirLock` in this process) holds it: [`StorageError::Locked`]. `dir` must exist.
    pub fn acquire(dir: &Path, who: Identity) -> Result<DirLock, StorageError> {
        let path = who.lock_path(dir);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        match try_lock(&file) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StorageError::Locked {
                    holder_pid: read_pid(&mut file),
                    path,
                    dir: dir.to_path_buf(),
                    identity: who.to_string(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(StorageError::io(&path, e)),
        }
        write_pid(&mut file, &path);
        Ok(DirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn try_lock(file: &File) -> Result<(), TryLockError> {
    file.try_lock()
}

/// Records our pid in the lock file, only so that a second process can name the holder.
fn write_pid(file: &mut File, path: &Path) {
    let result = file
        .set_len(0)
        .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()));
    if let Err(e) = result {
        log::debug!("could not write pid into {}: {e}", path.display());
    }
}

/// The holder's pid from the lock file, if it is there and readable.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn corrupt(path: &Path, reason: String) -> StorageError {
    StorageError::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason,
    }
}

/// `.<name>.tmp` next to `path`: same directory, so the rename is atomic, and a leading dot
/// and suffix so no reader mistakes it for a checkpoint.
pub(crate) fn temp_path(path: &Path) -> Result<PathBuf, StorageError> {
    let name = path.file_name().ok_or_else(|| {
        StorageError::io(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    Ok(path.with_file_name(tmp_name))
}

/// Creates or truncates `path` and writes `bytes` (no fsync: see [`sync`]).
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| StorageError::io(path, e))?;
    file.write_all(bytes).map_err(|e| StorageError::io(path, e))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Fsyncs a directory so that a rename in it survives a power loss.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Epoch, Member};

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

    #[test]
    fn dir_lock_is_exclusive_within_one_process_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let who = Identity::Client(Uuid::from_u128(42));
        let first = DirLock::acquire(dir.path(), who).unwrap();
        assert_eq!(first.path(), who.lock_path(dir.path()));

        // Two opens are two open file descriptions, so flock makes them conflict even here.
        let err = DirLock::acquire(dir.path(), who).unwrap_err();
        match &err {
            StorageError::Locked {
                path, holder_pid, ..
            } => {
                assert_eq!(path, &who.lock_path(dir.path()));
                assert_eq!(*holder_pid, Some(std::process::id()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(&who.to_string()), "{msg}");
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(msg.contains("--data-dir"), "{msg}");

        // Other identities are independent.
        let server = DirLock::acquire(dir.path(), Identity::Server).unwrap();

        drop(first);
        let again = DirLock::acquire(dir.path(), who).unwrap();
        drop(again);
        drop(server);
    }

    #[test]
    fn dir_lock_in_a_missing_dir_is_an_io_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = DirLock::acquire(&missing, Identity::Server).unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
