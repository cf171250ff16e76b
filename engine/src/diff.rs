//! How two engines differ, in words: for checkers that compare the engine with a restore of the
//! committed store (or with an engine fed every committed change) and must say what is wrong.
//! [`Allocator::diff`](crate::Allocator::diff) lists one [`Difference`] per resource or object
//! the two engines see differently, sorted, so the list is deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::few::Few;
use crate::ids::{NetworkId, NodeId, ServiceId, TaskId};
use crate::index::{Claims, Holder, NetEntry, State, TaskEntry, u128_to_ip};
use crate::objects::Protocol;

/// What a difference is about: one resource, or what the engine records for one object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    /// Whether the network is allocated, and how (its subnets, VXLAN ids, conflicts).
    Network { network: NetworkId },
    /// Which network holds a subnet.
    Subnet { subnet: IpNet },
    /// Which network holds a VXLAN id.
    VxlanId { vxlan_id: u32 },
    /// Which network is the ingress.
    Ingress,
    /// Who holds an address, and who else claims it.
    Address { network: NetworkId, address: IpAddr },
    /// A pool's address cursor (the last address handed out from it).
    AddressCursor { network: NetworkId, subnet: IpNet },
    /// Which service holds a published port, and who else claims it.
    Port { protocol: Protocol, port: u16 },
    /// The VIPs and ports recorded for a service.
    Service { service: ServiceId },
    /// The addresses recorded for a task, and whether it is live.
    Task { task: TaskId },
    /// A node's load-balancer addresses.
    NodeLb { node: NodeId },
    /// The networks a node's live tasks are attached to (which its load balancer needs).
    NodeNeeds { node: NodeId },
    /// The cluster config the engines were built with.
    Config,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Network { network } => write!(f, "network {network}"),
            Subject::Subnet { subnet } => write!(f, "subnet {subnet}"),
            Subject::VxlanId { vxlan_id } => write!(f, "VXLAN id {vxlan_id}"),
            Subject::Ingress => f.write_str("the ingress role"),
            Subject::Address { network, address } => write!(f, "address {address} on network {network}"),
            Subject::AddressCursor { network, subnet } => {
                write!(f, "the address cursor of {subnet} on network {network}")
            }
            Subject::Port { protocol, port } => write!(f, "published port {protocol}/{port}"),
            Subject::Service { service } => write!(f, "service {service}"),
            Subject::Task { task } => write!(f, "task {task}"),
            Subject::NodeLb { node } => write!(f, "the load balancer of node {node}"),
            Subject::NodeNeeds { node } => write!(f, "the networks node {node} needs"),
            Subject::Config => f.write_str("the cluster config"),
        }
    }
}

/// One subject the two engines see differently, in words: what this engine has (`engine`) and
/// what the other one, built from the committed store by restore (or fed every committed change),
/// has (`store`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub subject: Subject,
    pub engine: String,
    pub store: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} here; {} after restore", self.subject, self.engine, self.store)
    }
}

/// Every difference between two engines, sorted by subject. Displayed one per line (at most
/// [`Diff::SHOWN`], then how many more).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Diff(Vec<Difference>);

impl Diff {
    /// How many differences `Display` writes out.
    pub const SHOWN: usize = 20;

    pub fn differences(&self) -> &[Difference] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, difference) in self.0.iter().take(Self::SHOWN).enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{difference}")?;
        }
        if self.0.len() > Self::SHOWN {
            write!(f, "\n... and {} more differences", self.0.len() - Self::SHOWN)?;
        }
        Ok(())
    }
}

