//! Unit tests of where a pass goes: to the whole group when it raised `safe` (everyone
//! delivers on it), else to the successor alone with a copy to the server, acknowledged by the
//! successor; an unacknowledged pass goes again to the group, and a successor that keeps
//! missing direct passes gets them through the group. A pass that overtakes the packs it counts
//! (they come through the other socket) waits for them a moment.

use super::*;

/// The destinations of the token passes among `out`: `None` for the group.
fn token_destinations(out: &[MemberOutput]) -> Vec<Option<NodeId>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(Msg::Token(_)) => Some(None),
            Output::SendTo {
                to,
                msg: Msg::Token(_),
            } => Some(Some(*to)),
            _ => None,
        })
        .collect()
}

fn acks(out: &[MemberOutput]) -> Vec<(NodeId, u64)> {
    out.iter()
        .filter_map(|o| match o {
            Output::SendTo {
                to,
                msg: Msg::TokenAck { hop, .. },
            } => Some((*to, *hop)),
            _ => None,
        })
        .collect()
}

/// A ring of three whose first member typed a line, was handed the first token and heard no
/// answer to its collection in time; its outputs (the pack, the collection and the pass that
/// sends the token round instead) wait to be drained.
fn three_with_a_line() -> (Instant, Vec<MemberCore>, Vec<NodeId>) {
    let now = Instant::now();
    let mut ring: Vec<MemberCore> = (0..3).map(|_| member(now)).collect();
    admit_ring(&mut ring, now, 1);
    let ids: Vec<NodeId> = ring.iter().map(MemberCore::id).collect();
    ring[0].submit(now, vec![line("one")]);
    outputs(&mut ring[0]);
    let first = Token::first(Epoch(1), SERVER_NODE, ids[0], Seq(0), 3);
    ring[0].handle_datagram(now, Msg::Token(first));
    let now = now + COLLECT_OVER;
    ring[0].handle_timeout(now);
    (now, ring, ids)
}

#[test]
fn a_pass_goes_to_the_successor_and_the_server_and_only_the_one_that_raises_safe_to_all() {
    let (now, mut ring, ids) = three_with_a_line();
    let out = outputs(&mut ring[0]);
    assert_eq!(token_destinations(&out), [Some(ids[1]), Some(SERVER_NODE)]);
    assert_eq!(acks(&out), [(SERVER_NODE, 1)], "the first token arrived");
    assert_eq!(
        ring[0].token_holder(),
        Some(ids[1]),
        "/who names the next holder"
    );
    let pack = out.iter().find_map(|o| match o {
        Output::Send(msg @ Msg::Data { .. }) => Some(msg.clone()),
        _ => None,
    });
    let pack = pack.expect("the line goes to the group");
    let mut token = passed_token(&drain_all(out));
    ring[1].handle_datagram(now, pack.clone());
    ring[1].handle_datagram(now, Msg::Token(token));
    let out = outputs(&mut ring[1]);
    assert_eq!(token_destinations(&out), [Some(ids[2]), Some(SERVER_NODE)]);
    assert_eq!(acks(&out), [(ids[0], 2)]);
    token = passed_token(&drain_all(out));
    // The author's slot showed the line when it stamped it: at the member before the
    // author every slot holds it, so safe rises there and the pass says so to all.
    ring[2].handle_datagram(now, pack);
    ring[2].handle_datagram(now, Msg::Token(token));
    let out = outputs(&mut ring[2]);
    assert_eq!(token_destinations(&out), [None]);
    assert!(acks(&out).is_empty(), "the pass to all shows it arrived");
    assert!(out.iter().any(|o| matches!(o, Output::Deliver(_))));
}

