//! A history of ten million lines (`SOAK_HISTORY=N`): a replica of N records written straight
//! into the server's data dir, byte for byte what a node writes (`benches/common/history.rs`),
//! then the server's start-up time and memory on it, a fresh client's catch-up of all of it,
//! `/history` on that client, and the client's own restart on its N-line replica.
//!
//! Targets: start-up under 5 s, peak resident memory under 100 MiB for both, at 10 M lines.
//! It checks that the client's replica equals the server's byte for byte. Every wait has a
//! deadline that grows with N.

use crate::history::write_history;
use crate::node::{Proc, Seen};
use crate::util::{median, progress};
use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::Path;
use std::time::{Duration, Instant};

/// Start-up target (seconds) and peak memory target (MiB).
pub const START_TARGET_S: f64 = 5.0;
pub const RSS_TARGET_MIB: f64 = 100.0;

#[derive(Debug, Default, Serialize)]
pub struct BigReport {
    pub lines: u64,
    pub file_bytes: u64,
    pub generate_s: f64,
    /// Server spawn until its first notice (archive opened and indexed), per start.
    pub server_start_s: Vec<f64>,
    /// Server spawn until it admits joins (includes its 2 s one-server probe), per start.
    pub server_coordinating_s: Vec<f64>,
    /// Peak resident memory (VmHWM) of the server after start-up and after serving it all.
    pub server_start_hwm_mib: f64,
    pub server_end_hwm_mib: f64,
    /// Client spawn until it delivered the last line.
    pub catch_up_s: f64,
    pub catch_up_msgs_per_s: f64,
    /// First to last delivered line: the transfer alone.
    pub transfer_msgs_per_s: f64,
    pub client_hwm_mib: f64,
    /// `/history` (20 lines) and `/history 1000`: command written to last line read, median.
    pub history_20_ms: f64,
    pub history_1000_ms: f64,
    /// The client restarted with `--resume` on its N-line replica: spawn to first notice,
    /// and to joined; its peak memory after joining.
    pub client_restart_s: f64,
    pub client_rejoin_s: f64,
    pub client_restart_hwm_mib: f64,
    pub failures: Vec<String>,
}

pub fn big_history(lines: u64, port: u16, t0: Instant) -> BigReport {
    let mut report = BigReport {
        lines,
        ..BigReport::default()
    };
    let root = match tempfile::Builder::new()
        .prefix("mcast-bench-big-")
        .tempdir()
    {
        Ok(root) => root,
        Err(e) => {
            report
                .failures
                .push(format!("cannot create a temp dir: {e}"));
            return report;
        }
    };
    if let Err(e) = run(&mut report, root.path(), port, t0) {
        report.failures.push(e);
    }
    let starts = [
        ("server", median(&report.server_start_s)),
        ("client", report.client_restart_s),
    ];
    for (what, secs) in starts {
        if secs > START_TARGET_S {
            let msg = format!("{what} start-up {secs:.2} s, over {START_TARGET_S} s");
            report.failures.push(msg);
        }
    }
    for (what, mib) in [
        ("server", report.server_end_hwm_mib),
        ("client", report.client_hwm_mib),
        ("restarted client", report.client_restart_hwm_mib),
    ] {
        if mib > RSS_TARGET_MIB {
            let msg = format!("{what} peak RSS {mib:.1} MiB, over {RSS_TARGET_MIB} MiB");
            report.failures.push(msg);
        }
    }
    report
}

