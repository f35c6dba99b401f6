//! The measurements at a large ring (N from `plan.big_from` up, 100 in the full run): the join
//! storm that starts the session, the idle cost (CPU and wake-ups of the server and every
//! client), sporadic latency, and the token rotation from the observer, idle and during the
//! sporadic phase; then the replica check, as at every size.
//!
//! It must not run the heavy phases (raw baseline, paced load, flood): with N+1 processes on
//! two cores they would take too long. Like `measure.rs`, it must not hide a failure.

use crate::check::Verified;
use crate::measure::{idle_then_sporadic, Idle, Latency};
use crate::plan::Plan;
use crate::session::Ring;
use crate::storm::Storm;
use crate::util::progress;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// Everything measured at one large ring size.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BigRow {
    pub n: usize,
    pub storm: Option<Storm>,
    pub idle: Option<Idle>,
    pub sporadic: Option<Latency>,
    /// Client `/stats` counters at the end of the session.
    pub end_stats: Vec<BTreeMap<String, u64>>,
    pub check: Option<Verified>,
}

/// All measurements at large ring size `n`. Problems go into `failures`.
pub fn measure_big(
    plan: &Plan,
    n: usize,
    index: u16,
    t0: Instant,
    failures: &mut Vec<String>,
) -> BigRow {
    let mut row = BigRow {
        n,
        ..BigRow::default()
    };
    let mut ring = match Ring::start(&format!("n{n}"), plan.port(200 + index), n, &[]) {
        Ok(ring) => ring,
        Err(e) => {
            failures.push(format!("N={n}: ring did not start: {e}"));
            return row;
        }
    };
    let storm = ring.storm.clone();
    progress(
        t0,
        &format!(
            "N={n}: join storm: all started in {:.2} s, all joined {:.2} s, all {n} lines \
             everywhere {:.2} s, {} views {:?}",
            storm.spawn_s, storm.all_joined_s, storm.all_lines_s, storm.views, storm.view_members
        ),
    );
    row.storm = Some(storm);
    if let Err(e) = measure_big_ring(plan, &mut ring, &mut row, t0) {
        failures.push(format!("N={n}: {e}"));
    }
    row.check = crate::measure::verified(&mut ring, &format!("N={n}"), failures, t0);
    row
}

fn measure_big_ring(
    plan: &Plan,
    ring: &mut Ring,
    row: &mut BigRow,
    t0: Instant,
) -> Result<(), String> {
    let n = ring.n();
    let label = format!("N={n}");
    let (idle, sporadic) = idle_then_sporadic(plan, ring, plan.big_idle_window, &label, t0)?;
    row.idle = Some(idle);
    row.sporadic = Some(sporadic);
    for c in 0..n {
        row.end_stats.push(ring.clients[c].stats()?);
    }
    Ok(())
}
