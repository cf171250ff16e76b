//! Restore's report: what is wrong in the committed state and what needs allocating. Restore
//! itself only reads and marks (`State::observe_all`); conflicts are settled by the ranking in
//! `index` (lowest [`Holder`] keeps an address, lowest service id keeps a port, ingress-then-id
//! keeps a subnet or VXLAN id), and the losers are queued here for fresh allocation.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::ids::{NetworkId, ServiceId};
use crate::index::{Fnv, Holder, NETWORKS_HASHED_FROM, NetEntry, Placement, State};
use crate::objects::{DriverScope, ObjectId, ObjectRef, Protocol, TASK_PASS_RANK, TaskState};
use crate::tx::{Outcome, Tx};

/// A problem found in committed state, with how restore resolved it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum Finding {
    /// Several live holders reference one address; `kept` holds it, `lost` are queued.
    DuplicateAddress { network: NetworkId, address: IpAddr, kept: Holder, lost: Vec<Holder> },
    /// A live holder references an address outside every subnet of its network.
    AddressOutsideSubnets { network: NetworkId, address: IpNet, holder: Holder },
    /// A live holder references a network or broadcast address.
    ReservedAddress { network: NetworkId, address: IpNet, holder: Holder, reserved: String },
    /// A live holder references a network that is missing or not (validly) allocated.
    UnallocatedNetwork { network: NetworkId, holder: Holder },
    /// A network lost its subnet or VXLAN id to a network ranked before it; it is queued.
    NetworkConflict { network: NetworkId, reason: String },
    /// A network's stored allocation cannot be used; it is queued for fresh allocation.
    InvalidStoredNetwork { network: NetworkId, reason: String },
    /// Several services publish one ingress port; `kept` holds it, `lost` are queued.
    DuplicatePort { protocol: Protocol, port: u16, kept: ServiceId, lost: Vec<ServiceId> },
    /// More than one ingress network; only `kept` is used as the ingress.
    ExtraIngress { kept: NetworkId, ignored: NetworkId },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::DuplicateAddress { network, address, kept, lost } => {
                let lost: Vec<String> = lost.iter().map(ToString::to_string).collect();
                write!(f, "address {address} on network {network} held by {kept} and also by {}", lost.join(", "))
            }
            Finding::AddressOutsideSubnets { network, address, holder } => {
                write!(f, "{holder} has address {address} outside every subnet of network {network}")
            }
            Finding::ReservedAddress { network, address, holder, reserved } => {
                write!(f, "{holder} has address {address}, the {reserved} of network {network}")
            }
            Finding::UnallocatedNetwork { network, holder } => {
                write!(f, "{holder} references network {network}, which is missing or not allocated")
            }
            Finding::NetworkConflict { network, reason } => write!(f, "network {network}: {reason}"),
            Finding::InvalidStoredNetwork { network, reason } => {
                write!(f, "network {network} has an unusable stored allocation: {reason}")
            }
            Finding::DuplicatePort { protocol, port, kept, lost } => {
                let lost: Vec<&str> = lost.iter().map(ServiceId::as_str).collect();
                write!(f, "port {protocol}/{port} published by service {kept} and also by {}", lost.join(", "))
            }
            Finding::ExtraIngress { kept, ignored } => {
                write!(f, "network {ignored} is a second ingress network; {kept} is the ingress")
            }
        }
    }
}

/// What restore found and what the caller should allocate next.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// Problems in committed state, in a deterministic order.
    pub findings: Vec<Finding>,
    /// Objects that need (re)allocation, in the order a pass allocates them ([`crate::ObjectRef::pass_rank`]):
    /// the ingress network, the other networks, services, tasks, nodes, each kind by id.
    pub queue: Vec<ObjectId>,
}

