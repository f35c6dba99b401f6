//! The token and the rules a holder applies to it: sequence allocation, the all-received-up-to
//! computation that makes delivery "safe", and retransmission requests.
//!
//! Pure functions on plain data: no clock, no I/O, no knowledge of who is alive.
//!
//! # Safe delivery (after Totem's "safe" order)
//! Each member contributes `aru`, the highest seq up to which it has received everything. The
//! token carries one slot per ring position with that member's `aru` at its latest visit, and
//! `safe` is the smallest slot: every member has received everything up to it (an `aru` never
//! decreases within an epoch). So a message is safe as soon as the token has visited every
//! member once after it was stamped, wherever the rotation started. A member delivers only up
//! to `safe`, which is why a recovery never has to take back a message somebody already
//! displayed: every member of the view holds it, so any member that answers the recovery
//! reports it.

use crate::protocol::limits::MAX_RTR;
use crate::protocol::types::{Epoch, NodeId, Seq};
use serde::{Deserialize, Serialize};
use std::time::Duration;

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
    /// Each member's `aru` at its latest visit, by position in the view's ring order.
    pub arus: Vec<Seq>,
    /// Every member has received everything up to here: it may be delivered.
    pub safe: Seq,
    /// Seqs that some member is missing; any holder that has them multicasts them again.
    pub rtr: Vec<Seq>,
    /// A member that wants to send: holders pass at once instead of idling until it holds.
    pub wake: Option<NodeId>,
}

impl Token {
    /// The first token of a view of `members` members: everything up to `cut` is final.
    pub fn first(epoch: Epoch, from: NodeId, to: NodeId, cut: Seq, members: usize) -> Token {
        Token {
            epoch,
            from,
            to,
            hop: 1,
            seq: cut,
            arus: vec![cut; members],
            safe: cut,
            rtr: Vec::new(),
            wake: None,
        }
    }

    /// Records the `aru` of the holder at ring position `pos`; `safe` rises to the smallest
    /// slot. The caller checks that the token has one slot per member.
    pub fn record_aru(&mut self, pos: usize, aru: Seq) {
        if let Some(slot) = self.arus.get_mut(pos) {
            *slot = (*slot).max(aru);
        }
        if let Some(min) = self.arus.iter().min() {
            self.safe = self.safe.max(*min);
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

/// How long a token pass may show no progress before its sender sends it again: the receiver
/// may hold an idle token for `idle_hold` before passing it on, and a quarter of the token
/// timeout (at least 20 ms) covers a lost datagram well before the server has to recover.
pub fn retransmit_interval(token_timeout: Duration, idle_hold: Duration) -> Duration {
    idle_hold + (token_timeout / 4).max(Duration::from_millis(20))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token::first(Epoch(1), NodeId::random(), NodeId::random(), Seq(10), 3)
    }

    #[test]
    fn safe_rises_once_every_member_has_it() {
        let mut t = token();
        // Member 1 stamps 11..=12; members 2 and 0 then receive them.
        t.record_aru(1, Seq(10));
        assert_eq!(t.allocate(), Seq(11));
        assert_eq!(t.allocate(), Seq(12));
        t.record_aru(1, Seq(12));
        t.record_aru(2, Seq(12));
        assert_eq!(t.safe, Seq(10), "member 0 has not shown it yet");
        t.record_aru(0, Seq(12));
        assert_eq!(
            t.safe,
            Seq(12),
            "one visit to every member after stamping is enough"
        );
    }

    #[test]
    fn one_member_behind_holds_safe_back() {
        let mut t = token();
        t.seq = Seq(20);
        t.record_aru(0, Seq(20));
        t.record_aru(1, Seq(15));
        t.record_aru(2, Seq(20));
        assert_eq!(t.safe, Seq(15));
    }

    #[test]
    fn safe_and_slots_never_go_down() {
        let mut t = token();
        t.safe = Seq(30);
        t.record_aru(0, Seq(40));
        t.record_aru(0, Seq(35));
        assert_eq!(t.arus[0], Seq(40));
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
