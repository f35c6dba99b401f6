//! `server`: coordinates the ring and archives the chat. See `--help`.
//!
//! Thin: parse the flags (setup), run, report the error; the exit codes are in `app::exit`.

use mcast_chat::app::cli::ServerCli;
use mcast_chat::app::{exit, server, setup};
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cfg = match setup::configure::<ServerCli>() {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    // On a terminal the notices and the chat lines tell the story, and the details of each
    // recovery would repeat them; a service's log (stderr elsewhere) keeps them.
    let level = match std::io::stderr().is_terminal() {
        true => "warn",
        false => "info",
    };
    mcast_chat::init_logging(level);
    exit::finish(server::run(cfg))
}
