//! End-to-end tests of the real binaries on loopback (each on its own port, in temp dirs).

mod common;

use common::{check_replica, client, count_messages, free_port, server, Proc};
use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

/// Three clients each type `lines` lines; each keeps stdin open until it has seen every
/// message, then leaves. Returns the processes (exited) for inspection.
fn chat(port: u16, extra: &[&str], lines: usize, timeout: Duration) -> (Proc, Vec<Proc>) {
    let root = tempfile::tempdir().unwrap().keep();
    let mut srv = server(port, &root.join("server"), extra);
    srv.wait_for("server start", Duration::from_secs(10), |l| !l.is_empty());
    let names = ["alice", "bob", "carol"];
    let mut clients: Vec<Proc> = names
        .iter()
        .map(|n| client(port, &root.join(n), n, extra))
        .collect();
    for (c, name) in clients.iter_mut().zip(names) {
        for i in 0..lines {
            c.send_line(&format!("{name} says {i}"));
        }
    }
    let total = lines * names.len();
    for c in &mut clients {
        c.wait_for("every message", timeout, |l| count_messages(l) >= total);
        c.close_stdin();
    }
    for c in &mut clients {
        assert!(
            c.wait_exit(Duration::from_secs(30)).success(),
            "clean leave exits 0"
        );
    }
    (srv, clients)
}

/// All replicas byte-identical, gapless, every line exactly once, each author's in order.
fn assert_converged(srv: &mut Proc, clients: &[Proc], expected: usize) {
    let first = clients[0].replica();
    for c in clients {
        assert_eq!(c.replica(), first, "replica of {} differs", c.dir.display());
    }
    common::eventually("server archive", Duration::from_secs(20), || {
        srv.replica() == first
    });
    let texts = check_replica(&first);
    assert_eq!(texts.len(), expected);
    let unique: HashSet<&String> = texts.iter().collect();
    assert_eq!(unique.len(), expected, "every line exactly once");
    for name in ["alice", "bob", "carol"] {
        let own: Vec<usize> = texts
            .iter()
            .filter(|t| t.starts_with(name))
            .map(|t| t.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(
            own.windows(2).all(|w| w[0] < w[1]),
            "{name}'s lines in typing order"
        );
    }
}

#[test]
fn three_clients_exchange_lines_and_end_with_identical_replicas() {
    let (mut srv, clients) = chat(free_port(), &[], 20, Duration::from_secs(30));
    assert_converged(&mut srv, &clients, 60);
}

/// `--interface lo`: the name resolves to 127.0.0.1, and the start notices name both.
#[test]
fn nodes_started_with_an_interface_name_chat_and_say_which_interface() {
    let lo = ["--interface", "lo"];
    let (mut srv, clients) = chat(free_port(), &lo, 5, Duration::from_secs(30));
    assert_converged(&mut srv, &clients, 15);
    for p in clients.iter().chain([&srv]) {
        assert!(
            p.seen.iter().any(|l| l.contains(" via lo (127.0.0.1)")),
            "{:?}",
            p.seen
        );
    }
}

#[test]
fn the_original_100ms_to_1s_delays_on_every_node_still_converge() {
    let delay = ["--delay", "100ms..1s"];
    let (mut srv, clients) = chat(free_port(), &delay, 20, Duration::from_secs(90));
    assert_converged(&mut srv, &clients, 60);
}

#[test]
fn a_late_joiner_receives_the_whole_history() {
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let srv = server(port, &root.join("server"), &[]);
    let mut alice = client(port, &root.join("alice"), "alice", &[]);
    for i in 0..50 {
        alice.send_line(&format!("early {i}"));
    }
    alice.wait_for("own lines", Duration::from_secs(30), |l| {
        count_messages(l) >= 50
    });
    let mut late = client(port, &root.join("late"), "late", &[]);
    late.wait_for("the history", Duration::from_secs(30), |l| {
        count_messages(l) >= 50
    });
    late.send_line("hello, I am new");
    for p in [&mut alice, &mut late] {
        p.wait_for("the new line", Duration::from_secs(30), |l| {
            count_messages(l) >= 51
        });
        p.close_stdin();
    }
    for p in [&mut alice, &mut late] {
        assert!(p.wait_exit(Duration::from_secs(30)).success());
    }
    assert_eq!(alice.replica(), late.replica());
    common::eventually("server archive", Duration::from_secs(20), || {
        srv.replica() == late.replica()
    });
    assert_eq!(check_replica(&late.replica()).len(), 51);
}

#[test]
fn bad_flags_exit_2_with_clap_message() {
    for (bin, args) in [
        (env!("CARGO_BIN_EXE_client"), vec!["--port", "x"]),
        (env!("CARGO_BIN_EXE_client"), vec!["--loss", "1.5"]),
        (env!("CARGO_BIN_EXE_server"), vec!["--delay", "1s..100ms"]),
        (env!("CARGO_BIN_EXE_server"), vec!["--no-such-flag"]),
    ] {
        let out = Command::new(bin).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("error"),
            "{args:?}"
        );
    }
}

