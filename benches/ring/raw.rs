//! The raw multicast baseline: one sender floods datagrams of `DATAGRAM_BYTES` at N+1
//! receiver sockets, no protocol, for the "ratio to raw" column. Every socket comes from the
//! library's `net::open_socket`, so it is set up exactly like the chat's (reuse address and
//! port, 224.1.1.1 joined on 127.0.0.1, loopback on, TTL 1, the same buffers).
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
}

/// One sender floods `DATAGRAM_BYTES`-byte datagrams for `window`; `receivers` threads count.
pub fn raw_baseline(port: u16, receivers: usize, window: Duration) -> io::Result<RawRun> {
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
    })
}
