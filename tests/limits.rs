//! The size limits of docs/OPERATIONS.md ("Size limits"): the longest line, the largest datagram and
//! the largest ring, and what happens at each. The ring limit is checked on the server's state
//! machine through its public API (129 real clients would only make the test slow); the
//! line limit with the real binaries on loopback, with a key so that the largest line also
//! has to fit a sealed datagram.

mod common;

use common::{check_replica, client, count_messages, free_port, server};
use mcast_chat::protocol::coordinator::{Coordinator, CoordinatorConfig};
use mcast_chat::protocol::events::{CoordinatorOutput, Output};
use mcast_chat::protocol::limits::{MAX_LINE_BYTES, MAX_MEMBERS, MAX_NAME_BYTES};
use mcast_chat::protocol::types::{Epoch, GroupId, Incarnation, NodeId, Seq, ServerId};
use mcast_chat::protocol::vote::{Ballot, Vote};
use mcast_chat::protocol::wire::{self, Msg};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);

/// A fresh server past its start-up probe, which started a chat of its own, at `now`, past
/// the wait before its first join.
fn coordinator() -> (Coordinator, Instant) {
    let start = Instant::now();
    let cfg = CoordinatorConfig::new(Duration::from_secs(3));
    let probe_end = start + cfg.probe;
    let mut c = Coordinator::new(cfg, Vote::default(), Seq(0), start);
    c.handle_timeout(probe_end);
    let now = start + Duration::from_secs(10);
    c.handle_timeout(now);
    drain(&mut c);
    (c, now)
}

fn drain(c: &mut Coordinator) -> Vec<CoordinatorOutput> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn hello(from: NodeId, name: &str) -> Msg {
    Msg::Hello {
        from,
        incarnation: Incarnation(1),
        name: name.into(),
        delivered: Seq(0),
    }
}

fn refusal_to(outputs: &[CoordinatorOutput], to: NodeId) -> Option<String> {
    outputs.iter().find_map(|o| match o {
        Output::Send(Msg::Refuse { to: t, reason, .. }) if *t == to => Some(reason.clone()),
        _ => None,
    })
}

/// Lets the gather under way go out with every joiner (joins during a gather go out with its
/// next resend); every proposed member reports and accepts the proposal; returns the installed
/// view, put together from its parts, each of which fits a datagram.
fn report_all(
    c: &mut Coordinator,
    now: Instant,
    mut outputs: Vec<CoordinatorOutput>,
) -> Vec<NodeId> {
    let resend = now + CoordinatorConfig::new(Duration::from_secs(3)).gather_resend;
    c.handle_timeout(resend);
    outputs.extend(drain(c));
    let epoch = outputs
        .iter()
        .rev()
        .find_map(|o| match o {
            Output::Send(Msg::Gather { epoch, .. }) => Some(*epoch),
            _ => None,
        })
        .expect("a gather");
    // The last send of the gather: every part, each asking its share of the members.
    let mut members = Vec::new();
    for o in outputs.iter().rev() {
        if let Output::Send(Msg::Gather {
            epoch: e,
            part,
            members: m,
            ..
        }) = o
        {
            if *e == epoch {
                members.extend(m.iter().copied());
                if *part == 0 {
                    break;
                }
            }
        }
    }
    let (server, group) = (ServerId(1), GroupId(1));
    for id in &members {
        let report = Msg::Report {
            epoch,
            from: *id,
            incarnation: Incarnation(1),
            name: format!("m{}", id.short()),
            view_epoch: Epoch(0),
            aru: Seq(0),
            delivered: Seq(0),
            group,
            promised: Ballot { epoch, server },
            primary: None,
            attempts: Vec::new(),
        };
        c.handle_datagram(resend, report);
    }
    let proposed = drain(c)
        .iter()
        .any(|o| matches!(o, Output::Send(Msg::Propose { epoch: e, .. }) if *e == epoch));
    assert!(
        proposed,
        "a quorum of the chat's first view: the server alone"
    );
    for id in &members {
        c.handle_datagram(resend, Msg::Accept { epoch, from: *id });
    }
    let mut view = Vec::new();
    for o in drain(c) {
        if let Output::Send(msg @ Msg::View { epoch: e, .. }) = &o {
            if *e == epoch {
                assert!(wire::encode(msg).is_ok(), "each part fits one datagram");
                if let Msg::View { members, .. } = msg {
                    view.extend(members.iter().map(|m| m.id));
                }
            }
        }
    }
    assert!(!view.is_empty(), "the view is installed");
    view
}

