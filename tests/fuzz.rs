//! Property tests (G6): the datagram decoder and the replica reader are fed
//! arbitrary and mutated input. A bounded run (256 cases each) is part of `cargo test`; set
//! `PROPTEST_CASES=100000` for a longer one.

use mcast_chat::net::seal::Key;
use mcast_chat::protocol::limits::{self, MAX_COUNTER, MAX_PLAINTEXT_BYTES};
use mcast_chat::protocol::types::{
    ChatRecord, Epoch, GroupId, Incarnation, Member, NodeId, Seq, ServerId,
};
use mcast_chat::protocol::vote::{Ballot, Role, SessionRef};
use mcast_chat::protocol::wire::{self, Msg, Peer, QuorumWait};
use mcast_chat::replica::Replica;
use mcast_chat::runtime::datagram::{unwrap_datagram, wrap_datagram};
use mcast_chat::store::StorageError;
use mcast_chat::token_ring::Token;
use proptest::prelude::*;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use uuid::Uuid;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn id() -> impl Strategy<Value = NodeId> {
    any::<u128>().prop_map(|n| NodeId(Uuid::from_u128(n)))
}

fn counter() -> impl Strategy<Value = u64> {
    prop_oneof![0..100u64, 0..=MAX_COUNTER]
}

fn seq() -> impl Strategy<Value = Seq> {
    counter().prop_map(Seq)
}

fn epoch() -> impl Strategy<Value = Epoch> {
    prop_oneof![1..100u64, 1..=MAX_COUNTER].prop_map(Epoch)
}

/// Names as `--name` allows them: at most 32 bytes, no control characters.
fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _é]{1,16}"
}

/// Lines as the prompt allows them: printable (tabs too), well under the line limit.
fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[^\\p{Cc}]{0,120}", "[\t a-z]{0,40}"]
}

fn record() -> impl Strategy<Value = ChatRecord> {
    (seq(), any::<u128>(), id(), name(), text(), any::<u64>()).prop_map(
        |(seq, uuid, from, name, text, sent_at_ms)| ChatRecord {
            seq,
            id: Uuid::from_u128(uuid),
            from,
            name,
            text,
            sent_at_ms,
        },
    )
}

/// Records as a pack carries them: seqs strictly increasing (gaps allowed).
fn in_seq_order(mut recs: Vec<ChatRecord>) -> Vec<ChatRecord> {
    recs.sort_by_key(|r| r.seq);
    recs.dedup_by_key(|r| r.seq);
    recs
}

/// Records with lines of every length the prompt might see, some too large to travel.
fn any_size_record() -> impl Strategy<Value = ChatRecord> {
    let text = prop_oneof![text(), "[a-z]{900,1000}", "[\t \"\\\\a-z]{300,1000}"];
    (record(), prop_oneof![name(), "\"{32}"], text).prop_map(|(rec, name, text)| ChatRecord {
        name,
        text,
        ..rec
    })
}

