//! A client's protocol state machine: joining, the token (stamp, pass, retransmit, idle hold),
//! ordering and safe delivery, gaps, the durable outbox, catch-up and leaving.
//!
//! Sans-IO, after quinn-proto: inputs are `handle_*(now, ...)` and [`MemberCore::submit`];
//! outputs are drained with [`MemberCore::poll_output`] and the next deadline is
//! [`MemberCore::poll_timeout`]. It never reads the clock, a socket or a file, so the
//! simulation tests can drive many of them deterministically.
//!
//! # Contract with the driver
//! - `now` never goes backwards.
//! - After every input, drain `poll_output` until `None` and perform the outputs in order.
//! - A line goes into [`MemberCore::submit`] only after it is on disk (the outbox in the
//!   checkpoint): the core may stamp and send it at once.

use crate::protocol::events::{MemberEvent, MemberOutput, MemberStop, Output};
use crate::protocol::order::Order;
use crate::protocol::types::{ChatRecord, Epoch, Incarnation, NodeId, Pending, Seq, View};
use crate::protocol::wire::Msg;
use crate::token_ring::Token;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Catch-ups shorter than this report only their start and end.
const PROGRESS_MIN: u64 = 5_000;

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

/// The state a member restarts from (checkpoint plus replica).
#[derive(Clone, Debug, Default)]
pub struct Restored {
    /// Highest seq in the replica.
    pub delivered: Seq,
    /// Accepted lines not yet delivered, in typing order.
    pub outbox: Vec<Pending>,
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
    /// Messages multicast again on request.
    pub retransmissions: u64,
    /// Duplicate datagrams ignored.
    pub duplicates: u64,
    /// Tokens or messages from a superseded epoch, rejected (G3).
    pub stale: u64,
    /// Views installed.
    pub views: u64,
}

/// What a leaving member is doing.
#[derive(Clone, Debug)]
struct Leaving {
    /// Leave anyway once this passes, even with lines still in the outbox.
    drain_deadline: Instant,
    /// When the first Leave went out; `None` while still draining.
    announced_at: Option<Instant>,
    next_leave: Instant,
}

/// A held token waiting out the idle hold.
#[derive(Clone, Debug)]
struct Held {
    token: Token,
    pass_at: Instant,
}

/// An outstanding history request.
#[derive(Clone, Debug)]
struct Fetching {
    /// Fetch up to here (the cut of the current view).
    target: Seq,
    /// Last seq of the chunk asked for.
    asked_to: Seq,
    retry_at: Instant,
    /// Next delivered seq at which to report progress (long catch-ups only).
    report_at: Seq,
}

/// A client's protocol state. See the module docs for the driving contract.
#[derive(Debug)]
pub struct MemberCore {
    cfg: MemberConfig,
    /// The installed view; empty (epoch 0) while joining.
    view: View,
    /// Whether this node is a member of `view`. False while joining or after exclusion.
    admitted: bool,
    /// Set while the server gathers a new epoch: the old ring is frozen.
    gathering: Option<Epoch>,
    /// Highest epoch this incarnation reported for; a view is adopted only if we reported
    /// for it, which keeps a restarted node from mistaking its old view for admission.
    reported: Epoch,
    order: Order,
    /// Highest `safe` seen on a token of this epoch.
    safe: Seq,
    outbox: VecDeque<Pending>,
    /// How many lines at the front of the outbox were stamped in this epoch and are not yet
    /// delivered (lines are stamped and delivered in typing order); never stamped twice.
    in_flight: usize,
    /// Highest hop accepted in this epoch (duplicates and retransmits have lower or equal).
    last_hop: u64,
    held: Option<Held>,
    /// Our last pass, until a later hop shows it arrived; sent again when `.1` passes.
    unconfirmed: Option<(Token, Instant)>,
    /// A token for an epoch whose view has not arrived yet.
    early_token: Option<Token>,
    /// The latest hop of this epoch's token seen on the wire, and whom it went to.
    seen_holder: Option<(u64, NodeId)>,
    /// When we last asked an idle holder to pass the token.
    woke_at: Option<Instant>,
    /// A member that asked for the token while we did not hold it, and when.
    heard_wake: Option<(NodeId, Instant)>,
    /// Server's token timeout (from its view); our retransmit timer derives from it.
    token_timeout: Duration,
    started_at: Instant,
    next_hello: Instant,
    server_heard_at: Option<Instant>,
    server_lost: bool,
    fetching: Option<Fetching>,
    leaving: Option<Leaving>,
    stopped: bool,
    outputs: VecDeque<MemberOutput>,
    stats: MemberStats,
}

