//! Properties shared by the stable test suite and the fuzz targets (feature `testing`): each takes
//! a structured input, derives `arbitrary::Arbitrary`, and returns `Err` with a readable account of
//! the first violation. The fuzz targets are thin wrappers over these functions.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use ipnet::IpNet;

use crate::*;

/// Subnets a stored network may hold: small, overlapping on purpose, one IPv6.
const SUBNETS: [&str; 8] = [
    "10.0.0.0/29",
    "10.0.0.0/28",
    "10.0.0.8/29",
    "10.0.0.16/28",
    "10.0.0.32/30",
    "10.0.0.48/31",
    "fd00::/125",
    "10.0.0.0/26",
];

/// A committed store as an earlier leader (or a buggy one) may have left it: consistent or not.
/// Ids and addresses come from tiny ranges so that collisions are common.
#[derive(Clone, Debug, Arbitrary)]
pub struct StoredState {
    /// Networks n0..n3.
    pub networks: [StoredNetwork; 4],
    pub services: Vec<StoredService>,
    pub tasks: Vec<StoredTask>,
    pub nodes: Vec<StoredNode>,
    /// Seeds the third restore order.
    pub order: u64,
}

#[derive(Clone, Debug, Arbitrary)]
pub struct StoredNetwork {
    pub ingress: bool,
    /// 0 overlay, 1 bridge (node-local), 2 a global remote driver.
    pub driver: u8,
    pub alloc: Option<StoredAlloc>,
}

#[derive(Clone, Debug, Arbitrary)]
pub struct StoredAlloc {
    /// Indexes into the subnet list.
    pub subnets: Vec<u8>,
    /// Each subnet's first usable address is its gateway, unless this odd one is given.
    pub odd_gateway: Option<u8>,
    /// One VXLAN id per IPv4 subnet from 4096 + base (so networks collide sometimes), unless an
    /// odd list is given.
    pub vni_base: u8,
    pub odd_vnis: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Arbitrary)]
pub struct StoredService {
    pub id: u8,
    /// (network, address) pairs.
    pub vips: Vec<(u8, u8)>,
    /// (protocol, port offset from 30000) pairs.
    pub ports: Vec<(u8, u8)>,
}

#[derive(Clone, Debug, Arbitrary)]
pub struct StoredTask {
    pub id: u8,
    /// Index into a list of task states from NEW to REMOVE.
    pub state: u8,
    pub node: Option<u8>,
    /// (network, addresses) per attachment.
    pub attachments: Vec<(u8, Vec<u8>)>,
}

#[derive(Clone, Debug, Arbitrary)]
pub struct StoredNode {
    pub id: u8,
    pub attachments: Vec<(u8, u8)>,
}

fn network_id(n: u8) -> NetworkId {
    NetworkId::new(format!("n{}", n % 4))
}

/// An address: mostly a host of one of the network's subnets (small, so collisions are common),
/// sometimes anywhere in 10.0.0.0/26 or fd00::/124; with the prefix of a subnet that contains it.
fn address(a: u8, subnets: &[IpNet]) -> IpNet {
    let ip = if a & 0xc0 != 0xc0 && !subnets.is_empty() {
        let subnet = subnets[usize::from(a & 0x3) % subnets.len()];
        let size = 1u128 << (if subnet.addr().is_ipv4() { 32 } else { 128 } - u32::from(subnet.prefix_len())).min(8);
        let offset = u128::from(a >> 2) % size;
        match subnet {
            IpNet::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) + offset as u32)),
            IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) + offset)),
        }
    } else if a & 0x20 == 0 {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, a % 64))
    } else {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(a % 16)))
    };
    let prefix =
        subnets.iter().find(|s| s.contains(&ip)).map_or(if ip.is_ipv4() { 32 } else { 128 }, |s| s.prefix_len());
    IpNet::new(ip, prefix).expect("valid prefix")
}