/// Seqs at most `MAX_IN_FLIGHT` below `seq` (and not below 0), as flow control keeps the
/// token's slots and requests.
fn below(seq: Seq, n: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<Seq>> {
    let lag = 0..=seq.0.min(limits::MAX_IN_FLIGHT);
    proptest::collection::vec(lag, n)
        .prop_map(move |lags| lags.into_iter().map(|d| Seq(seq.0 - d)).collect())
}

fn token() -> impl Strategy<Value = Token> {
    (
        (epoch(), id(), id(), counter()),
        seq(),
        seq(),
        proptest::option::of(id()),
    )
        .prop_flat_map(|(head, seq, safe, wake)| {
            (
                Just((head, seq, safe, wake)),
                below(seq, 1..=limits::MAX_MEMBERS),
                below(seq, 0..=limits::MAX_RTR),
            )
        })
        .prop_map(
            |(((epoch, from, to, hop), seq, safe, wake), arus, rtr)| Token {
                epoch,
                from,
                to,
                hop,
                seq,
                arus,
                safe,
                rtr,
                wake,
            },
        )
}

/// A part index and count as a packer numbers them.
fn part() -> impl Strategy<Value = (u32, u32)> {
    (1..=limits::MAX_VIEW_PARTS).prop_flat_map(|parts| (0..parts, Just(parts)))
}

fn incarnation() -> impl Strategy<Value = Incarnation> {
    any::<u64>().prop_map(Incarnation)
}

/// A server id as servers draw them: never 0.
fn server_id() -> impl Strategy<Value = ServerId> {
    (1..=MAX_COUNTER).prop_map(ServerId)
}

fn group_id() -> impl Strategy<Value = GroupId> {
    (1..=MAX_COUNTER).prop_map(GroupId)
}

/// A view's servers: one to [`limits::MAX_SERVERS`].
fn servers() -> impl Strategy<Value = Vec<ServerId>> {
    proptest::collection::vec(server_id(), 1..=limits::MAX_SERVERS)
}

fn ballot() -> impl Strategy<Value = Ballot> {
    (epoch(), server_id()).prop_map(|(epoch, server)| Ballot { epoch, server })
}

/// A session as a report names it.
fn session_ref() -> impl Strategy<Value = SessionRef> {
    let role = prop_oneof![Just(Role::Member), Just(Role::Server), Just(Role::None)];
    (seq(), server_id(), seq(), 1..=133u32, role).prop_flat_map(
        |(epoch, server, cut, voters, role)| {
            (0..=voters.min(128)).prop_map(move |members| SessionRef {
                epoch: Epoch(epoch.0),
                server,
                cut,
                voters,
                members,
                role,
            })
        },
    )
}

/// A gather, with or without a quorum count.
fn gather() -> impl Strategy<Value = Msg> {
    let waiting = proptest::option::of((any::<u32>(), any::<u32>()))
        .prop_map(|w| w.map(|(reachable, voters)| QuorumWait { reachable, voters }));
    (
        epoch(),
        part(),
        proptest::collection::vec(id(), 0..8),
        (server_id(), group_id()),
        waiting,
    )
        .prop_map(
            |(epoch, (part, parts), members, (server, group), waiting)| Msg::Gather {
                epoch,
                part,
                parts,
                members,
                server,
                group,
                waiting,
            },
        )
}

/// A report, naming its primary and attempts.
fn report() -> impl Strategy<Value = Msg> {
    (
        (epoch(), id(), incarnation(), name()),
        (seq(), seq(), seq()),
        (group_id(), ballot()),
        proptest::option::of(session_ref()),
        proptest::collection::vec(session_ref(), 0..=limits::MAX_ATTEMPTS),
    )
        .prop_map(
            |(
                (epoch, from, incarnation, name),
                (view_epoch, aru, delivered),
                (group, promised),
                primary,
                attempts,
            )| Msg::Report {
                epoch,
                from,
                incarnation,
                name,
                view_epoch: Epoch(view_epoch.0),
                aru,
                delivered,
                group,
                promised,
                primary,
                attempts,
            },
        )
}

/// A proposal, or an echo of one.
fn proposal() -> impl Strategy<Value = Msg> {
    let member = (id(), name()).prop_map(|(id, name)| Member { id, name });
    (
        (seq(), part(), proptest::collection::vec(member, 0..6)),
        (servers(), seq(), group_id()),
        (
            seq(),
            proptest::collection::vec(seq(), 0..=limits::MAX_ATTEMPTS),
        ),
        proptest::option::of(id()),
    )
        .prop_map(
            |((epoch, (part, parts), members), (servers, cut, group), (base, dead), to)| {
                Msg::Propose {
                    epoch: Epoch(epoch.0),
                    part,
                    parts,
                    members,
                    server: servers[0],
                    servers,
                    cut,
                    group,
                    base: Epoch(base.0),
                    dead: dead.into_iter().map(|e| Epoch(e.0)).collect(),
                    to,
                }
            },
        )
}

/// A node's address, IPv4 or IPv6, as a server announces it.
fn peer() -> impl Strategy<Value = Peer> {
    let ip = prop_oneof![
        (1..=223u8, any::<[u8; 3]>()).prop_map(|(a, [b, c, d])| IpAddr::from([a, b, c, d])),
        (0xfc00..=0xfeffu16, any::<[u16; 7]>()).prop_map(|(a, rest)| {
            let [b, c, d, e, f, g, h] = rest;
            IpAddr::from([a, b, c, d, e, f, g, h])
        }),
    ];
    (id(), ip, 1..=u16::MAX).prop_map(|(id, ip, port)| Peer {
        id,
        addr: SocketAddr::new(ip, port),
    })
}

/// Every kind of message, with values an honest node could send.
fn msg() -> impl Strategy<Value = Msg> {
    let member = (id(), name()).prop_map(|(id, name)| Member { id, name });
    prop_oneof![
        (id(), incarnation(), name(), seq()).prop_map(|(from, incarnation, name, delivered)| {
            Msg::Hello {
                from,
                incarnation,
                name,
                delivered,
            }
        }),
        (id(), incarnation()).prop_map(|(from, incarnation)| Msg::Leave { from, incarnation }),
        (id(), incarnation(), text()).prop_map(|(to, incarnation, reason)| Msg::Refuse {
            to,
            incarnation,
            reason
        }),
        gather(),
        report(),
        proposal(),
        (epoch(), id()).prop_map(|(epoch, from)| Msg::Accept { epoch, from }),
        (id(), id(), seq()).prop_map(|(from, to, epoch)| Msg::SessionRequest {
            from,
            to,
            epoch: Epoch(epoch.0)
        }),
        (
            (seq(), part(), proptest::collection::vec(member, 0..6)),
            (seq(), seq()),
            0..=limits::MAX_TOKEN_TIMEOUT_MS,
            (servers(), group_id()),
        )
            .prop_map(
                |(
                    (epoch, (part, parts), members),
                    (cut, high),
                    token_timeout_ms,
                    (servers, group),
                )| Msg::View {
                    epoch: Epoch(epoch.0),
                    part,
                    parts,
                    members,
                    server: servers[0],
                    servers,
                    cut,
                    high,
                    token_timeout_ms,
                    group,
                }
            ),
        token().prop_map(Msg::Token),
        (
            epoch(),
            group_id(),
            proptest::collection::vec(record(), 1..5)
        )
            .prop_map(|(epoch, group, recs)| Msg::Data {
                epoch,
                group,
                recs: in_seq_order(recs),
            }),
        (epoch(), id(), counter()).prop_map(|(epoch, from, hop)| Msg::Wake { epoch, from, hop }),
        (id(), id(), seq(), seq()).prop_map(|(from, to, lo, hi)| Msg::Fetch { from, to, lo, hi }),
        (id(), proptest::collection::vec(record(), 0..4))
            .prop_map(|(to, records)| Msg::History { to, records }),
        (
            id(),
            proptest::collection::vec(peer(), 0..=wire::MAX_PEERS_PER_DATAGRAM)
        )
            .prop_map(|(from, peers)| Msg::Peers { from, peers }),
        (
            (seq(), seq(), seq()),
            0..=limits::MAX_TOKEN_TIMEOUT_MS,
            (server_id(), group_id(), any::<bool>()),
            0..=limits::MAX_MEMBERS as u64,
            any::<u64>(),
        )
            .prop_map(
                |(
                    (epoch, cut, high),
                    token_timeout_ms,
                    (server, group, standby),
                    members,
                    digest,
                )| {
                    Msg::Beacon {
                        epoch: Epoch(epoch.0),
                        cut,
                        high,
                        token_timeout_ms,
                        server,
                        members,
                        digest,
                        group,
                        standby,
                    }
                }
            ),
        (id(), seq()).prop_map(|(from, epoch)| Msg::ViewRequest {
            from,
            epoch: Epoch(epoch.0)
        }),
    ]
}

/// A change to a valid datagram: overwrite, insert or delete bytes, or cut it short.
#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Bytes that matter to JSON, plus anything.
    let byte = prop_oneof![
        Just(b'"'),
        Just(b'{'),
        Just(b'}'),
        Just(b','),
        Just(b':'),
        Just(b'9'),
        Just(b'-'),
        Just(b'\\'),
        any::<u8>()
    ];
    prop_oneof![
        (any::<usize>(), byte).prop_map(|(at, b)| Mutation::Set(at, b)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..30)
        )
            .prop_map(|(at, b)| Mutation::Insert(at, b)),
        (any::<usize>(), 1..40usize).prop_map(|(at, n)| Mutation::Delete(at, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Set(at, b) if !bytes.is_empty() => bytes[at % len] = *b,
            Mutation::Set(..) => {}
            Mutation::Insert(at, b) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            Mutation::Truncate(at) => bytes.truncate(at % len),
        }
    }
    bytes
}