impl MemberCore {
    /// A member that starts joining at `now`, restored from its files.
    pub fn new(cfg: MemberConfig, restored: Restored, now: Instant) -> MemberCore {
        MemberCore {
            view: View::default(),
            admitted: false,
            gathering: None,
            reported: Epoch(0),
            order: Order::new(restored.delivered),
            safe: restored.delivered,
            outbox: restored.outbox.into(),
            in_flight: 0,
            last_hop: 0,
            held: None,
            unconfirmed: None,
            early_token: None,
            seen_holder: None,
            woke_at: None,
            heard_wake: None,
            token_timeout: Duration::from_secs(3),
            started_at: now,
            next_hello: now,
            server_heard_at: None,
            server_lost: false,
            fetching: None,
            leaving: None,
            stopped: false,
            outputs: VecDeque::new(),
            stats: MemberStats::default(),
            cfg,
        }
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
        self.admitted
    }

    /// Whether this node holds the token right now.
    pub fn holds_token(&self) -> bool {
        self.held.is_some()
    }

    /// Who had the token last, as far as this node saw it pass (for `/who`).
    pub fn token_holder(&self) -> Option<NodeId> {
        if self.held.is_some() {
            return Some(self.cfg.id);
        }
        self.seen_holder.map(|(_, id)| id)
    }

    /// Highest delivered seq.
    pub fn delivered(&self) -> Seq {
        self.order.delivered()
    }

