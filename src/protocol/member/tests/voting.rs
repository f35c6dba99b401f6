//! Unit tests of the member's side of membership: promises and refusals, accepting proposals,
//! installing only what it accepted, the quorum notice, beacons and views in parts.

use super::*;

#[test]
fn a_view_is_installed_only_if_we_promised_its_gather_and_accepted_its_proposal() {
    let now = Instant::now();
    let mut m = member(now);
    let me = members_named(&[m.id()]);
    // A restarted node sees its old view: not admission.
    m.handle_datagram(now, view_msg(1, me.clone()));
    assert!(!m.is_admitted());
    m.handle_datagram(now, gather_msg(3, vec![me[0].id]));
    let out = drain(&mut m);
    let saved = out.iter().position(|o| matches!(o, Output::SaveVote(_)));
    let reported = out
        .iter()
        .position(|o| matches!(o, Output::Send(Msg::Report { .. })));
    assert!(
        saved < reported && saved.is_some(),
        "promise saved first: {out:?}"
    );
    m.handle_datagram(now, view_msg(3, me.clone()));
    assert!(!m.is_admitted(), "promised, but no proposal accepted");
    m.handle_datagram(now, proposal_of(3, &me));
    let out = drain(&mut m);
    assert!(matches!(
        out[..],
        [
            Output::SaveVote(_),
            Output::Send(Msg::Accept {
                epoch: Epoch(3),
                ..
            })
        ]
    ));
    // A late view of an epoch below the gather we promised must not revive it.
    m.handle_datagram(now, view_msg(2, me.clone()));
    assert!(!m.is_admitted());
    m.handle_datagram(now, view_msg(3, me));
    assert!(m.is_admitted());
    assert_eq!(m.vote.primary_epoch(), Epoch(3));
}

#[test]
fn a_later_promise_forbids_installing_a_view_we_accepted() {
    let now = Instant::now();
    let mut m = member(now);
    let me = members_named(&[m.id()]);
    m.handle_datagram(now, gather_msg(3, vec![me[0].id]));
    m.handle_datagram(now, proposal_of(3, &me));
    m.handle_datagram(now, gather_msg(4, vec![me[0].id]));
    m.handle_datagram(now, view_msg(3, me));
    assert!(
        !m.is_admitted(),
        "its ring would count on a member that left it"
    );
    assert_eq!(m.vote.attempts.len(), 1, "still undecided");
}

#[test]
fn a_gather_of_an_epoch_promised_to_another_server_is_refused_with_the_promise() {
    let now = Instant::now();
    let mut m = member(now);
    let me = m.id();
    m.handle_datagram(now, gather_msg(3, vec![me]));
    drain(&mut m);
    let other = gather_from(ServerId(2), 3, vec![me]);
    m.handle_datagram(now, other);
    let out = drain(&mut m);
    assert!(
        matches!(&out[..], [Output::Send(Msg::Report { promised, .. })]
            if promised.server == SERVER && promised.epoch == Epoch(3)),
        "{out:?}"
    );
}

#[test]
fn a_member_waiting_for_a_quorum_says_so_once_per_count() {
    let now = Instant::now();
    let mut m = member(now);
    let me = m.id();
    let waiting = |reachable| Msg::Gather {
        epoch: Epoch(2),
        part: 0,
        parts: 1,
        members: vec![me],
        server: SERVER,
        group: GROUP,
        waiting: Some(QuorumWait {
            reachable,
            voters: 3,
        }),
    };
    let notices = |out: Vec<MemberOutput>| {
        out.into_iter()
            .filter(|o| matches!(o, Output::Event(MemberEvent::WaitingForQuorum { .. })))
            .count()
    };
    m.handle_datagram(now, waiting(1));
    assert_eq!(notices(drain(&mut m)), 1);
    m.handle_datagram(now, waiting(1));
    assert_eq!(notices(drain(&mut m)), 0, "the same count again");
    m.handle_datagram(now, waiting(2));
    assert_eq!(notices(drain(&mut m)), 1);
}

/// The server's beacon for a view of `epoch` with these members, cut at `cut`.
fn beacon_of(epoch: u64, members: &[NodeId], cut: u64) -> Msg {
    Msg::Beacon {
        epoch: Epoch(epoch),
        cut: Seq(cut),
        high: Seq(cut),
        token_timeout_ms: 3000,
        server: SERVER,
        members: members.len() as u64,
        digest: crate::protocol::types::digest_ids(members.iter().copied()),
        group: GROUP,
        standby: false,
    }
}

fn view_requests(out: &[MemberOutput]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::Send(Msg::ViewRequest { .. })))
        .count()
}

#[test]
fn a_beacon_of_the_view_we_hold_asks_nothing_and_keeps_the_server_heard() {
    let t0 = Instant::now();
    let mut m = member(t0);
    admit(&mut m, t0, 1);
    drain(&mut m);
    let me = m.id();
    let later = t0 + Duration::from_secs(4);
    m.handle_datagram(later, beacon_of(1, &[me], 0));
    assert_eq!(view_requests(&drain(&mut m)), 0);
    assert_eq!(
        m.timers.get(Timer::ServerSilence),
        Some(later + m.cfg.server_silence)
    );
}

