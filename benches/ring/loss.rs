//! Loss: what a lost datagram costs. At each loss rate P of the plan (0 first: the same flags
//! and code path, the base of the ratios) the server and every client run with `--loss P`
//! (each drops that share of the datagrams it sends), the server with a short token timeout;
//! per rate, a flood at N = 4 (`measure::flood`) and a paced load at N = 8
//! (`measure::paced_load`), each on a fresh ring that ends with the history check, and the
//! catch-up of a late joiner (`catchup::catch_up`, which checks both replicas against the
//! history).
//!
//! It only runs the shared measurements under loss and compares each rate with the lossless
//! one: it must not measure otherwise than the other sections, nor excuse a wrong history or a
//! session that did not finish because datagrams were lost (either fails the run).

use crate::catchup::{catch_up, CatchUp};
use crate::check::Verified;
use crate::history::history_file;
use crate::measure::{flood, paced_load, verified, FloodRun, Latency};
use crate::node::Net;
use crate::plan::{LossPlan, Plan};
use crate::session::Ring;
use crate::util::{median, progress};
use crate::PHASE_FLOOD;
use serde::Serialize;
use std::time::Instant;

/// What one loss rate cost.
#[derive(Clone, Debug, Serialize)]
pub struct LossRow {
    /// The share of the datagrams every node drops (`--loss`).
    pub loss: f64,
    /// The quoted flood runs (after a warm-up flood, checked, not quoted).
    pub flood: Vec<FloodRun>,
    /// Median lines/s until every client delivered, and its ratio to the lossless rate's.
    pub flood_lines_per_s: f64,
    pub flood_ratio: f64,
    /// Submit to delivered at every client under the paced load.
    pub paced: Option<Latency>,
    pub catchup: Vec<CatchUp>,
    /// Median time from the late client's "joined" notice until it delivered the last
    /// message, and its ratio to the lossless rate's. (From its start, the time includes the
    /// server's start-up probe, which the client waits out in every run, lossless or not.)
    pub catchup_s: f64,
    pub catchup_ratio: f64,
    /// The history checks of the flood and the paced sessions.
    pub checks: Vec<Verified>,
}

/// The flags of every node at one loss rate, after the usual ones.
struct Flags {
    server: Vec<String>,
    client: Vec<String>,
}

impl Flags {
    fn new(spec: &LossPlan, loss: f64) -> Flags {
        let loss = loss.to_string();
        let token_timeout = format!("{}ms", spec.token_timeout.as_millis());
        Flags {
            server: vec![
                "--token-timeout".into(),
                token_timeout,
                "--loss".into(),
                loss.clone(),
            ],
            client: vec!["--loss".into(), loss],
        }
    }

    fn server(&self) -> Vec<&str> {
        self.server.iter().map(String::as_str).collect()
    }
}

/// Every rate of the plan's loss section, one after another (none when it does not run).
pub fn losses(plan: &Plan, t0: Instant, failures: &mut Vec<String>) -> Vec<LossRow> {
    let Some(spec) = &plan.loss else {
        return Vec::new();
    };
    let history = history_file(spec.catchup_messages);
    let mut rows: Vec<LossRow> = Vec::new();
    for (i, &loss) in spec.rates.iter().enumerate() {
        let ports = 600 + 10 * i as u16;
        rows.push(loss_row(plan, spec, loss, ports, &history, t0, failures));
    }
    let lossless = rows
        .iter()
        .find(|r| r.loss == 0.0)
        .map_or((f64::NAN, f64::NAN), |r| (r.flood_lines_per_s, r.catchup_s));
    for r in &mut rows {
        r.flood_ratio = r.flood_lines_per_s / lossless.0;
        r.catchup_ratio = r.catchup_s / lossless.1;
    }
    rows
}

