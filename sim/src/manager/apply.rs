//! Applying committed entries: every replica applies each entry to its store, compares its
//! digest with the first replica that reached the index, and the first replica also runs the
//! per-entry checkers and keeps the run's counters and series.

use std::sync::Arc;

use raft::prelude::Entry;
use serde_json::json;
use swarmalloc::{TaskId, TaskState};

use super::{DECODED_MAX, Manager};
use crate::check;
use crate::check::Breach;
use crate::scenario::Checker;
use crate::scenario::ClientOp;
use crate::store::{Change, Event, Store, Txn, TxnError};
use crate::world::World;

impl Manager {
    pub(super) fn apply(&mut self, entry: Entry) {
        let index = entry.index;
        if entry.data.is_empty() {
            self.store.skip(index);
            return;
        }
        let txn = self.decode(index, &entry.data);
        // What the frontier checks need from the store before the entry; only the first
        // replica to apply an index runs them.
        let frontier = index > self.world.lock().frontier;
        let (grows, allocated) = if frontier {
            (adds_claims(&self.store, &txn), newly_pending(&self.store, &txn))
        } else {
            (false, Vec::new())
        };
        let result = self.store.apply(index, &txn);
        self.check_applied(index, &txn, &result, grows, allocated);
        let Some(mut leader) = self.leader.take() else { return };
        self.leader_applied(&mut leader, &txn, &result);
        self.leader = Some(leader);
    }

    /// Decodes an entry; replicas share decodings of byte-identical entries (the bytes' hash is
    /// compared), because decoding is a pure function of the bytes and dominates the run time.
    fn decode(&self, index: u64, data: &[u8]) -> Arc<Txn> {
        let hash = crate::trace::fnv1a(crate::trace::FNV_OFFSET, data);
        let mut w = self.world.lock();
        if let Some((h, txn)) = w.decoded.get(&index)
            && *h == hash
        {
            return txn.clone();
        }
        let txn: Arc<Txn> = match serde_json::from_slice(data) {
            Ok(txn) => Arc::new(txn),
            Err(e) => panic!("entry {index} does not decode: {e}"),
        };
        w.decoded.insert(index, (hash, txn.clone()));
        while w.decoded.len() > DECODED_MAX {
            w.decoded.pop_first();
        }
        txn
    }

    /// The per-entry checkers. Every replica compares its store digest with the first replica
    /// that applied the same index; the store invariants run on that first replica (the others
    /// are then proven identical) and only for entries that can add an address, subnet, VXLAN
    /// id or port claim (others only remove claims or change fields no invariant reads).
    fn check_applied(
        &mut self,
        index: u64,
        txn: &Txn,
        result: &Result<Vec<Event>, TxnError>,
        grows: bool,
        allocated: Vec<TaskId>,
    ) {
        let mut w = self.world.lock();
        if self.replicas_differ(&mut w, index) {
            return;
        }
        let frontier = index > w.frontier;
        if frontier {
            w.frontier = index;
            if self.first_to_apply(&mut w, index, txn, result, allocated) {
                return;
            }
        }
        if self.scenario.checks.per_entry
            && frontier
            && grows
            && result.is_ok()
            && let Err(breach) =
                check::check_store(&self.store, Some(&w.containers), &w.inherited, &self.scenario.checks)
            && w.violate(breach, &self.name, index)
        {
            return;
        }
        let hooks = w.hooks.clone();
        for hook in hooks {
            if let Some(breach) = hook(&self.store)
                && w.violate(breach, &self.name, index)
            {
                return;
            }
        }
    }

    /// Whether this replica's store differs from the first replica's at the same index (a
    /// violation; true when it stops the checks).
    fn replicas_differ(&self, w: &mut World, index: u64) -> bool {
        let digest = self.store.digest();
        match w.digests.get(&index) {
            Some((other, node)) if *other != digest => {
                let breach = Breach::new(
                    Checker::ReplicasIdentical,
                    vec![self.name.clone(), node.clone()],
                    format!("store digest {digest:016x} differs from {other:016x} of {node} at the same index"),
                );
                if w.violate(breach, &self.name, index) {
                    return true;
                }
            }
            Some(_) => {}
            None => drop(w.digests.insert(index, (digest, self.name.clone()))),
        }
        false
    }

