//! `server`: coordinates the ring and archives the chat. See `--help`.
//!
//! Thin: parse the flags, run, report the error; the exit codes are in `app::exit`.

use mcast_chat::app::cli::ServerCli;
use mcast_chat::app::{exit, server};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match exit::parse_args::<ServerCli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    mcast_chat::init_logging("info");
    exit::finish(server::run(cli.into_config()))
}
