//! The reference model of engine operation sequences, shared by the proptest
//! (`engine/tests/model.rs`, which generates `Op`s with weighted strategies) and the `engine_ops`
//! fuzz target (which decodes them from bytes with `arbitrary`): [`check_ops`].
//!
//! Ops (`ops`) are user writes, allocation passes that commit, commit a prefix or drop their
//! proposal, passes that race another writer, and restores. The model (this file) keeps the
//! committed objects (`store`) and applies only committed updates to it. After every step it
//! checks (`checks`), independently of the engine's own index:
//! (a) the engine equals `Allocator::restore(config, store)`, in store, reversed or shuffled order
//!     (one order per step, in turn; all three at the end, less the one the last check compared
//!     when nothing has changed since: the same input gives the same engine);
//! (b) building and dropping a proposal leaves the engine unchanged;
//! (c) the committed store is consistent (no shared live address, addresses inside their
//!     subnets and off network/broadcast, one address per family per attachment, no subnet
//!     overlap, VXLAN ids unique and one per IPAM config, ingress ports unique, dynamic ports in
//!     range);
//! (d) a NEW task whose service and networks are allocated and whose pools have room is PENDING
//!     after the next committed pass;
//! (e) subnets and VXLAN ids never change once committed; VIPs on kept networks and dynamic
//!     ports with kept (name, protocol, target) survive service updates;
//! (f) after a committed pass every node has LB attachments on the networks it needs (a network
//!     with no room excepted), none it does not, and repeated passes with no other write settle
//!     (the third proposes nothing);
//! (g) after a committed pass every address handed out is the first free one after its pool's
//!     stored cursor, and the cursor is the last one handed out.
//!
//! A step that leaves both the store and the engine as they were (an op whose target does not
//! exist, a dropped proposal, a restore that rebuilt an equal engine) skips the checks: they would
//! compare the same two things again. The `const` switch in `ops` re-enables inputs that hit
//! engine behaviour reported to the engine owner.

mod checks;
mod ops;

pub use ops::*;
use ops::{new_task, port_config, push_port};

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use swarmalloc::{
    Allocator, ClusterConfig, DriverConfig, EndpointSpec, Ipam, IpamConfig, Network, NetworkAttachmentConfig,
    NetworkId, NetworkSpec, Node, NodeId, Object, ObjectId, ObjectRef, ResolutionMode, Service, ServiceId, ServiceSpec,
    Task, TaskId, TaskState, TaskStatus, VXLAN_ID_LIST_OPTION, Version,
};

use checks::check_allocation_result;

/// The `engine_ops` fuzz target's property over raw bytes (so a crash file replays exactly).
pub fn check_ops_bytes(data: &[u8]) -> Result<(), String> {
    let ops = ops_from_bytes(data);
    check_ops(&ops).map_err(|e| format!("{e}\nops: {ops:#?}"))
}

/// Runs the ops against the model, checking after every step and settling at the end.
pub fn check_ops(ops: &[Op]) -> Result<(), String> {
    let mut model = Model::new();
    for (i, op) in ops.iter().enumerate() {
        model.apply(op).map_err(|e| format!("step {i} {op:?}: {e}"))?;
        model.check().map_err(|e| format!("after step {i} {op:?}: {e}"))?;
    }
    model.settle().map_err(|e| format!("at the end: {e}"))?;
    // Nothing changed since the last check compared the engine with one restore order: that
    // restore would be the same input again, giving the same engine.
    let compared = model.last_compared.filter(|_| !model.store_changed && !model.engine_changed);
    model.check_restore_equal(Orders::All { compared }).map(|_| ()).map_err(|e| format!("at the end: {e}"))
}

/// Which restore orders a check compares the engine with: one per step, cycling through the
/// store's order, reversed and shuffled (each rebuild costs as much as the rest of a step), and
/// all three at the end of a sequence (less one already compared with the same store and engine).
#[derive(Clone, Copy, Debug)]
enum Orders {
    One(u64),
    /// All three, except the one `compared` with the current store and engine already.
    All {
        compared: Option<Order>,
    },
}

/// A restore order: the store's, reversed, or shuffled with a seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Store,
    Reversed,
    Shuffled(u64),
}

