//! Runs the real `server` and `client` binaries: starts one with its stdout read line by line
//! on a thread of its own, types into its stdin, waits with a deadline for what it prints,
//! kills it with `kill -9`, and finds the files of its data dir. The integration tests, the
//! ring benchmark and the demo all start their processes here (the bench and the demo include
//! this file with `#[path]`), so the binary's path is always a parameter: tests and benches
//! pass `env!("CARGO_BIN_EXE_server")`, the demo the binaries next to its own executable.
//!
//! What it must not do: know the protocol or decide what a caller checks. The only output it
//! interprets are the notices that say a client joined the ring or a member left, so that their
//! wording lives in one place. Every wait has a deadline, and every child is killed (SIGKILL)
//! and reaped when its [`Process`] drops, however the caller ends.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The notice a client prints once it is a member of the ring.
pub const JOINED: &str = "joined the ring";

/// Whether `text` (a stdout line, or the text of a notice) says that the client joined.
pub fn says_joined(text: &str) -> bool {
    text.contains(JOINED)
}

/// Whether any of `lines` says that the client joined the ring.
pub fn joined(lines: &[String]) -> bool {
    lines.iter().any(|l| says_joined(l))
}

/// Whether any of `lines` says that member `name` left the ring.
pub fn left(lines: &[String], name: &str) -> bool {
    let words = format!("{name} left");
    lines.iter().any(|l| l.contains(&words))
}

/// Whether any of `lines` says that member `name` joined the ring (another client's join).
pub fn member_joined(lines: &[String], name: &str) -> bool {
    let words = format!("{name} joined");
    lines.iter().any(|l| l.contains(&words))
}

