//! Joins and leaves, as the coordinating server admits them: a hello from a new node (or a new
//! incarnation of a member) starts a gather, or joins the one under way; a refusal when the
//! ring is full or the name too long; a leave starts a gather that asks the leaver to report
//! and leaves it out of the view. Standing-by servers ignore both.
//!
//! Methods of `Coordinator`; pure like the rest of the core.

use super::{Coordinator, Joiner, State};
use crate::protocol::limits::{MAX_MEMBERS, MAX_NAME_BYTES};
use crate::protocol::types::{Incarnation, Member, NodeId};
use crate::protocol::wire::{Msg, RefuseReason};
use std::time::Instant;

impl Coordinator {
    pub(super) fn on_hello(
        &mut self,
        now: Instant,
        from: NodeId,
        incarnation: Incarnation,
        name: String,
    ) {
        if !self.is_coordinating() {
            return; // the coordinating server answers joins
        }
        let known = |inc: Option<&Incarnation>| inc == Some(&incarnation);
        if self.view.contains(from) && known(self.incarnations.get(&from)) {
            return; // a delayed duplicate of a Hello that already got in
        }
        if self.departed.contains(&(from, incarnation)) {
            return; // a replay or late duplicate from a process that has left or died
        }
        if self
            .joins
            .iter()
            .any(|j| j.member.id == from && j.incarnation == incarnation)
        {
            return;
        }
        if let Err(reason) = self.admissible(from, &name) {
            self.stats.refused += 1;
            log::info!("refusing {} ({name}): {reason}", from.short());
            self.send(Msg::Refuse {
                to: from,
                incarnation,
                reason: reason.to_string(),
            });
            return;
        }
        log::info!("{name} ({}) asks to join", from.short());
        self.joins.retain(|j| j.member.id != from);
        let member = Member { id: from, name };
        self.joins.push(Joiner {
            member: member.clone(),
            incarnation,
        });
        match &mut self.state {
            State::Coordinating(_) => self.start_gather(now),
            // Joins during a gather go out with its next resend, not one gather per hello:
            // a hundred clients that start together cost a few gathers, not a hundred.
            State::Gathering(_) => self.propose_joiner(now, member),
            // Joins right after this install.
            _ => {}
        }
    }

    /// Whether a join keeps the ring within its limits. Views span datagrams, so the names'
    /// lengths do not count beyond their own limit.
    fn admissible(&self, from: NodeId, name: &str) -> Result<(), RefuseReason> {
        if name.len() > MAX_NAME_BYTES {
            return Err(RefuseReason::NameTooLong);
        }
        let mut members = self.gather_members();
        members.retain(|m| m.id != from && !self.leaves.contains(&m.id));
        if members.len() >= MAX_MEMBERS {
            return Err(RefuseReason::RingFull);
        }
        Ok(())
    }

    pub(super) fn on_leave(&mut self, now: Instant, from: NodeId, incarnation: Incarnation) {
        if !self.is_coordinating() {
            return;
        }
        self.joins.retain(|j| j.member.id != from);
        if self.view.contains(from) && !self.incarnations.contains_key(&from) {
            // This server does not know the members' incarnations (it restarted, or took
            // over): a recovery learns them from the reports; the leaver repeats its Leave
            // until a view without it.
            if matches!(self.state, State::Coordinating(_)) {
                self.start_gather(now);
            }
            return;
        }
        if !self.view.contains(from) || self.incarnations.get(&from) != Some(&incarnation) {
            self.view_wanted(now); // it is not a member: the view tells it so
            return;
        }
        if !self.leaves.insert(from) {
            return;
        }
        log::info!("{} leaves", from.short());
        // A gather under way asks the leaver to report; the view will leave it out.
        if matches!(self.state, State::Coordinating(_)) {
            self.start_gather(now);
        }
    }
}
