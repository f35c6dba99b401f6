//! `server`: coordinates the ring and archives the chat. See `--help`.
//!
//! Thin: parse the flags (setup), run, report the error; the exit codes are in `app::exit`.

use mcast_chat::app::cli::ServerCli;
use mcast_chat::app::{exit, server, setup};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cfg = match setup::configure::<ServerCli>() {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    mcast_chat::init_logging("info");
    exit::finish(server::run(cfg))
}
