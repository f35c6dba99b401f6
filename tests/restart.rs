//! Restarts of real processes: `--resume` after `kill -9`, the server catching up after its
//! own restart (reconciliation), and SIGTERM leaving cleanly.

mod common;

use common::{check_replica, client, count_messages, eventually, free_port, server, wait_ring};
use std::io::Write;
use std::process::Command;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// G2 and --resume: lines accepted while no server runs are on disk; a client killed with
/// -9 comes back with the same identity and sends them exactly once.
#[test]
fn resume_after_kill_9_keeps_identity_outbox_and_history() {
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let dir = root.join("alice");
    let mut alice = client(port, &dir, "alice", &["--join-timeout", "60s"]);
    for i in 0..3 {
        alice.send_line(&format!("typed offline {i}"));
    }
    eventually("all three lines in the outbox on disk", LONG, || {
        common::outbox_text(&dir).contains("typed offline 2")
    });
    alice.kill_9();

    let _srv = server(port, &root.join("server"), &[]);
    let mut again = client(port, &dir, "alice", &["--resume"]);
    again.wait_for("the offline lines", LONG, |l| count_messages(l) >= 3);
    assert!(again
        .seen
        .iter()
        .any(|l| l.contains("3 lines from last time")));
    again.send_line("back online");
    again.wait_for("the new line", LONG, |l| count_messages(l) >= 4);
    again.close_stdin();
    assert!(again.wait_exit(LONG).success());
    let texts = check_replica(&again.replica());
    assert_eq!(
        texts,
        [
            "typed offline 0",
            "typed offline 1",
            "typed offline 2",
            "back online"
        ]
    );
}

/// G2 through the outbox journal: a line appended to the journal after the last checkpoint
/// (as when `kill -9` lands between the append and the next checkpoint) is sent once on
/// `--resume`; a torn last line (a crash inside the append, never accepted) is cut.
#[test]
fn resume_sends_journal_lines_past_the_checkpoint_and_cuts_a_torn_one() {
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let dir = root.join("alice");
    let mut alice = client(port, &dir, "alice", &["--join-timeout", "60s"]);
    alice.send_line("in the checkpoint");
    eventually("the line in the checkpoint", LONG, || {
        checkpoint_of(&dir).contains("in the checkpoint")
    });
    alice.kill_9();
    let journal = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("outbox_")
        })
        .expect("an outbox journal in the data dir");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap();
    if std::fs::metadata(&journal).unwrap().len() == 0 {
        // The checkpoint covered everything and the journal started over: it gets its
        // header with the first append, in the generation after the checkpoint's.
        let cp: serde_json::Value = serde_json::from_str(&checkpoint_of(&dir)).unwrap();
        let generation = cp["journal"]["generation"].as_u64().unwrap() + 1;
        writeln!(file, r#"{{"journal":"outbox","generation":{generation}}}"#).unwrap();
    }
    let id = uuid::Uuid::new_v4();
    writeln!(
        file,
        r#"{{"id":"{id}","text":"only in the journal","sent_at_ms":1}}"#
    )
    .unwrap();
    write!(file, r#"{{"id":"{}","text":"torn"#, uuid::Uuid::new_v4()).unwrap();
    drop(file);

    let _srv = server(port, &root.join("server"), &[]);
    let mut again = client(port, &dir, "alice", &["--resume"]);
    again.wait_for("both lines", LONG, |l| count_messages(l) >= 2);
    again.close_stdin();
    assert!(again.wait_exit(LONG).success());
    let texts = check_replica(&again.replica());
    assert_eq!(texts, ["in the checkpoint", "only in the journal"]);
    let stderr = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    assert!(stderr.contains("torn last line"), "{stderr}");
}

/// The client checkpoint in `dir`, as text.
fn checkpoint_of(dir: &std::path::Path) -> String {
    common::files_text(dir, &["checkpoint_"])
}

/// With the server down the ring keeps chatting; the restarted server catches up from the
/// members (reconciliation), and every replica converges.
#[test]
fn the_ring_chats_without_the_server_and_the_server_catches_up() {
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let sync = ["--sync-interval", "1s"];
    let mut srv = server(port, &root.join("server"), &sync);
    let mut ring = vec![
        client(port, &root.join("alice"), "alice", &[]),
        client(port, &root.join("bob"), "bob", &[]),
    ];
    wait_ring(&mut ring, 2, LONG);
    let (mut alice, mut bob) = (ring.remove(0), ring.remove(0));
    alice.send_line("before the outage");
    bob.wait_for("first line", LONG, |l| count_messages(l) >= 1);
    srv.kill_9();
    for i in 0..5 {
        bob.send_line(&format!("during the outage {i}"));
    }
    alice.wait_for("lines sent while the server is down", LONG, |l| {
        count_messages(l) >= 6
    });
    let srv = server(port, &root.join("server"), &sync);
    alice.send_line("after the restart");
    for p in [&mut alice, &mut bob] {
        p.wait_for("every line", LONG, |l| count_messages(l) >= 7);
    }
    eventually("the server's archive to catch up", LONG, || {
        srv.replica() == alice.replica()
    });
    assert_eq!(alice.replica(), bob.replica());
    assert_eq!(check_replica(&alice.replica()).len(), 7);
}

/// SIGTERM: the client leaves cleanly (exit 0) and the others see it go.
#[test]
fn sigterm_leaves_the_ring_cleanly() {
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let _srv = server(port, &root.join("server"), &[]);
    let mut ring = vec![
        client(port, &root.join("alice"), "alice", &[]),
        client(port, &root.join("bob"), "bob", &[]),
    ];
    wait_ring(&mut ring, 2, LONG);
    let (mut alice, mut bob) = (ring.remove(0), ring.remove(0));
    bob.send_line("bye for now");
    alice.wait_for("bob's line", LONG, |l| count_messages(l) >= 1);
    let pid = bob.pid().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(bob.wait_exit(LONG).success(), "SIGTERM exits 0");
    alice.wait_left("bob", LONG);
    assert_eq!(alice.replica(), bob.replica());
}

/// The uuid in a client's "you are NAME (UUID)" notice.
fn identity_of(p: &common::Proc) -> String {
    let line = p
        .seen
        .iter()
        .find(|l| l.contains("you are "))
        .unwrap_or_else(|| panic!("{} never said who it is: {:?}", p.name, p.seen));
    let start = line.find('(').map_or(0, |i| i + 1);
    line[start..].chars().take(36).collect()
}

/// An identity that never joined (no server) and holds no line leaves no files behind; one
/// that joined keeps them, and `--resume NAME` finds it among others in the same data dir.
#[test]
fn a_start_that_never_joins_leaves_no_files_and_resume_takes_a_name() {
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let dir = root.join("shared");
    let mut lost = client(port, &dir, "carol", &["--join-timeout", "1s"]);
    assert_eq!(lost.wait_exit(LONG).code(), Some(1));
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "stderr.log")
        .collect();
    assert!(
        left.is_empty(),
        "files left by a start that never joined: {left:?}"
    );

    let _srv = server(port, &root.join("server"), &[]);
    let mut ids = Vec::new();
    for name in ["carol", "dave"] {
        let mut p = client(port, &dir, name, &[]);
        p.wait_joined(LONG);
        p.close_stdin();
        assert!(p.wait_exit(LONG).success());
        ids.push(identity_of(&p));
    }
    let mut again = client(port, &dir, "carol", &["--resume", "carol"]);
    again.wait_joined(LONG);
    assert_eq!(
        identity_of(&again),
        ids[0],
        "--resume carol is carol's identity"
    );
    again.close_stdin();
    assert!(again.wait_exit(LONG).success());
}
