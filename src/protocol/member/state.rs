//! Where a member is in its life, as one [`State`] whose variants own their data, and the
//! [`Timer`]s that its deadlines are kept under.
//!
//! Data and small predicates only: when to move between states is decided beside the inputs
//! that cause it (`member.rs`, `token.rs`), never here. No clock, no I/O.

use crate::protocol::timer;
use crate::protocol::token_ring::Token;
use crate::protocol::types::{Epoch, NodeId, Seq};
use std::time::Instant;

/// A member's life: chatting, then (after `leave`) draining and announcing, then stopped.
/// Leaving runs beside the member's place in the group, so the leaving states carry a
/// [`Phase`] too: a leaver that is not admitted yet keeps joining while it drains, and a
/// leaver reports to gathers until a view without it arrives.
#[derive(Debug)]
pub(super) enum State {
    /// Chatting.
    Active(Phase),
    /// Asked to leave: lines still in the outbox go out first, until
    /// [`Timer::DrainDeadline`]. A leaver that is not admitted keeps joining meanwhile.
    Draining(Phase),
    /// The Leave is out, repeated on [`Timer::Leave`] until a view without this node arrives
    /// or [`Timer::LeaveTimeout`] passes. Nothing new is stamped; the token is still passed
    /// on and gathers are still answered, since the ring counts on this node until then.
    Announced(Phase),
    /// Left, refused or timed out: no more inputs are handled and no timers run.
    Stopped,
}

/// Where a member that has not stopped stands in the group.
#[derive(Debug)]
pub(super) enum Phase {
    /// Not in the installed view: at start, or after a view left this node out. Says Hello
    /// on [`Timer::Hello`] (unless its Leave is already out).
    Joining,
    /// In the installed view's ring (boxed: a ring holds up to two tokens).
    InRing(Box<Ring>),
    /// The server gathers a new epoch: the old ring is frozen and its token is dead to us.
    Gathering {
        /// The highest epoch gathered for.
        epoch: Epoch,
        /// The old ring's last holder seen, still shown by `/who` until the view arrives.
        seen_holder: Option<(u64, NodeId)>,
    },
}

/// See [`Ring::direct_misses`].
pub(super) const DIRECT_MISSES_TO_GIVE_UP: u8 = 2;

/// The token state of one epoch's ring; a new view starts a fresh one.
#[derive(Debug, Default)]
pub(super) struct Ring {
    /// Highest hop accepted (duplicates and retransmits have lower or equal).
    pub(super) last_hop: u64,
    /// The token, held through the idle hold, or while we collect the members' arus for
    /// what we stamped (it then has unsafe lines), until [`Timer::IdlePass`].
    pub(super) held: Option<Token>,
    /// `safe` and `seq` of the token we hold as it arrived: our pass goes to the whole group
    /// if `safe` rose meanwhile, and we collect the arus ourselves only if every line above
    /// `safe` was stamped by us.
    pub(super) arrived_safe: Seq,
    pub(super) arrived_seq: Seq,
    /// A holder that asked us for our aru once we hold everything up to this seq.
    pub(super) collect_for: Option<(NodeId, Seq)>,
    /// When the collection of arus for the lines we stamped ends, if we are collecting.
    pub(super) collect_deadline: Option<Instant>,
    /// A token that came before packs it counts (they travel to the group, it came to us
    /// alone, through another socket): its visit waits for them until [`Timer::TokenReorder`].
    pub(super) early_packs: Option<Token>,
    /// Our last pass, until a later hop or the successor's ack shows it arrived; sent again
    /// (to the whole group) on [`Timer::TokenRetransmit`].
    pub(super) unconfirmed: Option<Token>,
    /// Whether that pass went to the successor alone.
    pub(super) unconfirmed_direct: bool,
    /// When that pass first went out.
    pub(super) unconfirmed_since: Option<Instant>,
    /// How many times that pass was sent again (its timeout doubles each time, and its
    /// acknowledgement is no round-trip sample).
    pub(super) resends: u32,
    /// Direct passes in a row that went unconfirmed. At [`DIRECT_MISSES_TO_GIVE_UP`] passes
    /// go to the group for the rest of the epoch: the successor is unreachable at the address
    /// we know (a firewall, a stale address), while the group reaches it.
    pub(super) direct_misses: u8,
    /// The latest hop seen on the wire, and whom it went to.
    pub(super) seen_holder: Option<(u64, NodeId)>,
    /// A member that asked for the token while we did not hold it, and when: the token may
    /// be on its way to us, and we pass it on at once when it comes.
    pub(super) heard_wake: Option<(NodeId, Instant)>,
    /// How many lines at the front of the outbox were stamped in this epoch and are not yet
    /// delivered (lines are stamped and delivered in typing order); never stamped twice.
    pub(super) in_flight: usize,
    /// When we first asked for the token (a Wake) since we last held it: if it never comes
    /// and no server is heard, the ring is stalled on the member we last saw it go to.
    pub(super) woke_since: Option<Instant>,
    /// Wakes sent since then: each waits twice as long as the one before for the token.
    pub(super) wake_resends: u32,
    /// Visits left during which our passes go out twice: the ring showed loss lately (see
    /// [`LOSS_MEMORY`]).
    pub(super) lossy_visits: u32,
}

