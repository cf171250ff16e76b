//! The consistency check of a cluster state: runs `Allocator::restore` over a [`Dump`], turns its
//! `RestoreReport`, the tasks waiting in NEW and the dump's unreadable objects into [`Problem`]s,
//! and says for each in words which object holds what, what restore of the committed store makes
//! of it, the engine's rule (ARCHITECTURE.md "Conflict ranking") and the outcome of a dry
//! allocation pass over restore's queue. Objects are named by their Docker names beside their
//! ids everywhere. Owns the report's text and JSON forms (schema in `reports/README.md`) and the
//! exit status.
//!
//! The dry pass runs in one `Tx` that is dropped: the check never changes anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;
use swarmalloc::{
    AllocError, Allocator, Finding, Holder, NetworkAttachment, NetworkId, NodeId, Object, ObjectId, Outcome, Protocol,
    ServiceId, TaskId, TaskState, VXLAN_ID_LIST_OPTION,
};

use crate::docker::Kind;
use crate::dump::{Dump, Skipped, Unreadable};
use crate::error::InputError;

/// Names the JSON schema; bumped on any incompatible change.
pub const SCHEMA: &str = "swarmalloc-check/2";

/// Whether the state is clean; the JSON's `verdict`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Clean,
    Problems,
}

/// The three results of a check, as a command's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Clean,
    ProblemsFound,
    Unreadable,
}

impl Status {
    pub fn of(result: &Result<CheckReport, InputError>) -> Status {
        match result {
            Ok(report) => report.status(),
            Err(_) => Status::Unreadable,
        }
    }

    /// 0 clean, 1 problems found, 2 unreadable input.
    pub fn code(self) -> u8 {
        match self {
            Status::Clean => 0,
            Status::ProblemsFound => 1,
            Status::Unreadable => 2,
        }
    }
}

/// One problem in the stored state, with its data (ids; the problem's `objects` names them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProblemKind {
    /// Several live holders reference one address.
    DuplicateAddress { network: NetworkId, address: IpAddr, kept: Holder, lost: Vec<Holder> },
    /// A live holder's address lies outside every subnet of its network.
    AddressOutsideSubnet { network: NetworkId, address: IpAddr, holder: Holder },
    /// A live holder's address is the network or broadcast address of its subnet.
    ReservedAddress { network: NetworkId, address: IpAddr, holder: Holder, reserved: String },
    /// A VIP or attachment names a network that is not in the dump.
    MissingNetwork { network: NetworkId, holder: Holder },
    /// A VIP or attachment names a network that is in the dump but not (validly) allocated.
    UnallocatedNetwork { network: NetworkId, holder: Holder },
    /// A network's subnet overlaps one kept by a network ranked before it.
    OverlappingSubnet { network: NetworkId, subnet: String, other_network: NetworkId, other_subnet: String },
    /// A network's VXLAN id is kept by a network ranked before it.
    DuplicateVxlanId { network: NetworkId, vxlan_id: u32, other_network: NetworkId },
    /// A network lost its allocation for a reason the two kinds above do not cover.
    NetworkConflict { network: NetworkId, reason: String },
    /// A network's stored allocation cannot be used at all.
    InvalidStoredNetwork { network: NetworkId, reason: String },
    /// Several services publish one ingress port.
    DuplicatePort { protocol: Protocol, port: u16, kept: ServiceId, lost: Vec<ServiceId> },
    /// More than one ingress network.
    ExtraIngress { kept: NetworkId, ignored: NetworkId },
    /// A task in NEW that should run: only the allocator moves it on, so it waits for allocation.
    TaskStuckInNew { task: TaskId, service: Option<ServiceId>, desired_state: TaskState },
    /// Restore queued an object that no problem above explains: it is not fully allocated.
    NeedsAllocation { object: ObjectId },
    /// An object of the dump that does not fit its shape: the check went on without it.
    UnreadableObject {
        place: String,
        object_kind: Option<Kind>,
        id: Option<String>,
        name: Option<String>,
        /// The path of the bad value inside the object (empty: the object itself).
        at: String,
        error: String,
    },
}

/// What the next allocation pass would do with one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcomes {
    /// Not in restore's queue: it stays as stored.
    NotQueued,
    /// Queued, and the pass would write these changes.
    Allocated { changes: Vec<String> },
    /// Queued, and the pass would find nothing to change.
    Unchanged,
    /// Queued, and the pass would fail; retryable errors are retried on every pass.
    Fails { error: String, retryable: bool },
}

/// One object a problem's rule acts on, and what the next pass would do with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Action {
    pub object: ObjectId,
    /// Its Docker name (empty when the dump shows none).
    pub name: String,
    #[serde(flatten)]
    pub outcome: Outcomes,
}

impl Action {
    /// `task web.1 (ID): queued; the next pass would ...`.
    pub fn to_text(&self) -> String {
        let object = show(&self.object, &self.name);
        match &self.outcome {
            Outcomes::NotQueued => format!("{object}: not queued; kept as stored"),
            Outcomes::Allocated { changes } => format!("{object}: queued; the next pass would {}", changes.join("; ")),
            Outcomes::Unchanged => format!("{object}: queued; the next pass would change nothing"),
            Outcomes::Fails { error, retryable: true } => {
                format!("{object}: queued; the next pass would fail ({error}) and retry on every pass")
            }
            Outcomes::Fails { error, retryable: false } => {
                format!("{object}: queued; the next pass would fail ({error}) until its spec changes")
            }
        }
    }
}

/// An object a problem mentions, by kind, id and Docker name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Named {
    #[serde(flatten)]
    pub object: ObjectId,
    pub name: String,
}

