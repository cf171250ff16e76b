//! The checks after every step, and the reference model's view of committed objects they read:
//! written from docs/swarmkit.md, not from the engine's index.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use swarmalloc::{
    ADDRESS_CURSOR_OPTION, ClusterConfig, DriverScope, EndpointSpec, Finding, Holder, Ipam, IpamConfig, Network,
    NetworkAttachmentConfig, NetworkId, NodeId, Object, ObjectId, PortConfig, Protocol, PublishMode, ResolutionMode,
    Service, ServiceId, TaskId, TaskState, VXLAN_ID_LIST_OPTION,
};

use super::{Check, Model, Order, Orders, Sequence, Store, View, shuffle};

impl Model {
    /// (d) and (f) after a committed pass; `before` is the store before it (None: the pass
    /// landed nothing, so it is the store). An address is taken when it was unavailable before
    /// the pass or is after it; the holder before the pass is the one named.
    pub(super) fn check_committed_pass(&self, before: Option<View<'_>>) -> Check {
        let networks = Networks::of(View::of(&self.store));
        let mut held = unavailable_addresses(View::of(&self.store), &networks);
        // The networks before the pass: those of the store when it landed nothing.
        let before_networks = before.map(Networks::of);
        if let (Some(before), Some(before_networks)) = (before, &before_networks) {
            held.extend(unavailable_addresses(before, before_networks));
        }
        if let (Some(before), Some(before_networks)) = (before, &before_networks) {
            check_address_cursors(before, before_networks, &self.store, &networks)?;
        }
        let before = before.unwrap_or(View::of(&self.store));
        let before_networks = before_networks.as_ref().unwrap_or(&networks);
        self.check_liveness(before, &held, &networks)?;
        self.check_node_attachments(before, before_networks, &held, &networks)
    }

    /// After a committed pass every node has load-balancer attachments on exactly the networks
    /// it needs (docs/swarmkit.md section 2.8): the ingress, plus every allocated network whose driver
    /// is literally `overlay` that a live task on the node (as committed before the pass) is
    /// attached to. A needed one may be missing only when its pools have no free address.
    /// `before_networks` are those of `before`, `networks` those of the store.
    pub(super) fn check_node_attachments(
        &self,
        before: View<'_>,
        before_networks: &Networks<'_>,
        held: &Held<'_>,
        networks: &Networks<'_>,
    ) -> Check {
        let allocated_overlay =
            |n: Option<&Network>| n.is_some_and(|n| n.is_allocated() && n.scope() == DriverScope::Overlay);
        // At most one ingress network is ever allocated; that one is the ingress.
        let ingress: Vec<&NetworkId> =
            networks.iter().filter(|n| n.is_ingress() && allocated_overlay(Some(n))).map(|n| &n.id).collect();
        // The networks the live tasks on each node (as committed before the pass) are attached
        // to, as sorted (node, network) pairs without repeats.
        let mut by_node: Vec<(&NodeId, &NetworkId)> = Vec::new();
        for object in before.values() {
            let Object::Task(task) = object else { continue };
            let Some(node) = task.node_id.as_ref().filter(|_| task.status.state.is_live()) else { continue };
            for attachment in &task.networks {
                if allocated_overlay(before_networks.get(&attachment.network_id)) {
                    by_node.push((node, &attachment.network_id));
                }
            }
        }
        by_node.sort_unstable();
        by_node.dedup();
        // Sets as sorted lists without repeats, reused from node to node.
        let (mut wanted, mut has): (Vec<&NetworkId>, Vec<&NetworkId>) = (Vec::new(), Vec::new());
        for node in self.nodes() {
            let first = by_node.partition_point(|(n, _)| *n < &node.id);
            wanted.clear();
            wanted.extend(by_node[first..].iter().take_while(|(n, _)| *n == &node.id).map(|(_, id)| *id));
            wanted.extend(ingress.iter().copied());
            wanted.sort_unstable();
            wanted.dedup();
            has.clear();
            has.extend(node.attachments.iter().map(|a| &a.network_id));
            has.sort_unstable();
            has.dedup();
            let room = |id: &NetworkId| {
                networks.get(id).is_some_and(|n| {
                    [false, true]
                        .iter()
                        .all(|v6| !has_family(n, *v6) || has_room(n, *v6, |ip| !held.contains_key(&(ip, id))))
                })
            };
            let missing: Vec<&NetworkId> = wanted.iter().filter(|id| has.binary_search(id).is_err()).copied().collect();
            let extra: Vec<&NetworkId> = has.iter().filter(|id| wanted.binary_search(id).is_err()).copied().collect();
            // Per network, as SwarmKit: a network with no room is skipped (the node keeps what it
            // had there), every other needed one is served, and stale ones are dropped.
            if let Some(id) = missing.iter().find(|id| room(id)) {
                return Err(format!("node {} has no LB attachment on {id} although it needs one", node.id));
            }
            if !extra.is_empty() {
                return Err(format!("node {} keeps LB attachments on {extra:?}, which it does not need", node.id));
            }
        }
        Ok(())
    }

    // --------------------------------------------------------------------------------------------
    // Checks after every step

