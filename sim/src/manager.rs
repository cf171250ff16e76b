//! A manager node: a raft-rs node over the faulty link layer, its raft log and hard state on a
//! simulated disk that survives kill and restart, the store replica it applies committed
//! entries to (with the per-entry checkers), and, while it leads, the leader's duties:
//! control API, dispatcher, orchestrator, reaper, scheduler, and the allocator loop.
//!
//! Architecture invariant: everything a leader does lives in [`Leader`], which is dropped the
//! moment raft says this node no longer leads; a new leader starts from the applied store.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use raft::prelude::{ConfState, Entry, Message};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole};
use serde_json::json;
use swarmalloc::{NodeId, NodeRole, TaskId, TaskState};

use crate::alloc_loop::{AllocLoop, BatchStep};
use crate::check;
use crate::duties;
use crate::faults::{FaultKind, fault_duration};
use crate::net::{Link, Msg, addr, manager_ip, worker_ip};
use crate::rng::{Draw, sim};
use crate::scenario::{Action, ClientOp, Scenario};
use crate::series::Restore;
use crate::store::{Change, Event, Origin, ProposalId, Store, Txn, TxnError, split_batch};
use crate::world::{Finding, ProposalSite, Shared};

pub const TICK: Duration = Duration::from_millis(100);
const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(3);
const WORKER_TIMEOUT: Duration = Duration::from_secs(3);
/// A worker silent this long is down: its tasks are ORPHANED (SwarmKit's `nodeDownPeriod`).
const NODE_DOWN: Duration = Duration::from_secs(5);
/// Terminal tasks kept per slot before the reaper deletes older ones.
const TASK_HISTORY: usize = 1;
/// Most tasks the orchestrator creates in one pass.
const CREATE_MAX: usize = 10_000;
/// How often a quiet leader compares its engine with restore(applied store).
const QUIET_CHECK_EVERY: Duration = Duration::from_secs(5);
/// Decoded entries kept for the other replicas.
const DECODED_MAX: usize = 4_096;

/// What survives a manager's kill and restart: the raft log and hard state.
pub struct ManagerDisk {
    pub storage: MemStorage,
    incarnation: AtomicU64,
}

impl ManagerDisk {
    pub fn new(voters: Vec<u64>) -> ManagerDisk {
        ManagerDisk {
            storage: MemStorage::new_with_conf_state(ConfState::from((voters, vec![]))),
            incarnation: AtomicU64::new(0),
        }
    }
}

struct Inflight {
    origin: Origin,
    deadline: Duration,
    reply: Option<(SocketAddr, u64)>,
}

/// The duties of a leader; dropped on losing leadership.
struct Leader {
    /// Index of this term's first entry: duties start once it is applied.
    ready_at: u64,
    since: Duration,
    alloc: Option<AllocLoop>,
    inflight: BTreeMap<ProposalId, Inflight>,
    control: Vec<(SocketAddr, u64, ClientOp)>,
    /// Control requests in flight (None) or answered (the answer, re-sent to a retrying client).
    control_seen: BTreeMap<u64, Option<Result<(), String>>>,
    status: BTreeMap<NodeId, Vec<(TaskId, TaskState)>>,
    last_seen: BTreeMap<NodeId, Duration>,
    /// Something the orchestrator, reaper or scheduler reads changed since they last ran.
    duties_dirty: bool,
    quiet_checked_at: Option<Duration>,
    quiet_checked_index: u64,
    ticks: u64,
    /// After an allocator restart, the new allocator restores once the store has applied this
    /// index: the old allocator's transactions still in the raft log must land first.
    alloc_barrier: u64,
}

impl Leader {
    fn busy(&self, origin: Origin) -> bool {
        self.inflight.values().any(|i| i.origin == origin)
    }
}

pub struct Manager {
    id: u64,
    name: String,
    incarnation: u64,
    raw: RawNode<MemStorage>,
    disk: Arc<ManagerDisk>,
    store: Store,
    world: Shared,
    scenario: Arc<Scenario>,
    outbox: Vec<(SocketAddr, Msg)>,
    seq: u64,
    leader: Option<Leader>,
    /// Isolate this node after the next flush (ambiguous commit, batch cut), for this long.
    isolate: Option<Duration>,
    /// Most changes per transaction in this run (the seed's choice).
    batch_max: usize,
}

