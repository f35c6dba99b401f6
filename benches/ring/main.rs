//! The ring benchmark: `cargo bench --bench ring` (a `harness = false` binary).
//!
//! It starts the real `server` and `client` binaries (built by cargo for this bench, found
//! through `CARGO_BIN_EXE_*`) on loopback, with `--json` client output read line by line, and
//! measures in one run, for N = 1, 2, 4, 8, 16 clients (the small rings):
//!
//! - **join storm** (every session starts with it): once the server admits joins, all N
//!   clients started at once, each typing one line as soon as it says it joined; the time from the first start until every client
//!   joined, and until every client delivered the first line of every client, and the views
//!   the server installed meanwhile (its `view E: K members` notices);
//! - **raw baseline**: one sender sends 200-byte datagrams to N+1 receiver sockets opened by
//!   the library's `net::open_socket` like the chat's (reuse address and port, join 224.1.1.1
//!   on 127.0.0.1, loopback on, 4 MiB buffers), no protocol: a flood, then paced at rising
//!   multiples of the flood's rate while nothing is lost; the baseline is the best rate that
//!   every receiver took in whole;
//! - **ordered throughput**: every client gets its share of a batch of lines on stdin at once;
//!   lines/s from the first write until the last line shows on the stdout of every client (a
//!   client prints a message after appending it to its replica, so this is "delivered and
//!   persisted"), and until the server's archive has it too; its ratio to the baseline; a
//!   steady rate between the 10th and 90th percent of the lines; and the datagrams the clients
//!   sent per second and the lines per datagram (from their `/stats`). A calibration flood (checked,
//!   not quoted) sizes the quoted runs to last a few seconds each;
//! - **latency**: submit (the write to a client's stdin) to delivered everywhere (the latest of
//!   the clients' stdout readers), at a paced 1,000 lines/s spread over the clients, and for a
//!   sporadic line every 200 ms on an otherwise idle ring;
//! - **token rotation**: a passive observer socket joined to the ring's group records the
//!   token passes sent to the group and the data packs (decoded with `wire::decode`); per
//!   phase it reports the mean hop p50/p99 between passes (by hop number: a pass that raises
//!   nothing goes to the successor alone), the rotation (N times the mean hop; idle, sporadic
//!   and flood), stalls (hops over 50 ms) and the bare hop (a pack to the pass that made it
//!   safe, over N). Client 0's `/stats` token visits give a cross-check;
//! - **idle cost**: CPU time (the threads' `/proc/PID/task/*/schedstat`, ns resolution) and
//!   thread wake-ups (context switches) of the server and the clients over an idle window:
//!   10 s at N = 8 and at the large rings, 2 s at the other small sizes;
//! - **recovery**: with `--token-timeout 1s`, a client of a ring of 5 is killed with `kill -9`
//!   under a paced load of 500 lines/s, three times; the time from the kill until every
//!   survivor delivers again (the target: within the token timeout + 200 ms), and until the
//!   server printed the view without the victim. The same at a ring of 100 under 50 lines/s
//!   (target: the token timeout + 500 ms), in a run that has a large ring;
//! - **failover**: two servers with `--token-timeout 1s` (the second started once the first
//!   coordinates; it stands by) and a ring of 5 under 500 lines/s; `kill -9` of the
//!   coordinating server, 1 s later of a member, and a new client started at the member's
//!   kill; the time from the member's kill (and from the server's) until every survivor
//!   delivers again and until the new client has joined, and until the standby took over;
//!   three fresh sessions, medians against a target of 3 s. The same at a ring of 100 under
//!   50 lines/s, in a run that has a large ring;
//! - **catch-up**: a replica of 20,000 (and 200,000) messages is written into the server's data
//!   dir before it starts; the time until a new client has delivered all of it, counting the
//!   server's start, and the client's resident memory afterwards;
//! - **loss**: the server and every client with `--loss P` (each drops that share of the
//!   datagrams it sends; P = 0, 0.01 and 0.05, the lossless run with the same flags) and the
//!   server with `--token-timeout 1s`; per P, on fresh rings that end with the history check,
//!   the ordered throughput of a flood at N = 4 and the paced latency at 1,000 lines/s over
//!   N = 8 (the measurements above), and the catch-up of 20,000 messages from the late
//!   client's join (the catch-up above, `--loss P` on both processes); the flood and the
//!   catch-up as ratios to P = 0;
//! - **unicast**: at N = 2, 4 and 8, a fresh ring with multicast and one in unicast mode
//!   (`--peer 127.0.0.1:PORT` on the server and every client: the server listens on the
//!   ring's port on 127.0.0.1, each client on a port the system picks, and every datagram
//!   meant for the group goes to each node of the view), the two alternating at each N; each
//!   ring measured as a small ring above (idle cost, sporadic and paced latency, the flood)
//!   and checked; one table of mode, N, ordered lines/s, the ratio unicast/multicast, paced
//!   p50 / p99 at 1,000 lines/s, idle CPU of the server plus the clients, and the datagrams
//!   the clients sent per second of flood. The observer hears no unicast: the unicast rows
//!   have no token statistics (their `/stats` counters are there).
//!
//! For the large rings, N = 32, 64, 100, it runs the join storm, the idle cost (a 10 s window),
//! the sporadic latency and the token rotation (idle and sporadic), and skips the raw
//! baseline, the paced load and the flood: with N+1 processes on 2 cores they would take too
//! long. Each child costs the bench two pipes and a reader thread; the bench raises its soft
//! limit of open files with `prlimit` if it is too low for the largest ring.
//!
//! Times are taken in this process: a line's submit when it is written to the pipe, its
//! delivery when the reader thread reads it from the client's stdout (the clients flush every
//! line). The bench's reader threads and observer share the 2 cores with the ring.
//!
//! Every ring session ends with a check that fails the run (exit 1) on a fast wrong answer:
//! the replicas of all clients and servers byte-identical (a killed server's archive a prefix
//! of them), `seq` gapless from 1, every submitted line exactly once and each author's lines in
//! submit order, and every client's stdout stream equal to its replica. A missed target
//! (recovery, failover) is reported, not a failure. It prints markdown tables, with the load
//! average at its start and end, and one `BENCH_JSON {...}` line (`scripts/plot.py` draws
//! `docs/bench.svg` from its `rows`, the small rings; `big_rows` holds the large ones,
//! `recovery`, `failover`, `catchup` and `loss` their sessions, `unicast` its rows, each with
//! its mode `net`).
//!
//! `BENCH_QUICK=1` runs N = 1, 2, 4 with short windows, a recovery at 3, one failover run
//! at 5, one run of each loss measurement and the unicast section's six rings with the short
//! windows (about two and a half minutes, one of them unicast); the full run takes about 4
//! minutes on a 2-core machine, plus about 1.5 minutes of failover sessions (six fresh rings,
//! three of them of 100), 1 minute of loss sessions and 2 minutes of unicast sessions.
//! `BENCH_NS=1,8,100` picks the ring sizes (1 to 128); `BENCH_ONLY=failover` runs only the
//! sections named (a comma-separated list of `rings`, the measurements per ring size,
//! `recovery`, `failover`, `catchup`, `loss` and `unicast`; an unknown name stops the bench:
//! `BENCH_ONLY=unicast cargo bench --bench ring` runs the unicast section alone, whose sizes
//! `BENCH_NS` does not change), and the recovery and failover of a ring of 100 still only
//! when the plan has a large ring;
//! `BENCH_DURABILITY=fsync` runs every node with `--durability fsync` (default `page-cache`),
//! `BENCH_PORT_BASE` (default 46000) the first of the ports used (base .. base + 999),
//! `BENCH_COMMIT` the commit named in the report (default: `git rev-parse --short HEAD`,
//! marked when `src/` has changes).
//!
//! Safety: all traffic stays on loopback (group 224.1.1.1 via 127.0.0.1, the binaries' default
//! interface; in unicast mode, 127.0.0.1 itself); every child process is killed when its
//! handle drops, on a panic, and on SIGINT, SIGTERM or SIGHUP of the bench; every wait has a
//! deadline and every loop a bound.

