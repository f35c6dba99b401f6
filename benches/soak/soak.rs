//! The soak run: a steady rate of lines over the live clients for `SOAK_SECS`, with churn
//! (clients leave at EOF, are killed with `kill -9`, come back with `--resume` or as new
//! identities; the server is stopped with SIGTERM or `kill -9` and restarted), every node
//! dropping `--loss` of its datagrams; a sample of every process and data dir each second;
//! then a quiet end: every identity back, every replica equal, every line checked.
//!
//! It drives and records; the verdicts on growth are `sample.rs`'s and on the history
//! `benches/common/history.rs`'s. Every wait has a deadline.

use crate::fleet::Fleet;
use crate::history::{check_keys, replica_keys};
use crate::node::Seen;
use crate::sample::{judge, sample, Sample, Verdict, LIMITS};
use crate::util::{progress, sleep_until};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

/// The goals under loss and churn: the steady clients' lines are shown by the first of them
/// within this long of being typed, and every replica agrees within this long of the load's
/// end.
const MOST_LAG: Duration = Duration::from_secs(3);
const MOST_SETTLE: Duration = Duration::from_secs(3);

/// A client's data dir is sampled only while at most this many of its lines wait to be
/// delivered (a few seconds of its share of the load).
const QUIET_OUTBOX: usize = 25;

/// The knobs of a soak.
#[derive(Clone, Debug, Serialize)]
pub struct SoakPlan {
    pub secs: u64,
    pub port: u16,
    /// Lines per second over the live clients.
    pub rate: u32,
    pub loss: f64,
    /// Client slots, of which the first `steady` are never churned.
    pub slots: usize,
    pub steady: usize,
    /// One churn event (a client stops or starts) every this many seconds.
    pub churn_every_s: f64,
    /// The server restarts every this many seconds.
    pub server_every_s: f64,
    /// Samples younger than this (since their process or dir started) are not judged.
    pub warmup_s: f64,
    /// A series is judged only if its samples after the warm-up span this long.
    pub min_span_s: f64,
}

impl SoakPlan {
    pub fn new(secs: u64, port: u16) -> SoakPlan {
        SoakPlan {
            secs,
            port,
            rate: 50,
            loss: 0.05,
            slots: 5,
            steady: 2,
            churn_every_s: 5.0,
            server_every_s: (secs as f64 / 2.5).clamp(45.0, 600.0),
            warmup_s: 20.0,
            min_span_s: 20.0,
        }
    }
}

/// What a soak found.
#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub plan: SoakPlan,
    pub lines_typed: usize,
    pub lines_delivered: usize,
    pub may_be_lost: usize,
    pub identities: usize,
    pub server_runs: usize,
    pub client_runs: usize,
    pub kills: usize,
    pub leaves: usize,
    pub settle_s: f64,
    /// The longest time from typing a line on a steady client to the first steady client
    /// showing it, and the 99th percentile of those times.
    pub max_lag_s: f64,
    pub p99_lag_s: f64,
    /// When the line that lagged most was typed, in seconds since the load began.
    pub max_lag_at_s: f64,
    pub verdicts: Vec<Verdict>,
    /// Every process's resident memory, `(t, KiB)`, for a plot or a closer look.
    pub rss_kib: BTreeMap<String, Vec<(f64, f64)>>,
    pub failures: Vec<String>,
}

