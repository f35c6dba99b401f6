//! Replay (issue 4 item 2): a captured datagram sent again later changes nothing. With a key
//! an attacker cannot forge datagrams but can record and replay sealed ones, so the protocol
//! itself must be idempotent against duplicates: tokens are accepted once per (epoch, hop),
//! messages once per seq, older epochs are stale, history records are final and deduplicated
//! by seq, and hellos and leaves carry the sender's incarnation.
//!
//! The real state machines (a server and two, then three, members) run here over a tiny
//! loss-free network in virtual time, through the real encoder and decoder. Every datagram is
//! recorded; later, all of them are replayed to every node, and nothing may change.

use mcast_chat::protocol::coordinator::{Coordinator, CoordinatorConfig};
use mcast_chat::protocol::events::Output;
use mcast_chat::protocol::member::{MemberConfig, MemberCore, Restored};
use mcast_chat::protocol::types::{ChatRecord, Epoch, Incarnation, NodeId, Pending, Seq, View};
use mcast_chat::protocol::wire;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use uuid::Uuid;

enum Core {
    Server(Box<Coordinator>),
    Member(Box<MemberCore>),
}

struct Node {
    core: Core,
    /// What the node delivered (its replica).
    replica: Vec<ChatRecord>,
    stopped: bool,
}

/// A loss-free multicast network in virtual time: every datagram reaches every node, in order.
struct Net {
    nodes: Vec<Node>,
    queue: VecDeque<Vec<u8>>,
    /// Every datagram sent so far.
    log: Vec<Vec<u8>>,
    now: Instant,
}

impl Net {
    fn new() -> Net {
        let now = Instant::now();
        let cfg = CoordinatorConfig::new(Duration::from_secs(3));
        let server = Coordinator::new(cfg, View::default(), Seq(0), now);
        let mut net = Net {
            nodes: Vec::new(),
            queue: VecDeque::new(),
            log: Vec::new(),
            now,
        };
        net.add(Core::Server(Box::new(server)));
        net
    }

    fn add(&mut self, core: Core) -> usize {
        self.nodes.push(Node {
            core,
            replica: Vec::new(),
            stopped: false,
        });
        self.nodes.len() - 1
    }

    fn add_member(&mut self, name: &str) -> usize {
        let cfg = MemberConfig::new(NodeId::random(), name.into(), Incarnation::random());
        let core = MemberCore::new(cfg, Restored::default(), self.now);
        self.add(Core::Member(Box::new(core)))
    }

    fn member(&mut self, i: usize) -> &mut MemberCore {
        match &mut self.nodes[i].core {
            Core::Member(m) => m,
            Core::Server(_) => panic!("node {i} is the server"),
        }
    }

    fn server(&self) -> &Coordinator {
        match &self.nodes[0].core {
            Core::Server(c) => c,
            Core::Member(_) => panic!("node 0 is the server"),
        }
    }

    fn type_line(&mut self, i: usize, text: &str) {
        let line = Pending {
            id: Uuid::new_v4(),
            text: text.into(),
            sent_at_ms: 0,
        };
        let now = self.now;
        self.member(i).submit(now, vec![line]);
    }

    /// Performs every node's outputs, in order.
    fn drain(&mut self) {
        for i in 0..self.nodes.len() {
            loop {
                let node = &mut self.nodes[i];
                // One output type for both cores; only whether a node stopped matters here.
                let out: Option<Output<(), ()>> = match &mut node.core {
                    Core::Server(c) => c.poll_output().map(erase),
                    Core::Member(m) => m.poll_output().map(erase),
                };
                let Some(out) = out else { break };
                match out {
                    Output::Deliver(rec) => node.replica.push(rec),
                    Output::Send(msg) => self.queue.push_back(wire::encode(&msg).unwrap()),
                    Output::ServeFromReplica { to, lo, hi } => {
                        let records = node
                            .replica
                            .iter()
                            .filter(|r| r.seq >= lo && r.seq <= hi)
                            .cloned()
                            .collect();
                        self.queue.extend(wire::pack_history(to, records));
                    }
                    Output::SendHistory { to, records } => {
                        self.queue.extend(wire::pack_history(to, records))
                    }
                    Output::Stop(_) => node.stopped = true,
                    Output::Event(()) | Output::Checkpoint => {}
                }
            }
        }
    }

    /// Hands one datagram to every node (the sender too, as multicast loopback does).
    fn deliver(&mut self, bytes: &[u8]) {
        let now = self.now;
        for node in &mut self.nodes {
            let msg = wire::decode(bytes).unwrap();
            match &mut node.core {
                Core::Server(c) => c.handle_datagram(now, msg),
                Core::Member(m) => m.handle_datagram(now, msg),
            }
        }
    }

