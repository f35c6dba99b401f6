//! The members (and other servers) of the server's unit tests: each a [`Voter`] with a real
//! vote that answers gathers, proposals and views as a member would, holding what the test
//! says. Test support only: it asserts nothing of the server.

use super::{drain, id, GROUP};
use crate::protocol::coordinator::Coordinator;
use crate::protocol::events::{CoordinatorOutput, Output};
use crate::protocol::types::{Epoch, Incarnation, NodeId, Seq, ServerId, View};
use crate::protocol::vote::{Ballot, Promise, Session, Vote};
use crate::protocol::wire::Msg;
use std::time::Instant;

/// A member (or another server) as the server under test sees it: a real vote, and what it
/// says it holds when it reports.
#[derive(Clone, Debug)]
pub(super) struct Voter {
    pub(super) id: NodeId,
    pub(super) vote: Vote,
    /// The view it installed in this incarnation (0: restarted since).
    pub(super) view_epoch: Epoch,
    aru: Seq,
    delivered: Seq,
    /// Down: answers nothing.
    pub(super) up: bool,
}

impl Voter {
    pub(super) fn new(id: NodeId) -> Voter {
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
    pub(super) fn holding(&mut self, aru: u64, delivered: u64) {
        self.aru = Seq(aru);
        self.delivered = Seq(delivered);
    }

    /// A restart: the vote and the replica survive, the installed view does not.
    pub(super) fn restart(&mut self) {
        self.view_epoch = Epoch(0);
        self.aru = self.delivered;
    }

    /// Its answer to the gather of `epoch` by `server`: a report (a refusal if it promised
    /// another gather of that epoch or later).
    pub(super) fn answer_gather(&mut self, epoch: Epoch, server: ServerId) -> Msg {
        self.vote.group.get_or_insert(GROUP);
        let promise = self.vote.promise(Ballot { epoch, server });
        assert_ne!(promise, Promise::Refused, "tests refuse by hand");
        self.report(epoch)
    }

    pub(super) fn report(&self, epoch: Epoch) -> Msg {
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
pub(super) fn members(n: u8) -> Vec<Voter> {
    (0..n).map(|m| Voter::new(id(m))).collect()
}

/// Hands the server's outputs to the voters that are up and the voters' answers back to the
/// server, until it asks nothing more of them; returns every output of the server on the way.
pub(super) fn settle(
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
pub(super) fn settle_now(
    c: &mut Coordinator,
    voters: &mut [Voter],
    now: Instant,
) -> Vec<CoordinatorOutput> {
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
