//! Allocation: a [`Tx`] reads the committed index, picks resources, and collects the updated
//! objects into a [`Proposal`]. It never writes the index (it only borrows it): what it takes is
//! remembered in the transaction so that two objects of one proposal never get the same thing.
//! The rules are allocator-spec.md section 2; where this file departs from SwarmKit it says why.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::hash::BuildHasherDefault;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::ClusterConfig;
use crate::error::AllocError;
use crate::few::Few;
use crate::ids::{NetworkId, NodeId, ServiceId, TaskId};
use crate::index::{
    Fnv, Holder, NetAlloc, NetEntry, Placement, Pool, State, SubnetEntry, find_overlap, ip_to_u128, kind_rank,
    overlaps, parse_vni_list, write_cursors,
};
use crate::objects::{
    ADDRESS_CURSOR_OPTION, BUILTIN_DRIVERS, DEFAULT_IPAM_DRIVER, DriverConfig, DriverScope, Endpoint, Ipam, IpamConfig,
    Network, NetworkAttachment, NetworkAttachmentConfig, Node, Object, ObjectId, PortConfig, Protocol, PublishMode,
    ResolutionMode, Service, Task, TaskState, TaskStatus, VXLAN_ID_LIST_OPTION, VirtualIp,
};

/// From how many updates a transaction looks its objects up by hash: below it, a scan of the
/// updates is cheaper than hashing every id.
const TOUCHED_HASHED_FROM: usize = 32;

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
    /// The ids of `updates` once there are many ([`TOUCHED_HASHED_FROM`]); before that they
    /// are looked for in `updates` itself. Only membership is asked, never iteration order.
    touched: Option<HashSet<ObjectId, BuildHasherDefault<Fnv>>>,
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
            touched: None,
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

    /// Whether the proposal updates the object with this id: `is` tells it among the updates.
    fn contains(&self, id: impl FnOnce() -> ObjectId, is: impl Fn(&Object) -> bool) -> bool {
        match &self.touched {
            Some(touched) => touched.contains(&id()),
            None => self.updates.iter().any(is),
        }
    }

    fn contains_task(&self, id: &TaskId) -> bool {
        self.contains(|| ObjectId::Task(id.clone()), |o| matches!(o, Object::Task(t) if t.id == *id))
    }

    fn contains_service(&self, id: &ServiceId) -> bool {
        self.contains(|| ObjectId::Service(id.clone()), |o| matches!(o, Object::Service(s) if s.id == *id))
    }

    fn contains_node(&self, id: &NodeId) -> bool {
        self.contains(|| ObjectId::Node(id.clone()), |o| matches!(o, Object::Node(n) if n.id == *id))
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

    fn ingress(&self) -> Option<&NetworkId> {
        self.ingress.as_ref().or(self.state.ingress.as_ref())
    }

    fn ingress_allocated(&self) -> Option<NetworkId> {
        let id = self.ingress()?;
        self.net(id)?.alloc.map(|_| id.clone())
    }

    // ----------------------------------------------------------------------------------------
    // Addresses

    /// Takes a specific address for `holder`, which must be usable and not held by anyone else
    /// (a retired task's quarantined address may be taken explicitly).
    fn take_exact(&mut self, network: &NetworkId, ip: IpAddr, holder: &Holder) -> Result<IpNet, AllocError> {
        let alloc =
            self.net(network).and_then(|n| n.alloc).ok_or_else(|| AllocError::needs(format!("network {network}")))?;
        let pool = match alloc.place(ip) {
            Placement::Usable(i) => &alloc.pools[i],
            Placement::Reserved(what) => {
                return Err(AllocError::invalid(format!("address {ip} is the {what} of network {network}")));
            }
            Placement::OutOfRange => {
                return Err(AllocError::invalid(format!("address {ip} is outside every subnet of network {network}")));
            }
        };
        let value = ip_to_u128(ip);
        let with_prefix = pool.with_prefix(value);
        if let Some(claims) = pool.slots.get(&value) {
            let owner = claims.holder();
            if owner != holder && !self.state.reusable(claims) {
                return Err(AllocError::in_use(format!("address {ip} on network {network}"), owner.to_string()));
            }
        }
        if let Some(owner) = self.addrs.get(network).and_then(|t| t.get(&value)) {
            if owner != holder {
                return Err(AllocError::in_use(format!("address {ip} on network {network}"), owner.to_string()));
            }
            return Ok(with_prefix);
        }
        self.take_addr(network, value, holder);
        Ok(with_prefix)
    }

    /// Picks a new address of one family: pools in config order, the first with room; inside a
    /// pool, the reuse-delay rule (ARCHITECTURE.md): the first free address after the pool's
    /// cursor, wrapping; retired tasks' addresses only when nothing else is free. The cursor is
    /// the last address this transaction handed out there, else the stored one, else (a store
    /// SwarmKit wrote, or a pool nothing was handed out from yet) the highest address any
    /// committed object references in the pick range.
    fn take_new(&mut self, network: &NetworkId, v6: bool, holder: &Holder) -> Result<IpNet, AllocError> {
        let alloc =
            self.net(network).and_then(|n| n.alloc).ok_or_else(|| AllocError::needs(format!("network {network}")))?;
        let empty = Taken::default();
        let taken = self.addrs.get(network).unwrap_or(&empty);
        let moved = self.cursors.get(network);
        let mut found = None;
        for (i, pool) in alloc.pools.iter().enumerate().filter(|(_, p)| p.is_v6() == v6) {
            // Addresses taken by request do not move the cursor (nor do they in libnetwork).
            let cursor = match moved.and_then(|m| m[i]) {
                Some(last) => Some(last),
                None => pool.last.or_else(|| pool.highest_claim()),
            };
            #[cfg(feature = "legacy")]
            let cursor = self.legacy_cursor(network, i, pool, taken).unwrap_or(cursor);
            if let Some(value) = pick_in_pool(pool, taken, cursor, |claims| self.state.reusable(claims)) {
                found = Some((i, pool.with_prefix(value)));
                break;
            }
        }
        let pools = alloc.pools.len();
        let Some((pool, addr)) = found else {
            let subnets: Vec<String> =
                alloc.pools.iter().filter(|p| p.is_v6() == v6).map(|p| p.subnet.to_string()).collect();
            return Err(AllocError::exhausted(format!(
                "IPv{} addresses of network {network} ({})",
                if v6 { 6 } else { 4 },
                subnets.join(", ")
            )));
        };
        let value = ip_to_u128(addr.addr());
        self.take_addr(network, value, holder);
        self.move_cursor(network, pool, pools, value);
        Ok(addr)
    }

    /// Records that `value` is the last address this transaction handed out from a pool.
    fn move_cursor(&mut self, network: &NetworkId, pool: usize, pools: usize, value: u128) {
        let cursors = self.cursors.entry(network.clone()).or_insert_with(|| vec![None; pools]);
        let previous = cursors[pool].replace(value);
        self.undo.push(Undo::Cursor(network.clone(), pool, previous));
    }

    /// Records that this transaction took `value` on `network` for `holder`.
    fn take_addr(&mut self, network: &NetworkId, value: u128, holder: &Holder) {
        match self.addrs.get_mut(network) {
            Some(taken) => taken.insert(value, holder.clone()),
            None => {
                let mut taken = Taken::default();
                taken.insert(value, holder.clone());
                self.addrs.insert(network.clone(), taken);
            }
        }
        self.undo.push(Undo::Addr(network.clone(), value));
    }

    /// Legacy flavours run without the stored cursor (the old allocator kept its cursors in
    /// memory), with the cursor the engine derived before it had one: the highest address
    /// referenced in the pick range, committed or taken in this transaction. B6: the old IPAM's
    /// serial cursor itself: the last address this engine picked in the pool since its restore,
    /// or none (the lowest free address comes next).
    #[cfg(feature = "legacy")]
    fn legacy_cursor(&self, network: &NetworkId, i: usize, pool: &Pool, taken: &Taken) -> Option<Option<u128>> {
        self.state.mode.flavour?;
        if !self.state.mode.is(crate::legacy::Flavour::B6) {
            return Some(pool.highest_claim().max(taken.last_in(pool.pick.0, pool.pick.1)));
        }
        let moved = self.cursors.get(network).and_then(|m| m[i]);
        Some(moved.or_else(|| self.state.mode.cursors.get(&(network.clone(), i)).copied()))
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

    /// Addresses for one attachment: one per address family the network has, requested ones
    /// exactly. (SwarmKit gives one address from a random pool; a dual-stack task lost a family.)
    fn attach(&mut self, network: &NetworkId, requested: &[IpAddr], holder: &Holder) -> Result<Vec<IpNet>, AllocError> {
        let alloc =
            self.net(network).and_then(|n| n.alloc).ok_or_else(|| AllocError::needs(format!("network {network}")))?;
        // Address families in the order their first subnet appears (at most two).
        let mut families = [None::<bool>; 2];
        for pool in &alloc.pools {
            if !families.contains(&Some(pool.is_v6())) {
                families[families[0].is_some() as usize] = Some(pool.is_v6());
            }
        }
        for (i, ip) in requested.iter().enumerate() {
            if requested[..i].iter().any(|other| other.is_ipv6() == ip.is_ipv6()) {
                return Err(AllocError::invalid(format!(
                    "more than one IPv{} address requested on network {network}",
                    if ip.is_ipv6() { 6 } else { 4 }
                )));
            }
            if !families.contains(&Some(ip.is_ipv6())) {
                return Err(AllocError::invalid(format!("address {ip} is outside every subnet of network {network}")));
            }
        }
        let mut addrs = Vec::with_capacity(families.iter().flatten().count());
        for v6 in families.into_iter().flatten() {
            let addr = match requested.iter().find(|ip| ip.is_ipv6() == v6) {
                Some(ip) => self.take_exact(network, *ip, holder)?,
                None => self.take_new(network, v6, holder)?,
            };
            addrs.push(addr);
        }
        Ok(addrs)
    }

    /// True when `holder` holds `ip` on `network` in committed state and nothing in this
    /// transaction took it from them. Takes nothing.
    fn holds(&self, network: &NetworkId, ip: IpAddr, holder: &Holder) -> bool {
        let Some(alloc) = self.net(network).and_then(|n| n.alloc) else { return false };
        let Placement::Usable(p) = alloc.place(ip) else { return false };
        let value = ip_to_u128(ip);
        alloc.pools[p].slots.get(&value).is_some_and(|c| c.holder() == holder)
            && self.addrs.get(network).and_then(|t| t.get(&value)).is_none_or(|h| h == holder)
    }

    /// B2 (legacy): nobody holds `ip` on `network`, in committed state or in this transaction.
    #[cfg(feature = "legacy")]
    fn unheld(&self, network: &NetworkId, ip: IpAddr) -> bool {
        let Some(alloc) = self.net(network).and_then(|n| n.alloc) else { return false };
        let Placement::Usable(p) = alloc.place(ip) else { return false };
        let value = ip_to_u128(ip);
        !alloc.pools[p].slots.contains_key(&value) && self.addrs.get(network).is_none_or(|t| !t.contains_key(&value))
    }

    /// Keeps `addrs` where `holder` still holds them (with their subnet's prefix length), replaces
    /// lost or out-of-range ones with fresh addresses of the same family. None: nothing changed.
    fn repair(
        &mut self,
        network: &NetworkId,
        addrs: &[IpNet],
        holder: &Holder,
    ) -> Result<Option<Vec<IpNet>>, AllocError> {
        let Some(alloc) = self.net(network).and_then(|n| n.alloc) else { return Ok(None) };
        if self.intact(alloc, network, addrs, holder) {
            return Ok(None);
        }
        let mut repaired = addrs.to_vec();
        let mut lost = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            if !self.holds(network, addr.addr(), holder) {
                lost.push(i);
            } else if let Placement::Usable(p) = alloc.place(addr.addr()) {
                // Still held, but stored with another prefix (its network was allocated afresh):
                // the same address with its subnet's prefix length.
                repaired[i] = alloc.pools[p].with_prefix(ip_to_u128(addr.addr()));
            }
        }
        for i in lost {
            repaired[i] = self.take_new(network, addrs[i].addr().is_ipv6(), holder)?;
        }
        Ok((repaired != addrs).then_some(repaired))
    }

    /// True when [`Tx::repair`] would change nothing: `holder` still holds every address, each
    /// stored with its subnet's prefix length. Takes nothing.
    fn intact(&self, alloc: &NetAlloc, network: &NetworkId, addrs: &[IpNet], holder: &Holder) -> bool {
        addrs.iter().all(|addr| match alloc.place(addr.addr()) {
            Placement::Usable(p) => {
                alloc.pools[p].with_prefix(ip_to_u128(addr.addr())) == *addr && self.holds(network, addr.addr(), holder)
            }
            _ => false,
        })
    }

    // ----------------------------------------------------------------------------------------
    // Networks

    /// Allocates a network: subnets (explicit, or the next default one), gateways, VXLAN ids.
    /// An allocated network is never changed (networks have no update in SwarmKit); one whose
    /// stored allocation lacks only its driver state or VXLAN ids keeps its subnets and gateways.
    pub fn allocate_network(&mut self, network: &Network) -> Result<Outcome, AllocError> {
        if self.networks.contains_key(&network.id) {
            return Ok(Outcome::Unchanged);
        }
        if let Some(entry) = self.state.networks.get(&network.id)
            && entry.usable_alloc().is_some()
        {
            return Ok(Outcome::Unchanged);
        }
        self.atomically(|tx| tx.allocate_network_inner(network))
    }

    fn allocate_network_inner(&mut self, network: &Network) -> Result<Outcome, AllocError> {
        let id = &network.id;
        let ipam_driver = self.validate_network(network)?;
        if network.scope() == DriverScope::NodeLocal {
            // SwarmKit records the driver and an empty IPAM, which older daemons expect even
            // where the manager allocates nothing.
            let mut updated = network.clone();
            updated.driver_state =
                Some(DriverConfig { name: network.driver_name().to_string(), options: spec_options(network) });
            updated.ipam = Some(Ipam::default());
            self.networks
                .insert(id.clone(), NetAlloc { pools: Few::new(), vnis: Few::new(), incomplete: None, conflict: None });
            self.push(Object::Network(updated));
            return Ok(Outcome::Updated);
        }
        let stored = self.state.networks.get(id).and_then(NetEntry::incomplete_alloc);
        let (ipam, pools, stored_vnis) = match stored {
            // Subnets, gateways and the VXLAN ids stored are claimed already, by this network.
            Some(alloc) => {
                let ipam = network.ipam.clone().expect("an incomplete allocation is a stored IPAM");
                (ipam, alloc.pools.iter().cloned().collect(), alloc.vnis.clone())
            }
            None => {
                let (configs, pools) = self.allocate_pools(network)?;
                let options = network.spec.ipam.as_ref().map(|i| i.options.clone()).unwrap_or_default();
                (Ipam { driver: ipam_driver, options, configs }, pools, Few::new())
            }
        };
        let mut options = spec_options(network);
        if let (Some(_), Some(stored)) = (stored, &network.driver_state)
            && stored.name == network.driver_name()
        {
            // Completing a stored allocation: SwarmKit lets its driver state override the spec.
            options.extend(stored.options.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let mut vnis = Few::new();
        if network.scope() == DriverScope::Overlay {
            vnis = self.allocate_vnis(network, &options, &stored_vnis, pools.len())?;
            options.insert(VXLAN_ID_LIST_OPTION.to_string(), vni_list(&vnis));
        }
        let mut updated = network.clone();
        updated.driver_state = Some(DriverConfig { name: network.driver_name().to_string(), options });
        updated.ipam = Some(ipam);
        if stored.is_none() {
            for pool in &pools {
                if let Some(gateway) = pool.gateway {
                    let value = ip_to_u128(gateway);
                    self.addrs.entry(id.clone()).or_default().insert(value, Holder::Gateway(id.clone()));
                    self.undo.push(Undo::Addr(id.clone(), value));
                }
            }
        }
        if network.is_ingress() {
            self.ingress = Some(id.clone());
        }
        self.networks.insert(id.clone(), NetAlloc { pools: pools.into(), vnis, incomplete: None, conflict: None });
        self.push(Object::Network(updated));
        Ok(Outcome::Updated)
    }

    /// Refuses what SwarmKit's control API or allocator refuses in a network spec; returns the
    /// IPAM driver name the allocation records (the spec's, or `default`).
    fn validate_network(&self, network: &Network) -> Result<String, AllocError> {
        let id = &network.id;
        let driver = network.driver_name();
        if driver.is_empty() {
            return Err(AllocError::invalid(format!("network {id} names a driver without a name")));
        }
        if !self.config().knows_network_driver(driver) {
            return Err(AllocError::invalid(format!(
                "network {id} driver {driver:?} is not known: expected one of {} or an installed plugin",
                BUILTIN_DRIVERS.join(", ")
            )));
        }
        let ipam_driver = match network.spec.ipam.as_ref().map_or("", |i| i.driver.as_str()) {
            "" => DEFAULT_IPAM_DRIVER,
            name => name,
        };
        if !self.config().knows_ipam_driver(ipam_driver) {
            return Err(AllocError::invalid(format!(
                "network {id} IPAM driver {ipam_driver:?} is not known: expected {DEFAULT_IPAM_DRIVER} or an installed plugin"
            )));
        }
        if network.is_ingress() {
            if network.scope() != DriverScope::Overlay {
                return Err(AllocError::invalid(format!(
                    "ingress network {id} uses driver {driver}; it must use overlay"
                )));
            }
            if network.spec.attachable {
                return Err(AllocError::invalid(format!("ingress network {id} cannot be attachable")));
            }
            if let Some(other) = self.ingress_allocated().filter(|other| other != id) {
                return Err(AllocError::in_use("the ingress role", format!("network {other}")));
            }
        }
        Ok(ipam_driver.to_string())
    }

    /// Subnets (the spec's, or the next default one) and gateways for a new allocation: the
    /// configs to store and their pools, holding the claims of holders that already reference
    /// the network.
    fn allocate_pools(&mut self, network: &Network) -> Result<(Vec<IpamConfig>, Vec<Pool>), AllocError> {
        let id = &network.id;
        let default_configs = [IpamConfig::default()];
        let spec_configs = match network.spec.ipam.as_ref().map_or(&[][..], |i| &i.configs[..]) {
            [] => &default_configs[..],
            configs => configs,
        };
        // Looked up once a subnet passed its checks.
        let mut references: Option<Vec<(IpAddr, Holder)>> = None;
        let mut pools: Vec<Pool> = Vec::with_capacity(spec_configs.len());
        let mut configs = Vec::with_capacity(spec_configs.len());
        for (i, spec) in spec_configs.iter().enumerate() {
            let from_default = spec.subnet.is_none();
            let subnet = match spec.subnet {
                Some(subnet) => {
                    if subnet.trunc() != subnet {
                        return Err(AllocError::invalid(format!(
                            "network {id} ipam.configs[{i}].subnet {subnet} has host bits set (expected {})",
                            subnet.trunc()
                        )));
                    }
                    if let Some(other) = pools.iter().find(|p| overlaps(&p.subnet, &subnet)) {
                        return Err(AllocError::invalid(format!(
                            "network {id} ipam.configs[{i}].subnet {subnet} overlaps its own subnet {}",
                            other.subnet
                        )));
                    }
                    if let Some((other, owner)) = self.overlap(&subnet) {
                        return Err(AllocError::in_use(
                            format!("subnet {subnet}"),
                            format!("network {owner} ({other})"),
                        ));
                    }
                    subnet
                }
                None => {
                    if spec.range.is_some() || spec.gateway.is_some() {
                        return Err(AllocError::invalid(format!(
                            "network {id} ipam.configs[{i}] has a range or gateway but no subnet"
                        )));
                    }
                    self.next_default_subnet(id)?
                }
            };
            let mut config = IpamConfig { subnet: Some(subnet), range: spec.range, gateway: spec.gateway };
            let mut pool =
                Pool::new(&config).map_err(|e| AllocError::invalid(format!("network {id} ipam.configs[{i}]: {e}")))?;
            pool.from_default = from_default;
            // Holders may already reference this network (its allocation never reached the store,
            // B11): once committed, their addresses in the new subnet are claims, so the
            // transaction must see them too.
            let state = self.state;
            for (ip, holder) in references.get_or_insert_with(|| state.references(id)).iter() {
                if matches!(pool.place(*ip), Placement::Usable(_)) {
                    pool.claim(*ip, holder.clone());
                }
            }
            if pool.gateway.is_none() {
                // The first usable address no live holder references, as libnetwork's serial
                // "gateway" request gives it.
                let value = (pool.usable.0..=pool.usable.1)
                    .find(|v| pool.slots.get(v).is_none_or(|c| c.holder().is_retired()))
                    .unwrap_or(pool.usable.0);
                let gateway = crate::index::u128_to_ip(value, pool.is_v6());
                pool.gateway = Some(gateway);
                config.gateway = Some(gateway);
            }
            let key = (pool.is_v6(), ip_to_u128(subnet.network()));
            self.subnets.insert(key, SubnetEntry { subnet, network: id.clone(), from_default });
            self.undo.push(Undo::Subnet(key));
            pools.push(pool);
            configs.push(config);
        }
        Ok((configs, pools))
    }

    /// One VXLAN id per IPAM config, whatever its family (SwarmKit hands every config to the
    /// overlay driver, as Docker never sets a config's family): those stored already, then those
    /// the driver option pins (SwarmKit reads one per config and ignores the rest), then fresh ones.
    fn allocate_vnis(
        &mut self,
        network: &Network,
        options: &BTreeMap<String, String>,
        stored: &[u32],
        configs: usize,
    ) -> Result<Few<u32>, AllocError> {
        let mut vnis: Few<u32> = stored.iter().take(configs).copied().collect();
        let pinned = match options.get(VXLAN_ID_LIST_OPTION) {
            Some(list) if stored.is_empty() => parse_vni_list(list).map_err(|e| {
                AllocError::invalid(format!("network {} driver option {VXLAN_ID_LIST_OPTION}: {e}", network.id))
            })?,
            _ => Few::new(),
        };
        for vni in pinned.iter().take(configs) {
            self.take_vni(*vni)?;
            vnis.push(*vni);
        }
        while vnis.len() < configs {
            let vni = self.take_new_vni()?;
            vnis.push(vni);
        }
        Ok(vnis)
    }

    fn overlap(&self, subnet: &IpNet) -> Option<(IpNet, NetworkId)> {
        find_overlap(&self.state.subnets, subnet)
            .or_else(|| find_overlap(&self.subnets, subnet))
            .map(|(net, owner)| (net, owner.clone()))
    }

    /// The next default subnet: the first candidate after the highest default subnet in use,
    /// wrapping, that overlaps no allocated subnet. Derived from committed state, so a new leader
    /// continues where the old one stopped (SwarmKit's cursor restarted at 10.0.0.0/24).
    fn next_default_subnet(&self, network: &NetworkId) -> Result<IpNet, AllocError> {
        let config = self.config();
        let count = config.default_subnet_count();
        let highest = self
            .state
            .subnets
            .values()
            .chain(self.subnets.values())
            .filter(|entry| entry.from_default)
            .filter_map(|entry| config.default_subnet_index(&entry.subnet))
            .max();
        let start = highest.map_or(0, |h| (h + 1) % count);
        let step = 1u128 << (32 - config.subnet_size);
        let (mut index, mut visited) = (start, 0u64);
        while visited < count {
            let candidate = config.default_subnet(index).expect("index below count");
            let Some((other, _)) = self.overlap(&candidate) else { return Ok(candidate) };
            // Skip every candidate inside the overlapping subnet at once, within this base.
            let skip = if other.contains(&candidate) {
                let inside = (ip_to_u128(other.broadcast()) - ip_to_u128(candidate.network())) / step + 1;
                (inside.min(u64::MAX as u128) as u64).min(config.default_base_end(index) - index)
            } else {
                1
            };
            visited += skip;
            index = (index + skip) % count;
        }
        Err(AllocError::exhausted(format!(
            "default address pools (no free /{} for network {network})",
            config.subnet_size
        )))
    }

    fn take_vni(&mut self, vni: u32) -> Result<(), AllocError> {
        if let Some(owner) = self.state.vnis.get(&vni) {
            return Err(AllocError::in_use(format!("VXLAN id {vni}"), format!("network {owner}")));
        }
        if !self.vnis.insert(vni) {
            return Err(AllocError::in_use(format!("VXLAN id {vni}"), "a network of this proposal"));
        }
        self.undo.push(Undo::Vni(vni));
        Ok(())
    }

    /// The first free VXLAN id after the highest one in use inside the range, wrapping.
    fn take_new_vni(&mut self) -> Result<u32, AllocError> {
        let range = self.config().vxlan_id_range;
        let used = |v: &u32| self.state.vnis.contains_key(v) || self.vnis.contains(v);
        let highest = self
            .state
            .vnis
            .range(range.min..=range.max)
            .next_back()
            .map(|(v, _)| *v)
            .max(self.vnis.range(range.min..=range.max).next_back().copied());
        let start = match highest {
            Some(h) if h < range.max => h + 1,
            _ => range.min,
        };
        let vni = (start..=range.max)
            .chain(range.min..start)
            .find(|v| !used(v))
            .ok_or_else(|| AllocError::exhausted(format!("VXLAN ids {}..={}", range.min, range.max)))?;
        self.vnis.insert(vni);
        self.undo.push(Undo::Vni(vni));
        Ok(vni)
    }

    // ----------------------------------------------------------------------------------------
    // Services

    /// Allocates a service's VIPs and ingress ports, keeping what it already holds that its spec
    /// still wants (VIPs per kept network, dynamic ports by name/protocol/target), taking the new
    /// before the old is released (the release happens when the update is committed).
    pub fn allocate_service(&mut self, service: &Service) -> Result<Outcome, AllocError> {
        if self.contains_service(&service.id) || needs_nothing(service) {
            return Ok(Outcome::Unchanged);
        }
        let endpoint = self.atomically(|tx| tx.plan_service(service, true))?.expect("planning with take=true");
        if service.endpoint.as_ref().is_some_and(|old| same_endpoint(old, &endpoint)) {
            return Ok(Outcome::Unchanged);
        }
        let mut updated = service.clone();
        updated.endpoint = Some(endpoint);
        self.service_current.insert(service.id.clone(), (service.version, true));
        self.push(Object::Service(updated));
        Ok(Outcome::Updated)
    }

    /// Computes the endpoint the service should have. With `take == false` nothing is taken and
    /// `None` means "something new would have to be allocated".
    fn plan_service(&mut self, service: &Service, take: bool) -> Result<Option<Endpoint>, AllocError> {
        let id = &service.id;
        let spec = &service.spec;
        let endpoint_spec = spec.endpoint.clone().unwrap_or_default();
        let mode = endpoint_spec.mode;
        validate_ports(id, &endpoint_spec.ports)?;
        if mode == ResolutionMode::Dnsrr && spec.needs_ingress() {
            return Err(AllocError::invalid(format!(
                "service {id} publishes ports in ingress mode with DNSRR resolution; use VIP or host-mode ports"
            )));
        }
        let holder = Holder::Vip(id.clone());
        let old = service.endpoint.as_ref();

        // VIPs: ingress first, then the spec's networks in order, once each, overlay/global only.
        let mut vips = Vec::new();
        if mode == ResolutionMode::Vip {
            let mut wanted: Vec<NetworkId> = Vec::new();
            if spec.needs_ingress() {
                let ingress = self.ingress().cloned().ok_or_else(|| AllocError::needs("the ingress network"))?;
                wanted.push(ingress);
            }
            for config in spec.attachment_configs() {
                let target = &config.target;
                let view = self.net(target).ok_or_else(|| AllocError::needs(format!("network {target}")))?;
                if Some(target) == self.ingress() && self.state.networks.get(target).is_some_and(|e| e.ingress) {
                    return Err(AllocError::invalid(format!(
                        "service {id} lists the ingress network {target}; it is added when ports are published"
                    )));
                }
                if view.scope != DriverScope::NodeLocal && !wanted.contains(target) {
                    wanted.push(target.clone());
                }
            }
            for network in wanted {
                if self.net(&network).and_then(|n| n.alloc).is_none() {
                    return Err(AllocError::needs(format!("network {network}")));
                }
                let kept = old
                    .into_iter()
                    .flat_map(|e| &e.virtual_ips)
                    .find(|vip| vip.network_id == network && self.holds(&network, vip.addr.addr(), &holder))
                    .map(|vip| vip.addr);
                #[cfg(feature = "legacy")]
                let kept = match kept {
                    Some(addr) => Some(addr),
                    None => old
                        .into_iter()
                        .flat_map(|e| &e.virtual_ips)
                        .find(|vip| {
                            vip.network_id == network
                                && self.legacy_rerequest(
                                    crate::legacy::Flavour::B2,
                                    self.unheld(&network, vip.addr.addr()),
                                )
                        })
                        .map(|vip| vip.addr),
                }
                .map(|addr| {
                    if take && !self.holds(&network, addr.addr(), &holder) {
                        self.take_exact(&network, addr.addr(), &holder).map(|_| addr)
                    } else {
                        Ok(addr)
                    }
                })
                .transpose()?;
                let addr = match kept {
                    Some(addr) => addr,
                    None if !take => return Ok(None),
                    None => self.take_new(&network, self.vip_family(&network), &holder)?,
                };
                vips.push(VirtualIp { network_id: network, addr });
            }
        }

        // Ports in the spec's order, as SwarmKit writes them when it first allocates a service
        // (a reallocation with as many ports writes host-mode and fixed ones first; stored
        // endpoints are compared regardless of order).
        let old_ports = old.map_or(&[][..], |e| &e.ports);
        let old_spec_ports = old.map_or(&[][..], |e| &e.spec.ports);
        let mut ports = endpoint_spec.ports.clone();
        let fixed_numbers: Vec<(Protocol, u16)> = ports
            .iter()
            .filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port != 0)
            .map(|p| (p.protocol, p.published_port))
            .collect();
        let fixed = |protocol: Protocol, number: u16| fixed_numbers.contains(&(protocol, number));
        for &(protocol, number) in &fixed_numbers {
            if !self.holds_port(id, protocol, number) {
                if !take {
                    return Ok(None);
                }
                self.take_port(id, protocol, number)?;
            }
        }
        let dynamic: Vec<usize> = (0..ports.len())
            .filter(|&i| ports[i].publish_mode == PublishMode::Ingress && ports[i].published_port == 0)
            .collect();
        // The old endpoint's dynamic ports: its published ingress ports that no old fixed spec
        // port explains, matched one to one, so that each is kept by at most one new port.
        let mut old_dynamic: Vec<&PortConfig> =
            old_ports.iter().filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port != 0).collect();
        for spec in old_spec_ports.iter().filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port != 0) {
            if let Some(i) =
                old_dynamic.iter().position(|p| same_port(p, spec) && p.published_port == spec.published_port)
            {
                old_dynamic.remove(i);
            }
        }
        // First every dynamic port that keeps its old number (same name, protocol and target),
        // then fresh numbers for the others.
        let mut fresh = Vec::new();
        for &k in &dynamic {
            let port = &mut ports[k];
            let sticky = old_dynamic.iter().position(|old| {
                let held = self.holds_port(id, port.protocol, old.published_port);
                #[cfg(feature = "legacy")]
                let held = held
                    || self.legacy_rerequest(
                        crate::legacy::Flavour::B8,
                        !self.state.ports.contains_key(&(port.protocol, old.published_port))
                            && !self.ports.contains_key(&(port.protocol, old.published_port)),
                    );
                same_port(old, port) && held && !fixed(port.protocol, old.published_port)
            });
            #[cfg(feature = "legacy")]
            if let Some(i) = sticky
                && take
                && !self.holds_port(id, port.protocol, old_dynamic[i].published_port)
            {
                self.take_port(id, port.protocol, old_dynamic[i].published_port)?;
            }
            match sticky {
                Some(i) => port.published_port = old_dynamic.remove(i).published_port,
                None if !take => return Ok(None),
                None => fresh.push(k),
            }
        }
        for k in fresh {
            let protocol = ports[k].protocol;
            ports[k].published_port = match self.take_dynamic_port(id, protocol) {
                Ok(number) => number,
                // A full range: an old dynamic number this service holds and no port keeps is its
                // own to reuse (SwarmKit frees a service's ports before it allocates them again).
                Err(error @ AllocError::Exhausted { .. }) => {
                    let own = old_dynamic.iter().position(|old| {
                        old.protocol == protocol
                            && !fixed(protocol, old.published_port)
                            && self.holds_port(id, protocol, old.published_port)
                    });
                    match own {
                        Some(i) => old_dynamic.remove(i).published_port,
                        None => return Err(error),
                    }
                }
                Err(error) => return Err(error),
            };
        }
        Ok(Some(Endpoint { spec: endpoint_spec, ports, virtual_ips: vips }))
    }

    fn vip_family(&self, network: &NetworkId) -> bool {
        // A VIP takes one address: IPv4 when the network has an IPv4 subnet.
        self.net(network).and_then(|n| n.alloc).is_some_and(|a| a.pools.iter().all(Pool::is_v6))
    }

    fn holds_port(&self, service: &ServiceId, protocol: Protocol, port: u16) -> bool {
        let committed = self.state.ports.get(&(protocol, port)).is_some_and(|c| c.holder() == service);
        let taken = self.ports.get(&(protocol, port));
        (committed && taken.is_none_or(|s| s == service)) || taken == Some(service)
    }

    fn take_port(&mut self, service: &ServiceId, protocol: Protocol, port: u16) -> Result<(), AllocError> {
        let what = || format!("published port {protocol}/{port}");
        if let Some(claims) = self.state.ports.get(&(protocol, port))
            && claims.holder() != service
        {
            return Err(AllocError::in_use(what(), format!("service {}", claims.holder())));
        }
        match self.ports.get(&(protocol, port)) {
            Some(owner) if owner == service => Ok(()),
            Some(owner) => Err(AllocError::in_use(what(), format!("service {owner}"))),
            None => {
                self.ports.insert((protocol, port), service.clone());
                self.undo.push(Undo::Port(protocol, port));
                Ok(())
            }
        }
    }

    /// The first free port after the highest published port in the dynamic range, wrapping.
    fn take_dynamic_port(&mut self, service: &ServiceId, protocol: Protocol) -> Result<u16, AllocError> {
        let range = self.config().dynamic_port_range;
        let highest = self
            .state
            .ports
            .range((protocol, range.min)..=(protocol, range.max))
            .next_back()
            .map(|(k, _)| k.1)
            .max(self.ports.range((protocol, range.min)..=(protocol, range.max)).next_back().map(|(k, _)| k.1));
        let start = match highest {
            Some(h) if h < range.max => h + 1,
            _ => range.min,
        };
        let free =
            |p: &u16| !self.state.ports.contains_key(&(protocol, *p)) && !self.ports.contains_key(&(protocol, *p));
        let port = (start..=range.max)
            .chain(range.min..start)
            .find(free)
            .ok_or_else(|| AllocError::exhausted(format!("dynamic {protocol} ports {}..={}", range.min, range.max)))?;
        self.take_port(service, protocol, port)?;
        Ok(port)
    }

    /// True when the service is allocated as its spec asks (tasks need this). A service whose
    /// spec is invalid makes its tasks wait (retryable) rather than fail for good.
    fn service_is_current(&mut self, service: &Service) -> Result<bool, AllocError> {
        if let Some((version, current)) = self.service_current.get(&service.id)
            && *version == service.version
        {
            return Ok(*current);
        }
        let current = match self.plan_service(service, false) {
            _ if needs_nothing(service) => true,
            Ok(Some(endpoint)) => service.endpoint.as_ref().is_some_and(|old| same_endpoint(old, &endpoint)),
            Ok(None) => false,
            Err(e) if e.is_retryable() => false,
            // The task is fine; its service must be fixed first, which a retry then picks up.
            Err(e) => return Err(AllocError::needs(format!("service {} ({e})", service.id))),
        };
        self.service_current.insert(service.id.clone(), (service.version, current));
        Ok(current)
    }

    // ----------------------------------------------------------------------------------------
    // Tasks

    /// Allocates a NEW task (desired state up to RUNNING): builds its attachments, gives each an
    /// address per address family, copies the service endpoint, and moves it to PENDING. A live
    /// task past NEW whose address was lost to a conflict gets a fresh one for that address only.
    pub fn allocate_task(&mut self, task: &Task, service: Option<&Service>) -> Result<Outcome, AllocError> {
        if !task.status.state.is_live() || self.contains_task(&task.id) {
            return Ok(Outcome::Unchanged);
        }
        let holder = Holder::Task(task.id.clone());
        if task.status.state != TaskState::New {
            return self.atomically(|tx| tx.repair_task(task, &holder));
        }
        // B5 (legacy): the old allocator allocated any task below PENDING, whatever its desired
        // state (allocator-spec.md 1.3), racing the deletion of tasks already told to stop.
        #[cfg(feature = "legacy")]
        let stopping = task.desired_state > TaskState::Running && !self.state.mode.is(crate::legacy::Flavour::B5);
        #[cfg(not(feature = "legacy"))]
        let stopping = task.desired_state > TaskState::Running;
        if stopping {
            return Ok(Outcome::Unchanged);
        }
        let service = match &task.service_id {
            None => None,
            Some(service_id) => {
                let pending = self.services.get(service_id).map(|&i| &self.updates[i]);
                // The caller's service is borrowed; one updated in this proposal is copied
                // (the proposal is written to while the task is allocated).
                let service = match pending {
                    Some(Object::Service(updated)) => Cow::Owned(updated.clone()),
                    _ => Cow::Borrowed(
                        service
                            .filter(|s| &s.id == service_id)
                            .ok_or_else(|| AllocError::needs(format!("service {service_id}")))?,
                    ),
                };
                if !self.service_is_current(&service)? {
                    return Err(AllocError::needs(format!("service {service_id}")));
                }
                Some(service)
            }
        };
        self.atomically(|tx| tx.allocate_new_task(task, service.as_deref(), &holder))
    }

    fn allocate_new_task(
        &mut self,
        task: &Task,
        service: Option<&Service>,
        holder: &Holder,
    ) -> Result<Outcome, AllocError> {
        let mut attachments = Vec::new();
        if task.networks.is_empty() {
            let ingress = service
                .filter(|s| s.spec.needs_ingress())
                .and_then(|_| self.ingress())
                .map(|id| NetworkAttachmentConfig::to(id.clone()));
            // SwarmKit's rule: the task's own networks (the orchestrator copied the service's
            // `task_networks` there), else only the service's deprecated `networks`.
            let from_spec = if task.spec.networks.is_empty() {
                service.map_or(&[][..], |s| &s.spec.networks[..])
            } else {
                &task.spec.networks
            };
            attachments.reserve(from_spec.len() + ingress.is_some() as usize);
            for config in ingress.iter().chain(from_spec) {
                self.attach_config(&mut attachments, config, holder)?;
            }
        } else {
            // Attachments already built (an attachable-network container): their addresses are requests.
            for a in &task.networks {
                let config = NetworkAttachmentConfig {
                    target: a.network_id.clone(),
                    aliases: a.aliases.clone(),
                    addresses: a.addresses.iter().map(IpNet::addr).collect(),
                    driver_attachment_opts: a.driver_attachment_opts.clone(),
                };
                self.attach_config(&mut attachments, &config, holder)?;
            }
        }
        // Built field by field: the fields replaced here are not cloned first.
        let updated = Task {
            id: task.id.clone(),
            version: task.version,
            service_id: task.service_id.clone(),
            node_id: task.node_id.clone(),
            slot: task.slot,
            spec: task.spec.clone(),
            status: TaskStatus { state: TaskState::Pending, message: PENDING_MESSAGE.to_string() },
            desired_state: task.desired_state,
            networks: attachments,
            endpoint: service.and_then(|s| s.endpoint.clone()),
        };
        self.push(Object::Task(updated));
        Ok(Outcome::Updated)
    }

    /// Adds the attachment one config asks for, unless the network is listed already. A network
    /// missing from the store makes the task wait (retryable): SwarmKit skips such a target when
    /// it first builds a task's attachments but fails once they are built; the engine waits in
    /// both cases rather than start a task without a network its spec names.
    fn attach_config(
        &mut self,
        attachments: &mut Vec<NetworkAttachment>,
        config: &NetworkAttachmentConfig,
        holder: &Holder,
    ) -> Result<(), AllocError> {
        if attachments.iter().any(|a| a.network_id == config.target) {
            return Ok(());
        }
        let Some(view) = self.net(&config.target) else {
            return Err(AllocError::needs(format!("network {} (not in the store)", config.target)));
        };
        let addresses = if view.scope == DriverScope::NodeLocal {
            // No swarm-level address; requested ones are passed through to the node.
            config.addresses.iter().map(|ip| IpNet::from(*ip)).collect()
        } else {
            self.attach(&config.target, &config.addresses, holder)?
        };
        attachments.push(NetworkAttachment {
            network_id: config.target.clone(),
            addresses,
            aliases: config.aliases.clone(),
            driver_attachment_opts: config.driver_attachment_opts.clone(),
        });
        Ok(())
    }

    fn repair_task(&mut self, task: &Task, holder: &Holder) -> Result<Outcome, AllocError> {
        let mut updated: Option<Task> = None;
        for (i, attachment) in task.networks.iter().enumerate() {
            let Some(view) = self.net(&attachment.network_id) else { continue };
            if view.scope == DriverScope::NodeLocal || attachment.addresses.is_empty() {
                continue;
            }
            if let Some(addrs) = self.repair(&attachment.network_id, &attachment.addresses, holder)? {
                updated.get_or_insert_with(|| task.clone()).networks[i].addresses = addrs;
            }
        }
        match updated {
            Some(task) => {
                self.push(Object::Task(task));
                Ok(Outcome::Updated)
            }
            None => Ok(Outcome::Unchanged),
        }
    }

    // ----------------------------------------------------------------------------------------
    // Nodes

    /// Gives a node one load-balancer attachment per network it needs (ingress, plus the overlay
    /// networks of its live tasks), keeping the ones it has as they are (with their aliases and
    /// driver options, in their order; new ones follow); attachments it no longer needs are
    /// dropped, which releases them when the update is committed. Each network is all or
    /// nothing on its own, as in SwarmKit: a network that cannot serve the node (its pools are
    /// full) is skipped, the node keeping what it had there, and the others are allocated. The
    /// error then names the first network skipped; the update of the others is in the proposal.
    pub fn allocate_node(&mut self, node: &Node) -> Result<Outcome, AllocError> {
        if self.contains_node(&node.id) {
            return Ok(Outcome::Unchanged);
        }
        let holder = Holder::NodeLb(node.id.clone());
        let mut wanted = self.state.node_wanted_networks(&node.id);
        if let Some(ingress) = self.ingress_allocated()
            && !wanted.contains(&ingress)
        {
            wanted.insert(0, ingress);
        }
        // The usual case, without building anything: the node has exactly one intact attachment
        // on each network it needs (what the loop below would keep, unchanged).
        let unchanged = node.attachments.len() == wanted.len()
            && node.attachments.iter().enumerate().all(|(i, a)| {
                wanted.contains(&a.network_id)
                    && !node.attachments[..i].iter().any(|b| b.network_id == a.network_id)
                    && !a.addresses.is_empty()
                    && self
                        .net(&a.network_id)
                        .and_then(|n| n.alloc)
                        .is_some_and(|alloc| self.intact(alloc, &a.network_id, &a.addresses, &holder))
            });
        if unchanged {
            return Ok(Outcome::Unchanged);
        }
        // The attachments it keeps, in their order, then those it needs and lacks.
        let mut order: Vec<(NetworkId, Option<&NetworkAttachment>)> = Vec::with_capacity(wanted.len());
        for a in &node.attachments {
            if wanted.contains(&a.network_id) && !order.iter().any(|(n, _)| *n == a.network_id) {
                order.push((a.network_id.clone(), Some(a)));
            }
        }
        for network in wanted {
            if !order.iter().any(|(n, _)| *n == network) {
                order.push((network, None));
            }
        }
        let mut attachments = Vec::with_capacity(order.len());
        let mut skipped = None;
        for (network, existing) in order {
            let result = self.atomically(|tx| match existing.filter(|a| !a.addresses.is_empty()) {
                Some(a) => Ok(tx.repair(&network, &a.addresses, &holder)?.unwrap_or_else(|| a.addresses.clone())),
                None => tx.attach(&network, &[], &holder),
            });
            match (result, existing) {
                (Ok(addresses), Some(a)) => attachments.push(NetworkAttachment { addresses, ..a.clone() }),
                (Ok(addresses), None) => attachments.push(NetworkAttachment {
                    network_id: network,
                    addresses,
                    aliases: Vec::new(),
                    driver_attachment_opts: BTreeMap::new(),
                }),
                (Err(error), existing) => {
                    attachments.extend(existing.cloned());
                    skipped.get_or_insert(error);
                }
            }
        }
        let outcome = if attachments == node.attachments {
            Outcome::Unchanged
        } else {
            let mut updated = node.clone();
            updated.attachments = attachments;
            self.push(Object::Node(updated));
            Outcome::Updated
        };
        match skipped {
            Some(error) => Err(error),
            None => Ok(outcome),
        }
    }

    fn push(&mut self, object: Object) {
        if let Object::Service(s) = &object {
            self.services.insert(s.id.clone(), self.updates.len());
        }
        self.updates.push(object);
        match &mut self.touched {
            Some(touched) => {
                touched.insert(self.updates.last().expect("just pushed").id());
            }
            None if self.updates.len() >= TOUCHED_HASHED_FROM => {
                self.touched = Some(self.updates.iter().map(Object::id).collect());
            }
            None => {}
        }
    }
}

