//! `client`: chat from stdin to the group. See `--help`.
//!
//! Thin: parse the flags, run, report the error; the exit codes are in `app::exit`.

use mcast_chat::app::cli::ClientCli;
use mcast_chat::app::{client, exit};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match exit::parse_args::<ClientCli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    mcast_chat::init_logging("warn");
    exit::finish(client::run(cli.into_config()))
}