/// A problem in words, and what a fresh restore would do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(flatten)]
    pub kind: ProblemKind,
    /// Which object holds what, naming each object by its Docker name and id.
    pub message: String,
    /// What restore of the committed store makes of it.
    pub restore: String,
    /// The engine's rule for this kind of problem.
    pub rule: String,
    /// Every object the problem mentions, with its Docker name.
    pub objects: Vec<Named>,
    /// The objects the rule acts on, each with the dry pass's outcome.
    pub actions: Vec<Action>,
}

/// How many objects of each kind the check read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub networks: usize,
    pub services: usize,
    pub tasks: usize,
    pub nodes: usize,
    pub unreadable: usize,
}

/// The result of checking one dump.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub schema: &'static str,
    /// What was checked: the path as given, or the Docker API endpoint.
    pub source: String,
    pub verdict: Verdict,
    pub objects: Counts,
    /// The default address pools and subnet size the dry pass used, and where they came from.
    pub config: ConfigShown,
    pub problems: Vec<Problem>,
    /// Restore's queue: every object the next allocation pass would work on.
    pub queue: Vec<Named>,
    pub skipped: Vec<Skipped>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigShown {
    pub default_address_pools: Vec<String>,
    pub subnet_size: u8,
    /// `file: path` of the swarm info, or `null`: SwarmKit's defaults (the dump does not say).
    pub from: Option<String>,
}

const RULE_ADDRESS: &str = "the lowest-ranked claimant keeps an address (gateway < service VIP < node load balancer \
                            < live task < retired task, then by id); each loser is queued and gets a fresh address \
                            for the lost one only";
const RULE_MISPLACED: &str = "restore claims nothing for an address outside the usable part of its network's subnets; \
                              a live task holding one is queued for a fresh address once the network is usable";
const RULE_NETWORK_REF: &str = "restore claims nothing on a network it cannot use; the holder is queued when its next \
                                allocation would change it";
const RULE_NETWORK_RANK: &str = "networks keep their stored subnets and VXLAN ids in rank order (the ingress first, \
                                 then by id); a network overlapping or repeating one kept before it loses its \
                                 allocation and is queued for a fresh one";
const RULE_INVALID_NETWORK: &str = "a stored allocation that cannot be used is ignored; the network is queued for a \
                                    fresh allocation";
const RULE_PORT: &str = "the lowest service id keeps a published ingress port; the other services are queued and \
                         get another port, or fail while the one they ask for is taken";
const RULE_INGRESS: &str = "the first validly allocated ingress network by id is the ingress; the others are not \
                            used as ingress";
const RULE_NEW: &str = "only the allocator moves a task from NEW to PENDING; restore queues every NEW task that \
                        should run, and it stays NEW while its allocation fails";
const RULE_QUEUE: &str = "restore queues every object that an allocation pass would change";
const RULE_UNREADABLE: &str = "the check reads every object on its own and leaves out one it cannot read; restore \
                               sees the state without it, so what refers to it may be reported as missing";

/// Docker names of the dump's objects, for messages: `task web.1 (ID)`.
pub struct Names {
    names: BTreeMap<ObjectId, String>,
    /// Ids of objects the dump holds but the check could not read: where they are.
    unreadable: BTreeMap<String, String>,
}

impl Names {
    pub fn of(dump: &Dump) -> Names {
        let mut names = BTreeMap::new();
        let mut services = BTreeMap::new();
        for object in &dump.objects {
            if let Object::Service(s) = object {
                services.insert(s.id.clone(), s.spec.name.clone());
            }
        }
        // A service task's container is `SERVICE.SLOT.TASK` (`SERVICE.NODE.TASK`): what names
        // a task whose service is gone (removed, its tasks still stopping).
        let by_container: BTreeMap<&str, &str> = dump
            .container_names
            .values()
            .filter_map(|name| name.rsplit_once('.'))
            .map(|(task_name, task)| (task, task_name))
            .collect();
        for object in &dump.objects {
            let name = match object {
                Object::Network(n) => n.spec.name.clone(),
                Object::Service(s) => s.spec.name.clone(),
                Object::Node(n) => n.spec.name.clone(),
                Object::Task(t) => match (&t.service_id, dump.containers.get(&t.id)) {
                    // Docker's task name: SERVICE.SLOT, or SERVICE.NODE for a global service.
                    (Some(service), _) => {
                        let service = services.get(service).filter(|n| !n.is_empty()).cloned();
                        match (service, t.slot, &t.node_id) {
                            (Some(s), 0, Some(node)) => format!("{s}.{node}"),
                            (Some(s), slot, _) => format!("{s}.{slot}"),
                            (None, _, _) => by_container.get(t.id.as_str()).map_or_else(String::new, |n| n.to_string()),
                        }
                    }
                    // A standalone container's attachment (`docker run --network`): named by
                    // the container, as `docker ps` shows it when a network inspect says.
                    (None, Some(container)) => match dump.container_names.get(container) {
                        Some(name) => format!("attachment of container {name}"),
                        None => {
                            let short: String = container.chars().take(12).collect();
                            format!("attachment of container {short}")
                        }
                    },
                    (None, None) => String::new(),
                },
            };
            if !name.is_empty() {
                names.insert(object.id(), name);
            }
        }
        for (id, name) in &dump.gone_networks {
            names.entry(ObjectId::Network(id.clone())).or_insert_with(|| name.clone());
        }
        let unreadable =
            dump.unreadable.iter().filter_map(|u| Some((u.id.clone()?, u.place.clone()))).collect::<BTreeMap<_, _>>();
        Names { names, unreadable }
    }

