//! The guarantees, checked as the run goes: every delivery against the one true history (G1,
//! G2) and every record of every multicast `Data` pack against what was sent before under
//! the same epoch and seq (G3). A check returns the violation as text; the driver adds the
//! seed and fails.
//!
//! It only watches: it never changes what a node does, and it holds no node state.

use mcast_chat::protocol::types::{ChatRecord, Epoch, Seq};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// What the run has seen so far.
#[derive(Default)]
pub struct Oracle {
    /// Every line a user typed (and the node had on disk), by id: its node and text.
    typed: HashMap<Uuid, (usize, String)>,
    /// The one true history as it grows: seq → line id (G1).
    history: BTreeMap<Seq, Uuid>,
    /// Every record of every `Data` pack any node multicast: (epoch, seq) → line id. The token is the only source
    /// of seqs in an epoch, so a second id under one key means two holders stamped (G3).
    stamped: HashMap<(Epoch, Seq), (usize, Uuid)>,
}

impl Oracle {
    /// Node `who` accepted a line (it is on its disk).
    pub fn typed(&mut self, who: usize, id: Uuid, text: &str) {
        self.typed.insert(id, (who, text.to_owned()));
    }

    /// How many lines were typed: each must be delivered exactly once everywhere.
    pub fn typed_count(&self) -> usize {
        self.typed.len()
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
