//! Deterministic simulation: one server and several members, driven over the simulated network
//! of `sim/` with a seeded RNG and virtual time (delays, reordering, loss, duplication, crashes
//! with restart from "disk", partitions, leaves). Checks the guarantees after every step and
//! prints the failing seed with the command that replays it.
//!
//! This file holds the scenarios: the fault profiles, the script of one run (who starts,
//! types, crashes, is isolated and healed, leaves, and when) and the sweeps. It must not
//! perform outputs or move datagrams itself; the harness in `sim/` does that, for `replay.rs`
//! too.
//!
//! Profiles: `lossy`, `slow` and `hostile` run 1 to 5 members; `storms` runs big rings of 16,
//! 32, 64, 100 or 128 members (by seed, in turn): a join storm, a line or two from everyone,
//! crashes and restarts, a few members isolated and healed, then a leave storm of a third to a
//! half of the ring, a few more lines and quiet. A run ends once the replicas converged (G4 is
//! measured from the end of the script) and every member asked to leave has left.
//!
//! `MCAST_SIM_SEEDS=5000 cargo test --release --test simulation` runs longer sweeps (the
//! `storms` sweep runs a tenth as many seeds, at least one: a big ring costs far more per seed
//! than a small one); `MCAST_SIM_SEED=123 cargo test --test simulation replay --
//! --nocapture` replays one seed (`MCAST_SIM_PROFILE=lossy|slow|hostile|storms` picks one
//! profile, `MCAST_SIM_TRACE=1` prints every event, `MCAST_SIM_G4=1` prints how long each run
//! took to converge). The sweeps add an offset to their seeds (1,000,000 for `slow`, 2,000,000
//! for `hostile`, 3,000,000 for `storms`); a failure prints the seed to replay.

mod sim;

use mcast_chat::protocol::coordinator::{Coordinator, CoordinatorConfig};
use mcast_chat::protocol::member::{MemberConfig, MemberCore, Restored, REORDER_WAIT};
use mcast_chat::protocol::types::{GroupId, Incarnation, NodeId, Pending, Seq, ServerId};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sim::node::Core;
use sim::world::World;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The faults one run may inject.
#[derive(Clone, Debug)]
struct Faults {
    loss: f64,
    dup: f64,
    /// Bounds of each datagram's random delay.
    delay: (Duration, Duration),
    /// Crash-and-restart events for members and the server.
    crashes: bool,
    /// Isolate a member for a while, then heal.
    partitions: bool,
    /// One member leaves cleanly mid-run.
    leave: bool,
    /// A big ring of this many members, with join and leave storms (see [`Sim::write_storms`]).
    ring: Option<usize>,
    /// Loss of datagrams to one node alone, on top of `loss` (1: a firewall admits only the
    /// group's port, and the ring must get by through the group).
    direct_loss: f64,
    /// How many servers run (they all start at once, fresh).
    servers: usize,
    /// The primary component script instead (see [`Sim::write_quorum_script`]).
    quorum: bool,
    /// One of the measured scripts instead (see [`Scenario`]).
    scenario: Option<Scenario>,
    /// Unicast mode (`--peer`, every node given the servers): a send to the group becomes a
    /// send to each node that needs it, each copy lost on its own.
    unicast: bool,
}

/// A script that measures one thing, run on an otherwise quiet network.
#[derive(Clone, Copy, Debug)]
enum Scenario {
    /// This many lines typed at once (see [`Sim::write_flood`]).
    Flood(usize),
    /// A member's death for good, then a line (see [`Sim::write_death`]).
    Death,
    /// Lines at a steady rate per second, for a second (see [`Sim::write_paced`]).
    Paced(u64),
}

/// What happens to a node at a scripted instant.
#[derive(Clone, Debug)]
enum Action {
    Start,
    Type(String),
    Crash,
    Restart,
    /// Cut the node off from every other node.
    Isolate,
    /// Restore its links.
    Heal,
    /// Cut every link between the nodes in the set and the others.
    Split(Vec<usize>),
    /// Restore every link.
    HealAll,
    /// Crash for good: the node never comes back, and lines it typed but nobody delivered
    /// are no longer due.
    Die,
    Leave,
}

/// Joiners of the `quorum` script: members that first start during its partition, one on each
/// side (the last two members).
const JOINERS: usize = 2;

/// Seeds of the big-ring sweep by default (one ring of each size), and the factor by which it
/// divides `MCAST_SIM_SEEDS` (a big ring costs far more per seed than a small one).
const STORM_SEEDS: u64 = 5;
/// Seeds of the primary component sweep by default.
const QUORUM_SEEDS: u64 = 300;
/// Seeds of the unicast sweep by default.
const UNICAST_SEEDS: u64 = 200;
const STORM_SCALE_DOWN: u64 = 10;
/// When the flood script types, in ms: the ring formed long before.
const FLOOD_AT_MS: u64 = 2000;
/// Delays from here on are the original design's slow network (timers scale up with them).
const SLOW: Duration = Duration::from_millis(100);

/// One seeded run: the group, its script and the clocks that measure it.
struct Sim {
    seed: u64,
    /// The fault profile's name, for the replay command.
    profile: &'static str,
    start: Instant,
    faults: Faults,
    world: World,
    /// Scripted actions, latest first: (when, node, action).
    script: Vec<(Instant, usize, Action)>,
    token_timeout: Duration,
    steps: u64,
    last_time: Instant,
    steps_at_same_time: u64,
    /// The server's reconciliation tick (`--sync-interval`).
    next_sync: Instant,
    sync_interval: Duration,
    /// When the script (faults, heals and typing) ended: G4 is measured from here.
    quiet_since: Option<Instant>,
    /// Members asked to leave while up (and not crashed since): the run ends once they left.
    leaving: HashSet<usize>,
    /// Nodes `0..servers` are servers, the rest members.
    servers: usize,
    /// Nodes dead for good.
    dead: HashSet<usize>,
    /// When each line was typed, by id.
    typed_at: HashMap<Uuid, Instant>,
}

