//! Unit tests of who coordinates: standing by, taking over from a silent coordinator,
//! accepting another's proposal only with its cut archived, stepping down for a newer view,
//! adding a server that stands by outside the view, and keeping to one chat. Helpers come
//! from the parent module.

use super::*;
use crate::protocol::events::CoordinatorStop;
use crate::protocol::wire::{pack_view, ViewHead};

const OTHER: ServerId = ServerId(2);

/// A view of `epoch` with members `0..n`, coordinated by `servers[0]`.
fn view(epoch: u64, n: u8, servers: &[ServerId]) -> View {
    View {
        epoch: Epoch(epoch),
        members: (0..n)
            .map(|m| Member {
                id: id(m),
                name: "m".into(),
            })
            .collect(),
        servers: servers.to_vec(),
    }
}

/// The vote of a server that formed `view` (cut at `cut`).
fn formed(view: View, cut: u64) -> Vote {
    Vote {
        group: Some(GROUP),
        promised: Ballot {
            epoch: view.epoch,
            server: view.servers[0],
        },
        primary: Some(Session {
            view,
            cut: Seq(cut),
        }),
        attempts: Vec::new(),
    }
}

/// Runs `c` until `until`; it must take over from OTHER with a gather of epoch 4 that asks
/// members 0 and 1 and OTHER. Returns the outputs.
fn takes_over(c: &mut Coordinator, until: Instant) -> Vec<CoordinatorOutput> {
    let out = untimed(run_until(c, until));
    assert!(out.contains(&Output::Event(CoordinatorEvent::TakingOver)));
    let (epoch, asked) = gathers(&out).pop().expect("a gather");
    assert_eq!(epoch, Epoch(4));
    assert_eq!(asked, [id(0), id(1), NodeId::server(OTHER)]);
    out
}

/// The members of `view`, which formed and installed it in this incarnation.
fn installed(view: View) -> Vec<Voter> {
    let mut v = members(view.members.len() as u8);
    for m in &mut v {
        m.vote = formed(view.clone(), 0);
        m.view_epoch = view.epoch;
    }
    v
}

fn beacon(server: ServerId, epoch: u64, standby: bool, members: u64) -> Msg {
    beacon_of_chat(GROUP, server, epoch, standby, members)
}

fn beacon_of_chat(
    group: GroupId,
    server: ServerId,
    epoch: u64,
    standby: bool,
    members: u64,
) -> Msg {
    Msg::Beacon {
        epoch: Epoch(epoch),
        cut: Seq(0),
        high: Seq(0),
        token_timeout_ms: 1000,
        server,
        members,
        digest: 0,
        group,
        standby,
    }
}

#[test]
fn a_standby_takes_over_once_the_coordinator_falls_silent_and_installs_a_view_without_it() {
    let t0 = Instant::now();
    let vote = formed(view(3, 2, &[OTHER, ME]), 0);
    let mut c = Coordinator::new(config(), vote, Seq(0), t0);
    c.handle_timeout(t0);
    let out = drain(&mut c);
    assert!(out.contains(&Output::Event(CoordinatorEvent::Standby {
        coordinator: Some(OTHER)
    })));
    assert!(!c.is_coordinating());
    // The coordinator's heartbeat keeps us standing by.
    let mut t = t0;
    for _ in 0..10 {
        t += 300 * MS;
        c.handle_datagram(t, beacon(OTHER, 3, false, 2));
        let out = untimed(run_until(&mut c, t));
        assert!(gathers(&out).is_empty(), "no takeover while it is heard");
    }
    // Silent for `takeover`: a gather with the members and the silent server.
    let out = takes_over(&mut c, t + config().takeover + config().beacon_interval);
    // Both members answer (they installed epoch 3): 3 of its 4 voters.
    let mut v = installed(view(3, 2, &[OTHER, ME]));
    let out = settle(&mut c, &mut v, t, out);
    assert!(
        views(&out).is_empty(),
        "it waits for the silent server a while"
    );
    let out = run_with(&mut c, &mut v, t + 2 * TOKEN_TIMEOUT);
    assert_eq!(views(&out)[0], (Epoch(4), vec![id(0), id(1)], Seq(0)));
    assert_eq!(c.view().servers, [ME], "the silent server is out");
    assert_eq!(c.stats().takeovers, 1);
}

