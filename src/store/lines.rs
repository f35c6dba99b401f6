//! Reading a JSON Lines file of ours from the start, line by line, with a bound on line
//! length and a torn last line told apart from damage: the replica and the outbox journal
//! both read their files this way.
//!
//! What a line means is the caller's business; no writes here.

use crate::store::error::StorageError;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Longest accepted line content (without its newline). Chat records are far shorter; the cap
/// keeps a damaged file from making the reader allocate without bound.
pub const MAX_RECORD_LINE_BYTES: u64 = 1 << 20;

/// Where a pass of [`scan_lines`] ended.
pub struct LinesEnd {
    /// Length of the complete lines: the end of the last one.
    pub complete_len: u64,
    /// Bytes after it, a last line without its newline (a torn write); 0 if none.
    pub torn_tail: u64,
}

/// Reads a JSON Lines file of ours from the start: calls `on_line(line_number, start,
/// content)` for each complete line (1-based number, byte offset, content without the
/// newline) and stops at a torn last line. A line over [`MAX_RECORD_LINE_BYTES`] is
/// `corrupt(line_number, reason)`, so a damaged file never makes the reader allocate
/// without bound. Shared by the replica and the outbox journal.
pub fn scan_lines(
    path: &Path,
    file: &File,
    corrupt: impl Fn(u64, String) -> StorageError,
    mut on_line: impl FnMut(u64, u64, &[u8]) -> Result<(), StorageError>,
) -> Result<LinesEnd, StorageError> {
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut end = LinesEnd {
        complete_len: 0,
        torn_tail: 0,
    };
    let mut buf = Vec::new();
    for line_number in 1u64.. {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_RECORD_LINE_BYTES + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| StorageError::io(path, e))? as u64;
        match buf.split_last() {
            None => break,
            Some((b'\n', content)) => on_line(line_number, end.complete_len, content)?,
            Some(_) if n > MAX_RECORD_LINE_BYTES => {
                return Err(corrupt(
                    line_number,
                    format!("line longer than {MAX_RECORD_LINE_BYTES} bytes"),
                ));
            }
            // Fewer bytes than the limit and no newline: the read hit the end of the file.
            Some(_) => {
                end.torn_tail = n;
                break;
            }
        }
        end.complete_len += n;
    }
    Ok(end)
}
