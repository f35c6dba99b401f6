//! A passive observer of token passes: a socket joined to the ring's group and port (one more
//! receiver of every datagram) that decodes with `wire::decode` and records each token pass,
//! and the statistics of hop intervals, rotations and stalls computed from them.
//!
//! It only listens: it never sends on the group and never touches a process.

use crate::raw::group_socket;
use crate::util::{ms, percentile};
use mcast_chat::protocol::wire::{self, Msg};
use serde::Serialize;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// One token pass seen on the group.
#[derive(Clone, Copy, Debug)]
pub struct Hop {
    pub at: Instant,
    pub epoch: u64,
    pub hop: u64,
    /// The token's `seq` (highest stamped) when it was passed.
    pub seq: u64,
}

/// A socket joined to the ring's group and port that records every token pass (first copy of
/// each `(epoch, hop)`). It decodes with `wire::decode`, so it follows the wire format; it is
/// one more receiver of every datagram, which costs the ring a little.
pub struct Observer {
    pub stop: Arc<AtomicBool>,
    pub hops: Arc<Mutex<Vec<Hop>>>,
    pub thread: Option<thread::JoinHandle<()>>,
}

impl Observer {
    pub fn start(port: u16) -> std::io::Result<Observer> {
        let socket = group_socket(port)?;
        let stop = Arc::new(AtomicBool::new(false));
        let hops = Arc::new(Mutex::new(Vec::new()));
        let (s, h) = (Arc::clone(&stop), Arc::clone(&hops));
        let thread = thread::Builder::new()
            .name("observer".into())
            .spawn(move || observe(&socket, &s, &h))?;
        Ok(Observer {
            stop,
            hops,
            thread: Some(thread),
        })
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

pub fn observe(socket: &UdpSocket, stop: &AtomicBool, hops: &Mutex<Vec<Hop>>) {
    let mut buf = vec![0u8; 65_536];
    let mut last = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        let at = Instant::now();
        if let Ok(Msg::Token(t)) = wire::decode(&buf[..n]) {
            if (t.epoch.0, t.hop) > last {
                last = (t.epoch.0, t.hop);
                let hop = Hop {
                    at,
                    epoch: t.epoch.0,
                    hop: t.hop,
                    seq: t.seq.0,
                };
                hops.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(hop);
            }
        }
    }
}

/// Token passes in a window, from the observer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HopStats {
    pub hops: usize,
    pub per_s: f64,
    /// Intervals between consecutive passes of one epoch.
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_ms: f64,
    /// Intervals over 50 ms (an idle hold, a lost wake-up, a timer), and their total.
    pub stalls: usize,
    pub stalled_ms: f64,
    /// N times the mean interval: one rotation.
    pub rotation_ms: f64,
    /// Intervals after a visit that stamped nothing and did not hold (under 50 ms): the cost
    /// of a bare token hop.
    pub bare_hops: usize,
    pub bare_p50_us: f64,
}

pub const STALL: Duration = Duration::from_millis(50);

pub fn hop_stats(hops: &[Hop], secs: f64, n: usize) -> HopStats {
    let mut gaps: Vec<f64> = Vec::new();
    let mut bare: Vec<f64> = Vec::new();
    let mut stalled = 0.0;
    let mut stalls = 0;
    for w in hops.windows(2) {
        if w[1].epoch != w[0].epoch || w[1].hop != w[0].hop + 1 {
            continue;
        }
        let gap = w[1].at - w[0].at;
        gaps.push(gap.as_secs_f64() * 1e6);
        if gap > STALL {
            stalls += 1;
            stalled += ms(gap);
        } else if w[1].seq == w[0].seq {
            bare.push(gap.as_secs_f64() * 1e6);
        }
    }
    let mean = gaps.iter().sum::<f64>() / gaps.len().max(1) as f64;
    gaps.sort_by(f64::total_cmp);
    bare.sort_by(f64::total_cmp);
    HopStats {
        hops: hops.len(),
        per_s: hops.len() as f64 / secs.max(1e-9),
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
