//! The primary component rule: a view is installed only by a quorum of the voters of the last
//! primary view, so two sides of a partition never both go on, and history never forks.
//!
//! # The rule (dynamic linear voting)
//! After Jajodia and Mutchler, with the ambiguous attempts of Yeger Lotem, Keidar and Dolev
//! ("Dynamic voting for consistent primary components", PODC 1997). Every node keeps a
//! durable [`Vote`](crate::protocol::vote::Vote): its promise, its last formed primary `L`, and
//! the proposals it accepted since (attempts). A server installs a view in three rounds:
//! 1. **Gather**: the voters promise its ballot (and refuse lower ones) and report their vote.
//! 2. **Propose**: if [`decide`] says so, it proposes the view; every reporter accepts it
//!    durably (an attempt) before it is installed.
//! 3. **Install**: once every reporter accepted, it installs the view (voters form it).
//!
//! [`decide`] lets a gather go on only if its reporters hold
//! - a **subquorum** of the voters (members and servers) of `L`, the newest primary any
//!   reporter formed, and of every attempt above `L` that may have formed: more than half, or
//!   exactly half including the session's first server; and in either case at least one of
//!   its members if it has any (the ring chats on without servers, so servers alone must
//!   never outvote it);
//! - a **complete cut** for `L`: a member that installed `L` and did not restart since (its
//!   `aru` bounds everything `L`'s ring can still make safe, for it stopped visiting the
//!   ring when it reported), or a report from every voter of `L`.
//!
//! The cut of the new view covers the cut of every undecided attempt above `L`.
//!
//! # Why two primaries can never coexist
//! Take two views `A` and `B` built on the same primary `L`. Each gathered a subquorum of
//! `L`'s voters, and two subquorums of one set always share a voter `v` (two majorities meet;
//! a half meets a majority; two halves meet in the first server). Say `A`'s ballot is lower.
//! If `v` promised `B` before `A`'s proposal reached it, `v` refused `A`, and `A`, which needs
//! every reporter's acceptance, was never installed. Otherwise `v` accepted `A` first and
//! reported it to `B` as an attempt (or as its primary, had it formed): `B`'s gather then
//! needed a subquorum of `A`'s voters too, and a cut that covers `A`'s. So `B` is built on
//! `A`, not beside it, and anything installed after either is built on both. An attempt
//! that did not form harms nothing: nothing was delivered in it, since its ring would have
//! needed the very member that reported it to `B` unformed, and that member, having promised
//! `B`, never acts in it. A voter that restarts still knows its promise, its attempts and its
//! primary: they are written before anything that depends on them is sent.
//!
//! An attempt is settled as dead, and no longer constrains anything, when a voter of it
//! reports never having accepted it (the proposal needed that voter's acceptance), or when its
//! own server reports a later promise without having installed it (only it could).
//!
//! The `quorum` profile of `tests/simulation.rs` (partitions on two sides with joiners typing
//! on both, deaths for good of servers and members) forks at once without this rule.
//!
//! Pure: counting and comparing, no clock, no I/O.

use crate::protocol::types::{Epoch, NodeId, Seq};
use crate::protocol::vote::{Role, Session, SessionRef};

/// One reporter's vote, as [`decide`] weighs it.
#[derive(Clone, Copy, Debug)]
pub struct Report<'a> {
    /// Who reports (each reporter once).
    pub from: NodeId,
    /// Its last formed primary.
    pub primary: Option<SessionRef>,
    /// Its undecided attempts.
    pub attempts: &'a [SessionRef],
    /// The epoch of the view it installed in its current incarnation (0: none): its `aru` was
    /// collected there, so it is trusted for that view's cut.
    pub installed: Epoch,
}

impl Report<'_> {
    /// This reporter's reference to the session of `epoch`, if it knows one.
    fn mention(&self, epoch: Epoch) -> Option<&SessionRef> {
        self.primary
            .iter()
            .chain(self.attempts)
            .find(|s| s.epoch == epoch)
    }
}

/// What [`decide`] allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A view may be proposed.
    Go(Decision),
    /// Not yet: a voter set is short of a quorum, or the cut is not complete.
    Wait(Shortfall),
}

/// A view the reporters may install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// `L`: the newest primary any reporter formed; the new view is built on it.
    pub base: SessionRef,
    /// The new cut must be at least this: `L`'s and every undecided attempt's.
    pub floor: Seq,
    /// Attempts above `L` proved never to have formed.
    pub dead: Vec<Epoch>,
}

/// Why a gather must wait, in numbers a user can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shortfall {
    /// The session whose voters fall short.
    pub epoch: Epoch,
    /// Its voters among the reporters.
    pub reachable: u32,
    /// Its voters.
    pub voters: u32,
    /// What is missing.
    pub missing: Missing,
}