#[test]
fn an_unacknowledged_pass_goes_again_to_the_group_and_then_every_pass_does() {
    let t0 = Instant::now();
    let mut ring: Vec<MemberCore> = (0..2).map(|_| member(t0)).collect();
    admit_ring(&mut ring, t0, 1);
    let (me, next) = (ring[0].id(), ring[1].id());
    // Something is unsafe (and held), so the ring keeps passing at once.
    let mut token = Token::first(Epoch(1), next, me, Seq(0), 2);
    token.seq = Seq(1);
    ring[0].handle_datagram(t0, data(1, &[1]));
    let mut now = t0;
    for visit in 0..3u64 {
        token.hop = 1 + 2 * visit;
        ring[0].handle_datagram(now, Msg::Token(token.clone()));
        let out = outputs(&mut ring[0]);
        if visit == 0 {
            assert_eq!(token_destinations(&out), [Some(next), Some(SERVER_NODE)]);
        } else if visit == 1 {
            // A ring that lost a pass: each pass goes out twice for a while.
            let twice = [Some(next), Some(next), Some(SERVER_NODE)];
            assert_eq!(token_destinations(&out), twice);
        }
        if visit < 2 {
            now += Duration::from_secs(5);
            ring[0].handle_timeout(now);
            let again = outputs(&mut ring[0]);
            assert_eq!(token_destinations(&again), [None], "sent again to all");
        } else {
            assert_eq!(token_destinations(&out), [None, None], "two misses: to all");
        }
    }

    // An ack keeps direct passes going: a fresh ring, acked each time.
    let mut ring: Vec<MemberCore> = (0..2).map(|_| member(t0)).collect();
    admit_ring(&mut ring, t0, 1);
    let (me, next) = (ring[0].id(), ring[1].id());
    ring[0].handle_datagram(t0, data(1, &[1]));
    let mut now = t0;
    for visit in 0..3u64 {
        token.hop = 1 + 2 * visit;
        token.to = me;
        ring[0].handle_datagram(now, Msg::Token(token.clone()));
        let out = outputs(&mut ring[0]);
        assert_eq!(token_destinations(&out), [Some(next), Some(SERVER_NODE)]);
        let ack = Msg::TokenAck {
            epoch: Epoch(1),
            from: next,
            hop: token.hop + 1,
        };
        ring[0].handle_datagram(now, ack);
        now += Duration::from_secs(5);
        ring[0].handle_timeout(now);
        assert!(token_destinations(&outputs(&mut ring[0])).is_empty());
    }
}

/// The outputs as the other tests see them (destinations forgotten).
fn drain_all(out: Vec<MemberOutput>) -> Vec<MemberOutput> {
    out.into_iter().map(Output::anywhere).collect()
}

#[test]
fn a_token_ahead_of_its_packs_waits_for_them_and_asks_only_when_they_do_not_come() {
    let (now, mut ring, ids) = three_with_a_line();
    let out = drain_all(outputs(&mut ring[0]));
    let pack = packs(&out).pop().expect("a pack");
    let pack = Msg::Data {
        epoch: Epoch(1),
        group: GROUP,
        recs: pack,
    };
    let token = passed_token(&out);

    // The pass comes first: no visit yet; the pack follows and the visit asks for nothing.
    ring[1].handle_datagram(now, Msg::Token(token.clone()));
    assert!(token_destinations(&outputs(&mut ring[1])).is_empty());
    ring[1].handle_datagram(now, pack);
    let passed = passed_token(&drain_all(outputs(&mut ring[1])));
    assert!(passed.rtr.is_empty(), "{passed:?}");
    assert_eq!(passed.arus[1], Seq(1));

    // The pack never comes: after the wait, the visit asks for it.
    let mut late = passed.clone();
    late.to = ids[2];
    ring[2].handle_datagram(now, Msg::Token(late));
    assert!(token_destinations(&outputs(&mut ring[2])).is_empty());
    ring[2].handle_timeout(now + Duration::from_millis(5));
    let passed = passed_token(&drain_all(outputs(&mut ring[2])));
    assert_eq!(passed.rtr, [Seq(1)]);
}

