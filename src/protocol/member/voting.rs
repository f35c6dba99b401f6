//! Membership from one member's side: answering gathers (a durable promise, then a report of
//! the vote), accepting proposals (a durable attempt, then an acceptance), forming and
//! installing views or being left out of them, echoing a session a gathering server never
//! saw, and the servers' beacons.
//!
//! Methods of `MemberCore`; the vote's own rules are in [`crate::protocol::vote`], the rule
//! that decides views in [`crate::protocol::quorum`]. No clock, no I/O.

use super::state::{Phase, Timer};
use super::MemberCore;
use crate::protocol::events::{MemberEvent, MemberStop, Output};
use crate::protocol::parts::{Installed, Part, Proposed};
use crate::protocol::types::{Epoch, GroupId, Member, NodeId, Seq, ServerId, View};
use crate::protocol::vote::{AttemptError, Ballot, Promise, Vote};
use crate::protocol::wire::{self, Msg, QuorumWait};
use std::time::{Duration, Instant};

/// A gather as it arrived.
pub(super) struct GatherMsg {
    pub(super) epoch: Epoch,
    pub(super) members: Vec<NodeId>,
    pub(super) server: ServerId,
    pub(super) group: GroupId,
    pub(super) waiting: Option<QuorumWait>,
}

impl MemberCore {
    /// Whether a message of chat `group` is for us: our own chat's, or any while we belong to
    /// none, or may still leave ours (we never formed a view with members, so no history
    /// hangs on it). A node with a history never mixes it with another chat's.
    fn accepts_group(&self, group: GroupId) -> bool {
        self.vote.group == Some(group) || (self.vote.is_unattached() && !self.state.admitted())
    }

    /// Notes `server` heard, if it is one of our view's (any, before we are admitted).
    fn heard_view_server(&mut self, now: Instant, server: ServerId) {
        if !self.state.admitted() || self.view.servers.contains(&server) {
            self.view_server_heard = now;
        }
    }

    /// Makes `group` our chat; a vote of another chat says nothing about this one.
    fn adopt_group(&mut self, group: GroupId) {
        if self.vote.group != Some(group) {
            self.vote = Vote {
                group: Some(group),
                ..Vote::default()
            };
        }
    }

    pub(super) fn on_gather(&mut self, now: Instant, g: GatherMsg) {
        let own_servers_silent = now >= self.view_server_heard + self.token_timeout;
        self.heard_server(now);
        self.heard_view_server(now, g.server);
        if !g.members.contains(&self.cfg.id) || !self.accepts_group(g.group) {
            return;
        }
        // In a ring, only its own servers gather it, unless none of them is heard: then any
        // server of the chat may (the rule makes that safe whoever runs it).
        if self.state.admitted() && !self.view.servers.contains(&g.server) && !own_servers_silent {
            return;
        }
        self.adopt_group(g.group);
        let ballot = Ballot {
            epoch: g.epoch,
            server: g.server,
        };
        let promise = self.vote.promise(ballot);
        if promise == Promise::New {
            self.outputs.push_back(Output::SaveVote(self.vote.clone()));
        }
        if promise != Promise::Refused && g.epoch > self.view.epoch {
            // A leaver reports too (the cut must cover what it holds); it keeps repeating its
            // Leave until a view without it arrives.
            self.freeze_ring(g.epoch);
        }
        if let (Some(w), true) = (g.waiting, promise != Promise::Refused) {
            self.show_quorum_wait(w);
        }
        // The first report for a gather goes to its server alone; if the server asks again,
        // the answer goes to the group, which reaches it where direct datagrams do not.
        let report = self.report(g.epoch);
        match promise {
            Promise::Again => self.send(report),
            Promise::New | Promise::Refused => self.send_to(NodeId::server(g.server), report),
        }
    }

    /// Our report for the gather of `epoch`: what we hold, and our vote (a promise other than
    /// that gather's refuses it).
    fn report(&self, epoch: Epoch) -> Msg {
        let (primary, attempts) = self.vote.references(self.cfg.id);
        Msg::Report {
            epoch,
            from: self.cfg.id,
            incarnation: self.cfg.incarnation,
            name: self.cfg.name.clone(),
            view_epoch: self.view.epoch,
            aru: self.order.aru(),
            delivered: self.order.delivered(),
            group: self.vote.group.unwrap_or(GroupId(0)),
            promised: self.vote.promised,
            primary,
            attempts,
        }
    }

