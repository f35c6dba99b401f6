//! Unit tests of the transport and the simulated network on loopback.

use super::*;
use std::time::Instant;

/// Receive buffer size that callers use, so oversize datagrams are seen whole.
const BUF: usize = 64 * 1024;

fn open(port: u16, sim: SimConfig) -> Transport {
    let cfg = NetConfig {
        sim,
        ..NetConfig::loopback(port)
    };
    Transport::open(&cfg).expect("open transport on loopback")
}

fn sim(f: impl FnOnce(&mut SimConfig)) -> SimConfig {
    let mut cfg = SimConfig {
        seed: Some(7),
        ..SimConfig::default()
    };
    f(&mut cfg);
    cfg
}

/// One test run. Every datagram carries the run's random tag and receiving ignores
/// datagrams without it, so another run of the same test (same port, e.g. a second
/// `cargo test` at the same time) cannot disturb this one.
struct Run {
    tag: [u8; 8],
}

impl Run {
    fn new() -> Run {
        Run {
            tag: rand::random::<u64>().to_le_bytes(),
        }
    }

    fn send(&self, t: &Transport, body: &[u8]) {
        t.send(&[&self.tag[..], body].concat()).expect("send");
    }

    /// Receives until `done(bodies so far)` or the deadline; returns the bodies of this
    /// run in arrival order, with arrival times.
    fn recv_until(
        &self,
        t: &Transport,
        deadline: Duration,
        mut done: impl FnMut(&[(Vec<u8>, Instant)]) -> bool,
    ) -> Vec<(Vec<u8>, Instant)> {
        let end = Instant::now() + deadline;
        let mut got = Vec::new();
        let mut buf = vec![0u8; BUF];
        while !done(&got) {
            let now = Instant::now();
            if now >= end {
                break;
            }
            if let Some((n, _)) = t.recv(&mut buf, Some(end - now)).expect("recv") {
                if let Some(body) = buf[..n].strip_prefix(&self.tag[..]) {
                    got.push((body.to_vec(), Instant::now()));
                }
            }
        }
        got
    }

    /// Sends `marker` from `t` and receives until it comes back; returns the bodies that
    /// arrived before it. Everything sent inline before the marker is queued before it.
    fn recv_until_marker(&self, t: &Transport) -> Vec<Vec<u8>> {
        const MARKER: &[u8] = b"marker";
        self.send(t, MARKER);
        let got = self.recv_until(t, Duration::from_secs(5), |g| {
            g.last().is_some_and(|(d, _)| d == MARKER)
        });
        assert!(got.last().is_some_and(|(d, _)| d == MARKER), "marker lost");
        got.into_iter()
            .map(|(d, _)| d)
            .filter(|d| d != MARKER)
            .collect()
    }
}

#[test]
fn two_nodes_exchange_both_ways_and_hear_themselves() {
    let run = Run::new();
    let a = open(41001, SimConfig::default());
    let b = open(41001, SimConfig::default());
    run.send(&a, b"from-a");
    run.send(&b, b"from-b");
    for t in [&a, &b] {
        let got = run.recv_until(t, Duration::from_secs(5), |g| g.len() >= 2);
        let mut got: Vec<Vec<u8>> = got.into_iter().map(|(d, _)| d).collect();
        got.sort();
        assert_eq!(got, vec![b"from-a".to_vec(), b"from-b".to_vec()]);
    }
    let s = a.stats().snapshot();
    assert_eq!(s.sent, 1);
    assert!(s.received >= 2, "{s:?}");
}

#[test]
fn loss_one_delivers_nothing_and_counts_drops() {
    let run = Run::new();
    let a = open(41002, sim(|s| s.loss = 1.0));
    let rx = open(41002, SimConfig::default());
    for i in 0..20u8 {
        run.send(&a, &[i]);
    }
    assert!(run.recv_until_marker(&rx).is_empty());
    let s = a.stats().snapshot();
    assert_eq!((s.sent, s.sim_dropped), (0, 20));
}

#[test]
fn dup_one_delivers_everything_twice() {
    let run = Run::new();
    let a = open(41003, sim(|s| s.dup = 1.0));
    let rx = open(41003, SimConfig::default());
    for i in 0..10u8 {
        run.send(&a, &[i]);
    }
    let mut got = run.recv_until_marker(&rx);
    got.sort();
    let want: Vec<Vec<u8>> = (0..10u8).flat_map(|i| [vec![i], vec![i]]).collect();
    assert_eq!(got, want);
    let s = a.stats().snapshot();
    assert_eq!((s.sent, s.sim_duplicated, s.sim_dropped), (20, 10, 0));
}

