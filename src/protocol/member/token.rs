//! The ring, from one member's side: accepting token visits (stale, early and duplicate
//! tokens are dropped or kept aside, a pass that overtook its packs waits for them),
//! retransmitting what others miss, stamping outbox lines, collecting the members' arus for
//! what we stamped into a quiet ring (and answering such a collection), holding an idle token
//! or passing it (to the group when it raised `safe`, else to the successor, or to a member
//! that asked for it, alone, acknowledged), sending an unconfirmed pass again, waking an idle
//! holder, and delivering what is safe.
//!
//! Methods of `MemberCore` over the ring data in `state::Ring`; they never change the phase
//! (joins, views and leaves live in `member.rs`). No clock, no I/O.

use super::state::{Phase, ServerContact, Timer, DIRECT_MISSES_TO_GIVE_UP, LOSS_MEMORY};
use super::MemberCore;
use crate::protocol::events::{MemberEvent, Output};
use crate::protocol::token_ring::{self, Token};
use crate::protocol::types::{ChatRecord, Epoch, GroupId, NodeId, Pending, Seq};
use crate::protocol::wire::{self, Msg};
use std::time::{Duration, Instant};

/// The longest a token that came ahead of packs it counts waits for them (at most a measured
/// round trip of our passes). Reordered packs come within microseconds; a lost one is asked
/// for on the token after this.
pub const REORDER_WAIT: Duration = Duration::from_millis(2);

/// Round trips (besides a quarter of the token timeout) that a member waits on a silent one
/// before it tells the server (see [`MemberCore::check_suspect`]).
const SUSPECT_ROUND_TRIPS: u32 = 16;

impl MemberCore {
    pub(super) fn on_token(&mut self, now: Instant, token: Token) {
        if token.epoch > self.view.epoch {
            if token.to == self.cfg.id
                && self.early_token.as_ref().is_none_or(|t| t.hop < token.hop)
            {
                self.early_token = Some(token);
            }
            return;
        }
        let Some(Phase::InRing(ring)) = self.state.phase_mut() else {
            // A superseded epoch's, or ours while its ring is frozen (gathering) or closed to
            // us (left out).
            self.stale_token(&token);
            return;
        };
        if token.epoch < self.view.epoch {
            self.stale_token(&token);
            return;
        }
        if token.arus.len() != self.view.members.len() {
            // Its `safe` would not speak for every member: never deliver on it.
            self.stats.stale += 1;
            log::debug!(
                "token with {} aru slots for a ring of {}",
                token.arus.len(),
                self.view.members.len()
            );
            return;
        }
        if ring.unconfirmed.as_ref().is_some_and(|t| token.hop > t.hop) {
            // The successor passed it on: as good as its acknowledgement.
            if let (0, Some(since)) = (ring.resends, ring.unconfirmed_since) {
                self.pass_rtt.sample(now.saturating_duration_since(since));
            }
            self.timers.stop(Timer::TokenRetransmit);
            self.pass_confirmed();
        }
        let Some(Phase::InRing(ring)) = self.state.phase_mut() else {
            return;
        };
        if ring.seen_holder.is_none_or(|(hop, _)| token.hop > hop) {
            ring.seen_holder = Some((token.hop, token.to));
        }
        ring.forget_wake_of(token.from);
        let fresh = token.to == self.cfg.id && token.hop > ring.last_hop;
        if fresh {
            ring.last_hop = token.hop;
        }
        let again = token.to == self.cfg.id && token.hop == ring.last_hop;
        if fresh {
            self.pass_confirmed();
        }
        self.note_safe(token.safe);
        if !fresh {
            self.deliver_ready();
            if token.from == self.cfg.id {
                return; // our own pass to ourselves, back through the group
            }
            if token.to == self.cfg.id {
                self.stats.duplicates += 1;
            }
            if again {
                // Our acknowledgement (or our pass) may have been lost: the passer would
                // keep sending this pass until the token came round to it.
                self.acknowledge(token.from, token.hop);
            }
            return;
        }
        self.timers.stop(Timer::TokenRetransmit);
        self.timers.stop(Timer::WakeResend);
        if let Some(ring) = self.state.ring_mut() {
            ring.woke_since = None;
            ring.wake_resends = 0;
        }
        self.stats.tokens_held += 1;
        if self.order.aru() < token.seq && !self.order.has(token.seq) {
            // Packs stamped before this pass may still be on their way to us (the group's
            // socket is not the one the pass came through): a visit now would report a
            // lower `aru`, ask for them again and hold `safe` back a whole rotation. Packs
            // come in the order they were sent, so once the newest is here, a gap below it
            // is a loss: the visit asks for it at once.
            // Reordering delays are below a round trip: on a fast network a lost pack is
            // asked for after one, not after the wait sized for a busy host.
            let wait = self
                .pass_rtt
                .srtt()
                .map_or(REORDER_WAIT, |rtt| rtt.min(REORDER_WAIT));
            if let Some(ring) = self.state.ring_mut() {
                ring.early_packs = Some(token);
                self.timers.set(Timer::TokenReorder, now + wait);
                return;
            }
        }
        self.visit_and_deliver(now, token);
    }

