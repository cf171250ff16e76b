//! Properties of the swarmalloc engine shared by the stable test suite and the fuzz targets: each
//! takes a structured input, derives `arbitrary::Arbitrary`, and returns `Err` with a readable
//! account of the first violation. The fuzz targets are thin wrappers over the `*_bytes`
//! functions, which decode raw fuzz input exactly as the targets do, so a crash file replays as a
//! stable test.
//!
//! - [`check_restore`]: restore of any stored state, consistent or not (`restore` target).
//! - [`model::check_ops`]: operation sequences against the reference model (`engine_ops` target
//!   and the proptest in `engine/tests/model.rs`).
//!
//! A crate of its own, not part of the engine's, so that a fuzz build can leave it
//! uninstrumented: libFuzzer then steers by the engine's edges alone, not by the model's and the
//! checks' (`scripts/fuzz-rustc-wrapper.sh`).

pub mod model;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::{Arbitrary, Unstructured};
use ipnet::IpNet;

use swarmalloc::*;

pub use model::{Op, check_ops, check_ops_bytes};

/// Runs `property` on every committed fuzz input file under `dir` (a README there excepted), in
/// name order, and panics naming the file on the first failure; returns how many ran. The
/// stable tests of every fuzz target replay their seed corpora and regressions with it.
pub fn committed_inputs(dir: &std::path::Path, property: fn(&[u8]) -> Result<(), String>) -> usize {
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    paths.sort();
    for path in &paths {
        let bytes = std::fs::read(path).expect("readable file");
        if let Err(e) = property(&bytes) {
            panic!("{}: {e}", path.display());
        }
    }
    paths.len()
}

/// The `restore` fuzz target's property over raw bytes: input too short for a [`StoredState`]
/// passes (libFuzzer then tries longer ones).
pub fn check_restore_bytes(data: &[u8]) -> Result<(), String> {
    let Ok(state) = StoredState::arbitrary_take_rest(Unstructured::new(data)) else { return Ok(()) };
    check_restore(&state).map_err(|e| format!("{e}\ninput: {state:#?}"))
}

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
    /// Indexes into the subnet list (the first three are used); a fourth entry makes the stored
    /// IPAM name a driver that does not exist.
    pub subnets: Vec<u8>,
    /// Each subnet's first usable address is its gateway, unless this odd one is given.
    pub odd_gateway: Option<u8>,
    /// One VXLAN id per IPAM config from 4096 + `vni_base % 6` (so networks collide sometimes),
    /// unless an odd list is given. `vni_base / 64` picks what is stored besides the IPAM:
    /// 0 the driver state, 1 none, 2 an empty one, 3 the driver state and address cursors.
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
        let mut out = Vec::new();
        let mut subnets_of: BTreeMap<NetworkId, Vec<IpNet>> = BTreeMap::new();
        for (i, n) in self.networks.iter().enumerate() {
            let (network, subnets) = n.network(network_id(i as u8));
            if let Some(subnets) = subnets {
                subnets_of.insert(network.id.clone(), subnets);
            }
            out.push(Object::Network(network));
        }
        let subnets = |n: u8| subnets_of.get(&network_id(n)).cloned().unwrap_or_default();
        let mut seen = BTreeSet::new();
        let mut add = |object: Object| {
            if seen.insert(object.id()) {
                out.push(object);
            }
        };
        self.services.iter().for_each(|s| add(Object::Service(s.service(&subnets))));
        self.tasks.iter().for_each(|t| add(Object::Task(t.task(&subnets))));
        self.nodes.iter().for_each(|n| add(Object::Node(n.node(&subnets))));
        out
    }
}

impl StoredNetwork {
    /// The network, and the subnets it stores (None: no allocation stored).
    fn network(&self, id: NetworkId) -> (Network, Option<Vec<IpNet>>) {
        let driver = ["overlay", "bridge", "weave"][usize::from(self.driver % 3)];
        let spec = NetworkSpec {
            name: id.to_string(),
            driver: Some(DriverConfig { name: driver.into(), options: BTreeMap::new() }),
            ingress: self.ingress,
            ..Default::default()
        };
        let mut network = Network { id, version: Version(1), spec, driver_state: None, ipam: None };
        let Some(alloc) = &self.alloc else { return (network, None) };
        // Node-local drivers store an empty IPAM; others up to three subnets that do not
        // overlap each other (an odd VXLAN list or gateway still makes some invalid).
        let mut subnets: Vec<IpNet> = Vec::new();
        for index in alloc.subnets.iter().take(3) {
            let subnet: IpNet = SUBNETS[usize::from(*index) % SUBNETS.len()].parse().unwrap();
            if driver != "bridge" && !subnets.iter().any(|s| s.contains(&subnet) || subnet.contains(s)) {
                subnets.push(subnet);
            }
        }
        network.ipam = Some(alloc.ipam(&subnets));
        network.driver_state = alloc.driver_state(driver, subnets.len());
        (network, Some(subnets))
    }
}

