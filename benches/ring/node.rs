//! One `server` or `client` as the bench sees it: started through the shared runner
//! (`tests/common/process.rs`), with its stdout parsed on the reader thread into the key and
//! arrival instant of every delivered message and the text of every notice (a [`Watch`] to
//! wait on), its `/stats` counters on request, and a guard that kills every child when the
//! bench is stopped by a signal. A node reaches the others by multicast (the default) or by
//! unicast ([`Net`]: the `--peer` flags).
//!
//! It must not check results; and, since it reads every delivery of every client, its line
//! parser takes a fast path without a JSON parser so that it steals little CPU from the ring.

use crate::process::{says_joined, Launch, LineSink, Process};
use crate::util::parse_key;
use crate::NO_KEY;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Every node's `--durability`: `BENCH_DURABILITY` (`page-cache` or `fsync`; the nodes refuse
/// anything else), by default `page-cache`, the nodes' own default.
pub fn durability() -> String {
    std::env::var("BENCH_DURABILITY")
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "page-cache".to_string())
}

/// How the nodes of a ring reach each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Net {
    /// The group 224.1.1.1 on the ring's port, via 127.0.0.1 (the binaries' defaults).
    Multicast,
    /// `--peer 127.0.0.1:PORT` on every node, no multicast: the server listens on the ring's
    /// port on 127.0.0.1 (its default interface), each client on a port the system picks, and
    /// every datagram meant for the group goes to each node of the view.
    Unicast,
}

impl Net {
    /// The flags that put a node of the ring on `port` in this mode (before the extra ones).
    pub fn flags(self, port: u16) -> Vec<String> {
        match self {
            Net::Multicast => Vec::new(),
            Net::Unicast => vec!["--peer".into(), format!("127.0.0.1:{port}")],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Net::Multicast => "multicast",
            Net::Unicast => "unicast",
        }
    }
}

/// What a reader thread has seen on one process's stdout.
#[derive(Default)]
pub struct Seen {
    /// `(key, when read)` of every delivered message; index `i` holds `seq` `i + 1`.
    pub msgs: Vec<(u64, Instant)>,
    /// Notices (client `--json` `notice` events, server `* ` lines), with when they were read.
    pub notices: Vec<(Instant, String)>,
    /// When the first notice that says the client joined the ring was read.
    pub joined_at: Option<Instant>,
    /// The first inconsistency in the stream: a message whose `seq` is not the next one.
    pub error: Option<String>,
    /// The process closed its stdout (it exited).
    pub eof: bool,
}

/// A [`Seen`] shared with its reader thread, with a condition variable to wait on.
#[derive(Default)]
pub struct Watch {
    pub seen: Mutex<Seen>,
    pub changed: Condvar,
}

impl Watch {
    pub fn lock(&self) -> MutexGuard<'_, Seen> {
        // Plain data; a reader thread that panicked leaves nothing half-updated.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `pred` holds (true) or the deadline passes or the stream ends (false).
    pub fn wait_for(&self, deadline: Instant, pred: impl Fn(&Seen) -> bool) -> bool {
        let mut seen = self.lock();
        loop {
            if pred(&seen) {
                return true;
            }
            let now = Instant::now();
            if seen.eof || now >= deadline {
                return false;
            }
            let wait = (deadline - now).min(Duration::from_millis(100));
            seen = match self.changed.wait_timeout(seen, wait) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    pub fn delivered(&self) -> usize {
        self.lock().msgs.len()
    }
}

/// How a process prints: a client with `--json`, or the server's human format.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Human,
}

/// One parsed stdout line.
pub enum Line {
    Message { seq: u64, key: u64 },
    Notice(String),
    Other,
}

/// Parses a client `--json` line. Messages take the fast path (no JSON parser): the bench
/// reads every delivery of every client and must not steal much CPU from the ring.
pub fn parse_json_line(line: &str) -> Line {
    if let Some(rest) = line.strip_prefix(r#"{"event":"message","seq":"#) {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(seq) = digits.parse() else {
            return Line::Other;
        };
        let key = line
            .find(r#""text":""#)
            .map(|i| &line[i + 8..])
            .and_then(|t| t.split('"').next())
            .map_or(NO_KEY, parse_key);
        return Line::Message { seq, key };
    }
    if line.starts_with(r#"{"event":"notice""#) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        return Line::Notice(v["text"].as_str().unwrap_or(line).to_string());
    }
    Line::Other
}

/// Parses a server line: `[#SEQ HH:MM:SS] NAME: TEXT` or `* notice`.
pub fn parse_human_line(line: &str) -> Line {
    if let Some(rest) = line.strip_prefix("[#") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(seq) = digits.parse() else {
            return Line::Other;
        };
        let key = rest
            .split_once("] ")
            .and_then(|(_, r)| r.split_once(": "))
            .map_or(NO_KEY, |(_, text)| parse_key(text));
        return Line::Message { seq, key };
    }
    match line.strip_prefix("* ") {
        Some(text) => Line::Notice(text.to_string()),
        None => Line::Other,
    }
}