//!
//! # Layout
//!
//! - `main.rs`: this overview, the line kinds, and the order of the run;
//! - `plan.rs`: what to run and for how long (full or `BENCH_QUICK`);
//! - `node.rs`: one `server` or `client` (started by the shared runner,
//!   `tests/common/process.rs`), its stdout parsed into deliveries and notices;
//! - `session.rs`: a ring of a server (or a coordinating one and standbys) and N clients,
//!   typing and waiting; `storm.rs`: the join storm that starts its clients;
//! - `check.rs`: the replica checks that end every session (over `benches/common/history.rs`,
//!   shared with the soak benchmark);
//! - `raw.rs`: the raw multicast baseline; `observer.rs`: the token-pass observer;
//! - `measure.rs`: latency, flood and idle at one small ring size; `big.rs`: the phases at a
//!   large ring; `recovery.rs`: `kill -9` under load; `failover.rs`: `kill -9` of the
//!   coordinating server and of a member, two servers on the ring; `catchup.rs`: a late
//!   joiner and a long history; `loss.rs`: the flood, paced load and catch-up with `--loss`;
//!   `unicast.rs`: the small-ring measurements in unicast mode beside multicast;
//! - `report.rs`: the markdown tables; `util.rs`, `procfs.rs`: small helpers.

#[path = "../common/history.rs"]
mod history;
#[path = "../../tests/common/process.rs"]
mod process;

mod big;
mod catchup;
mod check;
mod failover;
mod loss;
mod measure;
mod node;
mod observer;
mod plan;
mod procfs;
mod raw;
mod recovery;
mod report;
mod session;
mod storm;
mod unicast;
mod util;

