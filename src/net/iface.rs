//! Local interfaces: what `--interface` may name, and which interface it means.
//!
//! A person knows the name of their network interface (`eth0`, `wlan0`, `lo`) more often than
//! its address, and a DHCP address changes, so `--interface` takes either. [`resolve`] is a
//! pure function from what the user typed ([`InterfaceSpec`]), the group's address family and
//! a list of the host's interfaces ([`IfaceAddr`]) to the interface to use ([`Local`]); only
//! [`list`] asks the OS (getifaddrs, through the `if-addrs` crate), so tests resolve against a
//! fake list.
//!
//! What this module must not do: open sockets, or decide exit codes (a [`ResolveError`] is a
//! usage error; the caller exits 2).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// One address of one interface of this host, as the OS lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceAddr {
    /// The interface's name, e.g. `eth0`.
    pub name: String,
    /// The interface's index: IPv6 joins and sends by index, not by address.
    pub index: u32,
    /// One address of it (an interface with several has one entry per address).
    pub addr: IpAddr,
}

/// The interface a node joins the group on and sends through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Local {
    /// Its name, when the user gave one (or the IPv6 scope named it); shown beside the address.
    pub name: Option<String>,
    /// Its address, of the group's family. IPv4 joins and sends by this address.
    pub addr: IpAddr,
    /// Its index, for IPv6 (0 for IPv4, which does not use it).
    pub index: u32,
}

impl Local {
    /// An IPv4 interface given by address, such as the default `127.0.0.1`.
    pub fn v4(addr: Ipv4Addr) -> Local {
        Local {
            name: None,
            addr: IpAddr::V4(addr),
            index: 0,
        }
    }
}

impl fmt::Display for Local {
    /// `eth0 (192.168.1.23)` when the name is known, else the address alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} ({})", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// What `--interface` says: a name, or an address (IPv6 with an optional `%scope`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterfaceSpec {
    /// An interface name, such as `eth0` or `lo`.
    Name(String),
    /// An address of this host; for IPv6, `scope` is the part after `%` (a name or an index).
    Addr {
        /// The address without its scope.
        addr: IpAddr,
        /// The zone of an IPv6 address (`eth0` in `fe80::1%eth0`).
        scope: Option<String>,
    },
}

impl FromStr for InterfaceSpec {
    type Err = String;

    /// An address when it reads as one, else a name. Multicast and broadcast addresses are
    /// refused here: they are groups, never an interface.
    fn from_str(s: &str) -> Result<InterfaceSpec, String> {
        let s = s.trim();
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("expected an interface name (eth0, lo) or one of its addresses".into());
        }
        let (head, scope) = match s.split_once('%') {
            Some((head, scope)) => (head, Some(scope.to_string())),
            None => (s, None),
        };
        let Ok(addr) = head.parse::<IpAddr>() else {
            if scope.is_some() {
                return Err(format!(
                    "{head} is not an IPv6 address (NAME%SCOPE is not a form)"
                ));
            }
            return Ok(InterfaceSpec::Name(s.to_string()));
        };
        let group_like = match addr {
            IpAddr::V4(a) => a.is_multicast() || a.is_broadcast(),
            IpAddr::V6(a) => a.is_multicast(),
        };
        if group_like {
            return Err(format!(
                "{addr} is not an interface address (use an address of this host, e.g. \
                 127.0.0.1, or an interface name)"
            ));
        }
        if addr.is_ipv4() && scope.is_some() {
            return Err(format!("{s}: only an IPv6 address takes a %scope"));
        }
        if scope.as_deref() == Some("") {
            return Err(format!("{s}: the %scope is empty"));
        }
        Ok(InterfaceSpec::Addr { addr, scope })
    }
}

impl fmt::Display for InterfaceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterfaceSpec::Name(name) => write!(f, "{name}"),
            InterfaceSpec::Addr { addr, scope: None } => write!(f, "{addr}"),
            InterfaceSpec::Addr {
                addr,
                scope: Some(scope),
            } => write!(f, "{addr}%{scope}"),
        }
    }
}

