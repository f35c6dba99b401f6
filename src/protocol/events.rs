//! What a protocol state machine asks its driver to do, drained in order after every input,
//! and the typed events it reports on the way (the display layer words them; the cores never
//! write English).
//!
//! The order is the contract: the driver performs each output before the next, so a
//! [`Output::Deliver`] is on disk before any later [`Output::Send`] that depends on it
//! ("persist before you send", as in raft's Ready). [`perform`] is that rule, written once for
//! every driver: the threaded runtime and the simulation tests.

use crate::protocol::types::{ChatRecord, Epoch, NodeId, Seq, ServerId};
use crate::protocol::vote::Vote;
use crate::protocol::wire::Msg;

/// One action for the driver. `E` is the core's event type, `S` its stop reason.
#[derive(Clone, Debug, PartialEq)]
pub enum Output<E, S> {
    /// Append this record to the replica (records arrive in seq order), then show it.
    Deliver(ChatRecord),
    /// Multicast this message.
    Send(Msg),
    /// Send this message to one node (a client, or a server by [`NodeId::server`]) straight to
    /// its own address if the driver has heard from it, else to the group (where the others
    /// ignore it): the same effect, fewer processes woken.
    SendTo { to: NodeId, msg: Msg },
    /// Read final records `lo..=hi` from the replica and send them to `to` as history.
    ServeFromReplica { to: NodeId, lo: Seq, hi: Seq },
    /// Send these records (held in memory, in order) to `to` as history.
    SendHistory {
        to: NodeId,
        records: Vec<ChatRecord>,
    },
    /// Something the user may want to know (shown as a notice).
    Event(E),
    /// Write a checkpoint now (the view changed).
    Checkpoint,
    /// Write the vote durably now, before any later output: a promise, an acceptance or an
    /// installed view that a later datagram depends on (see [`crate::protocol::vote`]).
    SaveVote(Vote),
    /// The node is done; the driver writes a final checkpoint and exits.
    Stop(S),
}

#[cfg(test)]
impl<E, S> Output<E, S> {
    /// The same output, forgetting where a message goes: a [`Output::SendTo`] becomes a
    /// [`Output::Send`]. For unit tests that check what is sent, not to whom.
    pub(crate) fn anywhere(self) -> Output<E, S> {
        match self {
            Output::SendTo { msg, .. } => Output::Send(msg),
            other => other,
        }
    }
}

/// What a client's state machine outputs.
pub type MemberOutput = Output<MemberEvent, MemberStop>;
/// What the server's state machine outputs.
pub type CoordinatorOutput = Output<CoordinatorEvent, CoordinatorStop>;

/// What happened to a client, for its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberEvent {
    /// This node is in the ring.
    Joined {
        /// The view it joined.
        epoch: Epoch,
        /// How many members that view has.
        members: usize,
    },
    /// Another member joined (by name).
    MemberJoined(String),
    /// A member left or was left out (by name).
    MemberLeft(String),
    /// The server installed a view without this node; it joins again.
    LeftOut,
    /// No server has been heard for a while; the ring chats on without one.
    ServerUnreachable,
    /// A server is heard again.
    ServerBack,
    /// The server gathering this node waits for a quorum of the last primary view's voters:
    /// this side of a partition stamps nothing until it has one (typed lines are kept).
    WaitingForQuorum {
        /// Voters of the last primary that reported.
        reachable: u32,
        /// Voters of the last primary.
        voters: u32,
    },
    /// Our token pass goes unanswered and no server is heard to recover it: the ring cannot
    /// move until the silent member answers or a server comes.
    RingStalled {
        /// The member our pass does not reach.
        silent: String,
    },
    /// The ring moves again after a stall.
    RingMoves,
    /// Joining: a ring is heard on the group, but no server: joins wait for one.
    NoServerForRing,
    /// History is being fetched up to the cut.
    CatchingUp {
        /// How many messages are missing.
        missing: u64,
    },
    /// A long catch-up is under way.
    CatchUpProgress {
        /// Delivered so far.
        at: Seq,
        /// Where it ends.
        target: Seq,
    },
    /// History caught up.
    CaughtUp {
        /// Delivered up to here.
        at: Seq,
    },
    /// The server did not confirm the leave in time; the node leaves anyway.
    LeaveUnconfirmed,
}

/// Why a client's state machine stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberStop {
    /// Left the ring cleanly (or was never in one when asked to leave).
    Left,
    /// No server answered the join; whether a live ring was heard meanwhile (then the
    /// network carries the group, and the server is down).
    JoinTimeout {
        /// A token or a message of some ring arrived while joining.
        ring_heard: bool,
    },
    /// The server refused the join; its reason, as it sent it.
    Refused(String),
}

