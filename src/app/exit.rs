//! How each program ends: the one place that maps what happened to a process exit status
//! (DESIGN §5): 0 when it did what was asked, 2 for a bad command line (as clap does), 1 for
//! every other failure.
//!
//! What this module must not do: word messages (the errors' `Display` does) or exit the
//! process itself; `main` returns the code, so destructors and stdout flushing still run.

use super::error::{ClientError, ServerError};
use std::error::Error;
use std::process;

/// The exit statuses of both programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// 0: a clean leave or stop, `--help`, `--version`.
    Success,
    /// 1: the program could not run, or stopped with a failure; its message says which.
    Failure,
    /// 2: the command line is wrong; clap has printed why.
    Usage,
}

impl ExitCode {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Failure => 1,
            ExitCode::Usage => 2,
        }
    }
}

impl From<ExitCode> for process::ExitCode {
    fn from(code: ExitCode) -> Self {
        process::ExitCode::from(code.code())
    }
}

/// An error a program ends with, and the exit status of its kind.
pub trait ExitStatus: Error {
    /// The status to exit with after printing this error.
    fn exit_code(&self) -> ExitCode;
}

// Every variant is listed, with no catch-all: a new kind of failure must choose its code here.
// All are 1: scripts tell the failures apart by the message, and 2 is clap's alone.
impl ExitStatus for ClientError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ClientError::Key(_)
            | ClientError::Identity(_)
            | ClientError::Storage(_)
            | ClientError::Net(_)
            | ClientError::Spawn { .. }
            | ClientError::Signals(_)
            | ClientError::JoinTimeout { .. }
            | ClientError::Refused { .. } => ExitCode::Failure,
        }
    }
}

impl ExitStatus for ServerError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ServerError::Key(_)
            | ServerError::Storage(_)
            | ServerError::Net(_)
            | ServerError::Spawn { .. }
            | ServerError::Signals(_)
            | ServerError::AnotherChat { .. } => ExitCode::Failure,
        }
    }
}

/// The status after clap stopped parsing: `--help` and `--version` succeed, anything else is
/// a usage error (the codes clap's own `exit` would use).
pub fn of_clap(e: &clap::Error) -> ExitCode {
    if e.use_stderr() {
        ExitCode::Usage
    } else {
        ExitCode::Success
    }
}

/// The command line of a program, or, when clap stopped (help, version, a bad flag), its
/// message printed and the status to exit with.
pub fn parse_args<C: clap::Parser>() -> Result<C, process::ExitCode> {
    C::try_parse().map_err(|e| {
        // As clap's `exit`: a closed stdout or stderr is no reason to fail differently.
        let _ = e.print();
        of_clap(&e).into()
    })
}

/// Ends a program: on failure prints `error: ...` with its causes, and gives the status.
pub fn finish<E: ExitStatus>(result: Result<(), E>) -> process::ExitCode {
    match result {
        Ok(()) => ExitCode::Success.into(),
        Err(e) => {
            crate::report_error(&e);
            e.exit_code().into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::cli::{ClientCli, ServerCli};
    use clap::Parser;

    #[test]
    fn clap_outcomes_keep_the_codes_clap_gives_them() {
        let cases: [(&[&str], ExitCode); 5] = [
            (&["client", "--port", "x"], ExitCode::Usage),
            (&["client", "--no-such-flag"], ExitCode::Usage),
            (&["client", "--resume", "no\u{7}pe"], ExitCode::Usage),
            (&["client", "--help"], ExitCode::Success),
            (&["client", "--version"], ExitCode::Success),
        ];
        for (argv, want) in cases {
            let e = ClientCli::try_parse_from(argv).expect_err("clap stops");
            assert_eq!(of_clap(&e), want, "{argv:?}");
            assert_eq!(i32::from(want.code()), e.exit_code(), "{argv:?}");
        }
        let e = ServerCli::try_parse_from(["server", "--loss", "2"]).expect_err("bad");
        assert_eq!(of_clap(&e), ExitCode::Usage);
    }

    #[test]
    fn every_runtime_failure_exits_1() {
        let io = || std::io::Error::other("x");
        let client = ClientError::Refused {
            reason: "full".into(),
        };
        assert_eq!(client.exit_code().code(), 1);
        let server = ServerError::Signals(io());
        assert_eq!(server.exit_code().code(), 1);
        assert_eq!(ExitCode::Usage.code(), 2);
        assert_eq!(ExitCode::Success.code(), 0);
    }
}