/// The differences between `engine` and `store` (None when they are equal).
pub(crate) fn diff(engine: &State, store: &State) -> Option<Diff> {
    if engine == store {
        return None;
    }
    let mut d = Differences(Vec::new());
    claim_differences(engine, store, &mut d);
    object_differences(engine, store, &mut d);
    let mut out = d.0;
    if out.is_empty() {
        // Equal in every part the words describe: what differs is below them (a pool's range or
        // gateway, a network's stored spec, the config). Said in the index's own terms.
        for id in keys(&engine.networks, &store.networks) {
            let (a, b) = (engine.networks.get(id), store.networks.get(id));
            if a != b {
                out.push(Difference {
                    subject: Subject::Network { network: id.clone() },
                    engine: format!("{a:?}"),
                    store: format!("{b:?}"),
                });
            }
        }
        if engine.config != store.config {
            out.push(Difference {
                subject: Subject::Config,
                engine: format!("{:?}", engine.config),
                store: format!("{:?}", store.config),
            });
        }
    }
    out.sort_by(|a, b| a.subject.cmp(&b.subject));
    Some(Diff(out))
}

/// Differences collected in words; subjects both engines describe alike are left out.
struct Differences(Vec<Difference>);

impl Differences {
    fn push(&mut self, subject: Subject, engine: String, store: String) {
        if engine != store {
            self.0.push(Difference { subject, engine, store });
        }
    }
}

/// Who holds each resource: networks (their allocation, address claims and cursors), subnets,
/// VXLAN ids, the ingress role, ports.
fn claim_differences(engine: &State, store: &State, d: &mut Differences) {
    for id in keys(&engine.networks, &store.networks) {
        let (a, b) = (engine.networks.get(id), store.networks.get(id));
        d.push(Subject::Network { network: id.clone() }, network(a), network(b));
        for (subject, a, b) in pools(id, a, b) {
            d.push(subject, a, b);
        }
    }
    let subnets = |state: &State| -> BTreeMap<IpNet, NetworkId> {
        state.subnets.values().map(|e| (e.subnet, e.network.clone())).collect()
    };
    let (sa, sb) = (subnets(engine), subnets(store));
    for subnet in keys(&sa, &sb) {
        d.push(Subject::Subnet { subnet: *subnet }, held_by_network(sa.get(subnet)), held_by_network(sb.get(subnet)));
    }
    for vni in keys(&engine.vnis, &store.vnis) {
        let (a, b) = (engine.vnis.get(vni), store.vnis.get(vni));
        d.push(Subject::VxlanId { vxlan_id: *vni }, held_by_network(a), held_by_network(b));
    }
    let ingress = |state: &State| state.ingress.as_ref().map_or("no network".to_string(), |n| format!("network {n}"));
    d.push(Subject::Ingress, ingress(engine), ingress(store));
    for (protocol, port) in keys(&engine.ports, &store.ports) {
        let key = (*protocol, *port);
        let (a, b) = (engine.ports.get(&key), store.ports.get(&key));
        let describe = |c: Option<&Claims<ServiceId>>| claims(c, |s| format!("service {s}"));
        d.push(Subject::Port { protocol: *protocol, port: *port }, describe(a), describe(b));
    }
}

/// What the engine records for each service, task and node.
fn object_differences(engine: &State, store: &State, d: &mut Differences) {
    for id in keys(&engine.services, &store.services) {
        let describe = |state: &State| match state.services.get(id) {
            None => "nothing recorded".to_string(),
            Some(entry) => format!(
                "VIPs {} and published ports {}",
                list(entry.vips.iter().map(|(n, a)| format!("{a} on {n}"))),
                list(entry.ports.iter().map(|(p, n)| format!("{p}/{n}")))
            ),
        };
        d.push(Subject::Service { service: id.clone() }, describe(engine), describe(store));
    }
    for id in keys(&engine.tasks, &store.tasks) {
        d.push(Subject::Task { task: id.clone() }, task(engine.tasks.get(id)), task(store.tasks.get(id)));
    }
    for id in keys(&engine.nodes, &store.nodes) {
        let describe = |addrs: Option<&Few<(NetworkId, IpNet)>>| match addrs {
            None => "no addresses".to_string(),
            Some(addrs) => format!("addresses {}", list(addrs.iter().map(|(n, a)| format!("{a} on {n}")))),
        };
        d.push(Subject::NodeLb { node: id.clone() }, describe(engine.nodes.get(id)), describe(store.nodes.get(id)));
    }
    for id in keys(&engine.node_needs, &store.node_needs) {
        let describe = |needs: Option<&BTreeMap<NetworkId, u32>>| match needs {
            None => "no networks".to_string(),
            Some(needs) => list(needs.iter().map(|(n, count)| format!("{n} ({count} live tasks)"))),
        };
        d.push(
            Subject::NodeNeeds { node: id.clone() },
            describe(engine.node_needs.get(id)),
            describe(store.node_needs.get(id)),
        );
    }
}

