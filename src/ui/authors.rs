//! Telling apart authors who share a name: once two identities have been seen writing under
//! one name (or another identity under ours), the name is shown with the first four hex
//! digits of the author's identity, `carol#3f6d`. The first line of the first carol, printed
//! before the second appeared, stays as it was.
//!
//! Display only: it never changes a record, and what it remembers is bounded.

use crate::protocol::types::NodeId;
use std::collections::HashMap;

/// Names remembered at most (then it starts over; collisions are found again as lines come).
const MAX_NAMES: usize = 4096;

/// The identities seen under each name, and ours.
#[derive(Debug, Default)]
pub struct Authors {
    seen: HashMap<String, Vec<NodeId>>,
    me: Option<(NodeId, String)>,
}

impl Authors {
    /// Also treats `name` under any identity but `id` as a collision with us.
    pub fn with_me(id: NodeId, name: &str) -> Authors {
        Authors {
            me: Some((id, name.to_string())),
            ..Authors::default()
        }
    }

    /// The name to show for a line by `from` under `name`.
    pub fn shown(&mut self, from: NodeId, name: &str) -> String {
        if self.seen.len() >= MAX_NAMES && !self.seen.contains_key(name) {
            self.seen.clear();
        }
        let ids = self.seen.entry(name.to_string()).or_default();
        if !ids.contains(&from) && ids.len() < 8 {
            ids.push(from);
        }
        let clashes_with_me = self
            .me
            .as_ref()
            .is_some_and(|(id, mine)| mine == name && *id != from);
        match ids.len() > 1 || clashes_with_me {
            true => tagged(name, from),
            false => name.to_string(),
        }
    }
}

/// `name#abcd`: the name and the first four hex digits of the identity.
pub fn tagged(name: &str, id: NodeId) -> String {
    format!("{name}#{}", &id.short()[..4])
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_name_gets_a_suffix_once_two_identities_use_it() {
        let (a, b) = (
            NodeId(Uuid::from_u128(0x3f6d << 112)),
            NodeId(Uuid::from_u128(7)),
        );
        let mut authors = Authors::default();
        assert_eq!(authors.shown(a, "carol"), "carol");
        assert_eq!(authors.shown(a, "carol"), "carol", "one identity: plain");
        assert_eq!(authors.shown(b, "carol"), "carol#0000");
        assert_eq!(authors.shown(a, "carol"), "carol#3f6d");
        assert_eq!(authors.shown(a, "dave"), "dave");
    }

    #[test]
    fn another_identity_under_our_name_is_told_apart_at_once() {
        let (me, other) = (NodeId(Uuid::from_u128(1)), NodeId(Uuid::from_u128(2)));
        let mut authors = Authors::with_me(me, "carol");
        assert_eq!(authors.shown(me, "carol"), "carol");
        assert_eq!(authors.shown(other, "carol"), "carol#0000");
    }
}
