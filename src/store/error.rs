//! One error type for every file in the data dir: replica, checkpoint, vote, outbox journal,
//! lock.
//! Every variant names the file, and its `Display` text tells the user what to do.
//!
//! Plain data: no I/O here.

use crate::protocol::types::Seq;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong with the files in the data dir. Every variant names the file,
/// and the `Display` text tells the user what to do.
#[derive(Debug)]
pub enum StorageError {
    /// An operating-system error on `path`.
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A replica line that is complete but invalid (does not parse, breaks the seq order, is
    /// too long or not UTF-8).
    Corrupt {
        /// The replica file.
        path: PathBuf,
        /// 1-based line number of the first bad line.
        line_number: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// [`crate::replica::Replica::append`] was handed records that do not continue the replica; nothing was
    /// written. A caller bug, not a damaged file.
    OutOfOrder {
        /// The replica file.
        path: PathBuf,
        /// The seq that would continue the replica.
        expected: Seq,
        /// The seq that was offered instead.
        found: Seq,
    },
    /// A checkpoint written in a format version this build does not know.
    NewerVersion {
        /// The checkpoint file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// A checkpoint that cannot be read as one (does not parse, too large).
    CorruptCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A vote file that cannot be read as one (does not parse, too large, newer format).
    CorruptVote {
        /// The vote file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An outbox journal line that is complete but invalid.
    CorruptJournal {
        /// The journal file.
        path: PathBuf,
        /// 1-based line number of the first bad line.
        line_number: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The data dir names something that is not a directory (a file, say).
    NotADirectory {
        /// The path given as the data dir.
        path: PathBuf,
    },
    /// Another process holds the lock of this identity.
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The data dir.
        dir: PathBuf,
        /// The identity, as `Identity` displays it (`server`, `client <uuid>`).
        identity: String,
        /// The holder's pid, if its lock file says so.
        holder_pid: Option<u32>,
    },
}

impl StorageError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: io::Error) -> StorageError {
        StorageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The short cause and the file of an I/O error, as a prompt shows it: `no space left on
    /// device writing d/outbox_x.jsonl`. Other errors give their whole message.
    pub fn cause_and_file(&self) -> String {
        match self {
            StorageError::Io { path, source } => {
                format!("{} writing {}", describe_io(source), path.display())
            }
            other => other.to_string(),
        }
    }

    pub(crate) fn corrupt(
        path: &Path,
        line_number: u64,
        reason: impl Into<String>,
    ) -> StorageError {
        StorageError::Corrupt {
            path: path.to_path_buf(),
            line_number,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::NotADirectory { path } => write!(
                f,
                "{} is not a directory: give --data-dir a directory (it is created if missing), \
                 or move the file away",
                path.display()
            ),
            StorageError::Io { path, source } => {
                write!(f, "{}: {source}", path.display())?;
                match io_hint(source) {
                    Some(hint) => write!(f, "; {hint}"),
                    None => Ok(()),
                }
            }
            StorageError::Corrupt {
                path,
                line_number,
                reason,
            } => write!(
                f,
                "replica {} is corrupt at line {line_number} ({reason}): move the file away to \
                 start with an empty history that the group will refill, or cut it before line \
                 {line_number} (head -n {})",
                path.display(),
                line_number.saturating_sub(1)
            ),
            StorageError::OutOfOrder {
                path,
                expected,
                found,
            } => write!(
                f,
                "append to replica {} out of order: expected seq {expected}, got {found}; \
                 nothing was written",
                path.display()
            ),
            StorageError::NewerVersion {
                path,
                found,
                supported,
            } => write!(
                f,
                "checkpoint {} has format version {found}, but this build reads only up to \
                 {supported}: it was written by a newer mcast-chat; upgrade",
                path.display()
            ),
            StorageError::CorruptCheckpoint { path, reason } => write!(
                f,
                "checkpoint {} is corrupt ({reason}): delete it; the replica is the history and \
                 the group refills the rest",
                path.display()
            ),
            StorageError::CorruptVote { path, reason } => write!(
                f,
                "vote file {} is unreadable ({reason}): it holds this node's promises on the \
                 chat's membership, which the other nodes count on; restore it from a backup, \
                 or run this node afresh (a new client identity, or a server with a new \
                 --data-dir)",
                path.display()
            ),
            StorageError::CorruptJournal {
                path,
                line_number,
                reason,
            } => write!(
                f,
                "outbox journal {} is corrupt at line {line_number} ({reason}): it holds lines \
                 typed before a crash that were not yet sent; cut it before line {line_number} \
                 (head -n {}) to keep the ones above, or move it away to drop them all",
                path.display(),
                line_number.saturating_sub(1)
            ),
            StorageError::Locked {
                path,
                dir,
                identity,
                holder_pid,
            } => {
                let holder = match holder_pid {
                    Some(pid) => format!("another process (pid {pid})"),
                    None => "another process".to_string(),
                };
                write!(
                    f,
                    "{holder} is using identity {identity} in {} (lock file {} is held); stop \
                     it, or use another --data-dir",
                    dir.display(),
                    path.display()
                )
            }
        }
    }
}

/// The OS errors a full or failing disk gives, as the prompt words them; others as the OS
/// does.
pub fn describe_io(e: &io::Error) -> String {
    match disk_error(e) {
        Some(DiskError::Full) => "no space left on device".into(),
        Some(DiskError::Quota) => "disk quota exceeded".into(),
        Some(DiskError::ReadOnly) => "read-only file system".into(),
        Some(DiskError::Failing) => "input/output error".into(),
        None => e.to_string(),
    }
}

/// What to do about a full, read-only or failing disk.
fn io_hint(e: &io::Error) -> Option<&'static str> {
    Some(match disk_error(e)? {
        DiskError::Full | DiskError::Quota => {
            "free some space in the data dir, or move it (--data-dir) to a disk with room"
        }
        DiskError::ReadOnly => {
            "the data dir is on a read-only file system: remount it read-write, or use \
             another --data-dir"
        }
        DiskError::Failing => "the disk reported an I/O error: check it (dmesg) before going on",
    })
}

/// The disk errors that get their own words and hint.
enum DiskError {
    Full,
    Quota,
    ReadOnly,
    Failing,
}

fn disk_error(e: &io::Error) -> Option<DiskError> {
    /// Linux's EIO, which has no `ErrorKind` of its own.
    const EIO: i32 = 5;
    match e.kind() {
        io::ErrorKind::StorageFull => Some(DiskError::Full),
        io::ErrorKind::QuotaExceeded => Some(DiskError::Quota),
        io::ErrorKind::ReadOnlyFilesystem => Some(DiskError::ReadOnly),
        _ if e.raw_os_error() == Some(EIO) => Some(DiskError::Failing),
        _ => None,
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_errors_name_the_cause_the_file_and_what_to_do() {
        let path = Path::new("d/outbox_x.jsonl");
        let cases = [
            (28, "no space left on device", "free some space"),
            (122, "disk quota exceeded", "free some space"),
            (30, "read-only file system", "remount it read-write"),
            (5, "input/output error", "check it (dmesg)"),
        ];
        for (errno, cause, hint) in cases {
            let e = StorageError::io(path, io::Error::from_raw_os_error(errno));
            assert_eq!(
                e.cause_and_file(),
                format!("{cause} writing d/outbox_x.jsonl")
            );
            let text = e.to_string();
            assert!(text.starts_with("d/outbox_x.jsonl: "), "{text}");
            assert!(text.contains(hint), "{text}");
        }
        let other = StorageError::io(path, io::Error::from_raw_os_error(13));
        assert!(!other.to_string().contains(';'), "{other}");
    }
}
