//! The ring benchmark of issue 5: `cargo bench --bench ring` (a `harness = false` binary).
//!
//! It starts the real `server` and `client` binaries (built by cargo for this bench, found
//! through `CARGO_BIN_EXE_*`) on loopback, with `--json` client output read line by line, and
//! measures in one run, for N = 1, 2, 4, 8, 16 clients:
//!
//! - **raw baseline**: one sender floods 200-byte datagrams to N+1 receiver sockets set up like
//!   `src/net.rs` (reuse address and port, join 224.1.1.1 on 127.0.0.1, loopback on, 4 MiB
//!   buffers), no protocol; the rate is what the slowest receiver got per second;
//! - **ordered throughput**: every client gets its share of a batch of lines on stdin at once;
//!   lines/s from the first write until the last line shows on the stdout of every client (a
//!   client prints a message after appending it to its replica, so this is "delivered and
//!   persisted"), and until the server's archive has it too; its ratio to the baseline; and a
//!   steady rate between the 10th and 90th percent of the lines. A calibration flood (checked,
//!   not quoted) sizes the quoted runs to last a few seconds each;
//! - **latency**: submit (the write to a client's stdin) to delivered everywhere (the latest of
//!   the clients' stdout readers), at a paced 1,000 lines/s spread over the clients, and for a
//!   sporadic line every 200 ms on an otherwise idle ring;
//! - **token rotation**: a passive observer socket joined to the ring's group records every
//!   token pass (decoded with `wire::decode`); per phase it reports the hop interval p50/p99,
//!   the rotation (N times the mean hop), stalls (hops over 50 ms) and the bare hop (a pass
//!   after a visit that stamped nothing). Client 0's `/stats` token visits give a cross-check;
//! - **idle cost**: CPU time (the threads' `/proc/PID/task/*/schedstat`, ns resolution) and
//!   thread wake-ups (context switches) of the server and the clients over an idle window:
//!   10 s at N = 8, 2 s at the other sizes;
//! - **recovery**: with `--token-timeout 1s`, a client is killed with `kill -9` under a paced
//!   load; the time from the kill until every survivor delivers again (issue 3: within the
//!   token timeout + 200 ms);
//! - **catch-up**: a replica of 20,000 (and 200,000) messages is written into the server's data
//!   dir before it starts; the time until a new client has delivered all of it, counting the
//!   server's start, and the client's resident memory afterwards.
//!
//! Times are taken in this process: a line's submit when it is written to the pipe, its
//! delivery when the reader thread reads it from the client's stdout (the clients flush every
//! line). The bench's reader threads and observer share the 2 cores with the ring.
//!
//! Every ring session ends with a check that fails the run (exit 1) on a fast wrong answer:
//! the replicas of all clients and the server byte-identical, `seq` gapless from 1, every
//! submitted line exactly once and each author's lines in submit order, and every client's
//! stdout stream equal to its replica. It prints a markdown table and one `BENCH_JSON {...}`
//! line (`scripts/plot.py` draws `docs/bench.svg` from it).
//!
//! `BENCH_QUICK=1` runs N = 1, 2, 4 with short windows (about a minute); the full run takes
//! under 10 minutes on a 2-core machine. `BENCH_NS=1,8` picks the ring sizes, `BENCH_PORT_BASE`
//! (default 46000) the first of the ports used (base .. base + 999), `BENCH_COMMIT` the commit
//! named in the report (default: `git rev-parse --short HEAD`, marked when `src/` has changes).
//!
//! Safety: all traffic stays on loopback (group 224.1.1.1 via 127.0.0.1, the binaries' default
//! interface); every child process is killed when its handle drops, on a panic, and on SIGINT,
//! SIGTERM or SIGHUP of the bench; every wait has a deadline and every loop a bound.

use mcast_chat::protocol::types::{ChatRecord, Epoch, NodeId, Seq};
use mcast_chat::protocol::wire::{self, Msg};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use uuid::Uuid;

/// The chat's default group; the binaries use it too.
const GROUP: Ipv4Addr = Ipv4Addr::new(224, 1, 1, 1);
/// Loopback keeps every datagram on this host.
const INTERFACE: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// Size of a raw baseline datagram, and the size the chat lines are padded to as `Data`.
const DATAGRAM_BYTES: usize = 200;
/// Same as `src/net.rs`, so the baseline sockets queue as much as the chat's.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Line kinds, the first part of every bench line's key (and text: `b<phase>-<client>-<n>`).
const PHASE_WARMUP: u64 = 1;
const PHASE_SPORADIC: u64 = 2;
const PHASE_PACED: u64 = 3;
/// Flood run `r` uses phase `PHASE_FLOOD + r`.
const PHASE_FLOOD: u64 = 4;
/// Key of a line that is not a bench line (history written by the catch-up session).
const NO_KEY: u64 = 0;

/// Pids of every child still running, killed by the signal guard if the bench is stopped.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn children() -> MutexGuard<'static, Vec<u32>> {
    // A pid list cannot be left half-updated by a panic.
    CHILDREN.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// The plan: what to run, and for how long.

/// The knobs of one run: the full run, or `BENCH_QUICK=1`.
#[derive(Clone, Debug, Serialize)]
struct Plan {
    quick: bool,
    /// Ring sizes.
    ns: Vec<usize>,
    /// First port; sessions use `port_base + offset` (all within `port_base..port_base+1000`).
    port_base: u16,
    /// How long the raw sender floods, per repetition.
    #[serde(serialize_with = "as_ms", rename = "raw_window_ms")]
    raw_window: Duration,
    /// Repetitions of the cheap measurements (raw baseline, flood); the median is quoted.
    repeats: usize,
    /// Ring size whose idle window is the headline idle cost.
    idle_n: usize,
    /// Idle window at `idle_n`.
    #[serde(serialize_with = "as_ms", rename = "idle_window_ms")]
    idle_window: Duration,
    /// Idle window at the other sizes.
    #[serde(serialize_with = "as_ms", rename = "idle_probe_ms")]
    idle_probe: Duration,
    /// Sporadic lines, one every `sporadic_every`.
    sporadic_lines: usize,
    #[serde(serialize_with = "as_ms", rename = "sporadic_every_ms")]
    sporadic_every: Duration,
    /// Paced load: lines per second over all clients, for `paced_for`.
    paced_rate: u32,
    #[serde(serialize_with = "as_ms", rename = "paced_for_ms")]
    paced_for: Duration,
    /// Lines per flood run, over all clients: a calibration run of `flood_min_lines` (checked,
    /// not quoted) sizes the quoted runs to last about `flood_for`, within
    /// `flood_min_lines..=flood_lines`.
    flood_lines: usize,
    flood_min_lines: usize,
    #[serde(serialize_with = "as_ms", rename = "flood_for_ms")]
    flood_for: Duration,
    /// Recovery session: clients, and how many of them are killed one after another.
    recovery_clients: usize,
    recovery_kills: usize,
    /// Paced load during the recovery session, lines per second.
    recovery_rate: u32,
    /// Token timeout of the recovery session's server.
    #[serde(serialize_with = "as_ms", rename = "recovery_token_timeout_ms")]
    recovery_token_timeout: Duration,
    /// Catch-up sessions: (history size, repetitions).
    catchup: Vec<(usize, usize)>,
}

impl Plan {
    fn from_env() -> Plan {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let port_base = std::env::var("BENCH_PORT_BASE")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(46000);
        let mut plan = if quick {
            Plan {
                quick,
                ns: vec![1, 2, 4],
                port_base,
                raw_window: Duration::from_millis(500),
                repeats: 3,
                idle_n: 4,
                idle_window: Duration::from_secs(3),
                idle_probe: Duration::from_secs(1),
                sporadic_lines: 10,
                sporadic_every: Duration::from_millis(200),
                paced_rate: 1000,
                paced_for: Duration::from_millis(1500),
                flood_lines: 5_000,
                flood_min_lines: 1_000,
                flood_for: Duration::from_secs(2),
                recovery_clients: 3,
                recovery_kills: 1,
                recovery_rate: 500,
                recovery_token_timeout: Duration::from_secs(1),
                catchup: vec![(20_000, 1)],
            }
        } else {
            Plan {
                quick,
                ns: vec![1, 2, 4, 8, 16],
                port_base,
                raw_window: Duration::from_secs(1),
                repeats: 3,
                idle_n: 8,
                idle_window: Duration::from_secs(10),
                idle_probe: Duration::from_secs(2),
                sporadic_lines: 25,
                sporadic_every: Duration::from_millis(200),
                paced_rate: 1000,
                paced_for: Duration::from_secs(3),
                flood_lines: 20_000,
                flood_min_lines: 2_000,
                flood_for: Duration::from_secs(6),
                recovery_clients: 5,
                recovery_kills: 3,
                recovery_rate: 500,
                recovery_token_timeout: Duration::from_secs(1),
                catchup: vec![(20_000, 3), (200_000, 1)],
            }
        };
        if let Ok(ns) = std::env::var("BENCH_NS") {
            let parsed: Vec<usize> = ns
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .filter(|n| (1..=16).contains(n))
                .collect();
            if !parsed.is_empty() {
                plan.ns = parsed;
            }
        }
        plan
    }

