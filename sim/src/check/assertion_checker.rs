//! The scenario's assertions (`[[expect.assert]]`), on the leader's store at the end, and the
//! VIP samples that `vip_unchanged_since` compares with.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use swarmalloc::{NetworkId, ServiceId, TaskState, VirtualIp};

use super::breach::{Breach, list, state_name};
use crate::result::Violation;
use crate::scenario::Assertion;
use crate::scenario::Checker;
use crate::store::Store;

pub(crate) fn vips_changed(service: &ServiceId, since_ms: u64, first: &[VirtualIp], now: &[VirtualIp]) -> String {
    let show = |v: &[VirtualIp]| v.iter().map(|v| format!("{}@{}", v.addr, v.network_id)).collect::<Vec<_>>().join(" ");
    format!(
        "VIPs of service {service} changed: [{}] first held at or after {since_ms}ms, [{}] now",
        show(first),
        show(now)
    )
}

pub(crate) fn vips_of(store: &Store, service: &ServiceId) -> Vec<VirtualIp> {
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
pub(crate) fn assertion_key(i: usize) -> String {
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
) -> Result<(), Breach> {
    for (i, assertion) in assertions.iter().enumerate() {
        check_one(assertion, store, samples).map_err(|(objects, detail)| {
            Breach::new(Checker::Assertion, objects, format!("{}: {detail}", assertion_key(i)))
        })?;
    }
    Ok(())
}

/// Why an assertion does not hold: the objects it is about and what was found instead.
type Unmet = (Vec<String>, String);

fn check_one(
    assertion: &Assertion,
    store: &Store,
    samples: &BTreeMap<(ServiceId, u64), Vec<VirtualIp>>,
) -> Result<(), Unmet> {
    match assertion {
        Assertion::Running { service, count } => {
            let running = store
                .tasks
                .values()
                .filter(|t| t.service_id.as_ref() == Some(service) && t.status.state == TaskState::Running);
            let running = running.count() as u64;
            if running != *count {
                return Err((
                    vec![format!("service {service}")],
                    format!("expected {count} RUNNING tasks of service {service}, found {running}"),
                ));
            }
        }
        Assertion::DistinctAddresses { service } => distinct_addresses(store, service)?,
        Assertion::VipUnchangedSince { service, since_ms } => {
            let now = vips_of(store, service);
            let Some(first) = samples.get(&(service.clone(), *since_ms)) else {
                return Err((
                    vec![format!("service {service}")],
                    format!("service {service} never held VIPs at or after {since_ms}ms"),
                ));
            };
            if *first != now {
                return Err((vec![format!("service {service}")], vips_changed(service, *since_ms, first, &now)));
            }
        }
        Assertion::NoTaskIn { state } => {
            if let Some(task) =
                store.tasks.values().find(|t| t.status.state == *state && t.desired_state <= TaskState::Running)
            {
                return Err((
                    vec![format!("task {}", task.id)],
                    format!("task {} is still {} at the end", task.id, state_name(*state)),
                ));
            }
        }
        Assertion::NetworkAllocated { network, subnet } => network_allocated(store, network, subnet.as_ref())?,
        Assertion::VipNetworks { service, networks } => vip_networks(store, service, networks)?,
        Assertion::NetworkGone { network } => network_gone(store, network)?,
    }
    Ok(())
}

fn distinct_addresses(store: &Store, service: &ServiceId) -> Result<(), Unmet> {
    let mut seen: BTreeMap<(&NetworkId, IpAddr), &str> = BTreeMap::new();
    let live = store.tasks.values().filter(|t| t.service_id.as_ref() == Some(service) && t.status.state.is_live());
    for task in live {
        for attachment in &task.networks {
            for address in &attachment.addresses {
                if let Some(other) = seen.insert((&attachment.network_id, address.addr()), task.id.as_str()) {
                    return Err((
                        vec![format!("task {other}"), format!("task {}", task.id)],
                        format!(
                            "tasks {other} and {} of service {service} share {} on network {}",
                            task.id,
                            address.addr(),
                            attachment.network_id
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn network_allocated(store: &Store, network: &NetworkId, subnet: Option<&IpNet>) -> Result<(), Unmet> {
    let Some(net) = store.networks.get(network) else {
        return Err((vec![format!("network {network}")], format!("network {network} does not exist")));
    };
    let subnets: Vec<IpNet> = net.ipam.iter().flat_map(|i| i.configs.iter()).filter_map(|c| c.subnet).collect();
    let ok = match subnet {
        Some(want) => subnets.contains(want),
        None => !subnets.is_empty(),
    };
    if !ok {
        let want = subnet.map_or("a subnet".to_string(), |s| s.to_string());
        return Err((
            vec![format!("network {network}")],
            format!("network {network} should be allocated with {want}; it has {}", list(&subnets, "no subnet")),
        ));
    }
    Ok(())
}

fn vip_networks(store: &Store, service: &ServiceId, networks: &[NetworkId]) -> Result<(), Unmet> {
    let mut want: Vec<&NetworkId> = networks.iter().collect();
    want.sort();
    let now = vips_of(store, service);
    let mut have: Vec<&NetworkId> = now.iter().map(|v| &v.network_id).collect();
    have.sort();
    if have != want {
        return Err((
            vec![format!("service {service}")],
            format!(
                "service {service} has VIPs on {}, expected exactly on {}",
                list(&have, "no network"),
                list(&want, "no network")
            ),
        ));
    }
    Ok(())
}

fn network_gone(store: &Store, network: &NetworkId) -> Result<(), Unmet> {
    let vip =
        |s: &&swarmalloc::Service| s.endpoint.iter().flat_map(|e| &e.virtual_ips).any(|v| &v.network_id == network);
    let task = |t: &&swarmalloc::Task| t.status.state.is_live() && t.networks.iter().any(|a| &a.network_id == network);
    let node = |n: &&swarmalloc::Node| n.attachments.iter().any(|a| &a.network_id == network);
    let mut users = (store.services.values().filter(vip).map(|s| format!("service {}", s.id)))
        .chain(store.tasks.values().filter(task).map(|t| format!("task {}", t.id)))
        .chain(store.nodes.values().filter(node).map(|n| format!("node {}", n.id)));
    if store.networks.contains_key(network) {
        return Err((vec![format!("network {network}")], format!("network {network} still exists")));
    }
    if let Some(user) = users.next() {
        return Err((vec![user.clone()], format!("{user} still refers to removed network {network}")));
    }
    Ok(())
}
