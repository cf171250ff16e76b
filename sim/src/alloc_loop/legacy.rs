//! The old allocator loop's behaviours (feature `legacy`), one at a time: the flavours whose
//! cause lived in SwarmKit's `allocator/network.go` (init, batches, event handling) rather than
//! in the network allocator. Each follows docs/swarmkit.md section 4; see docs/legacy-flavours.md.
//!
//! - B1: restore and allocation interleaved: the first pass after a restore runs against an
//!   engine that has not yet marked the addresses stored live tasks hold (moby/swarmkit#2237).
//! - B3: networks restored in id order; an unallocated network is allocated against an engine
//!   that holds only the networks before it (moby/swarmkit#2571).
//! - B5: a delete racing an allocation: the allocation, applied before its commit, stays in the
//!   engine when the commit fails because the object is gone (dperny's `deletedObjects`); the
//!   engine allocates tasks already told to stop, which opens the race.
//! - B11: the proposal is applied to the engine before raft commits it and never rolled back;
//!   only tasks that did not land are queued again (spec 3.4).
//! - FlagInit: restore runs through the allocation path (the init pass rewrites every live task,
//!   spec 3.2), and an init batch that fails stops the allocator until it is restored again by a
//!   leader change or an allocator restart (spec 3.1: "allocator exited with an error").

use swarmalloc::legacy::Flavour;
use swarmalloc::{Allocator, Object, ObjectId, ObjectRef, Proposal, RestoreReport, Tx};

use super::{AllocLoop, Batch, BatchStep, mirror};
use crate::store::Store;

/// Where the boolean-flag init is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Init {
    /// Restored; the init batch is the next one.
    #[default]
    Next,
    InFlight,
    Done,
}

/// The legacy state of one loop.
#[derive(Debug, Default)]
pub(super) struct Legacy {
    pub(super) flavour: Option<Flavour>,
    /// B1: live tasks holding stored addresses, marked only after the first pass.
    deferred: Vec<ObjectId>,
    /// B3: networks the init allocated against a partly restored engine, to be written first.
    init_networks: Vec<Object>,
    init: Init,
    /// The batch in flight ended with a refused transaction (a conflict, not a failed commit).
    refused: bool,
    /// FlagInit: the init failed; the allocator does nothing until restored again.
    pub(super) dead: bool,
    /// B5: the copy of each queued task or service as last seen, and the queued ones deleted
    /// since the last pass, which the old loop still allocated from its queue.
    copies: std::collections::BTreeMap<ObjectId, Object>,
    lagging: Vec<Object>,
}

impl Legacy {
    pub(super) fn is(&self, flavour: Flavour) -> bool {
        self.flavour == Some(flavour)
    }

    /// Init work that must run even when nothing is pending.
    pub(super) fn has_work(&self) -> bool {
        !self.deferred.is_empty() || !self.init_networks.is_empty()
    }

    pub(super) fn init_in_flight(&self) -> bool {
        self.is(Flavour::FlagInit) && self.init == Init::InFlight
    }

    /// FlagInit: restore went through the allocation path, which wrote every live task back.
    pub(super) fn rewrite_live_tasks(&mut self, tx: &mut Tx<'_>, store: &Store) {
        if self.is(Flavour::FlagInit) && self.init == Init::Next {
            for task in store.tasks.values() {
                tx.rewrite(task);
            }
        }
    }

    /// B5: remembers queued copies; a queued object deleted before the next pass is allocated
    /// once more from its copy (the old loop handled the delete event after that allocation).
    pub(super) fn observed(&mut self, store: &Store, event: &crate::store::Event, queued: bool) {
        if !self.is(Flavour::B5) {
            return;
        }
        match event {
            crate::store::Event::Put(id @ (ObjectId::Task(_) | ObjectId::Service(_))) => {
                if let Some(object) = store.get(id) {
                    self.copies.insert(id.clone(), object.to_owned());
                }
            }
            crate::store::Event::Put(_) => {}
            crate::store::Event::Deleted(id) => {
                if let Some(copy) = self.copies.remove(id).filter(|_| queued) {
                    self.lagging.push(copy);
                }
            }
        }
    }

    /// B5: allocates the queued objects deleted since the last pass from their copies.
    pub(super) fn allocate_lagging(&mut self, tx: &mut Tx<'_>, store: &Store) {
        for object in std::mem::take(&mut self.lagging) {
            // An error is the same as for any object: it is not allocated.
            let _ = match &object {
                Object::Task(t) => tx.allocate_task(t, t.service_id.as_ref().and_then(|s| store.services.get(s))),
                Object::Service(s) => tx.allocate_service(s),
                _ => continue,
            };
        }
        self.copies.retain(|id, _| store.get(id).is_some());
    }

    /// A batch ended with `landed` of `total` updates committed.
    pub(super) fn batch_ended(&mut self, landed: usize, total: usize) {
        if self.init_in_flight() {
            self.init = Init::Done;
            // A refused transaction is a conflict the old commit helpers grafted around; a
            // batch that was cut, never proposed or lost with the leadership failed the init.
            self.dead = landed < total && !self.refused;
        }
        self.refused = false;
    }
}

