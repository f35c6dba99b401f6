//! Helpers for tests that run the real binaries on loopback (or, with `server_in` and
//! `client_in`, inside network namespaces): each test gets its own port and temp dirs; every
//! wait is on a condition with a deadline.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// A running `server` or `client` with its stdout read line by line in the background.
pub struct Proc {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line seen so far.
    pub seen: Vec<String>,
    pub dir: PathBuf,
}

/// A UDP port nobody on this host is bound to right now (the kernel picks it), so tests,
/// and several runs of the suite at once, never share a group.
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

pub fn server(port: u16, dir: &Path, extra: &[&str]) -> Proc {
    spawn(
        Command::new(env!("CARGO_BIN_EXE_server")),
        &server_args(port, dir, extra),
        dir,
    )
}

pub fn client(port: u16, dir: &Path, name: &str, extra: &[&str]) -> Proc {
    spawn(
        Command::new(env!("CARGO_BIN_EXE_client")),
        &client_args(port, dir, name, extra),
        dir,
    )
}

/// Like [`server`], but inside network namespace `ns` (`ip netns exec NS server ...`; needs
/// root). `ip netns exec` execs the binary, so the child's pid is the server's own.
pub fn server_in(ns: &str, port: u16, dir: &Path, extra: &[&str]) -> Proc {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_server")]);
    spawn(cmd, &server_args(port, dir, extra), dir)
}

/// Like [`client`], but inside network namespace `ns`; see [`server_in`].
pub fn client_in(ns: &str, port: u16, dir: &Path, name: &str, extra: &[&str]) -> Proc {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_client")]);
    spawn(cmd, &client_args(port, dir, name, extra), dir)
}

fn server_args(port: u16, dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--port".to_string(), port.to_string()];
    args.extend(["--data-dir".into(), dir.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn client_args(port: u16, dir: &Path, name: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--port".to_string(), port.to_string(), "--json".into()];
    args.extend(["--data-dir".into(), dir.display().to_string()]);
    args.extend(["--name".into(), name.into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn spawn(mut cmd: Command, args: &[String], dir: &Path) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    let mut child = cmd
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("stderr.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Proc {
        stdin: child.stdin.take(),
        child,
        lines: rx,
        seen: Vec::new(),
        dir: dir.to_path_buf(),
    }
}

impl Proc {
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin: the client leaves cleanly.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Reads stdout until `pred` holds for the lines seen; false at the deadline.
    pub fn try_wait_for(&mut self, timeout: Duration, pred: impl Fn(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while !pred(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if let Ok(line) = self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                self.seen.push(line);
            }
        }
        true
    }

    /// Reads stdout until `pred` holds for the lines seen, or panics at the deadline.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&[String]) -> bool) {
        if !self.try_wait_for(timeout, pred) {
            let last: Vec<String> = self.seen.iter().rev().take(10).rev().cloned().collect();
            panic!(
                "timed out waiting for {what} in {}; last lines:\n{}\nstderr:\n{}",
                self.dir.display(),
                last.join("\n"),
                self.stderr_tail()
            );
        }
    }

    /// `kill -9`, and reaps it.
    pub fn kill_9(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        let _ = self.child.wait();
    }

    /// Moves every stdout line that has arrived so far into `seen`, without waiting.
    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// Number of `message` events seen (with `--json`).
    pub fn messages(&self) -> usize {
        count_messages(&self.seen)
    }

    /// Waits for the process to exit, or panics at the deadline.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.lines.try_recv() {
                    self.seen.push(line);
                }
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "{} did not exit in {timeout:?}; stderr:\n{}",
                    self.dir.display(),
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The one replica file in this node's data dir.
    pub fn replica(&self) -> Vec<u8> {
        replica_bytes(&self.dir)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn count_messages(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| l.starts_with(r#"{"event":"message""#))
        .count()
}

/// The bytes of the one `replica_*.jsonl` in `dir`.
pub fn replica_bytes(dir: &Path) -> Vec<u8> {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.starts_with("replica_") && name.ends_with(".jsonl")
        })
        .collect();
    assert_eq!(
        files.len(),
        1,
        "one replica in {}: {files:?}",
        dir.display()
    );
    std::fs::read(&files[0]).unwrap()
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

/// The text of every file in `dir` whose name starts with one of `prefixes`, concatenated.
pub fn files_text(dir: &Path, prefixes: &[&str]) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return String::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                prefixes.iter().any(|prefix| n.starts_with(prefix))
            })
        })
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}