/// The manager's main loop: runs until the world stops.
pub async fn run(id: u64, disk: Arc<ManagerDisk>, world: Shared) {
    let name = format!("m{id}");
    let link = Link::bind(manager_ip(id), name.clone(), world.clone()).await;
    let (sink, mut inbox) = tokio::sync::mpsc::unbounded_channel();
    link.spawn_receiver(sink);
    let mut manager = Manager::new(id, disk, world.clone());
    let tick = Duration::from_millis(world.lock().scenario.raft.tick_ms);
    let mut next_tick = madsim::time::Instant::now() + tick;
    loop {
        if world.lock().stopped() {
            return;
        }
        tokio::select! {
            biased;
            got = inbox.recv() => {
                let Some((msg, from)) = got else { return };
                manager.on_message(msg, from);
            }
            _ = madsim::time::sleep_until(next_tick) => {
                next_tick += tick;
                manager.on_tick();
            }
        }
        manager.process();
        manager.flush(&link).await;
    }
}

impl Manager {
    fn new(id: u64, disk: Arc<ManagerDisk>, world: Shared) -> Manager {
        let incarnation = disk.incarnation.fetch_add(1, Ordering::Relaxed);
        let raft_settings = world.lock().scenario.raft;
        let config = raft::Config {
            id,
            election_tick: raft_settings.election_ticks,
            heartbeat_tick: raft_settings.heartbeat_ticks,
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            applied: 0,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&config, disk.storage.clone(), &logger).expect("valid raft config");
        let (scenario, batch_max) = {
            let w = world.lock();
            (w.scenario.clone(), w.plan.batch_max)
        };
        let name = format!("m{id}");
        world.lock().record(&name, "manager_start", json!({ "incarnation": incarnation }));
        let mut manager = Manager {
            id,
            name,
            incarnation,
            raw,
            disk,
            store: Store::default(),
            world,
            scenario,
            outbox: Vec::new(),
            seq: 0,
            leader: None,
            isolate: None,
            batch_max,
        };
        manager.fix_election_timeout(true);
        manager
    }

    /// raft-rs draws its randomized election timeout from a non-deterministic RNG; redraw it
    /// from madsim's whenever raft has just reset it (toolchain.md).
    fn fix_election_timeout(&mut self, force: bool) {
        if force || self.raw.raft.election_elapsed == 0 {
            let ticks = self.scenario.raft.election_ticks as u64;
            let timeout = sim().range(ticks, 2 * ticks) as usize;
            self.raw.raft.set_randomized_election_timeout(timeout);
        }
    }

    fn now(&self) -> Duration {
        self.world.lock().now()
    }

    fn on_message(&mut self, msg: Msg, from: SocketAddr) {
        match msg {
            Msg::Raft(m) => {
                let _ = self.raw.step(*m);
                self.fix_election_timeout(false);
            }
            Msg::Control { req, op } => {
                let Some(leader) = &mut self.leader else { return };
                match leader.control_seen.get(&req) {
                    None => {
                        leader.control_seen.insert(req, None);
                        leader.control.push((from, req, op));
                    }
                    Some(Some(result)) => self.outbox.push((from, Msg::ControlReply { req, result: result.clone() })),
                    Some(None) => {}
                }
            }
            Msg::Status { node, tasks } => {
                let now = self.now();
                if let Some(leader) = &mut self.leader {
                    leader.last_seen.insert(node.clone(), now);
                    leader.status.insert(node, tasks);
                }
            }
            Msg::ControlReply { .. } | Msg::Assignments { .. } => {}
        }
    }

    fn on_tick(&mut self) {
        self.raw.tick();
        self.fix_election_timeout(false);
        self.process();
        self.duties();
    }

    /// Drains raft's ready state: sends, persists, applies; then notices role changes.
    fn process(&mut self) {
        while self.raw.has_ready() {
            let mut committed: Vec<Entry> = Vec::new();
            let mut ready = self.raw.ready();
            self.send_raft(ready.take_messages());
            if !ready.snapshot().is_empty() {
                let snapshot = ready.snapshot().clone();
                self.disk.storage.wl().apply_snapshot(snapshot).expect("snapshots are never made");
            }
            committed.extend(ready.take_committed_entries());
            if !ready.entries().is_empty() {
                self.disk.storage.wl().append(ready.entries()).expect("append to the simulated disk");
            }
            if let Some(hs) = ready.hs() {
                self.disk.storage.wl().set_hardstate(hs.clone());
            }
            self.send_raft(ready.take_persisted_messages());
            let mut light = self.raw.advance(ready);
            if let Some(commit) = light.commit_index() {
                self.disk.storage.wl().mut_hard_state().set_commit(commit);
            }
            self.send_raft(light.take_messages());
            committed.extend(light.take_committed_entries());
            self.raw.advance_apply();
            for entry in committed {
                self.apply(entry);
            }
            self.notice_role();
        }
        self.notice_role();
    }

