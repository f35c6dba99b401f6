//! Packing what does not fit one datagram into as few datagrams as fit: live records into
//! `Data` packs, final records into `History` datagrams, and the member lists of views,
//! proposals and gathers into parts. One splitter serves them all: each item is measured once, and a list's
//! size is its empty message plus its items plus a comma between two.
//!
//! Pure: sizes are measured by encoding, nothing is sent from here. Every packer keeps each
//! datagram within [`MAX_PLAINTEXT_BYTES`], so it fits sealed or not.

use super::{encode, encoded_len, Msg, Peer, QuorumWait, MAX_PEERS_PER_DATAGRAM};
use crate::protocol::canonical;
use crate::protocol::limits::MAX_PLAINTEXT_BYTES;
use crate::protocol::types::{ChatRecord, Epoch, GroupId, Member, NodeId, Seq, ServerId};
use crate::protocol::vote::Vote;
use serde::Serialize;
use std::ops::Range;

/// What every part of a view says besides its members (and what a beacon says of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewHead {
    pub epoch: Epoch,
    /// Every seq up to `cut` is final and held by the servers.
    pub cut: Seq,
    /// The sending server's archive high-water mark.
    pub high: Seq,
    /// The server's token timeout.
    pub token_timeout_ms: u64,
    /// The sending server.
    pub server: ServerId,
    /// The chat.
    pub group: GroupId,
    /// The view's servers, in rank order.
    pub servers: Vec<ServerId>,
}

impl ViewHead {
    /// Part `part` of `parts`, carrying `members`.
    pub fn part(&self, part: u32, parts: u32, members: Vec<Member>) -> Msg {
        Msg::View {
            epoch: self.epoch,
            part,
            parts,
            members,
            servers: self.servers.clone(),
            cut: self.cut,
            high: self.high,
            token_timeout_ms: self.token_timeout_ms,
            server: self.server,
            group: self.group,
        }
    }
}

/// Splits a view into as few parts as fit, each with a contiguous slice of `members` in ring
/// order; a view that fits one datagram (an empty one too) is part 0 of 1.
pub fn pack_view(head: &ViewHead, members: &[Member]) -> Vec<Msg> {
    pack_parts(members, |part, parts, slice| head.part(part, parts, slice))
}

/// What every part of a proposal says besides its members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalHead {
    pub epoch: Epoch,
    pub cut: Seq,
    /// The proposing server.
    pub server: ServerId,
    pub group: GroupId,
    /// The proposed view's servers, in rank order (the proposer first).
    pub servers: Vec<ServerId>,
    /// The primary it builds on.
    pub base: Epoch,
    /// Attempts proved never to have formed.
    pub dead: Vec<Epoch>,
    /// The one gathering server an echo is for (`None`: the proposal itself).
    pub to: Option<NodeId>,
}

impl ProposalHead {
    /// Part `part` of `parts`, carrying `members`.
    pub fn part(&self, part: u32, parts: u32, members: Vec<Member>) -> Msg {
        Msg::Propose {
            epoch: self.epoch,
            part,
            parts,
            members,
            servers: self.servers.clone(),
            cut: self.cut,
            server: self.server,
            group: self.group,
            base: self.base,
            dead: self.dead.clone(),
            to: self.to,
        }
    }
}

/// The proposal of the attempt or primary of `epoch` in `vote`, echoed for the gathering
/// server `to` that never saw it (nothing if the vote holds no session of that epoch).
pub fn pack_echo(vote: &Vote, epoch: Epoch, to: NodeId) -> Vec<Msg> {
    let primary = vote.primary.as_ref().filter(|p| p.epoch() == epoch);
    let Some(session) = vote.attempt_of(epoch).or(primary) else {
        return Vec::new();
    };
    let head = ProposalHead {
        epoch,
        cut: session.cut,
        server: session.server(),
        group: vote.group.unwrap_or(GroupId(0)),
        servers: session.view.servers.clone(),
        base: Epoch(0),
        dead: Vec::new(),
        to: Some(to),
    };
    pack_propose(&head, &session.view.members)
}

/// Splits a proposal into as few parts as fit, like a view.
pub fn pack_propose(head: &ProposalHead, members: &[Member]) -> Vec<Msg> {
    pack_parts(members, |part, parts, slice| head.part(part, parts, slice))
}

/// Splits a gather's proposed members and servers over as few parts as fit; each part stands
/// alone.
pub fn pack_gather(
    epoch: Epoch,
    (server, group): (ServerId, GroupId),
    waiting: Option<QuorumWait>,
    members: &[NodeId],
) -> Vec<Msg> {
    pack_parts(members, |part, parts, members| Msg::Gather {
        epoch,
        part,
        parts,
        members,
        server,
        group,
        waiting,
    })
}

