//! The engine's only state: an index of what committed objects claim (subnets, VXLAN ids,
//! addresses, published ports), maintained by `observe`. Every entry is a function of the set of
//! committed objects, never of the order they were seen in: each resource keeps the set of its
//! claimants and the lowest-ranked claimant holds it (see [`Holder`]).
//!
//! `ranking` settles who holds what, `pools` parses a network's stored allocation, `lookups`
//! answers questions of the index; this file keeps the index itself and mirrors committed
//! objects into it (`observe`, restore's `observe_all`).

mod ip;
mod lookups;
mod pools;
mod ranking;

pub(crate) use ip::{ip_to_u128, u128_to_ip};
pub(crate) use lookups::{Fnv, NETWORKS_HASHED_FROM, NetworkLookup, claimed_addresses};
pub(crate) use pools::{NetAlloc, NetEntry, Placement, Pool, parse_vni_list, write_cursors};
pub use ranking::Holder;
pub(crate) use ranking::{Claims, SubnetEntry, find_overlap, overlaps, unclaim};

use lookups::{distinct_networks, node_needs_of};
use pools::claim_gateways;
use ranking::claim;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::ClusterConfig;
use crate::few::Few;
use crate::ids::{NetworkId, NodeId, ServiceId, TaskId};
use crate::objects::{Network, Node, ObjectId, ObjectRef, PublishMode, Service, Task, TaskState};

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
}
#[cfg(feature = "legacy")]
impl State {
    /// B2: the old restore did not re-reserve service VIPs in IPAM (the services stay known, with
    /// their VIPs, but the addresses are free for the next pick).
    pub(crate) fn drop_vip_claims(&mut self) {
        let vips: Vec<(crate::ids::ServiceId, crate::ids::NetworkId, ipnet::IpNet)> = self
            .services
            .iter()
            .flat_map(|(id, entry)| entry.vips.iter().map(move |(n, ip)| (id.clone(), n.clone(), *ip)))
            .collect();
        for (service, network, ip) in vips {
            self.unclaim_addr(&network, ip.addr(), &crate::index::Holder::Vip(service));
        }
    }

    /// B8: the old restore did not re-reserve dynamically published ports.
    pub(crate) fn drop_dynamic_port_claims(&mut self, services: &[&crate::objects::Service]) {
        for service in services {
            let Some(endpoint) = &service.endpoint else { continue };
            for port in &endpoint.ports {
                let dynamic = endpoint.spec.ports.iter().any(|spec| {
                    spec.published_port == 0
                        && spec.publish_mode == crate::objects::PublishMode::Ingress
                        && spec.name == port.name
                        && spec.protocol == port.protocol
                        && spec.target_port == port.target_port
                });
                if dynamic && port.published_port != 0 {
                    crate::index::unclaim(&mut self.ports, (port.protocol, port.published_port), &service.id);
                }
            }
        }
    }
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