    fn send_raft(&mut self, messages: Vec<Message>) {
        for m in messages {
            self.outbox.push((addr(manager_ip(m.to)), Msg::Raft(Box::new(m))));
        }
    }

    async fn flush(&mut self, link: &Link) {
        for (to, msg) in std::mem::take(&mut self.outbox) {
            link.send(to, msg).await;
        }
        if let Some(duration) = self.isolate.take() {
            let mut w = self.world.lock();
            if let Some(id) = w.node_ids.get(&self.name).copied() {
                madsim::net::NetSim::current().clog_node(id);
                let until = w.now() + duration;
                w.isolated.insert(self.name.clone(), until);
            }
        }
    }

    fn notice_role(&mut self) {
        let leading = self.raw.raft.state == StateRole::Leader;
        if leading && self.leader.is_none() {
            let term = self.raw.raft.term;
            let mut w = self.world.lock();
            w.metrics.leader_changes += 1;
            if w.leader.is_none_or(|(t, _)| t < term) {
                w.leader = Some((term, self.id));
            }
            let since = w.now();
            w.series.leader_started(term, &self.name, since.as_millis() as u64);
            w.record(&self.name, "leader", json!({ "term": term }));
            drop(w);
            self.leader = Some(Leader {
                ready_at: self.raw.raft.raft_log.last_index(),
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
            });
        } else if !leading && let Some(mut leader) = self.leader.take() {
            // A leader change: the engine must equal restore(applied store) before it is dropped.
            let result = leader.alloc.as_mut().map(|alloc| {
                alloc.settle(&self.store);
                check::check_engine(alloc.engine(), &self.store)
            });
            let mut w = self.world.lock();
            let now_ms = w.now_ms();
            w.series.leader_ended(Some(&self.name), now_ms);
            w.record(&self.name, "step_down", json!({ "term": self.raw.raft.term, "applied": self.store.applied }));
            if let Some(Err(finding)) = result {
                w.violate(finding, &self.name, self.store.applied);
            }
        }
    }

    // --------------------------------------------------------------------------------------------
    // Applying committed entries

