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
//! at once when they are up to date). Every wait has a deadline, and the run after any build
//! is bounded by [`stage::TOTAL_LIMIT`]; every child is killed when the demo ends, however it ends.
//! `--keep` keeps the temp dir (it is also kept on failure) so that you can look at the files
//! with `jq`.
//!
//! # Layout
//!
//! - `main.rs`: the command line, finding (and building) the binaries, the exit code;
//! - `script.rs`: the story, step by step;
//! - `stage.rs`: the running nodes (started by the shared runner,
//!   `tests/common/process.rs`), typing, waiting with deadlines, leaving;
//! - `table.rs`: the replicas side by side and the final check.

#[path = "../../tests/common/process.rs"]
mod process;

mod script;
mod stage;
mod table;

use stage::{Binaries, Demo};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The port unless one is given on the command line.
const DEFAULT_PORT: u16 = 47500;

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
    let mut demo = Demo::new(bins, args.port, root.clone(), started, interrupted);
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
