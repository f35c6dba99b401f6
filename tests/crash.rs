//! `kill -9` in the middle of the work: the ring survives crashes and lost tokens, and each
//! test ends with byte-identical replicas and every accepted line exactly once.

mod common;

use common::{
    burst, check_replica, client, count_messages, eventually, free_port, server, start_ring, Proc,
};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(90);

/// Waits until every live client has seen `total` messages, then closes their stdin and
/// checks that all replicas (the server's too) are byte-identical and every line is there
/// exactly once.
fn finish(srv: &mut Proc, clients: &mut [Proc], total: usize) -> Vec<String> {
    // The replica, not stdout: a resumed client prints only what it delivers in this run.
    for c in clients.iter() {
        eventually("every line in every replica", LONG, || {
            replica_texts(c).len() >= total
        });
    }
    // Before anyone leaves: a restarted server pulls what it missed from live members, and a
    // leave it cannot confirm yet (it may still be in its start-up probe) takes those lines
    // away with the leaver until it comes back.
    eventually("the server's archive", LONG, || {
        srv.replica() == clients[0].replica()
    });
    for c in clients.iter_mut() {
        c.close_stdin();
    }
    for c in clients.iter_mut() {
        assert!(c.wait_exit(LONG).success(), "clean leave");
    }
    let first = clients[0].replica();
    for c in clients.iter() {
        assert_eq!(c.replica(), first, "replica of {} differs", c.dir.display());
    }
    assert_eq!(srv.replica(), first, "the server's archive differs");
    let texts = check_replica(&first);
    let unique: HashSet<&String> = texts.iter().collect();
    assert_eq!(unique.len(), texts.len(), "a line was delivered twice");
    texts
}

/// The dead member held the token or was about to: the token is lost, the server
/// recovers, the others go on; the dead author's outbox is delivered once it resumes.
#[test]
fn kill_9_of_a_ring_member_in_the_middle_of_a_burst() {
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let names = ["alice", "bob", "carol"];
    let (mut srv, mut clients) = start_ring(port, &root, &names, &["--token-timeout", "1s"], &[]);
    burst(&mut clients, &names, 0..40);
    // bob dies while the burst is in flight.
    clients[1].wait_for("the burst under way", LONG, |l| count_messages(l) >= 10);
    clients[1].kill_9();
    // Accepted: bob's lines on disk at the kill (replica, checkpoint or journal). Lines still
    // in its stdin pipe were never read, so never accepted, and are gone with the process.
    let on_disk = common::files_text(&root.join("bob"), &["replica_", "checkpoint_", "outbox_"]);
    let accepted = (0..40)
        .filter(|i| on_disk.contains(&format!("\"bob {i}\"")))
        .count();
    let seen = clients[0].messages();
    clients[0].wait_for("the chat to go on", LONG, |l| count_messages(l) > seen + 5);
    // bob comes back with its data dir: its accepted lines go out exactly once.
    clients[1] = client(port, &root.join("bob"), "bob", &["--resume"]);
    let texts = finish(&mut srv, &mut clients, 80 + accepted);
    assert_eq!(
        texts.len(),
        80 + accepted,
        "every accepted line, and no other"
    );
    let bobs: Vec<&String> = texts.iter().filter(|t| t.starts_with("bob ")).collect();
    let typed: Vec<String> = (0..accepted).map(|i| format!("bob {i}")).collect();
    assert_eq!(
        bobs,
        typed.iter().collect::<Vec<_>>(),
        "bob's accepted lines, in order"
    );
}

/// The server dies in the middle of a burst and comes back later: the ring keeps going,
/// the server catches up, nothing is lost or doubled.
#[test]
fn kill_9_of_the_server_in_the_middle_of_a_burst_and_restart() {
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let args = ["--sync-interval", "1s"];
    let names = ["alice", "bob"];
    let (mut srv, mut clients) = start_ring(port, &root, &names, &args, &[]);
    burst(&mut clients, &names, 0..50);
    clients[0].wait_for("the burst under way", LONG, |l| count_messages(l) >= 10);
    srv.kill_9();
    clients[0].wait_for("the burst to go on without the server", LONG, |l| {
        count_messages(l) >= 100
    });
    let mut srv = server(port, &root.join("server"), &args);
    for (c, name) in clients.iter_mut().zip(names) {
        c.send_line(&format!("{name} after"));
    }
    let texts = finish(&mut srv, &mut clients, 102);
    assert_eq!(texts.len(), 102);
}