    /// The first replica to apply an index keeps the run's counters, series and trace, the VIP
    /// samples, and the values that must stay stable (true when a violation stops the checks).
    fn first_to_apply(
        &self,
        w: &mut World,
        index: u64,
        txn: &Txn,
        result: &Result<Vec<Event>, TxnError>,
        allocated: Vec<TaskId>,
    ) -> bool {
        w.metrics.entries_applied += 1;
        w.sample_vips(&self.store, index, &self.name);
        let (ok, error) = match result {
            Ok(events) => (events.len(), None),
            Err(e) => (0, Some(e.to_string())),
        };
        if error.is_some() {
            w.metrics.txns_rejected += 1;
        }
        w.record(
            &self.name,
            "apply",
            json!({ "index": index, "origin": txn.origin, "changes": txn.changes.len(), "written": ok, "error": error }),
        );
        if result.is_ok() && txn.changes.iter().any(|c| matches!(c, Change::InitCluster { .. })) {
            // The scenario's initial objects may hold conflicts: not the allocator's doing.
            w.inherited = check::Inherited::of(&self.store);
        }
        if let Ok(events) = result {
            let now_ms = w.now_ms();
            let mut created = 0;
            for change in &txn.changes {
                match change {
                    Change::Create { object: swarmalloc::Object::Task(task) } => {
                        created += 1;
                        if task.status.state == TaskState::New {
                            w.series.task_created(&task.id, now_ms);
                        }
                    }
                    Change::Create { object: swarmalloc::Object::Service(_) } => w.metrics.services_created += 1,
                    _ => {}
                }
            }
            w.metrics.tasks_created += created;
            if created > 0 && w.metrics.first_task_ms.is_none() {
                w.metrics.first_task_ms = Some(now_ms);
            }
            if let Err(breach) = w.stable.observe(&self.store, events)
                && w.violate(breach, &self.name, index)
            {
                return true;
            }
            if !allocated.is_empty() {
                for task in &allocated {
                    w.series.task_pending(task, now_ms);
                }
                w.metrics.tasks_pending += allocated.len() as u64;
                w.metrics.last_pending_ms = Some(now_ms);
                if self.scenario.stop_when_all_pending && w.metrics.tasks_pending >= self.scenario_tasks() {
                    let pending = w.metrics.tasks_pending;
                    w.record(&self.name, "all_pending", json!({ "tasks": pending }));
                    w.stop = true;
                }
            }
        }
        false
    }

    /// Tasks the scripted workload asks for (throughput runs stop when all are PENDING).
    fn scenario_tasks(&self) -> u64 {
        match &self.scenario.workload {
            crate::scenario::Workload::Scripted(ops) => ops
                .iter()
                .map(|o| match &o.op {
                    ClientOp::CreateService { spec, .. } => spec.replicas,
                    _ => 0,
                })
                .sum(),
            crate::scenario::Workload::Generated(_) => u64::MAX,
        }
    }
}

/// Tasks a transaction moves from NEW to PENDING or later.
fn newly_pending(store: &Store, txn: &Txn) -> Vec<TaskId> {
    let moved = txn.changes.iter().filter_map(|change| match change {
        Change::Update { object: swarmalloc::Object::Task(task) }
            if task.status.state >= TaskState::Pending
                && store.tasks.get(&task.id).is_some_and(|old| old.status.state == TaskState::New) =>
        {
            Some(task.id.clone())
        }
        _ => None,
    });
    moved.collect()
}

/// Whether a transaction can add a claim: it writes a network, service or node, or gives a
/// task addresses it did not have.
fn adds_claims(store: &Store, txn: &Txn) -> bool {
    txn.changes.iter().any(|change| match change {
        Change::Create { object } | Change::Update { object } => match object {
            swarmalloc::Object::Task(task) => {
                !task.networks.is_empty() && store.tasks.get(&task.id).is_none_or(|old| old.networks != task.networks)
            }
            _ => true,
        },
        Change::Delete { .. } => false,
        Change::InitCluster { .. } => true,
    })
}
