//! The simulated network of DESIGN §3 (`--delay`, `--loss`, `--dup`, `--seed`), applied to
//! every outgoing datagram of a node: a seeded RNG decides each datagram's fate, and delayed
//! copies wait in a queue that a thread sends from, each with its own delay, so arrivals
//! reorder.
//!
//! It never looks inside a datagram.

use super::{bump, send_now, shut_down_error, NetConfig, NetError, NetStats};

/// On shutdown, delayed datagrams due within this window are still sent; later ones are dropped.
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(50);
use rand::rngs::{OsRng, SmallRng};
use rand::{Rng, RngCore, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The simulated network applied to every OUTGOING datagram of this node. Default = off.
#[derive(Clone, Debug, Default)]
pub struct SimConfig {
    /// Each copy of a datagram waits a uniformly random time in `[min, max]` before it is sent.
    pub delay: Option<(Duration, Duration)>,
    /// Probability in `0..=1` that a datagram is dropped.
    pub loss: f64,
    /// Probability in `0..=1` that a datagram that was not dropped is sent twice.
    pub dup: f64,
    /// Seed of the simulation RNG; `None` draws one from the OS (and logs it).
    pub seed: Option<u64>,
}

impl SimConfig {
    /// True when the simulation changes nothing: no delay, no loss, no duplication.
    pub fn is_off(&self) -> bool {
        self.delay.is_none() && self.loss <= 0.0 && self.dup <= 0.0
    }
}

/// One delayed datagram. Ordered by due time, then by submission order (`order` is unique).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Delayed {
    due: Instant,
    order: u64,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// The delay queue shared by [`Transport::send`] and the delay thread.
#[derive(Default)]
pub(super) struct DelayQueue {
    state: Mutex<DelayState>,
    wake: Condvar,
}

#[derive(Default)]
struct DelayState {
    /// Min-heap of datagrams waiting for their due time.
    heap: BinaryHeap<Reverse<Delayed>>,
    /// Tie-break for equal due times, so equal delays keep submission order.
    next_order: u64,
    /// Set by shutdown: the thread sends what is left, then exits; nothing more is queued.
    closing: bool,
}

impl DelayQueue {
    // The queue holds plain data that no panic can leave half-updated, so a poisoned lock
    // (a panic in another thread while holding it) is safe to keep using.
    fn lock(&self) -> MutexGuard<'_, DelayState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a datagram; false if the queue is closing.
    fn push(&self, due: Instant, to: SocketAddr, bytes: Vec<u8>) -> bool {
        let mut state = self.lock();
        if state.closing {
            return false;
        }
        let order = state.next_order;
        state.next_order += 1;
        state.heap.push(Reverse(Delayed {
            due,
            order,
            to,
            bytes,
        }));
        drop(state);
        self.wake.notify_one();
        true
    }

    /// Closes the queue, drops what is due after `flush_until`; returns how many were dropped.
    fn close(&self, flush_until: Instant) -> u64 {
        let mut state = self.lock();
        state.closing = true;
        let before = state.heap.len();
        state.heap.retain(|Reverse(p)| p.due <= flush_until);
        let dropped = before - state.heap.len();
        drop(state);
        self.wake.notify_all();
        dropped as u64
    }

    /// Blocks until a datagram is due and returns it; `None` once closing and empty.
    fn next_due(&self) -> Option<(SocketAddr, Vec<u8>)> {
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            state = match state.heap.peek() {
                None if state.closing => return None,
                None => self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(Reverse(p)) if p.due <= now => {
                    return state.heap.pop().map(|Reverse(p)| (p.to, p.bytes));
                }
                Some(Reverse(p)) => {
                    let wait = p.due - now;
                    let waited = self.wake.wait_timeout(state, wait);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
    }
}

/// The simulated network: its RNG and, when `--delay` is set, the delay thread.
pub(super) struct Simulator {
    cfg: SimConfig,
    /// Seeded from `cfg.seed` so that a run can be replayed.
    rng: Mutex<SmallRng>,
    delayer: Option<Delayer>,
}

pub(super) struct Delayer {
    queue: Arc<DelayQueue>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the simulation decided for one datagram: how many copies, and each copy's delay.
pub(super) struct Fate {
    copies: usize,
    delays: [Duration; 2],
}

impl Simulator {
    /// Sends one datagram through the simulation: it may be dropped (counted, `Ok`), sent
    /// twice, or delayed (queued for the delay thread, `Ok`; a later send error is counted
    /// and logged). Without delay, copies are sent now and the first send error is returned.
    pub(super) fn send(
        &self,
        socket: &UdpSocket,
        to: SocketAddr,
        datagram: &[u8],
        stats: &NetStats,
    ) -> io::Result<()> {
        let fate = self.decide();
        match fate.copies {
            0 => {
                bump(&stats.sim_dropped, 1);
                log::trace!("sim: dropped a {}-byte datagram", datagram.len());
                return Ok(());
            }
            2 => bump(&stats.sim_duplicated, 1),
            _ => {}
        }
        let Some(delayer) = &self.delayer else {
            let mut result = Ok(());
            for _ in 0..fate.copies {
                let sent = send_now(socket, to, datagram, stats);
                if result.is_ok() {
                    result = sent;
                }
            }
            return result;
        };
        let now = Instant::now();
        for delay in &fate.delays[..fate.copies] {
            // Only an absurd delay overflows `Instant`; the CLI caps delays far below that.
            let due = now.checked_add(*delay).unwrap_or(now);
            if !delayer.queue.push(due, to, datagram.to_vec()) {
                return Err(shut_down_error());
            }
        }
        Ok(())
    }

    /// Closes the delay queue: datagrams due within [`SHUTDOWN_FLUSH`] are still sent, later
    /// ones are dropped (counted in `sim_dropped`), and the delay thread is joined.
    pub(super) fn shutdown(&self, stats: &NetStats) {
        let Some(delayer) = &self.delayer else {
            return;
        };
        let dropped = delayer.queue.close(Instant::now() + SHUTDOWN_FLUSH);
        if dropped > 0 {
            bump(&stats.sim_dropped, dropped);
            log::debug!("sim: shutdown dropped {dropped} delayed datagram(s)");
        }
        let handle = delayer
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                log::warn!("the delay thread of the simulated network panicked");
            }
        }
    }

    fn decide(&self) -> Fate {
        // Poisoning cannot corrupt an RNG state, see `DelayQueue::lock`.
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        // `gen::<f64>()` is in [0, 1), so p = 1 always fires and p = 0 never does.
        if rng.gen::<f64>() < self.cfg.loss {
            return Fate {
                copies: 0,
                delays: [Duration::ZERO; 2],
            };
        }
        let copies = if rng.gen::<f64>() < self.cfg.dup {
            2
        } else {
            1
        };
        let mut delays = [Duration::ZERO; 2];
        if let Some((a, b)) = self.cfg.delay {
            let (min, max) = (a.min(b), a.max(b));
            for d in &mut delays {
                *d = rng.gen_range(min..=max);
            }
        }
        Fate { copies, delays }
    }
}

/// Seeds the RNG and, when `--delay` is set, starts the delay thread.
pub(super) fn start_simulator(
    cfg: &NetConfig,
    socket: &UdpSocket,
    stats: &Arc<NetStats>,
) -> Result<Simulator, NetError> {
    let seed = match cfg.sim.seed {
        Some(seed) => seed,
        None => entropy_seed()?,
    };
    log::info!("simulated network on {cfg}: {:?}, seed {seed}", cfg.sim);
    let delayer = match cfg.sim.delay {
        Some(_) => Some(start_delayer(cfg, socket, stats)?),
        None => None,
    };
    Ok(Simulator {
        cfg: cfg.sim.clone(),
        rng: Mutex::new(SmallRng::seed_from_u64(seed)),
        delayer,
    })
}

/// A fresh seed from the OS; logged by the caller so that the run can be replayed.
fn entropy_seed() -> Result<u64, NetError> {
    let mut bytes = [0u8; 8];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| NetError::new("seed the simulated network".into(), io::Error::other(e)))?;
    Ok(u64::from_le_bytes(bytes))
}

fn start_delayer(
    cfg: &NetConfig,
    socket: &UdpSocket,
    stats: &Arc<NetStats>,
) -> Result<Delayer, NetError> {
    let sender = socket
        .try_clone()
        .map_err(|e| NetError::new(format!("clone the socket for {cfg}"), e))?;
    let queue = Arc::new(DelayQueue::default());
    let (q, st) = (Arc::clone(&queue), Arc::clone(stats));
    let thread = thread::Builder::new()
        .name("net-delay".into())
        .spawn(move || {
            while let Some((to, bytes)) = q.next_due() {
                // Errors are counted and logged in `send_now`; UDP is lossy anyway.
                let _ = send_now(&sender, to, &bytes, &st);
            }
        })
        .map_err(|e| NetError::new(format!("start the delay thread for {cfg}"), e))?;
    Ok(Delayer {
        queue,
        thread: Mutex::new(Some(thread)),
    })
}
