//! Where to send: the address of each node, learned from where its datagrams came from (every
//! node sends from its own socket, see `net`), and in unicast mode (`--peer`) the nodes that a
//! send to the group goes to instead of a multicast group. Generic over the address, so the
//! threaded runtime keeps socket addresses and the simulation node numbers.
//!
//! Unicast mode. A send to the group goes to every node that needs it: the `--peer` addresses
//! (servers, or any node already in the chat), the members and servers of the latest view, and
//! every node heard from directly in the last [`RECENT`] (joiners, a server coming back, a node
//! cut off from the ring), never to ourselves. A member hears few nodes directly (the token
//! comes from one), so the servers, which hear every joiner's hello, announce the view's
//! addresses ([`Msg::Peers`]) before each new view (and twice more soon after, in case one is
//! lost) and every [`ANNOUNCE_EVERY`]. A member given a joiner's hello (a joiner's `--peer`
//! may be any node in the chat) tells it where the servers are.
//!
//! Ordered maps, not hash maps: the simulation replays a seed only if the fan-out comes out
//! in the same order every time.
//!
//! A wrong or stale address costs time, never safety: whatever a core sends to one node it
//! also sends again to the whole group when no sign of arrival comes back (a token pass), or
//! asks again (a fetch, a report); a member that misses a pack asks for it on the token, and
//! any holder answers to its own, fuller, list. Pure data: no sockets here.

use crate::protocol::limits::MAX_MEMBERS;
use crate::protocol::types::{NodeId, View};
use crate::protocol::wire::Msg;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// More nodes than any ring holds, joiners and leavers included; past it the book starts
/// over, so nodes that come and go (or forged ids, without a key) cannot make it grow.
const MAX_ENTRIES: usize = 4 * MAX_MEMBERS;

/// How long a node outside the view still gets what is sent to the group after we last heard
/// it: a joiner repeats its hello far more often, a cut-off member its requests.
pub const RECENT: Duration = Duration::from_secs(10);

/// How often a server announces the view's addresses when nothing changed: what repairs a
/// lost announcement at the latest.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(5);

/// After a change, the announcement is made again this many times, each at the first
/// chance [`REPEAT_GAP`] or more after the one before: a member that lost the first one
/// must not wait for [`ANNOUNCE_EVERY`] (or a token timeout) to reach its successor.
const REPEATS: u8 = 2;
const REPEAT_GAP: Duration = Duration::from_millis(20);

/// Each node's latest address and, in unicast mode, who a send to the group goes to.
#[derive(Debug)]
pub struct AddressBook<A> {
    addresses: BTreeMap<NodeId, A>,
    /// `None` in multicast mode.
    unicast: Option<Unicast<A>>,
}

impl<A> Default for AddressBook<A> {
    /// A multicast node's book.
    fn default() -> Self {
        AddressBook {
            addresses: BTreeMap::new(),
            unicast: None,
        }
    }
}

/// What a book keeps in unicast mode.
#[derive(Debug)]
struct Unicast<A> {
    /// `--peer`: always sent to.
    seeds: Vec<A>,
    /// This node's own address: never sent to.
    own: A,
    /// The latest view's members and servers.
    view: BTreeSet<NodeId>,
    /// When each node was last heard directly.
    heard: BTreeMap<NodeId, Instant>,
    /// Where a send to the group goes, as last computed.
    targets: Arc<[A]>,
    /// When `targets` must be computed again: at once (`None`), or when the first node
    /// outside the view that it holds falls silent for [`RECENT`].
    valid_until: Option<Instant>,
    /// A server's announcements: `None` for a client.
    announcing: Option<Announcing>,
}

#[derive(Debug, Default)]
struct Announcing {
    /// The view or an address in it changed since the last announcement.
    changed: bool,
    /// Repeats still to make of the last announcement after a change.
    repeats: u8,
    last: Option<Instant>,
}

impl<A: Copy + PartialEq> AddressBook<A> {
    /// A unicast node's book: `seeds` are the `--peer` addresses, `own` this node's address;
    /// a server (`announces`) tells the others where the view's nodes are.
    pub fn unicast(seeds: Vec<A>, own: A, announces: bool) -> AddressBook<A> {
        AddressBook {
            addresses: BTreeMap::new(),
            unicast: Some(Unicast {
                seeds,
                own,
                view: BTreeSet::new(),
                heard: BTreeMap::new(),
                targets: Arc::from(Vec::new()),
                valid_until: None,
                announcing: announces.then(Announcing::default),
            }),
        }
    }

    /// Whether sends to the group go to a list of nodes ([`AddressBook::fan_out`]).
    pub fn is_unicast(&self) -> bool {
        self.unicast.is_some()
    }

    /// Notes where `msg` came from, if it names its sender ([`Msg::sender`]).
    pub fn learn(&mut self, msg: &Msg, from: A, now: Instant) {
        let Some(node) = msg.sender() else {
            return;
        };
        self.set(node, from);
        if let Some(u) = &mut self.unicast {
            // Silent for a while: the node comes back into the fan-out.
            let silent = u
                .heard
                .insert(node, now)
                .is_none_or(|at| now - at >= RECENT);
            if silent && !u.view.contains(&node) {
                u.valid_until = None;
            }
        }
    }

