//! Unit tests of the primary component rule: majorities and halves, the member a quorum needs,
//! the complete cut, the newest primary as the base, and undecided attempts (alive or dead).

use super::*;
use crate::protocol::types::{Member, ServerId, View};

fn client(n: u8) -> NodeId {
    NodeId(uuid::Uuid::from_u128(u128::from(n)))
}

fn server(n: u64) -> NodeId {
    NodeId::server(ServerId(n))
}

/// A session of `epoch` with these member and server numbers (the first server proposed it).
fn session(epoch: u64, members: &[u8], servers: &[u64], cut: u64) -> Session {
    Session {
        view: View {
            epoch: Epoch(epoch),
            members: members
                .iter()
                .map(|&n| Member {
                    id: client(n),
                    name: format!("c{n}"),
                })
                .collect(),
            servers: servers.iter().map(|&s| ServerId(s)).collect(),
        },
        cut: Seq(cut),
    }
}

/// What one reporter knows, as it would report it.
struct Voter {
    id: NodeId,
    primary: Option<SessionRef>,
    attempts: Vec<SessionRef>,
    installed: Epoch,
}

impl Voter {
    fn new(id: NodeId, primary: &Session) -> Voter {
        Voter {
            id,
            primary: Some(primary.reference(id)),
            attempts: Vec::new(),
            installed: Epoch(0),
        }
    }

    /// Installed its primary in this incarnation (its aru is trusted there).
    fn live(mut self) -> Voter {
        self.installed = self.primary.map_or(Epoch(0), |p| p.epoch);
        self
    }

    fn attempted(mut self, s: &Session) -> Voter {
        self.attempts.push(s.reference(self.id));
        self
    }

    fn report(&self) -> Report<'_> {
        Report {
            from: self.id,
            primary: self.primary,
            attempts: &self.attempts,
            installed: self.installed,
        }
    }
}

fn judge(known: &[&Session], voters: &[Voter]) -> Verdict {
    let reports: Vec<Report> = voters.iter().map(Voter::report).collect();
    decide(known, &reports)
}

fn missing(v: Verdict) -> Option<(u32, u32, Missing)> {
    match v {
        Verdict::Go(_) => None,
        Verdict::Wait(s) => Some((s.reachable, s.voters, s.missing)),
    }
}

#[test]
fn a_majority_of_the_last_primary_goes_on_and_a_minority_waits_saying_how_many() {
    let l = session(4, &[1, 2], &[10], 20);
    let side_a = [Voter::new(server(10), &l), Voter::new(client(1), &l).live()];
    let go = judge(&[&l], &side_a);
    assert!(matches!(&go, Verdict::Go(d) if d.base.epoch == Epoch(4) && d.floor == Seq(20)));
    let side_b = [Voter::new(client(2), &l).live()];
    assert_eq!(missing(judge(&[], &side_b)), Some((1, 3, Missing::Quorum)));
}

#[test]
fn an_exact_half_wins_only_with_the_first_server_and_a_member() {
    let l = session(4, &[1, 2], &[10, 11], 20);
    let with_first = [Voter::new(server(10), &l), Voter::new(client(1), &l).live()];
    assert!(matches!(judge(&[&l], &with_first), Verdict::Go(_)));
    let without_first = [Voter::new(server(11), &l), Voter::new(client(2), &l).live()];
    assert_eq!(
        missing(judge(&[&l], &without_first)),
        Some((2, 4, Missing::Quorum))
    );
    let servers_only = [Voter::new(server(10), &l), Voter::new(server(11), &l)];
    assert_eq!(
        missing(judge(&[&l], &servers_only)),
        Some((2, 4, Missing::Member))
    );
}

#[test]
fn servers_never_outvote_a_ring_that_may_chat_on_without_them() {
    let l = session(4, &[1], &[10, 11, 12], 20);
    let servers = [
        Voter::new(server(10), &l),
        Voter::new(server(11), &l),
        Voter::new(server(12), &l),
    ];
    assert_eq!(
        missing(judge(&[&l], &servers)),
        Some((3, 4, Missing::Member))
    );
}

