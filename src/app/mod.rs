//! The two programs, `server` and `client`: flags, identity and restore, the slash commands,
//! how each wires a state machine to the runtime, and how each ends (error and exit code).
//!
//! What this module must not do: protocol logic (that is [`crate::protocol`]), or threads,
//! locks and timers of its own beyond the client's stdin reader (that is [`crate::runtime`]).

pub mod cli;
pub mod client;
pub mod commands;
pub mod error;
pub mod exit;
pub mod identity;
pub mod input;
pub mod restore;
pub mod server;
pub mod setup;
