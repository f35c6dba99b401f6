//! History, from one member's side: catching up to a view's cut by fetching final records
//! from the server in chunks (with retry and progress reports on long catch-ups), and
//! answering other nodes' history requests from the replica or from memory.
//!
//! Methods of `MemberCore`; the walk over the range is [`RangeFetch`]'s. They never change the
//! member's phase. No clock, no I/O: reading the replica is an output for the driver.

use super::state::Timer;
use super::MemberCore;
use crate::protocol::events::{MemberEvent, Output};
use crate::protocol::fetch::{self, RangeFetch};
use crate::protocol::types::{ChatRecord, NodeId, Seq};
use crate::protocol::wire::Msg;
use std::time::Instant;

/// Catch-ups shorter than this report only their start and end.
const PROGRESS_MIN: u64 = 5_000;

/// An outstanding catch-up to the cut of the current view.
#[derive(Clone, Debug)]
pub(super) struct CatchUp {
    /// The range being fetched; its retry deadline is also [`Timer::FetchRetry`].
    fetch: RangeFetch,
    /// Next delivered seq at which to report progress (long catch-ups only).
    report_at: Seq,
    /// Overdue chunks so far: each is asked of the view's next server in rank order (the
    /// coordinator first), so a dead server costs one retry.
    overdue: usize,
}

impl MemberCore {
    pub(super) fn start_fetch(&mut self, now: Instant, target: Seq) {
        let missing = target.0 - self.order.delivered().0;
        self.catch_up = Some(CatchUp {
            fetch: RangeFetch::new(target, now),
            report_at: Seq(self.order.delivered().0 + (missing / 10).max(PROGRESS_MIN)),
            overdue: 0,
        });
        self.event(MemberEvent::CatchingUp { missing });
        self.request_history(now);
    }

    /// The chunk asked for is overdue: ask it of the next server.
    pub(super) fn retry_history(&mut self, now: Instant) {
        if let Some(c) = &mut self.catch_up {
            c.overdue += 1;
        }
        self.request_history(now);
    }

    /// Asks a server for the next chunk; ends the catch-up quietly if nothing is missing.
    pub(super) fn request_history(&mut self, now: Instant) {
        let servers = &self.view.servers;
        let Some(c) = &mut self.catch_up else {
            return;
        };
        let Some(server) = servers.get(c.overdue % servers.len().max(1)).copied() else {
            return; // not in a view yet: the view's cut starts the catch-up
        };
        let held = self.order.delivered();
        let retry = fetch::retry_interval(self.token_timeout);
        let Some((lo, hi)) = c.fetch.next_chunk(held, self.cfg.fetch_chunk, now, retry) else {
            self.catch_up = None;
            self.timers.stop(Timer::FetchRetry);
            return;
        };
        self.timers.set(Timer::FetchRetry, c.fetch.retry_at);
        self.send(Msg::Fetch {
            from: self.cfg.id,
            to: NodeId::server(server),
            lo,
            hi,
        });
    }

    pub(super) fn on_history(&mut self, now: Instant, records: Vec<ChatRecord>) {
        self.heard_server(now);
        let Some(target) = self.catch_up.as_ref().map(|c| c.fetch.target) else {
            return;
        };
        for rec in records.into_iter().filter(|r| r.seq <= target) {
            self.order.insert_final(rec);
        }
        self.deliver_ready();
        let delivered = self.order.delivered();
        self.report_progress(delivered);
        match &self.catch_up {
            Some(c) if c.fetch.is_done(delivered) => {
                self.catch_up = None;
                self.timers.stop(Timer::FetchRetry);
                self.event(MemberEvent::CaughtUp { at: delivered });
            }
            Some(c) if c.fetch.chunk_arrived(delivered) => self.request_history(now),
            _ => {}
        }
    }

    fn report_progress(&mut self, delivered: Seq) {
        let Some(c) = &mut self.catch_up else {
            return;
        };
        let target = c.fetch.target;
        if delivered < c.report_at || delivered >= target {
            return;
        }
        let step = (target.0 / 10).max(PROGRESS_MIN);
        c.report_at = Seq(delivered.0 + step);
        self.event(MemberEvent::CatchUpProgress {
            at: delivered,
            target,
        });
    }

    /// Answers a history request: delivered records from the replica, held ones from memory.
    pub(super) fn serve(&mut self, to: NodeId, lo: Seq, hi: Seq) {
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
}
