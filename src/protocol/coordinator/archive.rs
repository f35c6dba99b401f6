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
use crate::protocol::fetch::{self, RangeFetch};
use crate::protocol::types::{ChatRecord, Epoch, GroupId, NodeId, Seq};
use crate::protocol::wire::Msg;
use std::time::Instant;

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
                match &self.pull {
                    Some(p) if p.is_done(archived) => self.stop_pull(),
                    Some(p) if p.chunk_arrived(archived) => self.restart_pull(now),
                    _ => {}
                }
            }
        }
    }

    /// Reconciliation pull: ask a member (or, for a standby, the coordinator first) for final
    /// records between the archive and `target`.
    pub(super) fn start_pull(&mut self, now: Instant, target: Seq) {
        let held = self.archived();
        let me = self.cfg.server_id;
        // Sources in turn, so one unresponsive node cannot stall reconciliation: the view's
        // other servers, then its members.
        let sources: Vec<NodeId> = self
            .view
            .servers
            .iter()
            .filter(|s| **s != me)
            .map(|s| NodeId::server(*s))
            .chain(self.view.members.iter().map(|m| m.id))
            .collect();
        if held.next() > target || sources.is_empty() || self.is_recovering() {
            return;
        }
        self.pulls += 1;
        let from = sources[self.pulls % sources.len()];
        let mut pull = RangeFetch::new(target, now);
        let retry = fetch::retry_interval(self.cfg.token_timeout);
        let Some((lo, hi)) = pull.next_chunk(held, self.cfg.fetch_chunk, now, retry) else {
            return;
        };
        self.timers.set(Timer::PullRetry, pull.retry_at);
        self.pull = Some(pull);
        log::debug!("pulling #{lo}..=#{hi} from {}", from.short());
        let me = self.id();
        self.send(Msg::Fetch {
            from: me,
            to: from,
            lo,
            hi,
        });
    }

    /// A new pull from the next source, up to the same target or a later one: the chunk
    /// arrived, or it is overdue and another node may answer.
    pub(super) fn restart_pull(&mut self, now: Instant) {
        let target = self.pull.as_ref().map_or(self.safe_seen, |p| p.target);
        self.stop_pull();
        self.start_pull(now, target.max(self.safe_seen));
    }

    pub(super) fn stop_pull(&mut self) {
        self.pull = None;
        self.timers.stop(Timer::PullRetry);
    }
}