impl RestoreReport {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

pub(crate) fn findings(state: &State) -> Vec<Finding> {
    let mut out = Vec::new();
    network_findings(state, &mut out);
    address_findings(state, &mut out);
    port_findings(state, &mut out);
    out
}

/// Invalid stored networks, networks that lost a conflict, doubly claimed addresses, and
/// ingress networks beyond the first.
fn network_findings(state: &State, out: &mut Vec<Finding>) {
    for (id, entry) in &state.networks {
        match &entry.alloc {
            Some(Err(reason)) => {
                out.push(Finding::InvalidStoredNetwork { network: id.clone(), reason: reason.clone() });
            }
            Some(Ok(alloc)) => {
                if let Some(reason) = &alloc.conflict {
                    out.push(Finding::NetworkConflict { network: id.clone(), reason: reason.clone() });
                }
                for pool in &alloc.pools {
                    for (value, claims) in &pool.slots {
                        let lost: Vec<Holder> = claims.losers().iter().filter(|h| !h.is_retired()).cloned().collect();
                        if !lost.is_empty() {
                            out.push(Finding::DuplicateAddress {
                                network: id.clone(),
                                address: pool.with_prefix(*value).addr(),
                                kept: claims.holder().clone(),
                                lost,
                            });
                        }
                    }
                }
            }
            None => {}
        }
        if entry.ingress
            && let Some(kept) = &state.ingress
            && kept != id
        {
            out.push(Finding::ExtraIngress { kept: kept.clone(), ignored: id.clone() });
        }
    }
}

/// Addresses of live holders that no usable network explains.
fn address_findings(state: &State, out: &mut Vec<Finding>) {
    // A live holder's address on a network that is missing, unallocated, invalid or lost a
    // conflict is reported; otherwise it must lie on a usable address of the network's subnets.
    // A network whose stored allocation only lacks its driver state or VXLAN ids keeps its
    // subnets (it is queued, and holders keep their addresses). Addresses on node-local
    // networks are the node's business: the engine copies requested ones there and claims none.
    // One lookup per address: by hash when there are many networks (lookups only).
    let hashed: Option<HashMap<&NetworkId, &NetEntry, BuildHasherDefault<Fnv>>> =
        (state.networks.len() >= NETWORKS_HASHED_FROM).then(|| state.networks.iter().collect());
    let entry = |network: &NetworkId| match &hashed {
        Some(map) => map.get(network).copied(),
        None => state.networks.get(network),
    };
    let mut check = |network: &NetworkId, address: IpNet, holder: &dyn Fn() -> Holder| {
        let entry = entry(network);
        if entry.is_some_and(|e| e.scope == DriverScope::NodeLocal) {
            return;
        }
        let Some(alloc) = entry.and_then(|e| e.usable_alloc().or(e.incomplete_alloc())) else {
            out.push(Finding::UnallocatedNetwork { network: network.clone(), holder: holder() });
            return;
        };
        match alloc.place(address.addr()) {
            Placement::Usable(_) => {}
            Placement::Reserved(what) => out.push(Finding::ReservedAddress {
                network: network.clone(),
                address,
                holder: holder(),
                reserved: what.to_string(),
            }),
            Placement::OutOfRange => {
                out.push(Finding::AddressOutsideSubnets { network: network.clone(), address, holder: holder() })
            }
        }
    };
    for (id, entry) in &state.services {
        for (network, ip) in &entry.vips {
            check(network, *ip, &|| Holder::Vip(id.clone()));
        }
    }
    for (id, entry) in state.tasks.iter().filter(|(_, e)| !e.retired) {
        for (network, ip) in &entry.addrs {
            check(network, *ip, &|| Holder::Task(id.clone()));
        }
    }
    for (id, addrs) in &state.nodes {
        for (network, ip) in addrs {
            check(network, *ip, &|| Holder::NodeLb(id.clone()));
        }
    }
}

/// Ports several services publish.
fn port_findings(state: &State, out: &mut Vec<Finding>) {
    for ((protocol, port), claims) in &state.ports {
        if !claims.losers().is_empty() {
            out.push(Finding::DuplicatePort {
                protocol: *protocol,
                port: *port,
                kept: claims.holder().clone(),
                lost: claims.losers().to_vec(),
            });
        }
    }
}

/// Objects that an allocation pass would change, in the order a pass allocates them: the
/// ingress network first, then the other networks, services, tasks and nodes, each by id. Tasks
/// are many, so theirs comes from the findings (a live task needs work only when it lost or
/// misplaced an address) plus the NEW ones; the other kinds ask a throwaway transaction.
pub(crate) fn queue(state: &State, objects: &[ObjectRef<'_>], findings: &[Finding]) -> Vec<ObjectId> {
    let mut queue: Vec<(u8, ObjectId)> = Vec::new();
    let mut lost_task = |holder: &Holder| {
        if let Holder::Task(id) = holder {
            queue.push((TASK_PASS_RANK, ObjectId::Task(id.clone())));
        }
    };
    for finding in findings {
        match finding {
            Finding::DuplicateAddress { lost, .. } => lost.iter().for_each(&mut lost_task),
            Finding::AddressOutsideSubnets { holder, .. } | Finding::ReservedAddress { holder, .. } => {
                lost_task(holder)
            }
            // The network exists but cannot be used as stored: once it is allocated afresh (in
            // the same pass, networks come first) the holder keeps or replaces its address.
            Finding::UnallocatedNetwork { holder, network } if state.networks.contains_key(network) => {
                lost_task(holder)
            }
            _ => {}
        }
    }
    for object in objects {
        // A throwaway transaction per object, but none for tasks (there are many).
        let outcome = match object {
            ObjectRef::Network(n) => Tx::new(state).allocate_network(n),
            ObjectRef::Service(s) => Tx::new(state).allocate_service(s),
            ObjectRef::Task(t) => {
                if t.status.state == TaskState::New && t.desired_state <= TaskState::Running {
                    queue.push((TASK_PASS_RANK, object.id()));
                }
                continue;
            }
            ObjectRef::Node(n) => Tx::new(state).allocate_node(n),
        };
        if !matches!(outcome, Ok(Outcome::Unchanged)) {
            queue.push((object.pass_rank(), object.id()));
        }
    }
    queue.sort();
    queue.dedup();
    queue.into_iter().map(|(_, id)| id).collect()
}
