//! Unicast beside multicast: at each ring size of the plan's unicast section (N = 2, 4, 8), a
//! fresh ring with multicast and one with unicast (`--peer 127.0.0.1:PORT` on the server and
//! every client: no group, and every datagram meant for the group goes to each node of the
//! view, N sends per datagram), each measured as a small ring of the rings section
//! (`measure::measure_session`: the idle cost, sporadic and paced latency, a calibration flood
//! and the quoted floods, then the history check). The two modes alternate at each N, so that
//! a busy spell of the machine tends to fall on both; the unicast flood is quoted as a ratio
//! to the multicast flood at the same N.
//!
//! The passive observer sees no unicast: the token statistics of the unicast rows (rotation,
//! hops, stalls) are empty; the clients' `/stats` counters (token visits, datagrams sent) are
//! not.
//!
//! It only runs the shared measurements in the two modes and compares them: it must not
//! measure otherwise than the rings section, nor excuse a wrong history (that fails the run).

use crate::measure::{measure_session, Row};
use crate::node::Net;
use crate::plan::Plan;
use serde::Serialize;
use std::time::Instant;

/// The measurements of one ring size in one mode.
#[derive(Clone, Debug, Serialize)]
pub struct ModeRow {
    pub net: Net,
    /// The median flood's lines/s (until every client delivered) over the multicast ring's at
    /// the same N (1 for the multicast ring itself; NaN when either flood failed).
    pub ratio_to_multicast: f64,
    #[serde(flatten)]
    pub row: Row,
}

/// Both modes at every size of the plan's unicast section (none when it does not run).
pub fn unicasts(plan: &Plan, t0: Instant, failures: &mut Vec<String>) -> Vec<ModeRow> {
    let mut rows = Vec::new();
    for (i, &n) in plan.unicast_ns.iter().enumerate() {
        for (m, net) in [Net::Multicast, Net::Unicast].into_iter().enumerate() {
            let mut row = Row {
                n,
                ..Row::default()
            };
            let port = plan.port(700 + 10 * i as u16 + m as u16);
            let label = format!("{} N={n}", net.name());
            measure_session(plan, net, port, &mut row, &label, t0, failures);
            rows.push(ModeRow {
                net,
                ratio_to_multicast: f64::NAN,
                row,
            });
        }
    }
    let multicast_rate = |n: usize| {
        rows.iter()
            .find(|r| r.net == Net::Multicast && r.row.n == n)
            .map_or(0.0, |r| r.row.ordered_rate)
    };
    let ratios: Vec<f64> = rows
        .iter()
        .map(|r| match (r.row.ordered_rate, multicast_rate(r.row.n)) {
            (rate, base) if rate > 0.0 && base > 0.0 => rate / base,
            _ => f64::NAN,
        })
        .collect();
    for (r, ratio) in rows.iter_mut().zip(ratios) {
        r.ratio_to_multicast = ratio;
    }
    rows
}