    pub fn name(&self, object: &ObjectId) -> &str {
        self.names.get(object).map_or("", String::as_str)
    }

    /// `task web.1 (ID)`, or `task ID` without a name.
    pub fn object(&self, object: &ObjectId) -> String {
        show(object, self.name(object))
    }

    pub fn network(&self, id: &NetworkId) -> String {
        self.object(&ObjectId::Network(id.clone()))
    }

    pub fn holder(&self, holder: &Holder) -> String {
        match holder {
            Holder::Gateway(id) => format!("the gateway of {}", self.network(id)),
            Holder::Vip(id) => format!("the VIP of {}", self.object(&ObjectId::Service(id.clone()))),
            Holder::NodeLb(id) => format!("the load balancer of {}", self.object(&ObjectId::Node(id.clone()))),
            Holder::Task(id) => self.object(&ObjectId::Task(id.clone())),
            Holder::Retired(id) => format!("retired {}", self.object(&ObjectId::Task(id.clone()))),
        }
    }

    fn named(&self, object: ObjectId) -> Named {
        Named { name: self.name(&object).to_string(), object }
    }
}

/// `task web.1 (ID)`, or `task ID` when `name` is empty.
pub fn show(object: &ObjectId, name: &str) -> String {
    let (kind, id) = match object {
        ObjectId::Network(id) => ("network", id.as_str()),
        ObjectId::Service(id) => ("service", id.as_str()),
        ObjectId::Task(id) => ("task", id.as_str()),
        ObjectId::Node(id) => ("node", id.as_str()),
    };
    if name.is_empty() { format!("{kind} {id}") } else { format!("{kind} {name} ({id})") }
}

/// Checks a dump: never changes it, never fails on its content. Errs only on an invalid config.
pub fn check_dump(dump: &Dump, source: &str) -> Result<CheckReport, InputError> {
    let (allocator, report) = Allocator::restore(dump.config.clone(), dump.objects.iter().map(Object::as_ref))
        .map_err(|e| InputError::Invalid { file: source.into(), path: "config".into(), reason: e.to_string() })?;
    let names = Names::of(dump);
    let objects: BTreeMap<ObjectId, &Object> = dump.objects.iter().map(|o| (o.id(), o)).collect();
    let outcomes = dry_run(&allocator, &objects, &report.queue, &names);
    let action = |object: ObjectId| -> Action {
        let outcome = match outcomes.get(&object) {
            None => Outcomes::NotQueued,
            Some(Ok(changes)) if changes.is_empty() => Outcomes::Unchanged,
            Some(Ok(changes)) => Outcomes::Allocated { changes: changes.clone() },
            Some(Err(e)) => Outcomes::Fails { error: e.to_string(), retryable: e.is_retryable() },
        };
        Action { name: names.name(&object).to_string(), object, outcome }
    };
    let mut problems = Vec::new();
    let mut skipped = dump.skipped.clone();
    let problem = |kind: ProblemKind, rule: &str, acted_on: Vec<ObjectId>| {
        let (message, restore, mentioned) = describe(&kind, &names);
        Problem {
            message,
            restore,
            kind,
            rule: rule.into(),
            objects: mentioned.into_iter().map(|o| names.named(o)).collect(),
            actions: acted_on.into_iter().map(&action).collect(),
        }
    };
    let conflicts = network_conflicts(dump, &report.findings);
    for finding in &report.findings {
        if let Finding::NetworkConflict { network, .. } = finding
            && let Some(all) = conflicts.get(network)
        {
            // Every overlap and every repeated VXLAN id, where the engine names the first only.
            for kind in all {
                problems.push(problem(kind.clone(), RULE_NETWORK_RANK, vec![ObjectId::Network(network.clone())]));
            }
            continue;
        }
        let (kind, rule, acted_on) = from_finding(finding, &objects);
        if let Some(reason) = leaving_its_network(&kind, &objects, &outcomes, &names) {
            let place = acted_on.first().and_then(|o| dump.sources.get(o)).cloned().unwrap_or_default();
            skipped.push(Skipped { place, reason });
            continue;
        }
        problems.push(problem(kind, rule, acted_on));
    }
    for object in dump.objects.iter() {
        let Object::Task(task) = object else { continue };
        if task.status.state == TaskState::New
            && TaskState::New < task.desired_state
            && task.desired_state <= TaskState::Running
        {
            let kind = ProblemKind::TaskStuckInNew {
                task: task.id.clone(),
                service: task.service_id.clone(),
                desired_state: task.desired_state,
            };
            problems.push(problem(kind, RULE_NEW, vec![object.id()]));
        }
    }
    let explained: BTreeSet<ObjectId> =
        problems.iter().flat_map(|p| p.actions.iter().map(|a| a.object.clone())).collect();
    for object in report.queue.iter().filter(|o| !explained.contains(o)) {
        if let ObjectId::Node(node) = object
            && let Some(networks) = unknown_load_balancers(dump, &allocator, &objects, node)
        {
            // The node's load balancers are known only where the node that answered uses a
            // network: the pass would add the others, which the store may well hold already.
            let place = dump.sources.get(object).cloned().unwrap_or_default();
            let networks: Vec<String> = networks.iter().map(|n| names.network(n)).collect();
            let (one, more) = if networks.len() == 1 { ("address", "is") } else { ("addresses", "are") };
            let reason = format!(
                "{}: its load-balancer {one} on {} {more} not shown by the network inspects of the node that \
                 answered (a node's load balancer shows there only while the node uses the network), so the check \
                 does not say whether the next pass would change {}",
                names.object(object),
                and_list(&networks),
                if networks.len() == 1 { "it" } else { "them" }
            );
            skipped.push(Skipped { place, reason });
            continue;
        }
        problems.push(problem(
            ProblemKind::NeedsAllocation { object: object.clone() },
            RULE_QUEUE,
            vec![object.clone()],
        ));
    }
    for unreadable in &dump.unreadable {
        problems.push(problem(unreadable_kind(unreadable), RULE_UNREADABLE, Vec::new()));
    }
    skipped.sort();
    let mut counts = Counts { unreadable: dump.unreadable.len(), ..Counts::default() };
    for object in &dump.objects {
        match object {
            Object::Network(_) => counts.networks += 1,
            Object::Service(_) => counts.services += 1,
            Object::Task(_) => counts.tasks += 1,
            Object::Node(_) => counts.nodes += 1,
        }
    }
    Ok(CheckReport {
        schema: SCHEMA,
        source: source.to_string(),
        verdict: if problems.is_empty() { Verdict::Clean } else { Verdict::Problems },
        objects: counts,
        config: ConfigShown {
            default_address_pools: dump.config.default_address_pools.iter().map(ToString::to_string).collect(),
            subnet_size: dump.config.subnet_size,
            from: dump.config_source.clone(),
        },
        problems,
        queue: report.queue.into_iter().map(|o| names.named(o)).collect(),
        skipped,
    })
}

