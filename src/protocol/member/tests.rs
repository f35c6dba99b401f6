//! Unit tests of the member's rules: stale and early tokens, adoption of views, stamping and
//! safe delivery, joining and leaving. Each drives one `MemberCore` by hand in virtual time.

use super::*;
use crate::protocol::types::{Member, ServerId};
use uuid::Uuid;

fn member(now: Instant) -> MemberCore {
    let cfg = MemberConfig::new(NodeId::random(), "me".into(), Incarnation(1));
    MemberCore::new(cfg, Restored::default(), now)
}

fn drain(m: &mut MemberCore) -> Vec<MemberOutput> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn line(text: &str) -> Pending {
    Pending {
        id: Uuid::new_v4(),
        text: text.into(),
        sent_at_ms: 0,
    }
}

/// Reports for `epoch` and installs a view of `me` alone; returns the first token.
fn admit(m: &mut MemberCore, now: Instant, epoch: u64) -> Token {
    let me = m.id();
    m.handle_datagram(
        now,
        Msg::Gather {
            epoch: Epoch(epoch),
            members: vec![me],
            server: Some(ServerId(1)),
        },
    );
    let view = vec![Member {
        id: me,
        name: "me".into(),
    }];
    m.handle_datagram(
        now,
        Msg::View {
            epoch: Epoch(epoch),
            members: view,
            cut: Seq(0),
            high: Seq(0),
            token_timeout_ms: 3000,
            server: Some(ServerId(1)),
        },
    );
    Token::first(Epoch(epoch), NodeId::SERVER, me, Seq(0), 1)
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
fn a_view_is_adopted_only_for_the_epoch_we_reported_for() {
    let now = Instant::now();
    let mut m = member(now);
    let me = m.id();
    let view = |e| Msg::View {
        epoch: Epoch(e),
        members: vec![Member {
            id: me,
            name: "me".into(),
        }],
        cut: Seq(0),
        high: Seq(0),
        token_timeout_ms: 3000,
        server: Some(ServerId(1)),
    };
    // A restarted node sees its old view: not admission.
    m.handle_datagram(now, view(1));
    assert!(!m.is_admitted());
    m.handle_datagram(
        now,
        Msg::Gather {
            epoch: Epoch(3),
            members: vec![me],
            server: Some(ServerId(1)),
        },
    );
    // A late view of an epoch below the gather we reported for must not revive it.
    m.handle_datagram(now, view(2));
    assert!(!m.is_admitted());
    m.handle_datagram(now, view(3));
    assert!(m.is_admitted());
}

#[test]
fn g2_lines_are_stamped_in_typing_order_and_delivered_once_safe() {
    let now = Instant::now();
    let mut m = member(now);
    let token = admit(&mut m, now, 1);
    m.submit(now, vec![line("one"), line("two")]);
    drain(&mut m);
    m.handle_datagram(now, Msg::Token(token));
    let sent: Vec<(Seq, String)> = drain(&mut m)
        .into_iter()
        .filter_map(|o| match o {
            Output::Send(Msg::Data { rec, .. }) => Some((rec.seq, rec.text)),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![(Seq(1), "one".into()), (Seq(2), "two".into())]);
    assert_eq!(
        m.delivered(),
        Seq(0),
        "not safe before every member has shown it"
    );
    assert_eq!(m.outbox().count(), 2, "still in the outbox until delivered");
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
    assert!(drain(&mut m).contains(&Output::Stop(MemberStop::JoinTimeout)));
}

fn gather(m: &mut MemberCore, now: Instant, epoch: u64) {
    let me = m.id();
    m.handle_datagram(
        now,
        Msg::Gather {
            epoch: Epoch(epoch),
            members: vec![me],
            server: Some(ServerId(1)),
        },
    );
}

/// A view of `epoch` with these members, cut at 0.
fn view_of(epoch: u64, members: &[NodeId]) -> Msg {
    Msg::View {
        epoch: Epoch(epoch),
        members: members
            .iter()
            .map(|&id| Member {
                id,
                name: "someone".into(),
            })
            .collect(),
        cut: Seq(0),
        high: Seq(0),
        token_timeout_ms: 3000,
        server: Some(ServerId(1)),
    }
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
    m.handle_datagram(
        now,
        Msg::Token(Token::first(Epoch(2), NodeId::SERVER, me, Seq(0), 1)),
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
