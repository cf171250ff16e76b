//! The leader's allocator loop around the engine: restore from the applied store, mirror
//! committed changes, allocate what is pending in one pass (networks, services, tasks with their
//! service, nodes), propose the proposal as a batch of transactions one after another, then
//! commit, commit a prefix, drop, or (outcome unknown) restore again.
//!
//! Architecture invariant: the engine only learns committed state. While a batch is in flight,
//! other writers' changes are buffered and replayed after the batch's outcome is known; this is
//! order-independent because the engine's index is a function of the set of committed objects
//! and a stale transaction is refused by the store.

use std::collections::BTreeSet;
use std::ops::Range;

use swarmalloc::{AllocError, Allocator, Network, Object, ObjectId, Outcome, Proposal, RestoreReport};

use crate::store::{Change, Event, ProposalId, Store, TxnError};

#[cfg(feature = "legacy")]
mod legacy;

/// An allocator batch in flight.
struct Batch {
    proposal: Proposal,
    chunks: Vec<Range<usize>>,
    /// Index of the chunk in flight.
    next: usize,
    /// Updates committed so far (a prefix of the proposal).
    landed: usize,
    inflight: Option<ProposalId>,
}

/// What the caller should do after a batch event.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchStep {
    /// Propose these changes as the batch's next transaction.
    Propose(Vec<Change>),
    /// The batch ended with `landed` of `total` updates committed.
    Done { landed: usize, total: usize },
    /// Not about this loop's batch.
    Ignored,
}

pub struct AllocLoop {
    alloc: Allocator,
    pending: BTreeSet<ObjectId>,
    /// Objects that failed with a retryable error; retried after the next committed change.
    blocked: BTreeSet<ObjectId>,
    batch: Option<Batch>,
    /// Objects other writers changed while a batch was in flight.
    buffered: BTreeSet<ObjectId>,
    batch_max: usize,
    /// A second engine fed every committed change with `observe` (checkers compare the two
    /// after each batch; restore is compared at leader changes and when quiet).
    shadow: Option<Allocator>,
    /// The old loop's behaviour this loop runs, if any (legacy builds only).
    #[cfg(feature = "legacy")]
    legacy: legacy::Legacy,
}

/// The result of one allocation pass, for the trace.
#[derive(Debug, Default)]
pub struct PassReport {
    pub updates: usize,
    pub failed: Vec<(ObjectId, AllocError)>,
}

impl AllocLoop {
    /// Restores the engine from the applied store and queues what restore says needs work.
    pub fn restore(store: &Store, batch_max: usize, shadow: bool) -> (AllocLoop, RestoreReport) {
        let (alloc, report) =
            Allocator::restore(store.config(), store.objects()).expect("the store's cluster config is valid");
        AllocLoop::restored(store, alloc, report, batch_max, shadow)
    }

    /// A loop around a restored engine, with restore's queue (and every node) pending.
    fn restored(
        store: &Store,
        alloc: Allocator,
        report: RestoreReport,
        batch_max: usize,
        shadow: bool,
    ) -> (AllocLoop, RestoreReport) {
        let mut pending: BTreeSet<ObjectId> = report.queue.iter().cloned().collect();
        // Node attachments depend on tasks: recompute every node once.
        pending.extend(store.nodes.keys().map(|id| ObjectId::Node(id.clone())));
        let me = AllocLoop {
            shadow: shadow.then(|| alloc.clone()),
            alloc,
            pending,
            blocked: BTreeSet::new(),
            batch: None,
            buffered: BTreeSet::new(),
            batch_max,
            #[cfg(feature = "legacy")]
            legacy: Default::default(),
        };
        (me, report)
    }

    pub fn engine(&self) -> &Allocator {
        &self.alloc
    }

    /// The engine fed every committed change, when the loop keeps one.
    pub fn shadow(&self) -> Option<&Allocator> {
        self.shadow.as_ref()
    }

    /// Feeds a committed transaction (anyone's, this loop's own included) to the shadow.
    pub fn shadow_observe(&mut self, store: &Store, events: &[Event]) {
        if let Some(shadow) = &mut self.shadow {
            for event in events {
                let (Event::Put(id) | Event::Deleted(id)) = event;
                mirror(shadow, store, id);
            }
        }
    }

    pub fn busy(&self) -> bool {
        self.batch.is_some()
    }

    pub fn has_work(&self) -> bool {
        #[cfg(feature = "legacy")]
        if self.legacy.dead {
            return false;
        }
        #[cfg(feature = "legacy")]
        if self.legacy.has_work() {
            return true;
        }
        !self.pending.is_empty()
    }