    fn apply(&mut self, entry: Entry) {
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
        let digest = self.store.digest();
        match w.digests.get(&index) {
            Some((other, node)) if *other != digest => {
                let finding = Finding::new(
                    "replicas_identical",
                    vec![self.name.clone(), node.clone()],
                    format!("store digest {digest:016x} differs from {other:016x} of {node} at the same index"),
                );
                if w.violate(finding, &self.name, index) {
                    return;
                }
            }
            Some(_) => {}
            None => drop(w.digests.insert(index, (digest, self.name.clone()))),
        }
        let frontier = index > w.frontier;
        if frontier {
            w.frontier = index;
            w.metrics.entries_applied += 1;
            check::sample_vips(&mut w, &self.store, index, &self.name);
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
                if let Err(finding) = w.stable.observe(&self.store, events)
                    && w.violate(finding, &self.name, index)
                {
                    return;
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
        }
        if self.scenario.checks.per_entry
            && frontier
            && grows
            && result.is_ok()
            && let Err(finding) =
                check::check_store(&self.store, Some(&w.containers), &w.inherited, &self.scenario.checks)
            && w.violate(finding, &self.name, index)
        {
            return;
        }
        let hooks = w.hooks.clone();
        for hook in hooks {
            if let Some(finding) = hook(&self.store)
                && w.violate(finding, &self.name, index)
            {
                return;
            }
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

impl Manager {
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

    fn leader_applied(&mut self, leader: &mut Leader, txn: &Txn, result: &Result<Vec<Event>, TxnError>) {
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
                let cut = {
                    let mut w = self.world.lock();
                    let now_ms = w.now_ms();
                    let scripted = w.script.take_proposal_fault(
                        now_ms,
                        |a| matches!(a, Action::CutBatch { after, .. } if *after <= done as u64),
                    );
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
                };
                if let Some(duration) = cut {
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

    /// Proposes the allocator batch's next transaction; when it cannot be proposed, the batch
    /// ends with what landed so far.
    fn propose_allocator_chunk(&mut self, leader: &mut Leader, changes: Vec<Change>) {
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
            let finding = Finding::new(
                "engine_equals_committed",
                vec![],
                format!("after a batch the engine differs from one fed every committed change: {diff}"),
            );
            self.world.lock().violate(finding, &self.name, self.store.applied);
        }
    }

    // --------------------------------------------------------------------------------------------
    // Proposing

    fn propose(
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
        let (dropped, now) = {
            let mut w = self.world.lock();
            let now_ms = w.now_ms();
            let wanted = |o: &Option<Origin>| o.is_none_or(|o| o == origin);
            let skip = w.script.proposal_ordinal(ProposalSite::Drop, origin, now_ms);
            let scripted = w
                .script
                .take_proposal_fault(now_ms, |a| matches!(a, Action::DropProposal { origin, .. } if wanted(origin)));
            let dropped = scripted.is_some() || {
                let rate = w.rate(FaultKind::DroppedProposal);
                let dropped = w.script.proposal_rng.chance(rate);
                if dropped {
                    w.decided(Action::DropProposal { origin: Some(origin), skip });
                }
                dropped
            };
            (dropped, w.now())
        };
        let inflight = Inflight { origin, deadline: now + PROPOSAL_TIMEOUT, reply };
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
        let ambiguous = self.isolate.is_none() && {
            let mut w = self.world.lock();
            let now_ms = w.now_ms();
            let wanted = |o: &Option<Origin>| o.is_none_or(|o| o == origin);
            let skip = w.script.proposal_ordinal(ProposalSite::Ambiguous, origin, now_ms);
            let scripted = w.script.take_proposal_fault(
                now_ms,
                |a| matches!(a, Action::AmbiguousProposal { origin, .. } if wanted(origin)),
            );
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
        };
        if ambiguous {
            let mut w = self.world.lock();
            w.metrics.faults_injected += 1;
            let now_ms = w.now_ms();
            w.series.fault_started(FaultKind::AmbiguousCommit, Some(&self.name), now_ms, None);
            w.record(&self.name, "fault", json!({ "kind": "ambiguous_commit", "origin": origin, "seq": self.seq }));
        }
        leader.inflight.insert(id, inflight);
        Some(id)
    }

    fn propose_chunks(&mut self, leader: &mut Leader, origin: Origin, changes: Vec<Change>) {
        for chunk in split_batch(changes, self.batch_max) {
            if self.propose(leader, origin, chunk, None).is_none() {
                return;
            }
        }
    }

    // --------------------------------------------------------------------------------------------
    // Leader duties

    fn duties(&mut self) {
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
        // Control API.
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
        // Dispatcher: worker status reports.
        if !leader.busy(Origin::Dispatcher) {
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
        if leader.duties_dirty || leader.ticks.is_multiple_of(10) {
            leader.duties_dirty = false;
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
        self.allocate(leader);
        if leader.ticks.is_multiple_of(5) {
            for i in 1..=u64::from(self.scenario.workers) {
                let node = NodeId::new(format!("w{i}"));
                let tasks = duties::assignments(&self.store, &node);
                let stamp = (self.raw.raft.term, leader.ticks);
                self.outbox.push((addr(worker_ip(i)), Msg::Assignments { stamp, tasks }));
            }
        }
        self.final_check(leader);
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

    fn allocate(&mut self, leader: &mut Leader) {
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
                if let Err(finding) = check::check_engine(alloc.engine(), &self.store) {
                    self.world.lock().violate(finding, &self.name, self.store.applied);
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
            check::check_store(&self.store, None, &Default::default(), checks).map_err(|mut finding| {
                if inherited.contains(&finding) {
                    finding.detail = format!("still there at the end, from the initial state: {}", finding.detail);
                }
                finding
            })
        };
        let result = (if checks.enabled("engine_equals_restore") {
            check::check_engine(alloc.engine(), &self.store)
        } else {
            Ok(())
        })
        .and_then(|()| repaired())
        .and_then(|()| check::check_end(alloc.engine(), &self.store, checks))
        .and_then(|()| {
            if !checks.enabled("assertion") {
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
        if let Err(finding) = result {
            w.violate(finding, &self.name, self.store.applied);
        }
    }
}
