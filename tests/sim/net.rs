//! A simulated multicast network in virtual time (with datagrams to one node too), in the vocabulary of raft-rs's test harness
//! `Network`: loss on every link or on one (`set_loss`, `drop`), links cut in both directions
//! (`cut`, `isolate`) and restored (`heal`, `heal_all`), duplication (`dup`) and a random delay
//! per datagram (`delay`), so arrivals reorder. All randomness comes from one seeded RNG, and
//! time only moves when the driver jumps it to the next event ([`Network::advance_to`]).
//!
//! It moves bytes and nothing else: it knows no message kinds, checks no guarantee, and never
//! reads the wall clock or touches a socket. The copies of one multicast share their bytes and
//! carry its number ([`Arrival::datagram`]), so a receiver can tell copies of one datagram apart
//! from equal datagrams sent twice.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A datagram on its way to one node; the heap pops the earliest arrival, ties in send order.
/// The key packs both in one number (cheap to compare even in a debug build): nanoseconds since
/// the start in the high half, the send order in the low half.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    key: Reverse<u128>,
    from: usize,
    to: usize,
    datagram: u64,
    bytes: Rc<[u8]>,
}

/// One copy of a datagram, arrived at its receiver.
pub struct Arrival {
    pub from: usize,
    pub to: usize,
    /// The number of the datagram it is a copy of (every copy of one datagram, duplicates
    /// included, has the same number; no two datagrams do).
    pub datagram: u64,
    pub bytes: Rc<[u8]>,
}

/// Nodes are numbered `0..nodes`; every multicast goes to all of them, the sender included
/// (multicast loopback), and loopback is never lost or cut.
pub struct Network {
    /// The run's one seeded RNG. The scenario draws from it too ([`Network::rng`]), so one
    /// seed replays the script and the network together.
    rng: StdRng,
    start: Instant,
    now: Instant,
    nodes: usize,
    /// Loss probability of every link without a [`Network::drop`] rule.
    loss: f64,
    /// Loss probability of one directed link (from, to), overriding `loss`.
    link_loss: HashMap<(usize, usize), f64>,
    /// Directed links that carry nothing.
    cut: HashSet<(usize, usize)>,
    /// Nodes cut off from every other node.
    isolated: HashSet<usize>,
    /// Probability that a datagram arrives twice (each copy with its own delay).
    dup: f64,
    /// Loss probability of datagrams to one node, on top of the link's: 1 is a firewall that
    /// admits only the group's port.
    direct_loss: f64,
    /// Bounds of the random delay of each datagram.
    delay: (Duration, Duration),
    in_flight: BinaryHeap<InFlight>,
    /// Datagrams scheduled so far: the tie-break that keeps equal arrival times in send order.
    scheduled: u64,
    /// Datagrams sent so far: the number of the next one.
    multicasts: u64,
    /// Every datagram sent so far (once per datagram, whatever its copies), while recording.
    log: Option<Vec<Vec<u8>>>,
}

impl Network {
    /// A perfect network (no loss, no duplication, no delay) of `nodes` nodes at `start`.
    pub fn new(seed: u64, nodes: usize, start: Instant) -> Network {
        Network {
            rng: StdRng::seed_from_u64(seed),
            start,
            now: start,
            nodes,
            loss: 0.0,
            link_loss: HashMap::new(),
            cut: HashSet::new(),
            isolated: HashSet::new(),
            dup: 0.0,
            direct_loss: 0.0,
            delay: (Duration::ZERO, Duration::ZERO),
            in_flight: BinaryHeap::new(),
            scheduled: 0,
            multicasts: 0,
            log: None,
        }
    }

    /// The run's seeded RNG, for the scenario's own draws.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// Virtual now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the network was made.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Jumps virtual time to `at`; it never goes backwards.
    pub fn advance_to(&mut self, at: Instant) {
        self.now = self.now.max(at);
    }

    /// Adds a node; returns its number.
    pub fn add_node(&mut self) -> usize {
        self.nodes += 1;
        self.nodes - 1
    }

    /// Loses each datagram on every link with probability `p`.
    pub fn set_loss(&mut self, p: f64) {
        self.loss = p;
    }

    /// Loses each datagram from `from` to `to` with probability `p` (raft-rs's `drop`).
    pub fn drop(&mut self, from: usize, to: usize, p: f64) {
        self.link_loss.insert((from, to), p);
    }

    /// Delivers each datagram twice with probability `p`.
    pub fn dup(&mut self, p: f64) {
        self.dup = p;
    }

    /// Delays each datagram by a uniform random time in `min..=max`.
    pub fn delay(&mut self, min: Duration, max: Duration) {
        self.delay = (min, max);
    }

