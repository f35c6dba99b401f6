//! Drives a protocol state machine over the network and the disk with threads:
//! - **receive** (one thread per socket: the group's, and the node's own): reads datagrams,
//!   opens them (with `--key-file`) and decodes them (outside any lock), notes where their
//!   sender is ([`AddressBook`]), hands them to the core; what fails is logged at debug level
//!   and counted in [`DropStats`];
//! - **io** (the sending worker): runs due timers, drains the core's outputs and performs them
//!   in order: replica appends (group commit), then datagrams (sealed with `--key-file`). A
//!   receive thread that finds the io thread idle performs the outputs of its datagram itself
//!   (a token hop then costs one thread switch); either way outputs are drained and performed
//!   under the storage lock, which keeps them in order and appends in `seq` order;
//! - **checkpoint**: writes the checkpoint soon after it is asked (a new view, accepted
//!   lines; at most one every [`persist::CHECKPOINT_SPACING`]) and makes it durable (fsync) every
//!   `--checkpoint-interval`.
//!
//! A replica that cannot be written (a full, read-only or failing disk) stops a client, after a
//! Leave so the ring recovers at once; the server holds the records and sends nothing until
//! they are written ([`backlog`]). With `--durability fsync`, each batch of deliveries is
//! synced before the datagrams that follow it ([`events::perform`]).
//!
//! A client's typed lines reach its outbox journal (one append) and then the core, in one
//! step under the journal's lock, so a checkpoint sees each line either in the core's outbox
//! or past its journal mark (G2).
//!
//! The core sits behind a `Mutex` held only around core calls, never across socket or file
//! I/O. Lock order, where more than one is taken: `checkpoint_writer`, then `storage`, then
//! `journal`, then `core` (the journal after the replica, so that typing never waits for a
//! replica write). No protocol decisions here.

pub mod backlog;
pub mod datagram;
pub mod persist;
pub mod phases;
mod sending;
pub mod signals;
pub mod storage;

use crate::net::seal::Key;
use crate::net::{Inbox, Transport};
use crate::protocol::coordinator::Coordinator;
use crate::protocol::events::{
    self, CoordinatorEvent, CoordinatorStop, Effects, MemberEvent, MemberStop, Output,
};
use crate::protocol::member::MemberCore;
use crate::protocol::peers::AddressBook;
use crate::protocol::types::{ChatRecord, NodeId, Pending, Seq, ServerId, View};
use crate::protocol::vote::Vote;
use crate::protocol::wire::Msg;
use crate::store::journal::Journal;
use crate::store::{vote_file, Durability, Identity, StorageError};
use backlog::{OnAppendFailure, Retry};
use datagram::{unwrap_datagram, DropStats, Dropped};
use phases::Phases;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use storage::Storage;

/// What the driver needs from a state machine (member or coordinator).
pub trait Machine: Send + 'static {
    /// What the core reports to its user; the display layer words it.
    type Event: fmt::Display + Send;
    /// Why the core stops.
    type Stop: Clone + fmt::Debug + Send;
    /// A decoded datagram arrived.
    fn handle_datagram(&mut self, now: Instant, msg: Msg);
    /// Timers may be due.
    fn handle_timeout(&mut self, now: Instant);
    /// The next instant at which timers are due.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next output, in order.
    fn poll_output(&mut self) -> Option<Output<Self::Event, Self::Stop>>;
    /// Whether outputs are waiting.
    fn has_output(&self) -> bool;
    /// The state a checkpoint records: view, delivered seq, outbox.
    fn snapshot(&self) -> (View, Seq, Vec<Pending>);
    /// The view the core holds now.
    fn view(&self) -> &View;
}

/// Forwards the driver's calls to a core's own methods of the same names.
macro_rules! machine {
    ($core:ty, $event:ty, $stop:ty, |$me:ident| $snapshot:expr) => {
        impl Machine for $core {
            type Event = $event;
            type Stop = $stop;
            fn handle_datagram(&mut self, now: Instant, msg: Msg) {
                <$core>::handle_datagram(self, now, msg)
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$core>::handle_timeout(self, now)
            }
            fn poll_timeout(&self) -> Option<Instant> {
                <$core>::poll_timeout(self)
            }
            fn poll_output(&mut self) -> Option<Output<$event, $stop>> {
                <$core>::poll_output(self)
            }
            fn has_output(&self) -> bool {
                <$core>::has_output(self)
            }
            fn snapshot(&self) -> (View, Seq, Vec<Pending>) {
                let $me = self;
                $snapshot
            }
            fn view(&self) -> &View {
                <$core>::view(self)
            }
        }
    };
}

