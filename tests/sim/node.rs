//! One simulated node: its core (the real server or client state machine), its "disk" (what
//! survives a crash), and the [`Effects`] that carry out the core's outputs in memory, through
//! the library's own [`perform`], so the tests follow the same "persist before you send" rule
//! as the threaded runtime.
//!
//! Effects only perform and report: every delivery and every `Data` sent goes past the
//! [`Oracle`]; no scheduling, no timers and no fault injection happen here.

use crate::sim::net::Network;
use crate::sim::oracle::Oracle;
use crate::sim::trace;
use mcast_chat::protocol::coordinator::Coordinator;
use mcast_chat::protocol::events::{
    perform, CoordinatorOutput, CoordinatorStop, Effects, MemberOutput, MemberStop,
};
use mcast_chat::protocol::member::MemberCore;
use mcast_chat::protocol::peers::AddressBook;
use mcast_chat::protocol::types::{ChatRecord, Epoch, NodeId, Pending, Seq, View};
use mcast_chat::protocol::vote::Vote;
use mcast_chat::protocol::wire::{self, Msg, Peer};
use std::fmt::Debug;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

/// What survives a crash: the replica, the last checkpoint (outbox, or the server's view) and
/// the vote (saved before anything that depends on it is sent).
#[derive(Default, Clone)]
pub struct Disk {
    pub replica: Vec<ChatRecord>,
    pub outbox: Vec<Pending>,
    pub view: View,
    pub vote: Vote,
}

/// The state machine a node runs.
pub enum Core {
    Server(Box<Coordinator>),
    Member(Box<MemberCore>),
}

impl Core {
    /// The view the core holds.
    fn view(&self) -> &View {
        match self {
            Core::Server(c) => c.view(),
            Core::Member(m) => m.view(),
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Core::Server(c) => c.poll_timeout(),
            Core::Member(m) => m.poll_timeout(),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            Core::Server(c) => c.handle_timeout(now),
            Core::Member(m) => m.handle_timeout(now),
        }
    }

    pub fn handle_datagram(&mut self, now: Instant, msg: Msg) {
        match self {
            Core::Server(c) => c.handle_datagram(now, msg),
            Core::Member(m) => m.handle_datagram(now, msg),
        }
    }

    /// What a checkpoint writes now.
    fn checkpoint(&self, disk: &mut Disk) {
        match self {
            Core::Server(c) => disk.view = c.view().clone(),
            Core::Member(m) => disk.outbox = m.outbox().cloned().collect(),
        }
    }
}

/// A simulated host: stays in the run across crashes (`core` is `None` while it is down).
pub struct Node {
    pub id: NodeId,
    pub name: String,
    pub disk: Disk,
    pub core: Option<Core>,
    /// Left the ring for good: it is not restarted.
    pub left: bool,
    /// Where the other nodes are, learned from what arrived since the last start; in unicast
    /// mode, who a send to the group goes to.
    pub peers: AddressBook<usize>,
    /// In unicast mode, the epoch of the view the address book was last given.
    pub book_epoch: Option<Epoch>,
}

impl Node {
    pub fn new(id: NodeId, name: String) -> Node {
        Node {
            id,
            name,
            disk: Disk::default(),
            core: None,
            left: false,
            peers: AddressBook::default(),
            book_epoch: None,
        }
    }

    pub fn member(&self) -> Option<&MemberCore> {
        match &self.core {
            Some(Core::Member(m)) => Some(m),
            _ => None,
        }
    }

    pub fn member_mut(&mut self) -> Option<&mut MemberCore> {
        match &mut self.core {
            Some(Core::Member(m)) => Some(m),
            _ => None,
        }
    }

    pub fn server(&self) -> Option<&Coordinator> {
        match &self.core {
            Some(Core::Server(c)) => Some(c),
            _ => None,
        }
    }

