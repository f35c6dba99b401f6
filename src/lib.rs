//! mcast-chat: a group chat over UDP multicast. A token ring gives mutual exclusion and, since
//! the token carries the sequence counter, one total order; every node keeps a replica of the
//! whole history; a server coordinates membership and recovery and archives everything.
//!
//! # Layout
//! Dependencies point down the list; nothing points up.
//! - [`app`]: the two programs (`server`, `client`): flags, identity, restore, stdin and
//!   slash commands, and how each ends (one error type per program, exit codes in one place).
//! - [`ui`]: the display (text or JSON) and the terminal line editor.
//! - [`runtime`]: threads, the `Mutex`, timers and shutdown; drives a state machine over the
//!   network and the disk, performing its outputs in order.
//! - [`replica`], [`checkpoint`], [`store`]: the files: the JSON Lines replica, the atomic
//!   checkpoint, and the rest (file names, lock, outbox journal, one error type).
//! - [`net`]: the multicast socket, the simulated network, sealing with `--key-file`.
//! - [`protocol`]: pure, no I/O: the vocabulary ([`protocol::types`]), the limits, the
//!   datagram format, the hold-back queue, the token and the holder's rules ([`token_ring`]),
//!   and the two state machines, a client's ([`protocol::member`]) and the server's
//!   ([`protocol::coordinator`]).
//!
//! `tests/layout.rs` checks that the dependencies follow this order.
//!
//! The state machines never touch the clock, a socket or a file: `tests/simulation.rs` drives
//! them over a simulated network and checks the guarantees of DESIGN.md after every step.

pub mod app;
pub mod checkpoint;
pub mod net;
pub mod protocol;
pub mod replica;
pub mod runtime;
pub mod store;
pub use protocol::token_ring;
pub mod ui;

/// Logs go to stderr (a client's line editor may divert warnings to notices, see
/// [`ui::log_notices`]); `RUST_LOG` overrides `default_level`.
pub fn init_logging(default_level: &str) {
    ui::log_notices::init(default_level);
}

/// Prints `error: ...` on stderr, then `  caused by: ...` for each cause in the chain that
/// the line above does not already show. Errors here put the cause's text in their own
/// one-line message (users and tests read that line) and also return the cause from
/// `source()` (code may inspect it); printing it again would only repeat it.
///
/// The exit status is not decided here but in [`app::exit`].
pub fn report_error(e: &dyn std::error::Error) {
    for line in error_lines(e) {
        eprintln!("{line}");
    }
}

/// The lines [`report_error`] prints.
fn error_lines(e: &dyn std::error::Error) -> Vec<String> {
    let mut shown = e.to_string();
    let mut lines = vec![format!("error: {shown}")];
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !shown.contains(&text) {
            lines.push(format!("  caused by: {text}"));
            shown = text;
        }
        source = cause.source();
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    /// An error with context around a cause, printing the cause or not.
    #[derive(Debug)]
    struct Context {
        inline: bool,
        cause: io::Error,
    }

    impl std::fmt::Display for Context {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self.inline {
                true => write!(f, "cannot start threads: {}", self.cause),
                false => write!(f, "cannot start threads"),
            }
        }
    }

    impl std::error::Error for Context {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.cause)
        }
    }

    #[test]
    fn a_cause_is_printed_once() {
        let e = |inline| Context {
            inline,
            cause: io::Error::other("out of threads"),
        };
        assert_eq!(
            error_lines(&e(true)),
            ["error: cannot start threads: out of threads"]
        );
        assert_eq!(
            error_lines(&e(false)),
            ["error: cannot start threads", "  caused by: out of threads"]
        );
    }
}
