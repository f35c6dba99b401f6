//! Unit tests of the server at the scale of a full ring: views and gathers in parts, the
//! compact heartbeat and view requests, joins that arrive during a gather, the 129th join.
//! Helpers come from the parent module.

use super::*;

/// A hello from member `n` with a name of the longest kind.
fn long_hello(n: u8) -> Msg {
    Msg::Hello {
        from: id(n),
        incarnation: Incarnation(1),
        name: format!("{n:0>32}"),
        delivered: Seq(0),
    }
}

/// A ring of `n` members with 32-byte names, installed at the returned instant.
fn big_ring(n: u8) -> (Coordinator, Vec<Voter>, Instant, Vec<CoordinatorOutput>) {
    let (mut c, t0) = started(0);
    let mut v = members(n);
    (0..n).for_each(|m| c.handle_datagram(t0, long_hello(m)));
    drain(&mut c);
    // The joins after the first go out with the gather's next resend.
    let out = untimed(run_until(&mut c, t0 + config().gather_resend));
    let out = settle(&mut c, &mut v, t0, out);
    assert_eq!(installs(&out).len(), 1);
    (c, v, t0, out)
}

#[test]
fn the_129th_join_is_refused_because_the_ring_is_full() {
    let (mut c, _, t0, _) = big_ring(128);
    assert_eq!(c.view().members.len(), 128);
    c.handle_datagram(t0 + MS, long_hello(200));
    let out = drain(&mut c);
    assert!(
        out.contains(&Output::Send(Msg::Refuse {
            to: id(200),
            incarnation: Incarnation(1),
            reason: "the ring is full (128 members)".into(),
        })),
        "{out:?}"
    );
    assert!(gathers(&out).is_empty());
}

#[test]
fn a_view_and_a_proposal_of_a_full_ring_go_out_in_parts_that_each_fit_a_datagram() {
    let (c, _, _, out) = big_ring(128);
    let expected: Vec<NodeId> = c.view().members.iter().map(|m| m.id).collect();
    for kind in ["view", "propose"] {
        let mut members = Vec::new();
        let mut count = 0;
        for o in &out {
            let (part, parts, m) = match (kind, o) {
                (
                    "view",
                    Output::Send(Msg::View {
                        part,
                        parts,
                        members,
                        ..
                    }),
                ) => (part, parts, members),
                (
                    "propose",
                    Output::Send(Msg::Propose {
                        part,
                        parts,
                        members,
                        ..
                    }),
                ) => (part, parts, members),
                _ => continue,
            };
            let Output::Send(msg) = o else { continue };
            assert_eq!(*part, count);
            assert!(*parts > 1);
            assert!(crate::protocol::wire::encode(msg).is_ok());
            members.extend(m.iter().map(|m| m.id));
            count += 1;
        }
        assert_eq!(members, expected, "{kind}");
    }
}

#[test]
fn a_gather_of_a_full_ring_goes_out_in_parts_on_every_resend() {
    let (mut c, _, t0, _) = big_ring(128);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    let out = untimed(run_until(&mut c, t1 + config().gather_resend));
    let parts: Vec<(Epoch, Vec<NodeId>)> = gathers(&out);
    assert!(parts.len() >= 2 && parts.iter().all(|p| p.0 == epoch));
    let per_send: usize = parts.iter().map(|p| p.1.len()).sum();
    assert_eq!(per_send, 128, "one send asks every member once");
}

#[test]
fn a_join_during_a_gather_goes_out_with_the_next_resend_not_at_once() {
    let (mut c, _, t0, _) = ring(2, 10);
    c.handle_datagram(t0 + MS, hello(8));
    let (epoch, _) = gathers(&drain(&mut c))
        .pop()
        .expect("the first join gathers");
    for n in 9..20 {
        c.handle_datagram(t0 + 2 * MS, hello(n));
    }
    assert!(gathers(&drain(&mut c)).is_empty(), "no gather per hello");
    let out = untimed(run_until(&mut c, t0 + MS + config().gather_resend));
    let sent = gathers(&out);
    assert_eq!(sent.len(), 1, "one resend");
    assert_eq!(sent[0].0, epoch);
    assert_eq!(sent[0].1.len(), 2 + 12, "with every joiner so far");
}