/// Visits during which a member sends each pass twice after it saw the ring lose a datagram
/// (a retransmission request on the token, or a pass of its own that went unconfirmed).
pub(super) const LOSS_MEMORY: u32 = 64;

impl Ring {
    /// `holder` has held the token since it asked for it (it passed it, or collects for
    /// what it stamped): its Wake is answered, and passing the token on at once for it would
    /// send it round for nothing.
    pub(super) fn forget_wake_of(&mut self, holder: NodeId) {
        if self.heard_wake.is_some_and(|(from, _)| from == holder) {
            self.heard_wake = None;
        }
    }
}

impl State {
    /// The member's place in the group; `None` once stopped.
    pub(super) fn phase(&self) -> Option<&Phase> {
        match self {
            State::Active(p) | State::Draining(p) | State::Announced(p) => Some(p),
            State::Stopped => None,
        }
    }

    pub(super) fn phase_mut(&mut self) -> Option<&mut Phase> {
        match self {
            State::Active(p) | State::Draining(p) | State::Announced(p) => Some(p),
            State::Stopped => None,
        }
    }

    /// The ring we are in, if any (not while joining or gathering).
    pub(super) fn ring(&self) -> Option<&Ring> {
        match self.phase() {
            Some(Phase::InRing(ring)) => Some(ring.as_ref()),
            _ => None,
        }
    }

    pub(super) fn ring_mut(&mut self) -> Option<&mut Ring> {
        match self.phase_mut() {
            Some(Phase::InRing(ring)) => Some(ring.as_mut()),
            _ => None,
        }
    }

    /// In the installed view (in its ring, or gathering from it).
    pub(super) fn admitted(&self) -> bool {
        matches!(
            self.phase(),
            Some(Phase::InRing(_) | Phase::Gathering { .. })
        )
    }

    /// Not in the view and asking to be: at start, after exclusion, or excluded while still
    /// draining before a leave (not once the Leave is out).
    pub(super) fn joining(&self) -> bool {
        matches!(
            self,
            State::Active(Phase::Joining) | State::Draining(Phase::Joining)
        )
    }

    /// A leave was asked for (draining or announced).
    pub(super) fn leaving(&self) -> bool {
        matches!(self, State::Draining(_) | State::Announced(_))
    }

    /// The Leave is out.
    pub(super) fn announced(&self) -> bool {
        matches!(self, State::Announced(_))
    }

    /// The same phase, draining now.
    pub(super) fn draining(self) -> State {
        match self {
            State::Active(p) => State::Draining(p),
            other => other,
        }
    }

    /// The same phase, with the Leave out now.
    pub(super) fn announcing(self) -> State {
        match self {
            State::Draining(p) => State::Announced(p),
            other => other,
        }
    }
}

/// A member's deadlines, one slot each in its [`timer::TimerTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// Say Hello again while joining.
    Hello,
    /// Give up joining if no server was heard by then.
    JoinTimeout,
    /// Pass on the token we hold: the idle hold is over, or the arus did not all come.
    IdlePass,
    /// Visit the token that arrived ahead of packs it counts, without waiting longer for them.
    TokenReorder,
    /// Send our last pass again: no later hop showed it arrived.
    TokenRetransmit,
    /// Ask again for the history chunk that has not arrived.
    FetchRetry,
    /// Ask again for the token: the Wake (or the token) got lost.
    WakeResend,
    /// Tell the user that the server has gone quiet.
    ServerSilence,
    /// Leave anyway, even with lines still in the outbox.
    DrainDeadline,
    /// Say Leave again.
    Leave,
    /// Stop without the view that confirms the leave.
    LeaveTimeout,
}

impl timer::Timer for Timer {
    const ALL: &'static [Timer] = &[
        Timer::Hello,
        Timer::JoinTimeout,
        Timer::IdlePass,
        Timer::TokenReorder,
        Timer::TokenRetransmit,
        Timer::FetchRetry,
        Timer::WakeResend,
        Timer::ServerSilence,
        Timer::DrainDeadline,
        Timer::Leave,
        Timer::LeaveTimeout,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// What this node knows of the server's liveness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ServerContact {
    /// Never heard: the join may still time out.
    Unheard,
    /// Heard within [`Timer::ServerSilence`].
    Heard,
    /// Silent for a while (the user was told); the ring chats on without it.
    Silent,
}