    pub(super) fn check(&mut self) -> Check {
        if self.store_changed || self.engine_changed {
            self.checks += 1;
            self.last_compared = self.check_restore_equal(Orders::One(self.checks))?;
        }
        if self.store_changed {
            check_store(&self.config, &self.store)?;
            self.check_sticky_networks()?;
        }
        self.store_changed = false;
        self.engine_changed = false;
        Ok(())
    }

    /// (a) The engine equals a fresh restore of the store, whatever the restore order, and
    /// restore finds no conflict in it. (Restore's queue is left out: the engine it builds is the
    /// same, and the `restore` property checks the queue.)
    /// Returns the order compared when it was one.
    pub(super) fn check_restore_equal(&self, orders: Orders) -> Result<Option<Order>, String> {
        let seed = self.step.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let (chosen, one): ([Option<Order>; 3], Option<Order>) = match orders {
            Orders::One(n) => {
                let order = match n % 3 {
                    0 => Order::Store,
                    1 => Order::Reversed,
                    _ => Order::Shuffled(seed),
                };
                ([Some(order), None, None], Some(order))
            }
            Orders::All { compared } => {
                let all = [Order::Store, Order::Reversed, Order::Shuffled(seed)];
                (all.map(|o| Some(o).filter(|o| Some(*o) != compared)), None)
            }
        };
        // The store's order and its reverse are read from the store in place; only a shuffle
        // needs a list (of references).
        let shuffled: Vec<&Object> = match chosen.iter().flatten().find(|o| matches!(o, Order::Shuffled(_))) {
            Some(Order::Shuffled(seed)) => {
                let mut objects: Vec<&Object> = self.store.values().collect();
                shuffle(&mut objects, *seed);
                objects
            }
            _ => Vec::new(),
        };
        let sequence = |order: Order| match order {
            Order::Store => Sequence::Store(self.store.values()),
            Order::Reversed => Sequence::Reversed(self.store.values().rev()),
            Order::Shuffled(_) => Sequence::Shuffled(shuffled.iter()),
        };
        let mut done: [Option<Order>; 3] = [None; 3];
        for (i, order) in chosen.into_iter().enumerate() {
            let Some(order) = order else { continue };
            // Restore is a function of its input sequence: an order already checked (a store of
            // one object reversed, a shuffle that moved nothing) would give the same engine.
            let same = |other: &Order| sequence(*other).zip(sequence(order)).all(|(a, b)| std::ptr::eq(a, b));
            if done.iter().flatten().any(same) {
                continue;
            }
            let restored = self.engine.rebuilt(sequence(order).map(Object::as_ref));
            if let Some(diff) = self.engine.diff(&restored) {
                return Err(format!("engine != restore(store) ({} order):\n{diff}", order.name()));
            }
            done[i] = Some(order);
        }
        // Equal engines have equal findings.
        for finding in &self.engine.findings() {
            // A node LB attachment, a VIP, or a stopping task's attachment on a network
            // deleted since it was allocated: the control API allows the delete once no spec
            // and no task desired running lists the network.
            let stale = matches!(
                finding,
                Finding::UnallocatedNetwork {
                    network,
                    holder: Holder::NodeLb(_) | Holder::Vip(_) | Holder::Task(_)
                } if self.network(network).is_none()
            );
            // A second ingress network is possible (two creates racing the control API's
            // check); the allocator ignores it and restore says so.
            let extra_ingress = matches!(finding, Finding::ExtraIngress { .. });
            if !stale && !extra_ingress {
                return Err(format!("restore of the committed store reports a conflict: {finding}"));
            }
        }
        Ok(one)
    }

    /// (e) A network's stored subnets, gateways and VXLAN ids never change once committed.
    pub(super) fn check_sticky_networks(&mut self) -> Check {
        // Compared in place; only a network's first allocation is copied.
        for object in self.store.values() {
            let Object::Network(n) = object else { continue };
            let (Some(ipam), Some(driver)) = (&n.ipam, &n.driver_state) else { continue };
            let id = &n.id;
            match self.sticky_networks.get(id) {
                Some((first_ipam, first_driver)) => {
                    // The address cursor moves on every pass that hands out addresses.
                    fn allocation(ipam: &Ipam) -> (&String, &Vec<IpamConfig>) {
                        (&ipam.driver, &ipam.configs)
                    }
                    if allocation(first_ipam) != allocation(ipam)
                        || first_driver.options.get(VXLAN_ID_LIST_OPTION) != driver.options.get(VXLAN_ID_LIST_OPTION)
                    {
                        return Err(format!(
                            "network {id} allocation changed from {first_ipam:?} {first_driver:?} to {ipam:?} {driver:?}"
                        ));
                    }
                }
                None => {
                    self.sticky_networks.insert(id.clone(), (ipam.clone(), driver.clone()));
                }
            }
        }
        Ok(())
    }

