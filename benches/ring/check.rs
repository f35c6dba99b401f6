//! The checks that end every ring session (the history checks themselves are shared with
//! the soak benchmark, in `benches/common/history.rs`) and fail the run (exit 1) on a fast
//! wrong answer: the replicas of all live clients and servers byte-identical (a killed
//! server's archive a prefix of it), `seq` gapless from 1, every submitted line exactly once
//! (at most once for a killed client) and each author's lines in submit order, and every
//! client's stdout stream equal to its replica.
//!
//! It only reads (replicas, what the readers saw); it must not retry, wait out or excuse a
//! mismatch, except for giving the servers' archives a moment to catch the tail.

use crate::history::{check_keys, replica_keys};
use crate::session::Ring;
use crate::util::{key_client, sha256_hex};
use serde::Serialize;
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
        // The servers archive as they go; give them a moment to catch the tail.
        let deadline = Instant::now() + Duration::from_secs(15);
        for s in std::iter::once(&self.server).chain(&self.standbys) {
            while s.replica()? != first {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "the archive of {} differs from the clients' replicas",
                        s.name
                    ));
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        for s in &self.servers_down {
            if !first.starts_with(&s.replica()?) {
                return Err(format!(
                    "the archive of killed {} is not a prefix of the history",
                    s.name
                ));
            }
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
        check_keys(&keys, &self.submitted, |k| {
            self.killed.contains(&key_client(k))
        })?;
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
            replicas: live.len() + 1 + self.standbys.len(),
            sha256: sha256_hex(&first),
        })
    }
}