#[test]
fn a_standby_accepts_a_proposal_only_once_its_archive_holds_the_cut() {
    let t0 = Instant::now();
    let vote = formed(view(3, 1, &[OTHER, ME]), 0);
    let mut c = Coordinator::new(config(), vote, Seq(0), t0);
    c.handle_timeout(t0);
    drain(&mut c);
    let gather = Msg::Gather {
        epoch: Epoch(4),
        part: 0,
        parts: 1,
        members: vec![id(0), NodeId::server(ME)],
        server: OTHER,
        group: GROUP,
        waiting: None,
    };
    c.handle_datagram(t0, gather);
    let out = drain(&mut c);
    assert!(matches!(out[0], Output::SaveVote(_)), "the promise first");
    assert!(matches!(out[1], Output::Send(Msg::Report { .. })));
    let proposal = Msg::Propose {
        epoch: Epoch(4),
        part: 0,
        parts: 1,
        members: view(4, 1, &[OTHER, ME]).members,
        servers: vec![OTHER, ME],
        cut: Seq(6),
        server: OTHER,
        group: GROUP,
        base: Epoch(3),
        dead: Vec::new(),
        to: None,
    };
    c.handle_datagram(t0, proposal);
    let out = drain(&mut c);
    assert_eq!(fetches(&out), [(NodeId::server(OTHER), Seq(1), Seq(4))]);
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Send(Msg::Accept { .. }))));
    let from_other = |seqs: std::ops::RangeInclusive<u64>| Msg::History {
        to: NodeId::server(ME),
        records: seqs.map(rec).collect(),
    };
    c.handle_datagram(t0, from_other(1..=4));
    assert_eq!(
        fetches(&drain(&mut c)),
        [(NodeId::server(OTHER), Seq(5), Seq(6))]
    );
    c.handle_datagram(t0, from_other(5..=6));
    let out = drain(&mut c);
    assert_eq!(delivered(&out), [5, 6]);
    let accepted = out.iter().position(|o| {
        matches!(
            o,
            Output::Send(Msg::Accept {
                epoch: Epoch(4),
                ..
            })
        )
    });
    let saved = out.iter().position(|o| matches!(o, Output::SaveVote(_)));
    assert!(saved.is_some() && saved < accepted, "{out:?}");
}

#[test]
fn a_coordinator_steps_down_for_a_newer_view_and_asks_for_it() {
    let (mut c, _, t0, _) = ring(2, 10);
    c.handle_datagram(t0 + MS, beacon(OTHER, 5, false, 2));
    let out = drain(&mut c);
    assert!(!c.is_coordinating());
    assert!(out.contains(&Output::Event(CoordinatorEvent::Standby {
        coordinator: Some(OTHER)
    })));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Send(Msg::ViewRequest { .. }))));
    // An older view's coordinator changes nothing.
    let (mut c, _, t0, _) = ring(2, 10);
    c.handle_datagram(t0 + MS, beacon(OTHER, 0, false, 0));
    assert!(c.is_coordinating());
}

#[test]
fn a_server_standing_by_outside_the_view_is_added_by_the_next_gather() {
    let (mut c, _, t0, _) = ring(2, 10);
    c.handle_datagram(t0 + MS, beacon(OTHER, 0, true, 0));
    let out = drain(&mut c);
    let (_, asked) = gathers(&out).pop().expect("a gather for the new server");
    assert_eq!(asked, [id(0), id(1), NodeId::server(OTHER)]);
}

#[test]
fn a_server_whose_chat_never_had_a_member_joins_the_chat_it_hears() {
    let (mut c, t0) = started(0);
    let theirs = beacon_of_chat(GroupId(4), OTHER, 2, false, 3);
    c.handle_datagram(t0 + MS, theirs);
    let out = drain(&mut c);
    assert!(!c.is_coordinating());
    assert_eq!(c.vote().group, Some(GroupId(4)));
    assert!(out.contains(&Output::Event(CoordinatorEvent::Standby {
        coordinator: None
    })));
}

#[test]
fn a_server_with_a_history_refuses_to_start_beside_another_chat() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.probe = Duration::from_secs(2);
    let vote = formed(view(3, 2, &[ME]), 5);
    let mut c = Coordinator::new(cfg, vote, Seq(5), t0);
    let theirs = beacon_of_chat(GroupId(4), OTHER, 7, false, 3);
    c.handle_datagram(t0 + MS, theirs);
    assert_eq!(drain(&mut c), [Output::Stop(CoordinatorStop::AnotherChat)]);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn a_refusal_for_a_server_ranked_before_us_makes_us_stand_by_any_other_is_overtaken() {
    // We coordinate epoch 3 of servers [ME, OTHER] and gather epoch 4.
    let t0 = Instant::now();
    let vote = formed(view(3, 2, &[ME, OTHER]), 0);
    let mut c = Coordinator::new(config(), vote.clone(), Seq(0), t0);
    c.handle_timeout(t0);
    drain(&mut c);
    c.handle_datagram(t0, hello(5));
    let (epoch, _) = gathers(&drain(&mut c)).pop().expect("a gather");
    let mut v = members(2);
    v[0].vote = vote.clone();
    // Member 0 promised a stale server's gather above ours (one outside our view): we go
    // above it.
    v[0].vote.promise(Ballot {
        epoch: epoch.next(),
        server: ServerId(7),
    });
    c.handle_datagram(t0, v[0].report(epoch));
    let out = drain(&mut c);
    assert_eq!(gathers(&out).last().map(|g| g.0), Some(epoch.next().next()));
    assert!(c.is_coordinating());

    // As the second server of [OTHER, ME], after taking over: a member that promised
    // OTHER's later gather makes us stand by.
    let vote = formed(view(3, 2, &[OTHER, ME]), 0);
    let mut c = Coordinator::new(config(), vote.clone(), Seq(0), t0);
    c.handle_timeout(t0);
    let out = untimed(run_until(&mut c, t0 + 2 * config().takeover));
    let (epoch, _) = gathers(&out).pop().expect("a takeover");
    v[1].vote = vote;
    v[1].vote.promise(Ballot {
        epoch: epoch.next(),
        server: OTHER,
    });
    c.handle_datagram(t0, v[1].report(epoch));
    let out = drain(&mut c);
    assert!(!c.is_coordinating());
    assert!(out.contains(&Output::Event(CoordinatorEvent::Standby {
        coordinator: Some(OTHER)
    })));
}

