//! Round-trip estimates, so that a lost datagram costs a few round trips rather than a fixed
//! timer sized for the slowest network the chat might run on: the smoothed round trip and its
//! variation (Jacobson and Karels, as TCP's RFC 6298), a retransmission timeout from them, and
//! exponential backoff for a datagram sent again.
//!
//! Pure arithmetic on durations: no clock, no I/O. Callers take samples only from datagrams
//! that were sent once (Karn's rule), since an answer to a resent one is ambiguous.

use std::time::Duration;

/// The shortest timeout ever used: below a few milliseconds, a busy host's scheduling delays
/// alone would look like losses.
pub const MIN_RTO: Duration = Duration::from_millis(4);

/// A smoothed round trip and its mean deviation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttEstimate {
    /// `None` until the first sample.
    srtt: Option<Duration>,
    rttvar: Duration,
}

impl RttEstimate {
    /// No sample yet.
    pub const fn new() -> RttEstimate {
        RttEstimate {
            srtt: None,
            rttvar: Duration::ZERO,
        }
    }

    /// Folds in one round trip.
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let err = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + err) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// The smoothed round trip, once there is one.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// How long to wait for an answer before sending again, after `resends` resends of the
    /// same datagram: `srtt + 4 rttvar` (at least [`MIN_RTO`]), doubled per resend, and never
    /// more than `ceiling` (also the timeout before any sample).
    pub fn rto(&self, resends: u32, ceiling: Duration) -> Duration {
        let Some(srtt) = self.srtt else {
            return ceiling;
        };
        let base = (srtt + self.rttvar * 4).max(MIN_RTO);
        base.saturating_mul(1 << resends.min(16)).min(ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn without_a_sample_the_ceiling_is_the_timeout() {
        assert_eq!(RttEstimate::default().rto(0, 250 * MS), 250 * MS);
    }

    #[test]
    fn a_steady_round_trip_gives_a_timeout_of_a_few_round_trips_and_the_floor_below() {
        let mut e = RttEstimate::default();
        for _ in 0..50 {
            e.sample(10 * MS);
        }
        let rto = e.rto(0, Duration::from_secs(1));
        assert!(rto >= 10 * MS && rto < 15 * MS, "{rto:?}");
        let mut fast = RttEstimate::default();
        for _ in 0..50 {
            fast.sample(Duration::from_micros(80));
        }
        assert_eq!(fast.rto(0, Duration::from_secs(1)), MIN_RTO);
    }

    #[test]
    fn jitter_widens_the_timeout_and_each_resend_doubles_it_up_to_the_ceiling() {
        let mut e = RttEstimate::default();
        for i in 0..40 {
            e.sample(if i % 2 == 0 { 5 * MS } else { 25 * MS });
        }
        let rto = e.rto(0, Duration::from_secs(1));
        assert!(rto > 40 * MS, "{rto:?}");
        assert_eq!(e.rto(1, Duration::from_secs(1)), rto * 2);
        assert_eq!(e.rto(10, 300 * MS), 300 * MS);
        assert_eq!(e.rto(u32::MAX, 300 * MS), 300 * MS);
    }
}
