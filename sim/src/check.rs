//! The checkers. Each re-derives an invariant from committed state independently of the engine
//! (allocator-spec.md section 7): unique live addresses per network (counting containers still
//! running), non-overlapping subnets, unique VXLAN ids and ingress ports, addresses inside their
//! pools, identical replicas, engine == restore(store), stable allocations, and liveness.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use swarmalloc::{
    Allocator, DriverScope, Network, NetworkId, ObjectId, Outcome, PublishMode, ServiceId, TaskState,
    VXLAN_ID_LIST_OPTION, VirtualIp,
};

use crate::result::Violation;
use crate::scenario::{Assertion, Checks};
use crate::store::{Event, Store};
use crate::world::{ContainerAddrs, Finding, World};

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

/// Subnets of an allocated network, in config order.
fn subnets(network: &Network) -> Vec<IpNet> {
    network.ipam.iter().flat_map(|i| i.configs.iter().filter_map(|c| c.subnet)).collect()
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
    /// Every store finding of `store` (the initial state).
    pub fn of(store: &Store) -> Inherited {
        let mut found = std::collections::BTreeSet::new();
        scan_store(store, None, &mut |f: Finding| {
            found.insert((f.checker.to_string(), f.detail));
            false
        });
        Inherited(found)
    }

    pub fn contains(&self, finding: &Finding) -> bool {
        self.0.iter().any(|(checker, detail)| checker == finding.checker && *detail == finding.detail)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Store invariants; `containers` adds the addresses still used by running containers (pass it
/// only for the newest committed state). Findings in `inherited` are let be, and so are those of
/// checkers that `checks` turns off: the scan goes on to the enabled ones.
pub fn check_store(
    store: &Store,
    containers: Option<&BTreeMap<String, BTreeMap<swarmalloc::TaskId, ContainerAddrs>>>,
    inherited: &Inherited,
    checks: &Checks,
) -> Result<(), Finding> {
    let mut first = None;
    scan_store(store, containers, &mut |finding: Finding| {
        if inherited.contains(&finding) || !checks.enabled(finding.checker) {
            return false;
        }
        first = Some(finding);
        true
    });
    first.map_or(Ok(()), Err)
}

/// Reports every broken store invariant to `report`, which returns true to stop the scan.
fn scan_store(
    store: &Store,
    containers: Option<&BTreeMap<String, BTreeMap<swarmalloc::TaskId, ContainerAddrs>>>,
    report: &mut dyn FnMut(Finding) -> bool,
) {
    // Subnets never overlap; VXLAN ids unique.
    let mut all: Vec<(IpNet, &NetworkId)> = Vec::new();
    let mut vnis: BTreeMap<u32, &NetworkId> = BTreeMap::new();
    for network in store.networks.values() {
        for subnet in subnets(network) {
            if let Some((other, id)) = all.iter().find(|(s, _)| s.contains(&subnet) || subnet.contains(s))
                && report(Finding::new(
                    "overlapping_subnets",
                    vec![format!("network {id}"), format!("network {}", network.id)],
                    format!("subnet {subnet} of network {} overlaps {other} of network {id}", network.id),
                ))
            {
                return;
            }
            all.push((subnet, &network.id));
        }
        let list = network.driver_state.as_ref().and_then(|d| d.options.get(VXLAN_ID_LIST_OPTION));
        for vni in list.into_iter().flat_map(|l| l.split(',')).filter(|s| !s.is_empty()) {
            let Ok(vni) = vni.trim().parse::<u32>() else {
                let finding = Finding::new(
                    "vxlan_ids_unique",
                    vec![format!("network {}", network.id)],
                    format!("unparsable VXLAN id {vni:?}"),
                );
                if report(finding) {
                    return;
                }
                continue;
            };
            if let Some(other) = vnis.insert(vni, &network.id)
                && report(Finding::new(
                    "vxlan_ids_unique",
                    vec![format!("network {other}"), format!("network {}", network.id)],
                    format!("VXLAN id {vni} held by networks {other} and {}", network.id),
                ))
            {
                return;
            }
        }
    }
    // Ingress ports unique per protocol.
    let mut ports: BTreeMap<(swarmalloc::Protocol, u16), &ServiceId> = BTreeMap::new();
    for service in store.services.values() {
        let Some(endpoint) = &service.endpoint else { continue };
        for port in endpoint.ports.iter().filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port != 0) {
            if let Some(other) = ports.insert((port.protocol, port.published_port), &service.id)
                && other != &service.id
                && report(Finding::new(
                    "ingress_ports_unique",
                    vec![format!("service {other}"), format!("service {}", service.id)],
                    format!(
                        "{}/{} published by services {other} and {}",
                        port.protocol, port.published_port, service.id
                    ),
                ))
            {
                return;
            }
        }
    }
    // Addresses: inside a subnet of their network, not reserved, one live holder each.
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
    fn claim<'a>(
        nets: &mut BTreeMap<&'a NetworkId, NetClaims<'a>>,
        network: &NetworkId,
        addr: &IpNet,
        who: Claimant<'a>,
    ) -> Option<Finding> {
        // A reference to a deleted network (a delete racing an allocation, SwarmKit's B10)
        // can collide with nothing; the end check requires node attachments to be cleaned up.
        let net = nets.get_mut(network)?;
        if net.node_local {
            return None;
        }
        let ip = addr.addr();
        let Some(subnet) = net.subnets.iter().find(|s| s.contains(&ip)) else {
            return Some(Finding::new(
                "addresses_in_pool",
                vec![who.label(), format!("network {network}")],
                format!("{} holds {addr}, outside every subnet of network {network}", who.label()),
            ));
        };
        if let Some(what) = reserved(subnet, ip) {
            return Some(Finding::new(
                "addresses_in_pool",
                vec![who.label(), format!("network {network}")],
                format!("{} holds {addr}, the {what} of {subnet}", who.label()),
            ));
        }
        match net.held.get(&ip) {
            Some(other) if *other != who => Some(Finding::new(
                "duplicate_live_address",
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
    for network in store.networks.values() {
        for config in network.ipam.iter().flat_map(|i| &i.configs) {
            if let (Some(gateway), Some(subnet)) = (config.gateway, config.subnet) {
                let addr = IpNet::new(gateway, subnet.prefix_len()).expect("a subnet's prefix length");
                if let Some(finding) = claim(&mut nets, &network.id, &addr, Claimant::Gateway(network.id.as_str()))
                    && report(finding)
                {
                    return;
                }
            }
        }
    }
    for service in store.services.values() {
        for vip in service.endpoint.iter().flat_map(|e| &e.virtual_ips) {
            if let Some(finding) = claim(&mut nets, &vip.network_id, &vip.addr, Claimant::Vip(service.id.as_str()))
                && report(finding)
            {
                return;
            }
        }
    }
    for node in store.nodes.values() {
        for attachment in &node.attachments {
            for addr in &attachment.addresses {
                if let Some(finding) = claim(&mut nets, &attachment.network_id, addr, Claimant::Node(node.id.as_str()))
                    && report(finding)
                {
                    return;
                }
            }
        }
    }
    for task in store.tasks.values().filter(|t| t.status.state.is_live()) {
        for attachment in &task.networks {
            for addr in &attachment.addresses {
                if let Some(finding) = claim(&mut nets, &attachment.network_id, addr, Claimant::Task(task.id.as_str()))
                    && report(finding)
                {
                    return;
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
                    && report(Finding::new(
                        "address_freed_while_in_use",
                        vec![format!("container of task {task} on {worker}"), other.label()],
                        format!(
                            "address {} on network {network} is used by a running container of task {task} on \
                             {worker} and held by {}",
                            addr.addr(),
                            other.label()
                        ),
                    ))
                {
                    return;
                }
            }
        }
    }
}

/// Allocations that must never change while their object lives: a network's subnets and VXLAN
/// ids, a service's VIP per network, a service's dynamic published ports.
#[derive(Clone, Debug, Default)]
pub struct Stability {
    networks: BTreeMap<NetworkId, (Vec<IpNet>, Option<String>)>,
    vips: BTreeMap<ServiceId, BTreeMap<NetworkId, IpNet>>,
    dynamic_ports: BTreeMap<ServiceId, BTreeMap<(String, swarmalloc::Protocol, u16), u16>>,
}

impl Stability {
    /// Compares the objects an entry wrote with what they had before; forgets deleted objects.
    pub fn observe(&mut self, store: &Store, events: &[Event]) -> Result<(), Finding> {
        for event in events {
            match event {
                Event::Put(ObjectId::Network(id)) => {
                    let Some(network) = store.networks.get(id) else { continue };
                    // Only an allocated network (IPAM and driver state both written, spec 1.1)
                    // holds its subnets. One stored without some of its VXLAN ids (one per
                    // subnet) keeps its subnets and gets the missing ids once.
                    if !network.is_allocated() {
                        continue;
                    }
                    let now = (
                        subnets(network),
                        network.driver_state.as_ref().and_then(|d| d.options.get(VXLAN_ID_LIST_OPTION).cloned()),
                    );
                    let complete = |(subnets, vnis): &(Vec<IpNet>, Option<String>)| {
                        vnis.as_ref().is_some_and(|list| list.split(',').count() == subnets.len())
                    };
                    if let Some(before) = self.networks.get(id)
                        && *before != now
                        && (before.0 != now.0 || complete(before))
                    {
                        return Err(Finding::new(
                            "stable_allocations",
                            vec![format!("network {id}")],
                            network_changed(id, before, &now),
                        ));
                    }
                    self.networks.insert(id.clone(), now);
                }
                Event::Put(ObjectId::Service(id)) => {
                    let Some(service) = store.services.get(id) else { continue };
                    let Some(endpoint) = &service.endpoint else { continue };
                    let vips: BTreeMap<NetworkId, IpNet> =
                        endpoint.virtual_ips.iter().map(|v| (v.network_id.clone(), v.addr)).collect();
                    let before = self.vips.entry(id.clone()).or_default();
                    for (network, addr) in &vips {
                        if let Some(old) = before.get(network)
                            && old != addr
                        {
                            return Err(Finding::new(
                                "stable_allocations",
                                vec![format!("service {id}"), format!("network {network}")],
                                format!("VIP of service {id} on network {network} changed from {old} to {addr}"),
                            ));
                        }
                    }
                    *before = vips;
                    let dynamic: BTreeSet<(String, swarmalloc::Protocol, u16)> = endpoint
                        .spec
                        .ports
                        .iter()
                        .filter(|p| p.published_port == 0 && p.publish_mode == PublishMode::Ingress)
                        .map(|p| (p.name.clone(), p.protocol, p.target_port))
                        .collect();
                    let now: BTreeMap<(String, swarmalloc::Protocol, u16), u16> = endpoint
                        .ports
                        .iter()
                        .map(|p| ((p.name.clone(), p.protocol, p.target_port), p.published_port))
                        .filter(|(k, _)| dynamic.contains(k))
                        .collect();
                    let before = self.dynamic_ports.entry(id.clone()).or_default();
                    for (key, port) in &now {
                        if let Some(old) = before.get(key)
                            && old != port
                        {
                            return Err(Finding::new(
                                "stable_allocations",
                                vec![format!("service {id}")],
                                format!(
                                    "the dynamic published port of service {id} for target port {}/{}{} changed from \
                                     {old} to {port}",
                                    key.2,
                                    key.1,
                                    if key.0.is_empty() { String::new() } else { format!(" (port {:?})", key.0) }
                                ),
                            ));
                        }
                    }
                    *before = now;
                }
                Event::Deleted(ObjectId::Network(id)) => drop(self.networks.remove(id)),
                Event::Deleted(ObjectId::Service(id)) => {
                    self.vips.remove(id);
                    self.dynamic_ports.remove(id);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// `items` joined with ", ", or `none` when there are none: lists in violations read as words.
fn list<T: std::fmt::Display>(items: &[T], none: &str) -> String {
    if items.is_empty() { none.to_string() } else { items.iter().map(T::to_string).collect::<Vec<_>>().join(", ") }
}

/// A task state as SwarmKit's API spells it (`NEW`, `PENDING`, ...).
fn state_name(state: TaskState) -> String {
    format!("{state:?}").to_uppercase()
}

/// What changed in an allocated network that must not change: its subnets or its VXLAN ids.
fn network_changed(
    id: &NetworkId,
    before: &(Vec<IpNet>, Option<String>),
    now: &(Vec<IpNet>, Option<String>),
) -> String {
    let vxlan = |ids: &Option<String>| ids.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "none".into());
    let mut changes = Vec::new();
    if before.0 != now.0 {
        changes.push(format!("its subnets from {} to {}", list(&before.0, "none"), list(&now.0, "none")));
    }
    if before.1 != now.1 {
        changes.push(format!("its VXLAN ids from {} to {}", vxlan(&before.1), vxlan(&now.1)));
    }
    format!("network {id} changed {} while it exists", changes.join(" and "))
}

/// engine == restore(committed store): no leak, no phantom.
pub fn check_engine(engine: &Allocator, store: &Store) -> Result<(), Finding> {
    let (restored, _) = Allocator::restore(store.config(), store.objects())
        .map_err(|e| Finding::new("engine_equals_restore", vec![], format!("restore failed: {e}")))?;
    match engine.diff(&restored) {
        None => Ok(()),
        Some(diff) => Err(Finding::new(
            "engine_equals_restore",
            vec![],
            format!("engine differs from restore(committed store) at index {}: {diff}", store.applied),
        )),
    }
}

/// End of run: live NEW tasks that one allocation pass over the committed store could move to
/// PENDING (their dependencies can be met), and reservations of objects no longer in the store.
/// Checkers that `checks` turns off are skipped.
pub fn check_end(engine: &Allocator, store: &Store, checks: &Checks) -> Result<(), Finding> {
    let (fresh, _) = Allocator::restore(store.config(), store.objects())
        .map_err(|e| Finding::new("liveness", vec![], format!("restore failed: {e}")))?;
    let mut tx = fresh.begin();
    for network in store.networks.values() {
        let _ = tx.allocate_network(network);
    }
    for service in store.services.values() {
        let _ = tx.allocate_service(service);
    }
    let mut stuck = Vec::new();
    for task in
        store.tasks.values().filter(|t| t.status.state == TaskState::New && t.desired_state <= TaskState::Running)
    {
        let service = task.service_id.as_ref().and_then(|id| store.services.get(id));
        if task.service_id.is_some() && service.is_none() {
            continue;
        }
        if let Ok(Outcome::Updated) = tx.allocate_task(task, service) {
            stuck.push(format!("task {}", task.id));
        }
    }
    if !stuck.is_empty() && checks.enabled("liveness_tasks_leave_new") {
        let n = stuck.len();
        stuck.truncate(10);
        return Err(Finding::new(
            "liveness_tasks_leave_new",
            stuck,
            format!("{n} live NEW tasks whose dependencies can be met are still NEW after the faults healed"),
        ));
    }
    if !checks.enabled("deleted_objects_hold_nothing") {
        return Ok(());
    }
    // A node attachment on a deleted network must be gone: the node's next update drops it
    // whatever else it needs (node attachments are allocated per network).
    for node in store.nodes.values() {
        let Some(a) = node.attachments.iter().find(|a| !store.networks.contains_key(&a.network_id)) else { continue };
        return Err(Finding::new(
            "deleted_objects_hold_nothing",
            vec![format!("node {}", node.id), format!("network {}", a.network_id)],
            format!("node {} still has a load-balancer attachment on deleted network {}", node.id, a.network_id),
        ));
    }
    for claimed in engine.claimed_addresses() {
        let holders = std::iter::once(&claimed.holder).chain(&claimed.losers);
        for holder in holders {
            if store.get(&holder.object()).is_none() {
                return Err(Finding::new(
                    "deleted_objects_hold_nothing",
                    vec![holder.to_string()],
                    format!(
                        "address {} on network {} is still reserved for {holder}, which was deleted",
                        claimed.address, claimed.network
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Samples the VIPs that `vip_unchanged_since` assertions compare against, at the first applied
/// entry at or after each assertion's time.
pub fn sample_vips(world: &mut World, store: &Store, raft_index: u64, node: &str) {
    let now = world.now_ms();
    let scenario = world.scenario.clone();
    for (i, assertion) in scenario.assertions.iter().enumerate() {
        let Assertion::VipUnchangedSince { service, since_ms } = assertion else { continue };
        if *since_ms > now {
            continue;
        }
        let vips = vips_of(store, service);
        if vips.is_empty() {
            // Not allocated yet, or deleted: the end check compares the end state.
            continue;
        }
        let key = (service.clone(), *since_ms);
        match world.vip_samples.get(&key) {
            None => {
                world.vip_samples.insert(key, vips);
            }
            Some(first) if *first != vips => {
                let detail = format!("{}: {}", assertion_key(i), vips_changed(service, *since_ms, first, &vips));
                world.violate(Finding::new("assertion", vec![format!("service {service}")], detail), node, raft_index);
            }
            Some(_) => {}
        }
    }
}

fn vips_changed(service: &ServiceId, since_ms: u64, first: &[VirtualIp], now: &[VirtualIp]) -> String {
    let show = |v: &[VirtualIp]| v.iter().map(|v| format!("{}@{}", v.addr, v.network_id)).collect::<Vec<_>>().join(" ");
    format!(
        "VIPs of service {service} changed: [{}] first held at or after {since_ms}ms, [{}] now",
        show(first),
        show(now)
    )
}

fn vips_of(store: &Store, service: &ServiceId) -> Vec<VirtualIp> {
    let mut vips: Vec<VirtualIp> = store
        .services
        .get(service)
        .and_then(|s| s.endpoint.as_ref())
        .map(|e| e.virtual_ips.clone())
        .unwrap_or_default();
    vips.sort();
    vips
}

/// How an assertion failure's detail starts: the assertion's key in the scenario file.
fn assertion_key(i: usize) -> String {
    format!("expect.assert[{i}]")
}

/// Which assertion an `assertion` violation is about (`expect.assert[i]`), from its detail.
pub fn assertion_of(violation: &Violation) -> Option<&str> {
    let (key, _) = violation.detail.split_once(": ")?;
    (violation.checker == "assertion" && key.starts_with("expect.assert[")).then_some(key)
}

/// The scenario's end-state assertions, on the leader's store after the end checks passed.
pub fn check_assertions(
    assertions: &[Assertion],
    store: &Store,
    samples: &BTreeMap<(ServiceId, u64), Vec<VirtualIp>>,
) -> Result<(), Finding> {
    for (i, assertion) in assertions.iter().enumerate() {
        let fail = |objects, detail| Err(Finding::new("assertion", objects, format!("{}: {detail}", assertion_key(i))));
        match assertion {
            Assertion::Running { service, count } => {
                let running = store
                    .tasks
                    .values()
                    .filter(|t| t.service_id.as_ref() == Some(service) && t.status.state == TaskState::Running);
                let running = running.count() as u64;
                if running != *count {
                    return fail(
                        vec![format!("service {service}")],
                        format!("expected {count} RUNNING tasks of service {service}, found {running}"),
                    );
                }
            }
            Assertion::DistinctAddresses { service } => {
                let mut seen: BTreeMap<(&NetworkId, IpAddr), &str> = BTreeMap::new();
                let live =
                    store.tasks.values().filter(|t| t.service_id.as_ref() == Some(service) && t.status.state.is_live());
                for task in live {
                    for attachment in &task.networks {
                        for address in &attachment.addresses {
                            if let Some(other) = seen.insert((&attachment.network_id, address.addr()), task.id.as_str())
                            {
                                return fail(
                                    vec![format!("task {other}"), format!("task {}", task.id)],
                                    format!(
                                        "tasks {other} and {} of service {service} share {} on network {}",
                                        task.id,
                                        address.addr(),
                                        attachment.network_id
                                    ),
                                );
                            }
                        }
                    }
                }
            }
            Assertion::VipUnchangedSince { service, since_ms } => {
                let now = vips_of(store, service);
                let Some(first) = samples.get(&(service.clone(), *since_ms)) else {
                    return fail(
                        vec![format!("service {service}")],
                        format!("service {service} never held VIPs at or after {since_ms}ms"),
                    );
                };
                if *first != now {
                    return fail(vec![format!("service {service}")], vips_changed(service, *since_ms, first, &now));
                }
            }
            Assertion::NoTaskIn { state } => {
                if let Some(task) =
                    store.tasks.values().find(|t| t.status.state == *state && t.desired_state <= TaskState::Running)
                {
                    return fail(
                        vec![format!("task {}", task.id)],
                        format!("task {} is still {} at the end", task.id, state_name(*state)),
                    );
                }
            }
            Assertion::NetworkAllocated { network, subnet } => {
                let Some(net) = store.networks.get(network) else {
                    return fail(vec![format!("network {network}")], format!("network {network} does not exist"));
                };
                let subnets: Vec<IpNet> =
                    net.ipam.iter().flat_map(|i| i.configs.iter()).filter_map(|c| c.subnet).collect();
                let ok = match subnet {
                    Some(want) => subnets.contains(want),
                    None => !subnets.is_empty(),
                };
                if !ok {
                    let want = subnet.map_or("a subnet".to_string(), |s| s.to_string());
                    return fail(
                        vec![format!("network {network}")],
                        format!(
                            "network {network} should be allocated with {want}; it has {}",
                            list(&subnets, "no subnet")
                        ),
                    );
                }
            }
            Assertion::VipNetworks { service, networks } => {
                let mut want: Vec<&NetworkId> = networks.iter().collect();
                want.sort();
                let now = vips_of(store, service);
                let mut have: Vec<&NetworkId> = now.iter().map(|v| &v.network_id).collect();
                have.sort();
                if have != want {
                    return fail(
                        vec![format!("service {service}")],
                        format!(
                            "service {service} has VIPs on {}, expected exactly on {}",
                            list(&have, "no network"),
                            list(&want, "no network")
                        ),
                    );
                }
            }
            Assertion::NetworkGone { network } => {
                let vip = |s: &&swarmalloc::Service| {
                    s.endpoint.iter().flat_map(|e| &e.virtual_ips).any(|v| &v.network_id == network)
                };
                let task = |t: &&swarmalloc::Task| {
                    t.status.state.is_live() && t.networks.iter().any(|a| &a.network_id == network)
                };
                let node = |n: &&swarmalloc::Node| n.attachments.iter().any(|a| &a.network_id == network);
                let mut users = (store.services.values().filter(vip).map(|s| format!("service {}", s.id)))
                    .chain(store.tasks.values().filter(task).map(|t| format!("task {}", t.id)))
                    .chain(store.nodes.values().filter(node).map(|n| format!("node {}", n.id)));
                if store.networks.contains_key(network) {
                    return fail(vec![format!("network {network}")], format!("network {network} still exists"));
                }
                if let Some(user) = users.next() {
                    return fail(vec![user.clone()], format!("{user} still refers to removed network {network}"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duties::cluster_objects;
    use crate::store::{Change, Origin, ProposalId, Txn};
    use swarmalloc::{
        DriverConfig, Ipam, IpamConfig, NetworkAttachment, Object, Task, TaskId, TaskSpec, TaskStatus, Version,
    };

    fn store_with(objects: Vec<Object>) -> Store {
        let mut store = Store::default();
        let mut changes = cluster_objects(&swarmalloc::ClusterConfig::default(), 1, 1);
        changes.extend(objects.into_iter().map(|object| Change::Create { object }));
        let txn = Txn { id: ProposalId { node: 1, incarnation: 0, seq: 1 }, origin: Origin::Control, changes };
        store.apply(1, &txn).expect("applies");
        store
    }

    fn net(id: &str, subnet: &str, vni: &str) -> Object {
        let mut network = Network {
            id: id.into(),
            version: Version(0),
            spec: Default::default(),
            driver_state: Some(DriverConfig {
                name: "overlay".into(),
                options: [(VXLAN_ID_LIST_OPTION.to_string(), vni.to_string())].into(),
            }),
            ipam: Some(Ipam {
                driver: "default".into(),
                options: Default::default(),
                configs: vec![IpamConfig { subnet: Some(subnet.parse().expect("subnet")), ..Default::default() }],
            }),
        };
        network.spec.name = id.into();
        Object::Network(network)
    }

    fn task(id: &str, network: &str, addr: &str, state: TaskState) -> Object {
        Object::Task(Task {
            id: TaskId::from(id),
            version: Version(0),
            service_id: None,
            node_id: None,
            slot: 0,
            spec: TaskSpec::default(),
            status: TaskStatus { state, message: String::new() },
            desired_state: TaskState::Running,
            networks: vec![NetworkAttachment {
                network_id: network.into(),
                addresses: vec![addr.parse().expect("address")],
                aliases: Vec::new(),
                driver_attachment_opts: Default::default(),
            }],
            endpoint: None,
        })
    }

    fn checker(objects: Vec<Object>) -> Option<&'static str> {
        check_store(&store_with(objects), None, &Inherited::default(), &Checks::default()).err().map(|f| f.checker)
    }

    #[test]
    fn each_store_invariant_fires_on_its_own_breakage() {
        let ok = vec![
            net("a", "10.0.0.0/24", "4096"),
            net("b", "10.0.1.0/24", "4097"),
            task("t1", "a", "10.0.0.2/24", TaskState::Running),
            task("t2", "a", "10.0.0.3/24", TaskState::Running),
            // A terminal task's address is no live claim.
            task("t3", "a", "10.0.0.2/24", TaskState::Shutdown),
        ];
        assert_eq!(checker(ok), None);
        // A dangling reference to a deleted network collides with nothing.
        assert_eq!(checker(vec![task("t1", "gone", "10.0.0.2/24", TaskState::Running)]), None);
        let cases: Vec<(&str, Vec<Object>)> = vec![
            (
                "duplicate_live_address",
                vec![
                    net("a", "10.0.0.0/24", "4096"),
                    task("t1", "a", "10.0.0.2/24", TaskState::Running),
                    task("t2", "a", "10.0.0.2/24", TaskState::New),
                ],
            ),
            ("overlapping_subnets", vec![net("a", "10.0.0.0/16", "4096"), net("b", "10.0.1.0/24", "4097")]),
            ("vxlan_ids_unique", vec![net("a", "10.0.0.0/24", "4096"), net("b", "10.0.1.0/24", "4096")]),
            (
                "addresses_in_pool",
                vec![net("a", "10.0.0.0/24", "4096"), task("t1", "a", "10.0.0.255/24", TaskState::Running)],
            ),
            (
                "addresses_in_pool",
                vec![net("a", "10.0.0.0/24", "4096"), task("t1", "a", "10.0.9.2/24", TaskState::Running)],
            ),
        ];
        for (expected, objects) in cases {
            assert_eq!(checker(objects), Some(expected));
        }
    }

    #[test]
    fn conflicts_of_the_initial_state_are_let_be_but_not_new_ones() {
        let initial = vec![
            net("a", "10.0.0.0/24", "4096"),
            task("t1", "a", "10.0.0.2/24", TaskState::Running),
            task("t2", "a", "10.0.0.2/24", TaskState::Running),
        ];
        let store = store_with(initial.clone());
        let inherited = Inherited::of(&store);
        assert!(!inherited.is_empty());
        assert_eq!(check_store(&store, None, &inherited, &Checks::default()), Ok(()));
        assert_eq!(
            check_store(&store, None, &Inherited::default(), &Checks::default()).map_err(|f| f.checker),
            Err("duplicate_live_address")
        );
        // A third holder of the same address is a new conflict.
        let mut more = initial;
        more.push(task("t3", "a", "10.0.0.2/24", TaskState::Running));
        let finding = check_store(&store_with(more), None, &inherited, &Checks::default()).expect_err("t3 is new");
        assert!(finding.detail.contains("t3"), "{finding:?}");
    }

    #[test]
    fn a_running_container_keeps_its_address_in_use() {
        let store = store_with(vec![net("a", "10.0.0.0/24", "4096"), task("t2", "a", "10.0.0.2/24", TaskState::New)]);
        let mut containers = BTreeMap::new();
        let running: BTreeMap<TaskId, ContainerAddrs> =
            [(TaskId::from("t1"), vec![(NetworkId::from("a"), "10.0.0.2/24".parse().expect("address"))])].into();
        containers.insert("w1".to_string(), running);
        let finding = check_store(&store, Some(&containers), &Inherited::default(), &Checks::default())
            .expect_err("t1's container still uses .2");
        assert_eq!(finding.checker, "address_freed_while_in_use");
        // The container of the task that holds the address is no conflict.
        let own: BTreeMap<TaskId, ContainerAddrs> =
            [(TaskId::from("t2"), vec![(NetworkId::from("a"), "10.0.0.2/24".parse().expect("address"))])].into();
        containers.insert("w1".to_string(), own);
        assert_eq!(check_store(&store, Some(&containers), &Inherited::default(), &Checks::default()), Ok(()));
    }

    #[test]
    fn stability_notices_a_changed_subnet_but_not_a_recreated_network() {
        let mut stability = Stability::default();
        let mut store = store_with(vec![net("a", "10.0.0.0/24", "4096")]);
        let put = [Event::Put(ObjectId::Network("a".into()))];
        assert_eq!(stability.observe(&store, &put), Ok(()));
        let Some(Object::Network(moved)) = Some(net("a", "10.0.5.0/24", "4096")) else { unreachable!() };
        store.networks.insert("a".into(), moved);
        let finding = stability.observe(&store, &put).expect_err("the subnet moved");
        assert_eq!(finding.checker, "stable_allocations");
        // In words, not a Debug dump of the checker's tuple.
        assert_eq!(finding.detail, "network a changed its subnets from 10.0.0.0/24 to 10.0.5.0/24 while it exists");
        let mut fresh = Stability::default();
        assert_eq!(fresh.observe(&store, &[Event::Deleted(ObjectId::Network("a".into()))]), Ok(()));
        assert_eq!(fresh.observe(&store, &put), Ok(()));
    }

    #[test]
    fn the_end_check_finds_a_satisfiable_task_left_in_new() {
        let mut stuck = task("t1", "a", "10.0.0.2/24", TaskState::New);
        if let Object::Task(t) = &mut stuck {
            t.networks.clear();
        }
        let store = store_with(vec![net("a", "10.0.0.0/24", "4096"), stuck]);
        let (engine, _) = Allocator::restore(store.config(), store.objects()).expect("restore");
        let finding = check_end(&engine, &store, &Checks::default()).expect_err("t1 could be PENDING");
        assert_eq!((finding.checker, finding.objects), ("liveness_tasks_leave_new", vec!["task t1".to_string()]));
        let store = store_with(vec![net("a", "10.0.0.0/24", "4096")]);
        let (engine, _) = Allocator::restore(store.config(), store.objects()).expect("restore");
        assert_eq!(check_end(&engine, &store, &Checks::default()), Ok(()));
    }

    fn only(checkers: &[&str]) -> Checks {
        Checks { checkers: checkers.iter().map(|c| c.to_string()).collect(), ..Checks::default() }
    }

    #[test]
    fn a_checker_turned_off_hides_none_of_the_enabled_ones() {
        // Overlapping subnets are scanned before VXLAN ids; both are broken here.
        let store = store_with(vec![net("a", "10.0.0.0/16", "4096"), net("b", "10.0.1.0/24", "4096")]);
        let all = check_store(&store, None, &Inherited::default(), &Checks::default());
        assert_eq!(all.map_err(|f| f.checker), Err("overlapping_subnets"));
        let vxlan = check_store(&store, None, &Inherited::default(), &only(&["vxlan_ids_unique"]));
        assert_eq!(vxlan.map_err(|f| f.checker), Err("vxlan_ids_unique"));
        let neither = check_store(&store, None, &Inherited::default(), &only(&["addresses_in_pool"]));
        assert_eq!(neither, Ok(()));
    }

    #[test]
    fn the_end_check_goes_on_past_a_checker_turned_off() {
        let mut stuck = task("t1", "a", "10.0.0.2/24", TaskState::New);
        if let Object::Task(t) = &mut stuck {
            t.networks.clear();
        }
        let store = store_with(vec![net("a", "10.0.0.0/24", "4096"), stuck.clone()]);
        // An engine restored from a store that also had network b and a task on it, both deleted
        // since: it still reserves their addresses.
        let before = store_with(vec![
            net("a", "10.0.0.0/24", "4096"),
            net("b", "10.0.1.0/24", "4097"),
            task("t9", "b", "10.0.1.2/24", TaskState::Running),
            stuck,
        ]);
        let (engine, _) = Allocator::restore(before.config(), before.objects()).expect("restore");
        let first = check_end(&engine, &store, &Checks::default()).map_err(|f| f.checker);
        assert_eq!(first, Err("liveness_tasks_leave_new"));
        let second = check_end(&engine, &store, &only(&["deleted_objects_hold_nothing"])).map_err(|f| f.checker);
        assert_eq!(second, Err("deleted_objects_hold_nothing"));
        assert_eq!(check_end(&engine, &store, &only(&["addresses_in_pool"])), Ok(()));
    }
}
