//! Unit tests of the command line: defaults, limits, every flag carried into the config, the
//! help's headings.
use super::*;
use clap::error::ErrorKind;
use clap::CommandFactory;
use std::net::Ipv4Addr;

/// Parses `args` and resolves `--interface` on a host that has only a loopback.
fn parse<P: Program>(bin: &str, args: &[&str]) -> Result<P::Config, clap::Error> {
    let argv = std::iter::once(bin).chain(args.iter().copied());
    let cli = P::try_parse_from(argv)?;
    let iface = |name: &str, index, addr: &str| crate::net::iface::IfaceAddr {
        name: name.into(),
        index,
        addr: addr.parse().expect("test address"),
    };
    let host = [iface("lo", 1, "127.0.0.1"), iface("eth0", 2, "fe80::1")];
    let Ok(found) = crate::app::setup::locate(cli.common(), &host) else {
        panic!("the test's interface and peers resolve");
    };
    Ok(cli.into_config(found))
}

fn server(args: &[&str]) -> Result<ServerConfig, clap::Error> {
    parse::<ServerCli>("server", args)
}

fn client(args: &[&str]) -> Result<ClientConfig, clap::Error> {
    parse::<ClientCli>("client", args)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Each flag's heading in `--help`, read from the rendered text (a heading is a line
/// that ends with `:` and does not start with a space).
fn headings(mut cmd: clap::Command) -> Vec<(String, String)> {
    let help = cmd.render_long_help().to_string();
    let mut heading = String::new();
    let mut out = Vec::new();
    for line in help.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            heading = line.trim_end_matches(':').to_string();
        } else if let Some(flag) = line.split_whitespace().find(|w| w.starts_with("--")) {
            out.push((flag.trim_end_matches(',').to_string(), heading.clone()));
        }
    }
    out
}

#[test]
fn help_files_every_flag_under_what_a_user_does_with_it() {
    let common = [
        ("--group", NETWORK),
        ("--port", NETWORK),
        ("--interface", NETWORK),
        ("--peer", NETWORK),
        ("--ttl", NETWORK),
        ("--data-dir", STORAGE),
        ("--checkpoint-interval", STORAGE),
        ("--durability", STORAGE),
        ("--key-file", SECURITY),
        ("--delay", TESTING),
        ("--loss", TESTING),
        ("--dup", TESTING),
        ("--seed", TESTING),
        ("--completions", INSTALLATION),
        ("--man", INSTALLATION),
        ("--help", "Options"),
        ("--version", "Options"),
    ];
    let client = [
        ("--name", CHAT),
        ("--resume", CHAT),
        ("--no-bell", CHAT),
        ("--json", CHAT),
        ("--join-timeout", CHAT),
        ("--listen-port", NETWORK),
    ];
    let server = [("--token-timeout", SERVER), ("--sync-interval", SERVER)];
    for (cmd, own) in [
        (ClientCli::command(), &client[..]),
        (ServerCli::command(), &server[..]),
    ] {
        let name = cmd.get_name().to_string();
        let mut want: Vec<(String, String)> = own
            .iter()
            .chain(&common)
            .map(|(f, h)| (f.to_string(), h.to_string()))
            .collect();
        let mut got = headings(cmd);
        // Most-used first: the program's own flags come right after the options.
        let first = got
            .iter()
            .find(|(f, _)| !f.starts_with("--h") && !f.starts_with("--v"));
        assert_eq!(first.map(|f| f.0.as_str()), Some(own[0].0), "{name}");
        want.sort();
        got.sort();
        assert_eq!(got, want, "{name} --help");
    }
}

#[test]
fn clap_definitions_are_consistent() {
    ServerCli::command().debug_assert();
    ClientCli::command().debug_assert();
}

#[test]
fn server_defaults() {
    let cfg = server(&[]).expect("defaults parse");
    let net = &cfg.common.net;
    assert_eq!(net.group, Ipv4Addr::new(224, 1, 1, 1));
    assert_eq!(net.port, 5007);
    assert_eq!(net.interface, Local::v4(Ipv4Addr::LOCALHOST));
    assert_eq!(net.ttl, 1);
    assert!(net.sim.is_off());
    assert_eq!(net.sim.seed, None);
    assert_eq!(cfg.common.data_dir, PathBuf::from("."));
    assert_eq!(cfg.common.checkpoint_interval, secs(5));
    assert_eq!(cfg.common.key_file, None);
    assert_eq!(cfg.common.durability, Durability::PageCache);
    assert_eq!(cfg.sync_interval, secs(10));
    assert_eq!(cfg.token_timeout, secs(3));
}

