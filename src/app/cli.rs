//! Command line: clap structs for both binaries and their conversion into validated configs.
//!
//! [`ServerCli`] and [`ClientCli`] are what the user typed (DESIGN §5); [`ServerConfig`] and
//! [`ClientConfig`] are what `run` consumes. Every check that needs nothing but the text lives
//! in a clap value parser, so a bad flag is a clap error (exit 2 with clap's message);
//! `into_config` cannot fail, and takes the interface that `--interface` named and the
//! addresses of the `--peer`s, which [`super::setup`] looked up.
//!
//! What this module must not do: no I/O beyond reading `$USER` for a default name, no protocol
//! logic, and no checks that need the data dir (such as which identities exist there).

use crate::protocol::limits::{is_clean_name, MAX_NAME_BYTES};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};
use uuid::Uuid;

use crate::net::iface::InterfaceSpec;
use crate::net::peer::PeerSpec;
use crate::net::{Local, NetConfig, SimConfig, UnicastConfig};
use crate::store::Durability;
use clap::builder::{PossibleValuesParser, TypedValueParser};

/// Longest duration any flag accepts: larger values are typos, and would overflow timers.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Help headings, in the order `--help` shows them: what a user does, most-used first.
const CHAT: &str = "Chat";
const SERVER: &str = "Server";
const NETWORK: &str = "Network";
const STORAGE: &str = "Storage and durability";
const SECURITY: &str = "Security";
const TESTING: &str = "Testing the network";
const INSTALLATION: &str = "Installation";

/// Flags shared by `server` and `client`.
#[derive(Args, Clone, Debug)]
pub struct CommonArgs {
    /// Multicast group to join and send to: IPv4, or IPv6 such as ff02::114 (one link) or
    /// ff05::114 (a site, across routers that forward it)
    #[arg(long, value_name = "ADDR", default_value = "224.1.1.1", value_parser = parse_group,
          help_heading = NETWORK)]
    pub group: IpAddr,

    /// UDP port of the group; in unicast mode (--peer), the port a server listens on
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PORT,
          value_parser = clap::value_parser!(u16).range(1..), help_heading = NETWORK)]
    pub port: u16,

    /// Unicast mode, for networks that carry no multicast (Wi-Fi that keeps clients apart,
    /// clouds, VPNs, routed networks): a node to reach, as HOST:PORT ([fd00::1]:5007 for
    /// IPv6); a server, or any node already in the chat. Repeat it for several servers
    #[arg(long = "peer", value_name = "ADDR:PORT", help_heading = NETWORK)]
    pub peers: Vec<PeerSpec>,

    /// Local interface to join and send on, by name (eth0, lo) or address (192.168.1.23,
    /// fe80::1%eth0): 127.0.0.1 keeps the chat on this host, a LAN interface takes it to the
    /// LAN. `--interface list` lists this host's interfaces
    #[arg(long, value_name = "NAME_OR_ADDR", default_value = "127.0.0.1",
          value_parser = parse_interface, help_heading = NETWORK)]
    pub interface: InterfaceArg,

    /// Multicast TTL, or IPv6 hop limit (0 = this host only, 1 = this LAN segment)
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(0..=255), help_heading = NETWORK)]
    pub ttl: u32,

    /// Directory of the replica, checkpoint and lock files
    #[arg(long, value_name = "DIR", default_value = ".", help_heading = STORAGE,
          value_hint = clap::ValueHint::DirPath)]
    pub data_dir: PathBuf,

    /// How often to write a checkpoint, e.g. 5s
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_interval,
          help_heading = STORAGE)]
    pub checkpoint_interval: Duration,

    /// What writes survive: page-cache (appends survive a crash of the process, not a power
    /// loss; fastest) or fsync (an accepted line and every delivered batch are on the disk
    /// before anything that depends on them goes out; survives a power loss)
    #[arg(long, value_name = "MODE", default_value = "page-cache", help_heading = STORAGE,
          value_parser = PossibleValuesParser::new(["page-cache", "fsync"])
              .try_map(|s| parse_durability(&s)))]
    pub durability: Durability,

    /// Shared secret (a file of at least 16 bytes, the same on every node): seal and
    /// authenticate every datagram. Without it anyone who reaches the group can read and post
    #[arg(long, value_name = "PATH", help_heading = SECURITY,
          value_hint = clap::ValueHint::FilePath)]
    pub key_file: Option<PathBuf>,

    /// Simulated latency of each outgoing datagram, uniformly random in MIN..MAX
    /// (e.g. 100ms..1s; a single DUR is a fixed delay). Off by default
    #[arg(long, value_name = "MIN..MAX", value_parser = parse_delay, help_heading = TESTING)]
    pub delay: Option<(Duration, Duration)>,

    /// Simulated probability of dropping an outgoing datagram, 0..=1
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability,
          help_heading = TESTING)]
    pub loss: f64,

    /// Simulated probability of sending an outgoing datagram twice, 0..=1
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability,
          help_heading = TESTING)]
    pub dup: f64,

    /// Seed of the simulated network (random when absent; the seed used is logged)
    #[arg(long, value_name = "N", help_heading = TESTING)]
    pub seed: Option<u64>,

    #[command(flatten)]
    pub setup: SetupArgs,
}

