//! Fetching a long range of final records with several requests in flight and selective
//! repeat, so that a lost datagram costs a re-ask of what it carried, not a stalled range
//! (after TCP's SACK and JGroups' NAKACK2): a client catching up to a cut.
//!
//! The range is asked for in chunks, up to a window of records outstanding. A node answers a
//! request with its records in seq order, so a record that arrives past a hole in the same
//! request shows the hole was lost: it is asked for again at once. A request whose tail does
//! not come within a few measured round trips is asked for again, with backoff.
//!
//! Pure: no clock, no I/O. The caller says what it holds and sends the requests this hands
//! back; whom it asks is the caller's choice.

use crate::protocol::rtt::RttEstimate;
use crate::protocol::types::Seq;
use std::time::{Duration, Instant};

/// How many records one request asks for, and how many may be outstanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Records per request.
    pub chunk: u64,
    /// Requests' worth of records outstanding at once.
    pub chunks: u64,
    /// The longest wait for a request's records (also the wait before any round trip was
    /// measured).
    pub ceiling: Duration,
    /// The caller's estimate of a request's round trip, kept across fetches and fed with the
    /// samples [`WindowedFetch::arrived`] returns.
    pub rtt: RttEstimate,
}

/// One request, outstanding until its last record arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ask {
    lo: Seq,
    hi: Seq,
    sent: Instant,
    /// How many asks this one repeats (0: a first ask; its round trip is a sample).
    resends: u32,
    /// A range found missing while records arrived, not asked for yet: reordered records
    /// may still fill it, so it is asked for a round trip after `sent` (when it was found).
    held_back: bool,
    /// The highest seq of this request that arrived (below `lo`: none yet).
    heard: Seq,
}

impl Ask {
    fn new(lo: Seq, hi: Seq, now: Instant, resends: u32) -> Ask {
        Ask {
            lo,
            hi,
            sent: now,
            resends,
            held_back: false,
            heard: Seq(lo.0 - 1),
        }
    }

    /// A range found missing at `now`, asked for once a round trip has passed.
    fn lost(lo: Seq, hi: Seq, now: Instant, resends: u32) -> Ask {
        Ask {
            held_back: true,
            ..Ask::new(lo, hi, now, resends)
        }
    }

    /// When this ask is due: a held-back range a round trip after it was found, a sent one
    /// after its retransmission timeout.
    fn due(&self, w: &Window) -> Instant {
        match self.held_back {
            true => self.sent + w.rtt.srtt().unwrap_or(w.ceiling).min(w.ceiling),
            false => self.sent + w.rtt.rto(self.resends, w.ceiling),
        }
    }

    /// Records still expected from this request.
    fn pending(&self) -> u64 {
        self.hi.0 - self.heard.0.max(self.lo.0 - 1)
    }
}

/// A request to send: `lo..=hi`, and whether it repeats one that was overdue (a caller
/// may then ask another node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub lo: Seq,
    pub hi: Seq,
    pub overdue: bool,
}

/// A range `..= target` being fetched through a window of requests.
#[derive(Clone, Debug)]
pub struct WindowedFetch {
    /// Fetch up to here; a caller may raise it while the fetch runs.
    pub target: Seq,
    /// The first seq never asked for.
    next: Seq,
    /// Outstanding requests, disjoint.
    asks: Vec<Ask>,
}

impl WindowedFetch {
    /// A fetch of everything above `held` up to `target`.
    pub fn new(held: Seq, target: Seq) -> WindowedFetch {
        WindowedFetch {
            target,
            next: held.next(),
            asks: Vec::new(),
        }
    }

    /// Whether everything up to the target is held, for a caller that holds everything up to
    /// `held`.
    pub fn is_done(&self, held: Seq) -> bool {
        held >= self.target
    }

