//! Criterion micro-benchmarks of the hot path: `cargo bench --bench micro`.
//!
//! - `wire/encode_data`, `wire/decode_data`: one chat message as a `Data` datagram (about 200
//!   bytes, the size the ring bench (`benches/ring/`) floods with);
//! - `wire/encode_token`, `wire/decode_token`: a token carrying a few retransmission requests;
//! - `wire/pack_history_512`: one history answer of 512 records (a member's fetch chunk);
//! - `replica/append_1`, `replica/append_64`: `Replica::append` of one record and of a batch of
//!   64 (group commit), in a temp dir; the file is replaced by a fresh one now and then so it
//!   stays small, and only the `append` call is timed;
//! - `accept/journal_append_1` against `accept/checkpoint_rewrite_1`: the two ways to put one
//!   typed line on disk before it counts as accepted, an append to the outbox journal (what
//!   the client does) or a checkpoint rewrite, temp file and rename (what it did before).
//!
//! Short measurement times keep the whole run under a minute; pass criterion flags after `--`
//! for more (`cargo bench --bench micro -- --measurement-time 10`).

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mcast_chat::checkpoint::{self, Checkpoint, CHECKPOINT_VERSION};
use mcast_chat::protocol::types::{ChatRecord, Epoch, GroupId, NodeId, Pending, Seq, View};
use mcast_chat::protocol::wire::{self, Msg};
use mcast_chat::replica::Replica;
use mcast_chat::store::journal::Journal;
use mcast_chat::token_ring::Token;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A replica file is replaced once it grows past this, outside the timed section.
const ROTATE_BYTES: u64 = 32 << 20;

/// A chat record like the ring benchmark's lines: about 200 bytes as a `Data` datagram.
fn record(seq: u64, from: NodeId) -> ChatRecord {
    ChatRecord {
        seq: Seq(seq),
        id: Uuid::new_v4(),
        from,
        name: "c1".into(),
        text: format!("b4-1-{seq} {}", "x".repeat(40)),
        sent_at_ms: 1_800_000_000_000 + seq,
    }
}

fn token() -> Token {
    let mut t = Token::first(
        Epoch(7),
        NodeId::random(),
        NodeId::random(),
        Seq(100_000),
        8,
    );
    t.seq = Seq(100_032);
    t.rtr = vec![Seq(100_003), Seq(100_004), Seq(100_011), Seq(100_020)];
    t
}

fn wire_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    let data = Msg::Data {
        epoch: Epoch(7),
        group: GroupId(1 << 52),
        recs: vec![record(100_001, NodeId::random())],
    };
    let data_bytes = wire::encode(&data).expect("a data message encodes");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_data", |b| b.iter(|| wire::encode(black_box(&data))));
    g.bench_function("decode_data", |b| {
        b.iter(|| wire::decode(black_box(&data_bytes)))
    });
    let tok = Msg::Token(token());
    let tok_bytes = wire::encode(&tok).expect("a token encodes");
    g.bench_function("encode_token", |b| b.iter(|| wire::encode(black_box(&tok))));
    g.bench_function("decode_token", |b| {
        b.iter(|| wire::decode(black_box(&tok_bytes)))
    });
    let from = NodeId::random();
    let records: Vec<ChatRecord> = (1..=512).map(|s| record(s, from)).collect();
    let to = NodeId::random();
    g.throughput(Throughput::Elements(512));
    g.bench_function("pack_history_512", |b| {
        b.iter_batched(
            || records.clone(),
            |r| wire::pack_history(to, r),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// A replica in a temp dir that is replaced when it grows past [`ROTATE_BYTES`].
struct Scratch {
    dir: tempfile::TempDir,
    replica: Replica,
    files: u32,
    from: NodeId,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (replica, _) = Replica::open(&dir.path().join("replica_0.jsonl")).expect("a replica");
        Scratch {
            dir,
            replica,
            files: 0,
            from: NodeId::random(),
        }
    }

    /// The next `n` records, after replacing the file if it grew too big.
    fn next_batch(&mut self, n: u64) -> Vec<ChatRecord> {
        if self.replica.len_bytes() > ROTATE_BYTES {
            self.files += 1;
            let path = self
                .dir
                .path()
                .join(format!("replica_{}.jsonl", self.files));
            self.replica = Replica::open(&path).expect("a fresh replica").0;
        }
        let next = self.replica.last_seq().0 + 1;
        (next..next + n).map(|s| record(s, self.from)).collect()
    }
}

fn replica_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("replica");
    for batch in [1u64, 64] {
        let mut scratch = Scratch::new();
        g.throughput(Throughput::Elements(batch));
        g.bench_function(format!("append_{batch}"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let records = scratch.next_batch(batch);
                    let start = Instant::now();
                    scratch.replica.append(&records).expect("append");
                    timed += start.elapsed();
                }
                timed
            })
        });
    }
    g.finish();
}

/// A typed line like the ring benchmark's.
fn pending(n: u64) -> Pending {
    Pending {
        id: Uuid::new_v4(),
        text: format!("b4-1-{n} {}", "x".repeat(40)),
        sent_at_ms: 1_800_000_000_000 + n,
    }
}

fn accept_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("accept");
    g.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir().expect("a temp dir");
    let (mut journal, _) =
        Journal::open(&dir.path().join("outbox_0.jsonl"), None).expect("a journal");
    let mut n = 0;
    g.bench_function("journal_append_1", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                if journal.mark().bytes > ROTATE_BYTES {
                    journal.start_over(journal.mark()).expect("start over");
                }
                n += 1;
                let line = [pending(n)];
                let start = Instant::now();
                journal.append(&line).expect("append");
                timed += start.elapsed();
            }
            timed
        })
    });
    let path = dir.path().join("checkpoint_0.json");
    let mut cp = Checkpoint {
        version: CHECKPOINT_VERSION,
        node: NodeId::random(),
        name: "c1".into(),
        view: View::default(),
        delivered: Seq(0),
        replica_len_bytes: 0,
        outbox: Vec::new(),
        journal: None,
        server_id: None,
        saved_at_ms: 0,
    };
    g.bench_function("checkpoint_rewrite_1", |b| {
        b.iter(|| {
            n += 1;
            cp.outbox = vec![pending(n)];
            checkpoint::save_unsynced(black_box(&path), &cp).expect("save");
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = wire_benches, replica_benches, accept_benches
}
criterion_main!(benches);
