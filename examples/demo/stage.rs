//! The demo's stage: the four nodes (server, alice, bob, carol), each a `server` or `client`
//! process started by the shared runner (`tests/common/process.rs`) on 127.0.0.1 with the
//! demo's `--delay`, and the moves the script makes with them: start, `kill -9`, type, wait
//! (with the step's and the whole demo's deadline, and for Ctrl-C), leave.
//!
//! It must not decide whether the demo passed (the script and `table.rs` do), and it must not
//! leave a process behind: dropping the [`Demo`] kills every node.

use crate::process::{joined, left, replica_file, Launch, Process};
use crate::table::{chat_line, fmt_code};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The simulated latency of every datagram of every node: the original design's.
pub const DELAY: &str = "100ms..1s";

/// The server reconciles this often (default 10 s), so its restart converges quickly.
pub const SYNC_INTERVAL: &str = "2s";

/// The demo (not counting a build of missing binaries) ends within this.
pub const TOTAL_LIMIT: Duration = Duration::from_secs(100);

/// The deadline of one step (within [`TOTAL_LIMIT`]).
const STEP_LIMIT: Duration = Duration::from_secs(40);

/// Pause between two scripted lines of one round, so the conversation unfolds over time.
const TYPING_PAUSE: Duration = Duration::from_millis(400);

/// Paths of the two programs.
pub struct Binaries {
    pub server: PathBuf,
    pub client: PathBuf,
}

/// One server or client: its current process (a killed one until it is started again).
pub struct Node {
    pub name: &'static str,
    pub dir: PathBuf,
    /// stdout lines of the current process collect in `process.seen`.
    pub process: Process,
    /// Print the messages this node delivers, as they arrive (alice's view of the chat).
    pub echo: bool,
}

impl Node {
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether this client said that it joined the ring.
    pub fn has_joined(&self) -> bool {
        joined(&self.process.seen)
    }

    /// Whether this client said that member `name` left.
    pub fn saw_leave(&self, name: &str) -> bool {
        left(&self.process.seen, name)
    }

    /// The records of this node's replica file, if there is one yet.
    pub fn replica(&self) -> Vec<u8> {
        replica_file(&self.dir)
            .ok()
            .and_then(|p| std::fs::read(p).ok())
            .unwrap_or_default()
    }

    /// How many records of this node's replica carry `text`.
    pub fn times_delivered(&self, text: &str) -> usize {
        String::from_utf8_lossy(&self.replica())
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["text"] == text)
            .count()
    }

    pub fn replica_len(&self) -> usize {
        self.replica().iter().filter(|&&b| b == b'\n').count()
    }

    /// `kill -9`, and reap it.
    pub fn kill(&mut self) {
        self.process.kill_9();
    }
}

/// The state of one demo run. Dropping it kills every child.
pub struct Demo {
    pub bins: Binaries,
    pub port: u16,
    pub root: PathBuf,
    pub nodes: Vec<Node>,
    pub started: Instant,
    /// The end of [`TOTAL_LIMIT`].
    pub deadline: Instant,
    /// Set by SIGINT or SIGTERM: stop waiting and clean up.
    pub interrupted: Arc<AtomicBool>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

/// Node indexes in [`Demo::nodes`].
pub const SERVER: usize = 0;
pub const ALICE: usize = 1;
pub const BOB: usize = 2;
pub const CAROL: usize = 3;
pub const CLIENTS: [usize; 3] = [ALICE, BOB, CAROL];

impl Demo {
    /// A demo of `bins` on `port` with its data dirs under `root`, its clock started at
    /// `started` and its deadline [`TOTAL_LIMIT`] from now; `interrupted` ends its waits.
    pub fn new(
        bins: Binaries,
        port: u16,
        root: PathBuf,
        started: Instant,
        interrupted: Arc<AtomicBool>,
    ) -> Demo {
        Demo {
            bins,
            port,
            root,
            nodes: Vec::new(),
            started,
            deadline: Instant::now() + TOTAL_LIMIT,
            interrupted,
        }
    }

    /// Prints one narration line with the elapsed time.
    pub fn say(&self, text: &str) {
        println!("[{:5.1}s] {text}", self.started.elapsed().as_secs_f64());
    }

    pub fn start_server(&mut self) -> Result<(), String> {
        let dir = self.root.join("server");
        let args = [
            "--sync-interval".to_string(),
            SYNC_INTERVAL.into(),
            "--delay".into(),
            DELAY.into(),
        ];
        let node = self.spawn("server", &self.bins.server.clone(), dir, &args, false)?;
        self.put(SERVER, node);
        Ok(())
    }

    pub fn start_client(&mut self, name: &'static str, resume: bool) -> Result<(), String> {
        let dir = self.root.join(name);
        let mut args = vec!["--json".to_string(), "--delay".into(), DELAY.into()];
        if resume {
            args.push("--resume".into());
        } else {
            args.extend(["--name".into(), name.into()]);
        }
        let echo = name == "alice";
        let node = self.spawn(name, &self.bins.client.clone(), dir, &args, echo)?;
        let index = match name {
            "alice" => ALICE,
            "bob" => BOB,
            _ => CAROL,
        };
        self.put(index, node);
        Ok(())
    }

