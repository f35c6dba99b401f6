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

use crate::protocol::limits::{
    is_clean_name, is_clean_text, MAX_ATTEMPTS, MAX_COUNTER, MAX_DATAGRAM_BYTES, MAX_LINE_BYTES,
    MAX_MEMBERS, MAX_NAME_BYTES, MAX_PACK_RECORDS, MAX_PLAINTEXT_BYTES, MAX_RTR, MAX_SERVERS,
    MAX_TOKEN_TIMEOUT_MS, MAX_VIEW_PARTS, VERSION,
};
use crate::protocol::token_ring::Token;
use crate::protocol::types::{
    ChatRecord, Epoch, GroupId, Incarnation, Member, NodeId, Seq, ServerId,
};
use crate::protocol::vote::{Ballot, SessionRef};
use serde::{Deserialize, Serialize};
use std::fmt;
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
}

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
            | Msg::AskAru { from, .. }
            | Msg::Aru { from, .. }
            | Msg::Accept { from, .. }
            | Msg::SessionRequest { from, .. }
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
    let bytes = serde_json::to_vec(&OutFrame { v: VERSION, msg })
        .map_err(|e| EncodeError(format!("serialize: {e}")))?;
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

/// The ring's most frequent datagram, read straight into its fields: the general path
/// (an internally tagged enum in a flattened frame) buffers every datagram into a tree of
/// values and walks it twice, which for a pack is most of its decoding time. Anything this
/// does not read, or reads with another version, goes the general way, so the outcome
/// (message or error) is the same either way.
fn read_data_pack(bytes: &[u8]) -> Option<Msg> {
    let pack = serde_json::from_slice::<DataFrame>(bytes).ok()?;
    (pack.v == VERSION).then_some(Msg::Data {
        epoch: pack.epoch,
        recs: pack.recs,
    })
}

