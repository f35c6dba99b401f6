//! Transport: the UDP multicast socket and the simulated network.
//!
//! [`Transport::open`] sets up one multicast socket with socket2 (reuse address and port so that
//! several nodes on one host share the port, join the group on the chosen interface, TTL,
//! multicast loopback, large buffers). [`Transport::send`] applies the simulated network of
//! DESIGN §3 (`--delay`, `--loss`, `--dup`, `--seed`) to every outgoing datagram; delayed copies
//! are sent by a background thread, each with its own random delay, so arrivals reorder.
//!
//! Multicast loopback is on, so a node receives its own datagrams: callers filter by sender id.
//!
//! What this module must not do: no protocol logic and no decoding here. It moves opaque byte
//! strings; it never looks inside a datagram.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rand::rngs::{OsRng, SmallRng};
use rand::{Rng, RngCore, SeedableRng};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Socket buffer size we ask for; the kernel may grant less (we ignore failure).
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// On shutdown, delayed datagrams due within this window are still sent; later ones are dropped.
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(50);

/// `SO_RCVTIMEO` cannot be zero (zero means "block forever"), so shorter timeouts become this.
const MIN_RECV_TIMEOUT: Duration = Duration::from_micros(1);

/// Where and how to reach the group.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Multicast group to join and send to.
    pub group: Ipv4Addr,
    /// UDP port, shared by every node of the group.
    pub port: u16,
    /// Local interface address to join and send on (`127.0.0.1` keeps the chat on this host).
    pub interface: Ipv4Addr,
    /// Multicast TTL: 0 stays on the host, 1 on the LAN segment.
    pub ttl: u32,
    /// Simulated network for outgoing datagrams; off by default.
    pub sim: SimConfig,
}

impl NetConfig {
    /// Group `224.1.1.1` on `port` via `127.0.0.1`, TTL 1, no simulation: handy for tests.
    pub fn loopback(port: u16) -> NetConfig {
        NetConfig {
            group: Ipv4Addr::new(224, 1, 1, 1),
            port,
            interface: Ipv4Addr::LOCALHOST,
            ttl: 1,
            sim: SimConfig::default(),
        }
    }
}

impl fmt::Display for NetConfig {
    /// `224.1.1.1:5007 via 127.0.0.1`, the form used in user-facing messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} via {}", self.group, self.port, self.interface)
    }
}

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

/// Transport counters, shared between threads. Read them with [`NetStats::snapshot`].
#[derive(Debug, Default)]
pub struct NetStats {
    sent: AtomicU64,
    received: AtomicU64,
    sim_dropped: AtomicU64,
    sim_duplicated: AtomicU64,
    send_errors: AtomicU64,
}

/// A copy of the [`NetStats`] counters at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStatsSnapshot {
    /// Datagrams handed to the kernel successfully (each duplicate counts).
    pub sent: u64,
    /// Datagrams returned by [`Transport::recv`] (including our own, looped back).
    pub received: u64,
    /// Datagrams dropped by the simulated loss, or still delayed when the transport shut down.
    pub sim_dropped: u64,
    /// Datagrams that the simulation sent twice.
    pub sim_duplicated: u64,
    /// Sends that the kernel refused.
    pub send_errors: u64,
}

impl NetStats {
    /// Reads every counter (each one atomically; the set is not one atomic snapshot).
    pub fn snapshot(&self) -> NetStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NetStatsSnapshot {
            sent: get(&self.sent),
            received: get(&self.received),
            sim_dropped: get(&self.sim_dropped),
            sim_duplicated: get(&self.sim_duplicated),
            send_errors: get(&self.send_errors),
        }
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// Setting up the multicast socket failed: what we tried, and the OS error.
#[derive(Debug)]
pub struct NetError {
    /// What failed, with the addresses involved ("join 224.1.1.1 on 127.0.0.1").
    context: String,
    source: io::Error,
}

impl NetError {
    fn new(context: String, source: io::Error) -> NetError {
        NetError { context, source }
    }

    /// The kind of the underlying I/O error.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The underlying I/O error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for NetError {
    // The OS error is part of the message (and not returned by `source()`), so that printing
    // the error alone, or its cause chain, shows it exactly once.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)?;
        if self.source.kind() == io::ErrorKind::AddrNotAvailable {
            write!(f, " (is --interface an address of this host?)")?;
        }
        Ok(())
    }
}

