//! The datagram format: one JSON object per datagram, `{"v":1,"type":...,...}`, typed with
//! serde; encoding, decoding, size limits and the packing of records into datagrams.
//!
//! Every byte from the network is untrusted (G6). Decoding never panics on any input, never
//! reads more than [`MAX_DATAGRAM_BYTES`], and rejects values that no honest node sends
//! (counters above [`MAX_COUNTER`], names and lines over their limits, control characters),
//! so the state machines never see them. It returns a [`DecodeError`] that the caller logs,
//! counts and drops.
//!
//! Pure: no sockets and no keys here; sealing (`--key-file`) wraps the encoded bytes later, in
//! the driver. Encoders keep every message within [`MAX_PLAINTEXT_BYTES`], so it fits one
//! datagram sealed or not, and a group behaves the same with or without a key.

use crate::protocol::canonical;
use crate::protocol::limits::{
    is_clean_text, MAX_DATAGRAM_BYTES, MAX_LINE_BYTES, MAX_MEMBERS, MAX_NAME_BYTES,
    MAX_PLAINTEXT_BYTES, VERSION,
};
#[cfg(doc)]
use crate::protocol::limits::{MAX_ATTEMPTS, MAX_COUNTER, MAX_PACK_RECORDS};
use crate::protocol::token_ring::Token;
use crate::protocol::types::{
    ChatRecord, Epoch, GroupId, Incarnation, Member, NodeId, Seq, ServerId,
};
use crate::protocol::vote::{Ballot, SessionRef};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use uuid::Uuid;

