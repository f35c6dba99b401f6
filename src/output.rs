//! What a protocol state machine asks its driver to do, drained in order after every input.
//!
//! The order is the contract: the driver performs each output before the next, so a
//! [`Output::Deliver`] is on disk before any later [`Output::Send`] that depends on it
//! ("persist before you send", as in raft's Ready).

use crate::types::{ChatRecord, NodeId, Seq};
use crate::wire::Msg;

/// One action for the driver.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Append this record to the replica (records arrive in seq order), then show it.
    Deliver(ChatRecord),
    /// Multicast this message.
    Send(Msg),
    /// Read final records `lo..=hi` from the replica and send them to `to` as history.
    ServeFromReplica { to: NodeId, lo: Seq, hi: Seq },
    /// Send these records (held in memory, in order) to `to` as history.
    SendHistory {
        to: NodeId,
        records: Vec<ChatRecord>,
    },
    /// A line for the user (shown as `* text`).
    Notice(String),
    /// Write a checkpoint now (the view changed).
    Checkpoint,
    /// The node is done; the driver writes a final checkpoint and exits.
    Stop(StopReason),
}

/// Why a node stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Left the ring cleanly.
    Left,
    /// No server answered the join.
    JoinTimeout,
    /// The server refused the join.
    Refused(String),
    /// Another server already coordinates this group (a server at start-up heard it).
    AnotherServer,
}