    /// (d) Every NEW task whose dependencies are allocated and whose pools have room was moved
    /// to PENDING by the pass that just committed. `before` is the store before the pass.
    pub(super) fn check_liveness(&self, before: View<'_>, held: &Held<'_>, networks: &Networks<'_>) -> Check {
        let held = |network, ip: IpAddr| held.get(&(ip, network));
        for task in self.tasks() {
            if task.status.state != TaskState::New || task.desired_state > TaskState::Running {
                continue;
            }
            let Some(Object::Task(task_before)) = before.get(&ObjectId::Task(task.id.clone())) else { continue };
            if task_before.status.state != TaskState::New {
                continue;
            }
            let mut configs: Vec<NetworkAttachmentConfig> = Vec::new();
            if let Some(service_id) = &task.service_id {
                let Some(service) = self.service(service_id) else { continue };
                if !service_allocated(&self.store, service) {
                    continue;
                }
                if service.spec.needs_ingress() {
                    let ingress = ingress_networks(&self.store);
                    let [ingress] = ingress.as_slice() else { continue };
                    configs.push(NetworkAttachmentConfig::to(ingress.as_str()));
                }
                // The task's own networks, else only the service's deprecated field (SwarmKit).
                if task.spec.networks.is_empty() {
                    configs.extend(service.spec.networks.iter().cloned());
                }
            }
            configs.extend(task.spec.networks.iter().cloned());
            let mut satisfiable = true;
            for config in &configs {
                // A network missing from the store makes the task wait.
                let Some(network) = networks.get(&config.target) else {
                    satisfiable = false;
                    break;
                };
                if network.scope() == DriverScope::NodeLocal {
                    continue;
                }
                if !network.is_allocated() {
                    satisfiable = false;
                    break;
                }
                for v6 in [false, true] {
                    if !has_family(network, v6) {
                        continue;
                    }
                    let ok = match config.addresses.iter().find(|ip| ip.is_ipv6() == v6) {
                        Some(ip) => {
                            subnets(network).any(|s| usable(&s, *ip))
                                && held(&network.id, *ip).is_none_or(|h| *h == Claimant::Task(&task.id))
                        }
                        None => has_room(network, v6, |ip| held(&network.id, ip).is_none()),
                    };
                    if !ok {
                        satisfiable = false;
                    }
                }
            }
            if satisfiable {
                return Err(format!(
                    "task {} is still NEW after a committed pass although its service and networks are \
                     allocated and its pools have room (targets {:?})",
                    task.id,
                    configs.iter().map(|c| c.target.to_string()).collect::<Vec<_>>()
                ));
            }
        }
        Ok(())
    }
}

/// A network's subnets, in config order.
pub(super) fn subnets(network: &Network) -> impl Iterator<Item = IpNet> + '_ {
    network.ipam.iter().flat_map(|i| &i.configs).filter_map(|c| c.subnet)
}

/// A network's subnets as a list (for messages).
pub(super) fn subnets_of(network: &Network) -> Vec<IpNet> {
    subnets(network).collect()
}

pub(super) fn has_family(network: &Network, v6: bool) -> bool {
    subnets(network).any(|s| matches!(s, IpNet::V6(_)) == v6)
}

/// The networks of a store (or of a view of one) in id order, found by id without building an
/// `ObjectId` (a clone of the id) for a store lookup.
pub(super) struct Networks<'a>(Vec<&'a Network>);

impl<'a> Networks<'a> {
    fn of(store: View<'a>) -> Networks<'a> {
        Networks(
            store
                .values()
                .filter_map(|o| match o {
                    Object::Network(n) => Some(n),
                    _ => None,
                })
                .collect(),
        )
    }

    /// What `store.get(&ObjectId::Network(id))` finds: the store lists networks in id order.
    fn get(&self, id: &NetworkId) -> Option<&'a Network> {
        self.0.binary_search_by(|n| n.id.cmp(id)).ok().map(|i| self.0[i])
    }

    fn iter(&self) -> impl Iterator<Item = &'a Network> + '_ {
        self.0.iter().copied()
    }
}

/// A [`Holder`] borrowed from the store object that names it (no id cloned); compares and
/// prints as the `Holder` it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Claimant<'a> {
    Gateway(&'a NetworkId),
    Vip(&'a ServiceId),
    NodeLb(&'a NodeId),
    Task(&'a TaskId),
    Retired(&'a TaskId),
}

impl Claimant<'_> {
    fn holder(self) -> Holder {
        match self {
            Claimant::Gateway(id) => Holder::Gateway(id.clone()),
            Claimant::Vip(id) => Holder::Vip(id.clone()),
            Claimant::NodeLb(id) => Holder::NodeLb(id.clone()),
            Claimant::Task(id) => Holder::Task(id.clone()),
            Claimant::Retired(id) => Holder::Retired(id.clone()),
        }
    }
}

impl std::fmt::Display for Claimant<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.holder(), f)
    }
}

/// Whether a new pick of one family can succeed: some usable address inside a config's range
/// (or subnet when it has none) for which `free` holds.
pub(super) fn has_room(network: &Network, v6: bool, free: impl Fn(IpAddr) -> bool) -> bool {
    network.ipam.iter().flat_map(|i| &i.configs).any(|config| {
        let Some(subnet) = config.subnet.filter(|s| matches!(s, IpNet::V6(_)) == v6) else { return false };
        hosts(&subnet).any(|ip| config.range.is_none_or(|r| r.contains(&ip)) && free(ip))
    })
}