/// Why `--interface` does not name a usable interface. Its message ends with the list of the
/// interfaces that exist, so the user can pick one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveError {
    /// What is wrong, without the list.
    pub reason: String,
    /// The host's interfaces, for the message.
    pub interfaces: Vec<IfaceAddr>,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; ", self.reason)?;
        if self.interfaces.is_empty() {
            return write!(f, "no interface with an address was found on this host");
        }
        write!(
            f,
            "the interfaces here are:\n{}",
            format_list(&self.interfaces)
        )
    }
}

impl std::error::Error for ResolveError {}

/// Which interface `spec` means for a group of `group`'s family, among `interfaces` (in
/// `unicast` mode, `group` only gives the family).
///
/// - A name takes that interface's first address of the group's family (for IPv6, its
///   link-local one if it has one, or in unicast mode its first other one) and, for IPv6, its
///   index.
/// - An IPv4 address is taken as it is, listed or not: the kernel judges it when the socket
///   joins, as it always has.
/// - An IPv6 address needs an index: from its `%scope` (a name or a number), else from the
///   interface that holds the address.
///
/// On Linux an IPv6 group on the loopback interface is refused (unicast mode needs no
/// group): its datagrams reach no other socket there, so the nodes would wait for each other
/// in silence.
pub fn resolve(
    spec: &InterfaceSpec,
    group: IpAddr,
    unicast: bool,
    interfaces: &[IfaceAddr],
) -> Result<Local, ResolveError> {
    let fail = |reason: String| ResolveError {
        reason,
        interfaces: interfaces.to_vec(),
    };
    let local = pick(spec, group, unicast, interfaces).map_err(fail)?;
    let loopback = local.addr.is_loopback()
        || interfaces
            .iter()
            .any(|i| i.index == local.index && i.index != 0 && i.addr.is_loopback());
    if group.is_ipv6() && loopback && !unicast && cfg!(target_os = "linux") {
        return Err(fail(format!(
            "--interface {spec}: IPv6 multicast does not cross the loopback interface on \
             Linux; on one host keep the IPv4 default (224.1.1.1 via 127.0.0.1), or choose a \
             LAN interface"
        )));
    }
    Ok(local)
}

/// The interface `spec` names for `group`'s family, or why there is none.
fn pick(
    spec: &InterfaceSpec,
    group: IpAddr,
    unicast: bool,
    interfaces: &[IfaceAddr],
) -> Result<Local, String> {
    let family = if group.is_ipv6() { "IPv6" } else { "IPv4" };
    match spec {
        InterfaceSpec::Name(name) => {
            let mine: Vec<&IfaceAddr> = interfaces.iter().filter(|i| &i.name == name).collect();
            if mine.is_empty() {
                return Err(format!("--interface {name}: there is no such interface"));
            }
            let pick = mine
                .iter()
                .filter(|i| i.addr.is_ipv6() == group.is_ipv6())
                // A link-local group goes with a link-local address; unicast goes further
                // from a routable one.
                .min_by_key(|i| is_link_local(i.addr) == unicast)
                .ok_or_else(|| {
                    format!("--interface {name} has no {family} address (for --group {group})")
                })?;
            Ok(Local {
                name: Some(name.clone()),
                addr: pick.addr,
                index: if group.is_ipv6() { pick.index } else { 0 },
            })
        }
        InterfaceSpec::Addr { addr, scope } => {
            if addr.is_ipv6() != group.is_ipv6() {
                return Err(format!(
                    "--interface {spec} is not {family}, as --group {group} is; give both of \
                     one family (an IPv6 group such as ff02::114 with an IPv6 interface)"
                ));
            }
            match (addr, scope) {
                (IpAddr::V4(a), _) => Ok(Local::v4(*a)),
                (IpAddr::V6(a), Some(scope)) => by_scope(*a, scope, interfaces)
                    .ok_or_else(|| format!("--interface {spec}: there is no interface {scope}")),
                (IpAddr::V6(a), None) => interfaces
                    .iter()
                    .find(|i| i.addr == IpAddr::V6(*a))
                    .map(|i| Local {
                        name: Some(i.name.clone()),
                        addr: i.addr,
                        index: i.index,
                    })
                    .ok_or_else(|| format!("--interface {a} is not an address of this host")),
            }
        }
    }
}

