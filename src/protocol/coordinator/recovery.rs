//! Recovery, the first steps of a view change (see the parent module): gather promises and
//! reports, decide by the quorum rule (or wait, saying how many voters are reachable), and fix
//! the next view and its cut. `commit` takes it from there.
//!
//! Pure like the rest of the core: no clock, no I/O; effects go out as outputs, in the order
//! the driver must perform them (the vote before the datagram that depends on it, the
//! archive's records before the view that depends on them).

use super::commit::NextView;
use super::{Coordinator, State, Timer};
use crate::protocol::events::CoordinatorEvent;
use crate::protocol::quorum::{self, Shortfall, Verdict};
use crate::protocol::types::{Epoch, GroupId, Incarnation, Member, NodeId, Seq, ServerId};
use crate::protocol::vote::{Ballot, Promise, Session, SessionRef};
use crate::protocol::wire::{self, Msg, QuorumWait};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The shortest wait for the remaining reports after the first one arrived.
const MIN_REPORT_WAIT: Duration = Duration::from_millis(100);

/// Sessions echoed to us that are kept at most (the newest).
const MAX_LEARNED: usize = 8;

/// What a node reported for a gather.
#[derive(Clone, Debug)]
pub(super) struct ReportInfo {
    pub(super) incarnation: Incarnation,
    /// The view in which `aru` was collected: trusted only for that view.
    pub(super) view_epoch: Epoch,
    pub(super) aru: Seq,
    pub(super) delivered: Seq,
    /// The gather it promised (ours, or a later one that refuses ours).
    pub(super) promised: Ballot,
    pub(super) primary: Option<SessionRef>,
    pub(super) attempts: Vec<SessionRef>,
}

/// Waiting for reports ([`Timer::GatherResend`], [`Timer::ReportDeadline`]).
#[derive(Debug)]
pub(super) struct Gathering {
    pub(super) epoch: Epoch,
    pub(super) proposed: Vec<Member>,
    /// The other servers asked (the view's and those that asked in).
    servers: Vec<ServerId>,
    pub(super) reports: HashMap<NodeId, ReportInfo>,
    /// The proposed nodes that a gather went out to. A joiner proposed since the last
    /// (re)send has not been asked yet: it is not given up on if the gather ends first.
    asked: HashSet<NodeId>,
    /// When the gather began: the first report's delay tells how fast members answer.
    started: Instant,
    /// How long to wait for the rest once the first report came (learned from its delay).
    reply_wait: Option<Duration>,
    /// Set once the report deadline passed without a quorum: resends say so to the members.
    waiting: Option<QuorumWait>,
}

impl Coordinator {
    /// A member says the ring waits on the member that pass `hop` went to (or on whoever
    /// took the token since: a member asking for it follows the passes it saw). If no pass
    /// came here either for a quarter of the token timeout, the ring is stuck on a silent
    /// member: gather now rather than after the token timeout. A member that is alive after
    /// all reports to the gather and stays; a late suspicion, once the ring moved again, is
    /// dropped.
    pub(super) fn on_suspect(&mut self, now: Instant, from: NodeId, hop: u64) {
        let quiet = now.saturating_duration_since(self.last_progress);
        let patience = crate::protocol::token_ring::retransmit_interval(self.cfg.token_timeout);
        let coordinating = matches!(self.state, State::Coordinating(_));
        if !coordinating || !self.view.contains(from) || quiet < patience {
            return;
        }
        log::info!(
            "{} waits on the member of pass {hop}, silent for {quiet:?}; recovering",
            from.short()
        );
        self.stats.token_losses += 1;
        self.start_gather(now);
    }

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