pub(super) fn ingress_networks(store: &Store) -> Vec<NetworkId> {
    store
        .values()
        .filter_map(|o| match o {
            Object::Network(n) if n.is_ingress() => Some(n.id.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

pub(super) fn from_u128(value: u128, v6: bool) -> IpAddr {
    if v6 { IpAddr::V6(value.into()) } else { IpAddr::V4((value as u32).into()) }
}

/// Whether `ip` may be handed out in `subnet`: libnetwork reserves the first address of every
/// subnet and the last of every IPv4 one, whatever the prefix length (docs/swarmkit.md section
/// 2.2), so an IPv4 /31 or /32 and an IPv6 /128 have none.
pub(super) fn usable(subnet: &IpNet, ip: IpAddr) -> bool {
    if !subnet.contains(&ip) {
        return false;
    }
    let (network, broadcast) = (subnet.network(), subnet.broadcast());
    match subnet {
        IpNet::V4(_) => ip != network && ip != broadcast,
        IpNet::V6(_) => ip != network,
    }
}

/// Every usable address of a (small) subnet.
pub(super) fn hosts(subnet: &IpNet) -> impl Iterator<Item = IpAddr> + '_ {
    let v6 = matches!(subnet, IpNet::V6(_));
    (to_u128(subnet.network())..=to_u128(subnet.broadcast()))
        .map(move |v| from_u128(v, v6))
        .filter(move |ip| usable(subnet, *ip))
}

/// An address a live holder has on a network, borrowed from the store.
pub(super) struct Live<'a> {
    network: &'a NetworkId,
    addr: IpNet,
    holder: Claimant<'a>,
}

/// Every address a live holder has in the store, by (network, address), naming the holder.
/// Live holders: gateways, VIPs, node LB attachments, attachments of tasks with state <= RUNNING.
/// Networks missing from the store or node-local are skipped (nothing is allocated there).
/// `networks` are the store's.
pub(super) fn live_holders<'a>(store: View<'a>, networks: &Networks<'a>) -> Vec<Live<'a>> {
    let allocated =
        |id: &NetworkId| networks.get(id).is_some_and(|n| n.is_allocated() && n.scope() != DriverScope::NodeLocal);
    let mut out = Vec::new();
    for object in store.values() {
        match object {
            Object::Network(n) => {
                for config in n.ipam.iter().flat_map(|i| &i.configs) {
                    if let (Some(gateway), Some(subnet)) = (config.gateway, config.subnet) {
                        let with_prefix =
                            IpNet::new(gateway, subnet.prefix_len()).expect("a gateway of the subnet's family");
                        out.push(Live { network: &n.id, addr: with_prefix, holder: Claimant::Gateway(&n.id) });
                    }
                }
            }
            Object::Service(s) => {
                for vip in s.endpoint.iter().flat_map(|e| &e.virtual_ips) {
                    if allocated(&vip.network_id) {
                        out.push(Live { network: &vip.network_id, addr: vip.addr, holder: Claimant::Vip(&s.id) });
                    }
                }
            }
            Object::Task(t) if t.status.state.is_live() => {
                for attachment in t.networks.iter().filter(|a| allocated(&a.network_id)) {
                    for addr in &attachment.addresses {
                        out.push(Live { network: &attachment.network_id, addr: *addr, holder: Claimant::Task(&t.id) });
                    }
                }
            }
            Object::Task(_) => {}
            Object::Node(n) => {
                for attachment in n.attachments.iter().filter(|a| allocated(&a.network_id)) {
                    for addr in &attachment.addresses {
                        out.push(Live {
                            network: &attachment.network_id,
                            addr: *addr,
                            holder: Claimant::NodeLb(&n.id),
                        });
                    }
                }
            }
        }
    }
    out
}

/// Addresses by (network, address), naming a holder. Keyed address first: a map is the same
/// map in any key order, and addresses tell most keys apart without comparing id strings.
pub(super) type Held<'a> = BTreeMap<(IpAddr, &'a NetworkId), Claimant<'a>>;

/// Addresses an allocation may not take: those of live holders, and those of ORPHANED tasks
/// (their containers may still run). `networks` are the store's.
pub(super) fn unavailable_addresses<'a>(store: View<'a>, networks: &Networks<'a>) -> Held<'a> {
    let mut held: Held<'a> =
        live_holders(store, networks).into_iter().map(|l| ((l.addr.addr(), l.network), l.holder)).collect();
    for object in store.values() {
        let Object::Task(t) = object else { continue };
        if t.status.state != TaskState::Orphaned {
            continue;
        }
        for attachment in &t.networks {
            for addr in &attachment.addresses {
                held.entry((addr.addr(), &attachment.network_id)).or_insert(Claimant::Retired(&t.id));
            }
        }
    }
    held
}

/// (c) Invariants of the committed store.
pub(super) fn check_store(config: &ClusterConfig, store: &Store) -> Check {
    let networks = Networks::of(View::of(store));
    check_live_addresses(store, &networks)?;
    check_addresses_per_family(store, &networks)?;
    check_subnets_and_vxlan_ids(&networks)?;
    check_ports(config, store)
}

/// (c) No address held by two live holders on one network; every address usable in its
/// subnets, stored with the subnet's prefix length.
fn check_live_addresses(store: &Store, networks: &Networks<'_>) -> Check {
    // Keyed address first, as `Held` is: the insert that finds a repeat is the same.
    let mut seen: BTreeMap<(IpAddr, &NetworkId), Claimant> = BTreeMap::new();
    for Live { network: network_id, addr, holder } in live_holders(View::of(store), networks) {
        let Some(network) = networks.get(network_id) else { continue };
        match subnets(network).find(|s| s.contains(&addr.addr())) {
            Some(subnet) if usable(&subnet, addr.addr()) && subnet.prefix_len() == addr.prefix_len() => {}
            Some(subnet) => {
                return Err(format!(
                    "{holder} has {addr} on network {network_id}: reserved address or wrong prefix in {subnet}"
                ));
            }
            None => {
                let subnets = subnets_of(network);
                return Err(format!("{holder} has {addr} outside every subnet {subnets:?} of network {network_id}"));
            }
        }
        if let Some(other) = seen.insert((addr.addr(), network_id), holder) {
            return Err(format!("address {addr} on network {network_id} held by both {other} and {holder}"));
        }
    }
    Ok(())
}

/// (c) One address per address family per attachment, and one VIP per network per service.
fn check_addresses_per_family(store: &Store, networks: &Networks<'_>) -> Check {
    for object in store.values() {
        let (attachments, who) = match object {
            Object::Task(t) if t.status.state.is_live() => (&t.networks, Claimant::Task(&t.id)),
            Object::Node(n) => (&n.attachments, Claimant::NodeLb(&n.id)),
            Object::Service(s) => {
                let vips = s.endpoint.as_ref().map(|e| e.virtual_ips.as_slice()).unwrap_or_default();
                for (i, vip) in vips.iter().enumerate() {
                    if vips[..i].iter().any(|v| v.network_id == vip.network_id) {
                        return Err(format!("service {} has two VIPs on network {}", s.id, vip.network_id));
                    }
                    // The VIP family rule (ARCHITECTURE.md, "Dual stack"; SwarmKit picks either
                    // family, docs/swarmkit.md section 2.4): IPv4 when the network has an IPv4 subnet.
                    let Some(network) = networks.get(&vip.network_id) else { continue };
                    if network.is_allocated() && network.scope() != DriverScope::NodeLocal {
                        let v6 = !has_family(network, false);
                        if matches!(vip.addr, IpNet::V6(_)) != v6 {
                            return Err(format!(
                                "service {} has an IPv{} VIP {} on network {} (subnets {:?}): expected IPv{}",
                                s.id,
                                if v6 { 4 } else { 6 },
                                vip.addr,
                                vip.network_id,
                                subnets_of(network),
                                if v6 { 6 } else { 4 }
                            ));
                        }
                    }
                }
                continue;
            }
            _ => continue,
        };
        for attachment in attachments {
            let Some(network) = networks.get(&attachment.network_id) else {
                continue;
            };
            if !network.is_allocated() || network.scope() == DriverScope::NodeLocal {
                continue;
            }
            for v6 in [false, true] {
                let wanted = usize::from(has_family(network, v6));
                let got = attachment.addresses.iter().filter(|a| matches!(a, IpNet::V6(_)) == v6).count();
                if got != wanted {
                    let subnets = subnets_of(network);
                    return Err(format!(
                        "{who} has {got} IPv{} addresses on network {} (subnets {subnets:?}): {:?}",
                        if v6 { 6 } else { 4 },
                        network.id,
                        attachment.addresses
                    ));
                }
            }
        }
    }
    Ok(())
}

/// (c) Subnets never overlap; VXLAN ids unique, one per IPAM config of overlay networks.
fn check_subnets_and_vxlan_ids(networks: &Networks<'_>) -> Check {
    let mut all_subnets: Vec<(IpNet, &NetworkId)> = Vec::new();
    let mut vnis: BTreeMap<u32, &NetworkId> = BTreeMap::new();
    for network in networks.iter() {
        if !network.is_allocated() {
            continue;
        }
        for subnet in subnets(network) {
            if let Some((other, owner)) = all_subnets.iter().find(|(o, _)| o.contains(&subnet) || subnet.contains(o)) {
                return Err(format!("subnet {subnet} of network {} overlaps {other} of network {owner}", network.id));
            }
            all_subnets.push((subnet, &network.id));
        }
        let list = network.driver_state.as_ref().and_then(|d| d.options.get(VXLAN_ID_LIST_OPTION));
        let ids: Vec<u32> = match list.map(|l| l.split(',').map(|v| v.trim().parse()).collect()) {
            None => Vec::new(),
            Some(Ok(ids)) => ids,
            Some(Err(e)) => return Err(format!("network {} has a malformed VXLAN id list {list:?}: {e}", network.id)),
        };
        if network.scope() == DriverScope::Overlay {
            // One per IPAM config, whatever its address family.
            let configs = subnets(network).count();
            if ids.len() != configs {
                return Err(format!("overlay network {} has VXLAN ids {ids:?} for {configs} IPAM configs", network.id));
            }
        } else if !ids.is_empty() {
            return Err(format!("{:?} network {} has VXLAN ids {ids:?}", network.scope(), network.id));
        }
        for id in ids {
            if let Some(owner) = vnis.insert(id, &network.id) {
                return Err(format!("VXLAN id {id} held by networks {owner} and {}", network.id));
            }
        }
    }
    Ok(())
}

/// (c) Ingress published ports unique per protocol (across and within services); dynamic ports
/// in range; the endpoint reflects the spec it was allocated for.
fn check_ports(config: &ClusterConfig, store: &Store) -> Check {
    let mut ports: BTreeMap<(Protocol, u16), &ServiceId> = BTreeMap::new();
    for object in store.values() {
        let Object::Service(service) = object else { continue };
        let Some(endpoint) = &service.endpoint else { continue };
        for port in endpoint.ports.iter().filter(|p| p.publish_mode == PublishMode::Ingress) {
            if port.published_port == 0 {
                return Err(format!("service {} has an ingress port without a published port: {port:?}", service.id));
            }
            if let Some(other) = ports.insert((port.protocol, port.published_port), &service.id) {
                return Err(format!(
                    "ingress port {}/{} published by service {other} and by service {}",
                    port.protocol, port.published_port, service.id
                ));
            }
            let dynamic = endpoint
                .spec
                .ports
                .iter()
                .filter(|s| same_port(s, port) && s.publish_mode == PublishMode::Ingress)
                .all(|s| s.published_port == 0);
            if dynamic && !config.dynamic_port_range.contains(port.published_port) {
                return Err(format!(
                    "service {} dynamic port {}/{} outside {}..={}",
                    service.id,
                    port.protocol,
                    port.published_port,
                    config.dynamic_port_range.min,
                    config.dynamic_port_range.max
                ));
            }
        }
        if endpoint.ports.len() != endpoint.spec.ports.len() {
            return Err(format!(
                "service {} endpoint has ports {:?} for spec {:?}",
                service.id, endpoint.ports, endpoint.spec
            ));
        }
    }
    Ok(())
}

pub(super) fn same_port(a: &PortConfig, b: &PortConfig) -> bool {
    a.name == b.name && a.protocol == b.protocol && a.target_port == b.target_port
}

/// The networks a service needs a VIP on (docs/swarmkit.md section 2.6): the ingress when it publishes
/// an ingress port, then its non-node-local networks. None when a listed network is missing.
pub(super) fn wanted_vip_networks(store: &Store, service: &Service) -> Option<BTreeSet<NetworkId>> {
    let mut wanted = BTreeSet::new();
    if service.spec.resolution_mode() == ResolutionMode::Dnsrr {
        return Some(wanted);
    }
    if service.spec.needs_ingress() {
        let ingress = ingress_networks(store);
        let [ingress] = ingress.as_slice() else { return None };
        wanted.insert(ingress.clone());
    }
    for config in service.spec.attachment_configs() {
        let Some(Object::Network(network)) = store.get(&ObjectId::Network(config.target.clone())) else {
            return None;
        };
        if network.scope() != DriverScope::NodeLocal {
            wanted.insert(network.id.clone());
        }
    }
    Some(wanted)
}

/// Whether the committed service is allocated for its current spec. A service that publishes no
/// port and has no VIP to get (DNSRR, or no network) needs no endpoint: SwarmKit writes none.
pub(super) fn service_allocated(store: &Store, service: &Service) -> bool {
    let holds_nothing = |e: &swarmalloc::Endpoint| e.virtual_ips.is_empty() && e.ports.is_empty();
    let vips = service.spec.resolution_mode() == ResolutionMode::Vip && !service.spec.attachment_configs().is_empty();
    let needs_endpoint = vips || !service.spec.endpoint.as_ref().is_none_or(|e| e.ports.is_empty());
    if !needs_endpoint && service.endpoint.as_ref().is_none_or(holds_nothing) {
        return true;
    }
    let Some(endpoint) = &service.endpoint else { return false };
    let spec = service.spec.endpoint.clone().unwrap_or_default();
    let vips: BTreeSet<NetworkId> = endpoint.virtual_ips.iter().map(|v| v.network_id.clone()).collect();
    endpoint.spec == spec
        && endpoint.ports.len() == spec.ports.len()
        && wanted_vip_networks(store, service).is_some_and(|wanted| wanted == vips)
}

/// (e) What an allocation update may change: a service keeps the VIPs of networks it still
/// wants and the published numbers of dynamic ports it still asks for; a network's first
/// allocation is as SwarmKit makes it ([`check_network_allocation`]).
pub(super) fn check_allocation_result(before: View<'_>, updated: &Object) -> Check {
    if let Object::Network(network) = updated
        && before.get(&updated.id()).is_none_or(|o| matches!(o, Object::Network(n) if n.ipam.is_none()))
    {
        return check_network_allocation(network);
    }
    let Object::Service(new) = updated else { return Ok(()) };
    let Some(Object::Service(old)) = before.get(&updated.id()) else { return Ok(()) };
    let (Some(old_endpoint), Some(new_endpoint)) = (&old.endpoint, &new.endpoint) else { return Ok(()) };
    for vip in &new_endpoint.virtual_ips {
        if let Some(old_vip) = old_endpoint.virtual_ips.iter().find(|v| v.network_id == vip.network_id)
            && old_vip.addr != vip.addr
        {
            return Err(format!(
                "service {} VIP on kept network {} changed from {} to {}",
                new.id, vip.network_id, old_vip.addr, vip.addr
            ));
        }
    }
    let dynamic_keys = |spec: &EndpointSpec| -> Vec<PortConfig> {
        spec.ports.iter().filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port == 0).cloned().collect()
    };
    let old_dynamic = dynamic_keys(&old_endpoint.spec);
    let new_dynamic = dynamic_keys(&new_endpoint.spec);
    for port in &new_dynamic {
        let count = |list: &[PortConfig]| list.iter().filter(|p| same_port(p, port)).count();
        if count(&old_dynamic) != 1 || count(&new_dynamic) != 1 {
            continue;
        }
        // The published number of the dynamic port: the endpoint port with the same key that is
        // not one of the spec's fixed ports.
        let published = |endpoint: &swarmalloc::Endpoint| {
            let fixed = |p: &PortConfig| {
                endpoint.spec.ports.iter().any(|f| {
                    f.publish_mode == PublishMode::Ingress
                        && f.protocol == p.protocol
                        && f.published_port == p.published_port
                })
            };
            let found: Vec<u16> = endpoint
                .ports
                .iter()
                .filter(|p| same_port(p, port) && p.publish_mode == PublishMode::Ingress && !fixed(p))
                .map(|p| p.published_port)
                .collect();
            if let [one] = found.as_slice() { Some(*one) } else { None }
        };
        let (Some(was), Some(now)) = (published(old_endpoint), published(new_endpoint)) else {
            continue;
        };
        let taken_by_fixed =
            new_endpoint.spec.ports.iter().any(|p| p.protocol == port.protocol && p.published_port == was);
        if was != now && !taken_by_fixed {
            return Err(format!(
                "service {} dynamic port {:?} changed from {was} to {now} across an update that kept it",
                new.id, port
            ));
        }
    }
    Ok(())
}

