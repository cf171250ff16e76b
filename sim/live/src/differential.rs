//! The differential: the same operation applied to a real swarm and to the engine must give the
//! same allocation. Per step, the engine starts from the real swarm's settled state before the
//! step (the engine's state is a function of the committed store, so that is all it needs), gets
//! the step's new and changed objects as the real orchestrator made them (same ids) but without
//! what the real allocator wrote, allocates them with the simulator's allocator loop
//! (`swarmalloc_sim::alloc_loop`, over the simulator's store) until it has nothing left to do,
//! and the result is compared with what the real allocator wrote: subnets, gateways, VXLAN ids,
//! VIPs, published ports, node load-balancer addresses, and per service the set of its tasks'
//! addresses (which task gets which address differs by design).
//!
//! A difference that ARCHITECTURE.md's "Design decisions that differ from SwarmKit" lists is
//! tolerated and printed by name ([`KNOWN_DIFFERENCES`]); any other is a mismatch.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use swarmalloc::{
    ClusterConfig, NetworkAttachment, NetworkId, NetworkSpec, Node, NodeAvailability, NodeId, NodeRole, NodeSpec,
    Object, TaskState, VXLAN_ID_LIST_OPTION,
};
use swarmalloc_sim::alloc_loop::{AllocLoop, BatchStep};
use swarmalloc_sim::store::{Change, Origin, ProposalId, Store, Txn};

fn txn(seq: u64, origin: Origin, changes: Vec<Change>) -> Txn {
    Txn { id: ProposalId { node: 0, incarnation: 0, seq }, origin, changes }
}

/// The simulator's store holding `objects` (for its checkers and its allocator loop). Errs
/// when two objects share an id.
pub fn store_of(config: &ClusterConfig, objects: Vec<Object>) -> Result<Store, String> {
    let mut store = Store::default();
    let mut changes = vec![Change::InitCluster { config: config.clone() }];
    changes.extend(objects.into_iter().map(|object| Change::Create { object }));
    store.apply(1, &txn(1, Origin::Bootstrap, changes)).map_err(|e| format!("the simulator's store: {e}"))?;
    Ok(store)
}

/// What the engine makes of `objects` (a store): the simulator's allocator loop restores from
/// them and runs passes, committing each batch, until it has no work left.
pub fn engine_allocation(config: &ClusterConfig, objects: Vec<Object>) -> Result<Vec<Object>, String> {
    let mut store = store_of(config, objects)?;
    let mut index = store.applied;
    // Rounds of restore and passes until a round changes nothing: the simulator's loop does not
    // look at its own commits, and a node's load balancers follow the tasks allocated on it,
    // which in a simulation another writer's later change to those tasks (an agent's status
    // report) brings back to the loop.
    for _ in 0..10 {
        let (mut alloc, _) = AllocLoop::restore(&store, usize::MAX, false);
        let mut updates = 0;
        while let (Some(mut changes), _) = alloc.pass(&store) {
            loop {
                index += 1;
                updates += changes.len();
                let id = txn(index, Origin::Allocator, Vec::new()).id;
                alloc.proposed(id);
                let result = store.apply(index, &txn(index, Origin::Allocator, changes));
                match alloc.applied(&store, id, &result) {
                    BatchStep::Propose(next) => changes = next,
                    BatchStep::Done { .. } | BatchStep::Ignored => break,
                }
            }
        }
        if updates == 0 {
            break;
        }
    }
    Ok(store.objects().map(|o| o.to_owned()).collect())
}

/// The engine's input for one step: the state after the step (`next`, as the real swarm shows
/// it) with what the real allocator wrote in the step taken back: objects that existed before
/// keep their allocation from `before`; new ones have none (new tasks are NEW again). Networks
/// take their spec from `created` when it has one of that name (inspect shows the allocation
/// only, not the subnets the user asked for).
pub fn engine_input(before: &[Object], next: &[Object], created: &[NetworkSpec]) -> Vec<Object> {
    let before: BTreeMap<_, &Object> = before.iter().map(|o| (o.id(), o)).collect();
    next.iter()
        .map(|object| {
            let old = before.get(&object.id());
            match (object, old) {
                (Object::Network(n), old) => {
                    let spec =
                        created.iter().find(|s| s.name == n.spec.name).cloned().unwrap_or_else(|| n.spec.clone());
                    let network = match old {
                        Some(Object::Network(o)) => swarmalloc::Network { spec, ..(*o).clone() },
                        _ => swarmalloc::Network { spec, ipam: None, driver_state: None, ..n.clone() },
                    };
                    Object::Network(network)
                }
                (Object::Service(s), old) => {
                    let endpoint = match old {
                        Some(Object::Service(o)) => o.endpoint.clone(),
                        _ => None,
                    };
                    Object::Service(swarmalloc::Service { endpoint, ..s.clone() })
                }
                (Object::Task(t), Some(Object::Task(o))) => Object::Task(swarmalloc::Task {
                    networks: o.networks.clone(),
                    endpoint: o.endpoint.clone(),
                    ..t.clone()
                }),
                (Object::Task(t), _) => {
                    let mut task = t.clone();
                    task.networks.clear();
                    task.endpoint = None;
                    if task.status.state > TaskState::New && task.status.state <= TaskState::Running {
                        task.status = swarmalloc::TaskStatus { state: TaskState::New, message: String::new() };
                    }
                    Object::Task(task)
                }
                (Object::Node(n), old) => {
                    let attachments = match old {
                        Some(Object::Node(o)) => o.attachments.clone(),
                        _ => Vec::new(),
                    };
                    Object::Node(swarmalloc::Node { attachments, ..n.clone() })
                }
            }
        })
        .collect()
}

