//! Unit tests of the token in a quiet ring: a holder that stamped keeps the token and asks
//! the members for their arus; each answers straight to it once it holds the lines; the last
//! answer raises `safe` and the pass says so to all. A collection that is not answered in time
//! sends the token round instead, and a member that asks for the token meanwhile gets it
//! straight away. A wake goes to the member last seen with the token and follows the token
//! from there. In a ring of two, the member that made a line safe keeps the token.

use super::*;

/// The messages among `out` sent to `to` alone.
fn sent_to(out: &[MemberOutput], to: NodeId) -> Vec<Msg> {
    out.iter()
        .filter_map(|o| match o {
            Output::SendTo { to: t, msg } if *t == to => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

/// The messages among `out` sent to the group.
fn sent_to_all(out: &[MemberOutput]) -> Vec<Msg> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(msg) => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

/// A Wake of epoch 1 from `from`, having seen the pass of `hop` (0: sent to the group).
fn wake(from: NodeId, hop: u64) -> Msg {
    Msg::Wake {
        epoch: Epoch(1),
        from,
        hop,
    }
}

fn delivered(out: &[MemberOutput]) -> Vec<Seq> {
    out.iter()
        .filter_map(|o| match o {
            Output::Deliver(rec) => Some(rec.seq),
            _ => None,
        })
        .collect()
}

/// A ring of four whose first member typed two lines and holds the first token: it has sent
/// the pack and its collection (returned as the group saw them).
fn four_collecting() -> (Instant, Vec<MemberCore>, Vec<Msg>) {
    let now = Instant::now();
    let mut ring: Vec<MemberCore> = (0..4).map(|_| member(now)).collect();
    admit_ring(&mut ring, now, 1);
    ring[0].submit(now, vec![line("one"), line("two")]);
    outputs(&mut ring[0]);
    let first = Token::first(Epoch(1), SERVER_NODE, ring[0].id(), Seq(0), 4);
    ring[0].handle_datagram(now, Msg::Token(first));
    let out = outputs(&mut ring[0]);
    let group = sent_to_all(&out);
    (now, ring, group)
}

#[test]
fn the_author_in_a_quiet_ring_collects_the_arus_and_passes_to_all_once_every_member_has_its_lines()
{
    let (now, mut ring, group) = four_collecting();
    let author = ring[0].id();
    assert!(
        matches!(
            group[..],
            [Msg::Data { .. }, Msg::AskAru { seq: Seq(2), .. }]
        ),
        "the pack, then the collection, and no pass: {group:?}"
    );
    assert!(ring[0].holds_token());
    let mut answers = Vec::new();
    for m in &mut ring[1..] {
        for msg in &group {
            m.handle_datagram(now, msg.clone());
        }
        let out = outputs(m);
        let to_author = sent_to(&out, author);
        assert!(
            matches!(to_author[..], [Msg::Aru { aru: Seq(2), .. }]),
            "{to_author:?}"
        );
        assert!(delivered(&out).is_empty(), "nothing is safe yet");
        answers.extend(to_author);
    }
    let last = answers.pop().expect("three answers");
    for aru in answers {
        ring[0].handle_datagram(now, aru);
        assert!(
            outputs(&mut ring[0]).is_empty(),
            "one member has not answered"
        );
    }
    ring[0].handle_datagram(now, last);
    let out = outputs(&mut ring[0]);
    let pass = sent_to_all(&out);
    let [Msg::Token(token)] = &pass[..] else {
        panic!("one pass, to the group: {out:?}");
    };
    assert_eq!((token.safe, token.to), (Seq(2), ring[1].id()));
    assert_eq!(token.arus, vec![Seq(2); 4], "every slot shows the lines");
    assert_eq!(delivered(&out), [Seq(1), Seq(2)]);
    assert_eq!(ring[0].stats().collects, 1);
    assert_eq!(ring[0].stats().collects_unanswered, 0);
    // Every member delivers on the pass.
    for m in &mut ring[1..] {
        m.handle_datagram(now, Msg::Token(token.clone()));
        assert_eq!(m.delivered(), Seq(2));
    }
}

#[test]
fn a_member_answers_a_collection_once_it_holds_what_was_asked_and_only_to_a_member() {
    let (now, mut ring, group) = four_collecting();
    let author = ring[0].id();
    let [pack, collect] = &group[..] else {
        panic!("{group:?}");
    };
    // The collection overtook the pack: the answer waits for it.
    ring[1].handle_datagram(now, collect.clone());
    assert!(sent_to(&outputs(&mut ring[1]), author).is_empty());
    ring[1].handle_datagram(now, pack.clone());
    assert_eq!(sent_to(&outputs(&mut ring[1]), author).len(), 1);
    // A stranger's collection, or one of another epoch, gets no answer.
    for msg in [
        Msg::AskAru {
            epoch: Epoch(1),
            from: NodeId::random(),
            seq: Seq(0),
        },
        Msg::AskAru {
            epoch: Epoch(2),
            from: author,
            seq: Seq(0),
        },
    ] {
        ring[2].handle_datagram(now, msg);
        assert!(outputs(&mut ring[2]).is_empty());
    }
}

#[test]
fn an_answer_above_what_was_stamped_promises_no_more_than_was_stamped() {
    let (now, mut ring, _) = four_collecting();
    let liar = ring[1].id();
    ring[0].handle_datagram(
        now,
        Msg::Aru {
            epoch: Epoch(1),
            from: liar,
            aru: Seq(1_000),
        },
    );
    assert!(outputs(&mut ring[0]).is_empty());
    let token = ring[0].state.ring().and_then(|r| r.held.clone());
    assert_eq!(token.map(|t| t.arus[1]), Some(Seq(2)));
}

#[test]
fn an_unanswered_collection_sends_the_token_round_with_the_answers_it_got() {
    let (now, mut ring, group) = four_collecting();
    let author = ring[0].id();
    for msg in &group {
        ring[1].handle_datagram(now, msg.clone());
    }
    let answer = sent_to(&outputs(&mut ring[1]), author);
    ring[0].handle_datagram(now, answer[0].clone());
    outputs(&mut ring[0]);
    ring[0].handle_timeout(now + COLLECT_OVER);
    let out = outputs(&mut ring[0]);
    let direct = sent_to(&out, ring[1].id());
    let [Msg::Token(token)] = &direct[..] else {
        panic!("the pass goes to the successor alone: {out:?}");
    };
    assert_eq!(token.arus[1], Seq(2), "the answer counts");
    assert_eq!(token.safe, Seq(0));
    assert!(!ring[0].holds_token());
    assert_eq!(ring[0].stats().collects_unanswered, 1);
}

#[test]
fn a_member_that_asks_for_the_token_during_a_collection_gets_it_straight_away() {
    let (now, mut ring, _) = four_collecting();
    let waker = ring[2].id();
    ring[0].handle_datagram(now, wake(waker, 0));
    let out = outputs(&mut ring[0]);
    let direct = sent_to(&out, waker);
    assert!(
        matches!(direct[..], [Msg::Token(ref t)] if t.to == waker),
        "past its successor, to the member that asked: {out:?}"
    );
    assert_eq!(ring[0].stats().collects_woken, 1);
}

#[test]
fn a_holder_with_lines_it_could_not_stamp_marks_the_pass_so_the_token_comes_back() {
    let now = Instant::now();
    let mut ring: Vec<MemberCore> = (0..3).map(|_| member(now)).collect();
    admit_ring(&mut ring, now, 1);
    let lines: Vec<Pending> = (0..40).map(|i| line(&format!("l{i}"))).collect();
    ring[0].submit(now, lines);
    outputs(&mut ring[0]);
    let first = Token::first(Epoch(1), SERVER_NODE, ring[0].id(), Seq(0), 3);
    ring[0].handle_datagram(now, Msg::Token(first));
    let group = sent_to_all(&outputs(&mut ring[0]));
    let author = ring[0].id();
    for i in [1, 2] {
        for msg in &group {
            ring[i].handle_datagram(now, msg.clone());
        }
        let answer = sent_to(&outputs(&mut ring[i]), author);
        ring[0].handle_datagram(now, answer[0].clone());
    }
    let pass = sent_to_all(&outputs(&mut ring[0]));
    let [Msg::Token(token)] = &pass[..] else {
        panic!("{pass:?}");
    };
    assert_eq!(token.safe, Seq(32), "a window's worth is safe");
    assert_eq!(token.wake, Some(author), "eight lines still wait");
}

#[test]
fn in_a_ring_of_two_the_author_passes_rather_than_collects() {
    let now = Instant::now();
    let mut ring: Vec<MemberCore> = (0..2).map(|_| member(now)).collect();
    admit_ring(&mut ring, now, 1);
    ring[0].submit(now, vec![line("hi")]);
    outputs(&mut ring[0]);
    let first = Token::first(Epoch(1), SERVER_NODE, ring[0].id(), Seq(0), 2);
    ring[0].handle_datagram(now, Msg::Token(first));
    let out = outputs(&mut ring[0]);
    assert!(
        matches!(sent_to(&out, ring[1].id())[..], [Msg::Token(_)]),
        "{out:?}"
    );
    assert_eq!(ring[0].stats().collects, 0);
}

#[test]
fn a_wake_is_forgotten_once_its_sender_holds_the_token() {
    let (now, mut ring, group) = four_collecting();
    let author = ring[0].id();
    ring[3].handle_datagram(now, wake(author, 0));
    for msg in group {
        ring[3].handle_datagram(now, msg);
    }
    outputs(&mut ring[3]);
    assert_eq!(ring[3].state.ring().and_then(|r| r.heard_wake), None);
}

/// A ring of four, idle: member 3 passed the token to member 0, and everyone saw that pass
/// (it raised `safe`); member 0 then passed it on to member 1, which holds it.
fn four_idle() -> (Instant, Vec<MemberCore>) {
    let now = Instant::now();
    let mut ring: Vec<MemberCore> = (0..4).map(|_| member(now)).collect();
    admit_ring(&mut ring, now, 1);
    let mut token = Token::first(Epoch(1), ring[3].id(), ring[0].id(), Seq(0), 4);
    token.hop = 5;
    for m in &mut ring {
        m.handle_datagram(now, Msg::Token(token.clone()));
        outputs(m);
    }
    ring[0].handle_timeout(now + Duration::from_secs(1));
    let out = outputs(&mut ring[0]);
    let pass = sent_to(&out, ring[1].id());
    let [Msg::Token(pass)] = &pass[..] else {
        panic!("{out:?}");
    };
    ring[1].handle_datagram(now, Msg::Token(pass.clone()));
    outputs(&mut ring[1]);
    assert!(ring[1].holds_token());
    (now, ring)
}

#[test]
fn a_wake_goes_to_the_member_last_seen_with_the_token_and_again_to_the_group() {
    let (now, mut ring) = four_idle();
    let (holder_seen, me) = (ring[0].id(), ring[2].id());
    ring[2].submit(now, vec![line("hi")]);
    let out = outputs(&mut ring[2]);
    assert!(
        matches!(sent_to(&out, holder_seen)[..], [Msg::Wake { hop: 5, from, .. }] if from == me),
        "{out:?}"
    );
    ring[2].handle_timeout(now + Duration::from_millis(60));
    let out = outputs(&mut ring[2]);
    assert!(
        matches!(sent_to_all(&out)[..], [Msg::Wake { hop: 0, .. }]),
        "{out:?}"
    );
}

#[test]
fn a_wake_follows_the_token_to_its_holder_which_passes_straight_to_the_member_that_asked() {
    let (now, mut ring) = four_idle();
    let (me, holder) = (ring[2].id(), ring[1].id());
    let wake = wake(me, 5);
    ring[0].handle_datagram(now, wake.clone());
    let out = outputs(&mut ring[0]);
    let on = sent_to(&out, holder);
    assert!(
        matches!(on[..], [Msg::Wake { hop: 6, from, .. }] if from == me),
        "after its own pass, with that pass's hop: {out:?}"
    );
    ring[1].handle_datagram(now, on[0].clone());
    let out = outputs(&mut ring[1]);
    assert!(
        matches!(sent_to(&out, me)[..], [Msg::Token(ref t)] if t.to == me && t.hop == 7),
        "{out:?}"
    );
    // A wake that saw no later pass than we know of stays here: the token may be coming.
    ring[3].handle_datagram(now, wake);
    assert!(outputs(&mut ring[3]).is_empty());
    assert_eq!(
        ring[3].state.ring().and_then(|r| r.heard_wake).map(|w| w.0),
        Some(me)
    );
}

#[test]
fn in_a_ring_of_two_the_member_that_made_a_line_safe_keeps_the_token_and_answers_at_once() {
    let now = Instant::now();
    let mut ring: Vec<MemberCore> = (0..2).map(|_| member(now)).collect();
    admit_ring(&mut ring, now, 1);
    let (a, b) = (ring[0].id(), ring[1].id());
    ring[0].submit(now, vec![line("question?")]);
    outputs(&mut ring[0]);
    ring[0].handle_datagram(
        now,
        Msg::Token(Token::first(Epoch(1), SERVER_NODE, a, Seq(0), 2)),
    );
    let out = outputs(&mut ring[0]);
    let pack = sent_to_all(&out).remove(0);
    let pass = sent_to(&out, b).remove(0);
    ring[1].handle_datagram(now, pack);
    ring[1].handle_datagram(now, pass);
    let out = outputs(&mut ring[1]);
    let told = sent_to_all(&out);
    assert!(
        matches!(told[..], [Msg::Token(ref t)] if t.from == b && t.to == b && t.safe == Seq(1)),
        "a pass to itself, to the group: {out:?}"
    );
    assert!(ring[1].holds_token());
    assert_eq!(ring[1].delivered(), Seq(1));
    // Its own pass comes back through the group: nothing happens.
    ring[1].handle_datagram(now, told[0].clone());
    assert!(outputs(&mut ring[1]).is_empty());
    // The answer goes out at once, without a wake.
    ring[1].submit(now, vec![line("answer")]);
    let out = outputs(&mut ring[1]);
    assert!(
        matches!(sent_to_all(&out)[..], [Msg::Data { .. }]),
        "{out:?}"
    );
    assert!(matches!(sent_to(&out, a)[..], [Msg::Token(_)]), "{out:?}");
    // The author learns the line is safe from that pass.
    ring[0].handle_datagram(now, told[0].clone());
    assert_eq!(ring[0].delivered(), Seq(1));
}
