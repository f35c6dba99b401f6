//! Unit tests of the datagram format: round trips, bad input, value ranges, line limits, and
//! packing (data packs, history, views).

use super::*;
use crate::protocol::limits::*;
use crate::protocol::vote::{Ballot, SessionRef};

mod membership;

fn rec(seq: u64, text: &str) -> ChatRecord {
    ChatRecord {
        seq: Seq(seq),
        id: Uuid::new_v4(),
        from: NodeId::random(),
        name: "alice".into(),
        text: text.into(),
        sent_at_ms: 1_700_000_000_000,
    }
}

fn session_ref(epoch: u64) -> SessionRef {
    SessionRef {
        epoch: Epoch(epoch),
        server: ServerId(42),
        cut: Seq(3),
        voters: 4,
        members: 3,
        role: crate::protocol::vote::Role::Member,
    }
}

pub(super) fn all_kinds() -> Vec<Msg> {
    let id = NodeId::random();
    vec![
        Msg::Hello {
            from: id,
            incarnation: Incarnation(7),
            name: "bob".into(),
            delivered: Seq(3),
        },
        Msg::Leave {
            from: id,
            incarnation: Incarnation(7),
        },
        Msg::Refuse {
            to: id,
            incarnation: Incarnation(7),
            reason: "full".into(),
        },
        Msg::Gather {
            epoch: Epoch(2),
            part: 0,
            parts: 1,
            members: vec![id],
            server: ServerId(42),
            group: GroupId(5),
            waiting: Some(QuorumWait {
                reachable: 1,
                voters: 3,
            }),
        },
        Msg::Report {
            epoch: Epoch(2),
            from: id,
            incarnation: Incarnation(1),
            name: "bob".into(),
            view_epoch: Epoch(1),
            aru: Seq(9),
            delivered: Seq(8),
            group: GroupId(5),
            promised: Ballot {
                epoch: Epoch(2),
                server: ServerId(42),
            },
            primary: Some(session_ref(1)),
            attempts: vec![session_ref(2)],
        },
        Msg::View {
            epoch: Epoch(2),
            part: 0,
            parts: 1,
            members: vec![Member {
                id,
                name: "bob".into(),
            }],
            servers: vec![ServerId(42)],
            cut: Seq(9),
            high: Seq(9),
            token_timeout_ms: 3000,
            server: ServerId(42),
            group: GroupId(5),
        },
        Msg::Token(Token::first(Epoch(2), id, id, Seq(9), 1)),
        Msg::Data {
            epoch: Epoch(2),
            group: GroupId(9),
            recs: vec![rec(10, "hi"), rec(12, "a resent pair")],
        },
        Msg::Wake {
            epoch: Epoch(2),
            from: id,
            hop: 0,
        },
        Msg::Fetch {
            from: id,
            to: id,
            lo: Seq(1),
            hi: Seq(5),
        },
        Msg::History {
            to: id,
            records: vec![rec(1, "a"), rec(2, "b")],
        },
        Msg::Beacon {
            epoch: Epoch(2),
            cut: Seq(9),
            high: Seq(9),
            token_timeout_ms: 3000,
            server: ServerId(42),
            members: 1,
            digest: 0xdead_beef,
            group: GroupId(5),
            standby: true,
        },
        Msg::ViewRequest {
            from: id,
            epoch: Epoch(1),
        },
        Msg::TokenAck {
            epoch: Epoch(2),
            from: id,
            hop: 7,
        },
        Msg::AskAru {
            epoch: Epoch(2),
            from: id,
            seq: Seq(12),
        },
        Msg::Aru {
            epoch: Epoch(2),
            from: id,
            aru: Seq(12),
        },
        Msg::Propose {
            epoch: Epoch(2),
            part: 0,
            parts: 1,
            members: vec![Member {
                id,
                name: "bob".into(),
            }],
            servers: vec![ServerId(42), ServerId(7)],
            cut: Seq(9),
            server: ServerId(42),
            group: GroupId(5),
            base: Epoch(1),
            dead: vec![Epoch(0)],
            to: None,
        },
        Msg::Accept {
            epoch: Epoch(2),
            from: id,
        },
        Msg::SessionRequest {
            from: id,
            to: id,
            epoch: Epoch(2),
        },
        Msg::Suspect {
            epoch: Epoch(2),
            from: id,
            hop: 8,
        },
        Msg::Peers {
            from: id,
            peers: ["10.0.0.7:40123", "[fe80::7%3]:5007"]
                .map(|a| Peer {
                    id,
                    addr: a.parse().unwrap(),
                })
                .to_vec(),
        },
    ]
}