/// Every kind of datagram. Internally tagged: `{"v":1,"type":"token",...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    /// Client → server: let me in. Repeated until a view that includes the client arrives.
    Hello {
        from: NodeId,
        /// Random per process start: tells a restarted client from a delayed duplicate Hello.
        incarnation: Incarnation,
        name: String,
        delivered: Seq,
    },
    /// Client → server: I am leaving the ring. Repeated until a view without it arrives.
    Leave {
        from: NodeId,
        incarnation: Incarnation,
    },
    /// Server → client: the join is refused (ring full, name too long).
    Refuse {
        to: NodeId,
        /// The incarnation whose hello this answers, so a replayed refusal stops nobody else.
        incarnation: Incarnation,
        /// Why, in words the client shows its user: a [`RefuseReason`]'s text.
        reason: String,
    },
    /// Server → proposed members and servers: a new epoch begins; promise it (stop the old
    /// ring) and report your vote. A large gather is split into parts ([`pack_gather`]); each
    /// stands alone: a node reports if its id is in the part it received.
    Gather {
        epoch: Epoch,
        /// This part's index, below `parts`.
        part: u32,
        /// How many parts the gather of `epoch` was split into.
        parts: u32,
        /// This part's share of the proposed members and servers.
        members: Vec<NodeId>,
        /// The gathering server.
        server: ServerId,
        /// The chat it gathers for.
        group: GroupId,
        /// Set once the server has waited a report timeout without a quorum: how far it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        waiting: Option<QuorumWait>,
    },
    /// Voter → the gathering server: its vote and what it holds, for the gather of `epoch`.
    Report {
        epoch: Epoch,
        from: NodeId,
        incarnation: Incarnation,
        name: String,
        /// The view this incarnation installed (0: none); its `aru` was collected there.
        view_epoch: Epoch,
        /// Highest seq up to which the node received everything (delivered or held back).
        aru: Seq,
        /// Highest seq the node delivered (final).
        delivered: Seq,
        /// The chat it belongs to.
        group: GroupId,
        /// The gather it promised: this one, or a later one that refuses this.
        promised: Ballot,
        /// Its last formed primary.
        primary: Option<SessionRef>,
        /// Its undecided attempts (at most [`MAX_ATTEMPTS`]).
        attempts: Vec<SessionRef>,
    },
    /// Server → reporters: the view it would install, in parts like a view. Every reporter
    /// accepts it durably ([`Msg::Accept`]) before it is installed. `base` is the primary it
    /// builds on and `dead` the attempts proved never to have formed.
    Propose {
        epoch: Epoch,
        part: u32,
        parts: u32,
        members: Vec<Member>,
        servers: Vec<ServerId>,
        cut: Seq,
        server: ServerId,
        group: GroupId,
        base: Epoch,
        dead: Vec<Epoch>,
        /// For one gathering server that asked for it ([`Msg::SessionRequest`]): the proposal
        /// of an earlier gather, echoed by a voter that accepted it; others ignore it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<NodeId>,
    },
    /// Reporter → server: the proposal of `epoch` is recorded as an attempt.
    Accept { epoch: Epoch, from: NodeId },
    /// Gathering server → a reporter that named an attempt the server never saw: echo it.
    SessionRequest {
        from: NodeId,
        to: NodeId,
        epoch: Epoch,
    },
    /// Server → all: the installed view, at install and when asked ([`Msg::ViewRequest`]).
    /// A large view is split into parts ([`pack_view`]), each with a contiguous slice of the
    /// members in ring order; a member acts on the view once it holds every part.
    View {
        epoch: Epoch,
        /// This part's index, below `parts`.
        part: u32,
        /// How many parts the view of `epoch` was split into.
        parts: u32,
        /// This part's slice of the members, in ring order.
        members: Vec<Member>,
        /// The servers, in rank order; the first installed the view and coordinates it.
        servers: Vec<ServerId>,
        /// Every seq up to `cut` is final and held by the servers.
        cut: Seq,
        /// The server's archive high-water mark (reconciliation announces this).
        high: Seq,
        /// The server's token timeout, from which members derive their retransmit timer.
        token_timeout_ms: u64,
        /// The sending server.
        server: ServerId,
        /// The chat.
        group: GroupId,
    },
    /// Server → all, every beacon interval: the heartbeat. From the coordinating server, the
    /// view in brief (its size and [`crate::protocol::types::View::digest`]); a member whose
    /// view differs asks for the whole one. A standby server's says it is alive and which
    /// view it holds.
    Beacon {
        epoch: Epoch,
        /// As in [`Msg::View`].
        cut: Seq,
        high: Seq,
        token_timeout_ms: u64,
        server: ServerId,
        /// How many members the view has.
        members: u64,
        /// [`crate::protocol::types::View::digest`] of the view.
        digest: u64,
        group: GroupId,
        /// A standby server's heartbeat, not the coordinator's.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        standby: bool,
    },
    /// Member → server: send the installed view again (a beacon showed ours is not it).
    ViewRequest {
        from: NodeId,
        /// The epoch of the view the member holds.
        epoch: Epoch,
    },
    /// The token (see [`Token`]).
    Token(Token),
    /// Ordered chat messages stamped by the token holder, as many as fit one datagram
    /// ([`pack_data`]): in seq order, consecutive when stamped, not always when resent
    /// (a retransmission answer packs whichever requested seqs its sender holds).
    Data {
        epoch: Epoch,
        /// The chat: a ring of another chat on the same group and port may share an epoch
        /// number with ours, never its records.
        group: GroupId,
        /// At least one record, at most [`MAX_PACK_RECORDS`], seqs strictly increasing.
        recs: Vec<ChatRecord>,
    },
    /// A member with something to send asks an idle holder to pass the token at once: to
    /// the group (`hop` 0), or straight to the member it last saw the token go to, by the
    /// pass of that `hop`; a member that has passed the token on since sends it after it.
    Wake {
        epoch: Epoch,
        from: NodeId,
        #[serde(default)]
        hop: u64,
    },
    /// Successor → passer, sent straight to it: pass `hop` of the token arrived, so it need
    /// not be sent again. A pass that went to the whole group needs none (the next pass shows
    /// it arrived).
    TokenAck {
        epoch: Epoch,
        from: NodeId,
        hop: u64,
    },
    /// Member → the coordinating server, sent straight to it: the ring waits on the member
    /// that pass `hop` went to, which has shown no sign of it for many round trips (our
    /// pass to it is unconfirmed, or it holds the token we asked for). The server gathers at
    /// once if it has seen no later pass, instead of waiting out its token timeout.
    Suspect {
        epoch: Epoch,
        from: NodeId,
        hop: u64,
    },
    /// Holder → all: it keeps the token while the members tell it, each with an [`Msg::Aru`],
    /// that they hold everything up to `seq` (what it just stamped into a quiet ring); then it
    /// raises `safe` itself instead of sending the token round for it.
    AskAru {
        epoch: Epoch,
        from: NodeId,
        seq: Seq,
    },
    /// Member → the collecting holder, sent straight to it: everything up to `aru` has
    /// arrived here (the same promise as the member's slot on the token).
    Aru {
        epoch: Epoch,
        from: NodeId,
        aru: Seq,
    },
    /// Ask `to` for final records `lo..=hi`.
    Fetch {
        from: NodeId,
        to: NodeId,
        lo: Seq,
        hi: Seq,
    },
    /// Final records for `to`, in seq order (a reply to [`Msg::Fetch`]).
    History {
        to: NodeId,
        records: Vec<ChatRecord>,
    },
    /// In unicast mode only, where some nodes are, at most [`MAX_PEERS_PER_DATAGRAM`] a
    /// datagram ([`pack_peers`]): server → all, the view's nodes, so that every member can
    /// send to every other; member → a joiner that said hello to it, the view's servers.
    /// Drivers read it ([`crate::protocol::peers`]); the cores never see it.
    Peers { from: NodeId, peers: Vec<Peer> },
}

