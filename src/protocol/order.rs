//! The hold-back queue: messages received out of order wait here until they may be delivered,
//! strictly by `seq` with no gaps (G1).
//!
//! Pure data structure: it decides nothing about safety itself; callers say up to which `seq`
//! live messages are safe. No I/O.

use crate::protocol::types::{ChatRecord, Seq};
use std::cell::Cell;
use std::collections::BTreeMap;

/// Messages between "delivered" and "received", kept in `seq` order.
#[derive(Debug, Default)]
pub struct Order {
    /// Highest delivered seq: everything up to here is in the replica.
    delivered: Seq,
    /// The current epoch's cut: every seq up to it is final (held by the server), so it counts
    /// as received when the token asks how far this node has everything.
    base: Seq,
    /// Live messages of the current epoch (seq > base), delivered once safe.
    live: BTreeMap<Seq, ChatRecord>,
    /// Final records (from a replica, via history transfer), deliverable as soon as contiguous.
    finals: BTreeMap<Seq, ChatRecord>,
    /// Where the last [`Order::aru`] walk ended: it only grows until [`Order::reset_epoch`]
    /// drops live messages (records are only added, or delivered, which keeps them counted),
    /// so the next walk starts there instead of at `delivered`, thousands of records below
    /// in a flood.
    walked: Cell<Seq>,
}

impl Order {
    /// A queue whose replica already holds everything up to `delivered`.
    pub fn new(delivered: Seq) -> Order {
        Order {
            delivered,
            base: delivered,
            ..Order::default()
        }
    }

    /// Highest delivered seq.
    pub fn delivered(&self) -> Seq {
        self.delivered
    }

    /// The current epoch's cut.
    pub fn base(&self) -> Seq {
        self.base
    }

    /// Starts a new epoch whose history is final up to `cut`: live messages of the old epoch
    /// are dropped (the server holds the agreed ones; they come back as final records).
    pub fn reset_epoch(&mut self, cut: Seq) {
        self.base = cut;
        self.live.clear();
        self.finals.retain(|s, _| *s <= cut);
        self.walked.set(Seq(0));
    }

    /// Adds a live message; false if it is a duplicate or already delivered.
    pub fn insert_live(&mut self, rec: ChatRecord) -> bool {
        if rec.seq <= self.delivered.max(self.base) || self.live.contains_key(&rec.seq) {
            return false;
        }
        self.live.insert(rec.seq, rec);
        true
    }

    /// Adds a final record; false if it is a duplicate or already delivered.
    pub fn insert_final(&mut self, rec: ChatRecord) -> bool {
        if rec.seq <= self.delivered || self.finals.contains_key(&rec.seq) {
            return false;
        }
        self.finals.insert(rec.seq, rec);
        true
    }

    /// Whether `seq` is delivered or held.
    pub fn has(&self, seq: Seq) -> bool {
        seq <= self.delivered || self.live.contains_key(&seq) || self.finals.contains_key(&seq)
    }

    /// A held live message (to retransmit it).
    pub fn live(&self, seq: Seq) -> Option<&ChatRecord> {
        self.live.get(&seq)
    }

    /// Live messages in `lo..=hi`, in order.
    pub fn live_range(&self, lo: Seq, hi: Seq) -> Vec<ChatRecord> {
        if lo > hi {
            return Vec::new();
        }
        self.live.range(lo..=hi).map(|(_, r)| r.clone()).collect()
    }

    /// All received up to: the highest seq such that everything up to it is delivered, final
    /// at the server (the cut), or held here.
    pub fn aru(&self) -> Seq {
        let mut s = self.delivered.max(self.base).max(self.walked.get());
        while self.live.contains_key(&s.next()) || self.finals.contains_key(&s.next()) {
            s = s.next();
        }
        self.walked.set(s);
        s
    }

    /// Number of messages held back.
    pub fn held(&self) -> usize {
        self.live.len() + self.finals.len()
    }

