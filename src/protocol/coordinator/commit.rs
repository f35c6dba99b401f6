//! The last steps of a view change (see the parent module), once the gather is decided: collect
//! what the archive lacks up to the cut, propose the view until every reporter accepted it
//! durably, then form it and install it with a fresh token.
//!
//! Pure like the rest of the core: no clock, no I/O; effects go out as outputs, in the order
//! the driver must perform them (our own attempt before the proposal, the archive's records
//! before the proposal that depends on them, the formed vote before the view).

use super::{Coordinator, Running, State, Timer};
use crate::protocol::events::{CoordinatorEvent, Output};
use crate::protocol::fetch::{self, RangeFetch};
use crate::protocol::token_ring::Token;
use crate::protocol::types::{Epoch, GroupId, Incarnation, Member, NodeId, Seq, ServerId, View};
use crate::protocol::vote::{Ballot, Session};
use crate::protocol::wire::{self, Msg, ProposalHead};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// The view that is proposed and then installed, fixed once the gather is decided.
#[derive(Debug)]
pub(super) struct NextView {
    pub(super) epoch: Epoch,
    pub(super) members: Vec<Member>,
    pub(super) servers: Vec<ServerId>,
    pub(super) incarnations: HashMap<NodeId, Incarnation>,
    pub(super) cut: Seq,
    /// The primary it builds on, and the attempts proved dead: told to every acceptor.
    pub(super) base: Epoch,
    pub(super) dead: Vec<Epoch>,
    /// Every reporter: each must accept before the view is installed.
    pub(super) reporters: Vec<NodeId>,
}

impl NextView {
    fn session(&self) -> Session {
        Session {
            view: View {
                epoch: self.epoch,
                members: self.members.clone(),
                servers: self.servers.clone(),
            },
            cut: self.cut,
        }
    }
}

/// Fetching what the archive lacks up to the cut ([`Timer::CollectRetry`]).
#[derive(Debug)]
pub(super) struct Collecting {
    next: NextView,
    /// Reporters and how far each holds everything, best first.
    sources: Vec<(NodeId, Seq)>,
    /// The range up to the cut.
    fetch: RangeFetch,
    /// Requests that went unanswered: they pick the next source in turn.
    retries: u32,
}

impl Collecting {
    /// Everything up to here is archived before the view is proposed.
    pub(super) fn cut(&self) -> Seq {
        self.next.cut
    }

    /// Whether the chunk asked for has arrived, given an archive that holds up to `held`.
    pub(super) fn chunk_arrived(&self, held: Seq) -> bool {
        self.fetch.chunk_arrived(held)
    }
}

/// Waiting for every reporter to accept the proposal ([`Timer::ProposeResend`],
/// [`Timer::AcceptDeadline`]).
#[derive(Debug)]
pub(super) struct Proposing {
    next: NextView,
    /// Reporters whose acceptance has not come yet.
    waiting_for: HashSet<NodeId>,
}

impl Coordinator {
    /// The next view is fixed: collect up to its cut first if the archive lacks part of it,
    /// from `sources` (reporters and how far each holds everything, best first).
    pub(super) fn collect_or_propose(
        &mut self,
        now: Instant,
        next: NextView,
        sources: Vec<(NodeId, Seq)>,
    ) {
        if next.cut > self.archived() {
            let fetch = RangeFetch::new(next.cut, now);
            let first_ask = fetch.retry_at;
            self.enter(State::Collecting(Collecting {
                next,
                sources,
                fetch,
                retries: 0,
            }));
            self.timers.set(Timer::CollectRetry, first_ask);
            self.request_collect(now);
        } else {
            self.propose(now, next);
        }
    }

    /// Asks the next chunk up to the cut from a source that holds it, in turn.
    pub(super) fn request_collect(&mut self, now: Instant) {
        let chunk = self.cfg.fetch_chunk;
        let retry = fetch::retry_interval(self.cfg.token_timeout);
        let held = self.archived();
        let me = self.id();
        let State::Collecting(c) = &mut self.state else {
            return;
        };
        let lo = held.next();
        let holding = || c.sources.iter().filter(|s| s.1 >= lo).map(|s| s.0);
        let n = holding().count();
        let Some(to) = holding().nth(c.retries as usize % n.max(1)) else {
            return;
        };
        let Some((lo, hi)) = c.fetch.next_chunk(held, chunk, now, retry) else {
            return;
        };
        self.timers.set(Timer::CollectRetry, c.fetch.retry_at);
        // To the group, like every history request: a firewall may keep direct datagrams out.
        self.send(Msg::Fetch {
            from: me,
            to,
            lo,
            hi,
        });
    }

    /// The chunk is overdue: ask the next source, and gather again once every source has
    /// had a few chances.
    pub(super) fn retry_collect(&mut self, now: Instant) {
        let State::Collecting(c) = &mut self.state else {
            return;
        };
        c.retries += 1;
        if c.retries > 3 * c.sources.len().max(1) as u32 {
            log::info!(
                "epoch {}: sources stopped answering; gathering again",
                c.next.epoch
            );
            self.start_gather(now);
        } else {
            self.request_collect(now);
        }
    }

