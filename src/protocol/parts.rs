//! Putting a view or a proposal back together from its parts: a view of a large ring spans
//! several datagrams, and a node acts on it only when it holds every part of one epoch.
//!
//! Bounded memory: only the highest epoch's parts are kept (at or above the floor the caller
//! gives), at most [`crate::protocol::limits::MAX_VIEW_PARTS`] of them, as the decoder checked.
//! Parts that disagree with those already kept (part count, or anything their head says) are
//! dropped. Pure data: no clock, no I/O.

use crate::protocol::types::{Epoch, GroupId, Member, NodeId, Seq, ServerId, View};
use crate::protocol::vote::Session;
use crate::protocol::wire::Msg;

/// What every part of one message says besides its slice of the members.
pub trait Head: Clone + PartialEq + std::fmt::Debug {
    /// The epoch of the view or proposal.
    fn epoch(&self) -> Epoch;
}

/// What every part of an installed view says (the sender's archive high is left out: it may
/// rise between two sends of one view).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    pub epoch: Epoch,
    /// In rank order; the first installed the view and coordinates it.
    pub servers: Vec<ServerId>,
    pub cut: Seq,
    pub token_timeout_ms: u64,
    pub group: GroupId,
}

/// What every part of a proposal says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposed {
    pub epoch: Epoch,
    /// In rank order; the first proposed it.
    pub servers: Vec<ServerId>,
    pub cut: Seq,
    pub group: GroupId,
    /// The primary it builds on.
    pub base: Epoch,
    /// Attempts proved never to have formed.
    pub dead: Vec<Epoch>,
    /// The one node an echo is for.
    pub to: Option<NodeId>,
}

impl Head for Installed {
    fn epoch(&self) -> Epoch {
        self.epoch
    }
}

impl Head for Proposed {
    fn epoch(&self) -> Epoch {
        self.epoch
    }
}

/// One part: its head, its place and its slice of the members.
#[derive(Clone, Debug)]
pub struct Part<H> {
    pub head: H,
    pub part: u32,
    pub parts: u32,
    pub members: Vec<Member>,
}

/// A part of an installed view; `None` for another kind of message, or a view whose sender is
/// not its first server.
pub fn view_part(msg: Msg) -> Option<Part<Installed>> {
    let Msg::View {
        epoch,
        part,
        parts,
        members,
        servers,
        cut,
        token_timeout_ms,
        server,
        group,
        ..
    } = msg
    else {
        return None;
    };
    let head = Installed {
        epoch,
        cut,
        token_timeout_ms,
        group,
        servers,
    };
    (head.servers.first() == Some(&server)).then_some(Part {
        head,
        part,
        parts,
        members,
    })
}

/// A part of a proposal; `None` for another kind of message, or a proposal whose proposer is
/// not its first server.
pub fn proposal_part(msg: Msg) -> Option<Part<Proposed>> {
    let Msg::Propose {
        epoch,
        part,
        parts,
        members,
        servers,
        cut,
        server,
        group,
        base,
        dead,
        to,
    } = msg
    else {
        return None;
    };
    let head = Proposed {
        epoch,
        servers,
        cut,
        group,
        base,
        dead,
        to,
    };
    (head.servers.first() == Some(&server)).then_some(Part {
        head,
        part,
        parts,
        members,
    })
}

impl Proposed {
    /// The session this proposal would install.
    pub fn session(&self, members: Vec<Member>) -> Session {
        Session {
            view: View {
                epoch: self.epoch,
                members,
                servers: self.servers.clone(),
            },
            cut: self.cut,
        }
    }
}

impl Installed {
    /// The view.
    pub fn view(&self, members: Vec<Member>) -> View {
        View {
            epoch: self.epoch,
            members,
            servers: self.servers.clone(),
        }
    }
}

/// The parts of the highest epoch heard so far, until they are all in.
#[derive(Debug)]
pub struct Assembly<H> {
    pending: Option<Partial<H>>,
}

impl<H> Default for Assembly<H> {
    fn default() -> Self {
        Assembly { pending: None }
    }
}

#[derive(Debug)]
struct Partial<H> {
    /// What every part must agree on.
    head: H,
    parts: u32,
    /// One slot per part.
    slices: Vec<Option<Vec<Member>>>,
    missing: usize,
}