/// (e) A network's first allocation (docs/swarmkit.md sections 1.2, 2.2, 2.5): a node-local
/// network stores its driver's name only and an IPAM without a driver name or configs; every
/// other network has a usable address in each subnet, and the gateway of a config whose spec names
/// none lies in its pick range (the config's range when it has one); the nonzero ids the spec's
/// VXLAN id list pins are the stored ones, config by config.
fn check_network_allocation(network: &Network) -> Check {
    let id = &network.id;
    if network.scope() == DriverScope::NodeLocal {
        let driver = network.driver_state.as_ref();
        if driver.is_none_or(|d| d.name != network.driver_name() || !d.options.is_empty())
            || network.ipam.as_ref() != Some(&Ipam::default())
        {
            return Err(format!(
                "node-local network {id} stored {:?} and {:?}: SwarmKit stores the driver's name only and an empty IPAM",
                network.driver_state, network.ipam
            ));
        }
        return Ok(());
    }
    let spec_configs = network.spec.ipam.as_ref().map_or(&[][..], |i| &i.configs[..]);
    for (i, config) in network.ipam.iter().flat_map(|i| &i.configs).enumerate() {
        let Some((lo, hi)) = pick_range(config) else {
            return Err(format!("network {id} was allocated subnet {:?}, which has no usable address", config.subnet));
        };
        let named = spec_configs.get(i).and_then(|c| c.gateway);
        if let (None, Some(gateway)) = (named, config.gateway)
            && !(lo..=hi).contains(&to_u128(gateway))
        {
            return Err(format!(
                "network {id} config {i} got gateway {gateway} outside its pick range {:?}",
                config.range.or(config.subnet)
            ));
        }
    }
    if network.scope() == DriverScope::Overlay
        && let Some(list) = network.spec.driver.as_ref().and_then(|d| d.options.get(VXLAN_ID_LIST_OPTION))
    {
        let stored: Vec<&str> = network
            .driver_state
            .as_ref()
            .and_then(|d| d.options.get(VXLAN_ID_LIST_OPTION))
            .map_or(Vec::new(), |l| l.split(',').collect());
        // As the overlay driver reads the list: Go's strconv.Atoi per item, kept to 32 bits.
        for (i, item) in list.split(',').enumerate().take(stored.len()) {
            let pinned =
                item.parse::<i64>().map_err(|_| format!("network {id} was allocated with VXLAN id list {list:?}"))?;
            if pinned as u32 != 0 && stored[i] != (pinned as u32).to_string() {
                return Err(format!("network {id} pins VXLAN ids {list:?} but stored {stored:?}"));
            }
        }
    }
    Ok(())
}

