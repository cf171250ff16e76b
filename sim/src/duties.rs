//! The leader's duties other than allocation, as pure functions from the applied store to store
//! changes: cluster bootstrap, the control API's validation (as SwarmKit's), the orchestrator
//! (replicas per service, shutdown on scale-down, removal and spec change, replacement of failed
//! tasks), the task reaper (a small history per slot), the scheduler (PENDING -> ASSIGNED), and
//! the dispatcher (worker status reports -> task status, assignments -> workers).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use swarmalloc::{
    ClusterConfig, DriverConfig, Network, NetworkId, NetworkSpec, Node, NodeAvailability, NodeId, NodeRole, NodeSpec,
    Object, ObjectId, PREDEFINED_NETWORK_LABEL, PublishMode, ResolutionMode, Service, ServiceId, ServiceSpec, Task,
    TaskId, TaskSpec, TaskState, TaskStatus, Version,
};

use crate::net::Assignment;
use crate::scenario::{ClientOp, Scenario};
use crate::store::{Change, Store};

pub const INGRESS_ID: &str = "ingress";

/// The first leader's transaction: cluster config, ingress and predefined networks, nodes, and
/// the scenario's initial objects (which replace bootstrap objects of the same id).
pub fn bootstrap(scenario: &Scenario) -> Vec<Change> {
    let mut changes = cluster_objects(&scenario.config, scenario.managers, scenario.workers);
    let initial = scenario.initial.objects();
    changes.retain(|c| c.object_id().is_none_or(|id| !initial.iter().any(|o| o.id() == id)));
    changes.extend(initial.into_iter().map(|object| Change::Create { object }));
    changes
}

/// The cluster object, ingress and predefined networks, and the nodes.
pub fn cluster_objects(config: &ClusterConfig, managers: u8, workers: u8) -> Vec<Change> {
    let mut changes = vec![Change::InitCluster { config: config.clone() }];
    let ingress = NetworkSpec { name: "ingress".into(), ingress: true, ..Default::default() };
    changes.push(Change::Create { object: Object::Network(network(INGRESS_ID, ingress)) });
    for driver in ["bridge", "host"] {
        let spec = NetworkSpec {
            name: driver.into(),
            labels: [(PREDEFINED_NETWORK_LABEL.to_string(), "true".to_string())].into(),
            driver: Some(DriverConfig { name: driver.into(), options: Default::default() }),
            ..Default::default()
        };
        changes.push(Change::Create { object: Object::Network(network(driver, spec)) });
    }
    let nodes = (1..=managers)
        .map(|i| (format!("m{i}"), NodeRole::Manager))
        .chain((1..=workers).map(|i| (format!("w{i}"), NodeRole::Worker)));
    for (name, role) in nodes {
        let node = Node {
            id: NodeId::new(&name),
            version: Version(0),
            spec: NodeSpec { name, role, availability: NodeAvailability::Active },
            attachments: Vec::new(),
        };
        changes.push(Change::Create { object: Object::Node(node) });
    }
    changes
}

fn network(id: &str, spec: NetworkSpec) -> Network {
    Network { id: id.into(), version: Version(0), spec, driver_state: None, ipam: None }
}

// ------------------------------------------------------------------------------------------------
// Control API

