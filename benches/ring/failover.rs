//! Failover: a ring with two servers (both with the plan's `--token-timeout`, each with its own
//! data dir; the second started once the first coordinates, and stands by) under the paced
//! load of `recovery.rs`; `kill -9` of the coordinating server, 1 s later of a member, and a new
//! client started at the member's kill. Per run: how long until every survivor delivers again,
//! and until the new client has joined, counted from the member's kill (and from the server's),
//! and when the standby said it takes over; per size, the medians of fresh sessions against
//! the target (3 s).
//!
//! It kills only its own ring's processes (the coordinating server and one client) and ends
//! every session with the history check, the standby's archive and the new client's replica
//! included. A problem goes into the run's failures; a missed target does not (as for the
//! recovery rows): it shows in the row's `pass`.

use crate::check::Verified;
use crate::node::{Net, Proc};
use crate::plan::{FailoverPlan, Plan};
use crate::process::left;
use crate::recovery::{kill_client, paced_load, settle, survivors_resume};
use crate::session::Ring;
use crate::storm::Storm;
use crate::util::{median, ms, progress};
use serde::Serialize;
use std::time::{Duration, Instant};

/// The words of the standby's notice that it took over.
const TAKING_OVER: &str = "taking over";

/// How long the load goes on after the member's kill.
const LOAD_AFTER: Duration = Duration::from_secs(5);

/// One session: the two kills, and what the survivors and the new client saw.
#[derive(Clone, Debug, Serialize)]
pub struct FailoverRun {
    /// The member killed.
    pub victim: String,
    /// From the server's kill to the member's.
    pub member_kill_ms: f64,
    /// From the server's kill until the standby said it takes over.
    pub takeover_ms: Option<f64>,
    /// The longest pause in deliveries at a survivor between the two kills.
    pub server_stall_ms: f64,
    /// From the member's kill until every survivor delivered again.
    pub resume_ms: f64,
    /// The longest pause in deliveries at a survivor after the member's kill.
    pub stall_ms: f64,
    /// From the member's kill until the new client (started then) said it joined.
    pub join_ms: f64,
    /// From the member's kill until the first survivor said that the victim left.
    pub left_ms: Option<f64>,
    /// How the ring's clients joined.
    pub storm: Storm,
    pub check: Option<Verified>,
}

/// The runs at one ring size.
#[derive(Clone, Debug, Serialize)]
pub struct Failover {
    pub clients: usize,
    pub token_timeout_ms: f64,
    pub rate: u32,
    pub member_kill_after_ms: f64,
    pub runs: Vec<FailoverRun>,
    /// Medians over the runs, from the member's kill.
    pub median_resume_ms: f64,
    pub median_join_ms: f64,
    /// Medians over the runs, from the server's kill.
    pub median_resume_from_server_kill_ms: f64,
    pub median_join_from_server_kill_ms: f64,
    pub median_takeover_ms: f64,
    pub max_resume_ms: f64,
    pub max_join_ms: f64,
    /// The target: the survivors deliver again, and the new client has joined, within this
    /// time after the member's kill.
    pub target_ms: f64,
    /// Every planned run measured, each within the target.
    pub pass: bool,
}

/// Every failover session of the plan: each size's runs, each run a fresh ring on a port of
/// its own.
pub fn failovers(plan: &Plan, t0: Instant, failures: &mut Vec<String>) -> Vec<Failover> {
    let mut out = Vec::new();
    for (i, spec) in plan.failovers.iter().enumerate() {
        let mut runs = Vec::new();
        for r in 0..spec.runs {
            let label = format!("failover{} run {}", spec.clients, r + 1);
            let port = plan.port(500 + 10 * i as u16 + r as u16);
            match failover_run(spec, port, &label, t0, failures) {
                Ok(run) => runs.push(run),
                Err(e) => failures.push(format!("{label}: {e}")),
            }
        }
        let summary = summarize(spec, runs);
        progress(
            t0,
            &format!(
                "failover{}: after the member's kill, delivery resumes in {:.0} ms and the new \
                 client joins in {:.0} ms (medians of {} runs; target {:.0} ms: {})",
                spec.clients,
                summary.median_resume_ms,
                summary.median_join_ms,
                summary.runs.len(),
                summary.target_ms,
                if summary.pass { "pass" } else { "FAIL" }
            ),
        );
        out.push(summary);
    }
    out
}

/// One fresh session: the ring with two servers, the kills under load, the check.
fn failover_run(
    spec: &FailoverPlan,
    port: u16,
    label: &str,
    t0: Instant,
    failures: &mut Vec<String>,
) -> Result<FailoverRun, String> {
    let tt = format!("{}ms", spec.token_timeout.as_millis());
    let n = spec.clients;
    let mut ring = Ring::start_servers(
        Net::Multicast,
        &format!("failover{n}"),
        port,
        n,
        &["--token-timeout", &tt],
        &[],
        2,
    )
    .map_err(|e| format!("ring did not start: {e}"))?;
    progress(
        t0,
        &format!(
            "{label}: ring of {n} and two servers up (all joined {:.2} s), token timeout {tt}",
            ring.storm.all_joined_s
        ),
    );
    let mut run = kill_under_load(spec, &mut ring, port)?;
    progress(
        t0,
        &format!(
            "{label}: takeover {:.0} ms after the server's kill; after the member's kill: \
             delivery resumes in {:.0} ms, the new client joined in {:.0} ms",
            run.takeover_ms.unwrap_or(f64::NAN),
            run.resume_ms,
            run.join_ms
        ),
    );
    match ring.verify() {
        Ok(v) => run.check = Some(v),
        Err(e) => failures.push(format!("{label}: CHECK FAILED: {e}")),
    }
    Ok(run)
}