/// Splits `items` over as few messages as fit, `make(part, parts, slice)` building each.
/// Measured with the widest part numbers, so the real ones only make a part shorter.
fn pack_parts<T: Serialize + Clone>(
    items: &[T],
    make: impl Fn(u32, u32, Vec<T>) -> Msg,
) -> Vec<Msg> {
    let empty = encoded_len(&make(u32::MAX, u32::MAX, Vec::new()));
    let runs = split(items, empty);
    let parts = count(&runs);
    runs.into_iter()
        .zip(0..)
        .map(|(run, i)| make(i, parts, items[run].to_vec()))
        .collect()
}

fn count<T>(runs: &[T]) -> u32 {
    u32::try_from(runs.len()).unwrap_or(u32::MAX)
}

/// Splits `items` into contiguous runs, each of which fits a message whose form without items
/// encodes to `empty` bytes. Always at least one run (an empty one if there are no items).
fn split<T: Serialize>(items: &[T], empty: usize) -> Vec<Range<usize>> {
    let lens: Vec<usize> = items.iter().map(json_len).collect();
    split_lens(&lens, empty)
}

/// [`split`] over measured items: a list's size is its items plus a comma between two. An
/// item too large even alone gets a run of its own (its message then fails to encode).
fn split_lens(lens: &[usize], empty: usize) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut size = empty;
    for (i, &len) in lens.iter().enumerate() {
        if i > start && size.saturating_add(1).saturating_add(len) > MAX_PLAINTEXT_BYTES {
            runs.push(start..i);
            start = i;
            size = empty;
        }
        size = size
            .saturating_add(usize::from(i > start))
            .saturating_add(len);
    }
    runs.push(start..lens.len());
    runs
}

fn json_len<T: Serialize>(item: &T) -> usize {
    serde_json::to_vec(item).map_or(usize::MAX, |b| b.len())
}

/// Splits records (in seq order) into as few batches as fit a message whose form without
/// records encodes to `empty` bytes, each record measured once and kept in order. A record
/// that cannot fit even alone (impossible for lines that passed [`super::check_line`]) is
/// left out with a warning rather than sent oversize; every other record fits a batch.
fn batch_records(records: Vec<ChatRecord>, empty: usize) -> Vec<Vec<ChatRecord>> {
    let mut kept = Vec::with_capacity(records.len());
    let mut lens = Vec::with_capacity(records.len());
    let mut scratch = Vec::with_capacity(256);
    for rec in records {
        scratch.clear();
        canonical::write_record(&mut scratch, &rec);
        let len = scratch.len();
        if empty.saturating_add(len) > MAX_PLAINTEXT_BYTES {
            log::warn!("record {} too large for a datagram; not sent", rec.seq);
            continue;
        }
        kept.push(rec);
        lens.push(len);
    }
    if kept.is_empty() {
        return Vec::new();
    }
    let mut recs = kept.into_iter();
    split_lens(&lens, empty)
        .into_iter()
        .map(|run| recs.by_ref().take(run.len()).collect())
        .collect()
}

/// Packs final records (in seq order) into as few `History` datagrams for `to` as fit.
pub fn pack_history(to: NodeId, records: Vec<ChatRecord>) -> Vec<Vec<u8>> {
    let empty = encoded_len(&history(to, Vec::new()));
    batch_records(records, empty)
        .into_iter()
        .filter_map(|batch| encode(&history(to, batch)).ok())
        .collect()
}

fn history(to: NodeId, records: Vec<ChatRecord>) -> Msg {
    Msg::History { to, records }
}

/// Packs live records of `epoch` (in seq order, consecutive or not) into as few `Data`
/// datagrams as fit, greedily in order: a holder's window, or the records a retransmission
/// request asked for. Every pack holds at least one record and encodes within
/// [`MAX_PLAINTEXT_BYTES`]; a loss costs the whole pack, and receivers ask again per seq.
pub fn pack_data(epoch: Epoch, group: GroupId, records: Vec<ChatRecord>) -> Vec<Msg> {
    let empty = encoded_len(&Msg::Data {
        epoch,
        group,
        recs: Vec::new(),
    });
    batch_records(records, empty)
        .into_iter()
        .map(|recs| Msg::Data { epoch, group, recs })
        .collect()
}

/// Packs addresses into [`Msg::Peers`] datagrams of at most [`MAX_PEERS_PER_DATAGRAM`] each.
pub fn pack_peers(from: NodeId, peers: &[Peer]) -> Vec<Msg> {
    peers
        .chunks(MAX_PEERS_PER_DATAGRAM)
        .map(|chunk| Msg::Peers {
            from,
            peers: chunk.to_vec(),
        })
        .collect()
}
