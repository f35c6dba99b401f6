//! Transport: the UDP multicast socket, the node's own socket, and the simulated network.
//!
//! [`Transport::open`] sets up two sockets with socket2, for an IPv4 or an IPv6 group: the
//! group socket (reuse address and port so that several nodes on one host share the port,
//! join the group on the chosen interface, large buffers), which receives the group's
//! datagrams, and the node's own socket (the interface and a port the kernel picks), which
//! sends every datagram, to the group or to one node, and receives those sent to this node
//! alone; [`iface`] says which interface `--interface` names. [`Transport::send`] and
//! [`Transport::send_to`] apply the simulated network of DESIGN §3 (`--delay`, `--loss`,
//! `--dup`, `--seed`) to every outgoing datagram; delayed copies are sent by a background
//! thread, each with its own random delay, so arrivals reorder.
//!
//! Multicast loopback is on, so a node receives its own datagrams: callers filter by sender id.
//!
//! In unicast mode (`--peer`, [`UnicastConfig`]) a node has one socket, bound to the interface
//! and the port it listens on; there is no group, and the caller sends each datagram meant for
//! the group to every node that needs it ([`crate::protocol::peers`]).
//!
//! What this module must not do: no protocol logic and no decoding here. It moves opaque byte
//! strings; it never looks inside a datagram.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub mod iface;
pub mod peer;
pub mod seal;
pub mod sim;
pub mod socket;

pub use iface::Local;
pub use sim::SimConfig;
use sim::{start_simulator, Simulator};
pub use socket::{open_direct_socket, open_socket, open_unicast_socket};

/// `SO_RCVTIMEO` cannot be zero (zero means "block forever"), so shorter timeouts become this.
const MIN_RECV_TIMEOUT: Duration = Duration::from_micros(1);

/// Where and how to reach the group.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Multicast group to join and send to, IPv4 or IPv6.
    pub group: IpAddr,
    /// UDP port, shared by every node of the group.
    pub port: u16,
    /// Local interface to join and send on (`127.0.0.1` keeps the chat on this host), of the
    /// group's family.
    pub interface: Local,
    /// Multicast TTL (IPv6: hop limit): 0 stays on the host, 1 on the LAN segment.
    pub ttl: u32,
    /// Simulated network for outgoing datagrams; off by default.
    pub sim: SimConfig,
    /// `--peer`: unicast mode, no multicast at all; `None` for multicast.
    pub unicast: Option<UnicastConfig>,
}

/// Unicast mode (`--peer`): where the node starts, and where it listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnicastConfig {
    /// The `--peer` addresses, resolved, of the interface's family: servers, or any node
    /// already in the chat.
    pub peers: Vec<SocketAddr>,
    /// Each `--peer` as the user wrote it, for messages.
    pub named: Vec<String>,
    /// The port this node listens on, on the interface (0: one the system picks).
    pub port: u16,
}

impl NetConfig {
    /// Group `224.1.1.1` on `port` via `127.0.0.1`, TTL 1, no simulation: handy for tests.
    pub fn loopback(port: u16) -> NetConfig {
        NetConfig {
            group: IpAddr::V4(Ipv4Addr::new(224, 1, 1, 1)),
            port,
            interface: Local::v4(Ipv4Addr::LOCALHOST),
            ttl: 1,
            sim: SimConfig::default(),
            unicast: None,
        }
    }
}

impl fmt::Display for NetConfig {
    /// `224.1.1.1:5007 via 127.0.0.1` (or `[ff02::114]:5007 via eth0 (fe80::1)`), the form
    /// used in user-facing messages; in unicast mode `unicast on 127.0.0.1 port 5007` (or
    /// `unicast via 127.0.0.1` where the system picks the port).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.unicast {
            Some(u) if u.port != 0 => {
                return write!(f, "unicast on {} port {}", self.interface, u.port)
            }
            Some(_) => return write!(f, "unicast via {}", self.interface),
            None => {}
        }
        write!(
            f,
            "{} via {}",
            SocketAddr::new(self.group, self.port),
            self.interface
        )
    }
}

