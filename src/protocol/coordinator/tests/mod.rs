//! Unit tests of the server's state machine, driven only through its public API: datagrams
//! and timeouts in, outputs drained. Each test names the rule it checks; the cut and quorum
//! rules are what G1 (one total order) rests on after a view change.
//!
//! The members (and other servers) are [`Voter`]s: each keeps a real vote and answers
//! gathers, proposals and views as a member would, with what it holds set by the test.
//!
//! No I/O and no clock: time is an `Instant` taken once and moved by hand.

use super::{Coordinator, CoordinatorConfig};
use crate::protocol::events::{CoordinatorEvent, CoordinatorOutput, Output};
use crate::protocol::fetch;
use crate::protocol::token_ring::{self, Token};
use crate::protocol::types::{
    ChatRecord, Epoch, GroupId, Incarnation, Member, NodeId, Seq, ServerId, View,
};
use crate::protocol::vote::{Ballot, Session, Vote};
use crate::protocol::wire::{Msg, RefuseReason};
use std::time::{Duration, Instant};
use uuid::Uuid;

mod cut;
mod roles;
mod scale;
mod voters;

use voters::{members, settle, settle_now, Voter};

const TOKEN_TIMEOUT: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);
const GROUP: GroupId = GroupId(9);
/// The server under test.
const ME: ServerId = ServerId(1);

