//! The plan of a run: which ring sizes, for how long, how many repetitions; the full run or
//! `BENCH_QUICK=1`, adjusted by `BENCH_NS`, `BENCH_PORT_BASE`, `BENCH_DURABILITY` and
//! `BENCH_ONLY` (which sections run: `BENCH_ONLY=unicast` runs the unicast section alone).
//!
//! It only reads the environment and holds numbers: no processes, no sockets, no measuring.

use crate::util::as_ms;
use mcast_chat::protocol::limits::MAX_MEMBERS;
use serde::Serialize;
use std::time::Duration;

/// The smallest large ring (see [`Plan::big_from`]).
const BIG_FROM: usize = 32;

/// One recovery session: a ring under a paced load whose clients are killed one by one.
#[derive(Clone, Debug, Serialize)]
pub struct RecoveryPlan {
    pub clients: usize,
    /// How many clients are killed, one after another.
    pub kills: usize,
    /// Paced load, lines per second over the live clients.
    pub rate: u32,
    /// The server's `--token-timeout`.
    #[serde(serialize_with = "as_ms", rename = "token_timeout_ms")]
    pub token_timeout: Duration,
    /// The target: delivery resumes at every survivor within this time after the kill.
    #[serde(serialize_with = "as_ms", rename = "target_ms")]
    pub target: Duration,
}

impl RecoveryPlan {
    /// A small ring at 500 lines/s; the target is the token timeout + 200 ms.
    fn small(clients: usize, kills: usize) -> RecoveryPlan {
        RecoveryPlan {
            clients,
            kills,
            rate: 500,
            token_timeout: Duration::from_secs(1),
            target: Duration::from_millis(1200),
        }
    }

    /// A large ring under a light load (50 lines/s); the target is the token timeout + 500 ms.
    fn big(clients: usize, kills: usize) -> RecoveryPlan {
        RecoveryPlan {
            clients,
            kills,
            rate: 50,
            token_timeout: Duration::from_secs(1),
            target: Duration::from_millis(1500),
        }
    }
}

/// One failover session: a ring with two servers under a paced load; the coordinating server
/// is killed, then a member, and a new client starts at the member's kill.
#[derive(Clone, Debug, Serialize)]
pub struct FailoverPlan {
    pub clients: usize,
    /// Sessions, each a fresh ring; the medians are quoted.
    pub runs: usize,
    /// Paced load, lines per second over the live clients.
    pub rate: u32,
    /// Both servers' `--token-timeout`.
    #[serde(serialize_with = "as_ms", rename = "token_timeout_ms")]
    pub token_timeout: Duration,
    /// From the server's kill to the member's.
    #[serde(serialize_with = "as_ms", rename = "member_kill_after_ms")]
    pub member_kill_after: Duration,
    /// The target: the survivors deliver again, and the new client has joined, within this
    /// time after the member's kill.
    #[serde(serialize_with = "as_ms", rename = "target_ms")]
    pub target: Duration,
}

impl FailoverPlan {
    /// The paced load of the recovery session of the same size (500 lines/s for a small ring,
    /// 50 lines/s for a large one); the target is 3 s with a token timeout of 1 s.
    fn new(clients: usize, runs: usize) -> FailoverPlan {
        FailoverPlan {
            clients,
            runs,
            rate: if clients < BIG_FROM { 500 } else { 50 },
            token_timeout: Duration::from_secs(1),
            member_kill_after: Duration::from_secs(1),
            target: Duration::from_secs(3),
        }
    }
}

/// The loss section: at each loss rate, every node drops that share of the datagrams it sends
/// (`--loss P` on the server and every client), and the server has a short token timeout.
#[derive(Clone, Debug, Serialize)]
pub struct LossPlan {
    /// The loss rates, the lossless one (0, the ratios' base) first.
    pub rates: Vec<f64>,
    /// The flood's ring size and lines per run; `runs` runs after a warm-up flood.
    pub flood_clients: usize,
    pub flood_lines: usize,
    /// The paced load's ring size, rate (lines per second over all clients) and length.
    pub paced_clients: usize,
    pub paced_rate: u32,
    #[serde(serialize_with = "as_ms", rename = "paced_for_ms")]
    pub paced_for: Duration,
    /// The history the late joiner catches up on.
    pub catchup_messages: usize,
    /// Flood runs and catch-ups per rate; the medians are quoted.
    pub runs: usize,
    /// The server's `--token-timeout`.
    #[serde(serialize_with = "as_ms", rename = "token_timeout_ms")]
    pub token_timeout: Duration,
}