/// The driver options a network's spec gives (copied only for a network that gets an update).
fn spec_options(network: &Network) -> BTreeMap<String, String> {
    network.spec.driver.as_ref().map(|d| d.options.clone()).unwrap_or_default()
}

/// A VXLAN id list as the overlay driver writes it: comma-separated, in config order.
fn vni_list(vnis: &[u32]) -> String {
    let mut list = String::with_capacity(vnis.len() * 9);
    for (i, vni) in vnis.iter().enumerate() {
        if i > 0 {
            list.push(',');
        }
        write!(list, "{vni}").expect("writing to a String");
    }
    list
}

/// Rejects port lists SwarmKit's control API would reject.
fn validate_ports(service: &ServiceId, ports: &[PortConfig]) -> Result<(), AllocError> {
    for (i, port) in ports.iter().enumerate() {
        if port.target_port == 0 {
            return Err(AllocError::invalid(format!("service {service} ports[{i}] has target port 0")));
        }
        if port.published_port == 0 {
            continue;
        }
        if let Some(j) = ports[..i]
            .iter()
            .position(|other| other.protocol == port.protocol && other.published_port == port.published_port)
        {
            return Err(AllocError::invalid(format!(
                "service {service} ports[{i}] publishes {}/{} already published by ports[{j}]",
                port.protocol, port.published_port
            )));
        }
    }
    Ok(())
}

