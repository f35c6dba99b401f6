//! A passive observer of the ring on its group: a socket joined to the ring's group and port
//! (one more receiver of every multicast) that decodes with `wire::decode` and records the
//! token passes sent to the whole group and the data packs, and the statistics of hops,
//! rotations and stalls computed from them; also when each line first went out on the group,
//! which splits a line's latency into its wait for the token and what follows.
//!
//! A pass that raised nothing goes to the successor alone, out of the observer's sight, so the
//! statistics count hops by the passes' hop numbers, not by the passes seen: between two seen
//! passes `k` hops apart, each hop took a `k`th of the interval. A bare hop (a visit that only
//! forwards the token) is timed over a whole rotation: from a data pack to the pass that made
//! it safe, which is `N` hops later, divided by `N`.
//!
//! A unicast ring sends nothing to the group: it gets a blind observer, whose statistics are
//! empty.
//!
//! It only listens: it never sends on the group and never touches a process.

use crate::raw::group_socket;
use crate::util::{ms, parse_key, percentile};
use mcast_chat::protocol::wire::{self, Msg};
use serde::Serialize;
use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// One token pass seen on the group, or one data pack (then `hop` is 0 and `seq` is the
/// pack's highest seq).
#[derive(Clone, Copy, Debug)]
pub struct Hop {
    pub at: Instant,
    pub epoch: u64,
    pub hop: u64,
    /// The token's `seq` (highest stamped) when it was passed.
    pub seq: u64,
    /// The token's `safe` when it was passed.
    pub safe: u64,
}

impl Hop {
    fn is_data(&self) -> bool {
        self.hop == 0
    }
}

/// A socket joined to the ring's group and port that records every token pass (first copy of
/// each `(epoch, hop)`). It decodes with `wire::decode`, so it follows the wire format; it is
/// one more receiver of every datagram, which costs the ring a little.
pub struct Observer {
    pub stop: Arc<AtomicBool>,
    pub hops: Arc<Mutex<Vec<Hop>>>,
    /// When each line (by its bench key) was first seen on the group, in a data pack.
    pub on_wire: Arc<Mutex<HashMap<u64, Instant>>>,
    pub thread: Option<thread::JoinHandle<()>>,
}

impl Observer {
    pub fn start(port: u16) -> std::io::Result<Observer> {
        let socket = group_socket(port)?;
        let stop = Arc::new(AtomicBool::new(false));
        let hops = Arc::new(Mutex::new(Vec::new()));
        let on_wire = Arc::new(Mutex::new(HashMap::new()));
        let (s, h, w) = (Arc::clone(&stop), Arc::clone(&hops), Arc::clone(&on_wire));
        let thread = thread::Builder::new()
            .name("observer".into())
            .spawn(move || observe(&socket, &s, &h, &w))?;
        Ok(Observer {
            stop,
            hops,
            on_wire,
            thread: Some(thread),
        })
    }

    /// An observer that sees nothing, for a unicast ring (it sends nothing to the group):
    /// its statistics are empty.
    pub fn blind() -> Observer {
        Observer {
            stop: Arc::new(AtomicBool::new(true)),
            hops: Arc::new(Mutex::new(Vec::new())),
            on_wire: Arc::new(Mutex::new(HashMap::new())),
            thread: None,
        }
    }

