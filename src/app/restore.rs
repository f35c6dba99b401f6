//! What a client restores from its data dir before it joins: the outbox as last persisted,
//! minus the lines the replica shows were already delivered, and minus the lines that can no
//! longer be sent under this run's name.
//!
//! What this module must not do: write any file, or talk to the network; it reads the replica
//! and hands the result to [`MemberCore::new`](crate::protocol::member::MemberCore::new).

use crate::checkpoint::Checkpoint;
use crate::protocol::member::Restored;
use crate::protocol::types::{Pending, Seq};
use crate::protocol::wire;
use crate::replica::Replica;
use crate::store::StorageError;
use std::collections::HashSet;
use uuid::Uuid;

/// The outbox as last persisted (the checkpoint's, then the journal's lines past its mark),
/// minus lines the replica already holds (delivered after that checkpoint was written).
pub fn restore(
    replica: &Replica,
    cp: Option<&Checkpoint>,
    journaled: Vec<Pending>,
) -> Result<Restored, StorageError> {
    let delivered = replica.last_seq();
    let (from, saved) = match cp {
        Some(cp) => (cp.delivered.min(delivered).next(), cp.outbox.clone()),
        None => (Seq(1), Vec::new()),
    };
    let candidates = saved.into_iter().chain(journaled).collect::<Vec<_>>();
    if candidates.is_empty() {
        return Ok(Restored {
            delivered,
            ..Restored::default()
        });
    }
    let mut seen: HashSet<Uuid> = replica
        .read_range(from, delivered)?
        .into_iter()
        .map(|r| r.id)
        .collect();
    // `insert` is false for a line already delivered, or already taken (the same line in
    // the checkpoint and past the journal mark cannot happen, but costs nothing to rule out).
    let outbox = candidates
        .into_iter()
        .filter(|p| seen.insert(p.id))
        .collect();
    Ok(Restored {
        delivered,
        outbox,
        ..Restored::default()
    })
}

/// Takes out of `outbox` the lines that cannot go out under `name` (a longer `--name` than
/// when they were typed, or a hand-edited file): sent, such a line would hold a seq that no
/// datagram can carry, and stall the ring. Returns them with the reason.
pub fn drop_unsendable(outbox: &mut Vec<Pending>, name: &str) -> Vec<(Pending, wire::LineError)> {
    let mut dropped = Vec::new();
    outbox.retain(|line| match wire::check_line(name, &line.text) {
        Ok(()) => true,
        Err(why) => {
            log::warn!("outbox line {} cannot be sent: {why}; dropped", line.id);
            dropped.push((line.clone(), why));
            false
        }
    });
    dropped
}

/// At most `max` characters of `text`, with `...` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::CHECKPOINT_VERSION;
    use crate::protocol::types::{ChatRecord, NodeId, View};
    use crate::store::journal::JournalMark;

    fn line(n: u128) -> Pending {
        Pending {
            id: Uuid::from_u128(n),
            text: format!("line {n}"),
            sent_at_ms: n as u64,
        }
    }

    /// A replica holding `delivered` (in that order as seq 1, 2, ...).
    fn replica_with(dir: &std::path::Path, delivered: &[Pending]) -> Replica {
        let (mut replica, _) = Replica::open(&dir.join("replica_test.jsonl")).unwrap();
        let records: Vec<ChatRecord> = delivered
            .iter()
            .enumerate()
            .map(|(i, p)| ChatRecord {
                seq: Seq(i as u64 + 1),
                id: p.id,
                from: NodeId(Uuid::from_u128(99)),
                name: "me".into(),
                text: p.text.clone(),
                sent_at_ms: p.sent_at_ms,
            })
            .collect();
        replica.append(&records).unwrap();
        replica
    }

    fn checkpoint(delivered: u64, outbox: Vec<Pending>) -> Checkpoint {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            node: NodeId(Uuid::from_u128(99)),
            name: "me".into(),
            view: View::default(),
            delivered: Seq(delivered),
            replica_len_bytes: 0,
            outbox,
            journal: Some(JournalMark::default()),
            server_id: None,
            saved_at_ms: 0,
        }
    }

    fn ids(r: &Restored) -> Vec<u128> {
        r.outbox.iter().map(|p| p.id.as_u128()).collect()
    }

    #[test]
    fn g2_restore_takes_the_checkpoint_then_the_journal_minus_what_was_delivered() {
        let dir = tempfile::tempdir().unwrap();
        // Checkpoint at #1 with lines 2 and 3 waiting; then 2 and 4 were delivered, and 4 and
        // 5 were typed after the checkpoint (only in the journal).
        let replica = replica_with(dir.path(), &[line(1), line(2), line(4)]);
        let cp = checkpoint(1, vec![line(2), line(3)]);
        let restored = restore(&replica, Some(&cp), vec![line(4), line(5)]).unwrap();
        assert_eq!(restored.delivered, Seq(3));
        assert_eq!(ids(&restored), [3, 5]);
    }

    #[test]
    fn g6_a_restored_line_that_cannot_be_sent_under_this_name_is_dropped_not_stamped() {
        // The longest line of quotes (two bytes each on the wire) that fits under a short
        // name: the longest name makes it too large for one datagram.
        let fits_short = (1..=crate::protocol::limits::MAX_LINE_BYTES)
            .map(|n| "\"".repeat(n))
            .take_while(|t| crate::protocol::wire::check_line("al", t).is_ok())
            .last()
            .unwrap();
        let long_name = "n".repeat(crate::protocol::limits::MAX_NAME_BYTES);
        let outbox = vec![
            line(1),
            Pending {
                text: fits_short.clone(),
                ..line(2)
            },
            Pending {
                text: "bell \u{7}".into(),
                ..line(3)
            },
        ];
        let mut under_short = outbox.clone();
        assert_eq!(drop_unsendable(&mut under_short, "al").len(), 1);
        let mut under_long = outbox;
        let dropped = drop_unsendable(&mut under_long, &long_name);
        let kept: Vec<u128> = under_long.iter().map(|p| p.id.as_u128()).collect();
        assert_eq!(kept, [1]);
        assert_eq!(dropped.len(), 2);
        assert_eq!(shorten(&fits_short, 3), "\"\"\"...");
        assert_eq!(shorten("short", 60), "short");
    }

    #[test]
    fn g2_without_a_checkpoint_the_journal_is_checked_against_the_whole_replica() {
        let dir = tempfile::tempdir().unwrap();
        let replica = replica_with(dir.path(), &[line(1), line(2)]);
        let restored = restore(&replica, None, vec![line(1), line(3), line(3)]).unwrap();
        assert_eq!(ids(&restored), [3]);
        let restored = restore(&replica, None, Vec::new()).unwrap();
        assert_eq!(restored.delivered, Seq(2));
        assert!(restored.outbox.is_empty());
    }
}