/// Paced load; after 1 s the coordinating server is killed, `member_kill_after` later a
/// member, and a new client starts; the load goes on for `LOAD_AFTER`. Once the ring is
/// quiet, the times are read from what the processes printed, and the new client becomes one
/// of the ring's clients (the check covers its replica).
fn kill_under_load(spec: &FailoverPlan, ring: &mut Ring, port: u16) -> Result<FailoverRun, String> {
    let start = Instant::now() + Duration::from_millis(5);
    let server_kill_due = start + Duration::from_secs(1);
    let member_kill_due = server_kill_due + spec.member_kill_after;
    let run_for = Duration::from_secs(1) + spec.member_kill_after + LOAD_AFTER;
    let mut server_kill = None;
    let mut member_kill = None;
    paced_load(ring, spec.rate, start, run_for, |ring, at, last| {
        if server_kill.is_none() && at >= server_kill_due {
            server_kill = Some(ring.kill_server()?);
        }
        if member_kill.is_none() && at >= member_kill_due {
            let victim = pick_victim(ring, last)?;
            let when = kill_client(ring, victim);
            member_kill = Some((victim, when, start_joiner(ring, port)));
        }
        Ok(())
    })?;
    let server_kill = server_kill.ok_or("the load ended before the server's kill")?;
    let (victim, member_kill, joiner) =
        member_kill.ok_or("the load ended before the member's kill")?;
    let join_ms = wait_joined(&joiner, member_kill)?;
    settle(ring)?;
    let (resume, stall) = survivors_resume(ring, member_kill, Instant::now());
    let (_, server_stall) = survivors_resume(ring, server_kill, member_kill);
    let victim = ring.clients[victim].name.clone();
    let run = FailoverRun {
        left_ms: first_survivor_notice(ring, member_kill, |t| {
            left(std::slice::from_ref(&t.to_string()), &victim)
        }),
        takeover_ms: server_notice(ring, server_kill, |t| t.contains(TAKING_OVER)),
        victim,
        member_kill_ms: ms(member_kill - server_kill),
        server_stall_ms: ms(server_stall),
        resume_ms: ms(resume),
        stall_ms: ms(stall),
        join_ms,
        storm: ring.storm.clone(),
        check: None,
    };
    ring.clients.push(joiner);
    ring.submitted.push(Vec::new());
    settle(ring)?;
    Ok(run)
}

/// The member to kill: the last live client, unless it typed the line just before (then the
/// one before it), so that the kill does not fall on a line in flight from the victim.
fn pick_victim(ring: &Ring, last_typist: Option<usize>) -> Result<usize, String> {
    ring.live()
        .filter(|&c| Some(c) != last_typist)
        .last()
        .ok_or_else(|| "no client to kill".to_string())
}

/// A new client, `c<N>`, started on the ring's port; it types nothing.
fn start_joiner(ring: &Ring, port: u16) -> Proc {
    let name = format!("c{}", ring.n());
    Proc::client(port, &ring.root_path.join(&name), &name)
}

/// Waits (30 s at most) until the new client says it joined; milliseconds since `from`.
fn wait_joined(joiner: &Proc, from: Instant) -> Result<f64, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    if !joiner.watch.wait_for(deadline, |s| s.joined_at.is_some()) {
        return Err(format!(
            "the new client did not join within 30 s: {}",
            joiner.stderr_tail()
        ));
    }
    let joined = joiner.watch.lock().joined_at.unwrap_or(from);
    Ok(ms(joined.saturating_duration_since(from)))
}

/// Milliseconds from `from` until the ring's server (the standby that took over) printed a
/// notice that satisfies `pred`.
fn server_notice(ring: &Ring, from: Instant, pred: impl Fn(&str) -> bool) -> Option<f64> {
    let seen = ring.server.watch.lock();
    let found = seen
        .notices
        .iter()
        .find(|(t, text)| *t > from && pred(text));
    found.map(|(t, _)| ms(*t - from))
}

/// Milliseconds from `from` until the first live client printed a notice that satisfies
/// `pred` (the earliest over the clients).
fn first_survivor_notice(ring: &Ring, from: Instant, pred: impl Fn(&str) -> bool) -> Option<f64> {
    ring.live()
        .filter_map(|c| {
            let seen = ring.clients[c].watch.lock();
            let found = seen
                .notices
                .iter()
                .find(|(t, text)| *t > from && pred(text));
            found.map(|(t, _)| ms(*t - from))
        })
        .min_by(f64::total_cmp)
}

/// The medians and the verdict of one size's runs.
fn summarize(spec: &FailoverPlan, runs: Vec<FailoverRun>) -> Failover {
    let of = |f: fn(&FailoverRun) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (resumes, joins) = (of(|r| r.resume_ms), of(|r| r.join_ms));
    let target_ms = ms(spec.target);
    Failover {
        clients: spec.clients,
        token_timeout_ms: ms(spec.token_timeout),
        rate: spec.rate,
        member_kill_after_ms: ms(spec.member_kill_after),
        median_resume_ms: median(&resumes),
        median_join_ms: median(&joins),
        median_resume_from_server_kill_ms: median(&of(|r| r.member_kill_ms + r.resume_ms)),
        median_join_from_server_kill_ms: median(&of(|r| r.member_kill_ms + r.join_ms)),
        median_takeover_ms: median(&of(|r| r.takeover_ms.unwrap_or(f64::NAN))),
        max_resume_ms: max(&resumes),
        max_join_ms: max(&joins),
        target_ms,
        pass: runs.len() == spec.runs && max(&resumes) <= target_ms && max(&joins) <= target_ms,
        runs,
    }
}
