//! A server as a voter on another server's recovery, like a member: it promises a gather
//! (durably) and reports its archive, accepts a proposal durably once its archive holds the
//! proposal's cut, forms the view when it is installed, and echoes a session that a
//! gathering server asks for. A server also learns installed views it is not a voter of, to
//! archive their rings.
//!
//! Methods of `Coordinator`; the vote's rules are in [`crate::protocol::vote`]. Pure.

use super::roles::Accepting;
use super::{Coordinator, State, Timer};
use crate::protocol::events::CoordinatorEvent;
use crate::protocol::fetch::{self, RangeFetch};
use crate::protocol::parts::{Installed, Part, Proposed};
use crate::protocol::types::{Epoch, GroupId, Member, NodeId, Seq, ServerId, View};
use crate::protocol::vote::{AttemptError, Ballot, Promise};
use crate::protocol::wire::{self, Msg};
use std::time::Instant;

impl Coordinator {
    /// Another server's gather. A coordinating server answers only its view's own servers (a
    /// stale server outside the view must not stop a live ring); a promise to another's
    /// recovery makes it stand by.
    pub(super) fn on_gather(
        &mut self,
        now: Instant,
        epoch: Epoch,
        server: ServerId,
        to: &[NodeId],
    ) {
        if server == self.cfg.server_id {
            return;
        }
        self.observe_epoch(epoch);
        self.recovery_heard = Some(now);
        if !to.contains(&self.id()) {
            return;
        }
        if self.is_coordinating() && !self.view.servers.contains(&server) {
            return;
        }
        let promise = self.vote.promise(Ballot { epoch, server });
        if promise == Promise::New {
            self.save_vote();
            if self.is_coordinating() {
                self.step_down(now, Some(server));
            }
        }
        let report = self.report(epoch);
        match promise {
            Promise::Again => self.send(report),
            Promise::New | Promise::Refused => self.send_to(NodeId::server(server), report),
        }
    }

    /// This server's report for the gather of `epoch`: its archive, and its vote.
    fn report(&self, epoch: Epoch) -> Msg {
        let (primary, attempts) = self.vote.references(self.id());
        Msg::Report {
            epoch,
            from: self.id(),
            incarnation: self.cfg.incarnation,
            name: "server".into(),
            view_epoch: self.view.epoch,
            aru: self.archived(),
            delivered: self.archived(),
            group: self.vote.group.unwrap_or(GroupId(0)),
            promised: self.vote.promised,
            primary,
            attempts,
        }
    }

    pub(super) fn on_proposal_part(&mut self, now: Instant, part: Part<Proposed>) {
        match part.head.to {
            Some(to) if to == self.id() => {
                if let Some((head, members)) = self.echo_parts.add(Epoch(0), part) {
                    self.learn(now, head.session(members));
                }
            }
            Some(_) => {}
            None if part.head.servers.first() == Some(&self.cfg.server_id) => {}
            None => {
                self.recovery_heard = Some(now);
                if let Some((head, members)) = self.proposal_parts.add(self.view.epoch, part) {
                    self.on_proposal(now, head, members);
                }
            }
        }
    }

    /// Another server's whole proposal: accepted once the archive holds its cut, if we
    /// promised its gather.
    fn on_proposal(&mut self, now: Instant, head: Proposed, members: Vec<Member>) {
        let session = head.session(members.clone());
        if self.vote.attempt_of(head.epoch) == Some(&session) {
            // A resend: our acceptance was lost, or direct datagrams do not reach the server.
            self.send(accept(head.epoch, self.id()));
            return;
        }
        if self.vote.promised != session.ballot() {
            return;
        }
        if self.archived() >= head.cut {
            self.accept(head, members);
            return;
        }
        let State::Standby(standby) = &mut self.state else {
            return;
        };
        standby.accepting = Some(Accepting {
            head,
            members,
            fetch: RangeFetch::new(session.cut, now),
        });
        self.fetch_for_accept(now);
    }

    /// Records the proposal as an attempt, durably, and tells its server.
    fn accept(&mut self, head: Proposed, members: Vec<Member>) {
        let epoch = head.epoch;
        let session = head.session(members);
        let server = session.server();
        match self.vote.attempt(session, head.base, &head.dead) {
            Ok(()) => {
                self.save_vote();
                self.send_to(NodeId::server(server), accept(epoch, self.id()));
            }
            Err(AttemptError::NotPromised) => {}
            Err(AttemptError::TooMany) => log::warn!(
                "proposal of epoch {epoch} not accepted: too many undecided attempts are kept"
            ),
        }
    }

