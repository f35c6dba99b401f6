//! The replica store: the delivered history of one node as a JSON Lines file (DESIGN.md §6).
//!
//! Each line is one [`ChatRecord`] serialized with `serde_json::to_string` plus `"\n"`, in
//! `seq` order, starting at 1 with no gaps. Records are always serialized the same way, so the
//! replicas of caught-up nodes compare byte for byte (G1).
//!
//! At open the whole file is validated and a sparse index of line offsets is built (one entry
//! every [`index::INDEX_EVERY`] records, so ten million records cost about a megabyte). A
//! line in exactly the shape this program writes passes a byte-level check
//! ([`shape::canonical_seq`]); any other line gets the full JSON parse. A last line without its
//! newline is a torn write from a crash and is cut (G5); any other damage is reported as
//! [`StorageError::Corrupt`] with the file, the line and the fix (G6).
//!
//! Durability: appends are not fsynced; [`Replica::sync`] is, and the driver calls it per batch
//! with `--durability fsync`. A `kill -9` does not lose writes that reached the page cache;
//! only a power loss or kernel crash can, and then the tail is cut or refilled by the group.
//! A failed append never leaves part of a line behind: it is cut at once (or before the next
//! append), and after a failure for want of space each append reserves its bytes before
//! writing any.
//!
//! This module owns the file format only: no protocol logic here, no decisions about what to
//! store. Errors are [`StorageError`], shared by every file in the data dir.

mod index;
#[cfg(test)]
mod index_tests;
mod shape;

use crate::protocol::canonical;
use crate::protocol::types::{ChatRecord, Seq};
use crate::store::error::StorageError;
use crate::store::lines::{scan_lines, MAX_RECORD_LINE_BYTES};
use crate::store::reserve::reserve;
use index::SparseIndex;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What [`Replica::open`] found and repaired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Complete, valid records kept.
    pub records: u64,
    /// Bytes of a torn last line (no newline) that were cut; 0 if the file ended cleanly.
    pub torn_tail_bytes_cut: u64,
}

/// An open replica file: appends at the end, reads any range by seq.
///
/// Invariant: the file holds exactly `records` complete lines, line `seq` holds record `seq`,
/// `index` holds the start of every record it samples (one in [`index::INDEX_EVERY`]), and the
/// file is `len_bytes` long.
#[derive(Debug)]
pub struct Replica {
    /// Where the file lives, for error messages.
    path: PathBuf,
    /// Opened in append mode: every write lands at the end, whatever a reader does.
    writer: File,
    /// A separate handle for positioned reads, so reads never move the writer.
    reader: File,
    /// How many records the file holds: the last seq.
    records: u64,
    /// Where some of the records start; reads go forward from the nearest entry.
    index: SparseIndex,
    /// Length of the file: the end of the last complete line.
    len_bytes: u64,
    /// Set when a failed append left bytes that could not be cut off again: appending after
    /// them would corrupt the middle of the file, so the next append first cuts them, or
    /// fails without writing.
    broken: bool,
    /// Set when an append failed for want of space: until one succeeds, each append first
    /// reserves its bytes, so that on a disk still full it writes nothing at all and a reader
    /// (an operator, a test) never sees a torn tail in the meantime.
    reserve_first: bool,
}

/// Result of scanning a file at open.
struct Scan {
    records: u64,
    index: SparseIndex,
    complete_len: u64,
    torn_tail: u64,
}

impl Replica {
    /// Opens (creating if missing) and validates the whole file, building the offset index.
    ///
    /// A torn last line is cut with a warning; any other damage is [`StorageError::Corrupt`].
    pub fn open(path: &Path) -> Result<(Replica, OpenReport), StorageError> {
        Replica::open_indexed(path, index::INDEX_EVERY)
    }

