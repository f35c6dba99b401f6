//! A server's protocol state machine. Several servers may run on one chat: the first of the
//! view's servers in rank order coordinates (joins and leaves, the view, token-loss detection,
//! recovery), the others stand by; every one of them archives what is safe, serves history,
//! reconciles, and votes on views like a member.
//!
//! Sans-IO like [`crate::protocol::member`]: `handle_*(now, ...)` in,
//! [`Coordinator::poll_output`] out. It never reads the clock, a socket, a file or a global
//! RNG (the ids it draws from come in its config).
//!
//! # Recovery, after Totem's membership protocol, with a primary component
//! Every view change (a join, a leave, a lost token, a server that falls silent) runs:
//! 1. **Gather.** Open an epoch above any seen and ask the proposed members and servers to
//!    promise it and report. A member that promises stops using the old ring.
//! 2. **Decide** ([`crate::protocol::quorum`]): a quorum of the last primary's voters, and a
//!    complete cut. Otherwise wait, saying how many voters are reachable.
//! 3. **Fix the cut and collect.** The cut is the highest `seq` up to which some reporter
//!    surely holds everything (and at least what undecided attempts promised). The server
//!    fetches what it lacks up to the cut and archives it before it proposes.
//! 4. **Propose.** Every reporter records the proposed view durably and accepts it.
//! 5. **Install.** Multicast the view and issue a fresh token. Members fetch what they lack
//!    up to the cut; lines above it return to their authors' outboxes.
//!
//! # Layout
//! This file holds the configuration, the `State` and `Timer` enums, the public API, the
//! dispatch of datagrams and token progress. `joins` admits joins and leaves; `roles` decides
//! who coordinates (start-up, standing by, taking over, stepping down); `recovery` runs steps
//! 1 to 3 above and `commit` steps 3 to 5; `voter` is this server voting on another's gather;
//! `archive` keeps the archive, serves history and pulls what it lacks; `announce` sends
//! beacons and views.

mod announce;
mod archive;
mod commit;
mod joins;
mod recovery;
mod roles;
#[cfg(test)]
mod tests;
mod voter;

use crate::protocol::events::{CoordinatorEvent, CoordinatorOutput, CoordinatorStop, Output};
use crate::protocol::fetch::WindowedFetch;
use crate::protocol::order::Order;
use crate::protocol::parts::{self, Assembly, Installed, Proposed};
use crate::protocol::rtt::RttEstimate;
use crate::protocol::timer::{self, TimerTable};
use crate::protocol::token_ring::Token;
use crate::protocol::types::{Epoch, GroupId, Incarnation, Member, NodeId, Seq, ServerId, View};
use crate::protocol::vote::{Session, Vote};
use crate::protocol::wire::{Msg, QuorumWait};
use commit::{Collecting, Proposing};
use recovery::{Gathering, ReportInfo};
use roles::Standby;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Tunables of the server.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// No token progress for this long means the token is lost: recover.
    pub token_timeout: Duration,
    /// How often the beacon (the view in brief, with the archive's high-water mark) goes out
    /// as the heartbeat; a standby's heartbeat goes out as often.
    pub beacon_interval: Duration,
    /// How long the servers ranked before a standby must be silent before it takes over.
    pub takeover: Duration,
    /// How often a gather or a proposal is repeated while answers are missing.
    pub gather_resend: Duration,
    /// Proposed members that have not reported by then are left out of the view, and a
    /// proposal not accepted by every reporter by then is given up for a new gather.
    pub report_timeout: Duration,
    /// Records asked for per history request.
    pub fetch_chunk: u64,
    /// At start-up, listen this long before acting: long enough to hear a live server's
    /// heartbeat (at most every second), even one that delays its datagrams by 100 ms to 1 s.
    pub probe: Duration,
    /// This server's random id, kept across restarts: its node id, and its rank among equals.
    pub server_id: ServerId,
    /// The id of the chat this server starts if the probe hears none.
    pub new_group: GroupId,
    /// Random per process start, as a client's: tells a restarted server's reports apart.
    pub incarnation: Incarnation,
}

