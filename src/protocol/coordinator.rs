//! The server's protocol state machine: joins and leaves, the view, token-loss detection,
//! recovery (gather, fix the cut, install, fresh token), the archive and reconciliation.
//!
//! Sans-IO like [`crate::protocol::member`]: `handle_*(now, ...)` in, [`Coordinator::poll_output`] out.
//! It never reads the clock, a socket or a file.
//!
//! # Recovery, after Totem's membership protocol
//! Every view change (a join, a leave, a lost token) runs the same three steps:
//! 1. **Gather.** Open epoch `e+1` and ask the proposed members to report. A member that
//!    reports stops using the old ring, so the old epoch can no longer make anything safe.
//! 2. **Fix the cut.** The cut is the highest `seq` up to which some reporter (or the archive)
//!    holds everything. Anything delivered anywhere was safe, so every member of the old view
//!    held it: the cut covers it. The server fetches what it lacks up to the cut and archives
//!    it *before* it installs the view (persist before send).
//! 3. **Install.** Multicast the view with the cut and issue a fresh token. Members fetch what
//!    they lack up to the cut; lines above it return to their authors' outboxes.
//!
//! # Layout
//! This file holds the configuration, the `State` and `Timer` enums, the public API, the
//! dispatch of datagrams, joins and leaves, the start-up probe and rival servers. The
//! `recovery` submodule runs the three steps above; `archive` keeps the archive, serves
//! history and pulls what reconciliation finds missing.

mod announce;
mod archive;
mod recovery;
#[cfg(test)]
mod tests;

use crate::protocol::events::{CoordinatorEvent, CoordinatorOutput, CoordinatorStop, Output};
use crate::protocol::fetch::RangeFetch;
use crate::protocol::limits::{MAX_MEMBERS, MAX_NAME_BYTES};
use crate::protocol::order::Order;
use crate::protocol::timer::{self, TimerTable};
use crate::protocol::token_ring::Token;
use crate::protocol::types::{Epoch, Incarnation, Member, NodeId, Seq, ServerId, View};
use crate::protocol::wire::{Msg, RefuseReason};
use recovery::{Collecting, Gathering, ReportInfo};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Tunables of the server.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// No token progress for this long means the token is lost: recover.
    pub token_timeout: Duration,
    /// How often the beacon (the view in brief, with the archive's high-water mark) goes out
    /// as the heartbeat.
    pub beacon_interval: Duration,
    /// How often a gather is repeated while reports are missing.
    pub gather_resend: Duration,
    /// Proposed members that have not reported by then are left out of the view.
    pub report_timeout: Duration,
    /// Records asked for per history request.
    pub fetch_chunk: u64,
    /// How long the old ring must have been silent before a view may leave out every one of
    /// its members (see [`Coordinator`] on partitions).
    pub abandon_timeout: Duration,
    /// At start-up, listen this long before coordinating: one server per group. Longer than
    /// the longest gap between two views of a live server, even one that delays its datagrams
    /// by 100 ms to 1 s (a heartbeat a second: at most 1.9 s).
    pub probe: Duration,
    /// This server's random id, sent in its views. Of two servers that hear each other's
    /// views, the one with the older view (by epoch, then by this id) stops.
    pub server_id: ServerId,
}

impl CoordinatorConfig {
    /// Defaults for a given token timeout.
    pub fn new(token_timeout: Duration) -> CoordinatorConfig {
        CoordinatorConfig {
            token_timeout,
            beacon_interval: Duration::from_secs(1),
            gather_resend: Duration::from_millis(200),
            report_timeout: token_timeout,
            fetch_chunk: 512,
            abandon_timeout: token_timeout * 10,
            probe: Duration::from_secs(2),
            server_id: ServerId(0),
        }
    }
}

/// Counters shown in the server's log and by tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoordinatorStats {
    /// Views installed.
    pub views: u64,
    /// Recoveries started because the token made no progress.
    pub token_losses: u64,
    /// Records archived.
    pub archived: u64,
    /// Stale tokens or messages seen (older epoch).
    pub stale: u64,
    /// Views heard from another server after the start-up probe.
    pub rival_views: u64,
    /// Joins refused.
    pub refused: u64,
}