/// The reader thread's side of a [`Watch`]: parses each line and records it.
struct Reader {
    format: Format,
    watch: Arc<Watch>,
}

impl LineSink for Reader {
    fn line(&mut self, line: &str, at: Instant) {
        let text = line.trim_end();
        let parsed = match self.format {
            Format::Json => parse_json_line(text),
            Format::Human => parse_human_line(text),
        };
        let mut seen = self.watch.lock();
        match parsed {
            Line::Message { seq, key } => {
                let expected = seen.msgs.len() as u64 + 1;
                if seq != expected && seen.error.is_none() {
                    seen.error = Some(format!("delivered #{seq} where #{expected} was next"));
                }
                seen.msgs.push((key, at));
            }
            Line::Notice(text) => {
                if seen.joined_at.is_none() && says_joined(&text) {
                    seen.joined_at = Some(at);
                }
                seen.notices.push((at, text));
            }
            Line::Other => {}
        }
        drop(seen);
        self.watch.changed.notify_all();
    }

    fn end(&mut self) {
        self.watch.lock().eof = true;
        self.watch.changed.notify_all();
    }
}

/// A running `server` or `client`, killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    /// `server`, `c0`, `c1`, ...
    pub name: String,
    /// The process: its stdin, data dir and stderr log.
    pub process: Process,
    /// What its stdout said so far.
    pub watch: Arc<Watch>,
}

impl Proc {
    fn spawn(name: &str, bin: &str, args: &[String], dir: &Path, format: Format) -> Proc {
        let watch = Arc::new(Watch::default());
        let reader = Reader {
            format,
            watch: Arc::clone(&watch),
        };
        // The log sits beside the data dir, which then holds only the node's own files.
        let process = Launch::new(bin, dir)
            .args(args)
            .args(["--durability", &durability()])
            .stderr_to(dir.with_extension("stderr.log"), false)
            .start_with(name, reader)
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        Proc {
            name: name.to_string(),
            process,
            watch,
        }
    }

    pub fn server(port: u16, dir: &Path, extra: &[&str]) -> Proc {
        Proc::server_on(Net::Multicast, "server", port, dir, extra)
    }

    /// A server of a ring on `port` in mode `net` (the mode's flags, then `extra`), with a name
    /// (`server`, or `server1`, ...: one of several on the chat).
    pub fn server_on(net: Net, name: &str, port: u16, dir: &Path, extra: &[&str]) -> Proc {
        let mut args = vec!["--port".to_string(), port.to_string()];
        args.extend(net.flags(port));
        args.extend(extra.iter().map(|s| s.to_string()));
        Proc::spawn(
            name,
            env!("CARGO_BIN_EXE_server"),
            &args,
            dir,
            Format::Human,
        )
    }

    pub fn client(port: u16, dir: &Path, name: &str) -> Proc {
        Proc::client_with(port, dir, name, &[])
    }

    /// A client with more flags (`--loss`, `--resume`, ...) after the usual ones.
    pub fn client_with(port: u16, dir: &Path, name: &str, extra: &[String]) -> Proc {
        Proc::client_on(Net::Multicast, port, dir, name, extra)
    }

