//! Unit tests of the server's state machine, driven only through its public API: datagrams
//! and timeouts in, outputs drained. Each test names the rule it checks; the cut rules are
//! what G1 (one total order) rests on after a view change.
//!
//! No I/O and no clock: time is an `Instant` taken once and moved by hand.

use super::{Coordinator, CoordinatorConfig};
use crate::protocol::events::{CoordinatorEvent, CoordinatorOutput, CoordinatorStop, Output};
use crate::protocol::fetch;
use crate::protocol::token_ring::{self, Token};
use crate::protocol::types::{ChatRecord, Epoch, Incarnation, NodeId, Seq, ServerId, View};
use crate::protocol::wire::{Msg, RefuseReason};
use std::time::{Duration, Instant};
use uuid::Uuid;

mod scale;

const TOKEN_TIMEOUT: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

/// A coordinating server (no probe) that asks history four records at a time.
fn config() -> CoordinatorConfig {
    let mut cfg = CoordinatorConfig::new(TOKEN_TIMEOUT);
    cfg.probe = Duration::ZERO;
    cfg.server_id = ServerId(1);
    cfg.fetch_chunk = 4;
    cfg
}

/// Member `n`; ids sort in the order of `n`.
fn id(n: u8) -> NodeId {
    NodeId(Uuid::from_u128(u128::from(n) + 1))
}

fn drain(c: &mut Coordinator) -> Vec<CoordinatorOutput> {
    std::iter::from_fn(|| c.poll_output())
        .map(Output::anywhere)
        .collect()
}

fn hello(n: u8) -> Msg {
    Msg::Hello {
        from: id(n),
        incarnation: Incarnation(1),
        name: format!("m{n}"),
        delivered: Seq(0),
    }
}

/// Member `n`'s report for the gather of `epoch`: `aru` collected in `view_epoch`.
fn report(epoch: Epoch, n: u8, view_epoch: u64, aru: u64, delivered: u64) -> Msg {
    Msg::Report {
        epoch,
        from: id(n),
        incarnation: Incarnation(1),
        name: format!("m{n}"),
        view_epoch: Epoch(view_epoch),
        aru: Seq(aru),
        delivered: Seq(delivered),
    }
}

fn rec(seq: u64) -> ChatRecord {
    ChatRecord {
        seq: Seq(seq),
        id: Uuid::from_u128(u128::from(seq)),
        from: id(0),
        name: "m0".into(),
        text: format!("line {seq}"),
        sent_at_ms: 0,
    }
}

fn history(seqs: impl IntoIterator<Item = u64>) -> Msg {
    Msg::History {
        to: NodeId::SERVER,
        records: seqs.into_iter().map(rec).collect(),
    }
}

/// The views sent: epoch, members, cut.
fn views(out: &[CoordinatorOutput]) -> Vec<(Epoch, Vec<NodeId>, Seq)> {
    let view = |o: &CoordinatorOutput| match o {
        Output::Send(Msg::View {
            epoch,
            members,
            cut,
            ..
        }) => Some((*epoch, members.iter().map(|m| m.id).collect(), *cut)),
        _ => None,
    };
    out.iter().filter_map(view).collect()
}

/// The beacons sent: epoch, member count, digest.
fn beacons(out: &[CoordinatorOutput]) -> Vec<(Epoch, u64, u64)> {
    let beacon = |o: &CoordinatorOutput| match o {
        Output::Send(Msg::Beacon {
            epoch,
            members,
            digest,
            ..
        }) => Some((*epoch, *members, *digest)),
        _ => None,
    };
    out.iter().filter_map(beacon).collect()
}

/// The gathers sent: epoch and proposed members.
fn gathers(out: &[CoordinatorOutput]) -> Vec<(Epoch, Vec<NodeId>)> {
    let gather = |o: &CoordinatorOutput| match o {
        Output::Send(Msg::Gather { epoch, members, .. }) => Some((*epoch, members.clone())),
        _ => None,
    };
    out.iter().filter_map(gather).collect()
}