/// Where the server is; each phase owns its data, and its deadlines are the [`Timer`]s that
/// [`Coordinator::enter`] clears when the phase ends.
#[derive(Debug)]
enum State {
    /// At start-up, listening before coordinating ([`Timer::Probe`]): a view or gather with
    /// another server's id means another live server (its own, from before a restart, carry
    /// its own id).
    Probing,
    /// A view is installed and its ring runs.
    Coordinating(Running),
    /// Recovery step 1: waiting for reports.
    Gathering(Gathering),
    /// Recovery step 2: fetching what the archive lacks up to the cut.
    Collecting(Collecting),
    /// Another server coordinates this group: this one has stopped and does nothing more (a
    /// view it sent now would look like a rival's to that server).
    Yielded,
}

/// What only normal operation has.
#[derive(Debug, Default)]
struct Running {
    /// The first token of the view, sent again ([`Timer::FirstTokenResend`]) until the ring
    /// shows a later hop.
    first_token: Option<Token>,
    /// Reconciliation: final records the archive lacks, pulled from a member
    /// ([`Timer::PullRetry`]).
    pull: Option<RangeFetch>,
}

/// The server's deadlines, each armed only in the [`State`] named beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// Probing: the start-up probe ends.
    Probe,
    /// Coordinating: the view goes out as a heartbeat.
    Beacon,
    /// Coordinating, with members: no token progress since `token_timeout`.
    TokenLoss,
    /// Coordinating: the whole view goes out again, asked for within the resend gap.
    ViewResend,
    /// Coordinating: the first token goes out again.
    FirstTokenResend,
    /// Coordinating: the pull's chunk is overdue.
    PullRetry,
    /// Gathering: the gather goes out again.
    GatherResend,
    /// Gathering: proposed members that have not reported are left out. It starts at
    /// `report_timeout` and shrinks when the first report shows how fast members answer.
    ReportDeadline,
    /// Collecting: the chunk asked for is overdue.
    CollectRetry,
}

impl timer::Timer for Timer {
    const ALL: &'static [Timer] = &[
        Timer::Probe,
        Timer::Beacon,
        Timer::TokenLoss,
        Timer::ViewResend,
        Timer::FirstTokenResend,
        Timer::PullRetry,
        Timer::GatherResend,
        Timer::ReportDeadline,
        Timer::CollectRetry,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// A node that asked to join, waiting for the next view.
#[derive(Clone, Debug)]
struct Joiner {
    member: Member,
    incarnation: Incarnation,
}

/// The server's protocol state.
///
/// # When is a cut complete?
/// Anything delivered anywhere was safe, so every member of the old view received it. A
/// member that reports an `aru` collected in the installed view (it did not restart) holds
/// all of it, and its report also stops the old ring. A member that restarted lost what it
/// had received but not delivered; only its replica's high counts. So the cut is complete
/// once one old member reports a trusted `aru`, or every old member reports. Otherwise a
/// member that is silent (down, or alive behind a partition while its ring keeps chatting
/// without the server) may hold delivered messages above any cut we could fix: the gather
/// waits for it, up to `abandon_timeout` of silence from the old ring. Past that, a view
/// without it is installed; should that member come back holding more, the history would
/// fork there. That is the limit of G1, and it takes a server outage or partition plus the
/// loss of every other member of the ring.
#[derive(Debug)]
pub struct Coordinator {
    cfg: CoordinatorConfig,
    view: View,
    /// Cut of the installed view.
    cut: Seq,
    incarnations: HashMap<NodeId, Incarnation>,
    /// Highest epoch used or seen; a new epoch is always above it.
    max_epoch: Epoch,
    /// The archive's hold-back queue; `delivered` is the archive's high-water mark.
    order: Order,
    /// Whether live messages of the installed epoch are archived; false once a cut is being
    /// fixed, so nothing above the cut slips into the archive.
    archiving: bool,
    state: State,
    timers: TimerTable<Timer>,
    joins: Vec<Joiner>,
    leaves: HashSet<NodeId>,
    /// Incarnations that left the ring cleanly: their hellos are stale (replays, duplicates).
    departed: HashSet<(NodeId, Incarnation)>,
    last_hop: u64,
    /// The installed ring's last sign of life: the token-loss deadline while coordinating,
    /// and how long the old ring has been silent while gathering.
    last_progress: Instant,
    /// Highest `safe` seen on a token of the installed epoch.
    safe_seen: Seq,
    /// `safe_seen` at the previous beacon: if the archive is still below it, pull.
    safe_at_last_beacon: Seq,
    /// Pulls started, to pick members in turn.
    pulls: usize,
    /// When the whole view last went out: asks within the resend gap wait for the next.
    view_sent_at: Option<Instant>,
    outputs: VecDeque<CoordinatorOutput>,
    stats: CoordinatorStats,
}

impl Coordinator {
    /// A server whose archive holds everything up to `archived`, last in `view`.
    pub fn new(cfg: CoordinatorConfig, view: View, archived: Seq, now: Instant) -> Coordinator {
        let mut c = Coordinator {
            max_epoch: view.epoch,
            cut: archived,
            view,
            incarnations: HashMap::new(),
            order: Order::new(archived),
            archiving: true,
            state: State::Probing,
            timers: TimerTable::default(),
            joins: Vec::new(),
            leaves: HashSet::new(),
            departed: HashSet::new(),
            last_hop: 0,
            last_progress: now,
            safe_seen: archived,
            safe_at_last_beacon: archived,
            pulls: 0,
            view_sent_at: None,
            outputs: VecDeque::new(),
            stats: CoordinatorStats::default(),
            cfg,
        };
        if c.cfg.probe.is_zero() {
            c.start_coordinating(now);
        } else {
            c.timers.set(Timer::Probe, now + c.cfg.probe);
        }
        c
    }

