//! A ring session: the server (or several: a coordinating one and standbys) and N clients
//! started on one port in a temp dir (the clients in a join storm, `storm.rs`, which is also
//! the warm-up), and what each client was given to type (keys and submit instants), with
//! waits that have deadlines. The checks of the history are in `check.rs`, the measurements
//! in `measure.rs`, `recovery.rs` and `failover.rs`.
//!
//! The nodes reach each other by multicast (the default) or unicast ([`Net`]), every node of
//! a ring the same way.
//!
//! It must not judge results: it starts, types, kills the coordinating server when asked,
//! waits and reports progress; every process is killed when the ring drops.

use crate::node::{Net, Proc, Seen};
use crate::observer::Observer;
use crate::storm::Storm;
use crate::util::{key_client, key_n, key_phase};
use crate::DATAGRAM_BYTES;
use mcast_chat::protocol::types::{ChatRecord, Epoch, GroupId, NodeId, Seq};
use mcast_chat::protocol::wire::{self, Msg};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use uuid::Uuid;

/// The end of the server's notice that it admits joins: `no other server on the group:
/// coordinating`, printed when its start-up probe ends.
const COORDINATING: &str = ": coordinating";

/// The start of a server's notice that another server coordinates and this one stands by.
const STANDING_BY: &str = "standing by";

/// The server and N clients on one port, each in its own data dir under one temp dir.
pub struct Ring {
    /// Clients first: they are killed before the server when the ring drops.
    pub clients: Vec<Proc>,
    /// The coordinating server (after a failover, the standby that took over).
    pub server: Proc,
    /// More servers on the chat, standing by, in the order they were started.
    pub standbys: Vec<Proc>,
    /// Servers killed on purpose (failover): their archives must be a prefix of the history.
    pub servers_down: Vec<Proc>,
    /// Every line handed to each client, as keys, in submit order.
    pub submitted: Vec<Vec<u64>>,
    /// When each line whose latency is measured was written to its client's stdin.
    pub submit_at: HashMap<u64, Instant>,
    /// Clients that were killed on purpose (recovery): their lines may be missing.
    pub killed: HashSet<usize>,
    /// Padding that brings a line's `Data` datagram to `DATAGRAM_BYTES`.
    pub pad: String,
    /// Flags every client of the ring gets after the usual ones (`--loss P`).
    pub client_extra: Vec<String>,
    /// How the nodes reach each other; every node started on the ring gets the mode's flags.
    pub net: Net,
    /// Records token passes on the ring's port (blind on a unicast ring).
    pub observer: Observer,
    /// How the clients joined: all started at once (see `storm.rs`).
    pub storm: Storm,
    /// Removed on drop unless a check failed (then kept for inspection).
    pub root: Option<TempDir>,
    pub root_path: PathBuf,
}

impl Ring {
    pub fn start(label: &str, port: u16, n: usize, server_extra: &[&str]) -> Result<Ring, String> {
        Ring::start_servers(Net::Multicast, label, port, n, server_extra, &[], 1)
    }

    /// A ring in mode `net` with `servers` servers (each with `server_extra`): the first
    /// coordinates, and each later one is started once the one before it has said so or stands
    /// by itself. Every client gets `client_extra` (`--loss P`, ...) after the usual flags. (A
    /// unicast server listens on the ring's port, so a unicast ring has one server.)
    pub fn start_servers(
        net: Net,
        label: &str,
        port: u16,
        n: usize,
        server_extra: &[&str],
        client_extra: &[String],
        servers: usize,
    ) -> Result<Ring, String> {
        let root = tempfile::Builder::new()
            .prefix(&format!("mcast-bench-{label}-"))
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let root_path = root.path().to_path_buf();
        let observer = match net {
            Net::Multicast => {
                Observer::start(port).map_err(|e| format!("cannot observe port {port}: {e}"))?
            }
            Net::Unicast => Observer::blind(),
        };
        let server = Proc::server_on(net, "server", port, &root_path.join("server"), server_extra);
        let mut ring = Ring {
            clients: Vec::new(),
            server,
            standbys: Vec::new(),
            servers_down: Vec::new(),
            submitted: vec![Vec::new(); n],
            submit_at: HashMap::new(),
            killed: HashSet::new(),
            pad: "x".repeat(pad_len()),
            client_extra: client_extra.to_vec(),
            net,
            observer,
            storm: Storm::default(),
            root: Some(root),
            root_path,
        };
        // The storm starts once the server admits joins (after its start-up probe), so that it
        // times the joins and not the probe.
        let deadline = Instant::now() + Duration::from_secs(10);
        let coordinating = |s: &Seen| s.notices.iter().any(|(_, t)| t.contains(COORDINATING));
        if !ring.server.watch.wait_for(deadline, coordinating) {
            return Err(format!(
                "server did not start coordinating within 10 s: {}",
                ring.server.stderr_tail()
            ));
        }
        for s in 1..servers {
            ring.start_standby(port, s, server_extra)?;
        }
        ring.storm = ring.join_storm(port, n)?;
        let expect = format!("{n} member");
        ring.clients[0].ask("/who", |t| t.starts_with(&expect))?;
        Ok(ring)
    }

