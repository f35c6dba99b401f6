//! Helpers for tests that run the real binaries on loopback (or, with `server_in` and
//! `client_in`, inside the network namespaces that [`netns`] builds): each test gets its own
//! port and temp dirs; every wait is on a condition with a deadline. Starting, reading and
//! killing the processes is [`process`]'s job (shared with the ring bench and the demo); this
//! module adds the tests' command lines, waits that span several processes, and the checks of
//! replicas.
//!
//! Nothing here may weaken a check: a helper that cannot do its job panics with what it saw.
#![allow(dead_code)]

pub mod netns;
pub mod process;

#[allow(unused_imports)] // each test uses a different few
pub use process::{
    count_messages, files_text, joined, left, member_joined, Launch, Process as Proc,
};

use std::path::Path;
use std::time::{Duration, Instant};

/// A UDP port nobody on this host is bound to right now (the kernel picks it), so tests,
/// and several runs of the suite at once, never share a group.
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// `server --port PORT --data-dir DIR EXTRA...` with `RUST_LOG=info`.
pub fn server_launch(port: u16, dir: &Path, extra: &[&str]) -> Launch {
    Launch::new(env!("CARGO_BIN_EXE_server"), dir)
        .args(["--port", &port.to_string()])
        .args(extra)
        .env("RUST_LOG", "info")
}

/// `client --port PORT --json --data-dir DIR --name NAME EXTRA...` with `RUST_LOG=info`.
pub fn client_launch(port: u16, dir: &Path, name: &str, extra: &[&str]) -> Launch {
    Launch::new(env!("CARGO_BIN_EXE_client"), dir)
        .args(["--port", &port.to_string(), "--json", "--name", name])
        .args(extra)
        .env("RUST_LOG", "info")
}

pub fn start(launch: Launch, name: &str) -> Proc {
    launch
        .start(name)
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"))
}

pub fn server(port: u16, dir: &Path, extra: &[&str]) -> Proc {
    start(server_launch(port, dir, extra), "server")
}

pub fn client(port: u16, dir: &Path, name: &str, extra: &[&str]) -> Proc {
    start(client_launch(port, dir, name, extra), name)
}

/// Like [`server`], but inside network namespace `ns` (needs root); see [`Launch::in_netns`].
pub fn server_in(ns: &str, port: u16, dir: &Path, extra: &[&str]) -> Proc {
    start(server_launch(port, dir, extra).in_netns(ns), "server")
}

/// Like [`client`], but inside network namespace `ns`; see [`server_in`].
pub fn client_in(ns: &str, port: u16, dir: &Path, name: &str, extra: &[&str]) -> Proc {
    start(client_launch(port, dir, name, extra).in_netns(ns), name)
}

/// The bytes of the one `replica_*.jsonl` in `dir`.
pub fn replica_bytes(dir: &Path) -> Vec<u8> {
    let path = process::replica_file(dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::read(path).unwrap()
}

/// Checks a replica: seq 1..=n without gaps, every line id unique; returns the texts.
pub fn check_replica(bytes: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(bytes).unwrap();
    let mut ids = std::collections::HashSet::new();
    let mut texts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            v["seq"].as_u64(),
            Some(i as u64 + 1),
            "gap at line {}",
            i + 1
        );
        assert!(
            ids.insert(v["id"].as_str().unwrap().to_string()),
            "duplicate id"
        );
        texts.push(v["text"].as_str().unwrap().to_string());
    }
    texts
}

/// Set to `1` (CI runs as root) to make a test that needs root fail where it would otherwise
/// be skipped: network namespaces (`tests/lan.rs`), mount namespaces (`tests/disk.rs`).
pub const REQUIRE_ENV: &str = "MCAST_CHAT_REQUIRE_NETNS";

/// What a test built on this host (`Ok`), or `None` after printing why the test is skipped;
/// with `MCAST_CHAT_REQUIRE_NETNS=1` a failure panics instead. `what` names what failed.
pub fn or_skip<T>(built: Result<T, String>, what: &str) -> Option<T> {
    match built {
        Ok(built) => Some(built),
        Err(reason) if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") => {
            panic!("{REQUIRE_ENV}=1 but {what}: {reason}")
        }
        Err(reason) => {
            eprintln!("SKIPPED: {reason} (set {REQUIRE_ENV}=1 to make this a failure)");
            None
        }
    }
}

