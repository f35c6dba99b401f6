//! The outbox journal of a client: `outbox_<uuid>.jsonl`, where a typed line is put on disk
//! before the client treats it as accepted (G2).
//!
//! Accepting a line costs one append here instead of rewriting the checkpoint (a temp file
//! and a rename, which a busy file system can hold up for tens of milliseconds). By default,
//! like the replica, the journal is not fsynced on append: a `kill -9` does not lose what
//! reached the page cache, and the periodic checkpoint, which does fsync, bounds what a power
//! loss costs. With [`Journal::sync_appends`] (`--durability fsync`) each append is synced
//! before it returns, so an accepted line survives a power loss too.
//!
//! The first line is a header, `{"journal":"outbox","generation":G}`; every other line is one
//! [`Pending`], in typing order. A checkpoint records the [`JournalMark`] (generation and
//! length) its outbox covers. Once a checkpoint is written and nothing was appended since,
//! the journal starts over empty in the next generation; past [`COMPACT_BYTES`] (an endless
//! stream of input leaves no quiet moment) it starts over holding just the lines that
//! checkpoint lacks. At start-up the lines past the mark
//! of the last checkpoint are the ones it does not hold; a torn last line (a crash inside an
//! append) is cut, any other damage is [`StorageError::CorruptJournal`].
//!
//! This module owns the file format only: no protocol logic, no decision about when to
//! append or checkpoint.

use crate::protocol::types::Pending;
use crate::store::atomic::{parent_dir, sync_dir, temp_path, write_file};
use crate::store::lines::scan_lines;
use crate::store::StorageError;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Journal length past which a checkpoint lets it start over even though lines were appended
/// after the checkpoint was taken (they are copied into the new generation).
pub const COMPACT_BYTES: u64 = 1 << 20;

/// How far a checkpoint's outbox covers the journal: lines of `generation` that start before
/// byte `bytes` are in that checkpoint's outbox or were already delivered when it was taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalMark {
    /// The journal generation; it grows by one each time the journal starts over.
    pub generation: u64,
    /// Length of the journal, header included, when the checkpoint was taken.
    pub bytes: u64,
}

/// The first line of a journal file.
#[derive(Serialize, Deserialize)]
struct Header {
    /// Always `"outbox"`: tells the file apart from any other JSON Lines file.
    journal: String,
    generation: u64,
}

/// An open outbox journal.
///
/// Invariant: the file is exactly `len` bytes: empty, or the header of `generation` and then
/// complete lines.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// Opened in append mode.
    file: File,
    generation: u64,
    len: u64,
    /// Whether any line follows the header.
    has_lines: bool,
    /// Set when a failed append could not be cut off again: the file may hold part of a
    /// line past `len`, so the next append first cuts it, or fails.
    dirty: bool,
    /// `--durability fsync`: an append counts only once it is on the disk (fdatasync).
    sync_appends: bool,
}

/// What [`Journal::open`] found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Lines the checkpoint's mark does not cover, in typing order.
    pub lines: Vec<Pending>,
    /// Bytes of a torn last line that were cut; 0 if the file ended cleanly.
    pub torn_tail_bytes_cut: u64,
}

