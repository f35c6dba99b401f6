//! History, from one member's side: catching up to a view's cut by fetching final records
//! from the servers, a window of chunks in flight and lost ones asked again (with progress
//! reports on long catch-ups), and answering other nodes' history requests from the replica or
//! from memory.
//!
//! Methods of `MemberCore`; the window is [`WindowedFetch`]'s. They never change the member's
//! phase. No clock, no I/O: reading the replica is an output for the driver.

use super::state::Timer;
use super::MemberCore;
use crate::protocol::events::{MemberEvent, Output};
use crate::protocol::fetch::{self, Window, WindowedFetch};
use crate::protocol::types::{ChatRecord, NodeId, Seq};
use crate::protocol::wire::Msg;
use std::time::Instant;

/// Catch-ups shorter than this report only their start and end.
const PROGRESS_MIN: u64 = 5_000;

/// Chunks in flight at once during a catch-up.
const FETCH_CHUNKS: u64 = 4;

/// An outstanding catch-up to the cut of the current view.
#[derive(Clone, Debug)]
pub(super) struct CatchUp {
    /// The range being fetched; its next deadline is also [`Timer::FetchRetry`].
    fetch: WindowedFetch,
    /// Next delivered seq at which to report progress (long catch-ups only).
    report_at: Seq,
    /// Overdue requests so far: each is asked of the view's next server in rank order (the
    /// coordinator first), so a dead server costs one retry.
    overdue: usize,
}

impl MemberCore {
    pub(super) fn start_fetch(&mut self, now: Instant, target: Seq) {
        let delivered = self.order.delivered();
        let missing = target.0 - delivered.0;
        self.catch_up = Some(CatchUp {
            fetch: WindowedFetch::new(delivered, target),
            report_at: Seq(self.order.delivered().0 + (missing / 10).max(PROGRESS_MIN)),
            overdue: 0,
        });
        self.event(MemberEvent::CatchingUp { missing });
        self.request_history(now);
    }

    /// A request is overdue: ask what it lacks again (of the next server).
    pub(super) fn retry_history(&mut self, now: Instant) {
        self.request_history(now);
    }

    fn fetch_window(&self) -> Window {
        Window {
            chunk: self.cfg.fetch_chunk,
            chunks: FETCH_CHUNKS,
            ceiling: fetch::retry_interval(self.token_timeout),
            rtt: self.fetch_rtt,
        }
    }

    /// Sends what the window asks for (new chunks, holes, overdue requests) to a server;
    /// ends the catch-up quietly if nothing is missing.
    pub(super) fn request_history(&mut self, now: Instant) {
        let w = self.fetch_window();
        let held = self.order.delivered();
        let (servers, order) = (&self.view.servers, &self.order);
        let Some(c) = &mut self.catch_up else {
            return;
        };
        if servers.is_empty() {
            return; // not in a view yet: the view's cut starts the catch-up
        }
        if c.fetch.is_done(held) {
            self.catch_up = None;
            self.timers.stop(Timer::FetchRetry);
            return;
        }
        let requests = c.fetch.requests(held, |s| order.has(s), now, w);
        let mut sends = Vec::with_capacity(requests.len());
        for r in requests {
            c.overdue += usize::from(r.overdue);
            let server = servers[c.overdue % servers.len()];
            sends.push(Msg::Fetch {
                from: self.cfg.id,
                to: NodeId::server(server),
                lo: r.lo,
                hi: r.hi,
            });
        }
        match c.fetch.deadline(w) {
            Some(at) => self.timers.set(Timer::FetchRetry, at),
            None => self.timers.stop(Timer::FetchRetry),
        }
        for msg in sends {
            self.send(msg);
        }
    }

    pub(super) fn on_history(&mut self, now: Instant, records: Vec<ChatRecord>) {
        self.heard_server(now);
        let Some(target) = self.catch_up.as_ref().map(|c| c.fetch.target) else {
            return;
        };
        for rec in records.into_iter().filter(|r| r.seq <= target) {
            let arrived = self
                .catch_up
                .as_mut()
                .map(|c| c.fetch.arrived(rec.seq, now));
            if let Some(Some(rtt)) = arrived {
                self.fetch_rtt.sample(rtt);
            }
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
            Some(_) => self.request_history(now),
            None => {}
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
