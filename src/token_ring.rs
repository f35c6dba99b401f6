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

use crate::protocol::limits::{MAX_IN_FLIGHT, MAX_RTR};
use crate::protocol::types::{Epoch, NodeId, Seq};
use crate::protocol::wire::OUT_OF_RANGE;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The token: only its holder may stamp and send messages (G3), and it carries the sequence
/// counter, which gives every node the same total order (G1).
///
/// On the wire the `aru` slots and the requests travel as offsets below
/// `seq`: flow control ([`MAX_IN_FLIGHT`]) keeps them short, so a token for
/// [`crate::protocol::limits::MAX_MEMBERS`] members fits one datagram.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TokenWire", into = "TokenWire")]
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

/// The token as it travels: like [`Token`], with `lag[i] = seq - arus[i]` and each request
/// as `seq - rtr[i]`. An `aru` slot is never below `safe` and `seq - safe` stays within
/// [`MAX_IN_FLIGHT`] (holders stop stamping there), so a lag takes at most four digits where a
/// counter can take sixteen.
#[derive(Serialize, Deserialize)]
struct TokenWire {
    epoch: Epoch,
    from: NodeId,
    to: NodeId,
    hop: u64,
    seq: Seq,
    lag: Vec<u64>,
    safe: Seq,
    rtr: Vec<u64>,
    wake: Option<NodeId>,
}

impl From<Token> for TokenWire {
    fn from(t: Token) -> TokenWire {
        // A slot or request above `seq` cannot happen (nothing above it was stamped); were
        // one there, it would go out as `seq`, which asks and promises less.
        let below = |s: &Seq| t.seq.0.saturating_sub(s.0);
        TokenWire {
            lag: t.arus.iter().map(below).collect(),
            rtr: t.rtr.iter().map(below).collect(),
            epoch: t.epoch,
            from: t.from,
            to: t.to,
            hop: t.hop,
            seq: t.seq,
            safe: t.safe,
            wake: t.wake,
        }
    }
}

impl TryFrom<TokenWire> for Token {
    type Error = String;

    /// Rejects offsets that would reach below seq 0 (G6).
    fn try_from(w: TokenWire) -> Result<Token, String> {
        let seq = w.seq.0;
        let back = |what: &str, offsets: Vec<u64>| -> Result<Vec<Seq>, String> {
            offsets
                .into_iter()
                .map(|d| match seq.checked_sub(d) {
                    Some(s) => Ok(Seq(s)),
                    None => Err(format!("{OUT_OF_RANGE}{what} {d} is above seq {seq}")),
                })
                .collect()
        };
        Ok(Token {
            arus: back("lag", w.lag)?,
            rtr: back("rtr offset", w.rtr)?,
            epoch: w.epoch,
            from: w.from,
            to: w.to,
            hop: w.hop,
            seq: w.seq,
            safe: w.safe,
            wake: w.wake,
        })
    }
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

    /// How many more lines the holder may stamp under flow control: `seq - safe` stays
    /// within [`MAX_IN_FLIGHT`]. The ring keeps rotating and retransmitting while it is
    /// full, so `safe` catches up and stamping resumes.
    pub fn room(&self) -> u64 {
        MAX_IN_FLIGHT.saturating_sub(self.seq.0.saturating_sub(self.safe.0))
    }

    /// Drops requests that every member now holds (they are at or below `safe`).
    pub fn drop_safe_requests(&mut self) {
        let safe = self.safe;
        self.rtr.retain(|s| *s > safe);
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

/// How long a token pass may show no progress before its sender sends it again: a quarter of
/// the token timeout (at least 20 ms) covers a lost datagram well before the server has to
/// recover. The receiver shows at once that a pass arrived, even one it holds idle: by its
/// own pass to the group, or else by an acknowledgement.
pub fn retransmit_interval(token_timeout: Duration) -> Duration {
    (token_timeout / 4).max(Duration::from_millis(20))
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
    fn flow_control_stops_stamping_at_max_in_flight() {
        let mut t = token();
        assert_eq!(t.room(), MAX_IN_FLIGHT);
        t.seq = Seq(10 + MAX_IN_FLIGHT - 3);
        assert_eq!(t.room(), 3);
        t.seq = Seq(10 + MAX_IN_FLIGHT);
        assert_eq!(t.room(), 0);
        t.record_aru(0, Seq(20));
        t.record_aru(1, Seq(20));
        t.record_aru(2, Seq(20));
        assert_eq!(t.room(), 10, "safe rose, so the ring may stamp again");
    }

    #[test]
    fn requests_at_or_below_safe_are_dropped() {
        let mut t = token();
        t.seq = Seq(30);
        t.safe = Seq(20);
        t.rtr = vec![Seq(19), Seq(20), Seq(21), Seq(29)];
        t.drop_safe_requests();
        assert_eq!(t.rtr, vec![Seq(21), Seq(29)]);
    }

    #[test]
    fn wire_form_carries_slots_and_requests_as_offsets_below_seq() {
        let mut t = token();
        t.seq = Seq(1000);
        t.arus = vec![Seq(1000), Seq(990), Seq(10)];
        t.rtr = vec![Seq(995)];
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["lag"], serde_json::json!([0, 10, 990]));
        assert_eq!(json["rtr"], serde_json::json!([5]));
        assert!(json.get("arus").is_none());
        let back: Token = serde_json::from_value(json).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn g6_a_lag_above_seq_is_refused() {
        let mut json = serde_json::to_value(token()).unwrap();
        json["lag"] = serde_json::json!([0, 11, 0]);
        let err = serde_json::from_value::<Token>(json.clone()).unwrap_err();
        assert!(err.to_string().starts_with(OUT_OF_RANGE), "{err}");
        json["lag"] = serde_json::json!([0, 10, 0]);
        json["rtr"] = serde_json::json!([11]);
        assert!(serde_json::from_value::<Token>(json).is_err());
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