impl LossPlan {
    /// 0, 1 and 5 % loss: a flood at N = 4, 1,000 lines/s at N = 8, a catch-up of 20,000;
    /// the paced load and flood as long as the rings section's.
    fn new(flood_lines: usize, paced_for: Duration, runs: usize) -> LossPlan {
        LossPlan {
            rates: vec![0.0, 0.01, 0.05],
            flood_clients: 4,
            flood_lines,
            paced_clients: 8,
            paced_rate: 1000,
            paced_for,
            catchup_messages: 20_000,
            runs,
            token_timeout: Duration::from_secs(1),
        }
    }
}

/// The sections of a run, in their order; `BENCH_ONLY` picks some of them.
pub const SECTIONS: [&str; 6] = [
    "rings", "recovery", "failover", "catchup", "loss", "unicast",
];

/// The ring sizes of the unicast section (each measured in both modes; not `BENCH_NS`).
const UNICAST_NS: [usize; 3] = [2, 4, 8];

/// The knobs of one run: the full run, or `BENCH_QUICK=1`.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub quick: bool,
    /// Every node's `--durability` (`BENCH_DURABILITY`, default `page-cache`).
    pub durability: String,
    /// Ring sizes.
    pub ns: Vec<usize>,
    /// First port; sessions use `port_base + offset` (all within `port_base..port_base+1000`).
    pub port_base: u16,
    /// How long the raw sender floods, per repetition.
    #[serde(serialize_with = "as_ms", rename = "raw_window_ms")]
    pub raw_window: Duration,
    /// Repetitions of the cheap measurements (raw baseline, flood); the median is quoted.
    pub repeats: usize,
    /// Ring size whose idle window is the headline idle cost.
    pub idle_n: usize,
    /// Idle window at `idle_n`.
    #[serde(serialize_with = "as_ms", rename = "idle_window_ms")]
    pub idle_window: Duration,
    /// Idle window at the other sizes.
    #[serde(serialize_with = "as_ms", rename = "idle_probe_ms")]
    pub idle_probe: Duration,
    /// Sporadic lines, one every `sporadic_every`.
    pub sporadic_lines: usize,
    #[serde(serialize_with = "as_ms", rename = "sporadic_every_ms")]
    pub sporadic_every: Duration,
    /// Paced load: lines per second over all clients, for `paced_for`.
    pub paced_rate: u32,
    #[serde(serialize_with = "as_ms", rename = "paced_for_ms")]
    pub paced_for: Duration,
    /// How many paced runs each small ring makes (its p99 is judged over all of them).
    pub paced_runs: usize,
    /// Lines per flood run, over all clients: a calibration run of `flood_min_lines` (checked,
    /// not quoted) sizes the quoted runs to last about `flood_for`, within
    /// `flood_min_lines..=flood_lines`.
    pub flood_lines: usize,
    pub flood_min_lines: usize,
    #[serde(serialize_with = "as_ms", rename = "flood_for_ms")]
    pub flood_for: Duration,
    /// Ring sizes from this one up are large rings: a join storm, idle cost, sporadic latency
    /// and rotation, but no raw baseline, paced load or flood (see `big.rs`).
    pub big_from: usize,
    /// Idle window at the large rings.
    #[serde(serialize_with = "as_ms", rename = "big_idle_window_ms")]
    pub big_idle_window: Duration,
    /// Recovery sessions, one after another.
    pub recoveries: Vec<RecoveryPlan>,
    /// Failover sessions, one size after another.
    pub failovers: Vec<FailoverPlan>,
    /// Catch-up sessions: (history size, repetitions).
    pub catchup: Vec<(usize, usize)>,
    /// The loss section (`None` when it does not run).
    pub loss: Option<LossPlan>,
    /// The unicast section's ring sizes, each measured with multicast and with unicast, as a
    /// small ring of the rings section (empty when it does not run).
    pub unicast_ns: Vec<usize>,
    /// The sections that run (`BENCH_ONLY`, default all of [`SECTIONS`]).
    pub only: Vec<String>,
}