impl std::error::Error for NetError {}

/// One delayed datagram. Ordered by due time, then by submission order (`order` is unique).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    due: Instant,
    order: u64,
    bytes: Vec<u8>,
}

/// The delay queue shared by [`Transport::send`] and the delay thread.
#[derive(Default)]
struct DelayQueue {
    state: Mutex<DelayState>,
    wake: Condvar,
}

#[derive(Default)]
struct DelayState {
    /// Min-heap of datagrams waiting for their due time.
    heap: BinaryHeap<Reverse<Pending>>,
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
    fn push(&self, due: Instant, bytes: Vec<u8>) -> bool {
        let mut state = self.lock();
        if state.closing {
            return false;
        }
        let order = state.next_order;
        state.next_order += 1;
        state.heap.push(Reverse(Pending { due, order, bytes }));
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
    fn next_due(&self) -> Option<Vec<u8>> {
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
                    return state.heap.pop().map(|Reverse(p)| p.bytes);
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
struct Simulator {
    cfg: SimConfig,
    /// Seeded from `cfg.seed` so that a run can be replayed.
    rng: Mutex<SmallRng>,
    delayer: Option<Delayer>,
}

struct Delayer {
    queue: Arc<DelayQueue>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the simulation decided for one datagram: how many copies, and each copy's delay.
struct Fate {
    copies: usize,
    delays: [Duration; 2],
}

impl Simulator {
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

/// The multicast socket of one node, with its simulated network. `Sync`: share it with `Arc`.
pub struct Transport {
    socket: UdpSocket,
    /// Destination of every datagram: the group and port.
    group: SocketAddr,
    cfg: NetConfig,
    stats: Arc<NetStats>,
    /// `None` when the simulation is off: datagrams go straight to the socket.
    sim: Option<Simulator>,
    /// Set by [`Transport::shutdown`]; later sends fail.
    closed: AtomicBool,
}

impl Transport {
    /// Opens the multicast socket and joins the group (see the module docs). Errors say which
    /// group, port and interface, and which step failed.
    pub fn open(cfg: &NetConfig) -> Result<Transport, NetError> {
        let socket = open_socket(cfg)?;
        let stats = Arc::new(NetStats::default());
        let group = SocketAddr::V4(SocketAddrV4::new(cfg.group, cfg.port));
        let sim = if cfg.sim.is_off() {
            None
        } else {
            Some(start_simulator(cfg, &socket, group, &stats)?)
        };
        Ok(Transport {
            socket,
            group,
            cfg: cfg.clone(),
            stats,
            sim,
            closed: AtomicBool::new(false),
        })
    }

    /// The configuration this transport was opened with.
    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// Receives one datagram into `buf`, blocking for at most `timeout` (`None` = forever).
    /// Returns `Ok(None)` on timeout (or when interrupted by a signal). A datagram longer than
    /// `buf` is truncated, so give a 64 KiB buffer to see oversize datagrams whole. Our own
    /// datagrams come back too (multicast loopback). Use a bounded timeout in a loop that
    /// checks for shutdown: closing the transport does not wake a blocked `recv`.
    pub fn recv(
        &self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> io::Result<Option<(usize, SocketAddr)>> {
        self.socket
            .set_read_timeout(timeout.map(|t| t.max(MIN_RECV_TIMEOUT)))?;
        match self.socket.recv_from(buf) {
            Ok((len, from)) => {
                bump(&self.stats.received, 1);
                Ok(Some((len, from)))
            }
            Err(e) if is_timeout(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends one datagram to the group through the simulated network: it may be dropped
    /// (counted, `Ok`), sent twice, or delayed (queued for the delay thread, `Ok`; a later send
    /// error is counted and logged). Without delay, copies are sent now and the first send
    /// error is returned (and counted). After [`Transport::shutdown`], returns an error.
    pub fn send(&self, datagram: &[u8]) -> io::Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(shut_down_error());
        }
        let Some(sim) = &self.sim else {
            return send_now(&self.socket, self.group, datagram, &self.stats);
        };
        let fate = sim.decide();
        match fate.copies {
            0 => {
                bump(&self.stats.sim_dropped, 1);
                log::trace!("sim: dropped a {}-byte datagram", datagram.len());
                return Ok(());
            }
            2 => bump(&self.stats.sim_duplicated, 1),
            _ => {}
        }
        let delays = &fate.delays[..fate.copies];
        match &sim.delayer {
            Some(delayer) => self.enqueue(delayer, datagram, delays),
            None => self.send_copies(datagram, fate.copies),
        }
    }

    fn send_copies(&self, datagram: &[u8], copies: usize) -> io::Result<()> {
        let mut result = Ok(());
        for _ in 0..copies {
            let sent = send_now(&self.socket, self.group, datagram, &self.stats);
            if result.is_ok() {
                result = sent;
            }
        }
        result
    }

    fn enqueue(&self, delayer: &Delayer, datagram: &[u8], delays: &[Duration]) -> io::Result<()> {
        let now = Instant::now();
        for delay in delays {
            // Only an absurd delay overflows `Instant`; the CLI caps delays far below that.
            let due = now.checked_add(*delay).unwrap_or(now);
            if !delayer.queue.push(due, datagram.to_vec()) {
                return Err(shut_down_error());
            }
        }
        Ok(())
    }

    /// The live counters.
    pub fn stats(&self) -> &NetStats {
        &self.stats
    }

    /// The live counters, as a handle that outlives the transport.
    pub fn stats_handle(&self) -> Arc<NetStats> {
        Arc::clone(&self.stats)
    }

    /// Stops sending: delayed datagrams due within ~50 ms are still sent, later ones are
    /// dropped (counted in `sim_dropped`), and the delay thread is joined. Later sends fail;
    /// `recv` keeps working. Idempotent; also run on drop.
    pub fn shutdown(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(delayer) = self.sim.as_ref().and_then(|s| s.delayer.as_ref()) else {
            return;
        };
        let dropped = delayer.queue.close(Instant::now() + SHUTDOWN_FLUSH);
        if dropped > 0 {
            bump(&self.stats.sim_dropped, dropped);
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
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("cfg", &self.cfg)
            .field("stats", &self.stats.snapshot())
            .finish_non_exhaustive()
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn shut_down_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "transport is shut down")
}

/// Sends one datagram now, counting success or failure.
fn send_now(socket: &UdpSocket, to: SocketAddr, bytes: &[u8], stats: &NetStats) -> io::Result<()> {
    match socket.send_to(bytes, to) {
        Ok(_) => {
            bump(&stats.sent, 1);
            Ok(())
        }
        Err(e) => {
            bump(&stats.send_errors, 1);
            log::debug!("send of {} bytes to {to} failed: {e}", bytes.len());
            Err(e)
        }
    }
}

/// Creates, configures and binds the multicast socket.
fn open_socket(cfg: &NetConfig) -> Result<UdpSocket, NetError> {
    let at = format!("{}:{} via {}", cfg.group, cfg.port, cfg.interface);
    let ctx = |what: String| move |e| NetError::new(what, e);
    if !cfg.group.is_multicast() {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "not a multicast address");
        return Err(NetError::new(format!("group {}", cfg.group), e));
    }
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(ctx(format!("create a UDP socket for {at}")))?;
    set_reuse(&socket).map_err(ctx(format!("allow port sharing for {at}")))?;
    // Best effort: the defaults work, big buffers just lose less under bursts.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    let bind_addr = SocketAddrV4::new(bind_ip(cfg.group), cfg.port);
    socket
        .bind(&SockAddr::from(bind_addr))
        .map_err(ctx(format!("bind {bind_addr} for {at}")))?;
    socket
        .join_multicast_v4(&cfg.group, &cfg.interface)
        .map_err(ctx(format!("join {} on {}", cfg.group, cfg.interface)))?;
    socket
        .set_multicast_if_v4(&cfg.interface)
        .map_err(ctx(format!("send multicast via {}", cfg.interface)))?;
    socket
        .set_multicast_ttl_v4(cfg.ttl)
        .map_err(ctx(format!("set multicast TTL {} for {at}", cfg.ttl)))?;
    socket
        .set_multicast_loop_v4(true)
        .map_err(ctx(format!("enable multicast loopback for {at}")))?;
    Ok(socket.into())
}

/// SO_REUSEADDR, and SO_REUSEPORT where it exists: several nodes on one host share the port,
/// and on Linux every socket joined to the group gets its own copy of each datagram.
fn set_reuse(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_address(true)?;
    #[cfg(all(
        unix,
        not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
    ))]
    socket.set_reuse_port(true)?;
    Ok(())
}

/// Binding to the group address (where the OS allows it) keeps out datagrams sent to other
/// groups on the same port; Windows only accepts the wildcard address.
fn bind_ip(group: Ipv4Addr) -> Ipv4Addr {
    if cfg!(windows) {
        Ipv4Addr::UNSPECIFIED
    } else {
        group
    }
}

/// Seeds the RNG and, when `--delay` is set, starts the delay thread.
fn start_simulator(
    cfg: &NetConfig,
    socket: &UdpSocket,
    group: SocketAddr,
    stats: &Arc<NetStats>,
) -> Result<Simulator, NetError> {
    let seed = match cfg.sim.seed {
        Some(seed) => seed,
        None => entropy_seed()?,
    };
    log::info!("simulated network on {cfg}: {:?}, seed {seed}", cfg.sim);
    let delayer = match cfg.sim.delay {
        Some(_) => Some(start_delayer(cfg, socket, group, stats)?),
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
    group: SocketAddr,
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
            while let Some(bytes) = q.next_due() {
                // Errors are counted and logged in `send_now`; UDP is lossy anyway.
                let _ = send_now(&sender, group, &bytes, &st);
            }
        })
        .map_err(|e| NetError::new(format!("start the delay thread for {cfg}"), e))?;
    Ok(Delayer {
        queue,
        thread: Mutex::new(Some(thread)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Receive buffer size that callers use, so oversize datagrams are seen whole.
    const BUF: usize = 64 * 1024;

    fn open(port: u16, sim: SimConfig) -> Transport {
        let cfg = NetConfig {
            sim,
            ..NetConfig::loopback(port)
        };
        Transport::open(&cfg).expect("open transport on loopback")
    }

    fn sim(f: impl FnOnce(&mut SimConfig)) -> SimConfig {
        let mut cfg = SimConfig {
            seed: Some(7),
            ..SimConfig::default()
        };
        f(&mut cfg);
        cfg
    }

    /// One test run. Every datagram carries the run's random tag and receiving ignores
    /// datagrams without it, so another run of the same test (same port, e.g. a second
    /// `cargo test` at the same time) cannot disturb this one.
    struct Run {
        tag: [u8; 8],
    }

    impl Run {
        fn new() -> Run {
            Run {
                tag: rand::random::<u64>().to_le_bytes(),
            }
        }

        fn send(&self, t: &Transport, body: &[u8]) {
            t.send(&[&self.tag[..], body].concat()).expect("send");
        }

        /// Receives until `done(bodies so far)` or the deadline; returns the bodies of this
        /// run in arrival order, with arrival times.
        fn recv_until(
            &self,
            t: &Transport,
            deadline: Duration,
            mut done: impl FnMut(&[(Vec<u8>, Instant)]) -> bool,
        ) -> Vec<(Vec<u8>, Instant)> {
            let end = Instant::now() + deadline;
            let mut got = Vec::new();
            let mut buf = vec![0u8; BUF];
            while !done(&got) {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                if let Some((n, _)) = t.recv(&mut buf, Some(end - now)).expect("recv") {
                    if let Some(body) = buf[..n].strip_prefix(&self.tag[..]) {
                        got.push((body.to_vec(), Instant::now()));
                    }
                }
            }
            got
        }

        /// Sends `marker` from `t` and receives until it comes back; returns the bodies that
        /// arrived before it. Everything sent inline before the marker is queued before it.
        fn recv_until_marker(&self, t: &Transport) -> Vec<Vec<u8>> {
            const MARKER: &[u8] = b"marker";
            self.send(t, MARKER);
            let got = self.recv_until(t, Duration::from_secs(5), |g| {
                g.last().is_some_and(|(d, _)| d == MARKER)
            });
            assert!(got.last().is_some_and(|(d, _)| d == MARKER), "marker lost");
            got.into_iter()
                .map(|(d, _)| d)
                .filter(|d| d != MARKER)
                .collect()
        }
    }

    #[test]
    fn two_nodes_exchange_both_ways_and_hear_themselves() {
        let run = Run::new();
        let a = open(41001, SimConfig::default());
        let b = open(41001, SimConfig::default());
        run.send(&a, b"from-a");
        run.send(&b, b"from-b");
        for t in [&a, &b] {
            let got = run.recv_until(t, Duration::from_secs(5), |g| g.len() >= 2);
            let mut got: Vec<Vec<u8>> = got.into_iter().map(|(d, _)| d).collect();
            got.sort();
            assert_eq!(got, vec![b"from-a".to_vec(), b"from-b".to_vec()]);
        }
        let s = a.stats().snapshot();
        assert_eq!(s.sent, 1);
        assert!(s.received >= 2, "{s:?}");
    }

    #[test]
    fn loss_one_delivers_nothing_and_counts_drops() {
        let run = Run::new();
        let a = open(41002, sim(|s| s.loss = 1.0));
        let rx = open(41002, SimConfig::default());
        for i in 0..20u8 {
            run.send(&a, &[i]);
        }
        assert!(run.recv_until_marker(&rx).is_empty());
        let s = a.stats().snapshot();
        assert_eq!((s.sent, s.sim_dropped), (0, 20));
    }

    #[test]
    fn dup_one_delivers_everything_twice() {
        let run = Run::new();
        let a = open(41003, sim(|s| s.dup = 1.0));
        let rx = open(41003, SimConfig::default());
        for i in 0..10u8 {
            run.send(&a, &[i]);
        }
        let mut got = run.recv_until_marker(&rx);
        got.sort();
        let want: Vec<Vec<u8>> = (0..10u8).flat_map(|i| [vec![i], vec![i]]).collect();
        assert_eq!(got, want);
        let s = a.stats().snapshot();
        assert_eq!((s.sent, s.sim_duplicated, s.sim_dropped), (20, 10, 0));
    }

    #[test]
    fn delay_delivers_everything_late_and_reordered() {
        let run = Run::new();
        let (min, max) = (Duration::from_millis(20), Duration::from_millis(60));
        let a = open(41004, sim(|s| s.delay = Some((min, max))));
        let rx = open(41004, SimConfig::default());
        let mut sent_at = Vec::new();
        for i in 0..50u8 {
            sent_at.push(Instant::now());
            run.send(&a, &[i]);
        }
        let got = run.recv_until(&rx, Duration::from_secs(5), |g| g.len() >= 50);
        let order: Vec<u8> = got.iter().map(|(d, _)| d[0]).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<u8>>(), "all arrive once");
        for (d, at) in &got {
            let i = usize::from(d[0]);
            assert!(*at - sent_at[i] >= min, "datagram {i} early");
        }
        let reordered = order.windows(2).any(|w| w[0] > w[1]);
        assert!(reordered, "no reordering: {order:?}");
        // The delay thread counts a send after the kernel took it: join it before reading.
        a.shutdown();
        assert_eq!(a.stats().snapshot().sent, 50);
    }

    #[test]
    fn recv_times_out_with_none() {
        let t = open(41005, SimConfig::default());
        let mut buf = vec![0u8; BUF];
        let start = Instant::now();
        let timeout = Duration::from_millis(100);
        // Only a concurrent run of this test could send on this port; skip its datagrams.
        while t.recv(&mut buf, Some(timeout)).expect("recv").is_some() {}
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(90),
            "returned after {waited:?}"
        );
        assert!(waited < Duration::from_secs(2), "returned after {waited:?}");
        let got = t
            .recv(&mut buf, Some(Duration::ZERO))
            .expect("zero timeout");
        assert!(got.is_none());
    }

    #[test]
    fn shutdown_flushes_what_is_due_and_drops_the_rest() {
        let run = Run::new();
        let fixed = |d: Duration| sim(|s| s.delay = Some((d, d)));
        let a = open(41006, fixed(Duration::from_millis(5)));
        let b = open(41006, fixed(Duration::from_secs(30)));
        let rx = open(41006, SimConfig::default());
        run.send(&a, b"soon");
        run.send(&b, b"late");
        let start = Instant::now();
        a.shutdown();
        b.shutdown();
        assert!(start.elapsed() < Duration::from_secs(2), "shutdown waited");
        assert_eq!(run.recv_until_marker(&rx), vec![b"soon".to_vec()]);
        assert_eq!(b.stats().snapshot().sim_dropped, 1);
        assert!(a.send(b"after").is_err());
        assert!(b.send(b"after").is_err());
    }

    #[test]
    fn open_rejects_a_unicast_group_with_context() {
        let cfg = NetConfig {
            group: Ipv4Addr::new(10, 0, 0, 1),
            ..NetConfig::loopback(41007)
        };
        let err = Transport::open(&cfg).expect_err("unicast group");
        assert!(err.to_string().contains("10.0.0.1"), "{err}");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn transport_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Transport>();
    }
}
