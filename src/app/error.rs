//! The error of each program: [`ClientError`] for `client`, [`ServerError`] for `server`.
//! Every variant keeps the typed error it came from; nothing is flattened into a string.
//!
//! How `Display` and `source()` cooperate: each variant's `Display` is the whole one-line
//! message that users and tests read after `error: `, so it must name the cause itself.
//! - A variant that only carries a lower layer's error (`Storage`, `Net`, `Key`, `Identity`)
//!   is transparent: its `Display` and `source()` are the inner error's, so the inner
//!   message is not printed twice.
//! - A variant that adds context to an OS error (`Spawn`, `Signals`) prints the context and
//!   the OS error on one line, and also returns the OS error from `source()` for code that
//!   inspects it; [`crate::report_error`] skips a cause that the line above already shows.
//!
//! What this module must not do: decide exit codes (that is [`super::exit`]), or do I/O.

use super::identity::IdentityError;
use crate::net::seal::KeyError;
use crate::net::{NetConfig, NetError};
use crate::protocol::types::count;
use crate::runtime::datagram::DropStats;
use crate::store::StorageError;
use std::error::Error;
use std::fmt;
use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Why the client could not run, or stopped with a failure.
#[derive(Debug)]
pub enum ClientError {
    /// The `--key-file` cannot be used.
    Key(KeyError),
    /// `--resume` could not pick an identity.
    Identity(IdentityError),
    /// A file in the data dir could not be used, at start or while running.
    Storage(StorageError),
    /// The multicast socket could not be set up.
    Net(NetError),
    /// A thread could not be started.
    Spawn {
        /// Which, as the message names it ("threads", "the input thread").
        thread: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// SIGINT and SIGTERM could not be hooked.
    Signals(io::Error),
    /// No server answered the join.
    JoinTimeout {
        /// Group, port and interface the client tried: the server must use the same.
        net: Box<NetConfig>,
        /// `--join-timeout`.
        after: Duration,
        /// Datagrams from the group that could not be read meanwhile: a hint that the
        /// server is there but uses another key (or none).
        unreadable: Unreadable,
        /// A ring was heard meanwhile: multicast works, the server is down.
        ring_heard: bool,
    },
    /// The server refused the join.
    Refused {
        /// The server's reason, as it sent it.
        reason: String,
    },
}

/// Why the server could not run, or stopped with a failure.
#[derive(Debug)]
pub enum ServerError {
    /// The `--key-file` cannot be used.
    Key(KeyError),
    /// A file in the data dir could not be used, at start or while running.
    Storage(StorageError),
    /// The multicast socket could not be set up.
    Net(NetError),
    /// A thread could not be started.
    Spawn {
        /// Which, as the message names it ("threads", "the reconciliation thread").
        thread: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// SIGINT and SIGTERM could not be hooked.
    Signals(io::Error),
    /// Another chat, with a history of its own, runs on this group and port.
    AnotherChat {
        /// The group, port and interface both use.
        net: Box<NetConfig>,
    },
}

/// Datagrams dropped while joining, and whether this client has a key: together they tell a
/// missing server from one that speaks with another key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unreadable {
    /// Did not open with our key (plaintext, or another key).
    pub unauthenticated: u64,
    /// Did not decode (without a key: sealed datagrams look like this).
    pub malformed: u64,
    /// Whether this client runs with `--key-file`.
    pub keyed: bool,
}

impl Unreadable {
    /// The counters as they are now.
    pub fn from_drops(drops: &DropStats, keyed: bool) -> Unreadable {
        Unreadable {
            unauthenticated: drops.unauthenticated.load(Ordering::Relaxed),
            malformed: drops.malformed.load(Ordering::Relaxed),
            keyed,
        }
    }