    /// The visit of a token that waited for packs: they came, or the wait is over.
    pub(super) fn visit_early_token(&mut self, now: Instant) {
        let Some(token) = self.state.ring_mut().and_then(|r| r.early_packs.take()) else {
            return;
        };
        self.timers.stop(Timer::TokenReorder);
        self.visit_and_deliver(now, token);
    }

    fn visit_and_deliver(&mut self, now: Instant, token: Token) {
        self.visit(now, token);
        // After the pass: the token goes on while the replica and the display are written.
        // Nothing the pass carries depends on our deliveries (its slots say what we
        // received), so "persist before you send" still holds for what does.
        self.deliver_ready();
    }

    fn stale_token(&mut self, token: &Token) {
        self.stats.stale += 1;
        let gathering = match self.state.phase() {
            Some(Phase::Gathering { epoch, .. }) => Some(*epoch),
            _ => None,
        };
        log::debug!(
            "stale token of epoch {} (ours {}, gathering {gathering:?})",
            token.epoch,
            self.view.epoch
        );
    }

    /// One token visit: retransmit, fold in our aru, ask for gaps, stamp, deliver, then hold or
    /// pass.
    fn visit(&mut self, now: Instant, mut token: Token) {
        // What is safe every member holds: nobody needs it sent again.
        token.drop_safe_requests();
        let asked = !token.rtr.is_empty();
        self.retransmit_requested(&mut token);
        if let Some(ring) = self.state.ring_mut() {
            ring.arrived_safe = token.safe;
            ring.arrived_seq = token.seq;
            // Whoever collected arus has passed the token on since.
            ring.collect_for = None;
            ring.lossy_visits = match asked {
                true => LOSS_MEMORY,
                false => ring.lossy_visits.saturating_sub(1),
            };
        }
        let aru = self.order.aru();
        let pos = self.view.position(self.cfg.id).unwrap_or(0);
        let safe_before = token.safe;
        token.record_aru(pos, aru);
        let order = &self.order;
        token.request_missing(aru, |s| order.has(s));
        if token.wake == Some(self.cfg.id) {
            token.wake = None;
        }
        let heard_wake = self.state.ring_mut().and_then(|r| r.heard_wake.take());
        if let Some((from, at)) = heard_wake {
            if now < at + self.cfg.idle_hold && from != self.cfg.id {
                token.wake.get_or_insert(from);
            }
        }
        let (passer, hop) = (token.from, token.hop);
        let stamped = self.stamp(&mut token);
        self.note_safe(token.safe);
        let news = stamped > 0 || token.safe > safe_before;
        if !self.hold_or_pass(now, token, news) {
            // Nobody else will show the passer that its pass arrived.
            self.acknowledge(passer, hop);
        }
    }

    fn acknowledge(&mut self, passer: NodeId, hop: u64) {
        let ack = Msg::TokenAck {
            epoch: self.view.epoch,
            from: self.cfg.id,
            hop,
        };
        self.send_to(passer, ack);
    }

    /// Sends again, packed, the requested records we hold; the requests for the others stay
    /// on the token. Requests are per seq, so a lost pack is answered by whoever holds each
    /// of its records.
    fn retransmit_requested(&mut self, token: &mut Token) {
        let mut found = Vec::new();
        let mut still_missing = Vec::new();
        for seq in std::mem::take(&mut token.rtr) {
            match self.order.live(seq) {
                Some(rec) => found.push(rec.clone()),
                None => still_missing.push(seq),
            }
        }
        token.rtr = still_missing;
        if found.is_empty() {
            return;
        }
        found.sort_by_key(|r| r.seq);
        found.dedup_by_key(|r| r.seq);
        self.stats.retransmissions += found.len() as u64;
        self.send_packed(found);
    }