    /// A port for a session: `offset` below 1000 keeps it in the bench's range.
    fn port(&self, offset: u16) -> u16 {
        self.port_base + offset % 1000
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

/// Serializes a duration as milliseconds (for the JSON report).
fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(ms(*d))
}

/// Prints a progress line on stderr, with seconds since the bench started.
fn progress(start: Instant, text: &str) {
    eprintln!("[{:7.1}s] {text}", start.elapsed().as_secs_f64());
}

fn sleep_until(at: Instant) {
    loop {
        let now = Instant::now();
        if now >= at {
            return;
        }
        thread::sleep((at - now).min(Duration::from_millis(5)));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median of a list (mean of the middle two for an even length); 0 for an empty list.
fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Nearest-rank percentile of sorted values (`p` in 0..=100); 0 for an empty list.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key of a bench line: phase, client and number, packed into one `u64`.
fn key(phase: u64, client: usize, n: usize) -> u64 {
    (phase << 40) | ((client as u64) << 24) | n as u64
}

fn key_phase(key: u64) -> u64 {
    key >> 40
}

fn key_client(key: u64) -> usize {
    ((key >> 24) & 0xffff) as usize
}

fn key_n(key: u64) -> usize {
    (key & 0xff_ffff) as usize
}

/// Parses the key back out of a line text `b<phase>-<client>-<n> <padding>`.
fn parse_key(text: &str) -> u64 {
    let Some(rest) = text.strip_prefix('b') else {
        return NO_KEY;
    };
    let head = rest.split(' ').next().unwrap_or("");
    let mut parts = head.split('-').map(str::parse::<u64>);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(p)), Some(Ok(c)), Some(Ok(n)), None) if p > 0 && c < 1 << 16 && n < 1 << 24 => {
            key(p, c as usize, n as usize)
        }
        _ => NO_KEY,
    }
}

// ---------------------------------------------------------------------------------------------
// /proc readers (Linux).

/// CPU time of a process in seconds: the sum of its threads' `schedstat` run times (ns
/// resolution), or utime + stime from `stat` (clock ticks) where schedstat is missing.
fn cpu_secs(pid: u32) -> Option<f64> {
    schedstat_secs(pid).or_else(|| stat_ticks(pid).map(|t| t as f64 / clock_ticks()))
}

fn schedstat_secs(pid: u32) -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

/// utime + stime of every thread of a process, in clock ticks.
fn stat_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start with field 3, the state.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Context switches (voluntary + involuntary) summed over the live threads of a process: how
/// often its threads woke up.
fn context_switches(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Some(total)
}

/// Resident memory of a process in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Clock ticks per second for `/proc/PID/stat` (`getconf CLK_TCK`, 100 if that fails).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

// ---------------------------------------------------------------------------------------------
// Child processes and their stdout.

/// What a reader thread has seen on one process's stdout.
#[derive(Default)]
struct Seen {
    /// `(key, when read)` of every delivered message; index `i` holds `seq` `i + 1`.
    msgs: Vec<(u64, Instant)>,
    /// Notices (client `--json` `notice` events, server `* ` lines), with when they were read.
    notices: Vec<(Instant, String)>,
    /// The first inconsistency in the stream: a message whose `seq` is not the next one.
    error: Option<String>,
    /// The process closed its stdout (it exited).
    eof: bool,
}

/// A [`Seen`] shared with its reader thread, with a condition variable to wait on.
#[derive(Default)]
struct Watch {
    seen: Mutex<Seen>,
    changed: Condvar,
}

impl Watch {
    fn lock(&self) -> MutexGuard<'_, Seen> {
        // Plain data; a reader thread that panicked leaves nothing half-updated.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `pred` holds (true) or the deadline passes or the stream ends (false).
    fn wait_for(&self, deadline: Instant, pred: impl Fn(&Seen) -> bool) -> bool {
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

    fn delivered(&self) -> usize {
        self.lock().msgs.len()
    }
}

/// How a process prints: a client with `--json`, or the server's human format.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Human,
}

/// One parsed stdout line.
enum Line {
    Message { seq: u64, key: u64 },
    Notice(String),
    Other,
}

