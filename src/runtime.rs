//! Drives a protocol state machine over the network and the disk with threads:
//! - **receive**: reads datagrams, opens them (with `--key-file`) and decodes them (outside
//!   any lock), hands them to the core; what fails is logged at debug level and counted in
//!   [`DropStats`];
//! - **io** (the sending worker): runs due timers, drains the core's outputs and performs them
//!   in order: replica appends (group commit), then datagrams (sealed with `--key-file`); it
//!   alone touches the replica for writing, which keeps appends in `seq` order;
//! - **checkpoint**: writes the checkpoint soon after it is asked (a new view, accepted
//!   lines; at most one every [`CHECKPOINT_SPACING`]) and makes it durable (fsync) every
//!   `--checkpoint-interval`.
//!
//! A client's typed lines reach its outbox journal (one append) and then the core, in one
//! step under the journal's lock, so a checkpoint sees each line either in the core's outbox
//! or past its journal mark (G2).
//!
//! The core sits behind a `Mutex` held only around core calls, never across socket or file
//! I/O. Lock order, where more than one is taken: `checkpoint_writer`, then `storage`, then
//! `journal`, then `core` (the journal after the replica, so that typing never waits for a
//! replica write). No protocol decisions here.

use crate::checkpoint::{self, Checkpoint, DirLock, Identity, CHECKPOINT_VERSION};
use crate::coordinator::Coordinator;
use crate::journal::Journal;
use crate::member::MemberCore;
use crate::net::Transport;
use crate::output::{Output, StopReason};
use crate::replica::{Replica, StorageError};
use crate::seal::{Key, SealError};
use crate::types::{ChatRecord, NodeId, Pending, Seq, View};
use crate::wire::{self, DecodeError, Msg};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the driver needs from a state machine (member or coordinator).
pub trait Machine: Send + 'static {
    /// A decoded datagram arrived.
    fn handle_datagram(&mut self, now: Instant, msg: Msg);
    /// Timers may be due.
    fn handle_timeout(&mut self, now: Instant);
    /// The next instant at which timers are due.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next output, in order.
    fn poll_output(&mut self) -> Option<Output>;
    /// Whether outputs are waiting.
    fn has_output(&self) -> bool;
    /// The state a checkpoint records: view, delivered seq, outbox.
    fn snapshot(&self) -> (View, Seq, Vec<Pending>);
}

impl Machine for MemberCore {
    fn handle_datagram(&mut self, now: Instant, msg: Msg) {
        MemberCore::handle_datagram(self, now, msg)
    }
    fn handle_timeout(&mut self, now: Instant) {
        MemberCore::handle_timeout(self, now)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        MemberCore::poll_timeout(self)
    }
    fn poll_output(&mut self) -> Option<Output> {
        MemberCore::poll_output(self)
    }
    fn has_output(&self) -> bool {
        MemberCore::has_output(self)
    }
    fn snapshot(&self) -> (View, Seq, Vec<Pending>) {
        (
            self.view().clone(),
            self.delivered(),
            self.outbox().cloned().collect(),
        )
    }
}

impl Machine for Coordinator {
    fn handle_datagram(&mut self, now: Instant, msg: Msg) {
        Coordinator::handle_datagram(self, now, msg)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Coordinator::handle_timeout(self, now)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Coordinator::poll_timeout(self)
    }
    fn poll_output(&mut self) -> Option<Output> {
        Coordinator::poll_output(self)
    }
    fn has_output(&self) -> bool {
        Coordinator::has_output(self)
    }
    fn snapshot(&self) -> (View, Seq, Vec<Pending>) {
        (self.view().clone(), self.archived(), Vec::new())
    }
}

/// Where delivered messages and notices go (the terminal, or JSON lines).
pub trait Sink: Send + 'static {
    /// A delivered message.
    fn message(&mut self, rec: &ChatRecord);
    /// A notice for the user (shown at once).
    fn notice(&mut self, text: &str);
    /// Shows what `message` buffered; called once per batch of deliveries.
    fn flush(&mut self) {}
}

