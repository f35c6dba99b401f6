//! The measurements on a running ring: submit-to-delivered latency (paced and sporadic),
//! flood throughput, and the idle cost; `measure_n` runs them all at one ring size, after the
//! raw baseline, and ends with the replica check (`measure_session`: a ring in either mode,
//! multicast or unicast, measured and checked).
//!
//! It must not hide a failure: a problem goes into the run's failures (exit 1), and a row
//! keeps only what was measured.

use crate::check::Verified;
use crate::node::Net;
use crate::observer::HopStats;
use crate::plan::Plan;
use crate::procfs::{context_switches, cpu_secs, Usage};
use crate::raw::{best_lossless, RawRun};
use crate::session::Ring;
use crate::storm::Storm;
use crate::util::{key, key_phase, median, ms, percentile, progress, sleep_until};
use crate::{DATAGRAM_BYTES, PHASE_FLOOD, PHASE_PACED, PHASE_PACED_AGAIN, PHASE_SPORADIC};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{mpsc, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Submit-to-delivered-everywhere latencies of one phase.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub lines: usize,
    /// Offered load in lines per second.
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Token passes from the first submit until the last delivery.
    pub hops: HopStats,
    /// The slowest 1 % of the lines (at or over p99), means: from the submit until the line
    /// was on the group (its author's wait for the token, stamping included), and from there
    /// until every client delivered it (the rotation that makes it safe, delivery, stdout).
    /// Zero when the observer sees no packs (unicast).
    pub tail_to_wire_ms: f64,
    pub tail_after_wire_ms: f64,
}

/// One flood run.
#[derive(Clone, Debug, Serialize)]
pub struct FloodRun {
    pub lines: usize,
    /// From the first write until every client printed the last line.
    pub secs_clients: f64,
    /// ... and the server archived it.
    pub secs_all: f64,
    pub lines_per_s: f64,
    pub lines_per_s_with_server: f64,
    /// Between the 10th and the 90th percent of the lines at the slowest client: the rate
    /// without the start (stdin, first checkpoint) and the tail (the last safe rotation).
    pub steady_lines_per_s: f64,
    /// Token visits and own lines stamped at client 0 during the run.
    pub visits: u64,
    pub stamped: u64,
    /// Flood duration per token visit at client 0: one rotation under load.
    pub rotation_us: f64,
    /// Token visits at client 0 per second of flood.
    pub visits_per_s: f64,
    /// Token passes during the flood, from the observer.
    pub hops: HopStats,
    /// Datagrams the clients sent during the run (their `/stats`), per second, and the lines
    /// each carried on average.
    pub datagrams_per_s: f64,
    pub lines_per_datagram: f64,
    /// CPU time of the server and the clients from the first write until the server archived
    /// the last line, per line and per node (N + 1 nodes), in µs; its user share in %; and
    /// the context switches per line and per node.
    pub cpu_us_per_line_node: f64,
    pub user_pct: f64,
    pub switches_per_line_node: f64,
}

/// An idle window.
#[derive(Clone, Debug, Serialize)]
pub struct Idle {
    pub secs: f64,
    /// CPU of the server plus every client, in % of one core.
    pub cpu_pct: f64,
    pub cpu_pct_server: f64,
    pub cpu_pct_busiest_client: f64,
    /// Thread wake-ups (context switches) per second, over all processes.
    pub wakeups_per_s: f64,
    /// Idle token rotation at client 0, from its token visits.
    pub rotation_ms: f64,
    /// Token passes in the window, from the observer.
    pub hops: HopStats,
}

/// Everything measured at one ring size.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    pub n: usize,
    /// How the clients joined (the session's start).
    pub storm: Option<Storm>,
    pub raw: Vec<RawRun>,
    /// Median over the repeats of the best lossless rate.
    pub raw_rate: f64,
    /// The unpaced floods' rates, one per repeat.
    pub raw_flood_rate: Vec<f64>,
    pub flood: Vec<FloodRun>,
    pub ordered_rate: f64,
    pub ordered_rate_with_server: f64,
    /// Median of the runs' steady rates (see [`FloodRun::steady_lines_per_s`]).
    pub steady_rate: f64,
    pub ratio: f64,
    /// Flood: one rotation and one hop, from client 0's visits (`/stats`).
    pub rotation_us: f64,
    pub hop_us: f64,
    pub lines_per_visit: f64,
    /// Flood, medians over the runs: datagrams the clients sent per second, and lines per
    /// datagram sent (every datagram counts: packs, token passes, acks, wakes).
    pub datagrams_per_s: f64,
    pub lines_per_datagram: f64,
    /// Flood, from the observer (medians over the runs): rotation, hop interval p50 and p99,
    /// stalls over 50 ms per second of flood.
    pub observed_rotation_ms: f64,
    pub observed_hop_p50_us: f64,
    pub observed_hop_p99_us: f64,
    pub stalls_per_s: f64,
    /// Median bare token hop on the idle ring (sporadic phase).
    pub bare_hop_us: f64,
    /// The paced run with the median p99, and every paced run's p99 in ms.
    pub paced: Option<Latency>,
    pub paced_p99_ms: Vec<f64>,
    /// From the clients' own timing (`/stats`) after the paced runs, the worst client's p99
    /// of its lines from typed to sent, and from sent to delivered there, in ms.
    pub own_sent_p99_ms: f64,
    pub own_delivered_p99_ms: f64,
    /// Flood, medians over the runs: see [`FloodRun::cpu_us_per_line_node`].
    pub cpu_us_per_line_node: f64,
    pub user_pct: f64,
    pub switches_per_line_node: f64,
    pub sporadic: Option<Latency>,
    pub idle: Option<Idle>,
    /// Client `/stats` counters at the end of the session.
    pub end_stats: Vec<BTreeMap<String, u64>>,
    pub check: Option<Verified>,
}