    pub fn inflight(&self) -> Option<ProposalId> {
        self.batch.as_ref().and_then(|b| b.inflight)
    }

    /// Chunks in the batch in flight and the index of the current one.
    pub fn batch_progress(&self) -> Option<(usize, usize)> {
        self.batch.as_ref().map(|b| (b.next, b.chunks.len()))
    }

    /// Mirrors another writer's committed transaction.
    pub fn observe(&mut self, store: &Store, events: &[Event]) {
        let mut nodes_dirty = false;
        for event in events {
            let id = match event {
                Event::Put(id) | Event::Deleted(id) => id,
            };
            match id {
                ObjectId::Task(task) => {
                    nodes_dirty |= matches!(event, Event::Deleted(_))
                        || store.tasks.get(task).is_some_and(|t| t.node_id.is_some());
                }
                // Nodes drop their attachments on a deleted network.
                ObjectId::Network(_) => nodes_dirty |= matches!(event, Event::Deleted(_)),
                _ => {}
            }
            #[cfg(feature = "legacy")]
            self.legacy.observed(store, event, self.pending.contains(id) || self.blocked.contains(id));
            if self.batch.is_some() {
                self.buffered.insert(id.clone());
            } else {
                mirror(&mut self.alloc, store, id);
            }
            if store.get(id).is_some() {
                self.pending.insert(id.clone());
            } else {
                self.pending.remove(id);
                self.blocked.remove(id);
            }
        }
        if nodes_dirty {
            self.pending.extend(store.nodes.keys().map(|id| ObjectId::Node(id.clone())));
        }
        if !events.is_empty() {
            // Something changed: what was blocked may go through now.
            self.pending.append(&mut self.blocked);
        }
    }