fn unreadable_kind(u: &Unreadable) -> ProblemKind {
    ProblemKind::UnreadableObject {
        place: u.place.clone(),
        object_kind: u.kind,
        id: u.id.clone(),
        name: u.name.clone(),
        at: u.at.clone(),
        error: u.error.clone(),
    }
}

/// A task on its way out (desired state shutdown or beyond) whose attachment names a network
/// that is gone or unusable, and that restore does not queue: the network was removed while the
/// task stopped (`docker service rm`, then `docker network rm`), or the task is kept as history.
/// Restore claims nothing on that network and nothing changes, so this is no problem: why, in
/// words, for `skipped`. `None` for anything else.
fn leaving_its_network(
    kind: &ProblemKind,
    objects: &BTreeMap<ObjectId, &Object>,
    outcomes: &BTreeMap<ObjectId, Result<Vec<String>, AllocError>>,
    names: &Names,
) -> Option<String> {
    let (network, holder, gone) = match kind {
        ProblemKind::MissingNetwork { network, holder } => (network, holder, true),
        ProblemKind::UnallocatedNetwork { network, holder } => (network, holder, false),
        _ => return None,
    };
    let object = holder.object();
    let Some(Object::Task(task)) = objects.get(&object) else { return None };
    if task.desired_state <= TaskState::Running || outcomes.contains_key(&object) {
        return None;
    }
    let mut reason = format!(
        "{}, whose desired state is {}, has an attachment to {}, which {}: the task is on its way out, restore \
         claims nothing on that network and queues nothing",
        names.object(&object),
        state_name(task.desired_state),
        names.network(network),
        if gone { "is not in the store" } else { "is not validly allocated" },
    );
    let others: Vec<String> = task
        .networks
        .iter()
        .filter(|a| a.network_id != *network && !a.addresses.is_empty())
        .map(|a| format!("{} on {}", list(&a.addresses), names.network(&a.network_id)))
        .collect();
    if gone && task.status.state <= TaskState::Running && !others.is_empty() {
        let _ = write!(
            reason,
            ". SwarmKit's allocator frees none of the task's addresses when it stops (docs/swarmkit.md, B4): {} \
             will stay taken there until the next leader change",
            and_list(&others)
        );
    }
    Some(reason)
}

/// For a node whose load balancers come from network inspects: when the next pass would only
/// add attachments on networks where its address is unknown, those networks; else `None`.
fn unknown_load_balancers(
    dump: &Dump,
    allocator: &Allocator,
    objects: &BTreeMap<ObjectId, &Object>,
    node: &NodeId,
) -> Option<Vec<NetworkId>> {
    let known = dump.lb_known.get(node)?;
    let Some(Object::Node(stored)) = objects.get(&ObjectId::Node(node.clone())) else { return None };
    let mut tx = allocator.begin();
    if tx.allocate_node(stored).ok()? != Outcome::Updated {
        return None;
    }
    let proposal = tx.finish();
    let Some(Object::Node(new)) = proposal.updates().iter().find(|o| o.id() == ObjectId::Node(node.clone())) else {
        return None;
    };
    let old = addresses(&stored.attachments);
    let new = addresses(&new.attachments);
    let mut unknown = Vec::new();
    for network in old.keys().chain(new.keys()).collect::<BTreeSet<_>>() {
        match (old.get(network), new.get(network)) {
            (a, b) if a == b => {}
            (None, Some(_)) if !known.contains(network) => unknown.push(network.clone()),
            _ => return None,
        }
    }
    Some(unknown)
}

/// Docker's lower-case name of a task state.
fn state_name(state: TaskState) -> String {
    format!("{state:?}").to_lowercase()
}