impl StoredState {
    /// The committed objects, one per id (the first occurrence wins, as a store has unique ids).
    pub fn objects(&self) -> Vec<Object> {
        let mut seen = BTreeSet::new();
        let mut subnets_of: BTreeMap<NetworkId, Vec<IpNet>> = BTreeMap::new();
        let mut out = Vec::new();
        for (i, n) in self.networks.iter().enumerate() {
            let id = network_id(i as u8);
            let driver = ["overlay", "bridge", "weave"][usize::from(n.driver % 3)];
            let mut network = Network {
                id: id.clone(),
                version: Version(1),
                spec: NetworkSpec {
                    name: id.to_string(),
                    driver: Some(DriverConfig { name: driver.into(), options: BTreeMap::new() }),
                    ingress: n.ingress,
                    ..Default::default()
                },
                driver_state: None,
                ipam: None,
            };
            if let Some(alloc) = &n.alloc {
                // Node-local drivers store an empty IPAM; others up to three subnets that do not
                // overlap each other (an odd VXLAN list or gateway still makes some invalid).
                let mut subnets: Vec<IpNet> = Vec::new();
                for index in alloc.subnets.iter().take(3) {
                    let subnet: IpNet = SUBNETS[usize::from(*index) % SUBNETS.len()].parse().unwrap();
                    if driver != "bridge" && !subnets.iter().any(|s| s.contains(&subnet) || subnet.contains(s)) {
                        subnets.push(subnet);
                    }
                }
                let configs = subnets
                    .iter()
                    .map(|subnet| IpamConfig {
                        subnet: Some(*subnet),
                        range: None,
                        gateway: Some(match alloc.odd_gateway {
                            Some(g) => address(g, std::slice::from_ref(subnet)).addr(),
                            None => subnet.hosts().next().unwrap_or(subnet.addr()),
                        }),
                    })
                    .collect();
                let v4 = subnets.iter().filter(|s| s.addr().is_ipv4()).count() as u32;
                let vnis: Vec<String> = match &alloc.odd_vnis {
                    Some(odd) => odd.iter().take(3).map(|v| (4096 + u32::from(*v % 4)).to_string()).collect(),
                    None if driver == "overlay" => {
                        (0..v4).map(|i| (4096 + u32::from(alloc.vni_base % 6) + i).to_string()).collect()
                    }
                    None => Vec::new(),
                };
                let mut options = BTreeMap::new();
                if !vnis.is_empty() {
                    options.insert(VXLAN_ID_LIST_OPTION.to_string(), vnis.join(","));
                }
                network.ipam = Some(Ipam { driver: DEFAULT_IPAM_DRIVER.into(), configs });
                network.driver_state = Some(DriverConfig { name: driver.into(), options });
                subnets_of.insert(id, subnets);
            }
            out.push(Object::Network(network));
        }
        let subnets = |n: u8| subnets_of.get(&network_id(n)).cloned().unwrap_or_default();
        for s in &self.services {
            let id = ServiceId::new(format!("s{}", s.id % 4));
            if !seen.insert(ObjectId::Service(id.clone())) {
                continue;
            }
            let virtual_ips = s
                .vips
                .iter()
                .take(3)
                .map(|(n, a)| VirtualIp { network_id: network_id(*n), addr: address(*a, &subnets(*n)) })
                .collect();
            let ports = s
                .ports
                .iter()
                .take(3)
                .map(|(p, o)| PortConfig {
                    name: String::new(),
                    protocol: Protocol::ALL[usize::from(*p % 3)],
                    target_port: 80,
                    published_port: 30000 + u16::from(*o % 8),
                    publish_mode: PublishMode::Ingress,
                })
                .collect();
            let spec = ServiceSpec { name: id.to_string(), ..Default::default() };
            let endpoint = Some(Endpoint { spec: EndpointSpec::default(), ports, virtual_ips });
            out.push(Object::Service(Service { id, version: Version(1), spec, endpoint }));
        }
        const STATES: [TaskState; 6] = [
            TaskState::New,
            TaskState::Pending,
            TaskState::Assigned,
            TaskState::Running,
            TaskState::Shutdown,
            TaskState::Failed,
        ];
        for t in &self.tasks {
            let id = TaskId::new(format!("t{}", t.id % 8));
            if !seen.insert(ObjectId::Task(id.clone())) {
                continue;
            }
            let networks = t
                .attachments
                .iter()
                .take(3)
                .map(|(n, addrs)| NetworkAttachment {
                    network_id: network_id(*n),
                    addresses: addrs.iter().take(2).map(|a| address(*a, &subnets(*n))).collect(),
                    aliases: Vec::new(),
                    driver_attachment_opts: BTreeMap::new(),
                })
                .collect();
            out.push(Object::Task(Task {
                id,
                version: Version(1),
                service_id: None,
                node_id: t.node.map(|n| NodeId::new(format!("node{}", n % 3))),
                slot: 0,
                spec: TaskSpec::default(),
                status: TaskStatus { state: STATES[usize::from(t.state) % STATES.len()], message: String::new() },
                desired_state: TaskState::Running,
                networks,
                endpoint: None,
            }));
        }
        for n in &self.nodes {
            let id = NodeId::new(format!("node{}", n.id % 3));
            if !seen.insert(ObjectId::Node(id.clone())) {
                continue;
            }
            let attachments = n
                .attachments
                .iter()
                .take(3)
                .map(|(net, a)| NetworkAttachment {
                    network_id: network_id(*net),
                    addresses: vec![address(*a, &subnets(*net))],
                    aliases: Vec::new(),
                    driver_attachment_opts: BTreeMap::new(),
                })
                .collect();
            out.push(Object::Node(Node { id, version: Version(1), spec: NodeSpec::default(), attachments }));
        }
        out
    }
}