    /// Step 1: promises an epoch above any seen (durably) and asks the proposed members and
    /// the other servers to promise it and report.
    pub(super) fn start_gather(&mut self, now: Instant) {
        if let Some(until) = self.started_chat.filter(|until| now < *until) {
            self.timers.set(Timer::Hold, until);
            return;
        }
        let epoch = self.max_epoch.next();
        self.max_epoch = epoch;
        let me = self.cfg.server_id;
        if self.vote.promise(Ballot { epoch, server: me }) == Promise::New {
            self.save_vote();
        }
        let proposed = self.gather_members();
        let servers: Vec<ServerId> = self
            .view
            .servers
            .iter()
            .chain(&self.new_servers)
            .copied()
            .filter(|s| *s != me)
            .collect();
        log::info!(
            "gathering epoch {epoch} with {} proposed members and {} other servers",
            proposed.len(),
            servers.len()
        );
        self.enter(State::Gathering(Gathering {
            epoch,
            proposed,
            servers,
            reports: HashMap::new(),
            asked: HashSet::new(),
            started: now,
            reply_wait: None,
            waiting: None,
        }));
        self.timers
            .set(Timer::ReportDeadline, now + self.cfg.report_timeout);
        self.send_gather(now);
        self.maybe_finish_gather(now);
    }