/// The keys of two maps, each once, sorted.
fn keys<'a, K: Ord, A, B>(a: &'a BTreeMap<K, A>, b: &'a BTreeMap<K, B>) -> BTreeSet<&'a K> {
    a.keys().chain(b.keys()).collect()
}

fn list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() { "none".to_string() } else { items.join(", ") }
}

fn held_by_network(network: Option<&NetworkId>) -> String {
    network.map_or("free".to_string(), |n| format!("held by network {n}"))
}

fn claims<H: Ord + Clone>(claims: Option<&Claims<H>>, name: impl Fn(&H) -> String) -> String {
    match claims {
        None => "free".to_string(),
        Some(c) if c.losers().is_empty() => format!("held by {}", name(c.holder())),
        Some(c) => format!("held by {} (also claimed by {})", name(c.holder()), list(c.losers().iter().map(name))),
    }
}

fn network(entry: Option<&NetEntry>) -> String {
    let Some(entry) = entry else { return "unknown".to_string() };
    let role = if entry.ingress { "the ingress, " } else { "" };
    match &entry.alloc {
        None => format!("{role}not allocated"),
        Some(Err(reason)) => format!("{role}stored with an unusable allocation ({reason})"),
        Some(Ok(alloc)) => {
            let subnets = list(alloc.pools.iter().map(|p| p.subnet.to_string()));
            let vnis = list(alloc.vnis.iter().map(u32::to_string));
            let state = match (&alloc.conflict, &alloc.incomplete) {
                (Some(conflict), _) => format!(", which it lost ({conflict})"),
                (None, Some(missing)) => format!(", incomplete ({missing})"),
                (None, None) => String::new(),
            };
            format!("{role}allocated subnets {subnets} and VXLAN ids {vnis}{state}")
        }
    }
}

/// The address claims and cursors of a network both engines hold pools for.
fn pools(id: &NetworkId, a: Option<&NetEntry>, b: Option<&NetEntry>) -> Vec<(Subject, String, String)> {
    let (Some(Some(Ok(a))), Some(Some(Ok(b)))) = (a.map(|e| &e.alloc), b.map(|e| &e.alloc)) else { return Vec::new() };
    let mut out = Vec::new();
    for (pa, pb) in a.pools.iter().zip(b.pools.iter()).filter(|(pa, pb)| pa.subnet == pb.subnet) {
        let ip = |value: &u128| u128_to_ip(*value, pa.is_v6());
        let cursor = |last: Option<u128>| last.map_or("none stored".to_string(), |v| format!("at {}", ip(&v)));
        out.push((Subject::AddressCursor { network: id.clone(), subnet: pa.subnet }, cursor(pa.last), cursor(pb.last)));
        let values: BTreeSet<&u128> = pa.slots.keys().chain(pb.slots.keys()).collect();
        for value in values {
            let describe = |c: Option<&Claims<Holder>>| claims(c, Holder::to_string);
            out.push((
                Subject::Address { network: id.clone(), address: ip(value) },
                describe(pa.slots.get(value)),
                describe(pb.slots.get(value)),
            ));
        }
    }
    out
}

fn task(entry: Option<&TaskEntry>) -> String {
    let Some(entry) = entry else { return "no addresses".to_string() };
    let state = match (entry.retired, entry.orphaned) {
        (false, _) => "live",
        (true, false) => "retired",
        (true, true) => "orphaned",
    };
    let node = entry.node.as_ref().map_or(String::new(), |n| format!(" on node {n}"));
    format!("{state}{node} with addresses {}", list(entry.addrs.iter().map(|(n, a)| format!("{a} on {n}"))))
}

