//! `client`: chat from stdin to the group. See `--help`.
//!
//! Thin: parse the flags (setup), run, report the error; the exit codes are in `app::exit`.

use mcast_chat::app::cli::ClientCli;
use mcast_chat::app::{client, exit, setup};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cfg = match setup::configure::<ClientCli>() {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    mcast_chat::init_logging("warn");
    exit::finish(client::run(cfg))
}
