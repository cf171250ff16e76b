//! The engine's only state: an index of what committed objects claim (subnets, VXLAN ids,
//! addresses, published ports), maintained by `observe`. Every entry is a function of the set of
//! committed objects, never of the order they were seen in: each resource keeps the set of its
//! claimants and the lowest-ranked claimant holds it (see [`Holder`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::ClusterConfig;
use crate::few::Few;
use crate::ids::{NetworkId, NodeId, ServiceId, TaskId};
use crate::objects::{
    ADDRESS_CURSOR_OPTION, DriverConfig, DriverScope, Ipam, Network, Node, Object, ObjectId, ObjectRef, PublishMode,
    Service, Task, TaskState, VXLAN_ID_LIST_OPTION,
};

/// Who claims an address. The derived order is the precedence when two claim the same address:
/// the lowest holds it, the others lose (gateway, then VIPs, node LB, live tasks, then retired).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Holder {
    Gateway(NetworkId),
    Vip(ServiceId),
    NodeLb(NodeId),
    Task(TaskId),
    /// A terminal task still in the store: its address is quarantined (the reuse delay).
    Retired(TaskId),
}

impl Holder {
    pub fn is_retired(&self) -> bool {
        matches!(self, Holder::Retired(_))
    }

    /// The store object behind the claim.
    pub fn object(&self) -> ObjectId {
        match self {
            Holder::Gateway(id) => ObjectId::Network(id.clone()),
            Holder::Vip(id) => ObjectId::Service(id.clone()),
            Holder::NodeLb(id) => ObjectId::Node(id.clone()),
            Holder::Task(id) | Holder::Retired(id) => ObjectId::Task(id.clone()),
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Gateway(id) => write!(f, "gateway of network {id}"),
            Holder::Vip(id) => write!(f, "VIP of service {id}"),
            Holder::NodeLb(id) => write!(f, "load balancer of node {id}"),
            Holder::Task(id) => write!(f, "task {id}"),
            Holder::Retired(id) => write!(f, "retired task {id}"),
        }
    }
}

/// The claimants of one resource: `first` holds it, `rest` (sorted, usually empty) lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Claims<H> {
    first: H,
    rest: Vec<H>,
}

impl<H: Ord + Clone> Claims<H> {
    fn new(holder: H) -> Self {
        Claims { first: holder, rest: Vec::new() }
    }

    pub(crate) fn holder(&self) -> &H {
        &self.first
    }

    pub(crate) fn losers(&self) -> &[H] {
        &self.rest
    }

    fn add(&mut self, holder: H) {
        if holder == self.first {
            return;
        }
        let holder = if holder < self.first { std::mem::replace(&mut self.first, holder) } else { holder };
        if let Err(at) = self.rest.binary_search(&holder) {
            self.rest.insert(at, holder);
        }
    }

    /// Removes `holder`; returns true when nobody claims the resource any more.
    fn remove(&mut self, holder: &H) -> bool {
        if *holder == self.first {
            if self.rest.is_empty() {
                return true;
            }
            self.first = self.rest.remove(0);
        } else if let Ok(at) = self.rest.binary_search(holder) {
            self.rest.remove(at);
        }
        false
    }
}

fn claim<K: Ord, H: Ord + Clone>(map: &mut BTreeMap<K, Claims<H>>, key: K, holder: H) {
    match map.entry(key) {
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert(Claims::new(holder));
        }
        std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().add(holder),
    }
}

pub(crate) fn unclaim<K: Ord, H: Ord + Clone>(map: &mut BTreeMap<K, Claims<H>>, key: K, holder: &H) {
    if let std::collections::btree_map::Entry::Occupied(mut e) = map.entry(key)
        && e.get_mut().remove(holder)
    {
        e.remove();
    }
}

pub(crate) fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

pub(crate) fn u128_to_ip(value: u128, v6: bool) -> IpAddr {
    if v6 { IpAddr::V6(Ipv6Addr::from(value)) } else { IpAddr::V4(Ipv4Addr::from(value as u32)) }
}

/// One subnet of a network and the addresses claimed in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pool {
    pub(crate) subnet: IpNet,
    pub(crate) range: Option<IpNet>,
    pub(crate) gateway: Option<IpAddr>,
    /// True when the network's spec left this subnet to the default pools (it moves their cursor).
    pub(crate) from_default: bool,
    /// Usable host addresses of the subnet (network and broadcast excluded above /31, /127).
    pub(crate) usable: (u128, u128),
    /// Where new addresses are picked: the range (or subnet) intersected with `usable`.
    pub(crate) pick: (u128, u128),
    /// The stored address cursor: the last address handed out from this pool, as the network's
    /// [`ADDRESS_CURSOR_OPTION`] records it (None: never recorded, as in stores SwarmKit wrote).
    pub(crate) last: Option<u128>,
    pub(crate) slots: BTreeMap<u128, Claims<Holder>>,
}

/// Why a stored address cannot be claimed in a network's pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    Usable(usize),
    Reserved(&'static str),
    OutOfRange,
}

impl Pool {
    /// Builds a pool from an allocated IPAM config, or explains what is wrong with it.
    pub(crate) fn new(config: &crate::objects::IpamConfig) -> Result<Pool, String> {
        let subnet = config.subnet.ok_or("an allocated IPAM config has no subnet")?;
        if subnet.trunc() != subnet {
            return Err(format!("subnet {subnet} has host bits set (expected {})", subnet.trunc()));
        }
        let usable = usable_hosts(&subnet);
        let mut pick = usable;
        if let Some(range) = config.range {
            if range.trunc() != range || !subnet.contains(&range) {
                return Err(format!("range {range} is not a network inside subnet {subnet}"));
            }
            let lo = ip_to_u128(range.network()).max(usable.0);
            let hi = ip_to_u128(range.broadcast()).min(usable.1);
            if lo > hi {
                return Err(format!("range {range} holds no usable address of subnet {subnet}"));
            }
            pick = (lo, hi);
        }
        let mut pool = Pool {
            subnet,
            range: config.range,
            gateway: None,
            from_default: false,
            usable,
            pick,
            last: None,
            slots: BTreeMap::new(),
        };
        if let Some(gateway) = config.gateway {
            match pool.place(gateway) {
                Placement::Usable(_) => pool.gateway = Some(gateway),
                Placement::Reserved(what) => return Err(format!("gateway {gateway} is the {what} of {subnet}")),
                Placement::OutOfRange => return Err(format!("gateway {gateway} is outside subnet {subnet}")),
            }
        }
        Ok(pool)
    }

