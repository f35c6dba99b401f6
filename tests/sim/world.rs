//! The simulated group: the nodes, the network between them and the oracle watching them,
//! with the moves every test makes (hand a datagram to a node, fire due timers, crash a node)
//! and the checks that look at all nodes at once (token holders, convergence).
//!
//! It runs no schedule of its own: the test decides what happens when and jumps virtual time
//! (a scripted scenario in `simulation.rs`, fixed steps in `replay.rs`).
//!
//! Per step it costs about the same in a ring of 128 as in a ring of five: deadlines and token
//! holders come from the incremental [`Watch`], and the copies of one multicast are decoded
//! once (decoding is a pure function of the bytes; every datagram is still decoded, and one
//! that does not decode still fails the run).

use crate::sim::net::Network;
use crate::sim::node::{node_at, peers_datagrams, Core, Node};
use crate::sim::oracle::Oracle;
use crate::sim::trace;
use crate::sim::watch::Watch;
use mcast_chat::protocol::peers::AddressBook;
use mcast_chat::protocol::types::NodeId;
use mcast_chat::protocol::wire::{self, Msg};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Instant;

/// Decoded multicasts kept at most (then the cache starts over): far more than are in flight.
const DECODED: usize = 4096;

pub struct World {
    pub nodes: Vec<Node>,
    pub net: Network,
    pub oracle: Oracle,
    /// `MCAST_SIM_TRACE` is set: print every datagram, delivery and event.
    pub trace: bool,
    /// Deadlines and token holders of every node, refreshed as nodes change.
    watch: RefCell<Watch>,
    /// Recent multicasts, decoded, by their number.
    decoded: HashMap<u64, Msg>,
    /// Unicast mode: every node is started with these `--peer`s (the servers), and a send to
    /// the group goes to each node that needs it. `None`: multicast.
    unicast: Option<Vec<usize>>,
}

impl World {
    /// An empty group at `start`, with a perfect network seeded by `seed`.
    pub fn new(seed: u64, start: Instant) -> World {
        World {
            nodes: Vec::new(),
            net: Network::new(seed, 0, start),
            oracle: Oracle::new(std::env::var_os("MCAST_SIM_NO_CHAIN").is_some()),
            trace: std::env::var_os("MCAST_SIM_TRACE").is_some(),
            watch: RefCell::default(),
            decoded: HashMap::new(),
            unicast: None,
        }
    }

    /// Runs the group in unicast mode, every node given `seeds` as its `--peer`s.
    pub fn set_unicast(&mut self, seeds: Vec<usize>) {
        self.unicast = Some(seeds);
    }

    /// Adds a host (down until the test gives it a core); returns its number.
    pub fn add_node(&mut self, id: NodeId, name: String) -> usize {
        self.nodes.push(Node::new(id, name));
        self.watch.get_mut().add();
        self.net.add_node()
    }

    /// Node `i` (back) up with `core`, knowing nobody's address yet.
    pub fn start(&mut self, i: usize, core: Core) {
        let server = matches!(core, Core::Server(_));
        self.nodes[i].core = Some(core);
        self.nodes[i].book_epoch = None;
        self.nodes[i].peers = match &self.unicast {
            Some(seeds) => AddressBook::unicast(seeds.clone(), i, server),
            None => AddressBook::default(),
        };
        self.watch.get_mut().mark(i);
    }

