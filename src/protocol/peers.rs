//! Where to send a datagram meant for one node: the address that node's datagrams came from,
//! learned as they arrive (every node sends from its own socket, see `net`). Generic over the
//! address, so the threaded runtime keeps socket addresses and the simulation node numbers.
//!
//! A wrong or stale address costs time, never safety: whatever a core sends to one node it
//! also sends again to the whole group when no sign of arrival comes back (a token pass), or
//! asks again (a fetch, a report). Pure data: no sockets here.

use crate::protocol::limits::MAX_MEMBERS;
use crate::protocol::types::NodeId;
use crate::protocol::wire::Msg;
use std::collections::HashMap;

/// More nodes than any ring holds, joiners and leavers included; past it the book starts
/// over, so nodes that come and go (or forged ids, without a key) cannot make it grow.
const MAX_ENTRIES: usize = 4 * MAX_MEMBERS;

/// Each node's latest address.
#[derive(Debug)]
pub struct AddressBook<A> {
    addresses: HashMap<NodeId, A>,
}

impl<A> Default for AddressBook<A> {
    fn default() -> Self {
        AddressBook {
            addresses: HashMap::new(),
        }
    }
}

impl<A: Copy + PartialEq> AddressBook<A> {
    /// Notes where `msg` came from, if it names its sender ([`Msg::sender`]).
    pub fn learn(&mut self, msg: &Msg, from: A) {
        let Some(node) = msg.sender() else {
            return;
        };
        if self.addresses.get(&node) == Some(&from) {
            return;
        }
        if self.addresses.len() >= MAX_ENTRIES && !self.addresses.contains_key(&node) {
            self.addresses.clear();
        }
        self.addresses.insert(node, from);
    }

    /// Where `node`'s datagrams last came from, if we heard it.
    pub fn get(&self, node: NodeId) -> Option<A> {
        self.addresses.get(&node).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::Epoch;

    fn ack(from: NodeId) -> Msg {
        Msg::TokenAck {
            epoch: Epoch(1),
            from,
            hop: 1,
        }
    }

    #[test]
    fn the_latest_address_of_a_named_sender_wins() {
        let mut book = AddressBook::default();
        let a = NodeId::random();
        assert_eq!(book.get(a), None);
        book.learn(&ack(a), 1);
        book.learn(&ack(a), 2);
        assert_eq!(book.get(a), Some(2));
        let data = Msg::Data {
            epoch: Epoch(1),
            group: crate::protocol::types::GroupId(9),
            recs: Vec::new(),
        };
        book.learn(&data, 3);
        assert_eq!(book.get(a), Some(2), "data names no sender");
        let wake = Msg::Wake {
            epoch: Epoch(1),
            from: a,
            hop: 7,
        };
        book.learn(&wake, 4);
        assert_eq!(
            book.get(a),
            Some(2),
            "a wake may come on through another member"
        );
    }

    #[test]
    fn the_book_stays_bounded() {
        let mut book = AddressBook::default();
        for i in 0..MAX_ENTRIES * 3 {
            book.learn(&ack(NodeId::random()), i);
        }
        assert!(book.addresses.len() <= MAX_ENTRIES);
    }
}