/// What `--interface` says: an interface, or `list` to print them all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterfaceArg {
    /// `--interface list`: print this host's interfaces and exit.
    List,
    /// A name or an address, resolved at start.
    Spec(InterfaceSpec),
}

/// Flags that print something for installing the program, then exit 0 without running it.
#[derive(Args, Clone, Debug, Default)]
pub struct SetupArgs {
    /// Print a completion script for SHELL on stdout, then exit
    #[arg(long, value_name = "SHELL", help_heading = INSTALLATION)]
    pub completions: Option<clap_complete::Shell>,

    /// Print the man page (roff) on stdout, then exit
    #[arg(long, help_heading = INSTALLATION)]
    pub man: bool,
}

/// `server`: coordinates membership and token recovery, archives and reconciles the history.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "server",
    version,
    about = "mcast-chat server: answers joins, recovers the token, archives and reconciles the history"
)]
pub struct ServerCli {
    /// No token progress for this long: regenerate the token in a new epoch
    #[arg(long, value_name = "DUR", default_value = "3s", value_parser = parse_interval,
          help_heading = SERVER)]
    pub token_timeout: Duration,

    /// How often to reconcile replicas with the group
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_interval,
          help_heading = SERVER)]
    pub sync_interval: Duration,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// `client`: a ring member that sends stdin lines and prints delivered messages.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "client",
    version,
    about = "mcast-chat client: each stdin line is a message; delivered messages go to stdout"
)]
pub struct ClientCli {
    /// Name shown with your messages (1 to 32 bytes) [default: the resumed identity's name,
    /// else $USER]
    #[arg(long, value_name = "NAME", value_parser = parse_name, help_heading = CHAT)]
    pub name: Option<String>,

    /// Continue an identity whose files are in the data dir, by its name or uuid; alone, the
    /// only one there
    #[arg(long, value_name = "NAME_OR_UUID", num_args = 0..=1, help_heading = CHAT,
          value_parser = parse_resume)]
    pub resume: Option<Option<String>>,

    /// Do not ring the terminal bell when a message mentions your name
    #[arg(long, help_heading = CHAT)]
    pub no_bell: bool,

    /// Print one JSON object per line instead of text
    #[arg(long, help_heading = CHAT)]
    pub json: bool,

    /// Give up (exit 1) when no server answers the join within this time
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_interval,
          help_heading = CHAT)]
    pub join_timeout: Duration,

    /// In unicast mode (--peer), the UDP port this client listens on (by default one the
    /// system picks; give one to open it in a firewall)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..),
          help_heading = NETWORK)]
    pub listen_port: Option<u16>,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// Validated settings shared by both binaries.
#[derive(Clone, Debug)]
pub struct CommonConfig {
    /// Group, interface and simulated network.
    pub net: NetConfig,
    pub data_dir: PathBuf,
    pub checkpoint_interval: Duration,
    /// `--durability`.
    pub durability: Durability,
    /// `--key-file`, read by `run` (a missing or short file is a runtime error, exit 1).
    pub key_file: Option<PathBuf>,
}

/// Validated settings of `server`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub common: CommonConfig,
    pub sync_interval: Duration,
    pub token_timeout: Duration,
}

/// Which identity a client runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resume {
    /// A fresh identity (no `--resume`).
    New,
    /// `--resume` alone: the only identity in the data dir (an error if there are zero or several).
    Only,
    /// `--resume UUID`: that identity.
    Id(Uuid),
    /// `--resume NAME`: the identity of that name (an error if none or several go by it).
    Name(String),
}

/// Validated settings of `client`.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub common: CommonConfig,
    /// 1 to 32 bytes, no control characters, no surrounding whitespace; `None` when not given.
    pub name: Option<String>,
    pub resume: Resume,
    /// Output one JSON object per line.
    pub json: bool,
    pub join_timeout: Duration,
    /// Ring the terminal bell when a message mentions this client's name (not `--no-bell`).
    pub bell: bool,
}

/// The port of the group, and a server's in unicast mode.
pub const DEFAULT_PORT: u16 = 5007;

/// What `--interface` and `--peer` name, looked up on this host ([`super::setup`]).
#[derive(Clone, Debug)]
pub struct Located {
    pub interface: Local,
    /// The peers' addresses, of the interface's family; empty in multicast mode.
    pub peers: Vec<SocketAddr>,
}

/// What the setup before `run` needs of either program's command line.
pub trait Program: Parser {
    /// What `run` consumes.
    type Config;
    /// The flags both programs share.
    fn common(&self) -> &CommonArgs;
    /// The validated settings, given what `--interface` and `--peer` name.
    fn into_config(self, found: Located) -> Self::Config;
}