/// Parses a client `--json` line. Messages take the fast path (no JSON parser): the bench
/// reads every delivery of every client and must not steal much CPU from the ring.
fn parse_json_line(line: &str) -> Line {
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
fn parse_human_line(line: &str) -> Line {
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

fn read_stdout(out: impl Read, format: Format, watch: &Watch) {
    let mut reader = BufReader::with_capacity(1 << 16, out);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let at = Instant::now();
        let text = line.trim_end();
        let parsed = match format {
            Format::Json => parse_json_line(text),
            Format::Human => parse_human_line(text),
        };
        let mut seen = watch.lock();
        match parsed {
            Line::Message { seq, key } => {
                let expected = seen.msgs.len() as u64 + 1;
                if seq != expected && seen.error.is_none() {
                    seen.error = Some(format!("delivered #{seq} where #{expected} was next"));
                }
                seen.msgs.push((key, at));
            }
            Line::Notice(text) => seen.notices.push((at, text)),
            Line::Other => {}
        }
        drop(seen);
        watch.changed.notify_all();
    }
    watch.lock().eof = true;
    watch.changed.notify_all();
}

/// A running `server` or `client`, killed (SIGKILL) and reaped when dropped.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    watch: Arc<Watch>,
    /// The data dir.
    dir: PathBuf,
    /// Where its stderr goes.
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, bin: &str, args: &[String], dir: &Path, format: Format) -> Proc {
        std::fs::create_dir_all(dir).expect("create a data dir");
        let log = dir.with_extension("stderr.log");
        let stderr = File::create(&log).expect("create a stderr log");
        let mut child = Command::new(bin)
            .args(args)
            .arg("--data-dir")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        children().push(child.id());
        let stdout = child.stdout.take().expect("stdout is piped");
        let watch = Arc::new(Watch::default());
        let w = Arc::clone(&watch);
        thread::Builder::new()
            .name(format!("stdout-{name}"))
            .spawn(move || read_stdout(stdout, format, &w))
            .expect("start a reader thread");
        Proc {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            watch,
            dir: dir.to_path_buf(),
            log,
        }
    }

    fn server(port: u16, dir: &Path, extra: &[&str]) -> Proc {
        let mut args = vec!["--port".to_string(), port.to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Proc::spawn(
            "server",
            env!("CARGO_BIN_EXE_server"),
            &args,
            dir,
            Format::Human,
        )
    }

    fn client(port: u16, dir: &Path, name: &str) -> Proc {
        let args = [
            "--port".to_string(),
            port.to_string(),
            "--json".into(),
            "--name".into(),
            name.into(),
        ];
        Proc::spawn(name, env!("CARGO_BIN_EXE_client"), &args, dir, Format::Json)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one line to stdin.
    fn send(&mut self, line: &str) -> Result<(), String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("{}: stdin is closed", self.name))?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| format!("{}: cannot write to stdin: {e}", self.name))
    }

    /// Sends a command and waits for a notice that satisfies `pred`.
    fn ask(&mut self, command: &str, pred: impl Fn(&str) -> bool) -> Result<String, String> {
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
    fn stats(&mut self) -> Result<BTreeMap<String, u64>, String> {
        let text = self.ask("/stats", |t| t.contains("token visits"))?;
        Ok(parse_stats(&text))
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pid = self.child.id();
        children().retain(|p| *p != pid);
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// The bytes of the one `replica_*.jsonl` in the data dir.
    fn replica(&self) -> Result<Vec<u8>, String> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| format!("{}: cannot list {}: {e}", self.name, self.dir.display()))?;
        let files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("replica_") && n.ends_with(".jsonl"))
            })
            .collect();
        match files.as_slice() {
            [one] => std::fs::read(one).map_err(|e| format!("{}: {e}", one.display())),
            other => Err(format!(
                "{}: expected one replica in {}, found {other:?}",
                self.name,
                self.dir.display()
            )),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Labelled counters of a `/stats` line: `stamped 12, token visits 40, ...`.
fn parse_stats(text: &str) -> BTreeMap<String, u64> {
    let labels = [
        "outbox",
        "stamped",
        "token visits",
        "token resends",
        "retransmissions",
        "duplicates",
        "stale",
        "views",
        "sent",
        "received",
    ];
    let mut out = BTreeMap::new();
    for label in labels {
        let pattern = format!(" {label} ");
        let Some(i) = text.find(&pattern) else {
            continue;
        };
        let digits: String = text[i + pattern.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(v) = digits.parse() {
            out.insert(label.replace(' ', "_"), v);
        }
    }
    out
}

/// Kills every child on SIGINT, SIGTERM or SIGHUP, then exits 130: a stopped bench leaves no
/// server behind (clients would leave on their own at stdin EOF, a server would not).
fn install_signal_guard() {
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
                for pid in children().iter() {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
                eprintln!("bench stopped by a signal; killed its child processes");
                std::process::exit(130);
            }
            thread::sleep(Duration::from_millis(100));
        });
    if let Err(e) = spawned {
        eprintln!("warning: no signal guard: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Raw multicast baseline.

/// One multicast socket configured like `src/net.rs`. A receiver binds the group and port
/// and joins; the sender binds an ephemeral port so that it does not receive its own flood.
fn baseline_socket(port: u16, receiver: bool) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    let bind = if receiver {
        SocketAddrV4::new(GROUP, port)
    } else {
        SocketAddrV4::new(INTERFACE, 0)
    };
    socket.bind(&SockAddr::from(bind))?;
    if receiver {
        socket.join_multicast_v4(&GROUP, &INTERFACE)?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
    }
    socket.set_multicast_if_v4(&INTERFACE)?;
    socket.set_multicast_ttl_v4(1)?;
    socket.set_multicast_loop_v4(true)?;
    Ok(socket.into())
}

/// One raw baseline run.
#[derive(Clone, Debug, Serialize)]
struct RawRun {
    receivers: usize,
    secs: f64,
    sent: u64,
    /// Datagrams at the receiver that got the fewest, and the most.
    slowest: u64,
    fastest: u64,
    send_errors: u64,
    /// The slowest receiver's datagrams per second (the sender's, if it is slower).
    rate: f64,
}

/// One sender floods `DATAGRAM_BYTES`-byte datagrams for `window`; `receivers` threads count.
fn raw_baseline(port: u16, receivers: usize, window: Duration) -> std::io::Result<RawRun> {
    let magic: u64 = rand::random();
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(receivers + 1));
    // Every socket before any thread, so that an error cannot leave a thread at the barrier.
    let sender = baseline_socket(port, false)?;
    let sockets = (0..receivers)
        .map(|_| baseline_socket(port, true))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut counters = Vec::new();
    let mut handles = Vec::new();
    for socket in sockets {
        let count = Arc::new(AtomicU64::new(0));
        let (stop, ready, c) = (Arc::clone(&stop), Arc::clone(&ready), Arc::clone(&count));
        counters.push(count);
        handles.push(thread::spawn(move || {
            let mut buf = [0u8; 2048];
            ready.wait();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    if n == DATAGRAM_BYTES && buf[..8] == magic.to_le_bytes() {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let to = SocketAddrV4::new(GROUP, port);
    let mut datagram = vec![b'x'; DATAGRAM_BYTES];
    datagram[..8].copy_from_slice(&magic.to_le_bytes());
    ready.wait();
    thread::sleep(Duration::from_millis(20));
    let (mut sent, mut errors) = (0u64, 0u64);
    let start = Instant::now();
    // Bounded by time, and by count in case the clock check is never reached.
    while sent + errors < 100_000_000 {
        if (sent + errors) % 64 == 0 && start.elapsed() >= window {
            break;
        }
        match sender.send_to(&datagram, to) {
            Ok(_) => sent += 1,
            Err(_) => errors += 1,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let counts: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let slowest = counts.iter().copied().min().unwrap_or(0);
    let fastest = counts.iter().copied().max().unwrap_or(0);
    Ok(RawRun {
        receivers,
        secs,
        sent,
        slowest,
        fastest,
        send_errors: errors,
        rate: slowest.min(sent) as f64 / secs,
    })
}

// ---------------------------------------------------------------------------------------------
// A passive observer of token passes.

/// One token pass seen on the group.
#[derive(Clone, Copy, Debug)]
struct Hop {
    at: Instant,
    epoch: u64,
    hop: u64,
    /// The token's `seq` (highest stamped) when it was passed.
    seq: u64,
}

/// A socket joined to the ring's group and port that records every token pass (first copy of
/// each `(epoch, hop)`). It decodes with `wire::decode`, so it follows the wire format; it is
/// one more receiver of every datagram, which costs the ring a little.
struct Observer {
    stop: Arc<AtomicBool>,
    hops: Arc<Mutex<Vec<Hop>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Observer {
    fn start(port: u16) -> std::io::Result<Observer> {
        let socket = baseline_socket(port, true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let hops = Arc::new(Mutex::new(Vec::new()));
        let (s, h) = (Arc::clone(&stop), Arc::clone(&hops));
        let thread = thread::Builder::new()
            .name("observer".into())
            .spawn(move || observe(&socket, &s, &h))?;
        Ok(Observer {
            stop,
            hops,
            thread: Some(thread),
        })
    }

    /// Statistics of the passes between `from` and `to` in a ring of `n`.
    fn stats(&self, from: Instant, to: Instant, n: usize) -> HopStats {
        let hops = self.hops.lock().unwrap_or_else(PoisonError::into_inner);
        let window: Vec<Hop> = hops
            .iter()
            .filter(|h| h.at >= from && h.at <= to)
            .copied()
            .collect();
        hop_stats(&window, (to - from).as_secs_f64(), n)
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn observe(socket: &UdpSocket, stop: &AtomicBool, hops: &Mutex<Vec<Hop>>) {
    let mut buf = vec![0u8; 65_536];
    let mut last = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        let at = Instant::now();
        if let Ok(Msg::Token(t)) = wire::decode(&buf[..n]) {
            if (t.epoch.0, t.hop) > last {
                last = (t.epoch.0, t.hop);
                let hop = Hop {
                    at,
                    epoch: t.epoch.0,
                    hop: t.hop,
                    seq: t.seq.0,
                };
                hops.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(hop);
            }
        }
    }
}

/// Token passes in a window, from the observer.
#[derive(Clone, Debug, Default, Serialize)]
struct HopStats {
    hops: usize,
    per_s: f64,
    /// Intervals between consecutive passes of one epoch.
    p50_us: f64,
    p99_us: f64,
    max_ms: f64,
    /// Intervals over 50 ms (an idle hold, a lost wake-up, a timer), and their total.
    stalls: usize,
    stalled_ms: f64,
    /// N times the mean interval: one rotation.
    rotation_ms: f64,
    /// Intervals after a visit that stamped nothing and did not hold (under 50 ms): the cost
    /// of a bare token hop.
    bare_hops: usize,
    bare_p50_us: f64,
}

const STALL: Duration = Duration::from_millis(50);

fn hop_stats(hops: &[Hop], secs: f64, n: usize) -> HopStats {
    let mut gaps: Vec<f64> = Vec::new();
    let mut bare: Vec<f64> = Vec::new();
    let mut stalled = 0.0;
    let mut stalls = 0;
    for w in hops.windows(2) {
        if w[1].epoch != w[0].epoch || w[1].hop != w[0].hop + 1 {
            continue;
        }
        let gap = w[1].at - w[0].at;
        gaps.push(gap.as_secs_f64() * 1e6);
        if gap > STALL {
            stalls += 1;
            stalled += ms(gap);
        } else if w[1].seq == w[0].seq {
            bare.push(gap.as_secs_f64() * 1e6);
        }
    }
    let mean = gaps.iter().sum::<f64>() / gaps.len().max(1) as f64;
    gaps.sort_by(f64::total_cmp);
    bare.sort_by(f64::total_cmp);
    HopStats {
        hops: hops.len(),
        per_s: hops.len() as f64 / secs.max(1e-9),
        p50_us: percentile(&gaps, 50.0),
        p99_us: percentile(&gaps, 99.0),
        max_ms: gaps.last().copied().unwrap_or(0.0) / 1000.0,
        stalls,
        stalled_ms: stalled,
        rotation_ms: mean * n as f64 / 1000.0,
        bare_hops: bare.len(),
        bare_p50_us: percentile(&bare, 50.0),
    }
}

// ---------------------------------------------------------------------------------------------
// A ring: the server and N clients, with what was submitted.

/// The server and N clients on one port, each in its own data dir under one temp dir.
struct Ring {
    /// Clients first: they are killed before the server when the ring drops.
    clients: Vec<Proc>,
    server: Proc,
    /// Every line handed to each client, as keys, in submit order.
    submitted: Vec<Vec<u64>>,
    /// When each line whose latency is measured was written to its client's stdin.
    submit_at: HashMap<u64, Instant>,
    /// Clients that were killed on purpose (recovery): their lines may be missing.
    killed: HashSet<usize>,
    /// Padding that brings a line's `Data` datagram to `DATAGRAM_BYTES`.
    pad: String,
    /// Records token passes on the ring's port.
    observer: Observer,
    /// Removed on drop unless a check failed (then kept for inspection).
    root: Option<TempDir>,
    root_path: PathBuf,
}

/// The check of a ring's history after a session.
#[derive(Clone, Debug, Serialize)]
struct Verified {
    messages: usize,
    replicas: usize,
    sha256: String,
}

impl Ring {
    fn start(label: &str, port: u16, n: usize, server_extra: &[&str]) -> Result<Ring, String> {
        let root = tempfile::Builder::new()
            .prefix(&format!("mcast-bench-{label}-"))
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let root_path = root.path().to_path_buf();
        let observer =
            Observer::start(port).map_err(|e| format!("cannot observe port {port}: {e}"))?;
        let server = Proc::server(port, &root_path.join("server"), server_extra);
        let mut ring = Ring {
            clients: Vec::new(),
            server,
            submitted: vec![Vec::new(); n],
            submit_at: HashMap::new(),
            killed: HashSet::new(),
            pad: "x".repeat(pad_len()),
            observer,
            root: Some(root),
            root_path,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        if !ring
            .server
            .watch
            .wait_for(deadline, |s| !s.notices.is_empty())
        {
            return Err(format!(
                "server did not start: {}",
                ring.server.stderr_tail()
            ));
        }
        for c in 0..n {
            let name = format!("c{c}");
            let dir = ring.root_path.join(&name);
            ring.clients.push(Proc::client(port, &dir, &name));
        }
        let deadline = Instant::now() + Duration::from_secs(20 + 2 * n as u64);
        for c in &ring.clients {
            let joined = c.watch.wait_for(deadline, |s| {
                s.notices
                    .iter()
                    .any(|(_, t)| t.starts_with("joined the ring"))
            });
            if !joined {
                return Err(format!("{} did not join: {}", c.name, c.stderr_tail()));
            }
        }
        for c in 0..n {
            ring.submit(c, key(PHASE_WARMUP, c, 0), false)?;
        }
        ring.wait_clients(n, Duration::from_secs(30), "the warm-up lines")?;
        let expect = format!("{n} member");
        ring.clients[0].ask("/who", |t| t.starts_with(&expect))?;
        Ok(ring)
    }

    fn n(&self) -> usize {
        self.clients.len()
    }

    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.n()).filter(|c| !self.killed.contains(c))
    }

    fn text(&self, key: u64) -> String {
        format!(
            "b{}-{}-{} {}",
            key_phase(key),
            key_client(key),
            key_n(key),
            self.pad
        )
    }

    /// Writes a line to client `c`; `timed` records its submit instant for latency.
    fn submit(&mut self, c: usize, key: u64, timed: bool) -> Result<(), String> {
        let text = self.text(key);
        let at = Instant::now();
        self.clients[c].send(&text)?;
        self.submitted[c].push(key);
        if timed {
            self.submit_at.insert(key, at);
        }
        Ok(())
    }

    /// Waits until every live client has delivered `count` messages; returns, per client,
    /// when it printed message number `count`.
    fn wait_clients(
        &self,
        count: usize,
        timeout: Duration,
        what: &str,
    ) -> Result<Vec<Instant>, String> {
        let deadline = Instant::now() + timeout;
        let mut done = Vec::new();
        for c in self.live() {
            let p = &self.clients[c];
            if !p.watch.wait_for(deadline, |s| s.msgs.len() >= count) {
                return Err(format!(
                    "{what}: {} delivered {} of {count} within {timeout:?} ({})",
                    p.name,
                    p.watch.delivered(),
                    self.progress_summary()
                ));
            }
            done.push(p.watch.lock().msgs[count - 1].1);
        }
        Ok(done)
    }

    /// When the server archived (printed) message number `count`.
    fn wait_server(&self, count: usize, timeout: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + timeout;
        let w = &self.server.watch;
        if !w.wait_for(deadline, |s| s.msgs.len() >= count) {
            return Err(format!(
                "the server archived {} of {count} within {timeout:?}",
                w.delivered()
            ));
        }
        Ok(w.lock().msgs[count - 1].1)
    }

    fn progress_summary(&self) -> String {
        let mut parts: Vec<String> = self
            .clients
            .iter()
            .map(|c| format!("{} {}", c.name, c.watch.delivered()))
            .collect();
        parts.push(format!("server {}", self.server.watch.delivered()));
        parts.join(", ")
    }

    /// Messages every live client has delivered (they agree when the ring is quiet).
    fn delivered(&self) -> usize {
        self.live()
            .map(|c| self.clients[c].watch.delivered())
            .min()
            .unwrap_or(0)
    }

    fn pids(&self) -> Vec<(String, u32)> {
        let mut out = vec![("server".to_string(), self.server.pid())];
        out.extend(
            self.live()
                .map(|c| (self.clients[c].name.clone(), self.clients[c].pid())),
        );
        out
    }

    /// Keeps the temp dir (a check failed): its path goes into the error.
    fn keep_files(&mut self) -> PathBuf {
        if let Some(root) = self.root.take() {
            let _ = root.keep();
        }
        self.root_path.clone()
    }

    /// Checks the history (see the module docs). Fails with the first problem found.
    fn verify(&mut self) -> Result<Verified, String> {
        let result = self.check_history();
        result.map_err(|e| format!("{e} (files kept in {})", self.keep_files().display()))
    }

    fn check_history(&self) -> Result<Verified, String> {
        let live: Vec<usize> = self.live().collect();
        let first = self.clients[live[0]].replica()?;
        for &c in &live {
            let p = &self.clients[c];
            if let Some(e) = &p.watch.lock().error {
                return Err(format!("{}: stdout out of order: {e}", p.name));
            }
            if p.replica()? != first {
                return Err(format!(
                    "the replica of {} differs from {}'s",
                    p.name, self.clients[live[0]].name
                ));
            }
        }
        // The server archives as it goes; give it a moment to catch the tail.
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.server.replica()? != first {
            if Instant::now() >= deadline {
                return Err("the server's archive differs from the clients' replicas".into());
            }
            thread::sleep(Duration::from_millis(100));
        }
        for &c in &self.killed {
            let p = &self.clients[c];
            if !first.starts_with(&p.replica()?) {
                return Err(format!(
                    "the replica of killed {} is not a prefix of the history",
                    p.name
                ));
            }
        }
        let keys = replica_keys(&first)?;
        self.check_keys(&keys)?;
        for &c in &live {
            let seen = self.clients[c].watch.lock();
            if seen.msgs.len() != keys.len()
                || seen.msgs.iter().map(|m| m.0).ne(keys.iter().copied())
            {
                return Err(format!(
                    "{} printed a different history than its replica holds",
                    self.clients[c].name
                ));
            }
        }
        Ok(Verified {
            messages: keys.len(),
            replicas: live.len() + 1,
            sha256: sha256_hex(&first),
        })
    }

    /// Every submitted line exactly once (at most once for killed clients), nothing else,
    /// each author's lines in submit order.
    fn check_keys(&self, keys: &[u64]) -> Result<(), String> {
        let mut expected: HashSet<u64> = HashSet::new();
        for lines in &self.submitted {
            expected.extend(lines.iter().copied());
        }
        let mut seen: HashSet<u64> = HashSet::with_capacity(keys.len());
        let mut last: HashMap<usize, u64> = HashMap::new();
        for (i, &k) in keys.iter().enumerate() {
            if !expected.contains(&k) {
                return Err(format!("#{}: a line that nobody submitted", i + 1));
            }
            if !seen.insert(k) {
                return Err(format!("#{}: a line delivered twice", i + 1));
            }
            let c = key_client(k);
            if last.get(&c).is_some_and(|&prev| prev > k) {
                return Err(format!("#{}: c{c}'s lines out of submit order", i + 1));
            }
            last.insert(c, k);
        }
        for (c, lines) in self.submitted.iter().enumerate() {
            if self.killed.contains(&c) {
                continue;
            }
            let missing = lines.iter().filter(|k| !seen.contains(k)).count();
            if missing > 0 {
                return Err(format!("{missing} lines of c{c} never delivered"));
            }
        }
        Ok(())
    }
}

/// The keys of a replica's lines, checking that `seq` runs 1, 2, 3, ... without gaps.
fn replica_keys(bytes: &[u8]) -> Result<Vec<u64>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("replica not UTF-8: {e}"))?;
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let rec: ChatRecord =
            serde_json::from_str(line).map_err(|e| format!("replica line {}: {e}", i + 1))?;
        if rec.seq != Seq(i as u64 + 1) {
            return Err(format!("replica line {} holds #{}", i + 1, rec.seq));
        }
        keys.push(parse_key(&rec.text));
    }
    Ok(keys)
}

/// Padding length that makes a bench line's `Data` datagram about `DATAGRAM_BYTES` long.
fn pad_len() -> usize {
    data_datagram_len("b3-1-1234 ").map_or(40, |len| DATAGRAM_BYTES.saturating_sub(len))
}

/// The encoded size of a `Data` datagram carrying `text` (a typical seq, uuids, name "c1").
fn data_datagram_len(text: &str) -> Option<usize> {
    let rec = ChatRecord {
        seq: Seq(12_345),
        id: Uuid::new_v4(),
        from: NodeId::random(),
        name: "c1".into(),
        text: text.into(),
        sent_at_ms: 1_800_000_000_000,
    };
    wire::encode(&Msg::Data {
        epoch: Epoch(3),
        rec,
    })
    .ok()
    .map(|b| b.len())
}

// ---------------------------------------------------------------------------------------------
// Measurements on a ring.

/// Submit-to-delivered-everywhere latencies of one phase.
#[derive(Clone, Debug, Serialize)]
struct Latency {
    lines: usize,
    /// Offered load in lines per second.
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    mean_ms: f64,
    /// Token passes from the first submit until the last delivery.
    hops: HopStats,
}

/// One flood run.
#[derive(Clone, Debug, Serialize)]
struct FloodRun {
    lines: usize,
    /// From the first write until every client printed the last line.
    secs_clients: f64,
    /// ... and the server archived it.
    secs_all: f64,
    lines_per_s: f64,
    lines_per_s_with_server: f64,
    /// Between the 10th and the 90th percent of the lines at the slowest client: the rate
    /// without the start (stdin, first checkpoint) and the tail (the last safe rotation).
    steady_lines_per_s: f64,
    /// Token visits and own lines stamped at client 0 during the run.
    visits: u64,
    stamped: u64,
    /// Flood duration per token visit at client 0: one rotation under load.
    rotation_us: f64,
    /// Token visits at client 0 per second of flood.
    visits_per_s: f64,
    /// Token passes during the flood, from the observer.
    hops: HopStats,
}

/// An idle window.
#[derive(Clone, Debug, Serialize)]
struct Idle {
    secs: f64,
    /// CPU of the server plus every client, in % of one core.
    cpu_pct: f64,
    cpu_pct_server: f64,
    cpu_pct_busiest_client: f64,
    /// Thread wake-ups (context switches) per second, over all processes.
    wakeups_per_s: f64,
    /// Idle token rotation at client 0, from its token visits.
    rotation_ms: f64,
    /// Token passes in the window, from the observer.
    hops: HopStats,
}

/// Everything measured at one ring size.
#[derive(Clone, Debug, Default, Serialize)]
struct Row {
    n: usize,
    raw: Vec<RawRun>,
    raw_rate: f64,
    flood: Vec<FloodRun>,
    ordered_rate: f64,
    ordered_rate_with_server: f64,
    /// Median of the runs' steady rates (see [`FloodRun::steady_lines_per_s`]).
    steady_rate: f64,
    ratio: f64,
    /// Flood: one rotation and one hop, from client 0's visits (`/stats`).
    rotation_us: f64,
    hop_us: f64,
    lines_per_visit: f64,
    /// Flood, from the observer (medians over the runs): rotation, hop interval p50 and p99,
    /// stalls over 50 ms per second of flood.
    observed_rotation_ms: f64,
    observed_hop_p50_us: f64,
    observed_hop_p99_us: f64,
    stalls_per_s: f64,
    /// Median bare token hop on the idle ring (sporadic phase).
    bare_hop_us: f64,
    paced: Option<Latency>,
    sporadic: Option<Latency>,
    idle: Option<Idle>,
    /// Client `/stats` counters at the end of the session.
    end_stats: Vec<BTreeMap<String, u64>>,
    check: Option<Verified>,
}

fn latency_of(ring: &Ring, phase: u64, rate: f64, hops: HopStats) -> Result<Latency, String> {
    let mut arrived: HashMap<u64, Instant> = HashMap::new();
    for c in ring.live() {
        let seen = ring.clients[c].watch.lock();
        for &(k, at) in seen.msgs.iter().filter(|m| key_phase(m.0) == phase) {
            let e = arrived.entry(k).or_insert(at);
            *e = (*e).max(at);
        }
    }
    let mut lat: Vec<f64> = Vec::new();
    for (k, submitted) in ring
        .submit_at
        .iter()
        .filter(|(k, _)| key_phase(**k) == phase)
    {
        let at = arrived
            .get(k)
            .ok_or_else(|| format!("line {k:#x} of phase {phase} never arrived"))?;
        lat.push(ms(at.saturating_duration_since(*submitted)));
    }
    lat.sort_by(f64::total_cmp);
    Ok(Latency {
        lines: lat.len(),
        rate,
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
        max_ms: lat.last().copied().unwrap_or(0.0),
        mean_ms: lat.iter().sum::<f64>() / lat.len().max(1) as f64,
        hops,
    })
}

/// `lines` lines, one every `every`, round robin over the clients; then waits for all.
fn paced(ring: &mut Ring, phase: u64, lines: usize, every: Duration) -> Result<Latency, String> {
    let before = ring.delivered();
    let n = ring.n();
    let start = Instant::now() + Duration::from_millis(5);
    for i in 0..lines {
        sleep_until(start + every * i as u32);
        ring.submit(i % n, key(phase, i % n, i), true)?;
    }
    let timeout = Duration::from_secs(30);
    let done = ring.wait_clients(before + lines, timeout, "paced lines")?;
    let end = done.into_iter().max().unwrap_or(start);
    let hops = ring.observer.stats(start, end, n);
    latency_of(ring, phase, 1.0 / every.as_secs_f64(), hops)
}

/// Every client gets `total / N` lines on stdin at once (one writer thread each).
fn flood(ring: &mut Ring, phase: u64, total: usize) -> Result<FloodRun, String> {
    let n = ring.n();
    let per = (total / n).max(1);
    let before = ring.delivered();
    let v0 = ring.clients[0].stats()?;
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    for c in 0..n {
        let mut buf = String::with_capacity(per * (DATAGRAM_BYTES + 16));
        for i in 0..per {
            let k = key(phase, c, i);
            buf.push_str(&ring.text(k));
            buf.push('\n');
            ring.submitted[c].push(k);
        }
        let mut stdin = ring.clients[c].stdin.take().ok_or("stdin is closed")?;
        let tx = tx.clone();
        thread::spawn(move || {
            let result = stdin.write_all(buf.as_bytes());
            let _ = tx.send((c, stdin, result));
        });
    }
    drop(tx);
    // A writer blocks only while its client is not reading; give up after a while (dropping
    // the ring then kills the clients, which ends the writes).
    for _ in 0..n {
        let (c, stdin, result) = rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| "a flood writer got stuck".to_string())?;
        ring.clients[c].stdin = Some(stdin);
        result.map_err(|e| format!("c{c}: cannot write the flood: {e}"))?;
    }
    let lines = per * n;
    let timeout = Duration::from_secs(120);
    let done = ring.wait_clients(before + lines, timeout, "the flood")?;
    let last_client = done.into_iter().max().unwrap_or(start);
    let last_server = ring.wait_server(before + lines, timeout)?;
    let v1 = ring.clients[0].stats()?;
    let delta = |k: &str| v1.get(k).unwrap_or(&0) - v0.get(k).unwrap_or(&0);
    let (lo, hi) = (before + lines / 10, before + lines * 9 / 10);
    let steady = ring
        .live()
        .map(|c| {
            let seen = ring.clients[c].watch.lock();
            (hi - lo) as f64 / (seen.msgs[hi].1 - seen.msgs[lo].1).as_secs_f64().max(1e-9)
        })
        .fold(f64::INFINITY, f64::min);
    let secs = (last_client - start).as_secs_f64();
    let secs_all = (last_server.max(last_client) - start).as_secs_f64();
    let visits = delta("token_visits");
    Ok(FloodRun {
        lines,
        secs_clients: secs,
        secs_all,
        lines_per_s: lines as f64 / secs,
        lines_per_s_with_server: lines as f64 / secs_all,
        steady_lines_per_s: steady,
        visits,
        stamped: delta("stamped"),
        rotation_us: secs * 1e6 / visits.max(1) as f64,
        visits_per_s: visits as f64 / secs,
        hops: ring.observer.stats(start, last_client, n),
    })
}

/// CPU and wake-ups of the server and all clients over an idle window.
fn idle(ring: &mut Ring, window: Duration) -> Result<Idle, String> {
    thread::sleep(Duration::from_millis(300));
    let v0 = ring.clients[0].stats()?;
    let pids = ring.pids();
    let read = |pids: &[(String, u32)]| -> Vec<(f64, u64)> {
        pids.iter()
            .map(|(_, p)| {
                (
                    cpu_secs(*p).unwrap_or(0.0),
                    context_switches(*p).unwrap_or(0),
                )
            })
            .collect()
    };
    let t0 = Instant::now();
    let a = read(&pids);
    thread::sleep(window);
    let b = read(&pids);
    let t1 = Instant::now();
    let secs = (t1 - t0).as_secs_f64();
    let hops = ring.observer.stats(t0, t1, ring.n());
    let v1 = ring.clients[0].stats()?;
    let pct = |i: usize| (b[i].0 - a[i].0).max(0.0) / secs * 100.0;
    let visits = v1.get("token_visits").unwrap_or(&0) - v0.get("token_visits").unwrap_or(&0);
    let wakeups: u64 = (0..pids.len()).map(|i| b[i].1.saturating_sub(a[i].1)).sum();
    Ok(Idle {
        secs,
        cpu_pct: (0..pids.len()).map(pct).sum(),
        cpu_pct_server: pct(0),
        cpu_pct_busiest_client: (1..pids.len()).map(pct).fold(0.0, f64::max),
        wakeups_per_s: wakeups as f64 / secs,
        rotation_ms: secs * 1000.0 / visits.max(1) as f64,
        hops,
    })
}

/// All measurements at ring size `n`. Problems go into `failures`; the row keeps what worked.
fn measure_n(plan: &Plan, n: usize, index: u16, t0: Instant, failures: &mut Vec<String>) -> Row {
    let mut row = Row {
        n,
        ..Row::default()
    };
    for r in 0..plan.repeats {
        match raw_baseline(plan.port(100 + index), n + 1, plan.raw_window) {
            Ok(run) => row.raw.push(run),
            Err(e) => failures.push(format!("N={n}: raw baseline run {r}: {e}")),
        }
    }
    row.raw_rate = median(&row.raw.iter().map(|r| r.rate).collect::<Vec<_>>());
    progress(
        t0,
        &format!("N={n}: raw baseline {:.0} datagrams/s", row.raw_rate),
    );
    let mut ring = match Ring::start(&format!("n{n}"), plan.port(200 + index), n, &[]) {
        Ok(ring) => ring,
        Err(e) => {
            failures.push(format!("N={n}: ring did not start: {e}"));
            return row;
        }
    };
    progress(t0, &format!("N={n}: ring of {n} up"));
    if let Err(e) = measure_ring(plan, &mut ring, &mut row, t0) {
        failures.push(format!("N={n}: {e}"));
    }
    match ring.verify() {
        Ok(v) => {
            progress(
                t0,
                &format!(
                    "N={n}: checked {} messages in {} replicas",
                    v.messages, v.replicas
                ),
            );
            row.check = Some(v);
        }
        Err(e) => failures.push(format!("N={n}: CHECK FAILED: {e}")),
    }
    row
}

fn measure_ring(plan: &Plan, ring: &mut Ring, row: &mut Row, t0: Instant) -> Result<(), String> {
    let n = ring.n();
    let window = if n == plan.idle_n {
        plan.idle_window
    } else {
        plan.idle_probe
    };
    let idle = idle(ring, window)?;
    progress(
        t0,
        &format!(
            "N={n}: idle {:.2}% CPU, rotation {:.0} ms",
            idle.cpu_pct, idle.rotation_ms
        ),
    );
    row.idle = Some(idle);
    let sporadic = paced(
        ring,
        PHASE_SPORADIC,
        plan.sporadic_lines,
        plan.sporadic_every,
    )?;
    progress(
        t0,
        &format!(
            "N={n}: sporadic p50 {:.2} ms p99 {:.2} ms",
            sporadic.p50_ms, sporadic.p99_ms
        ),
    );
    row.sporadic = Some(sporadic);
    let every = Duration::from_secs(1) / plan.paced_rate;
    let lines = (plan.paced_for.as_secs_f64() * f64::from(plan.paced_rate)) as usize;
    let paced = paced(ring, PHASE_PACED, lines, every)?;
    progress(
        t0,
        &format!(
            "N={n}: paced {} lines/s p50 {:.2} ms p99 {:.2} ms",
            plan.paced_rate, paced.p50_ms, paced.p99_ms
        ),
    );
    row.paced = Some(paced);
    let calibration = flood(ring, PHASE_FLOOD, plan.flood_min_lines)?;
    let lines = ((calibration.lines_per_s * plan.flood_for.as_secs_f64()) as usize)
        .clamp(plan.flood_min_lines, plan.flood_lines);
    progress(
        t0,
        &format!(
            "N={n}: calibration flood {:.0} lines/s; runs of {lines} lines",
            calibration.lines_per_s
        ),
    );
    for r in 1..=plan.repeats {
        let run = flood(ring, PHASE_FLOOD + r as u64, lines)?;
        progress(
            t0,
            &format!(
                "N={n}: flood {} lines: {:.0} lines/s at every client ({:.0} with the server), \
                 rotation {:.1} ms, hop p50 {:.0} us, {} stalls over 50 ms ({:.0} ms)",
                run.lines,
                run.lines_per_s,
                run.lines_per_s_with_server,
                run.hops.rotation_ms,
                run.hops.p50_us,
                run.hops.stalls,
                run.hops.stalled_ms
            ),
        );
        row.flood.push(run);
    }
    let rates: Vec<f64> = row.flood.iter().map(|r| r.lines_per_s).collect();
    row.ordered_rate = median(&rates);
    let rates: Vec<f64> = row
        .flood
        .iter()
        .map(|r| r.lines_per_s_with_server)
        .collect();
    row.ordered_rate_with_server = median(&rates);
    row.ratio = row.ordered_rate / row.raw_rate.max(1.0);
    row.rotation_us = median(&row.flood.iter().map(|r| r.rotation_us).collect::<Vec<_>>());
    row.hop_us = row.rotation_us / n as f64;
    let per_visit: Vec<f64> = row
        .flood
        .iter()
        .map(|r| r.stamped as f64 / r.visits.max(1) as f64)
        .collect();
    row.lines_per_visit = median(&per_visit);
    let of = |f: fn(&FloodRun) -> f64| median(&row.flood.iter().map(f).collect::<Vec<_>>());
    row.steady_rate = of(|r| r.steady_lines_per_s);
    row.observed_rotation_ms = of(|r| r.hops.rotation_ms);
    row.observed_hop_p50_us = of(|r| r.hops.p50_us);
    row.observed_hop_p99_us = of(|r| r.hops.p99_us);
    row.stalls_per_s = of(|r| r.hops.stalls as f64 / r.secs_clients);
    row.bare_hop_us = row.sporadic.as_ref().map_or(0.0, |l| l.hops.bare_p50_us);
    for c in 0..n {
        row.end_stats.push(ring.clients[c].stats()?);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Recovery after kill -9.

/// One kill and what the survivors saw.
#[derive(Clone, Debug, Serialize)]
struct Kill {
    victim: String,
    /// From the kill until every survivor delivered again.
    resume_ms: f64,
    /// The longest pause in deliveries at a survivor after the kill.
    stall_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
struct Recovery {
    clients: usize,
    token_timeout_ms: f64,
    rate: u32,
    kills: Vec<Kill>,
    median_resume_ms: f64,
    /// Issue 3: the chat resumes within the token timeout + 200 ms.
    target_ms: f64,
    check: Option<Verified>,
}

fn recovery(plan: &Plan, t0: Instant, failures: &mut Vec<String>) -> Option<Recovery> {
    let tt = format!("{}ms", plan.recovery_token_timeout.as_millis());
    let n = plan.recovery_clients;
    let mut ring = match Ring::start("recovery", plan.port(300), n, &["--token-timeout", &tt]) {
        Ok(ring) => ring,
        Err(e) => {
            failures.push(format!("recovery: ring did not start: {e}"));
            return None;
        }
    };
    progress(t0, &format!("recovery: ring of {n} up, token timeout {tt}"));
    let mut result = Recovery {
        clients: n,
        token_timeout_ms: ms(plan.recovery_token_timeout),
        rate: plan.recovery_rate,
        kills: Vec::new(),
        median_resume_ms: 0.0,
        target_ms: ms(plan.recovery_token_timeout) + 200.0,
        check: None,
    };
    match kill_under_load(plan, &mut ring) {
        Ok(kills) => result.kills = kills,
        Err(e) => failures.push(format!("recovery: {e}")),
    }
    let resumes: Vec<f64> = result.kills.iter().map(|k| k.resume_ms).collect();
    result.median_resume_ms = median(&resumes);
    progress(
        t0,
        &format!("recovery: resume after kill -9 {resumes:.0?} ms"),
    );
    match ring.verify() {
        Ok(v) => result.check = Some(v),
        Err(e) => failures.push(format!("recovery: CHECK FAILED: {e}")),
    }
    Some(result)
}

/// Paced load over the live clients; every few seconds the last live client is killed.
fn kill_under_load(plan: &Plan, ring: &mut Ring) -> Result<Vec<Kill>, String> {
    let every = Duration::from_secs(1) / plan.recovery_rate;
    let gap = Duration::from_millis(3500);
    let kills = plan.recovery_kills.min(ring.n() - 1);
    let run_for = Duration::from_secs(1) + gap * kills as u32;
    let start = Instant::now() + Duration::from_millis(5);
    let mut kill_at: Vec<Instant> = (0..kills)
        .map(|i| start + Duration::from_secs(1) + gap * i as u32)
        .collect();
    kill_at.reverse();
    let mut killed_at: Vec<(usize, Instant)> = Vec::new();
    let lines = (run_for.as_secs_f64() / every.as_secs_f64()) as usize;
    for i in 0..lines {
        let at = start + every * i as u32;
        sleep_until(at);
        if kill_at.last().is_some_and(|k| *k <= at) {
            kill_at.pop();
            let victim = ring.live().last().ok_or("no client left")?;
            let when = Instant::now();
            ring.clients[victim].kill();
            ring.killed.insert(victim);
            killed_at.push((victim, when));
        }
        let live: Vec<usize> = ring.live().collect();
        let c = live[i % live.len()];
        ring.submit(c, key(PHASE_PACED, c, i), true)?;
    }
    // Quiet: every survivor holds every survivor's line.
    let survivors_lines: usize = ring.live().map(|c| ring.submitted[c].len()).sum();
    let mut count = ring.delivered();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        thread::sleep(Duration::from_millis(500));
        let now = ring.delivered();
        if now == count && now >= survivors_lines {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the survivors did not settle ({})",
                ring.progress_summary()
            ));
        }
        count = now;
    }
    let mut out = Vec::new();
    for (i, &(victim, at)) in killed_at.iter().enumerate() {
        let until = killed_at.get(i + 1).map_or(at + gap * 3, |k| k.1);
        let (mut resume, mut stall) = (Duration::ZERO, Duration::ZERO);
        for c in ring.live() {
            let seen = ring.clients[c].watch.lock();
            let times: Vec<Instant> = seen
                .msgs
                .iter()
                .map(|m| m.1)
                .filter(|t| *t > at && *t < until)
                .collect();
            let (end, longest) = longest_gap(at, &times);
            resume = resume.max(end.saturating_duration_since(at));
            stall = stall.max(longest);
        }
        out.push(Kill {
            victim: ring.clients[victim].name.clone(),
            resume_ms: ms(resume),
            stall_ms: ms(stall),
        });
    }
    Ok(out)
}

/// The longest pause in `times` (sorted, all after `from`), counting from `from`; returns when
/// it ended and how long it was.
fn longest_gap(from: Instant, times: &[Instant]) -> (Instant, Duration) {
    let mut prev = from;
    let mut best = (from, Duration::ZERO);
    for &t in times {
        let gap = t.saturating_duration_since(prev);
        if gap > best.1 {
            best = (t, gap);
        }
        prev = t;
    }
    best
}

// ---------------------------------------------------------------------------------------------
// Catch-up of a late joiner.

#[derive(Clone, Debug, Serialize)]
struct CatchUp {
    messages: usize,
    /// Server spawn until its first notice (it has read and indexed the archive).
    server_start_s: f64,
    /// Client spawn until it printed the last message.
    client_s: f64,
    /// Server spawn until the client printed the last message (issue 3's measure).
    total_s: f64,
    /// Client spawn until its "joined the ring" notice.
    join_s: f64,
    /// Client spawn until the first history message.
    first_message_s: f64,
    /// `messages / client_s`.
    msgs_per_s: f64,
    /// First to last history message at the client: the transfer alone.
    transfer_msgs_per_s: f64,
    client_rss_mib: f64,
    server_rss_mib: f64,
    /// The client's notices, in seconds since its spawn.
    notices: Vec<(f64, String)>,
}

/// A replica of `n` records, as a server would have written it.
fn history_file(n: usize) -> Vec<u8> {
    let from = NodeId::random();
    let mut out = Vec::with_capacity(n * 220);
    for seq in 1..=n as u64 {
        let rec = ChatRecord {
            seq: Seq(seq),
            id: Uuid::new_v4(),
            from,
            name: "hist".into(),
            text: format!("h{seq} history line with some words in it to look like a chat"),
            sent_at_ms: 1_790_000_000_000 + seq,
        };
        let line = serde_json::to_string(&rec).expect("a record serializes");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

fn catch_up(port: u16, history: &[u8], messages: usize) -> Result<CatchUp, String> {
    let root = tempfile::Builder::new()
        .prefix("mcast-bench-catchup-")
        .tempdir()
        .map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let server_dir = root.path().join("server");
    std::fs::create_dir_all(&server_dir).map_err(|e| e.to_string())?;
    std::fs::write(server_dir.join("replica_server.jsonl"), history)
        .map_err(|e| format!("cannot write the history: {e}"))?;
    let spawned = Instant::now();
    let server = Proc::server(port, &server_dir, &[]);
    let deadline = spawned + Duration::from_secs(60);
    if !server.watch.wait_for(deadline, |s| !s.notices.is_empty()) {
        return Err(format!("server did not start: {}", server.stderr_tail()));
    }
    let ready = server.watch.lock().notices[0].0;
    let client_spawned = Instant::now();
    let client = Proc::client(port, &root.path().join("late"), "late");
    let deadline = Instant::now() + Duration::from_secs(120);
    if !client
        .watch
        .wait_for(deadline, |s| s.msgs.len() >= messages)
    {
        return Err(format!(
            "the late client delivered {} of {messages} within 120 s",
            client.watch.delivered()
        ));
    }
    let since = |t: Instant| t.saturating_duration_since(client_spawned).as_secs_f64();
    let (first, last, notices) = {
        let seen = client.watch.lock();
        if let Some(e) = &seen.error {
            return Err(format!("late client: {e}"));
        }
        let notices: Vec<(f64, String)> = seen
            .notices
            .iter()
            .take(12)
            .map(|(t, text)| (since(*t), text.clone()))
            .collect();
        (seen.msgs[0].1, seen.msgs[messages - 1].1, notices)
    };
    let join_s = notices
        .iter()
        .find(|(_, t)| t.starts_with("joined the ring"))
        .map_or(f64::NAN, |n| n.0);
    let client_rss_mib = rss_mib(client.pid()).unwrap_or(0.0);
    let server_rss_mib = rss_mib(server.pid()).unwrap_or(0.0);
    if client.replica()? != history {
        let _ = root.keep();
        return Err("the late client's replica differs from the history".into());
    }
    if server.replica()? != history {
        let _ = root.keep();
        return Err("the server's archive changed".into());
    }
    let client_s = (last - client_spawned).as_secs_f64();
    Ok(CatchUp {
        messages,
        server_start_s: (ready - spawned).as_secs_f64(),
        client_s,
        total_s: (last - spawned).as_secs_f64(),
        join_s,
        first_message_s: since(first),
        msgs_per_s: messages as f64 / client_s,
        transfer_msgs_per_s: (messages - 1) as f64 / (last - first).as_secs_f64().max(1e-9),
        client_rss_mib,
        server_rss_mib,
        notices,
    })
}

fn catch_ups(plan: &Plan, t0: Instant, failures: &mut Vec<String>) -> Vec<CatchUp> {
    let mut out = Vec::new();
    let mut port = 400;
    for &(messages, repeats) in &plan.catchup {
        let history = history_file(messages);
        for r in 0..repeats {
            port += 1;
            match catch_up(plan.port(port), &history, messages) {
                Ok(c) => {
                    progress(
                        t0,
                        &format!(
                            "catch-up {messages}: {:.0} msgs/s, {:.2} s counting the server's \
                             start, client RSS {:.1} MiB",
                            c.msgs_per_s, c.total_s, c.client_rss_mib
                        ),
                    );
                    out.push(c);
                }
                Err(e) => failures.push(format!("catch-up {messages} run {r}: {e}")),
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Report.

fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim())
        .to_string();
    let nproc = thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    if let Ok(commit) = std::env::var("BENCH_COMMIT") {
        return json!({ "nproc": nproc, "cpu": model, "kernel": kernel, "commit": commit });
    }
    let dirty = !git(&["status", "--porcelain", "--", "src"]).is_empty();
    let commit = format!(
        "{}{}",
        git(&["rev-parse", "--short", "HEAD"]),
        if dirty { "+src-changes" } else { "" }
    );
    json!({ "nproc": nproc, "cpu": model, "kernel": kernel, "commit": commit })
}

fn fmt_lat(l: &Option<Latency>) -> String {
    l.as_ref()
        .map_or("-".into(), |l| format!("{:.1} / {:.1}", l.p50_ms, l.p99_ms))
}

fn print_table(
    date: &str,
    machine: &serde_json::Value,
    plan: &Plan,
    rows: &[Row],
    recovery: &Option<Recovery>,
    catchups: &[CatchUp],
) {
    println!();
    println!(
        "## ring benchmark, {date}, {} ({} cores), commit {}{}",
        machine["cpu"].as_str().unwrap_or("?"),
        machine["nproc"],
        machine["commit"].as_str().unwrap_or("?"),
        if plan.quick { ", BENCH_QUICK" } else { "" }
    );
    println!();
    println!(
        "Datagrams of {DATAGRAM_BYTES} bytes. Throughput: medians of {} flood runs (sized to \
         about {:?} each); rotation and hops from a passive observer of token passes. Latency: \
         submit to delivered at every client.",
        plan.repeats, plan.flood_for
    );
    println!();
    println!(
        "| N | raw datagrams/s | ordered lines/s | incl. server | ratio | steady lines/s | \
         rotation (ms) | hop p50 / p99 (us) | stalls > 50 ms per s | lines per visit |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.1} % | {:.0} | {:.2} | {:.0} / {:.0} | {:.1} | {:.1} |",
            r.n,
            r.raw_rate,
            r.ordered_rate,
            r.ordered_rate_with_server,
            r.ratio * 100.0,
            r.steady_rate,
            r.observed_rotation_ms,
            r.observed_hop_p50_us,
            r.observed_hop_p99_us,
            r.stalls_per_s,
            r.lines_per_visit,
        );
    }
    println!();
    println!(
        "| N | paced {}/s p50 / p99 (ms) | sporadic p50 / p99 (ms) | bare hop p50 (us) | idle \
         rotation (ms) | idle CPU (% of a core) | idle wake-ups/s |",
        plan.paced_rate
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let idle = |f: fn(&Idle) -> String| r.idle.as_ref().map_or("-".into(), f);
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {} |",
            r.n,
            fmt_lat(&r.paced),
            fmt_lat(&r.sporadic),
            r.bare_hop_us,
            idle(|i| format!("{:.0}", i.hops.rotation_ms)),
            idle(|i| format!("{:.2}", i.cpu_pct)),
            idle(|i| format!("{:.0}", i.wakeups_per_s)),
        );
    }
    println!();
    println!("| measure | result |");
    println!("|---|---|");
    if let Some(i) = rows
        .iter()
        .find(|r| r.n == plan.idle_n)
        .and_then(|r| r.idle.as_ref())
    {
        println!(
            "| idle cost, server + {} clients, {:.0} s | {:.2} % of one core (server {:.2} %, \
             busiest client {:.2} %), {:.0} wake-ups/s |",
            plan.idle_n,
            i.secs,
            i.cpu_pct,
            i.cpu_pct_server,
            i.cpu_pct_busiest_client,
            i.wakeups_per_s
        );
    }
    let mut sizes: Vec<usize> = catchups.iter().map(|c| c.messages).collect();
    sizes.dedup();
    for m in sizes {
        let runs: Vec<&CatchUp> = catchups.iter().filter(|c| c.messages == m).collect();
        let med = |f: fn(&CatchUp) -> f64| median(&runs.iter().map(|c| f(c)).collect::<Vec<_>>());
        println!(
            "| catch-up of {m} messages ({} run{}) | {:.0} msgs/s from client start \
             ({:.0} msgs/s transfer); {:.2} s counting the server's start ({:.2} s); client \
             RSS {:.1} MiB, server {:.1} MiB |",
            runs.len(),
            if runs.len() == 1 { "" } else { "s" },
            med(|c| c.msgs_per_s),
            med(|c| c.transfer_msgs_per_s),
            med(|c| c.total_s),
            med(|c| c.server_start_s),
            med(|c| c.client_rss_mib),
            med(|c| c.server_rss_mib),
        );
    }
    if let Some(r) = recovery {
        let each: Vec<String> = r
            .kills
            .iter()
            .map(|k| format!("{:.0}", k.resume_ms))
            .collect();
        println!(
            "| recovery after kill -9 under {} lines/s, {} clients, token timeout {:.0} ms | \
             delivery resumes after {:.0} ms (median; runs: {} ms); target {:.0} ms |",
            r.rate,
            r.clients,
            r.token_timeout_ms,
            r.median_resume_ms,
            each.join(", "),
            r.target_ms
        );
    }
    println!();
}

fn main() {
    let t0 = Instant::now();
    install_signal_guard();
    let plan = Plan::from_env();
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let machine = machine();
    progress(
        t0,
        &format!(
            "plan: N = {:?}{}; ports {}..{}",
            plan.ns,
            if plan.quick { " (quick)" } else { "" },
            plan.port_base,
            plan.port_base + 999
        ),
    );
    let mut failures = Vec::new();
    let mut rows = Vec::new();
    for (i, &n) in plan.ns.iter().enumerate() {
        rows.push(measure_n(&plan, n, i as u16, t0, &mut failures));
    }
    let recovery = recovery(&plan, t0, &mut failures);
    let catchups = catch_ups(&plan, t0, &mut failures);
    print_table(&date, &machine, &plan, &rows, &recovery, &catchups);
    let report = json!({
        "date": date,
        "machine": machine,
        "quick": plan.quick,
        "datagram_bytes": DATAGRAM_BYTES,
        "data_datagram_bytes": data_datagram_len(&format!("b3-1-1234 {}", "x".repeat(pad_len()))),
        "plan": plan,
        "rows": rows,
        "recovery": recovery,
        "catchup": catchups,
        "failures": failures,
        "elapsed_s": t0.elapsed().as_secs_f64(),
    });
    println!("BENCH_JSON {report}");
    if !failures.is_empty() {
        eprintln!("\nFAILED:");
        for f in &failures {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
    progress(t0, "done; every check passed");
}
