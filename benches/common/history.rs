//! What the benchmarks know about a chat history, shared by the ring and the soak benchmark
//! (each includes this file with `#[path]`): writing a replica file of N records exactly as a
//! node writes it, reading the bench keys back out of a replica, and checking them against
//! what was typed: `seq` gapless from 1, every line exactly once (at most once where a line
//! may have been lost with a killed process), nothing else, each author's lines in order.
//!
//! Pure checks over bytes and keys: it starts no process and must not retry or excuse a
//! mismatch.
#![allow(dead_code)]

use crate::util::{key_client, parse_key};
use mcast_chat::protocol::types::{ChatRecord, NodeId, Seq};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use uuid::Uuid;

/// One history record as a server would have archived it: seq, a fresh v4 id from `rng`, one
/// author named `hist`, a line of chat-like length.
pub fn history_record(seq: u64, from: NodeId, rng: &mut SmallRng) -> ChatRecord {
    ChatRecord {
        seq: Seq(seq),
        id: uuid::Builder::from_random_bytes(rng.gen()).into_uuid(),
        from,
        name: "hist".into(),
        text: format!("h{seq} history line with some words in it to look like a chat"),
        sent_at_ms: 1_790_000_000_000 + seq,
    }
}

/// Writes records `1..=n` to `out` in the replica format, byte for byte what a node appends
/// (`serde_json` of the record, then a newline). Seeded, so two runs write the same bytes.
pub fn write_history(out: &mut impl Write, n: u64, seed: u64) -> io::Result<()> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let from = NodeId(Uuid::from_u128(rng.gen()));
    for seq in 1..=n {
        serde_json::to_writer(&mut *out, &history_record(seq, from, &mut rng))?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// A replica of `n` records in memory (see [`write_history`]).
pub fn history_file(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 220);
    // Writing to a Vec cannot fail, and a record always serializes.
    write_history(&mut out, n as u64, 1).expect("a history in memory");
    out
}

/// The keys of a replica's lines, checking that `seq` runs 1, 2, 3, ... without gaps.
pub fn replica_keys(bytes: &[u8]) -> Result<Vec<u64>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("replica not UTF-8: {e}"))?;
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let rec: ChatRecord =
            serde_json::from_str(line).map_err(|e| format!("replica line {}: {e}", i + 1))?;
        if rec.seq != Seq(i as u64 + 1) {
            return Err(format!("replica line {} holds #{}", i + 1, rec.seq));
        }
        keys.push(parse_key(&rec.text));
    }
    Ok(keys)
}

/// Every line of `submitted` (per author, in submit order) exactly once in `keys`, except
/// that a line for which `may_be_lost` holds may be missing; nothing else; each author's lines
/// in submit order.
pub fn check_keys(
    keys: &[u64],
    submitted: &[Vec<u64>],
    may_be_lost: impl Fn(u64) -> bool,
) -> Result<(), String> {
    // Each line's place among its author's, in the order they were submitted.
    let place: HashMap<u64, usize> = submitted
        .iter()
        .flat_map(|lines| lines.iter().enumerate().map(|(at, &k)| (k, at)))
        .collect();
    let mut seen: HashSet<u64> = HashSet::with_capacity(keys.len());
    let mut last: HashMap<usize, usize> = HashMap::new();
    for (i, &k) in keys.iter().enumerate() {
        let Some(&at) = place.get(&k) else {
            return Err(format!("#{}: a line that nobody submitted", i + 1));
        };
        if !seen.insert(k) {
            return Err(format!("#{}: a line delivered twice", i + 1));
        }
        let c = key_client(k);
        if last.get(&c).is_some_and(|&prev| prev > at) {
            return Err(format!("#{}: c{c}'s lines out of submit order", i + 1));
        }
        last.insert(c, at);
    }
    for (c, lines) in submitted.iter().enumerate() {
        let missing = lines
            .iter()
            .filter(|&&k| !seen.contains(&k) && !may_be_lost(k))
            .count();
        if missing > 0 {
            return Err(format!("{missing} lines of c{c} never delivered"));
        }
    }
    Ok(())
}
