//! A node's vote on the chat's membership, the state that makes the primary component rule
//! ([`crate::protocol::quorum`]) safe: the chat it belongs to, the highest gather it promised
//! to answer, the last primary view it formed, and the views it attempted (accepted a
//! proposal for) without knowing whether they formed.
//!
//! Every server and every client keeps one, and it is durable: a node writes it (the driver's
//! `SaveVote` output) before it sends the report, acceptance or anything else that depends on
//! it, and restores it after a crash. A voter that forgot a promise could help form two views
//! from one; the vote file is what a `kill -9` cannot take back.
//!
//! Pure data and its transitions: no I/O, no clock, no protocol decisions beyond the vote's
//! own rules (a promise only rises; an attempt needs the promise of its proposal; forming
//! clears the attempts).

use crate::protocol::limits::MAX_ATTEMPTS;
use crate::protocol::types::{Epoch, GroupId, NodeId, Seq, ServerId, View};
use serde::{Deserialize, Serialize};

/// A gather's identity: its epoch and the server that runs it. A voter answers one gather per
/// epoch, so two servers can never both collect promises for one epoch, and installed views
/// have epochs that no other view shares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ballot {
    /// The epoch the gather opens.
    pub epoch: Epoch,
    /// The server that gathers; `ServerId(0)` before any promise.
    pub server: ServerId,
}

/// A view as a vote: its members and servers are the voters on its successor, and its cut is
/// what any successor must keep. A proposal, once accepted, is an attempt; once installed, a
/// primary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The view; `view.servers[0]` proposed it.
    pub view: View,
    /// Every seq up to here is final in this view.
    pub cut: Seq,
}

impl Session {
    /// The session's epoch.
    pub fn epoch(&self) -> Epoch {
        self.view.epoch
    }

    /// The server that proposed it (and coordinates it, once installed).
    pub fn server(&self) -> ServerId {
        self.view.coordinator().unwrap_or(ServerId(0))
    }

    /// The ballot of the gather it was proposed under.
    pub fn ballot(&self) -> Ballot {
        Ballot {
            epoch: self.epoch(),
            server: self.server(),
        }
    }

    /// What `id` is in this session.
    pub fn role(&self, id: NodeId) -> Role {
        match id.as_server() {
            Some(s) if self.view.servers.contains(&s) => Role::Server,
            None if self.view.contains(id) => Role::Member,
            _ => Role::None,
        }
    }

    /// This session as `id` reports it: the counts a quorum is judged on, and `id`'s role.
    pub fn reference(&self, id: NodeId) -> SessionRef {
        SessionRef {
            epoch: self.epoch(),
            server: self.server(),
            cut: self.cut,
            voters: u32::try_from(self.view.voters()).unwrap_or(u32::MAX),
            members: u32::try_from(self.view.members.len()).unwrap_or(u32::MAX),
            role: self.role(id),
        }
    }
}

/// What a voter is in a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A ring member.
    Member,
    /// One of its servers.
    Server,
    /// Not a voter (a leaver that reported, a joiner that came too late).
    None,
}

/// A session as a report names it: enough to count a quorum of its voters without their list
/// (each reporter says what it is in the session).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRef {
    pub epoch: Epoch,
    /// The proposer, first in the session's rank order (the tie-breaker).
    pub server: ServerId,
    pub cut: Seq,
    /// How many voters (members and servers) it has.
    pub voters: u32,
    /// How many of them are members.
    pub members: u32,
    /// What the reporter is in it.
    pub role: Role,
}

/// What a voter says to a gather's ballot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Promise {
    /// A new promise: save the vote, then report.
    New,
    /// The gather this vote promised already (a resend): report again.
    Again,
    /// A gather of this epoch or higher was promised to another: refuse, naming it.
    Refused,
}

/// Why an accepted proposal was not recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptError {
    /// The vote promised another gather since.
    NotPromised,
    /// [`MAX_ATTEMPTS`] undecided attempts are kept already (a report names each one).
    TooMany,
}

/// A node's durable vote. See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The chat this node belongs to; `None` until it first promises or starts one.
    pub group: Option<GroupId>,
    /// The highest gather promised.
    pub promised: Ballot,
    /// The last primary view this node formed; `None` if it never formed one.
    pub primary: Option<Session>,
    /// Proposals accepted above `primary`, in epoch order, not known to have formed.
    pub attempts: Vec<Session>,
}