impl Journal {
    /// Opens (creating if missing) the journal at `path`, and returns the lines that the
    /// checkpoint with mark `covered` does not hold (all of them without a checkpoint).
    pub fn open(
        path: &Path,
        covered: Option<JournalMark>,
    ) -> Result<(Journal, Recovered), StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| StorageError::io(path, e))?;
        let scan = scan(path, &file)?;
        let mut recovered = Recovered {
            lines: Vec::new(),
            torn_tail_bytes_cut: scan.torn_tail,
        };
        let Some(generation) = scan.generation else {
            // Empty, or cut short before its header was written: a new generation that no
            // checkpoint covers. The header goes out with the first append.
            file.set_len(0).map_err(|e| StorageError::io(path, e))?;
            let journal = Journal {
                path: path.to_path_buf(),
                file,
                generation: covered.map_or(0, |m| m.generation + 1),
                len: 0,
                has_lines: false,
                dirty: false,
                sync_appends: false,
            };
            return Ok((journal, recovered));
        };
        if scan.torn_tail > 0 {
            log::warn!(
                "outbox journal {}: cutting a torn last line of {} bytes (an append \
                 interrupted by a crash; that line was never accepted)",
                path.display(),
                scan.torn_tail
            );
            file.set_len(scan.complete_len)
                .map_err(|e| StorageError::io(path, e))?;
        }
        let skip_below = match covered {
            Some(mark) if mark.generation == generation => mark.bytes,
            _ => 0,
        };
        let has_lines = !scan.lines.is_empty();
        recovered.lines = scan
            .lines
            .into_iter()
            .filter(|(start, _)| *start >= skip_below)
            .map(|(_, line)| line)
            .collect();
        let journal = Journal {
            path: path.to_path_buf(),
            file,
            generation,
            len: scan.complete_len,
            has_lines,
            dirty: false,
            sync_appends: false,
        };
        Ok((journal, recovered))
    }

    /// Where the journal ends now: what a checkpoint taken now covers.
    pub fn mark(&self) -> JournalMark {
        JournalMark {
            generation: self.generation,
            bytes: self.len,
        }
    }

    /// With `true`, every append is fdatasynced before it returns (`--durability fsync`):
    /// a line then survives a power loss once it counts as accepted.
    pub fn sync_appends(&mut self, sync: bool) {
        self.sync_appends = sync;
    }

    /// Appends `lines` in one write (after the header, if the file is empty), and with
    /// [`Journal::sync_appends`] syncs it. On error nothing counts as written: a partial write
    /// is cut off again (if that fails too, the next append retries the cut first), so no
    /// append ever follows half a line.
    pub fn append(&mut self, lines: &[Pending]) -> Result<(), StorageError> {
        if self.dirty {
            self.file
                .set_len(self.len)
                .map_err(|e| StorageError::io(&self.path, e))?;
            self.dirty = false;
        }
        let mut bytes = if self.len == 0 {
            self.header_line(self.generation)?
        } else {
            Vec::with_capacity(lines.len() * 128)
        };
        for line in lines {
            self.encode_line(&mut bytes, line)?;
        }
        let written = self
            .file
            .write_all(&bytes)
            .and_then(|()| match self.sync_appends {
                true => self.file.sync_data(),
                false => Ok(()),
            });
        if let Err(e) = written {
            if let Err(cut) = self.file.set_len(self.len) {
                log::error!(
                    "outbox journal {}: could not cut a failed append back to {} bytes \
                     (retried before the next append): {cut}",
                    self.path.display(),
                    self.len
                );
                self.dirty = true;
            }
            return Err(StorageError::io(&self.path, e));
        }
        self.len += bytes.len() as u64;
        self.has_lines |= !lines.is_empty();
        Ok(())
    }

    /// After a checkpoint with `mark` is written, drops the lines it covers, so the journal
    /// does not grow without end. Returns whether the journal started over:
    /// - nothing appended since the mark: it starts over empty, in the next generation (a
    ///   crash right after leaves an empty file, which [`Journal::open`] reads as that same
    ///   generation);
    /// - lines appended since, and the journal is past [`COMPACT_BYTES`]: it starts over in
    ///   the next generation holding just those lines, written to a temp file renamed over it
    ///   (a crash leaves the old journal or the new one, and either recovers every line).
    pub fn start_over(&mut self, mark: JournalMark) -> Result<bool, StorageError> {
        if mark.generation != self.generation || !self.has_lines || mark.bytes > self.len {
            return Ok(false);
        }
        if mark.bytes == self.len {
            self.file
                .set_len(0)
                .map_err(|e| StorageError::io(&self.path, e))?;
            self.generation += 1;
            self.len = 0;
            self.has_lines = false;
            self.dirty = false;
            return Ok(true);
        }
        if self.len < COMPACT_BYTES {
            return Ok(false);
        }
        self.keep_only_past(mark.bytes)?;
        Ok(true)
    }

    /// Rewrites the journal as the next generation holding the lines from byte `from` on.
    fn keep_only_past(&mut self, from: u64) -> Result<(), StorageError> {
        let io_err = |e| StorageError::io(&self.path, e);
        // A mark taken while the file was empty sits before this generation's header.
        let from = from.max(self.header_line(self.generation)?.len() as u64);
        let mut tail = vec![0u8; (self.len - from) as usize];
        self.file.read_exact_at(&mut tail, from).map_err(io_err)?;
        let generation = self.generation + 1;
        let mut bytes = self.header_line(generation)?;
        bytes.extend_from_slice(&tail);
        let tmp = temp_path(&self.path)?;
        let written = write_file(&tmp, &bytes).and_then(|()| match self.sync_appends {
            // The lines it keeps were synced where they were; so must their new home be.
            true => File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| StorageError::io(&tmp, e)),
            false => Ok(()),
        });
        if let Err(e) = written {
            // Best effort: a full disk wants the space back; a leftover is overwritten later.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &self.path).map_err(io_err)?;
        if self.sync_appends {
            sync_dir(parent_dir(&self.path))?;
        }
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(io_err)?;
        log::debug!(
            "outbox journal {}: generation {generation} keeps the {} bytes past the checkpoint",
            self.path.display(),
            tail.len()
        );
        self.generation = generation;
        self.len = bytes.len() as u64;
        self.has_lines = !tail.is_empty();
        self.dirty = false;
        Ok(())
    }

    /// The header line of `generation`, newline included.
    fn header_line(&self, generation: u64) -> Result<Vec<u8>, StorageError> {
        let mut line = Vec::new();
        let header = Header {
            journal: "outbox".into(),
            generation,
        };
        self.encode_line(&mut line, &header)?;
        Ok(line)
    }

    fn encode_line(&self, out: &mut Vec<u8>, value: &impl Serialize) -> Result<(), StorageError> {
        serde_json::to_writer(&mut *out, value)
            .map_err(|e| StorageError::io(&self.path, io::Error::other(e)))?;
        out.push(b'\n');
        Ok(())
    }
}