/// A server under test that asks history four records at a time; no probe.
fn config() -> CoordinatorConfig {
    let mut cfg = CoordinatorConfig::new(TOKEN_TIMEOUT);
    cfg.probe = Duration::ZERO;
    cfg.server_id = ME;
    cfg.new_group = GROUP;
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
        to: NodeId::server(ME),
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

/// The gathers sent: epoch and proposed members and servers.
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

fn waits(out: &[CoordinatorOutput]) -> Vec<(u32, u32)> {
    let wait = |o: &CoordinatorOutput| match o {
        Output::Event(CoordinatorEvent::WaitingForQuorum { reachable, voters }) => {
            Some((*reachable, *voters))
        }
        _ => None,
    };
    out.iter().filter_map(wait).collect()
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

/// Runs every timer due up to `until`, in order, the voters answering at once after each;
/// every output of the server.
fn run_with(c: &mut Coordinator, voters: &mut [Voter], until: Instant) -> Vec<CoordinatorOutput> {
    let mut all = Vec::new();
    for _ in 0..10_000 {
        match c.poll_timeout() {
            Some(t) if t <= until => {
                c.handle_timeout(t);
                all.extend(settle_now(c, voters, t));
            }
            _ => return all,
        }
    }
    panic!("timers keep firing without time moving on");
}

fn untimed(out: Vec<(Instant, CoordinatorOutput)>) -> Vec<CoordinatorOutput> {
    out.into_iter().map(|(_, o)| o).collect()
}

/// A fresh server that found no chat and started one (archive up to `archived`), at the end
/// of the hold that keeps joins out of a chat just started; and that instant.
fn started(archived: u64) -> (Coordinator, Instant) {
    let t0 = Instant::now();
    let mut c = Coordinator::new(config(), Vote::default(), Seq(archived), t0);
    c.handle_timeout(t0);
    let out = drain(&mut c);
    assert!(out.contains(&Output::Event(CoordinatorEvent::Started)));
    let t = t0 + config().beacon_interval;
    run_until(&mut c, t);
    (c, t)
}

/// A server whose archive holds `..=archived`, with members `0..n` (holding the same)
/// installed in epoch 1 at the returned instant; the outputs of that install.
fn ring(n: u8, archived: u64) -> (Coordinator, Vec<Voter>, Instant, Vec<CoordinatorOutput>) {
    let (mut c, t0) = started(archived);
    let mut voters = members(n);
    voters
        .iter_mut()
        .for_each(|v| v.holding(archived, archived));
    (0..n).for_each(|m| c.handle_datagram(t0, hello(m)));
    let mut asked = drain(&mut c);
    assert_eq!(gathers(&asked)[0].0, Epoch(1));
    // The joins after the first are asked with the gather's next resend.
    let t0 = t0 + config().gather_resend;
    asked.extend(untimed(run_until(&mut c, t0)));
    let out = settle(&mut c, &mut voters, t0, asked);
    assert_eq!(installs(&out), [(Epoch(1), usize::from(n), Seq(archived))]);
    let from_install = out
        .iter()
        .position(|o| matches!(o, Output::SaveVote(v) if v.primary_epoch() == Epoch(1)))
        .expect("the install saves the vote first");
    (c, voters, t0, out[from_install..].to_vec())
}

/// Lets the installed ring's token time out; returns when and the gather's epoch and members.
fn lose_token(c: &mut Coordinator, installed_at: Instant) -> (Instant, Epoch, Vec<NodeId>) {
    let t = installed_at + TOKEN_TIMEOUT;
    assert_eq!(c.poll_timeout(), Some(installed_at + token_ring_resend()));
    let out = untimed(run_until(c, t));
    let (epoch, members) = gathers(&out).pop().expect("a token loss starts a gather");
    assert!(c.is_recovering());
    (t, epoch, members)
}

fn token_ring_resend() -> Duration {
    token_ring::retransmit_interval(TOKEN_TIMEOUT)
}

/// The voters' reports to the gather of `epoch`, each holding what the test set.
fn report_all(
    c: &mut Coordinator,
    voters: &mut [Voter],
    which: &[usize],
    epoch: Epoch,
    now: Instant,
) -> Vec<CoordinatorOutput> {
    for &n in which {
        let report = voters[n].answer_gather(epoch, ME);
        c.handle_datagram(now, report);
    }
    let out = drain(c);
    settle(c, voters, now, out)
}

#[test]
fn g1_every_reporter_accepts_the_proposal_before_it_is_installed() {
    let (mut c, mut v, t0, _) = ring(2, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    for voter in &mut v {
        let report = voter.answer_gather(epoch, ME);
        c.handle_datagram(t1, report);
    }
    let out = drain(&mut c);
    let saved = out.iter().position(|o| matches!(o, Output::SaveVote(_)));
    let proposed = out
        .iter()
        .position(|o| matches!(o, Output::Send(Msg::Propose { .. })));
    assert!(
        saved.is_some() && saved < proposed,
        "our own attempt first: {out:?}"
    );
    assert!(views(&out).is_empty());
    c.handle_datagram(t1, Msg::Accept { epoch, from: id(0) });
    assert!(
        views(&drain(&mut c)).is_empty(),
        "member 1 has not accepted"
    );
    // Not accepted in time: the proposal goes out again, then a new gather replaces it.
    let out = untimed(run_until(&mut c, t1 + TOKEN_TIMEOUT));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Send(Msg::Propose { .. }))));
    assert_eq!(gathers(&out).last().map(|g| g.0), Some(Epoch(3)));
}

#[test]
fn leavers_report_for_the_cut_but_are_not_in_the_new_view() {
    let (mut c, mut v, t0, _) = ring(3, 10);
    let leave = Msg::Leave {
        from: id(2),
        incarnation: Incarnation(1),
    };
    c.handle_datagram(t0 + MS, leave);
    let out = drain(&mut c);
    let (_, proposed) = gathers(&out).pop().expect("a leave starts a gather");
    assert_eq!(
        proposed,
        [id(0), id(1), id(2)],
        "the leaver is asked to report"
    );
    for voter in &mut v {
        voter.view_epoch = Epoch(1);
        voter.holding(10, 10);
    }
    v[2].holding(13, 10);
    let out = settle(&mut c, &mut v, t0 + MS, out);
    assert_eq!(fetches(&out), [(id(2), Seq(11), Seq(13))]);
    c.handle_datagram(t0 + MS, history(11..=13));
    let out = settle_now(&mut c, &mut v, t0 + MS);
    assert_eq!(views(&out), [(Epoch(2), vec![id(0), id(1)], Seq(13))]);
    assert!(gathers(&out).is_empty(), "the leave is done");
    assert!(!c.is_recovering());
    // Its incarnation ended: a late duplicate of its hello does not start a gather.
    c.handle_datagram(t0 + 2 * MS, hello(2));
    assert!(gathers(&drain(&mut c)).is_empty());
}

