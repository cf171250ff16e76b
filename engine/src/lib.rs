//! swarmalloc: SwarmKit's network allocator as a deterministic engine whose state is a function of
//! the committed store.
//!
//! ```text
//! let (mut alloc, report) = Allocator::restore(config, store.objects())?;   // reads and marks only
//! let mut tx = alloc.begin();                                               // borrows, never writes
//! tx.allocate_network(&net)?; tx.allocate_task(&task, Some(&service))?;
//! let proposal = tx.finish();                                               // object updates
//! // ... propose to raft; then, per outcome:
//! alloc.commit(&proposal);              // all committed
//! alloc.commit_prefix(&proposal, k);    // only the first k committed
//! drop(proposal);                       // nothing committed: nothing to undo
//! Allocator::restore(config, store.objects());   // outcome unknown: rebuild from the store
//! ```
//!
//! Other writers' committed changes (a task going terminal, a service deleted) are mirrored with
//! [`Allocator::observe`] and [`Allocator::observe_deleted`]; `commit` is `observe` of the
//! proposal's objects. Architecture invariant: the engine does no I/O, reads no clock, draws no
//! random number and iterates no hash map.

mod config;
mod diff;
mod error;
mod few;
mod ids;
mod index;
#[cfg(feature = "legacy")]
pub mod legacy;
mod objects;
mod restore;
mod tx;

use std::net::IpAddr;

use ipnet::IpNet;

pub use config::{ClusterConfig, Range, VXLAN_ID_MAX};
pub use diff::{Diff, Difference, Subject};
pub use error::{AllocError, ObjectError};
pub use ids::{NetworkId, NodeId, ServiceId, TaskId, Version};
pub use index::Holder;
pub use objects::*;
pub use restore::{Finding, RestoreReport};
pub use tx::{Outcome, PENDING_MESSAGE, Proposal, Tx};

/// The allocator: an index of committed claims plus the cluster config. See the crate docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocator {
    state: index::State,
}

/// One address claimed on a network, with its holder and any claimants that lost it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedAddress {
    pub network: NetworkId,
    pub address: IpNet,
    pub holder: Holder,
    pub losers: Vec<Holder>,
}

/// How full one subnet of a network is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolUsage {
    pub network: NetworkId,
    pub subnet: IpNet,
    /// Addresses new picks are drawn from.
    pub capacity: u128,
    /// Addresses with a live holder (including the gateway when it lies in the pick range).
    pub live: u128,
    /// Addresses quarantined by retired tasks.
    pub retired: u128,
    /// The longest run of consecutive unclaimed addresses in the pick range (fragmentation is
    /// how far it falls short of all free addresses).
    pub largest_free_run: u128,
}

impl Allocator {
    /// An allocator over an empty store.
    pub fn new(config: ClusterConfig) -> Result<Allocator, AllocError> {
        config.validate()?;
        Ok(Allocator { state: index::State::new(std::sync::Arc::new(config)) })
    }