impl Sim {
    fn new(seed: u64, profile: &'static str, members: usize, faults: Faults) -> Sim {
        let start = Instant::now();
        let mut world = World::new(seed, start);
        world.net.set_loss(faults.loss);
        world.net.set_direct_loss(faults.direct_loss);
        world.net.dup(faults.dup);
        world.net.delay(faults.delay.0, faults.delay.1);
        if faults.unicast {
            world.set_unicast((0..faults.servers).collect());
        }
        for i in 0..faults.servers {
            let id = ServerId(i as u64 + 1);
            world.add_node(NodeId::server(id), format!("server{i}"));
        }
        for i in 0..members {
            let id = NodeId(Uuid::from_u128(world.net.rng().gen::<u128>() | 1));
            world.add_node(id, format!("m{i}"));
        }
        let slow = faults.delay.1 >= SLOW;
        let token_timeout = Duration::from_millis(if slow { 3000 } else { 300 });
        let faults_servers = faults.servers;
        let mut sim = Sim {
            seed,
            profile,
            start,
            faults,
            world,
            script: Vec::new(),
            token_timeout,
            steps: 0,
            last_time: start,
            steps_at_same_time: 0,
            next_sync: start,
            sync_interval: token_timeout * 10 / 3,
            quiet_since: None,
            leaving: HashSet::new(),
            servers: faults_servers,
            dead: HashSet::new(),
            typed_at: HashMap::new(),
        };
        match (sim.faults.ring, sim.faults.quorum, sim.faults.scenario) {
            (Some(_), _, _) => sim.write_storms(members),
            (None, true, _) => sim.write_quorum_script(members),
            (None, false, Some(Scenario::Flood(lines))) => sim.write_flood(members, lines),
            (None, false, Some(Scenario::Death)) => sim.write_death(members),
            (None, false, Some(Scenario::Paced(rate))) => sim.write_paced(members, rate),
            (None, false, None) => sim.write_script(members),
        }
        sim.script.sort_by_key(|(at, _, _)| *at);
        sim.script.reverse();
        sim
    }