/// Runs the soak; failures are collected in the report, never panicked on.
pub fn soak(plan: SoakPlan, t0: Instant) -> SoakReport {
    let mut report = SoakReport {
        plan: plan.clone(),
        lines_typed: 0,
        lines_delivered: 0,
        may_be_lost: 0,
        identities: 0,
        server_runs: 0,
        client_runs: 0,
        kills: 0,
        leaves: 0,
        settle_s: 0.0,
        max_lag_s: 0.0,
        max_lag_at_s: 0.0,
        p99_lag_s: 0.0,
        verdicts: Vec::new(),
        rss_kib: BTreeMap::new(),
        failures: Vec::new(),
    };
    let mut fleet = match Fleet::new(plan.port, plan.loss, plan.slots) {
        Ok(f) => f,
        Err(e) => {
            report.failures.push(e);
            return report;
        }
    };
    let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    let mut dirs: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    if let Err(e) = run(&plan, &mut fleet, &mut report, &mut samples, &mut dirs, t0) {
        report.failures.push(e);
    }
    let judged_samples: Vec<_> = LIMITS.iter().take(3).collect();
    for (series, s) in &samples {
        let rss = s.iter().map(|s| (s.t.round(), s.rss_kib)).collect();
        report.rss_kib.insert(series.clone(), rss);
        let v = judge(series, s, &judged_samples, plan.warmup_s, plan.min_span_s);
        report.verdicts.extend(v);
    }
    let dir_limit: Vec<_> = LIMITS.iter().skip(3).collect();
    for (series, s) in &dirs {
        let v = judge(series, s, &dir_limit, plan.warmup_s, plan.min_span_s);
        report.verdicts.extend(v);
    }
    for v in report.verdicts.iter().filter(|v| !v.passed) {
        report.failures.push(format!(
            "{} of {} grows {:.2} {}/min, over the limit of {} (from {:.0} to {:.0})",
            v.metric, v.series, v.slope_per_min, v.unit, v.limit_per_min, v.first, v.last
        ));
    }
    report.identities = fleet.submitted.len();
    report.server_runs = fleet.server_runs;
    report.may_be_lost = fleet.may_be_lost.len();
    if !report.failures.is_empty() {
        let kept = fleet.keep_files();
        report
            .failures
            .push(format!("files kept in {}", kept.display()));
    }
    report
}

fn run(
    plan: &SoakPlan,
    fleet: &mut Fleet,
    report: &mut SoakReport,
    samples: &mut BTreeMap<String, Vec<Sample>>,
    dirs: &mut BTreeMap<String, Vec<Sample>>,
    t0: Instant,
) -> Result<(), String> {
    fleet.start_server();
    fleet.wait_coordinating(Duration::from_secs(15))?;
    for s in 0..plan.slots {
        fleet.start_client(s, true);
        report.client_runs += 1;
    }
    let pad = "x".repeat(120);
    let start = Instant::now();
    let end = start + Duration::from_secs(plan.secs);
    let line_every = Duration::from_secs(1) / plan.rate.max(1);
    let churn_every = Duration::from_secs_f64(plan.churn_every_s);
    let server_every = Duration::from_secs_f64(plan.server_every_s);
    let (mut next_line, mut next_sample) = (start, start);
    let mut next_churn = start + churn_every;
    let mut next_server = start + server_every;
    let mut server_back: Option<Instant> = None;
    let (mut line_no, mut churn_no, mut server_no) = (0usize, 0usize, 0usize);
    let mut last_progress = start;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= next_line {
            let live: Vec<usize> = (0..plan.slots)
                .filter(|&s| fleet.slots[s].proc.is_some())
                .collect();
            if !live.is_empty() {
                let s = live[line_no % live.len()];
                if let Err(e) = fleet.type_line(s, &pad) {
                    report.failures.push(e);
                }
                line_no += 1;
            }
            next_line += line_every;
        }
        if now >= next_churn {
            churn(plan, fleet, report, churn_no);
            churn_no += 1;
            next_churn += churn_every;
        }
        if now >= next_server {
            // Alternately a clean stop and a crash, down for 2 s.
            fleet.stop_server(server_no % 2 == 0)?;
            server_no += 1;
            server_back = Some(now + Duration::from_secs(2));
            next_server += server_every;
        }
        if server_back.is_some_and(|at| now >= at) {
            fleet.start_server();
            server_back = None;
        }
        if now >= next_sample {
            take_samples(fleet, samples, dirs, start);
            for late in fleet.reap(Duration::from_secs(30)) {
                report.failures.push(late);
            }
            check_alive(fleet, report);
            next_sample += Duration::from_secs(1);
        }
        if now.duration_since(last_progress) >= Duration::from_secs(20) {
            last_progress = now;
            progress(t0, &format!("soak: {}", summary(fleet)));
        }
        sleep_until(next_line.min(next_sample).min(next_churn).min(end));
    }
    report.lines_typed = fleet.submitted.iter().map(Vec::len).sum();
    progress(
        t0,
        &format!("soak: load over, settling ({})", summary(fleet)),
    );
    lag(plan, fleet, report, start);
    let settled = Instant::now();
    settle(fleet, report)?;
    report.settle_s = settled.elapsed().as_secs_f64();
    if report.settle_s > MOST_SETTLE.as_secs_f64() {
        report.failures.push(format!(
            "settled {:.1} s after the load stopped; at most {MOST_SETTLE:?}",
            report.settle_s
        ));
    }
    Ok(())
}

