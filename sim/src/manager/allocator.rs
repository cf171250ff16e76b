//! The allocator loop in a leader: restored when the leadership starts (and again after an
//! allocator restart, once the old allocator's proposals have landed), a pass when there is
//! work, each batch proposed one transaction at a time (a batch cut can end it early), and the
//! engine compared with restore(applied store) when it is quiet and after each batch.

use std::time::Duration;

use serde_json::json;

use super::leader::Leader;
use super::{Manager, QUIET_CHECK_EVERY};
use crate::alloc_loop::{AllocLoop, BatchStep};
use crate::check;
use crate::check::Breach;
use crate::faults::{FaultKind, fault_duration};
use crate::rng::Draw;
use crate::scenario::Action;
use crate::scenario::Checker;
use crate::series::Restore;
use crate::store::{Change, Event, Origin, Txn, TxnError};

impl Manager {
    /// The allocator of this leadership: restored from the applied store once the term's first
    /// entry has applied, and again after an allocator restart once the old allocator's
    /// proposals have landed.
    pub(super) fn restore_allocator(&mut self, leader: &mut Leader, now: Duration) {
        let restart = std::mem::take(&mut self.world.lock().allocator_restart);
        if restart {
            // The old allocator's proposals in the log will still commit; a new allocator that
            // restored before they land would hand out what they took.
            leader.alloc = None;
            leader.alloc_barrier = self.raw.raft.raft_log.last_index();
        }
        if leader.alloc.is_none() && self.store.applied >= leader.alloc_barrier {
            // The first restore of this leadership, not one after an allocator restart.
            let first = leader.alloc_barrier == 0;
            let shadow = self.scenario.checks.engine_after_batch;
            #[cfg(not(feature = "legacy"))]
            let (alloc, report) = AllocLoop::restore(&self.store, self.batch_max, shadow);
            #[cfg(feature = "legacy")]
            let (alloc, report) = AllocLoop::restore_legacy(&self.store, self.batch_max, shadow, self.scenario.legacy);
            leader.alloc = Some(alloc);
            let mut w = self.world.lock();
            w.metrics.allocator_restores += 1;
            if first {
                w.series.restored(Restore {
                    term: self.raw.raft.term,
                    node: self.name.clone(),
                    leader_ms: leader.since.as_millis() as u64,
                    restored_ms: now.as_millis() as u64,
                    objects: self.store.object_count(),
                    queued: report.queue.len() as u64,
                    findings: report.findings.len() as u64,
                });
            }
            let findings: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
            w.record(
                &self.name,
                "allocator_restore",
                json!({ "applied": self.store.applied, "queue": report.queue.len(), "findings": findings, "restart": leader.alloc_barrier > 0 }),
            );
        }
    }

    /// The allocator's side of an applied entry: the shadow engine sees it, and the batch in
    /// flight takes its next step (propose the next transaction, be cut, or end).
    pub(super) fn allocator_applied(&mut self, leader: &mut Leader, txn: &Txn, result: &Result<Vec<Event>, TxnError>) {
        let Some(alloc) = &mut leader.alloc else { return };
        if let Ok(events) = result {
            alloc.shadow_observe(&self.store, events);
        }
        match alloc.applied(&self.store, txn.id, result) {
            BatchStep::Ignored => {
                if let Ok(events) = result {
                    alloc.observe(&self.store, events);
                }
            }
            BatchStep::Propose(changes) => {
                let (done, total) = alloc.batch_progress().unwrap_or((0, 0));
                if let Some(duration) = self.batch_cut(done) {
                    self.isolate = Some(duration);
                    let mut w = self.world.lock();
                    w.metrics.faults_injected += 1;
                    w.metrics.allocator_batches_cut += 1;
                    let now_ms = w.now_ms();
                    w.series.fault_started(FaultKind::BatchCut, Some(&self.name), now_ms, None);
                    w.record(&self.name, "fault", json!({ "kind": "batch_cut", "after": done, "of": total }));
                    drop(w);
                    alloc.finish(&self.store);
                    self.after_batch(leader);
                } else {
                    self.propose_allocator_chunk(leader, changes);
                }
            }
            BatchStep::Done { landed, total } => {
                self.world.lock().record(&self.name, "batch_done", json!({ "landed": landed, "total": total }));
                self.after_batch(leader);
            }
        }
    }