    /// Multicasts live records of this epoch in as few `Data` packs as fit.
    fn send_packed(&mut self, recs: Vec<ChatRecord>) {
        // In a view, the vote names its chat: the member promised the view's gather.
        let group = self.vote.group.unwrap_or(GroupId(0));
        for msg in wire::pack_data(self.view.epoch, group, recs) {
            self.send(msg);
        }
    }

    /// Stamps up to a window of outbox lines with the next seqs and multicasts them, no
    /// more than flow control allows ([`Token::room`]).
    pub(super) fn stamp(&mut self, token: &mut Token) -> usize {
        let caught_up = self.order.delivered() >= self.order.base();
        if !caught_up || self.state.announced() {
            return 0;
        }
        let Some(ring) = self.state.ring_mut() else {
            return 0;
        };
        let ready: Vec<Pending> = self
            .outbox
            .iter()
            .skip(ring.in_flight)
            .take(
                self.cfg
                    .window
                    .min(usize::try_from(token.room()).unwrap_or(usize::MAX)),
            )
            .cloned()
            .collect();
        ring.in_flight += ready.len();
        let count = ready.len();
        let mut recs = Vec::with_capacity(count);
        for line in ready {
            let rec = ChatRecord {
                seq: token.allocate(),
                id: line.id,
                from: self.cfg.id,
                name: self.cfg.name.clone(),
                text: line.text,
                sent_at_ms: line.sent_at_ms,
            };
            self.order.insert_live(rec.clone());
            recs.push(rec);
        }
        self.stats.stamped += count as u64;
        self.send_packed(recs);
        if count > 0 {
            // We hold what we just stamped: our slot says so now, so the member before us
            // raises `safe` on it, not we ourselves a whole rotation later.
            let pos = self.view.position(self.cfg.id).unwrap_or(0);
            token.record_aru(pos, self.order.aru());
        }
        count
    }

    /// Keeps the token to collect the arus for what we just stamped into a quiet ring (see
    /// [`MemberCore::should_collect`]); else passes at once when the ring has work (we
    /// stamped, `safe` just rose and the others must learn it, lines we may not send yet
    /// wait) or we are leaving; else holds the idle token for `idle_hold`. Returns whether a
    /// pass went to the whole group.
    pub(super) fn hold_or_pass(&mut self, now: Instant, token: Token, news: bool) -> bool {
        if self.should_collect(&token) {
            self.collect(now, token);
            return false;
        }
        let in_flight = self.state.ring().map_or(0, |r| r.in_flight);
        let waiting = self.outbox.len() > in_flight;
        if news || token.is_busy() || waiting || self.state.leaving() {
            if !waiting && self.keeps_what_it_made_safe(&token) {
                return self.keep(now, token);
            }
            return self.pass(now, token);
        }
        self.hold_idle(now, token);
        false
    }

    /// Holds the token, with nothing in flight, until [`Timer::IdlePass`] (or a Wake).
    fn hold_idle(&mut self, now: Instant, token: Token) {
        if let Some(ring) = self.state.ring_mut() {
            ring.held = Some(token);
            ring.collect_deadline = None;
            self.timers.set(Timer::IdlePass, now + self.cfg.idle_hold);
        }
    }

    /// In a ring of two, the member whose visit made the other's lines safe keeps the token:
    /// it has just been sent a line, so it is the one likely to answer, and its answer then
    /// goes out at once instead of after a wake and a pass.
    fn keeps_what_it_made_safe(&self, token: &Token) -> bool {
        self.view.members.len() == 2
            && self
                .state
                .ring()
                .is_some_and(|r| token.safe > r.arrived_safe)
            && token.safe == token.seq
            && token.rtr.is_empty()
            && token.wake.is_none()
            && !self.state.leaving()
    }

    /// Keeps the token idle, after a pass to ourselves sent to the group: it tells the other
    /// member what is safe (and the server that the ring moves). Returns true (the pass went
    /// to the group).
    fn keep(&mut self, now: Instant, token: Token) -> bool {
        let me = self.cfg.id;
        let Some(ring) = self.state.ring_mut() else {
            return false;
        };
        let kept = token.pass(me, me);
        ring.last_hop = kept.hop;
        ring.seen_holder = Some((kept.hop, me));
        ring.arrived_safe = kept.safe;
        ring.arrived_seq = kept.seq;
        self.send(Msg::Token(kept.clone()));
        self.hold_idle(now, kept);
        true
    }

