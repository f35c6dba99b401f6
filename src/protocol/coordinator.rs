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

use crate::protocol::events::{CoordinatorEvent, CoordinatorOutput, CoordinatorStop, Output};
use crate::protocol::limits::{MAX_MEMBERS, MAX_NAME_BYTES};
use crate::protocol::order::Order;
use crate::protocol::token_ring::Token;
use crate::protocol::types::{ChatRecord, Epoch, Incarnation, Member, NodeId, Seq, ServerId, View};
use crate::protocol::wire::{self, Msg};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// The shortest wait for the remaining reports after the first one arrived.
const MIN_REPORT_WAIT: Duration = Duration::from_millis(100);

/// Tunables of the server.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// No token progress for this long means the token is lost: recover.
    pub token_timeout: Duration,
    /// How often the view goes out as a heartbeat (with the archive's high-water mark).
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

#[derive(Clone, Debug)]
struct ReportInfo {
    incarnation: Incarnation,
    view_epoch: Epoch,
    aru: Seq,
    delivered: Seq,
}

#[derive(Clone, Debug)]
struct Joiner {
    member: Member,
    incarnation: Incarnation,
}

/// Step 1: waiting for reports.
#[derive(Clone, Debug)]
struct Gathering {
    epoch: Epoch,
    proposed: Vec<Member>,
    reports: HashMap<NodeId, ReportInfo>,
    started: Instant,
    /// Proposed members that have not reported by then are left out. It starts at
    /// `report_timeout` and shrinks when the first report shows how fast members answer.
    deadline: Instant,
    next_send: Instant,
}

/// Step 2: fetching what the archive lacks up to the cut.
#[derive(Clone, Debug)]
struct Collecting {
    epoch: Epoch,
    members: Vec<Member>,
    incarnations: HashMap<NodeId, Incarnation>,
    cut: Seq,
    /// Reporters and how far each holds everything, best first.
    sources: Vec<(NodeId, Seq)>,
    asked_to: Seq,
    retry_at: Instant,
    retries: u32,
}

#[derive(Clone, Debug)]
enum Phase {
    Normal,
    Gathering(Gathering),
    Collecting(Collecting),
}

/// Reconciliation: pulling final records the archive lacks from a member.
#[derive(Clone, Debug)]
struct Pull {
    target: Seq,
    asked_to: Seq,
    retry_at: Instant,
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
    phase: Phase,
    joins: Vec<Joiner>,
    leaves: HashSet<NodeId>,
    /// Incarnations that left the ring cleanly: their hellos are stale (replays, duplicates).
    departed: HashSet<(NodeId, Incarnation)>,
    last_hop: u64,
    last_progress: Instant,
    /// Highest `safe` seen on a token of the installed epoch.
    safe_seen: Seq,
    /// `safe_seen` at the previous beacon: if the archive is still below it, pull.
    safe_at_last_beacon: Seq,
    /// The first token of the view, sent again until the ring shows a later hop.
    first_token: Option<(Token, Instant)>,
    next_beacon: Instant,
    pull: Option<Pull>,
    /// Until then the server only listens: a view or gather with another server's id means
    /// another live server (its own, from before a restart, carry its own id).
    probing: Option<Instant>,
    /// Another server coordinates this group: this one has stopped and does nothing more
    /// (a view it sent now would look like a rival's to that server).
    yielded: bool,
    /// Pulls started, to pick members in turn.
    pulls: usize,
    outputs: VecDeque<CoordinatorOutput>,
    stats: CoordinatorStats,
}

