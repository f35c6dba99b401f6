//! The checks that end every ring session and fail the run (exit 1) on a fast wrong answer:
//! the replicas of all live clients and the server byte-identical, `seq` gapless from 1,
//! every submitted line exactly once (at most once for a killed client) and each author's
//! lines in submit order, and every client's stdout stream equal to its replica.
//!
//! It only reads (replicas, what the readers saw); it must not retry, wait out or excuse a
//! mismatch, except for giving the server's archive a moment to catch the tail.

use crate::session::Ring;
use crate::util::{key_client, parse_key, sha256_hex};
use mcast_chat::protocol::types::{ChatRecord, Seq};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::thread;
use std::time::{Duration, Instant};

/// The check of a ring's history after a session.
#[derive(Clone, Debug, Serialize)]
pub struct Verified {
    pub messages: usize,
    pub replicas: usize,
    pub sha256: String,
}

impl Ring {
    /// Checks the history (see the module docs). Fails with the first problem found.
    pub fn verify(&mut self) -> Result<Verified, String> {
        let result = self.check_history();
        result.map_err(|e| format!("{e} (files kept in {})", self.keep_files().display()))
    }

    pub fn check_history(&self) -> Result<Verified, String> {
        let live: Vec<usize> = self.live().collect();
        let first = self.clients[live[0]].replica()?;
        for &c in &live {
            let p = &self.clients[c];
            if let Some(e) = &p.watch.lock().error {
                return Err(format!("{}: stdout out of order: {e}", p.name));
            }
            if p.replica()? != first {
                return Err(format!(
                    "the replica of {} differs from {}'s",
                    p.name, self.clients[live[0]].name
                ));
            }
        }
        // The server archives as it goes; give it a moment to catch the tail.
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.server.replica()? != first {
            if Instant::now() >= deadline {
                return Err("the server's archive differs from the clients' replicas".into());
            }
            thread::sleep(Duration::from_millis(100));
        }
        for &c in &self.killed {
            let p = &self.clients[c];
            if !first.starts_with(&p.replica()?) {
                return Err(format!(
                    "the replica of killed {} is not a prefix of the history",
                    p.name
                ));
            }
        }
        let keys = replica_keys(&first)?;
        self.check_keys(&keys)?;
        for &c in &live {
            let seen = self.clients[c].watch.lock();
            if seen.msgs.len() != keys.len()
                || seen.msgs.iter().map(|m| m.0).ne(keys.iter().copied())
            {
                return Err(format!(
                    "{} printed a different history than its replica holds",
                    self.clients[c].name
                ));
            }
        }
        Ok(Verified {
            messages: keys.len(),
            replicas: live.len() + 1,
            sha256: sha256_hex(&first),
        })
    }

    /// Every submitted line exactly once (at most once for killed clients), nothing else,
    /// each author's lines in submit order.
    pub fn check_keys(&self, keys: &[u64]) -> Result<(), String> {
        let mut expected: HashSet<u64> = HashSet::new();
        for lines in &self.submitted {
            expected.extend(lines.iter().copied());
        }
        let mut seen: HashSet<u64> = HashSet::with_capacity(keys.len());
        let mut last: HashMap<usize, u64> = HashMap::new();
        for (i, &k) in keys.iter().enumerate() {
            if !expected.contains(&k) {
                return Err(format!("#{}: a line that nobody submitted", i + 1));
            }
            if !seen.insert(k) {
                return Err(format!("#{}: a line delivered twice", i + 1));
            }
            let c = key_client(k);
            if last.get(&c).is_some_and(|&prev| prev > k) {
                return Err(format!("#{}: c{c}'s lines out of submit order", i + 1));
            }
            last.insert(c, k);
        }
        for (c, lines) in self.submitted.iter().enumerate() {
            if self.killed.contains(&c) {
                continue;
            }
            let missing = lines.iter().filter(|k| !seen.contains(k)).count();
            if missing > 0 {
                return Err(format!("{missing} lines of c{c} never delivered"));
            }
        }
        Ok(())
    }
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