    /// The token we hold, if any, taken out of the idle hold.
    pub(super) fn take_held(&mut self) -> Option<Token> {
        let token = self.state.ring_mut()?.held.take()?;
        self.timers.stop(Timer::IdlePass);
        Some(token)
    }

    /// Passes the token to our successor and waits for a later hop or the successor's ack to
    /// confirm it arrived. A pass that raised `safe` (since the token came to us) goes to the
    /// whole group, which delivers on it at once; any other goes to the successor alone, with
    /// a copy to the server (it watches every pass for progress), so a hop wakes two
    /// processes, not the whole group. Returns whether the pass went to the whole group.
    pub(super) fn pass(&mut self, now: Instant, token: Token) -> bool {
        match self.view.successor(self.cfg.id) {
            Some(next) => self.pass_to(now, token, next),
            None => false,
        }
    }

    /// [`MemberCore::pass`] to `next`: the successor, or a member that asked for the token.
    fn pass_to(&mut self, now: Instant, mut token: Token, next: NodeId) -> bool {
        let waiting = self.outbox.len();
        let Some(ring) = self.state.ring_mut() else {
            return false;
        };
        if waiting > ring.in_flight {
            // Lines we could not stamp this time: the token comes back for them rather than
            // idle somewhere else (a pass whose lines are all safe would otherwise be held).
            token.wake.get_or_insert(self.cfg.id);
        }
        ring.collect_deadline = None;
        let raised = token.safe > ring.arrived_safe;
        let direct = !raised && ring.direct_misses < DIRECT_MISSES_TO_GIVE_UP;
        let passed = token.pass(self.cfg.id, next);
        // A direct pass does not come back to us through the group, so note it here: `/who`
        // then shows the member we passed to, not us.
        ring.seen_holder = Some((passed.hop, next));
        ring.unconfirmed = Some(passed.clone());
        ring.unconfirmed_direct = direct;
        ring.unconfirmed_since = Some(now);
        ring.resends = 0;
        // On a ring that loses datagrams, a second copy costs a small datagram, while a
        // lost pass costs a retransmission timeout with the whole ring waiting.
        let copies = if ring.lossy_visits > 0 { 2 } else { 1 };
        self.timers
            .set(Timer::TokenRetransmit, now + self.retransmit_interval(0));
        for _ in 0..copies {
            if direct {
                // The next member first: it is on the ring's critical path.
                self.send_to(next, Msg::Token(passed.clone()));
            } else {
                self.send(Msg::Token(passed.clone()));
            }
        }
        if let Some(coordinator) = self.coordinator().filter(|_| direct) {
            self.send_to(coordinator, Msg::Token(passed));
        }
        !direct
    }

    /// The successor acknowledged a direct pass.
    pub(super) fn on_token_ack(&mut self, now: Instant, epoch: Epoch, hop: u64) {
        if epoch != self.view.epoch {
            return;
        }
        let Some(ring) = self.state.ring_mut() else {
            return;
        };
        if ring.unconfirmed.as_ref().is_some_and(|t| t.hop == hop) {
            ring.direct_misses = 0;
            if let (0, Some(since)) = (ring.resends, ring.unconfirmed_since) {
                self.pass_rtt.sample(now.saturating_duration_since(since));
            }
            self.timers.stop(Timer::TokenRetransmit);
            self.pass_confirmed();
        }
    }

    /// Our last pass arrived (a later hop, or the successor's ack): if the user was told the
    /// ring is stalled, it is told that it moves.
    fn pass_confirmed(&mut self) {
        let Some(ring) = self.state.ring_mut() else {
            return;
        };
        ring.unconfirmed = None;
        ring.unconfirmed_since = None;
        self.ring_moves();
    }

    /// The ring moves: if the user was told it is stalled, it is told that it moves.
    pub(super) fn ring_moves(&mut self) {
        if std::mem::take(&mut self.stalled) {
            self.event(MemberEvent::RingMoves);
        }
    }