    /// Records `seq` arrived at `now`: it advances its request; a hole below it in the same
    /// request, and the missing tail of any request sent before it, are asked for again.
    /// Returns a round-trip sample when it completes a request that was sent once.
    pub fn arrived(&mut self, seq: Seq, now: Instant) -> Option<Duration> {
        let i = self.asks.iter().position(|a| a.lo <= seq && seq <= a.hi)?;
        let ask = &mut self.asks[i];
        if seq <= ask.heard {
            return None; // a late copy
        }
        let mut lost = Vec::new();
        if seq > ask.heard.next() {
            lost.push(Ask::lost(
                ask.heard.next(),
                Seq(seq.0 - 1),
                now,
                ask.resends + 1,
            ));
        }
        ask.heard = seq;
        let sample =
            (seq == ask.hi && ask.resends == 0).then(|| now.saturating_duration_since(ask.sent));
        // Asks are kept in the order they were sent, and a node answers them in that order:
        // a record of this one means the earlier ones were answered in full.
        for earlier in &mut self.asks[..i] {
            if earlier.heard < earlier.hi {
                let from = earlier.heard.next().max(earlier.lo);
                lost.push(Ask::lost(from, earlier.hi, now, earlier.resends + 1));
                earlier.hi = earlier.heard;
            }
        }
        self.asks.retain(|a| a.heard < a.hi);
        self.asks.extend(lost);
        sample
    }

    /// The requests to send now, for a caller that holds everything up to `held` and whatever
    /// `has` says above it: ranges found missing a round trip ago, the parts of overdue
    /// requests not held yet, and new chunks up to the window.
    pub fn requests(
        &mut self,
        held: Seq,
        has: impl Fn(Seq) -> bool,
        now: Instant,
        w: Window,
    ) -> Vec<Request> {
        self.asks.retain(|a| a.hi > held);
        let mut out = Vec::new();
        let mut repeats = Vec::new();
        for ask in &mut self.asks {
            if now < ask.due(&w) {
                continue;
            }
            // Whatever of it is still missing, in runs; an overdue request's runs may go to
            // another node.
            let from = ask.heard.next().max(held.next()).max(ask.lo);
            for (lo, hi) in missing_runs(from, ask.hi, &has) {
                out.push(Request {
                    lo,
                    hi,
                    overdue: !ask.held_back,
                });
                let resends = ask.resends + u32::from(!ask.held_back);
                repeats.push(Ask::new(lo, hi, now, resends));
            }
            ask.hi = Seq(0); // replaced by the repeats
        }
        self.asks.retain(|a| a.hi > Seq(0));
        self.asks.extend(repeats);
        self.next = self.next.max(held.next());
        let budget = w.chunk.max(1) * w.chunks.max(1);
        while self.next <= self.target && self.asks.iter().map(Ask::pending).sum::<u64>() < budget {
            let lo = self.next;
            let hi = Seq(lo.0.saturating_add(w.chunk.max(1) - 1).min(self.target.0));
            // Only what is missing: above a hole, most of a chunk may be here already.
            for (lo, hi) in missing_runs(lo, hi, &has) {
                self.asks.push(Ask::new(lo, hi, now, 0));
                out.push(Request {
                    lo,
                    hi,
                    overdue: false,
                });
            }
            self.next = hi.next();
        }
        out
    }

    /// When the oldest outstanding request is overdue (`None`: nothing outstanding).
    pub fn deadline(&self, w: Window) -> Option<Instant> {
        self.asks.iter().map(|a| a.due(&w)).min()
    }
}

