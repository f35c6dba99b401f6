//! Helpers for tests that run the real binaries on loopback: each test gets its own port and
//! temp dirs; every wait is on a condition with a deadline.
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

pub fn server(port: u16, dir: &Path, extra: &[&str]) -> Proc {
    let mut args = vec!["--port".to_string(), port.to_string()];
    args.extend(["--data-dir".into(), dir.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    spawn(env!("CARGO_BIN_EXE_server"), &args, dir)
}

pub fn client(port: u16, dir: &Path, name: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["--port".to_string(), port.to_string(), "--json".into()];
    args.extend(["--data-dir".into(), dir.display().to_string()]);
    args.extend(["--name".into(), name.into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    spawn(env!("CARGO_BIN_EXE_client"), &args, dir)
}

fn spawn(bin: &str, args: &[String], dir: &Path) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    let mut child = Command::new(bin)
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

    /// Reads stdout until `pred` holds for the lines seen, or panics at the deadline.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !pred(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "timed out waiting for {what} in {}; last lines:\n{}\nstderr:\n{}",
                    self.dir.display(),
                    self.seen
                        .iter()
                        .rev()
                        .take(10)
                        .rev()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n"),
                    self.stderr_tail()
                );
            }
            if let Ok(line) = self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                self.seen.push(line);
            }
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