impl CoordinatorConfig {
    /// Defaults for a given token timeout.
    pub fn new(token_timeout: Duration) -> CoordinatorConfig {
        CoordinatorConfig {
            token_timeout,
            beacon_interval: (token_timeout / 3)
                .clamp(Duration::from_millis(100), Duration::from_secs(1)),
            takeover: token_timeout,
            gather_resend: Duration::from_millis(200),
            report_timeout: token_timeout,
            fetch_chunk: 512,
            probe: Duration::from_secs(2),
            server_id: ServerId(1),
            new_group: GroupId(1),
            incarnation: Incarnation(0),
        }
    }
}

/// Counters shown in the server's log and by tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoordinatorStats {
    /// Views installed by this server.
    pub views: u64,
    /// Recoveries started because the token made no progress.
    pub token_losses: u64,
    /// Records archived.
    pub archived: u64,
    /// Stale tokens or messages seen (older epoch), and packs of another chat.
    pub stale: u64,
    /// Times this server took over from silent servers ranked before it.
    pub takeovers: u64,
    /// Joins refused.
    pub refused: u64,
}

/// Where the server is; each phase owns its data, and its deadlines are the [`Timer`]s that
/// [`Coordinator::enter`] clears when the phase ends.
#[derive(Debug)]
enum State {
    /// At start-up, listening before acting ([`Timer::Probe`]).
    Probing,
    /// Another server coordinates, or may: archive, serve, vote, and take over when every
    /// server ranked before this one is silent.
    Standby(Standby),
    /// This server coordinates the installed view and its ring runs.
    Coordinating(Running),
    /// Recovery: waiting for reports (and a quorum).
    Gathering(Gathering),
    /// Recovery: fetching what the archive lacks up to the cut.
    Collecting(Collecting),
    /// Recovery: waiting for every reporter to accept the proposed view.
    Proposing(Proposing),
    /// Another chat with a history of its own runs on this group: nothing more is done.
    Stopped,
}

/// What only normal operation has.
#[derive(Debug, Default)]
struct Running {
    /// The first token of the view, sent again ([`Timer::FirstTokenResend`]) until the ring
    /// shows a later hop.
    first_token: Option<Token>,
}

/// The server's deadlines, each armed only in the [`State`] named beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// Probing: the start-up probe ends.
    Probe,
    /// Coordinating or standing by: the heartbeat goes out.
    Beacon,
    /// Coordinating, with members: no token progress since `token_timeout`.
    TokenLoss,
    /// Coordinating: the whole view goes out again, asked for within the resend gap.
    ViewResend,
    /// Coordinating: the first token goes out again.
    FirstTokenResend,
    /// Coordinating or standing by: the pull's chunk is overdue.
    PullRetry,
    /// Standing by: whether to take over.
    Takeover,
    /// Coordinating a chat it just started: joins wait until then (see
    /// [`Coordinator::started_chat`]).
    Hold,
    /// Standing by: the chunk fetched before accepting a proposal is overdue.
    AcceptFetchRetry,
    /// Gathering: the gather goes out again.
    GatherResend,
    /// Gathering: proposed members that have not reported are left out. It starts at
    /// `report_timeout` and shrinks when the first report shows how fast members answer.
    ReportDeadline,
    /// Collecting: the chunk asked for is overdue.
    CollectRetry,
    /// Proposing: the proposal goes out again to those that did not accept it.
    ProposeResend,
    /// Proposing: not every reporter accepted; gather again.
    AcceptDeadline,
}

