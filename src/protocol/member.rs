//! A client's protocol state machine: joining, the token (stamp, pass, retransmit, idle hold),
//! ordering and safe delivery, gaps, the durable outbox, catch-up and leaving.
//!
//! Sans-IO, after quinn-proto: inputs are `handle_*(now, ...)` and [`MemberCore::submit`];
//! outputs are drained with [`MemberCore::poll_output`] and the next deadline is
//! [`MemberCore::poll_timeout`]. It never reads the clock, a socket or a file, so the
//! simulation tests can drive many of them deterministically.
//!
//! The member's phase is one `State` (in `state.rs`) and its deadlines one timer table keyed
//! by `Timer`. This file holds the inputs, joining and leaving; `voting.rs` the membership
//! rounds (gathers, proposals, installed views, beacons), `token.rs` the ring (token visits,
//! stamping, delivery) and `catch_up.rs` history (fetching it and serving it).
//!
//! # Contract with the driver
//! - `now` never goes backwards.
//! - After every input, drain `poll_output` until `None` and perform the outputs in order.
//! - A line goes into [`MemberCore::submit`] only after it is on disk (in the outbox journal;
//!   a later checkpoint covers it too): the core may stamp and send it at once.

mod catch_up;
mod collect;
mod state;
mod token;
mod voting;

#[cfg(test)]
mod tests;

use self::catch_up::CatchUp;
use self::state::{Phase, ServerContact, State, Timer};
pub use self::token::REORDER_WAIT;
use self::voting::{BeaconMsg, GatherMsg};
use crate::protocol::events::{MemberEvent, MemberOutput, MemberStop, Output};
use crate::protocol::order::Order;
use crate::protocol::parts::{self, Assembly, Installed, Proposed};
use crate::protocol::rtt::RttEstimate;
use crate::protocol::timer::TimerTable;
use crate::protocol::token_ring::Token;
use crate::protocol::types::{Incarnation, NodeId, Pending, Seq, View};
use crate::protocol::vote::Vote;
use crate::protocol::wire::{Msg, QuorumWait};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Whether a datagram shows a live ring (a token, a pack, a wake), as a joiner hears it.
fn is_ring_traffic(msg: &Msg) -> bool {
    matches!(msg, Msg::Token(_) | Msg::Data { .. } | Msg::Wake { .. })
}

/// Tunables of a member. [`MemberConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// This node.
    pub id: NodeId,
    /// Display name.
    pub name: String,
    /// Random per process start; lets the server tell a restart from a duplicate Hello.
    pub incarnation: Incarnation,
    /// Give up joining if no server was heard within this time.
    pub join_timeout: Duration,
    /// How often a joining (or leaving) client repeats its Hello (or Leave).
    pub hello_interval: Duration,
    /// Most messages stamped per token visit (Totem's per-visit window).
    pub window: usize,
    /// How long an idle holder keeps the token before passing it, so an idle ring costs
    /// almost nothing; a member with something to send wakes the holder at once.
    pub idle_hold: Duration,
    /// Records asked for per history request.
    pub fetch_chunk: u64,
    /// How long a leaving client waits for its outbox to drain before it leaves anyway.
    pub drain_timeout: Duration,
    /// How long a leaving client waits for the view without it.
    pub leave_timeout: Duration,
    /// Silence after which the server counts as gone (a notice, not a failure).
    pub server_silence: Duration,
}

impl MemberConfig {
    /// Defaults for a member with this identity.
    pub fn new(id: NodeId, name: String, incarnation: Incarnation) -> MemberConfig {
        MemberConfig {
            id,
            name,
            incarnation,
            join_timeout: Duration::from_secs(10),
            hello_interval: Duration::from_millis(200),
            window: 32,
            idle_hold: Duration::from_millis(250),
            fetch_chunk: 512,
            drain_timeout: Duration::from_secs(10),
            leave_timeout: Duration::from_secs(3),
            server_silence: Duration::from_secs(5),
        }
    }
}