impl Order {
    fn name(self) -> &'static str {
        match self {
            Order::Store => "store",
            Order::Reversed => "reversed",
            Order::Shuffled(_) => "shuffled",
        }
    }
}

/// The objects of the store in one restore order, borrowed.
enum Sequence<'a> {
    Store(std::collections::btree_map::Values<'a, ObjectId, Object>),
    Reversed(std::iter::Rev<std::collections::btree_map::Values<'a, ObjectId, Object>>),
    Shuffled(std::slice::Iter<'a, &'a Object>),
}

impl<'a> Iterator for Sequence<'a> {
    type Item = &'a Object;

    fn next(&mut self) -> Option<&'a Object> {
        match self {
            Sequence::Store(objects) => objects.next(),
            Sequence::Reversed(objects) => objects.next(),
            Sequence::Shuffled(objects) => objects.next().copied(),
        }
    }
}

/// A deterministic shuffle for restore orders (the seed comes from the op sequence).
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let j = (seed % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

type Check = Result<(), String>;

/// Objects by id, in id order.
type Store = BTreeMap<ObjectId, Object>;

/// Pre-images of the objects a pass wrote, by id: what the store held before the pass's first
/// write of each (None: the object was not in the store).
type PreImages = BTreeMap<ObjectId, Option<Object>>;

/// The committed store as it was before a pass: the current store with the pre-images of what the
/// pass wrote put back (a pass only writes, it never deletes), instead of a copy of every object.
#[derive(Clone, Copy)]
struct View<'a> {
    store: &'a Store,
    pre: Option<&'a PreImages>,
}

impl<'a> View<'a> {
    /// The store as it is.
    fn of(store: &'a Store) -> View<'a> {
        View { store, pre: None }
    }

    fn get(&self, id: &ObjectId) -> Option<&'a Object> {
        if let Some(pre) = self.pre
            && let Some(old) = pre.get(id)
        {
            return old.as_ref();
        }
        self.store.get(id)
    }

    /// Every object, in id order (the order of the store it stands for).
    fn values(&self) -> impl Iterator<Item = &'a Object> + 'a {
        let pre = self.pre;
        self.store.iter().filter_map(move |(id, object)| match pre.and_then(|pre| pre.get(id)) {
            Some(old) => old.as_ref(),
            None => Some(object),
        })
    }
}

struct Model {
    config: ClusterConfig,
    engine: Allocator,
    store: Store,
    store_index: u64,
    next_id: u32,
    step: u64,
    /// First committed allocation of each network: it must never change (e).
    sticky_networks: BTreeMap<NetworkId, (Ipam, DriverConfig)>,
    /// Checks that compared the engine with a restore: picks the restore order.
    checks: u64,
    /// Whether the store, or the engine, may have changed since the last check passed.
    store_changed: bool,
    engine_changed: bool,
    /// The restore order the last check compared the engine with.
    last_compared: Option<Order>,
}

impl Model {
    fn new() -> Model {
        let config = config();
        Model {
            engine: Allocator::new(config.clone()).expect("valid config"),
            config,
            store: BTreeMap::new(),
            store_index: 0,
            next_id: 0,
            step: 0,
            sticky_networks: BTreeMap::new(),
            checks: 0,
            store_changed: true,
            engine_changed: true,
            last_compared: None,
        }
    }