    /// Drains the core's outputs and performs them with [`perform`]. Returns why the node
    /// stopped, if it did (the caller takes the core down), or the first violated check.
    pub fn perform_outputs(
        &mut self,
        me: usize,
        net: &mut Network,
        oracle: &mut Oracle,
        trace: bool,
    ) -> Result<Option<Stopped>, String> {
        let Some(core) = &mut self.core else {
            return Ok(None);
        };
        // As the runtime: in unicast mode the book follows the core's view, and a server
        // announces the view's addresses before the outputs that follow.
        let view = core.view();
        if self.peers.is_unicast() && self.book_epoch != Some(view.epoch) {
            self.book_epoch = Some(view.epoch);
            self.peers.set_view(view);
        }
        // Effects never touch the core, so draining first and performing after is the same
        // as performing each output as it is polled.
        let outputs = match core {
            Core::Server(c) => Outputs::Server(std::iter::from_fn(|| c.poll_output()).collect()),
            Core::Member(m) => Outputs::Member(std::iter::from_fn(|| m.poll_output()).collect()),
        };
        let mut fx = NodeEffects {
            me,
            id: self.id,
            peers: &mut self.peers,
            name: &self.name,
            core,
            disk: &mut self.disk,
            net,
            oracle,
            trace,
            failure: None,
            stopped: None,
        };
        fx.announce_peers();
        let performed = match outputs {
            Outputs::Server(o) => perform(&mut fx, o),
            Outputs::Member(o) => perform(&mut fx, o),
        };
        // A failed send came before whatever ended `perform`: report the earlier one.
        if let Some(failure) = fx.failure {
            return Err(failure);
        }
        performed.map(|()| fx.stopped)
    }
}

/// A core's outputs, drained in order.
enum Outputs {
    Server(Vec<CoordinatorOutput>),
    Member(Vec<MemberOutput>),
}

/// Why a node stopped, and whether that is a clean leave (anything else fails the run).
#[derive(Debug)]
pub struct Stopped {
    pub clean: bool,
    pub reason: String,
}

/// A core's stop reason, as the harness judges it.
pub trait StopReason: Debug {
    /// Whether the node left as asked (the only stop a run may see).
    fn is_clean_leave(&self) -> bool;
}

impl StopReason for MemberStop {
    fn is_clean_leave(&self) -> bool {
        *self == MemberStop::Left
    }
}

impl StopReason for CoordinatorStop {
    fn is_clean_leave(&self) -> bool {
        false
    }
}

/// The effects of one node, in memory: deliveries to its replica, datagrams to the network.
struct NodeEffects<'a> {
    me: usize,
    id: NodeId,
    peers: &'a mut AddressBook<usize>,
    name: &'a str,
    core: &'a Core,
    disk: &'a mut Disk,
    net: &'a mut Network,
    oracle: &'a mut Oracle,
    trace: bool,
    /// The first violation found by an effect that cannot return an error.
    failure: Option<String>,
    stopped: Option<Stopped>,
}

impl NodeEffects<'_> {
    fn fail(&mut self, what: String) {
        self.failure.get_or_insert(what);
    }

    /// To the group: in unicast mode, to each node of the fan-out, each copy lost on its own.
    fn multicast(&mut self, bytes: Vec<u8>) {
        if !self.peers.is_unicast() {
            return self.net.multicast(self.me, bytes);
        }
        for &to in self.peers.fan_out(self.net.now()).iter() {
            self.net.unicast(self.me, to, bytes.clone());
        }
    }

    /// To `to` alone where this node knows where it is, else to the group (as the runtime).
    fn send_bytes_to(&mut self, to: NodeId, bytes: Vec<u8>) {
        match self.peers.get(to) {
            Some(i) => self.net.unicast(self.me, i, bytes),
            None => self.multicast(bytes),
        }
    }

    /// A server in unicast mode tells every node where the view's nodes are, when due.
    fn announce_peers(&mut self) {
        if self.id.as_server().is_none() {
            return;
        }
        let Some(known) = self.peers.announcement(self.net.now()) else {
            return;
        };
        for bytes in peers_datagrams(self.id, known) {
            self.multicast(bytes);
        }
    }

    fn encode(&mut self, msg: &Msg) -> Option<Vec<u8>> {
        wire::encode(msg)
            .map_err(|e| self.fail(format!("node {} could not encode {msg:?}: {e}", self.me)))
            .ok()
    }
}

