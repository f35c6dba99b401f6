//! Who coordinates: the start-up probe (join the chat heard on the group, or start one),
//! standing by (heartbeats, watching the servers ranked before this one), taking over when
//! they all fall silent, stepping down for a newer view or another server's recovery, and
//! keeping to one chat (a server whose chat never had a member gives it up for another).
//!
//! # The rank rule
//! A view lists its servers in rank order: the server that installed it first, then the
//! others in the order they had, then new ones. The first coordinates. A standby takes over
//! once every server ranked before it has been silent for `takeover` (and no other server's
//! recovery was heard meanwhile): it gathers a new view, which drops the silent ones and puts
//! it first. A server that comes back is no longer in the view, so it stands by, and the
//! coordinator adds it (as a join) when it hears its heartbeat. Who coordinates is a matter of
//! liveness only: the quorum rule keeps any recovery safe, whoever runs it.
//!
//! Methods of `Coordinator`; pure like the rest of the core.

use super::{Coordinator, State, Timer};
use crate::protocol::events::{CoordinatorEvent, CoordinatorStop};
use crate::protocol::fetch::RangeFetch;
use crate::protocol::parts::Proposed;
use crate::protocol::types::{Epoch, GroupId, Member, Seq, ServerId, View};
use crate::protocol::vote::Vote;
use crate::protocol::wire::Msg;
use std::time::Instant;

/// What a standing-by server is doing besides archiving.
#[derive(Debug, Default)]
pub(super) struct Standby {
    /// A proposal this server accepts once its archive holds the proposal's cut (a later cut
    /// must find those records on every server that accepted): fetched from its proposer
    /// first ([`Timer::AcceptFetchRetry`]).
    pub(super) accepting: Option<Accepting>,
}

/// A proposal waiting for the archive to reach its cut.
#[derive(Debug)]
pub(super) struct Accepting {
    pub(super) head: Proposed,
    pub(super) members: Vec<Member>,
    pub(super) fetch: RangeFetch,
}

impl Coordinator {
    /// Whether a server's message of chat `group` is one this server acts on; notes the
    /// server heard. A fresh server joins the chat it hears; one whose chat never had a
    /// member gives it up for a chat that has (or, between two empty ones, for the one of
    /// the lower id); a chat with a history never mixes with another.
    pub(super) fn of_our_chat(
        &mut self,
        now: Instant,
        server: ServerId,
        group: GroupId,
        msg: &Msg,
    ) -> bool {
        let echo = matches!(msg, Msg::Propose { to: Some(_), .. });
        match self.vote.group {
            Some(ours) if ours == group => {}
            None => self.vote.group = Some(group),
            Some(ours) => {
                // Only what a chat announces of itself tells whether it has members or a
                // history: its beacons and views.
                let theirs_attached = match msg {
                    Msg::Beacon { members, high, .. } => *members > 0 || *high > Seq(0),
                    Msg::View { members, cut, .. } => !members.is_empty() || *cut > Seq(0),
                    _ => return false,
                };
                let ours_empty = self.vote.is_unattached() && self.archived() == Seq(0);
                if ours_empty && (theirs_attached || group < ours) {
                    log::warn!(
                        "joining chat {group} heard on the group; chat {ours} had no member"
                    );
                    self.join_chat(now, group);
                } else if theirs_attached && !ours_empty && matches!(self.state, State::Probing) {
                    log::error!("another chat ({group}) with a history runs on this group");
                    self.stop(CoordinatorStop::AnotherChat);
                    return false;
                } else {
                    log::debug!("ignoring chat {group}'s server {server} (ours is {ours})");
                    return false;
                }
            }
        }
        if !echo {
            self.heard.insert(server, now);
        }
        true
    }

    /// Gives up our empty chat for `group`: a fresh vote, no view; we stand by and the
    /// coordinator of that chat adds us when it hears our heartbeat.
    fn join_chat(&mut self, now: Instant, group: GroupId) {
        self.vote = Vote {
            group: Some(group),
            ..Vote::default()
        };
        self.save_vote();
        self.view = View::default();
        self.cut = self.archived();
        self.joins.clear();
        self.leaves.clear();
        if !matches!(self.state, State::Probing) {
            self.step_down(now, None);
        }
    }

