//! What installing the programs relies on: shell completions and man pages generated from
//! the flags, `--interface list` and the error for an unknown interface name, and the
//! systemd unit in `contrib/` (checked by `systemd-analyze verify` where it exists).
//!
//! Runs the binaries with flags that print and exit: no datagram is sent.

use std::path::Path;
use std::process::{Command, Output};

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

/// stdout of a run that must succeed.
fn stdout_of(bin: &str, args: &[&str]) -> String {
    let out = run(bin, args);
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const CLIENT: &str = env!("CARGO_BIN_EXE_client");
const SERVER: &str = env!("CARGO_BIN_EXE_server");

#[test]
fn completions_for_every_shell_name_the_real_flags() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(CLIENT, &["--completions", shell]);
        for flag in ["interface", "key-file", "no-bell", "resume"] {
            assert!(script.contains(flag), "{shell}: no {flag}");
        }
        let script = stdout_of(SERVER, &["--completions", shell]);
        assert!(script.contains("token-timeout"), "{shell}: server");
        assert!(
            !script.contains("no-bell"),
            "{shell}: a client flag in the server's"
        );
    }
    let bash = stdout_of(CLIENT, &["--completions", "bash"]);
    assert!(bash.contains("complete -F _client"), "{bash}");
    // Values, not file names: the durability modes, and this host's interfaces.
    let offered = |flag: &str| {
        let at = bash.find(&format!("{flag})")).expect("the flag's case");
        bash[at..].lines().nth(1).unwrap_or_default().to_string()
    };
    assert!(
        offered("--durability").contains("\"page-cache fsync\""),
        "{bash}"
    );
    let interface = offered("--interface");
    assert!(interface.contains("list lo 127.0.0.1"), "{interface}");
    assert!(!interface.contains("compgen -f"), "{interface}");
}

#[test]
fn man_pages_are_roff_with_every_flag() {
    for (bin, name, flag) in [
        (CLIENT, "client", "join\\-timeout"),
        (SERVER, "server", "sync\\-interval"),
    ] {
        let page = stdout_of(bin, &["--man"]);
        assert!(page.contains(&format!(".TH {name} 1")), "{page}");
        for f in ["\\-\\-interface", "\\-\\-group", &format!("\\-\\-{flag}")] {
            assert!(page.contains(f), "{name}: no {f}");
        }
    }
}

#[test]
fn interface_list_names_the_loopback_and_an_unknown_name_exits_2_with_the_list() {
    let list = stdout_of(CLIENT, &["--interface", "list"]);
    assert!(
        list.lines().any(|l| l.trim_start().starts_with("lo ")),
        "{list}"
    );
    assert!(list.contains("127.0.0.1"), "{list}");
    let out = run(SERVER, &["--interface", "nosuch0", "--port", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nosuch0") && err.contains("127.0.0.1"),
        "{err}"
    );
}

#[test]
fn the_systemd_unit_keeps_its_data_in_var_lib_restarts_on_failure_and_stops_on_sigterm() {
    let unit_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/mcast-chat-server.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    for line in [
        "StateDirectory=mcast-chat",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "ExecStart=/opt/mcast-chat/bin/server --data-dir /var/lib/mcast-chat",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "no {line}");
    }
    if run_or_none("systemd-analyze", &["--version"]).is_none() {
        eprintln!("SKIPPED: systemd-analyze verify (systemd-analyze is not installed)");
        return;
    }
    // verify wants the ExecStart binary to exist: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("mcast-chat-server.service");
    std::fs::write(&copy, unit.replace("/opt/mcast-chat/bin/server", SERVER)).unwrap();
    let out = run_or_none("systemd-analyze", &["verify", &copy.display().to_string()])
        .expect("systemd-analyze ran a moment ago");
    let err = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on settings it ignores, so any warning fails the test.
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
}

fn run_or_none(program: &str, args: &[&str]) -> Option<Output> {
    Command::new(program).args(args).output().ok()
}