    /// One allocation pass over the pending objects; returns the first transaction to propose.
    pub fn pass(&mut self, store: &Store) -> (Option<Vec<Change>>, PassReport) {
        let mut report = PassReport::default();
        #[cfg(feature = "legacy")]
        if let Some(first) = self.legacy_pass(store) {
            return (first, report);
        }
        if self.batch.is_some() || self.pending.is_empty() {
            return (None, report);
        }
        // The engine's pass order: the ingress network first, then the other networks,
        // services, tasks and nodes, each by id (restore's queue is in the same order).
        let mut pending: Vec<(u8, ObjectId)> = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|id| (store.get(&id).map_or(u8::MAX, |o| o.pass_rank()), id))
            .collect();
        pending.sort();
        let mut tx = self.alloc.begin();
        for (_, id) in &pending {
            let result = match id {
                ObjectId::Network(n) => store.networks.get(n).map(|o| tx.allocate_network(o)),
                ObjectId::Service(s) => store.services.get(s).map(|o| tx.allocate_service(o)),
                ObjectId::Task(t) => store.tasks.get(t).map(|o| {
                    let service = o.service_id.as_ref().and_then(|s| store.services.get(s));
                    tx.allocate_task(o, service)
                }),
                ObjectId::Node(n) => store.nodes.get(n).map(|o| tx.allocate_node(o)),
            };
            match result {
                None | Some(Ok(Outcome::Unchanged | Outcome::Updated)) => {}
                Some(Err(error)) => {
                    // A task's permanent error can be its service's (an invalid endpoint spec):
                    // it must be retried once the service changes, so tasks are always retried.
                    if error.is_retryable() || matches!(id, ObjectId::Task(_)) {
                        self.blocked.insert(id.clone());
                    }
                    report.failed.push((id.clone(), error));
                }
            }
        }
        #[cfg(feature = "legacy")]
        self.legacy.rewrite_live_tasks(&mut tx, store);
        #[cfg(feature = "legacy")]
        self.legacy.allocate_lagging(&mut tx, store);
        let proposal = tx.finish();
        #[cfg(feature = "legacy")]
        self.legacy_after_pass(store, &proposal);
        report.updates = proposal.len();
        (self.start_batch(store, proposal), report)
    }

    /// Makes `proposal` the batch in flight; returns its first transaction (none when empty).
    fn start_batch(&mut self, store: &Store, proposal: Proposal) -> Option<Vec<Change>> {
        if proposal.is_empty() {
            return None;
        }
        let max = self.batch_max.max(1);
        let chunks: Vec<Range<usize>> =
            (0..proposal.len()).step_by(max).map(|start| start..(start + max).min(proposal.len())).collect();
        self.batch = Some(Batch { proposal, chunks, next: 0, landed: 0, inflight: None });
        Some(self.chunk_changes(store, 0))
    }

    /// The changes of chunk `i`. A network is written by the allocator only for its allocation
    /// and address cursors, from the engine's copy (which may carry an older version than the
    /// store's, the loop's own commits not reporting theirs): its allocator-owned fields are
    /// grafted onto the stored network, as SwarmKit's commit helpers do on a sequence conflict.
    /// A network deleted meanwhile keeps the engine's copy, which the store refuses.
    fn chunk_changes(&self, store: &Store, i: usize) -> Vec<Change> {
        let batch = self.batch.as_ref().expect("a batch in flight");
        batch.proposal.updates()[batch.chunks[i].clone()]
            .iter()
            .map(|object| {
                let object = match object {
                    Object::Network(update) => match store.networks.get(&update.id) {
                        Some(stored) => Object::Network(Network {
                            ipam: update.ipam.clone(),
                            driver_state: update.driver_state.clone(),
                            ..stored.clone()
                        }),
                        None => object.clone(),
                    },
                    _ => object.clone(),
                };
                Change::Update { object }
            })
            .collect()
    }

    /// The caller proposed the batch's current transaction under `id`.
    pub fn proposed(&mut self, id: ProposalId) {
        if let Some(batch) = &mut self.batch {
            batch.inflight = Some(id);
        }
    }

    /// A transaction was applied; if it is this loop's, advances the batch.
    pub fn applied(&mut self, store: &Store, id: ProposalId, result: &Result<Vec<Event>, TxnError>) -> BatchStep {
        let Some(batch) = &mut self.batch else { return BatchStep::Ignored };
        if batch.inflight != Some(id) {
            return BatchStep::Ignored;
        }
        batch.inflight = None;
        match result {
            Ok(_) => {
                batch.landed = batch.chunks[batch.next].end;
                batch.next += 1;
                if batch.next < batch.chunks.len() {
                    let next = batch.next;
                    return BatchStep::Propose(self.chunk_changes(store, next));
                }
                self.finish(store)
            }
            Err(_) => {
                #[cfg(feature = "legacy")]
                self.legacy_refused(store);
                self.finish(store)
            }
        }
    }

    /// Ends the batch with what landed so far: a cut batch, a refused transaction, or a
    /// transaction the caller chose not to propose. Objects that did not land are retried.
    pub fn finish(&mut self, store: &Store) -> BatchStep {
        let Some(batch) = self.batch.take() else { return BatchStep::Ignored };
        let total = batch.proposal.len();
        #[cfg(feature = "legacy")]
        self.legacy.batch_ended(batch.landed, total);
        #[cfg(feature = "legacy")]
        if self.legacy.is(swarmalloc::legacy::Flavour::B11) {
            return self.finish_without_rollback(store, batch);
        }
        if batch.landed == total {
            self.alloc.commit(&batch.proposal);
        } else {
            self.alloc.commit_prefix(&batch.proposal, batch.landed);
            for object in &batch.proposal.updates()[batch.landed..] {
                self.pending.insert(object.id());
            }
        }
        drop(batch.proposal);
        self.replay_buffered(store);
        BatchStep::Done { landed: batch.landed, total }
    }

    /// Mirrors what other writers committed while the batch was in flight.
    fn replay_buffered(&mut self, store: &Store) {
        for id in std::mem::take(&mut self.buffered) {
            mirror(&mut self.alloc, store, &id);
        }
    }

    /// The outcome of the transaction in flight is unknown: rebuild from the applied store.
    pub fn restore_again(&mut self, store: &Store) -> RestoreReport {
        #[cfg(feature = "legacy")]
        if self.legacy.init_in_flight() {
            // The boolean-flag init: an init batch that fails stops the allocator.
            self.settle(store);
            return RestoreReport::default();
        }
        #[cfg(not(feature = "legacy"))]
        let (fresh, report) = AllocLoop::restore(store, self.batch_max, self.shadow.is_some());
        #[cfg(feature = "legacy")]
        let (fresh, report) =
            AllocLoop::restore_legacy(store, self.batch_max, self.shadow.is_some(), self.legacy.flavour);
        let mut fresh = fresh;
        fresh.pending.append(&mut self.pending);
        fresh.pending.append(&mut self.blocked);
        fresh.pending.retain(|id| store.get(id).is_some());
        *self = fresh;
        report
    }

    /// Settles a batch in flight (its later outcome will be observed like anyone else's), so
    /// the engine mirrors exactly the applied store.
    pub fn settle(&mut self, store: &Store) {
        if self.batch.is_some() {
            self.finish(store);
        }
    }
}

