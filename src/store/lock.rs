//! The lock file of one identity: two processes never share a replica.
//!
//! No other file is touched here.

use crate::store::error::StorageError;
use crate::store::Identity;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

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

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

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