    pub(crate) fn is_v6(&self) -> bool {
        matches!(self.subnet, IpNet::V6(_))
    }

    pub(crate) fn place(&self, ip: IpAddr) -> Placement {
        if !self.subnet.contains(&ip) {
            return Placement::OutOfRange;
        }
        let value = ip_to_u128(ip);
        if value < self.usable.0 {
            Placement::Reserved("network address")
        } else if value > self.usable.1 {
            Placement::Reserved("broadcast address")
        } else {
            Placement::Usable(0)
        }
    }

    /// The address as stored in objects: with the subnet's prefix length.
    pub(crate) fn with_prefix(&self, value: u128) -> IpNet {
        IpNet::new(u128_to_ip(value, self.is_v6()), self.subnet.prefix_len()).expect("prefix of a valid subnet")
    }

    /// Adds a claim on a usable address of this pool.
    pub(crate) fn claim(&mut self, ip: IpAddr, holder: Holder) {
        claim(&mut self.slots, ip_to_u128(ip), holder);
    }

    /// Highest address in the pick range that any committed object references: the cursor
    /// derived for a pool without a stored one.
    pub(crate) fn highest_claim(&self) -> Option<u128> {
        // One bound to search for: the highest claim up to the range's top, if inside it.
        self.slots.range(..=self.pick.1).next_back().map(|(k, _)| *k).filter(|k| *k >= self.pick.0)
    }
}

/// First and last host address of a subnet: network and broadcast are reserved for IPv4 above /31,
/// the subnet-router anycast address (the network address) for IPv6 above /127.
pub(crate) fn usable_hosts(subnet: &IpNet) -> (u128, u128) {
    let lo = ip_to_u128(subnet.network());
    let hi = ip_to_u128(subnet.broadcast());
    match subnet {
        IpNet::V4(n) if n.prefix_len() <= 30 => (lo + 1, hi - 1),
        IpNet::V6(n) if n.prefix_len() <= 126 => (lo + 1, hi),
        _ => (lo, hi),
    }
}

/// What a committed network has been allocated, parsed from its stored `ipam` and `driver_state`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NetAlloc {
    pub(crate) pools: Few<Pool>,
    pub(crate) vnis: Few<u32>,
    /// Set when the stored allocation lacks its driver state or some of its VXLAN ids: the
    /// network keeps its stored subnets and gateways (they are claimed), and the next pass
    /// allocates only what is missing; until then it cannot be used.
    pub(crate) incomplete: Option<String>,
    /// Set when this network lost a subnet or VXLAN id to a higher-ranked network.
    pub(crate) conflict: Option<String>,
}

impl NetAlloc {
    /// The index of the pool an address belongs to.
    pub(crate) fn place(&self, ip: IpAddr) -> Placement {
        let mut reserved = None;
        for (i, pool) in self.pools.iter().enumerate() {
            match pool.place(ip) {
                Placement::Usable(_) => return Placement::Usable(i),
                Placement::Reserved(what) => reserved = Some(what),
                Placement::OutOfRange => {}
            }
        }
        reserved.map_or(Placement::OutOfRange, Placement::Reserved)
    }
}

/// A network's stored allocation (`ipam` and `driver_state`) in one buffer: equal exactly when
/// the stored values are equal (every field is written, strings and lists with their lengths),
/// without a copy of every string and map of the network. The address cursor option is left
/// out: a write that moves only the cursor is not a new allocation.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct StoredAlloc(Box<[u8]>);

impl StoredAlloc {
    fn of(ipam: &Ipam, driver: Option<&DriverConfig>) -> StoredAlloc {
        fn bytes(out: &mut Vec<u8>, s: &[u8]) {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s);
        }
        fn map<'a>(out: &mut Vec<u8>, entries: impl ExactSizeIterator<Item = (&'a String, &'a String)>) {
            out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
            for (key, value) in entries {
                bytes(out, key.as_bytes());
                bytes(out, value.as_bytes());
            }
        }
        fn net(out: &mut Vec<u8>, net: Option<IpNet>) {
            match net {
                None => out.push(0),
                Some(net) => {
                    addr(out, Some(net.addr()));
                    out.push(net.prefix_len());
                }
            }
        }
        fn addr(out: &mut Vec<u8>, ip: Option<IpAddr>) {
            match ip {
                None => out.push(0),
                Some(IpAddr::V4(a)) => {
                    out.push(4);
                    out.extend_from_slice(&a.octets());
                }
                Some(IpAddr::V6(a)) => {
                    out.push(6);
                    out.extend_from_slice(&a.octets());
                }
            }
        }
        let ipam_options: Vec<(&String, &String)> =
            ipam.options.iter().filter(|(key, _)| *key != ADDRESS_CURSOR_OPTION).collect();
        let mut out = Vec::new();
        bytes(&mut out, ipam.driver.as_bytes());
        map(&mut out, ipam_options.into_iter());
        out.extend_from_slice(&(ipam.configs.len() as u64).to_le_bytes());
        for config in &ipam.configs {
            net(&mut out, config.subnet);
            net(&mut out, config.range);
            addr(&mut out, config.gateway);
        }
        match driver {
            None => out.push(0),
            Some(driver) => {
                out.push(1);
                bytes(&mut out, driver.name.as_bytes());
                map(&mut out, driver.options.iter());
            }
        }
        StoredAlloc(out.into_boxed_slice())
    }
}

