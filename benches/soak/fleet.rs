//! The processes of a soak: one server and a few client slots on one port, each in its own
//! data dir under one temp dir, with the churn operations (start fresh or `--resume`, leave
//! at EOF, `kill -9`, restart the server) and what each identity was given to type.
//!
//! Every node runs with the simulated network's `--loss`. It must not judge the history
//! (`soak.rs` does, through the shared checks); every child is killed when the fleet drops.

use crate::node::{Proc, Seen};
use crate::process::files_text;
use crate::util::{key, key_client, parse_key};
use crate::NO_KEY;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Key phase of every soak line.
const PHASE_SOAK: u64 = 1;

/// The end of the server's notice that it admits joins.
const COORDINATING: &str = ": coordinating";

/// One client slot: at most one process at a time, for one identity at a time.
pub struct Slot {
    /// Author number of the current identity (the `client` part of its lines' keys).
    pub identity: usize,
    pub dir: PathBuf,
    pub proc: Option<Proc>,
    /// A process that got EOF and is leaving, with when it got it.
    pub leaving: Option<(Proc, Instant)>,
    /// Runs of this slot so far (names the series of samples).
    pub runs: usize,
    /// Whether its last run ended in `kill -9`: then it must come back with `--resume`, or
    /// the lines it had accepted would never go out (G2 holds for an author that returns).
    pub killed: bool,
}

/// The server and the slots.
pub struct Fleet {
    pub port: u16,
    pub loss: String,
    pub root: Option<TempDir>,
    pub root_path: PathBuf,
    pub server: Option<Proc>,
    pub server_dir: PathBuf,
    pub server_runs: usize,
    pub slots: Vec<Slot>,
    /// Every line handed to each identity, as keys, in submit order.
    pub submitted: Vec<Vec<u64>>,
    /// Lines typed into a process that was then killed before it showed them delivered or put
    /// them on disk: they may have died in its stdin pipe, so they are due at most once.
    pub may_be_lost: HashSet<u64>,
    /// How many of each identity's lines the first steady client has shown delivered.
    pub delivered: Vec<usize>,
    /// When each line was typed, by key.
    pub typed_at: HashMap<u64, Instant>,
    /// How many of that client's deliveries `delivered` has counted.
    witness_seen: usize,
    seeds: u64,
}

