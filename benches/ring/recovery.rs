//! Recovery after `kill -9`: a ring with a short token timeout under a paced load, its
//! clients killed one after another; how long until every survivor delivers again, against
//! the session's target (the token timeout + 200 ms for a small ring, + 500 ms at 100).
//!
//! Its paced load, kill, settle and "delivers again" helpers are shared with `failover.rs`.
//!
//! It kills only the ring's own clients, and checks the history afterwards like every session.

use crate::check::Verified;
use crate::plan::{Plan, RecoveryPlan};
use crate::session::Ring;
use crate::storm::{view_members, Storm};
use crate::util::{key, median, ms, progress, sleep_until};
use crate::PHASE_PACED;
use serde::Serialize;
use std::thread;
use std::time::{Duration, Instant};

/// One kill and what the survivors saw.
#[derive(Clone, Debug, Serialize)]
pub struct Kill {
    pub victim: String,
    /// From the kill until every survivor delivered again.
    pub resume_ms: f64,
    /// The longest pause in deliveries at a survivor after the kill.
    pub stall_ms: f64,
    /// From the kill until the server printed the next view (the one without the victim).
    pub view_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Recovery {
    pub clients: usize,
    pub token_timeout_ms: f64,
    pub rate: u32,
    pub kills: Vec<Kill>,
    pub median_resume_ms: f64,
    pub max_resume_ms: f64,
    /// The target: the chat resumes within this time after the kill.
    pub target_ms: f64,
    /// How the ring's clients joined.
    pub storm: Storm,
    pub check: Option<Verified>,
}

/// Every recovery session of the plan, one after another.
pub fn recoveries(plan: &Plan, t0: Instant, failures: &mut Vec<String>) -> Vec<Recovery> {
    let mut out = Vec::new();
    for (i, spec) in plan.recoveries.iter().enumerate() {
        let port = plan.port(300 + i as u16);
        if let Some(r) = recovery(spec, port, t0, failures) {
            out.push(r);
        }
    }
    out
}

pub fn recovery(
    spec: &RecoveryPlan,
    port: u16,
    t0: Instant,
    failures: &mut Vec<String>,
) -> Option<Recovery> {
    let tt = format!("{}ms", spec.token_timeout.as_millis());
    let n = spec.clients;
    let label = format!("recovery{n}");
    let mut ring = match Ring::start(&label, port, n, &["--token-timeout", &tt]) {
        Ok(ring) => ring,
        Err(e) => {
            failures.push(format!("{label}: ring did not start: {e}"));
            return None;
        }
    };
    progress(
        t0,
        &format!(
            "{label}: ring of {n} up (all joined {:.2} s), token timeout {tt}",
            ring.storm.all_joined_s
        ),
    );
    let mut result = Recovery {
        clients: n,
        token_timeout_ms: ms(spec.token_timeout),
        rate: spec.rate,
        kills: Vec::new(),
        median_resume_ms: 0.0,
        max_resume_ms: 0.0,
        target_ms: ms(spec.target),
        storm: ring.storm.clone(),
        check: None,
    };
    match kill_under_load(spec, &mut ring) {
        Ok(kills) => result.kills = kills,
        Err(e) => failures.push(format!("{label}: {e}")),
    }
    let resumes: Vec<f64> = result.kills.iter().map(|k| k.resume_ms).collect();
    result.median_resume_ms = median(&resumes);
    result.max_resume_ms = resumes.iter().copied().fold(0.0, f64::max);
    progress(
        t0,
        &format!(
            "{label}: resume after kill -9 {resumes:.0?} ms (next view after {:.0?} ms)",
            result
                .kills
                .iter()
                .map(|k| k.view_ms.unwrap_or(f64::NAN))
                .collect::<Vec<_>>()
        ),
    );
    match ring.verify() {
        Ok(v) => result.check = Some(v),
        Err(e) => failures.push(format!("{label}: CHECK FAILED: {e}")),
    }
    Some(result)
}

/// Paced load over the live clients; every few seconds the last live client is killed.
pub fn kill_under_load(spec: &RecoveryPlan, ring: &mut Ring) -> Result<Vec<Kill>, String> {
    let gap = Duration::from_millis(3500);
    let kills = spec.kills.min(ring.n() - 1);
    let run_for = Duration::from_secs(1) + gap * kills as u32;
    let start = Instant::now() + Duration::from_millis(5);
    let mut kill_at: Vec<Instant> = (0..kills)
        .map(|i| start + Duration::from_secs(1) + gap * i as u32)
        .collect();
    kill_at.reverse();
    let mut killed_at: Vec<(usize, Instant)> = Vec::new();
    paced_load(ring, spec.rate, start, run_for, |ring, at, _| {
        if kill_at.last().is_some_and(|k| *k <= at) {
            kill_at.pop();
            let victim = ring.live().last().ok_or("no client left")?;
            killed_at.push((victim, kill_client(ring, victim)));
        }
        Ok(())
    })?;
    settle(ring)?;
    let mut out = Vec::new();
    for (i, &(victim, at)) in killed_at.iter().enumerate() {
        let until = killed_at.get(i + 1).map_or(at + gap * 3, |k| k.1);
        let (resume, stall) = survivors_resume(ring, at, until);
        let view_at = ring
            .server
            .watch
            .lock()
            .notices
            .iter()
            .find(|(t, text)| *t > at && view_members(text).is_some())
            .map(|(t, _)| *t);
        out.push(Kill {
            victim: ring.clients[victim].name.clone(),
            resume_ms: ms(resume),
            stall_ms: ms(stall),
            view_ms: view_at.map(|t| ms(t - at)),
        });
    }
    Ok(out)
}

/// `kill -9` of client `c`, which the checks then excuse for lines it never sent; returns
/// the instant of the kill.
pub fn kill_client(ring: &mut Ring, c: usize) -> Instant {
    let when = Instant::now();
    ring.clients[c].kill();
    ring.killed.insert(c);
    when
}

/// `rate` lines per second from `start` for `run_for`, round robin over the live clients.
/// Before each line, `event(ring, when the line is due, the client that typed the line
/// before)` may act on the ring (kill a process).
pub fn paced_load(
    ring: &mut Ring,
    rate: u32,
    start: Instant,
    run_for: Duration,
    mut event: impl FnMut(&mut Ring, Instant, Option<usize>) -> Result<(), String>,
) -> Result<(), String> {
    let every = Duration::from_secs(1) / rate;
    let lines = (run_for.as_secs_f64() / every.as_secs_f64()) as usize;
    let mut last = None;
    for i in 0..lines {
        let at = start + every * i as u32;
        sleep_until(at);
        event(ring, at, last)?;
        let live: Vec<usize> = ring.live().collect();
        let c = live[i % live.len()];
        ring.submit(c, key(PHASE_PACED, c, i), true)?;
        last = Some(c);
    }
    Ok(())
}

/// Waits until the ring is quiet: every live client holds every live client's line, and the
/// count stays put for half a second (30 s at most).
pub fn settle(ring: &Ring) -> Result<(), String> {
    let survivors_lines: usize = ring.live().map(|c| ring.submitted[c].len()).sum();
    let mut count = ring.delivered();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        thread::sleep(Duration::from_millis(500));
        let now = ring.delivered();
        if now == count && now >= survivors_lines {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the survivors did not settle ({})",
                ring.progress_summary()
            ));
        }
        count = now;
    }
}

/// After a kill at `at`: when every live client delivered again (the end of its longest
/// pause in deliveries between `at` and `until`, the latest over the clients), counted from
/// `at`, and the longest such pause.
pub fn survivors_resume(ring: &Ring, at: Instant, until: Instant) -> (Duration, Duration) {
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
    (resume, stall)
}

/// The longest pause in `times` (sorted, all after `from`), counting from `from`; returns when
/// it ended and how long it was.
pub fn longest_gap(from: Instant, times: &[Instant]) -> (Instant, Duration) {
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