fn shuffled<T: Clone>(items: &[T], mut seed: u64) -> Vec<T> {
    let mut out = items.to_vec();
    for i in (1..out.len()).rev() {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        out.swap(i, (seed >> 33) as usize % (i + 1));
    }
    out
}

/// Every claimant the objects name for each (network, address), re-derived from the objects alone.
fn claimants(objects: &[Object]) -> BTreeMap<(NetworkId, IpAddr), BTreeSet<Holder>> {
    let mut out: BTreeMap<(NetworkId, IpAddr), BTreeSet<Holder>> = BTreeMap::new();
    let mut add = |network: &NetworkId, ip: IpAddr, holder: Holder| {
        out.entry((network.clone(), ip)).or_default().insert(holder);
    };
    for object in objects {
        match object {
            Object::Network(n) => {
                for config in n.ipam.iter().flat_map(|i| &i.configs) {
                    if let Some(gateway) = config.gateway {
                        add(&n.id, gateway, Holder::Gateway(n.id.clone()));
                    }
                }
            }
            Object::Service(s) => {
                for vip in s.endpoint.iter().flat_map(|e| &e.virtual_ips) {
                    add(&vip.network_id, vip.addr.addr(), Holder::Vip(s.id.clone()));
                }
            }
            Object::Task(t) => {
                let holder =
                    if t.status.state.is_live() { Holder::Task(t.id.clone()) } else { Holder::Retired(t.id.clone()) };
                for a in &t.networks {
                    for addr in &a.addresses {
                        add(&a.network_id, addr.addr(), holder.clone());
                    }
                }
            }
            Object::Node(n) => {
                for a in &n.attachments {
                    for addr in &a.addresses {
                        add(&a.network_id, addr.addr(), Holder::NodeLb(n.id.clone()));
                    }
                }
            }
        }
    }
    out
}