    /// Notes the addresses another node announced ([`Msg::Peers`]); in multicast mode, none.
    /// A server among them counts as heard now: a joiner that knows no view yet says hello to
    /// the servers a member told it of.
    pub fn learn_announced(&mut self, peers: impl IntoIterator<Item = (NodeId, A)>, now: Instant) {
        if self.unicast.is_none() {
            return;
        }
        for (node, addr) in peers {
            self.set(node, addr);
            if let (Some(u), Some(_)) = (&mut self.unicast, node.as_server()) {
                if u.heard.insert(node, now).is_none() && !u.view.contains(&node) {
                    u.valid_until = None;
                }
            }
        }
    }

    /// For a member in unicast mode given `msg`: a joiner's hello came to us (we are its
    /// `--peer`), so tell it where the view's servers are, which it needs to join. `None` for
    /// anything else, and on a server (it answers hellos itself).
    pub fn introduction(&self, msg: &Msg) -> Option<Vec<(NodeId, A)>> {
        let u = self.unicast.as_ref().filter(|u| u.announcing.is_none())?;
        let Msg::Hello { from, .. } = msg else {
            return None;
        };
        if u.view.contains(from) {
            return None;
        }
        let servers: Vec<(NodeId, A)> = u
            .view
            .iter()
            .filter(|n| n.as_server().is_some())
            .filter_map(|&n| Some((n, *self.addresses.get(&n)?)))
            .collect();
        (!servers.is_empty()).then_some(servers)
    }

    /// Sets `node`'s address.
    fn set(&mut self, node: NodeId, addr: A) {
        if self.addresses.get(&node) == Some(&addr) {
            return;
        }
        if self.addresses.len() >= MAX_ENTRIES && !self.addresses.contains_key(&node) {
            self.addresses.clear();
            if let Some(u) = &mut self.unicast {
                u.heard.clear();
            }
        }
        self.addresses.insert(node, addr);
        if let Some(u) = &mut self.unicast {
            u.valid_until = None;
            if let Some(a) = &mut u.announcing {
                a.changed |= u.view.contains(&node);
            }
        }
    }

    /// Where `node`'s datagrams last came from (or a server said it is), if we know.
    pub fn get(&self, node: NodeId) -> Option<A> {
        self.addresses.get(&node).copied()
    }

    /// A new view: its members and servers get what is sent to the group from now on, and a
    /// server announces their addresses.
    pub fn set_view(&mut self, view: &View) {
        let Some(u) = &mut self.unicast else {
            return;
        };
        let ids: BTreeSet<NodeId> = view
            .members
            .iter()
            .map(|m| m.id)
            .chain(view.servers.iter().map(|&s| NodeId::server(s)))
            .collect();
        if ids != u.view {
            u.view = ids;
            u.valid_until = None;
        }
        // Even with the same nodes: a member that restarted since knows nobody.
        if let Some(a) = &mut u.announcing {
            a.changed = true;
        }
    }

    /// Where a send to the group goes in unicast mode (see the module docs); empty in
    /// multicast mode.
    pub fn fan_out(&mut self, now: Instant) -> Arc<[A]> {
        let Some(u) = &mut self.unicast else {
            return Arc::from(Vec::new());
        };
        if u.valid_until.is_some_and(|t| now < t) {
            return Arc::clone(&u.targets);
        }
        let mut targets: Vec<A> = Vec::with_capacity(u.view.len() + u.seeds.len());
        let mut valid_until = now + RECENT;
        let mut add = |a: A| {
            if a != u.own && !targets.contains(&a) {
                targets.push(a);
            }
        };
        u.seeds.iter().copied().for_each(&mut add);
        for (node, addr) in &self.addresses {
            if u.view.contains(node) {
                add(*addr);
            } else if let Some(&at) = u.heard.get(node) {
                if now - at < RECENT {
                    add(*addr);
                    valid_until = valid_until.min(at + RECENT);
                }
            }
        }
        u.targets = Arc::from(targets);
        u.valid_until = Some(valid_until);
        Arc::clone(&u.targets)
    }

    /// For a server in unicast mode: the addresses to announce now, if an announcement is due
    /// (the view or an address in it changed, or [`ANNOUNCE_EVERY`] passed), else `None`.
    pub fn announcement(&mut self, now: Instant) -> Option<Vec<(NodeId, A)>> {
        let u = self.unicast.as_mut()?;
        let a = u.announcing.as_mut()?;
        let since = a.last.map(|last| now - last);
        let due = a.changed
            || since.is_none_or(|t| t >= ANNOUNCE_EVERY || (a.repeats > 0 && t >= REPEAT_GAP));
        if !due || u.view.is_empty() {
            return None;
        }
        a.repeats = match std::mem::take(&mut a.changed) {
            true => REPEATS,
            false => a.repeats.saturating_sub(1),
        };
        a.last = Some(now);
        let known: Vec<(NodeId, A)> = u
            .view
            .iter()
            .filter_map(|&node| Some((node, *self.addresses.get(&node)?)))
            .collect();
        (!known.is_empty()).then_some(known)
    }
}

#[cfg(test)]
mod tests;