/// What a pass over the file found.
struct Scan {
    /// `None` when the file holds no complete header line.
    generation: Option<u64>,
    /// Each line after the header with its start offset.
    lines: Vec<(u64, Pending)>,
    complete_len: u64,
    torn_tail: u64,
}

fn scan(path: &Path, file: &File) -> Result<Scan, StorageError> {
    let mut generation = None;
    let mut lines = Vec::new();
    let end = scan_lines(
        path,
        file,
        |line_number, reason| corrupt(path, line_number, reason),
        |line_number, start, content| {
            if line_number == 1 {
                let header: Header = serde_json::from_slice(content)
                    .ok()
                    .filter(|h: &Header| h.journal == "outbox")
                    .ok_or_else(|| corrupt(path, 1, "not an outbox journal header".into()))?;
                generation = Some(header.generation);
            } else {
                let line: Pending = serde_json::from_slice(content)
                    .map_err(|e| corrupt(path, line_number, format!("not an outbox line: {e}")))?;
                lines.push((start, line));
            }
            Ok(())
        },
    )?;
    Ok(Scan {
        generation,
        lines,
        complete_len: end.complete_len,
        // Only a torn header: nothing was ever accepted into this file.
        torn_tail: if generation.is_some() {
            end.torn_tail
        } else {
            0
        },
    })
}