impl NetConfig {
    /// Where datagrams go: the group and port, and for IPv6 the interface as the scope (a
    /// link-local group means nothing without one).
    pub fn destination(&self) -> SocketAddr {
        match self.group {
            IpAddr::V4(group) => SocketAddr::new(IpAddr::V4(group), self.port),
            IpAddr::V6(group) => {
                SocketAddr::V6(SocketAddrV6::new(group, self.port, 0, self.interface.index))
            }
        }
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

/// Which of a node's two sockets to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbox {
    /// The group socket: datagrams multicast to the group.
    Group,
    /// The node's own socket: datagrams sent to this node alone.
    Direct,
}

/// The sockets of one node, with its simulated network. `Sync`: share it with `Arc`.
pub struct Transport {
    /// Joined to the group; receives only. `None` in unicast mode.
    socket: Option<UdpSocket>,
    /// The node's own address; sends everything.
    direct: UdpSocket,
    /// Destination of every datagram: the group and port.
    group: SocketAddr,
    cfg: NetConfig,
    stats: Arc<NetStats>,
    /// `None` when the simulation is off: datagrams go straight to the socket.
    sim: Option<Simulator>,
    /// Set by [`Transport::shutdown`]; later sends fail.
    closed: AtomicBool,
    /// The receive timeout each socket has now (group, own), in nanoseconds, `u64::MAX` for
    /// none set: a receive loop asks the same every time, and setting it costs a system call.
    timeouts: [AtomicU64; 2],
}

impl Transport {
    /// Opens the multicast socket and joins the group (see the module docs). Errors say which
    /// group, port and interface, and which step failed.
    pub fn open(cfg: &NetConfig) -> Result<Transport, NetError> {
        let (socket, direct) = match &cfg.unicast {
            None => (Some(open_socket(cfg)?), open_direct_socket(cfg)?),
            Some(unicast) => (None, open_unicast_socket(cfg, unicast.port)?),
        };
        let stats = Arc::new(NetStats::default());
        let group = cfg.destination();
        let sim = if cfg.sim.is_off() {
            None
        } else {
            Some(start_simulator(cfg, &direct, &stats)?)
        };
        Ok(Transport {
            socket,
            direct,
            group,
            cfg: cfg.clone(),
            stats,
            sim,
            closed: AtomicBool::new(false),
            timeouts: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
        })
    }

    /// The configuration this transport was opened with.
    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// This node's own address: where datagrams for it alone go, and where all of its
    /// datagrams come from.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.direct.local_addr()
    }

    /// Receives one datagram from the group (see [`Transport::recv_from`]).
    pub fn recv(
        &self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> io::Result<Option<(usize, SocketAddr)>> {
        self.recv_from(Inbox::Group, buf, timeout)
    }

    /// Receives one datagram from `inbox` into `buf`, blocking for at most `timeout` (`None`
    /// = forever), with the address it came from. Returns `Ok(None)` on timeout (or when
    /// interrupted by a signal). A datagram longer than `buf` is truncated, so give a 64 KiB
    /// buffer to see oversize datagrams whole. Our own multicasts come back too (multicast
    /// loopback). Use a bounded timeout in a loop that checks for shutdown: closing the
    /// transport does not wake a blocked receive.
    pub fn recv_from(
        &self,
        inbox: Inbox,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> io::Result<Option<(usize, SocketAddr)>> {
        let socket = match inbox {
            Inbox::Group => self.socket.as_ref().ok_or_else(no_group_error)?,
            Inbox::Direct => &self.direct,
        };
        let timeout = timeout.map(|t| t.max(MIN_RECV_TIMEOUT));
        let nanos = timeout.map_or(u64::MAX - 1, |t| {
            u64::try_from(t.as_nanos()).unwrap_or(u64::MAX - 1)
        });
        let set = &self.timeouts[inbox as usize];
        if set.load(Ordering::Relaxed) != nanos {
            socket.set_read_timeout(timeout)?;
            set.store(nanos, Ordering::Relaxed);
        }
        match socket.recv_from(buf) {
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
    /// In unicast mode there is no group: an error.
    pub fn send(&self, datagram: &[u8]) -> io::Result<()> {
        if self.socket.is_none() {
            return Err(no_group_error());
        }
        self.send_to(datagram, self.group)
    }

    /// Whether this transport is in unicast mode (`--peer`): one socket, no group.
    pub fn is_unicast(&self) -> bool {
        self.socket.is_none()
    }

    /// Sends one datagram to one address (another node's own socket), like
    /// [`Transport::send`].
    pub fn send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(shut_down_error());
        }
        let Some(sim) = &self.sim else {
            return send_now(&self.direct, to, datagram, &self.stats);
        };
        sim.send(&self.direct, to, datagram, &self.stats)
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
        if let Some(sim) = &self.sim {
            sim.shutdown(&self.stats);
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

fn no_group_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "unicast mode: there is no group",
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

#[cfg(test)]
mod tests;