/// Validates a user request against the applied store and turns it into changes.
pub fn control(store: &Store, op: &ClientOp) -> Result<Vec<Change>, String> {
    match op {
        ClientOp::CreateNetwork { id, spec } => create_network(store, id, spec),
        ClientOp::RemoveNetwork { id } => remove_network(store, id),
        ClientOp::CreateService { id, spec } => {
            if store.services.contains_key(id) {
                return Err(format!("service {id} already exists"));
            }
            if store.services.values().any(|s| s.spec.name == spec.name) {
                return Err(format!("service name {} is already in use", spec.name));
            }
            validate_service(store, id, spec)?;
            let service = Service { id: id.clone(), version: Version(0), spec: spec.clone(), endpoint: None };
            Ok(vec![Change::Create { object: Object::Service(service) }])
        }
        ClientOp::UpdateService { id, spec } => {
            let Some(current) = store.services.get(id) else { return Err(format!("service {id} not found")) };
            validate_service(store, id, spec)?;
            let mut updated = current.clone();
            updated.spec = spec.clone();
            Ok(vec![Change::Update { object: Object::Service(updated) }])
        }
        ClientOp::RemoveService { id } => {
            let Some(current) = store.services.get(id) else { return Err(format!("service {id} not found")) };
            Ok(vec![Change::Delete { id: ObjectId::Service(id.clone()), version: current.version }])
        }
        ClientOp::AttachNetwork { task, network, node, address } => {
            attach_network(store, task, network, node, *address)
        }
        ClientOp::ScaleService { id, replicas } => {
            let Some(current) = store.services.get(id) else { return Err(format!("service {id} not found")) };
            let mut updated = current.clone();
            updated.spec.replicas = *replicas;
            Ok(vec![Change::Update { object: Object::Service(updated) }])
        }
        ClientOp::DrainNode { node } => {
            let Some(current) = store.nodes.get(node) else { return Err(format!("node {node} not found")) };
            let mut updated = current.clone();
            updated.spec.availability = NodeAvailability::Drain;
            Ok(vec![Change::Update { object: Object::Node(updated) }])
        }
        ClientOp::RemoveNode { node } => {
            let Some(current) = store.nodes.get(node) else { return Err(format!("node {node} not found")) };
            if current.spec.role == NodeRole::Manager {
                return Err(format!("node {node} is a manager: demote it first"));
            }
            Ok(vec![Change::Delete { id: ObjectId::Node(node.clone()), version: current.version }])
        }
        ClientOp::DetachNetwork { task } => {
            let Some(current) = store.tasks.get(task) else { return Err(format!("task {task} not found")) };
            if current.service_id.is_some() {
                return Err(format!("task {task} is not a network attachment"));
            }
            let mut updated = current.clone();
            updated.desired_state = TaskState::Shutdown;
            Ok(vec![Change::Update { object: Object::Task(updated) }])
        }
    }
}

/// A new network: its id and name unused, at most one ingress network.
fn create_network(store: &Store, id: &NetworkId, spec: &NetworkSpec) -> Result<Vec<Change>, String> {
    if store.networks.contains_key(id) {
        return Err(format!("network {id} already exists"));
    }
    if store.networks.values().any(|n| n.spec.name == spec.name) {
        return Err(format!("network name {} is already in use", spec.name));
    }
    if spec.ingress && store.networks.values().any(Network::is_ingress) {
        return Err("an ingress network is already present".into());
    }
    Ok(vec![Change::Create { object: Object::Network(network(id.as_str(), spec.clone())) }])
}

/// Removes a network nothing uses (a predefined one never).
fn remove_network(store: &Store, id: &NetworkId) -> Result<Vec<Change>, String> {
    let Some(net) = store.networks.get(id) else { return Err(format!("network {id} not found")) };
    if net.spec.labels.contains_key(PREDEFINED_NETWORK_LABEL) {
        return Err(format!("network {id} is a predefined network and cannot be removed"));
    }
    if net.is_ingress() && store.services.values().any(|s| s.spec.needs_ingress()) {
        return Err(format!("ingress network {id} is in use by services publishing ingress ports"));
    }
    if let Some(s) = store.services.values().find(|s| s.spec.attachment_configs().iter().any(|a| &a.target == id)) {
        return Err(format!("network {id} is in use by service {}", s.id));
    }
    let task_uses =
        |t: &Task| t.spec.networks.iter().any(|a| &a.target == id) || t.networks.iter().any(|a| &a.network_id == id);
    // SwarmKit's rule (docs/swarmkit.md section 2.10): only a task that is both desired and
    // actually running blocks the removal; one shutting down does not (moby/moby#37338).
    let running = |t: &Task| t.status.state.is_live() && t.desired_state <= TaskState::Running;
    if let Some(t) = store.tasks.values().find(|t| running(t) && task_uses(t)) {
        return Err(format!("network {id} is in use by task {}", t.id));
    }
    Ok(vec![Change::Delete { id: ObjectId::Network(id.clone()), version: net.version }])
}

