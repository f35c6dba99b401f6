//! A LAN of network namespaces for the tests that run the real binaries across hosts
//! (`tests/lan.rs`, `tests/lan_unicast.rs`): one namespace per "host" with one veth, `eth0`,
//! whose peer is a port of a Linux bridge in a "switch" namespace (or of one of two bridges
//! joined by a cable). The switch either floods multicast like an unmanaged one, or drops all
//! of it, like a network that carries no multicast (Wi-Fi that keeps clients apart, a cloud).
//!
//! Names are unique to each run (the creator's pid, a counter, the clock), everything created
//! is registered before the next step so that a failure half-way still cleans up, dropping a
//! [`Lan`] deletes its namespaces (also on panic), and a namespace left behind by a test that
//! was killed is deleted by the next run. Needs root and iproute2 (`ip`, `bridge`); the loss
//! rules need `nft`. Addresses are the caller's: they exist only inside these namespaces.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Every namespace of these tests starts with this, followed by the creating process's pid.
const NS_PREFIX: &str = "mcast-lan-";

/// A leftover namespace of a dead test process is removed once it is at least this old.
const STALE_AFTER: Duration = Duration::from_secs(600);

/// Counts the LANs built by this process, to keep their names apart.
static RUNS: AtomicU32 = AtomicU32::new(0);

/// How a host is cut off the LAN.
#[derive(Clone, Copy, Debug)]
pub enum Cut {
    /// Its switch port goes down, like a pulled cable: the host keeps its link "up" (without
    /// carrier) and its address; its datagrams go nowhere and it hears nothing.
    SwitchPort,
    /// The host's own `eth0` goes down: every send fails at once ("network is unreachable"),
    /// instead of vanishing silently, and it hears nothing.
    HostLink,
}

/// What the switch does with multicast frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Multicast {
    /// A plain Linux bridge: IGMP snooping on, no querier, so it floods multicast to every
    /// port, like an unmanaged switch.
    Flooded,
    /// Dropped, all of it: snooping off and `mcast_flood off` on every port, so no multicast
    /// frame leaves the bridge. IPv6 neighbour discovery is multicast too, so each host gets
    /// every other host's MAC address as a permanent neighbour instead; ARP is broadcast and
    /// still works.
    Dropped,
}

/// One simulated host: a network namespace with `eth0` at `addr`, plugged into the bridge.
pub struct Host {
    pub ns: String,
    pub addr: IpAddr,
    /// The peer of `eth0` in the switch namespace: the host's "switch port".
    pub switch_port: String,
}

/// The namespaces of one test run. Dropping it kills what still runs inside them and deletes
/// them (deleting a namespace deletes its veth ends, and so their peers on the bridge).
pub struct Lan {
    switch: Option<String>,
    pub hosts: Vec<Host>,
    /// Whether there are two switches, joined by [`UPLINK`].
    split: bool,
}

/// The two ends of the cable between the two switches of a split LAN, in the switch namespace.
const UPLINK: [&str; 2] = ["uplink0", "uplink1"];

/// The MAC address of host `i`'s `eth0` on a LAN that drops multicast.
fn mac(i: usize) -> String {
    format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256)
}