    /// Starts server number `s` (from 1) and waits until it says it stands by.
    fn start_standby(&mut self, port: u16, s: usize, extra: &[&str]) -> Result<(), String> {
        let name = format!("server{s}");
        let dir = self.root_path.join(&name);
        let standby = Proc::server_on(self.net, &name, port, &dir, extra);
        let deadline = Instant::now() + Duration::from_secs(10);
        let standing_by = |s: &Seen| s.notices.iter().any(|(_, t)| t.starts_with(STANDING_BY));
        if !standby.watch.wait_for(deadline, standing_by) {
            return Err(format!(
                "{name} did not stand by within 10 s: {}",
                standby.stderr_tail()
            ));
        }
        self.standbys.push(standby);
        Ok(())
    }

    /// `kill -9` of the coordinating server; the first standby becomes the ring's server (the
    /// one the checks hold the clients' replicas against). Returns the instant of the kill.
    pub fn kill_server(&mut self) -> Result<Instant, String> {
        if self.standbys.is_empty() {
            return Err("no standby server to take over".into());
        }
        let when = Instant::now();
        self.server.kill();
        let next = self.standbys.remove(0);
        self.servers_down
            .push(std::mem::replace(&mut self.server, next));
        Ok(when)
    }

    pub fn n(&self) -> usize {
        self.clients.len()
    }

    pub fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.n()).filter(|c| !self.killed.contains(c))
    }

    pub fn text(&self, key: u64) -> String {
        format!(
            "b{}-{}-{} {}",
            key_phase(key),
            key_client(key),
            key_n(key),
            self.pad
        )
    }

    /// Writes a line to client `c`; `timed` records its submit instant for latency.
    pub fn submit(&mut self, c: usize, key: u64, timed: bool) -> Result<(), String> {
        let text = self.text(key);
        let at = Instant::now();
        self.clients[c].send(&text)?;
        self.submitted[c].push(key);
        if timed {
            self.submit_at.insert(key, at);
        }
        Ok(())
    }

    /// Waits until every live client has delivered `count` messages; returns, per client,
    /// when it printed message number `count`.
    pub fn wait_clients(
        &self,
        count: usize,
        timeout: Duration,
        what: &str,
    ) -> Result<Vec<Instant>, String> {
        let deadline = Instant::now() + timeout;
        let mut done = Vec::new();
        for c in self.live() {
            let p = &self.clients[c];
            if !p.watch.wait_for(deadline, |s| s.msgs.len() >= count) {
                return Err(format!(
                    "{what}: {} delivered {} of {count} within {timeout:?} ({})",
                    p.name,
                    p.watch.delivered(),
                    self.progress_summary()
                ));
            }
            done.push(p.watch.lock().msgs[count - 1].1);
        }
        Ok(done)
    }

    /// When the server archived (printed) message number `count`.
    pub fn wait_server(&self, count: usize, timeout: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + timeout;
        let w = &self.server.watch;
        if !w.wait_for(deadline, |s| s.msgs.len() >= count) {
            return Err(format!(
                "the server archived {} of {count} within {timeout:?}",
                w.delivered()
            ));
        }
        Ok(w.lock().msgs[count - 1].1)
    }

    pub fn progress_summary(&self) -> String {
        let mut parts: Vec<String> = self
            .clients
            .iter()
            .map(|c| format!("{} {}", c.name, c.watch.delivered()))
            .collect();
        for s in std::iter::once(&self.server).chain(&self.standbys) {
            parts.push(format!("{} {}", s.name, s.watch.delivered()));
        }
        parts.join(", ")
    }

    /// Messages every live client has delivered (they agree when the ring is quiet).
    pub fn delivered(&self) -> usize {
        self.live()
            .map(|c| self.clients[c].watch.delivered())
            .min()
            .unwrap_or(0)
    }

    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut out = vec![("server".to_string(), self.server.pid())];
        out.extend(
            self.live()
                .map(|c| (self.clients[c].name.clone(), self.clients[c].pid())),
        );
        out
    }

    /// Keeps the temp dir (a check failed): its path goes into the error.
    pub fn keep_files(&mut self) -> PathBuf {
        if let Some(root) = self.root.take() {
            let _ = root.keep();
        }
        self.root_path.clone()
    }
}

/// Padding length that makes a bench line's `Data` datagram about `DATAGRAM_BYTES` long.
pub fn pad_len() -> usize {
    data_datagram_len("b3-1-1234 ").map_or(40, |len| DATAGRAM_BYTES.saturating_sub(len))
}

/// The encoded size of a `Data` datagram carrying `text` (a typical seq, uuids, name "c1").
pub fn data_datagram_len(text: &str) -> Option<usize> {
    let rec = ChatRecord {
        seq: Seq(12_345),
        id: Uuid::new_v4(),
        from: NodeId::random(),
        name: "c1".into(),
        text: text.into(),
        sent_at_ms: 1_800_000_000_000,
    };
    wire::encode(&Msg::Data {
        epoch: Epoch(3),
        group: GroupId(1 << 52), // chat ids are drawn below 2^53: 16 digits
        recs: vec![rec],
    })
    .ok()
    .map(|b| b.len())
}
