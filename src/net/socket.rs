//! The sockets, set up with socket2 for an IPv4 or an IPv6 group: the group socket (address
//! and port shared by every node on the host, the group joined on the chosen interface) and a
//! node's own socket (the interface, a port the kernel picks); both multicast on the
//! interface with the TTL and loopback on, and ask for large buffers. Benchmarks and tests that
//! need a socket like the chat's open it here too.
//!
//! In unicast mode a node has one socket instead ([`open_unicast_socket`]).
//!
//! No datagram ever passes through this module; it only configures sockets.

use super::{NetConfig, NetError};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};

/// Socket buffer size we ask for; the kernel may grant less (we ignore failure).
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Creates, configures and binds a multicast socket joined to `cfg`'s group.
pub fn open_socket(cfg: &NetConfig) -> Result<UdpSocket, NetError> {
    let at = cfg.to_string();
    let ctx = |what: String| move |e| NetError::new(what, e);
    if !cfg.group.is_multicast() {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "not a multicast address");
        return Err(NetError::new(format!("group {}", cfg.group), e));
    }
    let socket = new_socket(cfg).map_err(ctx(format!("create a UDP socket for {at}")))?;
    set_reuse(&socket).map_err(ctx(format!("allow port sharing for {at}")))?;
    let bind_addr = bind_addr(cfg);
    socket
        .bind(&SockAddr::from(bind_addr))
        .map_err(ctx(format!("bind {bind_addr} for {at}")))?;
    join(&socket, cfg)?;
    set_multicast_sending(&socket, cfg)?;
    Ok(socket.into())
}

/// Creates a node's own socket: bound to the interface on a port the kernel picks, so that a
/// datagram sent to its address reaches this node alone, and set up to multicast on the
/// interface too (every datagram a node sends leaves from here, which is how the others learn
/// its address).
pub fn open_direct_socket(cfg: &NetConfig) -> Result<UdpSocket, NetError> {
    let at = format!("{} for {}", cfg.interface, cfg.destination());
    let ctx = |what: String| move |e| NetError::new(what, e);
    let socket = new_socket(cfg).map_err(ctx(format!("create a UDP socket on {at}")))?;
    // A link-local IPv6 address means nothing without its interface: bind with it as scope.
    let bind_addr = match cfg.interface.addr {
        IpAddr::V4(local) => SocketAddr::V4(SocketAddrV4::new(local, 0)),
        IpAddr::V6(local) => SocketAddr::V6(SocketAddrV6::new(local, 0, 0, cfg.interface.index)),
    };
    socket
        .bind(&SockAddr::from(bind_addr))
        .map_err(ctx(format!("bind {bind_addr} on {at}")))?;
    set_multicast_sending(&socket, cfg)?;
    Ok(socket.into())
}

/// A node's only socket in unicast mode (`--peer`): bound to the interface on `port` (0: one
/// the kernel picks), of the interface's family, with large buffers. It sends everything and
/// receives everything.
pub fn open_unicast_socket(cfg: &NetConfig, port: u16) -> Result<UdpSocket, NetError> {
    let bind_addr = match cfg.interface.addr {
        IpAddr::V4(local) => SocketAddr::V4(SocketAddrV4::new(local, port)),
        IpAddr::V6(local) => SocketAddr::V6(SocketAddrV6::new(local, port, 0, cfg.interface.index)),
    };
    let socket = buffered_socket(Domain::for_address(bind_addr))
        .map_err(|e| NetError::new(format!("create a UDP socket on {bind_addr}"), e))?;
    socket.bind(&SockAddr::from(bind_addr)).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::AddrInUse => " (is another server or node using that port?)",
            _ => "",
        };
        NetError::new(format!("bind {bind_addr}{hint}"), e)
    })?;
    Ok(socket.into())
}

/// A UDP socket of the group's family, with large buffers.
fn new_socket(cfg: &NetConfig) -> io::Result<Socket> {
    let domain = match cfg.group {
        IpAddr::V4(_) => Domain::IPV4,
        IpAddr::V6(_) => Domain::IPV6,
    };
    buffered_socket(domain)
}

/// A UDP socket of `domain` with large buffers.
fn buffered_socket(domain: Domain) -> io::Result<Socket> {
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the defaults work, big buffers just lose less under bursts.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    Ok(socket)
}

/// Joins the group: IPv4 on the interface's address, IPv6 on its index (an IPv6 address does
/// not name an interface: one link-local address may sit on several).
fn join(socket: &Socket, cfg: &NetConfig) -> Result<(), NetError> {
    let joined = match (cfg.group, cfg.interface.addr) {
        (IpAddr::V4(group), IpAddr::V4(local)) => socket.join_multicast_v4(&group, &local),
        (IpAddr::V6(group), _) => socket.join_multicast_v6(&group, cfg.interface.index),
        (IpAddr::V4(_), IpAddr::V6(_)) => Err(family_mismatch()),
    };
    joined.map_err(|e| NetError::new(format!("join {} on {}", cfg.group, cfg.interface), e))
}

/// The interface, TTL (IPv6: hop limit) and loopback of multicast sent from `socket`.
fn set_multicast_sending(socket: &Socket, cfg: &NetConfig) -> Result<(), NetError> {
    let (iface, ttl) = (&cfg.interface, cfg.ttl);
    let step = |what: String| move |e| NetError::new(what, e);
    match (cfg.group, iface.addr) {
        (IpAddr::V4(_), IpAddr::V4(local)) => socket.set_multicast_if_v4(&local),
        (IpAddr::V6(_), _) => socket.set_multicast_if_v6(iface.index),
        (IpAddr::V4(_), IpAddr::V6(_)) => Err(family_mismatch()),
    }
    .map_err(step(format!("send multicast via {iface}")))?;
    match cfg.group {
        IpAddr::V4(_) => socket.set_multicast_ttl_v4(ttl),
        IpAddr::V6(_) => socket.set_multicast_hops_v6(ttl),
    }
    .map_err(step(format!("set multicast TTL {ttl} for {cfg}")))?;
    match cfg.group {
        IpAddr::V4(_) => socket.set_multicast_loop_v4(true),
        IpAddr::V6(_) => socket.set_multicast_loop_v6(true),
    }
    .map_err(step(format!("enable multicast loopback for {cfg}")))
}

/// An IPv4 group with an IPv6 interface: the command line refuses it, so only code can ask.
fn family_mismatch() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "the interface is IPv6")
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
/// groups on the same port; Windows only accepts the wildcard address. An IPv6 group is bound
/// with the interface as its scope, which a link-local group needs.
fn bind_addr(cfg: &NetConfig) -> SocketAddr {
    match (cfg.group, cfg!(windows)) {
        (IpAddr::V4(_), true) => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, cfg.port)),
        (IpAddr::V6(_), true) => {
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, cfg.port, 0, 0))
        }
        (_, false) => cfg.destination(),
    }
}