impl fmt::Debug for StoredAlloc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoredAlloc(")?;
        for byte in self.0.iter() {
            write!(f, "{byte:02x}")?;
        }
        f.write_str(")")
    }
}

/// The committed network object itself, kept so that a transaction can write the network's
/// address cursors back (a cursor move is an update of the network). Equality ignores the store
/// version: an engine that committed the network equals one restored from the store, which
/// versioned the write.
#[derive(Clone)]
pub(crate) struct Committed(Box<Network>);

impl Committed {
    pub(crate) fn network(&self) -> &Network {
        &self.0
    }
}

impl PartialEq for Committed {
    fn eq(&self, other: &Committed) -> bool {
        let (a, b) = (&*self.0, &*other.0);
        a.id == b.id && a.spec == b.spec && a.ipam == b.ipam && a.driver_state == b.driver_state
    }
}

impl Eq for Committed {}

impl fmt::Debug for Committed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Committed({})", self.0.id)
    }
}

/// A committed network as the index sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NetEntry {
    pub(crate) scope: DriverScope,
    pub(crate) ingress: bool,
    /// `Ok` when the stored allocation is valid, `Err` explains why it is not. Boxed so that
    /// the entry stays small: a node of the networks map then fits the allocator's fast path.
    pub(crate) alloc: Option<Result<Box<NetAlloc>, String>>,
    pub(crate) network: Committed,
    /// The stored allocation, exactly as committed (compared to tell whether pools must be
    /// rebuilt). Last, so that `Allocator::diff` of two entries shows the parsed pools first
    /// rather than this encoding.
    stored: Option<StoredAlloc>,
}

impl NetEntry {
    fn of(network: &Network, config: &ClusterConfig) -> NetEntry {
        let (stored, alloc) = match &network.ipam {
            Some(ipam) => {
                let driver = network.driver_state.as_ref();
                (Some(StoredAlloc::of(ipam, driver)), Some(parse_alloc(network, ipam, driver, config)))
            }
            None => (None, None),
        };
        NetEntry {
            scope: network.scope(),
            ingress: network.is_ingress(),
            network: Committed(Box::new(network.clone())),
            stored,
            alloc,
        }
    }

    /// The pool of a valid stored allocation that `ip` is a usable address of.
    fn pool_of(&mut self, ip: IpAddr) -> Option<&mut Pool> {
        let Some(Ok(alloc)) = &mut self.alloc else { return None };
        match alloc.place(ip) {
            Placement::Usable(i) => Some(&mut alloc.pools[i]),
            _ => None,
        }
    }

    /// The allocation, when it is valid, complete and won every conflict: only then may it be used.
    pub(crate) fn usable_alloc(&self) -> Option<&NetAlloc> {
        match &self.alloc {
            Some(Ok(alloc)) if alloc.conflict.is_none() && alloc.incomplete.is_none() => Some(alloc),
            _ => None,
        }
    }

    /// The stored allocation when it is valid and won every conflict but lacks its driver state
    /// or VXLAN ids: the next allocation keeps its subnets and gateways.
    pub(crate) fn incomplete_alloc(&self) -> Option<&NetAlloc> {
        match &self.alloc {
            Some(Ok(alloc)) if alloc.conflict.is_none() && alloc.incomplete.is_some() => Some(alloc),
            _ => None,
        }
    }
}

/// Parses a network's stored allocation. A stored IPAM without driver state, or an overlay
/// network with fewer or more VXLAN ids than IPAM configs, is valid but incomplete (SwarmKit
/// allocates what is missing and keeps the rest); what can never be used is an error.
fn parse_alloc(
    network: &Network,
    ipam: &Ipam,
    driver: Option<&DriverConfig>,
    config: &ClusterConfig,
) -> Result<Box<NetAlloc>, String> {
    let name = network.driver_name();
    if !config.knows_network_driver(name) {
        return Err(format!("network driver {name:?} is not known"));
    }
    // SwarmKit records an empty IPAM driver name for node-local networks.
    if !ipam.driver.is_empty() && !config.knows_ipam_driver(&ipam.driver) {
        return Err(format!("IPAM driver {:?} is not known", ipam.driver));
    }
    let mut pools = Few::new();
    for (i, config) in ipam.configs.iter().enumerate() {
        let mut pool = Pool::new(config).map_err(|e| format!("ipam.configs[{i}]: {e}"))?;
        let spec_configs = network.spec.ipam.as_ref().map_or(&[][..], |ipam| &ipam.configs);
        pool.from_default = spec_configs.get(i).is_none_or(|c| c.subnet.is_none());
        if let Some(other) = pools.iter().position(|p: &Pool| overlaps(&p.subnet, &pool.subnet)) {
            return Err(format!("ipam.configs[{i}] subnet {} overlaps ipam.configs[{other}]", pool.subnet));
        }
        pools.push(pool);
    }
    let scope = network.scope();
    if scope == DriverScope::NodeLocal && !pools.is_empty() {
        return Err(format!("node-local driver {} has IPAM configs", network.driver_name()));
    }
    if scope != DriverScope::NodeLocal && pools.is_empty() {
        return Err(format!("driver {} has no IPAM config", network.driver_name()));
    }
    if let Some(list) = ipam.options.get(ADDRESS_CURSOR_OPTION) {
        read_cursors(&mut pools, list);
    }
    let mut vnis = match driver.and_then(|d| d.options.get(VXLAN_ID_LIST_OPTION)) {
        Some(list) => parse_vni_list(list).map_err(|e| format!("driver_state option {VXLAN_ID_LIST_OPTION}: {e}"))?,
        None => Few::new(),
    };
    let mut incomplete = driver.is_none().then(|| "no driver state is stored".to_string());
    if scope == DriverScope::Overlay && incomplete.is_none() && vnis.len() != pools.len() {
        incomplete = Some(format!("{} VXLAN ids are stored for {} IPAM configs", vnis.len(), pools.len()));
    }
    if scope == DriverScope::Overlay && vnis.len() > pools.len() {
        // SwarmKit's overlay driver reads one id per config and drops the rest.
        vnis = vnis.iter().take(pools.len()).copied().collect();
    }
    Ok(Box::new(NetAlloc { pools, vnis, incomplete, conflict: None }))
}