use big::measure_big;
use catchup::catch_ups;
use failover::failovers;
use loss::losses;
use measure::measure_n;
use node::install_signal_guard;
use plan::Plan;
use procfs::{own_limit, raise_open_files};
use recovery::recoveries;
use report::{loadavg, machine, print_failovers, print_losses, print_table, print_unicast};
use serde_json::json;
use session::{data_datagram_len, pad_len};
use std::time::Instant;
use unicast::unicasts;
use util::progress;

/// Size of a raw baseline datagram, and the size the chat lines are padded to as `Data`.
const DATAGRAM_BYTES: usize = 200;

/// Line kinds, the first part of every bench line's key (and text: `b<phase>-<client>-<n>`).
const PHASE_WARMUP: u64 = 1;
const PHASE_SPORADIC: u64 = 2;
const PHASE_PACED: u64 = 3;
/// Flood run `r` uses phase `PHASE_FLOOD + r`.
const PHASE_FLOOD: u64 = 4;
/// Paced run `r` > 0 uses phase `PHASE_PACED_AGAIN + r`, clear of the floods'.
const PHASE_PACED_AGAIN: u64 = 64;
/// Key of a line that is not a bench line (history written by the catch-up session).
const NO_KEY: u64 = 0;

fn main() {
    let t0 = Instant::now();
    install_signal_guard();
    let plan = Plan::from_env();
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let machine = machine();
    progress(
        t0,
        &format!(
            "plan: N = {:?}{}{}; ports {}..{}",
            plan.ns,
            if plan.quick { " (quick)" } else { "" },
            if plan.only.len() < plan::SECTIONS.len() {
                format!(", only {}", plan.only.join(", "))
            } else {
                String::new()
            },
            plan.port_base,
            plan.port_base + 999
        ),
    );
    let mut failures = Vec::new();
    check_limits(&plan, t0, &mut failures);
    let mut rows = Vec::new();
    let mut big_rows = Vec::new();
    for (i, &n) in plan.ns.iter().enumerate() {
        if n >= plan.big_from {
            big_rows.push(measure_big(&plan, n, i as u16, t0, &mut failures));
        } else {
            rows.push(measure_n(&plan, n, i as u16, t0, &mut failures));
        }
    }
    let recovery = recoveries(&plan, t0, &mut failures);
    let failover = failovers(&plan, t0, &mut failures);
    let catchups = catch_ups(&plan, t0, &mut failures);
    let loss = losses(&plan, t0, &mut failures);
    let unicast = unicasts(&plan, t0, &mut failures);
    print_table(
        &date, &machine, &plan, &rows, &big_rows, &recovery, &catchups,
    );
    print_failovers(&failover);
    print_losses(&plan, &loss);
    print_unicast(&plan, &unicast);
    let report = json!({
        "date": date,
        "machine": machine,
        "quick": plan.quick,
        "datagram_bytes": DATAGRAM_BYTES,
        "data_datagram_bytes": data_datagram_len(&format!("b3-1-1234 {}", "x".repeat(pad_len()))),
        "plan": plan,
        "rows": rows,
        "big_rows": big_rows,
        "recovery": recovery,
        "failover": failover,
        "catchup": catchups,
        "loss": loss,
        "unicast": unicast,
        "failures": failures,
        "loadavg_end": loadavg(),
        "elapsed_s": t0.elapsed().as_secs_f64(),
    });
    println!("BENCH_JSON {report}");
    util::finish(t0, &failures);
}

/// Makes sure the largest ring fits this process's limits: two pipes per child (its stdin and
/// stdout) and a reader thread, plus the observer, files being checked and slack. The soft
/// limit of open files is raised if it is too low; what cannot be fixed is a failure.
fn check_limits(plan: &Plan, t0: Instant, failures: &mut Vec<String>) {
    let largest = plan
        .ns
        .iter()
        .copied()
        .chain(plan.recoveries.iter().map(|r| r.clients))
        // A failover ring gets a new client, and has two servers.
        .chain(plan.failovers.iter().map(|f| f.clients + 2))
        .chain(
            plan.loss
                .iter()
                .map(|l| l.paced_clients.max(l.flood_clients)),
        )
        .chain(plan.unicast_ns.iter().copied())
        .max()
        .unwrap_or(1) as u64;
    let needed = 4 * (largest + 1) + 64;
    let files = raise_open_files(needed);
    let processes = own_limit("Max processes").map(|(soft, _)| soft);
    progress(
        t0,
        &format!(
            "limits: open files {} (the largest ring needs about {needed}), processes and \
             threads {}",
            files.map_or("unknown".into(), |v| v.to_string()),
            processes.map_or("unknown".into(), |v| v.to_string())
        ),
    );
    if files.is_some_and(|f| f < needed) {
        failures.push(format!(
            "the soft limit of open files ({files:?}) is below the {needed} a ring of \
             {largest} needs; raise it with `ulimit -n {needed}`"
        ));
    }
}
