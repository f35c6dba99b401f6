//! Unit tests of the membership messages' format: the largest proposal and report fit their
//! datagrams, and ids of 0 or lists longer than any honest node sends are out of range.

use super::*;

/// The widest proposal head: every counter at its maximum, every list full, an echo.
pub(super) fn proposal_head() -> ProposalHead {
    ProposalHead {
        epoch: Epoch(MAX_COUNTER),
        cut: Seq(MAX_COUNTER),
        server: ServerId(MAX_COUNTER),
        group: GroupId(MAX_COUNTER),
        servers: widest_servers(),
        base: Epoch(MAX_COUNTER),
        dead: vec![Epoch(MAX_COUNTER); MAX_ATTEMPTS],
        to: Some(NodeId(Uuid::max())),
    }
}

#[test]
fn a_full_proposal_of_the_longest_names_fits_max_view_parts() {
    let members = longest_names(MAX_MEMBERS);
    let parts = pack_propose(&proposal_head(), &members);
    assert!(parts.len() <= MAX_VIEW_PARTS as usize, "{}", parts.len());
    let mut got = Vec::new();
    for msg in &parts {
        match decode(&encode(msg).expect("each part fits a sealed datagram")).unwrap() {
            Msg::Propose { members, .. } => got.extend(members),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, members);
}

#[test]
fn the_largest_report_fits_a_sealed_datagram() {
    let widest = SessionRef {
        epoch: Epoch(MAX_COUNTER),
        server: ServerId(MAX_COUNTER),
        cut: Seq(MAX_COUNTER),
        voters: (MAX_MEMBERS + MAX_SERVERS) as u32,
        members: MAX_MEMBERS as u32,
        role: crate::protocol::vote::Role::Member,
    };
    let report = Msg::Report {
        epoch: Epoch(MAX_COUNTER),
        from: NodeId(Uuid::max()),
        incarnation: Incarnation(u64::MAX),
        name: "\"".repeat(MAX_NAME_BYTES),
        view_epoch: Epoch(MAX_COUNTER),
        aru: Seq(MAX_COUNTER),
        delivered: Seq(MAX_COUNTER),
        group: GroupId(MAX_COUNTER),
        promised: Ballot {
            epoch: Epoch(MAX_COUNTER),
            server: ServerId(MAX_COUNTER),
        },
        primary: Some(widest),
        attempts: vec![widest; MAX_ATTEMPTS],
    };
    let bytes = encode(&report).expect("fits");
    assert!(bytes.len() <= MAX_PLAINTEXT_BYTES, "{}", bytes.len());
    assert_eq!(decode(&bytes).unwrap(), report);
}

#[test]
fn g6_ids_of_zero_and_overfull_lists_are_out_of_range() {
    let kinds = all_kinds();
    let gather = &kinds[3];
    let view = &kinds[5];
    for (msg, field, value) in [
        (gather, "server", serde_json::json!(0)),
        (gather, "group", serde_json::json!(0)),
        (view, "servers", serde_json::json!([])),
        (view, "servers", serde_json::json!([1, 2, 3, 4, 5, 6])),
        (view, "servers", serde_json::json!([0])),
    ] {
        let got = decode(&edited(msg, field, value.clone()));
        assert!(
            matches!(got, Err(DecodeError::OutOfRange(_))),
            "{field} = {value}: {got:?}"
        );
    }
}

#[test]
fn a_full_ring_of_the_longest_names_fits_max_view_parts() {
    let members = longest_names(MAX_MEMBERS);
    let parts = pack_view(&head(), &members);
    assert!(
        parts.len() > 1 && parts.len() <= MAX_VIEW_PARTS as usize,
        "{}",
        parts.len()
    );
    let mut got = Vec::new();
    for (i, msg) in parts.iter().enumerate() {
        let bytes = encode(msg).expect("each part fits a sealed datagram");
        match decode(&bytes).unwrap() {
            Msg::View {
                part,
                parts: n,
                members,
                cut,
                ..
            } => {
                assert_eq!((part as usize, n as usize), (i, parts.len()));
                assert_eq!(cut, Seq(MAX_COUNTER), "every part carries the header");
                got.extend(members);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, members, "contiguous slices in ring order");
}