/// What happened at the server, for its log and stdout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoordinatorEvent {
    /// No server ranked before this one is heard: this one coordinates.
    Coordinating,
    /// The start-up probe heard no chat on the group: this server starts one.
    Started,
    /// The start-up probe heard a ring but none of its servers: this server waits for one
    /// instead of starting a second chat beside it.
    RingWithoutServer,
    /// Another server coordinates (the one named, if known): this one stands by, archives and
    /// takes over if it falls silent.
    Standby {
        /// The coordinating server.
        coordinator: Option<ServerId>,
    },
    /// The servers ranked before this one fell silent: it takes over.
    TakingOver,
    /// A gather waits for a quorum of the last primary view's voters.
    WaitingForQuorum {
        /// Voters of the last primary that reported.
        reachable: u32,
        /// Voters of the last primary.
        voters: u32,
    },
    /// A view was installed.
    ViewInstalled {
        /// Its epoch.
        epoch: Epoch,
        /// How many members it has.
        members: usize,
        /// Everything up to here is final and archived.
        cut: Seq,
    },
}

/// Why the server's state machine stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoordinatorStop {
    /// Another chat, with a history of its own, runs on this group and port: the two cannot
    /// share it (their seqs would collide).
    AnotherChat,
}

/// The effects a driver performs for a core: on disk and network for the runtime, in memory
/// for the simulation.
pub trait Effects<E, S> {
    /// The error of a failed effect; it ends [`perform`] at once.
    type Error;
    /// Appends records (consecutive, in seq order) to the replica and shows them: one call
    /// per run of consecutive deliveries, so the driver can write them at once.
    fn deliver(&mut self, records: Vec<ChatRecord>) -> Result<(), Self::Error>;
    /// Makes the deliveries so far durable. [`perform`] calls it once before the first
    /// datagram that follows deliveries, and at the end if deliveries are left unsynced (group
    /// commit: one call per batch, not per record). A driver that does not sync (the default
    /// durability) does nothing here.
    fn sync(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
    /// Multicasts a message.
    fn send(&mut self, msg: Msg);
    /// Sends a message to one node (see [`Output::SendTo`]).
    fn send_to(&mut self, to: NodeId, msg: Msg);
    /// Reads final records `lo..=hi` from the replica, to send as history.
    fn read_replica(&mut self, lo: Seq, hi: Seq) -> Result<Vec<ChatRecord>, Self::Error>;
    /// Sends records to `to` as history (packed into as few datagrams as fit).
    fn send_history(&mut self, to: NodeId, records: Vec<ChatRecord>);
    /// Shows an event.
    fn event(&mut self, event: E);
    /// Asks for a checkpoint.
    fn checkpoint(&mut self);
    /// Writes the vote durably, before it returns.
    fn save_vote(&mut self, vote: Vote) -> Result<(), Self::Error>;
    /// The node stopped.
    fn stop(&mut self, reason: S);
}

/// Performs outputs in order; consecutive deliveries are handed over as one batch, always
/// before any later output, and synced ([`Effects::sync`]) before any later datagram (persist
/// before you send).
pub fn perform<E, S, X: Effects<E, S>>(
    effects: &mut X,
    outputs: impl IntoIterator<Item = Output<E, S>>,
) -> Result<(), X::Error> {
    let mut batch: Vec<ChatRecord> = Vec::new();
    let mut unsynced = false;
    for out in outputs {
        if let Output::Deliver(rec) = out {
            batch.push(rec);
            continue;
        }
        if !batch.is_empty() {
            effects.deliver(std::mem::take(&mut batch))?;
            unsynced = true;
        }
        let sends = matches!(
            out,
            Output::Send(_)
                | Output::SendTo { .. }
                | Output::ServeFromReplica { .. }
                | Output::SendHistory { .. }
        );
        if sends && std::mem::take(&mut unsynced) {
            effects.sync()?;
        }
        match out {
            Output::Deliver(_) => {}
            Output::Send(msg) => effects.send(msg),
            Output::SendTo { to, msg } => effects.send_to(to, msg),
            Output::ServeFromReplica { to, lo, hi } => {
                let records = effects.read_replica(lo, hi)?;
                effects.send_history(to, records);
            }
            Output::SendHistory { to, records } => effects.send_history(to, records),
            Output::Event(event) => effects.event(event),
            Output::Checkpoint => effects.checkpoint(),
            Output::SaveVote(vote) => effects.save_vote(vote)?,
            Output::Stop(reason) => effects.stop(reason),
        }
    }
    if !batch.is_empty() {
        effects.deliver(batch)?;
        unsynced = true;
    }
    if unsynced {
        effects.sync()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    /// Records every effect as a line.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl Effects<MemberEvent, MemberStop> for Log {
        type Error = ();
        fn deliver(&mut self, records: Vec<ChatRecord>) -> Result<(), ()> {
            let seqs: Vec<String> = records.iter().map(|r| r.seq.to_string()).collect();
            self.0.push(format!("deliver {}", seqs.join(",")));
            Ok(())
        }
        fn sync(&mut self) -> Result<(), ()> {
            self.0.push("sync".into());
            Ok(())
        }
        fn send(&mut self, _: Msg) {
            self.0.push("send".into());
        }
        fn send_to(&mut self, _: NodeId, _: Msg) {
            self.0.push("send to".into());
        }
        fn read_replica(&mut self, lo: Seq, hi: Seq) -> Result<Vec<ChatRecord>, ()> {
            self.0.push(format!("read {lo}..={hi}"));
            Ok(Vec::new())
        }
        fn send_history(&mut self, _: NodeId, records: Vec<ChatRecord>) {
            self.0.push(format!("history {}", records.len()));
        }
        fn event(&mut self, event: MemberEvent) {
            self.0.push(format!("{event:?}"));
        }
        fn checkpoint(&mut self) {
            self.0.push("checkpoint".into());
        }
        fn save_vote(&mut self, _: Vote) -> Result<(), ()> {
            self.0.push("save vote".into());
            Ok(())
        }
        fn stop(&mut self, reason: MemberStop) {
            self.0.push(format!("stop {reason:?}"));
        }
    }

    /// What `perform` does with `outputs`, one line per effect.
    fn performed(outputs: Vec<MemberOutput>) -> Vec<String> {
        let mut log = Log::default();
        perform(&mut log, outputs).unwrap();
        log.0
    }

    fn rec(seq: u64) -> ChatRecord {
        ChatRecord {
            seq: Seq(seq),
            id: Uuid::nil(),
            from: NodeId(Uuid::nil()),
            name: "n".into(),
            text: "t".into(),
            sent_at_ms: 0,
        }
    }

    #[test]
    fn g5_one_sync_per_batch_of_deliveries_before_the_datagrams_that_follow() {
        let wake = || {
            Output::Send(Msg::Wake {
                epoch: Epoch(1),
                from: NodeId(Uuid::nil()),
                hop: 0,
            })
        };
        let outputs: Vec<MemberOutput> = vec![
            wake(),
            Output::Deliver(rec(1)),
            Output::Event(MemberEvent::ServerBack),
            Output::Deliver(rec(2)),
            Output::Checkpoint,
            wake(),
            wake(),
            Output::SendHistory {
                to: NodeId(Uuid::nil()),
                records: vec![rec(1)],
            },
            Output::Deliver(rec(3)),
            Output::SendHistory {
                to: NodeId(Uuid::nil()),
                records: vec![rec(3)],
            },
            Output::Deliver(rec(4)),
            Output::SendTo {
                to: NodeId(Uuid::nil()),
                msg: Msg::Wake {
                    epoch: Epoch(1),
                    from: NodeId(Uuid::nil()),
                    hop: 0,
                },
            },
        ];
        assert_eq!(
            performed(outputs),
            [
                "send",
                "deliver 1",
                "ServerBack",
                "deliver 2",
                "checkpoint",
                "sync",
                "send",
                "send",
                "history 1",
                "deliver 3",
                "sync",
                "history 1",
                "deliver 4",
                "sync",
                "send to"
            ]
        );
    }

    #[test]
    fn g2_deliveries_are_batched_and_written_before_the_send_that_follows() {
        let wake = Msg::Wake {
            epoch: Epoch(1),
            from: NodeId(Uuid::nil()),
            hop: 0,
        };
        let outputs: Vec<MemberOutput> = vec![
            Output::Deliver(rec(1)),
            Output::Deliver(rec(2)),
            Output::Send(wake.clone()),
            Output::SendTo {
                to: NodeId(Uuid::nil()),
                msg: wake,
            },
            Output::ServeFromReplica {
                to: NodeId(Uuid::nil()),
                lo: Seq(1),
                hi: Seq(2),
            },
            Output::Deliver(rec(3)),
            Output::Event(MemberEvent::ServerBack),
            Output::Checkpoint,
            Output::Deliver(rec(4)),
            Output::Stop(MemberStop::Left),
            Output::Deliver(rec(5)),
        ];
        assert_eq!(
            performed(outputs),
            [
                "deliver 1,2",
                "sync",
                "send",
                "send to",
                "read 1..=2",
                "history 0",
                "deliver 3",
                "ServerBack",
                "checkpoint",
                "deliver 4",
                "stop Left",
                "deliver 5",
                "sync"
            ]
        );
    }
}