/// What the differential compares, keyed by Docker names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Per network: its subnets (with gateway and range) in order, and its VXLAN ids.
    pub networks: BTreeMap<String, NetworkFacts>,
    /// Per service: VIPs and published ports.
    pub services: BTreeMap<String, ServiceFacts>,
    /// Per service, per network: its tasks' addresses, sorted (a multiset).
    pub task_addresses: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Per standalone container's attachment task (by id): its addresses per network.
    pub containers: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Per network: the load-balancer addresses of the (one) node.
    pub load_balancers: BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkFacts {
    pub subnets: Vec<String>,
    pub vxlan_ids: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceFacts {
    pub vips: BTreeMap<String, String>,
    pub ports: BTreeSet<String>,
}

/// Id to Docker name of the networks (`networks` true) or the services in `objects`.
fn names(objects: &[Object], networks: bool) -> BTreeMap<String, String> {
    objects
        .iter()
        .filter_map(|o| match o {
            Object::Network(n) if networks => Some((n.id.to_string(), n.spec.name.clone())),
            Object::Service(s) if !networks => Some((s.id.to_string(), s.spec.name.clone())),
            _ => None,
        })
        .collect()
}

impl Facts {
    pub fn of(objects: &[Object]) -> Facts {
        let network_names = names(objects, true);
        let net =
            |id: &swarmalloc::NetworkId| network_names.get(id.as_str()).cloned().unwrap_or_else(|| id.to_string());
        let services = names(objects, false);
        let mut facts = Facts::default();
        for object in objects {
            match object {
                Object::Network(n) => {
                    let Some(ipam) = &n.ipam else { continue };
                    let subnets = ipam
                        .configs
                        .iter()
                        .map(|c| {
                            let mut text = c.subnet.map(|s| s.to_string()).unwrap_or_default();
                            if let Some(gateway) = c.gateway {
                                text += &format!(" gw {gateway}");
                            }
                            if let Some(range) = c.range {
                                text += &format!(" range {range}");
                            }
                            text
                        })
                        .collect();
                    let vxlan_ids = n
                        .driver_state
                        .as_ref()
                        .and_then(|d| d.options.get(VXLAN_ID_LIST_OPTION))
                        .cloned()
                        .unwrap_or_default();
                    facts.networks.insert(n.spec.name.clone(), NetworkFacts { subnets, vxlan_ids });
                }
                Object::Service(s) => {
                    let mut service = ServiceFacts::default();
                    if let Some(endpoint) = &s.endpoint {
                        for vip in &endpoint.virtual_ips {
                            service.vips.insert(net(&vip.network_id), vip.addr.to_string());
                        }
                        for p in &endpoint.ports {
                            service.ports.insert(format!(
                                "{}:{}/{}{}",
                                p.published_port,
                                p.target_port,
                                p.protocol,
                                if p.publish_mode == swarmalloc::PublishMode::Host { " host" } else { "" }
                            ));
                        }
                    }
                    facts.services.insert(s.spec.name.clone(), service);
                }
                Object::Task(t) => {
                    let mut per_network: BTreeMap<String, Vec<String>> = BTreeMap::new();
                    for attachment in &t.networks {
                        per_network
                            .entry(net(&attachment.network_id))
                            .or_default()
                            .extend(attachment.addresses.iter().map(ToString::to_string));
                    }
                    match &t.service_id {
                        Some(service) => {
                            let name = services.get(service.as_str()).cloned().unwrap_or_else(|| service.to_string());
                            let entry = facts.task_addresses.entry(name).or_default();
                            for (network, addresses) in per_network {
                                entry.entry(network).or_default().extend(addresses);
                            }
                        }
                        None => {
                            facts.containers.insert(t.id.to_string(), per_network);
                        }
                    }
                }
                Object::Node(n) => {
                    for attachment in &n.attachments {
                        facts
                            .load_balancers
                            .entry(net(&attachment.network_id))
                            .or_default()
                            .extend(attachment.addresses.iter().map(ToString::to_string));
                    }
                }
            }
        }
        for networks in facts.task_addresses.values_mut() {
            networks.values_mut().for_each(|a| a.sort());
        }
        facts
    }
}

/// Which value a mismatch is about (Docker names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Subnets { network: String },
    VxlanIds { network: String },
    Vip { service: String, network: String },
    Ports { service: String },
    TaskAddresses { service: String, network: String },
    ContainerAddresses { task: String, network: String },
    LoadBalancer { network: String },
}

