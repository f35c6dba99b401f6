//! Putting a view back together from its parts: a view of a large ring spans several
//! datagrams, and a member acts on it only when it holds every part of one epoch.
//!
//! Bounded memory: only the highest epoch's parts are kept (at or above the installed view's),
//! at most [`crate::protocol::limits::MAX_VIEW_PARTS`] of them, as the decoder checked. Parts
//! that disagree with those already kept (part count, cut, server) are dropped. Pure data: no
//! clock, no I/O.

use crate::protocol::types::{Epoch, Member, Seq, ServerId, View};

/// One part of a view, as a [`crate::protocol::wire::Msg::View`] carries it.
#[derive(Clone, Debug)]
pub(super) struct ViewPart {
    pub(super) epoch: Epoch,
    pub(super) part: u32,
    pub(super) parts: u32,
    pub(super) members: Vec<Member>,
    pub(super) cut: Seq,
    pub(super) token_timeout_ms: u64,
    pub(super) server: Option<ServerId>,
}

/// A view whose every part has arrived.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct WholeView {
    pub(super) view: View,
    pub(super) cut: Seq,
    pub(super) token_timeout_ms: u64,
}

/// The parts of the highest epoch heard so far, until they are all in.
#[derive(Debug, Default)]
pub(super) struct ViewAssembly {
    pending: Option<Partial>,
}

#[derive(Debug)]
struct Partial {
    /// What every part must agree on: epoch, part count, cut, server.
    first: ViewPart,
    /// One slot per part; `first`'s slot is filled too.
    slices: Vec<Option<Vec<Member>>>,
    missing: usize,
}

impl Partial {
    fn agrees(&self, p: &ViewPart) -> bool {
        let f = &self.first;
        (f.epoch, f.parts, f.cut, f.server) == (p.epoch, p.parts, p.cut, p.server)
    }
}

impl ViewAssembly {
    /// Adds a part; returns the whole view once every part of its epoch is in. `floor` is the
    /// installed view's epoch: parts of older views are dropped.
    pub(super) fn add(&mut self, floor: Epoch, p: ViewPart) -> Option<WholeView> {
        if p.epoch < floor || p.part >= p.parts {
            return None;
        }
        if self.pending.as_ref().is_some_and(|q| q.first.epoch < floor) {
            self.pending = None;
        }
        if p.parts == 1 {
            if self
                .pending
                .as_ref()
                .is_some_and(|q| q.first.epoch <= p.epoch)
            {
                self.pending = None;
            }
            return Some(whole(&p, p.members.clone()));
        }
        match &self.pending {
            Some(q) if q.first.epoch > p.epoch => return None,
            Some(q) if q.first.epoch == p.epoch && !q.agrees(&p) => {
                log::debug!(
                    "view part {} of epoch {} disagrees; dropped",
                    p.part,
                    p.epoch
                );
                return None;
            }
            Some(q) if q.first.epoch == p.epoch => {}
            _ => {
                self.pending = Some(Partial {
                    slices: vec![None; p.parts as usize],
                    missing: p.parts as usize,
                    first: ViewPart {
                        members: Vec::new(),
                        ..p.clone()
                    },
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
        Some(whole(&q.first, members))
    }
}

fn whole(p: &ViewPart, members: Vec<Member>) -> WholeView {
    WholeView {
        view: View {
            epoch: p.epoch,
            members,
        },
        cut: p.cut,
        token_timeout_ms: p.token_timeout_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::NodeId;

    fn member(n: u128) -> Member {
        Member {
            id: NodeId(uuid::Uuid::from_u128(n)),
            name: format!("m{n}"),
        }
    }

    /// Part `part` of `parts` of epoch `epoch`, with members `10*part ..` (two each).
    fn part(epoch: u64, part: u32, parts: u32) -> ViewPart {
        let base = u128::from(part) * 10;
        ViewPart {
            epoch: Epoch(epoch),
            part,
            parts,
            members: vec![member(base), member(base + 1)],
            cut: Seq(7),
            token_timeout_ms: 1000,
            server: Some(ServerId(1)),
        }
    }

    #[test]
    fn a_view_is_acted_on_only_with_every_part_in_ring_order() {
        let mut a = ViewAssembly::default();
        assert_eq!(a.add(Epoch(1), part(2, 2, 3)), None);
        assert_eq!(a.add(Epoch(1), part(2, 0, 3)), None);
        assert_eq!(
            a.add(Epoch(1), part(2, 0, 3)),
            None,
            "a duplicate completes nothing"
        );
        let whole = a.add(Epoch(1), part(2, 1, 3)).expect("complete");
        let ids: Vec<u128> = whole
            .view
            .members
            .iter()
            .map(|m| m.id.0.as_u128())
            .collect();
        assert_eq!(ids, vec![0, 1, 10, 11, 20, 21]);
        assert_eq!((whole.view.epoch, whole.cut), (Epoch(2), Seq(7)));
    }

    #[test]
    fn a_view_in_one_part_needs_no_assembly() {
        let mut a = ViewAssembly::default();
        assert!(a.add(Epoch(1), part(1, 0, 1)).is_some());
    }

    #[test]
    fn only_the_highest_pending_epoch_is_kept() {
        let mut a = ViewAssembly::default();
        a.add(Epoch(1), part(3, 0, 2));
        assert_eq!(
            a.add(Epoch(1), part(2, 0, 2)),
            None,
            "older than the pending one"
        );
        assert_eq!(a.add(Epoch(1), part(2, 1, 2)), None);
        a.add(Epoch(1), part(4, 0, 2));
        assert_eq!(
            a.add(Epoch(1), part(3, 1, 2)),
            None,
            "epoch 3 was dropped for 4"
        );
        assert!(a.add(Epoch(1), part(4, 1, 2)).is_some());
    }

    #[test]
    fn parts_of_views_older_than_the_installed_one_are_dropped() {
        let mut a = ViewAssembly::default();
        a.add(Epoch(1), part(2, 0, 2));
        assert_eq!(a.add(Epoch(3), part(2, 1, 2)), None);
        assert_eq!(a.add(Epoch(3), part(2, 0, 1)), None);
    }

    #[test]
    fn parts_that_disagree_on_count_cut_or_server_are_dropped() {
        let mut a = ViewAssembly::default();
        a.add(Epoch(1), part(2, 0, 2));
        let mut other_cut = part(2, 1, 2);
        other_cut.cut = Seq(8);
        let mut other_server = part(2, 1, 2);
        other_server.server = Some(ServerId(2));
        assert_eq!(a.add(Epoch(1), other_cut), None);
        assert_eq!(a.add(Epoch(1), other_server), None);
        assert_eq!(a.add(Epoch(1), part(2, 1, 3)), None, "another part count");
        assert!(
            a.add(Epoch(1), part(2, 1, 2)).is_some(),
            "the first parts were kept"
        );
    }
}
