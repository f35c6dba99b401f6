//! Log records on a terminal: a client on a terminal diverts warnings and errors from its
//! start; once its line editor owns the screen they show as `* ` notices above the prompt
//! instead of tearing it on stderr, and any that are left when it stops (or that came before
//! a start failed) go to stderr then. Everywhere else (no terminal, the server, `RUST_LOG`
//! set to ask for logs) records go to stderr as env_logger formats them.
//!
//! It only routes records: it must not print itself (the client's printer does, on its own
//! thread) and must never block the thread that logs.

use log::{Level, Log, Metadata, Record};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, OnceLock};

/// Where diverted records go, and the end they come out of until the editor takes it.
#[derive(Default)]
struct Diversion {
    tx: Option<Sender<String>>,
    rx: Option<Receiver<String>>,
}

static NOTICES: OnceLock<Mutex<Diversion>> = OnceLock::new();

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
                slot.tx.as_ref()?.send(record.args().to_string()).ok()
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

/// From now on, warnings and errors wait for [`take_notices`] instead of going to stderr
/// (unless `RUST_LOG` is set: whoever set it asked for the log).
pub fn divert() {
    if std::env::var_os("RUST_LOG").is_some() {
        return;
    }
    let (tx, rx) = mpsc::channel();
    if let Ok(mut slot) = NOTICES.get_or_init(Mutex::default).lock() {
        *slot = Diversion {
            tx: Some(tx),
            rx: Some(rx),
        };
    }
}

/// The diverted records, for the editor to show as notices; `None` when nothing is diverted.
pub fn take_notices() -> Option<Receiver<String>> {
    NOTICES.get()?.lock().ok()?.rx.take()
}

/// Records go to stderr again; those diverted that nobody took are written there now.
pub fn stop_diverting() {
    let Some(Ok(mut slot)) = NOTICES.get().map(Mutex::lock) else {
        return;
    };
    slot.tx = None;
    if let Some(rx) = slot.rx.take() {
        for text in rx.try_iter() {
            eprintln!("warning: {text}");
        }
    }
}
