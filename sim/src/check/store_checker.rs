//! The store checker: after every applied entry, on every replica, the committed store holds
//! no two live holders of one address in a network (running containers included), no
//! overlapping subnets, unique VXLAN ids and ingress ports, addresses inside their pools, and
//! no reserved address (network, broadcast) handed out. Conflicts the scenario's initial state
//! already had are let be ([`Inherited`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use swarmalloc::{DriverScope, NetworkId, PublishMode, ServiceId, VXLAN_ID_LIST_OPTION};

use super::breach::{Breach, subnets};
use crate::scenario::Checker;
use crate::scenario::Checks;
use crate::store::Store;

/// Data-plane addresses of one running container.
pub type ContainerAddrs = Vec<(NetworkId, IpNet)>;

/// Who holds an address, in the checker's own words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Claimant<'a> {
    Gateway(&'a str),
    Vip(&'a str),
    Node(&'a str),
    /// A live task, or a container of that task still running on a worker.
    Task(&'a str),
}

impl Claimant<'_> {
    fn label(&self) -> String {
        match self {
            Claimant::Gateway(n) => format!("gateway of network {n}"),
            Claimant::Vip(s) => format!("VIP of service {s}"),
            Claimant::Node(n) => format!("load balancer of node {n}"),
            Claimant::Task(t) => format!("task {t}"),
        }
    }
}

/// One network's subnets and the addresses claimed in it.
struct NetClaims<'a> {
    node_local: bool,
    subnets: Vec<IpNet>,
    held: BTreeMap<IpAddr, Claimant<'a>>,
}

fn reserved(subnet: &IpNet, ip: IpAddr) -> Option<&'static str> {
    let host_bits = match subnet {
        IpNet::V4(n) => 32 - n.prefix_len(),
        IpNet::V6(n) => 128 - n.prefix_len(),
    };
    if host_bits < 2 {
        return None;
    }
    if ip == subnet.network() {
        Some("network address")
    } else if matches!(subnet, IpNet::V4(_)) && ip == subnet.broadcast() {
        Some("broadcast address")
    } else {
        None
    }
}

/// Conflicts already present in a scenario's initial stored state (as (checker, detail)): the
/// per-entry store checks let them be, as long as they stay exactly as they were, since the
/// allocator did not make them; the end check requires every one of them repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inherited(std::collections::BTreeSet<(String, String)>);

impl Inherited {
    /// Every store breach of `store` (the initial state).
    pub fn of(store: &Store) -> Inherited {
        let mut found = std::collections::BTreeSet::new();
        scan_store(store, None, &mut |f: Breach| {
            found.insert((f.name().to_string(), f.detail));
            false
        });
        Inherited(found)
    }