#[derive(Deserialize)]
struct DataFrame {
    v: u64,
    #[serde(rename = "type")]
    _kind: DataKind,
    epoch: Epoch,
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

/// Rejects values that no honest node sends; the state machines may then rely on them
/// (no overflow on `+ 1`, no absurd timers, names and lines within their limits).
fn check_values(msg: &Msg) -> Result<(), String> {
    match msg {
        Msg::Hello {
            name, delivered, ..
        } => check_name(name).and(check_counter("delivered", delivered.0)),
        Msg::Leave { .. } => Ok(()),
        Msg::Refuse { reason, .. } => check_printable("reason", reason),
        Msg::Gather {
            epoch,
            part,
            parts,
            members,
            server,
            group,
            ..
        } => check_ring_epoch(*epoch)
            .and(check_part(*part, *parts))
            .and(check_member_count(members.len()))
            .and(check_ids(*server, *group)),
        Msg::Wake { epoch, hop, .. } => check_ring_epoch(*epoch).and(check_counter("hop", *hop)),
        Msg::TokenAck { epoch, hop, .. } => {
            check_ring_epoch(*epoch).and(check_counter("hop", *hop))
        }
        Msg::AskAru { epoch, seq, .. } => check_ring_epoch(*epoch).and(check_counter("seq", seq.0)),
        Msg::Aru { epoch, aru, .. } => check_ring_epoch(*epoch).and(check_counter("aru", aru.0)),
        Msg::Report {
            epoch,
            name,
            view_epoch,
            aru,
            delivered,
            group,
            promised,
            primary,
            attempts,
            ..
        } => {
            check_name(name)?;
            check_counters(&[
                ("epoch", epoch.0),
                ("view epoch", view_epoch.0),
                ("aru", aru.0),
                ("delivered", delivered.0),
                ("promised epoch", promised.epoch.0),
            ])?;
            check_ids(promised.server, *group)?;
            if attempts.len() > MAX_ATTEMPTS {
                return Err(format!("{} attempts", attempts.len()));
            }
            primary.iter().chain(attempts).try_for_each(check_session)
        }
        Msg::Propose {
            epoch,
            part,
            parts,
            members,
            servers,
            cut,
            server,
            group,
            base,
            dead,
            ..
        } => {
            check_counters(&[("epoch", epoch.0), ("cut", cut.0), ("base", base.0)])?;
            check_part(*part, *parts)?;
            check_view_members(members, servers)?;
            check_ids(*server, *group)?;
            if dead.len() > MAX_ATTEMPTS {
                return Err(format!("{} dead attempts", dead.len()));
            }
            dead.iter()
                .try_for_each(|e| check_counter("dead epoch", e.0))
        }
        Msg::Accept { epoch, .. } => check_ring_epoch(*epoch),
        Msg::SessionRequest { epoch, .. } => check_counter("epoch", epoch.0),
        Msg::View {
            epoch,
            part,
            parts,
            members,
            servers,
            cut,
            high,
            token_timeout_ms,
            server,
            group,
        } => {
            check_counters(&[("epoch", epoch.0), ("cut", cut.0), ("high", high.0)])?;
            check_part(*part, *parts)?;
            check_view_members(members, servers)?;
            check_ids(*server, *group)?;
            check_token_timeout(*token_timeout_ms)
        }
        Msg::Beacon {
            epoch,
            cut,
            high,
            token_timeout_ms,
            members,
            server,
            group,
            ..
        } => {
            check_counters(&[("epoch", epoch.0), ("cut", cut.0), ("high", high.0)])?;
            check_member_count(usize::try_from(*members).unwrap_or(usize::MAX))?;
            check_ids(*server, *group)?;
            check_token_timeout(*token_timeout_ms)
        }
        Msg::ViewRequest { epoch, .. } => check_counter("epoch", epoch.0),
        Msg::Token(t) => check_token(t),
        Msg::Data { epoch, recs } => check_ring_epoch(*epoch).and(check_pack(recs)),
        Msg::Fetch { lo, hi, .. } => check_counters(&[("lo", lo.0), ("hi", hi.0)]),
        Msg::History { records, .. } => records.iter().try_for_each(check_record),
    }
}

/// The token's slots and requests came as offsets below `seq`, each checked to be at most
/// `seq` when the token was decoded (see [`Token`]), so they are counters if `seq` is one.
fn check_token(t: &Token) -> Result<(), String> {
    check_ring_epoch(t.epoch)?;
    check_counters(&[("hop", t.hop), ("seq", t.seq.0), ("safe", t.safe.0)])?;
    if t.arus.is_empty() || t.arus.len() > MAX_MEMBERS {
        return Err(format!("{} aru slots", t.arus.len()));
    }
    if t.rtr.len() > MAX_RTR {
        return Err(format!("{} retransmission requests", t.rtr.len()));
    }
    Ok(())
}

/// A server id and a chat id: never 0, at most [`MAX_COUNTER`] (every sender draws them so).
fn check_ids(server: ServerId, group: GroupId) -> Result<(), String> {
    if server.0 == 0 || group.0 == 0 {
        return Err("server or chat id 0".into());
    }
    check_counters(&[("server id", server.0), ("chat id", group.0)])
}

/// A view's or proposal's members (names included) and its servers, within their limits.
fn check_view_members(members: &[Member], servers: &[ServerId]) -> Result<(), String> {
    check_member_count(members.len())?;
    members.iter().try_for_each(|m| check_name(&m.name))?;
    if servers.is_empty() || servers.len() > MAX_SERVERS {
        return Err(format!("{} servers", servers.len()));
    }
    servers.iter().try_for_each(|s| match s.0 {
        0 => Err("server id 0".to_string()),
        id => check_counter("server id", id),
    })
}

/// A session as a report names it.
fn check_session(s: &SessionRef) -> Result<(), String> {
    check_counters(&[("session epoch", s.epoch.0), ("session cut", s.cut.0)])?;
    let voters = usize::try_from(s.voters).unwrap_or(usize::MAX);
    if s.server.0 == 0 || s.members > s.voters || voters > MAX_MEMBERS + MAX_SERVERS {
        return Err(format!("a session of {} voters", s.voters));
    }
    check_counter("session server", s.server.0)
}

/// A part index within its count, and a count that some honest view or gather could need.
fn check_part(part: u32, parts: u32) -> Result<(), String> {
    if parts == 0 || parts > MAX_VIEW_PARTS || part >= parts {
        return Err(format!("part {part} of {parts}"));
    }
    Ok(())
}

fn check_member_count(n: usize) -> Result<(), String> {
    if n > MAX_MEMBERS {
        return Err(format!("{n} members"));
    }
    Ok(())
}

/// Members add the token timeout to the clock, so an absurd value must not reach them.
fn check_token_timeout(ms: u64) -> Result<(), String> {
    if ms > MAX_TOKEN_TIMEOUT_MS {
        return Err(format!("token timeout of {ms} ms"));
    }
    Ok(())
}

/// A data pack: not empty, no more records than fit one datagram, seqs strictly increasing
/// (so no seq twice), and every record valid.
fn check_pack(recs: &[ChatRecord]) -> Result<(), String> {
    if recs.is_empty() || recs.len() > MAX_PACK_RECORDS {
        return Err(format!("a pack of {} records", recs.len()));
    }
    if recs.windows(2).any(|w| w[0].seq >= w[1].seq) {
        return Err("a pack out of seq order".into());
    }
    recs.iter().try_for_each(check_record)
}

fn check_record(rec: &ChatRecord) -> Result<(), String> {
    check_counter("seq", rec.seq.0)?;
    check_name(&rec.name)?;
    if rec.text.len() > MAX_LINE_BYTES {
        return Err(format!("a line of {} bytes", rec.text.len()));
    }
    check_printable("text", &rec.text)
}

/// The epoch of a ring: the first view is epoch 1, and epoch 0 (a server that never
/// installed a view) has no ring, so no token, message or gather can belong to it.
fn check_ring_epoch(epoch: Epoch) -> Result<(), String> {
    if epoch.0 == 0 {
        return Err("epoch 0 has no ring".into());
    }
    check_counter("epoch", epoch.0)
}

fn check_counters(fields: &[(&str, u64)]) -> Result<(), String> {
    fields
        .iter()
        .try_for_each(|(what, v)| check_counter(what, *v))
}

fn check_counter(what: &str, value: u64) -> Result<(), String> {
    if value > MAX_COUNTER {
        return Err(format!("{what} {value} is above {MAX_COUNTER}"));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("a name of {} bytes", name.len()));
    }
    if !is_clean_name(name) {
        return Err("control characters in a name".into());
    }
    Ok(())
}

/// Free text from a peer (a line, a refusal): see [`is_clean_text`].
fn check_printable(what: &str, s: &str) -> Result<(), String> {
    if !is_clean_text(s) {
        return Err(format!("control characters in a {what}"));
    }
    Ok(())
}

/// Why a chat line was refused at the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// Empty after trimming the line ending.
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
    if text.is_empty() {
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

mod pack;
#[cfg(test)]
mod tests;

pub use pack::{
    pack_data, pack_gather, pack_history, pack_propose, pack_view, ProposalHead, ViewHead,
};