    /// What to add to the "no server answered" message, if anything.
    fn hint(&self) -> Option<String> {
        if self.unauthenticated > 0 {
            return Some(format!(
                "{} from the group failed authentication: is --key-file the same as the \
                 server's?",
                count(self.unauthenticated as usize, "datagram")
            ));
        }
        if self.malformed > 0 && !self.keyed {
            return Some(format!(
                "{} from the group could not be read: does the server use a --key-file?",
                count(self.malformed as usize, "datagram")
            ));
        }
        None
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Key(e) => e.fmt(f),
            ClientError::Identity(e) => e.fmt(f),
            ClientError::Storage(e) => e.fmt(f),
            ClientError::Net(e) => e.fmt(f),
            ClientError::Spawn { thread, source } => spawn_failed(f, thread, source),
            ClientError::Signals(e) => signals_failed(f, e),
            ClientError::JoinTimeout {
                net,
                after,
                unreadable,
                ring_heard,
            } => {
                let after = humantime::format_duration(*after);
                if let Some(unicast) = &net.unicast {
                    write!(
                        f,
                        "no server answered within {after}: tried --peer {} (unicast via {})",
                        unicast.named.join(", --peer "),
                        net.interface
                    )?;
                    return match unreadable.hint() {
                        Some(hint) => write!(f, "; {hint}"),
                        None => write!(
                            f,
                            "; is a server running there with --peer (a server in multicast \
                             mode does not listen for unicast), and does a firewall let UDP \
                             through to its port and back to this one?"
                        ),
                    };
                }
                write!(f, "no server answered on {net} within {after}")?;
                match unreadable.hint() {
                    Some(hint) => write!(f, "; {hint}"),
                    None if *ring_heard => write!(
                        f,
                        "; a ring is chatting on it, so multicast works: the server is down; \
                         start `server` with the same --group/--port/--interface"
                    ),
                    None => write!(
                        f,
                        "; start `server` with the same --group/--port/--interface (and check \
                         that multicast reaches this host)"
                    ),
                }
            }
            ClientError::Refused { reason } => {
                write!(f, "the server refused the join: {reason}")
            }
        }
    }
}

impl Error for ClientError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ClientError::Key(e) => e.source(),
            ClientError::Identity(e) => e.source(),
            ClientError::Storage(e) => e.source(),
            ClientError::Net(e) => e.source(),
            ClientError::Spawn { source, .. } => Some(source),
            ClientError::Signals(e) => Some(e),
            ClientError::JoinTimeout { .. } | ClientError::Refused { .. } => None,
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Key(e) => e.fmt(f),
            ServerError::Storage(e) => e.fmt(f),
            ServerError::Net(e) => e.fmt(f),
            ServerError::Spawn { thread, source } => spawn_failed(f, thread, source),
            ServerError::Signals(e) => signals_failed(f, e),
            ServerError::AnotherChat { net } => write!(
                f,
                "another chat, with a history of its own, runs on {net}: the two cannot share \
                 it; use another --port or --group (or --key-file) for one of them, or start \
                 this server with an empty --data-dir to join that chat"
            ),
        }
    }
}

impl Error for ServerError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ServerError::Key(e) => e.source(),
            ServerError::Storage(e) => e.source(),
            ServerError::Net(e) => e.source(),
            ServerError::Spawn { source, .. } => Some(source),
            ServerError::Signals(e) => Some(e),
            ServerError::AnotherChat { .. } => None,
        }
    }
}

fn spawn_failed(f: &mut fmt::Formatter<'_>, thread: &str, source: &io::Error) -> fmt::Result {
    write!(f, "cannot start {thread}: {source}")
}

fn signals_failed(f: &mut fmt::Formatter<'_>, source: &io::Error) -> fmt::Result {
    write!(f, "cannot handle signals: {source}")
}

/// `From` for the variants that wrap another area's error, so `?` converts it.
macro_rules! wraps {
    ($($outer:ident :: $variant:ident ($inner:ty)),* $(,)?) => {
        $(impl From<$inner> for $outer {
            fn from(e: $inner) -> Self {
                $outer::$variant(e)
            }
        })*
    };
}