/// Sets each pool's stored cursor from an [`ADDRESS_CURSOR_OPTION`] value (one entry per pool,
/// in config order). An entry that is empty, not an address, or outside its pool's pick range
/// leaves that pool without a stored cursor: the engine then derives one, as for SwarmKit's stores.
fn read_cursors(pools: &mut [Pool], list: &str) {
    for (pool, item) in pools.iter_mut().zip(list.split(',')) {
        pool.last = item
            .trim()
            .parse::<IpAddr>()
            .ok()
            .filter(|ip| ip.is_ipv6() == pool.is_v6())
            .map(ip_to_u128)
            .filter(|value| (pool.pick.0..=pool.pick.1).contains(value));
    }
}

/// The [`ADDRESS_CURSOR_OPTION`] value for these cursors (one per pool), or None when no pool has one.
pub(crate) fn write_cursors(pools: &[Pool], cursors: impl Iterator<Item = Option<u128>>) -> Option<String> {
    let items: Vec<String> = pools
        .iter()
        .zip(cursors)
        .map(|(pool, cursor)| cursor.map(|value| u128_to_ip(value, pool.is_v6()).to_string()).unwrap_or_default())
        .collect();
    items.iter().any(|item| !item.is_empty()).then(|| items.join(","))
}

/// Parses a comma-separated VXLAN id list: items trimmed, empty ones skipped, each a `u32` in
/// range, none twice.
pub(crate) fn parse_vni_list(list: &str) -> Result<Few<u32>, String> {
    let mut vnis = Few::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let vni: u32 = item.parse().map_err(|_| format!("{item:?} is not a number"))?;
        if vni == 0 || vni > crate::config::VXLAN_ID_MAX {
            return Err(format!("{vni} is outside 1..=16777215"));
        }
        if vnis.contains(&vni) {
            return Err(format!("{vni} is listed twice"));
        }
        vnis.push(vni);
    }
    Ok(vnis)
}

pub(crate) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

/// A subnet in the overlap index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SubnetEntry {
    pub(crate) subnet: IpNet,
    pub(crate) network: NetworkId,
    pub(crate) from_default: bool,
}

/// The resources one service holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ServiceEntry {
    pub(crate) vips: Few<(NetworkId, IpNet)>,
    pub(crate) ports: Few<(crate::objects::Protocol, u16)>,
}

/// The addresses one task holds (or, when retired, keeps in quarantine).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskEntry {
    pub(crate) retired: bool,
    /// ORPHANED: the manager ended the task without its agent (the node is down), so its
    /// container may still run; its addresses are never handed out again while it exists.
    pub(crate) orphaned: bool,
    pub(crate) node: Option<NodeId>,
    pub(crate) addrs: Few<(NetworkId, IpNet)>,
}

impl TaskEntry {
    /// Who claims the addresses of task `id`: the task, or the task in quarantine once retired.
    pub(crate) fn holder(&self, id: &TaskId) -> Holder {
        if self.retired { Holder::Retired(id.clone()) } else { Holder::Task(id.clone()) }
    }
}

/// Everything the engine knows. `PartialEq` is the "engine equals restore" check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct State {
    /// Shared with the engines rebuilt from this one's store (it is their input, not state).
    pub(crate) config: Arc<ClusterConfig>,
    pub(crate) networks: BTreeMap<NetworkId, NetEntry>,
    /// Winning subnets by (address family, first address): the overlap index.
    pub(crate) subnets: BTreeMap<(bool, u128), SubnetEntry>,
    /// Winning VXLAN ids.
    pub(crate) vnis: BTreeMap<u32, NetworkId>,
    pub(crate) ingress: Option<NetworkId>,
    pub(crate) ports: BTreeMap<(crate::objects::Protocol, u16), Claims<ServiceId>>,
    pub(crate) services: BTreeMap<ServiceId, ServiceEntry>,
    pub(crate) tasks: BTreeMap<TaskId, TaskEntry>,
    pub(crate) nodes: BTreeMap<NodeId, Few<(NetworkId, IpNet)>>,
    /// For each node, how many live tasks on it are attached to each network.
    pub(crate) node_needs: BTreeMap<NodeId, BTreeMap<NetworkId, u32>>,
    /// The legacy flavour this engine runs (last, so that dumps of two engines differ first
    /// where their claims do; equality ignores it).
    #[cfg(feature = "legacy")]
    pub(crate) mode: crate::legacy::Mode,
}

impl State {
    pub(crate) fn new(config: Arc<ClusterConfig>) -> State {
        State {
            config,
            networks: BTreeMap::new(),
            subnets: BTreeMap::new(),
            vnis: BTreeMap::new(),
            ingress: None,
            ports: BTreeMap::new(),
            services: BTreeMap::new(),
            tasks: BTreeMap::new(),
            nodes: BTreeMap::new(),
            node_needs: BTreeMap::new(),
            #[cfg(feature = "legacy")]
            mode: Default::default(),
        }
    }

    pub(crate) fn observe(&mut self, object: ObjectRef<'_>) {
        self.observe_batch(std::iter::once(object));
    }

