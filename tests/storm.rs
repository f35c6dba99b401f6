//! A join and leave storm with the real binaries on loopback: one server and 40 clients
//! started at once, each typing two lines, then all leaving at the same moment (EOF on every
//! stdin). Checks G1 (one order: 41 byte-identical replicas, seq gapless from 1) and G2 (every
//! line exactly once, each author's in typing order) when the views change in bursts, and that
//! every member is let go cleanly (exit 0) when all of them leave together.
//!
//! Two storms: one started together with the server (whose start-up probe hears most joins at
//! once), one into a server that already coordinates. With the debug build on 2 cores both
//! together take about 4 s (the server's probe is 2 of them); 40 clients and not the 128 of the
//! ring limit keep that cheap enough for every `cargo test` (tests/limits.rs checks the limit
//! on the server's state machine). The deadlines are many times what a run takes, for a busy
//! host; nothing here sleeps without a condition.

mod common;

use common::{check_replica, client, count_messages, free_port, server, Proc};
use mcast_chat::ui::display::NOTICE_WIDTH;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Clients in the storm.
const CLIENTS: usize = 40;
/// Lines each client types: the first before it has joined, the second once it has.
const LINES: usize = 2;
/// For the joins and every line on every client, from the first start.
const ALL_LINES: Duration = Duration::from_secs(180);
/// For the server to say it coordinates (with `server_first`).
const SERVER_UP: Duration = Duration::from_secs(60);
/// For every client to exit once all stdins are closed.
const ALL_EXIT: Duration = Duration::from_secs(90);

fn name(c: usize) -> String {
    format!("c{c:02}")
}

fn line(c: usize, i: usize) -> String {
    format!("{} line {i}", name(c))
}

/// What is left of `deadline`, at least a moment (so a late check still reads once).
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100))
}

/// A view the server installed: `* view EPOCH: N members, cut at #SEQ`.
#[derive(Debug)]
struct ViewLine {
    epoch: u64,
    members: usize,
}

/// The views in the server's stdout, in the order it installed them.
fn views(server_stdout: &[String]) -> Vec<ViewLine> {
    server_stdout
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix("* view ")?;
            let (epoch, rest) = rest.split_once(": ")?;
            let (members, _) = rest.split_once(" member")?;
            Some(ViewLine {
                epoch: epoch.parse().ok()?,
                members: members.parse().ok()?,
            })
        })
        .collect()
}

/// The 41 replicas are one history: byte-identical, seq 1..=n, every typed line exactly once,
/// each client's lines in the order it typed them.
fn assert_one_history(srv: &mut Proc, clients: &[Proc]) {
    let first = clients[0].replica();
    for c in clients {
        assert!(c.replica() == first, "replica of {} differs", c.name);
    }
    common::eventually("the server's archive", Duration::from_secs(30), || {
        srv.read_replica().is_ok_and(|r| r == first)
    });
    let texts = check_replica(&first);
    let expected: HashSet<String> = (0..CLIENTS)
        .flat_map(|c| (0..LINES).map(move |i| line(c, i)))
        .collect();
    assert_eq!(texts.len(), expected.len(), "one record per typed line");
    let delivered: HashSet<String> = texts.iter().cloned().collect();
    assert_eq!(delivered, expected, "every typed line exactly once");
    for c in 0..CLIENTS {
        let prefix = format!("{} line ", name(c));
        let own: Vec<&String> = texts.iter().filter(|t| t.starts_with(&prefix)).collect();
        let typed: Vec<String> = (0..LINES).map(|i| line(c, i)).collect();
        assert!(
            own.into_iter().eq(&typed),
            "{}'s lines out of order",
            name(c)
        );
    }
}

/// The text of a `--json` notice line.
fn notice_text(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    (v["event"] == "notice").then(|| v["text"].as_str().map(str::to_string))?
}

