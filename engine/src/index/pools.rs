//! A network's stored allocation as the index keeps it: its pools (one per IPAM config, with the
//! addresses claimed in it and its address cursor), its VXLAN ids, and whether it can be used.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::ip::{ip_to_u128, u128_to_ip};
use super::ranking::{Claims, Holder, claim, overlaps};
use crate::config::ClusterConfig;
use crate::few::Few;
use crate::ids::NetworkId;
use crate::objects::{ADDRESS_CURSOR_OPTION, DriverConfig, DriverScope, Ipam, Network, VXLAN_ID_LIST_OPTION};

/// One subnet of a network and the addresses claimed in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pool {
    pub(crate) subnet: IpNet,
    pub(crate) range: Option<IpNet>,
    pub(crate) gateway: Option<IpAddr>,
    /// True when the network's spec left this subnet to the default pools (it moves their cursor).
    pub(crate) from_default: bool,
    /// Usable host addresses of the subnet (its first address, and for IPv4 its last, excluded).
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
        let usable = usable_hosts(&subnet).ok_or_else(|| {
            format!("subnet {subnet} has no usable address (its first and, for IPv4, last are reserved)")
        })?;
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

/// First and last host address of a subnet, None when it has none. libnetwork's IPAM reserves
/// the first address of every subnet and the last of every IPv4 one, whatever the prefix length
/// (`ipam/allocator.go:insertBitMask`; docs/swarmkit.md section 2.2): an IPv4 /31 or /32 and an
/// IPv6 /128 have no address left, not even for the gateway.
pub(crate) fn usable_hosts(subnet: &IpNet) -> Option<(u128, u128)> {
    let lo = ip_to_u128(subnet.network()).checked_add(1)?;
    let hi = ip_to_u128(subnet.broadcast());
    let hi = if subnet.addr().is_ipv4() { hi.checked_sub(1)? } else { hi };
    (lo <= hi).then_some((lo, hi))
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

/// A network's stored allocation (`ipam` and `driver_state`) as committed, without the address
/// cursor option: compared to tell whether the pools must be rebuilt (a write that moves only the
/// cursor is not a new allocation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredAlloc {
    ipam: Ipam,
    driver: Option<DriverConfig>,
}

impl StoredAlloc {
    pub(super) fn of(ipam: &Ipam, driver: Option<&DriverConfig>) -> StoredAlloc {
        let mut ipam = ipam.clone();
        ipam.options.remove(ADDRESS_CURSOR_OPTION);
        StoredAlloc { ipam, driver: driver.cloned() }
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
    /// `Ok` when the stored allocation is valid, `Err` explains why it is not.
    pub(crate) alloc: Option<Result<NetAlloc, String>>,
    pub(crate) network: Committed,
    /// The stored allocation, exactly as committed (compared to tell whether pools must be
    /// rebuilt). Last, so that `Allocator::diff` of two entries shows the parsed pools first
    /// rather than this encoding.
    pub(super) stored: Option<StoredAlloc>,
}

impl NetEntry {
    pub(super) fn of(network: &Network, config: &ClusterConfig) -> NetEntry {
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
    pub(super) fn pool_of(&mut self, ip: IpAddr) -> Option<&mut Pool> {
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
pub(super) fn parse_alloc(
    network: &Network,
    ipam: &Ipam,
    driver: Option<&DriverConfig>,
    config: &ClusterConfig,
) -> Result<NetAlloc, String> {
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
    // A stored 0 is an id still to draw, as the overlay driver reads it: the network lacks it.
    if vnis.contains(&0) {
        vnis = vnis.iter().copied().filter(|vni| *vni != 0).collect();
    }
    let mut incomplete = driver.is_none().then(|| "no driver state is stored".to_string());
    if scope == DriverScope::Overlay && incomplete.is_none() && vnis.len() != pools.len() {
        incomplete = Some(format!("{} VXLAN ids are stored for {} IPAM configs", vnis.len(), pools.len()));
    }
    if scope == DriverScope::Overlay && vnis.len() > pools.len() {
        // SwarmKit's overlay driver reads one id per config and drops the rest.
        vnis = vnis.iter().take(pools.len()).copied().collect();
    }
    Ok(NetAlloc { pools, vnis, incomplete, conflict: None })
}

/// Sets each pool's stored cursor from an [`ADDRESS_CURSOR_OPTION`] value (one entry per pool,
/// in config order). An entry that is empty, not an address, or outside its pool's pick range
/// leaves that pool without a stored cursor: the engine then derives one, as for SwarmKit's stores.
pub(super) fn read_cursors(pools: &mut [Pool], list: &str) {
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

/// Parses a VXLAN id list as libnetwork's overlay driver reads one (`ovmanager.NetworkAllocate`,
/// docs/swarmkit.md section 2.5): split on ",", every item a decimal integer as Go's
/// `strconv.Atoi` reads it (an optional sign, no spaces, so an empty item is an error) and kept
/// to its low 32 bits as `uint32(vni)` does; 0 asks for a drawn id. An id above 2^24 - 1 or
/// listed twice cannot be reserved.
pub(crate) fn parse_vni_list(list: &str) -> Result<Few<u32>, String> {
    let mut vnis = Few::new();
    for item in list.split(',') {
        let value: i64 = item.parse().map_err(|_| format!("{item:?} is not a number"))?;
        let vni = value as u32;
        if vni > crate::config::VXLAN_ID_MAX {
            return Err(format!("{item} is outside 0..=16777215"));
        }
        if vni != 0 && vnis.contains(&vni) {
            return Err(format!("{vni} is listed twice"));
        }
        vnis.push(vni);
    }
    Ok(vnis)
}

pub(super) fn claim_gateways(network: &NetworkId, alloc: &mut NetAlloc) {
    for pool in &mut alloc.pools {
        if let Some(gateway) = pool.gateway {
            claim(&mut pool.slots, ip_to_u128(gateway), Holder::Gateway(network.clone()));
        }
    }
}
