//! Unit tests of the member's rules: stale and early tokens, adoption of views, stamping and
//! safe delivery, joining and leaving. Each drives one `MemberCore` by hand in virtual time.

use super::*;
use crate::protocol::types::{ChatRecord, Epoch, GroupId, Member, ServerId};
use uuid::Uuid;

/// The server of every test, as a node.
const SERVER: ServerId = ServerId(1);
const SERVER_NODE: NodeId = NodeId::server(SERVER);
const GROUP: GroupId = GroupId(9);

mod collect;
mod direct;
mod voting;

/// Later than any collection's deadline (the token then goes round for the arus).
const COLLECT_OVER: Duration = Duration::from_millis(50);

fn member(now: Instant) -> MemberCore {
    let cfg = MemberConfig::new(NodeId::random(), "me".into(), Incarnation(1));
    MemberCore::new(cfg, Restored::default(), now)
}

/// Hands `token` to `m` and lets the visit happen now, even if packs it counts are missing
/// (they are lost, not late).
fn visit_now(m: &mut MemberCore, now: Instant, token: Token) {
    m.handle_datagram(now, Msg::Token(token));
    m.handle_timeout(now + Duration::from_millis(5));
}

/// Every output, with where each message goes.
fn outputs(m: &mut MemberCore) -> Vec<MemberOutput> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn drain(m: &mut MemberCore) -> Vec<MemberOutput> {
    std::iter::from_fn(|| m.poll_output())
        .map(Output::anywhere)
        .collect()
}

/// The records of every `Data` pack sent, pack by pack.
fn packs(out: &[MemberOutput]) -> Vec<Vec<ChatRecord>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(Msg::Data { recs, .. }) => Some(recs.clone()),
            _ => None,
        })
        .collect()
}

fn seqs(recs: &[ChatRecord]) -> Vec<u64> {
    recs.iter().map(|r| r.seq.0).collect()
}

/// A pack of `epoch` with a record (by someone else) for each of `seqs`.
fn data(epoch: u64, seqs: &[u64]) -> Msg {
    let recs = seqs
        .iter()
        .map(|&seq| ChatRecord {
            seq: Seq(seq),
            id: Uuid::from_u128(u128::from(seq)),
            from: NodeId(Uuid::from_u128(7)),
            name: "x".into(),
            text: format!("line {seq}"),
            sent_at_ms: 0,
        })
        .collect();
    Msg::Data {
        epoch: Epoch(epoch),
        group: GROUP,
        recs,
    }
}

fn line(text: &str) -> Pending {
    Pending {
        id: Uuid::new_v4(),
        text: text.into(),
        sent_at_ms: 0,
    }
}

/// Promises the gather of `epoch`, accepts its proposal of a view of `me` alone and installs
/// it; returns the first token.
fn admit(m: &mut MemberCore, now: Instant, epoch: u64) -> Token {
    let me = Member {
        id: m.id(),
        name: "me".into(),
    };
    install(m, now, epoch, std::slice::from_ref(&me));
    Token::first(Epoch(epoch), SERVER_NODE, me.id, Seq(0), 1)
}

/// The three rounds of a view change at `m`: the gather, the proposal and the view of
/// `members`.
fn install(m: &mut MemberCore, now: Instant, epoch: u64, members: &[Member]) {
    let ids: Vec<NodeId> = members.iter().map(|x| x.id).collect();
    m.handle_datagram(now, gather_msg(epoch, ids));
    m.handle_datagram(now, proposal_of(epoch, members));
    m.handle_datagram(now, view_msg(epoch, members.to_vec()));
}

fn gather_msg(epoch: u64, members: Vec<NodeId>) -> Msg {
    gather_from(SERVER, epoch, members)
}

/// A one-part gather of `epoch` by `server`, asking `members`.
fn gather_from(server: ServerId, epoch: u64, members: Vec<NodeId>) -> Msg {
    Msg::Gather {
        epoch: Epoch(epoch),
        part: 0,
        parts: 1,
        members,
        server,
        group: GROUP,
        waiting: None,
    }
}

