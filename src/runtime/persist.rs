//! The checkpoint thread and the client's accepted lines: a checkpoint soon after it is asked
//! for (at most one every [`CHECKPOINT_SPACING`]) and a durable one every
//! `--checkpoint-interval`; typed lines go to the outbox journal and into the core in one
//! step, so every checkpoint sees each line either in the outbox or past the journal mark, and
//! ask for a checkpoint once the journal is long ([`CHECKPOINT_JOURNAL_BYTES`]).
//!
//! No protocol decisions and no network here.

use super::{lock, wall_ms, Machine, Node};
use crate::checkpoint::{self, Checkpoint, CHECKPOINT_VERSION};
use crate::protocol::types::Pending;
use crate::store::journal::Journal;
use crate::store::StorageError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Least time between two checkpoints written on request: a stream of accepted lines costs
/// a few checkpoint writes a second, not one each (each line is on disk in the journal).
pub const CHECKPOINT_SPACING: Duration = Duration::from_millis(100);

/// A typed batch asks for a checkpoint only once the outbox journal has grown this long. The
/// journal holds every accepted line on disk already; a checkpoint only lets it start over.
/// So a steady stream of typed lines costs a checkpoint per 64 KiB of journal, not one every
/// [`CHECKPOINT_SPACING`] (each a file written and renamed in the middle of the traffic).
pub const CHECKPOINT_JOURNAL_BYTES: u64 = 64 << 10;

/// How soon a failed checkpoint is tried again.
pub const CHECKPOINT_RETRY: Duration = Duration::from_secs(1);

/// Most time between two checkpoints written on request.
const MAX_CHECKPOINT_SPACING: Duration = Duration::from_secs(2);

/// How long to wait after a checkpoint written on request that took `took`: at least
/// [`CHECKPOINT_SPACING`], and long enough that writing takes at most about 1 % of the time.
/// A checkpoint holds the whole outbox, which a piped flood fills to thousands of lines; every
/// one of them is in the journal already, so waiting longer costs only a longer journal.
fn spacing_after(took: Duration) -> Duration {
    (took * 100).clamp(CHECKPOINT_SPACING, MAX_CHECKPOINT_SPACING)
}

impl<M: Machine> Node<M> {
    /// Asks the checkpoint thread for a checkpoint now.
    pub fn request_checkpoint(&self) {
        let (flag, cv) = &self.checkpoint_due;
        *lock(flag) = true;
        cv.notify_one();
    }

    /// Writes a checkpoint when asked (at most one every [`CHECKPOINT_SPACING`] or more, see
    /// [`spacing_after`], so a burst of requests costs one write) and a durable one every
    /// checkpoint interval. A failed one leaves the previous checkpoint as it was, and a
    /// durable one is tried again after [`CHECKPOINT_RETRY`].
    pub(super) fn checkpoint_loop(self: Arc<Self>) {
        let interval = self.info.checkpoint_interval;
        let mut next_durable = Instant::now() + interval;
        let mut failing = false;
        while !self.is_stopped() {
            let asked = self.wait_checkpoint_request(next_durable);
            let durable = Instant::now() >= next_durable;
            if durable {
                next_durable = Instant::now() + interval;
            }
            let started = Instant::now();
            match self.write_checkpoint(durable) {
                Ok(()) if failing => {
                    failing = false;
                    log::warn!("checkpoint written again");
                }
                Ok(()) => {}
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        log::warn!(
                            "checkpoint failed (the previous one stays; retrying every {}s): {e}",
                            CHECKPOINT_RETRY.as_secs()
                        );
                    }
                    next_durable = next_durable.min(Instant::now() + CHECKPOINT_RETRY);
                }
            }
            if asked && !durable {
                std::thread::sleep(spacing_after(started.elapsed()));
            }
        }
    }

    /// Sleeps until a checkpoint is asked for or `until`; returns whether one was asked for.
    fn wait_checkpoint_request(&self, until: Instant) -> bool {
        let (flag, cv) = &self.checkpoint_due;
        let mut due = lock(flag);
        let now = Instant::now();
        if !*due && until > now {
            due = cv
                .wait_timeout(due, until - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        std::mem::replace(&mut *due, false)
    }

    /// Writes a checkpoint of the current state, atomically (temp file and rename), and lets
    /// the outbox journal start over if the checkpoint holds all of it. With `durable`, also
    /// fsyncs it, after the writer lock is released, so nothing waits for the fsync. With
    /// `--durability fsync`, every checkpoint is fsynced, and before the journal drops the
    /// lines it covers, so a power loss never takes a line from both.
    pub fn write_checkpoint(&self, durable: bool) -> Result<(), StorageError> {
        let path = self.info.identity.checkpoint_path(&self.info.data_dir);
        let syncs = self.info.durability.syncs();
        {
            let _writer = lock(&self.checkpoint_writer);
            let cp = self.snapshot();
            checkpoint::save_unsynced(&path, &cp)?;
            if syncs {
                checkpoint::sync(&path)?;
            }
            if let (Some(mark), Some(journal)) = (cp.journal, lock(&self.journal).as_mut()) {
                if let Err(e) = journal.start_over(mark) {
                    log::warn!("the outbox journal keeps its lines for now: {e}");
                }
            }
        }
        if durable && !syncs {
            checkpoint::sync(&path)?;
        }
        Ok(())
    }

    /// The checkpoint of this instant: core state, replica length and journal mark, taken
    /// under their locks together.
    fn snapshot(&self) -> Checkpoint {
        let storage = lock(&self.storage);
        let journal = lock(&self.journal);
        let (view, delivered, outbox) = lock(&self.core).snapshot();
        Checkpoint {
            version: CHECKPOINT_VERSION,
            node: self.info.id,
            name: self.info.name.clone(),
            view,
            delivered,
            replica_len_bytes: storage.replica.len_bytes(),
            outbox,
            journal: journal.as_ref().map(Journal::mark),
            server_id: self.info.server_id,
            saved_at_ms: wall_ms(),
        }
    }

    /// Appends typed `lines` to the outbox journal, then hands them to `then` (which submits
    /// them to the core) under the same lock, so no checkpoint falls between the two; then
    /// asks for a checkpoint if the journal is long ([`CHECKPOINT_JOURNAL_BYTES`]). When this
    /// returns `Ok`, the lines are accepted (G2).
    pub fn accept_lines(
        &self,
        lines: Vec<Pending>,
        then: impl FnOnce(&mut M, Instant, Vec<Pending>),
    ) -> Result<(), StorageError> {
        self.phases
            .typed(lines.iter().map(|l| l.id), Instant::now());
        let long = {
            let mut journal = lock(&self.journal);
            let journal = journal.as_mut().ok_or_else(|| {
                StorageError::io(
                    &self.info.data_dir,
                    std::io::Error::other("this node has no outbox journal"),
                )
            })?;
            journal.append(&lines)?;
            then(&mut lock(&self.core), Instant::now(), lines);
            journal.mark().bytes >= CHECKPOINT_JOURNAL_BYTES
        };
        self.perform_here();
        if long {
            self.request_checkpoint();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_on_request_take_about_one_percent_of_the_time() {
        let ms = Duration::from_millis;
        assert_eq!(spacing_after(Duration::from_micros(50)), CHECKPOINT_SPACING);
        assert_eq!(spacing_after(ms(3)), ms(300));
        assert_eq!(spacing_after(ms(500)), MAX_CHECKPOINT_SPACING);
    }
}