fn run(report: &mut BigReport, root: &Path, port: u16, t0: Instant) -> Result<(), String> {
    let server_dir = root.join("server");
    std::fs::create_dir_all(&server_dir).map_err(|e| e.to_string())?;
    let path = server_dir.join("replica_server.jsonl");
    let started = Instant::now();
    let file = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    write_history(
        &mut BufWriter::with_capacity(1 << 20, file),
        report.lines,
        10,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    report.generate_s = started.elapsed().as_secs_f64();
    report.file_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    progress(
        t0,
        &format!(
            "big: wrote {} lines ({:.2} GB) in {:.1} s",
            report.lines,
            report.file_bytes as f64 / 1e9,
            report.generate_s
        ),
    );
    let timeout = Duration::from_secs(60);
    let mut server = None;
    for run in 0..3 {
        let spawned = Instant::now();
        let s = Proc::server(port, &server_dir, &[]);
        let first = wait_notice(&s, spawned, timeout, |_| true)?;
        let coordinating = wait_notice(&s, spawned, timeout, |t| t.contains(": coordinating"))?;
        report.server_start_s.push(first);
        report.server_coordinating_s.push(coordinating);
        report.server_start_hwm_mib = report.server_start_hwm_mib.max(hwm_mib(s.pid()));
        progress(
            t0,
            &format!(
                "big: server start {run}: {first:.2} s to open, {coordinating:.2} s to coordinate"
            ),
        );
        server = Some(s);
        if run < 2 {
            if let Some(mut s) = server.take() {
                s.kill();
            }
        }
    }
    let server = server.ok_or("no server")?;
    let n = report.lines as usize;
    let spawned = Instant::now();
    let client_dir = root.join("late");
    let mut client = Proc::client(port, &client_dir, "late");
    let deadline = spawned + Duration::from_secs(120 + report.lines / 10_000);
    let mut last_report = Instant::now();
    while !client
        .watch
        .wait_for(Instant::now() + Duration::from_secs(1), |s| {
            s.msgs.len() >= n
        })
    {
        if Instant::now() >= deadline || client.watch.lock().eof {
            return Err(format!(
                "the late client delivered {} of {n}: {}",
                client.watch.delivered(),
                client.stderr_tail()
            ));
        }
        if last_report.elapsed() >= Duration::from_secs(15) {
            last_report = Instant::now();
            progress(
                t0,
                &format!("big: catch-up {} of {n}", client.watch.delivered()),
            );
        }
    }
    let (first, last) = {
        let seen = client.watch.lock();
        (seen.msgs[0].1, seen.msgs[n - 1].1)
    };
    report.catch_up_s = (last - spawned).as_secs_f64();
    report.catch_up_msgs_per_s = n as f64 / report.catch_up_s;
    report.transfer_msgs_per_s = (n - 1) as f64 / (last - first).as_secs_f64().max(1e-9);
    report.client_hwm_mib = hwm_mib(client.pid());
    report.server_end_hwm_mib = hwm_mib(server.pid());
    progress(
        t0,
        &format!(
            "big: caught up in {:.1} s ({:.0} msgs/s, transfer {:.0} msgs/s), peak RSS client \
             {:.1} MiB, server {:.1} MiB",
            report.catch_up_s,
            report.catch_up_msgs_per_s,
            report.transfer_msgs_per_s,
            report.client_hwm_mib,
            report.server_end_hwm_mib
        ),
    );
    let client_replica = crate::process::replica_file(&client_dir)?;
    if !same_file(&path, &client_replica)? {
        return Err("the late client's replica differs from the server's".into());
    }
    report.history_20_ms = history_ms(&mut client, "/history", 20)?;
    report.history_1000_ms = history_ms(&mut client, "/history 1000", 1000)?;
    client.process.close_stdin();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.process.try_exit().is_none() {
        if Instant::now() >= deadline {
            return Err("the late client did not leave within 30 s of EOF".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let spawned = Instant::now();
    let resumed = Proc::client_with(port, &client_dir, "late", &["--resume".into()]);
    report.client_restart_s = wait_notice(&resumed, spawned, timeout, |_| true)?;
    let joined = |s: &Seen| s.joined_at.is_some();
    if !resumed.watch.wait_for(spawned + timeout, joined) {
        return Err(format!(
            "the resumed client did not join: {}",
            resumed.stderr_tail()
        ));
    }
    report.client_rejoin_s = resumed
        .watch
        .lock()
        .joined_at
        .map_or(0.0, |t| (t - spawned).as_secs_f64());
    report.client_restart_hwm_mib = hwm_mib(resumed.pid());
    drop(server);
    Ok(())
}

/// Seconds from `spawned` until `p` printed a notice that satisfies `pred`.
fn wait_notice(
    p: &Proc,
    spawned: Instant,
    timeout: Duration,
    pred: impl Fn(&str) -> bool,
) -> Result<f64, String> {
    let found = |s: &Seen| s.notices.iter().find(|(_, t)| pred(t)).map(|(at, _)| *at);
    if !p.watch.wait_for(spawned + timeout, |s| found(s).is_some()) {
        return Err(format!(
            "{}: no such notice within {timeout:?}: {}",
            p.name,
            p.stderr_tail()
        ));
    }
    let at = found(&p.watch.lock()).ok_or("notice lost")?;
    Ok((at - spawned).as_secs_f64())
}

/// Median time of five `command`s, from the write until the last of its `lines` is read.
fn history_ms(client: &mut Proc, command: &str, lines: usize) -> Result<f64, String> {
    let mut times = Vec::new();
    for _ in 0..5 {
        let before = client.watch.delivered();
        let at = Instant::now();
        client.send(command)?;
        let want = before + lines;
        if !client
            .watch
            .wait_for(at + Duration::from_secs(30), |s| s.msgs.len() >= want)
        {
            return Err(format!("{command}: no answer within 30 s"));
        }
        let done = client.watch.lock().msgs[want - 1].1;
        times.push((done - at).as_secs_f64() * 1000.0);
    }
    Ok(median(&times))
}

/// Peak resident memory (VmHWM) of a process, in MiB; 0 if it is gone.
fn hwm_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

/// Whether two files hold the same bytes, read in 1 MiB pieces (they may be gigabytes).
fn same_file(a: &Path, b: &Path) -> Result<bool, String> {
    let open = |p: &Path| File::open(p).map_err(|e| format!("{}: {e}", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(|e| format!("{}: {e}", a.display()))?;
        let nb = read_full(&mut fb, &mut bb).map_err(|e| format!("{}: {e}", b.display()))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
