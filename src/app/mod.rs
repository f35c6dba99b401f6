//! The two programs: flags, identity and restore, the slash commands, and how each wires a
//! state machine to the runtime.

pub mod cli;
pub mod client;
pub mod server;