/// Restore of any stored state, consistent or not:
/// - never panics and gives an equal engine whatever the order of its input;
/// - every claimed address has exactly the claimants the objects name, the lowest-ranked holds it,
///   and a duplicate-address finding lists exactly the live losers (no silent double owner);
/// - one allocation pass over restore's queue, committed, leaves the engine equal to a restore of
///   the new store, and any duplicate left is explained by an allocation error of a loser or its network.
pub fn check_restore(state: &StoredState) -> Result<(), String> {
    let objects = state.objects();
    let config = ClusterConfig::default();
    let restore = |objects: &[Object]| Allocator::restore(config.clone(), objects.iter().map(Object::as_ref));
    let (alloc, report) = restore(&objects).map_err(|e| e.to_string())?;
    let reversed: Vec<Object> = objects.iter().rev().cloned().collect();
    for (name, order) in [("reversed", reversed), ("shuffled", shuffled(&objects, state.order))] {
        let (other, other_report) = restore(&order).map_err(|e| e.to_string())?;
        if let Some(diff) = alloc.diff(&other) {
            return Err(format!("restore in {name} order differs:\n{diff}"));
        }
        if other_report != report {
            return Err(format!("restore report in {name} order differs:\n{report:#?}\nvs\n{other_report:#?}"));
        }
    }

    let named = claimants(&objects);
    let mut duplicates = BTreeSet::new();
    for claim in alloc.claimed_addresses() {
        let key = (claim.network.clone(), claim.address.addr());
        let mut engine: Vec<Holder> = vec![claim.holder.clone()];
        engine.extend(claim.losers.iter().cloned());
        let expected: Vec<Holder> = named.get(&key).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        if engine != expected {
            return Err(format!(
                "address {} on network {}: engine claimants {engine:?}, objects name {expected:?}",
                key.1, key.0
            ));
        }
        if claim.losers.iter().any(|h| !h.is_retired()) {
            duplicates.insert(key);
        }
    }
    let reported: BTreeSet<(NetworkId, IpAddr)> = report
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::DuplicateAddress { network, address, .. } => Some((network.clone(), *address)),
            _ => None,
        })
        .collect();
    if reported != duplicates {
        return Err(format!("duplicate-address findings {reported:?} but contested addresses {duplicates:?}"));
    }

    // One pass over the queue, then commit.
    let by_id: BTreeMap<ObjectId, &Object> = objects.iter().map(|o| (o.id(), o)).collect();
    let mut failed: BTreeSet<ObjectId> = BTreeSet::new();
    let proposal = {
        let mut tx = alloc.begin();
        for id in &report.queue {
            let result = match by_id[id] {
                Object::Network(n) => tx.allocate_network(n),
                Object::Service(s) => tx.allocate_service(s),
                Object::Task(t) => tx.allocate_task(t, None),
                Object::Node(n) => tx.allocate_node(n),
            };
            if result.is_err() {
                failed.insert(id.clone());
            }
        }
        tx.finish()
    };
    let mut store: BTreeMap<ObjectId, Object> = objects.iter().map(|o| (o.id(), o.clone())).collect();
    for update in proposal.updates() {
        store.insert(update.id(), update.clone());
    }
    let mut committed = alloc.clone();
    committed.commit(&proposal);
    let after: Vec<Object> = store.into_values().collect();
    let (fresh, fresh_report) = restore(&after).map_err(|e| e.to_string())?;
    if let Some(diff) = committed.diff(&fresh) {
        return Err(format!("after committing the restore queue's pass, engine differs from restore:\n{diff}"));
    }
    for finding in &fresh_report.findings {
        if let Finding::DuplicateAddress { network, lost, .. } = finding {
            let explained = failed.contains(&ObjectId::Network(network.clone()))
                || lost.iter().all(|h| failed.contains(&h.object()));
            if !explained {
                return Err(format!("after one pass a duplicate remains without an allocation error: {finding}"));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Operation sequences

/// One step of an operation sequence: a committed write by a user, the orchestrator or an agent,
/// an allocation pass and its outcome, or a failover.
#[derive(Clone, Debug, Arbitrary)]
pub enum Op {
    /// `kind`: 0 default, 1 small explicit (`subnet` picks it), 2 dual-stack, 3 ingress, 4 bridge, 5 attachable.
    CreateNetwork {
        kind: u8,
        subnet: u8,
    },
    DeleteNetwork(u8),
    CreateService {
        networks: Vec<u8>,
        ports: Vec<(u8, u8, bool)>,
        dnsrr: bool,
    },
    UpdateService {
        service: u8,
        networks: Vec<u8>,
        ports: Vec<(u8, u8, bool)>,
        dnsrr: bool,
    },
    DeleteService(u8),
    CreateTask {
        service: u8,
    },
    Container {
        network: u8,
        requested: Option<u8>,
    },
    /// `state`: 0 RUNNING (assigned to a node), 1 SHUTDOWN, 2 FAILED.
    SetState {
        task: u8,
        state: u8,
        node: u8,
    },
    DeleteTask(u8),
    CreateNode,
    DeleteNode(u8),
    /// `end`: 0 commit all, 1 commit a prefix of length `k`, 2 drop.
    Pass {
        end: u8,
        k: u8,
    },
    Restore {
        order: u64,
    },
}

/// A small tight config so that pools, ports and VXLAN ids run out.
pub fn tight_config() -> ClusterConfig {
    ClusterConfig {
        default_address_pools: vec!["10.0.0.0/26".parse().expect("valid")],
        subnet_size: 28,
        dynamic_port_range: Range { min: 30000, max: 30003 },
        vxlan_id_range: Range { min: 4096, max: 4101 },
    }
}

struct OpsWorld {
    alloc: Allocator,
    store: BTreeMap<ObjectId, Object>,
    next_id: u32,
    version: u64,
}

impl OpsWorld {
    fn pick(&self, kind: fn(&Object) -> bool, index: u8) -> Option<Object> {
        let items: Vec<&Object> = self.store.values().filter(|o| kind(o)).collect();
        (!items.is_empty()).then(|| items[usize::from(index) % items.len()].clone())
    }

    fn network_ids(&self) -> Vec<NetworkId> {
        self.store
            .values()
            .filter_map(|o| match o {
                Object::Network(n) if !n.is_ingress() => Some(n.id.clone()),
                _ => None,
            })
            .collect()
    }

    fn write(&mut self, mut object: Object) {
        self.version += 1;
        object.set_version(Version(self.version));
        self.alloc.observe(object.as_ref());
        self.store.insert(object.id(), object);
    }

    fn delete(&mut self, id: ObjectId) {
        self.store.remove(&id);
        self.alloc.observe_deleted(&id);
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:03}", self.next_id)
    }

    fn service_spec(&self, name: &str, networks: &[u8], ports: &[(u8, u8, bool)], dnsrr: bool) -> ServiceSpec {
        let ids = self.network_ids();
        let task_networks = if ids.is_empty() {
            Vec::new()
        } else {
            networks
                .iter()
                .take(3)
                .map(|n| NetworkAttachmentConfig::to(ids[usize::from(*n) % ids.len()].clone()))
                .collect()
        };
        let ports = ports
            .iter()
            .take(3)
            .map(|(protocol, published, host)| PortConfig {
                name: String::new(),
                protocol: Protocol::ALL[usize::from(*protocol % 3)],
                target_port: 80 + u16::from(*published % 4),
                published_port: if published % 2 == 0 { 0 } else { 30000 + u16::from(published % 6) },
                publish_mode: if *host { PublishMode::Host } else { PublishMode::Ingress },
            })
            .collect();
        let mode = if dnsrr { ResolutionMode::Dnsrr } else { ResolutionMode::Vip };
        ServiceSpec {
            name: name.into(),
            replicas: 1,
            task_networks,
            endpoint: Some(EndpointSpec { mode, ports }),
            ..Default::default()
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::CreateNetwork { kind, subnet } => {
                let id = self.fresh("net");
                let mut spec = NetworkSpec { name: id.clone(), ..Default::default() };
                let config = |s: &str| IpamConfig { subnet: Some(s.parse().expect("valid")), ..Default::default() };
                match kind % 6 {
                    1 => {
                        let subnets = ["192.168.0.0/29", "192.168.0.0/30", "192.168.0.8/31", "192.168.0.16/32"];
                        let configs = vec![config(subnets[usize::from(*subnet) % subnets.len()])];
                        spec.ipam = Some(Ipam { driver: String::new(), configs });
                    }
                    2 => {
                        let configs = vec![config("192.168.1.0/30"), config("fd00::/126")];
                        spec.ipam = Some(Ipam { driver: String::new(), configs });
                    }
                    3 => spec.ingress = true,
                    4 => spec.driver = Some(DriverConfig { name: "bridge".into(), options: BTreeMap::new() }),
                    5 => spec.attachable = true,
                    _ => {}
                }
                self.write(Object::Network(Network {
                    id: NetworkId::new(id),
                    version: Version(0),
                    spec,
                    driver_state: None,
                    ipam: None,
                }));
            }
            Op::DeleteNetwork(i) => {
                // The control API refuses while a service or a desired-running live task uses it.
                if let Some(Object::Network(n)) = self.pick(|o| matches!(o, Object::Network(_)), *i) {
                    let in_use = self.store.values().any(|o| match o {
                        Object::Service(s) => s.spec.task_networks.iter().any(|c| c.target == n.id),
                        Object::Task(t) => {
                            t.desired_state <= TaskState::Running
                                && t.status.state.is_live()
                                && (t.networks.iter().any(|a| a.network_id == n.id)
                                    || t.spec.networks.iter().any(|c| c.target == n.id))
                        }
                        _ => false,
                    });
                    if !in_use {
                        self.delete(ObjectId::Network(n.id));
                    }
                }
            }
            Op::CreateService { networks, ports, dnsrr } => {
                let id = self.fresh("svc");
                let spec = self.service_spec(&id, networks, ports, *dnsrr);
                self.write(Object::Service(Service {
                    id: ServiceId::new(id),
                    version: Version(0),
                    spec,
                    endpoint: None,
                }));
            }
            Op::UpdateService { service, networks, ports, dnsrr } => {
                if let Some(Object::Service(mut s)) = self.pick(|o| matches!(o, Object::Service(_)), *service) {
                    s.spec = self.service_spec(&s.spec.name, networks, ports, *dnsrr);
                    self.write(Object::Service(s));
                }
            }
            Op::DeleteService(i) => {
                if let Some(Object::Service(s)) = self.pick(|o| matches!(o, Object::Service(_)), *i) {
                    self.delete(ObjectId::Service(s.id));
                }
            }
            Op::CreateTask { service } => {
                if let Some(Object::Service(s)) = self.pick(|o| matches!(o, Object::Service(_)), *service) {
                    let id = self.fresh("task");
                    self.write(Object::Task(new_task(&id, Some(s.id), None)));
                }
            }
            Op::Container { network, requested } => {
                let ids = self.network_ids();
                if !ids.is_empty() {
                    let target = ids[usize::from(*network) % ids.len()].clone();
                    let id = self.fresh("ctr");
                    let mut config = NetworkAttachmentConfig::to(target);
                    config.addresses =
                        requested.map(|r| IpAddr::V4(Ipv4Addr::new(10, 0, 0, r % 64))).into_iter().collect();
                    self.write(Object::Task(new_task(&id, None, Some(config))));
                }
            }
            Op::SetState { task, state, node } => {
                let node = self.pick(|o| matches!(o, Object::Node(_)), *node).map(|n| n.id());
                if let Some(Object::Task(mut t)) = self.pick(|o| matches!(o, Object::Task(_)), *task)
                    && t.status.state != TaskState::New
                {
                    match state % 3 {
                        0 => {
                            if let Some(ObjectId::Node(node)) = node {
                                t.node_id.get_or_insert(node);
                            }
                            if t.status.state.is_live() {
                                t.status.state = TaskState::Running;
                            }
                        }
                        1 => t.status.state = TaskState::Shutdown.max(t.status.state),
                        _ => t.status.state = TaskState::Failed.max(t.status.state),
                    }
                    self.write(Object::Task(t));
                }
            }
            Op::DeleteTask(i) => {
                if let Some(task) = self.pick(|o| matches!(o, Object::Task(_)), *i) {
                    self.delete(task.id());
                }
            }
            Op::CreateNode => {
                let id = self.fresh("node");
                self.write(Object::Node(Node {
                    id: NodeId::new(id),
                    version: Version(0),
                    spec: NodeSpec::default(),
                    attachments: Vec::new(),
                }));
            }
            Op::DeleteNode(i) => {
                if let Some(node) = self.pick(|o| matches!(o, Object::Node(_)), *i) {
                    self.delete(node.id());
                }
            }
            Op::Pass { end, k } => {
                let before = format!("{:?}", self.alloc);
                let proposal = self.pass();
                if format!("{:?}", self.alloc) != before {
                    return Err("building a proposal changed the engine".into());
                }
                let landed = match end % 3 {
                    0 => proposal.len(),
                    1 => usize::from(*k) % (proposal.len() + 1),
                    _ => 0,
                };
                for update in &proposal.updates()[..landed] {
                    self.version += 1;
                    self.store.insert(update.id(), update.clone());
                }
                self.alloc.commit_prefix(&proposal, landed);
            }
            Op::Restore { order } => {
                let objects: Vec<Object> = shuffled(&self.store.values().cloned().collect::<Vec<_>>(), *order);
                let (alloc, _) = Allocator::restore(self.alloc.config().clone(), objects.iter().map(Object::as_ref))
                    .map_err(|e| e.to_string())?;
                self.alloc = alloc;
            }
        }
        Ok(())
    }

    /// Allocates every object, in dependency order, in one transaction.
    fn pass(&self) -> Proposal {
        let mut tx = self.alloc.begin();
        let mut objects: Vec<&Object> = self.store.values().collect();
        objects.sort_by_key(|o| !matches!(o, Object::Network(n) if n.is_ingress()));
        for kind in 0..4 {
            for object in &objects {
                let _ = match (kind, object) {
                    (0, Object::Network(n)) => tx.allocate_network(n),
                    (1, Object::Service(s)) => tx.allocate_service(s),
                    (2, Object::Task(t)) => {
                        let service =
                            t.service_id.as_ref().and_then(|id| match self.store.get(&ObjectId::Service(id.clone())) {
                                Some(Object::Service(s)) => Some(s),
                                _ => None,
                            });
                        tx.allocate_task(t, service)
                    }
                    (3, Object::Node(n)) => tx.allocate_node(n),
                    _ => continue,
                };
            }
        }
        tx.finish()
    }
}

fn new_task(id: &str, service: Option<ServiceId>, network: Option<NetworkAttachmentConfig>) -> Task {
    Task {
        id: TaskId::new(id),
        version: Version(0),
        service_id: service,
        node_id: None,
        slot: 0,
        spec: TaskSpec { networks: network.into_iter().collect() },
        status: TaskStatus::default(),
        desired_state: TaskState::Running,
        networks: Vec::new(),
        endpoint: None,
    }
}

/// Invariants of a committed store written only through the engine, derived from the objects
/// alone: one live holder per address, addresses inside their subnets and off reserved ones,
/// subnets that never overlap, unique VXLAN ids, unique ingress ports per protocol.
pub fn check_store(store: &BTreeMap<ObjectId, Object>) -> Result<(), String> {
    let mut subnets: Vec<(IpNet, NetworkId)> = Vec::new();
    let mut vnis: BTreeMap<u32, NetworkId> = BTreeMap::new();
    let mut pools: BTreeMap<NetworkId, Vec<IpNet>> = BTreeMap::new();
    for object in store.values() {
        let Object::Network(n) = object else { continue };
        let Some(ipam) = &n.ipam else { continue };
        for subnet in ipam.configs.iter().filter_map(|c| c.subnet) {
            if let Some((other, owner)) = subnets.iter().find(|(s, _)| s.contains(&subnet) || subnet.contains(s)) {
                return Err(format!("subnet {subnet} of network {} overlaps {other} of network {owner}", n.id));
            }
            subnets.push((subnet, n.id.clone()));
            pools.entry(n.id.clone()).or_default().push(subnet);
        }
        let list = n.driver_state.as_ref().and_then(|d| d.options.get(VXLAN_ID_LIST_OPTION));
        for vni in list.into_iter().flat_map(|l| l.split(',')).filter_map(|v| v.parse::<u32>().ok()) {
            if let Some(owner) = vnis.insert(vni, n.id.clone()) {
                return Err(format!("VXLAN id {vni} held by networks {owner} and {}", n.id));
            }
        }
    }
    let mut live: BTreeMap<(NetworkId, IpAddr), Holder> = BTreeMap::new();
    for (key, holders) in claimants(&store.values().cloned().collect::<Vec<_>>()) {
        let Some(subnets) = pools.get(&key.0) else { continue };
        let live_holders: Vec<&Holder> = holders.iter().filter(|h| !h.is_retired()).collect();
        if live_holders.len() > 1 {
            return Err(format!("address {} on network {} held by {live_holders:?}", key.1, key.0));
        }
        let Some(holder) = live_holders.first() else { continue };
        let inside = subnets.iter().any(|s| {
            s.contains(&key.1) && {
                let (lo, hi) = crate::index::usable_hosts(s);
                (lo..=hi).contains(&crate::index::ip_to_u128(key.1))
            }
        });
        if !inside {
            return Err(format!("{holder} has {} on network {}, not a usable address of {subnets:?}", key.1, key.0));
        }
        live.insert(key, (*holder).clone());
    }
    let mut ports: BTreeMap<(Protocol, u16), ServiceId> = BTreeMap::new();
    for object in store.values() {
        let Object::Service(s) = object else { continue };
        let mut own = BTreeSet::new();
        for port in s.endpoint.iter().flat_map(|e| &e.ports) {
            if port.publish_mode != PublishMode::Ingress || !own.insert((port.protocol, port.published_port)) {
                continue;
            }
            if let Some(owner) = ports.insert((port.protocol, port.published_port), s.id.clone()) {
                return Err(format!(
                    "port {}/{} published by {owner} and {}",
                    port.protocol, port.published_port, s.id
                ));
            }
        }
    }
    Ok(())
}

/// Any operation sequence: after every step the engine equals a restore of the committed store,
/// building a proposal never changes the engine, and the committed store keeps its invariants.
pub fn check_ops(ops: &[Op]) -> Result<(), String> {
    let mut world = OpsWorld {
        alloc: Allocator::new(tight_config()).map_err(|e| e.to_string())?,
        store: BTreeMap::new(),
        next_id: 0,
        version: 0,
    };
    for (step, op) in ops.iter().take(64).enumerate() {
        world.apply(op).map_err(|e| format!("step {step} {op:?}: {e}"))?;
        let (fresh, _) =
            Allocator::restore(tight_config(), world.store.values().map(Object::as_ref)).map_err(|e| e.to_string())?;
        if let Some(diff) = world.alloc.diff(&fresh) {
            return Err(format!("step {step} {op:?}: engine differs from restore of the store:\n{diff}"));
        }
        check_store(&world.store).map_err(|e| format!("step {step} {op:?}: {e}"))?;
    }
    Ok(())
}
