//! A server's archive: live messages of the installed epoch once they are safe, history
//! fetched while collecting up to a cut or before accepting a proposal, reconciliation pulls
//! of final records it lacks, and serving history from the replica to nodes that ask.
//!
//! Only what is safe is archived: a record above `safe` may still be cut away by a recovery
//! and its seq reassigned, and an archive is a replica (G1). Pure like the rest of the core:
//! records go out as `Deliver` outputs for the driver to append to the replica; nothing here
//! touches the file.

use super::{Coordinator, State, Timer};
use crate::protocol::events::Output;
use crate::protocol::fetch::{self, Window, WindowedFetch};
use crate::protocol::types::{ChatRecord, Epoch, GroupId, NodeId, Seq};
use crate::protocol::wire::Msg;
use std::time::Instant;

/// Chunks a reconciliation pull keeps in flight at once.
const PULL_CHUNKS: u64 = 4;

impl Coordinator {
    /// A pack of live records: the archive takes every record of the installed epoch, and
    /// keeps what is safe.
    pub(super) fn on_data(&mut self, epoch: Epoch, group: GroupId, recs: Vec<ChatRecord>) {
        if epoch < self.view.epoch || self.vote.group != Some(group) {
            self.stats.stale += 1;
            return;
        }
        if epoch != self.view.epoch || !self.archiving {
            return;
        }
        let mut fresh = false;
        for rec in recs {
            fresh |= self.order.insert_live(rec);
        }
        if fresh {
            self.archive_ready();
        }
    }

    /// Archives whatever is contiguous and final or safe: its own cut decisions never go
    /// below it.
    pub(super) fn archive_ready(&mut self) {
        for rec in self.order.take_deliverable(self.safe_seen) {
            self.stats.archived += 1;
            self.outputs.push_back(Output::Deliver(rec));
        }
    }

    pub(super) fn serve(&mut self, to: NodeId, lo: Seq, hi: Seq) {
        let hi = hi.min(self.archived());
        if lo <= hi && lo > Seq(0) {
            self.outputs
                .push_back(Output::ServeFromReplica { to, lo, hi });
        }
    }

    /// History for this server: the collect up to the cut, the fetch before accepting a
    /// proposal, or a pull. Nothing above the range asked for enters the archive.
    pub(super) fn on_history(&mut self, now: Instant, records: Vec<ChatRecord>) {
        let limit = match &self.state {
            State::Collecting(c) => Some(c.cut()),
            _ => self
                .accepting_cut()
                .into_iter()
                .chain(self.pull.as_ref().map(|p| p.target))
                .max(),
        };
        let Some(limit) = limit else {
            return;
        };
        for rec in records.into_iter().filter(|r| r.seq <= limit) {
            if let Some(rtt) = self.pull.as_mut().and_then(|p| p.arrived(rec.seq, now)) {
                self.pull_rtt.sample(rtt);
            }
            self.order.insert_final(rec);
        }
        self.archive_ready();
        let archived = self.archived();
        match &self.state {
            State::Collecting(c) if archived >= c.cut() => self.finish_collect(now),
            State::Collecting(c) if c.chunk_arrived(archived) => self.request_collect(now),
            _ => {
                if self.accepting_cut().is_some_and(|cut| archived >= cut) {
                    self.accept_fetched();
                } else if self.accepting_cut().is_some() {
                    self.fetch_for_accept(now);
                }
                if self.pull.is_some() {
                    self.request_pull(now);
                }
            }
        }
    }

    /// Reconciliation tick (every `--sync-interval`): announce the archive's high-water mark
    /// and pull anything final that the archive lacks.
    pub fn handle_sync(&mut self, now: Instant) {
        let target = self.safe_seen.max(self.high_heard);
        match self.state {
            State::Coordinating(_) => self.beacon(now),
            State::Standby(_) => self.standby_beacon(now),
            _ => return,
        }
        if target > self.archived() && self.pull.is_none() {
            self.start_pull(now, target);
        }
    }

    /// `safe_seen` rose: what is safe every member holds, and it went out at least a hop
    /// before the pass that showed it, so a record of it that is not here was lost on its way
    /// to us. It is asked for now (a pull under way takes the new target), not at the next
    /// heartbeat.
    pub(super) fn pull_lost_safe(&mut self, now: Instant) {
        let safe = self.safe_seen;
        if let Some(pull) = &mut self.pull {
            pull.target = pull.target.max(safe);
            self.request_pull(now);
        } else if safe > self.archived() {
            self.start_pull(now, safe);
        }
    }

    /// Reconciliation pull: ask the view's other servers and its members, in turn, for final
    /// records between the archive and `target`, a window of chunks at a time.
    pub(super) fn start_pull(&mut self, now: Instant, target: Seq) {
        let held = self.archived();
        if held.next() > target || self.pull_sources().is_empty() || self.is_recovering() {
            return;
        }
        self.pulls += 1;
        self.pull = Some(WindowedFetch::new(held, target));
        self.request_pull(now);
    }

    /// Who a pull asks, in turn, so one unresponsive node cannot stall reconciliation: the
    /// view's other servers (for a standby, the coordinator first), then its members.
    fn pull_sources(&self) -> Vec<NodeId> {
        let me = self.cfg.server_id;
        self.view
            .servers
            .iter()
            .filter(|s| **s != me)
            .map(|s| NodeId::server(*s))
            .chain(self.view.members.iter().map(|m| m.id))
            .collect()
    }

    /// Sends what the pull's window asks for (new chunks, holes, overdue requests, these of
    /// the next source); ends the pull once the archive reached its target.
    pub(super) fn request_pull(&mut self, now: Instant) {
        let held = self.archived();
        let sources = self.pull_sources();
        let w = Window {
            chunk: self.cfg.fetch_chunk,
            chunks: PULL_CHUNKS,
            ceiling: fetch::retry_interval(self.cfg.token_timeout),
            rtt: self.pull_rtt,
        };
        let running = matches!(self.state, State::Coordinating(_) | State::Standby(_));
        if sources.is_empty() || !running {
            // Nobody to ask, or not running a view (a recovery fetches what it needs): the
            // next heartbeat pulls again.
            self.stop_pull();
            return;
        }
        let (order, safe) = (&self.order, self.safe_seen);
        let Some(pull) = self.pull.as_mut().filter(|p| !p.is_done(held)) else {
            self.stop_pull();
            return;
        };
        // A record held from the ring but not known safe is asked for too: a pull whose
        // target came from another server's archive would otherwise wait, with nothing in
        // flight, for a pass that shows it safe, which may have been lost on its way here.
        let requests = pull.requests(held, |s| s <= safe && order.has(s), now, w);
        let deadline = pull.deadline(w);
        let me = self.id();
        for r in requests {
            self.pulls += usize::from(r.overdue);
            let to = sources[self.pulls % sources.len()];
            log::debug!("pulling #{}..=#{} from {}", r.lo, r.hi, to.short());
            self.send(Msg::Fetch {
                from: me,
                to,
                lo: r.lo,
                hi: r.hi,
            });
        }
        match deadline {
            Some(at) => self.timers.set(Timer::PullRetry, at),
            None => self.timers.stop(Timer::PullRetry),
        }
    }

    pub(super) fn stop_pull(&mut self) {
        self.pull = None;
        self.timers.stop(Timer::PullRetry);
    }
}