    /// A join during a gather: the joiner (again, if it restarted) joins the proposed
    /// members and is asked with the next resend, not at once, so a hundred clients that start
    /// together cost a few gathers rather than one per hello. The report deadline moves to
    /// give it as long to answer as the first reporters took, within the gather's report
    /// timeout: a join storm ends in one view, not in one view per gather interval.
    pub(super) fn propose_joiner(&mut self, now: Instant, member: Member) {
        let cap = self.cfg.report_timeout;
        let State::Gathering(g) = &mut self.state else {
            return;
        };
        g.reports.remove(&member.id);
        g.asked.remove(&member.id);
        g.proposed.retain(|m| m.id != member.id);
        g.proposed.push(member);
        if g.waiting.is_some() {
            // A voter may be back, and the gather waits for one: ask it now.
            let at = self
                .timers
                .get(Timer::GatherResend)
                .map_or(now, |t| t.min(now));
            self.timers.set(Timer::GatherResend, at);
            return;
        }
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

    /// Sends every part of the gather (each part asks its share of the proposed nodes).
    pub(super) fn send_gather(&mut self, now: Instant) {
        let me = self.cfg.server_id;
        let group = self.vote.group.unwrap_or(GroupId(0));
        let State::Gathering(g) = &mut self.state else {
            return;
        };
        let mut ids: Vec<NodeId> = g.proposed.iter().map(|m| m.id).collect();
        ids.extend(g.servers.iter().map(|s| NodeId::server(*s)));
        g.asked.extend(ids.iter().copied());
        let parts = wire::pack_gather(g.epoch, (me, group), g.waiting, &ids);
        // While waiting for a quorum, less often: a voter that comes back says Hello, and
        // that brings the next resend forward.
        let resend = match g.waiting {
            Some(_) => self.cfg.gather_resend * 5,
            None => self.cfg.gather_resend,
        };
        self.timers.set(Timer::GatherResend, now + resend);
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
        self.observe_epoch(r.promised.epoch.max(r.view_epoch));
        let me = self.cfg.server_id;
        if !matches!(&self.state, State::Gathering(g) if g.epoch == epoch) {
            return;
        }
        if let Some(newer) = r.primary.filter(|p| p.epoch > self.vote.primary_epoch()) {
            if !self.learn_newer(now, newer.epoch) {
                return;
            }
        }
        if r.promised != (Ballot { epoch, server: me }) {
            // It promised another server's gather of this epoch or a later one. A server
            // ranked before us in our view goes first; we take over again only if its
            // recovery falls silent. Any other (outside the view: stale; or after us) is
            // overtaken by a gather above it.
            let other = r.promised;
            if self.ranked_before_us(other.server) {
                log::info!(
                    "{} promised epoch {} to server {}: standing by",
                    from.short(),
                    other.epoch,
                    other.server
                );
                self.recovery_heard = Some(now);
                self.step_down(now, Some(other.server));
            } else {
                self.start_gather(now);
            }
            return;
        }
        let State::Gathering(g) = &mut self.state else {
            return;
        };
        let proposed = match from.as_server() {
            Some(s) => g.servers.contains(&s),
            None => match g.proposed.iter_mut().find(|m| m.id == from) {
                Some(m) => {
                    m.name = name;
                    true
                }
                None => false,
            },
        };
        if !proposed {
            return;
        }
        // Live members answer within a few round trips of the fastest one; a dead one never
        // does, so there is no point waiting a whole report timeout for it. A large ring on a
        // busy host answers over a longer spread, so each report keeps the gather open for that
        // long again (within the report timeout): the gather ends once reports stop coming.
        // Only a node's first report counts: every resend of the gather draws the same
        // reports again, and those must not keep a gather open for a dead member.
        let cap = g.started + self.cfg.report_timeout;
        let first = g.reply_wait.is_none();
        let news = !g.reports.contains_key(&from);
        let wait = *g
            .reply_wait
            .get_or_insert(((now - g.started) * 4).max(MIN_REPORT_WAIT));
        let waiting = g.waiting.is_some();
        if let Some(deadline) = self.timers.get(Timer::ReportDeadline).filter(|_| !waiting) {
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
        if waiting && news {
            // A voter is back: judge again shortly, once the others that heard the same
            // gather (a healed partition's whole side) answered too, so none is left out.
            let soon = now + MIN_REPORT_WAIT;
            let deadline = self
                .timers
                .get(Timer::ReportDeadline)
                .map_or(soon, |d| d.min(soon));
            self.timers.set(Timer::ReportDeadline, deadline);
        }
        self.maybe_finish_gather(now);
    }

    fn maybe_finish_gather(&mut self, now: Instant) {
        let State::Gathering(g) = &self.state else {
            return;
        };
        let all_members = g.proposed.iter().all(|m| g.reports.contains_key(&m.id));
        let all_servers = g
            .servers
            .iter()
            .all(|s| g.reports.contains_key(&NodeId::server(*s)));
        if all_members && all_servers {
            self.finish_gather(now);
        }
    }

    /// Judges the gather by the quorum rule; if it may go on, fixes the next view and its
    /// cut, then collects what the archive lacks up to the cut, or proposes at once.
    pub(super) fn finish_gather(&mut self, now: Instant) {
        let me = self.id();
        let State::Gathering(g) = &self.state else {
            return;
        };
        let (primary, attempts) = self.vote.references(me);
        let mut reports = vec![quorum::Report {
            from: me,
            primary,
            attempts: &attempts,
            installed: Epoch(0),
        }];
        reports.extend(g.reports.iter().map(|(id, r)| quorum::Report {
            from: *id,
            primary: r.primary,
            attempts: &r.attempts,
            installed: r.view_epoch,
        }));
        let known: Vec<&Session> = self
            .vote
            .primary
            .iter()
            .chain(&self.vote.attempts)
            .chain(&self.learned)
            .collect();
        let decision = match quorum::decide(&known, &reports) {
            Verdict::Go(d) => d,
            Verdict::Wait(short) => return self.wait_for_quorum(now, short),
        };
        if decision.base.epoch > self.vote.primary_epoch()
            && !self.learn_newer(now, decision.base.epoch)
        {
            return;
        }
        let State::Gathering(g) = self.take_state() else {
            return;
        };
        self.fix_cut(now, g, decision.base.epoch, decision.floor, decision.dead);
    }

    /// A reporter formed a view newer than our primary, which we did not see installed: ours
    /// if we accepted it (then we gather again, from it). If we are no voter of it, its own
    /// servers coordinate, unless we follow that view from outside, which we recover only
    /// once all of its servers fell silent (see `may_take_over`). Returns whether this
    /// gather goes on.
    fn learn_newer(&mut self, now: Instant, epoch: Epoch) -> bool {
        if self.vote.learn_formed(epoch) {
            self.save_vote();
            if let Some(p) = self.vote.primary.clone() {
                self.view = p.view;
                self.cut = p.cut.max(self.cut);
            }
            self.start_gather(now);
            return false;
        }
        let outside = !self.view.servers.contains(&self.cfg.server_id);
        if outside && epoch <= self.view.epoch {
            return true;
        }
        self.stale_view(now, None);
        false
    }

    /// The gather may go on: the next view is its reporters (leavers aside), the cut the most
    /// any reporter surely holds (at least `floor`).
    fn fix_cut(&mut self, now: Instant, g: Gathering, base: Epoch, floor: Seq, dead: Vec<Epoch>) {
        // Leavers report (their messages count for the cut) but are not in the new view.
        let members: Vec<Member> = g
            .proposed
            .iter()
            .filter(|m| g.reports.contains_key(&m.id) && !self.leaves.contains(&m.id))
            .cloned()
            .collect();
        let me = self.cfg.server_id;
        let servers: Vec<ServerId> = std::iter::once(me)
            .chain(
                g.servers
                    .iter()
                    .copied()
                    .filter(|s| g.reports.contains_key(&NodeId::server(*s))),
            )
            .collect();
        // Only a member's aru collected in the base view is trusted; otherwise what a node
        // delivered (final) is all it surely holds. A server's archive is final.
        let holds = |r: &ReportInfo| {
            if r.view_epoch == base {
                r.aru.max(r.delivered)
            } else {
                r.delivered
            }
        };
        let mut sources: Vec<(NodeId, Seq)> =
            g.reports.iter().map(|(id, r)| (*id, holds(r))).collect();
        sources.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let archived = self.archived();
        let cut = sources
            .first()
            .map_or(archived, |s| s.1)
            .max(archived)
            .max(floor);
        let incarnations = g
            .reports
            .iter()
            .filter(|(id, _)| id.as_server().is_none())
            .map(|(id, r)| (*id, r.incarnation))
            .collect();
        // A joiner that was asked and did not report is forgotten; if it is alive, its next
        // hello brings it back. Otherwise it would start a new gather after every install.
        let asked_silent = |id: NodeId| g.asked.contains(&id) && !g.reports.contains_key(&id);
        self.joins.retain(|j| !asked_silent(j.member.id));
        self.new_servers
            .retain(|s| !asked_silent(NodeId::server(*s)) && !servers.contains(s));
        // From here on nothing of the old epoch may enter the archive: the cut is fixed.
        self.archiving = false;
        self.order.reset_epoch(archived);
        self.quorum_shown = None;
        log::info!(
            "epoch {}: {} of {} asked reported; view of {} members and {} servers on \
             epoch {base}; cut at #{cut} (archive #{archived})",
            g.epoch,
            g.reports.len(),
            g.proposed.len() + g.servers.len(),
            members.len(),
            servers.len(),
        );
        let next = NextView {
            epoch: g.epoch,
            members,
            servers,
            incarnations,
            cut,
            base,
            dead,
            reporters: g.reports.keys().copied().collect(),
        };
        self.collect_or_propose(now, next, sources);
    }

    /// No quorum yet: say so (once per count), keep asking, and ask for any attempt we never
    /// saw from a voter that reported it, to judge it exactly.
    fn wait_for_quorum(&mut self, now: Instant, short: Shortfall) {
        let me = self.id();
        let wait = QuorumWait {
            reachable: short.reachable,
            voters: short.voters,
        };
        if self.quorum_shown != Some(wait) {
            self.quorum_shown = Some(wait);
            log::info!(
                "waiting for a quorum of the voters of epoch {}: {} of {} reachable ({:?})",
                short.epoch,
                short.reachable,
                short.voters,
                short.missing
            );
            self.event(CoordinatorEvent::WaitingForQuorum {
                reachable: short.reachable,
                voters: short.voters,
            });
        }
        let unknown = |epoch: Epoch| {
            self.vote.attempt_of(epoch).is_none()
                && self.learned.iter().all(|s| s.epoch() != epoch)
                && self.vote.primary_epoch() != epoch
        };
        let State::Gathering(g) = &self.state else {
            return;
        };
        let mut asks = Vec::new();
        for (id, r) in &g.reports {
            for a in r.attempts.iter().filter(|a| unknown(a.epoch)) {
                if !asks.iter().any(|(_, e)| *e == a.epoch) {
                    asks.push((*id, a.epoch));
                }
            }
        }
        for (to, epoch) in asks {
            self.send(Msg::SessionRequest {
                from: me,
                to,
                epoch,
            });
        }
        if let State::Gathering(g) = &mut self.state {
            g.waiting = Some(wait);
        }
        self.timers
            .set(Timer::ReportDeadline, now + self.cfg.report_timeout);
    }

    /// A session echoed to us: kept, and the gather judged again.
    pub(super) fn learn(&mut self, now: Instant, session: Session) {
        if self.learned.iter().any(|s| s.epoch() == session.epoch()) {
            return;
        }
        if self.learned.len() >= MAX_LEARNED {
            self.learned.remove(0);
        }
        self.learned.push(session);
        if matches!(&self.state, State::Gathering(g) if g.waiting.is_some()) {
            self.finish_gather(now);
        }
    }
}
