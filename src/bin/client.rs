//! `client`: chat from stdin to the group. See `--help`.

use clap::Parser;
use mcast_chat::app::cli::ClientCli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = ClientCli::parse();
    mcast_chat::init_logging("warn");
    match mcast_chat::app::client::run(cli.into_config()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => mcast_chat::report_error(&e),
    }
}