/// What the io thread is waiting for.
#[derive(Debug, Default)]
struct IoWake {
    /// There is work: run now.
    woken: bool,
    /// While asleep: when it wakes by itself.
    sleeping_until: Option<Instant>,
}

/// Counters of datagrams dropped before they reached the core (G6).
#[derive(Debug, Default)]
pub struct DropStats {
    /// Not JSON of ours: bad bytes, wrong types, unknown kinds (and, without a key, sealed
    /// datagrams).
    pub malformed: AtomicU64,
    /// Larger than the datagram limit.
    pub oversize: AtomicU64,
    /// Another protocol version.
    pub wrong_version: AtomicU64,
    /// Well-formed, with values no honest node sends (absurd counters, overlong names).
    pub out_of_range: AtomicU64,
    /// With a key: did not open (plaintext, another key, altered on the way).
    pub unauthenticated: AtomicU64,
}

/// Why a received datagram was dropped.
#[derive(Debug)]
pub enum Dropped {
    /// It did not decode.
    Decode(DecodeError),
    /// It did not open with our key.
    Seal(SealError),
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dropped::Decode(e) => write!(f, "{e}"),
            Dropped::Seal(e) => write!(f, "{e}"),
        }
    }
}

/// Opens (with a key) and decodes one received datagram. An oversize datagram is dropped
/// before any work is spent on it.
pub fn unwrap_datagram(key: Option<&Key>, bytes: &[u8]) -> Result<Msg, Dropped> {
    if bytes.len() > wire::MAX_DATAGRAM_BYTES {
        return Err(Dropped::Decode(DecodeError::Oversize(bytes.len())));
    }
    match key {
        None => wire::decode(bytes).map_err(Dropped::Decode),
        Some(key) => {
            let plain = key.open(bytes).map_err(Dropped::Seal)?;
            wire::decode(&plain).map_err(Dropped::Decode)
        }
    }
}

/// Encodes one message and seals it with a key: the bytes to send.
pub fn wrap_datagram(key: Option<&Key>, msg: &Msg) -> Result<Vec<u8>, wire::EncodeError> {
    let bytes = wire::encode(msg)?;
    Ok(seal_bytes(key, bytes))
}

fn seal_bytes(key: Option<&Key>, bytes: Vec<u8>) -> Vec<u8> {
    match key {
        Some(key) => key.seal(&bytes),
        None => bytes,
    }
}