/// A service that needs no endpoint (no network, no published port) and holds nothing: it is
/// allocated as it is, with no endpoint written, as SwarmKit leaves it (`IsServiceAllocated`).
fn needs_nothing(service: &Service) -> bool {
    !service.spec.needs_endpoint()
        && service.endpoint.as_ref().is_none_or(|e| e.virtual_ips.is_empty() && e.ports.is_empty())
}

/// Whether a stored endpoint is the planned one, comparing VIPs and published ports by what they
/// are, not by position: SwarmKit writes host-mode and fixed ports first and appends the ingress
/// VIP after the others when ports are added later.
fn same_endpoint(stored: &Endpoint, planned: &Endpoint) -> bool {
    fn sorted<T: Ord + Clone>(items: &[T]) -> Vec<T> {
        let mut items = items.to_vec();
        items.sort();
        items
    }
    stored.spec == planned.spec
        && stored.ports.len() == planned.ports.len()
        && stored.virtual_ips.len() == planned.virtual_ips.len()
        && (stored.ports == planned.ports || sorted(&stored.ports) == sorted(&planned.ports))
        && (stored.virtual_ips == planned.virtual_ips || sorted(&stored.virtual_ips) == sorted(&planned.virtual_ips))
}

fn same_port(a: &PortConfig, b: &PortConfig) -> bool {
    a.name == b.name && a.protocol == b.protocol && a.target_port == b.target_port
}