    /// Mirrors committed objects; the network ranking is settled once for the whole batch.
    pub(crate) fn observe_batch<'a>(&mut self, objects: impl IntoIterator<Item = ObjectRef<'a>>) {
        let mut networks_changed = false;
        for object in objects {
            match object {
                ObjectRef::Network(n) => networks_changed |= self.observe_network(n),
                ObjectRef::Service(s) => self.observe_service(s),
                ObjectRef::Task(t) => {
                    self.forget_task(&t.id);
                    self.observe_task(t);
                }
                ObjectRef::Node(n) => self.observe_node(n),
            }
        }
        if networks_changed {
            self.resolve_networks();
        }
    }

    pub(crate) fn observe_deleted(&mut self, id: &ObjectId) {
        match id {
            ObjectId::Network(id) => {
                if self.networks.remove(id).is_some() {
                    self.resolve_networks();
                }
            }
            ObjectId::Service(id) => self.forget_service(id),
            ObjectId::Task(id) => self.forget_task(id),
            ObjectId::Node(id) => self.forget_node(id),
        }
    }

    /// Restore's entry point: networks first so that every other claim finds its pool.
    pub(crate) fn observe_all<'a>(&mut self, objects: impl IntoIterator<Item = ObjectRef<'a>>) {
        let objects = objects.into_iter();
        // Sized once: growing these by doubling reallocated them several times per restore.
        let mut rest = Vec::with_capacity(objects.size_hint().0);
        for object in objects {
            match object {
                ObjectRef::Network(n) => {
                    let mut entry = NetEntry::of(n, &self.config);
                    if let Some(Ok(alloc)) = &mut entry.alloc {
                        claim_gateways(&n.id, alloc);
                    }
                    self.networks.insert(n.id.clone(), entry);
                }
                other => rest.push(other),
            }
        }
        self.resolve_networks();
        // Every holder is new here: nothing to forget first.
        // Sized to the tasks, not to all objects: a small store's buffer then stays small enough
        // for the allocator's fast path.
        let mut tasks = Vec::with_capacity(rest.iter().filter(|o| matches!(o, ObjectRef::Task(_))).count());
        for object in rest {
            match object {
                ObjectRef::Service(s) => self.observe_service(s),
                ObjectRef::Task(t) => {
                    if let Some(entry) = self.task_entry(t) {
                        tasks.push((t.id.clone(), entry));
                    }
                }
                ObjectRef::Node(n) => self.observe_node(n),
                ObjectRef::Network(_) => unreachable!("networks were taken out above"),
            }
        }
        // The tasks' address claims, made last: a claim is a set insert, so the order does not
        // matter (services and nodes only ever remove their own holders). Networks are looked
        // up by hash here, one lookup per address (membership only, never iterated).
        let mut networks = NetworkLookup::new(&mut self.networks);
        for (id, entry) in &tasks {
            let holder = entry.holder(id);
            for (network, ip) in &entry.addrs {
                if let Some(pool) = networks.get_mut(network).and_then(|n| n.pool_of(ip.addr())) {
                    claim(&mut pool.slots, ip_to_u128(ip.addr()), holder.clone());
                }
            }
        }
        if self.node_needs.is_empty() && tasks.len() >= 64 {
            self.node_needs = node_needs_of(&tasks);
        } else {
            for (_, entry) in &tasks {
                self.count_needs(entry);
            }
        }
        // One sort (a store lists its tasks in id order already) and a bulk build instead of
        // an insert per task; of equal ids the last wins, as it does with inserts.
        if self.tasks.is_empty() {
            self.tasks = tasks.into_iter().collect();
        } else {
            self.tasks.extend(tasks);
        }
    }

    /// Returns true when the network ranking must be settled again.
    fn observe_network(&mut self, network: &Network) -> bool {
        let mut entry = NetEntry::of(network, &self.config);
        if let Some(old) = self.networks.get_mut(&network.id)
            && old.stored == entry.stored
        {
            // The same allocation, at most with moved address cursors (the write each pass that
            // hands out addresses makes): updated in place, without rebuilding the pools or
            // looking for the network's holders.
            let ranking_changed = old.scope != entry.scope || old.ingress != entry.ingress;
            if let (Some(Ok(old_alloc)), Some(Ok(new_alloc))) = (&mut old.alloc, &entry.alloc) {
                for (pool, new) in old_alloc.pools.iter_mut().zip(new_alloc.pools.iter()) {
                    pool.last = new.last;
                }
            }
            old.scope = entry.scope;
            old.ingress = entry.ingress;
            old.network = entry.network;
            return ranking_changed;
        }
        if let Some(Ok(alloc)) = &mut entry.alloc {
            claim_gateways(&network.id, alloc);
        }
        self.networks.insert(network.id.clone(), entry);
        self.reclaim_network(&network.id);
        true
    }

    /// Re-adds the claims of every holder on a network whose pools were just (re)built.
    fn reclaim_network(&mut self, network: &NetworkId) {
        for (ip, holder) in self.references(network) {
            self.claim_addr(network, ip, holder);
        }
    }

    /// Every address that committed holders reference on `network`, whether or not it has pools
    /// that contain them. This scans all holders: it runs only when a network's allocation changes.
    pub(crate) fn references(&self, network: &NetworkId) -> Vec<(IpAddr, Holder)> {
        let mut refs = Vec::new();
        for (id, entry) in &self.services {
            refs.extend(
                entry.vips.iter().filter(|(n, _)| n == network).map(|(_, ip)| (ip.addr(), Holder::Vip(id.clone()))),
            );
        }
        for (id, entry) in &self.tasks {
            let holder = entry.holder(id);
            refs.extend(entry.addrs.iter().filter(|(n, _)| n == network).map(|(_, ip)| (ip.addr(), holder.clone())));
        }
        for (id, addrs) in &self.nodes {
            refs.extend(
                addrs.iter().filter(|(n, _)| n == network).map(|(_, ip)| (ip.addr(), Holder::NodeLb(id.clone()))),
            );
        }
        refs
    }

    /// Decides which networks hold their stored subnets and VXLAN ids: in rank order (ingress
    /// first, then by id), a network keeps its allocation unless a subnet overlaps or a VXLAN id
    /// equals one of a network ranked before it. The result depends only on the set of networks.
    fn resolve_networks(&mut self) {
        self.subnets.clear();
        self.vnis.clear();
        let mut ingress_allocated = None;
        let mut ingress_any = None;
        // Rank order: ingress networks first, then the rest, each by id (the map's order), so
        // no id is sorted, cloned or looked up again.
        for ingress_pass in [true, false] {
            for (id, entry) in self.networks.iter_mut().filter(|(_, e)| e.ingress == ingress_pass) {
                if entry.ingress && ingress_any.is_none() {
                    ingress_any = Some(id.clone());
                }
                let Some(Ok(alloc)) = &mut entry.alloc else { continue };
                alloc.conflict = None;
                for pool in &alloc.pools {
                    if let Some((other, owner)) = find_overlap(&self.subnets, &pool.subnet) {
                        alloc.conflict = Some(format!("subnet {} overlaps {other} of network {owner}", pool.subnet));
                        break;
                    }
                }
                if alloc.conflict.is_none()
                    && let Some((vni, owner)) = alloc.vnis.iter().find_map(|v| self.vnis.get(v).map(|o| (*v, o)))
                {
                    alloc.conflict = Some(format!("VXLAN id {vni} is held by network {owner}"));
                }
                if alloc.conflict.is_some() {
                    continue;
                }
                for pool in &alloc.pools {
                    let key = (pool.is_v6(), ip_to_u128(pool.subnet.network()));
                    let entry =
                        SubnetEntry { subnet: pool.subnet, network: id.clone(), from_default: pool.from_default };
                    self.subnets.insert(key, entry);
                }
                for vni in &alloc.vnis {
                    self.vnis.insert(*vni, id.clone());
                }
                if entry.ingress && ingress_allocated.is_none() {
                    ingress_allocated = Some(id.clone());
                }
            }
        }
        self.ingress = ingress_allocated.or(ingress_any);
    }

    fn observe_service(&mut self, service: &Service) {
        self.forget_service(&service.id);
        let Some(endpoint) = &service.endpoint else { return };
        let holder = Holder::Vip(service.id.clone());
        let mut entry = ServiceEntry::default();
        for vip in &endpoint.virtual_ips {
            self.claim_addr(&vip.network_id, vip.addr.addr(), holder.clone());
            entry.vips.push((vip.network_id.clone(), vip.addr));
        }
        for port in &endpoint.ports {
            if port.publish_mode == PublishMode::Ingress && port.published_port != 0 {
                let key = (port.protocol, port.published_port);
                if !entry.ports.contains(&key) {
                    claim(&mut self.ports, key, service.id.clone());
                    entry.ports.push(key);
                }
            }
        }
        if !entry.vips.is_empty() || !entry.ports.is_empty() {
            self.services.insert(service.id.clone(), entry);
        }
    }

    fn forget_service(&mut self, id: &ServiceId) {
        let Some(entry) = self.services.remove(id) else { return };
        let holder = Holder::Vip(id.clone());
        for (network, ip) in &entry.vips {
            self.unclaim_addr(network, ip.addr(), &holder);
        }
        for &key in entry.ports.iter() {
            unclaim(&mut self.ports, key, id);
        }
    }

    /// Adds a task's claims; the caller has forgotten its previous ones.
    fn observe_task(&mut self, task: &Task) {
        if let Some(entry) = self.task_entry(task) {
            self.count_needs(&entry);
            let holder = entry.holder(&task.id);
            for (network, ip) in &entry.addrs {
                self.claim_addr(network, ip.addr(), holder.clone());
            }
            self.tasks.insert(task.id.clone(), entry);
        }
    }

    /// A task's entry for `tasks` (None: it holds nothing); the caller counts it in
    /// `node_needs` and claims its addresses.
    fn task_entry(&self, task: &Task) -> Option<TaskEntry> {
        let addrs: Few<(NetworkId, IpNet)> =
            task.networks.iter().flat_map(|a| a.addresses.iter().map(|net| (a.network_id.clone(), *net))).collect();
        if addrs.is_empty() {
            return None;
        }
        let retired = !task.status.state.is_live();
        #[cfg(feature = "legacy")]
        if retired && self.mode.is(crate::legacy::Flavour::B6) {
            // B6: freed on status alone; the container may still run.
            return None;
        }
        let orphaned = task.status.state == TaskState::Orphaned;
        Some(TaskEntry { retired, orphaned, node: task.node_id.clone(), addrs })
    }

    /// Counts a live task's networks for its node.
    fn count_needs(&mut self, entry: &TaskEntry) {
        if let (false, Some(node)) = (entry.retired, &entry.node) {
            let needs = self.node_needs.entry(node.clone()).or_default();
            for network in distinct_networks(&entry.addrs) {
                *needs.entry(network.clone()).or_default() += 1;
            }
        }
    }

    fn forget_task(&mut self, id: &TaskId) {
        let Some(entry) = self.tasks.remove(id) else { return };
        let holder = entry.holder(id);
        for (network, ip) in &entry.addrs {
            self.unclaim_addr(network, ip.addr(), &holder);
        }
        #[cfg(feature = "legacy")]
        if self.mode.is(crate::legacy::Flavour::B4) && entry.addrs.iter().any(|(n, _)| !self.networks.contains_key(n)) {
            // B4: `IsTaskAllocated` is false when one of the task's networks is unknown, so
            // nothing is freed: the claims stay, held by nobody in the store.
            for (network, ip) in &entry.addrs {
                self.claim_addr(network, ip.addr(), holder.clone());
            }
        }
        if let (false, Some(node)) = (entry.retired, &entry.node) {
            let needs = self.node_needs.get_mut(node).expect("a live task on a node counted its networks");
            for network in distinct_networks(&entry.addrs) {
                let count = needs.get_mut(network).expect("counted when observed");
                *count -= 1;
                if *count == 0 {
                    needs.remove(network);
                }
            }
            if needs.is_empty() {
                self.node_needs.remove(node);
            }
        }
    }

    fn observe_node(&mut self, node: &Node) {
        self.forget_node(&node.id);
        let addrs: Few<(NetworkId, IpNet)> =
            node.attachments.iter().flat_map(|a| a.addresses.iter().map(|net| (a.network_id.clone(), *net))).collect();
        if addrs.is_empty() {
            return;
        }
        let holder = Holder::NodeLb(node.id.clone());
        for (network, ip) in &addrs {
            self.claim_addr(network, ip.addr(), holder.clone());
        }
        self.nodes.insert(node.id.clone(), addrs);
    }

    fn forget_node(&mut self, id: &NodeId) {
        let Some(addrs) = self.nodes.remove(id) else { return };
        let holder = Holder::NodeLb(id.clone());
        for (network, ip) in &addrs {
            self.unclaim_addr(network, ip.addr(), &holder);
        }
    }

    fn pool_of(&mut self, network: &NetworkId, ip: IpAddr) -> Option<&mut Pool> {
        self.networks.get_mut(network)?.pool_of(ip)
    }

    fn claim_addr(&mut self, network: &NetworkId, ip: IpAddr, holder: Holder) {
        if let Some(pool) = self.pool_of(network, ip) {
            claim(&mut pool.slots, ip_to_u128(ip), holder);
        }
    }

    pub(crate) fn unclaim_addr(&mut self, network: &NetworkId, ip: IpAddr, holder: &Holder) {
        if let Some(pool) = self.pool_of(network, ip) {
            unclaim(&mut pool.slots, ip_to_u128(ip), holder);
        }
    }

    /// Whether a claimed address may be handed out again: only when every claimant is a retired
    /// task whose agent reported it stopped (not one the manager ORPHANED).
    pub(crate) fn reusable(&self, claims: &Claims<Holder>) -> bool {
        std::iter::once(claims.holder()).chain(claims.losers()).all(|holder| match holder {
            Holder::Retired(task) => self.tasks.get(task).is_none_or(|entry| !entry.orphaned),
            _ => false,
        })
    }

    /// Who holds `ip` on `network`, if anyone.
    pub(crate) fn holder_of(&self, network: &NetworkId, ip: IpAddr) -> Option<&Holder> {
        let alloc = self.networks.get(network)?.alloc.as_ref()?.as_ref().ok()?;
        let Placement::Usable(i) = alloc.place(ip) else { return None };
        alloc.pools[i].slots.get(&ip_to_u128(ip)).map(Claims::holder)
    }

    /// The networks a node needs a load-balancer address on: the ingress plus every allocated
    /// `overlay` network that a live task on the node is attached to, sorted by id, ingress first.
    pub(crate) fn node_wanted_networks(&self, node: &NodeId) -> Vec<NetworkId> {
        let mut wanted = Vec::new();
        if let Some(ingress) = &self.ingress
            && self.networks.get(ingress).and_then(NetEntry::usable_alloc).is_some()
        {
            wanted.push(ingress.clone());
        }
        for network in self.node_needs.get(node).into_iter().flat_map(BTreeMap::keys) {
            let Some(entry) = self.networks.get(network) else { continue };
            if entry.scope == DriverScope::Overlay && entry.usable_alloc().is_some() && !wanted.contains(network) {
                wanted.push(network.clone());
            }
        }
        wanted
    }
}