/// The history requests sent: to whom, `lo..=hi`.
fn fetches(out: &[CoordinatorOutput]) -> Vec<(NodeId, Seq, Seq)> {
    let fetch = |o: &CoordinatorOutput| match o {
        Output::Send(Msg::Fetch { to, lo, hi, .. }) => Some((*to, *lo, *hi)),
        _ => None,
    };
    out.iter().filter_map(fetch).collect()
}

fn installs(out: &[CoordinatorOutput]) -> Vec<(Epoch, usize, Seq)> {
    let install = |o: &CoordinatorOutput| match o {
        Output::Event(CoordinatorEvent::ViewInstalled {
            epoch,
            members,
            cut,
        }) => Some((*epoch, *members, *cut)),
        _ => None,
    };
    out.iter().filter_map(install).collect()
}

fn delivered(out: &[CoordinatorOutput]) -> Vec<u64> {
    let deliver = |o: &CoordinatorOutput| match o {
        Output::Deliver(r) => Some(r.seq.0),
        _ => None,
    };
    out.iter().filter_map(deliver).collect()
}

/// Runs every timer due up to `until`, in order; the outputs with the instant of their timer.
fn run_until(c: &mut Coordinator, until: Instant) -> Vec<(Instant, CoordinatorOutput)> {
    let mut out = Vec::new();
    for _ in 0..10_000 {
        match c.poll_timeout() {
            Some(t) if t <= until => {
                c.handle_timeout(t);
                out.extend(drain(c).into_iter().map(|o| (t, o)));
            }
            _ => return out,
        }
    }
    panic!("timers keep firing without time moving on");
}

fn untimed(out: Vec<(Instant, CoordinatorOutput)>) -> Vec<CoordinatorOutput> {
    out.into_iter().map(|(_, o)| o).collect()
}

/// A server whose archive holds `..=archived`, with members `0..n` installed in epoch 1 at
/// the returned instant; the outputs of that install.
fn ring(n: u8, archived: u64) -> (Coordinator, Instant, Vec<CoordinatorOutput>) {
    let t0 = Instant::now();
    let mut c = Coordinator::new(config(), View::default(), Seq(archived), t0);
    drain(&mut c);
    (0..n).for_each(|m| c.handle_datagram(t0, hello(m)));
    let (epoch, _) = gathers(&drain(&mut c)).pop().expect("a gather");
    assert_eq!(epoch, Epoch(1));
    (0..n).for_each(|m| c.handle_datagram(t0, report(epoch, m, 0, archived, archived)));
    let out = drain(&mut c);
    assert_eq!(installs(&out), [(Epoch(1), usize::from(n), Seq(archived))]);
    (c, t0, out)
}

/// Lets the installed ring's token time out; returns when and the gather's epoch and members.
fn lose_token(c: &mut Coordinator, installed_at: Instant) -> (Instant, Epoch, Vec<NodeId>) {
    let t = installed_at + TOKEN_TIMEOUT;
    assert_eq!(c.poll_timeout(), Some(installed_at + token_ring_resend()));
    c.handle_timeout(t);
    let (epoch, members) = gathers(&drain(c))
        .pop()
        .expect("a token loss starts a gather");
    assert!(c.is_recovering());
    (t, epoch, members)
}

fn token_ring_resend() -> Duration {
    token_ring::retransmit_interval(TOKEN_TIMEOUT)
}