    /// [`Replica::open`] with an index entry every `every` records (tests use small ones).
    fn open_indexed(path: &Path, every: u64) -> Result<(Replica, OpenReport), StorageError> {
        let writer = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| StorageError::io(path, e))?;
        let reader = File::open(path).map_err(|e| StorageError::io(path, e))?;
        let scan = scan(path, &reader, every)?;
        if scan.torn_tail > 0 {
            cut_torn_tail(path, &writer, &scan)?;
        }
        let report = OpenReport {
            records: scan.records,
            torn_tail_bytes_cut: scan.torn_tail,
        };
        let replica = Replica {
            path: path.to_path_buf(),
            writer,
            reader,
            records: scan.records,
            index: scan.index,
            len_bytes: scan.complete_len,
            broken: false,
            reserve_first: false,
        };
        Ok((replica, report))
    }

    /// The replica file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The highest stored seq; `Seq(0)` when empty.
    pub fn last_seq(&self) -> Seq {
        Seq(self.records)
    }

    /// Length of the file in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    /// Appends records whose seqs continue [`Replica::last_seq`] exactly; otherwise returns
    /// [`StorageError::OutOfOrder`] and writes nothing.
    ///
    /// All records go out in one `write_all` (group commit). No fsync: see the module docs.
    pub fn append(&mut self, records: &[ChatRecord]) -> Result<(), StorageError> {
        if records.is_empty() {
            return Ok(());
        }
        if self.broken {
            self.writer
                .set_len(self.len_bytes)
                .map_err(|e| StorageError::io(&self.path, e))?;
            self.broken = false;
        }
        self.check_order(records)?;
        let (bytes, starts) = self.encode(records)?;
        if self.reserve_first {
            reserve(&self.writer, self.len_bytes, bytes.len())
                .map_err(|e| StorageError::io(&self.path, e))?;
        }
        if let Err(e) = self.writer.write_all(&bytes) {
            self.reserve_first = e.kind() == io::ErrorKind::StorageFull;
            self.undo_partial_write();
            return Err(StorageError::io(&self.path, e));
        }
        self.reserve_first = false;
        for (record, start) in records.iter().zip(starts) {
            self.index.note(record.seq, start);
        }
        self.records += records.len() as u64;
        self.len_bytes += bytes.len() as u64;
        Ok(())
    }

    /// Makes every append so far durable (fdatasync): for `--durability fsync`, once per
    /// batch of deliveries, before anything that depends on them goes out.
    pub fn sync(&self) -> Result<(), StorageError> {
        self.writer
            .sync_data()
            .map_err(|e| StorageError::io(&self.path, e))
    }

    /// Records `lo..=hi`, clamped to `1..=last_seq`; empty when `lo > last_seq` or `lo > hi`.
    ///
    /// Reads forward from the index entry at or below `lo`: at most [`index::INDEX_EVERY`]
    /// records before the range and after it, in one positioned read.
    pub fn read_range(&self, lo: Seq, hi: Seq) -> Result<Vec<ChatRecord>, StorageError> {
        let lo = Seq(lo.0.max(1));
        let hi = hi.min(self.last_seq());
        if lo > hi {
            return Ok(Vec::new());
        }
        // Always covered by the struct invariant; an error rather than an empty answer if not.
        let span = self
            .index
            .span(lo, hi, self.records, self.len_bytes)
            .ok_or_else(|| {
                StorageError::io(
                    &self.path,
                    io::Error::other("the index does not cover the records; restart to rebuild it"),
                )
            })?;
        let len = usize::try_from(span.end - span.start).map_err(|_| {
            StorageError::io(&self.path, io::Error::other("range too large for memory"))
        })?;
        let mut buf = vec![0u8; len];
        self.reader
            .read_exact_at(&mut buf, span.start)
            .map_err(|e| StorageError::io(&self.path, e))?;
        let skip = (lo.0 - span.first.0) as usize;
        let count = (hi.0 - lo.0 + 1) as usize;
        let mut records = Vec::with_capacity(count);
        // Every line in `buf` ends with '\n', so the piece after the last one is empty.
        for (i, line) in buf
            .split(|&b| b == b'\n')
            .skip(skip)
            .take(count)
            .enumerate()
        {
            records.push(parse_line(&self.path, lo.0 + i as u64, line)?);
        }
        if records.len() != count {
            let reason = format!("fewer lines than the {count} records the index expects");
            return Err(StorageError::corrupt(&self.path, lo.0, reason));
        }
        Ok(records)
    }

    fn check_order(&self, records: &[ChatRecord]) -> Result<(), StorageError> {
        let mut expected = self.last_seq().next();
        for record in records {
            if record.seq != expected {
                return Err(StorageError::OutOfOrder {
                    path: self.path.clone(),
                    expected,
                    found: record.seq,
                });
            }
            expected = expected.next();
        }
        Ok(())
    }

    /// Serializes `records` into one buffer and returns it with each record's file offset.
    fn encode(&self, records: &[ChatRecord]) -> Result<(Vec<u8>, Vec<u64>), StorageError> {
        // Each record is encoded straight into the batch: no line of its own to allocate.
        let mut bytes = Vec::with_capacity(records.len() * 256);
        let mut starts = Vec::with_capacity(records.len());
        for record in records {
            let start = bytes.len();
            canonical::write_record(&mut bytes, record);
            let len = bytes.len() - start;
            if len as u64 > MAX_RECORD_LINE_BYTES {
                let msg = format!(
                    "record seq {} is {len} bytes, over the {MAX_RECORD_LINE_BYTES}-byte line \
                     limit; nothing was written",
                    record.seq,
                );
                return Err(StorageError::io(
                    &self.path,
                    io::Error::new(io::ErrorKind::InvalidInput, msg),
                ));
            }
            starts.push(self.len_bytes + start as u64);
            bytes.push(b'\n');
        }
        Ok((bytes, starts))
    }

    /// After a failed write, cut whatever part of it reached the file, so that the next
    /// append does not follow a partial line.
    fn undo_partial_write(&mut self) {
        if let Err(e) = self.writer.set_len(self.len_bytes) {
            log::error!(
                "replica {}: could not cut a failed append back to {} bytes: {e}",
                self.path.display(),
                self.len_bytes
            );
            self.broken = true;
        }
    }
}

