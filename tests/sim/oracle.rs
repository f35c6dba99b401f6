//! The guarantees, checked as the run goes: every delivery against the one true history (G1,
//! G2), every record of every multicast `Data` pack against what was sent before under
//! the same epoch and seq (G3), and every view a node forms against the chain of primary
//! views (each formed by a quorum of its predecessor's voters, one view per epoch). A check
//! returns the violation as text; the driver adds the seed and fails.
//!
//! It only watches: it never changes what a node does, and it holds no node state.

use mcast_chat::protocol::types::{ChatRecord, Epoch, GroupId, NodeId, Seq};
use mcast_chat::protocol::vote::{Session, Vote};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;
use uuid::Uuid;

/// What the run has seen so far.
#[derive(Default)]
pub struct Oracle {
    /// Every line a user typed (and the node had on disk), by id: its node and text.
    typed: HashMap<Uuid, (usize, String)>,
    /// The one true history as it grows: seq → line id (G1).
    history: BTreeMap<Seq, Uuid>,
    /// Lines of authors dead for good that nobody had delivered when they died: no longer due
    /// (G2 promises delivery only to an author that comes back), though still valid.
    abandoned: HashSet<Uuid>,
    /// Of those, how many were delivered after all.
    abandoned_delivered: usize,
    /// Every record of every `Data` pack any node multicast: (epoch, seq) → line id. The token is the only source
    /// of seqs in an epoch, so a second id under one key means two holders stamped (G3).
    stamped: HashMap<(Epoch, Seq), (usize, Uuid)>,
    /// Every view some node formed (installed as a primary), by chat and epoch (each chat
    /// begins with the view of epoch 0 of the server that started it).
    formed: BTreeMap<(GroupId, Epoch), Session>,
    /// Who accepted each proposal (saved it as an attempt), by epoch.
    accepted: HashMap<Epoch, HashSet<NodeId>>,
    /// When each node delivered each line, by line id: what the latency tests measure.
    delivered_at: HashMap<Uuid, Vec<(usize, Instant)>>,
    /// Skips the checks of formed views (`MCAST_SIM_NO_CHAIN`: to show that a run which breaks
    /// the quorum rule on purpose is caught by the delivery checks alone).
    chain_unchecked: bool,
}

impl Oracle {
    /// An oracle that checks everything, or everything but the quorum chain.
    pub fn new(chain_unchecked: bool) -> Oracle {
        Oracle {
            chain_unchecked,
            ..Oracle::default()
        }
    }

    /// Node `id` saved `vote`: its attempts are acceptances; a new primary is a formed view,
    /// which must be the only view of its epoch and built by a quorum of the voters of the
    /// formed view before it.
    pub fn saved_vote(&mut self, id: NodeId, vote: &Vote) -> Result<(), String> {
        for a in &vote.attempts {
            self.accepted.entry(a.epoch()).or_default().insert(id);
        }
        let (Some(primary), Some(group), false) = (&vote.primary, vote.group, self.chain_unchecked)
        else {
            return Ok(());
        };
        let epoch = primary.epoch();
        match self.formed.get(&(group, epoch)) {
            Some(known) if known == primary => return Ok(()),
            Some(known) => {
                return Err(format!(
                    "G1 violated: two views formed in epoch {epoch}: {:?} and {:?}",
                    known.view, primary.view
                ))
            }
            None => {}
        }
        let chat = (group, Epoch(0))..=(group, Epoch(u64::MAX));
        if let Some(((_, later), _)) = self
            .formed
            .range((group, epoch)..)
            .next()
            .filter(|(k, _)| k.0 == group)
        {
            return Err(format!(
                "G1 violated: epoch {epoch} formed after epoch {later} had: two primaries"
            ));
        }
        if let Some((_, before)) = self.formed.range(chat).next_back() {
            let acceptors = self.accepted.get(&epoch).cloned().unwrap_or_default();
            if !is_subquorum(before, &acceptors) {
                return Err(format!(
                    "G1 violated: epoch {epoch} formed with acceptors {acceptors:?}, no quorum \
                     of epoch {}'s voters {:?}",
                    before.epoch(),
                    before.view
                ));
            }
        }
        self.formed.insert((group, epoch), primary.clone());
        Ok(())
    }

    /// Node `who` accepted a line (it is on its disk).
    pub fn typed(&mut self, who: usize, id: Uuid, text: &str) {
        self.typed.insert(id, (who, text.to_owned()));
    }

    /// How many lines were typed: each must be delivered exactly once everywhere.
    pub fn typed_count(&self) -> usize {
        self.typed.len()
    }

    /// Node `who` died for good: its lines that nobody delivered yet are no longer due.
    pub fn abandon(&mut self, who: usize) {
        let delivered: HashSet<Uuid> = self.history.values().copied().collect();
        for (id, (author, _)) in &self.typed {
            if *author == who && !delivered.contains(id) {
                self.abandoned.insert(*id);
            }
        }
    }