impl StoredAlloc {
    fn ipam(&self, subnets: &[IpNet]) -> Ipam {
        let configs = subnets
            .iter()
            .map(|subnet| IpamConfig {
                subnet: Some(*subnet),
                range: None,
                gateway: Some(match self.odd_gateway {
                    Some(g) => address(g, std::slice::from_ref(subnet)).addr(),
                    None => subnet.hosts().next().unwrap_or(subnet.addr()),
                }),
            })
            .collect();
        let driver = if self.subnets.len() > 3 { "gone" } else { DEFAULT_IPAM_DRIVER };
        let mut options = BTreeMap::new();
        if self.vni_base / 64 == 3 {
            // Cursors from the odd gateway's number: sometimes usable, sometimes not.
            let cursor = |subnet: &IpNet| address(self.odd_gateway.unwrap_or(7), std::slice::from_ref(subnet));
            let list: Vec<String> = subnets.iter().map(|s| cursor(s).addr().to_string()).collect();
            options.insert(ADDRESS_CURSOR_OPTION.to_string(), list.join(","));
        }
        Ipam { driver: driver.into(), options, configs }
    }

    fn driver_state(&self, driver: &str, configs: usize) -> Option<DriverConfig> {
        let vnis: Vec<String> = match &self.odd_vnis {
            Some(odd) => odd.iter().take(3).map(|v| (4096 + u32::from(*v % 4)).to_string()).collect(),
            None if driver == "overlay" => {
                (0..configs as u32).map(|i| (4096 + u32::from(self.vni_base % 6) + i).to_string()).collect()
            }
            None => Vec::new(),
        };
        let mut options = BTreeMap::new();
        if !vnis.is_empty() {
            options.insert(VXLAN_ID_LIST_OPTION.to_string(), vnis.join(","));
        }
        match self.vni_base / 64 {
            1 => None,
            2 => Some(DriverConfig::default()),
            _ => Some(DriverConfig { name: driver.into(), options }),
        }
    }
}

impl StoredService {
    fn service(&self, subnets: &impl Fn(u8) -> Vec<IpNet>) -> Service {
        let id = ServiceId::new(format!("s{}", self.id % 4));
        let virtual_ips = self
            .vips
            .iter()
            .take(3)
            .map(|(n, a)| VirtualIp { network_id: network_id(*n), addr: address(*a, &subnets(*n)) })
            .collect();
        let ports = self
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
        Service { id, version: Version(1), spec, endpoint }
    }
}

fn attachment(network: u8, addresses: Vec<IpNet>) -> NetworkAttachment {
    NetworkAttachment {
        network_id: network_id(network),
        addresses,
        aliases: Vec::new(),
        driver_attachment_opts: BTreeMap::new(),
    }
}

impl StoredTask {
    fn task(&self, subnets: &impl Fn(u8) -> Vec<IpNet>) -> Task {
        const STATES: [TaskState; 6] = [
            TaskState::New,
            TaskState::Pending,
            TaskState::Assigned,
            TaskState::Running,
            TaskState::Shutdown,
            TaskState::Failed,
        ];
        let networks = self
            .attachments
            .iter()
            .take(3)
            .map(|(n, addrs)| attachment(*n, addrs.iter().take(2).map(|a| address(*a, &subnets(*n))).collect()))
            .collect();
        Task {
            id: TaskId::new(format!("t{}", self.id % 8)),
            version: Version(1),
            service_id: None,
            node_id: self.node.map(|n| NodeId::new(format!("node{}", n % 3))),
            slot: 0,
            spec: TaskSpec::default(),
            status: TaskStatus { state: STATES[usize::from(self.state) % STATES.len()], message: String::new() },
            desired_state: TaskState::Running,
            networks,
            endpoint: None,
        }
    }
}

