//! Where the time of this node's own lines goes: from typed (handed to the outbox journal) to
//! sent (its pack handed to the socket: the wait for the token), and from sent to delivered
//! here (safe, written to the replica and the display: the wait for every member to hold it).
//! `/stats` shows the median and the 99th percentile of each over the last lines, so a slow
//! line can be told apart from a slow reader of our output.
//!
//! Timing only: it must never change what is sent or delivered, and it keeps bounded memory
//! whatever happens to a line (lines never sent, a node that only relays).

use crate::protocol::types::{ChatRecord, NodeId};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How many of the latest lines each phase's percentiles cover.
const LAST_LINES: usize = 4096;

/// Lines waiting for their next phase that are tracked at most (beyond it, new lines go
/// untimed until some are delivered): a ring that stalls for long keeps no more than this.
const TRACKED: usize = 65_536;

/// The phase times of a node's own lines. Cheap for lines that are not ours: a server, and
/// every relayed record, costs one comparison of the author.
pub struct Phases {
    me: NodeId,
    inner: Mutex<Inner>,
}

/// The two phases, in order: typed to sent, sent to delivered.
const PHASES: usize = 2;

#[derive(Default)]
struct Inner {
    /// Lines that began phase `i`, and when.
    waiting: [HashMap<Uuid, Instant>; PHASES],
    /// How long the latest lines took over phase `i`.
    took: [VecDeque<Duration>; PHASES],
}

impl Phases {
    /// Timing for the lines that `me` authors.
    pub fn new(me: NodeId) -> Phases {
        Phases {
            me,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Lines typed at `at`.
    pub fn typed(&self, ids: impl Iterator<Item = Uuid>, at: Instant) {
        let mut inner = self.lock();
        for id in ids {
            if inner.waiting[0].len() < TRACKED {
                inner.waiting[0].insert(id, at);
            }
        }
    }

    /// Records sent at `at` (a pack, or records sent again: only a line's first send counts).
    pub fn sent(&self, recs: &[ChatRecord], at: Instant) {
        self.advance(recs, at, 0);
    }

    /// Records delivered here at `at`.
    pub fn delivered(&self, recs: &[ChatRecord], at: Instant) {
        self.advance(recs, at, 1);
    }

    /// Our lines among `recs` end phase `phase` at `at`, and begin the next.
    fn advance(&self, recs: &[ChatRecord], at: Instant, phase: usize) {
        if !recs.iter().any(|r| r.from == self.me) {
            return;
        }
        let mut inner = self.lock();
        let Inner { waiting, took } = &mut *inner;
        for rec in recs.iter().filter(|r| r.from == self.me) {
            let Some(since) = waiting[phase].remove(&rec.id) else {
                continue;
            };
            push(&mut took[phase], at.saturating_duration_since(since));
            if let Some(next) = waiting.get_mut(phase + 1).filter(|w| w.len() < TRACKED) {
                next.insert(rec.id, at);
            }
        }
    }

    /// `typed to sent p50 A / p99 B ms, sent to delivered p50 C / p99 D ms (last N lines)`,
    /// or `None` before any of our lines was delivered.
    pub fn summary(&self) -> Option<String> {
        let inner = self.lock();
        let n = inner.took[1].len();
        let (s50, s99) = percentiles(&inner.took[0])?;
        let (d50, d99) = percentiles(&inner.took[1])?;
        Some(format!(
            "typed to sent p50 {s50:.2} / p99 {s99:.2} ms, sent to delivered p50 {d50:.2} / \
             p99 {d99:.2} ms (last {n} lines)"
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Timing only: a panic elsewhere leaves nothing here that could mislead.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn push(last: &mut VecDeque<Duration>, took: Duration) {
    if last.len() == LAST_LINES {
        last.pop_front();
    }
    last.push_back(took);
}

/// The median and the 99th percentile, in ms.
fn percentiles(last: &VecDeque<Duration>) -> Option<(f64, f64)> {
    let mut sorted: Vec<Duration> = last.iter().copied().collect();
    sorted.sort_unstable();
    let last = sorted.len().checked_sub(1)?;
    let ms = |p: usize| sorted[last * p / 100].as_secs_f64() * 1000.0;
    Some((ms(50), ms(99)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::Seq;

    fn record(from: NodeId, id: Uuid) -> ChatRecord {
        ChatRecord {
            seq: Seq(1),
            id,
            from,
            name: "a".into(),
            text: "hi".into(),
            sent_at_ms: 0,
        }
    }

    #[test]
    fn each_own_line_is_timed_from_typed_to_sent_and_from_sent_to_delivered() {
        let me = NodeId::random();
        let phases = Phases::new(me);
        assert_eq!(phases.summary(), None, "nothing delivered yet");
        let t0 = Instant::now();
        let ids: Vec<Uuid> = (0..100).map(|_| Uuid::new_v4()).collect();
        phases.typed(ids.iter().copied(), t0);
        let mine: Vec<ChatRecord> = ids.iter().map(|id| record(me, *id)).collect();
        let theirs = record(NodeId::random(), Uuid::new_v4());
        phases.sent(&mine, t0 + Duration::from_millis(2));
        // Sent again (a retransmission), and someone else's line: neither counts.
        phases.sent(&mine[..1], t0 + Duration::from_millis(50));
        phases.sent(std::slice::from_ref(&theirs), t0);
        phases.delivered(&mine, t0 + Duration::from_millis(5));
        phases.delivered(std::slice::from_ref(&theirs), t0);
        assert_eq!(
            phases.summary().as_deref(),
            Some(
                "typed to sent p50 2.00 / p99 2.00 ms, sent to delivered p50 3.00 / p99 3.00 \
                 ms (last 100 lines)"
            )
        );
    }

    #[test]
    fn at_most_a_bound_of_lines_waits_to_be_timed() {
        let phases = Phases::new(NodeId::random());
        let now = Instant::now();
        phases.typed((0..TRACKED + 10).map(|_| Uuid::new_v4()), now);
        assert_eq!(phases.lock().waiting[0].len(), TRACKED);
    }
}