impl Lan {
    /// Builds the switch namespace and one host per entry of `switches`, or says why it cannot:
    /// host `i` has the address `addr(i)` and is plugged into bridge `br{switches[i]}` (0 or
    /// 1). With any host on 1, `br1` is a second switch, joined to `br0` by one cable (the
    /// veth pair [`UPLINK`]). An IPv6 address gets no automatic link-local one beside it.
    pub fn build(
        switches: &[usize],
        addr: impl Fn(usize) -> IpAddr,
        multicast: Multicast,
    ) -> Result<Lan, String> {
        if !is_root() {
            return Err("the test needs root (network namespaces, veth, bridge)".into());
        }
        run_ip(&["-V"]).map_err(|e| format!("iproute2 is not usable: {e}"))?;
        remove_stale_namespaces();
        let pid = std::process::id();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // The pid keeps parallel runs apart, the counter the tests of one run, and the
        // nanoseconds a reused pid.
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{NS_PREFIX}{pid}-{run}{nanos:08x}");
        let split = switches.contains(&1);
        let mut lan = Lan {
            switch: None,
            hosts: Vec::new(),
            split,
        };
        let switch = format!("{prefix}-sw");
        run_ip(&["netns", "add", &switch])?;
        lan.switch = Some(switch.clone());
        run_ip(&["-n", &switch, "link", "set", "lo", "up"])?;
        let drop = multicast == Multicast::Dropped;
        for br in if split { &["br0", "br1"][..] } else { &["br0"] } {
            run_ip(&["-n", &switch, "link", "add", br, "type", "bridge"])?;
            if drop {
                let snooping_off = ["type", "bridge", "mcast_snooping", "0"];
                run_ip(
                    &[
                        &["-n", &switch, "link", "set", "dev", br][..],
                        &snooping_off,
                    ]
                    .concat(),
                )?;
            }
            run_ip(&["-n", &switch, "link", "set", br, "up"])?;
        }
        let plug = |port: &str, br: &str| -> Result<(), String> {
            run_ip(&["-n", &switch, "link", "set", port, "master", br])?;
            if drop {
                set_flood(&switch, port, "off")?;
            }
            run_ip(&["-n", &switch, "link", "set", port, "up"])
        };
        if split {
            let [a, b] = UPLINK;
            run_ip(&[
                "-n", &switch, "link", "add", a, "type", "veth", "peer", "name", b,
            ])?;
            for (end, br) in [(a, "br0"), (b, "br1")] {
                plug(end, br)?;
            }
        }
        for (i, &sw) in switches.iter().enumerate() {
            let ns = format!("{prefix}-h{i}");
            run_ip(&["netns", "add", &ns])?;
            let switch_port = format!("p{i}");
            lan.hosts.push(Host {
                ns: ns.clone(),
                addr: addr(i),
                switch_port: switch_port.clone(),
            });
            run_ip(&[
                "-n",
                &switch,
                "link",
                "add",
                &switch_port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns,
            ])?;
            plug(&switch_port, ["br0", "br1"][sw])?;
            if drop {
                run_ip(&["-n", &ns, "link", "set", "eth0", "address", &mac(i)])?;
            }
            add_address(&ns, addr(i))?;
            run_ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            run_ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            // No multicast route: `--interface` (IP_MULTICAST_IF) alone picks eth0.
        }
        if drop {
            for (i, host) in lan.hosts.iter().enumerate() {
                for (j, other) in lan.hosts.iter().enumerate().filter(|(j, _)| *j != i) {
                    let (to, lladdr) = (other.addr.to_string(), mac(j));
                    let neigh = ["neigh", "add", &to, "lladdr", &lladdr, "dev", "eth0"];
                    run_ip(&[&["-n", &host.ns][..], &neigh, &["nud", "permanent"]].concat())?;
                }
            }
        }
        Ok(lan)
    }

    /// `--interface` for host `i`: IPv4 by address; a link-local IPv6 address by name on even
    /// hosts and as `fe80::X%eth0` on odd ones, the two forms a user would type; any other
    /// IPv6 address as it is.
    pub fn interface(&self, i: usize) -> String {
        match self.hosts[i].addr {
            IpAddr::V6(addr) if addr.is_unicast_link_local() && i.is_multiple_of(2) => {
                "eth0".to_string()
            }
            IpAddr::V6(addr) if addr.is_unicast_link_local() => format!("{addr}%eth0"),
            addr => addr.to_string(),
        }
    }

    /// On a LAN built with [`Multicast::Dropped`], lets multicast through every port again
    /// ([`Multicast::Flooded`]: snooping stays off, so to every port), or drops it again.
    pub fn set_multicast(&self, multicast: Multicast) -> Result<(), String> {
        let switch = self.switch.as_deref().expect("switch");
        let flood = match multicast {
            Multicast::Flooded => "on",
            Multicast::Dropped => "off",
        };
        let uplinks = if self.split { &UPLINK[..] } else { &[] };
        let hosts = self.hosts.iter().map(|h| h.switch_port.as_str());
        for port in hosts.chain(uplinks.iter().copied()) {
            set_flood(switch, port, flood)?;
        }
        Ok(())
    }

    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// Cuts host `i` off the LAN in the way `how` says.
    pub fn cut(&self, i: usize, how: Cut) {
        self.set_link(i, how, "down");
    }

    /// Undoes [`Lan::cut`].
    pub fn heal(&self, i: usize, how: Cut) {
        self.set_link(i, how, "up");
    }