/// The message (who holds what), what restore makes of it, and every object mentioned.
fn describe(kind: &ProblemKind, names: &Names) -> (String, String, Vec<ObjectId>) {
    let net = |id: &NetworkId| names.network(id);
    let svc = |id: &ServiceId| names.object(&ObjectId::Service(id.clone()));
    let holder = |h: &Holder| names.holder(h);
    let network_id = |id: &NetworkId| ObjectId::Network(id.clone());
    match kind {
        ProblemKind::DuplicateAddress { network, address, kept, lost } => {
            let losers: Vec<String> = lost.iter().map(holder).collect();
            let message = format!(
                "address {address} on {} is held by {} and also by {}",
                net(network),
                holder(kept),
                losers.join(", ")
            );
            let restore = format!(
                "restore gives {address} to {} only; {} {}",
                holder(kept),
                losers.join(", "),
                lose(losers.len())
            );
            let mut mentioned = vec![network_id(network), kept.object()];
            mentioned.extend(lost.iter().map(Holder::object));
            (message, restore, mentioned)
        }
        ProblemKind::AddressOutsideSubnet { network, address, holder: h } => (
            format!("{} has address {address} on {}, outside every subnet of that network", holder(h), net(network)),
            format!("restore claims nothing for it: {address} is not an address of {}", net(network)),
            vec![network_id(network), h.object()],
        ),
        ProblemKind::ReservedAddress { network, address, holder: h, reserved } => (
            format!("{} has address {address} on {}, the {reserved} of its subnet", holder(h), net(network)),
            format!("restore claims nothing for it: the {reserved} is never handed out"),
            vec![network_id(network), h.object()],
        ),
        ProblemKind::MissingNetwork { network, holder: h } => {
            let why = match names.unreadable.get(network.as_str()) {
                Some(place) => format!("which the check could not read ({place})"),
                None => "which is not in the dump".to_string(),
            };
            (
                format!("{} has an attachment to network {network}, {why}", holder(h)),
                format!("restore finds no network {network}: {} claims nothing on it", holder(h)),
                vec![network_id(network), h.object()],
            )
        }
        ProblemKind::UnallocatedNetwork { network, holder: h } => (
            format!("{} has an address on {}, which is not validly allocated", holder(h), net(network)),
            format!("restore cannot use {}: {} claims nothing on it", net(network), holder(h)),
            vec![network_id(network), h.object()],
        ),
        ProblemKind::OverlappingSubnet { network, subnet, other_network, other_subnet } => (
            format!(
                "{} has subnet {subnet}, which overlaps subnet {other_subnet} of {}",
                net(network),
                net(other_network)
            ),
            format!(
                "restore keeps {other_subnet} for {}, ranked first; {} loses its stored subnets and VXLAN ids",
                net(other_network),
                net(network)
            ),
            vec![network_id(network), network_id(other_network)],
        ),
        ProblemKind::DuplicateVxlanId { network, vxlan_id, other_network } => (
            format!("{} has VXLAN id {vxlan_id}, which {} has too", net(network), net(other_network)),
            format!(
                "restore keeps VXLAN id {vxlan_id} for {}, ranked first; {} loses its stored subnets and VXLAN ids",
                net(other_network),
                net(network)
            ),
            vec![network_id(network), network_id(other_network)],
        ),
        ProblemKind::NetworkConflict { network, reason } => (
            format!("{} conflicts with another network: {reason}", net(network)),
            format!("restore ignores the stored allocation of {}", net(network)),
            vec![network_id(network)],
        ),
        ProblemKind::InvalidStoredNetwork { network, reason } => (
            format!("{} has a stored allocation that cannot be used: {reason}", net(network)),
            format!("restore ignores the stored allocation of {}", net(network)),
            vec![network_id(network)],
        ),
        ProblemKind::DuplicatePort { protocol, port, kept, lost } => {
            let losers: Vec<String> = lost.iter().map(svc).collect();
            let mut mentioned = vec![ObjectId::Service(kept.clone())];
            mentioned.extend(lost.iter().map(|s| ObjectId::Service(s.clone())));
            (
                format!("port {protocol}/{port} is published by {} and also by {}", svc(kept), losers.join(", ")),
                format!(
                    "restore gives {protocol}/{port} to {} only; {} {}",
                    svc(kept),
                    losers.join(", "),
                    lose(losers.len())
                ),
                mentioned,
            )
        }
        ProblemKind::ExtraIngress { kept, ignored } => (
            format!("{} is a second ingress network besides {}", net(ignored), net(kept)),
            format!("restore uses {} as the ingress; {} is not used as the ingress", net(kept), net(ignored)),
            vec![network_id(kept), network_id(ignored)],
        ),
        ProblemKind::TaskStuckInNew { task, service, desired_state } => {
            let object = ObjectId::Task(task.clone());
            let mut mentioned = vec![object.clone()];
            mentioned.extend(service.iter().map(|s| ObjectId::Service(s.clone())));
            (
                format!(
                    "{} is NEW with desired state {}: it waits for network allocation",
                    names.object(&object),
                    state_name(*desired_state)
                ),
                format!("restore queues {} for allocation", names.object(&object)),
                mentioned,
            )
        }
        ProblemKind::NeedsAllocation { object } => (
            format!("{} is not fully allocated", names.object(object)),
            format!("restore queues {}: what is stored is not what an allocation pass writes", names.object(object)),
            vec![object.clone()],
        ),
        ProblemKind::UnreadableObject { place, object_kind, id, name, at, error } => {
            let what = match (object_kind, id, name) {
                // The manifest and the swarm info have no id: there is one of each.
                (Some(kind @ (Kind::Gather | Kind::Swarm)), _, _) => format!("the {kind}"),
                (Some(kind), Some(id), Some(name)) => format!("{kind} {name} ({id})"),
                (Some(kind), Some(id), None) => format!("{kind} {id}"),
                (Some(kind), None, _) => format!("a {kind} without a readable id"),
                (None, Some(id), _) => format!("object {id} (of no known kind)"),
                (None, None, _) => "an object of no known kind".to_string(),
            };
            let at = if at.is_empty() { String::new() } else { format!(" at {at}") };
            (
                format!("{place}: {what} cannot be read{at}: {error}"),
                "the check left it out: restore sees the state without it".to_string(),
                Vec::new(),
            )
        }
    }
}