impl Coordinator {
    /// A server whose archive holds everything up to `archived`, last in `view`.
    pub fn new(cfg: CoordinatorConfig, view: View, archived: Seq, now: Instant) -> Coordinator {
        Coordinator {
            max_epoch: view.epoch,
            cut: archived,
            view,
            incarnations: HashMap::new(),
            order: Order::new(archived),
            archiving: true,
            phase: Phase::Normal,
            joins: Vec::new(),
            leaves: HashSet::new(),
            departed: HashSet::new(),
            last_hop: 0,
            last_progress: now,
            safe_seen: archived,
            safe_at_last_beacon: archived,
            first_token: None,
            next_beacon: now,
            pull: None,
            probing: (!cfg.probe.is_zero()).then(|| now + cfg.probe),
            yielded: false,
            pulls: 0,
            outputs: VecDeque::new(),
            stats: CoordinatorStats::default(),
            cfg,
        }
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
        !matches!(self.phase, Phase::Normal)
    }

    /// Next output for the driver, in order.
    pub fn poll_output(&mut self) -> Option<CoordinatorOutput> {
        self.outputs.pop_front()
    }

    /// Whether outputs are waiting to be drained.
    pub fn has_output(&self) -> bool {
        !self.outputs.is_empty()
    }

    /// The earliest instant at which [`Coordinator::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.yielded {
            return None;
        }
        if let Some(until) = self.probing {
            return Some(until);
        }
        let mut t = Vec::new();
        match &self.phase {
            Phase::Normal => {
                t.push(self.next_beacon);
                if !self.view.members.is_empty() {
                    t.push(self.last_progress + self.cfg.token_timeout);
                }
            }
            Phase::Gathering(g) => t.extend([g.next_send, g.deadline]),
            Phase::Collecting(c) => t.push(c.retry_at),
        }
        t.extend(self.first_token.as_ref().map(|f| f.1));
        t.extend(self.pull.as_ref().map(|p| p.retry_at));
        t.into_iter().min()
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.yielded {
            return;
        }
        if let Some(until) = self.probing {
            if now < until {
                return;
            }
            self.probing = None;
            self.last_progress = now;
            self.next_beacon = now;
            self.outputs
                .push_back(Output::Event(CoordinatorEvent::Coordinating));
            if self.max_epoch > self.view.epoch {
                self.start_gather(now); // the ring moved on while we were away
                return;
            }
        }
        match self.phase.clone() {
            Phase::Normal => self.normal_timers(now),
            Phase::Gathering(g) => {
                if now >= g.deadline {
                    self.finish_gather(now);
                } else if now >= g.next_send {
                    self.send_gather(now);
                }
            }
            Phase::Collecting(c) if now >= c.retry_at => self.retry_collect(now),
            Phase::Collecting(_) => {}
        }
        if self.pull.as_ref().is_some_and(|p| now >= p.retry_at) {
            self.pull = None;
            self.start_pull(now);
        }
    }

    fn normal_timers(&mut self, now: Instant) {
        if now >= self.next_beacon {
            self.beacon(now);
            if self.safe_at_last_beacon > self.archived() && self.pull.is_none() {
                self.start_pull(now);
            }
            self.safe_at_last_beacon = self.safe_seen;
        }
        if !self.view.members.is_empty() && now >= self.last_progress + self.cfg.token_timeout {
            log::info!(
                "token lost: no progress in epoch {} for {:?}; recovering",
                self.view.epoch,
                self.cfg.token_timeout
            );
            self.stats.token_losses += 1;
            self.start_gather(now);
            return;
        }
        if let Some((token, at)) = self.first_token.clone() {
            if now >= at {
                self.send(Msg::Token(token.clone()));
                self.first_token = Some((token, now + self.retransmit_interval()));
            }
        }
    }

    /// Reconciliation tick (every `--sync-interval`): announce the archive's high-water mark
    /// and pull anything final that the archive lacks.
    pub fn handle_sync(&mut self, now: Instant) {
        if !self.yielded && self.probing.is_none() && matches!(self.phase, Phase::Normal) {
            self.beacon(now);
            if self.safe_seen > self.archived() && self.pull.is_none() {
                self.start_pull(now);
            }
        }
    }

    /// Handles one decoded datagram.
    pub fn handle_datagram(&mut self, now: Instant, msg: Msg) {
        if self.yielded {
            return;
        }
        if self.probing.is_some() {
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
            Msg::Data { epoch, rec } => self.on_data(epoch, rec),
            Msg::Fetch { from, to, lo, hi } if to == NodeId::SERVER => self.serve(from, lo, hi),
            Msg::History { to, records } if to == NodeId::SERVER => self.on_history(now, records),
            Msg::View { epoch, server, .. } if server != Some(self.cfg.server_id) => {
                self.on_rival_view(epoch, server)
            }
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
        self.yielded = true;
        self.outputs
            .push_back(Output::Stop(CoordinatorStop::AnotherServer));
    }

    /// While probing: only a live server sends views and gathers; tokens and messages are
    /// still archived, everything else waits until we coordinate.
    fn probe(&mut self, now: Instant, msg: Msg) {
        match msg {
            // Our own earlier views and gathers (this data dir's server before a restart),
            // delayed or replayed, are not another server.
            Msg::View { server, .. } | Msg::Gather { server, .. }
                if server != Some(self.cfg.server_id) =>
            {
                self.give_way()
            }
            Msg::Token(token) => {
                self.max_epoch = self.max_epoch.max(token.epoch);
                self.note_progress(now, &token);
            }
            Msg::Data { epoch, rec } => self.on_data(epoch, rec),
            _ => {}
        }
    }

    /// Notes an epoch seen on the wire. One above the installed view means this server's
    /// state is older than the ring's (it restarted from an old checkpoint): recover.
    fn observe_epoch(&mut self, now: Instant, epoch: Epoch) {
        if epoch > self.max_epoch {
            self.max_epoch = epoch;
            if matches!(self.phase, Phase::Normal) {
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
                reason,
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
        match &mut self.phase {
            Phase::Normal => self.start_gather(now),
            Phase::Gathering(g) => {
                g.reports.remove(&from);
                g.proposed.retain(|m| m.id != from);
                g.proposed.push(member);
                self.send_gather(now);
            }
            Phase::Collecting(_) => {} // joins right after this install
        }
    }

    /// Whether a join keeps the ring within its limits (and its view within one datagram).
    fn admissible(&self, from: NodeId, name: &str) -> Result<(), String> {
        if name.len() > MAX_NAME_BYTES {
            return Err(format!("name longer than {MAX_NAME_BYTES} bytes"));
        }
        let mut members = self.gather_members();
        members.retain(|m| m.id != from && !self.leaves.contains(&m.id));
        if members.len() >= MAX_MEMBERS {
            return Err(format!("the ring is full ({MAX_MEMBERS} members)"));
        }
        members.push(Member {
            id: from,
            name: name.to_string(),
        });
        let view = self.view_msg(Epoch(u64::MAX), members, Seq(u64::MAX));
        wire::encode(&view)
            .map(|_| ())
            .map_err(|_| "the members' names are too long to fit the view in one datagram".into())
    }

    fn on_leave(&mut self, now: Instant, from: NodeId, incarnation: Incarnation) {
        self.joins.retain(|j| j.member.id != from);
        if !self.view.contains(from) || self.incarnations.get(&from) != Some(&incarnation) {
            self.beacon(now); // it is not a member: the view tells it so
            return;
        }
        if !self.leaves.insert(from) {
            return;
        }
        log::info!("{} leaves", from.short());
        match &self.phase {
            Phase::Normal => self.start_gather(now),
            // The gather under way asks the leaver to report; the view will leave it out.
            Phase::Gathering(_) | Phase::Collecting(_) => {}
        }
    }

    /// Who takes part in the next gather: the current members (leavers too: they report, so
    /// the cut covers what they hold), then the joiners.
    fn gather_members(&self) -> Vec<Member> {
        let current = self.view.members.iter();
        let joining = self.joins.iter().map(|j| &j.member);
        let mut out: Vec<Member> = Vec::new();
        for m in current.chain(joining) {
            if !out.iter().any(|o| o.id == m.id) {
                out.push(m.clone());
            }
        }
        out
    }

    fn start_gather(&mut self, now: Instant) {
        let epoch = Epoch(self.max_epoch.0 + 1);
        self.max_epoch = epoch;
        self.first_token = None;
        self.pull = None;
        let proposed = self.gather_members();
        log::info!(
            "gathering epoch {epoch} with {} proposed members",
            proposed.len()
        );
        self.phase = Phase::Gathering(Gathering {
            epoch,
            proposed,
            reports: HashMap::new(),
            started: now,
            deadline: now + self.cfg.report_timeout,
            next_send: now,
        });
        self.maybe_finish_gather(now);
        if matches!(self.phase, Phase::Gathering(_)) {
            self.send_gather(now);
        }
    }

    fn send_gather(&mut self, now: Instant) {
        let resend = self.cfg.gather_resend;
        let Phase::Gathering(g) = &mut self.phase else {
            return;
        };
        g.next_send = now + resend;
        let msg = Msg::Gather {
            epoch: g.epoch,
            members: g.proposed.iter().map(|m| m.id).collect(),
            server: Some(self.cfg.server_id),
        };
        self.send(msg);
    }

    fn on_report(&mut self, now: Instant, epoch: Epoch, from: NodeId, name: String, r: ReportInfo) {
        if r.view_epoch > self.max_epoch {
            self.observe_epoch(now, r.view_epoch);
        }
        let Phase::Gathering(g) = &mut self.phase else {
            return;
        };
        if r.view_epoch >= g.epoch {
            // The member has seen a later view than this gather: gather above it.
            self.start_gather(now);
            return;
        }
        if epoch != g.epoch {
            return;
        }
        let Some(m) = g.proposed.iter_mut().find(|m| m.id == from) else {
            return;
        };
        m.name = name;
        if g.reports.is_empty() {
            // Live members answer within a few round trips of the fastest one; a dead one
            // never does, so there is no point waiting a whole report timeout for it.
            let wait = ((now - g.started) * 4).max(MIN_REPORT_WAIT);
            g.deadline = g.deadline.min(now + wait);
        }
        g.reports.insert(from, r);
        self.maybe_finish_gather(now);
    }

    fn maybe_finish_gather(&mut self, now: Instant) {
        let Phase::Gathering(g) = &self.phase else {
            return;
        };
        if g.proposed.iter().all(|m| g.reports.contains_key(&m.id)) || g.proposed.is_empty() {
            self.finish_gather(now);
        }
    }

    /// Whether the reports fix a cut that covers everything the old ring delivered (see the
    /// type's docs).
    fn cut_is_complete(&self, g: &Gathering, now: Instant) -> bool {
        let old = &self.view.members;
        let trusted = |id: &NodeId| {
            g.reports
                .get(id)
                .is_some_and(|r| r.view_epoch == self.view.epoch)
        };
        old.is_empty()
            || old.iter().any(|m| trusted(&m.id))
            || old.iter().all(|m| g.reports.contains_key(&m.id))
            || now >= self.last_progress + self.cfg.abandon_timeout
    }

    /// Step 2: fix the cut from the reports; fetch what the archive lacks, then install.
    fn finish_gather(&mut self, now: Instant) {
        let wait = match &self.phase {
            Phase::Gathering(g) => !self.cut_is_complete(g, now),
            _ => return,
        };
        if wait {
            // A silent old member may hold what the ring delivered: keep asking.
            let report_timeout = self.cfg.report_timeout;
            if let Phase::Gathering(g) = &mut self.phase {
                g.deadline = now + report_timeout;
            }
            return;
        }
        let Phase::Gathering(g) = std::mem::replace(&mut self.phase, Phase::Normal) else {
            return;
        };
        // Leavers report (their messages count for the cut) but are not in the new view.
        let reporters: Vec<Member> = g
            .proposed
            .iter()
            .filter(|m| g.reports.contains_key(&m.id) && !self.leaves.contains(&m.id))
            .cloned()
            .collect();
        // Only an aru collected in the installed view is trusted; otherwise what the member
        // delivered (final) is all it surely holds.
        let holds = |r: &ReportInfo| {
            if r.view_epoch == self.view.epoch {
                r.aru.max(r.delivered)
            } else {
                r.delivered
            }
        };
        let mut sources: Vec<(NodeId, Seq)> =
            g.reports.iter().map(|(id, r)| (*id, holds(r))).collect();
        sources.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let archived = self.archived();
        let cut = sources.first().map_or(archived, |s| s.1).max(archived);
        let incarnations = g
            .reports
            .iter()
            .map(|(id, r)| (*id, r.incarnation))
            .collect();
        // A joiner that was asked and did not report is forgotten; if it is alive, its next
        // hello brings it back. Otherwise it would start a new gather after every install.
        let asked_silent =
            |id: NodeId| g.proposed.iter().any(|m| m.id == id) && !g.reports.contains_key(&id);
        self.joins.retain(|j| !asked_silent(j.member.id));
        // From here on nothing of the old epoch may enter the archive: the cut is fixed.
        self.archiving = false;
        self.order.reset_epoch(archived);
        log::info!(
            "epoch {}: {} of {} asked reported; view of {}; cut at #{cut} (archive #{archived})",
            g.epoch,
            g.reports.len(),
            g.proposed.len(),
            reporters.len()
        );
        let collecting = Collecting {
            epoch: g.epoch,
            members: reporters,
            incarnations,
            cut,
            sources,
            asked_to: Seq(0),
            retry_at: now,
            retries: 0,
        };
        if cut > archived {
            self.phase = Phase::Collecting(collecting);
            self.request_collect(now);
        } else {
            self.install(now, collecting);
        }
    }

    fn request_collect(&mut self, now: Instant) {
        let chunk = self.cfg.fetch_chunk;
        let retry = self.retransmit_interval() * 2;
        let lo = self.archived().next();
        let Phase::Collecting(c) = &mut self.phase else {
            return;
        };
        let hi = Seq((lo.0 + chunk - 1).min(c.cut.0));
        let candidates: Vec<NodeId> = c
            .sources
            .iter()
            .filter(|s| s.1 >= lo)
            .map(|s| s.0)
            .collect();
        let Some(&to) = candidates.get(c.retries as usize % candidates.len().max(1)) else {
            return;
        };
        c.asked_to = hi;
        c.retry_at = now + retry;
        self.send(Msg::Fetch {
            from: NodeId::SERVER,
            to,
            lo,
            hi,
        });
    }

    fn retry_collect(&mut self, now: Instant) {
        let Phase::Collecting(c) = &mut self.phase else {
            return;
        };
        c.retries += 1;
        if c.retries > 3 * c.sources.len().max(1) as u32 {
            log::info!(
                "epoch {}: sources stopped answering; gathering again",
                c.epoch
            );
            self.start_gather(now);
        } else {
            self.request_collect(now);
        }
    }

    /// Step 3: install the view and issue a fresh token.
    fn install(&mut self, now: Instant, c: Collecting) {
        // A clean leave ends an incarnation (a member left out alive keeps its own and may
        // come back with it, so exclusions are not recorded).
        for m in &self.view.members {
            let gone = !c.members.iter().any(|n| n.id == m.id);
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
            epoch: c.epoch,
            members: c.members,
        };
        self.cut = c.cut;
        self.incarnations = c.incarnations;
        self.joins.retain(|j| !self.view.contains(j.member.id));
        let view = &self.view;
        self.leaves.retain(|id| view.contains(*id));
        self.order.reset_epoch(c.cut);
        self.archiving = true;
        self.phase = Phase::Normal;
        self.last_hop = 0;
        self.last_progress = now;
        self.safe_seen = self.safe_seen.max(c.cut);
        self.stats.views += 1;
        self.outputs.push_back(Output::Checkpoint);
        self.outputs
            .push_back(Output::Event(CoordinatorEvent::ViewInstalled {
                epoch: self.view.epoch,
                members: self.view.members.len(),
                cut: self.cut,
            }));
        self.beacon(now);
        if let Some(first) = self.view.members.first() {
            let n = self.view.members.len();
            let token = Token::first(self.view.epoch, NodeId::SERVER, first.id, self.cut, n);
            self.send(Msg::Token(token.clone()));
            self.first_token = Some((token, now + self.retransmit_interval()));
        }
        if !self.joins.is_empty() || !self.leaves.is_empty() {
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
            self.last_progress = now;
            self.safe_seen = self.safe_seen.max(token.safe);
            if token.hop > 1 {
                self.first_token = None;
            }
        }
    }

    fn on_data(&mut self, epoch: Epoch, rec: ChatRecord) {
        if epoch < self.view.epoch {
            self.stats.stale += 1;
            return;
        }
        if epoch == self.view.epoch && self.archiving && self.order.insert_live(rec) {
            self.archive_ready();
        }
    }

    /// The archive keeps whatever is contiguous: its own cut decisions never go below it.
    fn archive_ready(&mut self) {
        for rec in self.order.take_deliverable(Seq(u64::MAX)) {
            self.stats.archived += 1;
            self.outputs.push_back(Output::Deliver(rec));
        }
    }

    fn serve(&mut self, to: NodeId, lo: Seq, hi: Seq) {
        let hi = hi.min(self.archived());
        if lo <= hi && lo > Seq(0) {
            self.outputs
                .push_back(Output::ServeFromReplica { to, lo, hi });
        }
    }

    fn on_history(&mut self, now: Instant, records: Vec<ChatRecord>) {
        let limit = match (&self.phase, &self.pull) {
            (Phase::Collecting(c), _) => c.cut,
            (Phase::Normal, Some(p)) => p.target,
            _ => return,
        };
        for rec in records.into_iter().filter(|r| r.seq <= limit) {
            self.order.insert_final(rec);
        }
        self.archive_ready();
        let archived = self.archived();
        if let Phase::Collecting(c) = &self.phase {
            if archived >= c.cut {
                let Phase::Collecting(c) = std::mem::replace(&mut self.phase, Phase::Normal) else {
                    return;
                };
                self.install(now, c);
            } else if archived >= c.asked_to {
                self.request_collect(now);
            }
            return;
        }
        match &self.pull {
            Some(p) if archived >= p.target => self.pull = None,
            Some(p) if archived >= p.asked_to => {
                self.pull = None;
                self.start_pull(now);
            }
            _ => {}
        }
    }

    /// Reconciliation pull: ask a member for final records between the archive and `safe`.
    fn start_pull(&mut self, now: Instant) {
        let lo = self.archived().next();
        if lo > self.safe_seen || self.view.members.is_empty() {
            return;
        }
        // Round robin, so one unresponsive member cannot stall reconciliation.
        self.pulls += 1;
        let from = self.view.members[self.pulls % self.view.members.len()].id;
        let hi = Seq((lo.0 + self.cfg.fetch_chunk - 1).min(self.safe_seen.0));
        self.pull = Some(Pull {
            target: self.safe_seen,
            asked_to: hi,
            retry_at: now + self.retransmit_interval() * 2,
        });
        log::debug!("pulling #{lo}..=#{hi} from {}", from.short());
        self.send(Msg::Fetch {
            from: NodeId::SERVER,
            to: from,
            lo,
            hi,
        });
    }

    fn beacon(&mut self, now: Instant) {
        self.next_beacon = now + self.cfg.beacon_interval;
        let msg = self.view_msg(self.view.epoch, self.view.members.clone(), self.cut);
        self.send(msg);
    }

    fn view_msg(&self, epoch: Epoch, members: Vec<Member>, cut: Seq) -> Msg {
        Msg::View {
            epoch,
            members,
            cut,
            high: self.archived(),
            token_timeout_ms: self.cfg.token_timeout.as_millis() as u64,
            server: Some(self.cfg.server_id),
        }
    }

    fn retransmit_interval(&self) -> Duration {
        (self.cfg.token_timeout / 4).max(Duration::from_millis(20))
    }

    fn send(&mut self, msg: Msg) {
        self.outputs.push_back(Output::Send(msg));
    }
}
