//! The deterministic simulation harness shared by `simulation.rs` and `replay.rs`: the real
//! server and client state machines, each a [`node::Node`] whose outputs are performed with the
//! library's `perform`, over a seeded [`net::Network`] in virtual time, watched by an
//! [`oracle::Oracle`] that checks G1 to G3 on every delivery and every `Data` sent.
//!
//! Test support only: no sockets, no files, no wall clock (time is whatever the test jumps it
//! to), and no assertions of a test's own scenario (those stay in the test files).
//!
//! # Layout
//! - `net`: the network (loss, cuts, isolation, duplication, delay), bytes only.
//! - `oracle`: the guarantees, checked as the run goes.
//! - `node`: a core, its disk, and its `Effects`.
//! - `watch`: what the per-step checks ask about every node, kept up to date incrementally.
//! - `world`: nodes, network and oracle together, and the moves every test makes.

// Each test crate uses its own part of the harness.
#![allow(dead_code)]

pub mod net;
pub mod node;
pub mod oracle;
pub mod watch;
pub mod world;

use std::time::Duration;

/// Prints one trace line, stamped with virtual time since the start.
pub fn trace(elapsed: Duration, what: &str) {
    eprintln!("{:>12.6} {what}", elapsed.as_secs_f64());
}
