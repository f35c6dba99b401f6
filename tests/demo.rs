//! The README's demo (`cargo run --example demo`) as a test, so that a change that breaks it
//! fails CI: the example's own script, stage and table (included by path), run on the `server`
//! and `client` that cargo built for the tests, on a port of its own, with its data dirs in a
//! temp dir. It fails with the demo's own message and the nodes' last stderr lines.

mod common;

#[path = "../examples/demo/script.rs"]
mod script;
#[path = "../examples/demo/stage.rs"]
mod stage;
#[path = "../examples/demo/table.rs"]
mod table;

use common::process;
use stage::{Binaries, Demo};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

#[test]
fn the_demo_survives_kill_9_of_a_client_and_of_the_server_with_identical_replicas() {
    let bins = Binaries {
        server: env!("CARGO_BIN_EXE_server").into(),
        client: env!("CARGO_BIN_EXE_client").into(),
    };
    let root = tempfile::tempdir().unwrap().keep();
    let interrupted = Arc::new(AtomicBool::new(false));
    let mut demo = Demo::new(bins, common::free_port(), root, Instant::now(), interrupted);
    if let Err(e) = demo.run() {
        demo.print_stderr_tails();
        panic!("the demo failed: {e}");
    }
}
