//! Replay: a captured datagram sent again later changes nothing. With a key
//! an attacker cannot forge datagrams but can record and replay sealed ones, so the protocol
//! itself must be idempotent against duplicates: tokens are accepted once per (epoch, hop),
//! messages once per seq, older epochs are stale, history records are final and deduplicated
//! by seq, and hellos and leaves carry the sender's incarnation.
//!
//! The real state machines (a server and two, then three, members) run here on the harness of
//! `sim/` over a loss-free network without delay, in virtual time, through the real encoder
//! and decoder, with the oracle checking G1 to G3 on every delivery and every `Data` sent.
//! Every datagram is recorded; later, all of them are replayed to every node, and nothing may
//! change. This file holds the replay scenarios only: performing outputs and moving datagrams
//! belong to the harness.

mod sim;

use mcast_chat::protocol::coordinator::{Coordinator, CoordinatorConfig};
use mcast_chat::protocol::member::{MemberConfig, MemberCore, Restored};
use mcast_chat::protocol::types::{ChatRecord, Epoch, Incarnation, NodeId, Pending, Seq, ServerId};
use mcast_chat::protocol::vote::Vote;
use mcast_chat::protocol::wire;
use sim::node::Core;
use sim::world::World;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The group of a replay test: node 0 is the server.
struct Net {
    world: World,
}

impl Net {
    fn new() -> Net {
        let now = Instant::now();
        let mut world = World::new(0, now);
        world.net.record(true);
        let server = world.add_node(NodeId::server(ServerId(1)), "server".into());
        let cfg = CoordinatorConfig::new(Duration::from_secs(3));
        let core = Coordinator::new(cfg, Vote::default(), Seq(0), now);
        world.nodes[server].core = Some(Core::Server(Box::new(core)));
        Net { world }
    }

    fn add_member(&mut self, name: &str) -> usize {
        let id = NodeId::random();
        let cfg = MemberConfig::new(id, name.into(), Incarnation::random());
        let core = MemberCore::new(cfg, Restored::default(), self.now());
        let i = self.world.add_node(id, name.into());
        self.world.nodes[i].core = Some(Core::Member(Box::new(core)));
        i
    }

    fn now(&self) -> Instant {
        self.world.now()
    }

    fn member(&mut self, i: usize) -> &mut MemberCore {
        match self.world.nodes[i].member_mut() {
            Some(m) => m,
            None => panic!("node {i} is not a member that is up"),
        }
    }

    fn server(&self) -> &Coordinator {
        self.world.nodes[0].server().expect("node 0 is the server")
    }

    fn replica(&self, i: usize) -> &[ChatRecord] {
        &self.world.nodes[i].disk.replica
    }

    /// Whether node `i` stopped (it left, or a failure would have ended the test already).
    fn stopped(&self, i: usize) -> bool {
        self.world.nodes[i].left
    }