#[test]
fn a_server_alone_forms_a_primary_only_of_itself() {
    let genesis = session(0, &[], &[10], 0);
    assert!(matches!(
        judge(&[&genesis], &[Voter::new(server(10), &genesis)]),
        Verdict::Go(_)
    ));
    let l = session(3, &[1], &[10], 9);
    assert_eq!(
        missing(judge(&[&l], &[Voter::new(server(10), &l)])),
        Some((1, 2, Missing::Member)),
        "the one-member ring may be chatting behind a partition"
    );
}

#[test]
fn the_cut_needs_a_member_that_did_not_restart_or_every_voter() {
    let l = session(4, &[1, 2, 3], &[10], 20);
    let restarted = [
        Voter::new(server(10), &l),
        Voter::new(client(1), &l),
        Voter::new(client(2), &l),
    ];
    assert_eq!(
        missing(judge(&[&l], &restarted)),
        Some((3, 4, Missing::Cut)),
        "client 3 may have delivered what both restarted ones lost"
    );
    let one_live = [
        Voter::new(server(10), &l),
        Voter::new(client(1), &l),
        Voter::new(client(2), &l).live(),
    ];
    assert!(matches!(judge(&[&l], &one_live), Verdict::Go(_)));
    let everyone = [
        Voter::new(server(10), &l),
        Voter::new(client(1), &l),
        Voter::new(client(2), &l),
        Voter::new(client(3), &l),
    ];
    assert!(matches!(judge(&[&l], &everyone), Verdict::Go(_)));
}

#[test]
fn the_base_is_the_newest_primary_any_reporter_formed() {
    let old = session(2, &[1, 2, 3], &[10], 5);
    let new = session(6, &[1, 2], &[11], 30);
    let voters = [
        Voter::new(server(10), &old),
        Voter::new(client(1), &new).live(),
        Voter::new(server(11), &new),
    ];
    let Verdict::Go(d) = judge(&[&old], &voters) else {
        panic!("two of the three voters of epoch 6 reported");
    };
    assert_eq!((d.base.epoch, d.floor), (Epoch(6), Seq(30)));
}

#[test]
fn an_undecided_attempt_needs_a_subquorum_of_its_own_and_raises_the_floor() {
    let l = session(4, &[1, 2, 3], &[10, 11], 20);
    // Server 10 proposed epoch 7 to {1, 2, 3, 10, 11} with cut 26; 1 and 11 accepted it, then
    // 10 died: it may have installed it.
    let a = session(7, &[1, 2, 3], &[10, 11], 26);
    let voters = [
        Voter::new(server(11), &l).attempted(&a),
        Voter::new(client(1), &l).live().attempted(&a),
        Voter::new(client(2), &l).live().attempted(&a),
    ];
    let Verdict::Go(d) = judge(&[&l, &a], &voters) else {
        panic!("a majority of both voter sets");
    };
    assert_eq!((d.floor, d.dead.clone()), (Seq(26), Vec::<Epoch>::new()));
    // Only the attempt's voters that know it count when its view is not known.
    let few = [
        Voter::new(server(11), &l),
        Voter::new(client(1), &l).live().attempted(&a),
        Voter::new(client(2), &l).live(),
        Voter::new(client(3), &l).live(),
    ];
    assert_eq!(missing(judge(&[&l], &few)), Some((1, 5, Missing::Quorum)));
}

#[test]
fn an_attempt_is_dead_once_a_voter_of_it_never_accepted_it_or_its_server_moved_on() {
    let l = session(4, &[1, 2], &[10, 11], 20);
    let a = session(7, &[1, 2], &[10, 11], 26);
    // Client 2 is a voter of epoch 7 but never accepted it: it cannot have formed.
    let voters = [
        Voter::new(server(11), &l).attempted(&a),
        Voter::new(client(1), &l).live().attempted(&a),
        Voter::new(client(2), &l).live(),
    ];
    let Verdict::Go(d) = judge(&[&l, &a], &voters) else {
        panic!("a majority of epoch 4");
    };
    assert_eq!((d.floor, d.dead.clone()), (Seq(20), vec![Epoch(7)]));
    // Without the whole view, the proposer's own report settles it.
    let voters = [
        Voter::new(server(10), &l).attempted(&a),
        Voter::new(client(1), &l).live().attempted(&a),
    ];
    let Verdict::Go(d) = judge(&[], &voters) else {
        panic!("an exact half with the first server and a member");
    };
    assert_eq!(d.dead, vec![Epoch(7)]);
}