#[test]
fn joiners_proposed_after_the_first_report_get_time_to_answer_and_share_one_view() {
    let (mut c, mut v, t0, _) = ring(2, 10);
    v.extend([Voter::new(id(8)), Voter::new(id(9))]);
    c.handle_datagram(t0 + MS, hello(8));
    let (epoch, _) = gathers(&drain(&mut c)).pop().expect("a gather");
    // The old members answer at once: the deadline shrinks to 100 ms after the first.
    for n in [0, 1] {
        let report = v[n].answer_gather(epoch, ME);
        c.handle_datagram(t0 + 2 * MS, report);
    }
    // A joiner arrives before the deadline; it is asked only at the next resend.
    c.handle_datagram(t0 + 50 * MS, hello(9));
    let report = v[2].answer_gather(epoch, ME);
    c.handle_datagram(t0 + 60 * MS, report);
    let resend = t0 + MS + config().gather_resend;
    let out = untimed(run_until(&mut c, resend));
    assert!(
        installs(&out).is_empty(),
        "the gather waits for the new joiner"
    );
    assert_eq!(gathers(&out).len(), 1);
    let report = v[3].answer_gather(epoch, ME);
    c.handle_datagram(resend + 5 * MS, report);
    let out = settle_now(&mut c, &mut v, resend + 5 * MS);
    assert_eq!(
        views(&out),
        [(epoch, vec![id(0), id(1), id(8), id(9)], Seq(10))]
    );
}

#[test]
fn a_joiner_proposed_but_not_yet_asked_when_the_gather_ends_joins_the_next_one() {
    let (mut c, mut v, t0, _) = ring(2, 10);
    c.handle_datagram(t0 + MS, hello(8));
    let (epoch, _) = gathers(&drain(&mut c)).pop().expect("a gather");
    // Slow answers (300 ms) leave the deadline at the gather's report timeout (1 s).
    run_until(&mut c, t0 + 301 * MS);
    for n in [0, 1] {
        let report = v[n].answer_gather(epoch, ME);
        c.handle_datagram(t0 + 301 * MS, report);
    }
    // Member 9 comes after the last resend before the deadline: it is never asked.
    run_until(&mut c, t0 + 900 * MS);
    c.handle_datagram(t0 + 900 * MS, hello(9));
    let out = untimed(run_until(&mut c, t0 + MS + TOKEN_TIMEOUT));
    let out = settle(&mut c, &mut v, t0 + MS + TOKEN_TIMEOUT, out);
    assert_eq!(views(&out), [(epoch, vec![id(0), id(1)], Seq(10))]);
    let next = gathers(&out)
        .pop()
        .expect("a gather right after the install");
    assert_eq!(next, (epoch.next(), vec![id(0), id(1), id(9)]));
}

#[test]
fn the_heartbeat_is_a_beacon_with_the_views_size_and_digest() {
    let (mut c, _, t0, _) = ring(3, 10);
    let at = t0 + config().beacon_interval;
    let out = untimed(run_until(&mut c, at));
    let digest = c.view().digest();
    assert_eq!(beacons(&out), [(Epoch(1), 3, digest)]);
    assert!(
        views(&out).is_empty(),
        "the whole view goes out only when asked"
    );
}

#[test]
fn view_requests_resend_every_part_at_most_once_per_gap() {
    let (mut c, _, t0, out) = big_ring(100);
    let parts = views(&out).len();
    assert!(parts > 1);
    let ask = |n: u8| Msg::ViewRequest {
        from: id(n),
        epoch: Epoch(0),
    };
    // Right after the install: within the gap, so one resend at its end for everyone.
    for n in 0..100 {
        c.handle_datagram(t0 + MS, ask(n));
    }
    assert!(drain(&mut c).is_empty());
    let gap = crate::protocol::coordinator::announce::VIEW_RESEND_GAP;
    assert_eq!(c.poll_timeout(), Some(t0 + gap));
    let out = untimed(run_until(&mut c, t0 + gap));
    assert_eq!(views(&out).len(), parts, "one resend of every part");
    // Long after the last send: at once, and once.
    let later = t0 + 5 * gap;
    for n in 0..100 {
        c.handle_datagram(later, ask(n));
    }
    assert_eq!(views(&drain(&mut c)).len(), parts);
}

#[test]
fn g4_each_new_report_keeps_the_gather_open_but_repeated_ones_do_not() {
    let (mut c, mut v, t0, _) = ring(4, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    // Member 0 answers after 10 ms: the others get 100 ms from the latest new report.
    let first = v[0].answer_gather(epoch, ME);
    c.handle_datagram(t1 + 10 * MS, first.clone());
    assert_eq!(c.poll_timeout(), Some(t1 + 110 * MS));
    let second = v[1].answer_gather(epoch, ME);
    c.handle_datagram(t1 + 90 * MS, second);
    assert_eq!(
        c.poll_timeout(),
        Some(t1 + 190 * MS),
        "a slow but live member"
    );
    c.handle_datagram(t1 + 150 * MS, first);
    assert_eq!(c.poll_timeout(), Some(t1 + 190 * MS), "a repeated report");
    v[2].up = false;
    v[3].up = false;
    let out = untimed(run_until(&mut c, t1 + 190 * MS));
    let out = settle(&mut c, &mut v, t1 + 190 * MS, out);
    assert_eq!(views(&out), [(epoch, vec![id(0), id(1)], Seq(10))]);
}