/// What a gather lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// Nobody reported a primary (cannot happen once a chat exists).
    Primary,
    /// Not a subquorum of the session's voters.
    Quorum,
    /// None of the session's members reported.
    Member,
    /// A quorum, but no member that surely holds what the old ring made safe.
    Cut,
}

/// The voters of one session among the reporters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Count {
    present: u32,
    members: u32,
    /// Whether its first server (the proposer) reported.
    first: bool,
}

/// Whether `count` is a subquorum of the session `s`: see the module docs.
fn subquorum(s: &SessionRef, count: Count) -> Result<(), Missing> {
    if s.members > 0 && count.members == 0 {
        return Err(Missing::Member);
    }
    let (k, n) = (u64::from(count.present), u64::from(s.voters));
    if 2 * k > n || (2 * k == n && count.first) {
        Ok(())
    } else {
        Err(Missing::Quorum)
    }
}

/// Counts the voters of `s` among the reporters: exactly when its whole view is `known`, else
/// by what each reporter says it is in it (a voter that never heard of it is not counted,
/// which asks more, never less).
fn count(s: &SessionRef, known: Option<&Session>, reports: &[Report]) -> Count {
    let mut c = Count::default();
    for r in reports {
        let role = match known {
            Some(full) => full.role(r.from),
            None => r.mention(s.epoch).map_or(Role::None, |m| m.role),
        };
        match role {
            Role::Member => {
                c.present += 1;
                c.members += 1;
            }
            Role::Server => {
                c.present += 1;
                c.first |= r.from == NodeId::server(s.server);
            }
            Role::None => {}
        }
    }
    c
}

/// Whether the attempt `x` is proved never to have formed (see the module docs).
fn is_dead(x: &SessionRef, known: Option<&Session>, reports: &[Report]) -> bool {
    let proposer = NodeId::server(x.server);
    reports.iter().any(|r| {
        let mentions = r.mention(x.epoch).is_some();
        let installed_it = r.primary.is_some_and(|p| p.epoch == x.epoch);
        let own_and_abandoned = r.from == proposer && !installed_it;
        let voter_never_accepted = known.is_some_and(|k| k.role(r.from) != Role::None) && !mentions;
        own_and_abandoned || voter_never_accepted
    })
}

/// Judges a gather by its reports (every reporter once, the gathering server included); the
/// caller's `known` sessions are those whose whole view it holds (its own primary and
/// attempts), which makes the counts exact.
pub fn decide(known: &[&Session], reports: &[Report]) -> Verdict {
    let full = |epoch: Epoch| known.iter().copied().find(|s| s.epoch() == epoch);
    let Some(base) = reports
        .iter()
        .filter_map(|r| r.primary)
        .max_by_key(|p| p.epoch)
    else {
        return Verdict::Wait(Shortfall {
            epoch: Epoch(0),
            reachable: 0,
            voters: 0,
            missing: Missing::Primary,
        });
    };
    let mut undecided: Vec<SessionRef> = Vec::new();
    for a in reports.iter().flat_map(|r| r.attempts) {
        if a.epoch > base.epoch && !undecided.iter().any(|u| u.epoch == a.epoch) {
            undecided.push(*a);
        }
    }
    let (dead, live): (Vec<SessionRef>, Vec<SessionRef>) = undecided
        .into_iter()
        .partition(|x| is_dead(x, full(x.epoch), reports));
    for s in std::iter::once(&base).chain(&live) {
        let c = count(s, full(s.epoch), reports);
        if let Err(missing) = subquorum(s, c) {
            return Verdict::Wait(Shortfall {
                epoch: s.epoch,
                reachable: c.present,
                voters: s.voters,
                missing,
            });
        }
    }
    let c = count(&base, full(base.epoch), reports);
    let trusted = reports.iter().any(|r| {
        r.installed == base.epoch
            && match full(base.epoch) {
                Some(k) => k.role(r.from) == Role::Member,
                None => r
                    .mention(base.epoch)
                    .is_some_and(|m| m.role == Role::Member),
            }
    });
    if base.members > 0 && !trusted && c.present < base.voters {
        return Verdict::Wait(Shortfall {
            epoch: base.epoch,
            reachable: c.present,
            voters: base.voters,
            missing: Missing::Cut,
        });
    }
    let floor = live.iter().map(|x| x.cut).fold(base.cut, Seq::max);
    Verdict::Go(Decision {
        base,
        floor,
        dead: dead.iter().map(|x| x.epoch).collect(),
    })
}

#[cfg(test)]
mod tests;