fn proposal_of(epoch: u64, members: &[Member]) -> Msg {
    Msg::Propose {
        epoch: Epoch(epoch),
        part: 0,
        parts: 1,
        members: members.to_vec(),
        servers: vec![SERVER],
        cut: Seq(0),
        server: SERVER,
        group: GROUP,
        base: Epoch(0),
        dead: Vec::new(),
        to: None,
    }
}

fn view_msg(epoch: u64, members: Vec<Member>) -> Msg {
    Msg::View {
        epoch: Epoch(epoch),
        part: 0,
        parts: 1,
        members,
        servers: vec![SERVER],
        cut: Seq(0),
        high: Seq(0),
        token_timeout_ms: 3000,
        server: SERVER,
        group: GROUP,
    }
}

fn members_named(ids: &[NodeId]) -> Vec<Member> {
    ids.iter()
        .map(|&id| Member {
            id,
            name: "someone".into(),
        })
        .collect()
}

#[test]
fn g3_a_token_of_a_superseded_epoch_is_rejected_and_counted() {
    let now = Instant::now();
    let mut m = member(now);
    let old = admit(&mut m, now, 1);
    admit(&mut m, now, 2);
    m.handle_datagram(now, Msg::Token(old));
    assert!(!m.holds_token());
    assert_eq!(m.stats().stale, 1);
}

#[test]
fn g2_lines_are_stamped_in_typing_order_and_delivered_once_safe() {
    let now = Instant::now();
    let mut ring: Vec<MemberCore> = (0..2).map(|_| member(now)).collect();
    admit_ring(&mut ring, now, 1);
    let token = Token::first(Epoch(1), SERVER_NODE, ring[0].id(), Seq(0), 2);
    let m = &mut ring[0];
    m.submit(now, vec![line("one"), line("two")]);
    drain(m);
    m.handle_datagram(now, Msg::Token(token));
    let packs = packs(&drain(m));
    assert_eq!(packs.len(), 1, "one visit's lines travel in one pack");
    let sent: Vec<(Seq, &str)> = packs[0].iter().map(|r| (r.seq, &*r.text)).collect();
    assert_eq!(sent, vec![(Seq(1), "one"), (Seq(2), "two")]);
    assert_eq!(
        m.delivered(),
        Seq(0),
        "not safe before every member has shown it"
    );
    assert_eq!(m.outbox().count(), 2, "still in the outbox until delivered");
}

#[test]
fn alone_in_the_ring_the_author_delivers_what_it_stamps_at_once() {
    let now = Instant::now();
    let mut m = member(now);
    let token = admit(&mut m, now, 1);
    m.submit(now, vec![line("one"), line("two")]);
    m.handle_datagram(now, Msg::Token(token));
    assert_eq!(m.delivered(), Seq(2), "its own slot is every slot");
    assert_eq!(m.outbox().count(), 0);
}

#[test]
fn a_client_without_a_server_times_out_its_join() {
    let now = Instant::now();
    let mut m = member(now);
    m.handle_timeout(now);
    assert!(matches!(
        drain(&mut m)[..],
        [Output::Send(Msg::Hello { .. })]
    ));
    m.handle_timeout(now + Duration::from_secs(11));
    assert!(drain(&mut m).contains(&Output::Stop(MemberStop::JoinTimeout { ring_heard: false })));
}

fn gather(m: &mut MemberCore, now: Instant, epoch: u64) {
    let me = m.id();
    m.handle_datagram(now, gather_msg(epoch, vec![me]));
}

/// A view of `epoch` with these members, cut at 0.
fn view_of(epoch: u64, members: &[NodeId]) -> Msg {
    view_msg(epoch, members_named(members))
}

fn sent_hello(outputs: &[MemberOutput]) -> bool {
    outputs
        .iter()
        .any(|o| matches!(o, Output::Send(Msg::Hello { .. })))
}

