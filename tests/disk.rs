//! When the disk says no: a data dir on a small tmpfs that fills up, or is read-only from the
//! start; and `--durability fsync` checked against the system calls.
//!
//! Each tmpfs lives in a mount namespace of its own: a holder process (`unshare -m`, private
//! propagation) mounts it over a temp dir and waits on its stdin; the nodes that use it run
//! inside that namespace (`nsenter -m`), and the test reaches the files through
//! `/proc/<holder>/root`. Nothing is mounted on the host, and the mount dies with the holder.
//!
//! Needs root (mount namespaces) and util-linux (`unshare`, `nsenter`). Without them the
//! tests print why and pass as skipped; with `MCAST_CHAT_REQUIRE_NETNS=1` (CI, as root) they
//! fail instead. The strace test needs `strace` and skips (always) without it.

mod common;

use common::{
    check_replica, client, client_launch, count_messages, eventually, free_port, message_texts,
    or_skip, server, server_launch, start, wait_ring, Launch, Proc,
};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The deadline of each wait.
const STEP: Duration = Duration::from_secs(30);

/// A tmpfs mounted over `dir` in a mount namespace of its own, for as long as this lives.
struct Tmpfs {
    holder: Child,
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`) over `dir` (created if missing), with
    /// `ro` read-only; or says why it cannot.
    fn mount(dir: &Path, size: &str, ro: bool) -> Result<Tmpfs, String> {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let options = format!("size={size}{}", if ro { ",ro" } else { "" });
        // The holder waits on its stdin: when the test ends, however it ends, the pipe
        // closes, the holder exits, and with the last process in it the mount goes.
        let script = format!("mount -t tmpfs -o {options} tmpfs \"$0\" && echo mounted && read _");
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        let mut line = String::new();
        if let Some(out) = holder.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        if line.trim() != "mounted" {
            let _ = holder.kill();
            let out = holder.wait_with_output().map_err(|e| e.to_string())?;
            return Err(format!(
                "cannot mount a tmpfs in a mount namespace (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            holder,
            dir: dir.to_path_buf(),
        })
    }

    /// `name` in the tmpfs, as this process reaches it.
    fn path(&self, name: &str) -> PathBuf {
        let inside = self.dir.strip_prefix("/").unwrap_or(&self.dir);
        Path::new(&format!("/proc/{}/root", self.holder.id()))
            .join(inside)
            .join(name)
    }

    /// `launch`, run inside the namespace.
    fn run(&self, launch: Launch) -> Launch {
        let pid = self.holder.id().to_string();
        launch.wrapped_in("nsenter", ["-t", &pid, "--mount", "--"])
    }

    /// Fills every free page of the tmpfs with a file of its own.
    fn fill(&self) {
        let path = self.path("filler");
        let mut f = File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let page = [0x55u8; 4096];
        loop {
            match f.write(&page) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }

    /// Gives the space back.
    fn free(&self) {
        fs::remove_file(self.path("filler")).unwrap();
    }

    /// The bytes of the one replica in the tmpfs.
    fn replica(&self) -> Vec<u8> {
        let path = common::process::replica_file(&self.path("")).unwrap_or_else(|e| panic!("{e}"));
        fs::read(path).unwrap()
    }

    /// The `delivered` seq of the server's checkpoint in the tmpfs.
    fn checkpoint_delivered(&self) -> usize {
        let path = self.path("checkpoint_server.json");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let cp: serde_json::Value = serde_json::from_str(&text).unwrap();
        cp["delivered"].as_u64().unwrap() as usize
    }

    /// The length of the client's outbox journal.
    fn journal_len(&self) -> Option<u64> {
        let entries = fs::read_dir(self.path("")).ok()?;
        entries
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with("outbox_"))
            .and_then(|e| e.metadata().ok())
            .map(|m| m.len())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A temp dir for the test, with a 1 MiB tmpfs (read-only with `ro`) over its subdir `node`;
/// or `None` after printing why the test is skipped (see [`or_skip`]).
fn tmpfs_for(node: &str, ro: bool) -> Option<(tempfile::TempDir, Tmpfs)> {
    let root = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::mount(&root.path().join(node), "1m", ro);
    let tmpfs = or_skip(tmpfs, "the data dir's tmpfs cannot be made")?;
    Some((root, tmpfs))
}

fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

/// A line of about 900 bytes: a few of them do not fit what is left of a page.
fn big(tag: &str) -> String {
    format!("{tag} {}", "x".repeat(900))
}

/// Waits until every replica holds the same bytes, and returns them checked.
fn converged(replicas: &[&dyn Fn() -> Vec<u8>]) -> Vec<String> {
    eventually("byte-identical replicas", STEP, || {
        let first = replicas[0]();
        replicas.iter().all(|r| r() == first)
    });
    check_replica(&replicas[0]())
}

/// G2 on a full disk: a typed line that cannot reach the outbox journal is refused at the
/// prompt and never sent, and the client reads on; a delivery that cannot reach the replica
/// stops the client (exit 1, naming the file and the cause) without a torn line and without
/// stalling the ring (its Leave starts the recovery at once, long before the token timeout);
/// with space back, `--resume` delivers every accepted line exactly once.
#[test]
fn a_client_whose_disk_fills_refuses_lines_then_stops_without_stalling_the_ring() {
    let Some((root, disk)) = tmpfs_for("bob", false) else {
        return;
    };
    let port = free_port();
    let mut srv = server(
        port,
        &root.path().join("server"),
        &["--token-timeout", "20s"],
    );
    let alice = client(port, &root.path().join("alice"), "alice", &[]);
    let bob_launch = |args: &[&str], log: &str| {
        let launch = client_launch(port, &disk.dir, "bob", args);
        disk.run(launch.stderr_to(root.path().join(log), false))
    };
    let bob = start(bob_launch(&[], "bob.log"), "bob");
    let mut ring = vec![alice, bob];
    wait_ring(&mut ring, 2, STEP);
    let [mut alice, mut bob] = <[Proc; 2]>::try_from(ring).unwrap_or_else(|_| unreachable!());
    alice.send_line("a0");
    bob.send_line("b0");
    for c in [&mut alice, &mut bob] {
        c.wait_for("the first lines", STEP, |l| count_messages(l) == 2);
    }
    // Once a checkpoint holds b0 the journal starts over empty: its next append needs a
    // page of its own, and there is none.
    eventually("bob's journal to start over", STEP, || {
        disk.journal_len() == Some(0)
    });
    disk.fill();
    bob.send_line("refused 1");
    bob.wait_for("the refusal", STEP, |l| {
        has(l, "line not accepted: no space left on device writing")
    });
    assert!(has(&bob.seen, "outbox_"), "the refusal names the journal");
    bob.send_line("/who");
    bob.wait_for("bob still reading", STEP, |l| has(l, "2 members in epoch"));

    // alice's lines do not fit bob's replica: bob stops, and the ring goes on at once.
    for i in 0..20 {
        alice.send_line(&big(&format!("big {i}")));
    }
    let status = bob.wait_exit(STEP);
    let stopped = Instant::now();
    assert_eq!(status.code(), Some(1), "{}", bob.stderr_tail(5));
    let err = bob.stderr_tail(3);
    assert!(
        err.contains("error: ") && err.contains("replica_") && err.contains("No space left"),
        "{err}"
    );
    assert!(err.contains("free some space"), "{err}");
    alice.wait_left("bob", STEP);
    alice.send_line("after bob");
    alice.wait_for("the ring going on", STEP, |l| has(l, "after bob"));
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "the ring stalled for {:?} (the token timeout is 20s)",
        stopped.elapsed()
    );
    // Whatever reached bob's replica is whole lines in order.
    let kept = check_replica(&disk.replica());
    assert!(disk.replica().ends_with(b"\n"));
    assert!(kept.len() < 23, "bob's replica cannot hold every line");

    disk.free();
    let mut bob = start(bob_launch(&["--resume"], "bob2.log"), "bob");
    bob.wait_joined(STEP);
    bob.send_line("b1");
    alice.wait_for("b1", STEP, |l| has(l, "\"b1\""));
    for c in [&mut alice, &mut bob] {
        c.close_stdin();
        assert!(c.wait_exit(STEP).success(), "{}", c.stderr_tail(5));
    }
    let all = converged(&[&|| alice.replica(), &|| disk.replica(), &|| srv.replica()]);
    let mut want: Vec<String> = ["a0", "b0"].map(String::from).to_vec();
    want.extend((0..20).map(|i| big(&format!("big {i}"))));
    want.extend(["after bob", "b1"].map(String::from));
    let mut got = all.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "every accepted line once, and no refused one");
    srv.kill_9();
}

/// The server on a full disk: it says it cannot archive, holds the records and sends nothing
/// meanwhile (the clients find it silent, and chat on), never writes a torn line, keeps its
/// last checkpoint while new ones fail, and catches up once the disk takes them again: its
/// archive ends byte-identical to the clients' replicas, and checkpoints are written again.
#[test]
fn the_server_holds_what_it_cannot_archive_and_catches_up() {
    let Some((root, disk)) = tmpfs_for("server", false) else {
        return;
    };
    let port = free_port();
    let every_second = ["--checkpoint-interval", "1s"];
    let mut srv = start(
        disk.run(server_launch(port, &disk.dir, &every_second)),
        "server",
    );
    let names = ["alice", "bob"];
    let mut clients: Vec<Proc> = names
        .iter()
        .map(|n| client(port, &root.path().join(n), n, &[]))
        .collect();
    wait_ring(&mut clients, 2, STEP);
    clients[0].send_line("a0");
    clients[1].send_line("b0");
    eventually("the archive", STEP, || {
        check_replica(&disk.replica()).len() == 2
    });

    disk.fill();
    for i in 0..6 {
        for (c, n) in clients.iter_mut().zip(names) {
            c.send_line(&big(&format!("{n} {i}")));
        }
    }
    let typed = 14;
    srv.wait_for("the archive failure", STEP, |l| {
        has(l, "cannot archive: no space left on device writing")
    });
    assert!(has(&srv.seen, "replica_server.jsonl"), "names the archive");
    for c in clients.iter_mut() {
        c.wait_for("the ring chatting on", STEP, |l| count_messages(l) == typed);
    }
    // It sends nothing that may depend on what it holds: not even its heartbeat.
    clients[0].wait_for("the server silent", STEP, |l| has(l, "no server reachable"));
    // Behind, and only whole lines.
    let archived = check_replica(&disk.replica()).len();
    assert!(archived < typed, "the archive is behind ({archived})");
    assert!(disk.replica().ends_with(b"\n"));
    // Its checkpoints fail too, and leave the last one that was written.
    let log_says = |srv: &Proc, what: &str| srv.stderr_tail(1000).contains(what);
    eventually("a failed checkpoint", STEP, || {
        log_says(&srv, "checkpoint failed (the previous one stays")
    });
    // A whole checkpoint from before the disk filled (the archive then held 2 messages).
    assert!(disk.checkpoint_delivered() <= 2);

    disk.free();
    srv.wait_for("the archive written", STEP, |l| {
        has(l, "the archive is written again")
    });
    clients[0].wait_for("the server back", STEP, |l| {
        has(l, "a server is reachable again")
    });
    let replica = |i: usize| clients[i].replica();
    let all = converged(&[&|| replica(0), &|| replica(1), &|| disk.replica()]);
    assert_eq!(all.len(), typed);
    eventually("checkpoints again", STEP, || {
        log_says(&srv, "checkpoint written again") && disk.checkpoint_delivered() == typed
    });
    assert!(srv.try_exit().is_none(), "the server kept running");
    for c in clients.iter_mut() {
        c.close_stdin();
        assert!(c.wait_exit(STEP).success());
    }
}

/// A data dir that is read-only at start stops either program with exit 1, naming the file
/// and the fix. (Linux refuses to remount a file system read-only while files on it are open
/// for writing, so a data dir cannot turn read-only under a running node except after a disk
/// error; its writes then fail with EROFS and take the paths tested above.)
#[test]
fn a_read_only_data_dir_at_start_stops_either_program_naming_it() {
    let Some((root, disk)) = tmpfs_for("ro", true) else {
        return;
    };
    let port = free_port();
    for (name, launch) in [
        ("server", server_launch(port, &disk.dir, &[])),
        ("carol", client_launch(port, &disk.dir, "carol", &[])),
    ] {
        let log = root.path().join(format!("{name}.log"));
        let mut p = start(disk.run(launch.stderr_to(log, false)), name);
        assert_eq!(p.wait_exit(STEP).code(), Some(1));
        let err = p.stderr_tail(2);
        assert!(
            err.contains(&format!("error: {}", disk.dir.display()))
                && err.contains("Read-only file system")
                && err.contains("remount it read-write"),
            "{err}"
        );
    }
}

/// A data dir that is a file stops either program with exit 1 and says so, with the fix,
/// instead of "File exists"; the file is left as it was.
#[test]
fn a_data_dir_that_is_a_file_stops_either_program_saying_so() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("afile");
    std::fs::write(&file, b"not a directory").unwrap();
    let port = free_port();
    for (name, launch) in [
        ("server", server_launch(port, &file, &[])),
        ("carol", client_launch(port, &file, "carol", &[])),
    ] {
        let log = root.path().join(format!("{name}.log"));
        let mut p = start(launch.stderr_to(log, false), name);
        assert_eq!(p.wait_exit(STEP).code(), Some(1));
        let err = p.stderr_tail(2);
        assert!(
            err.contains(&format!("error: {} is not a directory", file.display()))
                && err.contains("give --data-dir a directory"),
            "{err}"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

/// One system call in an strace log: where it starts and ends in the log, in which thread.
#[derive(Debug)]
struct Call {
    tid: u32,
    name: String,
    /// Everything between the parentheses: the fd with its path (`-y`) and the data.
    args: String,
    /// Line numbers in the log where the call was entered and where it returned.
    start: usize,
    end: usize,
}

/// Parses `strace -f -y` output, joining `<unfinished ...>` lines with their `resumed` ends.
fn parse_strace(log: &str) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    let mut open: std::collections::HashMap<u32, usize> = Default::default();
    for (n, line) in log.lines().enumerate() {
        let Some((tid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(tid) = tid.trim().parse::<u32>() else {
            continue;
        };
        let rest = rest.trim_start();
        if rest.starts_with("<...") {
            if let Some(i) = open.remove(&tid) {
                calls[i].end = n;
            }
            continue;
        }
        let Some((name, args)) = rest.split_once('(') else {
            continue;
        };
        calls.push(Call {
            tid,
            name: name.to_string(),
            args: args.to_string(),
            start: n,
            end: n,
        });
        if rest.ends_with("<unfinished ...>") {
            open.insert(tid, calls.len() - 1);
        }
    }
    calls
}

fn is_send(c: &Call) -> bool {
    matches!(c.name.as_str(), "sendto" | "sendmsg" | "sendmmsg")
}

fn is_sync_of(c: &Call, file: &str) -> bool {
    matches!(c.name.as_str(), "fdatasync" | "fsync") && c.args.contains(file)
}

/// `--durability fsync`, on the system calls: a typed line's journal append is synced before
/// any datagram that carries the line leaves, and every replica append is synced before the
/// io thread sends anything after it (one sync per batch). Fails if either sync is dropped or
/// moved after the sends.
#[test]
fn with_durability_fsync_writes_are_synced_before_what_depends_on_them_goes_out() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("SKIPPED: strace is not installed (apt-get install strace)");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    let _srv = server(port, &root.path().join("server"), &[]);
    let trace = root.path().join("alice.strace");
    let strace = [
        "-f",
        "-qq",
        "-y",
        "-s",
        "4096",
        "-o",
        trace.to_str().unwrap(),
        "-e",
        "trace=write,fdatasync,fsync,sendto,sendmsg,sendmmsg",
    ];
    let fsync = ["--durability", "fsync"];
    let launch = client_launch(port, &root.path().join("alice"), "alice", &fsync);
    let mut alice = start(launch.wrapped_in("strace", strace), "alice");
    let mut bob = client(port, &root.path().join("bob"), "bob", &[]);
    alice.wait_joined(STEP);
    bob.wait_joined(STEP);
    let mine: Vec<String> = (0..10).map(|k| format!("durable {k:02}")).collect();
    for (k, line) in mine.iter().enumerate() {
        alice.send_line(line);
        bob.send_line(&format!("from bob {k:02}"));
    }
    alice.wait_for("every line", STEP, |l| count_messages(l) == 20);
    assert_eq!(message_texts(&alice.seen).len(), 20);
    alice.close_stdin();
    assert!(alice.wait_exit(STEP).success());
    let calls = parse_strace(&fs::read_to_string(&trace).unwrap());

    for line in &mine {
        let Some(w) = calls.iter().position(|c| {
            c.name == "write" && c.args.contains("/outbox_") && c.args.contains(line)
        }) else {
            panic!("{line:?} was never written to the outbox journal");
        };
        let synced = calls[w + 1..]
            .iter()
            .find(|c| c.tid == calls[w].tid && is_sync_of(c, "/outbox_"))
            .unwrap_or_else(|| panic!("the journal append of {line:?} was never synced"));
        let sent = calls
            .iter()
            .find(|c| is_send(c) && c.args.contains(line))
            .unwrap_or_else(|| panic!("{line:?} was never sent"));
        assert!(
            synced.end < sent.start,
            "{line:?} was sent (log line {}) before its journal append was synced (line {})",
            sent.start + 1,
            synced.end + 1
        );
    }
    let appends: Vec<&Call> = calls
        .iter()
        .filter(|c| c.name == "write" && c.args.contains("/replica_"))
        .collect();
    assert!(!appends.is_empty(), "no replica appends in the trace");
    for append in appends {
        let next = calls
            .iter()
            .filter(|c| c.tid == append.tid && c.start > append.start)
            .find(|c| is_send(c) || is_sync_of(c, "/replica_"))
            .unwrap_or_else(|| {
                panic!(
                    "a replica append (log line {}) was never synced",
                    append.start + 1
                )
            });
        assert!(
            !is_send(next),
            "a datagram went out (log line {}) after a replica append (line {}) before its sync",
            next.start + 1,
            append.start + 1
        );
    }
}