/// From how many networks restore looks them up by hash ([`NetworkLookup`], and the findings):
/// below it, the ordered map is as fast.
pub(crate) const NETWORKS_HASHED_FROM: usize = 32;

/// Networks by id for many lookups in a row: by hash when there are many (string comparisons
/// down an ordered map dominated restore), else the map itself. Lookups only.
pub(crate) enum NetworkLookup<'a, T> {
    Map(&'a mut BTreeMap<NetworkId, T>),
    Hashed(HashMap<&'a NetworkId, &'a mut T, BuildHasherDefault<Fnv>>),
}

impl<'a, T> NetworkLookup<'a, T> {
    pub(crate) fn new(map: &'a mut BTreeMap<NetworkId, T>) -> Self {
        if map.len() < NETWORKS_HASHED_FROM {
            return NetworkLookup::Map(map);
        }
        NetworkLookup::Hashed(map.iter_mut().collect())
    }

    pub(crate) fn get_mut(&mut self, id: &NetworkId) -> Option<&mut T> {
        match self {
            NetworkLookup::Map(map) => map.get_mut(id),
            NetworkLookup::Hashed(map) => map.get_mut(id).map(|entry| &mut **entry),
        }
    }
}

/// FNV-1a: a fast hash for short string ids, in sets and maps that are only asked membership.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for byte in bytes {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

