//! Tests of the replica's reads through its sparse index, with small intervals so that every
//! boundary (first record of an entry, last before the next, the end of the file) is cheap to
//! reach: after reopening, after appends in batches of every size, and after a torn tail was
//! cut. Tests only; they write temp files.

use super::*;
use crate::protocol::types::NodeId;
use proptest::prelude::*;
use std::fs;
use uuid::Uuid;

fn record(seq: u64) -> ChatRecord {
    ChatRecord {
        seq: Seq(seq),
        id: Uuid::from_u128(u128::from(seq)),
        from: NodeId(Uuid::from_u128(3)),
        name: "carol".into(),
        // Lines of different lengths, so that offsets are not a multiple of anything.
        text: "x".repeat((seq % 11) as usize) + &format!(" line {seq}"),
        sent_at_ms: seq * 1000,
    }
}

fn records(lo: u64, hi: u64) -> Vec<ChatRecord> {
    (lo..=hi).map(record).collect()
}

/// Every range `lo..=hi` of `1..=last` (and some out of it) reads back the records.
fn check_every_range(replica: &Replica, last: u64) {
    assert_eq!(replica.last_seq(), Seq(last));
    for lo in 0..=last + 1 {
        for hi in lo.saturating_sub(1)..=last + 2 {
            let want = records(lo.max(1), hi.min(last));
            let got = replica.read_range(Seq(lo), Seq(hi)).unwrap();
            assert_eq!(got, want, "{lo}..={hi} of {last}");
        }
    }
}

#[test]
fn every_range_reads_back_at_every_boundary_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica_index.jsonl");
    for every in [1, 2, 3, 4, 7] {
        let _ = fs::remove_file(&path);
        let (mut replica, _) = Replica::open_indexed(&path, every).unwrap();
        replica.append(&records(1, 3 * every + 1)).unwrap();
        check_every_range(&replica, 3 * every + 1);
        drop(replica);
        let (replica, report) = Replica::open_indexed(&path, every).unwrap();
        assert_eq!(report.records, 3 * every + 1);
        check_every_range(&replica, 3 * every + 1);
    }
}

#[test]
fn appends_in_batches_of_every_size_keep_the_index_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica_index.jsonl");
    let (mut replica, _) = Replica::open_indexed(&path, 4).unwrap();
    let mut last = 0;
    for batch in [1, 3, 4, 5, 1, 8, 2] {
        replica.append(&records(last + 1, last + batch)).unwrap();
        last += batch;
        check_every_range(&replica, last);
    }
    // The index built while appending equals the one a fresh scan builds.
    let (reopened, _) = Replica::open_indexed(&path, 4).unwrap();
    assert_eq!(reopened.index, replica.index);
    assert_eq!(reopened.len_bytes(), replica.len_bytes());
}

#[test]
fn after_a_torn_tail_is_cut_reads_and_appends_continue_at_the_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica_index.jsonl");
    // Torn inside the record that would start the third entry, and inside the one after it.
    for (kept, every) in [(8, 4), (9, 4), (4, 1)] {
        let whole: Vec<u8> = records(1, kept)
            .iter()
            .flat_map(|r| {
                serde_json::to_string(r)
                    .unwrap()
                    .into_bytes()
                    .into_iter()
                    .chain([b'\n'])
            })
            .collect();
        let torn = serde_json::to_string(&record(kept + 1)).unwrap();
        fs::write(
            &path,
            [&whole[..], &torn.as_bytes()[..torn.len() / 2]].concat(),
        )
        .unwrap();
        let (mut replica, report) = Replica::open_indexed(&path, every).unwrap();
        assert_eq!(report.records, kept);
        assert!(report.torn_tail_bytes_cut > 0);
        check_every_range(&replica, kept);
        replica.append(&records(kept + 1, kept + 5)).unwrap();
        check_every_range(&replica, kept + 5);
        let (reopened, _) = Replica::open_indexed(&path, every).unwrap();
        assert_eq!(reopened.index, replica.index);
    }
}

#[test]
fn a_file_shorter_than_its_index_says_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica_index.jsonl");
    let (mut replica, _) = Replica::open_indexed(&path, 4).unwrap();
    replica.append(&records(1, 6)).unwrap();
    // Someone cut the file behind the open replica's back.
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(10)
        .unwrap();
    assert!(replica.read_range(Seq(5), Seq(6)).is_err());
    assert!(replica.read_range(Seq(1), Seq(1)).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Any sequence of batches, any interval, any read: the same records as a dense index
    /// (the records themselves) would give, before and after reopening.
    #[test]
    fn sparse_reads_equal_the_records(
        every in 1u64..9,
        batches in proptest::collection::vec(0u64..12, 1..8),
        reads in proptest::collection::vec((0u64..80, 0u64..80), 1..20),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replica_prop.jsonl");
        let (mut replica, _) = Replica::open_indexed(&path, every).unwrap();
        let mut last = 0;
        for batch in batches {
            replica.append(&records(last + 1, last + batch)).unwrap();
            last += batch;
        }
        let (reopened, _) = Replica::open_indexed(&path, every).unwrap();
        for (lo, hi) in reads {
            let want = records(lo.max(1), hi.min(last));
            prop_assert_eq!(&replica.read_range(Seq(lo), Seq(hi)).unwrap(), &want);
            prop_assert_eq!(&reopened.read_range(Seq(lo), Seq(hi)).unwrap(), &want);
        }
    }
}
