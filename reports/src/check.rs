//! The consistency check of a cluster state: runs `Allocator::restore` over a [`Dump`], turns its
//! `RestoreReport` plus the tasks waiting in NEW into [`Problem`]s, and says for each what a fresh
//! restore would do: the engine's ranking rule (ARCHITECTURE.md "Conflict ranking") and the
//! outcome of a dry allocation pass over restore's queue. Owns the report's text and JSON forms
//! (schema in `reports/README.md`) and the exit status.
//!
//! The dry pass runs in one `Tx` that is dropped: the check never changes anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;
use swarmalloc::{
    AllocError, Allocator, Finding, Holder, NetworkAttachment, NetworkId, Object, ObjectId, Outcome, Protocol,
    ServiceId, TaskId, TaskState,
};

use crate::dump::{Dump, Skipped};
use crate::error::InputError;

/// Names the JSON schema; bumped on any incompatible change.
pub const SCHEMA: &str = "swarmalloc-check/1";

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
            Ok(report) if report.problems.is_empty() => Status::Clean,
            Ok(_) => Status::ProblemsFound,
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

/// One problem in the stored state, with its data.
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
}

/// What the next allocation pass would do with one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Action {
    /// Not in restore's queue: it stays as stored.
    NotQueued { object: ObjectId },
    /// Queued, and the pass would write these changes.
    Allocated { object: ObjectId, changes: Vec<String> },
    /// Queued, and the pass would find nothing to change.
    Unchanged { object: ObjectId },
    /// Queued, and the pass would fail; retryable errors are retried on every pass.
    Fails { object: ObjectId, error: String, retryable: bool },
}

impl Action {
    pub fn object(&self) -> &ObjectId {
        match self {
            Action::NotQueued { object }
            | Action::Allocated { object, .. }
            | Action::Unchanged { object }
            | Action::Fails { object, .. } => object,
        }
    }

    fn to_text(&self) -> String {
        match self {
            Action::NotQueued { object } => format!("{object}: not queued; kept as stored"),
            Action::Allocated { object, changes } => {
                format!("{object}: queued; the next pass would {}", changes.join("; "))
            }
            Action::Unchanged { object } => format!("{object}: queued; the next pass would change nothing"),
            Action::Fails { object, error, retryable: true } => {
                format!("{object}: queued; the next pass would fail ({error}) and retry on every pass")
            }
            Action::Fails { object, error, retryable: false } => {
                format!("{object}: queued; the next pass would fail ({error}) until its spec changes")
            }
        }
    }
}

/// A problem, its one-line description, and what a fresh restore would do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(flatten)]
    pub kind: ProblemKind,
    pub message: String,
    /// The engine's rule for this kind of problem.
    pub rule: String,
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
}

/// The result of checking one dump.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub schema: &'static str,
    /// The path that was checked, as given.
    pub source: String,
    pub verdict: Verdict,
    pub objects: Counts,
    pub problems: Vec<Problem>,
    /// Restore's queue: every object the next allocation pass would work on.
    pub queue: Vec<ObjectId>,
    pub skipped: Vec<Skipped>,
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

/// Checks a dump: never changes it, never fails on its content. Errs only on an invalid config.
pub fn check_dump(dump: &Dump, source: &str) -> Result<CheckReport, InputError> {
    let (allocator, report) = Allocator::restore(dump.config.clone(), dump.objects.iter().map(Object::as_ref))
        .map_err(|e| InputError::Invalid { file: source.into(), path: "config".into(), reason: e.to_string() })?;
    let objects: BTreeMap<ObjectId, &Object> = dump.objects.iter().map(|o| (o.id(), o)).collect();
    let outcomes = dry_run(&allocator, &objects, &report.queue);
    let action = |object: ObjectId| -> Action {
        match outcomes.get(&object) {
            None => Action::NotQueued { object },
            Some(Ok(changes)) if changes.is_empty() => Action::Unchanged { object },
            Some(Ok(changes)) => Action::Allocated { object, changes: changes.clone() },
            Some(Err(e)) => Action::Fails { object, error: e.to_string(), retryable: e.is_retryable() },
        }
    };
    let mut problems = Vec::new();
    for finding in &report.findings {
        let (kind, rule, acted_on) = from_finding(finding, &objects);
        problems.push(Problem {
            message: message(&kind, finding),
            kind,
            rule: rule.into(),
            actions: acted_on.into_iter().map(action).collect(),
        });
    }
    for object in dump.objects.iter() {
        let Object::Task(task) = object else { continue };
        if task.status.state == TaskState::New
            && TaskState::New < task.desired_state
            && task.desired_state <= TaskState::Running
        {
            let message = format!(
                "task {} is NEW with desired state {}: it waits for network allocation",
                task.id,
                state_name(task.desired_state)
            );
            problems.push(Problem {
                kind: ProblemKind::TaskStuckInNew {
                    task: task.id.clone(),
                    service: task.service_id.clone(),
                    desired_state: task.desired_state,
                },
                message,
                rule: RULE_NEW.into(),
                actions: vec![action(object.id())],
            });
        }
    }
    let explained: BTreeSet<ObjectId> =
        problems.iter().flat_map(|p| p.actions.iter().map(|a| a.object().clone())).collect();
    for object in report.queue.iter().filter(|o| !explained.contains(o)) {
        problems.push(Problem {
            kind: ProblemKind::NeedsAllocation { object: object.clone() },
            message: format!("{object} is not fully allocated"),
            rule: RULE_QUEUE.into(),
            actions: vec![action(object.clone())],
        });
    }
    let mut counts = Counts::default();
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
        problems,
        queue: report.queue,
        skipped: dump.skipped.clone(),
    })
}