#[test]
fn client_defaults() {
    let cfg = client(&[]).expect("defaults parse");
    assert_eq!(cfg.resume, Resume::New);
    assert!(!cfg.json);
    assert_eq!(cfg.join_timeout, secs(10));
    assert!(cfg.bell);
    assert!(!client(&["--no-bell"]).expect("parses").bell);
    assert_eq!(
        cfg.name, None,
        "the name comes from the checkpoint or $USER later"
    );
    assert!(parse_name(&default_name()).is_ok());
}

#[test]
fn a_name_too_long_is_refused_in_bytes_and_characters_when_they_differ() {
    assert_eq!(
        parse_name(&"a".repeat(33)),
        Err("must be 1 to 32 bytes, got 33".into())
    );
    let japanese = "日本語の名前をここに書きました"; // 15 characters, 45 bytes
    assert_eq!(
        parse_name(japanese),
        Err("must be 1 to 32 bytes of UTF-8, got 45 bytes (15 characters)".into())
    );
    assert!(parse_name("日本語の名前").is_ok(), "18 bytes");
}

#[test]
fn every_flag_is_carried_into_the_config() {
    let cfg = server(&[
        "--group=239.1.2.3",
        "--port=41100",
        "--interface=127.0.0.1",
        "--ttl=0",
        "--data-dir=/tmp/x",
        "--checkpoint-interval=250ms",
        "--delay=100ms..1s",
        "--loss=0.25",
        "--dup=1",
        "--seed=9",
        "--key-file=/tmp/k",
        "--durability=fsync",
        "--sync-interval=2s",
        "--token-timeout=500ms",
    ])
    .expect("all flags parse");
    let net = &cfg.common.net;
    assert_eq!(
        (net.group, net.port, net.ttl),
        (IpAddr::V4(Ipv4Addr::new(239, 1, 2, 3)), 41100, 0)
    );
    assert_eq!(net.sim.delay, Some((Duration::from_millis(100), secs(1))));
    assert_eq!(
        (net.sim.loss, net.sim.dup, net.sim.seed),
        (0.25, 1.0, Some(9))
    );
    assert_eq!(cfg.common.data_dir, PathBuf::from("/tmp/x"));
    assert_eq!(cfg.common.checkpoint_interval, Duration::from_millis(250));
    assert_eq!(cfg.common.key_file, Some(PathBuf::from("/tmp/k")));
    assert_eq!(cfg.common.durability, Durability::Fsync);
    assert_eq!(
        (cfg.sync_interval, cfg.token_timeout),
        (secs(2), Duration::from_millis(500))
    );
}

#[test]
fn delay_forms() {
    let delay = |s: &str| server(&["--delay", s]).map(|c| c.common.net.sim.delay);
    let ms = Duration::from_millis;
    assert_eq!(delay("100ms..1s").expect("range"), Some((ms(100), secs(1))));
    assert_eq!(delay("0ms..0ms").expect("zero"), Some((ms(0), ms(0))));
    assert_eq!(delay("50ms").expect("fixed"), Some((ms(50), ms(50))));
    for bad in ["1s..100ms", "..1s", "1s..", "fast", "1s..2s..3s", "2days"] {
        assert!(delay(bad).is_err(), "--delay {bad} accepted");
    }
}

#[test]
fn bad_values_are_usage_errors() {
    let bad: &[&[&str]] = &[
        &["--delay", "1s..100ms"],
        &["--loss", "1.5"],
        &["--loss", "-0.1"],
        &["--dup", "NaN"],
        &["--group", "10.0.0.1"],
        &["--group", "224.1.1"],
        &["--group", "fe80::1"],
        &["--interface", "224.1.1.1"],
        &["--interface", "ff02::1"],
        &["--interface", ""],
        &["--completions", "tcsh"],
        &["--port", "x"],
        &["--port", "0"],
        &["--port", "70000"],
        &["--ttl", "256"],
        &["--sync-interval", "0s"],
        &["--token-timeout", "0ms"],
        &["--checkpoint-interval", "soon"],
        &["--seed", "-1"],
        &["--durability", "sometimes"],
        &["--no-such-flag"],
    ];
    for args in bad {
        let err = server(args).expect_err(&format!("{args:?} accepted"));
        assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
    }
    let err = server(&["--group", "10.0.0.1"]).expect_err("unicast group");
    assert_eq!(err.kind(), ErrorKind::ValueValidation);
    assert!(err.to_string().contains("not a multicast address"), "{err}");
}

