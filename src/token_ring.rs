//! The token and the rules a holder applies to it: sequence allocation, the all-received-up-to
//! computation that makes delivery "safe", and retransmission requests.
//!
//! Pure functions on plain data: no clock, no I/O, no knowledge of who is alive.
//!
//! # Safe delivery (after Totem's "safe" order)
//! Each member contributes `aru`, the highest seq up to which it has received everything. The
//! token carries `rot_min`, the smallest `aru` of the members it visited in the current
//! rotation. When the token reaches the first member of the ring, a rotation is complete: every
//! member has received everything up to `rot_min` (an `aru` never decreases within an epoch),
//! so `safe` rises to it. A member delivers only up to `safe`, which is why a recovery never has
//! to take back a message somebody already displayed: every member of the view holds it, so
//! any member that answers the recovery reports it.

use crate::types::{Epoch, NodeId, Seq};
use crate::wire::MAX_RTR;
use serde::{Deserialize, Serialize};

/// The token: only its holder may stamp and send messages (G3), and it carries the sequence
/// counter, which gives every node the same total order (G1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Epoch of the view this token belongs to. A token from an older epoch is stale.
    pub epoch: Epoch,
    /// Who passed it.
    pub from: NodeId,
    /// Who holds it next.
    pub to: NodeId,
    /// Number of passes in this epoch; a receiver accepts each hop once, so retransmitted
    /// copies of a pass are harmless.
    pub hop: u64,
    /// Highest seq stamped so far.
    pub seq: Seq,
    /// Smallest member `aru` seen in the current rotation.
    pub rot_min: Seq,
    /// Every member has received everything up to here: it may be delivered.
    pub safe: Seq,
    /// Seqs that some member is missing; any holder that has them multicasts them again.
    pub rtr: Vec<Seq>,
    /// A member that wants to send: holders pass at once instead of idling until it holds.
    pub wake: Option<NodeId>,
}

impl Token {
    /// The first token of a new view: everything up to `cut` is already final.
    pub fn first(epoch: Epoch, from: NodeId, to: NodeId, cut: Seq) -> Token {
        Token {
            epoch,
            from,
            to,
            hop: 1,
            seq: cut,
            rot_min: cut,
            safe: cut,
            rtr: Vec::new(),
            wake: None,
        }
    }

    /// Folds the holder's `aru` into the rotation; `starts_rotation` is true for the first
    /// member of the ring, where the previous rotation is complete and `safe` may rise.
    pub fn record_aru(&mut self, starts_rotation: bool, aru: Seq) {
        if starts_rotation {
            self.safe = self.safe.max(self.rot_min);
            self.rot_min = aru;
        } else {
            self.rot_min = self.rot_min.min(aru);
        }
    }

    /// Allocates the next sequence number (the holder stamps a message with it).
    pub fn allocate(&mut self) -> Seq {
        self.seq = self.seq.next();
        self.seq
    }

    /// Adds requests for the seqs in `aru+1 ..= self.seq` that `has` says are missing, up to
    /// [`MAX_RTR`] requests in all.
    pub fn request_missing(&mut self, aru: Seq, has: impl Fn(Seq) -> bool) {
        let mut s = aru.next();
        while s <= self.seq && self.rtr.len() < MAX_RTR {
            if !has(s) && !self.rtr.contains(&s) {
                self.rtr.push(s);
            }
            s = s.next();
        }
    }

    /// The pass of this token to `to`: the next hop.
    pub fn pass(&self, from: NodeId, to: NodeId) -> Token {
        Token {
            from,
            to,
            hop: self.hop + 1,
            ..self.clone()
        }
    }

    /// Whether the ring has work in flight, so the holder should pass at once rather than idle:
    /// unsafe messages (they become safe only by rotating), retransmission requests, or a
    /// member asking for the token.
    pub fn is_busy(&self) -> bool {
        self.seq > self.safe || !self.rtr.is_empty() || self.wake.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token::first(Epoch(1), NodeId::random(), NodeId::random(), Seq(10))
    }

    #[test]
    fn safe_rises_only_when_a_rotation_completes() {
        let mut t = token();
        // Rotation 1: first member stamps 11..=12; the second has received them.
        t.record_aru(true, Seq(10));
        assert_eq!(t.allocate(), Seq(11));
        assert_eq!(t.allocate(), Seq(12));
        t.record_aru(false, Seq(12));
        assert_eq!(t.safe, Seq(10));
        // Back at the first member: the rotation saw min aru 10, so safe stays 10.
        t.record_aru(true, Seq(12));
        assert_eq!(t.safe, Seq(10));
        t.record_aru(false, Seq(12));
        // The next rotation completes with everyone at 12.
        t.record_aru(true, Seq(12));
        assert_eq!(t.safe, Seq(12));
    }

    #[test]
    fn one_member_behind_holds_safe_back() {
        let mut t = token();
        t.seq = Seq(20);
        t.record_aru(true, Seq(20));
        t.record_aru(false, Seq(15));
        t.record_aru(false, Seq(20));
        t.record_aru(true, Seq(20));
        assert_eq!(t.safe, Seq(15));
    }

    #[test]
    fn safe_never_goes_down() {
        let mut t = token();
        t.safe = Seq(30);
        t.rot_min = Seq(5);
        t.record_aru(true, Seq(40));
        assert_eq!(t.safe, Seq(30));
    }

    #[test]
    fn missing_seqs_are_requested_once_and_bounded() {
        let mut t = token();
        t.seq = Seq(200);
        t.request_missing(Seq(10), |s| s.0 % 2 == 0);
        assert_eq!(t.rtr.len(), MAX_RTR);
        assert_eq!(t.rtr[0], Seq(11));
        let before = t.rtr.clone();
        t.request_missing(Seq(10), |s| s.0 % 2 == 0);
        assert_eq!(t.rtr, before);
    }

    #[test]
    fn pass_increments_the_hop_and_keeps_the_counters() {
        let t = token();
        let a = NodeId::random();
        let b = NodeId::random();
        let p = t.pass(a, b);
        assert_eq!((p.hop, p.from, p.to, p.seq), (2, a, b, t.seq));
        assert!(!p.is_busy());
    }
}