    fn ms(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    fn rng(&mut self) -> &mut StdRng {
        self.world.net.rng()
    }

    fn now(&self) -> Instant {
        self.world.now()
    }

    /// The server's first member's node number, and the last's.
    fn member_range(&self) -> std::ops::RangeInclusive<usize> {
        self.servers..=self.world.nodes.len() - 1
    }

    fn write_script(&mut self, members: usize) {
        let scale = if self.faults.delay.1 >= SLOW { 10 } else { 1 };
        for server in 0..self.servers {
            self.script.push((self.start, server, Action::Start));
        }
        for i in self.servers..self.servers + members {
            let at = self.rng().gen_range(0..300 * scale);
            self.script.push((self.ms(at), i, Action::Start));
            let lines = self.rng().gen_range(3..12);
            for k in 0..lines {
                let at = self.rng().gen_range(0..3000 * scale);
                let text = format!("{}-{k}", self.world.nodes[i].name);
                self.script.push((self.ms(at), i, Action::Type(text)));
            }
        }
        if self.faults.crashes {
            for _ in 0..self.rng().gen_range(1..4) {
                let nodes = self.servers + members;
                let who = self.rng().gen_range(0..nodes);
                let at = self.rng().gen_range(200..3000 * scale);
                let down = self.rng().gen_range(50..1500 * scale);
                self.script.push((self.ms(at), who, Action::Crash));
                self.script.push((self.ms(at + down), who, Action::Restart));
            }
        }
        if self.faults.partitions {
            let range = self.member_range();
            let who = self.rng().gen_range(range);
            let at = self.rng().gen_range(200..3000 * scale);
            let len = self.rng().gen_range(100..2000 * scale);
            self.script.push((self.ms(at), who, Action::Isolate));
            self.script.push((self.ms(at + len), who, Action::Heal));
        }
        if self.faults.leave && members > 1 {
            let at = self.rng().gen_range(3000 * scale..4000 * scale);
            let last = self.servers + members - 1;
            self.script.push((self.ms(at), last, Action::Leave));
        }
    }

    /// The flood script: the server and the members start together; once the ring formed,
    /// every member types its share of `lines` in the same instant, and nothing else happens.
    fn write_flood(&mut self, members: usize, lines: usize) {
        self.script.push((self.start, 0, Action::Start));
        for i in 1..=members {
            self.script.push((self.start, i, Action::Start));
            for k in 0..lines / members {
                let text = format!("{}-{k}", self.world.nodes[i].name);
                self.script
                    .push((self.ms(FLOOD_AT_MS), i, Action::Type(text)));
            }
        }
    }

    /// The death script: the server and the members start together; once the ring formed
    /// and went quiet, one member dies for good, and a moment later another types a line.
    fn write_death(&mut self, members: usize) {
        for i in 0..=members {
            self.script.push((self.start, i, Action::Start));
        }
        let victim = self.rng().gen_range(1..=members);
        let typist = 1 + (victim + self.rng().gen_range(0..members - 1)) % members;
        self.script
            .push((self.ms(FLOOD_AT_MS), victim, Action::Die));
        let text = format!("{}-after", self.world.nodes[typist].name);
        let at = self.ms(FLOOD_AT_MS + 1);
        self.script.push((at, typist, Action::Type(text)));
    }

    /// The paced script: the server and the members start together; once the ring formed,
    /// `rate` lines a second for a second, taken by the members in turn.
    fn write_paced(&mut self, members: usize, rate: u64) {
        for i in 0..=members {
            self.script.push((self.start, i, Action::Start));
        }
        let gap = Duration::from_secs(1) / rate as u32;
        for k in 0..rate as usize {
            let who = 1 + k % members;
            let text = format!("{}-{k}", self.world.nodes[who].name);
            let at = self.ms(FLOOD_AT_MS) + gap * k as u32;
            self.script.push((at, who, Action::Type(text)));
        }
    }

    /// Every typed line's latency, from its typing until the last member delivered it.
    fn latencies(&self) -> Vec<Duration> {
        let members = self.servers..self.world.nodes.len();
        let mut out: Vec<Duration> = (self.typed_at.iter())
            .filter_map(|(id, typed)| {
                let deliveries = self.world.oracle.deliveries(*id).iter();
                let last = deliveries.filter(|(i, _)| members.contains(i)).map(|d| d.1);
                Some(last.max()?.saturating_duration_since(*typed))
            })
            .collect();
        out.sort();
        out
    }

    /// The big-ring script: a join storm (nine members in ten boot within the first second,
    /// the rest within four), a line or two from each, one to three crashes with restarts (the
    /// server's among them one time in four) and one to three members isolated, then healed,
    /// while the ring is busy; then a leave storm (a third to a half of the members within
    /// 200 ms), a line from one to three of those who stay, and quiet.
    fn write_storms(&mut self, members: usize) {
        self.script.push((self.start, 0, Action::Start));
        let storm = self.rng().gen_range(7000..8000);
        for i in 1..=members {
            let late = self.rng().gen_bool(0.1);
            let boot = self.rng().gen_range(0..if late { 4000 } else { 1000 });
            self.script.push((self.ms(boot), i, Action::Start));
            for k in 0..self.rng().gen_range(1..=2) {
                let at = self.rng().gen_range(boot..storm);
                let text = format!("{}-{k}", self.world.nodes[i].name);
                self.script.push((self.ms(at), i, Action::Type(text)));
            }
        }
        for _ in 0..self.rng().gen_range(1..=3) {
            let who = match self.rng().gen_bool(0.25) {
                true => 0,
                false => self.rng().gen_range(1..=members),
            };
            let at = self.rng().gen_range(500..storm);
            let down = self.rng().gen_range(50..1500);
            self.script.push((self.ms(at), who, Action::Crash));
            self.script.push((self.ms(at + down), who, Action::Restart));
        }
        let (at, len) = (
            self.rng().gen_range(500..6000),
            self.rng().gen_range(100..2000),
        );
        for _ in 0..self.rng().gen_range(1..=3) {
            let who = self.rng().gen_range(1..=members);
            self.script.push((self.ms(at), who, Action::Isolate));
            self.script.push((self.ms(at + len), who, Action::Heal));
        }
        let mut order: Vec<usize> = (1..=members).collect();
        order.shuffle(self.rng());
        let leavers = self.rng().gen_range(members / 3..=members / 2);
        for &who in &order[..leavers] {
            let at = storm + self.rng().gen_range(0..200);
            self.script.push((self.ms(at), who, Action::Leave));
        }
        for &who in order[leavers..].iter().take(self.rng().gen_range(1..=3)) {
            let at = storm + self.rng().gen_range(0..1000);
            let text = format!("{}-after", self.world.nodes[who].name);
            self.script.push((self.ms(at), who, Action::Type(text)));
        }
    }

    /// The primary component script: the servers start together (fresh, so two of them may
    /// each start a chat and one must give its up), one to five members within 300 ms, typing
    /// for 3 s. Then, one after another with 2 to 3 s between them to recover, two to five of:
    /// a partition into two sides that outlasts every timeout, with a joiner starting and
    /// typing on each side; the same with a power cut (see [`Sim::write_split`]); one node's
    /// death for good (a server, maybe the first, or a member of a ring of three or more); and
    /// crashes of servers and members that come back (a server after the others took over).
    fn write_quorum_script(&mut self, members: usize) {
        for server in 0..self.servers {
            self.script.push((self.start, server, Action::Start));
        }
        let first_joiner = self.servers + members - JOINERS;
        for i in self.servers..first_joiner {
            let at = self.rng().gen_range(0..300);
            self.script.push((self.ms(at), i, Action::Start));
            for k in 0..self.rng().gen_range(2..6) {
                let at = self.rng().gen_range(0..3000);
                let text = format!("{}-{k}", self.world.nodes[i].name);
                self.script.push((self.ms(at), i, Action::Type(text)));
            }
        }
        let mut events = ["split", "power cut", "die", "crash", "crash"];
        events.shuffle(self.rng());
        let mut at = self.rng().gen_range(1000..2000);
        let mut dead = None;
        // A ring of fewer than three loses no member for good: with its last one, or with
        // the only one that did not restart, nobody could tell what its ring delivered.
        let mortal = match first_joiner - self.servers {
            n if n >= 3 => first_joiner,
            _ => self.servers,
        };
        for event in events.iter().take(self.rng().gen_range(2..=5)) {
            let alive: Vec<usize> = (0..first_joiner).filter(|i| Some(*i) != dead).collect();
            let len = self.rng().gen_range(1500..4000);
            match *event {
                "split" => self.write_split(at, len, &alive, first_joiner, false),
                "power cut" => self.write_split(at, len, &alive, first_joiner, true),
                "die" => {
                    let who = self.rng().gen_range(0..mortal);
                    if dead.is_none() && alive.contains(&who) {
                        dead = Some(who);
                        self.script.push((self.ms(at), who, Action::Die));
                    }
                }
                _ => {
                    let who = alive[self.rng().gen_range(0..alive.len())];
                    let down = self.rng().gen_range(100..1500);
                    self.script.push((self.ms(at), who, Action::Crash));
                    self.script.push((self.ms(at + down), who, Action::Restart));
                }
            }
            self.write_lines(at, at + len, &alive);
            at += len + self.rng().gen_range(2000..3000);
        }
        // Joiners of a script without a partition start late, on a whole network.
        for j in first_joiner..self.servers + members {
            if !self.script.iter().any(|(_, who, _)| *who == j) {
                self.script.push((self.ms(at), j, Action::Start));
                let text = format!("{}-late", self.world.nodes[j].name);
                self.script.push((self.ms(at + 100), j, Action::Type(text)));
            }
        }
    }

    /// A partition from `at` for `len` ms into two random sides of the `alive` nodes, with a
    /// joiner (from `first_joiner` on) starting and typing on each side. With `power_cut`, the
    /// members on the side with more servers crash as it begins (lines in flight) and come
    /// back soon: that side's server hears only members that restarted, while the other side
    /// may hold what they lost.
    fn write_split(
        &mut self,
        at: u64,
        len: u64,
        alive: &[usize],
        first_joiner: usize,
        power_cut: bool,
    ) {
        let mut nodes = alive.to_vec();
        nodes.shuffle(self.rng());
        let cut = self.rng().gen_range(1..nodes.len());
        let mut side: Vec<usize> = nodes[..cut].to_vec();
        if power_cut {
            let servers = self.servers;
            let servers_in = |set: &[usize]| set.iter().filter(|i| **i < servers).count();
            let other = &nodes[cut..];
            let hit = match servers_in(&side) >= servers_in(other) {
                true => side.clone(),
                false => other.to_vec(),
            };
            self.write_lines(at.saturating_sub(30), at, alive);
            let up = at + self.rng().gen_range(50..300);
            for who in hit.into_iter().filter(|i| *i >= servers) {
                self.script.push((self.ms(at), who, Action::Crash));
                self.script.push((self.ms(up), who, Action::Restart));
            }
        }
        side.push(first_joiner);
        self.script.push((self.ms(at), 0, Action::Split(side)));
        self.script.push((self.ms(at + len), 0, Action::HealAll));
        for j in first_joiner..first_joiner + JOINERS {
            let start = at + self.rng().gen_range(0..len / 2);
            self.script.push((self.ms(start), j, Action::Start));
            let typed = self.rng().gen_range(start..at + len);
            let text = format!("{}-split", self.world.nodes[j].name);
            self.script.push((self.ms(typed), j, Action::Type(text)));
        }
    }

    /// A line from some of the `alive` members between `from` and `to` ms.
    fn write_lines(&mut self, from: u64, to: u64, alive: &[usize]) {
        let servers = self.servers;
        for &i in alive.iter().filter(|i| **i >= servers) {
            if self.rng().gen_bool(0.5) {
                let at = self.rng().gen_range(from..to);
                let text = format!("{}-{at}", self.world.nodes[i].name);
                self.script.push((self.ms(at), i, Action::Type(text)));
            }
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "seed {} ({} profile) failed at t={:?} after {} steps: {what}\nreplay: \
             MCAST_SIM_SEED={} MCAST_SIM_PROFILE={} cargo test --test simulation replay -- --nocapture",
            self.seed,
            self.profile,
            self.now() - self.start,
            self.steps,
            self.seed,
            self.profile
        );
    }

    /// Fails the run with the seed if a check failed.
    fn check(&self, result: Result<(), String>) {
        if let Err(what) = result {
            self.fail(&what);
        }
    }

    /// Performs node `i`'s outputs; fails with the seed on a violation.
    fn drain(&mut self, i: usize) {
        let drained = self.world.drain(i);
        self.check(drained);
    }

    // ---- driving ----

    fn next_event(&self) -> Option<Instant> {
        let net = self.world.net.next_arrival();
        let script = self.script.last().map(|s| s.0);
        let any_server = (0..self.servers).any(|i| self.world.nodes[i].core.is_some());
        let sync = any_server.then_some(self.next_sync);
        let timers = self.world.next_timer();
        [net, script, sync, timers].into_iter().flatten().min()
    }

    /// Jumps to the next event and handles it: a scripted action, the server's sync tick, a
    /// datagram, or every timer that is due. Then checks the invariants.
    fn step(&mut self) -> bool {
        let Some(at) = self.next_event() else {
            return false;
        };
        self.world.net.advance_to(at);
        let now = self.now();
        self.steps += 1;
        if self.script.last().is_some_and(|s| s.0 <= now) {
            let Some((_, who, action)) = self.script.pop() else {
                return false;
            };
            self.act(who, action);
            if self.script.is_empty() {
                self.quiet_since = Some(now);
            }
        } else if self.next_sync <= now
            && (0..self.servers).any(|i| self.world.nodes[i].core.is_some())
        {
            self.next_sync = now + self.sync_interval;
            for server in 0..self.servers {
                if let Some(Core::Server(c)) = &mut self.world.nodes[server].core {
                    c.handle_sync(now);
                }
                self.drain(server);
            }
        } else if self.world.net.next_arrival().is_some_and(|t| t <= now) {
            let received = self.world.receive_next().map(|_| ());
            self.check(received);
        } else {
            let fired = self.world.fire_due_timers();
            self.check(fired);
        }
        self.check(self.world.check_token_holders());
        self.check_time_advances(at);
        true
    }

    /// A timer that stays due after it ran is a livelock: name the node.
    fn check_time_advances(&mut self, at: Instant) {
        if at < self.last_time {
            return;
        }
        if at > self.last_time {
            self.last_time = at;
            self.steps_at_same_time = 0;
            return;
        }
        self.steps_at_same_time += 1;
        if self.steps_at_same_time > 100_000 {
            let due = self.world.due();
            if self.world.trace {
                for &i in &due {
                    if let Some(m) = self.world.nodes[i].member() {
                        eprintln!("node {i}: {m:#?}");
                    }
                }
            }
            self.fail(&format!(
                "livelock: timers of nodes {due:?} stay due\n{}",
                self.world.summary()
            ));
        }
    }

    fn act(&mut self, who: usize, action: Action) {
        self.world
            .trace(|| format!("{} {action:?}", self.world.nodes[who].name));
        match action {
            Action::Start | Action::Restart => self.boot(who),
            Action::Type(text) => self.type_line(who, text),
            Action::Crash => {
                self.leaving.remove(&who); // it comes back as a member
                self.world.crash(who);
            }
            Action::Isolate => self.world.net.isolate(who),
            Action::Heal => self.world.net.heal(who),
            Action::Split(side) => {
                let others: Vec<usize> = (0..self.world.nodes.len())
                    .filter(|i| !side.contains(i))
                    .collect();
                for &a in &side {
                    for &b in &others {
                        self.world.net.cut(a, b);
                    }
                }
            }
            Action::HealAll => self.world.net.heal_all(),
            Action::Die => {
                self.leaving.remove(&who);
                self.dead.insert(who);
                self.world.crash(who);
                self.world.oracle.abandon(who);
            }
            Action::Leave => {
                let now = self.now();
                if let Some(m) = self.world.nodes[who].member_mut() {
                    m.leave(now);
                    self.leaving.insert(who);
                    self.drain(who);
                }
            }
        }
    }

    /// Starts a node, or restarts it from its disk.
    fn boot(&mut self, who: usize) {
        let node = &self.world.nodes[who];
        if node.core.is_some() || node.left || self.dead.contains(&who) {
            return;
        }
        let now = self.now();
        let delivered = Seq(node.disk.replica.len() as u64);
        let core = if who < self.servers {
            // Every timer keeps its real-life ratio to the token timeout (3 s by default).
            let tt = self.token_timeout;
            let mut cfg = CoordinatorConfig::new(tt);
            cfg.probe = tt * 5 / 6;
            cfg.beacon_interval = tt / 3;
            cfg.gather_resend = tt / 15;
            cfg.server_id = ServerId(who as u64 + 1);
            let vote = node.disk.vote.clone();
            cfg.new_group = GroupId(self.rng().gen_range(1..1 << 53));
            cfg.incarnation = Incarnation(self.rng().gen());
            Core::Server(Box::new(Coordinator::new(cfg, vote, delivered, now)))
        } else {
            // Restart: the outbox as persisted, minus lines the replica already holds.
            let in_replica: HashSet<Uuid> = node.disk.replica.iter().map(|r| r.id).collect();
            let outbox = node
                .disk
                .outbox
                .iter()
                .filter(|p| !in_replica.contains(&p.id))
                .cloned()
                .collect();
            let (id, name) = (node.id, node.name.clone());
            let mut cfg = MemberConfig::new(id, name, Incarnation(self.rng().gen()));
            cfg.join_timeout = Duration::from_secs(3600);
            let tt = self.token_timeout;
            cfg.idle_hold = tt / 30;
            cfg.hello_interval = tt / 15;
            if self.faults.delay.1 < SLOW {
                cfg.server_silence = Duration::from_millis(500);
                // Longer than any partition: a leaver cut off from the server may hold lines
                // nobody else has, and stays until the server confirms.
                cfg.leave_timeout = Duration::from_secs(5);
            }
            let vote = self.world.nodes[who].disk.vote.clone();
            let restored = Restored {
                delivered,
                outbox,
                vote,
            };
            Core::Member(Box::new(MemberCore::new(cfg, restored, now)))
        };
        self.world.start(who, core);
    }

    fn type_line(&mut self, who: usize, text: String) {
        let now = self.now();
        let up = self.world.nodes[who]
            .member()
            .is_some_and(|m| !m.is_stopped());
        if !up {
            return; // nobody at the keyboard of a crashed node
        }
        let line = Pending {
            id: Uuid::from_u128(self.rng().gen()),
            text,
            sent_at_ms: 0,
        };
        // On disk first (the outbox), then into the core.
        self.world.oracle.typed(who, line.id, &line.text);
        self.typed_at.insert(line.id, now);
        let node = &mut self.world.nodes[who];
        if let Some(Core::Member(m)) = &mut node.core {
            node.disk.outbox = m.outbox().cloned().chain([line.clone()]).collect();
            m.submit(now, vec![line]);
        }
        self.drain(who);
    }
}

/// Picks the faults of one run from its seed and a second RNG seeded by it.
type Profile = fn(u64, &mut StdRng) -> Faults;

/// Every profile, by the name `MCAST_SIM_PROFILE` gives it.
const PROFILES: [(&str, Profile); 6] = [
    ("lossy", lossy),
    ("slow", slow),
    ("hostile", hostile),
    ("storms", storms),
    ("quorum", quorum),
    ("unicast", unicast),
];

/// Runs one seeded scenario to convergence or fails with the seed; returns how often its
/// members collected the arus themselves.
fn run(seed: u64, profile: &'static str) -> u64 {
    let Some(&(_, faults_for)) = PROFILES.iter().find(|(name, _)| *name == profile) else {
        panic!("no profile {profile}");
    };
    let mut pick = StdRng::seed_from_u64(seed ^ 0x5eed);
    let faults = faults_for(seed, &mut pick);
    let members = match (faults.ring, faults.quorum) {
        (Some(ring), _) => ring,
        (None, true) => pick.gen_range(1..=5) + JOINERS,
        (None, false) => pick.gen_range(1..=5),
    };
    let mut sim = Sim::new(seed, profile, members, faults);
    sim.drive();
    sim.collects()
}

impl Sim {
    /// Steps the run until its replicas converged and every member asked to leave has left,
    /// or fails with the seed. Returns how long the replicas took to converge after the
    /// script ended.
    fn drive(&mut self) -> Duration {
        let slow = self.faults.delay.1 >= SLOW;
        let deadline = self.start + Duration::from_secs(if slow { 600 } else { 120 });
        let mut converged = None;
        while self.now() < deadline && self.steps < 20_000_000 {
            if !self.step() {
                break;
            }
            if converged.is_none() {
                if !self.script.is_empty() || !self.world.converged() {
                    continue;
                }
                // With the script over, nothing new is typed and nobody restarts: converged
                // replicas stay converged (the oracle checks every later delivery still).
                converged = Some(self.check_g4());
            }
            // Replicas converged; a leave still under way must end too.
            if let Some(took) =
                converged.filter(|_| self.leaving.iter().all(|&i| self.world.nodes[i].left))
            {
                if std::env::var_os("MCAST_SIM_G4").is_some() {
                    let (end, steps) = (self.now() - self.start, self.steps);
                    eprintln!("end {} at {end:?} after {steps} steps", self.seed);
                }
                return took;
            }
        }
        let what = match converged {
            Some(_) => format!("members {:?} did not finish leaving", self.leaving),
            None => "did not converge".into(),
        };
        self.fail(&format!("{what}\n{}", self.world.summary()));
    }
}

impl Sim {
    /// Token holdings in which a member collected the arus itself (as far as the members
    /// that are up at the end counted them).
    fn collects(&self) -> u64 {
        let members = self.world.nodes.iter().filter_map(|n| match &n.core {
            Some(Core::Member(m)) => Some(m.stats().collects),
            _ => None,
        });
        members.sum()
    }

