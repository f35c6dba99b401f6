//! Unicast mode on loopback (`--peer`, DESIGN §4 and §5; G1, G2, G4): a server given its own
//! address as `--peer` and clients given the server's chat as they would over multicast,
//! through `kill -9` of a client and of the server; two servers that know each other, the
//! coordinating one killed; a client whose only peer is another client; and what a client
//! given a bad peer says: one that does not
//! resolve, one that answers garbage, one where nothing listens, and a server in multicast
//! mode (the modes do not mix). Every run that chats ends with byte-identical replicas and
//! archives, every line exactly once.
//!
//! Real binaries on 127.0.0.1, each test on ports of its own; every wait has a deadline. The
//! same runs across namespaces on a bridge that drops all multicast are in `lan_unicast.rs`.

mod common;

use common::Proc;
use common::{client, count_messages, eventually, free_port, server, wait_ring};
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);

/// A quick token timeout: a recovery or a takeover takes about a second.
const QUICK: &str = "1s";

fn on(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// A server on `port` in unicast mode: `--peer` names every server, itself included.
fn unicast_server(port: u16, dir: &Path, servers: &[u16]) -> Proc {
    server_with(port, dir, servers, &[])
}

fn server_with(port: u16, dir: &Path, servers: &[u16], extra: &[&str]) -> Proc {
    let mut args = vec!["--token-timeout".to_string(), QUICK.to_string()];
    for &s in servers {
        args.extend(["--peer".to_string(), on(s)]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    server(port, dir, &args)
}

/// A client whose `--peer`s are `servers` (its `--port` is the first one's, as a user who
/// switches an existing command line to unicast would leave it).
fn unicast_client(servers: &[u16], dir: &Path, name: &str, extra: &[&str]) -> Proc {
    let mut args: Vec<String> = servers
        .iter()
        .flat_map(|&s| ["--peer".to_string(), on(s)])
        .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    client(servers[0], dir, name, &args)
}

/// [`common::converged`] with this file's deadline.
fn converged(procs: &[&Proc], n: usize) {
    common::converged(procs, n, LONG);
}

fn wait_messages(clients: &mut [Proc], n: usize) {
    for c in clients.iter_mut() {
        c.wait_for(&format!("{n} messages"), LONG, |l| count_messages(l) >= n);
    }
}

#[test]
fn a_unicast_chat_survives_kill_9_of_a_client_and_of_the_server() {
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let mut srv = unicast_server(port, &root.join("server"), &[port]);
    let names = ["alice", "bob", "carol"];
    let mut clients: Vec<Proc> = names
        .iter()
        .map(|n| unicast_client(&[port], &root.join(n), n, &[]))
        .collect();
    wait_ring(&mut clients, 3, LONG);
    for (c, name) in clients.iter_mut().zip(names) {
        (0..5).for_each(|i| c.send_line(&format!("{name} {i}")));
    }
    wait_messages(&mut clients, 15);

    // bob types and dies at once; he comes back with his data dir and his lines arrive once.
    (5..8).for_each(|i| clients[1].send_line(&format!("bob {i}")));
    eventually("bob's lines in his outbox", LONG, || {
        common::outbox_text(&root.join("bob")).contains("bob 7")
    });
    clients[1].kill_9();
    clients[0].send_line("alice while bob is down");
    clients[1] = unicast_client(&[port], &root.join("bob"), "bob", &["--resume"]);
    clients[1].wait_joined(LONG);
    wait_messages(&mut clients[..1], 19);

    // The server dies mid-chat and comes back on its port and data dir.
    srv.kill_9();
    clients[2].send_line("carol while the server is down");
    srv = unicast_server(port, &root.join("server"), &[port]);
    srv.wait_for("the server back", LONG, |l| {
        l.iter().any(|l| l.contains("coordinating"))
    });
    clients[0].send_line("alice after the server's return");
    let mut procs: Vec<&Proc> = vec![&srv];
    procs.extend(clients.iter());
    converged(&procs, 21);
}

/// Two servers, each given both as `--peer`, and clients given both: the coordinating one is
/// killed, the other takes over, a new client joins through it, and the first comes back.
#[test]
fn two_unicast_servers_one_killed_and_the_chat_goes_on() {
    let root = tempfile::tempdir().unwrap().keep();
    let ports = [free_port(), free_port()];
    let mut first = unicast_server(ports[0], &root.join("first"), &ports);
    first.wait_for("the first to coordinate", LONG, |l| {
        l.iter().any(|l| l.contains("coordinating"))
    });
    let mut second = unicast_server(ports[1], &root.join("second"), &ports);
    second.wait_for("the second to stand by", LONG, |l| {
        l.iter().any(|l| l.contains("standing by"))
    });
    let names = ["alice", "bob"];
    let mut clients: Vec<Proc> = names
        .iter()
        .map(|n| unicast_client(&ports, &root.join(n), n, &[]))
        .collect();
    wait_ring(&mut clients, 2, LONG);
    for (c, name) in clients.iter_mut().zip(names) {
        c.send_line(&format!("{name} before"));
    }
    wait_messages(&mut clients, 2);
    first.kill_9();
    second.wait_for("the standby to take over", LONG, |l| {
        l.iter().any(|l| l.contains("taking over"))
    });
    clients[0].send_line("alice after");
    let mut dave = unicast_client(&ports, &root.join("dave"), "dave", &[]);
    dave.wait_joined(LONG);
    dave.send_line("dave joined");
    wait_messages(&mut clients, 4);
    let back = unicast_server(ports[0], &root.join("first"), &ports);
    let mut procs = vec![&second, &back, &dave];
    procs.extend(clients.iter());
    converged(&procs, 4);
}

/// A client whose one `--peer` is another client (on its `--listen-port`): that member tells
/// it where the server is, and it joins. Every datagram is sealed (`--key-file`).
#[test]
fn a_client_joins_through_a_member_it_was_given_as_peer() {
    let root = tempfile::tempdir().unwrap().keep();
    let key = root.join("chat.key");
    std::fs::write(&key, "a shared secret of some length").unwrap();
    let key = key.to_str().unwrap();
    let (port, alice_port) = (free_port(), free_port());
    let _srv = server_with(port, &root.join("server"), &[port], &["--key-file", key]);
    let listen = alice_port.to_string();
    let mut alice = unicast_client(
        &[port],
        &root.join("alice"),
        "alice",
        &["--listen-port", &listen, "--key-file", key],
    );
    alice.wait_joined(LONG);
    let bob_args = ["--key-file", key];
    let mut bob = unicast_client(&[alice_port], &root.join("bob"), "bob", &bob_args);
    bob.wait_joined(LONG);
    bob.send_line("bob came in through alice");
    alice.send_line("welcome bob");
    let mut both = [alice, bob];
    wait_messages(&mut both, 2);
    converged(&[&both[0], &both[1]], 2);
}

/// The client's exit status and stderr, given `--join-timeout 2s` and these peers.
fn failed_join(root: &Path, name: &str, peers: &[String]) -> String {
    let mut args = vec!["--join-timeout", "2s"];
    for p in peers {
        args.extend(["--peer", p.as_str()]);
    }
    let started = Instant::now();
    let mut c = client(free_port(), &root.join(name), name, &args);
    assert_eq!(c.wait_exit(LONG).code(), Some(1), "{name} exits 1");
    assert!(started.elapsed() < LONG, "no hang");
    std::fs::read_to_string(root.join(name).join("stderr.log")).unwrap_or_default()
}

#[test]
fn a_bad_peer_is_an_error_that_names_it_never_a_hang() {
    let root = tempfile::tempdir().unwrap().keep();
    let err = failed_join(&root, "nowhere", &["no-such-host.invalid:5007".into()]);
    assert!(
        err.contains("--peer no-such-host.invalid:5007 does not resolve"),
        "{err}"
    );

    // Nothing listens on either peer: the error names both.
    let (a, b) = (on(free_port()), on(free_port()));
    let err = failed_join(&root, "silence", &[a.clone(), b.clone()]);
    assert!(
        err.contains(&format!("tried --peer {a}, --peer {b}")),
        "{err}"
    );
    assert!(
        err.contains("is a server running there with --peer"),
        "{err}"
    );

    // A peer that answers every datagram with garbage: counted and said.
    let garbage = UdpSocket::bind("127.0.0.1:0").unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let at = on(garbage.local_addr().unwrap().port());
    let answering = std::thread::spawn(move || {
        let deadline = Instant::now() + LONG;
        let mut buf = [0u8; 2048];
        let mut answered = 0;
        while Instant::now() < deadline && answered < 5 {
            if let Ok((_, from)) = garbage.recv_from(&mut buf) {
                let _ = garbage.send_to(b"\xff not a chat datagram", from);
                answered += 1;
            }
        }
        answered
    });
    let err = failed_join(&root, "garbled", std::slice::from_ref(&at));
    assert!(err.contains(&format!("tried --peer {at}")), "{err}");
    assert!(err.contains("could not be read"), "{err}");
    assert!(answering.join().unwrap() > 0, "the client sent its hello");
}

/// A server in multicast mode does not listen for unicast: a client given it as `--peer`
/// does not get in, and says what to check. Modes do not mix.
#[test]
fn a_unicast_client_does_not_join_a_multicast_server_and_says_why() {
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let mut srv = server(port, &root.join("server"), &[]);
    srv.wait_for("the server to coordinate", LONG, |l| {
        l.iter().any(|l| l.contains("coordinating"))
    });
    let err = failed_join(&root, "uni", &[on(port)]);
    assert!(
        err.contains("a server in multicast mode does not listen for unicast"),
        "{err}"
    );
}
