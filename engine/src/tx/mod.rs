//! Allocation: a [`Tx`] reads the committed index, picks resources, and collects the updated
//! objects into a [`Proposal`]. It never writes the index (it only borrows it): what it takes is
//! remembered in the transaction so that two objects of one proposal never get the same thing.
//! The rules are docs/swarmkit.md section 2; where the engine departs from SwarmKit it says why.
//!
//! This file holds the transaction itself (what it took, all-or-nothing per object, the
//! proposal); one file per kind of resource or object holds the rest: `addresses` (picks, the
//! reuse cursor, repairs), `networks`, `services` (VIPs and ports), `tasks`, `nodes`.

mod addresses;
mod networks;
mod nodes;
mod services;
mod tasks;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::BuildHasherDefault;

use addresses::Taken;

use crate::config::ClusterConfig;
use crate::error::AllocError;
use crate::ids::{NetworkId, NodeId, ServiceId, TaskId};
use crate::index::{Fnv, NetAlloc, State, SubnetEntry, write_cursors};
#[cfg(feature = "legacy")]
use crate::objects::Task;
use crate::objects::{ADDRESS_CURSOR_OPTION, DriverScope, Ipam, Object, ObjectId, Protocol};

/// The status message of a task the allocator moved to PENDING (SwarmKit's wording).
pub const PENDING_MESSAGE: &str = "pending task scheduling";

/// What an allocation call did to its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do: the object is already allocated as its spec asks.
    Unchanged,
    /// The updated object was added to the proposal.
    Updated,
}

/// Object updates to commit, in dependency order (networks, services, tasks, nodes): every
/// prefix of it can be committed on its own without an update depending on a later one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proposal {
    pub(crate) updates: Vec<Object>,
    /// B6 (legacy): the last address picked per (network, pool index), for the old serial cursor.
    #[cfg(feature = "legacy")]
    pub(crate) cursors: BTreeMap<(NetworkId, usize), u128>,
}

impl Proposal {
    /// Legacy flavours: a proposal of updates built outside a transaction, in dependency order:
    /// the old init allocated networks one by one against a partly restored mirror and wrote
    /// them as one batch (B3).
    #[cfg(feature = "legacy")]
    pub fn from_updates(mut updates: Vec<Object>) -> Proposal {
        updates.sort_by_key(kind_rank);
        Proposal { updates, cursors: Default::default() }
    }

    pub fn updates(&self) -> &[Object] {
        &self.updates
    }

    pub fn into_updates(self) -> Vec<Object> {
        self.updates
    }

    pub fn len(&self) -> usize {
        self.updates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
    }
}

/// Something taken in this transaction, for all-or-nothing rollback of one object.
enum Undo {
    Addr(NetworkId, u128),
    Port(Protocol, u16),
    Vni(u32),
    Subnet((bool, u128)),
    /// A pool's address cursor moved (network, pool index, where it was).
    Cursor(NetworkId, usize, Option<u128>),
}

/// A network as a transaction sees it: committed, or allocated earlier in this transaction.
struct NetView<'s> {
    scope: DriverScope,
    alloc: Option<&'s NetAlloc>,
}

/// An allocation transaction over the committed index. See the module docs.
pub struct Tx<'s> {
    state: &'s State,
    /// Updates in call order; `finish` orders them by kind (networks, services, tasks, nodes).
    updates: Vec<Object>,
    /// The ids of `updates`, only asked membership. FNV rather than std's SipHash: a proposal
    /// of 50,000 tasks spent 14% of its time hashing ids with SipHash (criterion
    /// `attach_50k_on_a_16/propose`, docs/performance.md).
    touched: HashSet<ObjectId, BuildHasherDefault<Fnv>>,
    /// Where each updated service is in `updates`, for its tasks.
    services: BTreeMap<ServiceId, usize>,
    addrs: BTreeMap<NetworkId, Taken>,
    ports: BTreeMap<(Protocol, u16), ServiceId>,
    vnis: BTreeSet<u32>,
    subnets: BTreeMap<(bool, u128), SubnetEntry>,
    networks: BTreeMap<NetworkId, NetAlloc>,
    ingress: Option<NetworkId>,
    undo: Vec<Undo>,
    /// How many `atomically` calls are running: the undo log is only needed inside one.
    depth: u32,
    service_current: BTreeMap<ServiceId, (crate::ids::Version, bool)>,
    /// The address cursors this transaction moved: per network, per pool (config order), the
    /// last address it handed out there. `finish` writes them into the networks' stored state.
    cursors: BTreeMap<NetworkId, Vec<Option<u128>>>,
}

