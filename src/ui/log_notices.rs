//! Log records on a terminal: while a client's line editor owns the screen, a warning or an
//! error goes to the user as a `* ` notice above the prompt instead of tearing it on stderr.
//! Everywhere else (no editor, the server, `RUST_LOG` set to ask for logs) records go to
//! stderr as env_logger formats them.
//!
//! It only routes records: it must not print itself (the client's printer does, on its own
//! thread) and must never block the thread that logs.

use log::{Level, Log, Metadata, Record};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, OnceLock};

/// Where records go as notices while an editor owns the screen.
static NOTICES: OnceLock<Mutex<Option<Sender<String>>>> = OnceLock::new();

/// env_logger's filter and format, with warnings and errors diverted to notices on demand.
struct Router {
    stderr: env_logger::Logger,
}

impl Log for Router {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.stderr.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if !self.stderr.matches(record) {
            return;
        }
        if record.level() <= Level::Warn {
            let diverted = NOTICES.get().and_then(|slot| {
                let slot = slot.lock().ok()?;
                slot.as_ref()?.send(record.args().to_string()).ok()
            });
            if diverted.is_some() {
                return;
            }
        }
        self.stderr.log(record);
    }

    fn flush(&self) {
        self.stderr.flush();
    }
}

/// Installs the logger: `RUST_LOG` overrides `default_level`; records go to stderr until
/// [`divert_to_notices`] is called.
pub fn init(default_level: &str) {
    let stderr =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
            .format_timestamp_millis()
            .build();
    let max = stderr.filter();
    if log::set_boxed_logger(Box::new(Router { stderr })).is_ok() {
        log::set_max_level(max);
    }
}

/// From now on, warnings and errors come out of the returned receiver instead of stderr
/// (unless `RUST_LOG` is set: whoever set it asked for the log). `None` when they stay on
/// stderr.
pub fn divert_to_notices() -> Option<Receiver<String>> {
    if std::env::var_os("RUST_LOG").is_some() {
        return None;
    }
    let (tx, rx) = mpsc::channel();
    let slot = NOTICES.get_or_init(|| Mutex::new(None));
    *slot.lock().ok()? = Some(tx);
    Some(rx)
}

/// Records go to stderr again (the editor gave the screen back).
pub fn stop_diverting() {
    if let Some(Ok(mut slot)) = NOTICES.get().map(Mutex::lock) {
        *slot = None;
    }
}
