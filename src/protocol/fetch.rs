//! Fetching a range of final records in chunks, with retry: a client catching up to a cut,
//! the server collecting what its archive lacks before an install, and the server's
//! reconciliation pull all walk a range this way. Who is asked is the caller's choice.
//!
//! Pure: no clock, no I/O; the caller sends the request this hands back.

use crate::protocol::types::Seq;
use std::time::{Duration, Instant};

mod window;
pub use window::{Request, Window, WindowedFetch};

/// How long a history request may go unanswered before it is asked again, for a ring whose
/// server announces `token_timeout`.
pub fn retry_interval(token_timeout: Duration) -> Duration {
    (token_timeout / 2).max(Duration::from_millis(50))
}

/// A range `..= target` being fetched, one chunk at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeFetch {
    /// Fetch up to here.
    pub target: Seq,
    /// Last seq of the chunk asked for.
    pub asked_to: Seq,
    /// Ask again at this instant if the chunk has not arrived.
    pub retry_at: Instant,
}

impl RangeFetch {
    /// A fetch of everything up to `target`, due to ask at once.
    pub fn new(target: Seq, now: Instant) -> RangeFetch {
        RangeFetch {
            target,
            asked_to: Seq(0),
            retry_at: now,
        }
    }

    /// Whether everything up to the target is held, given that the caller holds everything
    /// up to `held`.
    pub fn is_done(&self, held: Seq) -> bool {
        held >= self.target
    }

    /// Whether the chunk asked for has arrived, so the next one may be asked for.
    pub fn chunk_arrived(&self, held: Seq) -> bool {
        held >= self.asked_to
    }

    /// Whether the chunk asked for is overdue.
    pub fn is_overdue(&self, now: Instant) -> bool {
        now >= self.retry_at
    }

    /// The next chunk to ask for, `held + 1 ..= held + chunk` capped at the target, and when
    /// to ask again; `None` when nothing is missing.
    pub fn next_chunk(
        &mut self,
        held: Seq,
        chunk: u64,
        now: Instant,
        retry: Duration,
    ) -> Option<(Seq, Seq)> {
        let lo = held.next();
        if lo > self.target {
            return None;
        }
        let hi = Seq(lo.0.saturating_add(chunk.max(1) - 1).min(self.target.0));
        self.asked_to = hi;
        self.retry_at = now + retry;
        Some((lo, hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_walk_the_range_up_to_the_target_and_stop() {
        let t0 = Instant::now();
        let retry = Duration::from_secs(1);
        let mut f = RangeFetch::new(Seq(1200), t0);
        assert!(f.is_overdue(t0), "a new fetch asks at once");
        assert_eq!(
            f.next_chunk(Seq(0), 512, t0, retry),
            Some((Seq(1), Seq(512)))
        );
        assert!(!f.is_overdue(t0) && f.is_overdue(t0 + retry));
        assert!(!f.chunk_arrived(Seq(300)));
        assert!(f.chunk_arrived(Seq(512)));
        assert_eq!(
            f.next_chunk(Seq(1024), 512, t0, retry),
            Some((Seq(1025), Seq(1200)))
        );
        assert!(!f.is_done(Seq(1199)) && f.is_done(Seq(1200)));
        assert_eq!(f.next_chunk(Seq(1200), 512, t0, retry), None);
    }

    #[test]
    fn the_retry_follows_the_token_timeout_with_a_floor() {
        assert_eq!(
            retry_interval(Duration::from_secs(3)),
            Duration::from_millis(1500)
        );
        assert_eq!(
            retry_interval(Duration::from_millis(20)),
            Duration::from_millis(50)
        );
    }
}
