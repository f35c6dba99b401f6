//! Packing what does not fit one datagram into as few datagrams as fit: live records into
//! `Data` packs, final records into `History` datagrams, and the member lists of views and
//! gathers into parts. One splitter serves them all: each item is measured once, and a list's
//! size is its empty message plus its items plus a comma between two.
//!
//! Pure: sizes are measured by encoding, nothing is sent from here. Every packer keeps each
//! datagram within [`MAX_PLAINTEXT_BYTES`], so it fits sealed or not.

use super::{encode, encoded_len, Msg};
use crate::protocol::limits::MAX_PLAINTEXT_BYTES;
use crate::protocol::types::{ChatRecord, Epoch, Member, NodeId, Seq, ServerId};
use serde::Serialize;
use std::ops::Range;

/// What every part of a view says besides its members (and what a beacon says of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewHead {
    pub epoch: Epoch,
    /// Every seq up to `cut` is final and held by the server.
    pub cut: Seq,
    /// The server's archive high-water mark.
    pub high: Seq,
    /// The server's token timeout.
    pub token_timeout_ms: u64,
    /// The sending server's id.
    pub server: Option<ServerId>,
}

impl ViewHead {
    /// Part `part` of `parts`, carrying `members`.
    pub fn part(&self, part: u32, parts: u32, members: Vec<Member>) -> Msg {
        Msg::View {
            epoch: self.epoch,
            part,
            parts,
            members,
            cut: self.cut,
            high: self.high,
            token_timeout_ms: self.token_timeout_ms,
            server: self.server,
        }
    }
}

/// Splits a view into as few parts as fit, each with a contiguous slice of `members` in ring
/// order; a view that fits one datagram (an empty one too) is part 0 of 1.
pub fn pack_view(head: ViewHead, members: &[Member]) -> Vec<Msg> {
    // Measured with the widest part numbers, so the real ones only make a part shorter.
    let empty = encoded_len(&head.part(u32::MAX, u32::MAX, Vec::new()));
    let runs = split(members, empty);
    let parts = count(&runs);
    runs.into_iter()
        .zip(0..)
        .map(|(run, i)| head.part(i, parts, members[run].to_vec()))
        .collect()
}

/// Splits a gather's proposed members over as few parts as fit; each part stands alone.
pub fn pack_gather(epoch: Epoch, server: Option<ServerId>, members: &[NodeId]) -> Vec<Msg> {
    let part = |part, parts, members| Msg::Gather {
        epoch,
        part,
        parts,
        members,
        server,
    };
    let empty = encoded_len(&part(u32::MAX, u32::MAX, Vec::new()));
    let runs = split(members, empty);
    let parts = count(&runs);
    runs.into_iter()
        .zip(0..)
        .map(|(run, i)| part(i, parts, members[run].to_vec()))
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
    for rec in records {
        let len = json_len(&rec);
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
pub fn pack_data(epoch: Epoch, records: Vec<ChatRecord>) -> Vec<Msg> {
    let empty = encoded_len(&Msg::Data {
        epoch,
        recs: Vec::new(),
    });
    batch_records(records, empty)
        .into_iter()
        .map(|recs| Msg::Data { epoch, recs })
        .collect()
}
