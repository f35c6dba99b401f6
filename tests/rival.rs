//! One server per group after the start-up probe: two servers that both coordinate (started
//! at the same moment, or one on each side of a partition that healed) hear each other's
//! views, and exactly one of them stops. Driven on the server's state machine, no sockets.

use mcast_chat::protocol::coordinator::{Coordinator, CoordinatorConfig};
use mcast_chat::protocol::events::{CoordinatorStop, Output};
use mcast_chat::protocol::types::{Epoch, Seq, ServerId, View};
use mcast_chat::protocol::wire::Msg;
use std::time::{Duration, Instant};

/// A coordinating server (no probe) with `id`, in `epoch`.
fn server(id: u64, epoch: u64, now: Instant) -> Coordinator {
    let mut cfg = CoordinatorConfig::new(Duration::from_secs(3));
    cfg.probe = Duration::ZERO;
    cfg.server_id = ServerId(id);
    let view = View {
        epoch: Epoch(epoch),
        members: Vec::new(),
    };
    Coordinator::new(cfg, view, Seq(0), now)
}

fn view_from(id: u64, epoch: u64) -> Msg {
    Msg::View {
        epoch: Epoch(epoch),
        part: 0,
        parts: 1,
        members: Vec::new(),
        cut: Seq(0),
        high: Seq(0),
        token_timeout_ms: 3000,
        server: Some(ServerId(id)),
    }
}

fn stopped(c: &mut Coordinator) -> bool {
    std::iter::from_fn(|| c.poll_output())
        .any(|o| matches!(o, Output::Stop(CoordinatorStop::AnotherServer)))
}

fn beacon_from(id: u64, epoch: u64) -> Msg {
    Msg::Beacon {
        epoch: Epoch(epoch),
        cut: Seq(0),
        high: Seq(0),
        token_timeout_ms: 3000,
        server: Some(ServerId(id)),
        members: 0,
        digest: View::default().digest(),
    }
}

/// What a server sends as its heartbeat goes out: beacons (and views, were any due).
fn heartbeat(c: &mut Coordinator, now: Instant) -> Vec<Msg> {
    c.handle_timeout(now);
    std::iter::from_fn(|| c.poll_output())
        .filter_map(|o| match o {
            Output::Send(msg @ (Msg::View { .. } | Msg::Beacon { .. })) => Some(msg),
            _ => None,
        })
        .collect()
}

#[test]
fn its_own_views_looped_back_are_not_a_rival() {
    let now = Instant::now();
    let mut a = server(7, 3, now);
    a.handle_datagram(now, view_from(7, 9));
    assert!(!stopped(&mut a));
    assert_eq!(a.stats().rival_views, 0);
}

#[test]
fn the_older_view_gives_way_by_epoch_then_by_id() {
    let now = Instant::now();
    // Epoch first: a newer view wins whatever the ids.
    let mut a = server(9, 3, now);
    a.handle_datagram(now, view_from(1, 4));
    assert!(stopped(&mut a), "epoch 4 outranks epoch 3");
    let mut b = server(1, 4, now);
    b.handle_datagram(now, view_from(9, 3));
    assert!(!stopped(&mut b), "an older view is not a reason to stop");
    assert_eq!(b.stats().rival_views, 1);
    // Same epoch: the higher id wins.
    let mut c = server(5, 2, now);
    c.handle_datagram(now, view_from(6, 2));
    assert!(stopped(&mut c));
    let mut d = server(6, 2, now);
    d.handle_datagram(now, view_from(5, 2));
    assert!(!stopped(&mut d));
}

#[test]
fn while_probing_its_own_earlier_views_are_ignored_and_another_servers_are_not() {
    let now = Instant::now();
    let mut cfg = CoordinatorConfig::new(Duration::from_secs(3));
    cfg.server_id = ServerId(5);
    let mut c = Coordinator::new(cfg.clone(), View::default(), Seq(0), now);
    let late = now + cfg.probe * 3 / 4;
    // Its own view and gather from before a restart (same id: same data dir), replayed.
    c.handle_datagram(late, view_from(5, 4));
    c.handle_datagram(
        late,
        Msg::Gather {
            epoch: Epoch(5),
            part: 0,
            parts: 1,
            members: Vec::new(),
            server: Some(ServerId(5)),
        },
    );
    assert!(!stopped(&mut c));
    assert!(
        !heartbeat(&mut c, now + cfg.probe).is_empty(),
        "it coordinates after the probe"
    );
    let mut d = Coordinator::new(cfg.clone(), View::default(), Seq(0), now);
    d.handle_datagram(late, view_from(6, 0));
    assert!(stopped(&mut d), "another server's view");
}

#[test]
fn a_beacon_is_a_rival_view_while_probing_and_after() {
    let now = Instant::now();
    let mut cfg = CoordinatorConfig::new(Duration::from_secs(3));
    cfg.server_id = ServerId(5);
    let mut c = Coordinator::new(cfg.clone(), View::default(), Seq(0), now);
    c.handle_datagram(now, beacon_from(5, 4));
    assert!(!stopped(&mut c), "its own, from before a restart");
    c.handle_datagram(now, beacon_from(6, 0));
    assert!(stopped(&mut c), "another server's beacon during the probe");
    let mut a = server(1, 3, now);
    a.handle_datagram(now, beacon_from(2, 2));
    assert!(!stopped(&mut a), "an older view");
    a.handle_datagram(now, beacon_from(2, 3));
    assert!(stopped(&mut a), "same epoch, higher id");
    assert_eq!(a.stats().rival_views, 2);
}

#[test]
fn a_server_that_gave_way_sends_nothing_more() {
    let now = Instant::now();
    let mut probing = Coordinator::new(
        CoordinatorConfig::new(Duration::from_secs(3)),
        View::default(),
        Seq(0),
        now,
    );
    let later = now + Duration::from_secs(2);
    probing.handle_datagram(later, view_from(1, 0));
    assert!(stopped(&mut probing), "a view heard while probing");
    let mut a = server(1, 0, now);
    a.handle_datagram(now, view_from(2, 0));
    assert!(stopped(&mut a), "an outranking view");
    for c in [&mut probing, &mut a] {
        assert_eq!(c.poll_timeout(), None);
        assert!(heartbeat(c, later + Duration::from_secs(5)).is_empty());
        c.handle_sync(later);
        assert!(c.poll_output().is_none());
    }
}

#[test]
fn of_two_servers_that_hear_each_other_exactly_one_stops() {
    for (ids, epochs) in [((1, 2), (0, 0)), ((2, 1), (0, 0)), ((1, 2), (5, 3))] {
        let now = Instant::now();
        let mut a = server(ids.0, epochs.0, now);
        let mut b = server(ids.1, epochs.1, now);
        let from_a = heartbeat(&mut a, now);
        let from_b = heartbeat(&mut b, now);
        assert!(!from_a.is_empty() && !from_b.is_empty(), "both send views");
        from_b.into_iter().for_each(|m| a.handle_datagram(now, m));
        from_a.into_iter().for_each(|m| b.handle_datagram(now, m));
        let stops = [stopped(&mut a), stopped(&mut b)];
        assert_eq!(
            stops.iter().filter(|s| **s).count(),
            1,
            "ids {ids:?}, epochs {epochs:?}: stops {stops:?}"
        );
    }
}