    /// Accepted lines not yet delivered, in typing order (on disk in the outbox journal and
    /// the checkpoint).
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
        self.stopped
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
        if let Some(mut held) = self.held.take() {
            let stamped = self.stamp(&mut held.token);
            self.hold_or_pass(now, held.token, stamped > 0);
        } else if self.admitted && self.gathering.is_none() {
            self.wake(now);
        }
    }

    /// Starts a clean leave: drain the outbox (bounded; joining first if need be), pass the
    /// token on, tell the server.
    pub fn leave(&mut self, now: Instant) {
        if self.leaving.is_some() || self.stopped {
            return;
        }
        self.leaving = Some(Leaving {
            drain_deadline: now + self.cfg.drain_timeout,
            announced_at: None,
            next_leave: now,
        });
        self.check_leaving(now);
    }

    /// The earliest instant at which [`MemberCore::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        let mut t: Vec<Instant> = Vec::new();
        if self.joining() {
            t.push(self.next_hello);
            t.push(self.started_at + self.cfg.join_timeout);
        }
        t.extend(self.held.as_ref().map(|h| h.pass_at));
        t.extend(self.unconfirmed.as_ref().map(|u| u.1));
        t.extend(self.fetching.as_ref().map(|f| f.retry_at));
        t.extend(self.woke_at.map(|w| w + self.wake_resend()));
        if let Some(heard) = self.server_heard_at.filter(|_| !self.server_lost) {
            t.push(heard + self.cfg.server_silence);
        }
        if let Some(l) = &self.leaving {
            let settled = self.admitted && self.outbox.is_empty() && self.fetching.is_none();
            match l.announced_at {
                Some(at) => t.extend([l.next_leave, at + self.cfg.leave_timeout]),
                None if settled => t.push(l.next_leave),
                None => t.push(l.drain_deadline.max(l.next_leave)),
            }
        }
        t.into_iter().min()
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.stopped {
            return;
        }
        if self.joining() {
            self.join_timers(now);
        }
        if let Some(held) = self.held.take() {
            if now >= held.pass_at {
                self.pass(now, held.token);
            } else {
                self.held = Some(held);
            }
        }
        if let Some((token, at)) = self.unconfirmed.clone() {
            if now >= at {
                self.stats.token_retransmits += 1;
                log::debug!("token hop {} unconfirmed; sending it again", token.hop);
                self.send(Msg::Token(token.clone()));
                self.unconfirmed = Some((token, now + self.retransmit_interval()));
            }
        }
        if self.fetching.as_ref().is_some_and(|f| now >= f.retry_at) {
            self.request_history(now);
        }
        if self.woke_at.is_some_and(|t| now >= t + self.wake_resend()) {
            // The Wake (or the token) got lost: ask again while lines wait.
            self.woke_at = None;
            if self.admitted && self.gathering.is_none() && self.outbox.len() > self.in_flight {
                self.wake(now);
            }
        }
        if let Some(heard) = self.server_heard_at {
            if !self.server_lost && now >= heard + self.cfg.server_silence {
                self.server_lost = true;
                self.event(MemberEvent::ServerUnreachable);
            }
        }
        self.check_leaving(now);
    }

    /// Not in the view and asking to be: at start, after exclusion, or excluded while still
    /// draining before a leave.
    fn joining(&self) -> bool {
        !self.admitted
            && self
                .leaving
                .as_ref()
                .is_none_or(|l| l.announced_at.is_none())
    }

    fn join_timers(&mut self, now: Instant) {
        if self.server_heard_at.is_none() && now >= self.started_at + self.cfg.join_timeout {
            self.stop(MemberStop::JoinTimeout);
            return;
        }
        if now >= self.next_hello {
            self.send(Msg::Hello {
                from: self.cfg.id,
                incarnation: self.cfg.incarnation,
                name: self.cfg.name.clone(),
                delivered: self.order.delivered(),
            });
            self.next_hello = now + self.cfg.hello_interval;
        }
    }

    /// Handles one decoded datagram.
    pub fn handle_datagram(&mut self, now: Instant, msg: Msg) {
        if self.stopped {
            return;
        }
        match msg {
            Msg::Gather { epoch, members, .. } => self.on_gather(now, epoch, &members),
            Msg::View {
                epoch,
                members,
                cut,
                token_timeout_ms,
                ..
            } => self.on_view(now, View { epoch, members }, cut, token_timeout_ms),
            Msg::Token(token) => self.on_token(now, token),
            Msg::Data { epoch, rec } => self.on_data(epoch, rec),
            Msg::Wake { epoch, from } => self.on_wake(now, epoch, from),
            Msg::Fetch { from, to, lo, hi } if to == self.cfg.id => self.serve(from, lo, hi),
            Msg::History { to, records } if to == self.cfg.id => self.on_history(now, records),
            Msg::Refuse {
                to,
                incarnation,
                reason,
            } if to == self.cfg.id && incarnation == self.cfg.incarnation && !self.admitted => {
                self.stop(MemberStop::Refused(reason))
            }
            _ => {}
        }
        self.check_leaving(now);
    }

    fn heard_server(&mut self, now: Instant) {
        self.server_heard_at = Some(now);
        if self.server_lost {
            self.server_lost = false;
            self.event(MemberEvent::ServerBack);
        }
    }

    fn on_gather(&mut self, now: Instant, epoch: Epoch, members: &[NodeId]) {
        self.heard_server(now);
        if !members.contains(&self.cfg.id) {
            return;
        }
        // A leaver reports too (the cut must cover what it holds); it keeps repeating its
        // Leave until a view without it arrives.
        if epoch > self.view.epoch && self.admitted {
            // Totem gather: the old ring stops here; its token is dead to us.
            self.gathering = Some(self.gathering.map_or(epoch, |g| g.max(epoch)));
            self.held = None;
            self.unconfirmed = None;
        }
        self.reported = self.reported.max(epoch);
        self.send(Msg::Report {
            epoch,
            from: self.cfg.id,
            incarnation: self.cfg.incarnation,
            name: self.cfg.name.clone(),
            view_epoch: self.view.epoch,
            aru: self.order.aru(),
            delivered: self.order.delivered(),
        });
    }

    fn on_view(&mut self, now: Instant, view: View, cut: Seq, token_timeout_ms: u64) {
        self.heard_server(now);
        if view.epoch < self.view.epoch {
            return;
        }
        self.token_timeout = Duration::from_millis(token_timeout_ms.max(1));
        if view.epoch == self.view.epoch {
            // The server's heartbeat: make sure we are catching up to the cut.
            if self.admitted && self.fetching.is_none() && self.order.delivered() < cut {
                self.start_fetch(now, cut);
            }
            return;
        }
        let included = view.contains(self.cfg.id);
        if self
            .leaving
            .as_ref()
            .is_some_and(|l| l.announced_at.is_some())
            && !included
        {
            self.stop(MemberStop::Left);
        } else if included && view.epoch == self.reported {
            // Only the view we last reported for: once we reported for a gather, an older
            // view that arrives late must not revive a ring we promised to stop.
            self.install(now, view, cut);
        } else if self.admitted {
            self.admitted = false;
            self.held = None;
            self.unconfirmed = None;
            self.next_hello = now;
            self.started_at = now;
            self.event(MemberEvent::LeftOut);
        }
    }

    fn install(&mut self, now: Instant, view: View, cut: Seq) {
        let joined = !self.admitted;
        self.describe_change(&view);
        self.view = view;
        self.admitted = true;
        self.gathering = None;
        self.order.reset_epoch(cut);
        self.safe = self.safe.max(cut);
        self.in_flight = 0;
        self.last_hop = 0;
        self.seen_holder = None;
        self.woke_at = None;
        self.heard_wake = None;
        self.held = None;
        self.unconfirmed = None;
        self.stats.views += 1;
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
        if !self.admitted {
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

    fn on_token(&mut self, now: Instant, token: Token) {
        if token.epoch < self.view.epoch
            || (self.gathering.is_some() && token.epoch == self.view.epoch)
        {
            self.stats.stale += 1;
            log::debug!(
                "stale token of epoch {} (ours {})",
                token.epoch,
                self.view.epoch
            );
            return;
        }
        if token.epoch > self.view.epoch {
            if token.to == self.cfg.id
                && self.early_token.as_ref().is_none_or(|t| t.hop < token.hop)
            {
                self.early_token = Some(token);
            }
            return;
        }
        if !self.admitted {
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
        if self
            .unconfirmed
            .as_ref()
            .is_some_and(|(t, _)| token.hop > t.hop)
        {
            self.unconfirmed = None;
        }
        if self.seen_holder.is_none_or(|(hop, _)| token.hop > hop) {
            self.seen_holder = Some((token.hop, token.to));
        }
        self.raise_safe(token.safe);
        if token.to != self.cfg.id || token.hop <= self.last_hop {
            if token.to == self.cfg.id {
                self.stats.duplicates += 1;
            }
            return;
        }
        self.last_hop = token.hop;
        self.unconfirmed = None;
        self.woke_at = None;
        self.stats.tokens_held += 1;
        self.visit(now, token);
    }

    /// One token visit: retransmit, fold in our aru, ask for gaps, stamp, deliver, then hold or
    /// pass.
    fn visit(&mut self, now: Instant, mut token: Token) {
        self.retransmit_requested(&mut token);
        let aru = self.order.aru();
        let pos = self.view.position(self.cfg.id).unwrap_or(0);
        let safe_before = token.safe;
        token.record_aru(pos, aru);
        let safe_rose = token.safe > safe_before;
        let order = &self.order;
        token.request_missing(aru, |s| order.has(s));
        if token.wake == Some(self.cfg.id) {
            token.wake = None;
        }
        if let Some((from, at)) = self.heard_wake.take() {
            if now < at + self.cfg.idle_hold && from != self.cfg.id {
                token.wake.get_or_insert(from);
            }
        }
        self.raise_safe(token.safe);
        let stamped = self.stamp(&mut token);
        self.hold_or_pass(now, token, stamped > 0 || safe_rose);
    }

    fn retransmit_requested(&mut self, token: &mut Token) {
        let epoch = self.view.epoch;
        let mut still_missing = Vec::new();
        for seq in std::mem::take(&mut token.rtr) {
            match self.order.live(seq) {
                Some(rec) => {
                    let rec = rec.clone();
                    self.stats.retransmissions += 1;
                    self.send(Msg::Data { epoch, rec });
                }
                None => still_missing.push(seq),
            }
        }
        token.rtr = still_missing;
    }

    /// Stamps up to a window of outbox lines with the next seqs and multicasts them.
    fn stamp(&mut self, token: &mut Token) -> usize {
        let caught_up = self.order.delivered() >= self.order.base();
        let draining_done = self
            .leaving
            .as_ref()
            .is_some_and(|l| l.announced_at.is_some());
        if !caught_up || draining_done {
            return 0;
        }
        let ready: Vec<Pending> = self
            .outbox
            .iter()
            .skip(self.in_flight)
            .take(self.cfg.window)
            .cloned()
            .collect();
        self.in_flight += ready.len();
        for line in &ready {
            let rec = ChatRecord {
                seq: token.allocate(),
                id: line.id,
                from: self.cfg.id,
                name: self.cfg.name.clone(),
                text: line.text.clone(),
                sent_at_ms: line.sent_at_ms,
            };
            self.order.insert_live(rec.clone());
            self.stats.stamped += 1;
            self.send(Msg::Data {
                epoch: self.view.epoch,
                rec,
            });
        }
        ready.len()
    }

    /// Passes at once when the ring has work (we stamped, `safe` just rose and the others
    /// must learn it, lines we may not send yet wait), else holds the idle token for
    /// `idle_hold`.
    fn hold_or_pass(&mut self, now: Instant, token: Token, news: bool) {
        let waiting = self.outbox.len() > self.in_flight;
        if news || token.is_busy() || waiting || self.leaving.is_some() {
            self.pass(now, token);
        } else {
            self.held = Some(Held {
                token,
                pass_at: now + self.cfg.idle_hold,
            });
        }
    }

    fn pass(&mut self, now: Instant, token: Token) {
        let Some(next) = self.view.successor(self.cfg.id) else {
            return;
        };
        let passed = token.pass(self.cfg.id, next);
        self.send(Msg::Token(passed.clone()));
        self.unconfirmed = Some((passed, now + self.retransmit_interval()));
    }

    /// The successor may hold an idle token for `idle_hold` before its pass shows progress.
    fn retransmit_interval(&self) -> Duration {
        self.cfg.idle_hold + (self.token_timeout / 4).max(Duration::from_millis(20))
    }

    /// How long a Wake may go unanswered before it is sent again.
    fn wake_resend(&self) -> Duration {
        (self.cfg.idle_hold / 5).max(Duration::from_millis(20))
    }

    /// Asks an idle holder for the token, once per visit (sent again if it does not come).
    fn wake(&mut self, now: Instant) {
        if self.woke_at.is_some() {
            return;
        }
        self.woke_at = Some(now);
        self.send(Msg::Wake {
            epoch: self.view.epoch,
            from: self.cfg.id,
        });
    }

    fn on_wake(&mut self, now: Instant, epoch: Epoch, from: NodeId) {
        // Only a member clears the token's wake mark (on its visit), so only members count.
        if epoch != self.view.epoch || from == self.cfg.id || !self.view.contains(from) {
            return;
        }
        if let Some(mut held) = self.held.take() {
            held.token.wake.get_or_insert(from);
            self.pass(now, held.token);
        } else {
            // The token may be on its way to us: pass it on at once when it comes.
            self.heard_wake = Some((from, now));
        }
    }

    fn on_data(&mut self, epoch: Epoch, rec: ChatRecord) {
        if epoch < self.view.epoch {
            self.stats.stale += 1;
            log::debug!("stale message {} of epoch {epoch}", rec.seq);
            return;
        }
        if epoch > self.view.epoch || !self.admitted {
            return;
        }
        if self.order.insert_live(rec) {
            self.deliver_ready();
        } else {
            self.stats.duplicates += 1;
        }
    }

    fn raise_safe(&mut self, safe: Seq) {
        if safe > self.safe {
            self.safe = safe;
        }
        self.deliver_ready();
    }

    fn deliver_ready(&mut self) {
        for rec in self.order.take_deliverable(self.safe) {
            if rec.from == self.cfg.id {
                // Own lines are delivered in typing order: normally the front of the outbox.
                if let Some(i) = self.outbox.iter().position(|p| p.id == rec.id) {
                    self.outbox.remove(i);
                    if i < self.in_flight {
                        self.in_flight -= 1;
                    }
                }
            }
            self.stats.delivered += 1;
            self.outputs.push_back(Output::Deliver(rec));
        }
    }

    fn start_fetch(&mut self, now: Instant, target: Seq) {
        let missing = target.0 - self.order.delivered().0;
        self.fetching = Some(Fetching {
            target,
            asked_to: Seq(0),
            retry_at: now,
            report_at: Seq(self.order.delivered().0 + (missing / 10).max(PROGRESS_MIN)),
        });
        self.event(MemberEvent::CatchingUp { missing });
        self.request_history(now);
    }

    fn request_history(&mut self, now: Instant) {
        let Some(f) = &mut self.fetching else {
            return;
        };
        let lo = self.order.delivered().next();
        if lo > f.target {
            self.fetching = None;
            return;
        }
        let hi = Seq((lo.0 + self.cfg.fetch_chunk - 1).min(f.target.0));
        f.asked_to = hi;
        f.retry_at = now + (self.token_timeout / 2).max(Duration::from_millis(50));
        self.send(Msg::Fetch {
            from: self.cfg.id,
            to: NodeId::SERVER,
            lo,
            hi,
        });
    }

    fn on_history(&mut self, now: Instant, records: Vec<ChatRecord>) {
        self.heard_server(now);
        let Some(target) = self.fetching.as_ref().map(|f| f.target) else {
            return;
        };
        for rec in records.into_iter().filter(|r| r.seq <= target) {
            self.order.insert_final(rec);
        }
        self.deliver_ready();
        let delivered = self.order.delivered();
        self.report_progress(delivered);
        match &self.fetching {
            Some(f) if delivered >= f.target => {
                self.fetching = None;
                self.event(MemberEvent::CaughtUp { at: delivered });
            }
            Some(f) if delivered >= f.asked_to => self.request_history(now),
            _ => {}
        }
    }

    fn report_progress(&mut self, delivered: Seq) {
        let Some(f) = &mut self.fetching else {
            return;
        };
        if delivered < f.report_at || delivered >= f.target {
            return;
        }
        let step = (f.target.0 / 10).max(PROGRESS_MIN);
        f.report_at = Seq(delivered.0 + step);
        let target = f.target;
        self.event(MemberEvent::CatchUpProgress {
            at: delivered,
            target,
        });
    }

    /// Answers a history request: delivered records from the replica, held ones from memory.
    fn serve(&mut self, to: NodeId, lo: Seq, hi: Seq) {
        let delivered = self.order.delivered();
        if lo <= delivered {
            self.outputs.push_back(Output::ServeFromReplica {
                to,
                lo,
                hi: hi.min(delivered),
            });
        }
        let held = self.order.live_range(lo.max(delivered.next()), hi);
        if !held.is_empty() {
            self.outputs
                .push_back(Output::SendHistory { to, records: held });
        }
    }

    fn check_leaving(&mut self, now: Instant) {
        let Some(l) = &self.leaving else {
            return;
        };
        if l.announced_at.is_none() {
            let settled = self.admitted && self.outbox.is_empty() && self.fetching.is_none();
            if !settled && now < l.drain_deadline {
                return; // join, catch up and drain first; the join can still time out
            }
            if !self.admitted {
                self.stop(MemberStop::Left); // not in a ring: nobody to hand anything over to
                return;
            }
        }
        if let Some(at) = l.announced_at {
            if now >= at + self.cfg.leave_timeout {
                self.event(MemberEvent::LeaveUnconfirmed);
                self.stop(MemberStop::Left);
                return;
            }
        }
        if now < l.next_leave {
            return;
        }
        if let Some(held) = self.held.take() {
            self.pass(now, held.token);
        }
        let interval = self.cfg.hello_interval;
        if let Some(l) = &mut self.leaving {
            l.announced_at.get_or_insert(now);
            l.next_leave = now + interval;
        }
        self.send(Msg::Leave {
            from: self.cfg.id,
            incarnation: self.cfg.incarnation,
        });
    }

    fn stop(&mut self, reason: MemberStop) {
        if !self.stopped {
            self.stopped = true;
            self.held = None;
            self.outputs.push_back(Output::Stop(reason));
        }
    }

    fn send(&mut self, msg: Msg) {
        self.outputs.push_back(Output::Send(msg));
    }

    fn event(&mut self, event: MemberEvent) {
        self.outputs.push_back(Output::Event(event));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::{Member, ServerId};
    use uuid::Uuid;

    fn member(now: Instant) -> MemberCore {
        let cfg = MemberConfig::new(NodeId::random(), "me".into(), Incarnation(1));
        MemberCore::new(cfg, Restored::default(), now)
    }

    fn drain(m: &mut MemberCore) -> Vec<MemberOutput> {
        std::iter::from_fn(|| m.poll_output()).collect()
    }

    fn line(text: &str) -> Pending {
        Pending {
            id: Uuid::new_v4(),
            text: text.into(),
            sent_at_ms: 0,
        }
    }

    /// Reports for `epoch` and installs a view of `me` alone; returns the first token.
    fn admit(m: &mut MemberCore, now: Instant, epoch: u64) -> Token {
        let me = m.id();
        m.handle_datagram(
            now,
            Msg::Gather {
                epoch: Epoch(epoch),
                members: vec![me],
                server: Some(ServerId(1)),
            },
        );
        let view = vec![Member {
            id: me,
            name: "me".into(),
        }];
        m.handle_datagram(
            now,
            Msg::View {
                epoch: Epoch(epoch),
                members: view,
                cut: Seq(0),
                high: Seq(0),
                token_timeout_ms: 3000,
                server: Some(ServerId(1)),
            },
        );
        Token::first(Epoch(epoch), NodeId::SERVER, me, Seq(0), 1)
    }

    #[test]
    fn g3_a_token_of_a_superseded_epoch_is_rejected_and_counted() {
        let now = Instant::now();
        let mut m = member(now);
        let old = admit(&mut m, now, 1);
        admit(&mut m, now, 2);
        m.handle_datagram(now, Msg::Token(old));
        assert!(!m.holds_token());
        assert_eq!(m.stats().stale, 1);
    }

    #[test]
    fn a_view_is_adopted_only_for_the_epoch_we_reported_for() {
        let now = Instant::now();
        let mut m = member(now);
        let me = m.id();
        let view = |e| Msg::View {
            epoch: Epoch(e),
            members: vec![Member {
                id: me,
                name: "me".into(),
            }],
            cut: Seq(0),
            high: Seq(0),
            token_timeout_ms: 3000,
            server: Some(ServerId(1)),
        };
        // A restarted node sees its old view: not admission.
        m.handle_datagram(now, view(1));
        assert!(!m.is_admitted());
        m.handle_datagram(
            now,
            Msg::Gather {
                epoch: Epoch(3),
                members: vec![me],
                server: Some(ServerId(1)),
            },
        );
        // A late view of an epoch below the gather we reported for must not revive it.
        m.handle_datagram(now, view(2));
        assert!(!m.is_admitted());
        m.handle_datagram(now, view(3));
        assert!(m.is_admitted());
    }

    #[test]
    fn g2_lines_are_stamped_in_typing_order_and_delivered_once_safe() {
        let now = Instant::now();
        let mut m = member(now);
        let token = admit(&mut m, now, 1);
        m.submit(now, vec![line("one"), line("two")]);
        drain(&mut m);
        m.handle_datagram(now, Msg::Token(token));
        let sent: Vec<(Seq, String)> = drain(&mut m)
            .into_iter()
            .filter_map(|o| match o {
                Output::Send(Msg::Data { rec, .. }) => Some((rec.seq, rec.text)),
                _ => None,
            })
            .collect();
        assert_eq!(sent, vec![(Seq(1), "one".into()), (Seq(2), "two".into())]);
        assert_eq!(
            m.delivered(),
            Seq(0),
            "not safe before every member has shown it"
        );
        assert_eq!(m.outbox().count(), 2, "still in the outbox until delivered");
    }

    #[test]
    fn a_client_without_a_server_times_out_its_join() {
        let now = Instant::now();
        let mut m = member(now);
        m.handle_timeout(now);
        assert!(matches!(
            drain(&mut m)[..],
            [Output::Send(Msg::Hello { .. })]
        ));
        m.handle_timeout(now + Duration::from_secs(11));
        assert!(drain(&mut m).contains(&Output::Stop(MemberStop::JoinTimeout)));
    }
}