/// One node's address, as a server heard it ([`Msg::Peers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub id: NodeId,
    pub addr: SocketAddr,
}

/// Most addresses one [`Msg::Peers`] carries: the longest IPv6 address and a node id each
/// take about 110 bytes, so ten stay well within [`MAX_PLAINTEXT_BYTES`].
pub const MAX_PEERS_PER_DATAGRAM: usize = 10;

impl Msg {
    /// The node that sent this message, where the message names it: a driver may learn from
    /// it where to send that node's direct datagrams. Data and history name no sender (anyone
    /// may resend a record), nor does a wake (a member that has passed the token on sends it
    /// after the token, from its own address); a token names its passer.
    pub fn sender(&self) -> Option<NodeId> {
        match self {
            Msg::Hello { from, .. }
            | Msg::Leave { from, .. }
            | Msg::Report { from, .. }
            | Msg::ViewRequest { from, .. }
            | Msg::TokenAck { from, .. }
            | Msg::Suspect { from, .. }
            | Msg::AskAru { from, .. }
            | Msg::Aru { from, .. }
            | Msg::Accept { from, .. }
            | Msg::SessionRequest { from, .. }
            | Msg::Peers { from, .. }
            | Msg::Fetch { from, .. } => Some(*from),
            Msg::Token(token) => Some(token.from),
            Msg::Gather { server, .. } | Msg::View { server, .. } | Msg::Beacon { server, .. } => {
                Some(NodeId::server(*server))
            }
            // A proposal may be echoed by a voter; a refusal names no sender.
            Msg::Propose { .. }
            | Msg::Refuse { .. }
            | Msg::Data { .. }
            | Msg::History { .. }
            | Msg::Wake { .. } => None,
        }
    }
}

impl Msg {
    /// The one node a message sent to the group is for, where it names one: in unicast mode
    /// it goes to that node alone when its address is known.
    pub fn addressee(&self) -> Option<NodeId> {
        match self {
            Msg::Refuse { to, .. }
            | Msg::SessionRequest { to, .. }
            | Msg::Fetch { to, .. }
            | Msg::History { to, .. } => Some(*to),
            Msg::Propose { to, .. } => *to,
            _ => None,
        }
    }
}

/// Why the server refuses a join. It travels as its text in [`Msg::Refuse`], which the client
/// shows as it is, so the texts are part of the wire contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefuseReason {
    /// The name is over [`MAX_NAME_BYTES`].
    NameTooLong,
    /// The ring already has [`MAX_MEMBERS`] members.
    RingFull,
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefuseReason::NameTooLong => write!(f, "name longer than {MAX_NAME_BYTES} bytes"),
            RefuseReason::RingFull => write!(f, "the ring is full ({MAX_MEMBERS} members)"),
        }
    }
}