#[test]
fn g1_one_old_member_reporting_a_trusted_aru_completes_the_cut() {
    let (mut c, t0, _) = ring(3, 10);
    let (t1, epoch, proposed) = lose_token(&mut c, t0);
    assert_eq!((epoch, proposed), (Epoch(2), vec![id(0), id(1), id(2)]));
    // Member 0 did not restart: its aru (collected in epoch 1) covers all the ring delivered.
    c.handle_datagram(t1 + 10 * MS, report(epoch, 0, 1, 15, 12));
    assert!(drain(&mut c).is_empty(), "members 1 and 2 may still answer");
    // The first report shortens the wait for the others to four times its delay (at least
    // 100 ms); then the silent ones are left out and the cut is complete without them.
    assert_eq!(c.poll_timeout(), Some(t1 + 110 * MS));
    let out = untimed(run_until(&mut c, t1 + 110 * MS));
    assert_eq!(fetches(&out), [(id(0), Seq(11), Seq(14))]);
    c.handle_datagram(t1 + 120 * MS, history(11..=14));
    assert_eq!(fetches(&drain(&mut c)), [(id(0), Seq(15), Seq(15))]);
    c.handle_datagram(t1 + 130 * MS, history([15]));
    let out = drain(&mut c);
    assert_eq!(views(&out), [(Epoch(2), vec![id(0)], Seq(15))]);
}