pub fn latency_of(ring: &Ring, phase: u64, rate: f64, hops: HopStats) -> Result<Latency, String> {
    let mut arrived: HashMap<u64, Instant> = HashMap::new();
    for c in ring.live() {
        let seen = ring.clients[c].watch.lock();
        for &(k, at) in seen.msgs.iter().filter(|m| key_phase(m.0) == phase) {
            let e = arrived.entry(k).or_insert(at);
            *e = (*e).max(at);
        }
    }
    let on_wire = ring
        .observer
        .on_wire
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    // (latency, submit to the wire, the wire to everywhere), per line.
    let mut lines: Vec<(f64, f64, f64)> = Vec::new();
    for (k, submitted) in ring
        .submit_at
        .iter()
        .filter(|(k, _)| key_phase(**k) == phase)
    {
        let at = arrived
            .get(k)
            .ok_or_else(|| format!("line {k:#x} of phase {phase} never arrived"))?;
        let (to_wire, after) = on_wire.get(k).map_or((0.0, 0.0), |w| {
            (
                ms(w.saturating_duration_since(*submitted)),
                ms(at.saturating_duration_since(*w)),
            )
        });
        lines.push((ms(at.saturating_duration_since(*submitted)), to_wire, after));
    }
    drop(on_wire);
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    let lat: Vec<f64> = lines.iter().map(|l| l.0).collect();
    let p99 = percentile(&lat, 99.0);
    let tail: Vec<_> = lines.iter().filter(|l| l.0 >= p99).collect();
    let tail_mean = |f: fn(&(f64, f64, f64)) -> f64| {
        tail.iter().map(|l| f(l)).sum::<f64>() / tail.len().max(1) as f64
    };
    Ok(Latency {
        tail_to_wire_ms: tail_mean(|l| l.1),
        tail_after_wire_ms: tail_mean(|l| l.2),
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
pub fn paced(
    ring: &mut Ring,
    phase: u64,
    lines: usize,
    every: Duration,
) -> Result<Latency, String> {
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

/// Paced run `run` (from 0): `rate` lines per second over the clients for `length`. Each
/// run has a phase of its own, so that no line repeats another run's text.
pub fn paced_load(
    ring: &mut Ring,
    run: u64,
    rate: u32,
    length: Duration,
) -> Result<Latency, String> {
    let every = Duration::from_secs(1) / rate.max(1);
    let lines = (length.as_secs_f64() * f64::from(rate)) as usize;
    let phase = match run {
        0 => PHASE_PACED,
        _ => PHASE_PACED_AGAIN + run,
    };
    paced(ring, phase, lines, every)
}

/// Every client gets `total / N` lines on stdin at once (one writer thread each).
pub fn flood(ring: &mut Ring, phase: u64, total: usize) -> Result<FloodRun, String> {
    let n = ring.n();
    let per = (total / n).max(1);
    let before = ring.delivered();
    let v0 = ring.clients[0].stats()?;
    let sent0 = datagrams_sent(ring)?;
    let pids: Vec<u32> = ring.pids().into_iter().map(|(_, p)| p).collect();
    let (tx, rx) = mpsc::channel();
    let used0 = Usage::total(&pids);
    let start = Instant::now();
    for c in 0..n {
        let mut buf = String::with_capacity(per * (DATAGRAM_BYTES + 16));
        for i in 0..per {
            let k = key(phase, c, i);
            buf.push_str(&ring.text(k));
            buf.push('\n');
            ring.submitted[c].push(k);
        }
        let mut stdin = ring.clients[c]
            .process
            .stdin
            .take()
            .ok_or("stdin is closed")?;
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
        ring.clients[c].process.stdin = Some(stdin);
        result.map_err(|e| format!("c{c}: cannot write the flood: {e}"))?;
    }
    let lines = per * n;
    let timeout = Duration::from_secs(120);
    let done = ring.wait_clients(before + lines, timeout, "the flood")?;
    let last_client = done.into_iter().max().unwrap_or(start);
    let last_server = ring.wait_server(before + lines, timeout)?;
    let used = Usage::total(&pids).since(&used0);
    let per_line_node = (lines * pids.len()) as f64;
    let v1 = ring.clients[0].stats()?;
    let sent = datagrams_sent(ring)?.saturating_sub(sent0);
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
        datagrams_per_s: sent as f64 / secs,
        lines_per_datagram: lines as f64 / sent.max(1) as f64,
        cpu_us_per_line_node: used.cpu_s * 1e6 / per_line_node,
        user_pct: used.user_pct(),
        switches_per_line_node: used.switches as f64 / per_line_node,
    })
}

/// Datagrams sent so far by every live client, from their `/stats`.
fn datagrams_sent(ring: &mut Ring) -> Result<u64, String> {
    let live: Vec<usize> = ring.live().collect();
    let mut total = 0;
    for c in live {
        total += ring.clients[c].stats()?.get("sent").copied().unwrap_or(0);
    }
    Ok(total)
}

/// CPU and wake-ups of the server and all clients over an idle window.
pub fn idle(ring: &mut Ring, window: Duration) -> Result<Idle, String> {
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
pub fn measure_n(
    plan: &Plan,
    n: usize,
    index: u16,
    t0: Instant,
    failures: &mut Vec<String>,
) -> Row {
    let mut row = Row {
        n,
        ..Row::default()
    };
    let mut bests = Vec::new();
    for r in 0..plan.repeats {
        match best_lossless(plan.port(100 + index), n + 1, plan.raw_window) {
            Ok((runs, best)) => {
                row.raw_flood_rate.push(runs[0].rate);
                row.raw.extend(runs);
                bests.push(best);
            }
            Err(e) => failures.push(format!("N={n}: raw baseline run {r}: {e}")),
        }
    }
    row.raw_rate = median(&bests);
    progress(
        t0,
        &format!(
            "N={n}: raw baseline {:.0} datagrams/s, the best lossless pace (an unpaced flood: {:.0})",
            row.raw_rate,
            median(&row.raw_flood_rate)
        ),
    );
    let port = plan.port(200 + index);
    measure_session(
        plan,
        Net::Multicast,
        port,
        &mut row,
        &format!("N={n}"),
        t0,
        failures,
    );
    row
}

/// A fresh ring of `row.n` clients in mode `net` on `port`, the measurements of
/// [`measure_ring`] into `row`, and the replica check; `label` (`N=8`, ...) names it in the
/// progress lines and the failures.
pub fn measure_session(
    plan: &Plan,
    net: Net,
    port: u16,
    row: &mut Row,
    label: &str,
    t0: Instant,
    failures: &mut Vec<String>,
) {
    let n = row.n;
    let dir_label = label.replace("N=", "n").replace(' ', "-");
    let mut ring = match Ring::start_servers(net, &dir_label, port, n, &[], &[], 1) {
        Ok(ring) => ring,
        Err(e) => {
            failures.push(format!("{label}: ring did not start: {e}"));
            return;
        }
    };
    progress(
        t0,
        &format!(
            "{label}: ring of {n} up: all joined {:.2} s, all lines everywhere {:.2} s, {} views",
            ring.storm.all_joined_s, ring.storm.all_lines_s, ring.storm.views
        ),
    );
    row.storm = Some(ring.storm.clone());
    if let Err(e) = measure_ring(plan, &mut ring, row, label, t0) {
        failures.push(format!("{label}: {e}"));
    }
    row.check = verified(&mut ring, label, failures, t0);
}

/// The end-of-session check of a ring (`label` names it in the output): the verdict, or a
/// failure recorded.
pub fn verified(
    ring: &mut Ring,
    label: &str,
    failures: &mut Vec<String>,
    t0: Instant,
) -> Option<crate::check::Verified> {
    match ring.verify() {
        Ok(v) => {
            let what = format!(
                "{label}: checked {} messages in {} replicas",
                v.messages, v.replicas
            );
            progress(t0, &what);
            Some(v)
        }
        Err(e) => {
            failures.push(format!("{label}: CHECK FAILED: {e}"));
            None
        }
    }
}

/// An idle window (CPU, wake-ups, idle rotation), then sporadic lines on the idle ring:
/// the first two phases of every ring session, small or large (`label` names it).
pub fn idle_then_sporadic(
    plan: &Plan,
    ring: &mut Ring,
    window: Duration,
    label: &str,
    t0: Instant,
) -> Result<(Idle, Latency), String> {
    let idle = idle(ring, window)?;
    progress(
        t0,
        &format!(
            "{label}: idle {:.2}% CPU (server {:.2}%, busiest client {:.2}%), {:.0} wake-ups/s, \
             rotation {:.0} ms ({} hops in {:.1} s)",
            idle.cpu_pct,
            idle.cpu_pct_server,
            idle.cpu_pct_busiest_client,
            idle.wakeups_per_s,
            idle.hops.rotation_ms,
            idle.hops.hops,
            idle.secs
        ),
    );
    let sporadic = paced(
        ring,
        PHASE_SPORADIC,
        plan.sporadic_lines,
        plan.sporadic_every,
    )?;
    progress(
        t0,
        &format!(
            "{label}: sporadic p50 {:.1} ms p99 {:.1} ms max {:.1} ms; rotation {:.0} ms, \
             bare hop p50 {:.0} us",
            sporadic.p50_ms,
            sporadic.p99_ms,
            sporadic.max_ms,
            sporadic.hops.rotation_ms,
            sporadic.hops.bare_p50_us
        ),
    );
    Ok((idle, sporadic))
}

/// Idle and sporadic, the paced load, a calibration flood and the quoted floods, into `row`
/// (`label` names the ring in the progress lines).
pub fn measure_ring(
    plan: &Plan,
    ring: &mut Ring,
    row: &mut Row,
    label: &str,
    t0: Instant,
) -> Result<(), String> {
    let n = ring.n();
    let window = if n == plan.idle_n {
        plan.idle_window
    } else {
        plan.idle_probe
    };
    let (idle, sporadic) = idle_then_sporadic(plan, ring, window, label, t0)?;
    row.idle = Some(idle);
    row.sporadic = Some(sporadic);
    let mut runs = Vec::new();
    for run in 0..plan.paced_runs.max(1) {
        let paced = paced_load(ring, run as u64, plan.paced_rate, plan.paced_for)?;
        progress(
            t0,
            &format!(
                "{label}: paced {} lines/s p50 {:.2} ms p99 {:.2} ms",
                plan.paced_rate, paced.p50_ms, paced.p99_ms
            ),
        );
        runs.push(paced);
    }
    row.paced_p99_ms = runs.iter().map(|l| l.p99_ms).collect();
    for c in ring.live().collect::<Vec<_>>() {
        if let Some((sent, delivered)) = ring.clients[c].own_line_p99s()? {
            row.own_sent_p99_ms = row.own_sent_p99_ms.max(sent);
            row.own_delivered_p99_ms = row.own_delivered_p99_ms.max(delivered);
        }
    }
    runs.sort_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms));
    row.paced = Some(runs.swap_remove(runs.len() / 2));
    let calibration = flood(ring, PHASE_FLOOD, plan.flood_min_lines)?;
    let lines = ((calibration.lines_per_s * plan.flood_for.as_secs_f64()) as usize)
        .clamp(plan.flood_min_lines, plan.flood_lines);
    progress(
        t0,
        &format!(
            "{label}: calibration flood {:.0} lines/s; runs of {lines} lines",
            calibration.lines_per_s
        ),
    );
    for r in 1..=plan.repeats {
        let run = flood(ring, PHASE_FLOOD + r as u64, lines)?;
        progress(
            t0,
            &format!(
                "{label}: flood {} lines: {:.0} lines/s at every client ({:.0} with the server), \
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
    // No raw baseline (it failed, or a unicast ring has none): no ratio.
    row.ratio = if row.raw_rate > 0.0 {
        row.ordered_rate / row.raw_rate
    } else {
        f64::NAN
    };
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
    row.datagrams_per_s = of(|r| r.datagrams_per_s);
    row.lines_per_datagram = of(|r| r.lines_per_datagram);
    row.observed_rotation_ms = of(|r| r.hops.rotation_ms);
    row.observed_hop_p50_us = of(|r| r.hops.p50_us);
    row.observed_hop_p99_us = of(|r| r.hops.p99_us);
    row.stalls_per_s = of(|r| r.hops.stalls as f64 / r.secs_clients);
    row.cpu_us_per_line_node = of(|r| r.cpu_us_per_line_node);
    row.user_pct = of(|r| r.user_pct);
    row.switches_per_line_node = of(|r| r.switches_per_line_node);
    row.bare_hop_us = row.sporadic.as_ref().map_or(0.0, |l| l.hops.bare_p50_us);
    for c in 0..n {
        row.end_stats.push(ring.clients[c].stats()?);
    }
    Ok(())
}
