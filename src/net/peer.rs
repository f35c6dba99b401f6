//! `--peer HOST:PORT`: what the user wrote ([`PeerSpec`], checked when the flag is parsed)
//! and the socket addresses it resolves to for the interface's family ([`resolve`]).
//!
//! What this module must not do: send anything. Resolving a host name may ask the system's
//! resolver, and that is all.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

use super::iface::is_link_local;
use super::Local;

/// One `--peer`, as written: a host name or an address, and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    /// A host name, an IPv4 address, or an IPv6 address (without its brackets).
    pub host: String,
    pub port: u16,
}

impl FromStr for PeerSpec {
    type Err = String;

    /// `host:5007`, `10.0.0.1:5007`, `[fd00::1]:5007`.
    fn from_str(s: &str) -> Result<PeerSpec, String> {
        let s = s.trim();
        let (host, port) = match s.strip_prefix('[') {
            Some(rest) => rest
                .split_once("]:")
                .ok_or_else(|| format!("{s}: expected [IPV6]:PORT, such as [fd00::1]:5007"))?,
            None => s
                .rsplit_once(':')
                .ok_or_else(|| format!("{s}: expected HOST:PORT, such as 10.0.0.1:5007"))?,
        };
        if host.contains(':') && !s.starts_with('[') {
            return Err(format!(
                "{s}: write an IPv6 peer in brackets, such as [fd00::1]:5007"
            ));
        }
        if host.is_empty() {
            return Err(format!("{s}: the host is missing"));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("{s}: the port must be 1 to 65535"))?;
        Ok(PeerSpec {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for PeerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "[{}]:{}", self.host, self.port),
            false => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl PeerSpec {
    /// The family of the address, if the host is one (not a name).
    pub fn literal(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// Resolves every peer to addresses of `interface`'s family (a link-local IPv6 address gets
/// the interface as its scope), or says which one does not resolve and why.
pub fn resolve(peers: &[PeerSpec], interface: &Local) -> Result<Vec<SocketAddr>, String> {
    let v6 = interface.addr.is_ipv6();
    let family = if v6 { "IPv6" } else { "IPv4" };
    let mut out = Vec::new();
    for peer in peers {
        let found = (peer.host.as_str(), peer.port)
            .to_socket_addrs()
            .map_err(|e| format!("--peer {peer} does not resolve: {e}"))?;
        // One address per peer: the resolver's first choice of the family.
        let addr = match found.into_iter().find(|a| a.is_ipv6() == v6) {
            Some(SocketAddr::V6(a)) if a.scope_id() != 0 => SocketAddr::V6(a),
            Some(addr) => scoped(addr, interface.index),
            None => {
                return Err(format!(
                    "--peer {peer} has no {family} address, and --interface {interface} is \
                     {family}"
                ))
            }
        };
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    Ok(out)
}

/// A link-local IPv6 address with interface `index` as its scope (another host's scope, or
/// none, means nothing here); any other address as it is.
pub fn scoped(addr: SocketAddr, index: u32) -> SocketAddr {
    match addr {
        SocketAddr::V6(mut a) if is_link_local(IpAddr::V6(*a.ip())) => {
            a.set_scope_id(index);
            SocketAddr::V6(a)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn spec(s: &str) -> Result<PeerSpec, String> {
        s.parse()
    }

    #[test]
    fn peers_parse_with_a_port_and_ipv6_in_brackets() {
        let p = spec("10.0.0.1:5007").expect("v4");
        assert_eq!((p.host.as_str(), p.port), ("10.0.0.1", 5007));
        let p = spec("[fd00::1]:6000").expect("v6");
        assert_eq!((p.host.as_str(), p.port), ("fd00::1", 6000));
        assert_eq!(p.to_string(), "[fd00::1]:6000");
        assert_eq!(spec("chat.example:5007").expect("name").literal(), None);
        for bad in [
            "10.0.0.1",
            "fd00::1:5007",
            ":5007",
            "h:0",
            "h:x",
            "[fd00::1]5007",
        ] {
            assert!(spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolution_keeps_the_interface_family_and_names_a_bad_peer() {
        let v4 = Local::v4(Ipv4Addr::LOCALHOST);
        let got = resolve(&[spec("127.0.0.1:5007").expect("spec")], &v4).expect("resolves");
        assert_eq!(got, ["127.0.0.1:5007".parse().expect("addr")]);
        let err = resolve(&[spec("[::1]:5007").expect("spec")], &v4).expect_err("family");
        assert!(err.contains("has no IPv4 address"), "{err}");
        let bad = spec("no-such-host.invalid:5007").expect("spec");
        let err = resolve(&[bad], &v4).expect_err("does not resolve");
        assert!(
            err.starts_with("--peer no-such-host.invalid:5007 does not resolve"),
            "{err}"
        );
    }
}