    /// Puts `node` at `index`, replacing (and killing) whatever was there.
    pub fn put(&mut self, index: usize, node: Node) {
        if index < self.nodes.len() {
            self.nodes[index].kill();
            self.nodes[index] = node;
        } else {
            self.nodes.push(node);
        }
    }

    /// Starts `bin --port PORT --interface 127.0.0.1 --data-dir DIR EXTRA...`; its stderr is
    /// appended to `DIR/stderr.log` (a restart keeps the log of the run before).
    pub fn spawn(
        &self,
        name: &'static str,
        bin: &Path,
        dir: PathBuf,
        extra: &[String],
        echo: bool,
    ) -> Result<Node, String> {
        let process = Launch::new(bin, &dir)
            .args(["--port", &self.port.to_string(), "--interface", "127.0.0.1"])
            .args(extra)
            .stderr_to(dir.join("stderr.log"), true)
            .start(name)
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        Ok(Node {
            name,
            dir,
            process,
            echo,
        })
    }

    /// Moves new stdout lines into each node's `seen`, echoing the messages of the echo node.
    pub fn pump(&mut self) {
        for node in &mut self.nodes {
            let arrived = node.process.drain();
            if node.echo {
                let seen = &node.process.seen;
                for line in &seen[seen.len() - arrived..] {
                    if let Some(text) = chat_line(line) {
                        println!("          {} | {text}", node.name);
                    }
                }
            }
        }
    }
    /// Pumps output until `done` holds; fails at the step's or the whole demo's deadline, or
    /// when interrupted.
    pub fn wait(
        &mut self,
        what: &str,
        mut done: impl FnMut(&mut Demo) -> bool,
    ) -> Result<(), String> {
        let step_start = Instant::now();
        let deadline = self.deadline.min(step_start + STEP_LIMIT);
        loop {
            self.pump();
            if done(self) {
                return Ok(());
            }
            if self.interrupted.load(Ordering::Relaxed) {
                return Err(format!("interrupted while waiting for {what}"));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {:.1}s waiting for {what}",
                    step_start.elapsed().as_secs_f64()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until each of `nodes` has `count` records in its replica.
    pub fn wait_delivered(&mut self, nodes: &[usize], count: usize) -> Result<(), String> {
        let names: Vec<&str> = nodes.iter().map(|&i| self.nodes[i].name).collect();
        let what = format!("{} to deliver all {count} lines", names.join(", "));
        self.wait(&what, |d| {
            nodes.iter().all(|&i| d.nodes[i].replica_len() >= count)
        })?;
        self.say(&format!("   {what}: done"));
        Ok(())
    }

    /// Types `line` as client `index` and records it in `typed`.
    pub fn type_line(
        &mut self,
        index: usize,
        line: &str,
        typed: &mut Vec<String>,
    ) -> Result<(), String> {
        let node = &mut self.nodes[index];
        node.process
            .write_line(line)
            .map_err(|e| format!("cannot type into {}: {e}", node.name))?;
        typed.push(line.to_string());
        Ok(())
    }

    /// Types the lines of a round, one every [`TYPING_PAUSE`].
    pub fn type_round(
        &mut self,
        round: &[(usize, &str)],
        typed: &mut Vec<String>,
    ) -> Result<(), String> {
        for (i, (client, line)) in round.iter().enumerate() {
            if i > 0 {
                let until = Instant::now() + TYPING_PAUSE;
                self.wait("the next line of the script", |_| Instant::now() >= until)?;
            }
            self.type_line(*client, line, typed)?;
        }
        Ok(())
    }

    /// Closes every client's stdin and waits for each to exit 0.
    pub fn leave_all(&mut self) -> Result<(), String> {
        for &c in &CLIENTS {
            self.nodes[c].process.close_stdin();
        }
        let mut codes: Vec<Option<Option<i32>>> = vec![None; CLIENTS.len()];
        self.wait("the clients to leave", |d| {
            for (k, &c) in CLIENTS.iter().enumerate() {
                if codes[k].is_none() {
                    codes[k] = d.nodes[c].process.try_exit().map(|status| status.code());
                }
            }
            codes.iter().all(Option::is_some)
        })?;
        let codes: Vec<Option<i32>> = codes.into_iter().flatten().collect();
        let names: Vec<String> = CLIENTS
            .iter()
            .zip(&codes)
            .map(|(&c, code)| format!("{} exit {}", self.nodes[c].name, fmt_code(*code)))
            .collect();
        self.say(&format!("   {}", names.join(", ")));
        if codes.iter().any(|c| *c != Some(0)) {
            return Err("a client did not leave cleanly".into());
        }
        Ok(())
    }

    /// On failure: the last lines each node logged.
    pub fn print_stderr_tails(&self) {
        for node in &self.nodes {
            let tail = node.process.stderr_tail(5);
            if !tail.is_empty() {
                println!("--- {} stderr (last lines) ---\n{tail}", node.name);
            }
        }
    }
}
