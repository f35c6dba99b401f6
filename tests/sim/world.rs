//! The simulated group: the nodes, the network between them and the oracle watching them,
//! with the moves every test makes (hand a datagram to a node, fire due timers, crash a node)
//! and the checks that look at all nodes at once (token holders, convergence).
//!
//! It runs no schedule of its own: the test decides what happens when and jumps virtual time
//! (a scripted scenario in `simulation.rs`, fixed steps in `replay.rs`).

use crate::sim::net::Network;
use crate::sim::node::{Core, Node};
use crate::sim::oracle::Oracle;
use crate::sim::trace;
use mcast_chat::protocol::types::NodeId;
use mcast_chat::protocol::wire;
use std::time::Instant;

pub struct World {
    pub nodes: Vec<Node>,
    pub net: Network,
    pub oracle: Oracle,
    /// `MCAST_SIM_TRACE` is set: print every datagram, delivery and event.
    pub trace: bool,
}

impl World {
    /// An empty group at `start`, with a perfect network seeded by `seed`.
    pub fn new(seed: u64, start: Instant) -> World {
        World {
            nodes: Vec::new(),
            net: Network::new(seed, 0, start),
            oracle: Oracle::default(),
            trace: std::env::var_os("MCAST_SIM_TRACE").is_some(),
        }
    }

    /// Adds a host (down until the test gives it a core); returns its number.
    pub fn add_node(&mut self, id: NodeId, name: String) -> usize {
        self.nodes.push(Node::new(id, name));
        self.net.add_node()
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
        let now = self.now();
        if self.nodes[i].core.is_none() {
            return Ok(());
        }
        self.trace(|| format!("{} <- {msg:?}", self.nodes[i].name));
        if let Some(core) = &mut self.nodes[i].core {
            core.handle_datagram(now, msg);
        }
        self.drain(i)
    }

    /// Hands the next datagram due by now to its receiver; false if none is due.
    pub fn receive_next(&mut self) -> Result<bool, String> {
        match self.net.pop_arrival() {
            Some((to, bytes)) => self.receive(to, &bytes).map(|()| true),
            None => Ok(false),
        }
    }

    /// Hands `bytes` to every node now, as if someone replayed it onto the group.
    pub fn inject(&mut self, bytes: &[u8]) -> Result<(), String> {
        (0..self.nodes.len()).try_for_each(|i| self.receive(i, bytes))
    }

    /// The earliest deadline of any node that is up.
    pub fn next_timer(&self) -> Option<Instant> {
        self.nodes
            .iter()
            .filter_map(|n| n.core.as_ref()?.poll_timeout())
            .min()
    }

    /// The nodes whose deadline has passed.
    pub fn due(&self) -> Vec<usize> {
        let now = self.now();
        (0..self.nodes.len())
            .filter(|&i| {
                let core = self.nodes[i].core.as_ref();
                core.and_then(Core::poll_timeout).is_some_and(|d| d <= now)
            })
            .collect()
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
    }

    /// G3, as the nodes see it: among the members of the newest view, at most one holds the
    /// token. (The oracle checks what they send: one line per epoch and seq.)
    pub fn check_token_holders(&self) -> Result<(), String> {
        let members: Vec<_> = self
            .nodes
            .iter()
            .filter_map(|n| n.member().filter(|m| m.is_admitted()))
            .collect();
        let Some(newest) = members.iter().map(|m| m.view().epoch).max() else {
            return Ok(());
        };
        let holders = members
            .iter()
            .filter(|m| m.view().epoch == newest && m.holds_token())
            .count();
        if holders > 1 {
            return Err(format!("G3 violated: {holders} holders in epoch {newest}"));
        }
        Ok(())
    }

    /// G1 and G2 at the end: every typed line is delivered, exactly once, everywhere that is
    /// up, and all replicas are identical.
    pub fn converged(&self) -> bool {
        let live: Vec<&Node> = self.nodes.iter().filter(|n| n.core.is_some()).collect();
        let Some(first) = live.first() else {
            return true;
        };
        // A line typed on a node that left is delivered too: it drained before leaving, or
        // stays in its outbox (then the node would still be up). Lines of crashed nodes that
        // came back are delivered after the restart.
        live.iter().all(|n| n.disk.replica == first.disk.replica)
            && first.disk.replica.len() == self.oracle.typed_count()
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
                    "server epoch {} members {} archived {} recovering {}",
                    c.view().epoch,
                    c.view().members.len(),
                    c.archived(),
                    c.is_recovering()
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