#[test]
fn a_beacon_of_a_later_view_or_another_digest_makes_a_member_ask_once_per_beacon() {
    let t0 = Instant::now();
    let mut m = member(t0);
    admit(&mut m, t0, 1);
    drain(&mut m);
    let me = m.id();
    m.handle_datagram(t0, beacon_of(2, &[me], 0));
    assert_eq!(view_requests(&drain(&mut m)), 1, "a later epoch");
    m.handle_datagram(t0, beacon_of(1, &[me, NodeId::random()], 0));
    assert_eq!(
        view_requests(&drain(&mut m)),
        1,
        "the same epoch, other members"
    );
    m.handle_datagram(t0, beacon_of(0, &[], 0));
    assert_eq!(view_requests(&drain(&mut m)), 0, "an older view");
}

#[test]
fn a_joiner_asks_only_for_the_view_of_the_gather_it_reported_for() {
    let t0 = Instant::now();
    let mut m = member(t0);
    drain(&mut m);
    let me = m.id();
    m.handle_datagram(t0, beacon_of(4, &[NodeId::random()], 0));
    assert_eq!(
        view_requests(&drain(&mut m)),
        0,
        "it could not adopt that view"
    );
    gather(&mut m, t0, 5);
    drain(&mut m);
    m.handle_datagram(t0, beacon_of(5, &[me], 0));
    assert_eq!(view_requests(&drain(&mut m)), 1, "its admission got lost");
}

#[test]
fn a_beacon_of_our_view_starts_the_catch_up_to_its_cut() {
    let t0 = Instant::now();
    let mut m = member(t0);
    admit(&mut m, t0, 1);
    drain(&mut m);
    let me = m.id();
    m.handle_datagram(t0, beacon_of(1, &[me], 7));
    let out = drain(&mut m);
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Send(Msg::Fetch {
                lo: Seq(1),
                hi: Seq(7),
                ..
            })
        )),
        "{out:?}"
    );
}

#[test]
fn a_view_in_parts_is_installed_only_once_every_part_is_in() {
    let t0 = Instant::now();
    let mut m = member(t0);
    let me = m.id();
    let others: Vec<NodeId> = (0..3).map(|_| NodeId::random()).collect();
    let all = [others[0], others[1], others[2], me];
    m.handle_datagram(t0, gather_msg(1, all.to_vec()));
    m.handle_datagram(t0, proposal_of(1, &members_named(&all)));
    drain(&mut m);
    let part = |part: u32, ids: &[NodeId]| match view_of(1, ids) {
        Msg::View {
            epoch,
            members,
            servers,
            cut,
            high,
            token_timeout_ms,
            server,
            group,
            ..
        } => Msg::View {
            epoch,
            part,
            parts: 2,
            members,
            servers,
            cut,
            high,
            token_timeout_ms,
            server,
            group,
        },
        _ => unreachable!(),
    };
    m.handle_datagram(t0, part(1, &[others[2], me]));
    assert!(!m.is_admitted());
    m.handle_datagram(t0, part(0, &others[..2]));
    assert!(m.is_admitted());
    let ring: Vec<NodeId> = m.view().members.iter().map(|x| x.id).collect();
    assert_eq!(ring, [others[0], others[1], others[2], me]);
}

#[test]
fn a_member_reports_only_to_the_gather_part_that_names_it() {
    let t0 = Instant::now();
    let mut m = member(t0);
    drain(&mut m);
    let part = |part: u32, members: Vec<NodeId>| Msg::Gather {
        epoch: Epoch(1),
        part,
        parts: 2,
        members,
        server: SERVER,
        group: GROUP,
        waiting: None,
    };
    m.handle_datagram(t0, part(0, vec![NodeId::random()]));
    let reported = |out: &[MemberOutput]| {
        out.iter()
            .any(|o| matches!(o, Output::Send(Msg::Report { .. })))
    };
    assert!(!reported(&drain(&mut m)));
    m.handle_datagram(t0, part(1, vec![NodeId::random(), m.id()]));
    assert!(reported(&drain(&mut m)), "no assembly needed");
}

#[test]
fn a_ring_takes_a_gather_from_outside_its_view_only_once_its_own_servers_are_silent() {
    let t0 = Instant::now();
    let mut m = member(t0);
    admit(&mut m, t0, 2);
    drain(&mut m);
    let me = m.id();
    let outsider = ServerId(7);
    let gather = gather_from(outsider, 3, vec![me]);
    let mut standby_beacon = beacon_of(2, &[me], 0);
    if let Msg::Beacon {
        standby, server, ..
    } = &mut standby_beacon
    {
        (*standby, *server) = (true, outsider);
    }
    let reports = |out: Vec<MemberOutput>| {
        out.iter()
            .filter(|o| matches!(o, Output::Send(Msg::Report { .. })))
            .count()
    };
    // Its own server was heard a moment ago: the outsider's gather is ignored, however
    // often the outsider beacons.
    let t1 = t0 + Duration::from_secs(1);
    m.handle_datagram(t1, beacon_of(2, &[me], 0));
    m.handle_datagram(t1 + Duration::from_secs(2), standby_beacon.clone());
    m.handle_datagram(t1 + Duration::from_secs(2), gather.clone());
    assert_eq!(reports(drain(&mut m)), 0);
    // Silent for a token timeout (3 s, from the view): the outsider takes over.
    let t2 = t1 + Duration::from_secs(3);
    m.handle_datagram(t2, standby_beacon);
    m.handle_datagram(t2, gather);
    assert_eq!(reports(drain(&mut m)), 1);
}