    /// While probing: servers are noted as heard (by the caller); tokens and messages are
    /// archived once safe, everything else waits until the probe ends.
    pub(super) fn probe(&mut self, now: Instant, msg: Msg) {
        match msg {
            Msg::Token(token) => {
                self.observe_epoch(token.epoch);
                self.note_progress(now, &token);
            }
            Msg::Data { epoch, group, recs } => self.on_data(epoch, group, recs),
            Msg::Beacon {
                epoch,
                high,
                standby,
                ..
            } => {
                self.observe_epoch(epoch);
                self.high_heard = self.high_heard.max(high);
                if !standby {
                    self.recovery_heard = Some(now);
                }
            }
            Msg::Gather { epoch, .. } | Msg::Propose { epoch, .. } | Msg::View { epoch, .. } => {
                self.observe_epoch(epoch);
                self.recovery_heard = Some(now);
            }
            _ => {}
        }
    }

    /// The probe is over: a server that heard no chat starts one; any other stands by, and
    /// coordinates at once if nobody ranked before it is heard.
    pub(super) fn end_probe(&mut self, now: Instant) {
        if self.vote.group.is_none() && self.ring_heard_within(now, self.cfg.probe) {
            if !self.ring_without_server_shown {
                self.ring_without_server_shown = true;
                log::warn!("a ring is heard but none of its servers: not starting a chat");
                self.event(CoordinatorEvent::RingWithoutServer);
            }
            self.timers.set(Timer::Probe, now + self.cfg.probe);
            return;
        }
        if self.vote.group.is_none() {
            self.vote = Vote::genesis(self.cfg.new_group, self.cfg.server_id);
            self.save_vote();
            self.start_chat(now);
            return;
        }
        self.enter(State::Standby(Standby::default()));
        self.timers.set(Timer::Beacon, now);
        self.timers.set(Timer::Takeover, now);
        if !self.may_take_over(now) {
            let coordinator = self.view.coordinator().filter(|s| *s != self.cfg.server_id);
            self.event(CoordinatorEvent::Standby { coordinator });
        }
    }

    /// A server that gave up its empty chat for one whose view it never learned (its server
    /// died first), and hears nothing of it for twice `takeover`, starts a chat again: its
    /// own chat id, never another's, so nothing it could have promised there is reused. A
    /// server with a history or a view with members waits for its chat instead.
    fn may_start_afresh(&mut self, now: Instant) -> bool {
        let heard_last = self.heard.values().copied().max().unwrap_or(self.started);
        let empty = self.vote.is_unattached() && self.archived() == Seq(0);
        if !empty
            || self.ring_heard_within(now, self.cfg.takeover * 2)
            || self.vote.group == Some(self.cfg.new_group)
            || now < heard_last.max(self.started) + self.cfg.takeover * 2
        {
            self.timers
                .set(Timer::Takeover, now + self.cfg.beacon_interval);
            return false;
        }
        log::warn!("nothing heard of the chat this server joined: starting one");
        self.vote = Vote::genesis(self.cfg.new_group, self.cfg.server_id);
        self.save_vote();
        self.start_chat(now);
        true
    }

    /// Whether a ring was heard within `window` before `now`.
    fn ring_heard_within(&self, now: Instant, window: std::time::Duration) -> bool {
        self.ring_heard.is_some_and(|at| now < at + window)
    }

    /// Coordinates the chat of a genesis vote, admitting nobody for one beacon interval.
    fn start_chat(&mut self, now: Instant) {
        if let Some(p) = &self.vote.primary {
            self.view = p.view.clone();
        }
        self.started_chat = Some(now + self.cfg.beacon_interval);
        self.event(CoordinatorEvent::Started);
        self.start_coordinating(now);
    }

    /// Stops coordinating (or recovering): another server does, or runs a recovery above
    /// ours. The archive and the vote go on.
    pub(super) fn step_down(&mut self, now: Instant, coordinator: Option<ServerId>) {
        let was = self.is_coordinating();
        self.enter(State::Standby(Standby::default()));
        self.archiving = true;
        self.timers
            .set(Timer::Beacon, now + self.cfg.beacon_interval);
        self.timers.set(Timer::Takeover, now + self.cfg.takeover);
        if was {
            log::info!("standing by");
            self.event(CoordinatorEvent::Standby { coordinator });
        }
    }

    pub(super) fn standby_timers(&mut self, now: Instant) {
        if self.timers.take_due(Timer::Beacon, now) {
            self.standby_beacon(now);
        }
        if self.timers.take_due(Timer::AcceptFetchRetry, now) {
            self.fetch_for_accept(now);
        }
        if self.timers.take_due(Timer::Takeover, now) {
            self.may_take_over(now);
        }
    }