#[test]
fn g1_a_restarted_members_report_counts_only_what_it_delivered() {
    let (mut c, t0, _) = ring(3, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    // All three restarted (their reports carry an older view): what they received but did
    // not deliver is gone, so an aru of 20 proves nothing; their replicas hold 12, 11, 10.
    for (n, delivered) in [(0, 12), (1, 11), (2, 10)] {
        c.handle_datagram(t1, report(epoch, n, 0, 20, delivered));
    }
    let out = drain(&mut c);
    assert_eq!(fetches(&out), [(id(0), Seq(11), Seq(12))]);
    c.handle_datagram(t1, history(11..=12));
    let out = drain(&mut c);
    assert_eq!(delivered(&out), [11, 12]);
    assert_eq!(
        views(&out),
        [(Epoch(2), vec![id(0), id(1), id(2)], Seq(12))]
    );
}

#[test]
fn g1_without_a_trusted_report_the_gather_waits_for_every_old_member_until_abandon_timeout() {
    let (mut c, t0, _) = ring(3, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    // Only a restarted member answers; members 1 and 2 may be alive behind a partition,
    // holding delivered messages above anything the reports show.
    c.handle_datagram(t1 + 10 * MS, report(epoch, 0, 0, 0, 10));
    let abandon = t0 + config().abandon_timeout;
    let waiting = run_until(&mut c, abandon - MS);
    assert!(installs(&untimed(waiting.clone())).is_empty());
    assert!(c.is_recovering());
    let asked = gathers(&untimed(waiting));
    assert!(asked.len() > 10, "it keeps asking: {} gathers", asked.len());
    assert!(asked
        .iter()
        .all(|g| g == &(epoch, vec![id(0), id(1), id(2)])));
    // Once the old ring has been silent for abandon_timeout, a view without them goes in.
    let out = run_until(&mut c, abandon + 2 * TOKEN_TIMEOUT);
    let (at, _) = out
        .iter()
        .find(|(_, o)| matches!(o, Output::Event(CoordinatorEvent::ViewInstalled { .. })))
        .expect("installed after abandon_timeout");
    assert!(*at >= abandon);
    assert_eq!(views(&untimed(out))[0], (Epoch(2), vec![id(0)], Seq(10)));
}

#[test]
fn g1_the_cut_is_the_most_any_reporter_holds_and_it_is_fetched_from_that_one() {
    let (mut c, t0, _) = ring(3, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    for (n, aru) in [(0, 12), (1, 18), (2, 15)] {
        c.handle_datagram(t1, report(epoch, n, 1, aru, 10));
    }
    assert_eq!(fetches(&drain(&mut c)), [(id(1), Seq(11), Seq(14))]);
    c.handle_datagram(t1, history(11..=14));
    // Member 1 alone holds 16..=18; member 2 also holds 15.
    assert_eq!(fetches(&drain(&mut c)), [(id(1), Seq(15), Seq(18))]);
    c.handle_datagram(t1, history(15..=18));
    assert_eq!(installs(&drain(&mut c)), [(Epoch(2), 3, Seq(18))]);
}

#[test]
fn g1_the_cut_never_goes_below_the_archive() {
    let (mut c, t0, _) = ring(2, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    c.handle_datagram(t1, report(epoch, 0, 1, 5, 5));
    c.handle_datagram(t1, report(epoch, 1, 1, 7, 3));
    let out = drain(&mut c);
    assert!(
        fetches(&out).is_empty(),
        "the archive holds more than any reporter"
    );
    assert_eq!(views(&out), [(Epoch(2), vec![id(0), id(1)], Seq(10))]);
}

#[test]
fn leavers_report_for_the_cut_but_are_not_in_the_new_view() {
    let (mut c, t0, _) = ring(3, 10);
    let leave = Msg::Leave {
        from: id(2),
        incarnation: Incarnation(1),
    };
    c.handle_datagram(t0 + MS, leave);
    let (epoch, proposed) = gathers(&drain(&mut c))
        .pop()
        .expect("a leave starts a gather");
    assert_eq!(
        proposed,
        [id(0), id(1), id(2)],
        "the leaver is asked to report"
    );
    c.handle_datagram(t0 + MS, report(epoch, 0, 1, 10, 10));
    c.handle_datagram(t0 + MS, report(epoch, 1, 1, 10, 10));
    c.handle_datagram(t0 + MS, report(epoch, 2, 1, 13, 10));
    assert_eq!(fetches(&drain(&mut c)), [(id(2), Seq(11), Seq(13))]);
    c.handle_datagram(t0 + MS, history(11..=13));
    let out = drain(&mut c);
    assert_eq!(views(&out), [(Epoch(2), vec![id(0), id(1)], Seq(13))]);
    assert!(gathers(&out).is_empty(), "the leave is done");
    assert!(!c.is_recovering());
    // Its incarnation ended: a late duplicate of its hello does not start a gather.
    c.handle_datagram(t0 + 2 * MS, hello(2));
    assert!(gathers(&drain(&mut c)).is_empty());
}

#[test]
fn a_joiner_that_was_asked_and_stayed_silent_is_dropped_from_the_join_list() {
    let (mut c, t0, _) = ring(2, 10);
    c.handle_datagram(t0 + MS, hello(9));
    let (epoch, proposed) = gathers(&drain(&mut c))
        .pop()
        .expect("a join starts a gather");
    assert_eq!(proposed, [id(0), id(1), id(9)]);
    c.handle_datagram(t0 + 2 * MS, report(epoch, 0, 1, 10, 10));
    c.handle_datagram(t0 + 2 * MS, report(epoch, 1, 1, 10, 10));
    let out = untimed(run_until(&mut c, t0 + 500 * MS));
    assert_eq!(views(&out), [(Epoch(2), vec![id(0), id(1)], Seq(10))]);
    assert!(
        gathers(&out).is_empty(),
        "no gather for a joiner that never answered"
    );
    assert!(!c.is_recovering());
    // If it is alive after all, its next hello brings it back.
    c.handle_datagram(t0 + 600 * MS, hello(9));
    let again = gathers(&drain(&mut c));
    assert_eq!(again, [(Epoch(3), vec![id(0), id(1), id(9)])]);
}

#[test]
fn install_emits_checkpoint_event_view_then_a_first_token_to_the_first_member() {
    let (mut c, t0, out) = ring(3, 10);
    let first = Token::first(Epoch(1), NodeId::SERVER, id(0), Seq(10), 3);
    let view = c.view().clone();
    let expected: Vec<CoordinatorOutput> = vec![
        Output::Checkpoint,
        Output::Event(CoordinatorEvent::ViewInstalled {
            epoch: Epoch(1),
            members: 3,
            cut: Seq(10),
        }),
        Output::Send(Msg::View {
            epoch: Epoch(1),
            part: 0,
            parts: 1,
            members: view.members,
            cut: Seq(10),
            high: Seq(10),
            token_timeout_ms: 1000,
            server: Some(ServerId(1)),
        }),
        Output::Send(Msg::Token(first.clone())),
    ];
    assert_eq!(out, expected);
    // The first token goes out again until the ring shows a later hop.
    let resend = t0 + token_ring_resend();
    assert_eq!(c.poll_timeout(), Some(resend));
    c.handle_timeout(resend);
    assert_eq!(drain(&mut c), [Output::Send(Msg::Token(first.clone()))]);
    c.handle_datagram(resend + MS, Msg::Token(first.pass(id(0), id(1))));
    assert!(drain(&mut c).is_empty());
    // Left: the heartbeat (from the install) and the token-loss deadline (from the hop).
    assert_eq!(c.poll_timeout(), Some(t0 + config().beacon_interval));
    c.handle_timeout(t0 + config().beacon_interval);
    drain(&mut c);
    assert_eq!(c.poll_timeout(), Some(resend + MS + TOKEN_TIMEOUT));
}

#[test]
fn install_starts_another_gather_when_a_join_came_in_meanwhile() {
    let (mut c, t0, _) = ring(2, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    c.handle_datagram(t1, report(epoch, 0, 1, 14, 10));
    c.handle_datagram(t1, report(epoch, 1, 1, 14, 10));
    assert_eq!(fetches(&drain(&mut c)).len(), 1, "collecting up to #14");
    c.handle_datagram(t1, hello(9));
    assert!(drain(&mut c).is_empty(), "the join waits for this install");
    c.handle_datagram(t1, history(11..=14));
    let out = drain(&mut c);
    let sends: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send(Msg::View { .. }) => Some("view"),
            Output::Send(Msg::Token(_)) => Some("token"),
            Output::Send(Msg::Gather { .. }) => Some("gather"),
            _ => None,
        })
        .collect();
    assert_eq!(sends, ["view", "token", "gather"]);
    assert_eq!(gathers(&out), [(Epoch(3), vec![id(0), id(1), id(9)])]);
}

#[test]
fn g2_the_archive_holds_everything_up_to_the_cut_before_the_view_goes_out() {
    let (mut c, t0, _) = ring(2, 0);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    c.handle_datagram(t1, report(epoch, 0, 1, 10, 2));
    c.handle_datagram(t1, report(epoch, 1, 1, 6, 2));
    let mut out = drain(&mut c);
    for chunk in [vec![1, 2, 3, 4, 20], vec![5, 6, 7, 8], vec![9, 10, 11, 12]] {
        c.handle_datagram(t1, history(chunk));
        out.extend(drain(&mut c));
    }
    let asked: Vec<(Seq, Seq)> = fetches(&out).iter().map(|f| (f.1, f.2)).collect();
    assert_eq!(
        asked,
        [(Seq(1), Seq(4)), (Seq(5), Seq(8)), (Seq(9), Seq(10))]
    );
    assert_eq!(
        delivered(&out),
        (1..=10).collect::<Vec<_>>(),
        "nothing above the cut"
    );
    let last_deliver = out.iter().rposition(|o| matches!(o, Output::Deliver(_)));
    let view = out
        .iter()
        .position(|o| matches!(o, Output::Send(Msg::View { .. })));
    assert!(last_deliver < view, "persist before send");
    assert_eq!(c.archived(), Seq(10));
    assert_eq!(views(&out), [(Epoch(2), vec![id(0), id(1)], Seq(10))]);
}

#[test]
fn collect_asks_the_sources_in_turn_and_gathers_again_when_none_answers() {
    let (mut c, t0, _) = ring(2, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    c.handle_datagram(t1, report(epoch, 0, 1, 14, 10));
    c.handle_datagram(t1, report(epoch, 1, 1, 14, 10));
    let mut asked = fetches(&drain(&mut c));
    let retry = fetch::retry_interval(TOKEN_TIMEOUT);
    let mut t = t1;
    while let Some(next) = c.poll_timeout() {
        assert_eq!(next, t + retry, "an unanswered chunk is asked again");
        t = next;
        c.handle_timeout(t);
        let out = drain(&mut c);
        asked.extend(fetches(&out));
        if let Some(gather) = gathers(&out).pop() {
            assert_eq!(gather.0, Epoch(3));
            break;
        }
    }
    let to: Vec<NodeId> = asked.iter().map(|f| f.0).collect();
    let expected = [id(0), id(1), id(0), id(1), id(0), id(1), id(0)];
    assert_eq!(
        to, expected,
        "three rounds over the sources, then a new gather"
    );
}

#[test]
fn reconciliation_pulls_the_final_records_the_archive_lacks_from_members_in_turn() {
    let (mut c, t0, _) = ring(2, 0);
    let mut token = Token::first(Epoch(1), NodeId::SERVER, id(0), Seq(0), 2).pass(id(0), id(1));
    token.seq = Seq(6);
    token.safe = Seq(6);
    c.handle_datagram(t0 + MS, Msg::Token(token));
    drain(&mut c);
    c.handle_sync(t0 + 2 * MS);
    assert_eq!(fetches(&drain(&mut c)), [(id(1), Seq(1), Seq(4))]);
    // Unanswered: the next member is asked, from the start of what is missing.
    let retry_at = t0 + 2 * MS + fetch::retry_interval(TOKEN_TIMEOUT);
    assert_eq!(c.poll_timeout(), Some(retry_at));
    c.handle_timeout(retry_at);
    assert_eq!(fetches(&drain(&mut c)), [(id(0), Seq(1), Seq(4))]);
    c.handle_datagram(retry_at, history(1..=4));
    let out = drain(&mut c);
    assert_eq!(delivered(&out), [1, 2, 3, 4]);
    assert_eq!(fetches(&out), [(id(1), Seq(5), Seq(6))]);
    c.handle_datagram(retry_at, history(5..=9));
    let out = drain(&mut c);
    assert_eq!(delivered(&out), [5, 6], "nothing above safe");
    assert!(fetches(&out).is_empty());
    assert_eq!(c.archived(), Seq(6));
}

#[test]
fn a_rival_view_that_outranks_ours_makes_the_server_yield_even_mid_recovery() {
    let (mut c, t0, _) = ring(2, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    let rival = |epoch: u64, server: u64| Msg::View {
        epoch: Epoch(epoch),
        part: 0,
        parts: 1,
        members: Vec::new(),
        cut: Seq(0),
        high: Seq(0),
        token_timeout_ms: 1000,
        server: Some(ServerId(server)),
    };
    // Same epoch as our view, lower id: ours outranks it.
    c.handle_datagram(t1, rival(1, 0));
    assert!(drain(&mut c).is_empty());
    // A higher (epoch, server id): this one stops for good.
    c.handle_datagram(t1, rival(2, 0));
    assert_eq!(
        drain(&mut c),
        [Output::Stop(CoordinatorStop::AnotherServer)]
    );
    assert_eq!(c.poll_timeout(), None);
    assert!(!c.is_recovering());
    c.handle_datagram(t1, report(epoch, 0, 1, 10, 10));
    c.handle_datagram(t1, report(epoch, 1, 1, 10, 10));
    c.handle_timeout(t1 + 10 * TOKEN_TIMEOUT);
    assert!(
        drain(&mut c).is_empty(),
        "a server that gave way sends nothing"
    );
    assert_eq!(c.stats().rival_views, 2);
}

#[test]
fn probing_only_listens_until_the_probe_ends_then_coordinates() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.probe = Duration::from_secs(2);
    let mut c = Coordinator::new(cfg.clone(), View::default(), Seq(0), t0);
    assert_eq!(c.poll_timeout(), Some(t0 + cfg.probe));
    c.handle_datagram(t0 + MS, hello(0));
    c.handle_sync(t0 + MS);
    c.handle_timeout(t0 + cfg.probe - MS);
    assert!(drain(&mut c).is_empty(), "nothing before the probe ends");
    c.handle_timeout(t0 + cfg.probe);
    let out = drain(&mut c);
    assert_eq!(out[0], Output::Event(CoordinatorEvent::Coordinating));
    assert_eq!(beacons(&out), [(Epoch(0), 0, View::default().digest())]);
    assert_eq!(
        c.poll_timeout(),
        Some(t0 + cfg.probe + cfg.beacon_interval),
        "an empty ring has no token to lose"
    );
}

#[test]
fn a_join_is_refused_with_the_reason_the_client_shows() {
    let t0 = Instant::now();
    let mut c = Coordinator::new(config(), View::default(), Seq(0), t0);
    drain(&mut c);
    c.handle_datagram(
        t0,
        Msg::Hello {
            from: id(0),
            incarnation: Incarnation(1),
            name: "n".repeat(33),
            delivered: Seq(0),
        },
    );
    let reasons: Vec<String> = drain(&mut c)
        .into_iter()
        .filter_map(|o| match o {
            Output::Send(Msg::Refuse { reason, .. }) => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, ["name longer than 32 bytes"]);
    assert_eq!(c.stats().refused, 1);
    assert_eq!(
        RefuseReason::RingFull.to_string(),
        "the ring is full (128 members)"
    );
}

#[test]
fn g2_the_archive_takes_every_record_of_a_pack_and_waits_for_a_lost_one() {
    let (mut c, t0, _) = ring(2, 0);
    let pack = |epoch, seqs: &[u64]| Msg::Data {
        epoch: Epoch(epoch),
        recs: seqs.iter().copied().map(rec).collect(),
    };
    c.handle_datagram(t0, pack(1, &[4, 5, 6]));
    assert!(delivered(&drain(&mut c)).is_empty(), "1..=3 were lost");
    c.handle_datagram(t0, pack(1, &[1, 2, 3]));
    assert_eq!(delivered(&drain(&mut c)), [1, 2, 3, 4, 5, 6]);
    c.handle_datagram(t0, pack(1, &[5, 6, 7]));
    assert_eq!(delivered(&drain(&mut c)), [7], "the duplicates are dropped");
    c.handle_datagram(t0, pack(0, &[8]));
    assert_eq!(c.archived(), Seq(7), "a stale epoch's pack is not archived");
}

#[test]
fn a_restarted_server_learns_incarnations_by_a_recovery_and_then_confirms_a_leave() {
    // Restored from its checkpoint: the view, but not the members' incarnations.
    let t0 = Instant::now();
    let view = View {
        epoch: Epoch(4),
        members: (0..3)
            .map(|n| crate::protocol::types::Member {
                id: id(n),
                name: format!("m{n}"),
            })
            .collect(),
    };
    let mut c = Coordinator::new(config(), view, Seq(10), t0);
    drain(&mut c);
    let leave = Msg::Leave {
        from: id(2),
        incarnation: Incarnation(1),
    };
    c.handle_datagram(t0 + MS, leave.clone());
    let out = drain(&mut c);
    let (epoch, proposed) = gathers(&out)
        .pop()
        .expect("an unknown incarnation of a member starts a recovery");
    assert!(
        views(&out).is_empty(),
        "not a view that keeps the leaver in"
    );
    assert_eq!(proposed, [id(0), id(1), id(2)]);
    (0..3).for_each(|m| c.handle_datagram(t0 + 2 * MS, report(epoch, m, 4, 10, 10)));
    let out = drain(&mut c);
    assert_eq!(views(&out), [(epoch, vec![id(0), id(1), id(2)], Seq(10))]);
    // The leaver repeats its Leave; now its incarnation is known and the leave goes through.
    c.handle_datagram(t0 + 3 * MS, leave);
    let (epoch, _) = gathers(&drain(&mut c))
        .pop()
        .expect("the leave starts a gather");
    (0..3).for_each(|m| c.handle_datagram(t0 + 4 * MS, report(epoch, m, 5, 10, 10)));
    assert_eq!(
        views(&drain(&mut c)),
        [(epoch, vec![id(0), id(1)], Seq(10))]
    );
}