/// Mirrors the store's current version of one object into the engine.
fn mirror(alloc: &mut Allocator, store: &Store, id: &ObjectId) {
    match store.get(id) {
        Some(object) => alloc.observe(object),
        None => alloc.observe_deleted(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duties::{cluster_objects, orchestrate};
    use crate::store::{Origin, Txn};
    use swarmalloc::{
        EndpointSpec, Network, NetworkAttachmentConfig, NetworkSpec, Object, PortConfig, Protocol, PublishMode,
        Service, ServiceSpec, TaskState, Version,
    };

    fn apply(store: &mut Store, origin: Origin, changes: Vec<Change>) -> Vec<Event> {
        let index = store.applied + 1;
        let txn = Txn { id: ProposalId { node: 1, incarnation: 0, seq: index }, origin, changes };
        store.apply(index, &txn).expect("applies")
    }

    fn port(target_port: u16) -> PortConfig {
        PortConfig {
            name: format!("p{target_port}"),
            protocol: Protocol::Tcp,
            target_port,
            published_port: 8080,
            publish_mode: PublishMode::Ingress,
        }
    }

    /// Proposes `changes` as the loop's transaction `seq` and applies it at the next index.
    fn propose(alloc: &mut AllocLoop, store: &mut Store, seq: u64, changes: Vec<Change>) -> (bool, BatchStep) {
        let id = ProposalId { node: 1, incarnation: 0, seq };
        alloc.proposed(id);
        let index = store.applied + 1;
        let result = store.apply(index, &Txn { id, origin: Origin::Allocator, changes });
        (result.is_ok(), alloc.applied(store, id, &result))
    }

    /// Runs passes until the loop has nothing to propose, landing every batch whole.
    fn settle(alloc: &mut AllocLoop, store: &mut Store) {
        for _ in 0..10 {
            let (first, _) = alloc.pass(store);
            let Some(mut changes) = first else { return };
            loop {
                let seq = store.applied + 1;
                match propose(alloc, store, seq, changes) {
                    (_, BatchStep::Propose(next)) => changes = next,
                    _ => break,
                }
            }
        }
    }

    #[test]
    fn tasks_of_a_service_with_an_invalid_spec_are_retried_once_it_is_fixed() {
        let mut store = Store::default();
        apply(&mut store, Origin::Bootstrap, cluster_objects(&swarmalloc::ClusterConfig::default(), 1, 1));
        let invalid = EndpointSpec { mode: Default::default(), ports: vec![port(80), port(81)] };
        let spec = ServiceSpec { name: "s".into(), replicas: 2, endpoint: Some(invalid), ..Default::default() };
        let service = Service { id: "s".into(), version: Version(0), spec, endpoint: None };
        apply(&mut store, Origin::Control, vec![Change::Create { object: Object::Service(service) }]);
        let changes = orchestrate(&store, 10);
        apply(&mut store, Origin::Orchestrator, changes);
        let (mut alloc, _) = AllocLoop::restore(&store, 1, true);
        settle(&mut alloc, &mut store);
        assert!(store.tasks.values().all(|t| t.status.state == TaskState::New), "the service cannot be allocated");
        // The user drops the duplicate port: the service and then its tasks go through.
        let mut fixed = store.services[&swarmalloc::ServiceId::from("s")].clone();
        fixed.spec.endpoint = Some(EndpointSpec { mode: Default::default(), ports: vec![port(80)] });
        let events = apply(&mut store, Origin::Control, vec![Change::Update { object: Object::Service(fixed) }]);
        alloc.observe(&store, &events);
        settle(&mut alloc, &mut store);
        assert!(store.tasks.values().all(|t| t.status.state == TaskState::Pending), "{:?}", store.tasks);
        assert_eq!(crate::check::check_engine(alloc.engine(), &store), Ok(()));
    }

    /// Every pass that hands out addresses writes their network (its address cursor) from the
    /// engine's copy, whose version is the one the loop's last commit of it carried, older than
    /// the store's: the loop grafts the write onto the stored network, so it lands. A network
    /// deleted while such a write is in flight makes the store refuse the chunk, and the loop
    /// goes on: the tasks wait for the network, nothing is proposed again and again.
    #[test]
    fn network_writes_graft_onto_the_stored_network_and_a_racing_delete_wedges_nothing() {
        let mut store = Store::default();
        apply(&mut store, Origin::Bootstrap, cluster_objects(&swarmalloc::ClusterConfig::default(), 1, 1));
        let spec = NetworkSpec { name: "net".into(), ..Default::default() };
        let network = Network { id: "net".into(), version: Version(0), spec, driver_state: None, ipam: None };
        apply(&mut store, Origin::Control, vec![Change::Create { object: Object::Network(network) }]);
        let spec = ServiceSpec {
            name: "s".into(),
            replicas: 3,
            task_networks: vec![NetworkAttachmentConfig::to("net")],
            ..Default::default()
        };
        let service = Service { id: "s".into(), version: Version(0), spec, endpoint: None };
        apply(&mut store, Origin::Control, vec![Change::Create { object: Object::Service(service) }]);
        let changes = orchestrate(&store, 10);
        apply(&mut store, Origin::Orchestrator, changes);
        let (mut alloc, _) = AllocLoop::restore(&store, 1, true);
        settle(&mut alloc, &mut store);
        let cursor = |store: &Store| {
            let ipam = store.networks[&swarmalloc::NetworkId::from("net")].ipam.clone().expect("allocated");
            ipam.options.get(swarmalloc::ADDRESS_CURSOR_OPTION).cloned()
        };
        assert_eq!(cursor(&store).as_deref(), Some("10.0.1.5"), "the VIP .2 and three tasks");
        let scale = |store: &mut Store, alloc: &mut AllocLoop, replicas: u64| {
            let mut service = store.services[&swarmalloc::ServiceId::from("s")].clone();
            service.spec.replicas = replicas;
            let events = apply(store, Origin::Control, vec![Change::Update { object: Object::Service(service) }]);
            alloc.observe(store, &events);
            let changes = orchestrate(store, 10);
            let events = apply(store, Origin::Orchestrator, changes);
            alloc.observe(store, &events);
        };
        scale(&mut store, &mut alloc, 5);
        settle(&mut alloc, &mut store);
        assert!(store.tasks.values().all(|t| t.status.state == TaskState::Pending), "{:?}", store.tasks);
        assert_eq!(cursor(&store).as_deref(), Some("10.0.1.7"), "the write of the second pass landed");
        assert_eq!(crate::check::check_engine(alloc.engine(), &store), Ok(()));
        // A sixth task: the pass's first chunk writes the network; the network goes meanwhile.
        scale(&mut store, &mut alloc, 6);
        let (first, _) = alloc.pass(&store);
        let changes = first.expect("something to allocate");
        assert!(matches!(&changes[..], [Change::Update { object: Object::Network(_) }]), "{changes:?}");
        let version = store.networks[&swarmalloc::NetworkId::from("net")].version;
        let id = ObjectId::Network("net".into());
        let events = apply(&mut store, Origin::Control, vec![Change::Delete { id, version }]);
        alloc.observe(&store, &events);
        let (applied, step) = propose(&mut alloc, &mut store, 77, changes);
        assert!(!applied, "the store refuses a write of a deleted network");
        assert!(matches!(step, BatchStep::Done { landed: 0, .. }));
        settle(&mut alloc, &mut store);
        assert_eq!(alloc.pass(&store).0, None, "nothing left to propose");
        assert_eq!(crate::check::check_engine(alloc.engine(), &store), Ok(()));
    }

    #[test]
    fn a_cut_batch_commits_its_prefix_and_retries_the_rest() {
        let mut store = Store::default();
        apply(&mut store, Origin::Bootstrap, cluster_objects(&swarmalloc::ClusterConfig::default(), 1, 1));
        let spec = ServiceSpec { name: "s".into(), replicas: 5, ..Default::default() };
        let service = Service { id: "s".into(), version: Version(0), spec, endpoint: None };
        apply(&mut store, Origin::Control, vec![Change::Create { object: Object::Service(service) }]);
        let changes = orchestrate(&store, 10);
        apply(&mut store, Origin::Orchestrator, changes);
        let (mut alloc, _) = AllocLoop::restore(&store, 2, true);
        let (first, _) = alloc.pass(&store);
        let changes = first.expect("something to allocate");
        assert_eq!(changes.len(), 2, "batches of at most 2 changes");
        assert!(matches!(propose(&mut alloc, &mut store, 99, changes), (true, BatchStep::Propose(_))));
        // Leadership is lost here: only the first transaction landed.
        let BatchStep::Done { landed, total } = alloc.finish(&store) else { panic!("the batch ends") };
        assert_eq!(landed, 2);
        assert!(total > 2, "the proposal had more than one transaction: {total}");
        assert_eq!(crate::check::check_engine(alloc.engine(), &store), Ok(()));
        settle(&mut alloc, &mut store);
        assert!(store.tasks.values().all(|t| t.status.state == TaskState::Pending));
        assert_eq!(crate::check::check_engine(alloc.engine(), &store), Ok(()));
    }
}
