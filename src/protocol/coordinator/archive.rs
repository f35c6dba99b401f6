//! The server's archive: live messages of the installed epoch, history fetched while
//! collecting up to a cut, reconciliation pulls of final records it lacks, and serving
//! history from the replica to members that ask.
//!
//! Pure like the rest of the core: records go out as `Deliver` outputs for the driver to
//! append to the replica; nothing here touches the file.

use super::{Coordinator, Running, State, Timer};
use crate::protocol::events::Output;
use crate::protocol::fetch::{self, RangeFetch};
use crate::protocol::types::{ChatRecord, Epoch, NodeId, Seq};
use crate::protocol::wire::Msg;
use std::time::Instant;

impl Coordinator {
    /// A pack of live records: the archive takes every record of the installed epoch.
    pub(super) fn on_data(&mut self, epoch: Epoch, recs: Vec<ChatRecord>) {
        if epoch < self.view.epoch {
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

    /// The archive keeps whatever is contiguous: its own cut decisions never go below it.
    fn archive_ready(&mut self) {
        for rec in self.order.take_deliverable(Seq(u64::MAX)) {
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

    /// History for the server: the collect up to the cut, or a reconciliation pull. Nothing
    /// above the range asked for enters the archive.
    pub(super) fn on_history(&mut self, now: Instant, records: Vec<ChatRecord>) {
        let limit = match &self.state {
            State::Collecting(c) => c.cut(),
            State::Coordinating(Running { pull: Some(p), .. }) => p.target,
            _ => return,
        };
        for rec in records.into_iter().filter(|r| r.seq <= limit) {
            self.order.insert_final(rec);
        }
        self.archive_ready();
        let archived = self.archived();
        match &self.state {
            State::Collecting(c) if archived >= c.cut() => self.finish_collect(now),
            State::Collecting(c) if c.chunk_arrived(archived) => self.request_collect(now),
            State::Coordinating(Running { pull: Some(p), .. }) if p.is_done(archived) => {
                self.stop_pull()
            }
            State::Coordinating(Running { pull: Some(p), .. }) if p.chunk_arrived(archived) => {
                self.restart_pull(now)
            }
            _ => {}
        }
    }

    /// Whether a reconciliation pull is under way.
    pub(super) fn is_pulling(&self) -> bool {
        matches!(
            self.state,
            State::Coordinating(Running { pull: Some(_), .. })
        )
    }

    /// Reconciliation pull: ask a member for final records between the archive and `safe`.
    pub(super) fn start_pull(&mut self, now: Instant) {
        let held = self.archived();
        if held.next() > self.safe_seen || self.view.members.is_empty() {
            return;
        }
        let State::Coordinating(running) = &mut self.state else {
            return;
        };
        // Round robin, so one unresponsive member cannot stall reconciliation.
        self.pulls += 1;
        let from = self.view.members[self.pulls % self.view.members.len()].id;
        let mut pull = RangeFetch::new(self.safe_seen, now);
        let retry = fetch::retry_interval(self.cfg.token_timeout);
        let Some((lo, hi)) = pull.next_chunk(held, self.cfg.fetch_chunk, now, retry) else {
            return;
        };
        self.timers.set(Timer::PullRetry, pull.retry_at);
        running.pull = Some(pull);
        log::debug!("pulling #{lo}..=#{hi} from {}", from.short());
        self.send(Msg::Fetch {
            from: NodeId::SERVER,
            to: from,
            lo,
            hi,
        });
    }

    /// A new pull from the next member, up to the latest `safe`: the chunk arrived, or it is
    /// overdue and another member may answer.
    pub(super) fn restart_pull(&mut self, now: Instant) {
        self.stop_pull();
        self.start_pull(now);
    }

    fn stop_pull(&mut self) {
        if let State::Coordinating(running) = &mut self.state {
            running.pull = None;
        }
        self.timers.stop(Timer::PullRetry);
    }
}
