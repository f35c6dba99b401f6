//! `server`: coordinates the ring and archives the chat. See `--help`.

use clap::Parser;
use mcast_chat::app::cli::ServerCli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = ServerCli::parse();
    mcast_chat::init_logging("info");
    match mcast_chat::app::server::run(cli.into_config()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => mcast_chat::report_error(&e),
    }
}