/// A pool's pick range as numbers: the config's range (or its subnet) without the reserved
/// addresses.
pub(super) fn pick_range(config: &IpamConfig) -> Option<(u128, u128)> {
    let subnet = config.subnet?;
    let area = config.range.unwrap_or(subnet);
    let hosts: Vec<u128> = hosts(&subnet).filter(|ip| area.contains(ip)).map(to_u128).collect();
    Some((*hosts.first()?, *hosts.last()?))
}

/// The cursors a network stores ([`ADDRESS_CURSOR_OPTION`]), one per IPAM config.
pub(super) fn stored_cursors(network: &Network) -> Vec<Option<u128>> {
    let Some(ipam) = &network.ipam else { return Vec::new() };
    let list = ipam.options.get(ADDRESS_CURSOR_OPTION).map(String::as_str).unwrap_or("");
    let mut items = list.split(',');
    ipam.configs.iter().map(|_| items.next().and_then(|i| i.parse::<IpAddr>().ok()).map(to_u128)).collect()
}

/// The addresses one object has on `network`: a network's gateways, a service's VIPs, a task's
/// or node's attachment addresses.
pub(super) fn addresses_on(object: &Object, network: &NetworkId) -> Vec<IpAddr> {
    let attachments = |list: &[swarmalloc::NetworkAttachment]| -> Vec<IpAddr> {
        list.iter().filter(|a| &a.network_id == network).flat_map(|a| &a.addresses).map(IpNet::addr).collect()
    };
    match object {
        Object::Network(n) if &n.id == network => {
            n.ipam.iter().flat_map(|i| &i.configs).filter_map(|c| c.gateway).collect()
        }
        Object::Network(_) => Vec::new(),
        Object::Service(s) => s
            .endpoint
            .iter()
            .flat_map(|e| &e.virtual_ips)
            .filter(|v| &v.network_id == network)
            .map(|v| v.addr.addr())
            .collect(),
        Object::Task(t) => attachments(&t.networks),
        Object::Node(n) => attachments(&n.attachments),
    }
}

