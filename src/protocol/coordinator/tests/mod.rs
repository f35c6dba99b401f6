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
use crate::protocol::vote::{Ballot, Promise, Session, Vote};
use crate::protocol::wire::{Msg, RefuseReason};
use std::time::{Duration, Instant};
use uuid::Uuid;

mod roles;
mod scale;

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

/// A member (or another server) as the server under test sees it: a real vote, and what it
/// says it holds when it reports.
#[derive(Clone, Debug)]
struct Voter {
    id: NodeId,
    vote: Vote,
    /// The view it installed in this incarnation (0: restarted since).
    view_epoch: Epoch,
    aru: Seq,
    delivered: Seq,
    /// Down: answers nothing.
    up: bool,
}

impl Voter {
    fn new(id: NodeId) -> Voter {
        Voter {
            id,
            vote: Vote::default(),
            view_epoch: Epoch(0),
            aru: Seq(0),
            delivered: Seq(0),
            up: true,
        }
    }

    /// Holds everything up to `aru` (collected in its installed view), delivered `delivered`.
    fn holding(&mut self, aru: u64, delivered: u64) {
        self.aru = Seq(aru);
        self.delivered = Seq(delivered);
    }

    /// A restart: the vote and the replica survive, the installed view does not.
    fn restart(&mut self) {
        self.view_epoch = Epoch(0);
        self.aru = self.delivered;
    }

    /// Its answer to the gather of `epoch` by `server`: a report (a refusal if it promised
    /// another gather of that epoch or later).
    fn answer_gather(&mut self, epoch: Epoch, server: ServerId) -> Msg {
        self.vote.group.get_or_insert(GROUP);
        let promise = self.vote.promise(Ballot { epoch, server });
        assert_ne!(promise, Promise::Refused, "tests refuse by hand");
        self.report(epoch)
    }

    fn report(&self, epoch: Epoch) -> Msg {
        let (primary, attempts) = self.vote.references(self.id);
        Msg::Report {
            epoch,
            from: self.id,
            incarnation: Incarnation(1),
            name: "m".into(),
            view_epoch: self.view_epoch,
            aru: self.aru,
            delivered: self.delivered,
            group: GROUP,
            promised: self.vote.promised,
            primary,
            attempts,
        }
    }
}

/// The voters `0..n`: members `id(n)`.
fn members(n: u8) -> Vec<Voter> {
    (0..n).map(|m| Voter::new(id(m))).collect()
}

/// Hands the server's outputs to the voters that are up and the voters' answers back to the
/// server, until it asks nothing more of them; returns every output of the server on the way.
fn settle(
    c: &mut Coordinator,
    voters: &mut [Voter],
    now: Instant,
    out: Vec<CoordinatorOutput>,
) -> Vec<CoordinatorOutput> {
    let mut all = out.clone();
    let mut next = out;
    for _ in 0..100 {
        let answers = answers(voters, &next);
        if answers.is_empty() {
            return all;
        }
        for msg in answers {
            c.handle_datagram(now, msg);
        }
        next = drain(c);
        all.extend(next.clone());
    }
    panic!("the server keeps asking");
}

/// [`settle`] from the outputs waiting now.
fn settle_now(c: &mut Coordinator, voters: &mut [Voter], now: Instant) -> Vec<CoordinatorOutput> {
    let out = drain(c);
    settle(c, voters, now, out)
}

/// What the voters that are up answer to `out`: reports to gathers that name them,
/// acceptances of proposals of a ballot they promised; views they accepted are formed.
fn answers(voters: &mut [Voter], out: &[CoordinatorOutput]) -> Vec<Msg> {
    let mut msgs = Vec::new();
    for o in out {
        let Output::Send(msg) = o else { continue };
        for v in voters.iter_mut().filter(|v| v.up) {
            match msg {
                Msg::Gather {
                    epoch,
                    members,
                    server,
                    ..
                } if members.contains(&v.id) => msgs.push(v.answer_gather(*epoch, *server)),
                Msg::Propose { .. } => {
                    if let Some(session) = whole_proposal(out, msg) {
                        let epoch = session.epoch();
                        let again = v.vote.attempt_of(epoch) == Some(&session);
                        if again || v.vote.attempt(session, Epoch(0), &[]).is_ok() {
                            msgs.push(Msg::Accept { epoch, from: v.id });
                        }
                    }
                }
                Msg::View {
                    epoch,
                    servers,
                    part: 0,
                    ..
                } => {
                    let ballot = Ballot {
                        epoch: *epoch,
                        server: servers[0],
                    };
                    if v.vote.form(ballot) {
                        v.view_epoch = *epoch;
                    }
                }
                _ => {}
            }
        }
    }
    msgs.dedup();
    msgs
}