/// Docker's lower-case name of a task state.
fn state_name(state: TaskState) -> String {
    format!("{state:?}").to_lowercase()
}

/// The engine's wording, except where the problem kind knows more (a missing network) or the
/// finding lost the stored prefix length (misplaced addresses are shown without one).
fn message(kind: &ProblemKind, finding: &Finding) -> String {
    match kind {
        ProblemKind::AddressOutsideSubnet { network, address, holder } => {
            format!("{holder} has address {address}, outside every subnet of network {network}")
        }
        ProblemKind::ReservedAddress { network, address, holder, reserved } => {
            format!("{holder} has address {address}, the {reserved} of its subnet in network {network}")
        }
        ProblemKind::MissingNetwork { network, holder } => {
            format!("{holder} references network {network}, which is not in the dump")
        }
        ProblemKind::UnallocatedNetwork { network, holder } => {
            format!("{holder} references network {network}, which is not validly allocated")
        }
        _ => finding.to_string(),
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

/// Allocates restore's queue in one throwaway transaction, in queue order (networks, services,
/// tasks, nodes), as the next pass would. Each object maps to its changes, or to its error.
fn dry_run(
    allocator: &Allocator,
    objects: &BTreeMap<ObjectId, &Object>,
    queue: &[ObjectId],
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
                (Outcome::Updated, Some(new), Some(old)) => changes(old, new),
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
fn diff_by_network(what: &str, old: &BTreeMap<NetworkId, String>, new: &BTreeMap<NetworkId, String>) -> Vec<String> {
    let networks: BTreeSet<&NetworkId> = old.keys().chain(new.keys()).collect();
    let none = String::from("none");
    networks
        .into_iter()
        .filter_map(|n| {
            let (a, b) = (old.get(n).unwrap_or(&none), new.get(n).unwrap_or(&none));
            (a != b).then(|| format!("set the {what} on network {n} from {a} to {b}"))
        })
        .collect()
}

/// The fields the allocator owns that differ between the stored and the updated object.
fn changes(old: &Object, new: &Object) -> Vec<String> {
    let mut out = Vec::new();
    match (old, new) {
        (Object::Network(a), Object::Network(b)) => {
            let subnets = |n: &swarmalloc::Network| {
                list(n.ipam.iter().flat_map(|i| &i.configs).filter_map(|c| c.subnet).collect::<Vec<_>>())
            };
            let vnis = |n: &swarmalloc::Network| {
                n.driver_state.as_ref().and_then(|d| d.options.get(swarmalloc::VXLAN_ID_LIST_OPTION)).cloned()
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
            out.extend(diff_by_network("VIP", &vips(a), &vips(b)));
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
        }
        (Object::Task(a), Object::Task(b)) => {
            out.extend(diff_by_network("address", &addresses(&a.networks), &addresses(&b.networks)));
            if a.status.state != b.status.state {
                out.push(format!("move it from {} to {}", state_name(a.status.state), state_name(b.status.state)));
            }
        }
        (Object::Node(a), Object::Node(b)) => {
            out.extend(diff_by_network(
                "load-balancer address",
                &addresses(&a.attachments),
                &addresses(&b.attachments),
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

    /// A summary for terminals: counts, each problem with its rule and actions, the verdict.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let c = &self.objects;
        let _ = writeln!(out, "check {}", self.source);
        let _ = writeln!(
            out,
            "read {} networks, {} services, {} tasks, {} nodes; skipped {}",
            c.networks,
            c.services,
            c.tasks,
            c.nodes,
            self.skipped.len()
        );
        for (i, problem) in self.problems.iter().enumerate() {
            let _ = writeln!(out, "\n{}. [{}] {}", i + 1, kind_name(&problem.kind), problem.message);
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
        let kinds: Vec<String> = self.kinds().iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = match self.verdict {
            Verdict::Clean => writeln!(out, "\nCLEAN: no problems"),
            Verdict::Problems => {
                writeln!(out, "\nPROBLEMS: {} found ({})", self.problems.len(), kinds.join(", "))
            }
        };
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
    }
}