fn claim_gateways(network: &NetworkId, alloc: &mut NetAlloc) {
    for pool in &mut alloc.pools {
        if let Some(gateway) = pool.gateway {
            claim(&mut pool.slots, ip_to_u128(gateway), Holder::Gateway(network.clone()));
        }
    }
}

/// `node_needs` of many tasks at once (restore): each distinct node and network id is hashed
/// once to a number and sorted once, instead of an ordered-map search by string per task. The
/// counts are those [`State::count_needs`] makes task by task.
fn node_needs_of(tasks: &[(TaskId, TaskEntry)]) -> BTreeMap<NodeId, BTreeMap<NetworkId, u32>> {
    type Numbering<'a, K> = HashMap<&'a K, u32, BuildHasherDefault<Fnv>>;
    fn number<'a, K: Eq + std::hash::Hash>(ids: &mut Numbering<'a, K>, list: &mut Vec<&'a K>, id: &'a K) -> u32 {
        *ids.entry(id).or_insert_with(|| {
            list.push(id);
            (list.len() - 1) as u32
        })
    }
    /// rank[number] = position of the id in sorted order (the ids are distinct).
    fn ranks<K: Ord>(list: &[&K]) -> Vec<u32> {
        let mut order: Vec<u32> = (0..list.len() as u32).collect();
        order.sort_unstable_by(|a, b| list[*a as usize].cmp(list[*b as usize]));
        let mut rank = vec![0; list.len()];
        for (r, number) in order.into_iter().enumerate() {
            rank[number as usize] = r as u32;
        }
        rank
    }
    let (mut node_ids, mut nodes) = (Numbering::<NodeId>::default(), Vec::new());
    let (mut network_ids, mut networks) = (Numbering::<NetworkId>::default(), Vec::new());
    let mut pairs = Vec::new();
    for (_, entry) in tasks {
        let (false, Some(node)) = (entry.retired, &entry.node) else { continue };
        let node = number(&mut node_ids, &mut nodes, node);
        for network in distinct_networks(&entry.addrs) {
            pairs.push((node, number(&mut network_ids, &mut networks, network)));
        }
    }
    let (node_rank, network_rank) = (ranks(&nodes), ranks(&networks));
    let mut node_at = vec![0; nodes.len()];
    for (number, rank) in node_rank.iter().enumerate() {
        node_at[*rank as usize] = number;
    }
    let mut network_at = vec![0; networks.len()];
    for (number, rank) in network_rank.iter().enumerate() {
        network_at[*rank as usize] = number;
    }
    let mut ranked: Vec<(u32, u32)> =
        pairs.into_iter().map(|(n, k)| (node_rank[n as usize], network_rank[k as usize])).collect();
    ranked.sort_unstable();
    let mut out = BTreeMap::new();
    for per_node in ranked.chunk_by(|a, b| a.0 == b.0) {
        let needs: BTreeMap<NetworkId, u32> = per_node
            .chunk_by(|a, b| a.1 == b.1)
            .map(|same| (networks[network_at[same[0].1 as usize]].clone(), same.len() as u32))
            .collect();
        out.insert(nodes[node_at[per_node[0].0 as usize]].clone(), needs);
    }
    out
}