impl AllocLoop {
    /// Restores a loop that runs `flavour` (`None`: today's loop).
    pub fn restore_legacy(
        store: &Store,
        batch_max: usize,
        shadow: bool,
        flavour: Option<Flavour>,
    ) -> (AllocLoop, RestoreReport) {
        let objects: Vec<ObjectRef<'_>> = store.objects().collect();
        let engine_flavour =
            flavour.filter(|f| matches!(f, Flavour::B2 | Flavour::B4 | Flavour::B5 | Flavour::B6 | Flavour::B8));
        let (mut me, report) = match flavour {
            Some(Flavour::B1) => {
                // Live tasks that hold addresses are marked after the first pass.
                let holds = |o: &ObjectRef<'_>| matches!(o, ObjectRef::Task(t) if t.status.state.is_live() && t.networks.iter().any(|a| !a.addresses.is_empty()));
                let deferred: Vec<ObjectId> = objects.iter().filter(|o| holds(o)).map(|o| o.id()).collect();
                let rest = objects.iter().copied().filter(|o| !holds(o));
                let (alloc, report) = Allocator::restore(store.config(), rest).expect("a valid cluster config");
                let (mut me, report) = AllocLoop::restored(store, alloc, report, batch_max, shadow);
                me.legacy.deferred = deferred;
                (me, report)
            }
            Some(Flavour::B3) => {
                let (alloc, init_networks) = restore_networks_in_id_order(store, &objects);
                let (_, mut report) = Allocator::restore(store.config(), objects.iter().copied()).expect("config");
                report.queue.retain(|id| !init_networks.iter().any(|n| n.id() == *id));
                let (mut me, report) = AllocLoop::restored(store, alloc, report, batch_max, shadow);
                me.legacy.init_networks = init_networks;
                (me, report)
            }
            _ => {
                let (alloc, report) =
                    Allocator::restore_legacy(store.config(), objects, engine_flavour).expect("a valid cluster config");
                AllocLoop::restored(store, alloc, report, batch_max, shadow)
            }
        };
        me.legacy.flavour = flavour;
        (me, report)
    }

    /// Runs before a pass: a dead loop does nothing; B3's init networks go first; B1 marks
    /// its deferred tasks when there is nothing to allocate. Some: the pass's result.
    pub(super) fn legacy_pass(&mut self, store: &Store) -> Option<Option<Vec<crate::store::Change>>> {
        if self.legacy.dead {
            return Some(None);
        }
        if self.batch.is_some() {
            return None;
        }
        if !self.legacy.init_networks.is_empty() {
            let proposal = swarmalloc::Proposal::from_updates(std::mem::take(&mut self.legacy.init_networks));
            return Some(self.start_batch(store, proposal));
        }
        if self.pending.is_empty() {
            self.mark_deferred(store);
            if self.legacy.init == Init::Next {
                self.legacy.init = Init::Done;
            }
        }
        None
    }

    /// Runs after a pass built its proposal, before it is proposed.
    pub(super) fn legacy_after_pass(&mut self, store: &Store, proposal: &Proposal) {
        self.mark_deferred(store);
        if self.legacy.is(Flavour::B11) {
            // Applied locally before raft has it.
            self.alloc.commit(proposal);
        }
        if self.legacy.init == Init::Next {
            self.legacy.init = if proposal.is_empty() { Init::Done } else { Init::InFlight };
        }
    }

    /// B1: the stored live tasks are marked now, after new objects were served.
    fn mark_deferred(&mut self, store: &Store) {
        for id in std::mem::take(&mut self.legacy.deferred) {
            mirror(&mut self.alloc, store, &id);
            if let Some(shadow) = &mut self.shadow {
                mirror(shadow, store, &id);
            }
        }
    }

    /// The batch's transaction in flight was refused.
    pub(super) fn legacy_refused(&mut self, store: &Store) {
        self.legacy.refused = true;
        if !self.legacy.is(Flavour::B5) {
            return;
        }
        let Some(batch) = &self.batch else { return };
        // B5: the allocation was applied before its commit; the delete that made the commit
        // fail freed the copy in its event, which had no addresses yet: the claims stay.
        let chunk = &batch.proposal.updates()[batch.chunks[batch.next].clone()];
        let gone: Vec<Object> = chunk.iter().filter(|o| store.get(&o.id()).is_none()).cloned().collect();
        for object in &gone {
            self.alloc.observe(object.as_ref());
            // Its delete event, buffered while the batch was in flight, carried the copy
            // without addresses: replaying it frees nothing.
            self.buffered.remove(&object.id());
        }
    }

    /// B11: the proposal was applied at pass time and is never rolled back; of what did not
    /// land, only tasks are queued again (networks, services and nodes wait for their next event).
    pub(super) fn finish_without_rollback(&mut self, store: &Store, batch: Batch) -> BatchStep {
        let total = batch.proposal.len();
        for object in &batch.proposal.updates()[batch.landed..] {
            if matches!(object, Object::Task(_)) {
                self.pending.insert(object.id());
            }
        }
        self.replay_buffered(store);
        BatchStep::Done { landed: batch.landed, total }
    }
}

/// B3: the ingress first (the old init's step 1), then the other networks in id order; an
/// unallocated network is allocated against the networks restored so far and applied locally at
/// once. Returns the engine (every other object marked too) and the networks to write.
fn restore_networks_in_id_order(store: &Store, objects: &[ObjectRef<'_>]) -> (Allocator, Vec<Object>) {
    let holders = objects.iter().copied().filter(|o| !matches!(o, ObjectRef::Network(_)));
    let (mut alloc, _) = Allocator::restore(store.config(), holders).expect("a valid cluster config");
    let mut networks: Vec<&swarmalloc::Network> = store.networks.values().collect();
    networks.sort_by_key(|n| (!n.is_ingress(), &n.id));
    let mut written = Vec::new();
    for network in networks {
        if network.is_allocated() {
            alloc.observe(ObjectRef::Network(network));
            continue;
        }
        let proposal = {
            let mut tx = alloc.begin();
            // A network that cannot be allocated now is left to the passes.
            let _ = tx.allocate_network(network);
            tx.finish()
        };
        alloc.commit(&proposal);
        written.extend(proposal.into_updates());
    }
    (alloc, written)
}