    /// The installed view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The archive's high-water mark.
    pub fn archived(&self) -> Seq {
        self.order.delivered()
    }

    /// Counters.
    pub fn stats(&self) -> &CoordinatorStats {
        &self.stats
    }

    /// Whether a view change is under way.
    pub fn is_recovering(&self) -> bool {
        matches!(self.state, State::Gathering(_) | State::Collecting(_))
    }

    /// Next output for the driver, in order. Drain it until `None` after every input.
    pub fn poll_output(&mut self) -> Option<CoordinatorOutput> {
        self.outputs.pop_front()
    }

    /// Whether outputs are waiting to be drained.
    pub fn has_output(&self) -> bool {
        !self.outputs.is_empty()
    }

    /// The earliest instant at which [`Coordinator::handle_timeout`] has work; `None` once
    /// the server has given way to another.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Runs the timers that are due. `now` never goes backwards.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Yielded => return,
            State::Probing => {
                if !self.timers.is_due(Timer::Probe, now) {
                    return;
                }
                self.start_coordinating(now);
                self.outputs
                    .push_back(Output::Event(CoordinatorEvent::Coordinating));
                if self.max_epoch > self.view.epoch {
                    self.start_gather(now); // the ring moved on while we were away
                    return;
                }
            }
            _ => {}
        }
        match self.state {
            State::Coordinating(_) => self.running_timers(now),
            State::Gathering(_) => {
                if self.timers.is_due(Timer::ReportDeadline, now) {
                    self.finish_gather(now);
                } else if self.timers.is_due(Timer::GatherResend, now) {
                    self.send_gather(now);
                }
            }
            State::Collecting(_) => {
                if self.timers.is_due(Timer::CollectRetry, now) {
                    self.retry_collect(now);
                }
            }
            State::Probing | State::Yielded => {}
        }
        if self.timers.is_due(Timer::PullRetry, now) {
            self.restart_pull(now);
        }
    }

    /// Moves to `state`; the deadlines of the phase left behind die with it, and the caller
    /// arms those of the new one.
    fn enter(&mut self, state: State) {
        self.timers.stop_all();
        self.state = state;
    }

    /// Takes the state out to consume its data; the caller enters the next one at once.
    fn take_state(&mut self) -> State {
        std::mem::replace(&mut self.state, State::Coordinating(Running::default()))
    }

    /// Normal operation begins with the installed view: the heartbeat is due at once.
    fn start_coordinating(&mut self, now: Instant) {
        self.enter(State::Coordinating(Running::default()));
        self.progress_at(now);
        self.timers.set(Timer::Beacon, now);
    }

    /// The installed ring showed life at `now`; while coordinating a ring with members, the
    /// token is lost if it shows none for `token_timeout`.
    fn progress_at(&mut self, now: Instant) {
        self.last_progress = now;
        if matches!(self.state, State::Coordinating(_)) && !self.view.members.is_empty() {
            self.timers
                .set(Timer::TokenLoss, now + self.cfg.token_timeout);
        }
    }

    fn running_timers(&mut self, now: Instant) {
        if self.timers.is_due(Timer::Beacon, now) {
            self.beacon(now);
            if self.safe_at_last_beacon > self.archived() && !self.is_pulling() {
                self.start_pull(now);
            }
            self.safe_at_last_beacon = self.safe_seen;
        }
        if self.timers.is_due(Timer::TokenLoss, now) {
            log::info!(
                "token lost: no progress in epoch {} for {:?}; recovering",
                self.view.epoch,
                self.cfg.token_timeout
            );
            self.stats.token_losses += 1;
            self.start_gather(now);
            return;
        }
        if self.timers.is_due(Timer::ViewResend, now) {
            self.send_view(now);
        }
        if self.timers.is_due(Timer::FirstTokenResend, now) {
            if let State::Coordinating(Running {
                first_token: Some(token),
                ..
            }) = &self.state
            {
                let msg = Msg::Token(token.clone());
                self.send(msg);
                self.arm_first_token_resend(now);
            }
        }
    }

    /// A lost first token would cost a whole recovery; it goes out again as often as a
    /// member resends a pass.
    fn arm_first_token_resend(&mut self, now: Instant) {
        let interval = crate::protocol::token_ring::retransmit_interval(self.cfg.token_timeout);
        self.timers.set(Timer::FirstTokenResend, now + interval);
    }

    /// Reconciliation tick (every `--sync-interval`): announce the archive's high-water mark
    /// and pull anything final that the archive lacks.
    pub fn handle_sync(&mut self, now: Instant) {
        if let State::Coordinating(running) = &self.state {
            let idle = running.pull.is_none();
            self.beacon(now);
            if self.safe_seen > self.archived() && idle {
                self.start_pull(now);
            }
        }
    }

    /// Handles one decoded datagram.
    pub fn handle_datagram(&mut self, now: Instant, msg: Msg) {
        match self.state {
            State::Yielded => return,
            State::Probing => {
                self.probe(now, msg);
                return;
            }
            _ => {}
        }
        match msg {
            Msg::Hello {
                from,
                incarnation,
                name,
                ..
            } => self.on_hello(now, from, incarnation, name),
            Msg::Leave { from, incarnation } => self.on_leave(now, from, incarnation),
            Msg::Report {
                epoch,
                from,
                incarnation,
                name,
                view_epoch,
                aru,
                delivered,
            } => {
                let info = ReportInfo {
                    incarnation,
                    view_epoch,
                    aru,
                    delivered,
                };
                self.on_report(now, epoch, from, name, info)
            }
            Msg::Token(token) => self.on_token(now, token),
            Msg::TokenAck { epoch, hop, .. } if epoch == self.view.epoch => {
                self.first_token_arrived(hop)
            }
            Msg::Data { epoch, recs } => self.on_data(epoch, recs),
            Msg::Fetch { from, to, lo, hi } if to == NodeId::SERVER => self.serve(from, lo, hi),
            Msg::History { to, records } if to == NodeId::SERVER => self.on_history(now, records),
            Msg::View { epoch, server, .. } | Msg::Beacon { epoch, server, .. }
                if self.is_rival(server) =>
            {
                self.on_rival_view(epoch, server)
            }
            Msg::ViewRequest { .. } => self.view_wanted(now),
            _ => {}
        }
    }

    /// A view from another server: two coordinate this group (started at the same moment,
    /// or one on each side of a partition that healed). The older view, by epoch and then by
    /// server id, gives way, so exactly one goes on: each compares the same two pairs, and a
    /// server's views never outrank its own later state. The survivor takes over the other's
    /// ring the usual way (a higher epoch on the wire starts a recovery). Replayed views of
    /// this server's own carry its id and never get here; another server's that are older
    /// than our view change nothing.
    fn on_rival_view(&mut self, epoch: Epoch, server: Option<ServerId>) {
        self.stats.rival_views += 1;
        if (epoch, server) > (self.view.epoch, Some(self.cfg.server_id)) {
            log::warn!(
                "another server coordinates this group: its view of epoch {epoch} outranks \
                 ours ({}); stopping",
                self.view.epoch
            );
            self.give_way();
        } else {
            log::warn!(
                "another server sends views on this group (epoch {epoch}); ours ({}) \
                 outranks it, so it stops",
                self.view.epoch
            );
        }
    }

    /// Stops for good: another server coordinates this group.
    fn give_way(&mut self) {
        self.enter(State::Yielded);
        self.outputs
            .push_back(Output::Stop(CoordinatorStop::AnotherServer));
    }

    /// While probing: only a live server sends views and gathers; tokens and messages are
    /// still archived, everything else waits until we coordinate.
    fn probe(&mut self, now: Instant, msg: Msg) {
        match msg {
            // Our own earlier views, beacons and gathers (this data dir's server before a
            // restart), delayed or replayed, are not another server.
            Msg::View { server, .. } | Msg::Beacon { server, .. } | Msg::Gather { server, .. }
                if self.is_rival(server) =>
            {
                self.give_way()
            }
            Msg::Token(token) => {
                self.max_epoch = self.max_epoch.max(token.epoch);
                self.note_progress(now, &token);
            }
            Msg::Data { epoch, recs } => self.on_data(epoch, recs),
            _ => {}
        }
    }

    /// Notes an epoch seen on the wire. One above the installed view means this server's
    /// state is older than the ring's (it restarted from an old checkpoint): recover.
    fn observe_epoch(&mut self, now: Instant, epoch: Epoch) {
        if epoch > self.max_epoch {
            self.max_epoch = epoch;
            if matches!(self.state, State::Coordinating(_)) {
                log::info!(
                    "seen epoch {epoch} above ours ({}); recovering",
                    self.view.epoch
                );
                self.start_gather(now);
            }
        }
    }

    fn on_hello(&mut self, now: Instant, from: NodeId, incarnation: Incarnation, name: String) {
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
            State::Gathering(_) => self.propose_joiner(member),
            // Joins right after this install.
            State::Collecting(_) | State::Probing | State::Yielded => {}
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

    fn on_leave(&mut self, now: Instant, from: NodeId, incarnation: Incarnation) {
        self.joins.retain(|j| j.member.id != from);
        if self.view.contains(from) && !self.incarnations.contains_key(&from) {
            // This server restarted since the view was installed, so it does not know the
            // members' incarnations yet (they are not in its checkpoint). A recovery learns
            // them from the reports; the leaver repeats its Leave until a view without it.
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

    fn on_token(&mut self, now: Instant, token: Token) {
        self.observe_epoch(now, token.epoch);
        if token.epoch < self.view.epoch {
            self.stats.stale += 1;
            return;
        }
        self.note_progress(now, &token);
    }

    /// A later hop of the installed epoch's token: the ring is alive.
    fn note_progress(&mut self, now: Instant, token: &Token) {
        if token.epoch == self.view.epoch && token.hop > self.last_hop {
            self.last_hop = token.hop;
            self.progress_at(now);
            self.safe_seen = self.safe_seen.max(token.safe);
            if token.hop > 1 {
                self.first_token_arrived(token.hop - 1);
            }
        }
    }

    /// Hop `hop` of the installed epoch arrived (a later pass, or the ack of the first
    /// member): once that covers the first token, it need not go out again.
    fn first_token_arrived(&mut self, hop: u64) {
        if hop >= 1 {
            if let State::Coordinating(running) = &mut self.state {
                running.first_token = None;
            }
            self.timers.stop(Timer::FirstTokenResend);
        }
    }

    fn send(&mut self, msg: Msg) {
        self.outputs.push_back(Output::Send(msg));
    }
}