/// A standalone container's attachment: a task of no service on an attachable network.
fn attach_network(
    store: &Store,
    task: &TaskId,
    network: &NetworkId,
    node: &NodeId,
    address: Option<IpAddr>,
) -> Result<Vec<Change>, String> {
    let Some(net) = store.networks.get(network) else { return Err(format!("network {network} not found")) };
    if !net.spec.attachable {
        return Err(format!("network {network} is not attachable"));
    }
    if !store.nodes.contains_key(node) {
        return Err(format!("node {node} not found"));
    }
    if store.tasks.contains_key(task) {
        return Err(format!("task {task} already exists"));
    }
    let mut config = swarmalloc::NetworkAttachmentConfig::to(network.clone());
    config.addresses.extend(address.iter().copied());
    let task = Task {
        id: task.clone(),
        version: Version(0),
        service_id: None,
        node_id: Some(node.clone()),
        slot: 0,
        spec: TaskSpec { networks: vec![config] },
        status: TaskStatus { state: TaskState::New, message: "attachment".into() },
        desired_state: TaskState::Running,
        networks: Vec::new(),
        endpoint: None,
    };
    Ok(vec![Change::Create { object: Object::Task(task) }])
}

/// SwarmKit's service checks: networks exist and are not the ingress; ingress ports need an
/// ingress network and VIP mode; published ports are not used by another service.
fn validate_service(store: &Store, id: &ServiceId, spec: &ServiceSpec) -> Result<(), String> {
    for attachment in spec.attachment_configs() {
        let Some(net) = store.networks.get(&attachment.target) else {
            return Err(format!("network {} not found", attachment.target));
        };
        if net.is_ingress() {
            return Err(format!("service cannot be explicitly attached to the ingress network {}", net.id));
        }
    }
    if spec.needs_ingress() {
        if !store.networks.values().any(Network::is_ingress) {
            return Err("service needs ingress network, but no ingress network is present".into());
        }
        if spec.resolution_mode() == ResolutionMode::Dnsrr {
            return Err("ports can't be used with dnsrr mode".into());
        }
    }
    let ports = spec.ports();
    for (i, port) in ports.iter().enumerate().filter(|(_, p)| p.published_port != 0) {
        if ports[..i].iter().any(|p| p.published_port == port.published_port && p.protocol == port.protocol) {
            return Err(format!("duplicate published ports provided: {}/{}", port.protocol, port.published_port));
        }
    }
    for port in spec.ports().iter().filter(|p| p.published_port != 0 && p.publish_mode == PublishMode::Ingress) {
        for other in store.services.values().filter(|s| &s.id != id) {
            let in_spec = other.spec.ports().iter();
            let allocated = other.endpoint.iter().flat_map(|e| e.ports.iter());
            if in_spec.chain(allocated).any(|p| {
                p.publish_mode == PublishMode::Ingress
                    && p.protocol == port.protocol
                    && p.published_port == port.published_port
            }) {
                return Err(format!(
                    "port '{}/{}' is already in use by service {}",
                    port.protocol, port.published_port, other.id
                ));
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Orchestrator and reaper

/// Keeps every service at its replica count with tasks of its current spec; shuts down tasks of
/// removed services, extra slots, outdated specs and failed tasks (whose slot then gets a new task).
pub fn orchestrate(store: &Store, create_max: usize) -> Vec<Change> {
    let mut changes = Vec::new();
    let shut = |task: &Task, changes: &mut Vec<Change>| {
        let mut updated = task.clone();
        updated.desired_state = TaskState::Shutdown;
        changes.push(Change::Update { object: Object::Task(updated) });
    };
    let mut by_service: BTreeMap<&ServiceId, Vec<&Task>> = BTreeMap::new();
    // Task ids start with their service's id, so a service's tasks come in runs: look each
    // service up once per run, not once per task.
    let mut run: Option<(&ServiceId, bool)> = None;
    for task in store.tasks.values() {
        if task.desired_state > TaskState::Running {
            continue;
        }
        let Some(service) = &task.service_id else { continue };
        let exists = match run {
            Some((id, exists)) if id == service => exists,
            _ => {
                let exists = store.services.contains_key(service);
                run = Some((service, exists));
                exists
            }
        };
        if exists {
            match by_service.last_entry() {
                Some(mut last) if *last.key() == service => last.get_mut().push(task),
                _ => by_service.entry(service).or_default().push(task),
            }
        } else {
            shut(task, &mut changes);
        }
    }
    let mut created = 0;
    for service in store.services.values() {
        let tasks = by_service.remove(&service.id).unwrap_or_default();
        let mut occupied: BTreeSet<u64> = BTreeSet::new();
        for task in tasks {
            let outdated = task.spec.networks != service.spec.task_networks;
            // A task on a drained or removed node is moved: shut down here, replaced elsewhere.
            let node_gone = task
                .node_id
                .as_ref()
                .is_some_and(|n| store.nodes.get(n).is_none_or(|n| n.spec.availability == NodeAvailability::Drain));
            let failed = !task.status.state.is_live() || node_gone;
            if failed || outdated || task.slot == 0 || task.slot > service.spec.replicas || !occupied.insert(task.slot)
            {
                shut(task, &mut changes);
            }
        }
        for slot in (1..=service.spec.replicas).filter(|s| !occupied.contains(s)) {
            if created >= create_max {
                break;
            }
            created += 1;
            let task = Task {
                id: TaskId::new(format!("{}.{slot}.{}-{created}", service.id, store.applied)),
                version: Version(0),
                service_id: Some(service.id.clone()),
                node_id: None,
                slot,
                spec: TaskSpec { networks: service.spec.task_networks.clone() },
                status: TaskStatus { state: TaskState::New, message: "created".into() },
                desired_state: TaskState::Running,
                networks: Vec::new(),
                endpoint: None,
            };
            changes.push(Change::Create { object: Object::Task(task) });
        }
    }
    changes
}

/// Deletes tasks that no longer matter: terminal tasks of removed services, tasks told to stop
/// before they were ever assigned, and terminal tasks beyond the newest `history` per slot.
pub fn reap(store: &Store, history: usize) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut slots: BTreeMap<(&ServiceId, u64), Vec<&Task>> = BTreeMap::new();
    for task in store.tasks.values() {
        if task.status.state == TaskState::Orphaned {
            // Its container may still run on the unreachable node: ORPHANED exists to free the
            // task's resources without deleting it (moby/swarmkit#1732), so it is kept.
            continue;
        }
        let terminal = !task.status.state.is_live();
        let delete = match &task.service_id {
            _ if task.desired_state > TaskState::Running && task.status.state < TaskState::Assigned => true,
            Some(service) if !store.services.contains_key(service) => terminal,
            Some(service) => {
                if terminal {
                    slots.entry((service, task.slot)).or_default().push(task);
                }
                false
            }
            None => terminal,
        };
        if delete {
            changes.push(Change::Delete { id: ObjectId::Task(task.id.clone()), version: task.version });
        }
    }
    for mut tasks in slots.into_values() {
        tasks.sort_by_key(|t| std::cmp::Reverse(t.version));
        for task in tasks.into_iter().skip(history) {
            changes.push(Change::Delete { id: ObjectId::Task(task.id.clone()), version: task.version });
        }
    }
    changes
}

// ------------------------------------------------------------------------------------------------
// Scheduler and dispatcher

/// Assigns PENDING tasks to the least loaded worker that is up.
pub fn schedule(store: &Store, up: &BTreeSet<NodeId>) -> Vec<Change> {
    let workers: Vec<&NodeId> = store
        .nodes
        .values()
        .filter(|n| {
            n.spec.role == NodeRole::Worker && n.spec.availability == NodeAvailability::Active && up.contains(&n.id)
        })
        .map(|n| &n.id)
        .collect();
    if workers.is_empty() {
        return Vec::new();
    }
    let mut load: BTreeMap<&NodeId, usize> = workers.iter().map(|w| (*w, 0)).collect();
    for task in store.tasks.values().filter(|t| t.status.state.is_live()) {
        if let Some(n) = task.node_id.as_ref().and_then(|n| load.get_mut(n)) {
            *n += 1;
        }
    }
    let mut changes = Vec::new();
    for task in store.tasks.values() {
        if task.status.state != TaskState::Pending || task.desired_state > TaskState::Running {
            continue;
        }
        if task.node_id.is_some() {
            // A network attachment: its node was chosen by the user.
            let mut updated = task.clone();
            updated.status =
                TaskStatus { state: TaskState::Assigned, message: "attachment assigned to its node".into() };
            changes.push(Change::Update { object: Object::Task(updated) });
            continue;
        }
        let Some((node, count)) = load.iter_mut().min_by_key(|(id, count)| (**count, **id)) else { break };
        *count += 1;
        let mut updated = task.clone();
        updated.node_id = Some((*node).clone());
        updated.status = TaskStatus { state: TaskState::Assigned, message: "scheduler assigned task to node".into() };
        changes.push(Change::Update { object: Object::Task(updated) });
    }
    changes
}

/// Task status changes from a worker's report: only forward, only for tasks on that worker.
pub fn status_updates(store: &Store, node: &NodeId, reports: &[(TaskId, TaskState)]) -> Vec<Change> {
    let mut changes = Vec::new();
    for (id, state) in reports {
        let Some(task) = store.tasks.get(id) else { continue };
        if task.node_id.as_ref() != Some(node) || *state <= task.status.state {
            continue;
        }
        let mut updated = task.clone();
        updated.status = TaskStatus { state: *state, message: format!("reported by {node}") };
        changes.push(Change::Update { object: Object::Task(updated) });
    }
    changes
}

/// SwarmKit's dispatcher moves the tasks of a node that has been down too long to ORPHANED
/// (`nodeDownPeriod`, 24 hours there, seconds here): a terminal state that frees their resources
/// although their containers may still run on the unreachable node.
pub fn orphan(store: &Store, down: &BTreeSet<NodeId>) -> Vec<Change> {
    let on_down_node = |t: &&Task| t.node_id.as_ref().is_some_and(|n| down.contains(n));
    let assigned = |t: &&Task| t.status.state >= TaskState::Assigned && t.status.state.is_live();
    store
        .tasks
        .values()
        .filter(on_down_node)
        .filter(assigned)
        .map(|t| {
            let mut updated = t.clone();
            updated.status = TaskStatus { state: TaskState::Orphaned, message: "node is down".into() };
            Change::Update { object: Object::Task(updated) }
        })
        .collect()
}

/// What a worker should run: its assigned, live tasks with their desired state and addresses.
pub fn assignments(store: &Store, node: &NodeId) -> Vec<Assignment> {
    store
        .tasks
        .values()
        .filter(|t| {
            t.node_id.as_ref() == Some(node) && t.status.state >= TaskState::Assigned && t.status.state.is_live()
        })
        .map(|t| Assignment {
            task: t.id.clone(),
            service: t.service_id.clone(),
            slot: t.slot,
            desired: t.desired_state,
            addrs: t
                .networks
                .iter()
                .filter(|a| {
                    store.networks.get(&a.network_id).is_some_and(|n| n.scope() != swarmalloc::DriverScope::NodeLocal)
                })
                .flat_map(|a| a.addresses.iter().map(|addr| (a.network_id.clone(), *addr)))
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Origin, ProposalId, Txn};
    use swarmalloc::{EndpointSpec, NetworkAttachmentConfig, PortConfig, Protocol};

    fn apply(store: &mut Store, changes: impl FnOnce(&Store) -> Vec<Change>) {
        let changes = changes(store);
        let index = store.applied + 1;
        let txn = Txn { id: ProposalId { node: 1, incarnation: 0, seq: index }, origin: Origin::Control, changes };
        store.apply(index, &txn).expect("applies");
    }

    fn cluster() -> Store {
        let mut store = Store::default();
        apply(&mut store, |_| cluster_objects(&ClusterConfig::default(), 1, 2));
        store
    }

    fn service(name: &str, replicas: u64, networks: &[&str], port: u16) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            replicas,
            task_networks: networks.iter().map(|n| NetworkAttachmentConfig::to(*n)).collect(),
            networks: Vec::new(),
            endpoint: (port != 0).then(|| EndpointSpec {
                mode: ResolutionMode::Vip,
                ports: vec![PortConfig {
                    name: "http".into(),
                    protocol: Protocol::Tcp,
                    target_port: 80,
                    published_port: port,
                    publish_mode: PublishMode::Ingress,
                }],
            }),
        }
    }

    #[test]
    fn control_refuses_what_swarmkit_refuses() {
        let mut store = cluster();
        let net =
            ClientOp::CreateNetwork { id: "n1".into(), spec: NetworkSpec { name: "n1".into(), ..Default::default() } };
        apply(&mut store, |store| control(store, &net).expect("create network"));
        assert_eq!(control(&store, &net), Err("network n1 already exists".to_string()));
        let s1 = ClientOp::CreateService { id: "s1".into(), spec: service("s1", 2, &["n1"], 8080) };
        apply(&mut store, |store| control(store, &s1).expect("create service"));
        let s2 = ClientOp::CreateService { id: "s2".into(), spec: service("s2", 1, &[], 8080) };
        assert_eq!(control(&store, &s2), Err("port 'tcp/8080' is already in use by service s1".to_string()));
        let rm = ClientOp::RemoveNetwork { id: "n1".into() };
        assert_eq!(control(&store, &rm), Err("network n1 is in use by service s1".to_string()));
        let rm_ingress = ClientOp::RemoveNetwork { id: INGRESS_ID.into() };
        assert!(control(&store, &rm_ingress).is_err());
        let rm_bridge = ClientOp::RemoveNetwork { id: "bridge".into() };
        assert!(control(&store, &rm_bridge).is_err_and(|e| e.contains("predefined")));
        let on_ingress = ClientOp::CreateService { id: "s3".into(), spec: service("s3", 1, &[INGRESS_ID], 0) };
        assert!(control(&store, &on_ingress).is_err_and(|e| e.contains("ingress")));
    }

    #[test]
    fn orchestrator_keeps_replicas_and_reaper_keeps_one_terminal_task_per_slot() {
        let mut store = cluster();
        let s1 = ClientOp::CreateService { id: "s1".into(), spec: service("s1", 3, &[], 0) };
        apply(&mut store, |store| control(store, &s1).expect("create"));
        apply(&mut store, |store| orchestrate(store, 100));
        assert_eq!(store.tasks.len(), 3);
        assert!(orchestrate(&store, 100).is_empty(), "stable at the replica count");
        // Fail slot 1 twice: each failure is replaced, and only the newest terminal task stays.
        for _ in 0..2 {
            let mut failed =
                store.tasks.values().find(|t| t.slot == 1 && t.status.state.is_live()).cloned().expect("slot 1");
            failed.status.state = TaskState::Failed;
            apply(&mut store, |_| vec![Change::Update { object: Object::Task(failed) }]);
            apply(&mut store, |store| orchestrate(store, 100));
        }
        assert_eq!(store.tasks.values().filter(|t| t.slot == 1).count(), 3);
        apply(&mut store, |store| reap(store, 1));
        let slot1: Vec<&Task> = store.tasks.values().filter(|t| t.slot == 1).collect();
        assert_eq!(slot1.len(), 2, "{slot1:?}");
        // Scale down: the extra slots are told to stop, then (never assigned) reaped.
        let mut spec = store.services[&ServiceId::from("s1")].spec.clone();
        spec.replicas = 1;
        apply(&mut store, |store| control(store, &ClientOp::UpdateService { id: "s1".into(), spec }).expect("update"));
        apply(&mut store, |store| orchestrate(store, 100));
        apply(&mut store, |store| reap(store, 1));
        let live = store.tasks.values().filter(|t| t.desired_state <= TaskState::Running).count();
        assert_eq!(live, 1);
    }

    #[test]
    fn scheduler_spreads_pending_tasks_and_dispatcher_only_moves_forward() {
        let mut store = cluster();
        let s1 = ClientOp::CreateService { id: "s1".into(), spec: service("s1", 4, &[], 0) };
        apply(&mut store, |store| control(store, &s1).expect("create"));
        apply(&mut store, |store| orchestrate(store, 100));
        let pending: Vec<Change> = store
            .tasks
            .values()
            .map(|t| {
                let mut t = t.clone();
                t.status.state = TaskState::Pending;
                Change::Update { object: Object::Task(t) }
            })
            .collect();
        apply(&mut store, |_| pending);
        let up: BTreeSet<NodeId> = ["w1", "w2"].into_iter().map(NodeId::from).collect();
        apply(&mut store, |store| schedule(store, &up));
        let w1 = assignments(&store, &"w1".into());
        assert_eq!((w1.len(), assignments(&store, &"w2".into()).len()), (2, 2));
        let report = vec![(w1[0].task.clone(), TaskState::Running)];
        apply(&mut store, |store| status_updates(store, &"w1".into(), &report));
        assert_eq!(store.tasks[&w1[0].task].status.state, TaskState::Running);
        let back = vec![(w1[0].task.clone(), TaskState::Assigned)];
        assert!(status_updates(&store, &"w1".into(), &back).is_empty());
        assert!(status_updates(&store, &"w2".into(), &report).is_empty(), "not w2's task");
    }
}