impl Subject {
    /// The network the value is on, if it is on one.
    pub fn network(&self) -> Option<&str> {
        match self {
            Subject::Ports { .. } => None,
            Subject::Subnets { network }
            | Subject::VxlanIds { network }
            | Subject::Vip { network, .. }
            | Subject::TaskAddresses { network, .. }
            | Subject::ContainerAddresses { network, .. }
            | Subject::LoadBalancer { network } => Some(network),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Subnets { network } => write!(f, "network {network}: subnets"),
            Subject::VxlanIds { network } => write!(f, "network {network}: VXLAN ids"),
            Subject::Vip { service, network } => write!(f, "service {service}: VIP on network {network}"),
            Subject::Ports { service } => write!(f, "service {service}: published ports"),
            Subject::TaskAddresses { service, network } => {
                write!(f, "the tasks of service {service}: addresses on network {network}")
            }
            Subject::ContainerAddresses { task, network } => {
                write!(f, "container task {task}: addresses on network {network}")
            }
            Subject::LoadBalancer { network } => write!(f, "the node's load balancer on network {network}"),
        }
    }
}

/// One value the real swarm and the engine disagree on (each side's values, sorted where the
/// order means nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub subject: Subject,
    pub real: Vec<String>,
    pub engine: Vec<String>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &[String]| if v.is_empty() { "nothing".to_string() } else { v.join(", ") };
        write!(f, "{}: real {}, engine {}", self.subject, show(&self.real), show(&self.engine))
    }
}

/// Every value on which `real` and `engine` differ.
pub fn compare(real: &Facts, engine: &Facts) -> Vec<Mismatch> {
    fn keys<'a, V>(a: &'a BTreeMap<String, V>, b: &'a BTreeMap<String, V>) -> BTreeSet<&'a String> {
        a.keys().chain(b.keys()).collect()
    }
    let mut out = Vec::new();
    let mut differ = |subject: Subject, r: Vec<String>, e: Vec<String>| {
        if r != e {
            out.push(Mismatch { subject, real: r, engine: e });
        }
    };
    for name in keys(&real.networks, &engine.networks) {
        let (r, e) = (real.networks.get(name), engine.networks.get(name));
        let subnets = |n: Option<&NetworkFacts>| n.map(|n| n.subnets.clone()).unwrap_or_default();
        differ(Subject::Subnets { network: name.clone() }, subnets(r), subnets(e));
        let vxlan = |n: Option<&NetworkFacts>| {
            n.filter(|n| !n.vxlan_ids.is_empty()).map(|n| vec![n.vxlan_ids.clone()]).unwrap_or_default()
        };
        differ(Subject::VxlanIds { network: name.clone() }, vxlan(r), vxlan(e));
    }
    for name in keys(&real.services, &engine.services) {
        let empty = ServiceFacts::default();
        let (r, e) = (real.services.get(name).unwrap_or(&empty), engine.services.get(name).unwrap_or(&empty));
        for network in keys(&r.vips, &e.vips) {
            let vip = |s: &ServiceFacts| s.vips.get(network).cloned().into_iter().collect();
            differ(Subject::Vip { service: name.clone(), network: network.clone() }, vip(r), vip(e));
        }
        differ(
            Subject::Ports { service: name.clone() },
            r.ports.iter().cloned().collect(),
            e.ports.iter().cloned().collect(),
        );
    }
    let empty = BTreeMap::new();
    for name in keys(&real.task_addresses, &engine.task_addresses) {
        let (r, e) =
            (real.task_addresses.get(name).unwrap_or(&empty), engine.task_addresses.get(name).unwrap_or(&empty));
        for network in keys(r, e) {
            let subject = Subject::TaskAddresses { service: name.clone(), network: network.clone() };
            differ(subject, r.get(network).cloned().unwrap_or_default(), e.get(network).cloned().unwrap_or_default());
        }
    }
    for task in keys(&real.containers, &engine.containers) {
        let (r, e) = (real.containers.get(task).unwrap_or(&empty), engine.containers.get(task).unwrap_or(&empty));
        for network in keys(r, e) {
            let subject = Subject::ContainerAddresses { task: task.clone(), network: network.clone() };
            differ(subject, r.get(network).cloned().unwrap_or_default(), e.get(network).cloned().unwrap_or_default());
        }
    }
    for network in keys(&real.load_balancers, &engine.load_balancers) {
        let subject = Subject::LoadBalancer { network: network.clone() };
        let (r, e) = (real.load_balancers.get(network), engine.load_balancers.get(network));
        differ(subject, r.cloned().unwrap_or_default(), e.cloned().unwrap_or_default());
    }
    out
}

/// A difference from SwarmKit that ARCHITECTURE.md lists, and how to recognise it in a mismatch.
pub struct KnownDifference {
    /// Its name, printed when tolerated.
    pub name: &'static str,
    /// Words of its entry in ARCHITECTURE.md's list (any one of them): the difference is
    /// tolerated only while the list names it.
    pub listed_as: &'static [&'static str],
    /// Whether a mismatch is this difference.
    pub explains: fn(&Mismatch, &Context<'_>) -> bool,
}

/// What a recogniser may look at besides the mismatch.
pub struct Context<'a> {
    /// A manager restart (graceful or a crash) happened at or before this step.
    pub restarted: bool,
    /// A step at or before this one could free values (a removal, a scale, an update).
    pub freed: bool,
    /// The services whose network list this step changed.
    pub networks_changed: &'a BTreeSet<String>,
    /// What the real swarm shows after the step.
    pub real: &'a Facts,
}