    fn type_line(&mut self, i: usize, text: &str) {
        let line = Pending {
            id: Uuid::new_v4(),
            text: text.into(),
            sent_at_ms: 0,
        };
        self.world.oracle.typed(i, line.id, text);
        let now = self.now();
        self.member(i).submit(now, vec![line]);
        self.world.drain(i).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Hands one datagram to every node (the sender too, as multicast loopback does).
    fn inject(&mut self, bytes: &[u8]) {
        self.world.inject(bytes).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs the network and the timers for `span` of virtual time, jumping from event to
    /// event, and checks the token holders after each.
    fn run_for(&mut self, span: Duration) {
        let end = self.now() + span;
        let mut at_same_time = 0;
        loop {
            let result = self
                .world
                .receive_next()
                .and_then(|received| match received {
                    true => Ok(()),
                    false => self.world.fire_due_timers(),
                })
                .and_then(|()| self.world.check_token_holders());
            if let Err(e) = result {
                panic!("{e}\n{}", self.world.summary());
            }
            let next = [self.world.net.next_arrival(), self.world.next_timer()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= end => {
                    at_same_time = if at > self.now() { 0 } else { at_same_time + 1 };
                    assert!(at_same_time < 100_000, "livelock at {:?}", self.world.due());
                    self.world.net.advance_to(at);
                }
                _ => break,
            }
        }
        self.world.net.advance_to(end);
    }

    /// Runs until every node delivered `n` messages (the server archived them).
    fn run_until_delivered(&mut self, n: usize) {
        for _ in 0..600 {
            if self
                .world
                .nodes
                .iter()
                .all(|node| node.disk.replica.len() >= n)
            {
                return;
            }
            self.run_for(Duration::from_millis(100));
        }
        panic!("not delivered: {:?}", self.lengths());
    }

    fn lengths(&self) -> Vec<usize> {
        self.world
            .nodes
            .iter()
            .map(|n| n.disk.replica.len())
            .collect()
    }

    /// Every node's replica equals the server's, with each typed line exactly once.
    fn assert_converged(&self, n: usize) {
        let first = self.replica(0);
        assert_eq!(first.len(), n);
        for node in &self.world.nodes {
            assert_eq!(node.disk.replica, first);
        }
        let mut ids: Vec<Uuid> = first.iter().map(|r| r.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "a line delivered twice");
        assert!(self.world.converged(), "{}", self.world.summary());
    }

    /// What a replay must not change: who is in which view, and what each node holds.
    fn state(&mut self) -> Vec<(Epoch, usize, bool)> {
        let server = (self.server().view().epoch, self.replica(0).len(), false);
        let mut out = vec![server];
        for i in 1..self.world.nodes.len() {
            let len = self.replica(i).len();
            let gone = self.stopped(i);
            let state = match self.world.nodes[i].member() {
                Some(m) => (m.view().epoch, len, gone || !m.is_admitted()),
                None => (Epoch(0), len, true),
            };
            out.push(state);
        }
        out
    }
}

#[test]
fn every_datagram_of_a_chat_replayed_later_changes_nothing() {
    let mut net = Net::new();
    let alice = net.add_member("alice");
    let bob = net.add_member("bob");
    net.run_for(Duration::from_secs(5));
    for i in 0..5 {
        net.type_line(alice, &format!("alice {i}"));
        net.type_line(bob, &format!("bob {i}"));
    }
    net.run_until_delivered(10);
    // A view change, so that the replay holds datagrams of an older epoch as well.
    let carol = net.add_member("carol");
    net.run_for(Duration::from_secs(5));
    net.type_line(carol, "carol 0");
    net.run_until_delivered(11);
    net.run_for(Duration::from_secs(1));

    let before = net.state();
    let replicas: Vec<Vec<ChatRecord>> = (0..net.world.nodes.len())
        .map(|i| net.replica(i).to_vec())
        .collect();
    let recorded = net.world.net.take_log();
    assert!(recorded.len() > 50, "{} datagrams", recorded.len());
    for bytes in &recorded {
        net.inject(bytes);
        net.run_for(Duration::from_millis(1));
    }
    net.run_for(Duration::from_secs(10));
    assert_eq!(
        net.state(),
        before,
        "the replay changed a view or a replica"
    );
    for (i, replica) in replicas.iter().enumerate() {
        assert_eq!(net.replica(i), replica);
    }

    // The ring still works, and nothing from the replay is delivered again.
    for (i, who) in [alice, bob, carol].into_iter().enumerate() {
        net.type_line(who, &format!("after the replay {i}"));
    }
    net.run_until_delivered(14);
    net.run_for(Duration::from_secs(1));
    net.assert_converged(14);
}

/// The `Hello` datagrams in `log`.
fn hellos(log: &[Vec<u8>]) -> Vec<Vec<u8>> {
    log.iter()
        .filter(|b| matches!(wire::decode(b), Ok(wire::Msg::Hello { .. })))
        .cloned()
        .collect()
}

/// A joiner that never reports is dropped from the join list, and a departed incarnation's
/// hello is ignored: a replayed hello (or a client killed right after its hello) costs at
/// most one view, never an endless recovery.
#[test]
fn a_replayed_hello_of_a_departed_client_costs_at_most_one_view() {
    let mut net = Net::new();
    let alice = net.add_member("alice");
    let bob = net.add_member("bob");
    net.run_for(Duration::from_secs(5));
    let old_hellos = hellos(net.world.net.log());
    assert!(!old_hellos.is_empty(), "no hello recorded");
    let now = net.now();
    net.member(alice).leave(now);
    net.world.drain(alice).unwrap_or_else(|e| panic!("{e}"));
    net.run_for(Duration::from_secs(5));
    assert!(net.stopped(alice), "alice did not leave");
    let views = net.server().stats().views;
    for h in &old_hellos {
        net.inject(h);
    }
    net.run_for(Duration::from_secs(30));
    assert!(!net.server().is_recovering(), "still recovering");
    assert!(net.server().stats().views <= views + 1);
    net.type_line(bob, "still here");
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.replica(bob).len(), 1, "bob's line is delivered at once");
}

/// A refusal names the incarnation whose hello it answers and only stops a node that is
/// still joining: a replayed one stops nobody in the ring.
#[test]
fn a_replayed_refusal_does_not_stop_a_member_of_the_ring() {
    let mut net = Net::new();
    let alice = net.add_member("alice");
    net.run_for(Duration::from_secs(5));
    let to = net.member(alice).id();
    let refusal = wire::Msg::Refuse {
        to,
        incarnation: Incarnation(1),
        reason: "the ring is full (128 members)".into(),
    };
    // A member that stopped for any reason but a clean leave fails the harness at once.
    net.inject(&wire::encode(&refusal).unwrap());
    net.run_for(Duration::from_secs(1));
    assert!(!net.stopped(alice), "a member of the ring stopped");
    assert!(net.member(alice).is_admitted());
}
