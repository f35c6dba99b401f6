//! The hold-back queue: messages received out of order wait here until they may be delivered,
//! strictly by `seq` with no gaps (G1).
//!
//! Pure data structure: it decides nothing about safety itself; callers say up to which `seq`
//! live messages are safe. No I/O.

use crate::protocol::types::{ChatRecord, Seq};
use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};

/// How far above the delivered seq (or the cut) a live message may be held. An honest ring
/// stays far inside it: a holder stamps at most `MAX_IN_FLIGHT` beyond `safe`, `safe` never
/// passes this node's aru, and the node learns it at every token visit. A message beyond it
/// is refused like a lost one.
const MAX_LIVE_SPAN: u64 = 1 << 16;

/// Messages between "delivered" and "received", kept in `seq` order.
#[derive(Debug, Default)]
pub struct Order {
    /// Highest delivered seq: everything up to here is in the replica.
    delivered: Seq,
    /// The current epoch's cut: every seq up to it is final (held by the server), so it counts
    /// as received when the token asks how far this node has everything.
    base: Seq,
    /// Live messages of the current epoch (seq > base), delivered once safe.
    live: Window,
    /// Final records (from a replica, via history transfer), deliverable as soon as contiguous.
    finals: BTreeMap<Seq, ChatRecord>,
    /// Where the last [`Order::aru`] walk ended: it only grows until [`Order::reset_epoch`]
    /// drops live messages (records are only added, or delivered, which keeps them counted),
    /// so the next walk starts there instead of at `delivered`, thousands of records below
    /// in a flood.
    walked: Cell<Seq>,
}

/// Live messages by seq, in a window that starts just above `max(delivered, base)`: a flood
/// holds thousands, and a seq's slot is found, filled and emptied in one step, where a tree
/// searches its levels each time.
#[derive(Debug, Default)]
struct Window {
    /// The seq of `slots[0]`.
    first: Seq,
    slots: VecDeque<Option<ChatRecord>>,
    /// How many slots hold a message.
    held: usize,
}

impl Window {
    fn slot(&self, seq: Seq) -> Option<usize> {
        let at = seq.0.checked_sub(self.first.0)?;
        usize::try_from(at).ok().filter(|&at| at < self.slots.len())
    }

    fn get(&self, seq: Seq) -> Option<&ChatRecord> {
        self.slots.get(self.slot(seq)?)?.as_ref()
    }

    /// Adds `rec` (its seq at or above `first`, less than [`MAX_LIVE_SPAN`] above it); false
    /// if its slot is taken or it lies outside.
    fn insert(&mut self, rec: ChatRecord) -> bool {
        // The seq comes off the network: below the window is refused too, never wrapped.
        let Some(at) = rec.seq.0.checked_sub(self.first.0) else {
            return false;
        };
        if at >= MAX_LIVE_SPAN {
            return false;
        }
        let at = at as usize;
        if at >= self.slots.len() {
            self.slots.resize(at + 1, None);
        }
        if self.slots[at].is_some() {
            return false;
        }
        self.slots[at] = Some(rec);
        self.held += 1;
        true
    }

    fn take(&mut self, seq: Seq) -> Option<ChatRecord> {
        let rec = self.slots.get_mut(self.slot(seq)?)?.take()?;
        self.held -= 1;
        Some(rec)
    }

    /// Drops every slot below `first`, which becomes the window's start.
    fn start_at(&mut self, first: Seq) {
        while self.first < first {
            match self.slots.pop_front() {
                Some(slot) => self.held -= usize::from(slot.is_some()),
                None => {
                    self.first = first;
                    return;
                }
            }
            self.first = self.first.next();
        }
    }

    fn clear(&mut self, first: Seq) {
        self.slots.clear();
        self.held = 0;
        self.first = first;
    }
}

impl Order {
    /// A queue whose replica already holds everything up to `delivered`.
    pub fn new(delivered: Seq) -> Order {
        let mut order = Order {
            delivered,
            base: delivered,
            ..Order::default()
        };
        order.live.clear(delivered.next());
        order
    }

    /// Highest delivered seq.
    pub fn delivered(&self) -> Seq {
        self.delivered
    }