    /// A client of a ring on `port` in mode `net` (the mode's flags, then `extra`). In unicast
    /// mode `--port` does not change its own socket: it listens on a port the system picks.
    pub fn client_on(net: Net, port: u16, dir: &Path, name: &str, extra: &[String]) -> Proc {
        let mut args = vec![
            "--port".to_string(),
            port.to_string(),
            "--json".into(),
            "--name".into(),
            name.into(),
        ];
        args.extend(net.flags(port));
        args.extend_from_slice(extra);
        Proc::spawn(name, env!("CARGO_BIN_EXE_client"), &args, dir, Format::Json)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Writes one line to stdin.
    pub fn send(&mut self, line: &str) -> Result<(), String> {
        self.process
            .write_line(line)
            .map_err(|e| format!("{}: cannot write to stdin: {e}", self.name))
    }

    /// Sends a command and waits for a notice that satisfies `pred`.
    pub fn ask(&mut self, command: &str, pred: impl Fn(&str) -> bool) -> Result<String, String> {
        let before = self.watch.lock().notices.len();
        self.send(command)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let found = self.watch.wait_for(deadline, |s| {
            s.notices[before.min(s.notices.len())..]
                .iter()
                .any(|(_, t)| pred(t))
        });
        if !found {
            return Err(format!("{}: no answer to {command} within 10 s", self.name));
        }
        let seen = self.watch.lock();
        let text = seen.notices[before..]
            .iter()
            .find(|(_, t)| pred(t))
            .map(|(_, t)| t.clone());
        text.ok_or_else(|| format!("{}: lost the answer to {command}", self.name))
    }

    /// The `/stats` counters of a client, by label (`token visits`, `stamped`, ...).
    pub fn stats(&mut self) -> Result<BTreeMap<String, u64>, String> {
        let text = self.ask("/stats", |t| t.contains("token visits"))?;
        Ok(parse_stats(&text))
    }

    /// The `timing` row of a client's `/stats`: the p99s, in ms, of its own lines from typed
    /// to sent and from sent to delivered there (`None` before any was delivered).
    pub fn own_line_p99s(&mut self) -> Result<Option<(f64, f64)>, String> {
        let text = self.ask("/stats", |t| t.contains("token visits"))?;
        Ok(parse_timing(&text))
    }

    /// `kill -9`, and reap it (the runner closes stdin only once it is dead).
    pub fn kill(&mut self) {
        self.process.kill_9();
    }

    pub fn stderr_tail(&self) -> String {
        self.process.stderr_tail(8)
    }

    /// The bytes of the one `replica_*.jsonl` in the data dir.
    pub fn replica(&self) -> Result<Vec<u8>, String> {
        self.process.read_replica()
    }
}

/// Labelled counters of a `/stats` answer (`typed and sent 12, token visits 40, ...`), by
/// the names the bench reports them under.
pub fn parse_stats(text: &str) -> BTreeMap<String, u64> {
    let labels = [
        ("waiting", "outbox"),
        ("typed and sent", "stamped"),
        ("token visits", "token visits"),
        ("collects", "collects"),
        ("cut short", "unanswered"),
        ("by a wake", "woken"),
        ("passes resent", "token resends"),
        ("re-sent for others", "retransmissions"),
        ("copies already held", "duplicates"),
        ("from old views", "stale"),
        ("views", "views"),
        ("datagrams out", "sent"),
        ("in", "received"),
    ];
    let mut out = BTreeMap::new();
    for (label, key) in labels {
        let pattern = format!(" {label} ");
        let Some(i) = text.find(&pattern) else {
            continue;
        };
        let digits: String = text[i + pattern.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(v) = digits.parse() {
            out.insert(key.replace(' ', "_"), v);
        }
    }
    out
}

/// Kills every child on SIGINT, SIGTERM or SIGHUP, then exits 130: a stopped bench leaves no
/// server behind (clients would leave on their own at stdin EOF, a server would not).
pub fn install_signal_guard() {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&flag)) {
            eprintln!("warning: cannot watch signal {sig}: {e}");
        }
    }
    let spawned = thread::Builder::new()
        .name("signal-guard".into())
        .spawn(move || loop {
            if flag.load(Ordering::SeqCst) {
                crate::process::kill_all();
                eprintln!("bench stopped by a signal; killed its child processes");
                std::process::exit(130);
            }
            thread::sleep(Duration::from_millis(100));
        });
    if let Err(e) = spawned {
        eprintln!("warning: no signal guard: {e}");
    }
}

/// The two p99s of a `/stats` answer's `timing` row (`typed to sent p50 A / p99 B ms, sent to
/// delivered p50 C / p99 D ms`).
pub fn parse_timing(text: &str) -> Option<(f64, f64)> {
    let row = text.lines().find(|l| l.contains("typed to sent"))?;
    let mut p99s = row
        .split("p99 ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<f64>().ok());
    Some((p99s.next()?, p99s.next()?))
}