impl timer::Timer for Timer {
    const ALL: &'static [Timer] = &[
        Timer::Probe,
        Timer::Beacon,
        Timer::TokenLoss,
        Timer::ViewResend,
        Timer::FirstTokenResend,
        Timer::PullRetry,
        Timer::Takeover,
        Timer::Hold,
        Timer::AcceptFetchRetry,
        Timer::GatherResend,
        Timer::ReportDeadline,
        Timer::CollectRetry,
        Timer::ProposeResend,
        Timer::AcceptDeadline,
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

/// A server's protocol state.
///
/// # When is a cut complete?
/// Anything delivered anywhere was safe, so every member of the old view received it. A
/// member that reports an `aru` collected in the last primary view (it did not restart) holds
/// all of it, and its report also stops the old ring. A member that restarted lost what it
/// had received but not delivered; only its replica's high counts. So the cut is complete
/// once one such member reports a trusted `aru`, or every voter of the last primary reports.
/// Otherwise the gather waits: a silent member may be alive behind a partition, its ring
/// chatting on. See [`crate::protocol::quorum`].
#[derive(Debug)]
pub struct Coordinator {
    cfg: CoordinatorConfig,
    /// The durable vote; its primary is the last view this server formed.
    vote: Vote,
    /// The view this server knows installed: its primary, or for a server not in the
    /// primary, the newest installed view heard (archived, not voted on).
    view: View,
    /// Cut of that view.
    cut: Seq,
    incarnations: HashMap<NodeId, Incarnation>,
    /// Highest epoch used or seen; a new gather's epoch is above it.
    max_epoch: Epoch,
    /// The archive's hold-back queue; `delivered` is the archive's high-water mark.
    order: Order,
    /// Whether live messages of the installed epoch are archived (once safe); false once a
    /// cut is being fixed, so nothing above the cut slips into the archive.
    archiving: bool,
    state: State,
    timers: TimerTable<Timer>,
    joins: Vec<Joiner>,
    leaves: HashSet<NodeId>,
    /// Incarnations that left the ring cleanly: their hellos are stale (replays, duplicates).
    departed: HashSet<(NodeId, Incarnation)>,
    /// Servers heard outside the view (new, or back after being left out): joiners.
    new_servers: Vec<ServerId>,
    /// When each other server of our chat was last heard.
    heard: HashMap<ServerId, Instant>,
    /// When another server last ran a recovery we heard (a gather, a proposal, a view): a
    /// standby does not take over meanwhile.
    recovery_heard: Option<Instant>,
    /// When a ring's token or messages were last heard, of any chat: a server that knows no
    /// view never starts a chat beside a ring (the two would share the group).
    ring_heard: Option<Instant>,
    /// Whether the start-up notice of a ring without a server was given.
    ring_without_server_shown: bool,
    /// When this server started: a server never heard counts as heard then.
    started: Instant,
    /// A chat this server just started admits nobody before this instant, and beacons eight
    /// times as often until then: two servers that started chats at the same moment hear each
    /// other first, and one gives its chat up while neither has a member.
    started_chat: Option<Instant>,
    /// Sessions other nodes echoed to us (attempts we never saw), to decide on exactly.
    learned: Vec<Session>,
    view_parts: Assembly<Installed>,
    proposal_parts: Assembly<Proposed>,
    echo_parts: Assembly<Proposed>,
    last_hop: u64,
    /// The installed ring's last sign of life: the token-loss deadline while coordinating.
    last_progress: Instant,
    /// Highest `safe` seen on a token of the installed epoch: the archive takes live records
    /// up to here and no further (a later cut may not keep what is above).
    safe_seen: Seq,
    /// `safe_seen` at the previous beacon: if the archive is still below it, pull.
    safe_at_last_beacon: Seq,
    /// The highest archive another server announced: a standby pulls up to it.
    high_heard: Seq,
    /// Reconciliation: final records the archive lacks, pulled from a member or a server
    /// ([`Timer::PullRetry`]).
    pull: Option<WindowedFetch>,
    /// Pulls started and requests overdue, to pick sources in turn.
    pulls: usize,
    /// The round trip of a pull's request, over every pull so far.
    pull_rtt: RttEstimate,
    /// When the whole view last went out: asks within the resend gap wait for the next.
    view_sent_at: Option<Instant>,
    /// The quorum count last announced while waiting for one.
    quorum_shown: Option<QuorumWait>,
    outputs: VecDeque<CoordinatorOutput>,
    stats: CoordinatorStats,
}

impl Coordinator {
    /// A server restored from its vote (the default for a fresh data dir) and an archive
    /// holding everything up to `archived`; it probes the group first unless `cfg.probe` is 0.
    pub fn new(cfg: CoordinatorConfig, vote: Vote, archived: Seq, now: Instant) -> Coordinator {
        let (view, cut) = vote
            .primary
            .as_ref()
            .map_or((View::default(), Seq(0)), |p| (p.view.clone(), p.cut));
        let max_epoch = vote.promised.epoch.max(view.epoch);
        let mut c = Coordinator {
            max_epoch,
            cut: cut.max(archived),
            view,
            vote,
            incarnations: HashMap::new(),
            order: Order::new(archived),
            archiving: true,
            state: State::Probing,
            timers: TimerTable::default(),
            joins: Vec::new(),
            leaves: HashSet::new(),
            departed: HashSet::new(),
            new_servers: Vec::new(),
            heard: HashMap::new(),
            recovery_heard: None,
            ring_heard: None,
            ring_without_server_shown: false,
            started: now,
            started_chat: None,
            learned: Vec::new(),
            view_parts: Assembly::default(),
            proposal_parts: Assembly::default(),
            echo_parts: Assembly::default(),
            last_hop: 0,
            last_progress: now,
            safe_seen: archived,
            safe_at_last_beacon: archived,
            high_heard: archived,
            pull: None,
            pull_rtt: RttEstimate::new(),
            pulls: 0,
            view_sent_at: None,
            quorum_shown: None,
            outputs: VecDeque::new(),
            stats: CoordinatorStats::default(),
            cfg,
        };
        c.timers.set(Timer::Probe, now + c.cfg.probe);
        c
    }