    /// Whether the batch is cut after its `done` transactions (scripted, or drawn at the seed's
    /// rate), and for how long the leader is then cut off.
    fn batch_cut(&self, done: usize) -> Option<Duration> {
        let mut w = self.world.lock();
        let now_ms = w.now_ms();
        let scripted = w
            .script
            .take_proposal_fault(now_ms, |a| matches!(a, Action::CutBatch { after, .. } if *after <= done as u64));
        match scripted {
            Some(Action::CutBatch { for_ms, .. }) => Some(Duration::from_millis(for_ms)),
            _ => {
                let rate = w.rate(FaultKind::BatchCut);
                if w.script.proposal_rng.chance(rate) {
                    let for_ms = fault_duration(&mut w.script.proposal_rng, FaultKind::BatchCut);
                    w.decided(Action::CutBatch { after: done as u64, for_ms: for_ms.as_millis() as u64 });
                    Some(for_ms)
                } else {
                    None
                }
            }
        }
    }

    /// Proposes the allocator batch's next transaction; when it cannot be proposed, the batch
    /// ends with what landed so far.
    pub(super) fn propose_allocator_chunk(&mut self, leader: &mut Leader, changes: Vec<Change>) {
        match self.propose(leader, Origin::Allocator, changes, None) {
            Some(id) => {
                if let Some(alloc) = &mut leader.alloc {
                    alloc.proposed(id);
                }
            }
            None => {
                if let Some(alloc) = &mut leader.alloc {
                    alloc.finish(&self.store);
                }
                self.after_batch(leader);
            }
        }
    }

    /// After a batch: the engine equals an engine fed every committed change.
    fn after_batch(&mut self, leader: &mut Leader) {
        let Some(alloc) = &leader.alloc else { return };
        let Some(shadow) = alloc.shadow() else { return };
        if let Some(diff) = alloc.engine().diff(shadow) {
            let breach = Breach::new(
                Checker::EngineEqualsCommitted,
                vec![],
                format!("after a batch the engine differs from one fed every committed change: {diff}"),
            );
            self.world.lock().violate(breach, &self.name, self.store.applied);
        }
    }

    pub(super) fn allocate(&mut self, leader: &mut Leader) {
        let Some(alloc) = &mut leader.alloc else { return };
        if alloc.busy() {
            return;
        }
        if !alloc.has_work() {
            // Quiet: engine == restore(applied store), at most once per QUIET_CHECK_EVERY.
            let now = self.now();
            if self.scenario.checks.engine_after_batch
                && leader.quiet_checked_at.is_none_or(|t| now.saturating_sub(t) >= QUIET_CHECK_EVERY)
                && leader.quiet_checked_index != self.store.applied
            {
                leader.quiet_checked_at = Some(now);
                leader.quiet_checked_index = self.store.applied;
                if let Err(breach) = check::check_engine(alloc.engine(), &self.store) {
                    self.world.lock().violate(breach, &self.name, self.store.applied);
                }
            }
            return;
        }
        let (first, report) = alloc.pass(&self.store);
        if report.updates > 0 || !report.failed.is_empty() {
            let failed: Vec<String> = report.failed.iter().take(5).map(|(id, e)| format!("{id}: {e}")).collect();
            let mut w = self.world.lock();
            w.metrics.allocator_batches += u64::from(report.updates > 0);
            w.record(
                &self.name,
                "allocator_pass",
                json!({ "updates": report.updates, "failed": report.failed.len(), "first_failures": failed }),
            );
        }
        let Some(changes) = first else { return };
        self.propose_allocator_chunk(leader, changes);
    }
}
