//! mcast-chat: a group chat over UDP multicast. A token ring gives mutual exclusion and, since
//! the token carries the sequence counter, one total order; every node keeps a replica of the
//! whole history; a server coordinates membership and recovery and archives everything.
//!
//! # Layout
//! - [`types`]: the vocabulary (`Seq`, `Epoch`, `NodeId`, `ChatRecord`, `View`).
//! - [`wire`]: the datagram format, its limits, and history packing.
//! - [`seal`]: `--key-file`: the key derived from a shared secret; sealing and opening datagrams.
//! - [`token_ring`]: the token and the holder's rules (allocation, safe delivery, requests).
//! - [`order`]: the hold-back queue that delivers strictly by `seq`.
//! - [`member`]: a client's protocol state machine (sans-IO).
//! - [`coordinator`]: the server's protocol state machine (sans-IO).
//! - [`output`]: what a state machine asks its driver to do, in order.
//! - [`replica`], [`checkpoint`], [`journal`]: the files (JSON Lines replica, atomic
//!   checkpoint and lock, the client's outbox journal).
//! - [`net`]: the multicast socket and the simulated network.
//! - [`runtime`]: threads, the `Mutex`, timers; drives a state machine over net and disk.
//! - [`client`], [`server`], [`display`], [`terminal`], [`cli`]: the two programs, their
//!   output and input, and their flags.
//!
//! The state machines never touch the clock, a socket or a file: `tests/simulation.rs` drives
//! them over a simulated network and checks the guarantees of DESIGN.md after every step.

pub mod checkpoint;
pub mod cli;
pub mod client;
pub mod coordinator;
pub mod display;
pub mod journal;
pub mod member;
pub mod net;
pub mod order;
pub mod output;
pub mod replica;
pub mod runtime;
pub mod seal;
pub mod server;
pub mod terminal;
pub mod token_ring;
pub mod types;
pub mod wire;

use std::process::ExitCode;

/// Logs go to stderr; `RUST_LOG` overrides `default_level`.
pub fn init_logging(default_level: &str) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .format_timestamp_millis()
        .init();
}

/// Prints `error: ...` with the cause chain on stderr and gives exit code 1.
pub fn report_error(e: &dyn std::error::Error) -> ExitCode {
    eprintln!("error: {e}");
    let mut source = e.source();
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
    ExitCode::from(1)
}
