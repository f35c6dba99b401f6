//! The interactive client in a real terminal (tmux): incoming messages print above the line
//! being typed, never through it; names are coloured; a message that mentions you is
//! highlighted and rings the bell; `/me` shows as an action; Ctrl-D leaves cleanly.

mod common;

use common::{client, count_messages, free_port, server, wait_ring};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux session, killed on drop.
struct Tmux(String);

impl Tmux {
    fn start(cmd: &str) -> Option<Tmux> {
        let name = format!("mcast-chat-{}-{}", std::process::id(), free_port());
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                "120",
                "-y",
                "30",
                cmd,
            ])
            .env_remove("NO_COLOR")
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmux(name))
    }

    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.0])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The screen; with `escapes`, with its colour codes.
    fn screen(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", &self.0];
        if escapes {
            args.push("-e");
        }
        let out = Command::new("tmux").args(&args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_screen(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen(false);
            if pred(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "no {what} on screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the terminal bell rang in the session's window (tmux's bell flag).
    fn bell_rang(&self) -> bool {
        let out = Command::new("tmux")
            .args([
                "display-message",
                "-p",
                "-t",
                &self.0,
                "#{window_bell_flag}",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.0])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

/// The last non-empty line of the screen: the prompt with what is being typed.
fn prompt_line(screen: &str) -> &str {
    screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// Whether tmux runs here; says why the test is skipped if not.
fn has_tmux() -> bool {
    let ok = Command::new("tmux").arg("-V").output().is_ok();
    if !ok {
        eprintln!("SKIPPED: tmux is not installed");
    }
    ok
}

/// A server, bob (piped) and alice in a tmux terminal, in one ring; `None` without tmux.
struct Chat {
    _srv: common::Proc,
    bob: Vec<common::Proc>,
    alice: Tmux,
}

fn alice_on_a_terminal_and_bob() -> Option<Chat> {
    if !has_tmux() {
        return None;
    }
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let srv = server(port, &root.join("server"), &[]);
    let mut bob = vec![client(port, &root.join("bob"), "bob", &[])];
    let alice_dir = root.join("alice");
    std::fs::create_dir_all(&alice_dir).unwrap();
    let cmd = format!(
        "{} --port {port} --name alice --data-dir {} 2>{}",
        env!("CARGO_BIN_EXE_client"),
        alice_dir.display(),
        alice_dir.join("stderr.log").display()
    );
    let alice = Tmux::start(&cmd).expect("tmux session");
    alice.wait_screen("the join", |s| {
        s.contains("2 members)") || s.contains("bob joined")
    });
    wait_ring(&mut bob, 2, Duration::from_secs(30));
    Some(Chat {
        _srv: srv,
        bob,
        alice,
    })
}

#[test]
fn a_message_that_mentions_me_is_highlighted_and_rings_the_bell_and_me_is_an_action() {
    let Some(mut chat) = alice_on_a_terminal_and_bob() else {
        return;
    };
    let (bob, alice) = (&mut chat.bob, &chat.alice);
    bob[0].send_line("nothing for her");
    alice.wait_screen("bob's first line", |s| s.contains("bob: nothing for her"));
    assert!(!alice.bell_rang(), "a line without her name rang the bell");
    assert!(
        !alice.screen(true).contains("\x1b[7m"),
        "highlighted without a mention"
    );

    bob[0].send_line("/me waves at Alice");
    alice.wait_screen("bob's action", |s| s.contains("* bob waves at Alice"));
    let screen = alice.screen(true);
    let line = screen
        .lines()
        .find(|l| l.contains("waves at Alice"))
        .unwrap_or_default();
    assert!(
        line.contains("\x1b[7m"),
        "the mention is not highlighted: {line:?}"
    );
    assert!(alice.bell_rang(), "the mention did not ring the bell");

    // Stored as typed, so any reader of the replica reads it.
    bob[0].wait_for("the action", Duration::from_secs(30), |l| {
        count_messages(l) >= 2
    });
    let replica = String::from_utf8(bob[0].replica()).unwrap();
    assert!(
        replica.contains(r#""text":"/me waves at Alice""#),
        "{replica}"
    );
}

#[test]
fn typing_is_never_interrupted_by_incoming_messages() {
    let Some(mut chat) = alice_on_a_terminal_and_bob() else {
        return;
    };
    let (bob, alice) = (&mut chat.bob, &chat.alice);

    // alice is in the middle of a line when bob's message arrives.
    alice.keys(&["-l", "half a thou"]);
    alice.wait_screen("alice's typing", |s| prompt_line(s).contains("half a thou"));
    bob[0].send_line("bob interrupts");
    let screen = alice.wait_screen("bob's message", |s| s.contains("bob: bob interrupts"));
    assert!(
        prompt_line(&screen).ends_with("> half a thou"),
        "the line being typed was disturbed:\n{screen}"
    );
    let above = screen
        .lines()
        .position(|l| l.contains("bob: bob interrupts"));
    let lines: Vec<&str> = screen.lines().collect();
    let prompt = lines.iter().rposition(|l| l.contains("> half a thou"));
    assert!(
        above < prompt,
        "the message prints above the prompt:\n{screen}"
    );

    // Names are coloured on a terminal.
    // (tmux re-renders the codes: look for a foreground colour and its reset around the name.)
    let colored = alice.screen(true);
    assert!(
        colored.contains("\x1b[3") && colored.contains("bob\x1b[0m"),
        "no colour on a terminal: {colored:?}"
    );

    // alice finishes her line; everyone gets it.
    alice.keys(&["-l", "ght"]);
    alice.keys(&["Enter"]);
    alice.wait_screen("alice's own line", |s| s.contains("alice: half a thought"));
    bob[0].wait_for("alice's line", Duration::from_secs(30), |l| {
        count_messages(l) >= 2
    });

    // Ctrl-D leaves cleanly: the client exits and its pane closes.
    alice.keys(&["C-d"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while alice.alive() {
        assert!(
            Instant::now() < deadline,
            "alice did not leave:\n{}",
            alice.screen(false)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    bob[0].wait_left("alice", Duration::from_secs(30));
}

/// A warning while alice types shows as a `* ` notice above her prompt, not as a log line
/// glued to it: a client with another key appears, and alice's client warns that it drops
/// datagrams it cannot authenticate (her stderr is the terminal, as a user runs it). The
/// warning from her start (her key file is readable by others) is a notice too.
#[test]
fn a_warning_shows_as_a_notice_above_the_prompt_and_never_tears_it() {
    if !has_tmux() {
        return;
    }
    let root = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let (key, other) = (root.join("key"), root.join("other"));
    std::fs::write(&key, b"the chat's shared secret, 32 bytes").unwrap();
    std::fs::write(&other, b"somebody else's secret, 32 bytes!").unwrap();
    // Readable by others: alice's client warns at start, before its prompt exists.
    for file in [&key, &other] {
        use std::os::unix::fs::PermissionsExt;
        let shared = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(file, shared).unwrap();
    }
    let key_arg = ["--key-file", key.to_str().unwrap()];
    let _srv = server(port, &root.join("server"), &key_arg);
    let alice_dir = root.join("alice");
    std::fs::create_dir_all(&alice_dir).unwrap();
    let cmd = format!(
        "env -u RUST_LOG {} --port {port} --name alice --data-dir {} --key-file {}",
        env!("CARGO_BIN_EXE_client"),
        alice_dir.display(),
        key.display()
    );
    let alice = Tmux::start(&cmd).expect("tmux session");
    alice.wait_screen("the join", |s| s.contains("joined the ring"));
    alice.keys(&["-l", "half a line"]);
    let other_arg = [
        "--key-file",
        other.to_str().unwrap(),
        "--join-timeout",
        "60s",
    ];
    let _mallory = client(port, &root.join("mallory"), "mallory", &other_arg);
    let screen = alice.wait_screen("the warning", |s| s.contains("fail authentication"));
    let warning = screen
        .lines()
        .find(|l| l.contains("fail authentication"))
        .unwrap_or_default();
    assert!(
        warning.starts_with("* "),
        "not a notice: {warning:?}\n{screen}"
    );
    let early = screen
        .lines()
        .find(|l| l.contains("can be read by other users"))
        .unwrap_or_default();
    assert!(
        early.starts_with("* key file"),
        "the start's warning: {early:?}\n{screen}"
    );
    assert!(
        !screen.contains("WARN"),
        "a log line on the screen:\n{screen}"
    );
    assert_eq!(prompt_line(&screen), "> half a line", "{screen}");
}
