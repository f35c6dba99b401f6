//! How a server tells the group its view: a compact [`Msg::Beacon`] (the view's size and
//! digest) every beacon interval as the heartbeat, and the whole view, in as many parts as it
//! takes, at install and when members ask for it ([`Msg::ViewRequest`]). A standby's
//! heartbeat is a beacon marked `standby`: it keeps the other servers' rank rule fed and
//! asks the coordinator to add it to the view if it is not there.
//!
//! A hundred members that lost the same part all ask at once; the view goes out again at most
//! once per [`VIEW_RESEND_GAP`], so they cost one resend. Pure: no clock, no I/O.

use super::{Coordinator, State, Timer};
use crate::protocol::types::GroupId;
use crate::protocol::wire::{self, Msg, ViewHead};
use std::time::{Duration, Instant};

/// Shortest time between two sends of the whole view, however many members ask.
pub(super) const VIEW_RESEND_GAP: Duration = Duration::from_millis(100);

impl Coordinator {
    fn view_head(&self) -> ViewHead {
        ViewHead {
            epoch: self.view.epoch,
            cut: self.cut,
            high: self.archived(),
            token_timeout_ms: u64::try_from(self.cfg.token_timeout.as_millis()).unwrap_or(u64::MAX),
            server: self.cfg.server_id,
            group: self.vote.group.unwrap_or(GroupId(0)),
            servers: self.view.servers.clone(),
        }
    }

    fn heartbeat(&self, standby: bool) -> Msg {
        let head = self.view_head();
        Msg::Beacon {
            epoch: head.epoch,
            cut: head.cut,
            high: head.high,
            token_timeout_ms: head.token_timeout_ms,
            server: head.server,
            members: self.view.members.len() as u64,
            digest: self.view.digest(),
            group: head.group,
            standby,
        }
    }

    /// The heartbeat (the view in brief, with the archive's high-water mark); the next one
    /// is armed while coordinating.
    pub(super) fn beacon(&mut self, now: Instant) {
        if matches!(self.state, State::Coordinating(_)) {
            // A chat just started says so often: another server that started one at the
            // same moment must hear it before either admits anyone, loss or not.
            let holding = self.started_chat.is_some_and(|until| now < until);
            let gap = match holding {
                true => self.cfg.beacon_interval / 8,
                false => self.cfg.beacon_interval,
            };
            self.timers.set(Timer::Beacon, now + gap);
        }
        let beacon = self.heartbeat(false);
        self.send(beacon);
    }

    /// A standby's heartbeat; the next one is armed.
    pub(super) fn standby_beacon(&mut self, now: Instant) {
        self.timers
            .set(Timer::Beacon, now + self.cfg.beacon_interval);
        let beacon = self.heartbeat(true);
        self.send(beacon);
    }

    /// Every part of the installed view, now.
    pub(super) fn send_view(&mut self, now: Instant) {
        self.view_sent_at = Some(now);
        self.timers.stop(Timer::ViewResend);
        for part in wire::pack_view(&self.view_head(), &self.view.members) {
            self.send(part);
        }
    }

    /// Someone needs the whole view (a member asked, a non-member says it leaves): it goes
    /// out now, or once [`VIEW_RESEND_GAP`] has passed since the last time, whoever else asks
    /// meanwhile. Only while coordinating: a gather under way ends in a new view anyway.
    pub(super) fn view_wanted(&mut self, now: Instant) {
        if !matches!(self.state, State::Coordinating(_)) {
            return;
        }
        match self.view_sent_at {
            Some(at) if now < at + VIEW_RESEND_GAP => {
                if self.timers.get(Timer::ViewResend).is_none() {
                    self.timers.set(Timer::ViewResend, at + VIEW_RESEND_GAP);
                }
            }
            _ => self.send_view(now),
        }
    }
}