/// `addr%scope`: the scope is an interface name, or an index.
fn by_scope(addr: Ipv6Addr, scope: &str, interfaces: &[IfaceAddr]) -> Option<Local> {
    let by_name = interfaces.iter().find(|i| i.name == scope);
    let by_index = || {
        let index: u32 = scope.parse().ok()?;
        interfaces.iter().find(|i| i.index == index)
    };
    let iface = by_name.or_else(by_index)?;
    Some(Local {
        name: Some(iface.name.clone()),
        addr: IpAddr::V6(addr),
        index: iface.index,
    })
}

/// fe80::/10, the addresses an IPv6 link-local group is used with.
pub fn is_link_local(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
        IpAddr::V4(_) => false,
    }
}

/// The interfaces of this host that have an address, one entry per address.
pub fn list() -> io::Result<Vec<IfaceAddr>> {
    let mut all: Vec<IfaceAddr> = if_addrs::get_if_addrs()?
        .into_iter()
        .map(|i| IfaceAddr {
            index: i.index.unwrap_or(0),
            addr: i.ip(),
            name: i.name,
        })
        .collect();
    all.sort_by(|a, b| {
        (a.index, &a.name, a.addr.is_ipv6()).cmp(&(b.index, &b.name, b.addr.is_ipv6()))
    });
    Ok(all)
}

