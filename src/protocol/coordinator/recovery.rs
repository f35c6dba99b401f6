//! Recovery, the three steps of a view change (see the parent module): gather reports, fix
//! the cut and collect what the archive lacks up to it, install the view with a fresh token.
//!
//! Pure like the rest of the core: no clock, no I/O; effects go out as outputs, in the order
//! the driver must perform them (the archive's records before the view that depends on them).

use super::{Coordinator, Running, State, Timer};
use crate::protocol::events::{CoordinatorEvent, Output};
use crate::protocol::fetch::{self, RangeFetch};
use crate::protocol::token_ring::Token;
use crate::protocol::types::{Epoch, Incarnation, Member, NodeId, Seq, View};
use crate::protocol::wire::{self, Msg};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The shortest wait for the remaining reports after the first one arrived.
const MIN_REPORT_WAIT: Duration = Duration::from_millis(100);

/// What a member reported for a gather.
#[derive(Clone, Debug)]
pub(super) struct ReportInfo {
    pub(super) incarnation: Incarnation,
    /// The view in which `aru` was collected: only the installed view's is trusted.
    pub(super) view_epoch: Epoch,
    pub(super) aru: Seq,
    pub(super) delivered: Seq,
}

/// Step 1: waiting for reports ([`Timer::GatherResend`], [`Timer::ReportDeadline`]).
#[derive(Debug)]
pub(super) struct Gathering {
    pub(super) epoch: Epoch,
    pub(super) proposed: Vec<Member>,
    pub(super) reports: HashMap<NodeId, ReportInfo>,
    /// The proposed members that a gather went out to. A joiner proposed since the last
    /// (re)send has not been asked yet: it is not given up on if the gather ends first.
    asked: HashSet<NodeId>,
    /// When the gather began: the first report's delay tells how fast members answer.
    started: Instant,
    /// How long to wait for the rest once the first report came (learned from its delay).
    reply_wait: Option<Duration>,
}

/// The view that step 3 installs, fixed in step 2.
#[derive(Debug)]
pub(super) struct NextView {
    epoch: Epoch,
    members: Vec<Member>,
    incarnations: HashMap<NodeId, Incarnation>,
    cut: Seq,
}

/// Step 2: fetching what the archive lacks up to the cut ([`Timer::CollectRetry`]).
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
    /// Everything up to here is archived before the view is installed.
    pub(super) fn cut(&self) -> Seq {
        self.next.cut
    }

    /// Whether the chunk asked for has arrived, given an archive that holds up to `held`.
    pub(super) fn chunk_arrived(&self, held: Seq) -> bool {
        self.fetch.chunk_arrived(held)
    }
}