/// The state a member restarts from (checkpoint, replica and vote).
#[derive(Clone, Debug, Default)]
pub struct Restored {
    /// Highest seq in the replica.
    pub delivered: Seq,
    /// Accepted lines not yet delivered, in typing order.
    pub outbox: Vec<Pending>,
    /// The durable vote (see [`crate::protocol::vote`]).
    pub vote: Vote,
}

/// Counters shown by `/stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberStats {
    /// Messages delivered.
    pub delivered: u64,
    /// Own messages stamped and multicast.
    pub stamped: u64,
    /// Token visits.
    pub tokens_held: u64,
    /// Token passes sent again because no progress was seen.
    pub token_retransmits: u64,
    /// Messages multicast again on request (each record of a resent pack counts).
    pub retransmissions: u64,
    /// Duplicate tokens and records ignored (each record of a pack counts).
    pub duplicates: u64,
    /// Tokens or records from a superseded epoch (G3), or records of another chat, rejected.
    pub stale: u64,
    /// Views installed.
    pub views: u64,
    /// Token holdings in which we collected the members' arus ourselves.
    pub collects: u64,
    /// Collections that ended at their deadline, some answer missing (the token went round).
    pub collects_unanswered: u64,
    /// Collections cut short by a member that asked for the token (it got the token at once,
    /// and the lines went round).
    pub collects_woken: u64,
}

/// A client's protocol state. See the module docs for the driving contract.
#[derive(Debug)]
pub struct MemberCore {
    cfg: MemberConfig,
    /// The installed view; empty (epoch 0) until admitted, and kept after an exclusion so
    /// that older epochs stay stale.
    view: View,
    /// Joining, in the ring, gathering; draining or announcing a leave; stopped.
    state: State,
    /// Every deadline, one per [`Timer`]; [`MemberCore::poll_timeout`] is their minimum.
    timers: TimerTable<Timer>,
    /// The durable vote: a view is installed only if this node promised its gather and
    /// accepted its proposal (and promised nothing later since), saved before each answer.
    vote: Vote,
    order: Order,
    /// Highest `safe` seen on a token of this epoch.
    safe: Seq,
    /// Accepted lines not yet delivered, in typing order.
    outbox: VecDeque<Pending>,
    /// A token for an epoch whose view has not arrived yet: kept (in any phase) until it does.
    early_token: Option<Token>,
    /// Server's token timeout (from its view); our retransmit and fetch timers derive from it.
    token_timeout: Duration,
    /// The round trip of a token pass to its acknowledgement: a lost pass is sent again after
    /// a few round trips, not a fixed share of the token timeout.
    pass_rtt: RttEstimate,
    /// The round trip of a history request, over every catch-up so far.
    fetch_rtt: RttEstimate,
    server: ServerContact,
    /// When a server of our view (or, before we are admitted, any server) was last heard: a
    /// server outside the view may gather the ring only once they have all been silent for
    /// a token timeout (it takes over for them).
    view_server_heard: Instant,
    /// The catch-up to the current view's cut; it goes on across gathers and exclusions.
    catch_up: Option<CatchUp>,
    /// The parts of a view that spans several datagrams, until they are all in.
    view_parts: Assembly<Installed>,
    /// The parts of a proposal, likewise.
    proposal_parts: Assembly<Proposed>,
    /// The quorum count last shown to the user while a gather waits for one.
    quorum_shown: Option<QuorumWait>,
    /// Joining: a ring was heard on the group (a token or a message), whether or not a server.
    ring_heard: bool,
    /// The user was told that the ring is stalled, and not yet that it moves (a pass got
    /// through, or a new view was installed).
    stalled: bool,
    outputs: VecDeque<MemberOutput>,
    stats: MemberStats,
}