impl StoredNode {
    fn node(&self, subnets: &impl Fn(u8) -> Vec<IpNet>) -> Node {
        let attachments = self
            .attachments
            .iter()
            .take(3)
            .map(|(net, a)| attachment(*net, vec![address(*a, &subnets(*net))]))
            .collect();
        Node {
            id: NodeId::new(format!("node{}", self.id % 3)),
            version: Version(1),
            spec: NodeSpec::default(),
            attachments,
        }
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
/// - the queue is in pass order (the ingress first, then networks, services, tasks, nodes); it
///   holds no service that needs no endpoint and holds none; no finding is about an address
///   on a node-local network (the node's business);
/// - one allocation pass over restore's queue, committed, leaves the engine equal to a restore of
///   the new store, and any duplicate left is explained by an allocation error of a loser or its
///   network; a network restore found nothing wrong with keeps its stored subnets and gateways
///   (one that lacked its driver state or VXLAN ids gets only those), and every overlay network
///   the pass wrote has one VXLAN id per IPAM config.
pub fn check_restore(state: &StoredState) -> Result<(), String> {
    let objects = state.objects();
    // "weave" is an installed plugin: a global-scope driver that is not overlay.
    let config = ClusterConfig { network_plugins: vec!["weave".into()], ..ClusterConfig::default() };
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
    check_claimants(&objects, &alloc, &report)?;
    check_report_rules(&objects, &report)?;

    // One pass over the queue, then commit.
    let (proposal, failed) = pass_over_queue(&objects, &alloc, &report);
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
    check_networks_after_pass(&objects, &report, &after)?;
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

/// The conflict ranking of address claimants written out (ARCHITECTURE.md, "Conflict ranking"),
/// not taken from `Holder`'s derived order, which an engine with a swapped ranking would share:
/// gateway, VIP, node LB, live task, retired task; the same kind by id (`Holder`'s order then).
fn claimant_rank(holder: &Holder) -> u8 {
    match holder {
        Holder::Gateway(_) => 0,
        Holder::Vip(_) => 1,
        Holder::NodeLb(_) => 2,
        Holder::Task(_) => 3,
        Holder::Retired(_) => 4,
    }
}

/// Every claimed address has exactly the claimants the objects name, the lowest-ranked holds it,
/// and a duplicate-address finding lists exactly the live losers (no silent double owner).
fn check_claimants(objects: &[Object], alloc: &Allocator, report: &RestoreReport) -> Result<(), String> {
    let named = claimants(objects);
    let mut duplicates = BTreeSet::new();
    for claim in alloc.claimed_addresses() {
        let key = (claim.network.clone(), claim.address.addr());
        let mut engine: Vec<Holder> = vec![claim.holder.clone()];
        engine.extend(claim.losers.iter().cloned());
        let mut expected: Vec<Holder> = named.get(&key).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        expected.sort_by_key(|holder| (claimant_rank(holder), holder.clone()));
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
    Ok(())
}

/// One allocation pass over restore's queue, in its order: the proposal, and the objects whose
/// allocation failed.
fn pass_over_queue(objects: &[Object], alloc: &Allocator, report: &RestoreReport) -> (Proposal, BTreeSet<ObjectId>) {
    let by_id: BTreeMap<ObjectId, &Object> = objects.iter().map(|o| (o.id(), o)).collect();
    let mut failed: BTreeSet<ObjectId> = BTreeSet::new();
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
    (tx.finish(), failed)
}

/// The rules of restore's report that are not about claims (see [`check_restore`]).
fn check_report_rules(objects: &[Object], report: &RestoreReport) -> Result<(), String> {
    let by_id: BTreeMap<ObjectId, &Object> = objects.iter().map(|o| (o.id(), o)).collect();
    // The pass order written out, not the engine's own `pass_rank`, which an engine that ranks
    // the ingress late would agree with (ARCHITECTURE.md, "Pass order"; issue 15 point 4):
    // the ingress network, the other networks, services, tasks, nodes, each kind by id.
    let kind_rank = |object: &Object| match object {
        Object::Network(n) if n.is_ingress() => 0,
        Object::Network(_) => 1,
        Object::Service(_) => 2,
        Object::Task(_) => 3,
        Object::Node(_) => 4,
    };
    let rank = |id: &ObjectId| (kind_rank(by_id[id]), id.clone());
    if let Some(pair) = report.queue.windows(2).find(|pair| rank(&pair[0]) >= rank(&pair[1])) {
        return Err(format!("restore queues {} before {}: not in pass order {:?}", pair[0], pair[1], report.queue));
    }
    for id in &report.queue {
        if let Object::Service(s) = by_id[id]
            && !s.spec.needs_endpoint()
            && s.endpoint.as_ref().is_none_or(|e| e.virtual_ips.is_empty() && e.ports.is_empty())
        {
            return Err(format!("restore queues service {} although it needs no endpoint and holds none", s.id));
        }
    }
    let node_local = |network: &NetworkId| match by_id.get(&ObjectId::Network(network.clone())) {
        Some(Object::Network(n)) => n.scope() == DriverScope::NodeLocal,
        _ => false,
    };
    // A stored subnet without a usable address (an IPv4 /31 or /32, an IPv6 /128) can never
    // have been allocated: libnetwork reserves its first and (IPv4) last address.
    for object in objects {
        let Object::Network(n) = object else { continue };
        let empty = |s: &IpNet| s.prefix_len() >= if s.addr().is_ipv4() { 31 } else { 128 };
        let invalid = |f: &Finding| matches!(f, Finding::InvalidStoredNetwork { network, .. } if *network == n.id);
        if n.ipam.iter().flat_map(|i| &i.configs).filter_map(|c| c.subnet).any(|s| empty(&s))
            && !report.findings.iter().any(invalid)
        {
            return Err(format!("restore accepts network {} with a subnet that has no usable address", n.id));
        }
    }
    for finding in &report.findings {
        let network = match finding {
            Finding::DuplicateAddress { network, .. }
            | Finding::AddressOutsideSubnets { network, .. }
            | Finding::ReservedAddress { network, .. }
            | Finding::UnallocatedNetwork { network, .. } => network,
            _ => continue,
        };
        if node_local(network) {
            return Err(format!("restore reports an address on node-local network {network}: {finding}"));
        }
    }
    // A network loses its subnet or VXLAN id only to one ranked before it, and the ingress ranks
    // before every other network (ARCHITECTURE.md, "Conflict ranking"): an ingress network loses
    // only to another ingress network with a lower id.
    for finding in &report.findings {
        let Finding::NetworkConflict { network, .. } = finding else { continue };
        let is_ingress = |id: &ObjectId| matches!(by_id.get(id), Some(Object::Network(n)) if n.is_ingress());
        let id = ObjectId::Network(network.clone());
        if is_ingress(&id) && !by_id.keys().any(|other| *other < id && is_ingress(other)) {
            return Err(format!("ingress network {network} lost to a network ranked after it: {finding}"));
        }
    }
    Ok(())
}

/// After one committed pass: a network restore found nothing wrong with keeps its stored
/// subnets and gateways, and every overlay network the pass wrote has one VXLAN id per config.
fn check_networks_after_pass(objects: &[Object], report: &RestoreReport, after: &[Object]) -> Result<(), String> {
    let faulty: BTreeSet<&NetworkId> = report
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::InvalidStoredNetwork { network, .. } | Finding::NetworkConflict { network, .. } => Some(network),
            _ => None,
        })
        .collect();
    let now: BTreeMap<ObjectId, &Object> = after.iter().map(|o| (o.id(), o)).collect();
    for object in objects {
        let Object::Network(before) = object else { continue };
        let Some(Object::Network(network)) = now.get(&object.id()) else { continue };
        if let Some(stored) = &before.ipam
            && !faulty.contains(&before.id)
            && network.ipam.as_ref().map(|i| &i.configs) != Some(&stored.configs)
        {
            return Err(format!(
                "network {} had a usable stored IPAM {:?} but the pass wrote {:?}",
                before.id, stored.configs, network.ipam
            ));
        }
        let written = before.ipam != network.ipam || before.driver_state != network.driver_state;
        if written && network.scope() == DriverScope::Overlay {
            let (ipam, driver) = (network.ipam.as_ref(), network.driver_state.as_ref());
            let configs = ipam.map_or(0, |i| i.configs.len());
            let vnis = driver.and_then(|d| d.options.get(VXLAN_ID_LIST_OPTION)).map_or(0, |l| l.split(',').count());
            if vnis != configs {
                return Err(format!(
                    "the pass wrote overlay network {} with {vnis} VXLAN ids for {configs} configs",
                    network.id
                ));
            }
        }
    }
    Ok(())
}
