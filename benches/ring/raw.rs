//! The raw multicast baseline: one sender sends datagrams of `DATAGRAM_BYTES` to N+1
//! receiver sockets, no protocol, for the "ratio to raw" column. Every socket comes from the
//! library's `net::open_socket`, so it is set up exactly like the chat's (reuse address and
//! port, 224.1.1.1 joined on 127.0.0.1, loopback on, TTL 1, the same buffers).
//!
//! The baseline is the highest rate that every receiver takes in without loss: an unpaced
//! flood first (on 2 cores its sender steals time from the receivers and overruns their
//! buffers), then the sender paced at multiples of what the flood delivered, going up while
//! no datagram is lost ([`best_lossless`]). So the ratio is never flattered by a baseline
//! dragged down by overruns.
//!
//! It must not start any process or touch the ring's port: it runs on a port of its own.

use crate::DATAGRAM_BYTES;
use mcast_chat::net::{open_socket, NetConfig};
use serde::Serialize;
use std::io;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// A socket joined to the group on `port`, set up by the library exactly like a node's, that
/// gives up a `recv` after 20 ms so that its thread can see a stop flag.
pub fn group_socket(port: u16) -> io::Result<UdpSocket> {
    let socket = open(port)?;
    socket.set_read_timeout(Some(Duration::from_millis(20)))?;
    Ok(socket)
}

/// The flood's sender: set up like a node's too, but on a port of its own (the kernel's
/// choice), so that it receives none of its own flood; it sends through 127.0.0.1 like the
/// receivers.
fn sender_socket() -> io::Result<UdpSocket> {
    open(0)
}

fn open(port: u16) -> io::Result<UdpSocket> {
    open_socket(&NetConfig::loopback(port)).map_err(|e| io::Error::new(e.kind(), e.to_string()))
}

/// One raw baseline run.
#[derive(Clone, Debug, Serialize)]
pub struct RawRun {
    pub receivers: usize,
    pub secs: f64,
    pub sent: u64,
    /// Datagrams at the receiver that got the fewest, and the most.
    pub slowest: u64,
    pub fastest: u64,
    pub send_errors: u64,
    /// The slowest receiver's datagrams per second (the sender's, if it is slower).
    pub rate: f64,
    /// The pace the sender kept to (datagrams/s), or `None` for a flood.
    pub paced: Option<f64>,
}

impl RawRun {
    /// Every receiver got every datagram sent.
    pub fn lossless(&self) -> bool {
        self.send_errors == 0 && self.slowest >= self.sent
    }
}

/// Paces tried, as multiples of the flood's rate, from the lowest; the search stops at the
/// first pace that loses a datagram.
const PACES: [f64; 6] = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0];

/// The best lossless rate: a flood, then paces going up from half the flood's rate. Returns
/// every run and the best lossless rate (0 when none was lossless).
pub fn best_lossless(
    port: u16,
    receivers: usize,
    window: Duration,
) -> io::Result<(Vec<RawRun>, f64)> {
    let flood = raw_run(port, receivers, window, None)?;
    let base = flood.rate.max(1000.0);
    let mut runs = vec![flood];
    for pace in PACES {
        let run = raw_run(port, receivers, window, Some(base * pace))?;
        let lossless = run.lossless();
        runs.push(run);
        if !lossless {
            break;
        }
    }
    let best = runs
        .iter()
        .filter(|r| r.lossless())
        .map(|r| r.rate)
        .fold(0.0, f64::max);
    Ok((runs, best))
}

/// One sender sends `DATAGRAM_BYTES`-byte datagrams for `window`, as fast as it can or at
/// `pace` datagrams/s; `receivers` threads count.
pub fn raw_run(
    port: u16,
    receivers: usize,
    window: Duration,
    pace: Option<f64>,
) -> io::Result<RawRun> {
    let magic: u64 = rand::random();
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(receivers + 1));
    // Every socket before any thread, so that an error cannot leave a thread at the barrier.
    let sender = sender_socket()?;
    let sockets = (0..receivers)
        .map(|_| group_socket(port))
        .collect::<io::Result<Vec<_>>>()?;
    let mut counters = Vec::new();
    let mut handles = Vec::new();
    for socket in sockets {
        let count = Arc::new(AtomicU64::new(0));
        let (stop, ready, c) = (Arc::clone(&stop), Arc::clone(&ready), Arc::clone(&count));
        counters.push(count);
        handles.push(thread::spawn(move || {
            let mut buf = [0u8; 2048];
            ready.wait();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    if n == DATAGRAM_BYTES && buf[..8] == magic.to_le_bytes() {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let to = NetConfig::loopback(port).destination();
    let mut datagram = vec![b'x'; DATAGRAM_BYTES];
    datagram[..8].copy_from_slice(&magic.to_le_bytes());
    ready.wait();
    thread::sleep(Duration::from_millis(20));
    let (mut sent, mut errors) = (0u64, 0u64);
    let start = Instant::now();
    // Bounded by time, and by count in case the clock check is never reached.
    while sent + errors < 100_000_000 {
        if (sent + errors) % 64 == 0 && start.elapsed() >= window {
            break;
        }
        if let Some(pace) = pace {
            wait_for_turn(start, sent + errors, pace);
        }
        match sender.send_to(&datagram, to) {
            Ok(_) => sent += 1,
            Err(_) => errors += 1,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let counts: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let slowest = counts.iter().copied().min().unwrap_or(0);
    let fastest = counts.iter().copied().max().unwrap_or(0);
    Ok(RawRun {
        receivers,
        secs,
        sent,
        slowest,
        fastest,
        send_errors: errors,
        rate: slowest.min(sent) as f64 / secs,
        paced: pace,
    })
}

/// Sleeps (or, close to it, spins) until datagram `i` is due at `pace` per second. Sleeping
/// whole milliseconds and then sending a burst keeps the sender's wake-ups few.
fn wait_for_turn(start: Instant, i: u64, pace: f64) {
    let due = start + Duration::from_secs_f64(i as f64 / pace);
    let now = Instant::now();
    if due > now + Duration::from_micros(500) {
        thread::sleep(due - now);
    }
}