    /// The watch, with every node that changed read again.
    fn watch(&self) -> std::cell::Ref<'_, Watch> {
        self.watch.borrow_mut().refresh(&self.nodes);
        self.watch.borrow()
    }

    pub fn now(&self) -> Instant {
        self.net.now()
    }

    /// Prints a trace line when tracing; `what` is only built then.
    pub fn trace(&self, what: impl FnOnce() -> String) {
        if self.trace {
            trace(self.net.elapsed(), &what());
        }
    }

    /// Performs node `i`'s outputs. A node that stops is taken down for good; any stop but a
    /// clean leave is a failure.
    pub fn drain(&mut self, i: usize) -> Result<(), String> {
        self.watch.get_mut().mark(i);
        let node = &mut self.nodes[i];
        let stopped = node.perform_outputs(i, &mut self.net, &mut self.oracle, self.trace)?;
        if let Some(stopped) = stopped {
            if !stopped.clean {
                return Err(format!("node {i} stopped: {}", stopped.reason));
            }
            node.left = true;
            node.core = None;
        }
        Ok(())
    }

    /// Hands one datagram to node `i` (if it is up) and performs what follows.
    pub fn receive(&mut self, i: usize, bytes: &[u8]) -> Result<(), String> {
        let msg = wire::decode(bytes).map_err(|e| format!("own datagram did not decode: {e}"))?;
        self.hand(i, msg, None)
    }

    /// Hands one decoded datagram to node `i` (if it is up), which notes where its sender is
    /// (unless it came from nowhere: a replay), and performs what follows.
    fn hand(&mut self, i: usize, msg: Msg, from: Option<usize>) -> Result<(), String> {
        let now = self.now();
        if self.nodes[i].core.is_none() {
            return Ok(());
        }
        if let Some(from) = from {
            // As the runtime: a member tells a joiner that said hello to it where servers are.
            self.nodes[i].peers.learn(&msg, from, now);
            if let Some(servers) = self.nodes[i].peers.introduction(&msg) {
                for bytes in peers_datagrams(self.nodes[i].id, servers) {
                    self.net.unicast(i, from, bytes);
                }
            }
        }
        self.trace(|| format!("{} <- {msg:?}", self.nodes[i].name));
        if let Msg::Peers { peers, .. } = &msg {
            // For the address book alone, as in the runtime.
            let announced = peers.iter().filter_map(|p| Some((p.id, node_at(p.addr)?)));
            self.nodes[i].peers.learn_announced(announced, now);
            return Ok(());
        }
        if let Some(core) = &mut self.nodes[i].core {
            core.handle_datagram(now, msg);
        }
        self.drain(i)
    }

    /// Hands the next datagram due by now to its receiver; false if none is due.
    pub fn receive_next(&mut self) -> Result<bool, String> {
        let Some(arrival) = self.net.pop_arrival() else {
            return Ok(false);
        };
        let msg = match self.decoded.get(&arrival.datagram) {
            Some(msg) => msg.clone(),
            None => {
                let msg = wire::decode(&arrival.bytes)
                    .map_err(|e| format!("own datagram did not decode: {e}"))?;
                if self.decoded.len() >= DECODED {
                    self.decoded.clear();
                }
                self.decoded.insert(arrival.datagram, msg.clone());
                msg
            }
        };
        self.hand(arrival.to, msg, Some(arrival.from))
            .map(|()| true)
    }

    /// Hands `bytes` to every node now, as if someone replayed it onto the group.
    pub fn inject(&mut self, bytes: &[u8]) -> Result<(), String> {
        (0..self.nodes.len()).try_for_each(|i| self.receive(i, bytes))
    }

    /// The earliest deadline of any node that is up.
    pub fn next_timer(&self) -> Option<Instant> {
        self.watch().next_timer()
    }

    /// The nodes whose deadline has passed.
    pub fn due(&self) -> Vec<usize> {
        self.watch().due(self.now())
    }

    /// Runs the timers of every node whose deadline has passed.
    pub fn fire_due_timers(&mut self) -> Result<(), String> {
        let now = self.now();
        for i in self.due() {
            if let Some(core) = &mut self.nodes[i].core {
                core.handle_timeout(now);
            }
            self.drain(i)?;
        }
        Ok(())
    }

    /// Node `i` crashes: its core is gone, its disk stays, what was in flight to it is lost.
    pub fn crash(&mut self, i: usize) {
        if self.nodes[i].core.take().is_some() {
            self.net.crash(i);
        }
        self.watch.get_mut().mark(i);
    }

    /// G3, as the nodes see it: among the members of the newest view, at most one holds the
    /// token. (The oracle checks what they send: one line per epoch and seq.)
    pub fn check_token_holders(&self) -> Result<(), String> {
        let Some((newest, holders)) = self.watch().holders() else {
            return Ok(());
        };
        if holders > 1 {
            return Err(format!("G3 violated: {holders} holders in epoch {newest}"));
        }
        Ok(())
    }

    /// G1 and G2 at the end: every typed line is delivered, exactly once, everywhere that is
    /// up, and all replicas are identical.
    pub fn converged(&self) -> bool {
        let mut live = self.nodes.iter().filter(|n| n.core.is_some());
        let Some(first) = live.next() else {
            return true;
        };
        // A line typed on a node that left is delivered too: it drained before leaving, or
        // stays in its outbox (then the node would still be up). Lines of crashed nodes that
        // came back are delivered after the restart. Lengths first: comparing the records is
        // only worth it once every replica has every line.
        let history = self.oracle.history_len();
        self.oracle.all_due_delivered()
            && first.disk.replica.len() == history
            && live.clone().all(|n| n.disk.replica.len() == history)
            && live.all(|n| n.disk.replica == first.disk.replica)
    }

    /// One line per node, for a failure message.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "typed {} lines, history {} long\n",
            self.oracle.typed_count(),
            self.oracle.history_len()
        );
        for (i, n) in self.nodes.iter().enumerate() {
            let state = match &n.core {
                Some(Core::Server(c)) => format!(
                    "server epoch {} members {} servers {:?} archived {} coordinating {} \
                     recovering {} promised {:?} primary {} attempts {}",
                    c.view().epoch,
                    c.view().members.len(),
                    c.view().servers,
                    c.archived(),
                    c.is_coordinating(),
                    c.is_recovering(),
                    c.vote().promised,
                    c.vote().primary_epoch(),
                    c.vote().attempts.len(),
                ),
                Some(Core::Member(m)) => format!(
                    "member admitted {} epoch {} delivered {} outbox {} holds {} stats {:?}",
                    m.is_admitted(),
                    m.view().epoch,
                    m.delivered(),
                    m.outbox().count(),
                    m.holds_token(),
                    m.stats()
                ),
                None => "down".into(),
            };
            s += &format!(
                "  node {i} ({}): replica {} | {state}\n",
                n.name,
                n.disk.replica.len()
            );
        }
        s
    }
}
