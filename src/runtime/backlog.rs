//! What a node does when its replica cannot be written (a full, read-only or failing disk):
//! a client stops (after telling the server it leaves, so the ring recovers at once instead of
//! after a token timeout); the server holds the records it could not archive in memory, sends
//! nothing while it holds them, and writes them once the disk takes them again.
//!
//! Sending nothing keeps "persist before you send": every datagram the server would send may
//! depend on the archive (a view's cut, a beacon's high-water mark, history), so while the
//! archive is behind, the group sees the server as silent, as if it were down (the ring keeps
//! chatting), never as one that announces what it does not hold.
//!
//! No protocol decisions here, and no socket: the io thread asks and acts.

use crate::protocol::types::{ChatRecord, Seq};
use crate::protocol::wire::Msg;
use crate::replica::Replica;
use crate::store::StorageError;
use std::time::{Duration, Instant};

/// Most records the server holds in memory; past it, it stops with the error (the ring holds
/// every record, and a restart catches up through reconciliation).
pub const MAX_HELD_RECORDS: usize = 100_000;

/// How often a held backlog is offered to the disk again.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// What the io thread does when the replica cannot be written.
#[derive(Clone, Debug)]
pub enum OnAppendFailure {
    /// Stop the node with the error, after sending `farewell` (a client's Leave) if any.
    Stop {
        /// Tells the server this node is gone, so it recovers the ring at once.
        farewell: Option<Msg>,
    },
    /// Hold the records in memory, send nothing, retry every [`RETRY_EVERY`] (the server).
    Hold,
}

/// Records delivered but not yet in the replica, in seq order, continuing it.
#[derive(Debug, Default)]
pub struct Backlog {
    records: Vec<ChatRecord>,
    /// When to offer them to the disk again.
    retry_at: Option<Instant>,
    /// Datagrams not sent while holding.
    pub withheld: u64,
}

/// What [`Backlog::retry`] did.
pub enum Retry {
    /// Nothing held, or not due yet.
    Idle,
    /// The held records are in the replica now: how many, up to which seq.
    Written(usize, Seq),
    /// Still failing.
    Failed(StorageError),
}

impl Backlog {
    /// Whether records are held (and so nothing may be sent).
    pub fn is_holding(&self) -> bool {
        !self.records.is_empty()
    }

    /// Holds `records` after the ones held already; the error when that is too many.
    pub fn hold(
        &mut self,
        records: Vec<ChatRecord>,
        now: Instant,
        why: StorageError,
    ) -> Result<(), StorageError> {
        if self.records.len() + records.len() > MAX_HELD_RECORDS {
            return Err(why);
        }
        self.records.extend(records);
        self.retry_at.get_or_insert(now + RETRY_EVERY);
        Ok(())
    }

    /// When held records are due for another try, appends them (and syncs them with
    /// `sync`); on success nothing is held any more.
    pub fn retry(&mut self, replica: &mut Replica, sync: bool, now: Instant) -> Retry {
        if self.retry_at.is_none_or(|at| now < at) || self.records.is_empty() {
            return Retry::Idle;
        }
        let written =
            replica
                .append(&self.records)
                .and_then(|()| if sync { replica.sync() } else { Ok(()) });
        match written {
            Ok(()) => {
                let n = self.records.len();
                self.records.clear();
                self.retry_at = None;
                Retry::Written(n, replica.last_seq())
            }
            Err(e) => {
                self.retry_at = Some(now + RETRY_EVERY);
                Retry::Failed(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::tests::record;
    use std::fs;
    use std::io;

    #[test]
    fn held_records_go_to_the_replica_in_order_once_the_disk_takes_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replica_server.jsonl");
        let (mut replica, _) = Replica::open(&path).unwrap();
        replica.append(&[record(1)]).unwrap();
        let full = || StorageError::io(&path, io::Error::from(io::ErrorKind::StorageFull));
        let t0 = Instant::now();
        let mut backlog = Backlog::default();
        backlog
            .hold(vec![record(2), record(3)], t0, full())
            .unwrap();
        backlog.hold(vec![record(4)], t0, full()).unwrap();
        assert!(backlog.is_holding());
        assert!(matches!(
            backlog.retry(&mut replica, false, t0),
            Retry::Idle
        ));
        let later = t0 + RETRY_EVERY;
        assert!(matches!(
            backlog.retry(&mut replica, true, later),
            Retry::Written(3, Seq(4))
        ));
        assert!(!backlog.is_holding());
        let lines = fs::read_to_string(&path).unwrap();
        assert_eq!(lines.lines().count(), 4);
    }

    #[test]
    fn too_many_held_records_give_the_error_back() {
        let path = std::path::Path::new("/d/replica_server.jsonl");
        let full = || StorageError::io(path, io::Error::from(io::ErrorKind::StorageFull));
        let mut backlog = Backlog::default();
        let now = Instant::now();
        let many: Vec<ChatRecord> = (1..=MAX_HELD_RECORDS as u64).map(record).collect();
        backlog.hold(many, now, full()).unwrap();
        let err = backlog.hold(vec![record(0)], now, full()).unwrap_err();
        assert!(err.to_string().contains("replica_server.jsonl"), "{err}");
        assert_eq!(backlog.records.len(), MAX_HELD_RECORDS);
    }
}
