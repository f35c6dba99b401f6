//! Unit tests of the datagram format: round trips, bad input, value ranges, line limits and
//! history packing.

use super::*;

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

fn all_kinds() -> Vec<Msg> {
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
            members: vec![id],
            server: Some(ServerId(42)),
        },
        Msg::Report {
            epoch: Epoch(2),
            from: id,
            incarnation: Incarnation(1),
            name: "bob".into(),
            view_epoch: Epoch(1),
            aru: Seq(9),
            delivered: Seq(8),
        },
        Msg::View {
            epoch: Epoch(2),
            members: vec![Member {
                id,
                name: "bob".into(),
            }],
            cut: Seq(9),
            high: Seq(9),
            token_timeout_ms: 3000,
            server: Some(ServerId(42)),
        },
        Msg::Token(Token::first(Epoch(2), id, id, Seq(9), 1)),
        Msg::Data {
            epoch: Epoch(2),
            rec: rec(10, "hi"),
        },
        Msg::Wake {
            epoch: Epoch(2),
            from: id,
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
fn edited(msg: &Msg, field: &str, value: serde_json::Value) -> Vec<u8> {
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
        (&kinds[7], "rec.seq", serde_json::json!(u64::MAX - 1)),
        (&kinds[7], "epoch", serde_json::json!(0)),
        (&kinds[6], "epoch", serde_json::json!(0)),
        (&kinds[8], "epoch", serde_json::json!(0)),
        (&kinds[7], "epoch", big.clone()),
        (&kinds[7], "rec.text", "y".repeat(MAX_LINE_BYTES + 1).into()),
        (
            &kinds[7],
            "rec.text",
            "fake\n[#1 00:00:00] server: hi".into(),
        ),
        (&kinds[8], "epoch", big.clone()),
        (&kinds[9], "hi", big.clone()),
        (&kinds[10], "records.1.seq", big),
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
        (&kinds[7], "rec.seq"),
        (&kinds[3], "epoch"),
    ] {
        assert!(decode(&edited(msg, field, max.clone())).is_ok(), "{field}");
    }
    let tab = edited(&kinds[7], "rec.text", "a\tb".into());
    assert!(decode(&tab).is_ok(), "a tab is allowed, as at the prompt");
}

#[test]
fn the_largest_line_fits_a_sealed_datagram() {
    let mut r = rec(u64::MAX, &"x".repeat(MAX_LINE_BYTES));
    r.name = "n".repeat(MAX_NAME_BYTES);
    r.sent_at_ms = u64::MAX;
    let data = Msg::Data {
        epoch: Epoch(u64::MAX),
        rec: r.clone(),
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

#[test]
fn a_full_ring_of_the_longest_names_does_not_fit_one_view_datagram() {
    let members = (0..MAX_MEMBERS)
        .map(|_| Member {
            id: NodeId::random(),
            name: "n".repeat(MAX_NAME_BYTES),
        })
        .collect();
    let view = Msg::View {
        epoch: Epoch(u64::MAX),
        members,
        cut: Seq(u64::MAX),
        high: Seq(u64::MAX),
        token_timeout_ms: u64::MAX,
        server: Some(ServerId(u64::MAX)),
    };
    assert!(
        encode(&view).is_err(),
        "names this long do not fit 16 members"
    );
}
