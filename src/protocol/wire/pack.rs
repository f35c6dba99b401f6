//! Packing what does not fit one datagram into as few datagrams as fit: final records into
//! `History` datagrams, and the member lists of views and gathers into parts.
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
/// encodes to `empty` bytes: a list's size is its items plus a comma between two. Always at
/// least one run (an empty one if there are no items).
fn split<T: Serialize>(items: &[T], empty: usize) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut size = empty;
    for (i, item) in items.iter().enumerate() {
        let len = serde_json::to_vec(item).map_or(usize::MAX, |b| b.len());
        if i > start && size.saturating_add(1 + len) > MAX_PLAINTEXT_BYTES {
            runs.push(start..i);
            start = i;
            size = empty;
        }
        size = size.saturating_add(usize::from(i > start) + len);
    }
    runs.push(start..items.len());
    runs
}

/// Packs final records (in seq order) into as few `History` datagrams for `to` as fit.
/// A record that cannot fit even alone (impossible for lines that passed [`super::check_line`]) is
/// skipped with a warning rather than sent oversize.
pub fn pack_history(to: NodeId, records: Vec<ChatRecord>) -> Vec<Vec<u8>> {
    // A History's size is its empty frame plus each record plus a comma between records, so
    // each record is measured once and each datagram encoded once.
    let empty = encoded_len(&history(to, Vec::new()));
    let mut out = Vec::new();
    let mut batch: Vec<ChatRecord> = Vec::new();
    let mut size = empty;
    for rec in records {
        let len = serde_json::to_vec(&rec).map_or(usize::MAX, |b| b.len());
        if empty.saturating_add(len) > MAX_PLAINTEXT_BYTES {
            log::warn!("record {} too large for a datagram; not sent", rec.seq);
            continue;
        }
        let comma = usize::from(!batch.is_empty());
        if size + comma + len > MAX_PLAINTEXT_BYTES {
            out.extend(encode(&history(to, std::mem::take(&mut batch))).ok());
            size = empty;
        }
        size += usize::from(!batch.is_empty()) + len;
        batch.push(rec);
    }
    if !batch.is_empty() {
        out.extend(encode(&history(to, batch)).ok());
    }
    out
}

fn history(to: NodeId, records: Vec<ChatRecord>) -> Msg {
    Msg::History { to, records }
}
