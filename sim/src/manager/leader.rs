//! A leader's state and duties: the control API, the dispatcher (worker status reports, down
//! workers' tasks orphaned), the orchestrator, the reaper, the scheduler, assignments to the
//! workers, proposals whose outcome does not arrive, and the end-of-run checks.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use swarmalloc::{NodeId, NodeRole, TaskId, TaskState};

use super::{CREATE_MAX, Manager, NODE_DOWN, TASK_HISTORY, WORKER_TIMEOUT};
use crate::alloc_loop::AllocLoop;
use crate::check;
use crate::duties;
use crate::net::{Msg, addr, worker_ip};
use crate::scenario::Checker;
use crate::scenario::ClientOp;
use crate::store::{Event, Origin, ProposalId, Txn, TxnError};

pub(super) struct Inflight {
    pub(super) origin: Origin,
    pub(super) deadline: Duration,
    pub(super) reply: Option<(SocketAddr, u64)>,
}

/// The duties of a leader; dropped on losing leadership.
pub(super) struct Leader {
    /// Index of this term's first entry: duties start once it is applied.
    pub(super) ready_at: u64,
    pub(super) since: Duration,
    pub(super) alloc: Option<AllocLoop>,
    pub(super) inflight: BTreeMap<ProposalId, Inflight>,
    pub(super) control: Vec<(SocketAddr, u64, ClientOp)>,
    /// Control requests in flight (None) or answered (the answer, re-sent to a retrying client).
    pub(super) control_seen: BTreeMap<u64, Option<Result<(), String>>>,
    pub(super) status: BTreeMap<NodeId, Vec<(TaskId, TaskState)>>,
    pub(super) last_seen: BTreeMap<NodeId, Duration>,
    /// Something the orchestrator, reaper or scheduler reads changed since they last ran.
    pub(super) duties_dirty: bool,
    pub(super) quiet_checked_at: Option<Duration>,
    pub(super) quiet_checked_index: u64,
    pub(super) ticks: u64,
    /// After an allocator restart, the new allocator restores once the store has applied this
    /// index: the old allocator's transactions still in the raft log must land first.
    pub(super) alloc_barrier: u64,
}

impl Leader {
    pub(super) fn new(ready_at: u64, since: Duration) -> Leader {
        Leader {
            ready_at,
            since,
            alloc: None,
            inflight: BTreeMap::new(),
            control: Vec::new(),
            control_seen: BTreeMap::new(),
            status: BTreeMap::new(),
            last_seen: BTreeMap::new(),
            duties_dirty: true,
            quiet_checked_at: None,
            quiet_checked_index: 0,
            ticks: 0,
            alloc_barrier: 0,
        }
    }

    pub(super) fn busy(&self, origin: Origin) -> bool {
        self.inflight.values().any(|i| i.origin == origin)
    }
}

impl Manager {
    pub(super) fn leader_applied(&mut self, leader: &mut Leader, txn: &Txn, result: &Result<Vec<Event>, TxnError>) {
        // The allocator writes nothing the orchestrator, reaper or scheduler decide on, except
        // PENDING tasks for the scheduler.
        if result.is_ok() && (txn.origin != Origin::Allocator || self.scenario.workers > 0) {
            leader.duties_dirty = true;
        }
        if let Some(inflight) = leader.inflight.remove(&txn.id)
            && let Some((to, req)) = inflight.reply
        {
            let reply = result.as_ref().map(|_| ()).map_err(ToString::to_string);
            leader.control_seen.insert(req, Some(reply.clone()));
            self.outbox.push((to, Msg::ControlReply { req, result: reply }));
        }
        self.allocator_applied(leader, txn, result);
    }

    pub(super) fn duties(&mut self) {
        let Some(mut leader) = self.leader.take() else { return };
        if self.store.applied >= leader.ready_at {
            self.lead(&mut leader);
        }
        self.leader = Some(leader);
    }

    fn lead(&mut self, leader: &mut Leader) {
        leader.ticks += 1;
        let now = self.now();
        self.expire(leader, now);
        if self.store.cluster.is_none() {
            if !leader.busy(Origin::Bootstrap) {
                let changes = duties::bootstrap(&self.scenario);
                self.propose(leader, Origin::Bootstrap, changes, None);
            }
            return;
        }
        self.restore_allocator(leader, now);
        self.serve_control(leader);
        self.dispatch(leader, now);
        if leader.duties_dirty || leader.ticks.is_multiple_of(10) {
            leader.duties_dirty = false;
            self.orchestrate(leader, now);
        }
        self.allocate(leader);
        if leader.ticks.is_multiple_of(5) {
            self.send_assignments(leader);
        }
        self.final_check(leader);
    }

    /// The control API: each client request becomes a proposal, or an answer right away.
    fn serve_control(&mut self, leader: &mut Leader) {
        for (from, req, op) in std::mem::take(&mut leader.control) {
            match duties::control(&self.store, &op) {
                Ok(changes) => {
                    if self.propose(leader, Origin::Control, changes, Some((from, req))).is_none() {
                        leader.control_seen.remove(&req);
                    }
                }
                Err(reason) => {
                    leader.control_seen.insert(req, Some(Err(reason.clone())));
                    self.outbox.push((from, Msg::ControlReply { req, result: Err(reason) }));
                }
            }
        }
    }