wraps!(
    ClientError::Key(KeyError),
    ClientError::Identity(IdentityError),
    ClientError::Storage(StorageError),
    ClientError::Net(NetError),
    ServerError::Key(KeyError),
    ServerError::Storage(StorageError),
    ServerError::Net(NetError),
);

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> NetConfig {
        NetConfig::loopback(5007)
    }

    /// What `report_error` prints, one entry per line.
    fn chain(e: &dyn Error) -> Vec<String> {
        let mut lines = vec![e.to_string()];
        let mut source = e.source();
        while let Some(cause) = source {
            lines.push(cause.to_string());
            source = cause.source();
        }
        lines
    }

    #[test]
    fn a_wrapped_storage_error_is_transparent() {
        let io = io::Error::new(io::ErrorKind::NotFound, "gone");
        let inner = StorageError::io(std::path::Path::new("/d/replica.jsonl"), io);
        let text = inner.to_string();
        let e = ClientError::from(inner);
        assert_eq!(e.to_string(), text);
        // The cause is the OS error (not the StorageError again), which the line shows.
        assert_eq!(chain(&e), [text.clone(), "gone".to_string()]);
        assert!(text.ends_with(": gone"));
    }

    #[test]
    fn a_spawn_failure_keeps_its_os_error_as_the_source() {
        let e = ServerError::Spawn {
            thread: "the reconciliation thread",
            source: io::Error::other("no threads left"),
        };
        assert_eq!(
            e.to_string(),
            "cannot start the reconciliation thread: no threads left"
        );
        let source = e.source().expect("has a source");
        assert!(source.downcast_ref::<io::Error>().is_some());
    }

    #[test]
    fn join_timeout_names_the_group_and_gives_the_hint_that_fits() {
        let timeout = |unreadable| ClientError::JoinTimeout {
            net: Box::new(net()),
            after: Duration::from_secs(2),
            unreadable,
            ring_heard: false,
        };
        let plain = timeout(Unreadable::default()).to_string();
        assert!(
            plain.starts_with(
                "no server answered on 224.1.1.1:5007 via 127.0.0.1 within 2s; start `server`"
            ),
            "{plain}"
        );
        let keyless = timeout(Unreadable {
            malformed: 1,
            ..Unreadable::default()
        });
        assert!(keyless.to_string().ends_with(
            "1 datagram from the group could not be read: does the server use a --key-file?"
        ));
        let other_key = timeout(Unreadable {
            unauthenticated: 2,
            keyed: true,
            ..Unreadable::default()
        });
        assert!(other_key
            .to_string()
            .contains("2 datagrams from the group failed"));
        assert!(other_key.source().is_none());
        let ring = ClientError::JoinTimeout {
            net: Box::new(net()),
            after: Duration::from_secs(2),
            unreadable: Unreadable::default(),
            ring_heard: true,
        };
        assert!(
            ring.to_string()
                .contains("multicast works: the server is down"),
            "{ring}"
        );
    }

    #[test]
    fn a_unicast_join_timeout_names_every_peer_tried() {
        let mut net = net();
        net.unicast = Some(crate::net::UnicastConfig {
            peers: vec!["10.0.0.1:5007".parse().expect("addr")],
            named: vec!["10.0.0.1:5007".into(), "chat.example:5007".into()],
            port: 0,
        });
        let e = ClientError::JoinTimeout {
            net: Box::new(net),
            after: Duration::from_secs(2),
            unreadable: Unreadable::default(),
            ring_heard: false,
        };
        let text = e.to_string();
        assert!(
            text.starts_with(
                "no server answered within 2s: tried --peer 10.0.0.1:5007, --peer \
                 chat.example:5007 (unicast via 127.0.0.1); is a server running there with --peer"
            ),
            "{text}"
        );
    }

    #[test]
    fn another_chat_names_the_group_and_the_ways_out() {
        let e = ServerError::AnotherChat {
            net: Box::new(net()),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("another chat, with a history of its own, runs on 224.1.1.1:5007"),
            "{text}"
        );
        assert!(text.contains("empty --data-dir"), "{text}");
    }
}