#[test]
fn g2_a_leaver_that_was_never_admitted_keeps_joining_until_its_drain_deadline() {
    let t0 = Instant::now();
    let mut cfg = MemberConfig::new(NodeId::random(), "me".into(), Incarnation(1));
    cfg.drain_timeout = Duration::from_secs(2);
    let mut m = MemberCore::new(cfg, Restored::default(), t0);
    m.submit(t0, vec![line("typed before the join")]);
    m.leave(t0);
    m.handle_timeout(t0);
    assert!(sent_hello(&drain(&mut m)), "a leaver still asks to join");
    let t1 = t0 + Duration::from_secs(1);
    m.handle_timeout(t1);
    let out = drain(&mut m);
    assert!(sent_hello(&out) && !m.is_stopped(), "{out:?}");
    let t2 = t0 + Duration::from_secs(2);
    assert!(m.poll_timeout().is_some_and(|t| t <= t2));
    m.handle_timeout(t2);
    let out = drain(&mut m);
    assert!(out.contains(&Output::Stop(MemberStop::Left)), "{out:?}");
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Send(Msg::Leave { .. }))),
        "not in a ring: nobody to tell"
    );
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn g2_a_leaver_reports_to_gathers_and_stops_only_on_a_view_without_it() {
    let t0 = Instant::now();
    let mut m = member(t0);
    admit(&mut m, t0, 1);
    drain(&mut m);
    m.leave(t0);
    let out = drain(&mut m);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Send(Msg::Leave { .. }))),
        "nothing to drain: the Leave goes out at once; {out:?}"
    );
    gather(&mut m, t0, 2);
    let out = drain(&mut m);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Send(Msg::Report { .. }))),
        "{out:?}"
    );
    assert!(!m.is_stopped());
    let later = t0 + m.cfg.hello_interval;
    m.handle_timeout(later);
    assert!(drain(&mut m)
        .iter()
        .any(|o| matches!(o, Output::Send(Msg::Leave { .. }))));
    m.handle_datagram(later, view_of(2, &[NodeId::random()]));
    assert!(drain(&mut m).contains(&Output::Stop(MemberStop::Left)));
    assert!(m.is_stopped() && m.poll_timeout().is_none());
}

#[test]
fn g3_an_early_token_for_a_future_epoch_is_kept_until_its_view_arrives() {
    let now = Instant::now();
    let mut m = member(now);
    let me = m.id();
    admit(&mut m, now, 1);
    gather(&mut m, now, 2);
    m.handle_datagram(now, proposal_of(2, &members_named(&[me])));
    m.handle_datagram(
        now,
        Msg::Token(Token::first(Epoch(2), SERVER_NODE, me, Seq(0), 1)),
    );
    assert!(!m.holds_token());
    assert_eq!(m.stats().tokens_held, 0);
    m.handle_datagram(now, view_of(2, &[me]));
    assert!(
        m.holds_token(),
        "the kept token is visited once its view is in"
    );
    assert_eq!(m.stats().tokens_held, 1);
}

#[test]
fn a_member_left_out_of_a_view_joins_again_at_once_with_a_fresh_join_timeout() {
    let t0 = Instant::now();
    let mut m = member(t0);
    admit(&mut m, t0, 1);
    drain(&mut m);
    let t1 = t0 + Duration::from_secs(30);
    m.handle_datagram(t1, view_of(2, &[NodeId::random()]));
    assert!(drain(&mut m).contains(&Output::Event(MemberEvent::LeftOut)));
    assert!(!m.is_admitted());
    assert_eq!(m.poll_timeout(), Some(t1), "the Hello is due at once");
    assert_eq!(
        m.timers.get(Timer::JoinTimeout),
        Some(t1 + m.cfg.join_timeout)
    );
    m.handle_timeout(t1);
    assert!(sent_hello(&drain(&mut m)));
}

#[test]
fn flow_control_a_holder_stamps_nothing_while_max_in_flight_are_unsafe() {
    use crate::protocol::limits::MAX_IN_FLIGHT;
    let now = Instant::now();
    let mut m = member(now);
    let mut token = admit(&mut m, now, 1);
    // Our own slot (position 0) is the only one; pretend the ring has not caught up.
    token.seq = Seq(MAX_IN_FLIGHT);
    m.submit(now, vec![line("waits")]);
    drain(&mut m);
    // Our aru is 0, so safe stays 0 and seq - safe is the whole window.
    visit_now(&mut m, now, token.clone());
    let out = drain(&mut m);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Send(Msg::Data { .. }))),
        "{out:?}"
    );
    assert!(
        out.iter().any(|o| matches!(o, Output::Send(Msg::Token(_)))),
        "the ring keeps rotating"
    );
}