#[test]
fn every_kind_round_trips() {
    for msg in all_kinds() {
        let bytes = encode(&msg).unwrap();
        assert!(bytes.starts_with(br#"{"v":1,"type":""#), "{:?}", bytes);
        assert_eq!(decode(&bytes).unwrap(), msg);
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    assert!(matches!(decode(b""), Err(DecodeError::Malformed(_))));
    assert!(matches!(
        decode(b"\xff\x00garbage"),
        Err(DecodeError::Malformed(_))
    ));
    assert!(matches!(
        decode(br#"{"v":1,"type":"nonsense"}"#),
        Err(DecodeError::Malformed(_))
    ));
    assert!(matches!(
        decode(br#"{"v":1,"type":"wake","epoch":"x","from":"y"}"#),
        Err(DecodeError::Malformed(_))
    ));
    assert_eq!(
        decode(br#"{"v":2,"type":"wake"}"#),
        Err(DecodeError::WrongVersion(2))
    );
    assert_eq!(
        decode(&vec![b' '; 60_000]),
        Err(DecodeError::Oversize(60_000))
    );
    assert_eq!(
        decode(&vec![b' '; MAX_DATAGRAM_BYTES + 1]),
        Err(DecodeError::Oversize(MAX_DATAGRAM_BYTES + 1))
    );
    assert!(matches!(
        decode(&[crate::net::seal::SEAL_FORMAT, b'{', b'}']),
        Err(DecodeError::Malformed(_))
    ));
}

/// A datagram with one field replaced: `{"v":1,...}` as JSON, edited, re-encoded.
pub(super) fn edited(msg: &Msg, field: &str, value: serde_json::Value) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&encode(msg).unwrap()).unwrap();
    let mut at = &mut v;
    for part in field.split('.') {
        at = match part.parse::<usize>() {
            Ok(i) => &mut at[i],
            Err(_) => &mut at[part],
        };
    }
    *at = value;
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn g6_values_no_honest_node_sends_are_out_of_range() {
    let kinds = all_kinds();
    let big = serde_json::json!(MAX_COUNTER + 1);
    let peer = serde_json::json!({"id": Uuid::nil(), "addr": "10.0.0.1:1"});
    let too_many_peers = vec![peer; MAX_PEERS_PER_DATAGRAM + 1].into();
    let cases = [
        (&kinds[0], "delivered", big.clone()),
        (&kinds[0], "name", "n".repeat(MAX_NAME_BYTES + 1).into()),
        (&kinds[2], "reason", "\u{1b}[2J".into()),
        (&kinds[3], "epoch", serde_json::json!(u64::MAX)),
        (&kinds[4], "view_epoch", big.clone()),
        (&kinds[4], "aru", serde_json::json!(u64::MAX - 1)),
        (&kinds[5], "token_timeout_ms", serde_json::json!(u64::MAX)),
        (&kinds[5], "members.0.name", "a\nb".into()),
        (&kinds[5], "cut", big.clone()),
        (&kinds[6], "hop", serde_json::json!(u64::MAX)),
        (&kinds[6], "epoch", big.clone()),
        (&kinds[6], "rtr", serde_json::json!([1, u64::MAX])),
        (&kinds[7], "recs.0.seq", serde_json::json!(u64::MAX - 1)),
        (&kinds[7], "epoch", serde_json::json!(0)),
        (&kinds[6], "epoch", serde_json::json!(0)),
        (&kinds[8], "epoch", serde_json::json!(0)),
        (&kinds[7], "epoch", big.clone()),
        (
            &kinds[7],
            "recs.0.text",
            "y".repeat(MAX_LINE_BYTES + 1).into(),
        ),
        (
            &kinds[7],
            "recs.0.text",
            "fake\n[#1 00:00:00] server: hi".into(),
        ),
        (&kinds[7], "recs", serde_json::json!([])),
        (&kinds[7], "recs.1.seq", serde_json::json!(10)),
        (&kinds[7], "recs.1.seq", serde_json::json!(9)),
        (&kinds[7], "recs.1.name", "a\nb".into()),
        (&kinds[8], "epoch", big.clone()),
        (&kinds[8], "hop", big.clone()),
        (&kinds[9], "hi", big.clone()),
        (&kinds[10], "records.1.seq", big.clone()),
        (&kinds[3], "parts", serde_json::json!(0)),
        (&kinds[3], "part", serde_json::json!(1)),
        (&kinds[3], "parts", serde_json::json!(MAX_VIEW_PARTS + 1)),
        (&kinds[5], "parts", serde_json::json!(0)),
        (&kinds[5], "part", serde_json::json!(1)),
        (&kinds[5], "parts", serde_json::json!(MAX_VIEW_PARTS + 1)),
        (&kinds[6], "lag", serde_json::json!([10])),
        (&kinds[11], "epoch", big.clone()),
        (&kinds[11], "high", big.clone()),
        (&kinds[11], "members", serde_json::json!(MAX_MEMBERS + 1)),
        (&kinds[11], "token_timeout_ms", serde_json::json!(u64::MAX)),
        (&kinds[12], "epoch", big.clone()),
        (&kinds[13], "epoch", big.clone()),
        (&kinds[13], "hop", big.clone()),
        (&kinds[14], "epoch", serde_json::json!(0)),
        (&kinds[14], "seq", big.clone()),
        (&kinds[15], "epoch", serde_json::json!(0)),
        (&kinds[15], "aru", big.clone()),
        (&kinds[19], "hop", big),
        (&kinds[20], "peers.0.addr", "10.0.0.7:0".into()),
        (&kinds[20], "peers.1.addr", "[ff02::1]:5007".into()),
        (&kinds[20], "peers.0.addr", "0.0.0.0:5007".into()),
        (&kinds[20], "peers", too_many_peers),
    ];
    for (msg, field, value) in cases {
        let bytes = edited(msg, field, value.clone());
        assert!(
            matches!(decode(&bytes), Err(DecodeError::OutOfRange(_))),
            "{field} = {value}: {:?}",
            decode(&bytes)
        );
    }
    // The largest accepted values decode.
    let max = serde_json::json!(MAX_COUNTER);
    for (msg, field) in [
        (&kinds[6], "hop"),
        (&kinds[7], "recs.1.seq"),
        (&kinds[3], "epoch"),
        (&kinds[11], "cut"),
    ] {
        assert!(decode(&edited(msg, field, max.clone())).is_ok(), "{field}");
    }
    let tab = edited(&kinds[7], "recs.0.text", "a\tb".into());
    assert!(decode(&tab).is_ok(), "a tab is allowed, as at the prompt");
}

#[test]
fn the_largest_line_fits_a_sealed_datagram() {
    let r = largest_record(u64::MAX);
    let data = Msg::Data {
        epoch: Epoch(u64::MAX),
        group: GroupId(9),
        recs: vec![r.clone()],
    };
    let history = Msg::History {
        to: NodeId::random(),
        records: vec![r],
    };
    for msg in [data, history] {
        let len = encode(&msg).unwrap().len();
        assert!(
            len + crate::protocol::limits::SEAL_OVERHEAD_BYTES <= MAX_DATAGRAM_BYTES,
            "{len}"
        );
    }
}

#[test]
fn lines_are_checked_against_every_limit() {
    assert_eq!(check_line("a", ""), Err(LineError::Empty));
    assert_eq!(check_line("a", "   "), Err(LineError::Empty), "blank");
    assert_eq!(check_line("a", " \t "), Err(LineError::Empty), "blank");
    assert!(check_line("a", "  indented").is_ok());
    assert!(check_line("a", &"x".repeat(MAX_LINE_BYTES)).is_ok());
    assert_eq!(
        check_line("a", &"x".repeat(MAX_LINE_BYTES + 1)),
        Err(LineError::TooLong {
            bytes: MAX_LINE_BYTES + 1
        })
    );
    assert_eq!(
        check_line("a", "bell\x07"),
        Err(LineError::ControlCharacters)
    );
    assert!(matches!(
        check_line("a", &"\"".repeat(MAX_LINE_BYTES)),
        Err(LineError::TooLargeEncoded { .. })
    ));
    assert!(check_line(&"n".repeat(MAX_NAME_BYTES), &"x".repeat(MAX_LINE_BYTES)).is_ok());
}

#[test]
fn history_packs_into_datagrams_under_the_limit_in_order() {
    let records: Vec<_> = (1..=200)
        .map(|s| rec(s, &"y".repeat(s as usize % 300)))
        .collect();
    let to = NodeId::random();
    let datagrams = pack_history(to, records.clone());
    assert!(datagrams.len() > 1);
    let mut got = Vec::new();
    for d in &datagrams {
        assert!(d.len() <= MAX_PLAINTEXT_BYTES);
        match decode(d).unwrap() {
            Msg::History { to: t, records } => {
                assert_eq!(t, to);
                got.extend(records);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, records);
}

/// The largest record a prompt lets through: the longest line under the longest name, with
/// every number at its widest.
fn largest_record(seq: u64) -> ChatRecord {
    let mut r = rec(seq, &"x".repeat(MAX_LINE_BYTES));
    r.name = "n".repeat(MAX_NAME_BYTES);
    r.sent_at_ms = u64::MAX;
    r
}

/// Decodes data packs, checking each against the limits; their records in order.
fn unpack(packs: &[Msg], epoch: Epoch) -> Vec<ChatRecord> {
    let mut got = Vec::new();
    for msg in packs {
        let bytes = encode(msg).expect("a pack fits");
        assert!(bytes.len() + SEAL_OVERHEAD_BYTES <= MAX_DATAGRAM_BYTES);
        match decode(&bytes).expect("a pack decodes") {
            Msg::Data { epoch: e, recs, .. } => {
                assert_eq!(e, epoch);
                assert!(!recs.is_empty() && recs.len() <= MAX_PACK_RECORDS);
                got.extend(recs);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    got
}

#[test]
fn data_packs_fit_keep_the_order_and_fill_greedily() {
    let records: Vec<_> = (1..=300)
        .map(|s| rec(s, &"\"".repeat((s as usize * 37) % 480 + 1)))
        .collect();
    let epoch = Epoch(MAX_COUNTER);
    let packs = pack_data(epoch, GroupId(9), records.clone());
    assert!(packs.len() > 1 && packs.len() < records.len());
    assert_eq!(unpack(&packs, epoch), records, "every record, in order");
    // Greedy: the next pack's first record would not have fitted the one before.
    for pair in packs.windows(2) {
        let (Msg::Data { recs: next, .. }, Ok(bytes)) = (&pair[1], encode(&pair[0])) else {
            panic!("two packs");
        };
        let len = serde_json::to_vec(&next[0]).unwrap().len();
        assert!(bytes.len() + 1 + len > MAX_PLAINTEXT_BYTES);
    }
}

#[test]
fn any_record_that_fits_alone_fits_a_pack_of_its_own() {
    let epoch = Epoch(u64::MAX);
    let alone = pack_data(epoch, GroupId(9), vec![largest_record(MAX_COUNTER)]);
    assert_eq!(alone.len(), 1);
    let len = encode(&alone[0]).unwrap().len();
    assert!(len + SEAL_OVERHEAD_BYTES <= MAX_DATAGRAM_BYTES, "{len}");
    // Among short ones it still travels, in order, and they around it share packs.
    let mut records: Vec<_> = (1..=4).map(|s| rec(s, "short")).collect();
    records.push(largest_record(5));
    records.extend((6..=9).map(|s| rec(s, "short")));
    let packs = pack_data(Epoch(MAX_COUNTER), GroupId(9), records.clone());
    assert_eq!(unpack(&packs, Epoch(MAX_COUNTER)), records);
    assert!(packs.len() <= 3, "{}", packs.len());
}

#[test]
fn a_record_too_large_even_alone_is_left_out_not_sent_oversize() {
    let huge = rec(2, &"\"".repeat(MAX_LINE_BYTES));
    let packs = pack_data(Epoch(1), GroupId(9), vec![rec(1, "a"), huge, rec(3, "b")]);
    assert_eq!(seqs_of(&unpack(&packs, Epoch(1))), [1, 3]);
    assert!(
        pack_data(Epoch(1), GroupId(9), Vec::new()).is_empty(),
        "no empty pack"
    );
}

fn seqs_of(recs: &[ChatRecord]) -> Vec<u64> {
    recs.iter().map(|r| r.seq.0).collect()
}

#[test]
fn g6_the_smallest_records_fill_no_more_than_max_pack_records() {
    let tiny = |seq| ChatRecord {
        seq: Seq(seq),
        id: Uuid::nil(),
        from: NodeId(Uuid::nil()),
        name: String::new(),
        text: String::new(),
        sent_at_ms: 0,
    };
    let packs = pack_data(Epoch(1), GroupId(9), (0..=9).map(tiny).collect());
    let most = packs.iter().map(|p| match p {
        Msg::Data { recs, .. } => recs.len(),
        _ => 0,
    });
    assert!(most.max().unwrap() <= MAX_PACK_RECORDS);
    // A decoder check, though no datagram under the size limit could carry more.
    let over = Msg::Data {
        epoch: Epoch(1),
        group: GroupId(9),
        recs: (1..=MAX_PACK_RECORDS as u64 + 1).map(tiny).collect(),
    };
    assert!(check_values(&over).is_err());
}

#[test]
fn g6_a_data_pack_reads_the_same_by_the_short_path_as_by_the_general_one() {
    let kinds = all_kinds();
    let pack = &kinds[7];
    let mut inputs = vec![encode(pack).unwrap()];
    for (field, value) in [
        ("v", serde_json::json!(2)),
        ("epoch", serde_json::json!(0)),
        ("recs", serde_json::json!([])),
        ("recs.1.seq", serde_json::json!(9)),
        ("recs.0.text", serde_json::json!(7)),
        ("type", serde_json::json!("token")),
        ("extra", serde_json::json!({"x": [1, 2]})),
    ] {
        inputs.push(edited(pack, field, value));
    }
    inputs.push(br#"{"type":"data","recs":[],"epoch":1,"v":1}"#.to_vec());
    inputs.push(br#"{"v":1,"type":"data","type":"data","epoch":1,"recs":[]}"#.to_vec());
    for bytes in &inputs {
        let general = read_frame(bytes).and_then(|m| {
            check_values(&m).map_err(DecodeError::OutOfRange)?;
            Ok(m)
        });
        assert_eq!(decode(bytes), general, "{}", String::from_utf8_lossy(bytes));
    }
    assert_eq!(
        read_data_pack(&inputs[0]).as_ref(),
        Some(pack),
        "the short path is taken"
    );
}

/// Names that take the most bytes once escaped: every byte a quote, which JSON doubles.
pub(super) fn longest_names(n: usize) -> Vec<Member> {
    (0..n)
        .map(|i| Member {
            id: NodeId(Uuid::from_u128(u128::MAX - i as u128)),
            name: "\"".repeat(MAX_NAME_BYTES),
        })
        .collect()
}

/// The widest server list a view may carry.
pub(super) fn widest_servers() -> Vec<ServerId> {
    vec![ServerId(MAX_COUNTER); MAX_SERVERS]
}

fn head() -> ViewHead {
    ViewHead {
        epoch: Epoch(MAX_COUNTER),
        cut: Seq(MAX_COUNTER),
        high: Seq(MAX_COUNTER),
        token_timeout_ms: MAX_TOKEN_TIMEOUT_MS,
        server: ServerId(MAX_COUNTER),
        group: GroupId(MAX_COUNTER),
        servers: widest_servers(),
    }
}

#[test]
fn a_view_that_fits_one_datagram_is_part_0_of_1() {
    for n in [0, 1, 5] {
        let parts = pack_view(&head(), &longest_names(n));
        assert!(matches!(
            parts.as_slice(),
            [Msg::View {
                part: 0,
                parts: 1,
                ..
            }]
        ));
    }
}

fn widest_ids() -> (ServerId, GroupId) {
    (ServerId(MAX_COUNTER), GroupId(MAX_COUNTER))
}

fn widest_wait() -> Option<QuorumWait> {
    Some(QuorumWait {
        reachable: u32::MAX,
        voters: u32::MAX,
    })
}

#[test]
fn a_full_gather_splits_into_parts_that_each_fit() {
    let ids: Vec<NodeId> = longest_names(MAX_MEMBERS).iter().map(|m| m.id).collect();
    let parts = pack_gather(Epoch(MAX_COUNTER), widest_ids(), widest_wait(), &ids);
    assert!(parts.len() > 1 && parts.len() <= MAX_VIEW_PARTS as usize);
    let mut got = Vec::new();
    for msg in &parts {
        match decode(&encode(msg).expect("fits")).unwrap() {
            Msg::Gather { members, .. } => got.extend(members),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, ids);
}

/// The largest token of a full ring: every counter at its maximum, every slot and request as
/// far below `seq` as flow control lets it be, every request slot used, a wake mark.
fn largest_token() -> Token {
    let id = NodeId(Uuid::max());
    let seq = Seq(MAX_COUNTER);
    let low = Seq(MAX_COUNTER - MAX_IN_FLIGHT);
    Token {
        epoch: Epoch(MAX_COUNTER),
        from: id,
        to: id,
        hop: MAX_COUNTER,
        seq,
        arus: vec![low; MAX_MEMBERS],
        safe: low,
        rtr: vec![low; MAX_RTR],
        wake: Some(id),
    }
}

#[test]
fn the_largest_token_of_a_full_ring_fits_a_sealed_datagram() {
    let token = Msg::Token(largest_token());
    let bytes = encode(&token).expect("fits");
    assert!(bytes.len() <= MAX_PLAINTEXT_BYTES, "{}", bytes.len());
    assert_eq!(decode(&bytes).unwrap(), token);
}

#[test]
fn g6_a_token_lag_above_seq_is_out_of_range() {
    let mut token = Token::first(Epoch(2), NodeId::random(), NodeId::random(), Seq(9), 3);
    token.rtr = vec![Seq(5)];
    let msg = Msg::Token(token);
    for (field, value) in [
        ("lag", serde_json::json!([0, 10, 0])),
        ("lag", serde_json::json!([0, u64::MAX, 0])),
        ("rtr", serde_json::json!([10])),
    ] {
        let got = decode(&edited(&msg, field, value.clone()));
        assert!(
            matches!(got, Err(DecodeError::OutOfRange(_))),
            "{field} = {value}: {got:?}"
        );
    }
    assert!(decode(&edited(&msg, "lag", serde_json::json!([0, 9, 0]))).is_ok());
}

#[test]
fn g6_a_token_with_more_slots_than_members_is_out_of_range() {
    let mut token = largest_token();
    token.arus = vec![token.seq; MAX_MEMBERS + 1];
    token.rtr.clear();
    let bytes = serde_json::to_vec(&OutFrame {
        v: VERSION,
        msg: &Msg::Token(token),
    })
    .unwrap();
    assert!(matches!(decode(&bytes), Err(DecodeError::OutOfRange(_))));
}

/// The sizes PROTOCOL.md quotes: `cargo test --lib sizes_of_a_full_ring -- --nocapture`.
#[test]
fn sizes_of_a_full_ring() {
    let members = longest_names(MAX_MEMBERS);
    let sizes =
        |msgs: Vec<Msg>| -> Vec<usize> { msgs.iter().map(|m| encode(m).unwrap().len()).collect() };
    let view = sizes(pack_view(&head(), &members));
    let ids: Vec<NodeId> = members.iter().map(|m| m.id).collect();
    let gather = sizes(pack_gather(
        Epoch(MAX_COUNTER),
        widest_ids(),
        widest_wait(),
        &ids,
    ));
    let token = encode(&Msg::Token(largest_token())).unwrap().len();
    let plain: Vec<Member> = (0..100)
        .map(|i| Member {
            id: NodeId::random(),
            name: format!("client{i}"),
        })
        .collect();
    println!(
        "100 members named clientN: {} view parts",
        pack_view(&head(), &plain).len()
    );
    let mut old = largest_token();
    old.arus = vec![Seq(MAX_COUNTER); MAX_MEMBERS];
    let old_arus = serde_json::to_vec(&old.arus).unwrap().len();
    let proposal = sizes(pack_propose(&membership::proposal_head(), &members));
    println!(
        "view: {} parts, {} bytes; proposal: {} parts, {} bytes; gather: {} parts, {} bytes; token: {token} bytes (its slots as counters alone: {old_arus} bytes)",
        view.len(),
        view.iter().sum::<usize>(),
        proposal.len(),
        proposal.iter().sum::<usize>(),
        gather.len(),
        gather.iter().sum::<usize>()
    );
}