    /// Removes and returns, in order, every message that may be delivered now: final records
    /// as soon as they are contiguous, live ones once also at or below `safe`.
    pub fn take_deliverable(&mut self, safe: Seq) -> Vec<ChatRecord> {
        let mut out = Vec::new();
        loop {
            let next = self.delivered.next();
            let rec = match self.finals.remove(&next) {
                Some(rec) => rec,
                None if next <= safe && next > self.base => match self.live.remove(&next) {
                    Some(rec) => rec,
                    None => break,
                },
                None => break,
            };
            self.live.remove(&next);
            self.delivered = next;
            out.push(rec);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::NodeId;
    use uuid::Uuid;

    fn rec(seq: u64) -> ChatRecord {
        ChatRecord {
            seq: Seq(seq),
            id: Uuid::new_v4(),
            from: NodeId::random(),
            name: "n".into(),
            text: format!("m{seq}"),
            sent_at_ms: 0,
        }
    }

    fn seqs(recs: &[ChatRecord]) -> Vec<u64> {
        recs.iter().map(|r| r.seq.0).collect()
    }

    #[test]
    fn early_arrivals_wait_for_the_gap_and_for_safe() {
        let mut o = Order::new(Seq(0));
        assert!(o.insert_live(rec(2)));
        assert!(o.insert_live(rec(3)));
        assert_eq!(o.aru(), Seq(0));
        assert!(o.take_deliverable(Seq(3)).is_empty());
        assert!(o.insert_live(rec(1)));
        assert_eq!(o.aru(), Seq(3));
        assert_eq!(seqs(&o.take_deliverable(Seq(2))), vec![1, 2]);
        assert_eq!(seqs(&o.take_deliverable(Seq(9))), vec![3]);
        assert_eq!(o.delivered(), Seq(3));
    }

    #[test]
    fn duplicates_and_delivered_seqs_are_refused() {
        let mut o = Order::new(Seq(5));
        assert!(!o.insert_live(rec(5)));
        assert!(o.insert_live(rec(6)));
        assert!(!o.insert_live(rec(6)));
        assert!(!o.insert_final(rec(4)));
    }

    #[test]
    fn finals_fill_up_to_the_cut_then_live_messages_follow() {
        let mut o = Order::new(Seq(0));
        o.reset_epoch(Seq(3));
        assert!(!o.insert_live(rec(3)), "seqs up to the cut are never live");
        assert!(o.insert_live(rec(4)));
        assert_eq!(o.aru(), Seq(4), "the cut counts as received");
        assert!(o.take_deliverable(Seq(4)).is_empty());
        for s in 1..=3 {
            o.insert_final(rec(s));
        }
        assert_eq!(seqs(&o.take_deliverable(Seq(4))), vec![1, 2, 3, 4]);
    }

    #[test]
    fn the_aru_walks_on_from_where_it_stopped_and_falls_back_with_a_new_epoch() {
        let mut o = Order::new(Seq(0));
        (1..=5).for_each(|s| assert!(o.insert_live(rec(s))));
        assert_eq!(o.aru(), Seq(5));
        o.insert_live(rec(7));
        assert_eq!(o.aru(), Seq(5), "a gap at 6");
        o.insert_live(rec(6));
        assert_eq!(o.aru(), Seq(7));
        assert_eq!(seqs(&o.take_deliverable(Seq(3))), vec![1, 2, 3]);
        assert_eq!(o.aru(), Seq(7), "delivered records still count");
        o.reset_epoch(Seq(4));
        assert_eq!(o.aru(), Seq(4), "the live ones above the cut are gone");
        o.insert_final(rec(5));
        assert_eq!(o.aru(), Seq(5));
    }

    #[test]
    fn a_new_epoch_drops_live_messages() {
        let mut o = Order::new(Seq(0));
        o.insert_live(rec(1));
        o.insert_live(rec(2));
        o.reset_epoch(Seq(1));
        assert_eq!(o.held(), 0);
        assert!(o.take_deliverable(Seq(9)).is_empty());
        assert!(o.has(Seq(0)) && !o.has(Seq(1)));
    }
}
