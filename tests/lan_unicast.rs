//! Unicast mode across hosts (DESIGN §5 `--peer`; G1, G2, G4, G5): a server and three clients
//! on four "hosts", each its own network namespace with one veth, joined by a Linux bridge in
//! a fifth, "switch" namespace that drops all multicast (snooping off and `mcast_flood off` on
//! every port, as a Wi-Fi that keeps clients apart or a cloud network would). The server runs
//! with `--interface` its host's address and itself as `--peer`, each client with its own
//! host's address and the server as its one `--peer`.
//!
//! First the test proves that multicast does not cross this switch, and shows what mixed modes
//! do: a multicast server is started, a multicast client joins it while the switch floods
//! multicast (the control), and once the switch drops it again a second multicast client
//! fails to join within its 2 s `--join-timeout` (exit 1, "no server answered"), as does a
//! unicast client given the multicast server as `--peer` (a multicast server does not listen
//! for unicast).
//!
//! Then the chat, in unicast mode: every client types and all see every line; one client's
//! switch port goes down (a pulled cable) while the other two chat on and it types, and after
//! the heal it rejoins and every line arrives; a client is killed with `kill -9` mid-chat just
//! after its lines were accepted, and restarted with `--resume <uuid>` on the same data dir;
//! the server is killed with `kill -9` while the clients chat on without it, and restarted on
//! the same data dir and port. In the end the replicas of all three clients and the server's
//! archive are byte-identical, gapless, and hold every typed line exactly once. It runs over
//! IPv4 (10.201.X.0/24) and over IPv6 (ULA fd00:201::X only, no link-local addresses; IPv6
//! neighbour discovery is multicast, so each host knows the others' MAC addresses statically).
//!
//! Needs root and iproute2 (`ip`, `bridge`). Without them the test prints why and passes as
//! skipped (run with `-- --nocapture` to see the reason); with `MCAST_CHAT_REQUIRE_NETNS=1` (CI,
//! as root) it fails instead. The addresses exist only inside the test's namespaces, whose
//! names are unique to each run, and every namespace is deleted afterwards, also when the test
//! panics; the namespace plumbing is `common/netns.rs`, shared with `tests/lan.rs`.

mod common;

use common::netns::{Cut, Lan, Multicast};
use common::{
    accepted, assert_one_history, client_launch, cut_off_carol_and_heal, eventually, has_notice,
    message_texts, or_skip, server_launch, start, type_lines, Launch, Proc,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The deadline of each wait; generous, since each step normally takes a second or two.
const STEP: Duration = Duration::from_secs(30);

/// The unicast server's port (each run has a switch of its own, so the default is free).
const PORT: u16 = 5007;

/// The multicast server's port in the proof that multicast is blocked.
const MULTICAST_PORT: u16 = 5008;

/// Lines alice types in a burst while bob, and later the server, is killed.
const FLOOD: usize = 1000;

/// The join timeout of the clients that must fail to join.
const SHORT_JOIN: &str = "2s";

/// The address family of a test LAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    /// 10.201.X.0/24 on the veths; the multicast proof uses the default group 224.1.1.1.
    V4,
    /// ULA fd00:201::X/64 only; the multicast proof uses the link-local group ff02::114.
    V6,
}

impl Family {
    /// The address of host `i`.
    fn addr(self, i: usize) -> IpAddr {
        match self {
            Family::V4 => {
                let subnet = (std::process::id() % 250 + 1) as u8;
                IpAddr::V4(Ipv4Addr::new(10, 201, subnet, i as u8 + 1))
            }
            Family::V6 => IpAddr::V6(Ipv6Addr::new(0xfd00, 0x201, 0, 0, 0, 0, 0, i as u16 + 1)),
        }
    }

    /// `--group` for the multicast nodes of the proof.
    fn group(self) -> &'static [&'static str] {
        match self {
            Family::V4 => &[],
            Family::V6 => &["--group", "ff02::114"],
        }
    }
}

/// The LAN, with a switch that drops multicast; or `None` after printing why the test is
/// skipped (panics instead when `MCAST_CHAT_REQUIRE_NETNS=1`).
fn lan_or_skip(family: Family) -> Option<Lan> {
    let built = Lan::build(&[0; 4], |i| family.addr(i), Multicast::Dropped);
    or_skip(built, "the test LAN cannot be built")
}

/// `ADDR:PORT`, or `[ADDR]:PORT` for IPv6: how `--peer` names host `i`'s port.
fn peer(lan: &Lan, i: usize, port: u16) -> String {
    SocketAddr::new(lan.host(i).addr, port).to_string()
}

