//! Where a node's datagrams go: to one node when its address is known, else to the group; in
//! unicast mode (`--peer`) to each node of the fan-out that the address book keeps, which
//! follows the core's view, and a server's announcements of the view's addresses.
//!
//! What this module must not do: decide what to send (the core does), or hold the core's lock
//! while it sends.

use super::datagram::{self, wrap_datagram};
use super::{lock, Machine, Node};
use crate::net::peer::scoped;
use crate::protocol::types::{ChatRecord, NodeId};
use crate::protocol::wire::{self, Msg, Peer};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl<M: Machine> Node<M> {
    /// A server's announcement of where the view's nodes are: for the address book alone.
    pub(super) fn learn_peers(&self, msg: &Msg, from: SocketAddr) {
        let Msg::Peers { peers, .. } = msg else {
            return;
        };
        let mut book = lock(&self.peers);
        let now = Instant::now();
        book.learn(msg, from, now);
        let index = self.transport.config().interface.index;
        book.learn_announced(peers.iter().map(|p| (p.id, scoped(p.addr, index))), now);
    }

    /// Sends `msg` to `to` alone if we know its address, else to the group. In unicast mode a
    /// message for the group that names the one node it is for goes to that node alone.
    pub(super) fn send(&self, to: Option<NodeId>, msg: &Msg) {
        let to = to.or_else(|| msg.addressee().filter(|_| self.transport.is_unicast()));
        self.send_sealed(self.address_of(to), msg);
    }

    /// Seals `msg` (with `--key-file`) and sends it to `to`, or else to the group.
    fn send_sealed(&self, to: Option<SocketAddr>, msg: &Msg) {
        match wrap_datagram(self.info.key.as_ref(), msg) {
            Ok(bytes) => self.send_bytes(to, &bytes),
            Err(e) => log::warn!("not sent: {e}"),
        }
    }

    pub(super) fn send_history(&self, to: NodeId, records: Vec<ChatRecord>) {
        let addr = self.address_of(Some(to).filter(|_| self.transport.is_unicast()));
        for datagram in wire::pack_history(to, records) {
            let bytes = datagram::seal_bytes(self.info.key.as_ref(), datagram);
            self.send_bytes(addr, &bytes);
        }
    }

    pub(super) fn address_of(&self, node: Option<NodeId>) -> Option<SocketAddr> {
        node.and_then(|n| lock(&self.peers).get(n))
    }

    /// To `to`, or else to the group: in unicast mode, to each node of the fan-out.
    pub(super) fn send_bytes(&self, to: Option<SocketAddr>, bytes: &[u8]) {
        let sent = match to {
            Some(addr) => self.transport.send_to(bytes, addr),
            None if self.transport.is_unicast() => {
                let targets = lock(&self.peers).fan_out(Instant::now());
                targets
                    .iter()
                    .map(|&addr| self.transport.send_to(bytes, addr))
                    .fold(Ok(()), Result::and)
            }
            None => self.transport.send(bytes),
        };
        if let Err(e) = sent {
            log::debug!("send failed: {e}");
        }
    }

    /// In unicast mode, gives the address book the core's view when its epoch changed, so
    /// that what the core sends next reaches the view's nodes. Called with the core locked,
    /// before its outputs are drained.
    pub(super) fn track_view(&self, core: &M) {
        if !self.transport.is_unicast() {
            return;
        }
        let view = core.view();
        if self.book_epoch.swap(view.epoch.0, Ordering::Relaxed) != view.epoch.0 {
            lock(&self.peers).set_view(view);
        }
    }

    /// A server in unicast mode: tells every node where the view's nodes are, when due (see
    /// [`crate::protocol::peers::AddressBook::announcement`]); before the outputs, so a new
    /// view's members can reach each other by the time its token moves. A multicast server
    /// takes no lock here: this runs before every batch of its outputs.
    pub(super) fn announce_peers(&self) {
        if self.info.server_id.is_none() || !self.transport.is_unicast() {
            return;
        }
        let Some(known) = lock(&self.peers).announcement(Instant::now()) else {
            return;
        };
        self.send_peers(None, known);
    }

    /// Tells `to` (or the group) where these nodes are.
    pub(super) fn send_peers(&self, to: Option<SocketAddr>, known: Vec<(NodeId, SocketAddr)>) {
        let peers: Vec<Peer> = known
            .into_iter()
            .map(|(id, addr)| Peer { id, addr })
            .collect();
        for msg in wire::pack_peers(self.info.id, &peers) {
            self.send_sealed(to, &msg);
        }
    }
}