impl DropStats {
    /// Counts one dropped datagram under its reason.
    pub fn count(&self, why: &Dropped) {
        let counter = match why {
            Dropped::Decode(DecodeError::Malformed(_)) => &self.malformed,
            Dropped::Decode(DecodeError::Oversize(_)) => &self.oversize,
            Dropped::Decode(DecodeError::WrongVersion(_)) => &self.wrong_version,
            Dropped::Decode(DecodeError::OutOfRange(_)) => &self.out_of_range,
            Dropped::Seal(_) => &self.unauthenticated,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `malformed N, oversize N, wrong version N, out of range N, unauthenticated N`.
    pub fn summary(&self) -> String {
        format!(
            "malformed {}, oversize {}, wrong version {}, out of range {}, unauthenticated {}",
            get(&self.malformed),
            get(&self.oversize),
            get(&self.wrong_version),
            get(&self.out_of_range),
            get(&self.unauthenticated)
        )
    }

    /// Every dropped datagram, whatever the reason.
    pub fn total(&self) -> u64 {
        [
            &self.malformed,
            &self.oversize,
            &self.wrong_version,
            &self.out_of_range,
            &self.unauthenticated,
        ]
        .into_iter()
        .map(get)
        .sum()
    }
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// The node's files: the replica (appended by the io thread only) and where its checkpoint
/// goes.
pub struct Storage {
    /// The replica.
    pub replica: Replica,
    /// Held for the life of the node so no other process shares this identity.
    _lock: DirLock,
}

/// Static facts about the node.
pub struct NodeInfo {
    /// Whose files.
    pub identity: Identity,
    /// Node id.
    pub id: NodeId,
    /// Display name.
    pub name: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Periodic checkpoint interval.
    pub checkpoint_interval: Duration,
    /// `--key-file`: seal every outgoing datagram, open every incoming one.
    pub key: Option<Key>,
    /// The server's id, kept in its checkpoint; `None` for a client.
    pub server_id: Option<u64>,
}

/// Everything the threads share.
pub struct Node<M: Machine> {
    /// The protocol state machine.
    pub core: Mutex<M>,
    /// The replica; its lock also orders appends against checkpoint snapshots.
    pub storage: Mutex<Storage>,
    /// Serialises checkpoint writers, so an older snapshot never overwrites a newer one.
    checkpoint_writer: Mutex<()>,
    /// A client's outbox journal; the server has none.
    journal: Mutex<Option<Journal>>,
    /// Wakes the io thread: there are outputs, a timer moved earlier, or the node stopped.
    wake: (Mutex<IoWake>, Condvar),
    /// Asks the checkpoint thread to write now.
    checkpoint_due: (Mutex<bool>, Condvar),
    /// The multicast socket.
    pub transport: Transport,
    /// Where messages and notices go.
    pub sink: Mutex<Box<dyn Sink>>,
    /// Facts about the node.
    pub info: NodeInfo,
    /// Datagrams dropped before the core.
    pub drops: DropStats,
    stopped: AtomicBool,
    outcome: Mutex<Option<Result<StopReason, String>>>,
    /// Signalled when `outcome` is set.
    done: Condvar,
}

/// Least time between two checkpoints written on request: a stream of accepted lines costs
/// a few checkpoint writes a second, not one each (each line is on disk in the journal).
pub const CHECKPOINT_SPACING: Duration = Duration::from_millis(100);

/// Locks a mutex; a poisoned one means another thread panicked mid-update, and the process
/// cannot continue safely, so this is the one place we give up.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().expect("a thread panicked while holding a lock")
}

/// Milliseconds since the Unix epoch by the wall clock (for `sent_at_ms`, `saved_at_ms`).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl<M: Machine> Node<M> {
    /// Wraps a core with its storage, socket and sink.
    pub fn new(
        core: M,
        storage: Storage,
        transport: Transport,
        sink: Box<dyn Sink>,
        info: NodeInfo,
        journal: Option<Journal>,
    ) -> Arc<Node<M>> {
        Arc::new(Node {
            core: Mutex::new(core),
            storage: Mutex::new(storage),
            checkpoint_writer: Mutex::new(()),
            journal: Mutex::new(journal),
            wake: (Mutex::new(IoWake::default()), Condvar::new()),
            checkpoint_due: (Mutex::new(false), Condvar::new()),
            transport,
            sink: Mutex::new(sink),
            info,
            drops: DropStats::default(),
            stopped: AtomicBool::new(false),
            outcome: Mutex::new(None),
            done: Condvar::new(),
        })
    }

    /// Starts the receive, io and checkpoint threads.
    pub fn spawn_workers(self: &Arc<Self>) -> std::io::Result<()> {
        let node = Arc::clone(self);
        spawn("receive", move || node.receive_loop())?;
        let node = Arc::clone(self);
        spawn("io", move || node.io_loop())?;
        let node = Arc::clone(self);
        spawn("checkpoint", move || node.checkpoint_loop())?;
        Ok(())
    }

    /// Runs `f` on the core, then wakes the io thread to perform what it produced.
    /// Runs `f` on the core, then wakes the io thread if that left it work: outputs, or a
    /// timer earlier than the one it sleeps until. Most datagrams (a token passing between
    /// two other members) leave none, and then cost no second thread switch.
    pub fn with_core<R>(&self, f: impl FnOnce(&mut M, Instant) -> R) -> R {
        let (result, has_output, next) = {
            let mut core = lock(&self.core);
            let result = f(&mut core, Instant::now());
            (result, core.has_output(), core.poll_timeout())
        };
        let (state, cv) = &self.wake;
        let mut state = lock(state);
        let sooner = match (next, state.sleeping_until) {
            (Some(next), Some(until)) => next < until,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if has_output || sooner {
            state.woken = true;
            cv.notify_one();
        }
        result
    }

    /// Wakes the io thread.
    pub fn wake_io(&self) {
        let (state, cv) = &self.wake;
        lock(state).woken = true;
        cv.notify_one();
    }

    /// Blocks until the node stops; returns why.
    pub fn wait(&self) -> Result<StopReason, String> {
        let mut outcome = lock(&self.outcome);
        loop {
            if let Some(outcome) = outcome.clone() {
                return outcome;
            }
            // Its own condvar: sharing the io thread's would steal its wake-ups.
            outcome = self.done.wait(outcome).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Whether the node has stopped.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Stops the node with an outcome; the first outcome wins.
    pub fn finish(&self, outcome: Result<StopReason, String>) {
        let mut slot = lock(&self.outcome);
        if slot.is_none() {
            *slot = Some(outcome);
        }
        self.stopped.store(true, Ordering::SeqCst);
        self.done.notify_all();
        self.wake_io();
    }

    fn receive_loop(self: Arc<Self>) {
        let mut buf = vec![0u8; 65_536];
        while !self.is_stopped() {
            let n = match self
                .transport
                .recv(&mut buf, Some(Duration::from_millis(500)))
            {
                Ok(Some((n, _))) => n,
                Ok(None) => continue,
                Err(e) => {
                    log::warn!("receive failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            match unwrap_datagram(self.info.key.as_ref(), &buf[..n]) {
                Ok(msg) => self.with_core(|core, now| core.handle_datagram(now, msg)),
                Err(why) => self.drop_datagram(n, &why),
            }
        }
    }

    fn drop_datagram(&self, n: usize, why: &Dropped) {
        log::debug!("dropped datagram of {n} bytes: {why}");
        self.drops.count(why);
        if matches!(why, Dropped::Seal(_)) && get(&self.drops.unauthenticated) == 1 {
            log::warn!(
                "dropping datagrams that fail authentication with key file {}: does another \
                 node use another --key-file, or none? (further ones are logged at debug level)",
                self.info
                    .key
                    .as_ref()
                    .map_or_else(String::new, |k| k.path().display().to_string())
            );
        }
    }

    fn io_loop(self: Arc<Self>) {
        while !self.is_stopped() {
            self.wait_for_work();
            let mut storage = lock(&self.storage);
            let outputs = {
                let mut core = lock(&self.core);
                let now = Instant::now();
                if core.poll_timeout().is_some_and(|t| t <= now) {
                    core.handle_timeout(now);
                }
                std::iter::from_fn(|| core.poll_output()).collect::<Vec<_>>()
            };
            if let Err(e) = self.perform(&mut storage, outputs) {
                self.finish(Err(e.to_string()));
            }
        }
    }

    /// Sleeps until woken or until the core's next timer, at most a second. The deadline is
    /// read under the wake lock, so a thread that moves a timer earlier either sees the new
    /// deadline or is seen by this read.
    fn wait_for_work(&self) {
        let (state, cv) = &self.wake;
        let mut state = lock(state);
        if !state.woken {
            let now = Instant::now();
            let max = now + Duration::from_secs(1);
            let until = lock(&self.core).poll_timeout().map_or(max, |d| d.min(max));
            if until > now {
                state.sleeping_until = Some(until);
                state = cv
                    .wait_timeout(state, until - now)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        }
        state.woken = false;
        state.sleeping_until = None;
    }

    /// Performs outputs in order; consecutive deliveries are appended in one write.
    fn perform(&self, storage: &mut Storage, outputs: Vec<Output>) -> Result<(), StorageError> {
        let mut batch: Vec<ChatRecord> = Vec::new();
        for out in outputs {
            if let Output::Deliver(rec) = out {
                batch.push(rec);
                continue;
            }
            self.flush(storage, &mut batch)?;
            match out {
                Output::Deliver(_) => {}
                Output::Send(msg) => self.send(&msg),
                Output::ServeFromReplica { to, lo, hi } => {
                    let records = storage.replica.read_range(lo, hi)?;
                    self.send_history(to, records);
                }
                Output::SendHistory { to, records } => self.send_history(to, records),
                Output::Notice(text) => lock(&self.sink).notice(&text),
                Output::Checkpoint => self.request_checkpoint(),
                Output::Stop(reason) => self.finish(Ok(reason)),
            }
        }
        self.flush(storage, &mut batch)
    }

    fn flush(
        &self,
        storage: &mut Storage,
        batch: &mut Vec<ChatRecord>,
    ) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        storage.replica.append(batch)?;
        let mut sink = lock(&self.sink);
        for rec in batch.drain(..) {
            sink.message(&rec);
        }
        sink.flush();
        Ok(())
    }

    fn send(&self, msg: &Msg) {
        match wrap_datagram(self.info.key.as_ref(), msg) {
            Ok(bytes) => self.send_bytes(&bytes),
            Err(e) => log::warn!("not sent: {e}"),
        }
    }

    fn send_history(&self, to: NodeId, records: Vec<ChatRecord>) {
        for datagram in wire::pack_history(to, records) {
            self.send_bytes(&seal_bytes(self.info.key.as_ref(), datagram));
        }
    }

    fn send_bytes(&self, bytes: &[u8]) {
        if let Err(e) = self.transport.send(bytes) {
            log::debug!("send failed: {e}");
        }
    }

    /// Asks the checkpoint thread for a checkpoint now.
    pub fn request_checkpoint(&self) {
        let (flag, cv) = &self.checkpoint_due;
        *lock(flag) = true;
        cv.notify_one();
    }

    /// Writes a checkpoint when asked (at most one every [`CHECKPOINT_SPACING`], so a burst
    /// of requests costs one write) and a durable one every checkpoint interval.
    fn checkpoint_loop(self: Arc<Self>) {
        let interval = self.info.checkpoint_interval;
        let mut next_durable = Instant::now() + interval;
        while !self.is_stopped() {
            let asked = self.wait_checkpoint_request(next_durable);
            let durable = Instant::now() >= next_durable;
            if durable {
                next_durable = Instant::now() + interval;
            }
            if let Err(e) = self.write_checkpoint(durable) {
                log::warn!("checkpoint failed: {e}");
            }
            if asked && !durable {
                std::thread::sleep(CHECKPOINT_SPACING);
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
    /// fsyncs it, after the writer lock is released, so nothing waits for the fsync.
    pub fn write_checkpoint(&self, durable: bool) -> Result<(), StorageError> {
        let path = self.info.identity.checkpoint_path(&self.info.data_dir);
        {
            let _writer = lock(&self.checkpoint_writer);
            let cp = self.snapshot();
            checkpoint::save_unsynced(&path, &cp)?;
            if let (Some(mark), Some(journal)) = (cp.journal, lock(&self.journal).as_mut()) {
                if let Err(e) = journal.start_over(mark) {
                    log::warn!("the outbox journal keeps its lines for now: {e}");
                }
            }
        }
        if durable {
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
    /// asks for a checkpoint. When this returns `Ok`, the lines are accepted (G2).
    pub fn accept_lines(
        &self,
        lines: Vec<Pending>,
        then: impl FnOnce(&mut M, Instant, Vec<Pending>),
    ) -> Result<(), StorageError> {
        {
            let mut journal = lock(&self.journal);
            let journal = journal.as_mut().ok_or_else(|| {
                StorageError::io(
                    &self.info.data_dir,
                    std::io::Error::other("this node has no outbox journal"),
                )
            })?;
            journal.append(&lines)?;
            self.with_core(|core, now| then(core, now, lines));
        }
        self.request_checkpoint();
        Ok(())
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map(|_| ())
}

/// Opens the node's files: takes the identity's lock, opens (and if need be repairs) the
/// replica, and loads the checkpoint if there is one.
pub fn open_storage(
    data_dir: &std::path::Path,
    identity: Identity,
) -> Result<(Storage, Option<Checkpoint>), StorageError> {
    std::fs::create_dir_all(data_dir).map_err(|e| StorageError::io(data_dir, e))?;
    let lock = DirLock::acquire(data_dir, identity)?;
    let (replica, report) = Replica::open(&identity.replica_path(data_dir))?;
    if report.torn_tail_bytes_cut > 0 {
        log::warn!(
            "{}: cut a torn last line ({} bytes) left by a crash; kept {} records",
            replica.path().display(),
            report.torn_tail_bytes_cut,
            report.records
        );
    }
    let cp = checkpoint::load(&identity.checkpoint_path(data_dir))?;
    Ok((
        Storage {
            replica,
            _lock: lock,
        },
        cp,
    ))
}

/// Runs `f` on the first SIGINT or SIGTERM, from a thread that sleeps until then; a second
/// signal exits at once with status 130, like most tools.
pub fn on_signal(f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let first_seen = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&first_seen))?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    spawn("signals", move || {
        if signals.forever().next().is_some() {
            first_seen.store(true, Ordering::SeqCst);
            f();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Epoch, NodeId};

    fn key(secret: &[u8]) -> (tempfile::TempDir, Key) {
        let (dir, path) = crate::seal::tests::key_file(secret);
        (dir, Key::from_file(&path).unwrap())
    }

    fn wake() -> Msg {
        Msg::Wake {
            epoch: Epoch(4),
            from: NodeId::random(),
        }
    }

    #[test]
    fn g6_a_sealed_datagram_opens_only_with_the_same_key_and_is_counted_otherwise() {
        let (_d1, ours) = key(b"our shared secret of 32 bytes...");
        let (_d2, theirs) = key(b"their shared secret of 32 bytes.");
        let msg = wake();
        let sealed = wrap_datagram(Some(&ours), &msg).unwrap();
        assert_eq!(unwrap_datagram(Some(&ours), &sealed).unwrap(), msg);
        let drops = DropStats::default();
        for why in [
            unwrap_datagram(Some(&theirs), &sealed).unwrap_err(),
            unwrap_datagram(Some(&ours), &wire::encode(&msg).unwrap()).unwrap_err(),
        ] {
            assert!(matches!(why, Dropped::Seal(_)), "{why}");
            drops.count(&why);
        }
        // Without a key, a sealed datagram is just malformed.
        let why = unwrap_datagram(None, &sealed).unwrap_err();
        assert!(matches!(why, Dropped::Decode(DecodeError::Malformed(_))));
        drops.count(&why);
        let why = unwrap_datagram(Some(&ours), &vec![1u8; 60_000]).unwrap_err();
        assert!(matches!(
            why,
            Dropped::Decode(DecodeError::Oversize(60_000))
        ));
        drops.count(&why);
        assert_eq!(
            drops.summary(),
            "malformed 1, oversize 1, wrong version 0, out of range 0, unauthenticated 2"
        );
        assert_eq!(drops.total(), 4);
    }

    #[test]
    fn without_a_key_datagrams_are_plain_json() {
        let msg = wake();
        let bytes = wrap_datagram(None, &msg).unwrap();
        assert_eq!(bytes, wire::encode(&msg).unwrap());
        assert_eq!(unwrap_datagram(None, &bytes).unwrap(), msg);
    }
}
