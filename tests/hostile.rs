//! Hostile input and a shared key, with the real binaries on loopback: a sealed
//! chat that a capture on the group cannot read and whose replay changes nothing, a client
//! with the wrong key, unusable key files, thousands of hostile datagrams sprayed at a live
//! group (G6), and damaged files at start-up.
//!
//! Every datagram stays on this host: group 224.1.1.1 via 127.0.0.1, TTL 0 for the test's own
//! socket, each test on a port of its own.

mod common;

use common::{check_replica, client, count_messages, free_port, member_joined, server, Proc};
use mcast_chat::net::seal::SEAL_FORMAT;
use mcast_chat::net::{open_socket, NetConfig};
use mcast_chat::protocol::limits::MAX_DATAGRAM_BYTES;
use mcast_chat::protocol::types::{ChatRecord, Epoch, GroupId, NodeId, Seq};
use mcast_chat::protocol::wire::{self, Msg};
use mcast_chat::token_ring::Token;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::json;
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use uuid::Uuid;

const GROUP: Ipv4Addr = Ipv4Addr::new(224, 1, 1, 1);
const LONG: Duration = Duration::from_secs(60);

/// A socket like the nodes' (the library's own set-up), joined to the group on 127.0.0.1 and
/// sharing the port with them; what it sends has TTL 0 and so never leaves this host.
fn group_socket(port: u16) -> UdpSocket {
    let cfg = NetConfig {
        ttl: 0,
        ..NetConfig::loopback(port)
    };
    open_socket(&cfg).unwrap_or_else(|e| panic!("cannot open a group socket: {e}"))
}

fn send_to_group(socket: &UdpSocket, port: u16, bytes: &[u8]) {
    socket
        .send_to(bytes, SocketAddrV4::new(GROUP, port))
        .unwrap();
}

/// Waits until a datagram arrives on the group (the server beacons once it has listened for
/// another server).
fn wait_for_traffic(port: u16) {
    let socket = group_socket(port);
    socket.set_read_timeout(Some(LONG)).unwrap();
    let mut buf = vec![0u8; 65_536];
    socket.recv(&mut buf).expect("a datagram on the group");
}

/// Records every datagram on the group until stopped.
struct Capture {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Vec<u8>>>,
}