    /// Unplugs the cable between the two switches of a split LAN (its `br0` end goes down,
    /// and the `br1` end loses its carrier): each switch still connects its own hosts.
    pub fn cut_uplink(&self) {
        set_state(self.switch.as_deref().expect("switch"), UPLINK[0], "down");
    }

    /// Undoes [`Lan::cut_uplink`].
    pub fn heal_uplink(&self) {
        set_state(self.switch.as_deref().expect("switch"), UPLINK[0], "up");
    }

    /// Makes host `i` drop `per_mille` of the UDP datagrams it receives, at random.
    pub fn lose(&self, i: usize, per_mille: u32) -> Result<(), String> {
        use std::io::Write;
        let rules = format!(
            "table inet loss {{\n chain input {{\n  type filter hook input priority 0;\n  \
             meta l4proto udp numgen random mod 1000 lt {per_mille} drop\n }}\n}}\n"
        );
        let ns = &self.hosts[i].ns;
        let mut nft = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run `nft` in {ns}: {e}"))?;
        if let Some(mut stdin) = nft.stdin.take() {
            stdin
                .write_all(rules.as_bytes())
                .map_err(|e| format!("cannot write to `nft`: {e}"))?;
        }
        let out = nft
            .wait_with_output()
            .map_err(|e| format!("`nft` in {ns}: {e}"))?;
        match out.status.success() {
            true => Ok(()),
            false => Err(format!(
                "`nft` failed in {ns} ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }

    fn set_link(&self, i: usize, how: Cut, state: &str) {
        let host = &self.hosts[i];
        let (ns, dev) = match how {
            Cut::SwitchPort => (self.switch.as_deref().expect("switch"), &*host.switch_port),
            Cut::HostLink => (&*host.ns, "eth0"),
        };
        set_state(ns, dev, state);
    }
}

/// `bridge -n NS link set dev PORT mcast_flood STATE`: whether the bridge floods multicast
/// (snooping off: all of it) out of `port`.
fn set_flood(ns: &str, port: &str, state: &str) -> Result<(), String> {
    let args = ["-n", ns, "link", "set", "dev", port, "mcast_flood", state];
    run_tool("bridge", &args)
}

/// `ip -n NS link set DEV STATE`, panicking on failure.
fn set_state(ns: &str, dev: &str, state: &str) {
    if let Err(e) = run_ip(&["-n", ns, "link", "set", dev, state]) {
        panic!("cannot set {dev} {state} in {ns}: {e}");
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        let names = self.hosts.iter().map(|h| h.ns.clone());
        for ns in names.chain(self.switch.clone()) {
            delete_namespace(&ns);
        }
    }
}

/// Gives `eth0` in `ns` its one address: IPv4 in a /24, or IPv6 in a /64 without the
/// automatic link-local one beside it and without duplicate address detection, which would
/// hold the address back (tentative) for a second or two.
fn add_address(ns: &str, addr: IpAddr) -> Result<(), String> {
    match addr {
        IpAddr::V4(addr) => run_ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]),
        IpAddr::V6(addr) => {
            run_ip(&["-n", ns, "link", "set", "eth0", "addrgenmode", "none"])?;
            let addr = format!("{addr}/64");
            run_ip(&["-n", ns, "addr", "add", &addr, "dev", "eth0", "nodad"])
        }
    }
}

/// Kills whatever still runs in `ns` (a process keeps a namespace alive after `ip netns del`)
/// and deletes it. Best effort: used on the way out.
fn delete_namespace(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    if let Err(e) = run_ip(&["netns", "del", ns]) {
        eprintln!("netns: cannot delete namespace {ns}: {e}");
    }
}

/// Deletes namespaces left by a test process that died without cleaning up (`kill -9`): their
/// creator's pid is gone and they are older than [`STALE_AFTER`].
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let creator_alive = Path::new("/proc").join(pid).exists();
        let age = std::fs::metadata(Path::new("/run/netns").join(name))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if !creator_alive && age.is_some_and(|a| a >= STALE_AFTER) {
            eprintln!("netns: removing stale namespace {name}");
            delete_namespace(name);
        }
    }
}

/// Runs `ip ARGS`; the error names the command and carries its stderr.
fn run_ip(args: &[&str]) -> Result<(), String> {
    run_tool("ip", args)
}

/// Runs `TOOL ARGS` (`ip`, `bridge`); the error names the command and carries its stderr.
fn run_tool(tool: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `{tool}`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{tool} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Effective uid 0, read from `/proc/self/status` (no libc needed).
fn is_root() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}