/// The problem kind, the rule, and the objects the rule acts on.
fn from_finding(
    finding: &Finding,
    objects: &BTreeMap<ObjectId, &Object>,
) -> (ProblemKind, &'static str, Vec<ObjectId>) {
    match finding.clone() {
        Finding::DuplicateAddress { network, address, kept, lost } => {
            let acted_on = lost.iter().map(Holder::object).collect();
            (ProblemKind::DuplicateAddress { network, address, kept, lost }, RULE_ADDRESS, acted_on)
        }
        Finding::AddressOutsideSubnets { network, address, holder } => {
            let acted_on = vec![holder.object()];
            (ProblemKind::AddressOutsideSubnet { network, address: address.addr(), holder }, RULE_MISPLACED, acted_on)
        }
        Finding::ReservedAddress { network, address, holder, reserved } => {
            let acted_on = vec![holder.object()];
            let kind = ProblemKind::ReservedAddress { network, address: address.addr(), holder, reserved };
            (kind, RULE_MISPLACED, acted_on)
        }
        Finding::UnallocatedNetwork { network, holder } => {
            let acted_on = vec![holder.object()];
            let kind = if objects.contains_key(&ObjectId::Network(network.clone())) {
                ProblemKind::UnallocatedNetwork { network, holder }
            } else {
                ProblemKind::MissingNetwork { network, holder }
            };
            (kind, RULE_NETWORK_REF, acted_on)
        }
        Finding::NetworkConflict { network, reason } => {
            let acted_on = vec![ObjectId::Network(network.clone())];
            (network_conflict(network, reason), RULE_NETWORK_RANK, acted_on)
        }
        Finding::InvalidStoredNetwork { network, reason } => {
            let acted_on = vec![ObjectId::Network(network.clone())];
            (ProblemKind::InvalidStoredNetwork { network, reason }, RULE_INVALID_NETWORK, acted_on)
        }
        Finding::DuplicatePort { protocol, port, kept, lost } => {
            let acted_on = lost.iter().map(|s| ObjectId::Service(s.clone())).collect();
            (ProblemKind::DuplicatePort { protocol, port, kept, lost }, RULE_PORT, acted_on)
        }
        Finding::ExtraIngress { kept, ignored } => {
            let acted_on = vec![ObjectId::Network(ignored.clone())];
            (ProblemKind::ExtraIngress { kept, ignored }, RULE_INGRESS, acted_on)
        }
    }
}

/// Splits the engine's conflict reason ("subnet A overlaps B of network N", "VXLAN id V is held
/// by network N") into a typed kind; any other wording stays a plain `NetworkConflict`.
fn network_conflict(network: NetworkId, reason: String) -> ProblemKind {
    if let Some(rest) = reason.strip_prefix("subnet ")
        && let Some((subnet, rest)) = rest.split_once(" overlaps ")
        && let Some((other_subnet, other)) = rest.split_once(" of network ")
    {
        return ProblemKind::OverlappingSubnet {
            network,
            subnet: subnet.to_string(),
            other_network: NetworkId::new(other),
            other_subnet: other_subnet.to_string(),
        };
    }
    if let Some(rest) = reason.strip_prefix("VXLAN id ")
        && let Some((vni, other)) = rest.split_once(" is held by network ")
        && let Ok(vxlan_id) = vni.parse()
    {
        return ProblemKind::DuplicateVxlanId { network, vxlan_id, other_network: NetworkId::new(other) };
    }
    ProblemKind::NetworkConflict { network, reason }
}

/// Every subnet overlap and repeated VXLAN id of each network that lost a conflict, against the
/// networks that kept their allocation and rank before it (the ingress first, then by id). The
/// engine stops at the first conflict it finds; a user fixing the network needs all of them.
fn network_conflicts(dump: &Dump, findings: &[Finding]) -> BTreeMap<NetworkId, Vec<ProblemKind>> {
    let lost: BTreeSet<&NetworkId> = findings
        .iter()
        .filter_map(|f| match f {
            Finding::NetworkConflict { network, .. } | Finding::InvalidStoredNetwork { network, .. } => Some(network),
            _ => None,
        })
        .collect();
    struct Alloc<'a> {
        id: &'a NetworkId,
        rank: (bool, &'a NetworkId),
        subnets: Vec<IpNet>,
        vnis: Vec<u32>,
    }
    let allocs: Vec<Alloc<'_>> = dump
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::Network(n) if n.is_allocated() => Some(Alloc {
                id: &n.id,
                rank: (!n.is_ingress(), &n.id),
                subnets: n.ipam.iter().flat_map(|i| &i.configs).filter_map(|c| c.subnet).collect(),
                vnis: n
                    .driver_state
                    .as_ref()
                    .and_then(|d| d.options.get(VXLAN_ID_LIST_OPTION))
                    .map(|list| list.split(',').filter_map(|v| v.trim().parse().ok()).collect())
                    .unwrap_or_default(),
            }),
            _ => None,
        })
        .collect();
    let mut out: BTreeMap<NetworkId, Vec<ProblemKind>> = BTreeMap::new();
    for loser in allocs.iter().filter(|a| lost.contains(a.id)) {
        let mut kinds = Vec::new();
        let keepers = allocs.iter().filter(|k| !lost.contains(k.id) && k.rank < loser.rank);
        for keeper in keepers {
            for subnet in &loser.subnets {
                for other in keeper.subnets.iter().filter(|o| o.contains(subnet) || subnet.contains(*o)) {
                    kinds.push(ProblemKind::OverlappingSubnet {
                        network: loser.id.clone(),
                        subnet: subnet.to_string(),
                        other_network: keeper.id.clone(),
                        other_subnet: other.to_string(),
                    });
                }
            }
            for vni in loser.vnis.iter().filter(|v| keeper.vnis.contains(v)) {
                kinds.push(ProblemKind::DuplicateVxlanId {
                    network: loser.id.clone(),
                    vxlan_id: *vni,
                    other_network: keeper.id.clone(),
                });
            }
        }
        if !kinds.is_empty() {
            // Overlaps first, then VXLAN ids, each against the networks in rank order.
            kinds.sort_by_key(|k| !matches!(k, ProblemKind::OverlappingSubnet { .. }));
            out.insert(loser.id.clone(), kinds);
        }
    }
    out
}