    /// The dispatcher: worker status reports, and the tasks of down workers orphaned.
    fn dispatch(&mut self, leader: &mut Leader, now: Duration) {
        if leader.busy(Origin::Dispatcher) {
            return;
        }
        let mut changes = Vec::new();
        for (node, tasks) in std::mem::take(&mut leader.status) {
            changes.extend(duties::status_updates(&self.store, &node, &tasks));
        }
        if changes.is_empty() {
            changes = duties::orphan(&self.store, &self.silent_workers(leader, now, NODE_DOWN));
        }
        if !changes.is_empty() {
            self.propose_chunks(leader, Origin::Dispatcher, changes);
        }
    }

    /// The orchestrator, the reaper and the scheduler, each when its last proposal has landed.
    fn orchestrate(&mut self, leader: &mut Leader, now: Duration) {
        if !leader.busy(Origin::Orchestrator) {
            let changes = duties::orchestrate(&self.store, CREATE_MAX);
            self.propose_chunks(leader, Origin::Orchestrator, changes);
        }
        if !leader.busy(Origin::Reaper) {
            let changes = duties::reap(&self.store, TASK_HISTORY);
            self.propose_chunks(leader, Origin::Reaper, changes);
        }
        if !leader.busy(Origin::Scheduler) {
            let up = self.up_workers(leader, now);
            let changes = duties::schedule(&self.store, &up);
            self.propose_chunks(leader, Origin::Scheduler, changes);
        }
    }

    /// Each worker's assignments, stamped with the term and tick.
    fn send_assignments(&mut self, leader: &Leader) {
        for i in 1..=u64::from(self.scenario.workers) {
            let node = NodeId::new(format!("w{i}"));
            let tasks = duties::assignments(&self.store, &node);
            let stamp = (self.raw.raft.term, leader.ticks);
            self.outbox.push((addr(worker_ip(i)), Msg::Assignments { stamp, tasks }));
        }
    }

    fn up_workers(&self, leader: &Leader, now: Duration) -> BTreeSet<NodeId> {
        let silent = self.silent_workers(leader, now, WORKER_TIMEOUT);
        self.workers().filter(|n| !silent.contains(*n)).cloned().collect()
    }

    /// Workers this leader has not heard from for `period` (it has led at least that long).
    fn silent_workers(&self, leader: &Leader, now: Duration, period: Duration) -> BTreeSet<NodeId> {
        if now.saturating_sub(leader.since) < period {
            return BTreeSet::new();
        }
        let heard = |n: &NodeId| leader.last_seen.get(n).is_some_and(|t| now.saturating_sub(*t) < period);
        self.workers().filter(|n| !heard(n)).cloned().collect()
    }

    fn workers(&self) -> impl Iterator<Item = &NodeId> {
        self.store.nodes.values().filter(|n| n.spec.role == NodeRole::Worker).map(|n| &n.id)
    }

    /// Proposals whose outcome did not arrive in time: the outcome is unknown.
    fn expire(&mut self, leader: &mut Leader, now: Duration) {
        let expired: Vec<ProposalId> =
            leader.inflight.iter().filter(|(_, i)| i.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            let inflight = leader.inflight.remove(&id).expect("listed");
            if let Some((_, req)) = inflight.reply {
                leader.control_seen.remove(&req);
            }
            if let Some(alloc) = &mut leader.alloc
                && alloc.inflight() == Some(id)
            {
                let report = alloc.restore_again(&self.store);
                let mut w = self.world.lock();
                w.metrics.allocator_restores += 1;
                w.record(
                    &self.name,
                    "allocator_outcome_unknown",
                    json!({ "seq": id.seq, "applied": self.store.applied, "queue": report.queue.len() }),
                );
            }
        }
    }

    /// The end-of-run checks, once the driver asks and the allocator is quiet.
    fn final_check(&mut self, leader: &mut Leader) {
        let requested = {
            let w = self.world.lock();
            w.final_requested && !w.final_done
        };
        if !requested || self.store.applied < self.raw.raft.raft_log.committed {
            return;
        }
        let Some(alloc) = &leader.alloc else { return };
        if alloc.busy() || alloc.has_work() || leader.busy(Origin::Orchestrator) || leader.busy(Origin::Reaper) {
            return;
        }
        // Each check skips the checkers the scenario turned off and goes on to the others.
        let checks = &self.scenario.checks;
        let repaired = || {
            // Whatever the initial state held must be repaired by now.
            let inherited = self.world.lock().inherited.clone();
            check::check_store(&self.store, None, &Default::default(), checks).map_err(|mut breach| {
                if inherited.contains(&breach) {
                    breach.detail = format!("still there at the end, from the initial state: {}", breach.detail);
                }
                breach
            })
        };
        let result = (if checks.enabled(Checker::EngineEqualsRestore.name()) {
            check::check_engine(alloc.engine(), &self.store)
        } else {
            Ok(())
        })
        .and_then(|()| repaired())
        .and_then(|()| check::check_end(alloc.engine(), &self.store, checks))
        .and_then(|()| {
            if !checks.enabled(Checker::Assertion.name()) {
                return Ok(());
            }
            let w = self.world.lock();
            check::check_assertions(&self.scenario.assertions, &self.store, &w.vip_samples)
        });
        let mut w = self.world.lock();
        w.final_done = true;
        w.series.sample_pools(alloc.engine());
        let tasks = self.store.tasks.len();
        let live = self.store.tasks.values().filter(|t| t.status.state.is_live()).count();
        w.record(
            &self.name,
            "final_check",
            json!({ "applied": self.store.applied, "tasks": tasks, "live": live, "ok": result.is_ok() }),
        );
        if let Err(breach) = result {
            w.violate(breach, &self.name, self.store.applied);
        }
    }
}