#[test]
fn a_server_whose_new_chat_falls_silent_before_adding_it_starts_one_of_its_own() {
    let (mut c, t0) = started(0);
    c.handle_datagram(t0 + MS, beacon_of_chat(GroupId(4), OTHER, 2, false, 0));
    drain(&mut c);
    assert_eq!(c.vote().group, Some(GroupId(4)));
    // Heard within twice `takeover`: it keeps waiting to be added.
    let quiet_until = t0 + MS + 2 * config().takeover;
    let out = untimed(run_until(&mut c, quiet_until - MS));
    assert!(!out.contains(&Output::Event(CoordinatorEvent::Started)));
    // Silent for longer: a chat of its own again, never the silent one's.
    let out = untimed(run_until(
        &mut c,
        quiet_until + 2 * config().beacon_interval,
    ));
    assert!(
        out.contains(&Output::Event(CoordinatorEvent::Started)),
        "{out:?}"
    );
    assert!(c.is_coordinating());
    assert_eq!(c.vote().group, Some(GROUP));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::SaveVote(v) if v.group == Some(GROUP))));
}

#[test]
fn a_server_outside_the_view_recovers_the_ring_once_every_server_of_it_is_silent() {
    let t0 = Instant::now();
    // It knows the chat's view (of members 0 and 1, served by OTHER alone) but is not in it.
    let mut vote = formed(view(3, 2, &[OTHER]), 0);
    vote.primary = None;
    let mut c = Coordinator::new(config(), vote, Seq(0), t0);
    c.handle_timeout(t0);
    c.handle_datagram(t0, beacon(OTHER, 3, false, 2));
    let out = drain(&mut c);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Send(Msg::ViewRequest { .. }))));
    let head = ViewHead {
        epoch: Epoch(3),
        cut: Seq(0),
        high: Seq(0),
        token_timeout_ms: 1000,
        server: OTHER,
        group: GROUP,
        servers: vec![OTHER],
    };
    for part in pack_view(&head, &view(3, 2, &[OTHER]).members) {
        c.handle_datagram(t0, part);
    }
    drain(&mut c);
    assert_eq!(c.view().epoch, Epoch(3));
    let out = untimed(run_until(&mut c, t0 + config().takeover / 2));
    assert!(gathers(&out).is_empty(), "its coordinator was heard");
    let t = t0 + config().takeover + 2 * config().beacon_interval;
    let out = takes_over(&mut c, t);
    // Both members report: 2 of the 3 voters of epoch 3, one of them trusted for the cut.
    let mut v = installed(view(3, 2, &[OTHER]));
    settle(&mut c, &mut v, t, out);
    let out = run_with(&mut c, &mut v, t + 2 * TOKEN_TIMEOUT);
    assert_eq!(views(&out)[0], (Epoch(4), vec![id(0), id(1)], Seq(0)));
    assert_eq!(c.view().servers, [ME]);
}

#[test]
fn a_fresh_server_that_hears_a_ring_but_no_server_waits_instead_of_starting_a_chat() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.probe = Duration::from_secs(2);
    let mut c = Coordinator::new(cfg.clone(), Vote::default(), Seq(0), t0);
    // A ring of a chat whose servers are all down: its token goes round.
    let token = |hop| {
        let mut t = Token::first(Epoch(5), id(0), id(1), Seq(3), 2);
        t.hop = hop;
        Msg::Token(t)
    };
    let mut t = t0;
    let mut out = Vec::new();
    for hop in 1..=20 {
        t = t0 + hop as u32 * 250 * MS;
        c.handle_datagram(t, token(hop));
        out.extend(untimed(run_until(&mut c, t)));
    }
    assert!(!out.contains(&Output::Event(CoordinatorEvent::Started)));
    assert_eq!(
        out.iter()
            .filter(|o| **o == Output::Event(CoordinatorEvent::RingWithoutServer))
            .count(),
        1,
        "said once"
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Send(_))), "{out:?}");
    // The ring falls quiet (its members left): a probe later, a chat of its own.
    let out = untimed(run_until(&mut c, t + 2 * cfg.probe));
    assert!(out.contains(&Output::Event(CoordinatorEvent::Started)));
}