fn corrupt(path: &Path, line_number: u64, reason: String) -> StorageError {
    StorageError::CorruptJournal {
        path: path.to_path_buf(),
        line_number,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn line(n: u128) -> Pending {
        Pending {
            id: Uuid::from_u128(n),
            text: format!("line {n} with \"quotes\" and ünïcödé"),
            sent_at_ms: 1_700_000_000_000 + n as u64,
        }
    }

    fn temp() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox_test.jsonl");
        (dir, path)
    }

    fn texts(lines: &[Pending]) -> Vec<String> {
        lines.iter().map(|l| l.text.clone()).collect()
    }

    #[test]
    fn without_a_checkpoint_every_line_is_recovered_in_order() {
        let (_dir, path) = temp();
        let (mut j, rec) = Journal::open(&path, None).unwrap();
        assert!(rec.lines.is_empty());
        j.append(&[line(1), line(2)]).unwrap();
        j.append(&[line(3)]).unwrap();
        drop(j);
        let (_, rec) = Journal::open(&path, None).unwrap();
        assert_eq!(texts(&rec.lines), texts(&[line(1), line(2), line(3)]));
    }

    #[test]
    fn lines_under_the_checkpoint_mark_are_skipped() {
        let (_dir, path) = temp();
        let (mut j, _) = Journal::open(&path, None).unwrap();
        j.append(&[line(1), line(2)]).unwrap();
        let mark = j.mark();
        j.append(&[line(3)]).unwrap();
        drop(j);
        let (_, rec) = Journal::open(&path, Some(mark)).unwrap();
        assert_eq!(texts(&rec.lines), texts(&[line(3)]));
    }

    #[test]
    fn starts_over_empty_only_when_nothing_was_appended_after_the_mark() {
        let (_dir, path) = temp();
        let (mut j, _) = Journal::open(&path, None).unwrap();
        j.append(&[line(1)]).unwrap();
        let mark = j.mark();
        j.append(&[line(2)]).unwrap();
        assert!(!j.start_over(mark).unwrap(), "line 2 is not covered");
        let mark = j.mark();
        assert!(j.start_over(mark).unwrap());
        assert!(!j.start_over(j.mark()).unwrap(), "already empty");
        assert_eq!(j.mark().generation, mark.generation + 1);
        j.append(&[line(3)]).unwrap();
        drop(j);
        // The checkpoint on disk has the old generation's mark: the new lines are not in it.
        let (_, rec) = Journal::open(&path, Some(mark)).unwrap();
        assert_eq!(texts(&rec.lines), texts(&[line(3)]));
    }

    /// Appends lines until the journal is past [`COMPACT_BYTES`]; returns how many.
    fn fill_past_compact(j: &mut Journal, first: u128) -> u128 {
        let mut n = first;
        while j.mark().bytes < COMPACT_BYTES {
            j.append(&[line(n)]).unwrap();
            n += 1;
        }
        n - first
    }

    #[test]
    fn past_the_compact_size_it_keeps_only_the_lines_the_checkpoint_lacks() {
        let (_dir, path) = temp();
        let (mut j, _) = Journal::open(&path, None).unwrap();
        let filled = fill_past_compact(&mut j, 1);
        let mark = j.mark();
        j.append(&[line(100_001), line(100_002)]).unwrap();
        assert!(j.start_over(mark).unwrap());
        assert_eq!(j.mark().generation, mark.generation + 1);
        assert!(j.mark().bytes < 1000, "only the two lines are left");
        j.append(&[line(100_003)]).unwrap();
        drop(j);
        // A crash now: the checkpoint on disk is the one with `mark`.
        let (_, rec) = Journal::open(&path, Some(mark)).unwrap();
        assert_eq!(
            texts(&rec.lines),
            texts(&[line(100_001), line(100_002), line(100_003)])
        );
        assert!(filled > 1000, "the journal was past the compact size");
    }

    #[test]
    fn a_mark_taken_on_an_empty_journal_keeps_every_line_but_not_the_old_header() {
        let (_dir, path) = temp();
        let (mut j, _) = Journal::open(&path, None).unwrap();
        j.append(&[line(1)]).unwrap();
        assert!(j.start_over(j.mark()).unwrap());
        let empty = j.mark();
        assert_eq!(empty.bytes, 0);
        let filled = fill_past_compact(&mut j, 10);
        assert!(j.start_over(empty).unwrap());
        drop(j);
        let (_, rec) = Journal::open(&path, Some(empty)).unwrap();
        assert_eq!(rec.lines.len() as u128, filled);
        assert_eq!(rec.lines[0], line(10));
    }

    #[test]
    fn under_the_compact_size_lines_after_the_mark_keep_the_journal_as_it_is() {
        let (_dir, path) = temp();
        let (mut j, _) = Journal::open(&path, None).unwrap();
        j.append(&[line(1)]).unwrap();
        let mark = j.mark();
        j.append(&[line(2)]).unwrap();
        let before = j.mark();
        assert!(!j.start_over(mark).unwrap());
        assert_eq!(j.mark(), before);
        let stale = JournalMark {
            generation: mark.generation + 7,
            ..mark
        };
        assert!(!j.start_over(stale).unwrap(), "another generation's mark");
    }

    #[test]
    fn a_torn_last_line_is_cut_and_appends_continue_cleanly() {
        let (_dir, path) = temp();
        let (mut j, _) = Journal::open(&path, None).unwrap();
        j.append(&[line(1)]).unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"id":"00000000-0000-0000-0000-00000000000"#)
            .unwrap();
        drop(f);
        let (mut j, rec) = Journal::open(&path, None).unwrap();
        assert!(rec.torn_tail_bytes_cut > 0);
        assert_eq!(texts(&rec.lines), texts(&[line(1)]));
        j.append(&[line(2)]).unwrap();
        drop(j);
        let (_, rec) = Journal::open(&path, None).unwrap();
        assert_eq!(rec.torn_tail_bytes_cut, 0);
        assert_eq!(texts(&rec.lines), texts(&[line(1), line(2)]));
    }

    #[test]
    fn an_empty_file_becomes_a_generation_no_checkpoint_covers() {
        let (_dir, path) = temp();
        File::create(&path).unwrap();
        let covered = JournalMark {
            generation: 4,
            bytes: 999,
        };
        let (mut j, rec) = Journal::open(&path, Some(covered)).unwrap();
        assert!(rec.lines.is_empty());
        j.append(&[line(1)]).unwrap();
        drop(j);
        let (_, rec) = Journal::open(&path, Some(covered)).unwrap();
        assert_eq!(texts(&rec.lines), texts(&[line(1)]));
    }

    #[test]
    fn a_failed_append_is_not_accepted_and_what_it_left_is_cut_before_the_next() {
        let (_dir, path) = temp();
        let (mut j, _) = Journal::open(&path, None).unwrap();
        j.append(&[line(1)]).unwrap();
        // A disk that takes nothing, and where the partial write cannot be cut at once
        // (ftruncate fails on /dev/full): it must be cut before the next append.
        let real = std::mem::replace(
            &mut j.file,
            OpenOptions::new().append(true).open("/dev/full").unwrap(),
        );
        let err = j.append(&[line(2)]).unwrap_err();
        assert!(err
            .cause_and_file()
            .starts_with("no space left on device writing"));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"id":"00000000-0000-0000-0000-0000"#)
            .unwrap();
        j.file = real;
        j.append(&[line(3)]).unwrap();
        drop(j);
        let (_, rec) = Journal::open(&path, None).unwrap();
        assert_eq!(texts(&rec.lines), texts(&[line(1), line(3)]));
        assert_eq!(rec.torn_tail_bytes_cut, 0);
    }

    #[test]
    fn damage_in_the_middle_names_the_file_and_the_line() {
        let (_dir, path) = temp();
        let (mut j, _) = Journal::open(&path, None).unwrap();
        j.append(&[line(1)]).unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"not json\n").unwrap();
        drop(f);
        let err = Journal::open(&path, None).unwrap_err().to_string();
        assert!(err.contains("outbox_test.jsonl"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        std::fs::write(&path, b"{\"seq\":1}\n").unwrap();
        let err = Journal::open(&path, None).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
