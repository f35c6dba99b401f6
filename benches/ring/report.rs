//! The report: the machine and commit, the markdown tables printed at the end of a run.
//! (`main` prints the `BENCH_JSON` line from the same rows.)
//!
//! It only formats what was measured: no processes, no sockets, no checks.

use crate::big::BigRow;
use crate::catchup::CatchUp;
use crate::failover::Failover;
use crate::loss::LossRow;
use crate::measure::{Idle, Latency, Row};
use crate::node::Net;
use crate::plan::Plan;
use crate::recovery::Recovery;
use crate::storm::Storm;
use crate::unicast::ModeRow;
use crate::util::median;
use crate::DATAGRAM_BYTES;
use serde_json::json;
use std::process::Command;
use std::thread;

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` has them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn machine() -> serde_json::Value {
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
    // Other work on the machine shares its cores with the ring: say how much there was.
    let loadavg = loadavg();
    if let Ok(commit) = std::env::var("BENCH_COMMIT") {
        return json!({ "nproc": nproc, "cpu": model, "kernel": kernel, "commit": commit,
                       "loadavg": loadavg });
    }
    let dirty = !git(&["status", "--porcelain", "--", "src"]).is_empty();
    let commit = format!(
        "{}{}",
        git(&["rev-parse", "--short", "HEAD"]),
        if dirty { "+src-changes" } else { "" }
    );
    json!({ "nproc": nproc, "cpu": model, "kernel": kernel, "commit": commit,
            "loadavg": loadavg })
}

pub fn fmt_lat(l: Option<&Latency>) -> String {
    l.map_or("-".into(), |l| format!("{:.1} / {:.1}", l.p50_ms, l.p99_ms))
}

pub fn print_table(
    date: &str,
    machine: &serde_json::Value,
    plan: &Plan,
    rows: &[Row],
    big_rows: &[BigRow],
    recoveries: &[Recovery],
    catchups: &[CatchUp],
) {
    println!();
    println!(
        "## ring benchmark, {date}, {} ({} cores), commit {}{}, --durability {}",
        machine["cpu"].as_str().unwrap_or("?"),
        machine["nproc"],
        machine["commit"].as_str().unwrap_or("?"),
        if plan.quick { ", BENCH_QUICK" } else { "" },
        plan.durability
    );
    println!();
    println!(
        "Load average (1, 5, 15 min) {} at the start, {} at the end.",
        machine["loadavg"].as_str().unwrap_or("?"),
        loadavg()
    );
    println!();
    if !rows.is_empty() {
        print_small(plan, rows);
    }
    if !rows.is_empty() || !big_rows.is_empty() {
        print_scale(plan, rows, big_rows);
    }
    if rows.is_empty() && big_rows.is_empty() && recoveries.is_empty() && catchups.is_empty() {
        // Only the failover, the loss or the unicast section ran (`BENCH_ONLY`): each has a
        // table of its own.
        return;
    }
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
    for r in big_rows {
        if let Some(i) = &r.idle {
            println!(
                "| idle cost, server + {} clients, {:.0} s | {:.2} % of one core (server \
                 {:.2} %, busiest client {:.2} %), {:.0} wake-ups/s |",
                r.n, i.secs, i.cpu_pct, i.cpu_pct_server, i.cpu_pct_busiest_client, i.wakeups_per_s
            );
        }
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
    for r in recoveries {
        let each: Vec<String> = r
            .kills
            .iter()
            .map(|k| format!("{:.0}", k.resume_ms))
            .collect();
        println!(
            "| recovery after kill -9 under {} lines/s, {} clients, token timeout {:.0} ms | \
             delivery resumes after {:.0} ms (median; runs: {} ms; max {:.0} ms; the new \
             view after {:.0} ms, median); target {:.0} ms |",
            r.rate,
            r.clients,
            r.token_timeout_ms,
            r.median_resume_ms,
            each.join(", "),
            r.max_resume_ms,
            median(&r.kills.iter().filter_map(|k| k.view_ms).collect::<Vec<_>>()),
            r.target_ms
        );
    }
    println!();
}

/// The failover sessions: one line per ring size, medians over its runs (each run in
/// brackets), against the target.
pub fn print_failovers(failovers: &[Failover]) {
    let Some(first) = failovers.first() else {
        return;
    };
    println!(
        "Failover: two servers with --token-timeout {:.0} ms (the second stands by), N clients \
         under a paced load; kill -9 of the coordinating server, {:.0} ms later of a member, and \
         a new client started at the member's kill. Times from the member's kill unless said \
         otherwise; medians over fresh sessions, each run in brackets. Pass: every run within \
         the target, both times.",
        first.token_timeout_ms, first.member_kill_after_ms
    );
    println!();
    println!(
        "| N | lines/s | runs | takeover after the server's kill (ms) | survivors deliver \
         again (ms) | new client joined (ms) | from the server's kill: deliver again / joined \
         (ms) | target (ms) | pass |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for f in failovers {
        let each = |v: fn(&crate::failover::FailoverRun) -> f64| {
            let runs: Vec<String> = f.runs.iter().map(|r| format!("{:.0}", v(r))).collect();
            runs.join(", ")
        };
        println!(
            "| {} | {} | {} | {:.0} ({}) | {:.0} ({}) | {:.0} ({}) | {:.0} / {:.0} | {:.0} | {} |",
            f.clients,
            f.rate,
            f.runs.len(),
            f.median_takeover_ms,
            each(|r| r.takeover_ms.unwrap_or(f64::NAN)),
            f.median_resume_ms,
            each(|r| r.resume_ms),
            f.median_join_ms,
            each(|r| r.join_ms),
            f.median_resume_from_server_kill_ms,
            f.median_join_from_server_kill_ms,
            f.target_ms,
            if f.pass { "pass" } else { "FAIL" }
        );
    }
    println!();
}

/// The loss section: one line per loss rate, medians over its runs, and the ratios to the
/// lossless line.
pub fn print_losses(plan: &Plan, rows: &[LossRow]) {
    let (Some(spec), false) = (&plan.loss, rows.is_empty()) else {
        return;
    };
    println!(
        "Loss: `--loss P` on the server and every client (each drops that share of the \
         datagrams it sends), the server with --token-timeout {} ms; P = 0 runs with the same \
         flags. Flood: median of {} run(s) of {} lines at N = {}, until every client delivered. \
         Paced: {} lines/s over N = {} for {:?}, submit to delivered at every client. Catch-up: \
         a fresh client's join until it delivered the last of {} messages (median of {} \
         run(s)). Ratios to the P = 0 line; every session ends with the history check.",
        spec.token_timeout.as_millis(),
        spec.runs,
        spec.flood_lines,
        spec.flood_clients,
        spec.paced_rate,
        spec.paced_clients,
        spec.paced_for,
        spec.catchup_messages,
        spec.runs
    );
    println!();
    println!(
        "| loss | flood lines/s at N={} | % of lossless | paced {}/s p50 / p99 (ms) at N={} | \
         catch-up of {} after the join (s) | times lossless |",
        spec.flood_clients, spec.paced_rate, spec.paced_clients, spec.catchup_messages
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} % | {:.0} | {:.0} % | {} | {:.3} | {:.2} |",
            (r.loss * 1000.0).round() / 10.0,
            r.flood_lines_per_s,
            r.flood_ratio * 100.0,
            fmt_lat(r.paced.as_ref()),
            r.catchup_s,
            r.catchup_ratio
        );
    }
    println!();
}

/// The unicast section: one line per mode and ring size; the unicast flood as a ratio to the
/// multicast flood at the same size.
pub fn print_unicast(plan: &Plan, rows: &[ModeRow]) {
    if rows.is_empty() {
        return;
    }
    println!(
        "Unicast beside multicast: a fresh ring per mode and N, measured as a small ring above \
         (flood: median of {} runs sized to about {:?} within {}..={} lines, until every client \
         delivered; paced {} lines/s for {:?}, submit to delivered at every client; idle CPU of \
         the server plus the clients over {:?} at N = {}, {:?} otherwise). Unicast: `--peer \
         127.0.0.1:PORT` on every node, each datagram meant for the group sent to each node of \
         the view; datagrams sent/s from the clients' counters. Every session ends with the \
         history check.",
        plan.repeats,
        plan.flood_for,
        plan.flood_min_lines,
        plan.flood_lines,
        plan.paced_rate,
        plan.paced_for,
        plan.idle_window,
        plan.idle_n,
        plan.idle_probe
    );
    println!();
    println!(
        "| mode | N | ordered lines/s | unicast / multicast | paced {}/s p50 / p99 (ms) | idle \
         CPU (% of a core) | flood datagrams sent/s |",
        plan.paced_rate
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let ratio = match r.net {
            Net::Multicast => "-".to_string(),
            Net::Unicast => format!("{:.2}", r.ratio_to_multicast),
        };
        println!(
            "| {} | {} | {:.0} | {ratio} | {} | {} | {:.0} |",
            r.net.name(),
            r.row.n,
            r.row.ordered_rate,
            fmt_lat(r.row.paced.as_ref()),
            r.row
                .idle
                .as_ref()
                .map_or("-".into(), |i| format!("{:.2}", i.cpu_pct)),
            r.row.datagrams_per_s,
        );
    }
    println!();
}

/// Throughput, latency and idle cost at the small ring sizes.
fn print_small(plan: &Plan, rows: &[Row]) {
    println!(
        "Datagrams of {DATAGRAM_BYTES} bytes. Raw: the best rate every receiver took in \
         without loss (a flood, then paced sends). Throughput: medians of {} flood runs (sized \
         to about {:?} each); datagrams sent from the clients' counters; rotation and hops \
         from a passive observer of the passes sent to the group. Latency: submit to delivered \
         at every client.",
        plan.repeats, plan.flood_for
    );
    println!();
    println!(
        "| N | raw datagrams/s | ordered lines/s | incl. server | ratio | steady lines/s | \
         datagrams sent/s | lines per datagram | rotation (ms) | hop p50 / p99 (us) | \
         stalls > 50 ms per s | lines per visit |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.1} % | {:.0} | {:.0} | {:.1} | {:.2} | {:.0} / {:.0} | {:.1} | {:.1} |",
            r.n,
            r.raw_rate,
            r.ordered_rate,
            r.ordered_rate_with_server,
            r.ratio * 100.0,
            r.steady_rate,
            r.datagrams_per_s,
            r.lines_per_datagram,
            r.observed_rotation_ms,
            r.observed_hop_p50_us,
            r.observed_hop_p99_us,
            r.stalls_per_s,
            r.lines_per_visit,
        );
    }
    println!();
    println!(
        "CPU per line: the server's and the clients' CPU time during a flood (schedstat; the \
         user share from their clock ticks) over the lines and the N + 1 nodes, medians of the \
         runs. Paced p99: each of {} runs of {}/s for {:?} (the median run's p50 and p99 below); \
         its slowest 1 % of lines split at the moment the observer saw each on the group: the \
         wait for the token before, the rotation to safe and the delivery after (means). In the \
         author: each client's own timing of its lines (`/stats`, the last 4096 of them, most \
         from these runs), p99 from typed to sent and from sent to delivered there, the worst \
         client's.",
        plan.paced_runs, plan.paced_rate, plan.paced_for
    );
    println!();
    println!(
        "| N | CPU us per line per node | user share | context switches per line per node | \
         paced p99 of each run (ms) | worst p99 (ms) | slowest 1 %: to the group / then to \
         everyone (ms) | in the author: p99 typed to sent / sent to delivered (ms) |"
    );
    println!("|---:|---:|---:|---:|---|---:|---:|---:|");
    for r in rows {
        let each: Vec<String> = r.paced_p99_ms.iter().map(|p| format!("{p:.2}")).collect();
        let split = r.paced.as_ref().map_or(String::new(), |l| {
            format!("{:.2} / {:.2}", l.tail_to_wire_ms, l.tail_after_wire_ms)
        });
        println!(
            "| {} | {:.2} | {:.0} % | {:.2} | {} | {:.2} | {split} | {:.2} / {:.2} |",
            r.n,
            r.cpu_us_per_line_node,
            r.user_pct,
            r.switches_per_line_node,
            each.join(", "),
            r.paced_p99_ms.iter().copied().fold(0.0, f64::max),
            r.own_sent_p99_ms,
            r.own_delivered_p99_ms,
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
            fmt_lat(r.paced.as_ref()),
            fmt_lat(r.sporadic.as_ref()),
            r.bare_hop_us,
            idle(|i| format!("{:.0}", i.rotation_ms)),
            idle(|i| format!("{:.2}", i.cpu_pct)),
            idle(|i| format!("{:.0}", i.wakeups_per_s)),
        );
    }
    println!();
}

/// The join storm, sporadic latency, rotation and idle cost at every size, small and large.
fn print_scale(plan: &Plan, rows: &[Row], big_rows: &[BigRow]) {
    let mut lines: Vec<ScaleLine> = rows
        .iter()
        .map(|r| ScaleLine {
            n: r.n,
            storm: r.storm.as_ref(),
            sporadic: r.sporadic.as_ref(),
            idle: r.idle.as_ref(),
        })
        .collect();
    lines.extend(big_rows.iter().map(|r| ScaleLine {
        n: r.n,
        storm: r.storm.as_ref(),
        sporadic: r.sporadic.as_ref(),
        idle: r.idle.as_ref(),
    }));
    lines.sort_by_key(|l| l.n);
    println!(
        "Every session starts with a join storm: all N clients started at once, each typing one \
         line once joined; times from the first start. Large rings (N >= {}) run the storm, \
         an idle window of {:?}, the sporadic lines and the checks; no raw baseline, paced load \
         or flood. Idle rotation: the window over client 0's token visits in it (the window \
         itself when it saw none); sporadic rotation from the observer: N times the mean hop.",
        plan.big_from, plan.big_idle_window
    );
    println!();
    println!(
        "| N | storm: all joined (s) | all first lines everywhere (s) | views (members) | \
         sporadic p50 / p99 (ms) | bare hop p50 (us) | rotation idle (ms) | rotation \
         sporadic (ms) | idle CPU (% of a core) | idle wake-ups/s |"
    );
    println!("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    for l in &lines {
        let storm = |f: fn(&Storm) -> String| l.storm.map_or("-".into(), f);
        let idle = |f: fn(&Idle) -> String| l.idle.map_or("-".into(), f);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            l.n,
            storm(|s| format!("{:.2}", s.all_joined_s)),
            storm(|s| format!("{:.2}", s.all_lines_s)),
            storm(|s| {
                let members: Vec<String> = s.view_members.iter().map(|m| m.to_string()).collect();
                format!("{} ({})", s.views, members.join(", "))
            }),
            fmt_lat(l.sporadic),
            l.sporadic
                .map_or("-".into(), |s| format!("{:.0}", s.hops.bare_p50_us)),
            idle(|i| format!("{:.0}", i.rotation_ms)),
            l.sporadic
                .map_or("-".into(), |s| format!("{:.0}", s.hops.rotation_ms)),
            idle(|i| format!("{:.2}", i.cpu_pct)),
            idle(|i| format!("{:.0}", i.wakeups_per_s)),
        );
    }
    println!();
}

/// One line of the scale table, from a small or a large ring's row.
struct ScaleLine<'a> {
    n: usize,
    storm: Option<&'a Storm>,
    sporadic: Option<&'a Latency>,
    idle: Option<&'a Idle>,
}