    /// Runs the network and the timers for `span` of virtual time.
    fn run_for(&mut self, span: Duration) {
        let end = self.now + span;
        while self.now < end {
            self.drain();
            while let Some(bytes) = self.queue.pop_front() {
                self.deliver(&bytes);
                self.log.push(bytes);
                self.drain();
            }
            let next = self
                .nodes
                .iter()
                .filter_map(|n| match &n.core {
                    Core::Server(c) => c.poll_timeout(),
                    Core::Member(m) => m.poll_timeout(),
                })
                .min()
                .unwrap_or(end);
            self.now = next.clamp(self.now + Duration::from_millis(1), end);
            let now = self.now;
            for node in &mut self.nodes {
                match &mut node.core {
                    Core::Server(c) => c.handle_timeout(now),
                    Core::Member(m) => m.handle_timeout(now),
                }
            }
        }
        self.drain();
    }

    /// Runs until every member delivered `n` messages and the server archived them.
    fn run_until_delivered(&mut self, n: usize) {
        for _ in 0..600 {
            if self.nodes.iter().all(|node| node.replica.len() >= n) {
                return;
            }
            self.run_for(Duration::from_millis(100));
        }
        panic!("not delivered: {:?}", self.lengths());
    }

    fn lengths(&self) -> Vec<usize> {
        self.nodes.iter().map(|n| n.replica.len()).collect()
    }

    /// Every node's replica equals the server's, with each line exactly once.
    fn assert_converged(&self, n: usize) {
        let first = &self.nodes[0].replica;
        assert_eq!(first.len(), n);
        for node in &self.nodes {
            assert_eq!(&node.replica, first);
        }
        let mut ids: Vec<Uuid> = first.iter().map(|r| r.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "a line delivered twice");
    }

    /// What a replay must not change: who is in which view, and what each node holds.
    fn state(&mut self) -> Vec<(Epoch, usize, bool)> {
        let server = (
            self.server().view().epoch,
            self.nodes[0].replica.len(),
            false,
        );
        let mut out = vec![server];
        for i in 1..self.nodes.len() {
            let len = self.nodes[i].replica.len();
            let stopped = self.nodes[i].stopped;
            let m = self.member(i);
            out.push((m.view().epoch, len, stopped || !m.is_admitted()));
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
    let replicas: Vec<Vec<ChatRecord>> = net.nodes.iter().map(|n| n.replica.clone()).collect();
    let recorded = std::mem::take(&mut net.log);
    assert!(recorded.len() > 50, "{} datagrams", recorded.len());
    for bytes in &recorded {
        net.deliver(bytes);
        net.run_for(Duration::from_millis(1));
    }
    net.run_for(Duration::from_secs(10));
    assert_eq!(
        net.state(),
        before,
        "the replay changed a view or a replica"
    );
    for (node, replica) in net.nodes.iter().zip(&replicas) {
        assert_eq!(&node.replica, replica);
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
    let old_hellos = hellos(&net.log);
    let now = net.now;
    net.member(alice).leave(now);
    net.run_for(Duration::from_secs(5));
    let views = net.server().stats().views;
    for h in &old_hellos {
        net.deliver(h);
    }
    net.run_for(Duration::from_secs(30));
    assert!(!net.server().is_recovering(), "still recovering");
    assert!(net.server().stats().views <= views + 1);
    net.type_line(bob, "still here");
    net.run_for(Duration::from_secs(1));
    assert_eq!(
        net.nodes[bob].replica.len(),
        1,
        "bob's line is delivered at once"
    );
}

/// A refusal names the incarnation whose hello it answers and only stops a node that is
/// still joining: a replayed one stops nobody in the ring.
#[test]
fn a_replayed_refusal_does_not_stop_a_member_of_the_ring() {
    let mut net = Net::new();
    let _alice = net.add_member("alice");
    net.run_for(Duration::from_secs(5));
    let to = net.member(1).id();
    let refusal = wire::Msg::Refuse {
        to,
        incarnation: Incarnation(1),
        reason: "the ring is full (16 members)".into(),
    };
    net.deliver(&wire::encode(&refusal).unwrap());
    net.run_for(Duration::from_secs(1));
    assert!(!net.nodes[1].stopped, "a member of the ring stopped");
}

/// An output with its event and stop reason dropped.
fn erase<E, S>(out: Output<E, S>) -> Output<(), ()> {
    match out {
        Output::Deliver(rec) => Output::Deliver(rec),
        Output::Send(msg) => Output::Send(msg),
        Output::ServeFromReplica { to, lo, hi } => Output::ServeFromReplica { to, lo, hi },
        Output::SendHistory { to, records } => Output::SendHistory { to, records },
        Output::Event(_) => Output::Event(()),
        Output::Checkpoint => Output::Checkpoint,
        Output::Stop(_) => Output::Stop(()),
    }
}