#[test]
fn a_client_without_a_server_exits_1_naming_group_port_and_interface() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_client"))
        .args([
            "--port",
            &port.to_string(),
            "--join-timeout",
            "500ms",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("224.1.1.1") && err.contains(&port.to_string()) && err.contains("127.0.0.1"),
        "{err}"
    );
}

/// Flow control: a pipe of more lines than the outbox holds, with no server yet. The client
/// stops reading at `MAX_OUTBOX_LINES` (so the outbox on disk stays bounded) and says so;
/// once a server comes, every line goes out exactly once and EOF ends the client cleanly.
#[test]
fn a_pipe_larger_than_the_outbox_is_read_at_ring_speed() {
    use mcast_chat::app::client::MAX_OUTBOX_LINES;
    use std::io::Write;
    const LONG: Duration = Duration::from_secs(120);
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let dir = root.join("alice");
    let mut alice = client(port, &dir, "alice", &["--join-timeout", "120s"]);
    let lines = MAX_OUTBOX_LINES * 2 + 500;
    let mut stdin = alice.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let text: String = (0..lines).map(|i| format!("piped {i}\n")).collect();
        // Blocks while the client does not read; EOF when done.
        stdin.write_all(text.as_bytes()).unwrap();
    });
    alice.wait_for("the outbox to fill", LONG, |l| {
        l.iter().any(|l| l.contains("reading more input once"))
    });
    let on_disk = common::files_text(&dir, &["checkpoint_"]);
    let cp: serde_json::Value = serde_json::from_str(&on_disk).unwrap();
    let outbox = cp["outbox"].as_array().unwrap().len();
    assert!(
        outbox <= MAX_OUTBOX_LINES + 1024,
        "{outbox} lines in the outbox"
    );

    let _srv = server(port, &root.join("server"), &[]);
    assert!(alice.wait_exit(LONG).success(), "EOF after the last line");
    writer.join().unwrap();
    let texts = check_replica(&alice.replica());
    assert_eq!(texts.len(), lines);
    let unique: HashSet<&String> = texts.iter().collect();
    assert_eq!(unique.len(), lines, "every line exactly once");
}

/// Two clients named carol are told apart: `/who` shows each as `carol#` and the first four
/// hex digits of its identity, and a text-mode client shows the other carol's line so too.
#[test]
fn two_members_of_one_name_are_told_apart_by_their_identity() {
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let _srv = server(port, &root.join("server"), &[]);
    let mut carols: Vec<Proc> = ["one", "two"]
        .iter()
        .map(|dir| client(port, &root.join(dir), "carol", &[]))
        .collect();
    common::wait_ring(&mut carols, 2, Duration::from_secs(30));
    let ids: Vec<String> = carols
        .iter()
        .map(|p| {
            let line = p
                .seen
                .iter()
                .find(|l| l.contains("you are carol ("))
                .unwrap();
            let at = line.find("you are carol (").unwrap() + "you are carol (".len();
            line[at..at + 4].to_string()
        })
        .collect();
    carols[0].send_line("/who");
    carols[0].wait_for("/who", Duration::from_secs(30), |l| {
        l.iter().any(|l| l.contains("2 members in epoch"))
    });
    let who = carols[0]
        .seen
        .iter()
        .rfind(|l| l.contains("2 members in epoch"))
        .unwrap();
    assert!(who.contains(&format!("carol#{} (you)", ids[0])), "{who}");
    assert!(who.contains(&format!("carol#{}", ids[1])), "{who}");
}