#[test]
fn a_pass_that_goes_unanswered_while_no_server_is_heard_says_the_ring_is_stalled() {
    let (now, mut ring, ids) = three_with_a_line();
    outputs(&mut ring[0]);
    let stalled = |out: &[MemberOutput]| {
        out.iter()
            .any(|o| matches!(o, Output::Event(MemberEvent::RingStalled { .. })))
    };
    // Past the server's silence (5 s) and two retransmissions of the pass.
    let mut t = now;
    let mut out = Vec::new();
    while t < now + Duration::from_secs(6) {
        t = ring[0].poll_timeout().expect("timers run");
        ring[0].handle_timeout(t);
        out.extend(outputs(&mut ring[0]));
    }
    assert!(out.contains(&Output::Event(MemberEvent::ServerUnreachable)));
    let said = out
        .iter()
        .filter(|o| matches!(o, Output::Event(MemberEvent::RingStalled { .. })))
        .count();
    assert_eq!(said, 1, "said once: {out:?}");
    assert!(stalled(&out), "said once the server fell silent: {out:?}");
    assert_eq!(ring[0].stalled_on(), Some(ids[1]), "/who marks it silent");
    // The successor answers at last: the ring moves, and says so.
    let pass = passed_token(&drain_all(out));
    ring[0].handle_datagram(
        t,
        Msg::TokenAck {
            epoch: Epoch(1),
            from: ids[1],
            hop: pass.hop,
        },
    );
    assert!(outputs(&mut ring[0]).contains(&Output::Event(MemberEvent::RingMoves)));
    assert_eq!(ring[0].stalled_on(), None);
}

#[test]
fn a_request_for_the_token_that_its_silent_holder_never_answers_says_the_ring_is_stalled_and_tells_the_server(
) {
    let t0 = Instant::now();
    let mut ring: Vec<MemberCore> = (0..2).map(|_| member(t0)).collect();
    admit_ring(&mut ring, t0, 1);
    let (me, holder) = (ring[0].id(), ring[1].id());
    // We pass an idle token to the holder, which acknowledges it and then dies.
    let first = Token::first(Epoch(1), SERVER_NODE, me, Seq(0), 2);
    ring[0].handle_datagram(t0, Msg::Token(first));
    let idle = t0 + Duration::from_secs(1);
    ring[0].handle_timeout(idle);
    let pass = passed_token(&drain_all(outputs(&mut ring[0])));
    assert_eq!(pass.to, holder);
    let ack = Msg::TokenAck {
        epoch: Epoch(1),
        from: holder,
        hop: pass.hop,
    };
    ring[0].handle_datagram(idle, ack);
    ring[0].submit(idle, vec![line("anyone there?")]);
    // Past the server's silence (5 s) and two of the longest retransmission intervals.
    let mut out = Vec::new();
    let mut t = idle;
    while t < idle + Duration::from_secs(7) {
        t = ring[0].poll_timeout().expect("the wake goes on");
        ring[0].handle_timeout(t);
        out.extend(outputs(&mut ring[0]));
    }
    let said: Vec<&MemberOutput> = out
        .iter()
        .filter(|o| matches!(o, Output::Event(MemberEvent::RingStalled { .. })))
        .collect();
    assert_eq!(said.len(), 1, "said once: {out:?}");
    assert_eq!(ring[0].stalled_on(), Some(holder), "/who marks it silent");
    let told_server = out.iter().any(|o| {
        matches!(o, Output::SendTo { to, msg: Msg::Suspect { hop, .. } }
            if *to == SERVER_NODE && *hop == pass.hop)
    });
    assert!(
        told_server,
        "the server is told whom the ring waits on: {out:?}"
    );
    // The token comes at last: the ring moves, and says so.
    let mut back = pass.pass(holder, me);
    back.hop = pass.hop + 1;
    ring[0].handle_datagram(t, Msg::Token(back));
    assert!(outputs(&mut ring[0]).contains(&Output::Event(MemberEvent::RingMoves)));
    assert_eq!(ring[0].stalled_on(), None);
}