    /// This server's node id.
    pub fn id(&self) -> NodeId {
        NodeId::server(self.cfg.server_id)
    }

    /// The installed view this server knows.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The durable vote.
    pub fn vote(&self) -> &Vote {
        &self.vote
    }

    /// The archive's high-water mark.
    pub fn archived(&self) -> Seq {
        self.order.delivered()
    }

    /// Counters.
    pub fn stats(&self) -> &CoordinatorStats {
        &self.stats
    }

    /// Whether this server coordinates (a view, or a recovery under way).
    pub fn is_coordinating(&self) -> bool {
        matches!(
            self.state,
            State::Coordinating(_)
                | State::Gathering(_)
                | State::Collecting(_)
                | State::Proposing(_)
        )
    }

    /// Whether a view change is under way.
    pub fn is_recovering(&self) -> bool {
        matches!(
            self.state,
            State::Gathering(_) | State::Collecting(_) | State::Proposing(_)
        )
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
    /// the server has stopped.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Runs the timers that are due. `now` never goes backwards.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, State::Probing) {
            if !self.timers.is_due(Timer::Probe, now) {
                return;
            }
            self.end_probe(now); // and the new phase's timers that are due at once
        }
        match self.state {
            State::Stopped | State::Probing => return,
            State::Standby(_) => self.standby_timers(now),
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
            State::Proposing(_) => {
                if self.timers.is_due(Timer::AcceptDeadline, now) {
                    log::info!("not every reporter accepted the proposal; gathering again");
                    self.start_gather(now);
                } else if self.timers.is_due(Timer::ProposeResend, now) {
                    self.send_proposal(now);
                }
            }
        }
        if self.timers.is_due(Timer::PullRetry, now) {
            self.request_pull(now);
        }
    }

