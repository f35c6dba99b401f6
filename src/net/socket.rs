//! The multicast socket, set up with socket2: address and port shared by every node on the
//! host, the group joined on the chosen interface, TTL, multicast loopback, large buffers.
//! Benchmarks and tests that need a socket like the chat's open it here too.
//!
//! No datagram ever passes through this module; it only configures sockets.

use super::{NetConfig, NetError};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};

/// Socket buffer size we ask for; the kernel may grant less (we ignore failure).
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Creates, configures and binds a multicast socket joined to `cfg`'s group.
pub fn open_socket(cfg: &NetConfig) -> Result<UdpSocket, NetError> {
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
    set_multicast_sending(&socket, cfg)?;
    Ok(socket.into())
}

/// Creates a node's own socket: bound to the interface on a port the kernel picks, so that a
/// datagram sent to its address reaches this node alone, and set up to multicast on the
/// interface too (every datagram a node sends leaves from here, which is how the others learn
/// its address).
pub fn open_direct_socket(cfg: &NetConfig) -> Result<UdpSocket, NetError> {
    let at = format!("{} for {}:{}", cfg.interface, cfg.group, cfg.port);
    let ctx = |what: String| move |e| NetError::new(what, e);
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(ctx(format!("create a UDP socket on {at}")))?;
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    let bind_addr = SocketAddrV4::new(cfg.interface, 0);
    socket
        .bind(&SockAddr::from(bind_addr))
        .map_err(ctx(format!("bind {bind_addr} on {at}")))?;
    set_multicast_sending(&socket, cfg)?;
    Ok(socket.into())
}

/// The interface, TTL and loopback of multicast sent from `socket`.
fn set_multicast_sending(socket: &Socket, cfg: &NetConfig) -> Result<(), NetError> {
    let at = format!("{}:{} via {}", cfg.group, cfg.port, cfg.interface);
    let ctx = |what: String| move |e| NetError::new(what, e);
    socket
        .set_multicast_if_v4(&cfg.interface)
        .map_err(ctx(format!("send multicast via {}", cfg.interface)))?;
    socket
        .set_multicast_ttl_v4(cfg.ttl)
        .map_err(ctx(format!("set multicast TTL {} for {at}", cfg.ttl)))?;
    socket
        .set_multicast_loop_v4(true)
        .map_err(ctx(format!("enable multicast loopback for {at}")))
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