    /// Statistics of the passes between `from` and `to` in a ring of `n`.
    pub fn stats(&self, from: Instant, to: Instant, n: usize) -> HopStats {
        let hops = self.hops.lock().unwrap_or_else(PoisonError::into_inner);
        let window: Vec<Hop> = hops
            .iter()
            .filter(|h| h.at >= from && h.at <= to)
            .copied()
            .collect();
        hop_stats(&window, (to - from).as_secs_f64(), n)
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn observe(
    socket: &UdpSocket,
    stop: &AtomicBool,
    hops: &Mutex<Vec<Hop>>,
    on_wire: &Mutex<HashMap<u64, Instant>>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut last = (0, 0);
    let mut last_pack = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        let at = Instant::now();
        let seen = match wire::decode(&buf[..n]) {
            Ok(Msg::Token(t)) if (t.epoch.0, t.hop) > last => {
                last = (t.epoch.0, t.hop);
                Hop {
                    at,
                    epoch: t.epoch.0,
                    hop: t.hop,
                    seq: t.seq.0,
                    safe: t.safe.0,
                }
            }
            Ok(Msg::Data { epoch, recs, .. }) => {
                let top = recs.last().map_or(0, |r| r.seq.0);
                if (epoch.0, top) <= last_pack {
                    continue; // a retransmission
                }
                let mut wire = on_wire.lock().unwrap_or_else(PoisonError::into_inner);
                for rec in &recs {
                    wire.entry(parse_key(&rec.text)).or_insert(at);
                }
                drop(wire);
                last_pack = (epoch.0, top);
                Hop {
                    at,
                    epoch: epoch.0,
                    hop: 0,
                    seq: top,
                    safe: 0,
                }
            }
            _ => continue,
        };
        hops.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(seen);
    }
}

/// Token passes in a window, from the observer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HopStats {
    /// Hops in the window, by the passes' hop numbers.
    pub hops: u64,
    pub per_s: f64,
    /// Mean hop time between consecutive seen passes of one epoch.
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_ms: f64,
    /// Stretches whose mean hop was over 50 ms (an idle hold, a lost wake-up, a timer), and
    /// their total.
    pub stalls: usize,
    pub stalled_ms: f64,
    /// N times the mean hop: one rotation.
    pub rotation_ms: f64,
    /// Rotations from a data pack to the pass that made it safe, each divided by N: the cost
    /// of a bare token hop.
    pub bare_hops: usize,
    pub bare_p50_us: f64,
}

pub const STALL: Duration = Duration::from_millis(50);

pub fn hop_stats(seen: &[Hop], secs: f64, n: usize) -> HopStats {
    let passes: Vec<&Hop> = seen.iter().filter(|h| !h.is_data()).collect();
    let mut gaps: Vec<f64> = Vec::new();
    let (mut total_us, mut total_hops) = (0.0, 0u64);
    let mut stalled = 0.0;
    let mut stalls = 0;
    for w in passes.windows(2) {
        if w[1].epoch != w[0].epoch || w[1].hop <= w[0].hop {
            continue;
        }
        let k = w[1].hop - w[0].hop;
        let gap = w[1].at - w[0].at;
        let per_hop = gap.as_secs_f64() * 1e6 / k as f64;
        total_us += gap.as_secs_f64() * 1e6;
        total_hops += k;
        gaps.push(per_hop);
        if per_hop > STALL.as_secs_f64() * 1e6 {
            stalls += 1;
            stalled += ms(gap);
        }
    }
    let mut bare = bare_hops(seen, n);
    let mean = total_us / total_hops.max(1) as f64;
    gaps.sort_by(f64::total_cmp);
    bare.sort_by(f64::total_cmp);
    HopStats {
        hops: total_hops,
        per_s: total_hops as f64 / secs.max(1e-9),
        p50_us: percentile(&gaps, 50.0),
        p99_us: percentile(&gaps, 99.0),
        max_ms: gaps.last().copied().unwrap_or(0.0) / 1000.0,
        stalls,
        stalled_ms: stalled,
        rotation_ms: mean * n as f64 / 1000.0,
        bare_hops: bare.len(),
        bare_p50_us: percentile(&bare, 50.0),
    }
}

/// For each data pack stamped on a ring with nothing else unsafe (the previous pass seen shows
/// `safe` at `seq`), the time until the first pass whose `safe` covers it, divided by `n`.
fn bare_hops(seen: &[Hop], n: usize) -> Vec<f64> {
    let mut out = Vec::new();
    let mut settled = false;
    for (i, h) in seen.iter().enumerate() {
        if !h.is_data() {
            settled = h.safe == h.seq;
            continue;
        }
        if !settled {
            continue;
        }
        settled = false;
        let safe_pass = seen[i + 1..]
            .iter()
            .find(|p| !p.is_data() && p.epoch == h.epoch && p.safe >= h.seq);
        if let Some(p) = safe_pass {
            out.push((p.at - h.at).as_secs_f64() * 1e6 / n.max(1) as f64);
        }
    }
    out
}