/// Asks client `c` of the full ring `/who`: its answer gives the count, then every client, all
/// in lines that fit a notice, marking `c` as "(you)".
fn ask_who(p: &mut Proc, c: usize) -> String {
    let before = p.seen.len();
    p.send_line("/who");
    let head = format!("{CLIENTS} members in epoch");
    let answer = |l: &[String]| {
        l[before..]
            .iter()
            .filter_map(|l| notice_text(l))
            .find(|t| t.starts_with(&head))
    };
    p.wait_for("the answer to /who", SERVER_UP, |l| answer(l).is_some());
    let text = answer(&p.seen).unwrap();
    let fits = |l: &str| l.chars().count() <= NOTICE_WIDTH;
    assert!(text.lines().all(fits), "{text}");
    for other in 0..CLIENTS {
        let you = if other == c { " (you)" } else { "" };
        let pattern = format!("{}{you}", name(other));
        assert!(text.contains(&pattern), "{pattern} missing from {text}");
    }
    text
}

/// Starts the server and [`CLIENTS`] clients (the clients right after the server, or once it
/// coordinates with `server_first`), each typing [`LINES`] lines; waits until every client
/// has every line, closes every stdin at once, and checks the exits, the replicas and the
/// server's views. Prints the timings, the views and the answer to `/who` (see them with
/// `--nocapture`).
fn storm(server_first: bool) {
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut srv = server(port, &root.path().join("server"), &[]);
    if server_first {
        srv.wait_for("the server to coordinate", SERVER_UP, |l| {
            l.iter().any(|l| l.contains("coordinating"))
        });
    }
    let started = Instant::now();
    let join = ["--join-timeout", "120s"];
    let mut clients: Vec<Proc> = (0..CLIENTS)
        .map(|c| client(port, &root.path().join(name(c)), &name(c), &join))
        .collect();
    // The first line waits in the outbox until its author is admitted.
    for (c, p) in clients.iter_mut().enumerate() {
        p.send_line(&line(c, 0));
    }
    let deadline = started + ALL_LINES;
    for (c, p) in clients.iter_mut().enumerate() {
        p.wait_joined(remaining(deadline));
        p.send_line(&line(c, 1));
    }
    let joined = started.elapsed();
    let total = CLIENTS * LINES;
    for p in &mut clients {
        p.wait_for("every line", remaining(deadline), |l| {
            count_messages(l) >= total
        });
    }
    let chatted = started.elapsed();
    let who = ask_who(&mut clients[0], 0);

    for p in &mut clients {
        p.close_stdin();
    }
    let deadline = Instant::now() + ALL_EXIT;
    for p in &mut clients {
        let status = p.wait_exit(remaining(deadline));
        assert!(status.success(), "{} left with {status}", p.name);
    }
    let exited = started.elapsed();
    assert_one_history(&mut srv, &clients);

    // Every client was in one view at last, and all were let go: the last view is empty.
    common::eventually("the empty view", Duration::from_secs(30), || {
        srv.drain();
        views(&srv.seen).last().is_some_and(|v| v.members == 0)
    });
    let views = views(&srv.seen);
    let epochs: Vec<u64> = views.iter().map(|v| v.epoch).collect();
    assert!(epochs.windows(2).all(|w| w[0] < w[1]), "epochs {epochs:?}");
    let Some(full) = views.iter().position(|v| v.members == CLIENTS) else {
        panic!("no view of all {CLIENTS} clients: {views:?}");
    };
    println!(
        "storm of {CLIENTS}: all joined at {joined:.1?} in {} views, every line everywhere at \
         {chatted:.1?}, all exited at {exited:.1?} in {} more views",
        full + 1,
        views.len() - full - 1
    );
    println!("/who at {}:\n{who}", name(0));
}

/// All start together: the server's start-up probe hears most of the joins.
#[test]
fn g1_g2_forty_clients_join_chat_and_leave_at_once() {
    storm(false);
}

/// The server coordinates already: the joins arrive while views are being installed.
#[test]
fn g1_g2_forty_clients_storm_a_running_server_chat_and_leave_at_once() {
    storm(true);
}