fn test_key() -> (tempfile::TempDir, Key) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, b"a property-test secret, 32 bytes").unwrap();
    let key = Key::from_file(&path).unwrap();
    (dir, key)
}

proptest! {
    #![proptest_config(config())]

    /// G6: any bytes at all decode to a message or an error, never a panic.
    #[test]
    fn g6_decode_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..1600)
    ) {
        let _ = wire::decode(&bytes);
    }

    /// G6: valid datagrams with bytes changed, inserted, deleted or cut decode to a message or
    /// an error, never a panic; what decodes is within the wire's limits, so it re-encodes.
    #[test]
    fn g6_decode_never_panics_on_mutated_datagrams(
        msg in msg(),
        mutations in proptest::collection::vec(mutation(), 1..4)
    ) {
        let Ok(bytes) = wire::encode(&msg) else {
            return Ok(());
        };
        if let Ok(decoded) = wire::decode(&mutate(bytes, &mutations)) {
            prop_assert!(serde_json::to_vec(&decoded).is_ok());
        }
    }

    /// G6 with a key: a sealed datagram with any change never opens, and never panics.
    #[test]
    fn g6_a_changed_sealed_datagram_never_opens(
        msg in msg(),
        mutations in proptest::collection::vec(mutation(), 1..3)
    ) {
        let (_dir, key) = test_key();
        let Ok(sealed) = wrap_datagram(Some(&key), &msg) else {
            return Ok(());
        };
        let changed = mutate(sealed.clone(), &mutations);
        if changed != sealed {
            prop_assert!(unwrap_datagram(Some(&key), &changed).is_err());
        }
        prop_assert_eq!(unwrap_datagram(Some(&key), &sealed).unwrap(), msg);
    }

    /// Every message an honest node could send survives encode then decode unchanged, or is
    /// refused by the encoder for its size alone.
    #[test]
    fn encode_then_decode_gives_the_same_message(msg in msg()) {
        match wire::encode(&msg) {
            Ok(bytes) => {
                prop_assert!(bytes.len() <= MAX_PLAINTEXT_BYTES);
                prop_assert_eq!(wire::decode(&bytes).unwrap(), msg);
            }
            Err(_) => prop_assert!(serde_json::to_vec(&msg).unwrap().len() > MAX_PLAINTEXT_BYTES - 20),
        }
    }

    /// A line that the prompt accepts is never refused by the decoder of another node.
    #[test]
    fn a_line_the_prompt_accepts_always_travels(
        name in name(),
        text in prop_oneof![
            "\\PC{0,400}",
            "[\t a-z]{0,200}",
            "[a-z]{990,1000}",
            "[\t \"\\\\a-z]{300,1000}",
        ]
    ) {
        if wire::check_line(&name, &text).is_ok() {
            let msg = Msg::Data {
                epoch: Epoch(MAX_COUNTER),
                group: GroupId(MAX_COUNTER),
                recs: vec![ChatRecord {
                    seq: Seq(MAX_COUNTER),
                    id: Uuid::max(),
                    from: NodeId(Uuid::max()),
                    name,
                    text,
                    sent_at_ms: u64::MAX,
                }],
            };
            let bytes = wire::encode(&msg).unwrap();
            prop_assert_eq!(wire::decode(&bytes).unwrap(), msg);
        }
    }

    /// Packing: arbitrary records (in seq order) pack into datagrams that each fit and decode,
    /// and unpack to exactly the records that fit a datagram alone, in order; every line the
    /// prompt accepts is among them.
    #[test]
    fn data_packs_round_trip_within_the_size_limit(
        epoch in epoch(),
        records in proptest::collection::vec(any_size_record(), 0..40)
    ) {
        let records = in_seq_order(records);
        let fits_alone = |r: &ChatRecord| {
            wire::encode(&Msg::Data { epoch, group: GroupId(MAX_COUNTER), recs: vec![r.clone()] }).is_ok()
        };
        for r in &records {
            prop_assert!(wire::check_line(&r.name, &r.text).is_err() || fits_alone(r));
        }
        let expected: Vec<ChatRecord> = records.iter().filter(|r| fits_alone(r)).cloned().collect();
        let mut got = Vec::new();
        for msg in wire::pack_data(epoch, GroupId(MAX_COUNTER), records) {
            let bytes = wire::encode(&msg).unwrap();
            prop_assert!(bytes.len() <= MAX_PLAINTEXT_BYTES);
            match wire::decode(&bytes).unwrap() {
                Msg::Data { epoch: e, recs, .. } => {
                    prop_assert_eq!(e, epoch);
                    prop_assert!(!recs.is_empty() && recs.len() <= limits::MAX_PACK_RECORDS);
                    got.extend(recs);
                }
                other => prop_assert!(false, "not a data pack: {:?}", other),
            }
        }
        prop_assert_eq!(got, expected);
    }

    /// G5/G6: a replica of N valid records followed by arbitrary bytes either opens keeping
    /// at least those N records unchanged (a torn tail is cut), or is reported corrupt at a
    /// line after them, naming the file. Never a panic.
    #[test]
    fn g6_the_replica_reader_keeps_every_valid_leading_record(
        records in proptest::collection::vec(record(), 0..12),
        tail in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            "[^\n]{0,80}(\n[^\n]{0,40}){0,3}\n?".prop_map(String::into_bytes),
        ]
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replica_server.jsonl");
        let records: Vec<ChatRecord> = records
            .into_iter()
            .enumerate()
            .map(|(i, r)| ChatRecord { seq: Seq(i as u64 + 1), ..r })
            .collect();
        let n = records.len() as u64;
        {
            let (mut replica, _) = Replica::open(&path).unwrap();
            replica.append(&records).unwrap();
        }
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&tail).unwrap();
        match Replica::open(&path) {
            Ok((replica, report)) => {
                prop_assert!(report.records >= n);
                prop_assert_eq!(replica.read_range(Seq(1), Seq(n)).unwrap(), records);
            }
            Err(e @ StorageError::Corrupt { line_number, .. }) => {
                prop_assert!(line_number > n, "corrupt at {} of {} valid: {}", line_number, n, e);
                prop_assert!(e.to_string().contains(&path.display().to_string()));
            }
            Err(e) => prop_assert!(false, "unexpected error: {}", e),
        }
    }

    /// G6: whatever a replica file holds, opening it never panics.
    #[test]
    fn g6_the_replica_reader_never_panics_on_arbitrary_files(
        content in proptest::collection::vec(any::<u8>(), 0..400)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replica_server.jsonl");
        std::fs::write(&path, &content).unwrap();
        let _ = Replica::open(&path);
    }
}