#[cfg(test)]
mod tests {
    use crate::*;

    fn allocated_network(id: &str) -> Network {
        Network {
            id: id.into(),
            version: Version(1),
            spec: NetworkSpec { name: id.into(), ..Default::default() },
            driver_state: Some(DriverConfig {
                name: "overlay".into(),
                options: [(VXLAN_ID_LIST_OPTION.to_string(), "4096".to_string())].into(),
            }),
            ipam: Some(Ipam {
                driver: "default".into(),
                configs: vec![IpamConfig {
                    subnet: Some("10.0.0.0/24".parse().unwrap()),
                    range: None,
                    gateway: Some("10.0.0.1".parse().unwrap()),
                }],
                ..Default::default()
            }),
        }
    }

    fn task_on(id: &str, addr: &str) -> Task {
        Task {
            id: id.into(),
            version: Version(1),
            service_id: None,
            node_id: Some("n1".into()),
            slot: 0,
            spec: TaskSpec::default(),
            status: TaskStatus { state: TaskState::Running, message: String::new() },
            desired_state: TaskState::Running,
            networks: vec![NetworkAttachment {
                network_id: "a".into(),
                addresses: vec![addr.parse().unwrap()],
                aliases: Vec::new(),
                driver_attachment_opts: Default::default(),
            }],
            endpoint: None,
        }
    }

    /// A task the engine still holds an address for (a missed delete) reads as what holds what.
    #[test]
    fn a_leaked_address_reads_as_its_holder_here_and_free_from_the_store() {
        let network = allocated_network("a");
        let t1 = task_on("t1", "10.0.0.5/24");
        let mut engine = Allocator::new(ClusterConfig::default()).unwrap();
        engine.observe(ObjectRef::Network(&network));
        engine.observe(ObjectRef::Task(&t1));
        let (restored, _) = Allocator::restore(ClusterConfig::default(), [ObjectRef::Network(&network)]).unwrap();
        let diff = engine.diff(&restored).expect("they differ");
        let lines: Vec<String> = diff.differences().iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "address 10.0.0.5 on network a: held by task t1 here; free after restore",
                "task t1: live on node n1 with addresses 10.0.0.5/24 on a here; no addresses after restore",
                "the networks node n1 needs: a (1 live tasks) here; no networks after restore",
            ]
        );
        assert_eq!(diff.to_string(), lines.join("\n"));
        assert_eq!(restored.diff(&restored), None);
    }

    /// Two claimants, and the network seen differently.
    #[test]
    fn losers_subnets_and_networks_are_named() {
        let network = allocated_network("a");
        let (t1, t2) = (task_on("t1", "10.0.0.5/24"), task_on("t2", "10.0.0.5/24"));
        let (both, _) = Allocator::restore(
            ClusterConfig::default(),
            [ObjectRef::Network(&network), ObjectRef::Task(&t1), ObjectRef::Task(&t2)],
        )
        .unwrap();
        let (none, _) = Allocator::restore(ClusterConfig::default(), []).unwrap();
        let diff = both.diff(&none).expect("they differ").to_string();
        for expected in [
            "network a: allocated subnets 10.0.0.0/24 and VXLAN ids 4096 here; unknown after restore",
            "subnet 10.0.0.0/24: held by network a here; free after restore",
            "VXLAN id 4096: held by network a here; free after restore",
            "the ingress role",
        ] {
            if expected == "the ingress role" {
                assert!(!diff.contains(expected), "{diff}");
            } else {
                assert!(diff.contains(expected), "{expected}\nnot in\n{diff}");
            }
        }
        let (one, _) =
            Allocator::restore(ClusterConfig::default(), [ObjectRef::Network(&network), ObjectRef::Task(&t1)]).unwrap();
        let diff = both.diff(&one).expect("they differ").to_string();
        assert!(
            diff.contains(
                "address 10.0.0.5 on network a: held by task t1 (also claimed by task t2) here; held by task t1 after restore"
            ),
            "{diff}"
        );
    }
}