/// The texts of the `message` events in `lines` (client `--json` output).
pub fn message_texts(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.starts_with(r#"{"event":"message""#))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect()
}

/// Polls `pred` until it holds or panics at the deadline.
pub fn eventually(what: &str, timeout: Duration, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until every client's view has `n` members (asking with `/who`).
pub fn wait_ring(clients: &mut [Proc], n: usize, timeout: Duration) {
    let want = format!("{n} members in epoch");
    for c in clients.iter_mut() {
        let deadline = Instant::now() + timeout;
        loop {
            c.send_line("/who");
            let seen = |l: &[String]| l.iter().any(|l| l.contains(&want));
            if c.try_wait_for(Duration::from_millis(300), seen) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never saw a ring of {n}",
                c.dir.display()
            );
        }
    }
}

/// A server and one client per name, in `root`, all in one ring.
pub fn start_ring(
    port: u16,
    root: &Path,
    names: &[&str],
    server_args: &[&str],
    client_args: &[&str],
) -> (Proc, Vec<Proc>) {
    let srv = server(port, &root.join("server"), server_args);
    let mut clients: Vec<Proc> = names
        .iter()
        .map(|n| client(port, &root.join(n), n, client_args))
        .collect();
    wait_ring(&mut clients, names.len(), Duration::from_secs(60));
    (srv, clients)
}

/// Each client types `"NAME i"` for every i in `range`.
pub fn burst(clients: &mut [Proc], names: &[&str], range: std::ops::Range<usize>) {
    for i in range {
        for (c, name) in clients.iter_mut().zip(names) {
            c.send_line(&format!("{name} {i}"));
        }
    }
}

/// The text of every client checkpoint and outbox journal in `dir`: what is on disk of the
/// outboxes (a line is in the journal when accepted, in the checkpoint soon after).
pub fn outbox_text(dir: &Path) -> String {
    files_text(dir, &["checkpoint_", "outbox_"])
}

/// Whether a notice containing `needle` was printed.
pub fn has_notice(lines: &[String], needle: &str) -> bool {
    lines
        .iter()
        .any(|l| l.starts_with(r#"{"event":"notice""#) && l.contains(needle))
}

/// Types `count` lines `"{name} {tag} {i}"` and returns them.
pub fn type_lines(p: &mut Proc, name: &str, tag: &str, count: usize) -> Vec<String> {
    let lines: Vec<String> = (0..count).map(|i| format!("{name} {tag} {i}")).collect();
    for line in &lines {
        p.send_line(line);
    }
    lines
}

/// Every replica in `others` is byte-identical to `first`'s, whose seqs have no gap and whose
/// lines are `expected`, each exactly once. A fork (two lines at one seq) makes two replicas
/// differ; a fork papered over afterwards loses a line or repeats one.
pub fn assert_one_history(first: &Proc, others: &[&Proc], expected: &[String]) {
    let reference = first.replica();
    let ours = String::from_utf8_lossy(&reference);
    for p in others {
        let replica = p.replica();
        let theirs = String::from_utf8_lossy(&replica);
        let first_diff = ours.lines().zip(theirs.lines()).find(|(a, b)| a != b);
        assert!(
            ours == theirs,
            "the replicas of {} and {} differ, first at {first_diff:?}",
            first.name,
            p.name
        );
    }
    let texts = check_replica(&reference);
    let unique: std::collections::HashSet<&String> = texts.iter().collect();
    assert_eq!(unique.len(), texts.len(), "a line twice: {texts:?}");
    let typed: std::collections::HashSet<&String> = expected.iter().collect();
    assert_eq!(unique, typed, "exactly the typed lines");
}

/// Waits until every client in `clients` has printed `total` messages (this run's stdout).
pub fn wait_all(clients: &mut [&mut Proc], what: &str, total: usize, timeout: Duration) {
    for c in clients.iter_mut() {
        c.wait_for(what, timeout, |l| count_messages(l) >= total);
    }
}

/// Every process holds the same replica of `n` lines, each once, once they caught up.
pub fn converged(procs: &[&Proc], n: usize, timeout: Duration) {
    eventually("every replica and archive to converge", timeout, || {
        let first = procs[0].read_replica().unwrap_or_default();
        procs
            .iter()
            .all(|p| p.read_replica().unwrap_or_default() == first)
            && first.iter().filter(|b| **b == b'\n').count() == n
    });
    let lines = check_replica(&procs[0].replica());
    let mut unique = lines.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), lines.len(), "a line twice: {lines:?}");
}

/// Whether every one of `lines` is on `dir`'s disk: accepted (outbox) or delivered (replica).
pub fn accepted(dir: &Path, lines: &[String]) -> bool {
    let on_disk = outbox_text(dir) + &files_text(dir, &["replica_"]);
    lines.iter().all(|l| on_disk.contains(l.as_str()))
}

/// The partition step of the LAN tests, on a ring of alice, bob and carol (host 3) that has
/// delivered every line of `expected`: carol is cut off with `how` and types three lines,
/// which reach her disk, while alice and bob type five each; they see each other's lines and
/// carol leave, and she delivers none of theirs. Her link is healed: she joins again, and all
/// three deliver every line. What was typed joins `expected`; `phase` reports each half.
pub fn cut_off_carol_and_heal(
    lan: &netns::Lan,
    how: netns::Cut,
    [alice, bob, carol]: [&mut Proc; 3],
    expected: &mut Vec<String>,
    step: Duration,
    phase: &dyn Fn(&str),
) {
    lan.cut(3, how);
    let offline = type_lines(carol, "carol", "while cut off", 3);
    eventually("carol's offline lines on her disk", step, || {
        accepted(&carol.dir, &offline)
    });
    for (p, name) in [(&mut *alice, "alice"), (&mut *bob, "bob")] {
        expected.extend(type_lines(p, name, "during the cut", 5));
    }
    let without_carol = expected.len();
    wait_all(
        &mut [&mut *alice, &mut *bob],
        "lines during the cut",
        without_carol,
        step,
    );
    alice.wait_left("carol", step);
    carol.drain();
    let heard = message_texts(&carol.seen);
    assert!(
        !heard.iter().any(|t| t.contains("during the cut")),
        "carol was cut off, yet delivered: {heard:?}"
    );
    phase("carol cut off; alice and bob delivered everything without her");

    lan.heal(3, how);
    expected.extend(offline);
    let every = expected.len();
    wait_all(&mut [alice, bob, &mut *carol], "every line", every, step);
    assert!(
        has_notice(&carol.seen, "joining again"),
        "carol rejoined after she was left out: {:?}",
        carol.seen
    );
    phase("carol healed, rejoined and caught up");
}