/// Reads the whole file once, validating every complete line: the byte-level shape check for
/// lines this program wrote, the full parse for any other.
fn scan(path: &Path, file: &File, every: u64) -> Result<Scan, StorageError> {
    let mut index = SparseIndex::new(every);
    let mut records = 0;
    let end = scan_lines(
        path,
        file,
        |line_number, reason| StorageError::corrupt(path, line_number, reason),
        |line_number, start, content| {
            if shape::canonical_seq(content) != Some(line_number) {
                parse_line(path, line_number, content)?;
            }
            index.note(Seq(line_number), start);
            records = line_number;
            Ok(())
        },
    )?;
    Ok(Scan {
        records,
        index,
        complete_len: end.complete_len,
        torn_tail: end.torn_tail,
    })
}

/// Parses one line (without its newline) that must hold record `seq`, which is also its
/// 1-based line number.
fn parse_line(path: &Path, seq: u64, content: &[u8]) -> Result<ChatRecord, StorageError> {
    let text = std::str::from_utf8(content)
        .map_err(|e| StorageError::corrupt(path, seq, format!("not UTF-8: {e}")))?;
    let record: ChatRecord = serde_json::from_str(text)
        .map_err(|e| StorageError::corrupt(path, seq, format!("not a chat record: {e}")))?;
    if record.seq != Seq(seq) {
        let reason = format!("expected seq {seq}, found {}", record.seq);
        return Err(StorageError::corrupt(path, seq, reason));
    }
    Ok(record)
}