/// The sessions of one loss rate, on the ports from offset `ports` (flood, paced, catch-ups).
fn loss_row(
    plan: &Plan,
    spec: &LossPlan,
    loss: f64,
    ports: u16,
    history: &[u8],
    t0: Instant,
    failures: &mut Vec<String>,
) -> LossRow {
    let flags = Flags::new(spec, loss);
    let mut row = LossRow {
        loss,
        flood: Vec::new(),
        flood_lines_per_s: 0.0,
        flood_ratio: f64::NAN,
        paced: None,
        catchup: Vec::new(),
        catchup_s: 0.0,
        catchup_ratio: f64::NAN,
        checks: Vec::new(),
    };
    let n = spec.flood_clients;
    let label = format!("loss{loss}-n{n}");
    let (floods, check) = session(plan.port(ports), &label, n, &flags, t0, failures, |ring| {
        floods(plan, spec, ring, &label, t0)
    });
    row.flood = floods.unwrap_or_default();
    row.flood_lines_per_s = median(&row.flood.iter().map(|r| r.lines_per_s).collect::<Vec<_>>());
    row.checks.extend(check);
    let n = spec.paced_clients;
    let label = format!("loss{loss}-n{n}");
    let (paced, check) = session(
        plan.port(ports + 1),
        &label,
        n,
        &flags,
        t0,
        failures,
        |ring| paced_load(ring, 0, spec.paced_rate, spec.paced_for),
    );
    if let Some(p) = &paced {
        let what = format!(
            "{label}: paced {} lines/s p50 {:.2} ms p99 {:.2} ms max {:.1} ms",
            spec.paced_rate, p.p50_ms, p.p99_ms, p.max_ms
        );
        progress(t0, &what);
    }
    row.paced = paced;
    row.checks.extend(check);
    let messages = spec.catchup_messages;
    let label = format!("loss{loss}-catchup{messages}");
    for r in 0..spec.runs {
        let port = plan.port(ports + 2 + r as u16);
        match catch_up(port, history, messages, &flags.server(), &flags.client) {
            Ok(c) => {
                let what = format!(
                    "{label}: {:.3} s from the client's join to its last message (joined \
                     {:.3} s after its start, {:.2} s counting the server's start)",
                    c.client_s - c.join_s,
                    c.join_s,
                    c.total_s
                );
                progress(t0, &what);
                row.catchup.push(c);
            }
            Err(e) => failures.push(format!("{label} run {r}: {e}")),
        }
    }
    let after_join: Vec<f64> = row.catchup.iter().map(|c| c.client_s - c.join_s).collect();
    row.catchup_s = median(&after_join);
    row
}

/// A fresh ring of `n` clients on `port` with `flags`: `work` measures on it, then the history
/// check. A problem goes into `failures`; returns what worked and the check's verdict.
fn session<T>(
    port: u16,
    label: &str,
    n: usize,
    flags: &Flags,
    t0: Instant,
    failures: &mut Vec<String>,
    work: impl FnOnce(&mut Ring) -> Result<T, String>,
) -> (Option<T>, Option<Verified>) {
    let mut ring = match Ring::start_servers(
        Net::Multicast,
        label,
        port,
        n,
        &flags.server(),
        &flags.client,
        1,
    ) {
        Ok(ring) => ring,
        Err(e) => {
            failures.push(format!("{label}: ring did not start: {e}"));
            return (None, None);
        }
    };
    progress(
        t0,
        &format!(
            "{label}: ring of {n} up (all joined {:.2} s), flags {}",
            ring.storm.all_joined_s,
            flags.client.join(" ")
        ),
    );
    let result = work(&mut ring);
    let result = result
        .map_err(|e| failures.push(format!("{label}: {e}")))
        .ok();
    (result, verified(&mut ring, label, failures, t0))
}

/// A warm-up flood (checked, not quoted), then the quoted runs.
fn floods(
    plan: &Plan,
    spec: &LossPlan,
    ring: &mut Ring,
    label: &str,
    t0: Instant,
) -> Result<Vec<FloodRun>, String> {
    flood(ring, PHASE_FLOOD, plan.flood_min_lines)?;
    let mut runs = Vec::new();
    for r in 1..=spec.runs {
        let run = flood(ring, PHASE_FLOOD + r as u64, spec.flood_lines)?;
        progress(
            t0,
            &format!(
                "{label}: flood {} lines: {:.0} lines/s at every client, {:.0} datagrams/s, \
                 {} stalls over 50 ms ({:.0} ms)",
                run.lines,
                run.lines_per_s,
                run.datagrams_per_s,
                run.hops.stalls,
                run.hops.stalled_ms
            ),
        );
        runs.push(run);
    }
    Ok(runs)
}
