//! Unit tests of the address book: the latest address wins, the book stays bounded, the
//! unicast fan-out (seeds, the view, nodes heard lately, never ourselves), a server's
//! announcements and a member's introduction of a joiner.

use super::*;
use crate::protocol::types::{Epoch, Member, ServerId};

fn ack(from: NodeId) -> Msg {
    Msg::TokenAck {
        epoch: Epoch(1),
        from,
        hop: 1,
    }
}

fn view(members: &[NodeId], servers: &[u64]) -> View {
    View {
        epoch: Epoch(2),
        members: members
            .iter()
            .map(|&id| Member {
                id,
                name: "m".into(),
            })
            .collect(),
        servers: servers.iter().map(|&s| ServerId(s)).collect(),
    }
}

#[test]
fn the_latest_address_of_a_named_sender_wins() {
    let now = Instant::now();
    let mut book = AddressBook::default();
    let a = NodeId::random();
    assert_eq!(book.get(a), None);
    book.learn(&ack(a), 1, now);
    book.learn(&ack(a), 2, now);
    assert_eq!(book.get(a), Some(2));
    let data = Msg::Data {
        epoch: Epoch(1),
        group: crate::protocol::types::GroupId(9),
        recs: Vec::new(),
    };
    book.learn(&data, 3, now);
    assert_eq!(book.get(a), Some(2), "data names no sender");
    let wake = Msg::Wake {
        epoch: Epoch(1),
        from: a,
        hop: 7,
    };
    book.learn(&wake, 4, now);
    assert_eq!(
        book.get(a),
        Some(2),
        "a wake may come on through another member"
    );
    assert!(
        book.fan_out(now).is_empty(),
        "multicast mode fans out to nobody"
    );
}

#[test]
fn the_book_stays_bounded() {
    let now = Instant::now();
    let mut book = AddressBook::unicast(vec![], usize::MAX, false);
    for i in 0..MAX_ENTRIES * 3 {
        book.learn(&ack(NodeId::random()), i, now);
    }
    assert!(book.addresses.len() <= MAX_ENTRIES);
    let u = book.unicast.as_ref().expect("unicast");
    assert!(u.heard.len() <= MAX_ENTRIES);
}

#[test]
fn the_fan_out_is_seeds_view_and_recent_nodes_never_ourselves() {
    let t0 = Instant::now();
    let (a, b, joiner) = (NodeId::random(), NodeId::random(), NodeId::random());
    let mut book = AddressBook::unicast(vec![100, 7], 7, false);
    assert_eq!(&*book.fan_out(t0), &[100], "the seeds, not ourselves");
    book.learn_announced([(a, 1), (b, 2)], t0);
    assert_eq!(&*book.fan_out(t0), &[100], "announced but not in the view");
    book.set_view(&view(&[a, b], &[]));
    let mut got = book.fan_out(t0).to_vec();
    got.sort();
    assert_eq!(got, [1, 2, 100]);
    book.learn(&ack(joiner), 3, t0);
    assert_eq!(book.fan_out(t0).len(), 4, "a node heard just now");
    assert!(
        book.fan_out(t0 + RECENT).iter().all(|&x| x != 3),
        "silent too long"
    );
    book.learn(&ack(joiner), 3, t0 + RECENT * 2);
    assert!(book.fan_out(t0 + RECENT * 2).contains(&3), "heard again");
    book.set_view(&view(&[a], &[]));
    assert!(!book.fan_out(t0 + RECENT * 2).contains(&2), "left the view");
}

#[test]
fn a_server_announces_on_a_new_view_a_moved_node_and_every_few_seconds() {
    let t0 = Instant::now();
    let (a, b) = (NodeId::random(), NodeId::random());
    let mut book = AddressBook::unicast(vec![], 0, true);
    assert_eq!(book.announcement(t0), None, "no view yet");
    book.learn(&ack(a), 1, t0);
    book.learn(&ack(b), 2, t0);
    book.set_view(&view(&[a, b], &[1]));
    let mut first = book.announcement(t0).expect("a new view");
    first.sort_by_key(|&(_, addr)| addr);
    assert_eq!(
        first,
        [(a, 1), (b, 2)],
        "the server's own id has no address here"
    );
    assert_eq!(book.announcement(t0), None, "nothing changed");
    let repeats = (1..10)
        .filter(|&i| book.announcement(t0 + REPEAT_GAP * i).is_some())
        .count();
    assert_eq!(
        repeats,
        usize::from(REPEATS),
        "repeated in case one was lost"
    );
    let t1 = t0 + REPEAT_GAP * 10;
    book.learn(&ack(b), 5, t1);
    assert!(book.announcement(t1).is_some(), "b moved");
    book.set_view(&view(&[a, b], &[1]));
    assert!(
        book.announcement(t1).is_some(),
        "a new view, with the same nodes"
    );
    let repeats = (1..10)
        .filter(|&i| book.announcement(t1 + REPEAT_GAP * i).is_some())
        .count();
    assert_eq!(repeats, usize::from(REPEATS));
    let t2 = t1 + REPEAT_GAP * 10;
    assert_eq!(book.announcement(t2 + ANNOUNCE_EVERY / 2), None);
    assert!(
        book.announcement(t2 + ANNOUNCE_EVERY).is_some(),
        "the refresh"
    );
    let mut client = AddressBook::unicast(vec![], 9, false);
    client.learn(&ack(a), 1, t0);
    client.set_view(&view(&[a], &[]));
    assert_eq!(client.announcement(t0), None, "clients do not announce");
}

#[test]
fn a_member_tells_a_joiner_where_the_servers_are_and_the_joiner_says_hello_to_them() {
    let t0 = Instant::now();
    let (member, joiner, server) = (
        NodeId::random(),
        NodeId::random(),
        NodeId::server(ServerId(4)),
    );
    let hello = Msg::Hello {
        from: joiner,
        incarnation: crate::protocol::types::Incarnation(1),
        name: "j".into(),
        delivered: crate::protocol::types::Seq(0),
    };
    let mut book = AddressBook::unicast(vec![], 1, false);
    book.learn(&ack(server), 9, t0);
    book.learn(&ack(member), 2, t0);
    book.set_view(&view(&[NodeId::random(), member], &[4]));
    book.learn(&hello, 7, t0);
    assert_eq!(book.introduction(&hello), Some(vec![(server, 9)]));
    assert_eq!(book.introduction(&ack(joiner)), None, "only a hello");
    let mut server_book = AddressBook::unicast(vec![], 9, true);
    server_book.set_view(&view(&[member], &[4]));
    assert_eq!(
        server_book.introduction(&hello),
        None,
        "a server answers itself"
    );

    let mut joining = AddressBook::unicast(vec![2], 7, false);
    assert_eq!(&*joining.fan_out(t0), &[2], "its one peer, a member");
    joining.learn_announced([(server, 9)], t0);
    let mut got = joining.fan_out(t0).to_vec();
    got.sort();
    assert_eq!(got, [2, 9], "and now the server");
}