/// Allocates restore's queue in one throwaway transaction, in queue order (networks, services,
/// tasks, nodes), as the next pass would. Each object maps to its changes, or to its error.
fn dry_run(
    allocator: &Allocator,
    objects: &BTreeMap<ObjectId, &Object>,
    queue: &[ObjectId],
    names: &Names,
) -> BTreeMap<ObjectId, Result<Vec<String>, AllocError>> {
    let mut tx = allocator.begin();
    let mut results = BTreeMap::new();
    for id in queue {
        let Some(object) = objects.get(id) else { continue };
        let result = match object {
            Object::Network(n) => tx.allocate_network(n),
            Object::Service(s) => tx.allocate_service(s),
            Object::Task(t) => {
                let service = t.service_id.as_ref().and_then(|s| objects.get(&ObjectId::Service(s.clone())));
                let service = service.and_then(|o| if let Object::Service(s) = o { Some(s) } else { None });
                tx.allocate_task(t, service)
            }
            Object::Node(n) => tx.allocate_node(n),
        };
        results.insert(id.clone(), result);
    }
    let proposal = tx.finish();
    let updated: BTreeMap<ObjectId, &Object> = proposal.updates().iter().map(|o| (o.id(), o)).collect();
    results
        .into_iter()
        .map(|(id, result)| {
            let changes = result.map(|outcome| match (outcome, updated.get(&id), objects.get(&id)) {
                (Outcome::Updated, Some(new), Some(old)) => changes(old, new, names),
                _ => Vec::new(),
            });
            (id, changes)
        })
        .collect()
}

fn list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

fn addresses(attachments: &[NetworkAttachment]) -> BTreeMap<NetworkId, String> {
    let mut out: BTreeMap<NetworkId, Vec<String>> = BTreeMap::new();
    for a in attachments {
        out.entry(a.network_id.clone()).or_default().extend(a.addresses.iter().map(ToString::to_string));
    }
    out.into_iter().map(|(n, a)| (n, list(a))).collect()
}

/// "what -> what" for every per-network value that differs.
fn diff_by_network(
    what: &str,
    old: &BTreeMap<NetworkId, String>,
    new: &BTreeMap<NetworkId, String>,
    names: &Names,
) -> Vec<String> {
    let networks: BTreeSet<&NetworkId> = old.keys().chain(new.keys()).collect();
    let none = String::from("none");
    networks
        .into_iter()
        .filter_map(|n| {
            let (a, b) = (old.get(n).unwrap_or(&none), new.get(n).unwrap_or(&none));
            (a != b).then(|| format!("set the {what} on {} from {a} to {b}", names.network(n)))
        })
        .collect()
}

/// The fields the allocator owns that differ between the stored and the updated object.
fn changes(old: &Object, new: &Object, names: &Names) -> Vec<String> {
    let mut out = Vec::new();
    match (old, new) {
        (Object::Network(a), Object::Network(b)) => {
            let subnets = |n: &swarmalloc::Network| {
                list(n.ipam.iter().flat_map(|i| &i.configs).filter_map(|c| c.subnet).collect::<Vec<_>>())
            };
            let vnis = |n: &swarmalloc::Network| {
                n.driver_state.as_ref().and_then(|d| d.options.get(VXLAN_ID_LIST_OPTION)).cloned()
            };
            if subnets(a) != subnets(b) {
                out.push(format!("set the subnets from {} to {}", subnets(a), subnets(b)));
            }
            if vnis(a) != vnis(b) {
                let show = |v: Option<String>| v.filter(|v| !v.is_empty()).unwrap_or_else(|| "none".into());
                out.push(format!("set the VXLAN ids from {} to {}", show(vnis(a)), show(vnis(b))));
            }
        }
        (Object::Service(a), Object::Service(b)) => {
            let vips = |s: &swarmalloc::Service| {
                let mut out: BTreeMap<NetworkId, Vec<String>> = BTreeMap::new();
                for vip in s.endpoint.iter().flat_map(|e| &e.virtual_ips) {
                    out.entry(vip.network_id.clone()).or_default().push(vip.addr.to_string());
                }
                out.into_iter().map(|(n, a)| (n, list(a))).collect::<BTreeMap<_, _>>()
            };
            out.extend(diff_by_network("VIP", &vips(a), &vips(b), names));
            let ports = |s: &swarmalloc::Service| {
                list(
                    s.endpoint
                        .iter()
                        .flat_map(|e| &e.ports)
                        .filter(|p| p.published_port != 0)
                        .map(|p| format!("{}/{}", p.protocol, p.published_port)),
                )
            };
            if ports(a) != ports(b) {
                out.push(format!("set the published ports from {} to {}", ports(a), ports(b)));
            }
            match (&a.endpoint, &b.endpoint) {
                (None, Some(_)) => out.push("store an endpoint, where none is stored".into()),
                (Some(_), None) => out.push("remove its stored endpoint".into()),
                (Some(x), Some(y)) if x.spec != y.spec => {
                    out.push("copy the endpoint spec (mode and ports) into its endpoint".into())
                }
                _ => {}
            }
        }
        (Object::Task(a), Object::Task(b)) => {
            out.extend(diff_by_network("address", &addresses(&a.networks), &addresses(&b.networks), names));
            if a.status.state != b.status.state {
                out.push(format!("move it from {} to {}", state_name(a.status.state), state_name(b.status.state)));
            }
        }
        (Object::Node(a), Object::Node(b)) => {
            out.extend(diff_by_network(
                "load-balancer address",
                &addresses(&a.attachments),
                &addresses(&b.attachments),
                names,
            ));
        }
        _ => {}
    }
    if out.is_empty() {
        // Updated, but in none of the fields above (an endpoint copy, aliases): say so.
        out.push("rewrite fields it owns without changing addresses, subnets or ports".into());
    }
    out
}