/// Truncates the file to the end of its last complete line (G5).
fn cut_torn_tail(path: &Path, writer: &File, scan: &Scan) -> Result<(), StorageError> {
    log::warn!(
        "replica {}: cutting a torn last line of {} bytes (a write interrupted by a crash); \
         keeping {} complete records",
        path.display(),
        scan.torn_tail,
        scan.records
    );
    writer
        .set_len(scan.complete_len)
        .and_then(|()| writer.sync_all())
        .map_err(|e| StorageError::io(path, e))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::protocol::types::NodeId;
    use std::fs;
    use uuid::Uuid;

    /// A record of seq `seq` (also used by other modules' tests).
    pub(crate) fn record(seq: u64) -> ChatRecord {
        ChatRecord {
            seq: Seq(seq),
            id: Uuid::from_u128(seq as u128),
            from: NodeId(Uuid::from_u128(7)),
            name: "alice".into(),
            text: format!("message number {seq} with \"quotes\", ünïcödé and a \\ backslash"),
            sent_at_ms: 1_700_000_000_000 + seq,
        }
    }

    fn records(lo: u64, hi: u64) -> Vec<ChatRecord> {
        (lo..=hi).map(record).collect()
    }

    fn line(seq: u64) -> String {
        serde_json::to_string(&record(seq)).unwrap() + "\n"
    }

    fn temp_replica() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replica_test.jsonl");
        (dir, path)
    }

    #[test]
    fn g5_append_then_reopen_gives_the_same_records_and_bytes() {
        let (_dir, path) = temp_replica();
        let (mut replica, report) = Replica::open(&path).unwrap();
        assert_eq!(report, OpenReport::default());
        assert_eq!(replica.last_seq(), Seq(0));
        replica.append(&records(1, 3)).unwrap();
        replica.append(&records(4, 4)).unwrap();
        replica.append(&[]).unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(replica.len_bytes(), bytes.len() as u64);
        let expected: String = (1..=4).map(line).collect();
        assert_eq!(bytes, expected.as_bytes());
        drop(replica);

        let (replica, report) = Replica::open(&path).unwrap();
        assert_eq!(report.records, 4);
        assert_eq!(report.torn_tail_bytes_cut, 0);
        assert_eq!(replica.last_seq(), Seq(4));
        assert_eq!(replica.len_bytes(), bytes.len() as u64);
        assert_eq!(replica.read_range(Seq(1), Seq(4)).unwrap(), records(1, 4));
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn g1_two_replicas_of_the_same_records_are_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let a_path = dir.path().join("a.jsonl");
        let b_path = dir.path().join("b.jsonl");
        let (mut a, _) = Replica::open(&a_path).unwrap();
        let (mut b, _) = Replica::open(&b_path).unwrap();
        // Different batching, same content.
        a.append(&records(1, 5)).unwrap();
        for seq in 1..=5 {
            b.append(&[record(seq)]).unwrap();
        }
        assert_eq!(fs::read(&a_path).unwrap(), fs::read(&b_path).unwrap());
        assert_eq!(a.len_bytes(), b.len_bytes());
    }

    #[test]
    fn g5_torn_tail_is_cut_and_appending_continues() {
        let (_dir, path) = temp_replica();
        let whole: String = (1..=3).map(line).collect();
        let half = &line(4)[..20];
        fs::write(&path, format!("{whole}{half}")).unwrap();

        let (mut replica, report) = Replica::open(&path).unwrap();
        assert_eq!(report.records, 3);
        assert_eq!(report.torn_tail_bytes_cut, 20);
        assert_eq!(replica.last_seq(), Seq(3));
        assert_eq!(fs::read(&path).unwrap(), whole.as_bytes());

        replica.append(&records(4, 5)).unwrap();
        drop(replica);
        let (replica, report) = Replica::open(&path).unwrap();
        assert_eq!(report.torn_tail_bytes_cut, 0);
        assert_eq!(replica.read_range(Seq(1), Seq(5)).unwrap(), records(1, 5));
    }

    #[test]
    fn g5_complete_record_without_newline_is_also_a_torn_tail() {
        let (_dir, path) = temp_replica();
        let two = line(2);
        fs::write(&path, format!("{}{}", line(1), two.trim_end())).unwrap();
        let (replica, report) = Replica::open(&path).unwrap();
        assert_eq!(report.records, 1);
        assert_eq!(report.torn_tail_bytes_cut, two.len() as u64 - 1);
        assert_eq!(replica.len_bytes(), line(1).len() as u64);
    }

    fn assert_corrupt(path: &Path, want_line: u64, reason_part: &str) {
        let err = Replica::open(path).unwrap_err();
        let msg = err.to_string();
        match err {
            StorageError::Corrupt {
                path: p,
                line_number,
                reason,
            } => {
                assert_eq!(p, path);
                assert_eq!(line_number, want_line, "{msg}");
                assert!(reason.contains(reason_part), "{msg}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("line {want_line}")), "{msg}");
        assert!(msg.contains(&format!("head -n {}", want_line - 1)), "{msg}");
    }

    #[test]
    fn g6_corrupt_middle_line_names_file_and_line() {
        let (_dir, path) = temp_replica();
        let content = format!("{}{}{{\"seq\":3,\"oops\n{}", line(1), line(2), line(4));
        fs::write(&path, &content).unwrap();
        assert_corrupt(&path, 3, "not a chat record");
        // The file is left alone for the user to inspect.
        assert_eq!(fs::read_to_string(&path).unwrap(), content);
    }

    #[test]
    fn g6_seq_gap_is_corrupt() {
        let (_dir, path) = temp_replica();
        fs::write(&path, format!("{}{}{}", line(1), line(2), line(4))).unwrap();
        assert_corrupt(&path, 3, "expected seq 3, found 4");
    }

    #[test]
    fn g6_first_line_must_be_seq_1() {
        let (_dir, path) = temp_replica();
        fs::write(&path, line(2)).unwrap();
        assert_corrupt(&path, 1, "expected seq 1, found 2");
    }

    #[test]
    fn g6_non_utf8_garbage_is_an_error_not_a_panic() {
        let (_dir, path) = temp_replica();
        let mut bytes = line(1).into_bytes();
        bytes.extend_from_slice(&[0xff, 0xfe, 0x00, 0x80, b'{', b'\n']);
        bytes.extend_from_slice(line(3).as_bytes());
        fs::write(&path, bytes).unwrap();
        assert_corrupt(&path, 2, "not UTF-8");

        // Binary junk without any newline is a torn tail of an empty replica, and is cut.
        fs::write(&path, [0u8, 0xff, 0x13, 0x37]).unwrap();
        let (replica, report) = Replica::open(&path).unwrap();
        assert_eq!(report.torn_tail_bytes_cut, 4);
        assert_eq!(replica.last_seq(), Seq(0));
    }

    #[test]
    fn g6_blank_line_is_corrupt() {
        let (_dir, path) = temp_replica();
        fs::write(&path, format!("{}\n{}", line(1), line(2))).unwrap();
        assert_corrupt(&path, 2, "not a chat record");
    }

    #[test]
    fn g6_overlong_line_is_corrupt_with_or_without_newline() {
        let (_dir, path) = temp_replica();
        let long = "x".repeat(MAX_RECORD_LINE_BYTES as usize + 10);
        fs::write(&path, format!("{}{long}\n", line(1))).unwrap();
        assert_corrupt(&path, 2, "longer than");
        fs::write(&path, format!("{}{long}", line(1))).unwrap();
        assert_corrupt(&path, 2, "longer than");
    }

    #[test]
    fn append_with_wrong_seq_is_out_of_order_and_writes_nothing() {
        let (_dir, path) = temp_replica();
        let (mut replica, _) = Replica::open(&path).unwrap();
        replica.append(&records(1, 2)).unwrap();
        let before = fs::read(&path).unwrap();

        // The error names the first record that breaks the order, even mid-batch.
        let cases = [
            (vec![record(4)], 3, 4),
            (vec![record(2)], 3, 2),
            (vec![record(3), record(5)], 4, 5),
        ];
        for (bad, expected, found) in cases {
            let err = replica.append(&bad).unwrap_err();
            match &err {
                StorageError::OutOfOrder {
                    expected: e,
                    found: f,
                    ..
                } => assert_eq!((e.0, f.0), (expected, found)),
                other => panic!("expected OutOfOrder, got {other:?}"),
            }
            assert!(err.to_string().contains("nothing was written"), "{err}");
        }
        assert_eq!(fs::read(&path).unwrap(), before);
        assert_eq!(replica.last_seq(), Seq(2));
        assert_eq!(replica.len_bytes(), before.len() as u64);
        replica.append(&records(3, 3)).unwrap();
    }

    #[test]
    fn a_failed_append_leaves_no_part_of_a_line_before_the_next() {
        let (_dir, path) = temp_replica();
        let (mut replica, _) = Replica::open(&path).unwrap();
        replica.append(&records(1, 2)).unwrap();
        // A disk that takes nothing, and where the partial write cannot be cut at once
        // (ftruncate fails on /dev/full): it must be cut before the next append.
        let full = OpenOptions::new().append(true).open("/dev/full").unwrap();
        let real = std::mem::replace(&mut replica.writer, full);
        let err = replica.append(&records(3, 4)).unwrap_err();
        assert!(err
            .cause_and_file()
            .starts_with("no space left on device writing"));
        assert_eq!(replica.last_seq(), Seq(2), "nothing counts as written");
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&line(3).as_bytes()[..20])
            .unwrap();
        replica.writer = real;
        replica.append(&records(3, 4)).unwrap();
        drop(replica);
        let (replica, report) = Replica::open(&path).unwrap();
        assert_eq!(report.torn_tail_bytes_cut, 0);
        assert_eq!(replica.read_range(Seq(1), Seq(4)).unwrap(), records(1, 4));
    }

    #[test]
    fn append_refuses_a_record_over_the_line_limit() {
        let (_dir, path) = temp_replica();
        let (mut replica, _) = Replica::open(&path).unwrap();
        let mut huge = record(1);
        huge.text = "y".repeat(MAX_RECORD_LINE_BYTES as usize);
        assert!(replica.append(&[huge]).is_err());
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
        assert_eq!(replica.last_seq(), Seq(0));
    }

    #[test]
    fn read_range_clamps_and_works_after_reopen() {
        let (_dir, path) = temp_replica();
        let (mut replica, _) = Replica::open(&path).unwrap();
        assert!(replica.read_range(Seq(1), Seq(10)).unwrap().is_empty());
        replica.append(&records(1, 10)).unwrap();

        let check = |r: &Replica| {
            assert_eq!(r.read_range(Seq(0), Seq(100)).unwrap(), records(1, 10));
            assert_eq!(r.read_range(Seq(3), Seq(5)).unwrap(), records(3, 5));
            assert_eq!(r.read_range(Seq(10), Seq(10)).unwrap(), records(10, 10));
            assert_eq!(r.read_range(Seq(1), Seq(1)).unwrap(), records(1, 1));
            assert_eq!(r.read_range(Seq(8), Seq(u64::MAX)).unwrap(), records(8, 10));
            assert!(r.read_range(Seq(11), Seq(20)).unwrap().is_empty());
            assert!(r.read_range(Seq(5), Seq(4)).unwrap().is_empty());
            assert!(r.read_range(Seq(0), Seq(0)).unwrap().is_empty());
        };
        check(&replica);
        drop(replica);
        let (replica, _) = Replica::open(&path).unwrap();
        check(&replica);
    }

    #[test]
    fn a_line_with_only_the_six_fields_or_an_extra_field_is_accepted() {
        let (_dir, path) = temp_replica();
        let from = Uuid::from_u128(9);
        let hand_written = format!(
            "{{\"seq\":1,\"id\":\"{}\",\"from\":\"{from}\",\"name\":\"bob\",\"text\":\"hi\",\
             \"sent_at_ms\":5}}\n\
             {{\"sent_at_ms\":6,\"text\":\"yo\",\"name\":\"bob\",\"from\":\"{from}\",\
             \"id\":\"{}\",\"seq\":2,\"future_field\":{{\"x\":[1,2]}}}}\n",
            Uuid::from_u128(1),
            Uuid::from_u128(2),
        );
        fs::write(&path, &hand_written).unwrap();
        let (mut replica, report) = Replica::open(&path).unwrap();
        assert_eq!(report.records, 2);
        let got = replica.read_range(Seq(1), Seq(2)).unwrap();
        assert_eq!(got[1].text, "yo");
        assert_eq!(got[1].seq, Seq(2));
        replica.append(&records(3, 3)).unwrap();
        assert_eq!(replica.read_range(Seq(3), Seq(3)).unwrap(), records(3, 3));
    }

    #[test]
    fn error_source_is_the_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing_dir").join("replica.jsonl");
        let err = Replica::open(&path).unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }));
        assert!(std::error::Error::source(&err).is_some());
        assert!(err.to_string().contains("missing_dir"), "{err}");
    }
}