    /// The archive holds everything up to the cut: propose.
    pub(super) fn finish_collect(&mut self, now: Instant) {
        if let State::Collecting(c) = self.take_state() {
            self.propose(now, c.next);
        }
    }

    /// Step 4: records the proposal as our own attempt (durably), then asks every reporter to
    /// accept it.
    fn propose(&mut self, now: Instant, next: NextView) {
        let session = next.session();
        if let Err(e) = self.vote.attempt(session, next.base, &next.dead) {
            log::warn!(
                "epoch {}: cannot propose ({e:?}); gathering again",
                next.epoch
            );
            self.start_gather(now);
            return;
        }
        self.save_vote();
        let me = self.id();
        let waiting_for = next
            .reporters
            .iter()
            .copied()
            .filter(|id| *id != me)
            .collect();
        self.enter(State::Proposing(Proposing { next, waiting_for }));
        self.timers
            .set(Timer::AcceptDeadline, now + self.cfg.report_timeout);
        self.send_proposal(now);
        self.maybe_install(now);
    }

    /// Sends every part of the proposal again while acceptances are missing.
    pub(super) fn send_proposal(&mut self, now: Instant) {
        let group = self.vote.group.unwrap_or(GroupId(0));
        let State::Proposing(p) = &self.state else {
            return;
        };
        let n = &p.next;
        let head = ProposalHead {
            epoch: n.epoch,
            cut: n.cut,
            server: self.cfg.server_id,
            group,
            servers: n.servers.clone(),
            base: n.base,
            dead: n.dead.clone(),
            to: None,
        };
        let parts = wire::pack_propose(&head, &n.members);
        self.timers
            .set(Timer::ProposeResend, now + self.cfg.gather_resend);
        for part in parts {
            self.send(part);
        }
    }

    /// A reporter accepted the proposal.
    pub(super) fn on_accept(&mut self, now: Instant, epoch: Epoch, from: NodeId) {
        if let State::Proposing(p) = &mut self.state {
            if p.next.epoch == epoch {
                p.waiting_for.remove(&from);
                self.maybe_install(now);
            }
        }
    }

    fn maybe_install(&mut self, now: Instant) {
        if matches!(&self.state, State::Proposing(p) if p.waiting_for.is_empty()) {
            if let State::Proposing(p) = self.take_state() {
                self.install(now, p.next);
            }
        }
    }

    /// Step 5: every reporter accepted: form the view (durably), install it and issue a fresh
    /// token.
    fn install(&mut self, now: Instant, next: NextView) {
        let ballot = Ballot {
            epoch: next.epoch,
            server: self.cfg.server_id,
        };
        if !self.vote.form(ballot) {
            // We promised a later gather meanwhile: this view is abandoned.
            log::info!("epoch {} abandoned for a later gather", next.epoch);
            self.step_down(now, None);
            return;
        }
        self.save_vote();
        // A clean leave ends an incarnation (a member left out alive keeps its own and may
        // come back with it, so exclusions are not recorded).
        for m in &self.view.members {
            let gone = !next.members.iter().any(|n| n.id == m.id);
            if let (true, true, Some(inc)) = (
                gone,
                self.leaves.contains(&m.id),
                self.incarnations.get(&m.id),
            ) {
                self.departed.insert((m.id, *inc));
            }
        }
        if self.departed.len() > 4096 {
            self.departed.clear(); // bounded memory; a rare extra view is harmless
        }
        self.view = View {
            epoch: next.epoch,
            members: next.members,
            servers: next.servers,
        };
        self.cut = next.cut;
        self.incarnations = next.incarnations;
        self.joins.retain(|j| !self.view.contains(j.member.id));
        let view = &self.view;
        self.leaves.retain(|id| view.contains(*id));
        self.new_servers.retain(|s| !view.servers.contains(s));
        self.order.reset_epoch(next.cut);
        self.archiving = true;
        self.enter(State::Coordinating(Running::default()));
        self.last_hop = 0;
        self.progress_at(now);
        self.safe_seen = self.safe_seen.max(next.cut);
        self.stats.views += 1;
        self.outputs.push_back(Output::Checkpoint);
        self.event(CoordinatorEvent::ViewInstalled {
            epoch: self.view.epoch,
            members: self.view.members.len(),
            cut: self.cut,
        });
        self.send_view(now);
        self.timers
            .set(Timer::Beacon, now + self.cfg.beacon_interval);
        if let Some(first) = self.view.members.first() {
            let n = self.view.members.len();
            let token = Token::first(self.view.epoch, self.id(), first.id, self.cut, n);
            self.send(Msg::Token(token.clone()));
            if let State::Coordinating(running) = &mut self.state {
                running.first_token = Some(token);
            }
            self.arm_first_token_resend(now);
        }
        if !self.joins.is_empty() || !self.leaves.is_empty() || !self.new_servers.is_empty() {
            self.start_gather(now);
        }
    }
}