machine!(MemberCore, MemberEvent, MemberStop, |core| (
    core.view().clone(),
    core.delivered(),
    core.outbox().cloned().collect()
));
machine!(Coordinator, CoordinatorEvent, CoordinatorStop, |core| (
    core.view().clone(),
    core.archived(),
    Vec::new()
));

/// How a node's run ended.
#[derive(Debug)]
pub enum Outcome<S> {
    /// Its core stopped.
    Stopped(S),
    /// SIGINT or SIGTERM asked a node without a leave protocol (the server) to stop.
    Interrupted,
    /// A file could not be written or read; the node cannot go on safely.
    Failed(StorageError),
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
    pub server_id: Option<ServerId>,
    /// `--durability`: whether appends and checkpoints are synced as they happen.
    pub durability: Durability,
    /// What to do when the replica cannot be written.
    pub on_append_failure: OnAppendFailure,
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
    /// The sockets.
    pub transport: Transport,
    /// Where each node's datagrams come from: where datagrams for it alone go; in unicast
    /// mode, where a send to the group goes too.
    peers: Mutex<AddressBook<SocketAddr>>,
    /// In unicast mode, the epoch of the view the address book was last given (see
    /// [`Node::track_view`]).
    book_epoch: AtomicU64,
    /// Where messages and notices go.
    pub sink: Mutex<Box<dyn Sink>>,
    /// Facts about the node.
    pub info: NodeInfo,
    /// Datagrams dropped before the core.
    pub drops: DropStats,
    /// Where the time of our own lines goes (`/stats`).
    pub phases: Phases,
    stopped: AtomicBool,
    /// Set while the server holds records it could not archive (see [`backlog`]): the io
    /// thread then wakes every [`backlog::RETRY_EVERY`] to offer them to the disk again.
    holding: AtomicBool,
    outcome: Mutex<Option<Outcome<M::Stop>>>,
    /// Signalled when `outcome` is set.
    done: Condvar,
}