/// A node in host `i`'s namespace, with data dir `dir`; its stderr goes to `dir/stderr.log`,
/// after what an earlier run there wrote.
fn node(lan: &Lan, i: usize, launch: Launch, dir: &Path, name: &str) -> Proc {
    let log = dir.join("stderr.log");
    let again = log.exists();
    start(launch.in_netns(&lan.host(i).ns).stderr_to(log, again), name)
}

/// Whether the server printed that it coordinates.
fn coordinating(lines: &[String]) -> bool {
    lines.iter().any(|l| l.contains("coordinating"))
}

/// The unicast server on host 0: its own address as `--interface` and as its one `--peer`.
fn unicast_server(lan: &Lan, dir: &Path) -> Proc {
    let (iface, me) = (lan.interface(0), peer(lan, 0, PORT));
    let args = [
        "--interface",
        &iface,
        "--peer",
        &me,
        "--token-timeout",
        "1s",
        "--sync-interval",
        "1s",
    ];
    node(lan, 0, server_launch(PORT, dir, &args), dir, "server")
}

/// A unicast client on host `i`: its own address as `--interface`, the server on `port` as
/// its one `--peer`.
fn unicast_client(lan: &Lan, i: usize, port: u16, dir: &Path, name: &str, extra: &[&str]) -> Proc {
    let (iface, server) = (lan.interface(i), peer(lan, 0, port));
    let mut args = vec!["--interface", &iface, "--peer", &server];
    args.extend(extra);
    node(lan, i, client_launch(port, dir, name, &args), dir, name)
}

/// Waits for a client that must not get in: exit 1 within its join timeout; returns stderr.
fn fails_to_join(mut c: Proc) -> String {
    let exit = c.wait_exit(STEP);
    let stderr = std::fs::read_to_string(&c.log).unwrap_or_default();
    assert_eq!(exit.code(), Some(1), "{} must exit 1: {stderr}", c.name);
    let heard = message_texts(&c.seen);
    assert!(
        !common::joined(&c.seen) && heard.is_empty(),
        "{} got in: {:?}",
        c.name,
        c.seen
    );
    stderr
}

/// The proof that the switch drops multicast, and what mixed modes do. A multicast server on
/// host 0; with multicast let through, a multicast client on host 1 joins (so it is the
/// switch, not the nodes, that stops the next one); with it dropped again, a multicast client
/// on host 2 and a unicast client on host 3 given the multicast server as `--peer` both fail
/// to join and say why.
fn multicast_does_not_cross(lan: &Lan, root: &Path, family: Family) {
    let group = family.group();
    let (iface0, iface1, iface2) = (lan.interface(0), lan.interface(1), lan.interface(2));
    let mut srv_args = vec!["--interface", iface0.as_str()];
    srv_args.extend(group);
    let dir = root.join("multicast-server");
    let launch = server_launch(MULTICAST_PORT, &dir, &srv_args);
    let mut srv = node(lan, 0, launch, &dir, "multicast server");
    srv.wait_for("the multicast server to coordinate", STEP, coordinating);

    lan.set_multicast(Multicast::Flooded)
        .expect("multicast let through");
    let mut args = vec!["--interface", iface1.as_str()];
    args.extend(group);
    let dir = root.join("control");
    let launch = client_launch(MULTICAST_PORT, &dir, "control", &args);
    let mut control = node(lan, 1, launch, &dir, "control");
    control.wait_joined(STEP);
    control.close_stdin();
    assert!(control.wait_exit(STEP).success(), "the control leaves");
    lan.set_multicast(Multicast::Dropped)
        .expect("multicast dropped again");

    let mut args = vec!["--interface", iface2.as_str(), "--join-timeout", SHORT_JOIN];
    args.extend(group);
    let dir = root.join("multicast");
    let started = Instant::now();
    let launch = client_launch(MULTICAST_PORT, &dir, "multicast", &args);
    let multicast = node(lan, 2, launch, &dir, "multicast");
    let to_server = peer(lan, 0, MULTICAST_PORT);
    let short = ["--join-timeout", SHORT_JOIN];
    let mixed = unicast_client(lan, 3, MULTICAST_PORT, &root.join("mixed"), "mixed", &short);
    let err = fails_to_join(multicast);
    assert!(err.contains("no server answered on"), "{err}");
    let err = fails_to_join(mixed);
    assert!(err.contains(&format!("--peer {to_server}")), "{err}");
    assert!(
        err.contains("a server in multicast mode does not listen for unicast"),
        "{err}"
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "{SHORT_JOIN} joins gave up after {took:?}"
    );
}