#[test]
fn a_joiner_that_was_asked_and_stayed_silent_is_dropped_from_the_join_list() {
    let (mut c, mut v, t0, _) = ring(2, 10);
    c.handle_datagram(t0 + MS, hello(9));
    let out = drain(&mut c);
    let (_, proposed) = gathers(&out).pop().expect("a join starts a gather");
    assert_eq!(proposed, [id(0), id(1), id(9)]);
    let mut out = settle(&mut c, &mut v, t0 + 2 * MS, out);
    out.extend(untimed(run_until(&mut c, t0 + 500 * MS)));
    let out = settle(&mut c, &mut v, t0 + 500 * MS, out);
    assert_eq!(views(&out), [(Epoch(2), vec![id(0), id(1)], Seq(10))]);
    assert_eq!(
        gathers(&out).len(),
        1,
        "no gather for a joiner that never answered"
    );
    assert!(!c.is_recovering());
    // If it is alive after all, its next hello brings it back.
    c.handle_datagram(t0 + 600 * MS, hello(9));
    let again = gathers(&drain(&mut c));
    assert_eq!(again, [(Epoch(3), vec![id(0), id(1), id(9)])]);
}

#[test]
fn install_saves_the_vote_then_checkpoint_event_view_and_a_first_token() {
    let (mut c, _, t0, out) = ring(3, 10);
    let first = Token::first(Epoch(1), NodeId::server(ME), id(0), Seq(10), 3);
    let view = c.view().clone();
    let expected: Vec<CoordinatorOutput> = vec![
        Output::SaveVote(c.vote().clone()),
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
            servers: vec![ME],
            cut: Seq(10),
            high: Seq(10),
            token_timeout_ms: 1000,
            server: ME,
            group: GROUP,
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
    let loss = resend + MS + TOKEN_TIMEOUT;
    let out = untimed(run_until(&mut c, loss - MS));
    assert!(!beacons(&out).is_empty() && gathers(&out).is_empty());
    let out = untimed(run_until(&mut c, loss));
    assert_eq!(gathers(&out).len(), 1, "the token is lost");
}

#[test]
fn install_starts_another_gather_when_a_join_came_in_meanwhile() {
    let (mut c, mut v, t0, _) = ring(2, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    for voter in &mut v {
        voter.view_epoch = Epoch(1);
        voter.holding(14, 10);
    }
    let out = report_all(&mut c, &mut v, &[0, 1], epoch, t1);
    assert_eq!(fetches(&out).len(), 1, "collecting up to #14");
    c.handle_datagram(t1, hello(9));
    assert!(drain(&mut c).is_empty(), "the join waits for this install");
    c.handle_datagram(t1, history(11..=14));
    let out = settle_now(&mut c, &mut v, t1);
    let sends: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send(Msg::View { .. }) => Some("view"),
            Output::Send(Msg::Token(_)) => Some("token"),
            Output::Send(Msg::Gather { .. }) => Some("gather"),
            _ => None,
        })
        .collect();
    assert_eq!(&sends[..3], ["view", "token", "gather"]);
    assert_eq!(gathers(&out)[0], (Epoch(3), vec![id(0), id(1), id(9)]));
}

#[test]
fn g2_the_archive_holds_everything_up_to_the_cut_before_the_view_is_proposed() {
    let (mut c, mut v, t0, _) = ring(2, 0);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    v[0].view_epoch = Epoch(1);
    v[0].holding(10, 2);
    v[1].view_epoch = Epoch(1);
    v[1].holding(6, 2);
    let mut out = report_all(&mut c, &mut v, &[0, 1], epoch, t1);
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
    let proposal = out
        .iter()
        .position(|o| matches!(o, Output::Send(Msg::Propose { .. })));
    assert!(last_deliver < proposal, "persist before send");
    assert_eq!(c.archived(), Seq(10));
    let out = settle(&mut c, &mut v, t1, out);
    assert_eq!(views(&out), [(Epoch(2), vec![id(0), id(1)], Seq(10))]);
}