fn distinct_networks(addrs: &[(NetworkId, IpNet)]) -> impl Iterator<Item = &NetworkId> {
    addrs.iter().enumerate().filter(|(i, (n, _))| !addrs[..*i].iter().any(|(m, _)| m == n)).map(|(_, (n, _))| n)
}

/// A winning subnet that overlaps `subnet`, if any. Winning subnets never overlap each other, so
/// the only one that can contain `subnet` is its predecessor by first address.
pub(crate) fn find_overlap<'a>(
    subnets: &'a BTreeMap<(bool, u128), SubnetEntry>,
    subnet: &IpNet,
) -> Option<(IpNet, &'a NetworkId)> {
    let v6 = matches!(subnet, IpNet::V6(_));
    let lo = ip_to_u128(subnet.network());
    let hi = ip_to_u128(subnet.broadcast());
    if let Some((_, entry)) = subnets.range(..=(v6, lo)).next_back()
        && entry.subnet.contains(subnet)
        && matches!(entry.subnet, IpNet::V6(_)) == v6
    {
        return Some((entry.subnet, &entry.network));
    }
    subnets.range((v6, lo)..=(v6, hi)).next().map(|(_, entry)| (entry.subnet, &entry.network))
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

/// Every address claimed on every network, with its claimants: for checkers and reports.
pub(crate) fn claimed_addresses(state: &State) -> Vec<(NetworkId, IpNet, Holder, Vec<Holder>)> {
    let mut out = Vec::new();
    for (id, entry) in &state.networks {
        let Some(Ok(alloc)) = &entry.alloc else { continue };
        for pool in &alloc.pools {
            for (value, claims) in &pool.slots {
                out.push((id.clone(), pool.with_prefix(*value), claims.holder().clone(), claims.losers().to_vec()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::*;

    fn network(i: usize) -> Network {
        Network {
            id: NetworkId::new(format!("net{i:03}")),
            version: Version(1),
            spec: NetworkSpec { name: format!("net{i:03}"), ..Default::default() },
            driver_state: None,
            ipam: None,
        }
    }

    fn task(i: usize, network: &NetworkId) -> Task {
        Task {
            id: TaskId::new(format!("task{i:04}")),
            version: Version(1),
            service_id: None,
            node_id: Some(NodeId::new(format!("node{}", i % 3))),
            slot: 0,
            spec: TaskSpec { networks: vec![NetworkAttachmentConfig::to(network.clone())] },
            status: TaskStatus::default(),
            desired_state: TaskState::Running,
            networks: Vec::new(),
            endpoint: None,
        }
    }

    /// Restore of many networks (where networks are looked up by hash) builds the engine that
    /// committing the same objects one by one built, and reports the same conflicts.
    #[test]
    fn restore_of_many_networks_equals_the_committed_engine() {
        let mut alloc = Allocator::new(ClusterConfig::default()).unwrap();
        let networks: Vec<Network> = (0..40).map(network).collect();
        let proposal = {
            let mut tx = alloc.begin();
            for n in &networks {
                tx.allocate_network(n).unwrap();
            }
            tx.finish()
        };
        alloc.commit(&proposal);
        let ids: Vec<NetworkId> = networks.iter().map(|n| n.id.clone()).collect();
        let tasks: Vec<Task> = (0..200).map(|i| task(i, &ids[i % ids.len()])).collect();
        let proposal = {
            let mut tx = alloc.begin();
            for t in &tasks {
                tx.allocate_task(t, None).unwrap();
            }
            tx.finish()
        };
        alloc.commit(&proposal);
        // The networks come first, written for their address cursors: they replace the stored ones.
        let (networks, mut updated): (Vec<Object>, Vec<Object>) =
            proposal.into_updates().into_iter().partition(|o| matches!(o, Object::Network(_)));
        assert_eq!(networks.len(), 40, "every network handed out addresses");
        let mut store = networks;
        // Conflicts: two tasks share an address, one is retired, one names a missing network.
        let Object::Task(first) = updated[0].clone() else { unreachable!() };
        if let Object::Task(t) = &mut updated[1] {
            t.networks = first.networks.clone();
        }
        if let Object::Task(t) = &mut updated[2] {
            t.status.state = TaskState::Complete;
        }
        if let Object::Task(t) = &mut updated[3] {
            t.networks[0].network_id = NetworkId::new("missing");
        }
        for object in &updated[1..4] {
            alloc.observe(object.as_ref());
        }
        store.extend(updated);
        store.reverse();
        let (restored, report) =
            Allocator::restore(ClusterConfig::default(), store.iter().map(Object::as_ref)).unwrap();
        assert_eq!(alloc.diff(&restored), None);
        assert_eq!(report.findings, alloc.findings());
        assert_eq!(report.findings.len(), 2, "{:?}", report.findings);
    }
}
