//! A table of deadlines keyed by a timer enum, after quinn-proto's `connection/timer.rs`: each
//! core names its timers in one enum, arms and stops them here, and asks the table for the
//! earliest deadline without building anything.
//!
//! Pure: the table never reads the clock; callers pass `now`.

use std::marker::PhantomData;
use std::time::Instant;

/// A core's timers: a small enum whose variants index the table.
pub trait Timer: Copy + 'static {
    /// Every variant, in index order.
    const ALL: &'static [Self];
    /// This variant's slot, below `ALL.len()`.
    fn index(self) -> usize;
}

/// One optional deadline per timer of `T`.
#[derive(Clone, Debug)]
pub struct TimerTable<T: Timer> {
    deadlines: Vec<Option<Instant>>,
    kind: PhantomData<T>,
}

impl<T: Timer> Default for TimerTable<T> {
    fn default() -> Self {
        TimerTable {
            deadlines: vec![None; T::ALL.len()],
            kind: PhantomData,
        }
    }
}

impl<T: Timer> TimerTable<T> {
    /// Arms `timer` for `at` (replacing any earlier deadline).
    pub fn set(&mut self, timer: T, at: Instant) {
        self.deadlines[timer.index()] = Some(at);
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: T) {
        self.deadlines[timer.index()] = None;
    }

    /// Disarms every timer.
    pub fn stop_all(&mut self) {
        self.deadlines.iter_mut().for_each(|d| *d = None);
    }

    /// The deadline of `timer`, if armed.
    pub fn get(&self, timer: T) -> Option<Instant> {
        self.deadlines[timer.index()]
    }

    /// Whether `timer` is armed and due at `now`.
    pub fn is_due(&self, timer: T, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// Disarms `timer` and says whether it was due at `now` (a due timer fires once).
    pub fn take_due(&mut self, timer: T, now: Instant) -> bool {
        let due = self.is_due(timer, now);
        if due {
            self.stop(timer);
        }
        due
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Kind {
        A,
        B,
    }

    impl Timer for Kind {
        const ALL: &'static [Kind] = &[Kind::A, Kind::B];
        fn index(self) -> usize {
            self as usize
        }
    }

    #[test]
    fn the_earliest_armed_deadline_is_next_and_fires_once() {
        let t0 = Instant::now();
        let mut timers = TimerTable::<Kind>::default();
        assert_eq!(timers.next(), None);
        timers.set(Kind::B, t0 + Duration::from_secs(2));
        timers.set(Kind::A, t0 + Duration::from_secs(5));
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(2)));
        assert!(!timers.take_due(Kind::B, t0));
        assert!(timers.take_due(Kind::B, t0 + Duration::from_secs(2)));
        assert!(!timers.take_due(Kind::B, t0 + Duration::from_secs(9)));
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(5)));
        timers.stop_all();
        assert_eq!(timers.next(), None);
    }
}