#[test]
fn interfaces_are_names_addresses_or_list_and_groups_either_family() {
    let iface = |s: &str| {
        let argv = ["client", "--interface", s];
        ClientCli::try_parse_from(argv).map(|c| c.common.interface)
    };
    assert_eq!(iface("list").expect("list"), InterfaceArg::List);
    assert_eq!(
        iface("eth0").expect("name"),
        InterfaceArg::Spec(InterfaceSpec::Name("eth0".into()))
    );
    assert!(iface("fe80::1%eth0").is_ok());
    let cfg = server(&["--interface", "lo"]).expect("lo resolves");
    assert_eq!(
        cfg.common.net.to_string(),
        "224.1.1.1:5007 via lo (127.0.0.1)"
    );
    let cfg = server(&["--group", "ff02::114", "--interface", "eth0"]).expect("IPv6");
    assert_eq!(
        cfg.common.net.group,
        "ff02::114".parse::<IpAddr>().expect("ip")
    );
    assert_eq!(
        cfg.common.net.to_string(),
        "[ff02::114]:5007 via eth0 (fe80::1)"
    );
}

#[test]
fn client_only_flags_are_checked() {
    for args in [
        &["--join-timeout", "0s"][..],
        &["--name", ""],
        &["--name", "a\u{7}b"],
        &["--name", &"x".repeat(33)],
        &["--resume", "not\u{7}a-name"],
        &["--sync-interval", "1s"],
    ] {
        let err = client(args).expect_err(&format!("{args:?} accepted"));
        assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
    }
    let cfg = client(&["--name", " alice ", "--json", "--join-timeout", "2s"]).expect("ok");
    assert_eq!(
        (cfg.name.as_deref(), cfg.json, cfg.join_timeout),
        (Some("alice"), true, secs(2))
    );
    assert!(
        client(&["--name", &"é".repeat(16)]).is_ok(),
        "16 chars, 32 bytes"
    );
    assert!(
        client(&["--name", &"é".repeat(17)]).is_err(),
        "the limit is in bytes, as on the wire"
    );
}

#[test]
fn resume_forms() {
    let id = Uuid::new_v4();
    let resume = |args: &[&str]| client(args).expect("parses").resume;
    assert_eq!(resume(&[]), Resume::New);
    assert_eq!(resume(&["--resume"]), Resume::Only);
    assert_eq!(resume(&["--resume", "--json"]), Resume::Only);
    assert_eq!(resume(&["--resume", &id.to_string()]), Resume::Id(id));
    assert_eq!(resume(&[&format!("--resume={id}")]), Resume::Id(id));
    assert_eq!(resume(&["--resume", "carol"]), Resume::Name("carol".into()));
}

#[test]
fn any_peer_switches_to_unicast_where_a_server_listens_on_the_port() {
    let cfg = server(&["--peer", "127.0.0.1:6000", "--peer", "127.0.0.1:6001"]).expect("ok");
    let unicast = cfg.common.net.unicast.expect("unicast mode");
    assert_eq!(unicast.port, 5007);
    assert_eq!(unicast.named, ["127.0.0.1:6000", "127.0.0.1:6001"]);
    assert_eq!(unicast.peers.len(), 2);
    let cfg = client(&["--peer", "127.0.0.1:6000"]).expect("ok");
    assert_eq!(
        cfg.common.net.unicast.expect("unicast").port,
        0,
        "the system picks"
    );
    let cfg = client(&["--peer", "127.0.0.1:6000", "--port", "6000"]).expect("ok");
    assert_eq!(
        cfg.common.net.unicast.expect("unicast").port,
        0,
        "--port is the server's"
    );
    let cfg = client(&["--peer", "127.0.0.1:6000", "--listen-port", "6100"]).expect("ok");
    assert_eq!(cfg.common.net.unicast.expect("unicast").port, 6100);
    assert!(client(&[]).expect("ok").common.net.unicast.is_none());
    for bad in ["127.0.0.1", "::1:5007", "h:0"] {
        let err = client(&["--peer", bad]).expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad}");
    }
}