impl Coordinator {
    /// Who takes part in the next gather: the current members (leavers too: they report, so
    /// the cut covers what they hold), then the joiners.
    pub(super) fn gather_members(&self) -> Vec<Member> {
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

    /// Step 1: opens an epoch above any seen and asks the proposed members to report.
    pub(super) fn start_gather(&mut self, now: Instant) {
        let epoch = Epoch(self.max_epoch.0 + 1);
        self.max_epoch = epoch;
        let proposed = self.gather_members();
        log::info!(
            "gathering epoch {epoch} with {} proposed members",
            proposed.len()
        );
        self.enter(State::Gathering(Gathering {
            epoch,
            proposed,
            reports: HashMap::new(),
            asked: HashSet::new(),
            started: now,
            reply_wait: None,
        }));
        self.timers
            .set(Timer::ReportDeadline, now + self.cfg.report_timeout);
        self.maybe_finish_gather(now);
        if matches!(self.state, State::Gathering(_)) {
            self.send_gather(now);
        }
    }

    /// A join during a gather: the joiner (again, if it restarted) joins the proposed
    /// members and is asked with the next resend, not at once, so a hundred clients that start
    /// together cost a few gathers rather than one per hello. The report deadline moves to
    /// give it as long to answer as the first reporters took, within the gather's report
    /// timeout: a join storm ends in one view, not in one view per gather interval.
    pub(super) fn propose_joiner(&mut self, member: Member) {
        let cap = self.cfg.report_timeout;
        let State::Gathering(g) = &mut self.state else {
            return;
        };
        g.reports.remove(&member.id);
        g.asked.remove(&member.id);
        g.proposed.retain(|m| m.id != member.id);
        g.proposed.push(member);
        let (Some(wait), Some(ask_at), Some(deadline)) = (
            g.reply_wait,
            self.timers.get(Timer::GatherResend),
            self.timers.get(Timer::ReportDeadline),
        ) else {
            return; // no report yet: the deadline is still the whole report timeout
        };
        let at = (ask_at + wait).min(g.started + cap);
        self.timers.set(Timer::ReportDeadline, deadline.max(at));
    }

    /// Sends every part of the gather (each part asks its share of the proposed members).
    pub(super) fn send_gather(&mut self, now: Instant) {
        let State::Gathering(g) = &mut self.state else {
            return;
        };
        let ids: Vec<NodeId> = g.proposed.iter().map(|m| m.id).collect();
        g.asked.extend(ids.iter().copied());
        let parts = wire::pack_gather(g.epoch, Some(self.cfg.server_id), &ids);
        self.timers
            .set(Timer::GatherResend, now + self.cfg.gather_resend);
        for part in parts {
            self.send(part);
        }
    }

    pub(super) fn on_report(
        &mut self,
        now: Instant,
        epoch: Epoch,
        from: NodeId,
        name: String,
        r: ReportInfo,
    ) {
        if r.view_epoch > self.max_epoch {
            self.observe_epoch(now, r.view_epoch);
        }
        let State::Gathering(g) = &mut self.state else {
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
        // Live members answer within a few round trips of the fastest one; a dead one never
        // does, so there is no point waiting a whole report timeout for it. A large ring on a
        // busy host answers over a longer spread, so each report keeps the gather open for that
        // long again (within the report timeout): the gather ends once reports stop coming.
        // Only a member's first report counts: every resend of the gather draws the same
        // reports again, and those must not keep a gather open for a dead member.
        let cap = g.started + self.cfg.report_timeout;
        let first = g.reply_wait.is_none();
        let news = !g.reports.contains_key(&from);
        let wait = *g
            .reply_wait
            .get_or_insert(((now - g.started) * 4).max(MIN_REPORT_WAIT));
        if let Some(deadline) = self.timers.get(Timer::ReportDeadline) {
            let deadline = if first {
                deadline.min(now + wait)
            } else if news {
                deadline.max((now + wait).min(cap))
            } else {
                deadline
            };
            self.timers.set(Timer::ReportDeadline, deadline);
        }
        g.reports.insert(from, r);
        self.maybe_finish_gather(now);
    }

    fn maybe_finish_gather(&mut self, now: Instant) {
        let State::Gathering(g) = &self.state else {
            return;
        };
        if g.proposed.iter().all(|m| g.reports.contains_key(&m.id)) || g.proposed.is_empty() {
            self.finish_gather(now);
        }
    }

    /// Whether the reports fix a cut that covers everything the old ring delivered (see
    /// [`Coordinator`]'s docs).
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
    pub(super) fn finish_gather(&mut self, now: Instant) {
        let State::Gathering(g) = &self.state else {
            return;
        };
        if !self.cut_is_complete(g, now) {
            // A silent old member may hold what the ring delivered: keep asking.
            self.timers
                .set(Timer::ReportDeadline, now + self.cfg.report_timeout);
            return;
        }
        let State::Gathering(g) = self.take_state() else {
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
        let asked_silent = |id: NodeId| g.asked.contains(&id) && !g.reports.contains_key(&id);
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
        let next = NextView {
            epoch: g.epoch,
            members: reporters,
            incarnations,
            cut,
        };
        if cut > archived {
            let fetch = RangeFetch::new(cut, now);
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
            self.install(now, next);
        }
    }

    /// Asks the next chunk up to the cut from a source that holds it, in turn.
    pub(super) fn request_collect(&mut self, now: Instant) {
        let chunk = self.cfg.fetch_chunk;
        let retry = fetch::retry_interval(self.cfg.token_timeout);
        let held = self.archived();
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
        self.send(Msg::Fetch {
            from: NodeId::SERVER,
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

    /// The archive holds everything up to the cut: install.
    pub(super) fn finish_collect(&mut self, now: Instant) {
        if let State::Collecting(c) = self.take_state() {
            self.install(now, c.next);
        }
    }

    /// Step 3: install the view and issue a fresh token.
    fn install(&mut self, now: Instant, next: NextView) {
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
        };
        self.cut = next.cut;
        self.incarnations = next.incarnations;
        self.joins.retain(|j| !self.view.contains(j.member.id));
        let view = &self.view;
        self.leaves.retain(|id| view.contains(*id));
        self.order.reset_epoch(next.cut);
        self.archiving = true;
        self.enter(State::Coordinating(Running::default()));
        self.last_hop = 0;
        self.progress_at(now);
        self.safe_seen = self.safe_seen.max(next.cut);
        self.stats.views += 1;
        self.outputs.push_back(Output::Checkpoint);
        self.outputs
            .push_back(Output::Event(CoordinatorEvent::ViewInstalled {
                epoch: self.view.epoch,
                members: self.view.members.len(),
                cut: self.cut,
            }));
        self.send_view(now);
        self.timers
            .set(Timer::Beacon, now + self.cfg.beacon_interval);
        if let Some(first) = self.view.members.first() {
            let n = self.view.members.len();
            let token = Token::first(self.view.epoch, NodeId::SERVER, first.id, self.cut, n);
            self.send(Msg::Token(token.clone()));
            if let State::Coordinating(running) = &mut self.state {
                running.first_token = Some(token);
            }
            self.arm_first_token_resend(now);
        }
        if !self.joins.is_empty() || !self.leaves.is_empty() {
            self.start_gather(now);
        }
    }
}
