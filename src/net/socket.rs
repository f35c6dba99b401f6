//! The multicast socket, set up with socket2: address and port shared by every node on the
//! host, the group (IPv4 or IPv6) joined on the chosen interface, TTL, multicast loopback,
//! large buffers.
//! Benchmarks and tests that need a socket like the chat's open it here too.
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
    let domain = match cfg.group {
        IpAddr::V4(_) => Domain::IPV4,
        IpAddr::V6(_) => Domain::IPV6,
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
        .map_err(ctx(format!("create a UDP socket for {at}")))?;
    set_reuse(&socket).map_err(ctx(format!("allow port sharing for {at}")))?;
    // Best effort: the defaults work, big buffers just lose less under bursts.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    let bind_addr = bind_addr(cfg);
    socket
        .bind(&SockAddr::from(bind_addr))
        .map_err(ctx(format!("bind {bind_addr} for {at}")))?;
    match (cfg.group, cfg.interface.addr) {
        (IpAddr::V4(group), IpAddr::V4(local)) => join_v4(&socket, group, local, cfg.ttl),
        (IpAddr::V6(group), _) => join_v6(&socket, group, cfg.interface.index, cfg.ttl),
        (IpAddr::V4(_), IpAddr::V6(_)) => Err((
            "join an IPv4 group".to_string(),
            io::Error::new(io::ErrorKind::InvalidInput, "the interface is IPv6"),
        )),
    }
    .map_err(|(what, e)| NetError::new(what, e))?;
    Ok(socket.into())
}

/// IPv4: join and send by the interface's address.
fn join_v4(
    socket: &Socket,
    group: Ipv4Addr,
    local: Ipv4Addr,
    ttl: u32,
) -> Result<(), (String, io::Error)> {
    let step = |what: String| move |e| (what, e);
    socket
        .join_multicast_v4(&group, &local)
        .map_err(step(format!("join {group} on {local}")))?;
    socket
        .set_multicast_if_v4(&local)
        .map_err(step(format!("send multicast via {local}")))?;
    socket
        .set_multicast_ttl_v4(ttl)
        .map_err(step(format!("set multicast TTL {ttl}")))?;
    socket
        .set_multicast_loop_v4(true)
        .map_err(step("enable multicast loopback".to_string()))
}

/// IPv6: join and send by the interface's index (an IPv6 address does not name an interface:
/// the same link-local address may sit on several).
fn join_v6(
    socket: &Socket,
    group: Ipv6Addr,
    index: u32,
    hops: u32,
) -> Result<(), (String, io::Error)> {
    let step = |what: String| move |e| (what, e);
    socket
        .join_multicast_v6(&group, index)
        .map_err(step(format!("join {group} on interface index {index}")))?;
    socket
        .set_multicast_if_v6(index)
        .map_err(step(format!("send multicast via interface index {index}")))?;
    socket
        .set_multicast_hops_v6(hops)
        .map_err(step(format!("set multicast hop limit {hops}")))?;
    socket
        .set_multicast_loop_v6(true)
        .map_err(step("enable multicast loopback".to_string()))
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
