//! `cargo run --example demo [-- PORT] [--keep]`: the whole chat in one command.
//!
//! Starts a `server` and three scripted clients (alice, bob, carol) on 127.0.0.1, every one
//! with the original design's `--delay 100ms..1s`, on port 47500 (or PORT) with data dirs in a
//! temp dir. The clients type a conversation over time; bob is killed with `kill -9` and comes
//! back with `--resume`; the server is killed with `kill -9` while the ring keeps chatting, and
//! restarted. When everything has converged, the demo prints the four replicas side by side
//! with their SHA-256 and exits 0 if they are byte-identical and hold every typed line exactly
//! once, 1 otherwise (130 if interrupted).
//!
//! It runs the `server` and `client` binaries next to its own executable
//! (`target/<profile>/`), after `cargo build --bins` for that profile: `cargo run --example`
//! builds the library but not the binaries, and stale ones would show old code (cargo returns
//! at once when they are up to date). Every wait has a deadline, and the run
//! after any build is bounded by [`TOTAL_LIMIT`]; every child is killed when the demo ends,
//! however it ends. `--keep` keeps the temp dir (it is also kept on failure) so that you can look at the
//! files with `jq`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The port unless one is given on the command line.
const DEFAULT_PORT: u16 = 47500;

/// The simulated latency of every datagram of every node: the original design's.
const DELAY: &str = "100ms..1s";

/// The server reconciles this often (default 10 s), so its restart converges quickly.
const SYNC_INTERVAL: &str = "2s";

/// The demo (not counting a build of missing binaries) ends within this.
const TOTAL_LIMIT: Duration = Duration::from_secs(100);

/// The deadline of one step (within [`TOTAL_LIMIT`]).
const STEP_LIMIT: Duration = Duration::from_secs(40);

/// Pause between two scripted lines of one round, so the conversation unfolds over time.
const TYPING_PAUSE: Duration = Duration::from_millis(400);

/// Width of one replica's column in the side-by-side table.
const COLUMN: usize = 22;

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}\nusage: cargo run --example demo [-- PORT] [--keep]");
            return ExitCode::from(2);
        }
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Without the handler, Ctrl-C still ends the demo; its children get it too.
        let _ = signal_hook::flag::register(signal, Arc::clone(&interrupted));
    }
    let started = Instant::now();
    let bins = match find_binaries(&started) {
        Ok(bins) => bins,
        Err(e) => {
            eprintln!("demo failed: {e}");
            return ExitCode::from(1);
        }
    };
    let ready = Instant::now();
    let root = match tempfile::Builder::new()
        .prefix("mcast-chat-demo-")
        .tempdir()
    {
        Ok(dir) => dir.keep(),
        Err(e) => {
            eprintln!("demo failed: cannot create a temp dir: {e}");
            return ExitCode::from(1);
        }
    };
    let mut demo = Demo {
        bins,
        port: args.port,
        root: root.clone(),
        nodes: Vec::new(),
        started,
        deadline: ready + TOTAL_LIMIT,
        interrupted,
    };
    let result = demo.run();
    let code = match &result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            demo.say(&format!("FAILED: {e}"));
            if demo.interrupted.load(Ordering::Relaxed) {
                ExitCode::from(130)
            } else {
                demo.print_stderr_tails();
                ExitCode::from(1)
            }
        }
    };
    drop(demo); // kills whatever still runs
    if result.is_ok() && !args.keep {
        let _ = std::fs::remove_dir_all(&root);
    } else {
        println!("the data dirs are kept in {}", root.display());
    }
    code
}

/// The demo's own command line.
struct Args {
    port: u16,
    /// Keep the temp dir with the data dirs after a successful run.
    keep: bool,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut args = Args {
            port: DEFAULT_PORT,
            keep: false,
        };
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--keep" => args.keep = true,
                _ => {
                    args.port = arg
                        .parse()
                        .map_err(|_| format!("{arg:?} is neither a port nor --keep"))?
                }
            }
        }
        Ok(args)
    }
}

/// Paths of the two programs.
struct Binaries {
    server: PathBuf,
    client: PathBuf,
}