/// Addresses one transaction took on one network, sorted. Picks mostly ascend, so an insert is
/// usually a push; lookups are binary searches.
#[derive(Default)]
struct Taken(Vec<(u128, Holder)>);

impl Taken {
    fn position(&self, value: u128) -> Result<usize, usize> {
        match self.0.last() {
            Some((last, _)) if *last < value => Err(self.0.len()),
            _ => self.0.binary_search_by_key(&value, |(v, _)| *v),
        }
    }

    fn get(&self, value: &u128) -> Option<&Holder> {
        self.position(*value).ok().map(|i| &self.0[i].1)
    }

    fn contains_key(&self, value: &u128) -> bool {
        self.position(*value).is_ok()
    }

    fn insert(&mut self, value: u128, holder: Holder) {
        match self.position(value) {
            Ok(i) => self.0[i].1 = holder,
            Err(i) => self.0.insert(i, (value, holder)),
        }
    }

    fn remove(&mut self, value: &u128) {
        if let Ok(i) = self.position(*value) {
            self.0.remove(i);
        }
    }

    /// The highest taken address in `lo..=hi` (legacy flavours derive their cursor from it).
    #[cfg(feature = "legacy")]
    fn last_in(&self, lo: u128, hi: u128) -> Option<u128> {
        self.range(lo, hi).last().map(|(v, _)| *v)
    }