    /// Tells the user, once per count, that the gather waits for a quorum.
    fn show_quorum_wait(&mut self, w: QuorumWait) {
        if self.quorum_shown != Some(w) {
            self.quorum_shown = Some(w);
            self.event(MemberEvent::WaitingForQuorum {
                reachable: w.reachable,
                voters: w.voters,
            });
        }
    }

    /// Totem gather: the old ring stops here for an admitted member; its token is dead to us.
    fn freeze_ring(&mut self, epoch: Epoch) {
        let Some(phase) = self.state.phase_mut() else {
            return;
        };
        *phase = match phase {
            Phase::Joining => return,
            Phase::InRing(ring) => Phase::Gathering {
                epoch,
                seen_holder: ring.seen_holder,
            },
            Phase::Gathering {
                epoch: gathered,
                seen_holder,
            } => Phase::Gathering {
                epoch: epoch.max(*gathered),
                seen_holder: *seen_holder,
            },
        };
        self.timers.stop(Timer::IdlePass);
        self.timers.stop(Timer::TokenReorder);
        self.timers.stop(Timer::TokenRetransmit);
    }

    pub(super) fn on_proposal_part(&mut self, now: Instant, part: Part<Proposed>) {
        self.heard_server(now);
        if part.head.to.is_some() {
            return; // an echo for a gathering server
        }
        if let Some((head, members)) = self.proposal_parts.add(self.view.epoch, part) {
            self.on_proposal(head, members);
        }
    }

    /// A whole proposal: accepted durably if we promised its gather, then acknowledged.
    fn on_proposal(&mut self, head: Proposed, members: Vec<Member>) {
        if self.vote.group != Some(head.group) {
            return;
        }
        let session = head.session(members);
        let server = session.server();
        let accept = Msg::Accept {
            epoch: head.epoch,
            from: self.cfg.id,
        };
        if self.vote.attempt_of(head.epoch) == Some(&session) {
            // A resend: our acceptance was lost, or direct datagrams do not reach the server;
            // the group does.
            self.send(accept);
            return;
        }
        match self.vote.attempt(session, head.base, &head.dead) {
            Ok(()) => {
                self.outputs.push_back(Output::SaveVote(self.vote.clone()));
                self.send_to(NodeId::server(server), accept);
            }
            Err(AttemptError::NotPromised) => {}
            Err(AttemptError::TooMany) => log::warn!(
                "proposal of epoch {} not accepted: {} undecided attempts are kept already",
                head.epoch,
                self.vote.attempts.len()
            ),
        }
    }

    /// A gathering server never saw an attempt we reported: echo its proposal to it.
    pub(super) fn on_session_request(&mut self, from: NodeId, epoch: Epoch) {
        for part in wire::pack_echo(&self.vote, epoch, from) {
            self.send(part);
        }
    }

    pub(super) fn on_view_part(&mut self, now: Instant, part: Part<Installed>) {
        self.heard_server(now);
        self.view_server_heard = now; // only a view's coordinator sends it
        if let Some((head, members)) = self.view_parts.add(self.view.epoch, part) {
            self.on_view(now, head, members);
        }
    }

    /// A whole view: installed if we accepted its proposal (and promised nothing since), the
    /// end of our leave if it leaves us out, else the news that we were left out.
    fn on_view(&mut self, now: Instant, head: Installed, members: Vec<Member>) {
        if !self.accepts_group(head.group) || head.epoch < self.view.epoch {
            return;
        }
        self.token_timeout = Duration::from_millis(head.token_timeout_ms.max(1));
        if head.epoch == self.view.epoch {
            // The server's heartbeat: make sure we are catching up to the cut.
            self.catch_up_to(now, head.cut);
            return;
        }
        let view = head.view(members);
        let ballot = Ballot {
            epoch: view.epoch,
            server: view.coordinator().unwrap_or(ServerId(0)),
        };
        let formed = self.vote.form(ballot);
        if formed {
            self.outputs.push_back(Output::SaveVote(self.vote.clone()));
        }
        let included = view.contains(self.cfg.id);
        if self.state.announced() && !included {
            self.stop(MemberStop::Left);
        } else if included && formed {
            self.install(now, view, head.cut);
        } else if self.state.admitted() && !included {
            self.left_out(now);
        }
        // Included but not formed: we promised a later gather, whose view will follow.
    }

