//! The join storm that starts every ring session: all N clients started at once (no waiting
//! between starts), each typing its warm-up line as soon as it says it joined; then the time
//! from the first start until every client joined, and until every client delivered the
//! first line of every client (the N warm-up lines, the only lines so far), and the views the
//! server installed meanwhile (from its `view E: K members` notices).
//!
//! It only starts clients, types and waits (every wait has a deadline); it must not judge
//! the history (the session's check does).

use crate::node::Proc;
use crate::session::Ring;
use crate::util::{key, secs_between};
use crate::PHASE_WARMUP;
use serde::Serialize;
use std::thread;
use std::time::{Duration, Instant};

/// What the join storm took.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Storm {
    pub clients: usize,
    /// From the first client's start until the last one was started.
    pub spawn_s: f64,
    /// From the first start until every client said it joined.
    pub all_joined_s: f64,
    /// From the first start until every client delivered the first line of every client.
    pub all_lines_s: f64,
    /// Views the server installed from the first start until then, with their member counts.
    pub views: usize,
    pub view_members: Vec<usize>,
}

impl Ring {
    /// Starts `n` clients on `port` at once (each in the ring's mode, with its `client_extra`);
    /// each types its warm-up line once it has joined.
    pub fn join_storm(&mut self, port: u16, n: usize) -> Result<Storm, String> {
        let first = Instant::now();
        let mut typed = vec![false; n];
        for c in 0..n {
            let name = format!("c{c}");
            let dir = self.root_path.join(&name);
            let client = Proc::client_on(self.net, port, &dir, &name, &self.client_extra);
            self.clients.push(client);
            self.type_when_joined(&mut typed)?;
        }
        let spawned = Instant::now();
        let deadline = first + Duration::from_secs(20 + n as u64 / 2);
        while typed.contains(&false) {
            if Instant::now() >= deadline {
                return Err(self.not_joined(&typed, deadline - first));
            }
            thread::sleep(Duration::from_millis(2));
            self.type_when_joined(&mut typed)?;
        }
        let all_joined = self
            .clients
            .iter()
            .filter_map(|c| c.watch.lock().joined_at)
            .max()
            .unwrap_or(first);
        let timeout = Duration::from_secs(30 + n as u64 / 4);
        let done = self.wait_clients(n, timeout, "the warm-up lines")?;
        let all_lines = done.into_iter().max().unwrap_or(first);
        let view_members: Vec<usize> = self
            .server
            .watch
            .lock()
            .notices
            .iter()
            .filter(|(at, _)| *at >= first && *at <= all_lines)
            .filter_map(|(_, text)| view_members(text))
            .collect();
        Ok(Storm {
            clients: n,
            spawn_s: secs_between(first, spawned),
            all_joined_s: secs_between(first, all_joined),
            all_lines_s: secs_between(first, all_lines),
            views: view_members.len(),
            view_members,
        })
    }

    /// Types the warm-up line of every client that has joined and not typed yet; fails if a
    /// client exited before it joined.
    fn type_when_joined(&mut self, typed: &mut [bool]) -> Result<(), String> {
        for (c, typed) in typed.iter_mut().enumerate().take(self.clients.len()) {
            if *typed {
                continue;
            }
            let (joined, eof) = {
                let seen = self.clients[c].watch.lock();
                (seen.joined_at.is_some(), seen.eof)
            };
            if joined {
                self.submit(c, key(PHASE_WARMUP, c, 0), false)?;
                *typed = true;
            } else if eof {
                let p = &self.clients[c];
                return Err(format!(
                    "{} exited before it joined: {}",
                    p.name,
                    p.stderr_tail()
                ));
            }
        }
        Ok(())
    }

    fn not_joined(&self, typed: &[bool], waited: Duration) -> String {
        let missing: Vec<&str> = (0..typed.len())
            .filter(|&c| !typed[c])
            .map(|c| self.clients[c].name.as_str())
            .collect();
        let tail = missing
            .first()
            .and_then(|name| self.clients.iter().find(|p| p.name == *name))
            .map_or(String::new(), Proc::stderr_tail);
        format!(
            "{} of {} clients did not join within {waited:?} ({}; the first one's stderr: {tail})",
            missing.len(),
            typed.len(),
            missing.join(", ")
        )
    }
}

/// The member count of a server notice `view E: K members, cut at #C`, if it is one.
pub fn view_members(text: &str) -> Option<usize> {
    let rest = text.strip_prefix("view ")?;
    let (_, after) = rest.split_once(": ")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