/// The subnets of `network` in `facts`, parsed.
fn subnets_of(facts: &Facts, network: &str) -> Vec<ipnet::IpNet> {
    let Some(n) = facts.networks.get(network) else { return Vec::new() };
    n.subnets.iter().filter_map(|s| s.split(' ').next()?.parse().ok()).collect()
}

/// How many of `values` are IPv4 and IPv6 addresses.
fn families(values: &[String]) -> (usize, usize) {
    let v6 = values.iter().filter(|v| v.contains(':')).count();
    (values.len() - v6, v6)
}

fn is_address(subject: &Subject) -> bool {
    matches!(
        subject,
        Subject::Vip { .. }
            | Subject::TaskAddresses { .. }
            | Subject::ContainerAddresses { .. }
            | Subject::LoadBalancer { .. }
    )
}

/// The number a value is ordered by: an address (without its prefix length), a published port
/// (the number before the colon), a VXLAN id.
fn rank(value: &str) -> Option<u128> {
    if let Some(ip) = value.split('/').next().and_then(|a| a.parse::<std::net::IpAddr>().ok()) {
        return Some(match ip {
            std::net::IpAddr::V4(a) => u128::from(u32::from(a)),
            std::net::IpAddr::V6(a) => u128::from(a),
        });
    }
    value.split(':').next()?.trim().parse().ok()
}

/// Whether the values only one side has are as many on both sides, and every one the engine
/// chose lies below every one the real swarm chose: the engine took freed values again where
/// SwarmKit went on after the last one it gave.
fn engine_took_freed_values(m: &Mismatch) -> bool {
    let only = |a: &[String], b: &[String]| -> Option<Vec<u128>> {
        a.iter().filter(|v| !b.contains(v)).map(|v| rank(v)).collect()
    };
    let (Some(real), Some(engine)) = (only(&m.real, &m.engine), only(&m.engine, &m.real)) else { return false };
    m.real.len() == m.engine.len()
        && !real.is_empty()
        && families(&m.real) == families(&m.engine)
        && engine.iter().max() < real.iter().min()
}

/// The known differences the differential recognises.
pub const KNOWN_DIFFERENCES: &[KnownDifference] = &[
    KnownDifference {
        name: "after a leader change the engine continues after the last value it gave, SwarmKit restarts at the lowest free one",
        listed_as: &["lowest free"],
        // A choice of values, not of how many: the same count on both sides.
        explains: |m, cx| cx.restarted && m.real.len() == m.engine.len(),
    },
    KnownDifference {
        name: "the engine gives a freed value again at once, SwarmKit gives the values after the last one it gave (serially) and comes back to freed ones only when the range wraps",
        listed_as: &["serial", "sequential", "highest value it ever gave", "reused at once"],
        explains: |m, cx| {
            // A service whose network list this step changed gets new VIPs on a real swarm: that
            // is another difference, told apart by name.
            let changed = match &m.subject {
                Subject::Vip { service, .. } | Subject::TaskAddresses { service, .. } => {
                    cx.networks_changed.contains(service)
                }
                _ => false,
            };
            let kind = is_address(&m.subject) || matches!(m.subject, Subject::Ports { .. } | Subject::VxlanIds { .. });
            cx.freed && kind && !changed && engine_took_freed_values(m)
        },
    },
    KnownDifference {
        name: "a network with several subnets of one family fills them in config order, SwarmKit takes each address from whichever subnet its map iteration reaches first",
        listed_as: &["config order"],
        explains: |m, cx| {
            let Some(network) = m.subject.network() else { return false };
            let subnets = subnets_of(cx.real, network);
            let v4 = subnets.iter().filter(|s| s.addr().is_ipv4()).count();
            is_address(&m.subject) && (v4 >= 2 || subnets.len() - v4 >= 2) && families(&m.real) == families(&m.engine)
        },
    },
    KnownDifference {
        name: "a dual-stack attachment gets one address per family, SwarmKit gives one address from one subnet",
        listed_as: &["one address per family", "one address per address family"],
        explains: |m, cx| {
            let Some(network) = m.subject.network() else { return false };
            let subnets = subnets_of(cx.real, network);
            let dual = subnets.iter().any(|s| s.addr().is_ipv4()) && subnets.iter().any(|s| s.addr().is_ipv6());
            let (r4, r6) = families(&m.real);
            let (e4, e6) = families(&m.engine);
            is_address(&m.subject) && dual && e4 == e6 && r4 + r6 == e4
        },
    },
    KnownDifference {
        name: "a service update keeps the VIPs on the networks it stays on, SwarmKit gives the service new ones when its network list changes",
        listed_as: &["keeps its VIPs", "keeps the VIPs"],
        explains: |m, cx| {
            let changed = |service: &String| cx.networks_changed.contains(service);
            match &m.subject {
                Subject::Vip { service, .. } => changed(service) && m.real.len() == 1 && m.engine.len() == 1,
                // The new VIP took the next address, so the same step's tasks on that network
                // moved by one.
                Subject::TaskAddresses { service, .. } => changed(service) && m.real.len() == m.engine.len(),
                _ => false,
            }
        },
    },
];

