//! Networks: subnets (explicit or the next default one), gateways, VXLAN ids; completing a
//! stored allocation that lacks its driver state or VXLAN ids.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{Outcome, Tx, Undo};
use crate::error::AllocError;
use crate::few::Few;
use crate::ids::NetworkId;
use crate::index::{
    Holder, NetAlloc, NetEntry, Placement, Pool, SubnetEntry, find_overlap, ip_to_u128, overlaps, parse_vni_list,
};
use crate::objects::{
    BUILTIN_DRIVERS, DEFAULT_IPAM_DRIVER, DriverConfig, DriverScope, Ipam, IpamConfig, Network, Object,
    VXLAN_ID_LIST_OPTION,
};

impl Tx<'_> {
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

    pub(super) fn allocate_network_inner(&mut self, network: &Network) -> Result<Outcome, AllocError> {
        let id = &network.id;
        let ipam_driver = self.validate_network(network)?;
        if network.scope() == DriverScope::NodeLocal {
            // SwarmKit records the driver's name only (no options) and an IPAM without a driver
            // name or configs (cnmallocator `Allocate`), which older daemons expect even where the
            // manager allocates nothing.
            let mut updated = network.clone();
            updated.driver_state =
                Some(DriverConfig { name: network.driver_name().to_string(), options: BTreeMap::new() });
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
    pub(super) fn validate_network(&self, network: &Network) -> Result<String, AllocError> {
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
    pub(super) fn allocate_pools(&mut self, network: &Network) -> Result<(Vec<IpamConfig>, Vec<Pool>), AllocError> {
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
                // The first address of the pick range (the config's range, or its subnet) that no
                // live holder references, as libnetwork's serial "gateway" request on the pool
                // gives it: for a range, the request is drawn from the range (`SetAnyInRange`;
                // docs/swarmkit.md section 2.2).
                let value = (pool.pick.0..=pool.pick.1)
                    .find(|v| pool.slots.get(v).is_none_or(|c| c.holder().is_retired()))
                    .unwrap_or(pool.pick.0);
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
    /// overlay driver, as Docker never sets a config's family): those stored already, else the
    /// one the driver option pins for the config (SwarmKit reads one per config and ignores the
    /// rest; 0 pins nothing), else a fresh one.
    pub(super) fn allocate_vnis(
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
        // Config by config, as the overlay driver goes: the pinned id, or a drawn one where the
        // list is shorter or pins 0.
        let mut pinned = pinned.iter().copied();
        while vnis.len() < configs {
            let vni = match pinned.next() {
                Some(vni) if vni != 0 => {
                    self.take_vni(vni)?;
                    vni
                }
                _ => self.take_new_vni()?,
            };
            vnis.push(vni);
        }
        Ok(vnis)
    }

    pub(super) fn overlap(&self, subnet: &IpNet) -> Option<(IpNet, NetworkId)> {
        find_overlap(&self.state.subnets, subnet)
            .or_else(|| find_overlap(&self.subnets, subnet))
            .map(|(net, owner)| (net, owner.clone()))
    }

    /// The next default subnet: the first candidate after the highest default subnet in use,
    /// wrapping, that overlaps no allocated subnet. Derived from committed state, so a new leader
    /// continues where the old one stopped (SwarmKit's cursor restarted at 10.0.0.0/24).
    pub(super) fn next_default_subnet(&self, network: &NetworkId) -> Result<IpNet, AllocError> {
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

    pub(super) fn take_vni(&mut self, vni: u32) -> Result<(), AllocError> {
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
    pub(super) fn take_new_vni(&mut self) -> Result<u32, AllocError> {
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