    fn fresh_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:03}", self.next_id)
    }

    /// A committed write by someone other than the allocator: store it and mirror it.
    /// Returns the object it replaced.
    fn write(&mut self, mut object: Object) -> Option<Object> {
        self.store_index += 1;
        object.set_version(Version(self.store_index));
        self.engine.observe(object.as_ref());
        self.store_changed = true;
        self.engine_changed = true;
        self.store.insert(object.id(), object)
    }

    /// A committed update of the task `index` picks among those `filter` keeps (as
    /// [`Model::pick`] over [`Model::tasks`]) by someone other than the allocator: made in place
    /// (as [`Model::write`] of an updated copy would leave the store) and mirrored.
    fn update_task(&mut self, index: &Pick, filter: impl Fn(&Task) -> bool, update: impl FnOnce(&mut Task)) {
        let len = self.tasks().filter(|t| filter(t)).count();
        if len == 0 {
            return;
        }
        let mut picked = self.store.values_mut().filter_map(|o| match o {
            Object::Task(t) if filter(t) => Some(t),
            _ => None,
        });
        let Some(task) = picked.nth(index.index(len)) else { return };
        update(task);
        self.store_index += 1;
        task.version = Version(self.store_index);
        self.engine.observe(ObjectRef::Task(task));
        self.store_changed = true;
        self.engine_changed = true;
    }

    fn delete(&mut self, id: ObjectId) {
        self.store.remove(&id);
        self.engine.observe_deleted(&id);
        self.store_changed = true;
        self.engine_changed = true;
    }

    fn networks(&self) -> impl Iterator<Item = &Network> + Clone {
        self.store.values().filter_map(|o| match o {
            Object::Network(n) => Some(n),
            _ => None,
        })
    }

    fn services(&self) -> impl Iterator<Item = &Service> + Clone {
        self.store.values().filter_map(|o| match o {
            Object::Service(s) => Some(s),
            _ => None,
        })
    }

    fn tasks(&self) -> impl Iterator<Item = &Task> + Clone {
        self.store.values().filter_map(|o| match o {
            Object::Task(t) => Some(t),
            _ => None,
        })
    }

    fn nodes(&self) -> impl Iterator<Item = &Node> + Clone {
        self.store.values().filter_map(|o| match o {
            Object::Node(n) => Some(n),
            _ => None,
        })
    }

    fn network(&self, id: &NetworkId) -> Option<&Network> {
        match self.store.get(&ObjectId::Network(id.clone())) {
            Some(Object::Network(n)) => Some(n),
            _ => None,
        }
    }

    fn service(&self, id: &ServiceId) -> Option<&Service> {
        match self.store.get(&ObjectId::Service(id.clone())) {
            Some(Object::Service(s)) => Some(s),
            _ => None,
        }
    }

    /// The item `index` chooses (modulo how many there are), without collecting them.
    fn pick<T>(items: impl Iterator<Item = T> + Clone, index: &Pick) -> Option<T> {
        let len = items.clone().count();
        if len == 0 { None } else { items.into_iter().nth(index.index(len)) }
    }

    /// Networks a service may list: every non-ingress network in the store.
    fn listable_networks(&self) -> Vec<NetworkId> {
        self.networks().filter(|n| !n.is_ingress()).map(|n| n.id.clone()).collect()
    }

    // --------------------------------------------------------------------------------------------
    // Applying ops

    fn apply(&mut self, op: &Op) -> Check {
        self.step += 1;
        match op {
            Op::CreateNetwork(kind) => self.create_network(kind),
            Op::DeleteNetwork(index) => self.delete_network(index),
            Op::CreateService(shape) => {
                let id = ServiceId::new(self.fresh_id("s"));
                let spec = self.service_spec(id.as_str(), shape);
                self.write(Object::Service(Service { id, version: Version(0), spec, endpoint: None }));
            }
            Op::UpdateService(index, edit) => self.update_service(index, edit),
            Op::DeleteService(index) => {
                if let Some(id) = Self::pick(self.services(), index).map(|s| s.id.clone()) {
                    self.delete(ObjectId::Service(id));
                }
            }
            Op::CreateTask(index) => {
                // The orchestrator copies the service's task template, networks included.
                if let Some((service, networks)) =
                    Self::pick(self.services(), index).map(|s| (s.id.clone(), s.spec.task_networks.clone()))
                {
                    let task = new_task(TaskId::new(self.fresh_id("t")), Some(service), None, networks);
                    self.write(Object::Task(task));
                }
            }
            Op::CreateAttachTask { network, node, requested } => self.create_attach_task(network, node, *requested),
            Op::CreateNode => {
                let id = NodeId::new(self.fresh_id("m"));
                self.write(Object::Node(Node {
                    id,
                    version: Version(0),
                    spec: Default::default(),
                    attachments: Vec::new(),
                }));
            }
            Op::AssignTask(..) | Op::RunTask(_) | Op::EndTask(..) | Op::StopTask(_) => self.task_status_op(op),
            Op::DeleteTask(index) => {
                if let Some(id) = Self::pick(self.tasks(), index).map(|t| t.id.clone()) {
                    self.delete(ObjectId::Task(id));
                }
            }
            Op::DeleteNode(index) => {
                if let Some(id) = Self::pick(self.nodes(), index).map(|n| n.id.clone()) {
                    self.delete(ObjectId::Node(id));
                }
            }
            Op::Pass(end) => return self.pass(*end),
            Op::Settle => return self.settle(),
            Op::PassRacing(write) => return self.pass_racing(write),
            Op::Restore(seed) => return self.restore(*seed),
        }
        Ok(())
    }

    /// The orchestrator's, scheduler's and agents' updates of a task's status or desired state.
    fn task_status_op(&mut self, op: &Op) {
        match op {
            Op::AssignTask(task, node) => {
                if let Some(node) = Self::pick(self.nodes(), node).map(|n| n.id.clone()) {
                    self.update_task(
                        task,
                        |t| t.status.state == TaskState::Pending,
                        |task| {
                            // A standalone container's task already names its node.
                            task.node_id.get_or_insert(node);
                            task.status =
                                TaskStatus { state: TaskState::Assigned, message: "scheduler assigned task".into() };
                        },
                    );
                }
            }
            Op::RunTask(task) => {
                self.update_task(
                    task,
                    |t| t.status.state == TaskState::Assigned,
                    |task| {
                        task.status = TaskStatus { state: TaskState::Running, message: "started".into() };
                    },
                );
            }
            Op::EndTask(task, state) => {
                self.update_task(
                    task,
                    |t| t.status.state.is_live(),
                    |task| {
                        task.status = TaskStatus { state: state.state(), message: "finished".into() };
                    },
                );
            }
            Op::StopTask(task) => {
                self.update_task(
                    task,
                    |t| t.desired_state <= TaskState::Running,
                    |task| {
                        task.desired_state = TaskState::Shutdown;
                    },
                );
            }

            _ => unreachable!("not a task status op: {op:?}"),
        }
    }

    /// A new leader's engine: restore in an order of the op's choosing. It must equal the engine
    /// it replaces, which the last check found equal to restore(store).
    fn restore(&mut self, seed: u64) -> Check {
        let mut objects: Vec<&Object> = self.store.values().collect();
        shuffle(&mut objects, seed | 1);
        let engine = self.engine.rebuilt(objects.into_iter().map(Object::as_ref));
        if let Some(diff) = self.engine.diff(&engine) {
            return Err(format!("engine != restore(store) (shuffled by the op's seed):\n{diff}"));
        }
        self.engine = engine;
        Ok(())
    }

    fn create_network(&mut self, kind: &NetKind) {
        let id = NetworkId::new(self.fresh_id("n"));
        let mut spec = NetworkSpec { name: ["net-", id.as_str()].concat(), ..NetworkSpec::default() };
        let ipam = |subnets: &[&str]| Ipam {
            driver: String::new(),
            options: BTreeMap::new(),
            configs: subnets
                .iter()
                .map(|s| IpamConfig { subnet: Some(s.parse().expect("valid")), range: None, gateway: None })
                .collect(),
        };
        match kind {
            NetKind::Default { attachable } => spec.attachable = *attachable,
            NetKind::Small(i) => {
                spec.ipam = Some(ipam(&[SMALL_SUBNETS[usize::from(*i) % SMALL_SUBNETS.len()]]));
                spec.attachable = true;
            }
            NetKind::DualStack(k) => {
                let k = usize::from(k % 3);
                let v4 = ["172.16.0.0/28", "172.16.1.0/28", "172.16.2.0/28"][k];
                let v6 = ["fd00:0:0:0::/125", "fd00:0:0:1::/125", "fd00:0:0:2::/125"][k];
                spec.ipam = Some(ipam(&[v4, v6]));
                spec.attachable = true;
            }
            NetKind::NodeLocal(i) => {
                let name = LOCAL_DRIVERS[usize::from(*i) % LOCAL_DRIVERS.len()];
                // Options SwarmKit does not copy into the driver state of a node-local network.
                let options = [("parent".to_string(), "eth0".to_string())].into();
                spec.driver = Some(DriverConfig { name: name.into(), options });
            }
            NetKind::TwoSubnets => {
                spec.ipam = Some(ipam(&["192.168.4.0/30", "192.168.5.0/29"]));
                spec.attachable = true;
            }
            NetKind::V6Only(k) => {
                spec.ipam = Some(ipam(&[["fd00:0:1:0::/125", "fd00:0:1:1::/125"][usize::from(k % 2)]]));
                spec.attachable = true;
            }
            NetKind::PinnedVni(vni) => {
                // 4096, 4097, 4098, or 0 (which pins nothing: an id is drawn).
                let vni = if vni % 4 == 3 { 0 } else { 4096 + u32::from(vni % 4) };
                let options = [(VXLAN_ID_LIST_OPTION.to_string(), vni.to_string())].into();
                spec.driver = Some(DriverConfig { name: "overlay".into(), options });
            }
            NetKind::Ranged => {
                spec.ipam = Some(Ipam {
                    driver: String::new(),
                    options: BTreeMap::new(),
                    configs: vec![IpamConfig {
                        subnet: Some("192.168.3.0/28".parse().expect("valid")),
                        range: Some("192.168.3.8/29".parse().expect("valid")),
                        // Every other one names no gateway: it is then drawn from the range.
                        gateway: self.next_id.is_multiple_of(2).then(|| "192.168.3.1".parse().expect("valid")),
                    }],
                });
                spec.attachable = true;
            }
            NetKind::Remote => {
                spec.driver = Some(DriverConfig { name: "weave".into(), options: BTreeMap::new() });
            }
            NetKind::Ingress => {
                spec.name = "ingress".into();
                spec.ingress = true;
            }
        }
        self.write(Object::Network(Network { id, version: Version(0), spec, driver_state: None, ipam: None }));
    }

    /// The control API's rule (docs/swarmkit.md section 2.10): refused while a service lists the
    /// network, while a live task is attached to it, or (ingress) while a service publishes.
    fn delete_network(&mut self, index: &Pick) {
        let Some(id) = Self::pick(self.networks(), index).map(|n| n.id.clone()) else { return };
        let is_ingress = self.network(&id).is_some_and(Network::is_ingress);
        let by_service = self.services().any(|s| {
            s.spec.attachment_configs().iter().any(|c| c.target == id) || (is_ingress && s.spec.needs_ingress())
        });
        // A task that is shutting down (desired SHUTDOWN, still RUNNING) does not block the
        // delete: that is how SwarmKit leaked its other addresses (bug class B4).
        let by_task = self.tasks().any(|t| {
            t.status.state.is_live()
                && t.desired_state <= TaskState::Running
                && (t.networks.iter().any(|a| a.network_id == id) || t.spec.networks.iter().any(|c| c.target == id))
        });
        if !by_service && !by_task {
            self.delete(ObjectId::Network(id));
        }
    }

    fn service_spec(&self, name: &str, shape: &ServiceShape) -> ServiceSpec {
        let listable = self.listable_networks();
        let mut targets: Vec<NetworkId> = Vec::new();
        for index in shape.networks.iter().take(3) {
            if let Some(id) = Self::pick(listable.iter(), index).cloned()
                && !targets.contains(&id)
            {
                targets.push(id);
            }
        }
        let configs: Vec<NetworkAttachmentConfig> =
            targets.into_iter().map(|t| NetworkAttachmentConfig::to(t.as_str())).collect();
        let mut spec = ServiceSpec { name: name.to_string(), replicas: 1, ..ServiceSpec::default() };
        if shape.deprecated_field {
            spec.networks = configs;
        } else {
            spec.task_networks = configs;
        }
        let mode = if shape.dnsrr { ResolutionMode::Dnsrr } else { ResolutionMode::Vip };
        let mut ports = Vec::new();
        for port in shape.ports.iter().take(3).map(port_config) {
            push_port(&mut ports, port);
        }
        spec.endpoint = Some(EndpointSpec { mode, ports });
        spec
    }

    fn update_service(&mut self, index: &Pick, edit: &ServiceEdit) {
        let Some(mut service) = Self::pick(self.services(), index).cloned() else { return };
        let listable = self.listable_networks();
        let spec = &mut service.spec;
        // Network changes go through Spec.Task.Networks only (the control API refuses the other field).
        let migrate = |spec: &mut ServiceSpec| {
            if spec.task_networks.is_empty() {
                spec.task_networks = std::mem::take(&mut spec.networks);
            }
        };
        match edit {
            ServiceEdit::AddNetwork(i) => {
                if let Some(id) = Self::pick(listable.iter(), i).cloned()
                    && !spec.attachment_configs().iter().any(|c| c.target == id)
                {
                    migrate(spec);
                    spec.task_networks.push(NetworkAttachmentConfig::to(id.as_str()));
                }
            }
            ServiceEdit::RemoveNetwork(i) => {
                migrate(spec);
                if !spec.task_networks.is_empty() {
                    let at = i.index(spec.task_networks.len());
                    spec.task_networks.remove(at);
                }
            }
            ServiceEdit::ToggleMode => {
                let endpoint = spec.endpoint.get_or_insert_with(Default::default);
                endpoint.mode = match endpoint.mode {
                    ResolutionMode::Vip => ResolutionMode::Dnsrr,
                    ResolutionMode::Dnsrr => ResolutionMode::Vip,
                };
            }
            ServiceEdit::AddPort(port) => {
                push_port(&mut spec.endpoint.get_or_insert_with(Default::default).ports, port_config(port));
            }
            ServiceEdit::RemovePort(i) => {
                let ports = &mut spec.endpoint.get_or_insert_with(Default::default).ports;
                if !ports.is_empty() {
                    ports.remove(i.index(ports.len()));
                }
            }
            ServiceEdit::Touch => spec.replicas += 1,
            ServiceEdit::Replace(shape) => {
                let name = spec.name.clone();
                let mut new_spec = self.service_spec(&name, shape);
                if !new_spec.networks.is_empty() {
                    new_spec.task_networks = std::mem::take(&mut new_spec.networks);
                }
                service.spec = new_spec;
            }
        }
        self.write(Object::Service(service));
    }

    fn create_attach_task(&mut self, network: &Pick, node: &Pick, requested: Option<u8>) {
        let attachable = self.networks().filter(|n| n.spec.attachable);
        let Some(network) = Self::pick(attachable, network).cloned() else { return };
        let node = Self::pick(self.nodes(), node).map(|n| n.id.clone());
        let mut config = NetworkAttachmentConfig::to(network.id.as_str());
        if let (Some(n), Some(ipam)) = (requested, &network.ipam)
            && let Some(subnet) = ipam.configs.iter().filter_map(|c| c.subnet).find(|s| matches!(s, IpNet::V4(_)))
        {
            let base = u32::from(match subnet.network() {
                IpAddr::V4(a) => a,
                IpAddr::V6(_) => unreachable!("filtered to IPv4"),
            });
            let ip = std::net::Ipv4Addr::from(base.wrapping_add(n as u32));
            if subnet.contains(&IpAddr::V4(ip)) {
                config.addresses.push(IpAddr::V4(ip));
            }
        }
        let task = new_task(TaskId::new(self.fresh_id("c")), None, node, vec![config]);
        self.write(Object::Task(task));
    }

    // --------------------------------------------------------------------------------------------
    // Allocation passes

    /// Builds one pass's proposal over every store object: networks (ingress first), services,
    /// tasks, nodes. Per-object errors are expected (exhaustion, conflicts, invalid specs).
    fn build(&self) -> swarmalloc::Proposal {
        let mut tx = self.engine.begin();
        // Ingress first, each group in store order (a stable sort by "not ingress").
        for network in self.networks().filter(|n| n.is_ingress()).chain(self.networks().filter(|n| !n.is_ingress())) {
            let _ = tx.allocate_network(network);
        }
        for service in self.services() {
            let _ = tx.allocate_service(service);
        }
        for task in self.tasks() {
            let service = task.service_id.as_ref().and_then(|id| self.service(id));
            let _ = tx.allocate_task(task, service);
        }
        for node in self.nodes() {
            let _ = tx.allocate_node(node);
        }
        tx.finish()
    }

    fn pass_racing(&mut self, write: &RacingWrite) -> Check {
        let proposal = self.build();
        self.apply(&write.op())?;
        // The store before the grafts: the current one with the pre-image of each graft put back.
        let mut pre = PreImages::new();
        for update in proposal.into_updates() {
            let Some(current) = self.store.get(&update.id()).cloned() else { continue };
            let grafted = match (current, update) {
                (Object::Network(mut current), Object::Network(update)) => {
                    current.ipam = update.ipam;
                    current.driver_state = update.driver_state;
                    Object::Network(current)
                }
                (Object::Service(mut current), Object::Service(update)) => {
                    current.endpoint = update.endpoint;
                    Object::Service(current)
                }
                (Object::Task(mut current), Object::Task(update)) => {
                    current.networks = update.networks;
                    current.endpoint = update.endpoint;
                    if current.status.state < TaskState::Pending {
                        current.status = update.status;
                    }
                    Object::Task(current)
                }
                (Object::Node(mut current), Object::Node(update)) => {
                    current.attachments = update.attachments;
                    Object::Node(current)
                }
                (current, update) => return Err(format!("{} changed kind: {current:?} vs {update:?}", update.id())),
            };
            check_allocation_result(View { store: &self.store, pre: Some(&pre) }, &grafted)?;
            let id = grafted.id();
            let old = self.write(grafted);
            pre.entry(id).or_insert(old);
        }
        Ok(())
    }

    fn pass(&mut self, end: PassEnd) -> Check {
        // (b) Building and dropping a proposal (or committing none of it) leaves the engine as
        // it was, so the last check still holds and the store is unchanged. (`Tx` borrows the
        // engine immutably, so only the drop or the empty commit could change it.)
        let before = matches!(end, PassEnd::Drop).then(|| self.engine.clone());
        let proposal = self.build();
        let landed = match end {
            PassEnd::Commit => proposal.len(),
            PassEnd::Prefix(k) => k.index(proposal.len() + 1),
            PassEnd::Drop => 0,
        };
        if landed > 0 {
            return self.land(proposal, end);
        }
        let before = before.unwrap_or_else(|| self.engine.clone());
        if matches!(end, PassEnd::Drop) {
            drop(proposal);
        } else {
            self.engine.commit_prefix(&proposal, 0);
        }
        if let Some(diff) = self.engine.diff(&before) {
            return Err(format!("a pass that landed nothing changed the engine ({end:?}):\n{diff}"));
        }
        if matches!(end, PassEnd::Commit) {
            self.check_committed_pass(None)?;
        }
        Ok(())
    }

    /// Commits a proposal (`Commit`) or its first `k` updates (`Prefix`) and checks what landed.
    fn land(&mut self, proposal: swarmalloc::Proposal, end: PassEnd) -> Check {
        let landed = match end {
            PassEnd::Commit => proposal.len(),
            PassEnd::Prefix(k) => k.index(proposal.len() + 1),
            PassEnd::Drop => 0,
        };
        self.engine.commit_prefix(&proposal, landed);
        self.engine_changed = true;
        self.store_changed = true;
        // The store before the pass: the current one with the pre-images of what landed put back.
        // Each update is checked against that store as it lands (before it overwrites anything).
        let mut pre = PreImages::new();
        for mut object in proposal.into_updates().into_iter().take(landed) {
            check_allocation_result(View { store: &self.store, pre: Some(&pre) }, &object)?;
            self.store_index += 1;
            object.set_version(Version(self.store_index));
            let id = object.id();
            let old = self.store.insert(id.clone(), object);
            pre.entry(id).or_insert(old);
        }
        if matches!(end, PassEnd::Commit) {
            self.check_committed_pass(Some(View { store: &self.store, pre: Some(&pre) }))?;
        }
        Ok(())
    }

    /// (f) Allocation converges: without other writes, a pass commits networks, services and
    /// tasks, the next one the node LB attachments their tasks need, and the one after that
    /// proposes nothing. An object updated by every pass (a port or address that moves on each
    /// pass) would never settle.
    fn settle(&mut self) -> Check {
        const PASSES_MAX: usize = 3;
        let mut last = Vec::new();
        for _ in 0..PASSES_MAX {
            let proposal = self.build();
            if proposal.is_empty() {
                return Ok(());
            }
            last = proposal.updates().iter().map(Object::id).collect();
            self.land(proposal, PassEnd::Commit)?;
            self.check()?;
        }
        let proposal = self.build();
        if proposal.is_empty() {
            return Ok(());
        }
        Err(format!(
            "allocation does not settle: after {PASSES_MAX} committed passes (the last updated {last:?}) \
             the next pass still proposes {:#?}",
            proposal.updates()
        ))
    }
}