impl Vote {
    /// The vote of a server that starts a chat of its own: a primary of itself alone, in
    /// epoch 0 (no view has that epoch on the wire).
    pub fn genesis(group: GroupId, server: ServerId) -> Vote {
        let view = View {
            epoch: Epoch(0),
            members: Vec::new(),
            servers: vec![server],
        };
        Vote {
            group: Some(group),
            promised: Ballot::default(),
            primary: Some(Session { view, cut: Seq(0) }),
            attempts: Vec::new(),
        }
    }

    /// Whether this vote belongs to no chat yet, or may leave the one it has: it never formed
    /// a view with members, so no history hangs on it.
    pub fn is_unattached(&self) -> bool {
        self.primary
            .as_ref()
            .is_none_or(|p| p.view.members.is_empty() && self.attempts.is_empty())
    }

    /// Answers a gather: a ballot above every promise (or the one promised) is promised.
    pub fn promise(&mut self, ballot: Ballot) -> Promise {
        if ballot == self.promised {
            Promise::Again
        } else if ballot.epoch > self.promised.epoch {
            self.promised = ballot;
            Promise::New
        } else {
            Promise::Refused
        }
    }

    /// Records an accepted proposal, made under the ballot this vote promised. `base` is the
    /// primary the proposer built on (a formed view; an attempt of that epoch is therefore
    /// formed), and `dead` the attempts it proved never formed: both may be forgotten.
    pub fn attempt(
        &mut self,
        session: Session,
        base: Epoch,
        dead: &[Epoch],
    ) -> Result<(), AttemptError> {
        if session.ballot() != self.promised {
            return Err(AttemptError::NotPromised);
        }
        self.learn_formed(base);
        let floor = self.primary_epoch();
        self.attempts.retain(|a| {
            a.epoch() > floor && a.epoch() != session.epoch() && !dead.contains(&a.epoch())
        });
        if self.attempts.len() >= MAX_ATTEMPTS {
            return Err(AttemptError::TooMany);
        }
        self.attempts.push(session);
        Ok(())
    }

    /// The proposal of `ballot` was installed: its attempt becomes the primary, and every
    /// other attempt is settled by it. False if this vote has no such attempt or has promised
    /// a later gather since (a promise to a later gather forbids acting in this view).
    pub fn form(&mut self, ballot: Ballot) -> bool {
        if ballot != self.promised {
            return false;
        }
        let Some(i) = self.attempts.iter().position(|a| a.ballot() == ballot) else {
            return false;
        };
        self.primary = Some(self.attempts.remove(i));
        self.attempts.clear();
        true
    }

    /// An attempt of ours is known to have formed (a newer primary named it): it becomes the
    /// primary, and older attempts are settled. False if we hold no attempt of `epoch`.
    pub fn learn_formed(&mut self, epoch: Epoch) -> bool {
        let Some(i) = self.attempts.iter().position(|a| a.epoch() == epoch) else {
            return false;
        };
        self.primary = Some(self.attempts.remove(i));
        self.attempts.retain(|a| a.epoch() > epoch);
        true
    }

    /// The attempt of this epoch, if any.
    pub fn attempt_of(&self, epoch: Epoch) -> Option<&Session> {
        self.attempts.iter().find(|a| a.epoch() == epoch)
    }

    /// The epoch of the last primary formed (0 without one).
    pub fn primary_epoch(&self) -> Epoch {
        self.primary.as_ref().map_or(Epoch(0), Session::epoch)
    }