#[test]
fn collect_asks_the_sources_in_turn_and_gathers_again_when_none_answers() {
    let (mut c, mut v, t0, _) = ring(2, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    for voter in &mut v {
        voter.view_epoch = Epoch(1);
        voter.holding(14, 10);
    }
    let out = report_all(&mut c, &mut v, &[0, 1], epoch, t1);
    let mut asked = fetches(&out);
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
fn a_safe_record_the_archive_lacks_is_pulled_at_once_and_an_overdue_chunk_from_the_next_source() {
    let (mut c, _, t0, _) = ring(2, 0);
    let first = Token::first(Epoch(1), NodeId::server(ME), id(0), Seq(0), 2);
    let mut token = first.pass(id(0), id(1));
    token.seq = Seq(6);
    token.safe = Seq(6);
    // Safe on the token, missing here: lost on the way, asked for now, a window of chunks.
    c.handle_datagram(t0 + MS, Msg::Token(token));
    let asked_at = t0 + MS;
    assert_eq!(
        fetches(&drain(&mut c)),
        [(id(1), Seq(1), Seq(4)), (id(1), Seq(5), Seq(6))]
    );
    // Unanswered: asked again of the next source, from the start of what is missing.
    let retry_at = asked_at + fetch::retry_interval(TOKEN_TIMEOUT);
    assert!(fetches(&untimed(run_until(&mut c, retry_at - MS))).is_empty());
    let out = untimed(run_until(&mut c, retry_at));
    assert_eq!(
        fetches(&out),
        [(id(0), Seq(1), Seq(4)), (id(1), Seq(5), Seq(6))]
    );
    c.handle_datagram(retry_at, history(1..=4));
    let out = drain(&mut c);
    assert_eq!(delivered(&out), [1, 2, 3, 4]);
    c.handle_datagram(retry_at, history(5..=9));
    let out = drain(&mut c);
    assert_eq!(delivered(&out), [5, 6], "nothing above safe");
    assert!(fetches(&out).is_empty());
    assert_eq!(c.archived(), Seq(6));
    assert_eq!(
        c.poll_timeout().map(|t| t > retry_at),
        Some(true),
        "no pull left due"
    );
}

#[test]
fn a_fresh_server_probes_then_starts_a_chat_of_its_own() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.probe = Duration::from_secs(2);
    let mut c = Coordinator::new(cfg.clone(), Vote::default(), Seq(0), t0);
    assert_eq!(c.poll_timeout(), Some(t0 + cfg.probe));
    c.handle_datagram(t0 + MS, hello(0));
    c.handle_sync(t0 + MS);
    c.handle_timeout(t0 + cfg.probe - MS);
    assert!(drain(&mut c).is_empty(), "nothing before the probe ends");
    c.handle_timeout(t0 + cfg.probe);
    let out = drain(&mut c);
    assert!(
        matches!(&out[0], Output::SaveVote(v) if v.group == Some(GROUP) && v.primary.is_some())
    );
    assert_eq!(out[1], Output::Event(CoordinatorEvent::Started));
    assert_eq!(beacons(&out), [(Epoch(0), 0, View::default().digest())]);
    assert_eq!(
        c.poll_timeout(),
        Some(t0 + cfg.probe + cfg.beacon_interval / 8),
        "a chat just started beacons often; an empty ring has no token to lose"
    );
}

#[test]
fn a_join_is_refused_with_the_reason_the_client_shows() {
    let (mut c, t0) = started(0);
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
fn g1_the_archive_keeps_only_what_is_safe_and_waits_for_a_lost_pack() {
    let (mut c, _, t0, _) = ring(2, 0);
    let pack = |epoch, seqs: &[u64]| Msg::Data {
        epoch: Epoch(epoch),
        group: GROUP,
        recs: seqs.iter().copied().map(rec).collect(),
    };
    let safe = |s: u64, hop: u64| {
        let first = Token::first(Epoch(1), NodeId::server(ME), id(0), Seq(0), 2);
        let mut t = first.pass(id(0), id(1));
        t.hop = hop;
        t.seq = Seq(7);
        t.safe = Seq(s);
        Msg::Token(t)
    };
    c.handle_datagram(t0, pack(1, &[4, 5, 6]));
    c.handle_datagram(t0, safe(6, 2));
    assert!(delivered(&drain(&mut c)).is_empty(), "1..=3 were lost");
    c.handle_datagram(t0, pack(1, &[1, 2, 3]));
    assert_eq!(delivered(&drain(&mut c)), [1, 2, 3, 4, 5, 6]);
    c.handle_datagram(t0, pack(1, &[5, 6, 7]));
    assert!(
        delivered(&drain(&mut c)).is_empty(),
        "7 is not safe: a recovery may still cut it away"
    );
    c.handle_datagram(t0, safe(7, 3));
    assert_eq!(delivered(&drain(&mut c)), [7]);
    c.handle_datagram(t0, pack(0, &[8]));
    assert_eq!(c.archived(), Seq(7), "a stale epoch's pack is not archived");
}

#[test]
fn a_restarted_server_learns_incarnations_by_a_recovery_and_then_confirms_a_leave() {
    let (c, mut v, t0, _) = ring(3, 10);
    // Restored from its vote: the view, but not the members' incarnations.
    let mut c = Coordinator::new(config(), c.vote().clone(), Seq(10), t0);
    c.handle_timeout(t0);
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
    let out = settle(&mut c, &mut v, t0 + 2 * MS, out);
    assert_eq!(views(&out), [(epoch, vec![id(0), id(1), id(2)], Seq(10))]);
    // The leaver repeats its Leave; now its incarnation is known and the leave goes through.
    c.handle_datagram(t0 + 3 * MS, leave);
    let out = settle_now(&mut c, &mut v, t0 + 4 * MS);
    assert_eq!(views(&out), [(epoch.next(), vec![id(0), id(1)], Seq(10))]);
}

#[test]
fn a_member_restored_for_a_view_keeps_its_place_in_the_ring_order() {
    let (mut c, mut v, t0, _) = ring(3, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    // Reports come in reverse order; the view keeps the ring order.
    let out = report_all(&mut c, &mut v, &[2, 1, 0], epoch, t1);
    assert_eq!(
        views(&out),
        [(Epoch(2), vec![id(0), id(1), id(2)], Seq(10))]
    );
    let member_names: Vec<String> = c
        .view()
        .members
        .iter()
        .map(|m: &Member| m.name.clone())
        .collect();
    assert_eq!(member_names, ["m", "m", "m"], "names as reported");
}

#[test]
fn a_member_waiting_on_a_silent_one_makes_the_server_gather_before_its_token_timeout() {
    let (mut c, _, t0, _) = ring(3, 0);
    let first = Token::first(Epoch(1), NodeId::server(ME), id(0), Seq(0), 3);
    let pass = first.pass(id(0), id(1));
    c.handle_datagram(t0 + MS, Msg::Token(pass.clone()));
    drain(&mut c);
    let suspect = |from: u8| Msg::Suspect {
        epoch: Epoch(1),
        from: id(from),
        hop: pass.hop,
    };
    // Too soon: the ring moved a moment ago (a late suspicion is dropped too).
    c.handle_datagram(t0 + 2 * MS, suspect(0));
    assert!(gathers(&drain(&mut c)).is_empty() && !c.is_recovering());
    // From outside the view: nothing.
    let quiet = t0 + MS + token_ring_resend();
    c.handle_datagram(quiet, suspect(9));
    assert!(gathers(&drain(&mut c)).is_empty());
    // A member, after a quarter of the token timeout without a pass: a gather at once.
    c.handle_datagram(quiet, suspect(0));
    assert_eq!(gathers(&drain(&mut c)).len(), 1);
    assert!(c.is_recovering());
}