    /// Tells the user, once, that the ring is stalled: our pass, or our request for the
    /// token, has gone unanswered for two of the longest retransmission intervals, and no
    /// server is heard to recover it.
    pub(super) fn check_stall(&mut self, now: Instant) {
        let after = token_ring::retransmit_interval(self.token_timeout) * 2;
        if self.server != ServerContact::Silent || self.stalled {
            return;
        }
        let Some((to, _, since)) = self.stuck_on() else {
            return;
        };
        if now < since + after {
            return;
        }
        self.stalled = true;
        let silent = self
            .view
            .members
            .iter()
            .find(|m| m.id == to)
            .map_or_else(|| to.short(), |m| m.name.clone());
        self.event(MemberEvent::RingStalled { silent });
    }

    /// The member the ring waits on, the pass that went to it, and since when: the one our
    /// pass did not reach, or else the one we last saw take the token while we ask for it.
    fn stuck_on(&self) -> Option<(NodeId, u64, Instant)> {
        let ring = self.state.ring()?;
        if let (Some(pass), Some(since)) = (&ring.unconfirmed, ring.unconfirmed_since) {
            return Some((pass.to, pass.hop, since));
        }
        let (hop, holder) = ring.seen_holder?;
        Some((holder, hop, ring.woke_since?)).filter(|(holder, _, _)| *holder != self.cfg.id)
    }

    /// The member the ring waits on, once the user was told the ring is stalled on it.
    pub fn stalled_on(&self) -> Option<NodeId> {
        self.stuck_on()
            .filter(|_| self.stalled)
            .map(|(to, _, _)| to)
    }

    /// Tells the coordinating server that the ring waits on a silent member, so that it
    /// gathers without waiting out its token timeout: once the member has shown no sign for
    /// a quarter of the token timeout and [`SUSPECT_ROUND_TRIPS`] measured round trips (never
    /// before a round trip was measured: on a network slower than that quarter, the server's
    /// own timeout decides). Said again at each resend until the ring moves or a gather
    /// comes.
    pub(super) fn check_suspect(&mut self, now: Instant) {
        let Some(rtt) = self.pass_rtt.srtt() else {
            return;
        };
        let Some((_, hop, since)) = self.stuck_on() else {
            return;
        };
        let after =
            token_ring::retransmit_interval(self.token_timeout).max(rtt * SUSPECT_ROUND_TRIPS);
        let Some(server) = self.coordinator().filter(|_| now >= since + after) else {
            return;
        };
        let (epoch, from) = (self.view.epoch, self.cfg.id);
        self.send_to(server, Msg::Suspect { epoch, from, hop });
    }

    /// Sends our last pass again, to the whole group: nobody has shown it arrived.
    pub(super) fn retransmit_pass(&mut self, now: Instant) {
        let Some(ring) = self.state.ring_mut() else {
            return;
        };
        let Some(token) = ring.unconfirmed.clone() else {
            return;
        };
        if std::mem::take(&mut ring.unconfirmed_direct) {
            ring.direct_misses = ring.direct_misses.saturating_add(1);
        }
        ring.resends = ring.resends.saturating_add(1);
        ring.lossy_visits = LOSS_MEMORY;
        let resends = ring.resends;
        self.stats.token_retransmits += 1;
        let waited = ring
            .unconfirmed_since
            .map(|t| now.saturating_duration_since(t));
        log::debug!(
            "token hop {} unconfirmed after {waited:?}; sending it again",
            token.hop
        );
        self.send(Msg::Token(token));
        self.timers.set(
            Timer::TokenRetransmit,
            now + self.retransmit_interval(resends),
        );
        self.check_stall(now);
        self.check_suspect(now);
    }

    /// A few measured round trips, doubled per resend, at most the interval the token
    /// timeout allows (also the one used before any round trip was measured).
    fn retransmit_interval(&self, resends: u32) -> Duration {
        let ceiling = token_ring::retransmit_interval(self.token_timeout);
        self.pass_rtt.rto(resends, ceiling)
    }

    /// How long a Wake may go unanswered before it is sent again: a few round trips (the
    /// holder passes at once), doubled per resend, at most a fifth of the idle hold (20 ms at
    /// least: also the wait before a round trip is measured).
    fn wake_resend(&self, resends: u32) -> Duration {
        let ceiling = (self.cfg.idle_hold / 5).max(Duration::from_millis(20));
        self.pass_rtt.rto(resends, ceiling)
    }