/// Finds `server` and `client` next to this example (`target/<profile>/examples/demo` ->
/// `target/<profile>/`), after `cargo build --bins` brought them up to date.
fn find_binaries(started: &Instant) -> Result<Binaries, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the demo's path: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{} is not in target/<profile>/examples", exe.display()))?;
    let bin = |name: &str| profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let bins = Binaries {
        server: bin("server"),
        client: bin("client"),
    };
    // Always: `cargo run --example` does not rebuild the binaries, and stale ones would
    // demonstrate old code. Cargo returns at once when they are up to date.
    build_binaries(
        profile_dir,
        "checking that server and client match the source",
        started,
    )?;
    for p in [&bins.server, &bins.client] {
        if !p.exists() {
            return Err(format!("{} is missing after the build", p.display()));
        }
    }
    Ok(bins)
}

/// `cargo build --bins` for the profile whose output dir is `profile_dir`, into the same
/// target dir.
fn build_binaries(profile_dir: &Path, why: &str, started: &Instant) -> Result<(), String> {
    let profile = profile_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["build", "--bins"]);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    if let Some(target_dir) = profile_dir.parent() {
        cmd.arg("--target-dir").arg(target_dir);
    }
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    println!(
        "[{:5.1}s] {why}: running `cargo build --bins` ({profile}) first",
        started.elapsed().as_secs_f64()
    );
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo to build the binaries: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo build --bins` failed ({status})"))
    }
}

/// One running (or killed) server or client.
struct Node {
    name: &'static str,
    dir: PathBuf,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// stdout lines, read by a background thread.
    lines: Receiver<String>,
    /// Every stdout line of the current process so far.
    seen: Vec<String>,
    /// Print the messages this node delivers, as they arrive (alice's view of the chat).
    echo: bool,
}

impl Node {
    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether this process printed a notice containing `needle` (plain or `--json`).
    fn has_notice(&self, needle: &str) -> bool {
        self.seen.iter().any(|l| {
            (l.starts_with("* ") || l.starts_with(r#"{"event":"notice""#)) && l.contains(needle)
        })
    }

    /// The records of this node's replica file, if there is one yet.
    fn replica(&self) -> Vec<u8> {
        replica_path(&self.dir)
            .and_then(|p| std::fs::read(p).ok())
            .unwrap_or_default()
    }

    /// How many records of this node's replica carry `text`.
    fn times_delivered(&self, text: &str) -> usize {
        String::from_utf8_lossy(&self.replica())
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["text"] == text)
            .count()
    }

    fn replica_len(&self) -> usize {
        self.replica().iter().filter(|&&b| b == b'\n').count()
    }

    /// `kill -9`, and reap it.
    fn kill(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The one `replica_*.jsonl` in `dir`.
fn replica_path(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir).ok()?.find_map(|e| {
        let path = e.ok()?.path();
        let name = path.file_name()?.to_string_lossy().into_owned();
        (name.starts_with("replica_") && name.ends_with(".jsonl")).then_some(path)
    })
}

/// The state of one demo run. Dropping it kills every child.
struct Demo {
    bins: Binaries,
    port: u16,
    root: PathBuf,
    nodes: Vec<Node>,
    started: Instant,
    /// The end of [`TOTAL_LIMIT`].
    deadline: Instant,
    /// Set by SIGINT or SIGTERM: stop waiting and clean up.
    interrupted: Arc<AtomicBool>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

/// Node indexes in [`Demo::nodes`].
const SERVER: usize = 0;
const ALICE: usize = 1;
const BOB: usize = 2;
const CAROL: usize = 3;
const CLIENTS: [usize; 3] = [ALICE, BOB, CAROL];

impl Demo {
    fn run(&mut self) -> Result<(), String> {
        let mut typed: Vec<String> = Vec::new();
        let bin_dir = self.bins.server.parent().unwrap_or(Path::new("."));
        self.say(&format!(
            "programs from {}, data dirs in {}",
            bin_dir.display(),
            self.root.display()
        ));
        self.say(&format!(
            "every node sends on port {} with --delay {DELAY} on each datagram",
            self.port
        ));

        self.say("1. start the server and three clients on 224.1.1.1, all via 127.0.0.1");
        self.start_server()?;
        self.wait("the server to start", |d| !d.nodes[SERVER].seen.is_empty())?;
        for name in ["alice", "bob", "carol"] {
            self.start_client(name, false)?;
        }
        self.wait("alice, bob and carol to join the ring", |d| {
            CLIENTS
                .iter()
                .all(|&c| d.nodes[c].has_notice("joined the ring"))
        })?;

        self.say("2. they chat (alice's screen below)");
        let round = [
            (ALICE, "hi all, alice here"),
            (BOB, "hello alice!"),
            (CAROL, "hey both, carol joining"),
            (ALICE, "shall we try to break it?"),
            (BOB, "sure, do your worst"),
            (CAROL, "kill one of us then"),
        ];
        self.type_round(&round, &mut typed)?;
        self.wait_delivered(&CLIENTS, typed.len())?;

        self.say("3. bob types two lines and is killed with kill -9 right after");
        for line in ["bob here, typing fast", "did this make it?"] {
            self.type_line(BOB, line, &mut typed)?;
        }
        self.wait("bob's lines to be in his outbox on disk", |d| {
            checkpoint_text(&d.nodes[BOB].dir).contains("did this make it?")
        })?;
        let pid = self.nodes[BOB].pid();
        self.nodes[BOB].kill();
        let pending = outbox_len(&self.nodes[BOB].dir);
        self.say(&format!(
            "   killed bob (pid {pid}); his checkpoint holds {pending} undelivered line(s)"
        ));
        self.say("   alice and carol go on; the server recovers the token without bob");
        let round = [(ALICE, "bob? you there?"), (CAROL, "he'll be back")];
        self.type_round(&round, &mut typed)?;
        self.wait("alice and carol to see bob leave", |d| {
            [ALICE, CAROL]
                .iter()
                .all(|&c| d.nodes[c].has_notice("bob left"))
        })?;

        self.say("4. bob comes back with --resume: same identity, same files, same outbox");
        self.start_client("bob", true)?;
        self.wait_delivered(&CLIENTS, typed.len())?;
        let bobs = ["bob here, typing fast", "did this make it?"];
        let counts: Vec<usize> = CLIENTS
            .iter()
            .flat_map(|&c| bobs.map(|line| self.nodes[c].times_delivered(line)))
            .collect();
        if counts.iter().any(|&n| n != 1) {
            return Err(format!("bob's lines delivered {counts:?} times"));
        }
        self.say("   bob's two lines from before the kill: delivered once on every client");

        self.say("5. the server is killed with kill -9; the ring keeps chatting without it");
        let pid = self.nodes[SERVER].pid();
        self.nodes[SERVER].kill();
        self.say(&format!("   killed the server (pid {pid})"));
        let round = [
            (ALICE, "the server is gone"),
            (BOB, "the token ring does not need it"),
            (CAROL, "only joins and recovery wait for it"),
        ];
        self.type_round(&round, &mut typed)?;
        self.wait_delivered(&CLIENTS, typed.len())?;

        self.say(&format!(
            "6. the server restarts from its data dir and catches up from the clients \
             (reconciliation every {SYNC_INTERVAL})"
        ));
        let archived = self.nodes[SERVER].replica_len();
        self.start_server()?;
        let total = typed.len();
        self.wait("the server's archive to catch up", |d| {
            d.nodes[SERVER].replica_len() >= total
        })?;
        self.say(&format!(
            "   the server's archive went from {archived} to {} messages",
            self.nodes[SERVER].replica_len()
        ));
        let round = [(CAROL, "welcome back, server"), (ALICE, "bye all")];
        self.type_round(&round, &mut typed)?;
        self.wait_delivered(&[SERVER, ALICE, BOB, CAROL], typed.len())?;

        self.say("7. the clients leave (EOF) and every replica is compared");
        self.leave_all()?;
        self.compare(&typed)
    }

    /// Prints one narration line with the elapsed time.
    fn say(&self, text: &str) {
        println!("[{:5.1}s] {text}", self.started.elapsed().as_secs_f64());
    }

    fn start_server(&mut self) -> Result<(), String> {
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

    fn start_client(&mut self, name: &'static str, resume: bool) -> Result<(), String> {
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
    fn put(&mut self, index: usize, node: Node) {
        if index < self.nodes.len() {
            self.nodes[index].kill();
            self.nodes[index] = node;
        } else {
            self.nodes.push(node);
        }
    }

    fn spawn(
        &self,
        name: &'static str,
        bin: &Path,
        dir: PathBuf,
        extra: &[String],
        echo: bool,
    ) -> Result<Node, String> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("stderr.log"))
            .map_err(|e| format!("cannot create {}/stderr.log: {e}", dir.display()))?;
        let mut child = Command::new(bin)
            .args(["--port", &self.port.to_string(), "--interface", "127.0.0.1"])
            .arg("--data-dir")
            .arg(&dir)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let (tx, rx) = channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Node {
            name,
            dir,
            stdin: child.stdin.take(),
            child: Some(child),
            lines: rx,
            seen: Vec::new(),
            echo,
        })
    }

    /// Moves new stdout lines into `seen`, echoing the messages of the echo node.
    fn pump(&mut self) {
        for node in &mut self.nodes {
            while let Ok(line) = node.lines.try_recv() {
                if node.echo {
                    if let Some(text) = chat_line(&line) {
                        println!("          {} | {text}", node.name);
                    }
                }
                node.seen.push(line);
            }
        }
    }

    /// Pumps output until `done` holds; fails at the step's or the whole demo's deadline, or
    /// when interrupted.
    fn wait(&mut self, what: &str, mut done: impl FnMut(&mut Demo) -> bool) -> Result<(), String> {
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
    fn wait_delivered(&mut self, nodes: &[usize], count: usize) -> Result<(), String> {
        let names: Vec<&str> = nodes.iter().map(|&i| self.nodes[i].name).collect();
        let what = format!("{} to deliver all {count} lines", names.join(", "));
        self.wait(&what, |d| {
            nodes.iter().all(|&i| d.nodes[i].replica_len() >= count)
        })?;
        self.say(&format!("   {what}: done"));
        Ok(())
    }

    /// Types `line` as client `index` and records it in `typed`.
    fn type_line(
        &mut self,
        index: usize,
        line: &str,
        typed: &mut Vec<String>,
    ) -> Result<(), String> {
        let node = &mut self.nodes[index];
        let stdin = node
            .stdin
            .as_mut()
            .ok_or_else(|| format!("{} has no stdin", node.name))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot type into {}: {e}", node.name))?;
        typed.push(line.to_string());
        Ok(())
    }

    /// Types the lines of a round, one every [`TYPING_PAUSE`].
    fn type_round(
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
    fn leave_all(&mut self) -> Result<(), String> {
        for &c in &CLIENTS {
            self.nodes[c].stdin = None;
        }
        let mut codes: Vec<Option<Option<i32>>> = vec![None; CLIENTS.len()];
        self.wait("the clients to leave", |d| {
            for (k, &c) in CLIENTS.iter().enumerate() {
                if let Some(Ok(Some(status))) = d.nodes[c].child.as_mut().map(Child::try_wait) {
                    codes[k] = Some(status.code());
                    d.nodes[c].child = None;
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

    /// Prints the replicas side by side with their sizes and SHA-256, and checks that they are
    /// identical and hold every typed line exactly once.
    fn compare(&mut self, typed: &[String]) -> Result<(), String> {
        let order = [SERVER, ALICE, BOB, CAROL];
        let replicas: Vec<Vec<u8>> = order.iter().map(|&i| self.nodes[i].replica()).collect();
        let rows: Vec<Vec<String>> = replicas.iter().map(|r| replica_rows(r)).collect();
        let header: Vec<String> = order
            .iter()
            .map(|&i| match replica_path(&self.nodes[i].dir) {
                Some(p) if short_file_name(&p) == self.nodes[i].name => {
                    self.nodes[i].name.to_string()
                }
                Some(p) => format!("{} {}", self.nodes[i].name, short_file_name(&p)),
                None => format!("{} (no replica)", self.nodes[i].name),
            })
            .collect();
        println!();
        print_row(&header);
        print_row(&vec!["-".repeat(COLUMN); order.len()]);
        let height = rows.iter().map(Vec::len).max().unwrap_or(0);
        for r in 0..height {
            let cells: Vec<String> = rows
                .iter()
                .map(|col| col.get(r).cloned().unwrap_or_default())
                .collect();
            print_row(&cells);
        }
        print_row(&vec!["-".repeat(COLUMN); order.len()]);
        let sizes: Vec<String> = replicas
            .iter()
            .zip(&rows)
            .map(|(r, rows)| format!("{} lines, {} bytes", rows.len(), r.len()))
            .collect();
        print_row(&sizes);
        let sums: Vec<String> = replicas
            .iter()
            .map(|r| format!("sha256 {}", &hex(&Sha256::digest(r))[..12]))
            .collect();
        print_row(&sums);
        println!();
        let identical = replicas.iter().all(|r| *r == replicas[0]);
        let check = exactly_once(&replicas[0], typed);
        self.say(&format!(
            "{} replicas byte-identical: {}; every one of the {} typed lines exactly once: {}",
            replicas.len(),
            yes_no(identical),
            typed.len(),
            match &check {
                Ok(()) => "yes".to_string(),
                Err(e) => format!("no ({e})"),
            }
        ));
        println!("full SHA-256: {}", hex(&Sha256::digest(&replicas[0])));
        match (identical, check) {
            (true, Ok(())) => Ok(()),
            (false, _) => Err("the replicas differ".into()),
            (_, Err(e)) => Err(e),
        }
    }

    /// On failure: the last lines each node logged.
    fn print_stderr_tails(&self) {
        for node in &self.nodes {
            let text = std::fs::read_to_string(node.dir.join("stderr.log")).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(5)..];
            if !tail.is_empty() {
                println!(
                    "--- {} stderr (last lines) ---\n{}",
                    node.name,
                    tail.join("\n")
                );
            }
        }
    }
}

fn fmt_code(code: Option<i32>) -> String {
    code.map_or("by signal".into(), |c| c.to_string())
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

/// Gapless seqs from 1, unique ids, and exactly the typed lines, each once.
fn exactly_once(replica: &[u8], typed: &[String]) -> Result<(), String> {
    let text = std::str::from_utf8(replica).map_err(|e| format!("replica is not UTF-8: {e}"))?;
    let mut ids = HashSet::new();
    let mut texts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        if v["seq"].as_u64() != Some(i as u64 + 1) {
            return Err(format!("line {} has seq {}", i + 1, v["seq"]));
        }
        if !ids.insert(v["id"].to_string()) {
            return Err(format!("id {} twice", v["id"]));
        }
        texts.push(v["text"].as_str().unwrap_or_default().to_string());
    }
    let mut got = texts.clone();
    let mut want = typed.to_vec();
    got.sort();
    want.sort();
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{} lines in the replica, {} typed",
            got.len(),
            want.len()
        ))
    }
}

/// One cell per record: `#seq name: text`, cut to the column width.
fn replica_rows(replica: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(replica)
        .lines()
        .map(
            |line| match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) => format!(
                    "#{} {}: {}",
                    v["seq"],
                    v["name"].as_str().unwrap_or("?"),
                    v["text"].as_str().unwrap_or("?")
                ),
                Err(_) => format!("(bad line) {line}"),
            },
        )
        .map(|cell| fit(&cell, COLUMN))
        .collect()
}