/// The "Design decisions that differ from SwarmKit" section of ARCHITECTURE.md (empty if none).
pub fn listed_differences(architecture: &str) -> String {
    let Some(start) = architecture.find("## Design decisions that differ from SwarmKit") else { return String::new() };
    let rest = &architecture[start + 3..];
    let end = rest.find("\n## ").map_or(rest.len(), |i| i);
    rest[..end].to_string()
}

/// A mismatch the differential tolerates, with the difference's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tolerated {
    pub mismatch: Mismatch,
    pub name: &'static str,
}

/// A mismatch no listed difference explains, with the known difference it looks like when
/// ARCHITECTURE.md does not list that one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unexplained {
    pub mismatch: Mismatch,
    pub unlisted: Option<&'static str>,
}

impl fmt::Display for Unexplained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.mismatch)?;
        if let Some(name) = self.unlisted {
            write!(f, " (looks like \"{name}\", which ARCHITECTURE.md's list of differences does not name)")?;
        }
        Ok(())
    }
}

/// Splits mismatches into tolerated ones and the rest.
pub fn classify(mismatches: Vec<Mismatch>, cx: &Context<'_>, listed: &str) -> (Vec<Tolerated>, Vec<Unexplained>) {
    let mut tolerated = Vec::new();
    let mut rest = Vec::new();
    // The list's entries start sentences ("One address per family ..."): case does not count.
    let listed = listed.to_lowercase();
    for mismatch in mismatches {
        let known = KNOWN_DIFFERENCES.iter().filter(|d| (d.explains)(&mismatch, cx));
        let (listed_ones, unlisted): (Vec<&KnownDifference>, Vec<&KnownDifference>) =
            known.partition(|d| d.listed_as.iter().any(|words| listed.contains(&words.to_lowercase())));
        match listed_ones.first() {
            Some(d) => tolerated.push(Tolerated { mismatch, name: d.name }),
            None => rest.push(Unexplained { mismatch, unlisted: unlisted.first().map(|d| d.name) }),
        }
    }
    (tolerated, rest)
}

/// One step of a differential sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiffStep {
    Op(crate::ops::Op),
    /// A graceful restart of the manager.
    Restart,
    /// kill -9 of the manager (dockerd and its containerd), then a start.
    CrashRestart,
}

impl fmt::Display for DiffStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiffStep::Op(op) => write!(f, "{op}"),
            DiffStep::Restart => write!(f, "restart the manager"),
            DiffStep::CrashRestart => write!(f, "kill -9 the manager and start it again"),
        }
    }
}

/// What one step gave.
#[derive(Clone, Debug, Default)]
pub struct StepOutcome {
    /// The real swarm refused the operation.
    pub refused: Option<String>,
    pub tolerated: Vec<Tolerated>,
    pub mismatches: Vec<Unexplained>,
}

/// The real state as the differential compares it: the objects the check reads, plus the local
/// node with its load balancers: those the API shows, and for the networks it does not show one
/// on, the engine's own last prediction (`hidden`); `visible` names the networks shown.
struct Seen {
    objects: Vec<Object>,
    visible: BTreeSet<String>,
}

fn seen(state: &crate::state::RealState, hidden: &[NetworkAttachment]) -> Result<Seen, String> {
    let mut objects = state.objects().map_err(|e| format!("the real state: {e}"))?;
    let networks = names(&objects, true);
    let mut attachments: Vec<NetworkAttachment> = Vec::new();
    let mut visible = BTreeSet::new();
    for (network, addresses) in &state.load_balancers {
        let Some(name) = networks.get(network) else { continue };
        visible.insert(name.clone());
        attachments.push(NetworkAttachment {
            network_id: NetworkId::new(network),
            addresses: addresses.iter().filter_map(|a| a.parse().ok()).collect(),
            aliases: Vec::new(),
            driver_attachment_opts: BTreeMap::new(),
        });
    }
    for attachment in hidden {
        let id = attachment.network_id.as_str();
        if networks.contains_key(id) && !state.load_balancers.contains_key(id) {
            attachments.push(attachment.clone());
        }
    }
    // The check's reader makes the local node with the load balancers shown (and leaves out the
    // nodes it cannot judge); the engine needs the hidden ones too.
    objects.retain(|o| !matches!(o, Object::Node(_)));
    let node = state.nodes.iter().find(|n| n.get("ID").and_then(|v| v.as_str()) == Some(state.local_node.as_str()));
    let name =
        node.and_then(|n| n.pointer("/Description/Hostname")).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    objects.push(Object::Node(Node {
        id: NodeId::new(&state.local_node),
        version: Default::default(),
        spec: NodeSpec { name, role: NodeRole::Manager, availability: NodeAvailability::Active },
        attachments,
    }));
    Ok(Seen { objects, visible })
}

/// The services (by name) whose network list differs between `before` and `after`.
fn networks_changed(before: &[Object], after: &[Object]) -> BTreeSet<String> {
    let networks = |objects: &[Object]| -> BTreeMap<String, BTreeSet<String>> {
        objects
            .iter()
            .filter_map(|o| match o {
                Object::Service(s) => {
                    Some((s.id.to_string(), s.spec.attachment_configs().iter().map(|a| a.target.to_string()).collect()))
                }
                _ => None,
            })
            .collect()
    };
    let old = networks(before);
    let names = names(after, false);
    networks(after)
        .into_iter()
        .filter(|(id, nets)| old.get(id).is_some_and(|o| o != nets))
        .filter_map(|(id, _)| names.get(&id).cloned())
        .collect()
}