    /// The taken addresses in `lo..=hi`.
    fn range(&self, lo: u128, hi: u128) -> &[(u128, Holder)] {
        let start = self.0.partition_point(|(v, _)| *v < lo);
        let end = self.0.partition_point(|(v, _)| *v <= hi);
        &self.0[start..end.max(start)]
    }
}

/// The reuse-delay rule inside one pool (see [`Tx::take_new`]): the first address after
/// `cursor` (the highest address referenced in the pick range), wrapping; then the first
/// `reusable` retired address.
fn pick_in_pool(
    pool: &Pool,
    taken: &Taken,
    cursor: Option<u128>,
    reusable: impl Fn(&crate::index::Claims<Holder>) -> bool,
) -> Option<u128> {
    let (lo, hi) = pool.pick;
    let start = match cursor {
        Some(c) if c < hi => c + 1,
        _ => lo,
    };
    if !pool.slots.contains_key(&start) && !taken.contains_key(&start) {
        return Some(start);
    }
    let free = |from: u128, to: u128| first_unclaimed(pool, taken, from, to);
    if let Some(value) = free(start, hi).or_else(|| if start > lo { free(lo, start - 1) } else { None }) {
        return Some(value);
    }
    let retired = |(value, claims): (&u128, &crate::index::Claims<Holder>)| {
        (reusable(claims) && !taken.contains_key(value)).then_some(*value)
    };
    pool.slots.range(start..=hi).find_map(retired).or_else(|| pool.slots.range(lo..start).find_map(retired))
}

/// The first address in `from..=to` that no committed object and no earlier update references.
fn first_unclaimed(pool: &Pool, taken: &Taken, from: u128, to: u128) -> Option<u128> {
    let mut committed = pool.slots.range(from..=to).map(|(k, _)| *k).peekable();
    let mut pending = taken.range(from, to).iter().map(|(k, _)| *k).peekable();
    let mut candidate = from;
    loop {
        let next = match (committed.peek(), pending.peek()) {
            (Some(a), Some(b)) => Some(*a.min(b)),
            (a, b) => a.or(b).copied(),
        };
        match next {
            Some(occupied) if occupied == candidate => {
                while committed.next_if_eq(&occupied).is_some() {}
                while pending.next_if_eq(&occupied).is_some() {}
                if candidate == to {
                    return None;
                }
                candidate += 1;
            }
            _ => return Some(candidate),
        }
    }
}