#[test]
fn delay_delivers_everything_late_and_reordered() {
    let run = Run::new();
    let (min, max) = (Duration::from_millis(20), Duration::from_millis(60));
    let a = open(41004, sim(|s| s.delay = Some((min, max))));
    let rx = open(41004, SimConfig::default());
    let mut sent_at = Vec::new();
    for i in 0..50u8 {
        sent_at.push(Instant::now());
        run.send(&a, &[i]);
    }
    let got = run.recv_until(&rx, Duration::from_secs(5), |g| g.len() >= 50);
    let order: Vec<u8> = got.iter().map(|(d, _)| d[0]).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, (0..50).collect::<Vec<u8>>(), "all arrive once");
    for (d, at) in &got {
        let i = usize::from(d[0]);
        assert!(*at - sent_at[i] >= min, "datagram {i} early");
    }
    let reordered = order.windows(2).any(|w| w[0] > w[1]);
    assert!(reordered, "no reordering: {order:?}");
    // The delay thread counts a send after the kernel took it: join it before reading.
    a.shutdown();
    assert_eq!(a.stats().snapshot().sent, 50);
}

#[test]
fn recv_times_out_with_none() {
    let t = open(41005, SimConfig::default());
    let mut buf = vec![0u8; BUF];
    let start = Instant::now();
    let timeout = Duration::from_millis(100);
    // Only a concurrent run of this test could send on this port; skip its datagrams.
    while t.recv(&mut buf, Some(timeout)).expect("recv").is_some() {}
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(90),
        "returned after {waited:?}"
    );
    assert!(waited < Duration::from_secs(2), "returned after {waited:?}");
    let got = t
        .recv(&mut buf, Some(Duration::ZERO))
        .expect("zero timeout");
    assert!(got.is_none());
}

#[test]
fn shutdown_flushes_what_is_due_and_drops_the_rest() {
    let run = Run::new();
    let fixed = |d: Duration| sim(|s| s.delay = Some((d, d)));
    let a = open(41006, fixed(Duration::from_millis(5)));
    let b = open(41006, fixed(Duration::from_secs(30)));
    let rx = open(41006, SimConfig::default());
    run.send(&a, b"soon");
    run.send(&b, b"late");
    let start = Instant::now();
    a.shutdown();
    b.shutdown();
    assert!(start.elapsed() < Duration::from_secs(2), "shutdown waited");
    assert_eq!(run.recv_until_marker(&rx), vec![b"soon".to_vec()]);
    assert_eq!(b.stats().snapshot().sim_dropped, 1);
    assert!(a.send(b"after").is_err());
    assert!(b.send(b"after").is_err());
}

#[test]
fn open_rejects_a_unicast_group_with_context() {
    let cfg = NetConfig {
        group: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        ..NetConfig::loopback(41007)
    };
    let err = Transport::open(&cfg).expect_err("unicast group");
    assert!(err.to_string().contains("10.0.0.1"), "{err}");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn transport_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Transport>();
}

#[test]
fn a_unicast_transport_listens_on_its_port_and_has_no_group() {
    let cfg = |port| NetConfig {
        unicast: Some(UnicastConfig {
            peers: Vec::new(),
            named: Vec::new(),
            port,
        }),
        ..NetConfig::loopback(41009)
    };
    let server = Transport::open(&cfg(41009)).expect("a unicast server");
    let client = Transport::open(&cfg(0)).expect("a unicast client");
    let at = server.local_addr().expect("addr");
    assert_eq!(at, "127.0.0.1:41009".parse().expect("addr"));
    assert!(client.local_addr().expect("addr").port() != 0);
    assert!(server.is_unicast() && client.is_unicast());
    assert!(client.send(b"group?").is_err(), "no group in unicast mode");
    client.send_to(b"hello", at).expect("send to the server");
    let mut buf = vec![0u8; BUF];
    let got = server
        .recv_from(Inbox::Direct, &mut buf, Some(Duration::from_secs(5)))
        .expect("recv")
        .expect("a datagram");
    assert_eq!(
        (&buf[..got.0], got.1),
        (&b"hello"[..], client.local_addr().expect("addr"))
    );
    assert!(server
        .recv(&mut buf, Some(Duration::from_millis(1)))
        .is_err());
    let taken = Transport::open(&cfg(41009)).expect_err("the port is taken");
    assert!(taken.to_string().contains("127.0.0.1:41009"), "{taken}");
}