impl Capture {
    fn start(port: u16) -> Capture {
        let socket = group_socket(port);
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 65_536];
            while !flag.load(Ordering::SeqCst) {
                if let Ok(n) = socket.recv(&mut buf) {
                    seen.push(buf[..n].to_vec());
                }
            }
            seen
        });
        Capture { stop, thread }
    }

    fn finish(self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// A key file of 32 random bytes, readable by its owner only.
fn key_file(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    std::fs::write(&path, secret).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Sends `/stats` and returns the notice it prints.
fn stats(p: &mut Proc) -> String {
    let before = p.seen.len();
    p.send_line("/stats");
    p.wait_for("/stats", LONG, |l| {
        l[before..].iter().any(|l| l.contains("refused"))
    });
    p.seen[before..]
        .iter()
        .rfind(|l| l.contains("refused"))
        .unwrap()
        .clone()
}

/// The number after `name ` in a `/stats` line.
fn counter(stats: &str, name: &str) -> u64 {
    let at = stats
        .find(&format!("{name} "))
        .unwrap_or_else(|| panic!("no {name} in {stats}"));
    stats[at + name.len() + 1..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// Waits for `total` messages everywhere, leaves, and checks that every replica (the
/// server's too) is byte-identical with every line exactly once; returns the texts.
fn finish(srv: &mut Proc, clients: &mut [Proc], total: usize) -> Vec<String> {
    for c in clients.iter_mut() {
        c.wait_for("every line", LONG, |l| count_messages(l) >= total);
    }
    for c in clients.iter_mut() {
        c.close_stdin();
    }
    for c in clients.iter_mut() {
        assert!(c.wait_exit(LONG).success(), "clean leave exits 0");
    }
    let first = clients[0].replica();
    for c in clients.iter() {
        assert_eq!(c.replica(), first, "replica of {} differs", c.dir.display());
    }
    common::eventually("the server's archive", LONG, || srv.replica() == first);
    let texts = check_replica(&first);
    assert_eq!(texts.len(), total);
    let unique: HashSet<&String> = texts.iter().collect();
    assert_eq!(unique.len(), total, "every line exactly once");
    texts
}

/// With a key, nothing readable crosses the wire, and replaying every captured
/// datagram into the live group changes nothing (no view change, nothing delivered twice).
#[test]
fn with_a_key_no_chat_text_is_on_the_wire_and_a_replay_changes_nothing() {
    let port = free_port();
    let root = tempfile::tempdir().unwrap().keep();
    let key = key_file(&root, "key");
    // Another path with the same bytes: the content is the secret, not the name.
    let copy = root.join("key-copy");
    std::fs::copy(&key, &copy).unwrap();
    let (key, copy) = (key.display().to_string(), copy.display().to_string());
    let capture = Capture::start(port);
    let mut srv = server(port, &root.join("server"), &["--key-file", &key]);
    let mut clients = vec![
        client(port, &root.join("alice"), "alice", &["--key-file", &key]),
        client(port, &root.join("bob"), "bob", &["--key-file", &copy]),
    ];
    for (c, name) in clients.iter_mut().zip(["alice", "bob"]) {
        for i in 0..10 {
            c.send_line(&format!("{name} whispers secret line {i}"));
        }
    }
    for c in clients.iter_mut() {
        c.wait_for("the first lines", LONG, |l| count_messages(l) >= 20);
    }
    let captured = capture.finish();
    assert!(captured.len() > 20, "captured {}", captured.len());
    for d in &captured {
        assert_eq!(d[0], SEAL_FORMAT, "an unsealed datagram: {d:?}");
        assert!(d.len() <= MAX_DATAGRAM_BYTES);
        for clear in [&b"whispers"[..], b"secret line", b"alice", b"\"type\""] {
            assert!(
                !d.windows(clear.len()).any(|w| w == clear),
                "{:?} in clear on the wire",
                String::from_utf8_lossy(clear)
            );
        }
    }

    // Replay everything captured, in order, into the live group.
    let before = stats(&mut clients[0]);
    let replayer = group_socket(port);
    for d in &captured {
        send_to_group(&replayer, port, d);
    }
    let ignored = |s: &str| counter(s, "copies already held") + counter(s, "from old views");
    let mut after = stats(&mut clients[0]);
    common::eventually("the replay to arrive", LONG, || {
        after = stats(&mut clients[0]);
        ignored(&after) >= ignored(&before) + 10
    });
    assert_eq!(
        counter(&after, "views"),
        counter(&before, "views"),
        "a replay changed the view:\n{before}\n{after}"
    );
    assert_eq!(counter(&after, "unauthenticated"), 0, "{after}");
    for (c, name) in clients.iter_mut().zip(["alice", "bob"]) {
        c.send_line(&format!("{name} after the replay"));
    }
    let texts = finish(&mut srv, &mut clients, 22);
    assert!(texts.iter().any(|t| t == "bob whispers secret line 9"));
    let views = |p: &Proc| p.seen.iter().filter(|l| l.starts_with("* view")).count();
    srv.drain();
    // Views: one per join and one per leave at most; the replay added none.
    assert!(views(&srv) <= 4, "{:?}", srv.seen);
}

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A client with the wrong key (or none) hears the server but cannot read
/// it: it exits 1 within its join timeout, and says why.
#[test]
fn a_client_with_the_wrong_key_or_none_exits_1_with_a_hint() {
    let port = free_port();
    let root = tempfile::tempdir().unwrap().keep();
    let right = key_file(&root, "right");
    let wrong = key_file(&root, "wrong");
    let mut srv = server(
        port,
        &root.join("server"),
        &["--key-file", &right.display().to_string()],
    );
    srv.wait_for("server start", LONG, |l| !l.is_empty());
    wait_for_traffic(port);
    let port_s = port.to_string();
    let cases = [
        (
            Some(&wrong),
            "failed authentication: is --key-file the same as the server's?",
        ),
        (None, "could not be read: does the server use a --key-file?"),
    ];
    for (i, (key, hint)) in cases.into_iter().enumerate() {
        let dir = root.join(format!("client{i}"));
        let dir_s = dir.display().to_string();
        let mut args = vec![
            "--port",
            &port_s,
            "--join-timeout",
            "2s",
            "--data-dir",
            &dir_s,
        ];
        let key_s = key.map(|k| k.display().to_string());
        if let Some(k) = &key_s {
            args.extend(["--key-file", k]);
        }
        let started = std::time::Instant::now();
        let out = run(env!("CARGO_BIN_EXE_client"), &args);
        assert!(started.elapsed() < Duration::from_secs(15));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(hint), "{err}");
        assert!(
            err.contains(&format!("224.1.1.1:{port} via 127.0.0.1")),
            "{err}"
        );
    }
}

/// A missing, short or oversized key file stops either program at once with exit 1 and a
/// message that names the file and says how to make one.
#[test]
fn an_unusable_key_file_is_a_clear_error_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let short = root.path().join("short");
    std::fs::write(&short, b"fifteen bytes!!").unwrap();
    let huge = root.path().join("huge");
    std::fs::write(&huge, vec![b'k'; 65 * 1024]).unwrap();
    let missing = root.path().join("missing");
    let data = root.path().join("data").display().to_string();
    for bin in [env!("CARGO_BIN_EXE_client"), env!("CARGO_BIN_EXE_server")] {
        for (file, what) in [
            (&short, "holds 15 bytes, fewer than the 16"),
            (&huge, "is larger than"),
            (&missing, "cannot read key file"),
        ] {
            let path = file.display().to_string();
            let port = free_port().to_string();
            let args = ["--port", &port, "--data-dir", &data, "--key-file", &path];
            let out = run(bin, &args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{bin} {path}: {err}");
            assert!(err.contains(&path) && err.contains(what), "{err}");
            assert!(err.contains("head -c 32 /dev/urandom"), "{err}");
        }
    }
}

fn record(seq: u64, text: &str) -> ChatRecord {
    ChatRecord {
        seq: Seq(seq),
        id: Uuid::new_v4(),
        from: NodeId::random(),
        name: "mallory".into(),
        text: text.into(),
        sent_at_ms: 1,
    }
}

fn encoded(msg: &Msg) -> Vec<u8> {
    wire::encode(msg).unwrap()
}

fn edit(msg: &Msg, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&encoded(msg)).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// One hostile datagram: malformed, wrong-version, oversize, or carrying values that the
/// protocol rejects (absurd, or an epoch the group has left behind). None of them is a
/// plausible datagram of the current ring: without a key those could disrupt it (see
/// docs/OPERATIONS.md#security).
fn hostile(rng: &mut SmallRng, i: usize) -> Vec<u8> {
    let data = Msg::Data {
        epoch: Epoch(1),
        group: GroupId(1),
        recs: vec![record(1, "forged"), record(2, "forged too")],
    };
    let stale_token = Msg::Token(Token::first(
        Epoch(1),
        NodeId::random(),
        NodeId::random(),
        Seq(7),
        1,
    ));
    match i % 26 {
        0 => {
            let mut b = vec![0u8; rng.gen_range(0..MAX_DATAGRAM_BYTES)];
            rng.fill_bytes(&mut b);
            b
        }
        1 => {
            let b = encoded(&data);
            b[..rng.gen_range(0..b.len())].to_vec()
        }
        2 => br#"{"v":1,"type":"token","epoch":"one","hop":[],"seq":-1}"#.to_vec(),
        3 => format!(r#"{{"v":1,"type":"x{}","epoch":1}}"#, rng.gen::<u32>()).into_bytes(),
        4 => edit(&data, |v| v["v"] = json!(2)),
        5 if i % 500 == 5 => vec![b'{'; 60_000],
        5 => vec![b' '; MAX_DATAGRAM_BYTES + 1 + rng.gen_range(0..2000)],
        6 => edit(&data, |v| {
            v["epoch"] = json!(u64::MAX - 1);
            v["recs"][0]["seq"] = json!(u64::MAX - 1);
        }),
        7 => encoded(&stale_token),
        8 => encoded(&data),
        9 => edit(&data, |v| v["recs"][1]["name"] = json!("m".repeat(100))),
        10 => edit(&data, |v| v["recs"][0]["text"] = json!("t".repeat(1001))),
        11 => br#"{"v":1,"type":"view","epoch":0,"part":0,"parts":1,"members":[],"cut":0,"high":0,"token_timeout_ms":18446744073709551615}"#.to_vec(),
        12 => edit(&stale_token, |v| v["epoch"] = json!(u64::MAX)),
        13 => edit(&stale_token, |v| v["hop"] = json!(u64::MAX)),
        14 => edit(&data, |v| v["epoch"] = json!(0)),
        15 => edit(&data, |v| v["recs"][1]["text"] = json!("\u{1b}[2J\n[#1 00:00:00] server: hi")),
        16 => format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes()[..1400].to_vec(),
        17 => br#"{"v":1e400,"type":"wake"}"#.to_vec(),
        18 => b"{\"v\":1,\"type\":\"wake\",\"epoch\":1,\"from\":\"\xff\xfe\"}".to_vec(),
        19 => br#"{"v":1,"type":"view","epoch":9,"part":3,"parts":2,"members":[],"cut":0,"high":0,"token_timeout_ms":1000}"#.to_vec(),
        20 => br#"{"v":1,"type":"beacon","epoch":9,"cut":0,"high":0,"token_timeout_ms":1000,"server":3,"members":1000,"digest":0}"#.to_vec(),
        21 => edit(&stale_token, |v| v["lag"] = json!([8])),
        22 => format!(
            r#"{{"v":1,"type":"gather","epoch":9,"part":0,"parts":{},"members":[],"server":3}}"#,
            rng.gen_range(17..u32::MAX)
        )
        .into_bytes(),
        23 => edit(&data, |v| v["recs"] = json!([])),
        24 => edit(&data, |v| v["recs"][1]["seq"] = json!(1)),
        _ => format!(
            r#"{{"v":1,"type":"report","epoch":1,"from":"{}","incarnation":1,"name":"m","view_epoch":{},"aru":0,"delivered":0}}"#,
            Uuid::new_v4(),
            u64::MAX
        )
        .into_bytes(),
    }
}

/// G6: thousands of hostile datagrams sprayed at a chatting group. Every
/// node drops them and counts them; the group still ends with byte-identical replicas and
/// every line exactly once.
#[test]
fn g6_a_spray_of_hostile_datagrams_does_not_disturb_a_chatting_group() {
    let port = free_port();
    let root = tempfile::tempdir().unwrap().keep();
    let mut srv = server(port, &root.join("server"), &[]);
    // Before any view, a fresh server is in epoch 0: messages "of" it must not be archived.
    wait_for_traffic(port);
    let socket = group_socket(port);
    for seq in 1..=20 {
        let forged = Msg::Data {
            epoch: Epoch(1),
            group: GroupId(1),
            recs: vec![record(seq, "forged before the first view")],
        };
        send_to_group(&socket, port, &edit(&forged, |v| v["epoch"] = json!(0)));
    }
    let names = ["alice", "bob", "carol"];
    let mut clients: Vec<Proc> = Vec::new();
    // One at a time, so the group has left epoch 1 behind before the spray: its tokens and
    // messages of epoch 1 are stale.
    for name in names {
        let mut c = client(port, &root.join(name), name, &[]);
        c.wait_joined(LONG);
        clients.push(c);
    }
    clients[0].wait_for("carol in the view", LONG, |l| member_joined(l, "carol"));
    let sprayer = std::thread::spawn(move || {
        let socket = group_socket(port);
        let mut rng = SmallRng::seed_from_u64(4);
        for i in 0..6000 {
            send_to_group(&socket, port, &hostile(&mut rng, i));
            if i % 200 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    for (c, name) in clients.iter_mut().zip(names) {
        for i in 0..20 {
            c.send_line(&format!("{name} says {i}"));
        }
    }
    sprayer.join().unwrap();
    let mut s = String::new();
    common::eventually("every kind of drop counted", LONG, || {
        s = stats(&mut clients[0]);
        [
            "malformed",
            "too large",
            "wrong version",
            "out of range",
            "from old views",
        ]
        .iter()
        .all(|c| counter(&s, c) > 0)
    });
    assert_eq!(counter(&s, "unauthenticated"), 0, "{s}");
    assert!(s.contains("! refused"), "refused datagrams are marked: {s}");
    assert!(!s.contains("! repairs"), "only refusals are marked: {s}");
    let texts = finish(&mut srv, &mut clients, 60);
    assert!(texts.iter().all(|t| !t.contains("forged")), "{texts:?}");
    assert!(srv.try_exit().is_none(), "the server is alive");
}

/// A valid replica line for seq `seq`.
fn replica_line(seq: u64) -> String {
    serde_json::to_string(&record(seq, &format!("line {seq}"))).unwrap() + "\n"
}

fn expect_exit_1(bin: &str, dir: &Path, extra: &[&str], wants: &[&str]) {
    let dir_s = dir.display().to_string();
    let port = free_port().to_string();
    let mut args = vec![
        "--port",
        &port,
        "--data-dir",
        &dir_s,
        "--join-timeout",
        "1s",
    ];
    if bin.ends_with("server") {
        args.truncate(4);
    }
    args.extend(extra);
    let out = run(bin, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    for want in wants {
        assert!(err.contains(want), "{want:?} not in: {err}");
    }
}

/// G6: a corrupt line in the middle of a replica, a checkpoint of a newer
/// format and a torn checkpoint stop either program with exit 1 and a message that names the
/// file and the fix.
#[test]
fn g6_damaged_files_stop_the_programs_with_a_message_naming_file_and_fix() {
    let root = tempfile::tempdir().unwrap();
    let uuid = Uuid::new_v4();
    let cases: [(&str, String, &[&str]); 3] = [
        (
            "replica_{}.jsonl",
            format!("{}{{\"seq\":2,\"te\n{}", replica_line(1), replica_line(3)),
            &["is corrupt at line 2", "move the file away", "head -n 1"],
        ),
        (
            "checkpoint_{}.json",
            r#"{"version": 99, "node": "x"}"#.to_string(),
            &["format version 99", "newer mcast-chat"],
        ),
        (
            "checkpoint_{}.json",
            r#"{"version": 1, "node": "#.to_string(),
            &["is corrupt", "delete it"],
        ),
    ];
    for (i, (pattern, content, wants)) in cases.iter().enumerate() {
        for (who, tag) in [("client", uuid.to_string()), ("server", "server".into())] {
            let dir = root.path().join(format!("{who}{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(pattern.replace("{}", &tag));
            std::fs::write(&file, content).unwrap();
            let path = file.display().to_string();
            let mut wants = wants.to_vec();
            wants.push(&path);
            if who == "client" {
                expect_exit_1(env!("CARGO_BIN_EXE_client"), &dir, &["--resume"], &wants);
            } else {
                expect_exit_1(env!("CARGO_BIN_EXE_server"), &dir, &[], &wants);
            }
        }
    }
}

/// G5: a replica whose last line was torn by a crash is repaired at start:
/// the torn bytes are cut with a warning and every complete record is kept.
#[test]
fn g5_a_torn_last_line_is_cut_and_every_complete_record_kept() {
    let port = free_port();
    let root = tempfile::tempdir().unwrap().keep();
    let dir = root.join("server");
    std::fs::create_dir_all(&dir).unwrap();
    let complete: String = (1..=3).map(replica_line).collect();
    let torn = &replica_line(4)[..40];
    std::fs::write(
        dir.join("replica_server.jsonl"),
        format!("{complete}{torn}"),
    )
    .unwrap();
    let mut srv = server(port, &dir, &[]);
    srv.wait_for("the start notice", LONG, |l| {
        l.iter().any(|l| l.contains("(3 messages)"))
    });
    assert_eq!(srv.replica(), complete.as_bytes());
    assert!(
        srv.stderr_tail(20).contains("torn"),
        "{}",
        srv.stderr_tail(20)
    );
}
