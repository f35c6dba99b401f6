//! `client`: chat from stdin to the group. See `--help`.
//!
//! Thin: parse the flags (setup), run, report the error; the exit codes are in `app::exit`.

use mcast_chat::app::cli::ClientCli;
use mcast_chat::app::{client, exit, setup};
use mcast_chat::ui::log_notices;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cfg = match setup::configure::<ClientCli>() {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    mcast_chat::init_logging("warn");
    // On a terminal, warnings wait for the prompt and show above it (see `ui::log_notices`).
    if !cfg.json && std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        log_notices::divert();
    }
    let result = client::run(cfg);
    log_notices::stop_diverting();
    exit::finish(result)
}