/// One line per interface, `  eth0  192.168.1.23, fe80::1`, in the order of `interfaces`.
pub fn format_list(interfaces: &[IfaceAddr]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for i in interfaces {
        if !names.contains(&i.name.as_str()) {
            names.push(&i.name);
        }
    }
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
    let lines: Vec<String> = names
        .iter()
        .map(|name| {
            let addrs: Vec<String> = interfaces
                .iter()
                .filter(|i| i.name == *name)
                .map(|i| i.addr.to_string())
                .collect();
            format!("  {name:<width$}  {}", addrs.join(", "))
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, index: u32, addr: &str) -> IfaceAddr {
        IfaceAddr {
            name: name.into(),
            index,
            addr: addr.parse().expect("test address"),
        }
    }

    /// A laptop: loopback, wired with both families, Wi-Fi with IPv6 only.
    fn host() -> Vec<IfaceAddr> {
        vec![
            entry("lo", 1, "127.0.0.1"),
            entry("lo", 1, "::1"),
            entry("eth0", 2, "192.168.1.23"),
            entry("eth0", 2, "2001:db8::23"),
            entry("eth0", 2, "fe80::1"),
            entry("wlan0", 3, "fe80::3"),
        ]
    }

    fn spec(s: &str) -> InterfaceSpec {
        s.parse().expect("spec parses")
    }

    /// `spec` does not resolve, and the message says `why`.
    fn refused(spec_text: &str, group: IpAddr, host: &[IfaceAddr], why: &str) {
        let err = resolve(&spec(spec_text), group, false, host).expect_err(spec_text);
        assert!(err.to_string().contains(why), "{spec_text}: {err}");
    }

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 1, 1, 1));

    fn v6() -> IpAddr {
        "ff02::114".parse().expect("group")
    }

    #[test]
    fn specs_are_names_or_addresses() {
        assert_eq!(spec("eth0"), InterfaceSpec::Name("eth0".into()));
        assert_eq!(spec("224.1.1"), InterfaceSpec::Name("224.1.1".into()));
        let addr = |a: &str, scope: Option<&str>| InterfaceSpec::Addr {
            addr: a.parse().expect("addr"),
            scope: scope.map(str::to_string),
        };
        assert_eq!(spec("192.168.1.23"), addr("192.168.1.23", None));
        assert_eq!(spec("fe80::1%eth0"), addr("fe80::1", Some("eth0")));
        assert_eq!(spec("fe80::1%2"), addr("fe80::1", Some("2")));
        assert_eq!(spec("fe80::1%eth0").to_string(), "fe80::1%eth0");
        for bad in [
            "",
            " ",
            "224.1.1.1",
            "ff02::1",
            "255.255.255.255",
            "1.2.3.4%eth0",
        ] {
            assert!(bad.parse::<InterfaceSpec>().is_err(), "{bad:?} accepted");
        }
        for bad in ["eth0%eth0", "fe80::1%", "a b"] {
            assert!(bad.parse::<InterfaceSpec>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_name_resolves_to_its_address_of_the_groups_family() {
        let got = resolve(&spec("eth0"), V4, false, &host()).expect("eth0");
        assert_eq!(got.addr, "192.168.1.23".parse::<IpAddr>().expect("ip"));
        assert_eq!(got.to_string(), "eth0 (192.168.1.23)");
        let got = resolve(&spec("lo"), V4, false, &host()).expect("lo");
        assert_eq!(got.to_string(), "lo (127.0.0.1)");
    }

    #[test]
    fn a_name_for_an_ipv6_group_prefers_the_link_local_address_and_carries_the_index() {
        let got = resolve(&spec("eth0"), v6(), false, &host()).expect("eth0");
        assert_eq!(got.to_string(), "eth0 (fe80::1)");
        assert_eq!(got.index, 2);
        let got = resolve(&spec("wlan0"), v6(), false, &host()).expect("wlan0");
        assert_eq!((got.index, got.addr.to_string()), (3, "fe80::3".into()));
    }

    #[test]
    fn an_ipv6_group_on_the_loopback_is_refused_on_linux() {
        if cfg!(target_os = "linux") {
            for lo in ["lo", "::1", "::1%lo", "fe80::9%1"] {
                refused(lo, v6(), &host(), "does not cross the loopback");
            }
        }
    }

    #[test]
    fn an_unknown_name_lists_every_interface_and_its_addresses() {
        let err = resolve(&spec("eth9"), V4, false, &host()).expect_err("no eth9");
        let text = err.to_string();
        assert!(
            text.starts_with("--interface eth9: there is no such interface;"),
            "{text}"
        );
        assert!(
            text.contains("  eth0   192.168.1.23, 2001:db8::23, fe80::1"),
            "{text}"
        );
        assert!(text.contains("  lo     127.0.0.1, ::1"), "{text}");
        assert!(text.contains("  wlan0  fe80::3"), "{text}");
        refused("eth0", V4, &[], "no interface with an address");
    }

    #[test]
    fn a_name_without_an_address_of_the_groups_family_is_refused() {
        refused("wlan0", V4, &host(), "wlan0 has no IPv4 address");
    }

    #[test]
    fn an_ipv4_address_is_taken_as_given() {
        let got = resolve(&spec("10.9.8.7"), V4, false, &host()).expect("any IPv4");
        assert_eq!(got, Local::v4(Ipv4Addr::new(10, 9, 8, 7)));
        assert_eq!(got.to_string(), "10.9.8.7");
    }

    #[test]
    fn an_ipv6_address_gets_its_index_from_the_scope_or_from_the_host() {
        let got = resolve(&spec("fe80::1%eth0"), v6(), false, &host()).expect("scoped");
        assert_eq!((got.index, got.to_string()), (2, "eth0 (fe80::1)".into()));
        let got = resolve(&spec("fe80::3%3"), v6(), false, &host()).expect("numeric scope");
        assert_eq!(got.name.as_deref(), Some("wlan0"));
        let got = resolve(&spec("2001:db8::23"), v6(), false, &host()).expect("listed");
        assert_eq!((got.index, got.name.as_deref()), (2, Some("eth0")));
        refused("2001:db8::99", v6(), &host(), "not an address of this host");
        refused("fe80::1%eth9", v6(), &host(), "no interface eth9");
    }

    #[test]
    fn the_interface_and_the_group_must_be_of_one_family() {
        refused("fe80::1%eth0", V4, &host(), "not IPv4");
        refused("127.0.0.1", v6(), &host(), "not IPv6");
    }

    #[test]
    fn this_host_lists_at_least_its_loopback() {
        let all = list().expect("getifaddrs");
        assert!(all.iter().any(|i| i.addr.is_loopback()), "{all:?}");
    }
}