    /// An admitted member behind the view's cut fetches up to it.
    fn catch_up_to(&mut self, now: Instant, cut: Seq) {
        if self.state.admitted() && self.catch_up.is_none() && self.order.delivered() < cut {
            self.start_fetch(now, cut);
        }
    }

    /// A server's heartbeat. The coordinator's is the view in brief (`size`: its member
    /// count and digest): a member whose view is not the server's, and that could act on the
    /// server's, asks for it, once per beacon heard; otherwise it makes sure it catches up to
    /// the cut. A standby's only says that a server is alive.
    pub(super) fn on_beacon(&mut self, now: Instant, b: BeaconMsg) {
        self.heard_server(now);
        self.heard_view_server(now, b.server);
        if !self.accepts_group(b.group) || b.epoch < self.view.epoch {
            return;
        }
        let in_some_ring = self.state.admitted() || self.state.announced();
        if b.standby {
            // A standby of a later view speaks, and that view's coordinator is not heard: in
            // unicast mode it does not send to a node outside its view. Ask it for the view,
            // which sends us back to joining if we are not in it.
            if b.epoch > self.view.epoch && in_some_ring {
                self.request_view();
            }
            return;
        }
        self.token_timeout = Duration::from_millis(b.token_timeout_ms.max(1));
        let ours = (self.view.members.len() as u64, self.view.digest());
        if b.epoch == self.view.epoch && b.size == ours {
            self.catch_up_to(now, b.cut);
            return;
        }
        // A joiner adopts only the view of the gather it promised (see `on_view`), so asking
        // for any other would cost the group a resend for nothing.
        if in_some_ring || b.epoch == self.vote.promised.epoch {
            self.request_view();
        }
    }

    /// Asks the coordinating server to send its view again.
    pub(super) fn request_view(&mut self) {
        self.send(Msg::ViewRequest {
            from: self.cfg.id,
            epoch: self.view.epoch,
        });
    }

    /// A view without us: back to joining, with a fresh join timeout (a leaver whose Leave
    /// is out just waits for its leave to be confirmed).
    fn left_out(&mut self, now: Instant) {
        if let Some(phase) = self.state.phase_mut() {
            *phase = Phase::Joining;
        }
        self.timers.stop(Timer::IdlePass);
        self.timers.stop(Timer::TokenReorder);
        self.timers.stop(Timer::TokenRetransmit);
        if self.state.joining() {
            self.start_join_timers(now);
        }
        self.event(MemberEvent::LeftOut);
    }

    fn install(&mut self, now: Instant, view: View, cut: Seq) {
        let joined = !self.state.admitted();
        self.describe_change(&view);
        self.view = view;
        self.quorum_shown = None;
        if let Some(phase) = self.state.phase_mut() {
            *phase = Phase::InRing(Box::default());
        }
        for timer in [
            Timer::Hello,
            Timer::JoinTimeout,
            Timer::IdlePass,
            Timer::TokenReorder,
            Timer::TokenRetransmit,
            Timer::WakeResend,
        ] {
            self.timers.stop(timer);
        }
        self.order.reset_epoch(cut);
        self.safe = self.safe.max(cut);
        self.stats.views += 1;
        self.ring_moves();
        if joined {
            self.event(MemberEvent::Joined {
                epoch: self.view.epoch,
                members: self.view.members.len(),
            });
        }
        if self.order.delivered() < cut {
            self.start_fetch(now, cut);
        }
        self.outputs.push_back(Output::Checkpoint);
        if let Some(token) = self.early_token.take() {
            self.on_token(now, token);
        }
    }

    fn describe_change(&mut self, new: &View) {
        if !self.state.admitted() {
            return;
        }
        let names = |a: &View, b: &View| -> Vec<String> {
            a.members
                .iter()
                .filter(|m| !b.contains(m.id))
                .map(|m| m.name.clone())
                .collect()
        };
        for name in names(new, &self.view) {
            self.event(MemberEvent::MemberJoined(name));
        }
        for name in names(&self.view, new) {
            self.event(MemberEvent::MemberLeft(name));
        }
    }
}

/// A beacon as it arrived.
pub(super) struct BeaconMsg {
    pub(super) epoch: Epoch,
    pub(super) cut: Seq,
    pub(super) token_timeout_ms: u64,
    /// The view's member count and digest.
    pub(super) size: (u64, u64),
    pub(super) group: GroupId,
    pub(super) standby: bool,
    pub(super) server: ServerId,
}