/// Every address any object of `store` references on `network` (gateways, VIPs, node LB
/// attachments, tasks in every state).
pub(super) fn referenced_on(store: View<'_>, network: &NetworkId) -> BTreeSet<u128> {
    store.values().flat_map(|o| addresses_on(o, network)).map(to_u128).collect()
}

/// The addresses a committed pass handed out on `network`: new to the object that has them
/// now, and not one a task asked for by address.
pub(super) fn picks_on(before: View<'_>, after: &Store, network: &NetworkId) -> BTreeSet<u128> {
    let mut out = BTreeSet::new();
    for object in after.values().filter(|o| !matches!(o, Object::Network(_))) {
        let had = before.get(&object.id()).map(|old| addresses_on(old, network)).unwrap_or_default();
        let requested: Vec<IpAddr> = match object {
            Object::Task(t) => {
                t.spec.networks.iter().filter(|c| &c.target == network).flat_map(|c| c.addresses.clone()).collect()
            }
            _ => Vec::new(),
        };
        let new = addresses_on(object, network).into_iter().filter(|a| !had.contains(a) && !requested.contains(a));
        out.extend(new.map(to_u128));
    }
    out
}

/// (g) After a committed pass, in every pool: the addresses handed out that were free (nobody
/// referenced them) are the first free ones after the pool's cursor as it was before the pass
/// (the stored one, or, where none is stored, the highest address referenced in the pick range),
/// wrapping, so no address free before and after the pass is skipped on the way to them (a
/// just-freed address is not handed out again while others lie ahead of it). A retired task's
/// address is handed out only once no free one is left, so those come last. The stored cursor
/// is now the last address handed out: the furthest free one, or one of the retired ones.
pub(super) fn check_address_cursors(
    before: View<'_>,
    before_networks: &Networks<'_>,
    after: &Store,
    networks: &Networks<'_>,
) -> Check {
    for network in networks.iter() {
        let Some(old) = before_networks.get(&network.id) else { continue };
        let (Some(ipam), Some(old_ipam)) = (&network.ipam, &old.ipam) else { continue };
        if network.scope() == DriverScope::NodeLocal || ipam.configs != old_ipam.configs {
            continue;
        }
        let picks = picks_on(before, after, &network.id);
        let referenced_before = referenced_on(before, &network.id);
        let referenced_after = referenced_on(View::of(after), &network.id);
        let (old_cursors, new_cursors) = (stored_cursors(old), stored_cursors(network));
        for (i, config) in ipam.configs.iter().enumerate() {
            let Some((lo, hi)) = pick_range(config) else { continue };
            let v6 = config.subnet.is_some_and(|s| matches!(s, IpNet::V6(_)));
            let (free_picks, reused): (Vec<u128>, Vec<u128>) =
                picks.iter().copied().filter(|p| (lo..=hi).contains(p)).partition(|p| !referenced_before.contains(p));
            if free_picks.is_empty() && reused.is_empty() {
                continue;
            }
            let cursor = old_cursors[i].or_else(|| referenced_before.range(lo..=hi).next_back().copied());
            // Steps forward from the cursor to an address, wrapping inside the pick range.
            let size = hi - lo + 1;
            let steps = |a: u128| match cursor {
                Some(c) => (a + size - c - 1) % size,
                None => a - lo,
            };
            let free = |a: u128| !referenced_before.contains(&a) && !referenced_after.contains(&a);
            let furthest = free_picks.iter().copied().max_by_key(|p| steps(*p));
            if let Some(furthest) = furthest
                && let Some(skipped) = (lo..=hi).find(|a| free(*a) && steps(*a) < steps(furthest))
            {
                return Err(format!(
                    "network {} handed out {} although {} was free before it after the cursor {:?}",
                    network.id,
                    from_u128(furthest, v6),
                    from_u128(skipped, v6),
                    cursor.map(|c| from_u128(c, v6)),
                ));
            }
            if !reused.is_empty() && (lo..=hi).any(&free) {
                return Err(format!(
                    "network {} handed out retired addresses {:?} while {} was free",
                    network.id,
                    reused.iter().map(|a| from_u128(*a, v6)).collect::<Vec<_>>(),
                    from_u128((lo..=hi).find(|a| free(*a)).expect("found"), v6),
                ));
            }
            let stored = new_cursors.get(i).copied().flatten();
            let expected =
                if reused.is_empty() { stored == furthest } else { stored.is_some_and(|c| reused.contains(&c)) };
            if !expected {
                return Err(format!(
                    "network {} stores the cursor {:?} in config {i} after a pass that handed out {:?}",
                    network.id,
                    stored.map(|c| from_u128(c, v6)),
                    free_picks.iter().chain(&reused).map(|a| from_u128(*a, v6)).collect::<Vec<_>>(),
                ));
            }
        }
    }
    Ok(())
}