    /// Builds the engine from committed objects, in any order. Never allocates anything: it marks
    /// what objects hold, reports conflicts, and lists what needs allocating. Errs only on an
    /// invalid config.
    pub fn restore<'a>(
        config: ClusterConfig,
        objects: impl IntoIterator<Item = ObjectRef<'a>>,
    ) -> Result<(Allocator, RestoreReport), AllocError> {
        let objects: Vec<ObjectRef<'a>> = objects.into_iter().collect();
        Ok(Allocator::new(config)?.restored(&objects))
    }

    /// Marks `objects` in this (empty) engine and reports what restore found.
    fn restored(mut self, objects: &[ObjectRef<'_>]) -> (Allocator, RestoreReport) {
        self.state.observe_all(objects.iter().copied());
        let findings = restore::findings(&self.state);
        let queue = restore::queue(&self.state, objects, &findings);
        (self, RestoreReport { findings, queue })
    }

    /// An engine with this one's config, built from `objects` exactly as `restore` builds it, but
    /// without restore's report (whose queue asks a throwaway transaction per object): for
    /// checkers that compare the engine with a restore of the store after every step.
    pub fn rebuilt<'a>(&self, objects: impl IntoIterator<Item = ObjectRef<'a>>) -> Allocator {
        let mut state = index::State::new(self.state.config.clone());
        state.observe_all(objects);
        Allocator { state }
    }

    /// [`Allocator::restore`] of an engine that runs one old behaviour (`None`: today's engine).
    /// B2 and B8 restore without re-reserving VIPs or dynamic ports; B4 and B6 change how this
    /// engine forgets and marks tasks from now on. The report is restore's own.
    #[cfg(feature = "legacy")]
    pub fn restore_legacy<'a>(
        config: ClusterConfig,
        objects: impl IntoIterator<Item = ObjectRef<'a>>,
        flavour: Option<legacy::Flavour>,
    ) -> Result<(Allocator, RestoreReport), AllocError> {
        let objects: Vec<ObjectRef<'a>> = objects.into_iter().collect();
        let mut empty = Allocator::new(config)?;
        empty.state.mode.flavour = flavour;
        let (mut allocator, report) = empty.restored(&objects);
        match flavour {
            Some(legacy::Flavour::B2) => allocator.state.drop_vip_claims(),
            Some(legacy::Flavour::B8) => {
                let services: Vec<&Service> = objects
                    .iter()
                    .filter_map(|o| match o {
                        ObjectRef::Service(s) => Some(*s),
                        _ => None,
                    })
                    .collect();
                allocator.state.drop_dynamic_port_claims(&services);
            }
            _ => {}
        }
        Ok((allocator, report))
    }

    /// The legacy flavour this engine runs.
    #[cfg(feature = "legacy")]
    pub fn flavour(&self) -> Option<legacy::Flavour> {
        self.state.mode.flavour
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.state.config
    }

    /// Starts an allocation transaction. It borrows the engine immutably: no allocation can
    /// change the engine before its proposal is committed.
    pub fn begin(&self) -> Tx<'_> {
        Tx::new(&self.state)
    }

    /// Mirrors a committed create or update (by anyone).
    pub fn observe(&mut self, object: ObjectRef<'_>) {
        self.state.observe(object);
    }

    /// Mirrors a committed delete.
    pub fn observe_deleted(&mut self, id: &ObjectId) {
        self.state.observe_deleted(id);
    }

    /// The whole proposal was committed.
    pub fn commit(&mut self, proposal: &Proposal) {
        self.commit_prefix(proposal, proposal.len());
    }

    /// Only the first `landed` updates of the proposal were committed (a cut batch).
    pub fn commit_prefix(&mut self, proposal: &Proposal, landed: usize) {
        self.state.observe_batch(proposal.updates[..landed.min(proposal.len())].iter().map(Object::as_ref));
        // B6: the old IPAM's serial cursor moved when the address was picked, committed or not.
        #[cfg(feature = "legacy")]
        self.state.mode.cursors.extend(proposal.cursors.iter().map(|(k, v)| (k.clone(), *v)));
    }

    /// Restore's findings for the current state (what `restore` would report now).
    pub fn findings(&self) -> Vec<Finding> {
        restore::findings(&self.state)
    }

    /// Who holds `address` on `network`.
    pub fn holder(&self, network: &NetworkId, address: IpAddr) -> Option<&Holder> {
        self.state.holder_of(network, address)
    }

    /// The ingress network, if the store has one.
    pub fn ingress(&self) -> Option<&NetworkId> {
        self.state.ingress.as_ref()
    }

    /// Whether a network is allocated and usable (valid, and no conflict lost).
    pub fn is_network_allocated(&self, network: &NetworkId) -> bool {
        self.state.networks.get(network).and_then(|e| e.usable_alloc()).is_some()
    }

    /// The networks a node should have load-balancer attachments on.
    pub fn node_wanted_networks(&self, node: &NodeId) -> Vec<NetworkId> {
        self.state.node_wanted_networks(node)
    }

    /// Every claimed address, sorted by network then address.
    pub fn claimed_addresses(&self) -> Vec<ClaimedAddress> {
        index::claimed_addresses(&self.state)
            .into_iter()
            .map(|(network, address, holder, losers)| ClaimedAddress { network, address, holder, losers })
            .collect()
    }

    /// Utilisation of every subnet, sorted by network then config order.
    pub fn pool_usage(&self) -> Vec<PoolUsage> {
        let mut out = Vec::new();
        for (id, entry) in &self.state.networks {
            let Some(Ok(alloc)) = &entry.alloc else { continue };
            for pool in &alloc.pools {
                let (lo, hi) = pool.pick;
                let mut usage = PoolUsage {
                    network: id.clone(),
                    subnet: pool.subnet,
                    capacity: hi - lo + 1,
                    live: 0,
                    retired: 0,
                    largest_free_run: 0,
                };
                // `next_free` is the first slot after the last claimed one seen (lo at the start).
                let mut next_free = lo;
                for (slot, claims) in pool.slots.range(lo..=hi) {
                    if claims.holder().is_retired() {
                        usage.retired += 1
                    } else {
                        usage.live += 1
                    }
                    usage.largest_free_run = usage.largest_free_run.max(slot - next_free);
                    next_free = slot + 1;
                }
                if next_free <= hi {
                    usage.largest_free_run = usage.largest_free_run.max(hi - next_free + 1);
                }
                out.push(usage);
            }
        }
        out
    }

    /// How this engine differs from `other`, usually a restore of the committed store (or an
    /// engine fed every committed change), as a sorted list of differences in words; None when
    /// they are equal. For checkers.
    pub fn diff(&self, other: &Allocator) -> Option<Diff> {
        diff::diff(&self.state, &other.state)
    }
}