    pub fn contains(&self, breach: &Breach) -> bool {
        self.0.iter().any(|(checker, detail)| checker == breach.name() && *detail == breach.detail)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Store invariants; `containers` adds the addresses still used by running containers (pass it
/// only for the newest committed state). Breaches in `inherited` are let be, and so are those of
/// checkers that `checks` turns off: the scan goes on to the enabled ones.
pub fn check_store(
    store: &Store,
    containers: Option<&BTreeMap<String, BTreeMap<swarmalloc::TaskId, ContainerAddrs>>>,
    inherited: &Inherited,
    checks: &Checks,
) -> Result<(), Breach> {
    let mut first = None;
    scan_store(store, containers, &mut |breach: Breach| {
        if inherited.contains(&breach) || !checks.enabled(breach.name()) {
            return false;
        }
        first = Some(breach);
        true
    });
    first.map_or(Ok(()), Err)
}

/// Reports every broken store invariant to `report`, which returns true to stop the scan.
fn scan_store(
    store: &Store,
    containers: Option<&BTreeMap<String, BTreeMap<swarmalloc::TaskId, ContainerAddrs>>>,
    report: &mut dyn FnMut(Breach) -> bool,
) {
    let _stopped =
        scan_networks(store, report) || scan_ingress_ports(store, report) || scan_addresses(store, containers, report);
}

/// Subnets never overlap; VXLAN ids unique. True when `report` stopped the scan.
fn scan_networks(store: &Store, report: &mut dyn FnMut(Breach) -> bool) -> bool {
    let mut all: Vec<(IpNet, &NetworkId)> = Vec::new();
    let mut vnis: BTreeMap<u32, &NetworkId> = BTreeMap::new();
    for network in store.networks.values() {
        for subnet in subnets(network) {
            if let Some((other, id)) = all.iter().find(|(s, _)| s.contains(&subnet) || subnet.contains(s))
                && report(Breach::new(
                    Checker::OverlappingSubnets,
                    vec![format!("network {id}"), format!("network {}", network.id)],
                    format!("subnet {subnet} of network {} overlaps {other} of network {id}", network.id),
                ))
            {
                return true;
            }
            all.push((subnet, &network.id));
        }
        let list = network.driver_state.as_ref().and_then(|d| d.options.get(VXLAN_ID_LIST_OPTION));
        for vni in list.into_iter().flat_map(|l| l.split(',')).filter(|s| !s.is_empty()) {
            let Ok(vni) = vni.trim().parse::<u32>() else {
                let breach = Breach::new(
                    Checker::VxlanIdsUnique,
                    vec![format!("network {}", network.id)],
                    format!("unparsable VXLAN id {vni:?}"),
                );
                if report(breach) {
                    return true;
                }
                continue;
            };
            if let Some(other) = vnis.insert(vni, &network.id)
                && report(Breach::new(
                    Checker::VxlanIdsUnique,
                    vec![format!("network {other}"), format!("network {}", network.id)],
                    format!("VXLAN id {vni} held by networks {other} and {}", network.id),
                ))
            {
                return true;
            }
        }
    }
    false
}

/// Ingress ports unique per protocol. True when `report` stopped the scan.
fn scan_ingress_ports(store: &Store, report: &mut dyn FnMut(Breach) -> bool) -> bool {
    let mut ports: BTreeMap<(swarmalloc::Protocol, u16), &ServiceId> = BTreeMap::new();
    for service in store.services.values() {
        let Some(endpoint) = &service.endpoint else { continue };
        for port in endpoint.ports.iter().filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port != 0) {
            if let Some(other) = ports.insert((port.protocol, port.published_port), &service.id)
                && other != &service.id
                && report(Breach::new(
                    Checker::IngressPortsUnique,
                    vec![format!("service {other}"), format!("service {}", service.id)],
                    format!(
                        "{}/{} published by services {other} and {}",
                        port.protocol, port.published_port, service.id
                    ),
                ))
            {
                return true;
            }
        }
    }
    false
}

/// Addresses: inside a subnet of their network, not reserved, one live holder each, and none
/// held by one object while a running container of another uses it. True when `report`
/// stopped the scan.
fn scan_addresses(
    store: &Store,
    containers: Option<&BTreeMap<String, BTreeMap<swarmalloc::TaskId, ContainerAddrs>>>,
    report: &mut dyn FnMut(Breach) -> bool,
) -> bool {
    let mut nets: BTreeMap<&NetworkId, NetClaims<'_>> = store
        .networks
        .values()
        .map(|n| {
            let claims = NetClaims {
                node_local: n.scope() == DriverScope::NodeLocal,
                subnets: subnets(n),
                held: BTreeMap::new(),
            };
            (&n.id, claims)
        })
        .collect();
    for network in store.networks.values() {
        for config in network.ipam.iter().flat_map(|i| &i.configs) {
            if let (Some(gateway), Some(subnet)) = (config.gateway, config.subnet) {
                let addr = IpNet::new(gateway, subnet.prefix_len()).expect("a subnet's prefix length");
                if let Some(breach) = claim(&mut nets, &network.id, &addr, Claimant::Gateway(network.id.as_str()))
                    && report(breach)
                {
                    return true;
                }
            }
        }
    }
    for service in store.services.values() {
        for vip in service.endpoint.iter().flat_map(|e| &e.virtual_ips) {
            if let Some(breach) = claim(&mut nets, &vip.network_id, &vip.addr, Claimant::Vip(service.id.as_str()))
                && report(breach)
            {
                return true;
            }
        }
    }
    for node in store.nodes.values() {
        for attachment in &node.attachments {
            for addr in &attachment.addresses {
                if let Some(breach) = claim(&mut nets, &attachment.network_id, addr, Claimant::Node(node.id.as_str()))
                    && report(breach)
                {
                    return true;
                }
            }
        }
    }
    for task in store.tasks.values().filter(|t| t.status.state.is_live()) {
        for attachment in &task.networks {
            for addr in &attachment.addresses {
                if let Some(breach) = claim(&mut nets, &attachment.network_id, addr, Claimant::Task(task.id.as_str()))
                    && report(breach)
                {
                    return true;
                }
            }
        }
    }
    for (worker, running) in containers.into_iter().flatten() {
        for (task, addrs) in running {
            for (network, addr) in addrs {
                let who = Claimant::Task(task.as_str());
                if let Some(other) = nets.get(network).and_then(|n| n.held.get(&addr.addr()))
                    && *other != who
                    && report(Breach::new(
                        Checker::AddressFreedWhileInUse,
                        vec![format!("container of task {task} on {worker}"), other.label()],
                        format!(
                            "address {} on network {network} is used by a running container of task {task} on \
                             {worker} and held by {}",
                            addr.addr(),
                            other.label()
                        ),
                    ))
                {
                    return true;
                }
            }
        }
    }
    false
}

/// `who` claims `addr` on `network`: a breach when it is outside the network's subnets,
/// reserved, or held by another.
fn claim<'a>(
    nets: &mut BTreeMap<&'a NetworkId, NetClaims<'a>>,
    network: &NetworkId,
    addr: &IpNet,
    who: Claimant<'a>,
) -> Option<Breach> {
    // A reference to a deleted network (a delete racing an allocation, SwarmKit's B10)
    // can collide with nothing; the end check requires node attachments to be cleaned up.
    let net = nets.get_mut(network)?;
    if net.node_local {
        return None;
    }
    let ip = addr.addr();
    let Some(subnet) = net.subnets.iter().find(|s| s.contains(&ip)) else {
        return Some(Breach::new(
            Checker::AddressesInPool,
            vec![who.label(), format!("network {network}")],
            format!("{} holds {addr}, outside every subnet of network {network}", who.label()),
        ));
    };
    if let Some(what) = reserved(subnet, ip) {
        return Some(Breach::new(
            Checker::AddressesInPool,
            vec![who.label(), format!("network {network}")],
            format!("{} holds {addr}, the {what} of {subnet}", who.label()),
        ));
    }
    match net.held.get(&ip) {
        Some(other) if *other != who => Some(Breach::new(
            Checker::DuplicateLiveAddress,
            vec![other.label(), who.label()],
            format!("address {ip} on network {network} held by {} and {}", other.label(), who.label()),
        )),
        Some(_) => None,
        None => {
            net.held.insert(ip, who);
            None
        }
    }
}