    /// The primary and attempts as `id` reports them.
    pub fn references(&self, id: NodeId) -> (Option<SessionRef>, Vec<SessionRef>) {
        let primary = self.primary.as_ref().map(|p| p.reference(id));
        let attempts = self.attempts.iter().map(|a| a.reference(id)).collect();
        (primary, attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::Member;

    fn session(epoch: u64, server: u64, members: &[NodeId]) -> Session {
        Session {
            view: View {
                epoch: Epoch(epoch),
                members: members
                    .iter()
                    .map(|id| Member {
                        id: *id,
                        name: "m".into(),
                    })
                    .collect(),
                servers: vec![ServerId(server), ServerId(99)],
            },
            cut: Seq(epoch * 10),
        }
    }

    fn ballot(epoch: u64, server: u64) -> Ballot {
        Ballot {
            epoch: Epoch(epoch),
            server: ServerId(server),
        }
    }

    #[test]
    fn a_promise_only_rises_and_one_epoch_is_promised_to_one_server() {
        let mut v = Vote::default();
        assert_eq!(v.promise(ballot(3, 1)), Promise::New);
        assert_eq!(v.promise(ballot(3, 1)), Promise::Again);
        assert_eq!(
            v.promise(ballot(3, 2)),
            Promise::Refused,
            "same epoch, other server"
        );
        assert_eq!(v.promise(ballot(2, 1)), Promise::Refused);
        assert_eq!(v.promise(ballot(4, 2)), Promise::New);
        assert_eq!(v.promised, ballot(4, 2));
    }

    #[test]
    fn an_attempt_needs_the_promise_of_its_proposal_and_forming_settles_the_others() {
        let me = NodeId::random();
        let mut v = Vote::default();
        v.promise(ballot(3, 1));
        assert_eq!(
            v.attempt(session(3, 2, &[me]), Epoch(0), &[]),
            Err(AttemptError::NotPromised)
        );
        v.attempt(session(3, 1, &[me]), Epoch(0), &[]).unwrap();
        assert!(!v.form(ballot(4, 1)), "nothing attempted there");
        v.promise(ballot(5, 2));
        assert!(!v.form(ballot(3, 1)), "a later promise forbids forming");
        v.attempt(session(5, 2, &[me]), Epoch(0), &[]).unwrap();
        assert_eq!(v.attempts.len(), 2, "the first is still undecided");
        assert!(v.form(ballot(5, 2)));
        assert_eq!(v.primary_epoch(), Epoch(5));
        assert!(v.attempts.is_empty());
    }

    #[test]
    fn a_proposal_names_its_base_as_formed_and_its_dead_attempts_as_gone() {
        let me = NodeId::random();
        let mut v = Vote::default();
        for e in [3, 4, 5] {
            v.promise(ballot(e, 1));
            v.attempt(session(e, 1, &[me]), Epoch(0), &[]).unwrap();
        }
        v.promise(ballot(7, 1));
        v.attempt(session(7, 1, &[me]), Epoch(4), &[Epoch(5)])
            .unwrap();
        assert_eq!(
            v.primary_epoch(),
            Epoch(4),
            "epoch 4 formed, says the proposer"
        );
        let left: Vec<Epoch> = v.attempts.iter().map(Session::epoch).collect();
        assert_eq!(left, [Epoch(7)], "3 is below the primary, 5 is dead");
    }

    #[test]
    fn undecided_attempts_are_bounded() {
        let me = NodeId::random();
        let mut v = Vote::default();
        for e in 1..=MAX_ATTEMPTS as u64 {
            v.promise(ballot(e, e));
            v.attempt(session(e, e, &[me]), Epoch(0), &[]).unwrap();
        }
        let e = MAX_ATTEMPTS as u64 + 1;
        v.promise(ballot(e, e));
        assert_eq!(
            v.attempt(session(e, e, &[me]), Epoch(0), &[]),
            Err(AttemptError::TooMany)
        );
    }

    #[test]
    fn a_session_reference_counts_voters_and_says_the_reporters_role() {
        let me = NodeId::random();
        let s = session(2, 1, &[me, NodeId::random()]);
        let r = s.reference(me);
        assert_eq!((r.voters, r.members, r.role), (4, 2, Role::Member));
        assert_eq!(s.reference(NodeId::server(ServerId(99))).role, Role::Server);
        assert_eq!(s.reference(NodeId::random()).role, Role::None);
        assert_eq!(r.server, ServerId(1));
    }

    #[test]
    fn a_chat_without_members_may_be_given_up() {
        assert!(Vote::default().is_unattached());
        assert!(Vote::genesis(GroupId(1), ServerId(1)).is_unattached());
        let mut v = Vote::genesis(GroupId(1), ServerId(1));
        v.primary = Some(session(2, 1, &[NodeId::random()]));
        assert!(!v.is_unattached());
    }
}
