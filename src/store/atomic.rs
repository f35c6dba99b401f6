//! Whole-file replacement that a crash cannot tear: write a temp file beside the target, then
//! rename it over; and the fsyncs that make such a rename survive a power loss.
//!
//! Mechanics only: what goes into the files is the callers' business.

use crate::store::error::StorageError;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// `.<name>.tmp` next to `path`: same directory, so the rename is atomic, and a leading dot
/// and suffix so no reader mistakes it for the file it replaces.
pub fn temp_path(path: &Path) -> Result<PathBuf, StorageError> {
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

/// Creates or truncates `path` and writes `bytes` (no fsync: see [`sync_dir`] and the
/// callers' own file syncs).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| StorageError::io(path, e))?;
    file.write_all(bytes).map_err(|e| StorageError::io(path, e))
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Fsyncs a directory so that a rename in it survives a power loss.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}