/// The whole proposal that part 0 `msg` begins, from its parts in `out`.
fn whole_proposal(out: &[CoordinatorOutput], msg: &Msg) -> Option<Session> {
    let Msg::Propose {
        epoch,
        part: 0,
        servers,
        cut,
        ..
    } = msg
    else {
        return None;
    };
    let mut members = Vec::new();
    for o in out {
        if let Output::Send(Msg::Propose {
            epoch: e,
            members: m,
            ..
        }) = o
        {
            if e == epoch {
                members.extend(m.iter().cloned());
            }
        }
    }
    Some(Session {
        view: View {
            epoch: *epoch,
            members,
            servers: servers.clone(),
        },
        cut: *cut,
    })
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
fn g1_one_old_member_reporting_a_trusted_aru_completes_the_cut() {
    let (mut c, mut v, t0, _) = ring(3, 10);
    let (t1, epoch, proposed) = lose_token(&mut c, t0);
    assert_eq!((epoch, proposed), (Epoch(2), vec![id(0), id(1), id(2)]));
    // Member 0 did not restart: its aru (collected in epoch 1) covers all the ring delivered.
    v[0].holding(15, 12);
    v[1].up = false;
    v[2].up = false;
    let out = report_all(&mut c, &mut v, &[0], epoch, t1 + 10 * MS);
    assert!(fetches(&out).is_empty(), "members 1 and 2 may still answer");
    // The first report shortens the wait for the others to four times its delay (at least
    // 100 ms); then the silent ones are left out: the server and member 0 are two of the
    // four voters, the first server among them, and member 0's aru completes the cut.
    assert_eq!(c.poll_timeout(), Some(t1 + 110 * MS));
    let out = untimed(run_until(&mut c, t1 + 110 * MS));
    assert_eq!(fetches(&out), [(id(0), Seq(11), Seq(14))]);
    c.handle_datagram(t1 + 120 * MS, history(11..=14));
    assert_eq!(fetches(&drain(&mut c)), [(id(0), Seq(15), Seq(15))]);
    c.handle_datagram(t1 + 130 * MS, history([15]));
    let out = settle_now(&mut c, &mut v, t1 + 130 * MS);
    assert_eq!(views(&out), [(Epoch(2), vec![id(0)], Seq(15))]);
}

#[test]
fn g1_a_restarted_members_report_counts_only_what_it_delivered() {
    let (mut c, mut v, t0, _) = ring(3, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    // All three restarted: what they received but did not deliver is gone, so an aru of 20
    // proves nothing; their replicas hold 12, 11, 10.
    for (n, delivered) in [(0, 12), (1, 11), (2, 10)] {
        v[n].holding(20, delivered);
        v[n].restart();
    }
    let out = report_all(&mut c, &mut v, &[0, 1, 2], epoch, t1);
    assert_eq!(fetches(&out), [(id(0), Seq(11), Seq(12))]);
    c.handle_datagram(t1, history(11..=12));
    let out = settle_now(&mut c, &mut v, t1);
    assert_eq!(delivered(&out), [11, 12]);
    assert_eq!(
        views(&out),
        [(Epoch(2), vec![id(0), id(1), id(2)], Seq(12))]
    );
}

#[test]
fn g1_without_a_trusted_report_the_gather_waits_for_every_voter_however_long() {
    let (mut c, mut v, t0, _) = ring(3, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    // Members 0 and 1 restarted; member 2 may be alive behind a partition, holding delivered
    // messages above anything the reports show. The server and 0 and 1 are a quorum of the
    // four voters, but the cut is not complete without 2.
    v[0].restart();
    v[1].restart();
    v[2].up = false;
    report_all(&mut c, &mut v, &[0, 1], epoch, t1 + 10 * MS);
    let waiting = untimed(run_until(&mut c, t1 + 60 * TOKEN_TIMEOUT));
    assert!(installs(&waiting).is_empty());
    assert!(c.is_recovering());
    assert_eq!(waits(&waiting), [(3, 4)], "said once");
    let asked = gathers(&waiting);
    assert!(asked.len() > 10, "it keeps asking: {} gathers", asked.len());
    assert!(asked
        .iter()
        .all(|g| g == &(epoch, vec![id(0), id(1), id(2)])));
    // Member 2 comes back: the cut is complete at once.
    v[2].up = true;
    let t2 = t1 + 61 * TOKEN_TIMEOUT;
    let out = report_all(&mut c, &mut v, &[2], epoch, t2);
    assert_eq!(
        views(&out),
        [(Epoch(2), vec![id(0), id(1), id(2)], Seq(10))]
    );
}

#[test]
fn g1_a_server_alone_never_forms_a_view_while_the_ring_may_chat_on() {
    let (mut c, mut v, t0, _) = ring(3, 10);
    let (t1, _, _) = lose_token(&mut c, t0);
    // The whole ring is behind a partition, chatting on: the server and a joiner beside it
    // (no voter of epoch 1) are 1 of its 4 voters.
    v.iter_mut().for_each(|v| v.up = false);
    v.push(Voter::new(id(9)));
    c.handle_datagram(t1, hello(9));
    let t2 = t1 + 30 * TOKEN_TIMEOUT;
    let out = untimed(run_until(&mut c, t2));
    let out = settle(&mut c, &mut v, t2, out);
    assert!(installs(&out).is_empty(), "{:?}", views(&out));
    assert_eq!(waits(&out), [(1, 4)]);
    let waiting = out.iter().any(
        |o| matches!(o, Output::Send(Msg::Gather { waiting: Some(w), .. }) if w.reachable == 1),
    );
    assert!(waiting, "the gather tells the joiner why it waits");
    // Member 2 (which did not restart) is back: with it, 2 of 4 and the first server.
    v[2].up = true;
    let t3 = t2 + TOKEN_TIMEOUT;
    let out = untimed(run_until(&mut c, t3));
    let out = settle(&mut c, &mut v, t3, out);
    assert_eq!(
        views(&out).last().map(|v| v.1.clone()),
        Some(vec![id(2), id(9)])
    );
}

#[test]
fn g1_the_cut_is_the_most_any_reporter_holds_and_it_is_fetched_from_that_one() {
    let (mut c, mut v, t0, _) = ring(3, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    for (n, aru) in [(0, 12), (1, 18), (2, 15)] {
        v[n].view_epoch = Epoch(1);
        v[n].holding(aru, 10);
    }
    let out = report_all(&mut c, &mut v, &[0, 1, 2], epoch, t1);
    assert_eq!(fetches(&out), [(id(1), Seq(11), Seq(14))]);
    c.handle_datagram(t1, history(11..=14));
    // Member 1 alone holds 16..=18; member 2 also holds 15.
    assert_eq!(fetches(&drain(&mut c)), [(id(1), Seq(15), Seq(18))]);
    c.handle_datagram(t1, history(15..=18));
    let out = settle_now(&mut c, &mut v, t1);
    assert_eq!(installs(&out), [(Epoch(2), 3, Seq(18))]);
}

#[test]
fn g1_the_cut_never_goes_below_the_archive() {
    let (mut c, mut v, t0, _) = ring(2, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    v[0].holding(5, 5);
    v[1].holding(7, 3);
    let out = report_all(&mut c, &mut v, &[0, 1], epoch, t1);
    assert!(
        fetches(&out).is_empty(),
        "the archive holds more than any reporter"
    );
    assert_eq!(views(&out), [(Epoch(2), vec![id(0), id(1)], Seq(10))]);
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
fn reconciliation_pulls_the_final_records_the_archive_lacks_from_members_in_turn() {
    let (mut c, _, t0, _) = ring(2, 0);
    let first = Token::first(Epoch(1), NodeId::server(ME), id(0), Seq(0), 2);
    let mut token = first.pass(id(0), id(1));
    token.seq = Seq(6);
    token.safe = Seq(6);
    c.handle_datagram(t0 + MS, Msg::Token(token));
    drain(&mut c);
    c.handle_sync(t0 + 2 * MS);
    assert_eq!(fetches(&drain(&mut c)), [(id(1), Seq(1), Seq(4))]);
    // Unanswered: the next member is asked, from the start of what is missing.
    let retry_at = t0 + 2 * MS + fetch::retry_interval(TOKEN_TIMEOUT);
    assert!(fetches(&untimed(run_until(&mut c, retry_at - MS))).is_empty());
    let out = untimed(run_until(&mut c, retry_at));
    assert_eq!(fetches(&out), [(id(0), Seq(1), Seq(4))]);
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