impl CommonArgs {
    /// The validated shared settings, given what `--interface` and `--peer` name; in unicast
    /// mode the node listens on `listen_port` (0: one the system picks).
    pub fn into_config(self, found: Located, listen_port: u16) -> CommonConfig {
        let unicast = (!found.peers.is_empty()).then(|| UnicastConfig {
            peers: found.peers,
            named: self.peers.iter().map(ToString::to_string).collect(),
            port: listen_port,
        });
        let sim = SimConfig {
            delay: self.delay,
            loss: self.loss,
            dup: self.dup,
            seed: self.seed,
        };
        CommonConfig {
            net: NetConfig {
                group: self.group,
                port: self.port,
                interface: found.interface,
                ttl: self.ttl,
                sim,
                unicast,
            },
            data_dir: self.data_dir,
            checkpoint_interval: self.checkpoint_interval,
            durability: self.durability,
            key_file: self.key_file,
        }
    }
}

impl Program for ServerCli {
    type Config = ServerConfig;

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    /// The validated server settings; all checks already ran in clap's value parsers.
    fn into_config(self, found: Located) -> ServerConfig {
        ServerConfig {
            common: {
                let port = self.common.port;
                self.common.into_config(found, port)
            },
            sync_interval: self.sync_interval,
            token_timeout: self.token_timeout,
        }
    }
}

impl Program for ClientCli {
    type Config = ClientConfig;

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    /// The validated client settings; all checks already ran in clap's value parsers.
    fn into_config(self, found: Located) -> ClientConfig {
        let resume = match self.resume {
            None => Resume::New,
            Some(None) => Resume::Only,
            Some(Some(arg)) => match Uuid::parse_str(arg.trim()) {
                Ok(id) => Resume::Id(id),
                Err(_) => Resume::Name(arg.trim().to_string()),
            },
        };
        ClientConfig {
            common: self
                .common
                .into_config(found, self.listen_port.unwrap_or(0)),
            name: self.name,
            resume,
            json: self.json,
            join_timeout: self.join_timeout,
            bell: !self.no_bell,
        }
    }
}

/// `$USER` when it is a valid name, else `anon`: a bad environment must not break the default.
pub fn default_name() -> String {
    std::env::var("USER")
        .ok()
        .and_then(|user| parse_name(&user).ok())
        .unwrap_or_else(|| "anon".to_string())
}

/// A display name as `--name` accepts it: trimmed, 1 to 32 bytes, no control characters.
pub fn parse_name(s: &str) -> Result<String, String> {
    let name = s.trim();
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        let chars = name.chars().count();
        return Err(match chars == name.len() {
            true => format!("must be 1 to {MAX_NAME_BYTES} bytes, got {chars}"),
            // Bytes and characters part ways beyond ASCII: say which is counted.
            false => format!(
                "must be 1 to {MAX_NAME_BYTES} bytes of UTF-8, got {} bytes ({chars} characters)",
                name.len()
            ),
        });
    }
    if !is_clean_name(name) {
        return Err("must not contain control characters".to_string());
    }
    Ok(name.to_string())
}

/// What `--resume` names: a uuid, or a name as `--name` accepts it.
fn parse_resume(s: &str) -> Result<String, String> {
    match Uuid::parse_str(s.trim()) {
        Ok(id) => Ok(id.to_string()),
        Err(_) => parse_name(s).map_err(|why| format!("neither a uuid nor a name: {why}")),
    }
}

fn parse_group(s: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = s
        .parse()
        .map_err(|e| format!("{e} (expected an IPv4 or IPv6 multicast address)"))?;
    if !ip.is_multicast() {
        return Err(format!(
            "{ip} is not a multicast address (use 224.0.0.0 to 239.255.255.255, or ff00::/8 \
             such as ff02::114)"
        ));
    }
    Ok(ip)
}

fn parse_interface(s: &str) -> Result<InterfaceArg, String> {
    if s.trim() == "list" {
        return Ok(InterfaceArg::List);
    }
    s.parse().map(InterfaceArg::Spec)
}

/// A humantime duration, at most [`MAX_DURATION`]; zero allowed.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (expected a duration such as 250ms or 10s)"))?;
    if d > MAX_DURATION {
        return Err(format!(
            "{s} is too long (at most {})",
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(d)
}

/// An interval or timeout: a duration greater than zero.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be greater than zero".to_string());
    }
    Ok(d)
}

/// `MIN..MAX` with MIN <= MAX, or a single duration for a fixed delay.
fn parse_delay(s: &str) -> Result<(Duration, Duration), String> {
    let Some((min, max)) = s.split_once("..") else {
        let d = parse_duration(s)?;
        return Ok((d, d));
    };
    let (min, max) = (parse_duration(min)?, parse_duration(max)?);
    if min > max {
        return Err(format!("MIN must not exceed MAX in MIN..MAX, got {s}"));
    }
    Ok((min, max))
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    match s.trim() {
        "page-cache" => Ok(Durability::PageCache),
        "fsync" => Ok(Durability::Fsync),
        other => Err(format!(
            "{other} is not a durability (use page-cache or fsync)"
        )),
    }
}

fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|e| format!("{e} (expected a number from 0 to 1)"))?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("{s} is not a probability (expected 0 to 1)"));
    }
    Ok(p)
}

#[cfg(test)]
mod tests;