    /// Moves to `state`; the deadlines of the phase left behind die with it, and the caller
    /// arms those of the new one. A pull dies too: the next heartbeat starts one if needed.
    fn enter(&mut self, state: State) {
        self.timers.stop_all();
        self.pull = None;
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
        if self.timers.take_due(Timer::Hold, now) && !self.joins.is_empty() {
            self.start_gather(now);
            return;
        }
        if self.timers.is_due(Timer::Beacon, now) {
            self.beacon(now);
            if self.safe_at_last_beacon > self.archived() && self.pull.is_none() {
                self.start_pull(now, self.safe_at_last_beacon);
            }
            self.safe_at_last_beacon = self.safe_seen;
            if self.silent_standby(now) {
                log::info!("a standby server fell silent; gathering without it");
                self.start_gather(now);
                return;
            }
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

    /// Handles one decoded datagram.
    pub fn handle_datagram(&mut self, now: Instant, msg: Msg) {
        if matches!(self.state, State::Stopped) {
            return;
        }
        if let Some((server, group)) = server_and_group(&msg) {
            if server != self.cfg.server_id && !self.of_our_chat(now, server, group, &msg) {
                return;
            }
        }
        if matches!(msg, Msg::Token(_) | Msg::Data { .. }) {
            self.ring_heard = Some(now);
        }
        if matches!(self.state, State::Probing) {
            self.probe(now, msg);
            return;
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
                group,
                promised,
                primary,
                attempts,
            } => {
                let info = ReportInfo {
                    incarnation,
                    view_epoch,
                    aru,
                    delivered,
                    promised,
                    primary,
                    attempts,
                };
                if Some(group) == self.vote.group {
                    self.on_report(now, epoch, from, name, info);
                }
            }
            Msg::Accept { epoch, from } => self.on_accept(now, epoch, from),
            Msg::Token(token) => self.on_token(now, token),
            Msg::TokenAck { epoch, hop, .. } if epoch == self.view.epoch => {
                self.first_token_arrived(hop)
            }
            Msg::Suspect { epoch, from, hop } if epoch == self.view.epoch => {
                self.on_suspect(now, from, hop)
            }
            Msg::Data { epoch, group, recs } => self.on_data(epoch, group, recs),
            Msg::Fetch { from, to, lo, hi } if to == self.id() => self.serve(from, lo, hi),
            Msg::History { to, records } if to == self.id() => self.on_history(now, records),
            Msg::Gather {
                epoch,
                members,
                server,
                ..
            } => self.on_gather(now, epoch, server, &members),
            msg @ Msg::Propose { .. } => {
                if let Some(part) = parts::proposal_part(msg) {
                    self.on_proposal_part(now, part);
                }
            }
            msg @ Msg::View { .. } => {
                if let Some(part) = parts::view_part(msg) {
                    self.on_view_part(now, part);
                }
            }
            Msg::Beacon {
                epoch,
                high,
                server,
                standby,
                ..
            } => self.on_beacon(now, epoch, high, server, standby),
            Msg::ViewRequest { .. } => self.view_wanted(now),
            Msg::SessionRequest { from, to, epoch } if to == self.id() => {
                self.echo_session(from, epoch)
            }
            _ => {}
        }
    }

    /// Notes an epoch seen on the wire: a new gather opens above every one.
    fn observe_epoch(&mut self, epoch: Epoch) {
        self.max_epoch = self.max_epoch.max(epoch);
    }

    fn on_token(&mut self, now: Instant, token: Token) {
        self.observe_epoch(token.epoch);
        if token.epoch < self.view.epoch {
            self.stats.stale += 1;
            return;
        }
        self.note_progress(now, &token);
    }

    /// A later hop of the installed epoch's token: the ring is alive, and what it made safe
    /// may be archived.
    fn note_progress(&mut self, now: Instant, token: &Token) {
        if token.epoch == self.view.epoch && token.hop > self.last_hop {
            self.last_hop = token.hop;
            self.progress_at(now);
            if token.safe > self.safe_seen {
                self.safe_seen = token.safe;
                self.archive_ready();
                self.pull_lost_safe(now);
            }
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

    fn send_to(&mut self, to: NodeId, msg: Msg) {
        self.outputs.push_back(Output::SendTo { to, msg });
    }

    fn event(&mut self, event: CoordinatorEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    /// Writes the vote before anything that follows.
    fn save_vote(&mut self) {
        self.outputs.push_back(Output::SaveVote(self.vote.clone()));
    }

    fn stop(&mut self, reason: CoordinatorStop) {
        self.enter(State::Stopped);
        self.outputs.push_back(Output::Stop(reason));
    }
}

/// The sending server and chat of a server's message (a gather, a view, a beacon), if it is
/// one.
fn server_and_group(msg: &Msg) -> Option<(ServerId, GroupId)> {
    match msg {
        Msg::Gather { server, group, .. }
        | Msg::View { server, group, .. }
        | Msg::Beacon { server, group, .. }
        | Msg::Propose { server, group, .. } => Some((*server, *group)),
        _ => None,
    }
}