    /// Asks the proposer for the next chunk up to the proposal's cut.
    pub(super) fn fetch_for_accept(&mut self, now: Instant) {
        let held = self.archived();
        let (chunk, retry) = (
            self.cfg.fetch_chunk,
            fetch::retry_interval(self.cfg.token_timeout),
        );
        let me = self.id();
        let State::Standby(standby) = &mut self.state else {
            return;
        };
        let Some(a) = &mut standby.accepting else {
            return;
        };
        let to = NodeId::server(a.head.servers.first().copied().unwrap_or(ServerId(0)));
        match a.fetch.next_chunk(held, chunk, now, retry) {
            Some((lo, hi)) => {
                self.timers.set(Timer::AcceptFetchRetry, a.fetch.retry_at);
                self.send(Msg::Fetch {
                    from: me,
                    to,
                    lo,
                    hi,
                });
            }
            None => self.accept_fetched(),
        }
    }

    /// The archive holds the cut of the proposal being accepted: accept it.
    pub(super) fn accept_fetched(&mut self) {
        let State::Standby(standby) = &mut self.state else {
            return;
        };
        if let Some(a) = standby.accepting.take() {
            self.timers.stop(Timer::AcceptFetchRetry);
            self.accept(a.head, a.members);
        }
    }

    /// The cut up to which a standby fetches before accepting, if it does.
    pub(super) fn accepting_cut(&self) -> Option<Seq> {
        match &self.state {
            State::Standby(s) => s.accepting.as_ref().map(|a| a.head.cut),
            _ => None,
        }
    }

    pub(super) fn on_view_part(&mut self, now: Instant, part: Part<Installed>) {
        if part.head.servers.first() == Some(&self.cfg.server_id) {
            return; // our own, looped back or replayed
        }
        self.recovery_heard = Some(now);
        if let Some((head, members)) = self.view_parts.add(self.view.epoch.next(), part) {
            self.on_installed(now, head, members);
        }
    }

    /// Another server installed a view newer than ours: formed if we accepted its proposal;
    /// either way it is the ring we archive from now on (unless we promised a later gather,
    /// whose view will follow).
    fn on_installed(&mut self, now: Instant, head: Installed, members: Vec<Member>) {
        let view = head.view(members);
        let coordinator = view.coordinator().unwrap_or(ServerId(0));
        let ballot = Ballot {
            epoch: view.epoch,
            server: coordinator,
        };
        if self.vote.form(ballot) {
            self.save_vote();
        } else if view.servers.contains(&self.cfg.server_id) {
            return;
        }
        if self.is_coordinating() {
            self.step_down(now, Some(coordinator));
        }
        self.follow(now, view, head.cut);
    }

    /// Archives the ring of `view` from now on, pulling what the archive lacks up to `cut`.
    fn follow(&mut self, now: Instant, view: View, cut: Seq) {
        log::info!(
            "view {} installed by server {}: {} members",
            view.epoch,
            view.coordinator().unwrap_or(ServerId(0)),
            view.members.len()
        );
        self.view = view;
        self.cut = cut;
        self.joins.clear();
        self.leaves.clear();
        self.new_servers.retain(|s| !self.view.servers.contains(s));
        self.order.reset_epoch(self.archived().max(cut));
        self.archiving = true;
        self.last_hop = 0;
        self.safe_seen = self.safe_seen.max(cut);
        self.outputs
            .push_back(crate::protocol::events::Output::Checkpoint);
        self.event(CoordinatorEvent::ViewInstalled {
            epoch: self.view.epoch,
            members: self.view.members.len(),
            cut,
        });
        if cut > self.archived() && self.pull.is_none() {
            self.start_pull(now, cut);
        }
    }

    /// A gathering server asks for a session we reported and it never saw: echo it.
    pub(super) fn echo_session(&mut self, from: NodeId, epoch: Epoch) {
        for part in wire::pack_echo(&self.vote, epoch, from) {
            self.send(part);
        }
    }
}

fn accept(epoch: Epoch, from: NodeId) -> Msg {
    Msg::Accept { epoch, from }
}
