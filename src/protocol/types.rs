//! The shared vocabulary: newtypes for numbers that must not be swapped, and the chat record
//! that every replica stores.
//!
//! Plain data only: no I/O, no protocol logic.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Position of a message in the group's total order. Starts at 1; `Seq(0)` means "nothing".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// The position right after this one.
    pub fn next(self) -> Seq {
        Seq(self.0.saturating_add(1))
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Generation of the ring view. Every view change (join, leave, recovery) opens a higher epoch;
/// tokens and messages of a lower epoch are stale (G3).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch right after this one.
    pub fn next(self) -> Epoch {
        Epoch(self.0.saturating_add(1))
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One process run of a client: drawn at random at each start, so the server tells a
/// restarted client (new incarnation) from a delayed duplicate of an old datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Incarnation(pub u64);

impl Incarnation {
    /// A fresh random incarnation.
    pub fn random() -> Incarnation {
        Incarnation(rand::random())
    }
}

/// A server's random id, drawn once and kept in its checkpoint: it tells the server's own
/// looped-back or replayed views from another server's. Never 0 on the wire (0 there means
/// "no id", see [`crate::protocol::wire`]); 53 bits, so JSON readers that use doubles (jq,
/// JavaScript) show it exactly.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ServerId(pub u64);

impl ServerId {
    /// A fresh random id in `1 ..= 2^53 - 1`.
    pub fn random() -> ServerId {
        ServerId((rand::random::<u64>() >> 11).max(1))
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The chat a node belongs to: drawn at random by the server that started it, kept in every
/// node's vote, and carried by every gather, proposal, view and beacon. Two chats that each
/// have a history never merge (their seqs would collide); a server whose chat never had a
/// member gives its id up for the other's. Never 0; 53 bits, like [`ServerId`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupId(pub u64);

impl GroupId {
    /// A fresh random id in `1 ..= 2^53 - 1`.
    pub fn random() -> GroupId {
        GroupId((rand::random::<u64>() >> 11).max(1))
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `1 member`, `2 members`: a count with its noun.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Identity of a node (server or client). Stable across restarts with `--resume`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub Uuid);

/// The high half of the uuid of a server's [`NodeId`]: `"server\0\0"` in ASCII. Its version
/// nibble is 0, where every client's random (version 4) uuid has 4, so the two never meet.
const SERVER_TAG: u64 = 0x7365_7276_6572_0000;

impl NodeId {
    /// The node id of the server with this id: servers are voters and addressees like
    /// clients, and their ids must never collide with a client's.
    pub const fn server(id: ServerId) -> NodeId {
        NodeId(Uuid::from_u64_pair(SERVER_TAG, id.0))
    }

    /// The server id, if this is a server's node id.
    pub fn as_server(&self) -> Option<ServerId> {
        let (high, low) = self.0.as_u64_pair();
        (high == SERVER_TAG && low != 0).then_some(ServerId(low))
    }

    /// A fresh random identity.
    pub fn random() -> NodeId {
        NodeId(Uuid::new_v4())
    }

    /// The first eight hex digits, for log lines.
    pub fn short(&self) -> String {
        self.0.simple().to_string()[..8].to_string()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One delivered chat message, exactly as a replica line stores it (DESIGN.md §6).
///
/// Only group-wide fields, so the replicas of caught-up nodes compare byte for byte.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRecord {
    /// Position in the total order.
    pub seq: Seq,
    /// Unique id of the line, chosen by its author when the line was accepted; it is what makes
    /// delivery exactly-once across resends.
    pub id: Uuid,
    /// The author.
    pub from: NodeId,
    /// The author's display name.
    pub name: String,
    /// The line itself.
    pub text: String,
    /// Author's wall clock when the line was accepted, in ms since the Unix epoch.
    pub sent_at_ms: u64,
}

/// A line accepted by its author and not yet delivered: an outbox entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Unique id; becomes [`ChatRecord::id`].
    pub id: Uuid,
    /// The line.
    pub text: String,
    /// Author's wall clock at acceptance, ms since the Unix epoch.
    pub sent_at_ms: u64,
}

/// A ring member as the view lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Identity.
    pub id: NodeId,
    /// Display name.
    pub name: String,
}

/// The ring view: an epoch, the ordered members and the servers. The token travels in member
/// order; the servers are in rank order, the first being the one that installed the view and
/// coordinates it (the others stand by and take over in that order).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// Generation of this view.
    pub epoch: Epoch,
    /// Members in ring order.
    pub members: Vec<Member>,
    /// Servers in rank order; the first coordinates.
    #[serde(default)]
    pub servers: Vec<ServerId>,
}

impl View {
    /// The server that installed the view and coordinates it.
    pub fn coordinator(&self) -> Option<ServerId> {
        self.servers.first().copied()
    }

    /// Whether `id` is a member or one of the servers: a voter on the view's successor.
    pub fn is_voter(&self, id: NodeId) -> bool {
        match id.as_server() {
            Some(server) => self.servers.contains(&server),
            None => self.contains(id),
        }
    }

    /// Members and servers: everyone who votes on the view's successor.
    pub fn voters(&self) -> usize {
        self.members.len() + self.servers.len()
    }

    /// Position of `id` in the ring, if it is a member.
    pub fn position(&self, id: NodeId) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }

    /// The member after `id` in ring order (wrapping); `None` if `id` is not a member.
    pub fn successor(&self, id: NodeId) -> Option<NodeId> {
        let i = self.position(id)?;
        Some(self.members[(i + 1) % self.members.len()].id)
    }

    /// Whether `id` is a member.
    pub fn contains(&self, id: NodeId) -> bool {
        self.position(id).is_some()
    }

    /// The digest that a beacon carries instead of the member list: see [`digest_ids`].
    pub fn digest(&self) -> u64 {
        digest_ids(self.members.iter().map(|m| m.id))
    }
}

/// FNV-1a (64 bits) over the ids' uuid bytes, in ring order: the same on every node and every
/// build (std's `DefaultHasher` promises neither), so a member can tell from a beacon whether
/// it holds the server's view. Not a defence against forgery; sealing is.
pub fn digest_ids(ids: impl IntoIterator<Item = NodeId>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for id in ids {
        for byte in id.0.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_wraps_around_the_ring() {
        let a = NodeId::random();
        let b = NodeId::random();
        let view = View {
            epoch: Epoch(1),
            servers: Vec::new(),
            members: vec![
                Member {
                    id: a,
                    name: "a".into(),
                },
                Member {
                    id: b,
                    name: "b".into(),
                },
            ],
        };
        assert_eq!(view.successor(a), Some(b));
        assert_eq!(view.successor(b), Some(a));
        assert_eq!(view.successor(NodeId::random()), None);
    }

    #[test]
    fn server_node_ids_are_tagged_and_never_a_clients() {
        let s = ServerId(42);
        assert_eq!(NodeId::server(s).as_server(), Some(s));
        assert_eq!(NodeId::random().as_server(), None);
        assert_eq!(NodeId(Uuid::nil()).as_server(), None);
        assert_eq!(
            NodeId::server(ServerId(1)).to_string(),
            "73657276-6572-0000-0000-000000000001"
        );
    }

    #[test]
    fn digest_is_fnv1a_over_the_ordered_uuid_bytes() {
        // FNV-1a 64 of no bytes is its offset basis; of one zero byte, a published value.
        assert_eq!(digest_ids([]), 0xcbf2_9ce4_8422_2325);
        let a = NodeId(Uuid::from_u128(1));
        let b = NodeId(Uuid::from_u128(2));
        assert_ne!(digest_ids([a, b]), digest_ids([b, a]), "order matters");
        assert_eq!(digest_ids([a, b]), digest_ids([a, b]));
        let mut bytes = [0u8; 32];
        bytes[15] = 1;
        bytes[31] = 2;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for x in bytes {
            h = (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3);
        }
        assert_eq!(digest_ids([a, b]), h);
    }

    #[test]
    fn record_serializes_with_the_six_replica_fields_in_order() {
        let rec = ChatRecord {
            seq: Seq(1),
            id: Uuid::nil(),
            from: NodeId(Uuid::nil()),
            name: "alice".into(),
            text: "hi".into(),
            sent_at_ms: 5,
        };
        let line = serde_json::to_string(&rec).unwrap();
        assert_eq!(
            line,
            r#"{"seq":1,"id":"00000000-0000-0000-0000-000000000000","from":"00000000-0000-0000-0000-000000000000","name":"alice","text":"hi","sent_at_ms":5}"#
        );
    }
}