/// The runs of seqs in `lo..=hi` that `has` says are missing.
fn missing_runs(lo: Seq, hi: Seq, has: &impl Fn(Seq) -> bool) -> Vec<(Seq, Seq)> {
    let mut runs = Vec::new();
    let mut start = None;
    for s in lo.0..=hi.0 {
        match (has(Seq(s)), start) {
            (false, None) => start = Some(s),
            (true, Some(a)) => {
                runs.push((Seq(a), Seq(s - 1)));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(a) = start {
        runs.push((Seq(a), hi));
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const MS: Duration = Duration::from_millis(1);
    const W: Window = Window {
        chunk: 10,
        chunks: 3,
        ceiling: Duration::from_millis(500),
        rtt: RttEstimate::new(),
    };

    fn ranges(rs: &[Request]) -> Vec<(u64, u64, bool)> {
        rs.iter().map(|r| (r.lo.0, r.hi.0, r.overdue)).collect()
    }

    #[test]
    fn a_window_of_chunks_goes_out_at_once_and_refills_as_records_arrive() {
        let t0 = Instant::now();
        let mut f = WindowedFetch::new(Seq(0), Seq(45));
        let first = f.requests(Seq(0), |_| false, t0, W);
        assert_eq!(
            ranges(&first),
            [(1, 10, false), (11, 20, false), (21, 30, false)]
        );
        for s in 1..=10 {
            f.arrived(Seq(s), t0 + MS);
        }
        let next = f.requests(Seq(10), |_| false, t0 + MS, W);
        assert_eq!(ranges(&next), [(31, 40, false)]);
        assert!(f.requests(Seq(10), |_| false, t0 + MS, W).is_empty());
    }

    /// A window whose round trip is known to be 2 ms.
    fn measured() -> Window {
        let mut w = W;
        w.rtt.sample(2 * MS);
        w
    }

    #[test]
    fn a_hole_below_an_arrived_record_is_asked_again_a_round_trip_later() {
        let t0 = Instant::now();
        let w = measured();
        let mut f = WindowedFetch::new(Seq(0), Seq(30));
        f.requests(Seq(0), |_| false, t0, w);
        let held: BTreeSet<u64> = [1, 2, 3, 6, 7].into();
        for s in &held {
            f.arrived(Seq(*s), t0 + MS);
        }
        let has = |s: Seq| held.contains(&s.0);
        assert!(
            f.requests(Seq(3), has, t0 + MS, w).is_empty(),
            "reordered records may still fill it"
        );
        assert_eq!(f.deadline(w), Some(t0 + 3 * MS));
        let again = f.requests(Seq(3), has, t0 + 3 * MS, w);
        assert_eq!(ranges(&again), [(4, 5, false)]);
    }

    #[test]
    fn a_hole_filled_by_reordered_records_is_not_asked_again() {
        let t0 = Instant::now();
        let w = measured();
        let mut f = WindowedFetch::new(Seq(0), Seq(10));
        f.requests(Seq(0), |_| false, t0, w);
        for s in [1, 2, 5, 3, 4, 6, 7, 8, 9, 10] {
            f.arrived(Seq(s), t0 + MS);
        }
        assert!(f.is_done(Seq(10)));
        assert!(f.requests(Seq(10), |_| true, t0 + 3 * MS, w).is_empty());
        assert_eq!(f.deadline(w), None);
    }

    #[test]
    fn a_lost_tail_is_asked_again_after_a_few_round_trips_then_with_backoff() {
        let t0 = Instant::now();
        let mut f = WindowedFetch::new(Seq(0), Seq(20));
        f.requests(Seq(0), |_| false, t0, W);
        // The first request completes in 2 ms: a round trip measured.
        let mut w = W;
        for s in 1..=10 {
            if let Some(rtt) = f.arrived(Seq(s), t0 + 2 * MS) {
                w.rtt.sample(rtt);
            }
        }
        // The second's last three records are lost.
        for s in 11..=17 {
            f.arrived(Seq(s), t0 + 2 * MS);
        }
        let held = |s: Seq| s.0 <= 17;
        assert!(f.requests(Seq(17), held, t0 + 3 * MS, w).is_empty());
        let due = f.deadline(w).expect("the tail is outstanding");
        assert!(
            due < t0 + 20 * MS,
            "a few round trips, not the ceiling: {due:?}"
        );
        let again = f.requests(Seq(17), held, due, w);
        assert_eq!(ranges(&again), [(18, 20, true)]);
        let later = f.deadline(w).unwrap();
        assert!(later - due > due - t0 - 2 * MS, "backoff");
    }

    #[test]
    fn a_record_of_a_later_request_shows_the_tail_of_an_earlier_one_was_lost() {
        let t0 = Instant::now();
        let w = measured();
        let mut f = WindowedFetch::new(Seq(0), Seq(30));
        f.requests(Seq(0), |_| false, t0, w);
        for s in 1..=8 {
            f.arrived(Seq(s), t0 + MS);
        }
        f.arrived(Seq(11), t0 + MS);
        let has = |s: Seq| s.0 <= 8 || s.0 == 11;
        let again = f.requests(Seq(8), has, t0 + 3 * MS, w);
        assert_eq!(ranges(&again), [(9, 10, false)]);
    }

    #[test]
    fn nothing_is_asked_beyond_the_target_or_below_what_is_held() {
        let t0 = Instant::now();
        let mut f = WindowedFetch::new(Seq(5), Seq(8));
        assert_eq!(
            ranges(&f.requests(Seq(5), |_| false, t0, W)),
            [(6, 8, false)]
        );
        assert!(f.is_done(Seq(8)));
        // Held from elsewhere meanwhile: nothing is overdue.
        assert!(f.requests(Seq(8), |_| true, t0 + W.ceiling, W).is_empty());
        assert_eq!(f.deadline(W), None);
    }
}