    /// Takes over if every server ranked before this one in the view is silent and nobody
    /// else runs a recovery; otherwise looks again later. Returns whether it took over.
    fn may_take_over(&mut self, now: Instant) -> bool {
        let me = self.cfg.server_id;
        let quiet = |at: Option<Instant>| at.is_none_or(|at| now >= at + self.cfg.takeover);
        // A server outside the view ranks after all of its servers: the coordinator adds it,
        // and if they all fall silent it recovers the ring with the members.
        let rank = self.view.servers.iter().position(|s| *s == me);
        let ahead = &self.view.servers[..rank.unwrap_or(self.view.servers.len())];
        let ahead_silent = ahead
            .iter()
            .all(|s| quiet(Some(self.heard.get(s).copied().unwrap_or(self.started))));
        if !ahead_silent || !quiet(self.recovery_heard) {
            self.timers
                .set(Timer::Takeover, now + self.cfg.beacon_interval);
            return false;
        }
        if ahead.is_empty() && rank.is_none() {
            return self.may_start_afresh(now);
        }
        if rank == Some(0) {
            log::info!("coordinating view {}", self.view.epoch);
            self.event(CoordinatorEvent::Coordinating);
            self.start_coordinating(now);
            if self.max_epoch > self.view.epoch {
                self.start_gather(now); // the ring moved on while we were away
            }
        } else {
            log::info!("the servers ranked before this one are silent: taking over");
            self.stats.takeovers += 1;
            self.event(CoordinatorEvent::TakingOver);
            self.start_gather(now);
        }
        true
    }

    /// A server's heartbeat: a newer view than ours makes a coordinating server step down
    /// (and everyone ask for it); a standby's heartbeat from outside the view is a server
    /// that wants in; an archive ahead of ours is pulled.
    pub(super) fn on_beacon(
        &mut self,
        now: Instant,
        epoch: Epoch,
        high: Seq,
        server: ServerId,
        standby: bool,
    ) {
        if server == self.cfg.server_id {
            return;
        }
        self.observe_epoch(epoch);
        if high > self.high_heard {
            self.high_heard = high;
            if self.pull.is_none() && high > self.archived() && !self.is_recovering() {
                self.start_pull(now, high);
            }
        }
        if epoch > self.view.epoch {
            // A newer view was installed without us seeing it: ours is stale, whoever says
            // so (a standby of the newer view too).
            self.stale_view(now, (!standby).then_some(server));
            return;
        }
        if standby {
            if !self.view.servers.contains(&server) && self.is_coordinating() {
                self.server_wants_in(now, server);
            }
            return;
        }
        // Someone coordinates: no standby takes over while it is heard.
        self.recovery_heard = Some(now);
        let rank = |id: ServerId| self.view.servers.iter().position(|s| *s == id);
        let theirs_first = epoch == self.view.epoch
            && matches!((rank(server), rank(self.cfg.server_id)), (Some(t), Some(m)) if t < m);
        if theirs_first && self.is_coordinating() {
            self.step_down(now, Some(server));
        }
    }

    /// A view newer than ours was installed: a coordinating server steps down (it is not a
    /// voter of that view, or missed its install), and asks for it.
    pub(super) fn stale_view(&mut self, now: Instant, coordinator: Option<ServerId>) {
        if self.is_coordinating() {
            self.recovery_heard = Some(now);
            self.step_down(now, coordinator);
        }
        self.send(Msg::ViewRequest {
            from: self.id(),
            epoch: self.view.epoch,
        });
    }

    /// Whether `other` is ranked before this server in its view: its recovery goes first.
    pub(super) fn ranked_before_us(&self, other: ServerId) -> bool {
        let rank = |id: ServerId| self.view.servers.iter().position(|s| *s == id);
        matches!((rank(other), rank(self.cfg.server_id)), (Some(t), Some(m)) if t < m)
    }

    /// A server outside the view is heard: it joins the view's servers with the next gather.
    fn server_wants_in(&mut self, now: Instant, server: ServerId) {
        if self.new_servers.contains(&server) {
            return;
        }
        if self.view.servers.len() + self.new_servers.len() >= crate::protocol::limits::MAX_SERVERS
        {
            log::warn!("server {server} asks in, but the view has the most servers it may");
            return;
        }
        log::info!("server {server} stands by; adding it to the view");
        self.new_servers.push(server);
        if matches!(self.state, State::Coordinating(_)) {
            self.start_gather(now);
        }
    }

    /// Whether a standby of the view has been silent for `takeover`: a view without it keeps
    /// the voter set honest (a quorum of the living).
    pub(super) fn silent_standby(&self, now: Instant) -> bool {
        let me = self.cfg.server_id;
        self.view.servers.iter().filter(|s| **s != me).any(|s| {
            let at = self.heard.get(s).copied().unwrap_or(self.started);
            now >= at + self.cfg.takeover
        })
    }
}