/// Limit: 128 members, with the longest names (the view spans several datagrams). The 129th
/// join is refused with a reason the client prints before it exits 1; once a member leaves,
/// there is room again.
#[test]
fn the_129th_join_is_refused_until_a_member_leaves() {
    let (mut c, now) = coordinator();
    let ids: Vec<NodeId> = (0..MAX_MEMBERS).map(|_| NodeId::random()).collect();
    for (i, id) in ids.iter().enumerate() {
        c.handle_datagram(
            now,
            hello(*id, &format!("{i:n>width$}", width = MAX_NAME_BYTES)),
        );
    }
    let outputs = drain(&mut c);
    assert!(ids.iter().all(|id| refusal_to(&outputs, *id).is_none()));
    let view = report_all(&mut c, now, outputs);
    assert_eq!(view.len(), MAX_MEMBERS);
    assert_eq!(view, ids, "in order of joining");

    let late = NodeId::random();
    c.handle_datagram(now, hello(late, "late"));
    let reason = refusal_to(&drain(&mut c), late).expect("the 129th is refused");
    assert_eq!(reason, "the ring is full (128 members)");
    assert_eq!(c.stats().refused, 1);

    c.handle_datagram(
        now,
        Msg::Leave {
            from: ids[0],
            incarnation: Incarnation(1),
        },
    );
    drain(&mut c);
    c.handle_datagram(now, hello(late, "late"));
    assert_eq!(refusal_to(&drain(&mut c), late), None, "room after a leave");
}

/// Limit: a line of 1000 bytes. One byte more is refused at the prompt, with the limit in the
/// notice, and never sent; a line that escaping makes too large for a datagram is refused too,
/// and so is a blank one.
/// The longest line still travels sealed.
#[test]
fn a_line_over_the_limit_is_refused_at_the_prompt_and_never_delivered() {
    let port = free_port();
    let root = tempfile::tempdir().unwrap().keep();
    let key = root.join("key");
    std::fs::write(&key, b"a shared secret for the limits test").unwrap();
    let key = key.display().to_string();
    let extra = ["--key-file", key.as_str()];
    let srv = server(port, &root.join("server"), &extra);
    let mut alice = client(port, &root.join("alice"), "alice", &extra);
    alice.wait_joined(LONG);
    let longest = "x".repeat(MAX_LINE_BYTES);
    alice.send_line(&longest);
    alice.send_line(&"y".repeat(MAX_LINE_BYTES + 1));
    alice.send_line(&"\"".repeat(MAX_LINE_BYTES));
    alice.send_line("   ");
    alice.send_line("done");
    alice.wait_for("two messages", LONG, |l| count_messages(l) >= 2);
    let notices: Vec<&String> = alice
        .seen
        .iter()
        .filter(|l| l.contains("not sent"))
        .collect();
    assert!(
        notices[0].contains("1001 bytes is over the 1000-byte limit"),
        "{notices:?}"
    );
    assert!(notices[1].contains("once escaped"), "{notices:?}");
    assert!(
        notices[2].contains("empty line not sent"),
        "blank: {notices:?}"
    );
    alice.close_stdin();
    assert!(alice.wait_exit(LONG).success());
    let texts = check_replica(&alice.replica());
    assert_eq!(texts, vec![longest, "done".to_string()]);
    common::eventually("the server's archive", LONG, || {
        srv.replica() == alice.replica()
    });
}
