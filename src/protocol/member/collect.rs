//! Collecting in a quiet ring: a holder that stamped lines while nothing else was in flight
//! keeps the token and asks every member for its aru ([`Msg::AskAru`]); each answers straight
//! to it ([`Msg::Aru`]) once it holds the lines, each answer raises that member's slot as its
//! visit would, and the last raises `safe`, so a line is safe after three one-way trips
//! whatever the ring's size. Unanswered in time, the token goes round as usual.
//!
//! Methods of `MemberCore` over `state::Ring`; passing and delivering live in `token.rs`.
//! No clock, no I/O.

use super::state::Timer;
use super::MemberCore;
use crate::protocol::token_ring::Token;
use crate::protocol::types::{Epoch, NodeId, Seq};
use crate::protocol::wire::Msg;
use std::time::{Duration, Instant};

/// How long a holder that collects the arus for its lines waits for them, at least: a
/// member that answers later is counted when the token comes round instead. Long enough for
/// a member that is slow to be scheduled (a few ms on a busy host): going round would wait
/// for that member too, and more; cutting short only pays when a pack or an answer was lost.
const COLLECT_WAIT: Duration = Duration::from_millis(3);

/// The smallest ring whose holders collect (see [`MemberCore::should_collect`]).
const COLLECT_FROM_MEMBERS: usize = 3;

/// What each member adds to [`COLLECT_WAIT`]: the holder reads one answer from each.
const COLLECT_WAIT_PER_MEMBER: Duration = Duration::from_micros(50);

impl MemberCore {
    /// Whether to keep the token and ask the members for their arus rather than send it round
    /// for them: everything above `safe` is ours, stamped while we hold this token, and
    /// nobody else asked for it or misses anything. In a quiet ring a line is then safe after
    /// three one-way trips (its pack, the answers, the pass that says so) whatever the ring's
    /// size, where a rotation takes one hop per member. In a ring of two the pass is quicker:
    /// it reaches the only other member with the pack, and that member's visit raises `safe`.
    pub(super) fn should_collect(&self, token: &Token) -> bool {
        let Some(ring) = self.state.ring() else {
            return false;
        };
        token.seq > token.safe
            && token.safe >= ring.arrived_seq
            && token.rtr.is_empty()
            && token.wake.is_none()
            && self.view.members.len() >= COLLECT_FROM_MEMBERS
            && !self.state.leaving()
    }

    /// Holds the token and asks every member to answer, once it holds everything up to the
    /// token's `seq`, with its aru (see [`MemberCore::on_aru`]). Lines stamped meanwhile
    /// join the collection, which still ends at its first deadline.
    pub(super) fn collect(&mut self, now: Instant, token: Token) {
        let wait = COLLECT_WAIT + COLLECT_WAIT_PER_MEMBER * self.view.members.len() as u32;
        let seq = token.seq;
        let Some(ring) = self.state.ring_mut() else {
            return;
        };
        ring.held = Some(token);
        let deadline = *ring.collect_deadline.get_or_insert(now + wait);
        self.timers.set(Timer::IdlePass, deadline);
        self.stats.collects += 1;
        self.send(Msg::AskAru {
            epoch: self.view.epoch,
            from: self.cfg.id,
            seq,
        });
    }

    /// A member's answer to our collection: its slot rises, and once every slot shows what
    /// we stamped, `safe` rises and we pass (to the whole group, which delivers on it).
    pub(super) fn on_aru(&mut self, now: Instant, epoch: Epoch, from: NodeId, aru: Seq) {
        let Some(pos) = self
            .view
            .position(from)
            .filter(|_| epoch == self.view.epoch)
        else {
            return;
        };
        let Some(token) = self.state.ring_mut().and_then(|r| r.held.as_mut()) else {
            return; // too late: the token has gone on
        };
        if token.safe >= token.seq {
            return; // an idle token: nothing to collect
        }
        // An aru above what was stamped cannot be true; it promises no more than `seq`.
        token.record_aru(pos, aru.min(token.seq));
        let (safe, complete) = (token.safe, token.safe >= token.seq);
        self.note_safe(safe);
        if complete {
            if let Some(token) = self.take_held() {
                self.pass(now, token);
            }
        }
        self.deliver_ready();
    }

    /// A holder asks for our aru once we hold everything up to `seq`.
    pub(super) fn on_collect(&mut self, epoch: Epoch, from: NodeId, seq: Seq) {
        if epoch != self.view.epoch || from == self.cfg.id || !self.view.contains(from) {
            return;
        }
        if let Some(ring) = self.state.ring_mut() {
            ring.collect_for = Some((from, seq));
            ring.forget_wake_of(from);
            self.answer_collect();
        }
    }

    /// Answers the collecting holder, straight to it, once we hold what it asked about. Runs
    /// on every pack that arrives: the aru, a walk over what is held, is only worked out
    /// while a holder waits for it (in a flood, thousands of records are held and none is).
    pub(super) fn answer_collect(&mut self) {
        let Some((holder, seq)) = self.state.ring().and_then(|r| r.collect_for) else {
            return;
        };
        let aru = self.order.aru();
        if aru < seq {
            return;
        }
        if let Some(ring) = self.state.ring_mut() {
            ring.collect_for = None;
        }
        self.send_to(
            holder,
            Msg::Aru {
                epoch: self.view.epoch,
                from: self.cfg.id,
                aru,
            },
        );
    }
}