impl<'s> Tx<'s> {
    pub(crate) fn new(state: &'s State) -> Tx<'s> {
        Tx {
            state,
            updates: Vec::new(),
            touched: HashSet::default(),
            services: BTreeMap::new(),
            addrs: BTreeMap::new(),
            ports: BTreeMap::new(),
            vnis: BTreeSet::new(),
            subnets: BTreeMap::new(),
            networks: BTreeMap::new(),
            ingress: None,
            undo: Vec::new(),
            depth: 0,
            service_current: BTreeMap::new(),
            cursors: BTreeMap::new(),
        }
    }

    /// The updates collected so far, in dependency order. Every network this transaction handed
    /// out addresses on is among them, with its moved address cursors ([`ADDRESS_CURSOR_OPTION`]):
    /// networks come first, so under any committed prefix the stored cursors are at or past every
    /// committed pick. A network written only for its cursors carries the store version the engine
    /// last saw it with; a caller whose store checks versions grafts its `ipam` onto the stored
    /// network, as SwarmKit's commit helpers graft allocator-owned fields on a sequence conflict.
    pub fn finish(mut self) -> Proposal {
        #[cfg(feature = "legacy")]
        let legacy_cursors: BTreeMap<(NetworkId, usize), u128> = self
            .cursors
            .iter()
            .flat_map(|(id, pools)| pools.iter().enumerate().filter_map(move |(i, c)| c.map(|c| ((id.clone(), i), c))))
            .collect();
        self.write_cursors();
        let mut updates = self.updates;
        // Stable: call order within each kind. Calls usually come in kind order already, which
        // the sort finds in one pass.
        if !updates.is_sorted_by_key(kind_rank) {
            updates.sort_by_key(kind_rank);
        }
        Proposal {
            updates,
            #[cfg(feature = "legacy")]
            cursors: legacy_cursors,
        }
    }

    /// Writes the moved address cursors into the networks' IPAM options: into the update of a
    /// network allocated in this transaction, or into a new update of a committed one.
    fn write_cursors(&mut self) {
        // Legacy flavours: the old IPAM kept its cursors in memory only.
        #[cfg(feature = "legacy")]
        if self.state.mode.flavour.is_some() {
            return;
        }
        for (id, moved) in std::mem::take(&mut self.cursors) {
            if moved.iter().all(Option::is_none) {
                continue;
            }
            let pools = match self.networks.get(&id) {
                Some(alloc) => &alloc.pools,
                None => match self.state.networks.get(&id).and_then(|e| e.usable_alloc()) {
                    Some(alloc) => &alloc.pools,
                    None => continue,
                },
            };
            let merged = pools.iter().zip(&moved).map(|(pool, moved)| moved.or(pool.last));
            let Some(value) = write_cursors(pools, merged) else { continue };
            let pending = self.updates.iter_mut().find_map(|o| match o {
                Object::Network(n) if n.id == id => Some(n),
                _ => None,
            });
            match pending {
                Some(network) => {
                    network.ipam.get_or_insert_with(Ipam::default).options.insert(ADDRESS_CURSOR_OPTION.into(), value);
                }
                None => {
                    let Some(entry) = self.state.networks.get(&id) else { continue };
                    let mut network = entry.network.network().clone();
                    let ipam = network.ipam.get_or_insert_with(Ipam::default);
                    if ipam.options.get(ADDRESS_CURSOR_OPTION) != Some(&value) {
                        ipam.options.insert(ADDRESS_CURSOR_OPTION.into(), value);
                        self.push(Object::Network(network));
                    }
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
    }

    fn contains_task(&self, id: &TaskId) -> bool {
        self.touched.contains(&ObjectId::Task(id.clone()))
    }

    fn contains_service(&self, id: &ServiceId) -> bool {
        self.touched.contains(&ObjectId::Service(id.clone()))
    }

    fn contains_node(&self, id: &NodeId) -> bool {
        self.touched.contains(&ObjectId::Node(id.clone()))
    }

    fn config(&self) -> &ClusterConfig {
        &self.state.config
    }

    /// Runs one object's allocation; on error, gives back everything it took (all-or-nothing).
    fn atomically<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, AllocError>) -> Result<T, AllocError> {
        let mark = self.undo.len();
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        if result.is_ok() {
            // Nothing outside an `atomically` ever undoes: the log of a finished object is
            // dropped so that it does not grow with the proposal.
            if self.depth == 0 {
                self.undo.truncate(mark);
            }
        } else {
            while self.undo.len() > mark {
                let Some(undo) = self.undo.pop() else { break };
                match undo {
                    Undo::Addr(network, value) => {
                        if let Some(taken) = self.addrs.get_mut(&network) {
                            taken.remove(&value);
                        }
                    }
                    Undo::Port(protocol, port) => {
                        self.ports.remove(&(protocol, port));
                    }
                    Undo::Vni(vni) => {
                        self.vnis.remove(&vni);
                    }
                    Undo::Subnet(key) => {
                        self.subnets.remove(&key);
                    }
                    Undo::Cursor(network, pool, previous) => {
                        if let Some(cursors) = self.cursors.get_mut(&network) {
                            cursors[pool] = previous;
                        }
                    }
                }
            }
        }
        result
    }

    fn net(&self, id: &NetworkId) -> Option<NetView<'_>> {
        if let Some(alloc) = self.networks.get(id) {
            let scope = self.state.networks.get(id).map_or(DriverScope::Overlay, |e| e.scope);
            return Some(NetView { scope, alloc: Some(alloc) });
        }
        let entry = self.state.networks.get(id)?;
        Some(NetView { scope: entry.scope, alloc: entry.usable_alloc() })
    }

    /// A network as messages name it: `network ID (NAME)`, or `network ID` when the committed
    /// store does not give it a name.
    fn network_label(&self, id: &NetworkId) -> String {
        match self.state.networks.get(id).map(|entry| entry.network.network().spec.name.as_str()) {
            Some(name) if !name.is_empty() => format!("network {id} ({name})"),
            _ => format!("network {id}"),
        }
    }

    fn ingress(&self) -> Option<&NetworkId> {
        self.ingress.as_ref().or(self.state.ingress.as_ref())
    }

    fn ingress_allocated(&self) -> Option<NetworkId> {
        let id = self.ingress()?;
        self.net(id)?.alloc.map(|_| id.clone())
    }

    /// B2 and B8 (legacy): the old restore left a stored VIP or dynamic port unreserved, and the
    /// next allocation of its service asked for it again as a preferred value; it is kept when
    /// nobody took it meanwhile.
    #[cfg(feature = "legacy")]
    fn legacy_rerequest(&self, flavour: crate::legacy::Flavour, free: bool) -> bool {
        self.state.mode.is(flavour) && free
    }

    /// FlagInit (legacy): restore ran through the allocation path, which wrote every live task
    /// back to the store; the object goes into the proposal unchanged.
    #[cfg(feature = "legacy")]
    pub fn rewrite(&mut self, task: &Task) {
        if task.status.state.is_live() && !self.contains_task(&task.id) {
            self.push(Object::Task(task.clone()));
        }
    }

    fn push(&mut self, object: Object) {
        if let Object::Service(s) = &object {
            self.services.insert(s.id.clone(), self.updates.len());
        }
        self.touched.insert(object.id());
        self.updates.push(object);
    }
}

/// Keeps the object kinds in dependency order inside a proposal: networks, services, tasks, nodes.
pub(crate) fn kind_rank(object: &Object) -> u8 {
    match object {
        Object::Network(_) => 0,
        Object::Service(_) => 1,
        Object::Task(_) => 2,
        Object::Node(_) => 3,
    }
}
