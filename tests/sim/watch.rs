//! What the driver asks about every node on every step, kept up to date incrementally so that a
//! ring of 128 members costs no more per step than a ring of five: each node's next deadline
//! (in a sorted set, so the earliest one and the due ones are found without polling every core)
//! and, for an admitted member, its epoch and whether it holds the token (for the G3 check on
//! token holders).
//!
//! A core only changes when something calls it, and the world performs its outputs after every
//! call ([`crate::sim::world::World::drain`]); that, a crash and a start mark the node stale, and
//! the next query reads it again. A core set directly on a node added just before (as
//! `replay.rs` does) is read at the first query too. Every 1024 queries the whole index is
//! compared with the cores, so a core changed behind the world's back fails loudly instead of
//! leaving a timer unfired.
//!
//! It only caches what the cores say: no check of its own, no state of the run.

use crate::sim::node::{Core, Node};
use mcast_chat::protocol::types::Epoch;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// What one node looks like to the per-step checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Seen {
    deadline: Option<Instant>,
    /// An admitted member: its view's epoch and whether it holds the token.
    ring: Option<(Epoch, bool)>,
}

impl Seen {
    fn of(node: &Node) -> Seen {
        Seen {
            deadline: node.core.as_ref().and_then(Core::poll_timeout),
            ring: node
                .member()
                .filter(|m| m.is_admitted())
                .map(|m| (m.view().epoch, m.holds_token())),
        }
    }
}

/// The cached view of every node, and which ones are stale.
#[derive(Default)]
pub struct Watch {
    seen: Vec<Seen>,
    stale: Vec<bool>,
    stale_list: Vec<usize>,
    /// Every armed deadline: (when, node).
    timers: BTreeSet<(Instant, usize)>,
    /// Admitted members by epoch: how many, and how many of them hold the token.
    epochs: BTreeMap<Epoch, (usize, usize)>,
    queries: u64,
}

impl Watch {
    /// A node was added (stale until the first query reads it).
    pub fn add(&mut self) {
        self.seen.push(Seen::default());
        self.stale.push(false);
        self.mark(self.seen.len() - 1);
    }

    /// Node `i` may have changed: read it again at the next query.
    pub fn mark(&mut self, i: usize) {
        if !self.stale[i] {
            self.stale[i] = true;
            self.stale_list.push(i);
        }
    }

    /// Reads the stale nodes again; every 1024 queries, compares every node.
    pub fn refresh(&mut self, nodes: &[Node]) {
        for i in std::mem::take(&mut self.stale_list) {
            self.stale[i] = false;
            let new = Seen::of(&nodes[i]);
            let old = std::mem::replace(&mut self.seen[i], new);
            if old.deadline != new.deadline {
                if let Some(at) = old.deadline {
                    self.timers.remove(&(at, i));
                }
                if let Some(at) = new.deadline {
                    self.timers.insert((at, i));
                }
            }
            if old.ring == new.ring {
                continue;
            }
            if let Some((epoch, holds)) = old.ring {
                let count = self.epochs.entry(epoch).or_default();
                *count = (count.0 - 1, count.1 - usize::from(holds));
                if count.0 == 0 {
                    self.epochs.remove(&epoch);
                }
            }
            if let Some((epoch, holds)) = new.ring {
                let count = self.epochs.entry(epoch).or_default();
                *count = (count.0 + 1, count.1 + usize::from(holds));
            }
        }
        self.queries += 1;
        if self.queries.is_multiple_of(1024) {
            for (i, node) in nodes.iter().enumerate() {
                let seen = Seen::of(node);
                assert_eq!(
                    seen, self.seen[i],
                    "harness bug: node {i}'s core changed without World::drain or World::start"
                );
            }
        }
    }

    /// The earliest deadline of any node.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// The nodes whose deadline is at or before `now`, in node order.
    pub fn due(&self, now: Instant) -> Vec<usize> {
        let mut due: Vec<usize> = self
            .timers
            .iter()
            .take_while(|&&(at, _)| at <= now)
            .map(|&(_, i)| i)
            .collect();
        due.sort_unstable();
        due
    }

    /// The newest epoch any admitted member is in, and how many of its members hold the token.
    pub fn holders(&self) -> Option<(Epoch, usize)> {
        self.epochs
            .last_key_value()
            .map(|(&epoch, &(_, holders))| (epoch, holders))
    }
}