    /// G4, once the replicas first converged after the script ended.
    fn check_g4(&self) -> Duration {
        if self.world.net.is_partitioned() {
            self.fail("the script ended with the network still partitioned");
        }
        // The script ends with the last fault, heal, leave or line.
        let quiet = self.quiet_since.unwrap_or(self.start);
        let took = self.now().saturating_duration_since(quiet);
        // G4: after faults stop, replicas converge within one sync interval, plus the
        // recovery round that may be under way when they stop, plus two token rotations at
        // the slowest hop: in a big ring a rotation is no longer small beside the sync
        // interval, as it is with the real 10 s interval.
        // A hop takes at most the largest delay, plus the wait of a pass for packs it overtook.
        let members = self.world.nodes.len().saturating_sub(1) as u32;
        let rotation = (self.faults.delay.1 + REORDER_WAIT) * members;
        let bound = self.sync_interval + self.token_timeout * 2 + rotation * 2;
        if took > bound {
            self.fail(&format!(
                "G4: converged {took:?} after the last fault (bound {bound:?})"
            ));
        }
        if std::env::var_os("MCAST_SIM_G4").is_some() {
            eprintln!(
                "G4 {} {} members {:.3}",
                self.seed,
                self.world.nodes.len() - 1,
                took.as_secs_f64() / self.token_timeout.as_secs_f64()
            );
        }
        took
    }
}

/// The seeds of a sweep: `0..default`, or `0..MCAST_SIM_SEEDS / scale_down` (at least one).
/// `MCAST_SIM_SEED` does not change them (only `replay` reads it), so a sweep never passes by
/// running nothing.
fn seeds(default: u64, scale_down: u64) -> std::ops::Range<u64> {
    let n = match std::env::var("MCAST_SIM_SEEDS") {
        Ok(v) => v.parse::<u64>().expect("MCAST_SIM_SEEDS is a number"),
        Err(_) => return 0..default,
    };
    assert!(n > 0, "MCAST_SIM_SEEDS=0 would check nothing");
    0..(n / scale_down).max(1)
}

/// Delays of 0 to `ms` ms.
fn up_to_ms(ms: u64) -> (Duration, Duration) {
    (Duration::ZERO, Duration::from_millis(ms))
}

fn lossy(_: u64, rng: &mut StdRng) -> Faults {
    Faults {
        loss: rng.gen_range(0.0..0.1),
        dup: rng.gen_range(0.0..0.1),
        delay: up_to_ms(rng.gen_range(1..10)),
        crashes: false,
        partitions: false,
        leave: rng.gen_bool(0.3),
        ring: None,
        direct_loss: 0.0,
        servers: 1,
        quorum: false,
        scenario: None,
        unicast: false,
    }
}

fn slow(_: u64, rng: &mut StdRng) -> Faults {
    Faults {
        loss: rng.gen_range(0.0..0.03),
        dup: rng.gen_range(0.0..0.05),
        delay: (Duration::from_millis(100), Duration::from_secs(1)),
        crashes: false,
        partitions: false,
        leave: false,
        ring: None,
        direct_loss: 0.0,
        servers: 1,
        quorum: false,
        scenario: None,
        unicast: false,
    }
}

fn hostile(_: u64, rng: &mut StdRng) -> Faults {
    Faults {
        loss: rng.gen_range(0.0..0.05),
        dup: rng.gen_range(0.0..0.05),
        delay: up_to_ms(rng.gen_range(1..10)),
        crashes: true,
        partitions: rng.gen_bool(0.5),
        leave: rng.gen_bool(0.3),
        ring: None,
        // One run in five behind a firewall that drops every direct datagram.
        direct_loss: if rng.gen_bool(0.2) { 1.0 } else { 0.0 },
        servers: 1,
        quorum: false,
        scenario: None,
        unicast: false,
    }
}

/// The sizes of the big rings, taken in turn by seed (so any five seeds in a row cover all).
const RINGS: [usize; 5] = [16, 32, 64, 100, 128];

/// Big rings with join and leave storms, crashes and partitions, at modest loss and
/// duplication (the script is [`Sim::write_storms`]).
fn storms(seed: u64, rng: &mut StdRng) -> Faults {
    Faults {
        loss: rng.gen_range(0.0..0.03),
        dup: rng.gen_range(0.0..0.03),
        delay: up_to_ms(rng.gen_range(1..10)),
        crashes: true,
        partitions: true,
        leave: true,
        ring: Some(RINGS[(seed % RINGS.len() as u64) as usize]),
        direct_loss: 0.0,
        servers: 1,
        quorum: false,
        scenario: None,
        unicast: false,
    }
}

/// Two or three servers, partitions on two sides that outlast every timeout with joiners on
/// both, deaths for good of any node, servers that return while another coordinates (the
/// script is [`Sim::write_quorum_script`]), at modest loss and duplication.
fn quorum(_: u64, rng: &mut StdRng) -> Faults {
    Faults {
        loss: rng.gen_range(0.0..0.03),
        dup: rng.gen_range(0.0..0.03),
        delay: up_to_ms(rng.gen_range(1..10)),
        crashes: true,
        partitions: true,
        leave: false,
        ring: None,
        direct_loss: 0.0,
        servers: rng.gen_range(2..=3),
        quorum: true,
        scenario: None,
        unicast: false,
    }
}

/// The faults of `hostile` (three seeds in four), `quorum` (one in four) or now and then
/// `storms`, in unicast mode.
fn unicast(seed: u64, rng: &mut StdRng) -> Faults {
    let faults = match seed % 50 {
        7 => storms(seed / 50, rng),
        n if n % 4 == 0 => quorum(seed, rng),
        _ => hostile(seed, rng),
    };
    Faults {
        direct_loss: 0.0,
        unicast: true,
        ..faults
    }
}

/// G1 and exactly-once (G2) under delay, reordering, loss and duplication, with joins and
/// leaves; G3 (one line per epoch and seq, one holder) throughout.
#[test]
fn g1_total_order_and_exactly_once_under_loss_dup_and_reordering() {
    let collects: u64 = seeds(300, 1).map(|seed| run(seed, "lossy")).sum();
    // Quiet rings of three or more collect: the sweep must have covered that path.
    assert!(collects > 0, "no run collected arus");
}

/// The original design's network: every datagram delayed 100 ms to 1 s.
#[test]
fn g1_g2_under_the_original_100ms_to_1s_delays() {
    for seed in seeds(40, 1) {
        run(1_000_000 + seed, "slow");
    }
}

/// G1 to G4 with crashes (members and the server) restarting from disk, and partitions.
#[test]
fn g1_to_g4_under_crashes_and_partitions() {
    for seed in seeds(500, 1) {
        run(2_000_000 + seed, "hostile");
    }
}

/// G1 to G4 in rings of 16 to 128 members: join storm, crashes, partitions, leave storm.
#[test]
fn g1_to_g4_in_rings_of_up_to_128_with_join_and_leave_storms() {
    for seed in seeds(STORM_SEEDS, STORM_SCALE_DOWN) {
        run(3_000_000 + seed, "storms");
    }
}

/// G1 with no exception, and G4, with 2 or 3 servers: partitions into two sides that outlast
/// every timeout (joiners typing on both), deaths for good of any node, the coordinating
/// server included, and servers that return while another coordinates. The oracle checks the
/// quorum chain at every view formed.
#[test]
fn g1_g4_primary_component_with_several_servers_partitions_and_deaths_for_good() {
    for seed in seeds(QUORUM_SEEDS, 1) {
        run(4_000_000 + seed, "quorum");
    }
}

/// G1 to G4 in unicast mode: crashes, partitions, several servers and now and then a big
/// ring, where a send to the group reaches only the nodes the sender knows of (see
/// `mcast_chat::protocol::peers`).
#[test]
fn g1_to_g4_over_unicast_fan_out() {
    for seed in seeds(UNICAST_SEEDS, 1) {
        run(5_000_000 + seed, "unicast");
    }
}

/// A LAN's delays, 50 to 150 µs a datagram, at loss `loss` on every link and no other
/// fault: where the measured scripts run.
fn lan(loss: f64, scenario: Scenario) -> Faults {
    Faults {
        loss,
        dup: 0.0,
        delay: (Duration::from_micros(50), Duration::from_micros(150)),
        crashes: false,
        partitions: false,
        leave: false,
        ring: None,
        direct_loss: 0.0,
        servers: 1,
        quorum: false,
        scenario: Some(scenario),
        unicast: false,
    }
}

/// Virtual time for `members` members to deliver a flood of `lines` lines on a LAN at
/// `loss`, with every guarantee checked on the way.
fn flood_time(seed: u64, members: usize, loss: f64, lines: usize) -> Duration {
    let mut sim = Sim::new(seed, "flood", members, lan(loss, Scenario::Flood(lines)));
    sim.drive()
}

/// Loss costs bandwidth, not time: a flood delivered at 1 % loss on every link takes at most
/// 1.25 times as long as without loss (80 % of the throughput), at 5 % at most twice as long
/// (50 %). Medians over seeds, at 4 and 8 members.
#[test]
fn a_flood_at_1_and_5_percent_loss_keeps_most_of_its_throughput() {
    const LINES: usize = 2000;
    for members in [4, 8] {
        let median = |loss: f64| {
            let mut times: Vec<Duration> = seeds(9, 1)
                .map(|seed| flood_time(5_000_000 + seed, members, loss, LINES))
                .collect();
            times.sort();
            times[times.len() / 2]
        };
        let lossless = median(0.0);
        for (loss, least) in [(0.01, 0.8), (0.05, 0.5)] {
            let lossy = median(loss);
            let ratio = lossless.as_secs_f64() / lossy.as_secs_f64();
            eprintln!(
                "{members} members, {LINES} lines: {lossless:?} lossless, {lossy:?} at {}% loss: \
                 {:.0}% of the throughput",
                loss * 100.0,
                ratio * 100.0
            );
            assert!(
                ratio >= least,
                "{members} members at {}% loss keep {:.0}% of the lossless throughput, \
                 under the goal of {:.0}%",
                loss * 100.0,
                ratio * 100.0,
                least * 100.0
            );
        }
    }
}

/// A member that dies for good holds up the ring for a quarter of the token timeout and a
/// recovery, not for the whole token timeout: the member waiting on it tells the server,
/// which gathers at once. From the line typed after the death until every survivor and the
/// archive hold it, at 1 % loss: less than the token timeout in each of the sweep's default
/// seeds (0.6 to 0.8 times it; 1.3 to 1.7 times when the server waits out its timeout). Longer
/// sweeps find tails above it (seed 6000039: 1.27 times, not yet traced).
#[test]
fn a_dead_member_holds_up_the_ring_for_less_than_the_token_timeout() {
    let mut worst = Duration::ZERO;
    for seed in seeds(30, 1) {
        let members = 2 + (seed % 4) as usize;
        let mut sim = Sim::new(
            6_000_000 + seed,
            "death",
            members,
            lan(0.01, Scenario::Death),
        );
        let took = sim.drive();
        let bound = sim.token_timeout;
        if took > bound {
            sim.fail(&format!(
                "the ring moved again {took:?} after the death (bound {bound:?})"
            ));
        }
        worst = worst.max(took);
    }
    eprintln!("worst time from a death to the ring moving again: {worst:?}");
}

/// Loss costs no waiting, on a LAN with loss on every link, 8 members: at 1,000 lines a
/// second and 1 % loss, 99 % of the lines are delivered by every member within 10 ms of their
/// typing; at 20 lines a second (the ring idles between them, so each line first asks for the
/// token) and 5 % loss, 90 % are. In each of the default seeds; longer sweeps find tails
/// (seed 7000016: p99 13 ms).
#[test]
fn paced_and_sporadic_lines_under_loss_arrive_within_10_ms() {
    for (rate, loss, share) in [(1000, 0.01, 99), (20, 0.05, 90)] {
        let mut worst = Duration::ZERO;
        for seed in seeds(5, 1) {
            let faults = lan(loss, Scenario::Paced(rate));
            let mut sim = Sim::new(7_000_000 + seed, "paced", 8, faults);
            sim.drive();
            let latencies = sim.latencies();
            assert_eq!(latencies.len(), rate as usize, "every line delivered");
            let at = latencies[latencies.len() * share / 100];
            if at > Duration::from_millis(10) {
                let median = latencies[latencies.len() / 2];
                sim.fail(&format!("{rate}/s: p{share} {at:?} (p50 {median:?})"));
            }
            worst = worst.max(at);
        }
        eprintln!(
            "{rate} lines/s at {}% loss: worst p{share} {worst:?}",
            loss * 100.0
        );
    }
}

/// Replays one seed with `MCAST_SIM_SEED=N`, under every fault profile or the one named by
/// `MCAST_SIM_PROFILE`; `MCAST_SIM_TRACE=1` prints every event.
#[test]
fn replay() {
    let Ok(seed) = std::env::var("MCAST_SIM_SEED") else {
        return; // the sweeps run every seed; this test only replays one on request
    };
    let seed: u64 = seed.parse().expect("MCAST_SIM_SEED is a number");
    let profile = std::env::var("MCAST_SIM_PROFILE").unwrap_or_default();
    let names: Vec<&str> = PROFILES.iter().map(|(name, _)| *name).collect();
    assert!(
        profile.is_empty() || names.contains(&profile.as_str()),
        "MCAST_SIM_PROFILE is one of {names:?}"
    );
    for name in names {
        if profile.is_empty() || profile == name {
            eprintln!("replaying seed {seed} under the {name} profile");
            run(seed, name);
        }
    }
}