impl Problem {
    /// The `kind` tag the JSON uses.
    pub fn kind_name(&self) -> &'static str {
        kind_name(&self.kind)
    }
}

impl CheckReport {
    pub fn status(&self) -> Status {
        if self.problems.is_empty() { Status::Clean } else { Status::ProblemsFound }
    }

    /// Counts of problems per kind, as the JSON names them.
    pub fn kinds(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for problem in &self.problems {
            *out.entry(kind_name(&problem.kind)).or_default() += 1;
        }
        out
    }

    /// The versioned JSON document (see `reports/README.md`), pretty-printed, ending in a newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a check report is plain data");
        text.push('\n');
        text
    }

    /// `read N networks, ...; skipped N`: what the check read.
    pub fn read_line(&self) -> String {
        let c = &self.objects;
        let unreadable = if c.unreadable > 0 { format!(", {} unreadable", c.unreadable) } else { String::new() };
        format!(
            "read {} networks, {} services, {} tasks, {} nodes{unreadable}; skipped {}",
            c.networks,
            c.services,
            c.tasks,
            c.nodes,
            self.skipped.len()
        )
    }

    /// `default address pools 10.0.0.0/8, subnet size /24 (from ...)`.
    pub fn config_line(&self) -> String {
        let from = match &self.config.from {
            Some(place) => format!("from {place}"),
            None => "SwarmKit's defaults: the dump does not show the cluster's".to_string(),
        };
        format!(
            "default address pools {}, subnet size /{} ({from})",
            self.config.default_address_pools.join(", "),
            self.config.subnet_size
        )
    }

    /// The verdict line: `CLEAN: no problems` or `PROBLEMS: N found (kinds)`.
    pub fn verdict_line(&self) -> String {
        match self.verdict {
            Verdict::Clean => "CLEAN: no problems".to_string(),
            Verdict::Problems => {
                let kinds: Vec<String> = self.kinds().iter().map(|(k, n)| format!("{n} {k}")).collect();
                format!("PROBLEMS: {} found ({})", self.problems.len(), kinds.join(", "))
            }
        }
    }

    /// A summary for terminals: counts, each problem with what restore makes of it, its rule
    /// and actions, and the verdict.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "check {}", self.source);
        let _ = writeln!(out, "{}", self.read_line());
        let _ = writeln!(out, "{}", self.config_line());
        for (i, problem) in self.problems.iter().enumerate() {
            let _ = writeln!(out, "\n{}. [{}] {}", i + 1, kind_name(&problem.kind), problem.message);
            let _ = writeln!(out, "   restore: {}", problem.restore);
            let _ = writeln!(out, "   rule: {}", problem.rule);
            for action in &problem.actions {
                let _ = writeln!(out, "   - {}", action.to_text());
            }
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "\nskipped:");
            for skipped in &self.skipped {
                let _ = writeln!(out, "   {}: {}", skipped.place, skipped.reason);
            }
        }
        let _ = writeln!(out, "\n{}", self.verdict_line());
        out
    }
}

/// The `kind` tag the JSON uses for a problem.
pub fn kind_name(kind: &ProblemKind) -> &'static str {
    match kind {
        ProblemKind::DuplicateAddress { .. } => "duplicate_address",
        ProblemKind::AddressOutsideSubnet { .. } => "address_outside_subnet",
        ProblemKind::ReservedAddress { .. } => "reserved_address",
        ProblemKind::MissingNetwork { .. } => "missing_network",
        ProblemKind::UnallocatedNetwork { .. } => "unallocated_network",
        ProblemKind::OverlappingSubnet { .. } => "overlapping_subnet",
        ProblemKind::DuplicateVxlanId { .. } => "duplicate_vxlan_id",
        ProblemKind::NetworkConflict { .. } => "network_conflict",
        ProblemKind::InvalidStoredNetwork { .. } => "invalid_stored_network",
        ProblemKind::DuplicatePort { .. } => "duplicate_port",
        ProblemKind::ExtraIngress { .. } => "extra_ingress",
        ProblemKind::TaskStuckInNew { .. } => "task_stuck_in_new",
        ProblemKind::NeedsAllocation { .. } => "needs_allocation",
        ProblemKind::UnreadableObject { .. } => "unreadable_object",
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn lose(losers: usize) -> &'static str {
    if losers == 1 { "loses it" } else { "lose it" }
}