/// How far the ring fell behind the typing: for every line typed on a steady client (never
/// churned, so its lines never wait for a restart), the time until the first steady client
/// showed it. Fails above [`MOST_LAG`].
fn lag(plan: &SoakPlan, fleet: &Fleet, report: &mut SoakReport, start: Instant) {
    let Some(witness) = fleet.slots[0].proc.as_ref() else {
        return;
    };
    let steady: HashSet<usize> = fleet.slots[..plan.steady]
        .iter()
        .map(|s| s.identity)
        .collect();
    let steady_keys: HashSet<u64> = steady
        .iter()
        .flat_map(|i| fleet.submitted[*i].iter().copied())
        .collect();
    // (lag, when typed) of every steady line the witness showed.
    let mut lags: Vec<(f64, f64)> = witness
        .watch
        .lock()
        .msgs
        .iter()
        .filter(|(k, _)| steady_keys.contains(k))
        .filter_map(|(k, shown)| {
            let typed = fleet.typed_at.get(k)?;
            let lag = shown.saturating_duration_since(*typed).as_secs_f64();
            Some((lag, typed.saturating_duration_since(start).as_secs_f64()))
        })
        .collect();
    lags.sort_by(|a, b| a.0.total_cmp(&b.0));
    let Some(&(max, at)) = lags.last() else {
        return;
    };
    report.max_lag_s = max;
    report.max_lag_at_s = at;
    report.p99_lag_s = lags[(lags.len() * 99 / 100).min(lags.len() - 1)].0;
    if max > MOST_LAG.as_secs_f64() {
        report.failures.push(format!(
            "fell {max:.1} s behind the typing for a line typed {at:.1} s in (p99 {:.2} s); \
             at most {MOST_LAG:?}",
            report.p99_lag_s
        ));
    }
}

/// One churn event on the next churned slot: a running client leaves (EOF) or is killed,
/// alternately; a stopped one comes back, as a new identity if all its lines are out.
fn churn(plan: &SoakPlan, fleet: &mut Fleet, report: &mut SoakReport, n: usize) {
    let churned = plan.slots - plan.steady;
    if churned == 0 {
        return;
    }
    let s = plan.steady + n % churned;
    if fleet.slots[s].leaving.is_some() {
        return;
    }
    if fleet.slots[s].proc.is_some() {
        // Rounds alternate stops and starts; stops alternate leaving and `kill -9`.
        if (n / (2 * churned)).is_multiple_of(2) {
            fleet.leave_client(s);
            report.leaves += 1;
        } else {
            fleet.kill_client(s);
            report.kills += 1;
        }
        return;
    }
    let fresh = all_delivered(fleet, s).unwrap_or_else(|e| {
        report.failures.push(e);
        false
    });
    fleet.start_client(s, fresh);
    report.client_runs += 1;
}

/// Whether slot `s` left cleanly and every line of its identity shows in the first steady
/// client's stdout (it ran from the start), after checking that the identity's replica agrees
/// with it so far. A killed identity always comes back: its accepted lines are due.
fn all_delivered(fleet: &Fleet, s: usize) -> Result<bool, String> {
    let slot = &fleet.slots[s];
    let Some(witness) = fleet.slots[0].proc.as_ref() else {
        return Ok(false);
    };
    if slot.killed {
        return Ok(false);
    }
    let shown: HashSet<u64> = witness.watch.lock().msgs.iter().map(|m| m.0).collect();
    let done = fleet.submitted[slot.identity]
        .iter()
        .all(|k| shown.contains(k));
    if done {
        // The identity's files go away with it: check its history first.
        let mine = crate::process::replica_file(&slot.dir)
            .and_then(|p| std::fs::read(&p).map_err(|e| e.to_string()))?;
        let theirs = witness.replica()?;
        if !(theirs.starts_with(&mine) || mine.starts_with(&theirs)) {
            return Err(format!(
                "the replica of c{} is not a prefix of c{}'s, nor the other way round",
                slot.identity, fleet.slots[0].identity
            ));
        }
    }
    Ok(done)
}