    /// Asks the holder for the token, once per visit: straight to the member we last saw
    /// it go to, if we saw one, else to the group; `again` (it did not come) to the group.
    pub(super) fn wake(&mut self, now: Instant, again: bool) {
        if !again && self.timers.get(Timer::WakeResend).is_some() {
            return;
        }
        let resends = self.state.ring_mut().map_or(0, |ring| {
            ring.woke_since.get_or_insert(now);
            let resends = ring.wake_resends;
            ring.wake_resends = ring.wake_resends.saturating_add(1);
            resends
        });
        self.timers
            .set(Timer::WakeResend, now + self.wake_resend(resends));
        let (epoch, from) = (self.view.epoch, self.cfg.id);
        let seen = self.state.ring().and_then(|r| r.seen_holder);
        match seen.filter(|(_, to)| *to != from && !again) {
            Some((hop, to)) => self.send_to(to, Msg::Wake { epoch, from, hop }),
            None => self.send(Msg::Wake {
                epoch,
                from,
                hop: 0,
            }),
        }
    }

    /// A member asks for the token (`hop` > 0: it sent this to us alone, having seen that
    /// pass come to us).
    pub(super) fn on_wake(&mut self, now: Instant, epoch: Epoch, from: NodeId, hop: u64) {
        // Only a member clears the token's wake mark (on its visit), so only members count.
        if epoch != self.view.epoch || from == self.cfg.id || !self.view.contains(from) {
            return;
        }
        if let Some(token) = self.take_held() {
            if token.seq > token.safe {
                self.stats.collects_woken += 1;
            }
            // Straight to it: the members in between have nothing to send (or they would
            // have asked too, and get the token as it goes round from there), and whatever
            // is unsafe still becomes safe only once the token has visited all of them.
            self.pass_to(now, token, from);
            return;
        }
        let me = self.cfg.id;
        let Some(ring) = self.state.ring_mut() else {
            return;
        };
        match ring.seen_holder {
            // It has gone on since the pass the member saw: the Wake follows it there. The
            // hop only rises along the way, so a Wake never goes round in circles.
            Some((later, next)) if hop > 0 && later > hop && next != from && next != me => {
                self.send_to(
                    next,
                    Msg::Wake {
                        epoch,
                        from,
                        hop: later,
                    },
                );
            }
            // The token may be on its way to us: pass it on at once when it comes.
            _ => ring.heard_wake = Some((from, now)),
        }
    }

    /// A pack of live records: each is held back (or counted as a duplicate), then whatever
    /// became deliverable is delivered at once, as one batch.
    pub(super) fn on_data(
        &mut self,
        now: Instant,
        epoch: Epoch,
        group: GroupId,
        recs: Vec<ChatRecord>,
    ) {
        if epoch < self.view.epoch || self.vote.group != Some(group) {
            self.stats.stale += recs.len() as u64;
            log::debug!(
                "pack of {} records of epoch {epoch}, chat {group}: stale or not ours",
                recs.len()
            );
            return;
        }
        if epoch > self.view.epoch || !self.state.admitted() {
            return;
        }
        let mut fresh = false;
        for rec in recs {
            if self.order.insert_live(rec) {
                fresh = true;
            } else {
                self.stats.duplicates += 1;
            }
        }
        if fresh {
            self.answer_collect();
        }
        let waiting = self.state.ring().and_then(|r| r.early_packs.as_ref());
        if waiting.is_some_and(|t| self.order.aru() >= t.seq) {
            self.visit_early_token(now);
        } else if fresh {
            self.deliver_ready();
        }
    }

    /// Everything up to `safe` may be delivered ([`MemberCore::deliver_ready`] does it).
    pub(super) fn note_safe(&mut self, safe: Seq) {
        self.safe = self.safe.max(safe);
    }

    pub(super) fn deliver_ready(&mut self) {
        for rec in self.order.take_deliverable(self.safe) {
            if rec.from == self.cfg.id {
                // Own lines are delivered in typing order: normally the front of the outbox.
                if let Some(i) = self.outbox.iter().position(|p| p.id == rec.id) {
                    self.outbox.remove(i);
                    if let Some(ring) = self.state.ring_mut().filter(|r| i < r.in_flight) {
                        ring.in_flight -= 1;
                    }
                }
            }
            self.stats.delivered += 1;
            self.outputs.push_back(Output::Deliver(rec));
        }
    }
}