impl<E: Debug, S: StopReason> Effects<E, S> for NodeEffects<'_> {
    /// A violated guarantee.
    type Error = String;

    fn deliver(&mut self, records: Vec<ChatRecord>) -> Result<(), String> {
        for rec in records {
            if self.trace {
                let line = format!("{} DELIVERS #{} {}", self.name, rec.seq, rec.text);
                trace(self.net.elapsed(), &line);
            }
            self.oracle
                .check_delivery(self.me, &self.disk.replica, &rec)?;
            self.oracle.delivered(self.me, rec.id, self.net.now());
            self.disk.replica.push(rec);
        }
        Ok(())
    }

    fn send(&mut self, msg: Msg) {
        if let Msg::Data { epoch, recs, .. } = &msg {
            if let Err(e) = self.oracle.check_data(self.me, *epoch, recs) {
                self.fail(e);
            }
        }
        let Some(bytes) = self.encode(&msg) else {
            return;
        };
        // As the runtime: in unicast mode a message that names its one addressee goes to it.
        match msg.addressee().filter(|_| self.peers.is_unicast()) {
            Some(to) => self.send_bytes_to(to, bytes),
            None => self.multicast(bytes),
        }
    }

    fn send_to(&mut self, to: NodeId, msg: Msg) {
        if let Some(bytes) = self.encode(&msg) {
            self.send_bytes_to(to, bytes);
        }
    }

    fn read_replica(&mut self, lo: Seq, hi: Seq) -> Result<Vec<ChatRecord>, String> {
        let replica = &self.disk.replica;
        Ok(replica
            .iter()
            .filter(|r| r.seq >= lo && r.seq <= hi)
            .cloned()
            .collect())
    }

    fn send_history(&mut self, to: NodeId, records: Vec<ChatRecord>) {
        for datagram in wire::pack_history(to, records) {
            match self.peers.is_unicast() {
                true => self.send_bytes_to(to, datagram),
                false => self.multicast(datagram),
            }
        }
    }

    fn event(&mut self, event: E) {
        if self.trace {
            trace(self.net.elapsed(), &format!("{} {event:?}", self.name));
        }
    }

    fn checkpoint(&mut self) {
        self.core.checkpoint(self.disk);
    }

    fn save_vote(&mut self, vote: Vote) -> Result<(), String> {
        self.oracle.saved_vote(self.id, &vote)?;
        self.disk.vote = vote;
        Ok(())
    }

    fn stop(&mut self, reason: S) {
        // The driver writes a final checkpoint before it exits.
        self.core.checkpoint(self.disk);
        self.stopped = Some(Stopped {
            clean: reason.is_clean_leave(),
            reason: format!("{reason:?}"),
        });
    }
}

/// The [`Msg::Peers`] datagrams that tell where `known` nodes are.
pub fn peers_datagrams(from: NodeId, known: Vec<(NodeId, usize)>) -> Vec<Vec<u8>> {
    let peers: Vec<Peer> = known
        .into_iter()
        .map(|(id, i)| Peer {
            id,
            addr: address_of(i),
        })
        .collect();
    wire::pack_peers(from, &peers)
        .iter()
        .map(|msg| wire::encode(msg).expect("a peers datagram encodes"))
        .collect()
}

/// Node `i`'s address in a [`Msg::Peers`] announcement: the simulation numbers its nodes, the
/// wire carries socket addresses.
pub fn address_of(i: usize) -> SocketAddr {
    let [.., hi, lo] = (i as u32).to_be_bytes();
    SocketAddr::from((Ipv4Addr::new(10, 0, hi, lo), 5007))
}

/// The node an announced address names, if it is one of the simulation's.
pub fn node_at(addr: SocketAddr) -> Option<usize> {
    match addr {
        SocketAddr::V4(a) if a.ip().octets()[..2] == [10, 0] && a.port() == 5007 => {
            let [.., hi, lo] = a.ip().octets();
            Some(usize::from(hi) << 8 | usize::from(lo))
        }
        _ => None,
    }
}
