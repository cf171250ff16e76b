//! Proposing a transaction to raft, with the proposal faults decided here: a dropped proposal
//! (never reaches raft; its outcome stays unknown) and an ambiguous commit (the leader is cut
//! off right after proposing, so it cannot learn whether the entry committed).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;

use super::leader::{Inflight, Leader};
use super::{Manager, PROPOSAL_TIMEOUT};
use crate::faults::{FaultKind, fault_duration};
use crate::rng::Draw;
use crate::scenario::Action;
use crate::store::{Change, Origin, ProposalId, Txn, split_batch};
use crate::world::ProposalSite;

impl Manager {
    /// Proposes a transaction; None when raft refuses it (no longer leader). A dropped proposal
    /// gets an id and stays in flight until it expires, as one whose outcome never arrives.
    pub(super) fn propose(
        &mut self,
        leader: &mut Leader,
        origin: Origin,
        changes: Vec<Change>,
        reply: Option<(SocketAddr, u64)>,
    ) -> Option<ProposalId> {
        self.seq += 1;
        let id = ProposalId { node: self.id, incarnation: self.incarnation, seq: self.seq };
        let txn = Txn { id, origin, changes };
        let data = serde_json::to_vec(&txn).expect("transactions serialise");
        let dropped = self.drops_proposal(origin);
        let inflight = Inflight { origin, deadline: self.now() + PROPOSAL_TIMEOUT, reply };
        if dropped {
            let mut w = self.world.lock();
            w.metrics.faults_injected += 1;
            let now_ms = w.now_ms();
            w.series.fault_started(FaultKind::DroppedProposal, Some(&self.name), now_ms, Some(now_ms));
            w.record(&self.name, "fault", json!({ "kind": "dropped_proposal", "origin": origin, "seq": self.seq }));
            leader.inflight.insert(id, inflight);
            return Some(id);
        }
        if self.raw.propose(vec![], data).is_err() {
            return None;
        }
        if self.isolate.is_none() && self.commits_ambiguously(origin) {
            let mut w = self.world.lock();
            w.metrics.faults_injected += 1;
            let now_ms = w.now_ms();
            w.series.fault_started(FaultKind::AmbiguousCommit, Some(&self.name), now_ms, None);
            w.record(&self.name, "fault", json!({ "kind": "ambiguous_commit", "origin": origin, "seq": self.seq }));
        }
        leader.inflight.insert(id, inflight);
        Some(id)
    }

    /// Whether this proposal is dropped before it reaches raft (scripted, or drawn at the
    /// seed's rate).
    fn drops_proposal(&self, origin: Origin) -> bool {
        let mut w = self.world.lock();
        let now_ms = w.now_ms();
        let wanted = |o: &Option<Origin>| o.is_none_or(|o| o == origin);
        let skip = w.script.proposal_ordinal(ProposalSite::Drop, origin, now_ms);
        let scripted = w
            .script
            .take_proposal_fault(now_ms, |a| matches!(a, Action::DropProposal { origin, .. } if wanted(origin)));
        scripted.is_some() || {
            let rate = w.rate(FaultKind::DroppedProposal);
            let dropped = w.script.proposal_rng.chance(rate);
            if dropped {
                w.decided(Action::DropProposal { origin: Some(origin), skip });
            }
            dropped
        }
    }

    /// Whether the leader is cut off right after this proposal, so that it cannot learn whether
    /// the entry committed (scripted, or drawn at the seed's rate); sets how long.
    fn commits_ambiguously(&mut self, origin: Origin) -> bool {
        let mut w = self.world.lock();
        let now_ms = w.now_ms();
        let wanted = |o: &Option<Origin>| o.is_none_or(|o| o == origin);
        let skip = w.script.proposal_ordinal(ProposalSite::Ambiguous, origin, now_ms);
        let scripted = w
            .script
            .take_proposal_fault(now_ms, |a| matches!(a, Action::AmbiguousProposal { origin, .. } if wanted(origin)));
        if let Some(Action::AmbiguousProposal { for_ms, .. }) = scripted {
            self.isolate = Some(Duration::from_millis(for_ms));
        } else {
            let rate = w.rate(FaultKind::AmbiguousCommit);
            if w.script.proposal_rng.chance(rate) {
                let for_ms = fault_duration(&mut w.script.proposal_rng, FaultKind::AmbiguousCommit);
                let action =
                    Action::AmbiguousProposal { origin: Some(origin), for_ms: for_ms.as_millis() as u64, skip };
                w.decided(action);
                self.isolate = Some(for_ms);
            }
        }
        self.isolate.is_some()
    }

    pub(super) fn propose_chunks(&mut self, leader: &mut Leader, origin: Origin, changes: Vec<Change>) {
        for chunk in split_batch(changes, self.batch_max) {
            if self.propose(leader, origin, chunk, None).is_none() {
                return;
            }
        }
    }
}
