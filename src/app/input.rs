//! The client's stdin: each line is a message or a slash command. Messages are accepted in
//! batches (one outbox journal append per batch), and stdin is not read while the outbox is
//! full ([`MAX_OUTBOX_LINES`]). At EOF or `/quit` the client leaves the ring.
//!
//! A batch whose journal append fails (a full, read-only or failing disk) is not accepted: the
//! prompt says so (`* line not accepted: no space left on device writing <file>`), the core
//! never sees it, and the client reads on.
//!
//! What this module must not do: print delivered messages (the runtime's sink does), or send
//! anything itself: lines go to disk first, then to the core, which sends them when it holds
//! the token.

use super::commands::{self, Command};
use super::error::ClientError;
use crate::protocol::member::MemberCore;
use crate::protocol::types::Pending;
use crate::protocol::wire;
use crate::runtime::{self, lock, Node};
use crate::ui::terminal::LineSource;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Flow control: past this many lines waiting in the outbox, stdin is not read until the ring
/// has sent some, so a paste or a pipe of a huge file stays bounded in memory and on disk
/// (the checkpoint holds the outbox).
pub const MAX_OUTBOX_LINES: usize = 10_000;

/// Most lines in one batch: bounds one journal append and the time the core's lock is held.
const MAX_BATCH_LINES: usize = 1024;

/// Starts the thread that reads `source` until EOF or `/quit`, then leaves the ring.
pub fn spawn_input(
    node: &Arc<Node<MemberCore>>,
    name: String,
    source: LineSource,
) -> Result<(), ClientError> {
    let node = Arc::clone(node);
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || input_loop(&node, &name, source))
        .map(|_| ())
        .map_err(|source| ClientError::Spawn {
            thread: "the input thread",
            source,
        })
}

/// Reads stdin: lines are accepted in batches (one journal append per batch), commands run
/// here.
fn input_loop(node: &Node<MemberCore>, name: &str, mut input: LineSource) {
    let mut batch: Vec<Pending> = Vec::new();
    loop {
        let line = match input.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                lock(&node.sink).notice(&format!("cannot read input: {e}"));
                break;
            }
        };
        if let Some(command) = Command::parse(&line) {
            if commands::execute(node, &command).is_break() {
                break;
            }
        } else if let Err(e) = wire::check_line(name, &line) {
            lock(&node.sink).notice(&e.to_string());
        } else {
            batch.push(Pending {
                id: Uuid::new_v4(),
                text: line,
                sent_at_ms: runtime::wall_ms(),
            });
        }
        // More lines already buffered (a paste, a pipe): take them into the same batch.
        if !batch.is_empty() && (!input.has_buffered_line() || batch.len() >= MAX_BATCH_LINES) {
            accept(node, std::mem::take(&mut batch));
        }
    }
    accept(node, batch);
    node.with_core(|core, now| core.leave(now));
}

/// Puts lines on disk (the outbox journal), then into the ring.
fn accept(node: &Node<MemberCore>, lines: Vec<Pending>) {
    if lines.is_empty() {
        return;
    }
    wait_for_outbox_room(node);
    let n = lines.len();
    if let Err(e) = node.accept_lines(lines, |core, now, lines| core.submit(now, lines)) {
        log::warn!("{n} typed lines not accepted: {e}");
        let lines = match n {
            1 => "line".to_string(),
            n => format!("{n} lines"),
        };
        lock(&node.sink).notice(&format!("{lines} not accepted: {}", e.cause_and_file()));
    }
}

/// Waits while the outbox is full (see [`MAX_OUTBOX_LINES`]), saying so once.
fn wait_for_outbox_room(node: &Node<MemberCore>) {
    let mut said = false;
    while !node.is_stopped() && lock(&node.core).outbox_len() >= MAX_OUTBOX_LINES {
        if !said {
            said = true;
            lock(&node.sink).notice(&format!(
                "{MAX_OUTBOX_LINES} lines are waiting to be sent; reading more input once the \
                 ring has sent some"
            ));
        }
        // The outbox drains at ring speed (thousands of lines a second): polling is enough.
        std::thread::sleep(Duration::from_millis(10));
    }
}
