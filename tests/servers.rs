//! Several servers on one chat (DESIGN §2, G1, G4): two servers started at the same moment
//! end up in one chat, one coordinating and one standing by; `kill -9` of the coordinating
//! server and then of a client leaves a chat that goes on (its lines, a new client's join);
//! a server that comes back stands by and catches up. Every test ends with byte-identical
//! replicas and archives, every line exactly once.
//!
//! Real binaries on loopback, each test on a port of its own; every wait has a deadline.

mod common;

use common::{client, free_port, server, wait_ring, Proc};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// A quick token timeout: a takeover and a recovery take about a second each.
const QUICK: &[&str] = &["--token-timeout", "1s"];

fn says(p: &mut Proc, what: &str, text: &'static str) {
    p.wait_for(what, LONG, |l| l.iter().any(|l| l.contains(text)));
}

/// [`common::converged`] with this file's deadline.
fn converged(procs: &[&Proc], n: usize) {
    common::converged(procs, n, LONG);
}

/// Both probe at once, hear nothing and start a chat each; they hear each other before either
/// admits anyone, and the one whose chat has the higher id gives it up and stands by.
#[test]
fn two_servers_started_together_end_in_one_chat_one_coordinating() {
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let mut servers = [
        server(port, &root.join("one"), QUICK),
        server(port, &root.join("two"), QUICK),
    ];
    let names = ["alice", "bob"];
    let mut clients: Vec<Proc> = names
        .iter()
        .map(|n| client(port, &root.join(n), n, &[]))
        .collect();
    wait_ring(&mut clients, 2, LONG);
    let stood_by: Vec<bool> = servers
        .iter_mut()
        .map(|s| {
            s.try_wait_for(Duration::from_secs(5), |l| {
                l.iter().any(|l| l.contains("standing by"))
            })
        })
        .collect();
    assert_eq!(
        stood_by.iter().filter(|b| **b).count(),
        1,
        "exactly one stands by: {stood_by:?}"
    );
    for (c, name) in clients.iter_mut().zip(names) {
        c.send_line(&format!("hello from {name}"));
    }
    let mut procs: Vec<&Proc> = servers.iter().collect();
    procs.extend(clients.iter());
    converged(&procs, 2);
}

#[test]
fn kill_9_of_the_coordinating_server_then_of_a_client_and_the_chat_goes_on() {
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let mut first = server(port, &root.join("first"), QUICK);
    says(
        &mut first,
        "the first server to start the chat",
        "coordinating",
    );
    let mut second = server(port, &root.join("second"), QUICK);
    says(&mut second, "the second server to stand by", "standing by");
    let names = ["alice", "bob", "carol"];
    let mut clients: Vec<Proc> = names
        .iter()
        .map(|n| client(port, &root.join(n), n, &[]))
        .collect();
    wait_ring(&mut clients, 3, LONG);
    for (c, name) in clients.iter_mut().zip(names) {
        c.send_line(&format!("{name} before"));
    }
    for c in clients.iter_mut() {
        c.wait_for("three lines", LONG, |l| common::count_messages(l) >= 3);
    }
    // The coordinating server dies for good; the standby takes over; then bob dies too.
    first.kill_9();
    says(&mut second, "the standby to take over", "taking over");
    let mut bob = clients.remove(1);
    bob.kill_9();
    clients[0].send_line("alice after");
    clients[1].send_line("carol after");
    for c in clients.iter_mut() {
        c.wait_for("the survivors' lines", LONG, |l| {
            common::count_messages(l) >= 5
        });
    }
    // A new client joins through the server that took over, and chats.
    let mut dave = client(port, &root.join("dave"), "dave", &[]);
    dave.wait_joined(LONG);
    dave.send_line("dave joined");
    for c in clients.iter_mut() {
        c.wait_for("dave's line", LONG, |l| common::count_messages(l) >= 6);
    }
    // The first server comes back: it stands by and catches up.
    let mut back = server(port, &root.join("first"), QUICK);
    says(&mut back, "the returning server to stand by", "standing by");
    let mut procs = vec![&second, &back, &dave];
    procs.extend(clients.iter());
    converged(&procs, 6);
}

/// With no server reachable, a ring whose token is stuck on a dead member says so, naming it
/// (and `/who` marks it); a client that starts meanwhile hears the ring, and says the server is
/// down rather than that multicast does not work. The server's return moves the ring again.
#[test]
fn a_stalled_ring_without_a_server_says_who_is_silent_and_a_joiner_that_the_server_is_down() {
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let mut srv = server(port, &root.join("server"), QUICK);
    let mut clients: Vec<Proc> = ["alice", "bob"]
        .iter()
        .map(|n| client(port, &root.join(n), n, &[]))
        .collect();
    wait_ring(&mut clients, 2, LONG);
    srv.kill_9();
    clients[1].kill_9();
    let alice = &mut clients[0];
    alice.send_line("anyone there?");
    says(
        alice,
        "the stall notice",
        "the ring is stalled: bob does not answer",
    );
    alice.send_line("/who");
    says(alice, "bob marked silent", "bob (silent)");
    let mut carol = client(
        port,
        &root.join("carol"),
        "carol",
        &["--join-timeout", "3s"],
    );
    says(
        &mut carol,
        "carol to hear the ring",
        "no server answers: it is down",
    );
    assert_eq!(carol.wait_exit(LONG).code(), Some(1));
    let err = std::fs::read_to_string(root.join("carol").join("stderr.log")).unwrap();
    assert!(err.contains("the server is down"), "{err}");
    let _srv = server(port, &root.join("server"), QUICK);
    says(alice, "the ring to move again", "the ring moves again");
    alice.wait_for("alice's line", LONG, |l| {
        common::message_texts(l).contains(&"anyone there?".to_string())
    });
}