/// `[#seq HH:MM:SS] name: text` for a client's `--json` message event; `None` otherwise.
fn chat_line(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    (v["event"] == "message").then(|| {
        format!(
            "#{} {}: {}",
            v["seq"],
            v["name"].as_str().unwrap_or("?"),
            v["text"].as_str().unwrap_or("?")
        )
    })
}

fn print_row(cells: &[String]) {
    let padded: Vec<String> = cells
        .iter()
        .map(|c| format!("{:<COLUMN$}", fit(c, COLUMN)))
        .collect();
    println!("{}", padded.join(" | ").trim_end());
}

/// Cuts `s` to `width` characters, marking a cut with `~`.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(width - 1).collect();
        cut.push('~');
        cut
    }
}

/// `replica_e70ecd78-....jsonl` -> `e70ecd78`, `replica_server.jsonl` -> `server`: the
/// identity part of a replica's file name, short.
fn short_file_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = name
        .strip_prefix("replica_")
        .and_then(|r| r.strip_suffix(".jsonl"))
        .unwrap_or(&name);
    id.chars().take(8).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The text of the checkpoints in `dir` (to see a line in an outbox).
fn checkpoint_text(dir: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return String::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("checkpoint_"))
        })
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

/// How many lines the checkpoint in `dir` holds in its outbox.
fn outbox_len(dir: &Path) -> usize {
    serde_json::from_str::<serde_json::Value>(&checkpoint_text(dir))
        .ok()
        .and_then(|v| v["outbox"].as_array().map(Vec::len))
        .unwrap_or(0)
}