/// How often a receive thread with nothing to read looks whether the node stopped. Nothing
/// waits for it (the process exits without joining it), so it is long: on an idle ring of a
/// hundred clients every wake-up of every process counts.
const RECEIVE_POLL: Duration = Duration::from_secs(5);

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
        let peers = match (&transport.config().unicast, transport.local_addr()) {
            (Some(unicast), Ok(own)) => {
                AddressBook::unicast(unicast.peers.clone(), own, info.server_id.is_some())
            }
            _ => AddressBook::default(),
        };
        let phases = Phases::new(info.id);
        Arc::new(Node {
            core: Mutex::new(core),
            storage: Mutex::new(storage),
            checkpoint_writer: Mutex::new(()),
            journal: Mutex::new(journal),
            wake: (Mutex::new(IoWake::default()), Condvar::new()),
            checkpoint_due: (Mutex::new(false), Condvar::new()),
            transport,
            peers: Mutex::new(peers),
            book_epoch: AtomicU64::new(u64::MAX),
            sink: Mutex::new(sink),
            info,
            drops: DropStats::default(),
            phases,
            stopped: AtomicBool::new(false),
            holding: AtomicBool::new(false),
            outcome: Mutex::new(None),
            done: Condvar::new(),
        })
    }

    /// Starts the receive, io and checkpoint threads.
    pub fn spawn_workers(self: &Arc<Self>) -> std::io::Result<()> {
        if !self.transport.is_unicast() {
            let node = Arc::clone(self);
            spawn("receive", move || node.receive_loop(Inbox::Group))?;
        }
        let node = Arc::clone(self);
        spawn("receive-direct", move || node.receive_loop(Inbox::Direct))?;
        let node = Arc::clone(self);
        spawn("io", move || node.io_loop())?;
        let node = Arc::clone(self);
        spawn("checkpoint", move || node.checkpoint_loop())?;
        Ok(())
    }

    /// Runs `f` on the core, then wakes the io thread if that left it work: outputs, or a
    /// timer earlier than the one it sleeps until. Most datagrams (a token passing between
    /// two other members) leave none, and then cost no second thread switch.
    pub fn with_core<R>(&self, f: impl FnOnce(&mut M, Instant) -> R) -> R {
        let (result, has_output, next) = {
            let mut core = lock(&self.core);
            let result = f(&mut core, Instant::now());
            (result, core.has_output(), core.poll_timeout())
        };
        self.wake_io_for(has_output, next);
        result
    }

    /// Hands a received message to the core and performs what follows (see
    /// [`Node::perform_here`]).
    fn handle_received(&self, msg: Msg) {
        lock(&self.core).handle_datagram(Instant::now(), msg);
        self.perform_here();
    }

    /// Performs the core's outputs on this thread when no other thread is performing outputs
    /// right now, else leaves them to the io thread: a token hop, or a typed line that goes
    /// out at once, then costs one thread switch, not two. Outputs stay in order: whoever
    /// holds the storage lock drains and performs them all before letting go.
    pub(super) fn perform_here(&self) {
        let Ok(mut storage) = self.storage.try_lock() else {
            let (has_output, next) = {
                let core = lock(&self.core);
                (core.has_output(), core.poll_timeout())
            };
            self.wake_io_for(has_output, next);
            return;
        };
        let (outputs, next) = {
            let mut core = lock(&self.core);
            self.track_view(&core);
            let outputs: Vec<_> = std::iter::from_fn(|| core.poll_output()).collect();
            (outputs, core.poll_timeout())
        };
        self.perform(&mut storage, outputs);
        drop(storage);
        self.wake_io_for(false, next);
    }

    fn perform(&self, storage: &mut Storage, outputs: Vec<Output<M::Event, M::Stop>>) {
        self.announce_peers();
        let mut effects = NodeEffects {
            node: self,
            storage,
        };
        if let Err(e) = events::perform(&mut effects, outputs) {
            self.fail(e);
        }
    }

    /// Wakes the io thread if there are outputs, or if the core's next deadline is earlier
    /// than the one it sleeps until.
    fn wake_io_for(&self, has_output: bool, next: Option<Instant>) {
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
    }

    /// Wakes the io thread.
    pub fn wake_io(&self) {
        let (state, cv) = &self.wake;
        lock(state).woken = true;
        cv.notify_one();
    }

    /// Blocks until the node stops; returns why. Call it once: it takes the outcome.
    pub fn wait(&self) -> Outcome<M::Stop> {
        let mut outcome = lock(&self.outcome);
        loop {
            if let Some(outcome) = outcome.take() {
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
    pub fn finish(&self, outcome: Outcome<M::Stop>) {
        let mut slot = lock(&self.outcome);
        if slot.is_none() {
            *slot = Some(outcome);
        }
        self.stopped.store(true, Ordering::SeqCst);
        self.done.notify_all();
        self.wake_io();
    }

    fn receive_loop(self: Arc<Self>, inbox: Inbox) {
        let mut buf = vec![0u8; 65_536];
        while !self.is_stopped() {
            let (n, from) = match self
                .transport
                .recv_from(inbox, &mut buf, Some(RECEIVE_POLL))
            {
                Ok(Some(got)) => got,
                Ok(None) => continue,
                Err(e) => {
                    log::warn!("receive failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            match unwrap_datagram(self.info.key.as_ref(), &buf[..n]) {
                Ok(msg @ Msg::Peers { .. }) => self.learn_peers(&msg, from),
                Ok(msg) => {
                    // Data and history name no sender: most of a flood takes no lock here.
                    if msg.sender().is_some() {
                        let introduction = {
                            let mut book = lock(&self.peers);
                            book.learn(&msg, from, Instant::now());
                            book.introduction(&msg)
                        };
                        if let Some(servers) = introduction {
                            self.send_peers(Some(from), servers);
                        }
                    }
                    self.handle_received(msg);
                }
                Err(why) => self.drop_datagram(n, &why),
            }
        }
    }

    fn drop_datagram(&self, n: usize, why: &Dropped) {
        log::debug!("dropped datagram of {n} bytes: {why}");
        self.drops.count(why);
        if matches!(why, Dropped::Seal(_)) && datagram::get(&self.drops.unauthenticated) == 1 {
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
            self.retry_held(&mut storage);
            let outputs = {
                let mut core = lock(&self.core);
                let now = Instant::now();
                if core.poll_timeout().is_some_and(|t| t <= now) {
                    core.handle_timeout(now);
                }
                self.track_view(&core);
                std::iter::from_fn(|| core.poll_output()).collect::<Vec<_>>()
            };
            self.perform(&mut storage, outputs);
        }
    }

    /// The replica could not be written: stop, after the farewell if there is one. Sent
    /// twice, as a Hello is repeated: one lost datagram must not cost the ring a token
    /// timeout.
    fn fail(&self, e: StorageError) {
        log::error!("stopping: {e}");
        if let OnAppendFailure::Stop {
            farewell: Some(msg),
        } = &self.info.on_append_failure
        {
            self.send(None, msg);
            self.send(None, msg);
        }
        self.finish(Outcome::Failed(e));
    }

    /// Offers held records to the disk again when due, and says how that went.
    fn retry_held(&self, storage: &mut Storage) {
        let sync = self.info.durability.syncs();
        match storage
            .held
            .retry(&mut storage.replica, sync, Instant::now())
        {
            Retry::Idle => {}
            Retry::Written(n, at) => {
                self.holding.store(false, Ordering::Relaxed);
                let text = format!(
                    "the archive is written again: {n} held messages are on disk, up to #{at}; \
                     {} datagrams were withheld meanwhile",
                    std::mem::take(&mut storage.held.withheld)
                );
                log::warn!("{text}");
                lock(&self.sink).notice(&text);
            }
            Retry::Failed(e) => log::debug!("the archive still cannot be written: {e}"),
        }
    }

    /// Sleeps until woken or until the core's next timer, at most [`RECEIVE_POLL`] (a safety
    /// net: nothing should need it). The deadline is read under the wake lock, so a thread that
    /// moves a timer earlier either sees the new deadline or is seen by this read.
    fn wait_for_work(&self) {
        let (state, cv) = &self.wake;
        let mut state = lock(state);
        if !state.woken {
            let now = Instant::now();
            // Held records are offered to the disk again by this thread, on time.
            let poll = match self.holding.load(Ordering::Relaxed) {
                true => backlog::RETRY_EVERY,
                false => RECEIVE_POLL,
            };
            let max = now + poll;
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
}

/// The io thread's effects: the replica and the sink under the storage lock, datagrams on
/// the socket.
struct NodeEffects<'a, M: Machine> {
    node: &'a Node<M>,
    storage: &'a mut Storage,
}

impl<M: Machine> Effects<M::Event, M::Stop> for NodeEffects<'_, M> {
    type Error = StorageError;

    /// One append for the whole batch, then one flush of the display. While records are
    /// held (the server's disk failed), these join them.
    fn deliver(&mut self, records: Vec<ChatRecord>) -> Result<(), StorageError> {
        let now = Instant::now();
        if self.storage.held.is_holding() {
            let why = || StorageError::io(self.storage.replica.path(), held_error());
            self.storage.held.hold(records.clone(), now, why())?;
        } else if let Err(e) = self.storage.replica.append(&records) {
            let OnAppendFailure::Hold = self.node.info.on_append_failure else {
                return Err(e);
            };
            let text = format!(
                "cannot archive: {}; holding messages in memory and sending nothing until they \
                 are written (retrying every {}s)",
                e.cause_and_file(),
                backlog::RETRY_EVERY.as_secs()
            );
            self.storage.held.hold(records.clone(), now, e)?;
            self.node.holding.store(true, Ordering::Relaxed);
            log::error!("{text}");
            lock(&self.node.sink).notice(&text);
        }
        let mut sink = lock(&self.node.sink);
        for rec in &records {
            sink.message(rec);
        }
        sink.flush();
        drop(sink);
        self.node.phases.delivered(&records, Instant::now());
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        if !self.node.info.durability.syncs() || self.storage.held.is_holding() {
            return Ok(());
        }
        self.storage.replica.sync()
    }

    fn send(&mut self, msg: Msg) {
        if self.withhold() {
            return;
        }
        self.node.send(None, &msg);
        if let Msg::Data { recs, .. } = &msg {
            self.node.phases.sent(recs, Instant::now());
        }
    }

    fn send_to(&mut self, to: NodeId, msg: Msg) {
        if self.withhold() {
            return;
        }
        self.node.send(Some(to), &msg);
    }

    fn read_replica(&mut self, lo: Seq, hi: Seq) -> Result<Vec<ChatRecord>, StorageError> {
        self.storage.replica.read_range(lo, hi)
    }

    fn send_history(&mut self, to: NodeId, records: Vec<ChatRecord>) {
        if self.withhold() {
            return;
        }
        self.node.send_history(to, records);
    }

    fn event(&mut self, event: M::Event) {
        lock(&self.node.sink).notice(&event.to_string());
    }

    fn checkpoint(&mut self) {
        self.node.request_checkpoint();
    }

    /// Written here, on the thread that performs the outputs, before the datagrams that
    /// follow it: a promise or an acceptance must be on disk before anyone counts on it.
    fn save_vote(&mut self, vote: Vote) -> Result<(), StorageError> {
        let path = self.node.info.identity.vote_path(&self.node.info.data_dir);
        vote_file::save(&path, &vote, self.node.info.durability.syncs())
    }

    fn stop(&mut self, reason: M::Stop) {
        self.node.finish(Outcome::Stopped(reason));
    }
}

impl<M: Machine> NodeEffects<'_, M> {
    /// Whether to drop a datagram because held records are not on disk yet (counted).
    fn withhold(&mut self) -> bool {
        let held = &mut self.storage.held;
        held.withheld += u64::from(held.is_holding());
        held.is_holding()
    }
}

/// Why records join a held backlog without a write of their own.
fn held_error() -> std::io::Error {
    std::io::Error::other(format!(
        "more than {} messages wait for the archive to be written",
        backlog::MAX_HELD_RECORDS
    ))
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map(|_| ())
}
