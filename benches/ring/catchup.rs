//! Catch-up of a late joiner: a replica of 20,000 (or 200,000) records written into the
//! server's data dir before it starts, then the time until a new client has delivered all of
//! it, and both processes' resident memory. The loss section (`loss.rs`) runs the same
//! catch-up with `--loss P` on both processes.
//!
//! It checks that both replicas equal the history byte for byte, and keeps the files if not.

use crate::history::history_file;
use crate::node::Proc;
use crate::plan::Plan;
use crate::process::says_joined;
use crate::procfs::rss_mib;
use crate::util::progress;
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Serialize)]
pub struct CatchUp {
    pub messages: usize,
    /// Server spawn until its first notice (it has read and indexed the archive).
    pub server_start_s: f64,
    /// Client spawn until it printed the last message.
    pub client_s: f64,
    /// Server spawn until the client printed the last message: the quoted catch-up time.
    pub total_s: f64,
    /// Client spawn until its "joined the ring" notice.
    pub join_s: f64,
    /// Client spawn until the first history message.
    pub first_message_s: f64,
    /// `messages / client_s`.
    pub msgs_per_s: f64,
    /// First to last history message at the client: the transfer alone.
    pub transfer_msgs_per_s: f64,
    pub client_rss_mib: f64,
    pub server_rss_mib: f64,
    /// The client's notices, in seconds since its spawn.
    pub notices: Vec<(f64, String)>,
}

/// One catch-up on a fresh server and client, started with `server_extra` and `client_extra`
/// after the usual flags (the loss section's `--loss P`; none here).
pub fn catch_up(
    port: u16,
    history: &[u8],
    messages: usize,
    server_extra: &[&str],
    client_extra: &[String],
) -> Result<CatchUp, String> {
    let root = tempfile::Builder::new()
        .prefix("mcast-bench-catchup-")
        .tempdir()
        .map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let server_dir = root.path().join("server");
    std::fs::create_dir_all(&server_dir).map_err(|e| e.to_string())?;
    std::fs::write(server_dir.join("replica_server.jsonl"), history)
        .map_err(|e| format!("cannot write the history: {e}"))?;
    let spawned = Instant::now();
    let server = Proc::server(port, &server_dir, server_extra);
    let deadline = spawned + Duration::from_secs(60);
    if !server.watch.wait_for(deadline, |s| !s.notices.is_empty()) {
        return Err(format!("server did not start: {}", server.stderr_tail()));
    }
    let ready = server.watch.lock().notices[0].0;
    let client_spawned = Instant::now();
    let client = Proc::client_with(port, &root.path().join("late"), "late", client_extra);
    let deadline = Instant::now() + Duration::from_secs(120);
    if !client
        .watch
        .wait_for(deadline, |s| s.msgs.len() >= messages)
    {
        return Err(format!(
            "the late client delivered {} of {messages} within 120 s",
            client.watch.delivered()
        ));
    }
    let since = |t: Instant| t.saturating_duration_since(client_spawned).as_secs_f64();
    let (first, last, notices) = {
        let seen = client.watch.lock();
        if let Some(e) = &seen.error {
            return Err(format!("late client: {e}"));
        }
        let notices: Vec<(f64, String)> = seen
            .notices
            .iter()
            .take(12)
            .map(|(t, text)| (since(*t), text.clone()))
            .collect();
        (seen.msgs[0].1, seen.msgs[messages - 1].1, notices)
    };
    let join_s = notices
        .iter()
        .find(|(_, t)| says_joined(t))
        .map_or(f64::NAN, |n| n.0);
    let client_rss_mib = rss_mib(client.pid()).unwrap_or(0.0);
    let server_rss_mib = rss_mib(server.pid()).unwrap_or(0.0);
    if client.replica()? != history {
        let _ = root.keep();
        return Err("the late client's replica differs from the history".into());
    }
    if server.replica()? != history {
        let _ = root.keep();
        return Err("the server's archive changed".into());
    }
    let client_s = (last - client_spawned).as_secs_f64();
    Ok(CatchUp {
        messages,
        server_start_s: (ready - spawned).as_secs_f64(),
        client_s,
        total_s: (last - spawned).as_secs_f64(),
        join_s,
        first_message_s: since(first),
        msgs_per_s: messages as f64 / client_s,
        transfer_msgs_per_s: (messages - 1) as f64 / (last - first).as_secs_f64().max(1e-9),
        client_rss_mib,
        server_rss_mib,
        notices,
    })
}

pub fn catch_ups(plan: &Plan, t0: Instant, failures: &mut Vec<String>) -> Vec<CatchUp> {
    let mut out = Vec::new();
    let mut port = 400;
    for &(messages, repeats) in &plan.catchup {
        let history = history_file(messages);
        for r in 0..repeats {
            port += 1;
            match catch_up(plan.port(port), &history, messages, &[], &[]) {
                Ok(c) => {
                    progress(
                        t0,
                        &format!(
                            "catch-up {messages}: {:.0} msgs/s, {:.2} s counting the server's \
                             start, client RSS {:.1} MiB",
                            c.msgs_per_s, c.total_s, c.client_rss_mib
                        ),
                    );
                    out.push(c);
                }
                Err(e) => failures.push(format!("catch-up {messages} run {r}: {e}")),
            }
        }
    }
    out
}