impl MemberCore {
    /// A member that starts joining at `now`, restored from its files.
    pub fn new(cfg: MemberConfig, restored: Restored, now: Instant) -> MemberCore {
        let mut core = MemberCore {
            view: View::default(),
            state: State::Active(Phase::Joining),
            timers: TimerTable::default(),
            vote: restored.vote,
            order: Order::new(restored.delivered),
            safe: restored.delivered,
            outbox: restored.outbox.into(),
            early_token: None,
            token_timeout: Duration::from_secs(3),
            pass_rtt: RttEstimate::new(),
            fetch_rtt: RttEstimate::new(),
            server: ServerContact::Unheard,
            view_server_heard: now,
            catch_up: None,
            view_parts: Assembly::default(),
            proposal_parts: Assembly::default(),
            quorum_shown: None,
            ring_heard: false,
            stalled: false,
            outputs: VecDeque::new(),
            stats: MemberStats::default(),
            cfg,
        };
        core.start_join_timers(now);
        core
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The installed view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// Whether this node is in the installed view.
    pub fn is_admitted(&self) -> bool {
        self.state.admitted()
    }

    /// Whether this node holds the token right now.
    pub fn holds_token(&self) -> bool {
        self.state.ring().is_some_and(|r| r.held.is_some())
    }

    /// Who had the token last, as far as this node saw it pass (for `/who`).
    pub fn token_holder(&self) -> Option<NodeId> {
        match self.state.phase()? {
            Phase::InRing(ring) if ring.held.is_some() => Some(self.cfg.id),
            Phase::InRing(ring) => ring.seen_holder.map(|(_, id)| id),
            Phase::Gathering { seen_holder, .. } => seen_holder.map(|(_, id)| id),
            Phase::Joining => None,
        }
    }

    /// While a gather that asked us waits for a quorum: how far it is.
    pub fn quorum_wait(&self) -> Option<QuorumWait> {
        let gathering =
            matches!(self.state.phase(), Some(Phase::Gathering { .. })) || self.state.joining();
        self.quorum_shown.filter(|_| gathering)
    }

    /// Highest delivered seq.
    pub fn delivered(&self) -> Seq {
        self.order.delivered()
    }

    /// Accepted lines not yet delivered, in typing order (on disk in the outbox journal, and
    /// in the checkpoint once one is written after they were accepted).
    pub fn outbox(&self) -> impl Iterator<Item = &Pending> {
        self.outbox.iter()
    }

    /// How many lines the outbox holds.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Counters.
    pub fn stats(&self) -> &MemberStats {
        &self.stats
    }

    /// Whether the node has stopped (left, refused or timed out).
    pub fn is_stopped(&self) -> bool {
        matches!(self.state, State::Stopped)
    }

    /// Next output for the driver, in order.
    pub fn poll_output(&mut self) -> Option<MemberOutput> {
        self.outputs.pop_front()
    }

    /// Whether outputs are waiting to be drained.
    pub fn has_output(&self) -> bool {
        !self.outputs.is_empty()
    }

    /// Adds lines that are already on disk to the outbox; the ring delivers each exactly once.
    pub fn submit(&mut self, now: Instant, lines: Vec<Pending>) {
        self.outbox.extend(lines);
        if let Some(mut token) = self.take_held() {
            let stamped = self.stamp(&mut token);
            self.hold_or_pass(now, token, stamped > 0);
        } else if self.state.ring().is_some() {
            self.wake(now, false);
        }
    }

    /// Starts a clean leave: drain the outbox (bounded; joining first if need be), pass the
    /// token on, tell the server.
    pub fn leave(&mut self, now: Instant) {
        if !matches!(self.state, State::Active(_)) {
            return;
        }
        self.state = std::mem::replace(&mut self.state, State::Stopped).draining();
        self.timers
            .set(Timer::DrainDeadline, now + self.cfg.drain_timeout);
        self.check_leaving(now);
    }

    /// The earliest instant at which [`MemberCore::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers.take_due(Timer::JoinTimeout, now) && self.server == ServerContact::Unheard {
            self.stop(MemberStop::JoinTimeout {
                ring_heard: self.ring_heard,
            });
            return;
        }
        if self.timers.take_due(Timer::Hello, now) {
            self.hello(now);
        }
        if self.timers.take_due(Timer::IdlePass, now) {
            if let Some(token) = self.take_held() {
                if token.seq > token.safe {
                    // A collection whose answers did not all come: the token goes round.
                    self.stats.collects_unanswered += 1;
                }
                self.pass(now, token);
            }
        }
        if self.timers.take_due(Timer::TokenReorder, now) {
            self.visit_early_token(now);
        }
        if self.timers.take_due(Timer::TokenRetransmit, now) {
            self.retransmit_pass(now);
        }
        if self.timers.take_due(Timer::FetchRetry, now) {
            self.retry_history(now);
        }
        if self.timers.take_due(Timer::WakeResend, now) {
            // The Wake (or the token) got lost: ask again while lines wait.
            if self
                .state
                .ring()
                .is_some_and(|r| self.outbox.len() > r.in_flight)
            {
                self.wake(now, true);
                self.check_stall(now);
                self.check_suspect(now);
            }
        }
        if self.timers.take_due(Timer::ServerSilence, now) {
            if self.server != ServerContact::Silent {
                self.server = ServerContact::Silent;
                self.event(MemberEvent::ServerUnreachable);
                self.check_stall(now);
            }
            self.ask_silent_server(now);
        }
        self.check_leaving(now);
    }

    /// Arms the Hello (at once) and the join timeout, counted from `now`.
    fn start_join_timers(&mut self, now: Instant) {
        self.timers.set(Timer::Hello, now);
        self.timers
            .set(Timer::JoinTimeout, now + self.cfg.join_timeout);
    }

    fn hello(&mut self, now: Instant) {
        self.send(Msg::Hello {
            from: self.cfg.id,
            incarnation: self.cfg.incarnation,
            name: self.cfg.name.clone(),
            delivered: self.order.delivered(),
        });
        self.timers.set(Timer::Hello, now + self.cfg.hello_interval);
    }

    /// Handles one decoded datagram.
    pub fn handle_datagram(&mut self, now: Instant, msg: Msg) {
        if self.is_stopped() {
            return;
        }
        if self.state.joining() && !self.ring_heard && is_ring_traffic(&msg) {
            self.ring_heard = true;
            if self.server == ServerContact::Unheard {
                self.event(MemberEvent::NoServerForRing);
            }
        }
        match msg {
            Msg::Gather {
                epoch,
                members,
                server,
                group,
                waiting,
                ..
            } => self.on_gather(
                now,
                GatherMsg {
                    epoch,
                    members,
                    server,
                    group,
                    waiting,
                },
            ),
            msg @ Msg::View { .. } => {
                if let Some(part) = parts::view_part(msg) {
                    self.on_view_part(now, part);
                }
            }
            msg @ Msg::Propose { .. } => {
                if let Some(part) = parts::proposal_part(msg) {
                    self.on_proposal_part(now, part);
                }
            }
            Msg::SessionRequest { from, to, epoch } if to == self.cfg.id => {
                self.on_session_request(from, epoch)
            }
            Msg::Beacon {
                epoch,
                cut,
                token_timeout_ms,
                members,
                digest,
                group,
                standby,
                server,
                ..
            } => self.on_beacon(
                now,
                BeaconMsg {
                    epoch,
                    cut,
                    token_timeout_ms,
                    size: (members, digest),
                    group,
                    standby,
                    server,
                },
            ),
            Msg::Token(token) => self.on_token(now, token),
            Msg::Data { epoch, group, recs } => self.on_data(now, epoch, group, recs),
            Msg::Wake { epoch, from, hop } => self.on_wake(now, epoch, from, hop),
            Msg::TokenAck { epoch, hop, .. } => self.on_token_ack(now, epoch, hop),
            Msg::AskAru { epoch, from, seq } => self.on_collect(epoch, from, seq),
            Msg::Aru { epoch, from, aru } => self.on_aru(now, epoch, from, aru),
            Msg::Fetch { from, to, lo, hi } if to == self.cfg.id => self.serve(from, lo, hi),
            Msg::History { to, records } if to == self.cfg.id => self.on_history(now, records),
            Msg::Refuse {
                to,
                incarnation,
                reason,
            } if to == self.cfg.id
                && incarnation == self.cfg.incarnation
                && !self.state.admitted() =>
            {
                self.stop(MemberStop::Refused(reason))
            }
            _ => {}
        }
        self.check_leaving(now);
    }

    /// A server was heard (coordinating or standing by, gathering or beaconing).
    fn heard_server(&mut self, now: Instant) {
        if self.server == ServerContact::Silent {
            self.event(MemberEvent::ServerBack);
        }
        self.server = ServerContact::Heard;
        self.timers
            .set(Timer::ServerSilence, now + self.cfg.server_silence);
    }

    /// No server heard for a while: ask for the view, and again every `server_silence` while
    /// none answers. A server that dropped us from its view (in unicast mode, also from the
    /// nodes it sends to) learns that we are here and answers with its view, which sends us
    /// back to joining if we are not in it; with no server up it costs one datagram.
    fn ask_silent_server(&mut self, now: Instant) {
        if !self.state.admitted() {
            return;
        }
        self.request_view();
        self.timers
            .set(Timer::ServerSilence, now + self.cfg.server_silence);
    }

    /// In the ring with nothing left to hand over: nothing to send, nothing to fetch.
    fn settled(&self) -> bool {
        self.state.admitted() && self.outbox.is_empty() && self.catch_up.is_none()
    }

    fn check_leaving(&mut self, now: Instant) {
        match self.state {
            State::Draining(_) => self.check_draining(now),
            State::Announced(_) => self.check_announced(now),
            State::Active(_) | State::Stopped => {}
        }
    }

    fn check_draining(&mut self, now: Instant) {
        if !self.settled() && !self.timers.is_due(Timer::DrainDeadline, now) {
            return; // join, catch up and drain first; the join can still time out
        }
        if !self.state.admitted() {
            self.stop(MemberStop::Left); // not in a ring: nobody to hand anything over to
            return;
        }
        self.timers.stop(Timer::DrainDeadline);
        self.state = std::mem::replace(&mut self.state, State::Stopped).announcing();
        self.timers
            .set(Timer::LeaveTimeout, now + self.cfg.leave_timeout);
        self.say_leave(now);
    }

    fn check_announced(&mut self, now: Instant) {
        if self.timers.is_due(Timer::LeaveTimeout, now) {
            self.event(MemberEvent::LeaveUnconfirmed);
            self.stop(MemberStop::Left);
        } else if self.timers.is_due(Timer::Leave, now) {
            self.say_leave(now);
        }
    }

    /// Hands the token on if we hold it and (again) tells the server we leave.
    fn say_leave(&mut self, now: Instant) {
        if let Some(token) = self.take_held() {
            self.pass(now, token);
        }
        self.timers.set(Timer::Leave, now + self.cfg.hello_interval);
        self.send(Msg::Leave {
            from: self.cfg.id,
            incarnation: self.cfg.incarnation,
        });
    }

    fn stop(&mut self, reason: MemberStop) {
        if !self.is_stopped() {
            self.state = State::Stopped;
            self.timers.stop_all();
            self.outputs.push_back(Output::Stop(reason));
        }
    }

    fn send(&mut self, msg: Msg) {
        self.outputs.push_back(Output::Send(msg));
    }

    fn send_to(&mut self, to: NodeId, msg: Msg) {
        self.outputs.push_back(Output::SendTo { to, msg });
    }

    /// The coordinating server of our view, as a node to send to.
    fn coordinator(&self) -> Option<NodeId> {
        self.view.coordinator().map(NodeId::server)
    }

    fn event(&mut self, event: MemberEvent) {
        self.outputs.push_back(Output::Event(event));
    }
}
