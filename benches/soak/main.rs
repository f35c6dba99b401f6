//! The soak benchmark: `cargo bench --bench soak` (a `harness = false` binary, not part of
//! `cargo test`). Two modes:
//!
//! - **soak** (the default, 2 minutes; `SOAK_SECS=3600` for an hour): a server and five
//!   client slots on loopback chat at a steady 50 lines/s with churn: every 5 s a churned
//!   client leaves at EOF, is killed with `kill -9`, or comes back (`--resume`, or as a new
//!   identity once it left cleanly with all its lines out); the server is stopped (SIGTERM
//!   and `kill -9` alternately) and restarted every two fifths of the run (45 s at least);
//!   every node drops 5 % of its datagrams (`--loss 0.05`). Each second it samples every
//!   process's resident memory, open descriptors and threads, and every data dir's size
//!   without the replica (`sample.rs`). It fails (exit 1) if a least-squares slope after the
//!   warm-up exceeds its stated limit, if a line typed on a steady client took over 3 s to
//!   show on the first one (the ring fell behind the typing), if the replicas took over 3 s
//!   to agree after the load stopped, or if the history check fails: at the end every
//!   identity comes back, every replica must equal the server's byte for byte, `seq` run
//!   gapless, and every typed line show exactly once in its author's order, except that a
//!   line typed into a process killed before it was on disk (outbox journal or checkpoint)
//!   may be missing. The checks are shared with the ring benchmark
//!   (`benches/common/history.rs`).
//! - **history** (`SOAK_HISTORY=10000000`): a replica of that many lines written into the
//!   server's data dir, then start-up time and peak memory of the server, a fresh client's
//!   catch-up, `/history`, and the client's restart on the caught-up replica (`big.rs`).
//!
//! `SOAK_PORT` (default 47900) is the port; the history mode uses the next one. All traffic
//! stays on loopback (the binaries' default interface). Every child is killed when the bench
//! is stopped by a signal or drops it.
//!
//! # Layout
//!
//! - `main.rs`: this overview, the environment, the report;
//! - `fleet.rs`: the server and the client slots, and the churn operations;
//! - `soak.rs`: the run: load, churn, samples, the quiet end and the checks;
//! - `sample.rs`: the `/proc` samples, the slopes and their limits;
//! - `big.rs`: the ten-million-line history;
//! - from the ring benchmark: `node.rs` (a process and its parsed stdout), `util.rs`,
//!   and the shared runner `tests/common/process.rs`.

#[path = "../common/history.rs"]
mod history;
#[allow(dead_code)]
#[path = "../ring/node.rs"]
mod node;
#[path = "../../tests/common/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "../ring/util.rs"]
mod util;

mod big;
mod fleet;
mod sample;
mod soak;

use serde_json::json;
use std::time::Instant;
use util::progress;

/// Key of a line that is not a bench line (the generated history).
const NO_KEY: u64 = 0;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn main() {
    let t0 = Instant::now();
    node::install_signal_guard();
    let port = env_u64("SOAK_PORT").map_or(47900, |p| p as u16);
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let failures = if let Some(lines) = env_u64("SOAK_HISTORY") {
        progress(
            t0,
            &format!("history of {lines} lines on port {}", port + 1),
        );
        let report = big::big_history(lines, port + 1, t0);
        print_big(&report);
        println!(
            "SOAK_JSON {}",
            json!({"date": date, "loadavg_start": load.trim(), "history": report})
        );
        report.failures
    } else {
        let secs = env_u64("SOAK_SECS").unwrap_or(120);
        progress(t0, &format!("soak for {secs} s on port {port}"));
        let report = soak::soak(soak::SoakPlan::new(secs, port), t0);
        print_soak(&report);
        println!(
            "SOAK_JSON {}",
            json!({"date": date, "loadavg_start": load.trim(), "soak": report})
        );
        report.failures
    };
    let load_end = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nLoad average {} at the start, {} at the end.",
        load.trim(),
        load_end.trim()
    );
    util::finish(t0, &failures);
}

