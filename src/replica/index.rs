//! The replica's sparse index: the byte offset of one record in every [`SparseIndex::every`],
//! so that a history of ten million lines costs about a megabyte of memory instead of 80. A
//! read starts at the nearest entry at or below the record it wants and reads forward.
//!
//! Numbers only: no file access and no parsing here; the replica keeps the index in step with
//! the file.

use crate::protocol::types::Seq;

/// Records between two index entries by default: a read of one record reads at most this many
/// lines before it (about 14 KB of chat lines), and the index costs 8 bytes per this many
/// records.
pub const INDEX_EVERY: u64 = 64;

/// Offsets of records `1, 1 + every, 1 + 2 * every, ...`.
///
/// Invariant: `starts[i]` is the byte offset of record `i * every + 1`, and the entries cover
/// exactly the records pushed so far (every record whose seq is `1 mod every`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseIndex {
    every: u64,
    starts: Vec<u64>,
}

/// Where to read records `lo..=hi` from: the bytes `start..end` hold the records from
/// `first` (at most `every - 1` records before `lo`) through `hi` and possibly a few after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The first record in the span.
    pub first: Seq,
    /// Byte offset of `first`.
    pub start: u64,
    /// Byte offset just past the last record the span holds (at or past the end of `hi`).
    pub end: u64,
}

impl SparseIndex {
    /// An empty index with an entry every `every` records (at least 1).
    pub fn new(every: u64) -> SparseIndex {
        SparseIndex {
            every: every.max(1),
            starts: Vec::new(),
        }
    }

    /// Notes that record `seq` starts at byte `start`; called for every record in order, it
    /// keeps the entries the index wants and ignores the rest.
    pub fn note(&mut self, seq: Seq, start: u64) {
        if seq.0 > 0 && (seq.0 - 1).is_multiple_of(self.every) {
            debug_assert_eq!(self.starts.len() as u64, (seq.0 - 1) / self.every);
            self.starts.push(start);
        }
    }

    /// The bytes that hold records `lo..=hi` of a file of `records` records and `len_bytes`
    /// bytes; `None` unless `1 <= lo <= hi <= records` and the index covers them.
    pub fn span(&self, lo: Seq, hi: Seq, records: u64, len_bytes: u64) -> Option<Span> {
        if lo.0 == 0 || lo > hi || hi.0 > records {
            return None;
        }
        let first_entry = (lo.0 - 1) / self.every;
        let start = *self.starts.get(first_entry as usize)?;
        // The entry after the one that covers `hi` starts past it; without one, the file ends.
        let end = match self.starts.get(((hi.0 - 1) / self.every + 1) as usize) {
            Some(&next) => next,
            None => len_bytes,
        };
        Some(Span {
            first: Seq(first_entry * self.every + 1),
            start,
            end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index over records of `len(seq)` bytes each, as the replica would build it.
    fn built(every: u64, records: u64, len: impl Fn(u64) -> u64) -> (SparseIndex, Vec<u64>, u64) {
        let mut index = SparseIndex::new(every);
        let mut offsets = Vec::new();
        let mut at = 0;
        for seq in 1..=records {
            index.note(Seq(seq), at);
            offsets.push(at);
            at += len(seq);
        }
        (index, offsets, at)
    }

    #[test]
    fn every_span_covers_exactly_the_records_asked_for_from_its_entry() {
        for every in [1, 2, 3, 4, 64] {
            for records in 0..=13u64 {
                let (index, offsets, len) = built(every, records, |s| 10 + s % 7);
                for lo in 1..=records {
                    for hi in lo..=records {
                        let span = index.span(Seq(lo), Seq(hi), records, len).unwrap();
                        assert!(span.first.0 <= lo && lo - span.first.0 < every);
                        assert_eq!(span.start, offsets[span.first.0 as usize - 1]);
                        let end_of_hi = offsets.get(hi as usize).copied().unwrap_or(len);
                        assert!(span.end >= end_of_hi, "every {every} {lo}..={hi}");
                        // Never more than one interval past `hi`, and always on a line start.
                        assert!(span.end == len || offsets.contains(&span.end));
                        assert!(
                            span.end == len
                                || span.end <= offsets[(hi + every - 1).min(records - 1) as usize]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn out_of_range_spans_are_none() {
        let (index, _, len) = built(4, 10, |_| 5);
        assert_eq!(index.span(Seq(0), Seq(3), 10, len), None);
        assert_eq!(index.span(Seq(4), Seq(3), 10, len), None);
        assert_eq!(index.span(Seq(9), Seq(11), 10, len), None);
        assert_eq!(SparseIndex::new(4).span(Seq(1), Seq(1), 0, 0), None);
        // An index that was not told about the records cannot place them.
        assert_eq!(SparseIndex::new(4).span(Seq(1), Seq(1), 1, 5), None);
    }

    #[test]
    fn entries_are_one_in_every_and_cost_a_sixty_fourth() {
        let (index, offsets, _) = built(4, 9, |_| 3);
        assert_eq!(index.starts, [offsets[0], offsets[4], offsets[8]]);
        let (index, _, _) = built(INDEX_EVERY, 10_000, |_| 200);
        assert_eq!(index.starts.len(), 157);
        assert_eq!(SparseIndex::new(0).every, 1);
    }
}