/// Samples every running process; its data dir only while its outbox is nearly empty.
fn take_samples(
    fleet: &mut Fleet,
    samples: &mut BTreeMap<String, Vec<Sample>>,
    dirs: &mut BTreeMap<String, Vec<Sample>>,
    start: Instant,
) {
    let t = start.elapsed().as_secs_f64();
    fleet.count_delivered();
    for (series, pid, dir, identity) in fleet.running() {
        let Some(s) = sample(t, pid, &dir) else {
            continue;
        };
        samples.entry(series).or_default().push(s);
        // Accepted lines wait in the checkpoint and the journal while the ring lags (up to the
        // outbox limit): that is not growth of the files themselves.
        if identity.is_none_or(|i| fleet.waiting(i) <= QUIET_OUTBOX) {
            let name = dir
                .file_name()
                .map_or("?".into(), |n| n.to_string_lossy().into_owned());
            dirs.entry(format!("dir {name}")).or_default().push(s);
        }
    }
}

/// A process that exited on its own (not asked to) is a failure.
fn check_alive(fleet: &mut Fleet, report: &mut SoakReport) {
    for slot in &mut fleet.slots {
        if let Some(p) = &mut slot.proc {
            if let Some(status) = p.process.try_exit() {
                report.failures.push(format!(
                    "{} exited on its own with {status}: {}",
                    p.name,
                    p.stderr_tail()
                ));
                slot.proc = None;
            }
        }
    }
    if let Some(server) = &mut fleet.server {
        if let Some(status) = server.process.try_exit() {
            report.failures.push(format!(
                "the server exited on its own with {status}: {}",
                server.stderr_tail()
            ));
            fleet.server = None;
        }
    }
}

fn summary(fleet: &Fleet) -> String {
    let typed: usize = fleet.submitted.iter().map(Vec::len).sum();
    let witness = fleet.slots[0]
        .proc
        .as_ref()
        .map_or(0, |p| p.watch.delivered());
    let live = fleet.slots.iter().filter(|s| s.proc.is_some()).count();
    format!(
        "typed {typed}, delivered {witness} (c0), {live} clients up, server {}",
        if fleet.server.is_some() { "up" } else { "down" }
    )
}

/// The quiet end: the server and every identity back up, then every replica equal to the
/// server's, then the lines checked.
fn settle(fleet: &mut Fleet, report: &mut SoakReport) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while fleet.slots.iter().any(|s| s.leaving.is_some()) && Instant::now() < deadline {
        for late in fleet.reap(Duration::from_secs(30)) {
            report.failures.push(late);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if fleet.server.is_none() {
        fleet.start_server();
    }
    fleet.wait_coordinating(Duration::from_secs(15))?;
    for s in 0..fleet.slots.len() {
        if fleet.slots[s].proc.is_none() {
            fleet.start_client(s, false);
            report.client_runs += 1;
        }
    }
    let joined = |s: &Seen| s.joined_at.is_some();
    for slot in &fleet.slots {
        let p = slot.proc.as_ref().ok_or("a slot without a process")?;
        if !p
            .watch
            .wait_for(Instant::now() + Duration::from_secs(30), joined)
        {
            return Err(format!(
                "{} did not join at the end: {}",
                p.name,
                p.stderr_tail()
            ));
        }
    }
    let server = fleet.server.as_ref().ok_or("no server at the end")?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        // Equal replicas can still miss lines that a resumed outbox has yet to send.
        let problem = match same_history(fleet, &server.replica()?)? {
            Some(history) => {
                let keys = replica_keys(&history)?;
                report.lines_delivered = keys.len();
                match check_keys(&keys, &fleet.submitted, |k| fleet.may_be_lost.contains(&k)) {
                    Ok(()) => break,
                    Err(e) => e,
                }
            }
            None => "replicas differ".to_string(),
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "90 s after the load stopped: {problem} ({})",
                summary(fleet)
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    leave_all(fleet)
}

/// `first` if every client's replica equals it.
fn same_history(fleet: &Fleet, first: &[u8]) -> Result<Option<Vec<u8>>, String> {
    for slot in &fleet.slots {
        let p = slot.proc.as_ref().ok_or("a slot without a process")?;
        if p.replica()? != first {
            return Ok(None);
        }
    }
    Ok(Some(first.to_vec()))
}

/// Every client leaves at EOF and exits 0; the server stops at SIGTERM.
fn leave_all(fleet: &mut Fleet) -> Result<(), String> {
    for s in 0..fleet.slots.len() {
        fleet.leave_client(s);
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut late = Vec::new();
    while fleet.slots.iter().any(|s| s.leaving.is_some()) && Instant::now() < deadline {
        late.extend(fleet.reap(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
    }
    fleet.stop_server(true)?;
    match late.is_empty() {
        true => Ok(()),
        false => Err(late.join("; ")),
    }
}