/// How far a server waiting for a quorum is (see [`crate::protocol::quorum::Shortfall`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumWait {
    /// Voters of the last primary that reported.
    pub reachable: u32,
    /// Voters of the last primary.
    pub voters: u32,
}

#[derive(Serialize)]
struct OutFrame<'a> {
    v: u64,
    #[serde(flatten)]
    msg: &'a Msg,
}

#[derive(Deserialize)]
struct InFrame {
    v: u64,
    #[serde(flatten)]
    msg: Msg,
}

#[derive(Deserialize)]
struct VersionProbe {
    v: u64,
}

/// How a range check that can only run while deserializing (the token's offsets, see
/// [`Token`]) starts its message, so that [`decode`] reports it as
/// [`DecodeError::OutOfRange`] and not as malformed: serde passes such errors on as text.
pub(crate) const OUT_OF_RANGE: &str = "out of range: ";

/// Why a datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Larger than [`MAX_DATAGRAM_BYTES`].
    Oversize(usize),
    /// A `"v"` other than [`VERSION`].
    WrongVersion(u64),
    /// Not a datagram of ours: bad JSON, wrong types, unknown kind.
    Malformed(String),
    /// Well-formed, but with a value no honest node sends (see [`MAX_COUNTER`]).
    OutOfRange(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Oversize(n) => {
                write!(f, "oversize datagram ({n} bytes > {MAX_DATAGRAM_BYTES})")
            }
            DecodeError::WrongVersion(v) => write!(f, "protocol version {v}, expected {VERSION}"),
            DecodeError::Malformed(why) => write!(f, "malformed datagram: {why}"),
            DecodeError::OutOfRange(why) => write!(f, "value out of range: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Encodes a message. Errors only if the result would exceed [`MAX_PLAINTEXT_BYTES`], which
/// the senders prevent by construction (line limits, view limits, history packing).
pub fn encode(msg: &Msg) -> Result<Vec<u8>, EncodeError> {
    let bytes = match msg {
        Msg::Data { epoch, group, recs } => {
            let mut bytes = Vec::with_capacity(MAX_PLAINTEXT_BYTES.min(64 + recs.len() * 160));
            canonical::write_data_pack(&mut bytes, VERSION, *epoch, *group, recs);
            bytes
        }
        _ => serde_json::to_vec(&OutFrame { v: VERSION, msg })
            .map_err(|e| EncodeError(format!("serialize: {e}")))?,
    };
    if bytes.len() > MAX_PLAINTEXT_BYTES {
        return Err(EncodeError(format!(
            "{} bytes exceeds the {MAX_PLAINTEXT_BYTES}-byte message limit",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// A message that cannot be sent as one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot encode datagram: {}", self.0)
    }
}

impl std::error::Error for EncodeError {}

/// Decodes one datagram (the plaintext, when a key is used); never panics.
pub fn decode(bytes: &[u8]) -> Result<Msg, DecodeError> {
    if bytes.len() > MAX_DATAGRAM_BYTES {
        return Err(DecodeError::Oversize(bytes.len()));
    }
    let msg = match read_data_pack(bytes) {
        Some(pack) => pack,
        None => read_frame(bytes)?,
    };
    check_values(&msg).map_err(DecodeError::OutOfRange)?;
    Ok(msg)
}

/// The ring's most frequent datagram, read straight into its fields: in the shape this
/// program writes it by hand ([`canonical`]), else with serde as a struct (the general path,
/// an internally tagged enum in a flattened frame, buffers every datagram into a tree of
/// values and walks it twice, which for a pack is most of its decoding time). Anything these
/// do not read, or read with another version, goes the general way, so the outcome (message
/// or error) is the same either way.
fn read_data_pack(bytes: &[u8]) -> Option<Msg> {
    if let Some((v, epoch, group, recs)) = canonical::read_data_pack(bytes) {
        return (v == VERSION).then_some(Msg::Data { epoch, group, recs });
    }
    let pack = serde_json::from_slice::<DataFrame>(bytes).ok()?;
    (pack.v == VERSION).then_some(Msg::Data {
        epoch: pack.epoch,
        group: pack.group,
        recs: pack.recs,
    })
}

#[derive(Deserialize)]
struct DataFrame {
    v: u64,
    #[serde(rename = "type")]
    _kind: DataKind,
    epoch: Epoch,
    group: GroupId,
    recs: Vec<ChatRecord>,
}

/// The only tag [`DataFrame`] accepts: any other kind fails at its tag, early.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum DataKind {
    Data,
}

/// Any datagram, by the general path of the tagged enum.
fn read_frame(bytes: &[u8]) -> Result<Msg, DecodeError> {
    match serde_json::from_slice::<InFrame>(bytes) {
        Ok(frame) if frame.v == VERSION => Ok(frame.msg),
        Ok(frame) => Err(DecodeError::WrongVersion(frame.v)),
        Err(e) => match serde_json::from_slice::<VersionProbe>(bytes) {
            Ok(p) if p.v != VERSION => Err(DecodeError::WrongVersion(p.v)),
            _ if e.is_data() && e.to_string().starts_with(OUT_OF_RANGE) => {
                Err(DecodeError::OutOfRange(e.to_string()))
            }
            _ => Err(DecodeError::Malformed(e.to_string())),
        },
    }
}

/// Why a chat line was refused at the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// Empty, or nothing but spaces and tabs.
    Empty,
    /// More than [`MAX_LINE_BYTES`].
    TooLong { bytes: usize },
    /// Contains control characters (other than tab), which would garble other terminals.
    ControlCharacters,
    /// Escaping makes it too large for one datagram.
    TooLargeEncoded { bytes: usize },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Empty => write!(f, "empty line not sent"),
            LineError::TooLong { bytes } => write!(
                f,
                "line not sent: {bytes} bytes is over the {MAX_LINE_BYTES}-byte limit; split it"
            ),
            LineError::ControlCharacters => {
                write!(f, "line not sent: it contains control characters")
            }
            LineError::TooLargeEncoded { bytes } => write!(
                f,
                "line not sent: it takes {bytes} bytes once escaped, over the \
                 {MAX_PLAINTEXT_BYTES}-byte datagram limit; split it"
            ),
        }
    }
}

impl std::error::Error for LineError {}

/// Checks that a line by `name` can travel as one datagram in every form it takes
/// (alone in a `Data` pack and inside `History`), with the largest numbers it could carry.
/// A record that fits alone then always travels: the packers put it in a datagram of its own
/// when it does not fit beside others.
pub fn check_line(name: &str, text: &str) -> Result<(), LineError> {
    if text.trim().is_empty() {
        return Err(LineError::Empty);
    }
    if text.len() > MAX_LINE_BYTES {
        return Err(LineError::TooLong { bytes: text.len() });
    }
    if !is_clean_text(text) {
        return Err(LineError::ControlCharacters);
    }
    let rec = ChatRecord {
        seq: Seq(u64::MAX),
        id: Uuid::max(),
        from: NodeId(Uuid::max()),
        name: name.to_string(),
        text: text.to_string(),
        sent_at_ms: u64::MAX,
    };
    let data = Msg::Data {
        epoch: Epoch(u64::MAX),
        group: GroupId(u64::MAX),
        recs: vec![rec.clone()],
    };
    let history = Msg::History {
        to: NodeId(Uuid::max()),
        records: vec![rec],
    };
    let bytes = encoded_len(&data).max(encoded_len(&history));
    if bytes > MAX_PLAINTEXT_BYTES {
        return Err(LineError::TooLargeEncoded { bytes });
    }
    Ok(())
}

fn encoded_len(msg: &Msg) -> usize {
    serde_json::to_vec(&OutFrame { v: VERSION, msg }).map_or(usize::MAX, |b| b.len())
}

mod check;
mod pack;
#[cfg(test)]
mod tests;

use check::check_values;

pub use pack::{
    pack_data, pack_echo, pack_gather, pack_history, pack_peers, pack_propose, pack_view,
    ProposalHead, ViewHead,
};