    /// The current epoch's cut.
    pub fn base(&self) -> Seq {
        self.base
    }

    /// The lowest seq that can be live: above both the delivered seq and the cut.
    fn live_floor(&self) -> Seq {
        self.delivered.max(self.base).next()
    }

    /// Starts a new epoch whose history is final up to `cut`: live messages of the old epoch
    /// are dropped (the server holds the agreed ones; they come back as final records).
    pub fn reset_epoch(&mut self, cut: Seq) {
        self.base = cut;
        self.live.clear(self.live_floor());
        self.finals.retain(|s, _| *s <= cut);
        self.walked.set(Seq(0));
    }

    /// Adds a live message; false if it is a duplicate or already delivered (or absurdly far
    /// ahead, see [`MAX_LIVE_SPAN`]).
    pub fn insert_live(&mut self, rec: ChatRecord) -> bool {
        rec.seq >= self.live_floor() && self.live.insert(rec)
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
        seq <= self.delivered || self.live.get(seq).is_some() || self.finals.contains_key(&seq)
    }

    /// A held live message (to retransmit it).
    pub fn live(&self, seq: Seq) -> Option<&ChatRecord> {
        self.live.get(seq)
    }

    /// Live messages in `lo..=hi`, in order.
    pub fn live_range(&self, lo: Seq, hi: Seq) -> Vec<ChatRecord> {
        let lo = lo.max(self.live.first);
        let mut out = Vec::new();
        let mut seq = lo;
        while seq <= hi {
            match self.live.slot(seq) {
                Some(at) => out.extend(self.live.slots[at].iter().cloned()),
                None => break,
            }
            seq = seq.next();
        }
        out
    }

    /// All received up to: the highest seq such that everything up to it is delivered, final
    /// at the server (the cut), or held here.
    pub fn aru(&self) -> Seq {
        let mut s = self.delivered.max(self.base).max(self.walked.get());
        while self.live.get(s.next()).is_some() || self.finals.contains_key(&s.next()) {
            s = s.next();
        }
        self.walked.set(s);
        s
    }

    /// Number of messages held back.
    pub fn held(&self) -> usize {
        self.live.held + self.finals.len()
    }

    /// Removes and returns, in order, every message that may be delivered now: final records
    /// as soon as they are contiguous, live ones once also at or below `safe`.
    pub fn take_deliverable(&mut self, safe: Seq) -> Vec<ChatRecord> {
        let mut out = Vec::new();
        loop {
            let next = self.delivered.next();
            let rec = match self.finals.remove(&next) {
                Some(rec) => rec,
                None if next <= safe && next > self.base => match self.live.take(next) {
                    Some(rec) => rec,
                    None => break,
                },
                None => break,
            };
            self.delivered = next;
            out.push(rec);
        }
        self.live.start_at(self.live_floor());
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
    fn the_window_holds_gaps_ranges_and_refuses_what_is_absurdly_far_ahead() {
        let mut o = Order::new(Seq(10));
        assert!(o.insert_live(rec(14)));
        assert!(o.insert_live(rec(12)));
        assert!(
            !o.insert_live(rec(10 + MAX_LIVE_SPAN + 1)),
            "beyond the span"
        );
        assert!(o.insert_live(rec(10 + MAX_LIVE_SPAN)));
        assert!(
            !o.live.insert(rec(3)),
            "below the window, even past its guard"
        );
        assert_eq!(o.held(), 3);
        assert_eq!(seqs(&o.live_range(Seq(1), Seq(14))), vec![12, 14]);
        assert!(o.has(Seq(12)) && !o.has(Seq(13)) && o.live(Seq(13)).is_none());
        o.insert_live(rec(11));
        o.insert_live(rec(13));
        assert_eq!(seqs(&o.take_deliverable(Seq(13))), vec![11, 12, 13]);
        assert_eq!(o.held(), 2);
        assert!(!o.insert_live(rec(12)), "delivered");
        o.insert_final(rec(14));
        assert_eq!(
            seqs(&o.take_deliverable(Seq(13))),
            vec![14],
            "a final goes first"
        );
        assert_eq!(o.held(), 1, "the live copy of 14 is gone with it");
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