/// Polls `pred` every millisecond until it holds, or panics at the deadline: for a kill that
/// must hit the moment just after something happened.
fn soon(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Lines in `p`'s replica so far.
fn lines_in(p: &Proc) -> usize {
    let replica = p.read_replica().unwrap_or_default();
    replica.iter().filter(|&&b| b == b'\n').count()
}

/// Waits until the replica of each of `procs` has at least `n` lines (a client resumed
/// after `kill -9` prints only what it delivers in its new run).
fn wait_replicas(procs: &[&Proc], what: &str, n: usize) {
    let lines = lines_in;
    let deadline = Instant::now() + STEP;
    while procs.iter().any(|p| lines(p) < n) {
        if Instant::now() >= deadline {
            let behind: Vec<String> = procs
                .iter()
                .filter(|p| lines(p) < n)
                .map(|p| {
                    format!(
                        "{}: {} of {n} lines; stderr:\n{}",
                        p.name,
                        lines(p),
                        p.stderr_tail(15)
                    )
                })
                .collect();
            panic!("timed out waiting for {what}:\n{}", behind.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`common::wait_all`] with this file's deadline.
fn wait_all(clients: &mut [&mut Proc], what: &str, total: usize) {
    common::wait_all(clients, what, total, STEP);
}

/// Waits until `c` printed a notice containing `needle` after its first `from` lines.
fn wait_notice(c: &mut Proc, from: usize, needle: &str) {
    let what = format!("{}: \"{needle}\"", c.name);
    c.wait_for(&what, STEP, |l| has_notice(&l[from.min(l.len())..], needle));
}

/// The uuid a client printed for `--resume` ("continue later with --resume UUID").
fn identity(c: &Proc) -> String {
    c.seen
        .iter()
        .find_map(|l| l.split("--resume ").nth(1))
        .and_then(|rest| {
            rest.split(|ch: char| !ch.is_ascii_hexdigit() && ch != '-')
                .next()
        })
        .filter(|id| id.len() == 36)
        .unwrap_or_else(|| panic!("{} printed no uuid to resume: {:?}", c.name, c.seen))
        .to_string()
}

#[test]
fn ipv4_unicast_chat_on_a_switch_without_multicast_survives_cuts_and_kill_9() {
    unicast_chat(Family::V4);
}

#[test]
fn ipv6_unicast_chat_on_a_switch_without_multicast_survives_cuts_and_kill_9() {
    unicast_chat(Family::V6);
}

/// The scenario of the header, on a LAN of `family`.
fn unicast_chat(family: Family) {
    let Some(lan) = lan_or_skip(family) else {
        return;
    };
    let started = Instant::now();
    let phase = |what: &str| {
        let secs = started.elapsed().as_secs_f64();
        eprintln!("lan unicast test ({family:?}): {secs:>5.1}s {what}");
    };
    let root = tempfile::tempdir().unwrap().keep();
    multicast_does_not_cross(&lan, &root, family);
    phase("multicast crosses the switch only while let through; mixed modes do not join");

    let srv_dir = root.join("server");
    let mut srv = unicast_server(&lan, &srv_dir);
    srv.wait_for("the server to coordinate", STEP, coordinating);
    let addr0 = lan.host(0).addr.to_string();
    let first = &srv.seen[0];
    assert!(
        first.contains("unicast") && first.contains(&addr0),
        "{first}"
    );
    let names = ["alice", "bob", "carol"];
    let mut clients: Vec<Proc> = names
        .iter()
        .enumerate()
        .map(|(i, name)| unicast_client(&lan, i + 1, PORT, &root.join(name), name, &[]))
        .collect();
    let [alice, bob, carol] = &mut clients[..] else {
        unreachable!()
    };
    let mut expected = Vec::new();
    for (p, name) in [
        (&mut *alice, "alice"),
        (&mut *bob, "bob"),
        (&mut *carol, "carol"),
    ] {
        expected.extend(type_lines(p, name, "before the cut", 5));
    }
    wait_all(&mut [&mut *alice, &mut *bob, &mut *carol], "lines", 15);
    phase("3 clients chatting over unicast");

    // carol's cable is pulled: alice and bob chat on, she types into the void.
    cut_off_carol_and_heal(
        &lan,
        Cut::SwitchPort,
        [&mut *alice, &mut *bob, &mut *carol],
        &mut expected,
        STEP,
        &phase,
    );

    // bob dies mid-chat (alice is typing a flood), just after his own lines were accepted.
    let bob_id = identity(bob);
    let before = expected.len();
    expected.extend(type_lines(alice, "alice", "around bob's crash", FLOOD));
    let last_words = type_lines(bob, "bob", "before his crash", 3);
    soon("bob's lines on his disk", || {
        accepted(&bob.dir, &last_words)
    });
    bob.kill_9();
    let at_kill = lines_in(alice).saturating_sub(before);
    expected.extend(last_words);
    expected.extend(type_lines(carol, "carol", "while bob is down", 3));
    expected.extend(type_lines(alice, "alice", "while bob is down", 3));
    // bob's last lines may wait in his outbox for his return; everyone else's arrive.
    let without_bob = expected.len() - 3;
    wait_all(
        &mut [&mut *alice, &mut *carol],
        "lines without bob",
        without_bob,
    );
    let bob_dir = root.join("bob");
    *bob = unicast_client(&lan, 2, PORT, &bob_dir, "bob", &["--resume", &bob_id]);
    bob.wait_joined(STEP);
    wait_replicas(
        &[&*alice, &*bob, &*carol],
        "bob's last lines",
        expected.len(),
    );
    phase(&format!(
        "bob killed with -9 at {at_kill} of alice's {FLOOD}, resumed by uuid; all arrived"
    ));

    // The server dies mid-chat (alice is typing a flood); the clients chat on without it,
    // know that no server is reachable, and see it come back.
    let seen_before: Vec<usize> = [&*alice, &*bob, &*carol].map(|c| c.seen.len()).into();
    let before = expected.len();
    expected.extend(type_lines(
        alice,
        "alice",
        "around the server's crash",
        FLOOD,
    ));
    soon("a tenth of alice's flood", || {
        lines_in(alice) >= before + FLOOD / 10
    });
    srv.kill_9();
    let at_kill = lines_in(alice).saturating_sub(before);
    expected.extend(type_lines(bob, "bob", "while the server is down", 3));
    expected.extend(type_lines(carol, "carol", "while the server is down", 3));
    wait_replicas(
        &[&*alice, &*bob, &*carol],
        "lines without the server",
        expected.len(),
    );
    for (c, &from) in [&mut *alice, &mut *bob, &mut *carol]
        .into_iter()
        .zip(&seen_before)
    {
        wait_notice(c, from, "no server reachable");
    }
    expected.extend(type_lines(carol, "carol", "knowing no server is up", 3));
    wait_replicas(
        &[&*alice, &*bob, &*carol],
        "lines without a server",
        expected.len(),
    );
    phase(&format!(
        "server killed with -9 at {at_kill} of alice's {FLOOD}; the clients chat on without it"
    ));

    let seen_before: Vec<usize> = [&*alice, &*bob, &*carol].map(|c| c.seen.len()).into();
    srv = unicast_server(&lan, &srv_dir);
    srv.wait_for("the server to coordinate again", STEP, coordinating);
    for (c, &from) in [&mut *alice, &mut *bob, &mut *carol]
        .into_iter()
        .zip(&seen_before)
    {
        wait_notice(c, from, "a server is reachable again");
    }
    for (p, name) in [
        (&mut *alice, "alice"),
        (&mut *bob, "bob"),
        (&mut *carol, "carol"),
    ] {
        expected.extend(type_lines(p, name, "after the server's return", 2));
    }
    wait_replicas(&[&*alice, &*bob, &*carol], "every line", expected.len());
    let reference = alice.replica();
    eventually("the server's archive to converge", STEP, || {
        srv.read_replica().is_ok_and(|r| r == reference)
    });
    phase("server restarted on its data dir and port; its archive caught up");

    for c in [&mut *alice, &mut *bob, &mut *carol] {
        c.close_stdin();
    }
    for c in [&mut *alice, &mut *bob, &mut *carol] {
        let exit = c.wait_exit(STEP);
        assert!(
            exit.success(),
            "{}: a clean leave exits 0, not {exit}",
            c.name
        );
    }
    let pid = srv.pid().to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(term.is_ok_and(|s| s.success()), "SIGTERM to the server");
    let exit = srv.wait_exit(STEP);
    assert!(exit.success(), "the server stops with exit 0, not {exit}");
    assert_one_history(alice, &[&*bob, &*carol, &srv], &expected);
    phase("everyone quit; all four replicas byte-identical, every line once");
}