/// Whether `line` is a notice: `* text` (the human format) or a `--json` `notice` event.
pub fn is_notice(line: &str) -> bool {
    line.starts_with("* ") || line.starts_with(r#"{"event":"notice""#)
}

/// Number of `--json` `message` events in `lines`.
pub fn count_messages(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| l.starts_with(r#"{"event":"message""#))
        .count()
}

/// Pids of the children started here and not reaped yet, for [`kill_all`].
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn live() -> MutexGuard<'static, Vec<u32>> {
    // A list of pids cannot be left half-updated by a panic.
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Kills (SIGKILL) every child started here that has not been reaped: for a signal handler
/// that must leave no server behind. A pid stays listed until its child is reaped, so it
/// cannot belong to another process by then.
pub fn kill_all() {
    for pid in live().iter() {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

/// Receives a process's stdout on its reader thread, one line at a time.
pub trait LineSink: Send + 'static {
    /// One line without its line end, and when it was read.
    fn line(&mut self, line: &str, at: Instant);
    /// The process closed its stdout (it exited).
    fn end(&mut self) {}
}

/// The default sink: lines go to [`Process::seen`] through a channel.
impl LineSink for Sender<String> {
    fn line(&mut self, line: &str, _at: Instant) {
        let _ = self.send(line.to_string());
    }
}

/// How to start one `server` or `client`: `BIN --data-dir DIR ARGS...`, stderr into a file.
pub struct Launch {
    program: OsString,
    args: Vec<OsString>,
    dir: PathBuf,
    log: PathBuf,
    /// Append to the stderr file instead of truncating it (a restart in the same dir).
    append_log: bool,
    env: Vec<(OsString, OsString)>,
}

impl Launch {
    /// `bin --data-dir dir`, its stderr in `dir/stderr.log`.
    pub fn new(bin: impl AsRef<OsStr>, dir: &Path) -> Launch {
        Launch {
            program: bin.as_ref().to_os_string(),
            args: vec!["--data-dir".into(), dir.as_os_str().to_os_string()],
            dir: dir.to_path_buf(),
            log: dir.join("stderr.log"),
            append_log: false,
            env: Vec::new(),
        }
    }

    /// Runs it inside network namespace `ns` (`ip netns exec NS BIN ...`; needs root).
    /// `ip netns exec` execs the binary, so the child's pid is the program's own.
    pub fn in_netns(self, ns: &str) -> Launch {
        self.wrapped_in("ip", ["netns", "exec", ns])
    }

    /// Runs it as `PROGRAM ARGS... BIN ...`: under a launcher that execs the binary in the
    /// end (`ip netns exec`, `nsenter`, `strace`), so the child's pid is the binary's own or
    /// its tracer's.
    pub fn wrapped_in<S: AsRef<OsStr>>(
        mut self,
        program: &str,
        args: impl IntoIterator<Item = S>,
    ) -> Launch {
        let bin = std::mem::replace(&mut self.program, program.into());
        let prefix: Vec<OsString> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .chain([bin])
            .collect();
        self.args.splice(0..0, prefix);
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Launch {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Launch {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Launch {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Where stderr goes instead of `dir/stderr.log`; `append` keeps what is there.
    pub fn stderr_to(mut self, path: PathBuf, append: bool) -> Launch {
        self.log = path;
        self.append_log = append;
        self
    }

    /// Starts it; its stdout lines collect in [`Process::seen`] (see [`Process::drain`]).
    pub fn start(self, name: &str) -> io::Result<Process> {
        let (tx, rx) = channel();
        let mut process = self.start_with(name, tx)?;
        process.lines = Some(rx);
        Ok(process)
    }

    /// Starts it; its stdout lines go to `sink`, on the reader thread, as they arrive.
    pub fn start_with(self, name: &str, sink: impl LineSink) -> io::Result<Process> {
        let context = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
        // The data dir holds the stderr file unless it goes elsewhere (then the program
        // makes the dir, or says why it cannot).
        if self.log.starts_with(&self.dir) {
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| context(&format!("cannot create {}", self.dir.display()), e))?;
        }
        let stderr = OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.append_log)
            .truncate(!self.append_log)
            .open(&self.log)
            .map_err(|e| context(&format!("cannot create {}", self.log.display()), e))?;
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| context(&format!("cannot start {:?}", self.program), e))?;
        live().push(child.id());
        let mut process = Process {
            name: name.to_string(),
            stdin: child.stdin.take(),
            lines: None,
            seen: Vec::new(),
            dir: self.dir,
            log: self.log,
            child,
        };
        let stdout = process.child.stdout.take();
        let reader = stdout.map(|out| {
            std::thread::Builder::new()
                .name(format!("stdout-{name}"))
                .spawn(move || read_lines(out, sink))
        });
        if let Some(Err(e)) = reader {
            process.kill_9();
            return Err(context("cannot start a stdout reader", e));
        }
        Ok(process)
    }
}

/// Hands every line of `out` to `sink` until EOF (or a read error).
fn read_lines(out: impl Read, mut sink: impl LineSink) {
    let mut reader = BufReader::with_capacity(1 << 16, out);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let at = Instant::now();
        let line = String::from_utf8_lossy(&buf);
        sink.line(line.trim_end_matches(['\n', '\r']), at);
    }
    sink.end();
}

/// A running (or exited) `server` or `client`, killed with SIGKILL and reaped when dropped.
pub struct Process {
    /// For messages: `server`, `alice`, ...
    pub name: String,
    /// Private, so that only [`Process::try_exit`] and [`Process::kill_9`] reap it and
    /// [`kill_all`] never signals a pid that was given to another process.
    child: Child,
    /// `None` once closed (the client leaves at EOF).
    pub stdin: Option<ChildStdin>,
    /// Every stdout line seen so far (with [`Launch::start`]; see [`Process::drain`]).
    pub seen: Vec<String>,
    /// The data dir.
    pub dir: PathBuf,
    /// The stderr file.
    pub log: PathBuf,
    lines: Option<Receiver<String>>,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes `line` and a newline to stdin in one write, so a reader never sees half of it.
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("{}: stdin is closed", self.name),
            )
        })?;
        stdin.write_all(format!("{line}\n").as_bytes())?;
        stdin.flush()
    }

    /// [`Process::write_line`], panicking on failure (for tests).
    pub fn send_line(&mut self, line: &str) {
        if let Err(e) = self.write_line(line) {
            panic!("cannot type into {}: {e}", self.name);
        }
    }

    /// Closes stdin: a client leaves cleanly.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Moves every stdout line that has arrived so far into `seen`, without waiting; returns
    /// how many arrived.
    pub fn drain(&mut self) -> usize {
        let before = self.seen.len();
        if let Some(lines) = &self.lines {
            self.seen.extend(lines.try_iter());
        }
        self.seen.len() - before
    }

    /// Reads stdout until `pred` holds for the lines seen; false at the deadline.
    pub fn try_wait_for(&mut self, timeout: Duration, pred: impl Fn(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while !pred(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let Some(lines) = &self.lines else {
                std::thread::sleep(left.min(Duration::from_millis(50)));
                continue;
            };
            if let Ok(line) = lines.recv_timeout(left.min(Duration::from_millis(200))) {
                self.seen.push(line);
            }
        }
        true
    }

    /// Reads stdout until `pred` holds for the lines seen, or panics at the deadline with the
    /// last lines and the stderr tail.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&[String]) -> bool) {
        if !self.try_wait_for(timeout, pred) {
            let last: Vec<String> = self.seen.iter().rev().take(10).rev().cloned().collect();
            panic!(
                "timed out waiting for {what} in {}; last lines:\n{}\nstderr:\n{}",
                self.dir.display(),
                last.join("\n"),
                self.stderr_tail(20)
            );
        }
    }

    /// Waits until this client says it joined the ring, or panics at the deadline.
    pub fn wait_joined(&mut self, timeout: Duration) {
        let what = format!("{} to join the ring", self.name);
        self.wait_for(&what, timeout, joined);
    }

    /// Waits until this client says that member `name` left, or panics at the deadline.
    pub fn wait_left(&mut self, name: &str, timeout: Duration) {
        let what = format!("{name} to leave");
        self.wait_for(&what, timeout, |l| left(l, name));
    }

    /// Number of `message` events seen (with `--json`).
    pub fn messages(&self) -> usize {
        count_messages(&self.seen)
    }

    /// Its exit status if it has exited (and then reaped), without waiting.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok().flatten()?;
        self.forget();
        self.drain();
        Some(status)
    }

    /// Waits for the process to exit; at the deadline kills it and panics.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return status;
            }
            if Instant::now() >= deadline {
                self.kill_9();
                panic!(
                    "{} did not exit in {timeout:?}; stderr:\n{}",
                    self.dir.display(),
                    self.stderr_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`, and reaps it (nothing happens if it was reaped already).
    pub fn kill_9(&mut self) {
        // SIGKILL first: a client that saw its stdin close first could leave cleanly, and
        // the caller would be timing or testing a leave instead of a crash.
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdin = None;
        self.forget();
    }

    fn forget(&self) {
        let pid = self.child.id();
        live().retain(|p| *p != pid);
    }

    /// The last `n` lines of its stderr file.
    pub fn stderr_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The bytes of the one replica in its data dir.
    pub fn read_replica(&self) -> Result<Vec<u8>, String> {
        let path = replica_file(&self.dir).map_err(|e| format!("{}: {e}", self.name))?;
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// [`Process::read_replica`], panicking on failure (for tests).
    pub fn replica(&self) -> Vec<u8> {
        self.read_replica().unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// The one `replica_*.jsonl` in a data dir; an error if there is none or more than one.
pub fn replica_file(dir: &Path) -> Result<PathBuf, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("replica_") && n.ends_with(".jsonl"))
        })
        .collect();
    match <[PathBuf; 1]>::try_from(files) {
        Ok([one]) => Ok(one),
        Err(files) => Err(format!(
            "expected one replica in {}, found {files:?}",
            dir.display()
        )),
    }
}

/// The text of every file in `dir` whose name starts with one of `prefixes`, concatenated;
/// empty if `dir` cannot be read.
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