fn print_big(r: &big::BigReport) {
    println!("\n| measure | result |\n|---|---|");
    println!(
        "| history | {} lines, {:.2} GB, written in {:.1} s |",
        r.lines,
        r.file_bytes as f64 / 1e9,
        r.generate_s
    );
    println!(
        "| server start-up (open and index the archive) | {:.2} s median (runs {:.2?} s); admits joins after {:.2} s (2 s of it the one-server probe) |",
        util::median(&r.server_start_s),
        r.server_start_s,
        util::median(&r.server_coordinating_s)
    );
    println!(
        "| server peak RSS | {:.1} MiB after start-up, {:.1} MiB after serving the whole history |",
        r.server_start_hwm_mib, r.server_end_hwm_mib
    );
    println!(
        "| catch-up of a fresh client | {:.1} s, {:.0} msgs/s from its start ({:.0} msgs/s transfer); peak RSS {:.1} MiB |",
        r.catch_up_s, r.catch_up_msgs_per_s, r.transfer_msgs_per_s, r.client_hwm_mib
    );
    println!(
        "| `/history` (20) / `/history 1000` | {:.2} ms / {:.1} ms (median of 5) |",
        r.history_20_ms, r.history_1000_ms
    );
    println!(
        "| client restart on its {}-line replica | {:.2} s to open, {:.2} s to rejoin; peak RSS {:.1} MiB |",
        r.lines, r.client_restart_s, r.client_rejoin_s, r.client_restart_hwm_mib
    );
}

fn print_soak(r: &soak::SoakReport) {
    println!(
        "\n{} s, {} lines/s, loss {:.0} %: {} lines typed, {} delivered, {} may have been lost \
         (typed into a process killed before it accepted them); {} identities, {} client runs ({} leaves, \
         {} kill -9), {} server runs; at most {:.2} s behind the typing (p99 {:.2} s), \
         settled {:.1} s after the load stopped.\n",
        r.plan.secs,
        r.plan.rate,
        r.plan.loss * 100.0,
        r.lines_typed,
        r.lines_delivered,
        r.may_be_lost,
        r.identities,
        r.client_runs,
        r.leaves,
        r.kills,
        r.server_runs,
        r.max_lag_s,
        r.p99_lag_s,
        r.settle_s
    );
    println!("| series | metric | judged | worst slope | limit | range (first .. last) |\n|---|---|---:|---:|---:|---|");
    type Member = fn(&str) -> bool;
    let groups: [(&str, Member); 4] = [
        ("server runs", |s| s.starts_with("server")),
        ("steady clients", |s| {
            s.starts_with("c0 ") || s.starts_with("c1 ")
        }),
        ("churned clients", |s| {
            s.starts_with('c') && !s.starts_with("c0 ") && !s.starts_with("c1 ")
        }),
        ("data dirs", |s| s.starts_with("dir ")),
    ];
    for (group, member) in groups {
        let metrics = sample::LIMITS.iter().map(|l| l.name);
        for metric in metrics {
            let of: Vec<&sample::Verdict> = r
                .verdicts
                .iter()
                .filter(|v| member(&v.series) && v.metric == metric)
                .collect();
            let judged: Vec<&&sample::Verdict> = of.iter().filter(|v| v.judged).collect();
            let worst = judged
                .iter()
                .max_by(|a, b| a.slope_per_min.total_cmp(&b.slope_per_min));
            let (slope, range) = worst.map_or(("-".to_string(), "-".to_string()), |w| {
                (
                    format!("{:+.2} {}/min ({})", w.slope_per_min, w.unit, w.series),
                    format!("{:.0} .. {:.0}", w.first, w.last),
                )
            });
            let Some(limit) = of.first().map(|v| v.limit_per_min) else {
                continue;
            };
            println!(
                "| {group} | {metric} | {} of {} | {slope} | {limit} | {range} |",
                judged.len(),
                of.len()
            );
        }
    }
}