/// kill -9 of a client in the middle of a long pipe (its outbox journal starting over again
/// and again), then `--resume`: every line it accepted goes out exactly once and in order, so
/// the replica holds exactly the first k piped lines, with k at least what was delivered
/// before the kill.
#[test]
fn kill_9_in_the_middle_of_a_long_pipe_loses_and_doubles_nothing() {
    use std::io::Write;
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let _srv = server(port, &root.join("server"), &[]);
    let dir = root.join("alice");
    let mut alice = client(port, &dir, "alice", &[]);
    // Far more than the ring sends in the time it takes to see 15,000 delivered.
    let lines = 400_000;
    let mut stdin = alice.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let text: String = (0..lines).map(|i| format!("piped {i}\n")).collect();
        // Fails once the client is killed: the rest was never read, so never accepted.
        let _ = stdin.write_all(text.as_bytes());
    });
    alice.wait_for("a good part of the pipe", LONG, |l| {
        count_messages(l) >= 15_000
    });
    let delivered_before = alice.messages();
    alice.kill_9();
    writer.join().unwrap();
    // Accepted: every line on disk at the kill, in the replica, the checkpoint or the journal.
    let on_disk = common::files_text(&dir, &["replica_", "checkpoint_", "outbox_"]);
    let accepted = on_disk
        .split("piped ")
        .skip(1)
        .filter_map(|rest| rest.split('"').next()?.parse::<usize>().ok())
        .max()
        .map_or(0, |last| last + 1);
    let mut again = client(port, &dir, "alice", &["--resume"]);
    again.close_stdin();
    assert!(again.wait_exit(LONG).success(), "drained and left");
    let texts = check_replica(&again.replica());
    assert!(accepted >= delivered_before);
    assert_eq!(texts.len(), accepted, "every accepted line, and no other");
    for (i, text) in texts.iter().enumerate() {
        assert_eq!(text, &format!("piped {i}"), "line {i} of the replica");
    }
}

/// One node of a 3-client group, the server included, is killed with -9 every few
/// seconds for 30 s under 5 % simulated loss, and restarted. Every line that a client
/// accepted (its process lived a while after reading it) is delivered exactly once.
#[test]
fn chaos_kill_9_a_random_node_every_few_seconds_under_loss() {
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let net = ["--loss", "0.05"];
    let srv_args = [
        "--loss",
        "0.05",
        "--token-timeout",
        "1s",
        "--sync-interval",
        "2s",
    ];
    let names = ["alice", "bob", "carol"];
    let dirs: Vec<PathBuf> = names.iter().map(|n| root.join(n)).collect();
    let mut srv = server(port, &root.join("server"), &srv_args);
    let mut clients: Vec<Proc> = names
        .iter()
        .zip(&dirs)
        .map(|(n, d)| client(port, d, n, &net))
        .collect();
    // line -> (client, when written); incarnation kill times per client.
    let mut written: HashMap<String, (usize, Instant)> = HashMap::new();
    let mut killed_at: Vec<Vec<Instant>> = vec![Vec::new(); names.len()];
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let start = Instant::now();
    let mut next_kill = start + Duration::from_secs(3);
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(30) {
        for (i, c) in clients.iter_mut().enumerate() {
            let line = format!("{} {n}", names[i]);
            c.send_line(&line);
            written.insert(line, (i, Instant::now()));
        }
        n += 1;
        if Instant::now() >= next_kill {
            let victim = (next() % 4) as usize;
            if victim == 3 {
                srv.kill_9();
                srv = server(port, &root.join("server"), &srv_args);
            } else {
                clients[victim].kill_9();
                killed_at[victim].push(Instant::now());
                clients[victim] = client(port, &dirs[victim], names[victim], &{
                    let mut a = net.to_vec();
                    a.push("--resume");
                    a
                });
            }
            next_kill = Instant::now() + Duration::from_secs(2 + next() % 3);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Lines written at least a second before their process was killed were surely read
    // and put in the outbox: they must be delivered.
    let must: HashSet<&String> = written
        .iter()
        .filter(|(_, (i, at))| {
            !killed_at[*i]
                .iter()
                .any(|k| *k >= *at && *k < *at + Duration::from_secs(1))
        })
        .map(|(line, _)| line)
        .collect();
    let must_count = must.len();
    wait_all_delivered(&clients, &must);
    eventually("the replicas to agree", LONG, || {
        let first = clients[0].replica();
        clients.iter().all(|c| c.replica() == first)
    });
    let texts = finish(&mut srv, &mut clients, 0);
    let got: HashSet<&String> = texts.iter().collect();
    for line in &must {
        assert!(got.contains(line), "accepted line {line:?} was lost");
    }
    assert!(
        texts.iter().all(|t| written.contains_key(t)),
        "a line nobody typed"
    );
    eprintln!(
        "{} lines delivered, {must_count} of them surely accepted",
        texts.len()
    );
}

fn wait_all_delivered(clients: &[Proc], must: &HashSet<&String>) {
    for c in clients {
        eventually("every accepted line", LONG, || {
            let got = replica_texts(c);
            must.iter().all(|line| got.contains(*line))
        });
    }
}

/// The texts in a client's replica so far (a torn last line is skipped).
fn replica_texts(c: &Proc) -> HashSet<String> {
    String::from_utf8_lossy(&c.replica())
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect()
}

/// Two processes never share one identity: the second gets the lock error and exit 1.
#[test]
fn a_second_process_on_the_same_identity_is_refused() {
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let _srv = server(port, &root.join("server"), &[]);
    let dir = root.join("alice");
    let mut alice = client(port, &dir, "alice", &[]);
    alice.wait_joined(LONG);
    let out = run_to_end(env!("CARGO_BIN_EXE_client"), port, &dir, &["--resume"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lock") && err.contains("another process"),
        "{err}"
    );
}

fn run_to_end(bin: &str, port: u16, dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(dir)
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}
