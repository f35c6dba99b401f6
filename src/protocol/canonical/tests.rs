//! Tests of the canonical JSON: the writer against serde_json byte for byte, and the pack
//! reader against serde on packs of ours, on other shapes and on mutated bytes.

use super::*;
use crate::protocol::limits::{MAX_PLAINTEXT_BYTES, VERSION};
use crate::protocol::wire::{self, Msg};
use proptest::prelude::*;

fn record(seq: u64, id: u128, from: u128, name: String, text: String, at: u64) -> ChatRecord {
    ChatRecord {
        seq: Seq(seq),
        id: Uuid::from_u128(id),
        from: NodeId(Uuid::from_u128(from)),
        name,
        text,
        sent_at_ms: at,
    }
}

fn any_record() -> impl Strategy<Value = ChatRecord> {
    (
        any::<u64>(),
        any::<u128>(),
        any::<u128>(),
        any::<String>(),
        prop_oneof![any::<String>(), "[ -~]{0,80}", "[a-z\"\\\\\t\n]{0,20}"],
        any::<u64>(),
    )
        .prop_map(|(seq, id, from, name, text, at)| record(seq, id, from, name, text, at))
}

fn pack(epoch: u64, group: u64, recs: Vec<ChatRecord>) -> Msg {
    Msg::Data {
        epoch: Epoch(epoch),
        group: GroupId(group),
        recs,
    }
}

/// A data pack as serde writes it.
#[derive(serde::Serialize)]
struct SerdeFrame<'a> {
    v: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    epoch: u64,
    group: u64,
    recs: &'a [ChatRecord],
}

/// What the general reader makes of `bytes`, for comparison.
fn by_serde(bytes: &[u8]) -> Option<(u64, Epoch, GroupId, Vec<ChatRecord>)> {
    #[derive(serde::Deserialize)]
    struct Frame {
        v: u64,
        #[serde(flatten)]
        msg: Msg,
    }
    match serde_json::from_slice::<Frame>(bytes).ok()? {
        Frame {
            v,
            msg: Msg::Data { epoch, group, recs },
        } => Some((v, epoch, group, recs)),
        _ => None,
    }
}

#[test]
fn a_record_is_written_as_serde_writes_it() {
    let rec = record(7, 1, 2, "ann".into(), "hi \"there\"\\ \t é ✓".into(), 0);
    let mut mine = Vec::new();
    write_record(&mut mine, &rec);
    assert_eq!(
        String::from_utf8(mine).unwrap(),
        serde_json::to_string(&rec).unwrap()
    );
}

#[test]
fn a_pack_of_ours_is_read_the_fast_way() {
    let recs = vec![
        record(1, 1, 2, "ann".into(), "hello".into(), 5),
        record(2, 3, 2, "ann".into(), "wörld".into(), u64::MAX),
    ];
    let bytes = wire::encode(&pack(9, 4, recs.clone())).unwrap();
    assert_eq!(
        read_data_pack(&bytes),
        Some((VERSION, Epoch(9), GroupId(4), recs))
    );
}

#[test]
fn anything_but_the_canonical_shape_is_left_to_serde() {
    let ours = wire::encode(&pack(
        9,
        4,
        vec![record(1, 1, 2, "a".into(), "b".into(), 5)],
    ))
    .unwrap();
    let ours = String::from_utf8(ours).unwrap();
    let variants = [
        ours.replace(":", ": "),                     // whitespace
        ours.replace("\"b\"", "\"\\u0062\""),        // an escape
        ours.replace("\"seq\":1", "\"seq\":01"),     // a leading zero
        ours.replace("\"seq\":1", "\"seq\":1.0"),    // a fraction
        ours.replace("\"epoch\":9", "\"epoch\":-9"), // a sign
        ours.replace("\"recs\":[", "\"recs\":[ "),   // whitespace in the list
        ours.replace(
            "00000000-0000-0000-0000-000000000001",
            "00000000000000000000000000000001",
        ),
        format!("{ours} "), // trailing whitespace
        ours.replace("\"recs\":[{", "\"recs\":[]}")
            .split_once("]}")
            .unwrap()
            .0
            .to_owned()
            + "]}",
    ];
    for variant in variants {
        assert_eq!(read_data_pack(variant.as_bytes()), None, "{variant}");
    }
    let huge = ours.replace("\"seq\":1", "\"seq\":18446744073709551616");
    assert_eq!(read_data_pack(huge.as_bytes()), None);
    assert_eq!(by_serde(huge.as_bytes()), None);
}

proptest! {
    #[test]
    fn records_are_written_byte_for_byte_as_serde_writes_them(rec in any_record()) {
        let mut mine = Vec::new();
        write_record(&mut mine, &rec);
        prop_assert_eq!(mine, serde_json::to_vec(&rec).unwrap());
    }

    #[test]
    fn packs_are_written_as_serde_writes_them_and_read_back_whole(
        epoch in any::<u64>(),
        group in any::<u64>(),
        recs in proptest::collection::vec(any_record(), 1..6),
    ) {
        let bytes = serde_json::to_vec(&SerdeFrame {
            v: VERSION, kind: "data", epoch, group, recs: &recs,
        }).unwrap();
        let clean = recs.iter().all(|r| !needs_escape(r.name.as_bytes())
            && !needs_escape(r.text.as_bytes()));
        if bytes.len() <= MAX_PLAINTEXT_BYTES {
            prop_assert_eq!(&wire::encode(&pack(epoch, group, recs.clone())).unwrap(), &bytes);
        }
        let fast = read_data_pack(&bytes);
        if clean {
            prop_assert_eq!(fast, Some((VERSION, Epoch(epoch), GroupId(group), recs)));
        } else {
            prop_assert_eq!(fast, None);
        }
    }

    #[test]
    fn whatever_the_fast_reader_takes_serde_reads_the_same(
        recs in proptest::collection::vec(any_record(), 1..3),
        cut in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = wire::encode(&pack(3, 4, recs)).unwrap();
        let at = cut.index(bytes.len());
        bytes[at] = byte;
        if let Some(fast) = read_data_pack(&bytes) {
            prop_assert_eq!(Some(fast), by_serde(&bytes));
        }
    }
}