#[test]
fn a_holder_drops_requests_that_every_member_holds() {
    let now = Instant::now();
    let mut m = member(now);
    let mut token = admit(&mut m, now, 1);
    token.seq = Seq(10);
    token.safe = Seq(5);
    token.arus = vec![Seq(5)];
    token.rtr = vec![Seq(3), Seq(5)];
    for seq in 1..=5 {
        m.handle_datagram(now, data(1, &[seq]));
    }
    drain(&mut m);
    visit_now(&mut m, now, token);
    let passed = drain(&mut m).into_iter().find_map(|o| match o {
        Output::Send(Msg::Token(t)) => Some(t),
        _ => None,
    });
    let rtr = passed.expect("passed on").rtr;
    assert_eq!(
        rtr,
        (6..=10).map(Seq).collect::<Vec<_>>(),
        "only what is missing"
    );
}

/// Gathers and installs, at every member, a view of `ring` (in ring order).
fn admit_ring(ring: &mut [MemberCore], now: Instant, epoch: u64) {
    let view: Vec<Member> = ring
        .iter()
        .map(|m| Member {
            id: m.id(),
            name: m.name().into(),
        })
        .collect();
    for m in ring.iter_mut() {
        install(m, now, epoch, &view);
        drain(m);
    }
}

fn passed_token(out: &[MemberOutput]) -> Token {
    out.iter()
        .find_map(|o| match o {
            Output::Send(Msg::Token(t)) => Some(t.clone()),
            _ => None,
        })
        .expect("the token is passed on")
}

#[test]
fn g2_a_lost_pack_is_asked_for_seq_by_seq_and_sent_again_packed() {
    let now = Instant::now();
    let mut ring: Vec<MemberCore> = (0..3).map(|_| member(now)).collect();
    admit_ring(&mut ring, now, 1);
    let (a, b, c) = (0, 1, 2);
    ring[a].submit(now, vec![line("one"), line("two"), line("three")]);
    drain(&mut ring[a]);
    let first = Token::first(Epoch(1), SERVER_NODE, ring[a].id(), Seq(0), 3);
    ring[a].handle_datagram(now, Msg::Token(first));
    ring[a].handle_timeout(now + COLLECT_OVER);
    let out = drain(&mut ring[a]);
    let sent = packs(&out);
    assert_eq!(sent.len(), 1, "three short lines, one pack");
    assert_eq!(seqs(&sent[0]), [1, 2, 3]);
    // The pack reaches c but is lost on the way to b: all of it.
    ring[c].handle_datagram(
        now,
        Msg::Data {
            epoch: Epoch(1),
            group: GROUP,
            recs: sent[0].clone(),
        },
    );
    visit_now(&mut ring[b], now, passed_token(&out));
    let out = drain(&mut ring[b]);
    assert!(packs(&out).is_empty(), "b holds nothing to resend");
    let token = passed_token(&out);
    assert_eq!(token.rtr, [Seq(1), Seq(2), Seq(3)], "one request per seq");
    // c, the next holder, answers every request it can, in one pack, and clears them.
    visit_now(&mut ring[c], now, token);
    let out = drain(&mut ring[c]);
    let resent = packs(&out);
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0], sent[0], "the same records, packed again");
    assert!(passed_token(&out).rtr.is_empty());
    assert_eq!(ring[c].stats().retransmissions, 3);
    ring[b].handle_datagram(
        now,
        Msg::Data {
            epoch: Epoch(1),
            group: GROUP,
            recs: resent[0].clone(),
        },
    );
    assert_eq!(ring[b].order.aru(), Seq(3), "b holds the whole pack now");
    ring[b].handle_datagram(
        now,
        Msg::Data {
            epoch: Epoch(1),
            group: GROUP,
            recs: resent[0].clone(),
        },
    );
    assert_eq!(
        ring[b].stats().duplicates,
        3,
        "each record of a repeated pack counts"
    );
}