    /// Cuts the link between `a` and `b`, both ways.
    pub fn cut(&mut self, a: usize, b: usize) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    /// Cuts `node` off from every other node.
    pub fn isolate(&mut self, node: usize) {
        self.isolated.insert(node);
    }

    /// Restores every link of `node`: undoes its isolation, its cuts and its `drop` rules.
    pub fn heal(&mut self, node: usize) {
        self.isolated.remove(&node);
        self.cut.retain(|&(a, b)| a != node && b != node);
        self.link_loss.retain(|&(a, b), _| a != node && b != node);
    }

    /// Restores every link (raft-rs's `recover`).
    pub fn heal_all(&mut self) {
        self.isolated.clear();
        self.cut.clear();
        self.link_loss.clear();
    }

    /// Whether nothing gets from `from` to `to` now.
    pub fn is_cut(&self, from: usize, to: usize) -> bool {
        from != to
            && (self.isolated.contains(&from)
                || self.isolated.contains(&to)
                || self.cut.contains(&(from, to)))
    }

    /// Whether any link is cut or any node isolated.
    pub fn is_partitioned(&self) -> bool {
        !self.isolated.is_empty() || !self.cut.is_empty()
    }

    /// Sends `bytes` from `from` to every node, through the loss, duplication and delay of
    /// each link.
    pub fn multicast(&mut self, from: usize, bytes: Vec<u8>) {
        self.transmit(from, 0..self.nodes, bytes);
    }

    /// Sends `bytes` from `from` to node `to` alone, through the same link and the loss of
    /// direct datagrams.
    pub fn unicast(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        if from != to && self.rng.gen_bool(self.direct_loss) {
            if let Some(log) = &mut self.log {
                log.push(bytes);
            }
            return;
        }
        self.transmit(from, to..to + 1, bytes);
    }

    /// Datagrams to one node are lost with probability `p` (on top of the link's loss).
    pub fn set_direct_loss(&mut self, p: f64) {
        self.direct_loss = p;
    }

    fn transmit(&mut self, from: usize, receivers: std::ops::Range<usize>, bytes: Vec<u8>) {
        if let Some(log) = &mut self.log {
            log.push(bytes.clone());
        }
        let datagram = self.multicasts;
        self.multicasts += 1;
        let bytes: Rc<[u8]> = bytes.into();
        for to in receivers {
            if self.is_cut(from, to) {
                continue;
            }
            let loss = self
                .link_loss
                .get(&(from, to))
                .copied()
                .unwrap_or(self.loss);
            if from != to && self.rng.gen_bool(loss) {
                continue;
            }
            let copies = if self.rng.gen_bool(self.dup) { 2 } else { 1 };
            for _ in 0..copies {
                let (lo, hi) = self.delay;
                let (lo, hi) = (lo.as_micros() as u64, hi.as_micros() as u64);
                let delay = Duration::from_micros(self.rng.gen_range(lo..=hi));
                self.scheduled += 1;
                let at = (self.now + delay - self.start).as_nanos();
                self.in_flight.push(InFlight {
                    key: Reverse(at << 64 | u128::from(self.scheduled)),
                    from,
                    to,
                    datagram,
                    bytes: Rc::clone(&bytes),
                });
            }
        }
    }

    /// When the next datagram arrives, if any is in flight.
    pub fn next_arrival(&self) -> Option<Instant> {
        let nanos = self.in_flight.peek()?.key.0 >> 64;
        Some(self.start + Duration::from_nanos(nanos as u64))
    }

    /// The earliest datagram due by now, with its receiver.
    pub fn pop_arrival(&mut self) -> Option<Arrival> {
        if self.next_arrival()? > self.now {
            return None;
        }
        let f = self.in_flight.pop()?;
        Some(Arrival {
            from: f.from,
            to: f.to,
            datagram: f.datagram,
            bytes: f.bytes,
        })
    }

    /// `node` crashed: what is in flight to it is lost with its socket.
    pub fn crash(&mut self, node: usize) {
        self.in_flight.retain(|f| f.to != node);
    }

    /// Starts (or stops) keeping every multicast datagram.
    pub fn record(&mut self, on: bool) {
        self.log = on.then(|| self.log.take().unwrap_or_default());
    }

    /// The datagrams sent while recording.
    pub fn log(&self) -> &[Vec<u8>] {
        self.log.as_deref().unwrap_or_default()
    }

    /// Takes the log, which starts over empty.
    pub fn take_log(&mut self) -> Vec<Vec<u8>> {
        self.log.as_mut().map(std::mem::take).unwrap_or_default()
    }
}