impl<H: Head> Assembly<H> {
    /// Adds a part; returns the head and every member in order once every part of its epoch
    /// is in. Parts below `floor` are dropped.
    pub fn add(&mut self, floor: Epoch, p: Part<H>) -> Option<(H, Vec<Member>)> {
        let epoch = p.head.epoch();
        if epoch < floor || p.part >= p.parts {
            return None;
        }
        if self
            .pending
            .as_ref()
            .is_some_and(|q| q.head.epoch() < floor)
        {
            self.pending = None;
        }
        if p.parts == 1 {
            if self
                .pending
                .as_ref()
                .is_some_and(|q| q.head.epoch() <= epoch)
            {
                self.pending = None;
            }
            return Some((p.head, p.members));
        }
        match &self.pending {
            Some(q) if q.head.epoch() > epoch => return None,
            Some(q) if q.head.epoch() == epoch && (q.head != p.head || q.parts != p.parts) => {
                log::debug!("part {} of epoch {epoch} disagrees; dropped", p.part);
                return None;
            }
            Some(q) if q.head.epoch() == epoch => {}
            _ => {
                self.pending = Some(Partial {
                    head: p.head.clone(),
                    parts: p.parts,
                    slices: vec![None; p.parts as usize],
                    missing: p.parts as usize,
                });
            }
        }
        let q = self.pending.as_mut()?;
        let slot = q.slices.get_mut(p.part as usize)?;
        if slot.is_none() {
            *slot = Some(p.members);
            q.missing -= 1;
        }
        if q.missing > 0 {
            return None;
        }
        let q = self.pending.take()?;
        let members = q.slices.into_iter().flatten().flatten().collect();
        Some((q.head, members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u128) -> Member {
        Member {
            id: NodeId(uuid::Uuid::from_u128(n)),
            name: format!("m{n}"),
        }
    }

    /// Part `part` of `parts` of epoch `epoch`, with members `10*part ..` (two each).
    fn part(epoch: u64, part: u32, parts: u32) -> Part<Installed> {
        let base = u128::from(part) * 10;
        Part {
            head: Installed {
                epoch: Epoch(epoch),
                servers: vec![ServerId(1)],
                cut: Seq(7),
                token_timeout_ms: 1000,
                group: GroupId(5),
            },
            part,
            parts,
            members: vec![member(base), member(base + 1)],
        }
    }

    #[test]
    fn a_view_is_acted_on_only_with_every_part_in_ring_order() {
        let mut a = Assembly::<Installed>::default();
        assert!(a.add(Epoch(1), part(2, 2, 3)).is_none());
        assert!(a.add(Epoch(1), part(2, 0, 3)).is_none());
        assert!(
            a.add(Epoch(1), part(2, 0, 3)).is_none(),
            "a duplicate completes nothing"
        );
        let (head, members) = a.add(Epoch(1), part(2, 1, 3)).expect("complete");
        let ids: Vec<u128> = members.iter().map(|m| m.id.0.as_u128()).collect();
        assert_eq!(ids, vec![0, 1, 10, 11, 20, 21]);
        assert_eq!((head.epoch, head.cut), (Epoch(2), Seq(7)));
    }

    #[test]
    fn a_view_in_one_part_needs_no_assembly() {
        let mut a = Assembly::<Installed>::default();
        assert!(a.add(Epoch(1), part(1, 0, 1)).is_some());
    }

    #[test]
    fn only_the_highest_pending_epoch_is_kept() {
        let mut a = Assembly::<Installed>::default();
        a.add(Epoch(1), part(3, 0, 2));
        assert!(
            a.add(Epoch(1), part(2, 0, 2)).is_none(),
            "older than the pending one"
        );
        assert!(a.add(Epoch(1), part(2, 1, 2)).is_none());
        a.add(Epoch(1), part(4, 0, 2));
        assert!(
            a.add(Epoch(1), part(3, 1, 2)).is_none(),
            "epoch 3 was dropped for 4"
        );
        assert!(a.add(Epoch(1), part(4, 1, 2)).is_some());
    }

    #[test]
    fn parts_of_views_older_than_the_installed_one_are_dropped() {
        let mut a = Assembly::<Installed>::default();
        a.add(Epoch(1), part(2, 0, 2));
        assert!(a.add(Epoch(3), part(2, 1, 2)).is_none());
        assert!(a.add(Epoch(3), part(2, 0, 1)).is_none());
    }

    #[test]
    fn parts_that_disagree_on_count_cut_or_server_are_dropped() {
        let mut a = Assembly::<Installed>::default();
        a.add(Epoch(1), part(2, 0, 2));
        let mut other_cut = part(2, 1, 2);
        other_cut.head.cut = Seq(8);
        let mut other_server = part(2, 1, 2);
        other_server.head.servers = vec![ServerId(2)];
        assert!(a.add(Epoch(1), other_cut).is_none());
        assert!(a.add(Epoch(1), other_server).is_none());
        assert!(
            a.add(Epoch(1), part(2, 1, 3)).is_none(),
            "another part count"
        );
        assert!(
            a.add(Epoch(1), part(2, 1, 2)).is_some(),
            "the first parts were kept"
        );
    }
}