/// The node's attachments in `objects`.
fn node_attachments(objects: &[Object]) -> Vec<NetworkAttachment> {
    objects
        .iter()
        .find_map(|o| match o {
            Object::Node(n) => Some(n.attachments.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Runs `steps` on `swarm` and the engine, comparing after each (the engine starts every step
/// from the real state, so one difference does not carry into the next steps); one outcome per
/// step. `listed` is ARCHITECTURE.md's list of differences.
pub fn run(
    swarm: &mut crate::harness::Swarm,
    config: &ClusterConfig,
    steps: &[DiffStep],
    listed: &str,
) -> Result<Vec<StepOutcome>, String> {
    let settle = std::time::Duration::from_secs(120);
    // The swarm as initialised: the engine gives the node the load balancers the API may not show.
    let state = swarm.settle(settle).map_err(|e| e.to_string())?;
    let initial = seen(&state, &[])?;
    let mut hidden = node_attachments(&engine_allocation(config, engine_input(&[], &initial.objects, &[]))?);
    let mut before = seen(&state, &hidden)?;
    let mut restarted = false;
    let mut freed = false;
    let mut outcomes = Vec::new();
    // The specs of the networks the steps created: inspect shows a network's allocation only, not
    // which subnets its user asked for, and the engine picks the next default subnet after those
    // that came from the default pools.
    let mut created: Vec<NetworkSpec> = Vec::new();
    for step in steps {
        let mut outcome = StepOutcome::default();
        match step {
            DiffStep::Op(op) => {
                use crate::ops::Op;
                freed |= !matches!(op, Op::CreateNetwork(_) | Op::CreateService { .. } | Op::RunContainer { .. });
                if let crate::ops::Op::CreateNetwork(spec) = op {
                    created.retain(|s| s.name != spec.name);
                    created.push(spec.clone());
                }
                if let Err(e) = swarm.block_on(crate::ops::apply(swarm.docker(), op)) {
                    outcome.refused = Some(e.to_string());
                }
            }
            DiffStep::Restart => {
                restarted = true;
                swarm.restart().map_err(|e| e.to_string())?;
            }
            DiffStep::CrashRestart => {
                restarted = true;
                swarm.crash_restart().map_err(|e| e.to_string())?;
            }
        }
        let state = swarm.settle(settle).map_err(|e| format!("after `{step}`: {e}"))?;
        let after = seen(&state, &hidden)?;
        let input = engine_input(&before.objects, &after.objects, &created);
        let engine = engine_allocation(config, input)?;
        let mut real_facts = Facts::of(&after.objects);
        let mut engine_facts = Facts::of(&engine);
        // Only the load balancers the API shows can be compared.
        real_facts.load_balancers.retain(|network, _| after.visible.contains(network));
        engine_facts.load_balancers.retain(|network, _| after.visible.contains(network));
        let networks_changed = networks_changed(&before.objects, &after.objects);
        let cx = Context { restarted, freed, networks_changed: &networks_changed, real: &real_facts };
        let (tolerated, rest) = classify(compare(&real_facts, &engine_facts), &cx, listed);
        outcome.tolerated = tolerated;
        outcome.mismatches = rest;
        hidden = node_attachments(&engine);
        outcomes.push(outcome);
        before = seen(&state, &hidden)?;
    }
    Ok(outcomes)
}

/// A seeded random sequence of `len` steps that a real swarm accepts: network creations (default
/// pools, explicit subnets, attachable), service creations on one to three networks (VIP or
/// DNSRR, sometimes with published ports), updates that change networks or ports, scales,
/// removals, standalone containers, and now and then a graceful or a crash restart. The same
/// seed gives the same sequence.
pub fn random_steps(seed: u64, len: usize) -> Vec<DiffStep> {
    use swarmalloc::Protocol;
    use swarmalloc_sim::rng::{Draw, SimRng};

    use crate::ops::specs::{attachable, dnsrr, overlay, publish, service, with_subnets};
    use crate::ops::{Op, Placement};

    #[derive(Clone)]
    struct Svc {
        name: String,
        networks: Vec<String>,
        dns: bool,
        ports: Vec<(u16, u16, Protocol, bool)>,
        replicas: u64,
    }
    let spec = |s: &Svc| {
        let networks: Vec<&str> = s.networks.iter().map(String::as_str).collect();
        let mut spec = service(&s.name, &networks, s.replicas);
        if s.dns {
            spec = dnsrr(spec);
        }
        for (published, target, protocol, host) in &s.ports {
            spec = publish(spec, *published, *target, *protocol, *host);
        }
        spec
    };
    let mut rng = SimRng::new(seed);
    let mut networks: Vec<(String, bool)> = Vec::new();
    let mut services: Vec<Svc> = Vec::new();
    let mut containers: Vec<(String, String)> = Vec::new();
    let (mut next_network, mut next_service, mut next_container, mut next_subnet) = (0, 0, 0, 0u8);
    let mut steps = Vec::with_capacity(len);
    while steps.len() < len {
        let roll = rng.range(0, 100);
        let step = match roll {
            0..=9 if networks.len() < 6 => {
                next_network += 1;
                let name = format!("n{next_network}");
                let kind = rng.range(0, 4);
                let spec = match kind {
                    0 => {
                        next_subnet = next_subnet.wrapping_add(1);
                        let subnet = format!("10.{}.{}.0/24", 100 + next_subnet / 200, next_subnet % 200);
                        with_subnets(overlay(&name), &[(subnet.as_str(), None, None)])
                    }
                    1 => attachable(&name),
                    _ => overlay(&name),
                };
                networks.push((name, kind == 1));
                DiffStep::Op(Op::CreateNetwork(spec))
            }
            10..=24 if !networks.is_empty() && services.len() < 8 => {
                next_service += 1;
                let mut chosen: Vec<String> = Vec::new();
                for _ in 0..rng.range(1, 4) {
                    let (name, _) = &networks[rng.index(networks.len())];
                    if !chosen.contains(name) {
                        chosen.push(name.clone());
                    }
                }
                let dns = rng.chance(0.25);
                let mut ports = Vec::new();
                if rng.chance(0.3) {
                    // DNSRR publishes in host mode only; VIP services through the ingress.
                    let published = if rng.chance(0.5) { 0 } else { 8000 + next_service as u16 };
                    ports.push((published, 80, if rng.chance(0.5) { Protocol::Tcp } else { Protocol::Udp }, dns));
                }
                let svc =
                    Svc { name: format!("s{next_service}"), networks: chosen, dns, ports, replicas: rng.range(0, 12) };
                let step = DiffStep::Op(Op::CreateService { spec: spec(&svc), placement: Placement::Constrained });
                services.push(svc);
                step
            }
            25..=49 if !services.is_empty() => {
                let i = rng.index(services.len());
                services[i].replicas = rng.range(0, 30);
                DiffStep::Op(Op::ScaleService { name: services[i].name.clone(), replicas: services[i].replicas })
            }
            50..=64 if !services.is_empty() && !networks.is_empty() => {
                let i = rng.index(services.len());
                let (name, _) = networks[rng.index(networks.len())].clone();
                let svc = &mut services[i];
                if svc.networks.contains(&name) && svc.networks.len() > 1 {
                    svc.networks.retain(|n| *n != name);
                } else if !svc.networks.contains(&name) {
                    svc.networks.push(name);
                } else if !svc.dns {
                    svc.ports = if svc.ports.is_empty() { vec![(0, 81, Protocol::Tcp, false)] } else { Vec::new() };
                }
                DiffStep::Op(Op::UpdateService { spec: spec(svc), placement: Placement::Constrained })
            }
            65..=71 if !services.is_empty() => {
                let svc = services.remove(rng.index(services.len()));
                DiffStep::Op(Op::RemoveService { name: svc.name })
            }
            72..=77 if !networks.is_empty() => {
                let i = rng.index(networks.len());
                let name = networks[i].0.clone();
                let used =
                    services.iter().any(|s| s.networks.contains(&name)) || containers.iter().any(|(_, n)| *n == name);
                if used {
                    continue;
                }
                networks.remove(i);
                DiffStep::Op(Op::RemoveNetwork { name })
            }
            78..=85 => {
                let attachable: Vec<&(String, bool)> = networks.iter().filter(|(_, a)| *a).collect();
                if attachable.is_empty() || containers.len() >= 4 {
                    continue;
                }
                let network = attachable[rng.index(attachable.len())].0.clone();
                next_container += 1;
                let name = format!("c{next_container}");
                containers.push((name.clone(), network.clone()));
                DiffStep::Op(Op::RunContainer { name, network, address: None })
            }
            86..=91 if !containers.is_empty() => {
                let (name, _) = containers.remove(rng.index(containers.len()));
                DiffStep::Op(Op::RemoveContainer { name })
            }
            92..=94 => DiffStep::Restart,
            95..=96 => DiffStep::CrashRestart,
            _ => continue,
        };
        steps.push(step);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(network: &str, subnets: &[&str]) -> Facts {
        let mut facts = Facts::default();
        facts.networks.insert(
            network.into(),
            NetworkFacts { subnets: subnets.iter().map(|s| s.to_string()).collect(), vxlan_ids: "4097".into() },
        );
        facts
    }

    fn addresses(service: &str, network: &str, real: &[&str], engine: &[&str]) -> Mismatch {
        let list = |a: &[&str]| a.iter().map(|s| s.to_string()).collect();
        Mismatch {
            subject: Subject::TaskAddresses { service: service.into(), network: network.into() },
            real: list(real),
            engine: list(engine),
        }
    }

    #[test]
    fn compare_names_every_value_that_differs_and_nothing_else() {
        let mut real = facts("a", &["10.0.1.0/24 gw 10.0.1.1"]);
        let mut engine = real.clone();
        real.task_addresses.entry("s".into()).or_default().insert("a".into(), vec!["10.0.1.3/24".into()]);
        engine.task_addresses.entry("s".into()).or_default().insert("a".into(), vec!["10.0.1.4/24".into()]);
        engine.networks.get_mut("a").unwrap().vxlan_ids = "4098".into();
        let found: Vec<String> = compare(&real, &engine).iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "network a: VXLAN ids: real 4097, engine 4098",
                "the tasks of service s: addresses on network a: real 10.0.1.3/24, engine 10.0.1.4/24"
            ]
        );
        assert!(compare(&real, &real).is_empty());
    }

    #[test]
    fn serial_allocation_explains_only_lower_values_chosen_by_the_engine_after_a_free() {
        let real = facts("a", &["10.0.1.0/24 gw 10.0.1.1"]);
        let changed = BTreeSet::new();
        let cx = Context { restarted: false, freed: true, networks_changed: &changed, real: &real };
        let listed = "- Freed values are reused at once (SwarmKit: serially, after the highest value it ever gave)";
        let serial = || {
            addresses(
                "s",
                "a",
                &["10.0.1.3/24", "10.0.1.4/24", "10.0.1.14/24", "10.0.1.15/24", "10.0.1.16/24"],
                &["10.0.1.3/24", "10.0.1.4/24", "10.0.1.11/24", "10.0.1.12/24", "10.0.1.13/24"],
            )
        };
        let (tolerated, rest) = classify(vec![serial()], &cx, listed);
        assert_eq!((tolerated.len(), rest.len()), (1, 0));
        assert!(tolerated[0].name.contains("serially"), "{}", tolerated[0].name);
        // Not while the list does not name it, nor before anything was freed.
        assert_eq!(classify(vec![serial()], &cx, "- nothing").0.len(), 0);
        let fresh = Context { freed: false, ..cx };
        assert_eq!(classify(vec![serial()], &fresh, listed).0.len(), 0);
        // Not when the engine chose a higher value, nor when the counts differ.
        let higher = addresses("s", "a", &["10.0.1.5/24"], &["10.0.1.9/24"]);
        let fewer = addresses("s", "a", &["10.0.1.5/24", "10.0.1.6/24"], &["10.0.1.2/24"]);
        assert_eq!(classify(vec![higher, fewer], &cx, listed).0.len(), 0);
        // Not the VIP of a service whose network list this step changed (another difference).
        let moved = BTreeSet::from(["s".to_string()]);
        let vip = Mismatch {
            subject: Subject::Vip { service: "s".into(), network: "a".into() },
            real: vec!["10.0.1.17/24".into()],
            engine: vec!["10.0.1.2/24".into()],
        };
        let cx_moved = Context { networks_changed: &moved, ..cx };
        assert_eq!(classify(vec![vip.clone()], &cx_moved, listed).0.len(), 0);
        assert_eq!(classify(vec![vip], &cx, listed).0.len(), 1);
    }

    #[test]
    fn a_known_difference_is_tolerated_only_while_architecture_lists_it() {
        let real = facts("d", &["fd00:1::/64 gw fd00:1::1", "10.50.0.0/24 gw 10.50.0.1"]);
        let changed = BTreeSet::new();
        let cx = Context { restarted: false, freed: false, networks_changed: &changed, real: &real };
        // SwarmKit gave each of two tasks one address; the engine one per family.
        let dual = addresses(
            "s",
            "d",
            &["10.50.0.2/24", "fd00:1::3/64"],
            &["10.50.0.2/24", "10.50.0.3/24", "fd00:1::2/64", "fd00:1::3/64"],
        );
        let (tolerated, rest) = classify(vec![dual.clone()], &cx, "- One address per family per attachment");
        assert_eq!(tolerated.len(), 1);
        assert!(tolerated[0].name.starts_with("a dual-stack attachment"));
        assert!(rest.is_empty());
        let (tolerated, rest) = classify(vec![dual], &cx, "- nothing about it");
        assert!(tolerated.is_empty());
        assert!(
            rest[0].to_string().contains("which ARCHITECTURE.md's list of differences does not name"),
            "{}",
            rest[0]
        );
        // A restart explains a different choice of as many values, not a missing one.
        let restarted = Context { restarted: true, ..cx };
        let listed = "SwarmKit restarts at the lowest free one";
        let choice = addresses("s", "d", &["10.50.0.2/24"], &["10.50.0.9/24"]);
        let missing = addresses("s", "d", &["10.50.0.2/24"], &[]);
        let (tolerated, rest) = classify(vec![choice, missing], &restarted, listed);
        assert_eq!((tolerated.len(), rest.len()), (1, 1));
        assert_eq!(rest[0].unlisted, None);
    }

    #[test]
    fn the_engine_allocates_the_new_objects_of_a_step_and_keeps_the_old_ones() {
        let network = |id: &str, name: &str| {
            Object::Network(swarmalloc::Network {
                id: id.into(),
                version: Default::default(),
                spec: NetworkSpec { name: name.into(), ..Default::default() },
                driver_state: None,
                ipam: None,
            })
        };
        let first = engine_allocation(&ClusterConfig::default(), vec![network("n1", "a")]).unwrap();
        let next = [first.clone(), vec![network("n2", "b")]].concat();
        let second = engine_allocation(&ClusterConfig::default(), engine_input(&first, &next, &[])).unwrap();
        let facts = Facts::of(&second);
        assert_eq!(facts.networks["a"], Facts::of(&first).networks["a"], "the old network keeps its allocation");
        assert_eq!(facts.networks["b"].subnets, ["10.0.1.0/24 gw 10.0.1.1"]);
        assert_eq!(facts.networks["b"].vxlan_ids, "4097");
    }
}
