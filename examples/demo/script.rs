//! The demo's story, step by step: start, chat, `kill -9` a client and bring it back with
//! `--resume`, `kill -9` the server while the ring chats on and restart it, leave, compare.
//!
//! It only tells the story and checks what the story promises (bob's lines exactly once);
//! starting, typing and waiting are `stage.rs`'s, the final comparison `table.rs`'s.

use crate::process::files_text;
use crate::stage::{Demo, ALICE, BOB, CAROL, CLIENTS, DELAY, SERVER, SYNC_INTERVAL};
use std::path::Path;

impl Demo {
    pub fn run(&mut self) -> Result<(), String> {
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
        self.wait("the server to start", |d| {
            !d.nodes[SERVER].process.seen.is_empty()
        })?;
        for name in ["alice", "bob", "carol"] {
            self.start_client(name, false)?;
        }
        self.wait("alice, bob and carol to join the ring", |d| {
            CLIENTS.iter().all(|&c| d.nodes[c].has_joined())
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
        // A typed line is on disk once its client accepted it: in the outbox journal (a
        // checkpoint copies it later), or already delivered into the replica.
        self.wait("bob's lines to be on his disk", |d| {
            let files = ["outbox_", "checkpoint_", "replica_"];
            files_text(&d.nodes[BOB].dir, &files).contains("did this make it?")
        })?;
        let pid = self.nodes[BOB].pid();
        let delivered = self.nodes[ALICE].times_delivered("did this make it?") > 0;
        self.nodes[BOB].kill();
        let state = match delivered {
            true => "already delivered",
            false => "in his outbox, not delivered yet",
        };
        self.say(&format!(
            "   killed bob (pid {pid}); his last line is on his disk, {state}"
        ));
        self.say("   alice and carol go on; the server recovers the token without bob");
        let round = [(ALICE, "bob? you there?"), (CAROL, "he'll be back")];
        self.type_round(&round, &mut typed)?;
        self.wait("alice and carol to see bob leave", |d| {
            [ALICE, CAROL].iter().all(|&c| d.nodes[c].saw_leave("bob"))
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
}