    /// Node `i` delivered line `id` at `at` (after [`Oracle::check_delivery`] passed).
    pub fn delivered(&mut self, i: usize, id: Uuid, at: Instant) {
        self.delivered_at.entry(id).or_default().push((i, at));
    }

    /// When each node delivered line `id`.
    pub fn deliveries(&self, id: Uuid) -> &[(usize, Instant)] {
        self.delivered_at.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Whether every line that is due is in the history.
    pub fn all_due_delivered(&self) -> bool {
        self.history.len() - self.abandoned_delivered == self.typed.len() - self.abandoned.len()
    }

    /// How long the true history is.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// G1 and G2 for one delivery of `rec` by node `i`, whose replica so far is `replica`:
    /// the next seq, a line nobody delivered under another seq and that somebody typed, and
    /// the same line every other replica holds at that seq.
    pub fn check_delivery(
        &mut self,
        i: usize,
        replica: &[ChatRecord],
        rec: &ChatRecord,
    ) -> Result<(), String> {
        let expected = Seq(replica.len() as u64 + 1);
        if rec.seq != expected {
            return Err(format!(
                "node {i} delivered #{} but expected #{expected}",
                rec.seq
            ));
        }
        if replica.iter().any(|r| r.id == rec.id) {
            return Err(format!(
                "G2 violated: node {i} delivered line {:?} twice (#{})",
                rec.text, rec.seq
            ));
        }
        match self.history.get(&rec.seq) {
            Some(id) if *id != rec.id => Err(format!(
                "G1 violated: node {i} delivered {:?} at #{}, another node has a different line",
                rec.text, rec.seq
            )),
            Some(_) => Ok(()),
            None if !self.typed.contains_key(&rec.id) => {
                Err(format!("delivered a line nobody typed: {rec:?}"))
            }
            None => {
                self.history.insert(rec.seq, rec.id);
                self.abandoned_delivered += usize::from(self.abandoned.contains(&rec.id));
                Ok(())
            }
        }
    }

    /// G3 for one `Data` pack multicast by node `i`: for every record in it, nobody sent
    /// another line under this epoch and seq. Retransmissions of the same line are fine.
    pub fn check_data(
        &mut self,
        i: usize,
        epoch: Epoch,
        recs: &[ChatRecord],
    ) -> Result<(), String> {
        recs.iter()
            .try_for_each(|rec| self.check_record(i, epoch, rec))
    }

    fn check_record(&mut self, i: usize, epoch: Epoch, rec: &ChatRecord) -> Result<(), String> {
        let (first, id) = *self.stamped.entry((epoch, rec.seq)).or_insert((i, rec.id));
        if id != rec.id {
            return Err(format!(
                "G3 violated: node {i} sent {:?} as #{} in epoch {epoch}, but node {first} sent \
                 line {id} there first: one seq of an epoch, two lines (two holders stamped)",
                rec.text, rec.seq
            ));
        }
        Ok(())
    }
}

#[test]
fn g3_the_oracle_fails_on_two_lines_under_one_seq_in_any_record_of_a_pack() {
    let rec = |seq, id| ChatRecord {
        seq: Seq(seq),
        id: Uuid::from_u128(id),
        from: mcast_chat::protocol::types::NodeId(Uuid::nil()),
        name: "n".into(),
        text: "t".into(),
        sent_at_ms: 0,
    };
    let mut oracle = Oracle::default();
    let e = Epoch(1);
    assert!(oracle.check_data(0, e, &[rec(1, 1), rec(2, 2)]).is_ok());
    assert!(oracle.check_data(1, e, &[rec(2, 2)]).is_ok(), "a resend");
    assert!(
        oracle.check_data(1, Epoch(2), &[rec(2, 9)]).is_ok(),
        "another epoch"
    );
    let second = oracle.check_data(1, e, &[rec(3, 3), rec(2, 9)]);
    assert!(second.is_err_and(|e| e.starts_with("G3 violated")));
}

/// The primary component rule, written out again from DESIGN.md (not taken from the code it
/// checks): more than half of the session's voters, or exactly half with its first server;
/// and a member among them if it has members.
fn is_subquorum(s: &Session, ids: &HashSet<NodeId>) -> bool {
    let members = s
        .view
        .members
        .iter()
        .filter(|m| ids.contains(&m.id))
        .count();
    let servers = s
        .view
        .servers
        .iter()
        .filter(|sv| ids.contains(&NodeId::server(**sv)))
        .count();
    let first = s
        .view
        .servers
        .first()
        .is_some_and(|sv| ids.contains(&NodeId::server(*sv)));
    let (k, n) = (members + servers, s.view.voters());
    let member_ok = s.view.members.is_empty() || members > 0;
    member_ok && (2 * k > n || (2 * k == n && first))
}