impl Plan {
    pub fn from_env() -> Plan {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let port_base = std::env::var("BENCH_PORT_BASE")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(46000);
        let mut plan = if quick {
            Plan {
                quick,
                durability: crate::node::durability(),
                ns: vec![1, 2, 4],
                port_base,
                raw_window: Duration::from_millis(500),
                repeats: 3,
                idle_n: 4,
                idle_window: Duration::from_secs(3),
                idle_probe: Duration::from_secs(1),
                sporadic_lines: 10,
                sporadic_every: Duration::from_millis(200),
                paced_rate: 1000,
                paced_for: Duration::from_millis(1500),
                paced_runs: 1,
                flood_lines: 5_000,
                flood_min_lines: 1_000,
                flood_for: Duration::from_secs(2),
                big_from: BIG_FROM,
                big_idle_window: Duration::from_secs(3),
                recoveries: vec![RecoveryPlan::small(3, 1)],
                failovers: vec![FailoverPlan::new(5, 1)],
                catchup: vec![(20_000, 1)],
                loss: Some(LossPlan::new(5_000, Duration::from_millis(1500), 1)),
                unicast_ns: UNICAST_NS.to_vec(),
                only: Vec::new(),
            }
        } else {
            Plan {
                quick,
                durability: crate::node::durability(),
                ns: vec![1, 2, 4, 8, 16, 32, 64, 100],
                port_base,
                raw_window: Duration::from_secs(1),
                repeats: 3,
                idle_n: 8,
                idle_window: Duration::from_secs(10),
                idle_probe: Duration::from_secs(2),
                sporadic_lines: 25,
                sporadic_every: Duration::from_millis(200),
                paced_rate: 1000,
                paced_for: Duration::from_secs(3),
                paced_runs: 5,
                flood_lines: 20_000,
                flood_min_lines: 2_000,
                flood_for: Duration::from_secs(6),
                big_from: BIG_FROM,
                big_idle_window: Duration::from_secs(10),
                recoveries: vec![RecoveryPlan::small(5, 3), RecoveryPlan::big(100, 3)],
                failovers: vec![FailoverPlan::new(5, 3), FailoverPlan::new(100, 3)],
                catchup: vec![(20_000, 3), (200_000, 1)],
                loss: Some(LossPlan::new(20_000, Duration::from_secs(3), 3)),
                unicast_ns: UNICAST_NS.to_vec(),
                only: Vec::new(),
            }
        };
        if let Ok(ns) = std::env::var("BENCH_NS") {
            let parsed: Vec<usize> = ns
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .filter(|n| (1..=MAX_MEMBERS).contains(n))
                .collect();
            if !parsed.is_empty() {
                plan.ns = parsed;
            }
        }
        // The recovery and failover of a large ring run only when the plan has a large ring.
        if !plan.ns.iter().any(|&n| n >= plan.big_from) {
            plan.recoveries.retain(|r| r.clients < plan.big_from);
            plan.failovers.retain(|f| f.clients < plan.big_from);
        }
        plan.only = only_sections();
        if !plan.runs("rings") {
            plan.ns.clear();
        }
        if !plan.runs("recovery") {
            plan.recoveries.clear();
        }
        if !plan.runs("failover") {
            plan.failovers.clear();
        }
        if !plan.runs("catchup") {
            plan.catchup.clear();
        }
        if !plan.runs("loss") {
            plan.loss = None;
        }
        if !plan.runs("unicast") {
            plan.unicast_ns.clear();
        }
        plan
    }

    /// Whether section `name` (one of [`SECTIONS`]) runs.
    pub fn runs(&self, name: &str) -> bool {
        self.only.iter().any(|s| s == name)
    }

    /// A port for a session: `offset` below 1000 keeps it in the bench's range.
    pub fn port(&self, offset: u16) -> u16 {
        self.port_base + offset % 1000
    }
}

/// `BENCH_ONLY=failover,catchup`: the sections to run (default all). An unknown name stops
/// the bench before it starts anything, rather than running what was not asked for.
fn only_sections() -> Vec<String> {
    let Some(list) = std::env::var("BENCH_ONLY")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        return SECTIONS.iter().map(|s| s.to_string()).collect();
    };
    let picked: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
    if let Some(bad) = picked.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
        eprintln!("BENCH_ONLY: unknown section {bad:?}; the sections are {SECTIONS:?}");
        std::process::exit(2);
    }
    picked
}