impl Fleet {
    pub fn new(port: u16, loss: f64, slots: usize) -> Result<Fleet, String> {
        let root = tempfile::Builder::new()
            .prefix("mcast-bench-soak-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let root_path = root.path().to_path_buf();
        let mut fleet = Fleet {
            port,
            loss: loss.to_string(),
            root: Some(root),
            server_dir: root_path.join("server"),
            root_path,
            server: None,
            server_runs: 0,
            slots: Vec::new(),
            submitted: Vec::new(),
            may_be_lost: HashSet::new(),
            delivered: Vec::new(),
            typed_at: HashMap::new(),
            witness_seen: 0,
            seeds: 0,
        };
        for _ in 0..slots {
            let identity = fleet.new_identity();
            fleet.slots.push(Slot {
                identity,
                dir: fleet.root_path.join(format!("c{identity}")),
                proc: None,
                leaving: None,
                runs: 0,
                killed: false,
            });
        }
        Ok(fleet)
    }

    fn new_identity(&mut self) -> usize {
        self.submitted.push(Vec::new());
        self.delivered.push(0);
        self.submitted.len() - 1
    }

    /// Counts the deliveries the first steady client (it runs from start to end, so it shows
    /// every line once) printed since the last call, per author.
    pub fn count_delivered(&mut self) {
        let Some(witness) = self.slots.first().and_then(|s| s.proc.as_ref()) else {
            return;
        };
        let seen = witness.watch.lock();
        for &(k, _) in seen.msgs.iter().skip(self.witness_seen) {
            if let Some(n) = self
                .delivered
                .get_mut(key_client(k))
                .filter(|_| k != NO_KEY)
            {
                *n += 1;
            }
        }
        self.witness_seen = seen.msgs.len();
    }

    /// Lines of `identity` typed and not yet shown delivered (as of [`Fleet::count_delivered`]).
    pub fn waiting(&self, identity: usize) -> usize {
        self.submitted[identity]
            .len()
            .saturating_sub(self.delivered[identity])
    }

    fn seed(&mut self) -> String {
        self.seeds += 1;
        (0x50a4_0000 + self.seeds).to_string()
    }

    /// Starts the server in its data dir (the same one across restarts).
    pub fn start_server(&mut self) {
        let seed = self.seed();
        let args = [
            "--loss",
            &self.loss,
            "--seed",
            &seed,
            "--token-timeout",
            "1s",
            "--sync-interval",
            "2s",
        ];
        self.server = Some(Proc::server(self.port, &self.server_dir, &args));
        self.server_runs += 1;
    }

    /// Waits until the server admits joins.
    pub fn wait_coordinating(&self, timeout: Duration) -> Result<(), String> {
        let server = self.server.as_ref().ok_or("no server running")?;
        let coordinating = |s: &Seen| s.notices.iter().any(|(_, t)| t.contains(COORDINATING));
        if server
            .watch
            .wait_for(Instant::now() + timeout, coordinating)
        {
            Ok(())
        } else {
            Err(format!(
                "the server did not coordinate within {timeout:?}: {}",
                server.stderr_tail()
            ))
        }
    }

    /// Stops the server: SIGTERM (a clean stop, waited for) or `kill -9`.
    pub fn stop_server(&mut self, clean: bool) -> Result<(), String> {
        let Some(mut server) = self.server.take() else {
            return Ok(());
        };
        if clean {
            let pid = server.pid().to_string();
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while server.process.try_exit().is_none() {
                if Instant::now() >= deadline {
                    server.kill();
                    return Err("the server did not stop within 10 s of SIGTERM".into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        } else {
            server.kill();
        }
        Ok(())
    }

    /// Starts slot `s`'s client: `--resume` of its identity, or a new identity in a new dir.
    pub fn start_client(&mut self, s: usize, fresh: bool) {
        if fresh && self.slots[s].runs > 0 {
            let identity = self.new_identity();
            let slot = &mut self.slots[s];
            // The old identity's files were checked by the caller; its lines are all out.
            let _ = std::fs::remove_dir_all(&slot.dir);
            slot.identity = identity;
            slot.dir = self.root_path.join(format!("c{identity}"));
        }
        let seed = self.seed();
        let slot = &mut self.slots[s];
        let mut extra = vec![
            "--loss".to_string(),
            self.loss.clone(),
            "--seed".into(),
            seed,
            // Joins wait for a restarting server; the default 10 s could run out.
            "--join-timeout".into(),
            "60s".into(),
        ];
        if slot.runs > 0 && slot.dir.exists() {
            extra.push("--resume".into());
        }
        let name = format!("c{}", slot.identity);
        slot.proc = Some(Proc::client_with(self.port, &slot.dir, &name, &extra));
        slot.runs += 1;
    }

    /// `kill -9` of slot `s`'s client. Its lines that it had neither shown delivered nor
    /// accepted (on disk: its outbox journal or its checkpoint's outbox) may be lost; every
    /// accepted one is due exactly once when the identity comes back (G2).
    pub fn kill_client(&mut self, s: usize) {
        let Some(mut p) = self.slots[s].proc.take() else {
            return;
        };
        p.kill();
        self.slots[s].killed = true;
        let shown: HashSet<u64> = p.watch.lock().msgs.iter().map(|m| m.0).collect();
        let on_disk = files_text(&self.slots[s].dir, &["outbox_", "checkpoint_"]);
        let accepted: HashSet<u64> = on_disk.split('"').map(parse_key).collect();
        let identity = self.slots[s].identity;
        self.may_be_lost.extend(
            self.submitted[identity]
                .iter()
                .filter(|k| !shown.contains(k) && !accepted.contains(k)),
        );
    }

    /// Closes slot `s`'s stdin: the client leaves the ring and exits on its own.
    pub fn leave_client(&mut self, s: usize) {
        if let Some(mut p) = self.slots[s].proc.take() {
            self.slots[s].killed = false;
            p.process.close_stdin();
            self.slots[s].leaving = Some((p, Instant::now()));
        }
    }

    /// Reaps leaving clients; one still running `timeout` after EOF is killed and reported.
    pub fn reap(&mut self, timeout: Duration) -> Vec<String> {
        let mut late = Vec::new();
        for s in 0..self.slots.len() {
            let Some((p, since)) = &mut self.slots[s].leaving else {
                continue;
            };
            if let Some(status) = p.process.try_exit() {
                if !status.success() {
                    late.push(format!("{} exited with {status} after EOF", p.name));
                }
                self.slots[s].leaving = None;
            } else if since.elapsed() > timeout {
                late.push(format!("{} still running {timeout:?} after EOF", p.name));
                let (p, _) = self.slots[s].leaving.take().expect("checked above");
                self.slots[s].proc = Some(p);
                self.kill_client(s);
            }
        }
        late
    }

    /// Types the next line of slot `s`'s identity.
    pub fn type_line(&mut self, s: usize, text_pad: &str) -> Result<(), String> {
        let identity = self.slots[s].identity;
        let n = self.submitted[identity].len();
        let k = key(PHASE_SOAK, identity, n);
        let Some(p) = self.slots[s].proc.as_mut() else {
            return Ok(());
        };
        p.send(&format!("b{PHASE_SOAK}-{identity}-{n} {text_pad}"))?;
        self.submitted[identity].push(k);
        self.typed_at.insert(k, Instant::now());
        Ok(())
    }

    /// Every process running now, with the name of its series, its data dir and, for a
    /// client, its identity.
    pub fn running(&self) -> Vec<(String, u32, PathBuf, Option<usize>)> {
        let mut out = Vec::new();
        if let Some(server) = &self.server {
            let series = format!("server run {}", self.server_runs);
            out.push((series, server.pid(), self.server_dir.clone(), None));
        }
        for slot in &self.slots {
            if let Some(p) = &slot.proc {
                let series = format!("{} run {}", p.name, slot.runs);
                out.push((series, p.pid(), slot.dir.clone(), Some(slot.identity)));
            }
        }
        out
    }

    /// Keeps the temp dir (a check failed) and returns its path.
    pub fn keep_files(&mut self) -> PathBuf {
        if let Some(root) = self.root.take() {
            let _ = root.keep();
        }
        self.root_path.clone()
    }
}