#[test]
fn a_holder_answers_the_requests_it_holds_in_one_pack_in_seq_order() {
    let now = Instant::now();
    let mut m = member(now);
    let mut token = admit(&mut m, now, 1);
    m.handle_datagram(now, data(1, &[1, 2, 3, 4, 5]));
    drain(&mut m);
    token.seq = Seq(9);
    token.rtr = vec![Seq(4), Seq(2), Seq(9)];
    visit_now(&mut m, now, token);
    let out = drain(&mut m);
    let resent = packs(&out);
    assert_eq!(resent.len(), 1, "{out:?}");
    assert_eq!(
        seqs(&resent[0]),
        [2, 4],
        "not consecutive, still in seq order"
    );
    let rtr = passed_token(&out).rtr;
    assert!(
        rtr.contains(&Seq(9)),
        "what it lacks stays asked for: {rtr:?}"
    );
    assert!(!rtr.contains(&Seq(2)) && !rtr.contains(&Seq(4)), "{rtr:?}");
}

#[test]
fn a_full_window_of_long_lines_goes_out_in_packs_that_each_fit() {
    use crate::protocol::limits::{MAX_LINE_BYTES, MAX_PLAINTEXT_BYTES};
    let now = Instant::now();
    let mut m = member(now);
    let token = admit(&mut m, now, 1);
    let lines: Vec<Pending> = (0..32)
        .map(|i| line(&"w".repeat(i * MAX_LINE_BYTES / 31)))
        .map(|mut p| {
            if p.text.is_empty() {
                p.text.push('w');
            }
            p
        })
        .collect();
    m.submit(now, lines);
    drain(&mut m);
    m.handle_datagram(now, Msg::Token(token));
    let out = drain(&mut m);
    let mut all = Vec::new();
    for o in &out {
        if let Output::Send(msg @ Msg::Data { recs, .. }) = o {
            let len = crate::protocol::wire::encode(msg).expect("fits").len();
            assert!(len <= MAX_PLAINTEXT_BYTES, "{len}");
            all.extend(seqs(recs));
        }
    }
    assert_eq!(all, (1..=32).collect::<Vec<_>>(), "the window, in order");
    assert!(packs(&out).len() < 32, "short lines share packs");
}

#[test]
fn a_token_waits_for_packs_still_on_their_way_but_not_for_a_hole_below_a_held_one() {
    let now = Instant::now();
    let mut ring: Vec<MemberCore> = (0..2).map(|_| member(now)).collect();
    admit_ring(&mut ring, now, 1);
    let (me, other) = (ring[0].id(), ring[1].id());
    let token = |seq: u64, hop: u64| {
        let mut t = Token::first(Epoch(1), SERVER_NODE, other, Seq(seq), 2).pass(other, me);
        t.hop = hop;
        t
    };
    let waiting = |m: &MemberCore| m.state.ring().is_some_and(|r| r.early_packs.is_some());
    let m = &mut ring[0];
    // The newest record the token counts has not come: it may be in flight, so wait.
    m.handle_datagram(now, data(1, &[1, 2]));
    m.handle_datagram(now, Msg::Token(token(4, 2)));
    assert!(waiting(m), "it waits for seqs 3 and 4");
    m.handle_datagram(now, data(1, &[3, 4]));
    assert!(!waiting(m), "they came: the visit at once");
    drain(m);
    // The newest is here, one below it is not: lost, asked for at once.
    m.handle_datagram(now, data(1, &[5, 7]));
    m.handle_datagram(now, Msg::Token(token(7, 4)));
    assert!(!waiting(m), "no wait for a lost pack");
    let asked = drain(m)
        .into_iter()
        .find_map(|o| match o {
            Output::Send(Msg::Token(t)) => Some(t.rtr),
            _ => None,
        })
        .or_else(|| {
            m.state
                .ring()
                .and_then(|r| r.held.as_ref())
                .map(|t| t.rtr.clone())
        });
    assert_eq!(asked, Some(vec![Seq(6)]));
}
