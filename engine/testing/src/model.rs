//! The reference model of engine operation sequences, shared by the proptest
//! (`engine/tests/model.rs`, which generates `Op`s with weighted strategies) and the `engine_ops`
//! fuzz target (which decodes them from bytes with `arbitrary`): [`check_ops`].
//!
//! Ops are user writes, allocation passes that commit, commit a prefix or drop their proposal,
//! passes that race another writer, and restores. The model keeps the committed objects (`store`)
//! and applies only committed updates to it. After every step it checks, independently of the
//! engine's own index:
//! (a) the engine equals `Allocator::restore(config, store)`, in store, reversed or shuffled order
//!     (one order per step, in turn; all three at the end, less the one the last check compared
//!     when nothing has changed since: the same input gives the same engine);
//! (b) building and dropping a proposal leaves the engine unchanged;
//! (c) the committed store is consistent (no shared live address, addresses inside their
//!     subnets and off network/broadcast, one address per family per attachment, no subnet
//!     overlap, VXLAN ids unique and one per IPv4 subnet, ingress ports unique, dynamic ports in
//!     range);
//! (d) a NEW task whose service and networks are allocated and whose pools have room is PENDING
//!     after the next committed pass;
//! (e) subnets and VXLAN ids never change once committed; VIPs on kept networks and dynamic
//!     ports with kept (name, protocol, target) survive service updates;
//! (f) after a committed pass every node has LB attachments on the networks it needs, and
//!     repeated passes with no other write settle (the third proposes nothing).
//!
//! A step that leaves both the store and the engine as they were (an op whose target does not
//! exist, a dropped proposal, a restore that rebuilt an equal engine) skips the checks: they would
//! compare the same two things again. The `const` switches near the end re-enable inputs that hit
//! engine behaviour reported to the engine owner.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use arbitrary::{Arbitrary, Unstructured};
use ipnet::{IpNet, Ipv4Net};

use swarmalloc::{
    ADDRESS_CURSOR_OPTION, Allocator, ClusterConfig, DriverConfig, DriverScope, EndpointSpec, Finding, Holder, Ipam,
    IpamConfig, Network, NetworkAttachmentConfig, NetworkId, NetworkSpec, Node, NodeId, Object, ObjectId, ObjectRef,
    PortConfig, Protocol, PublishMode, Range, ResolutionMode, Service, ServiceId, ServiceSpec, Task, TaskId, TaskSpec,
    TaskState, TaskStatus, VXLAN_ID_LIST_OPTION, Version,
};

// ------------------------------------------------------------------------------------------------
// Configuration: small ranges so that exhaustion, wrapping and reuse happen in short sequences.

pub const PORT_DYNAMIC_MIN: u16 = 30000;
pub const PORT_DYNAMIC_MAX: u16 = 30003;

/// Four default /28 subnets (10.0.0.0/28 .. 10.0.0.48/28), four dynamic ports, six VXLAN ids.
pub fn config() -> ClusterConfig {
    ClusterConfig {
        default_address_pools: vec!["10.0.0.0/26".parse::<Ipv4Net>().expect("valid")],
        subnet_size: 28,
        dynamic_port_range: Range { min: PORT_DYNAMIC_MIN, max: PORT_DYNAMIC_MAX },
        vxlan_id_range: Range { min: 4096, max: 4101 },
        network_plugins: vec!["weave".into()],
        ipam_plugins: Vec::new(),
    }
}

/// The most ops [`check_ops_bytes`] decodes: enough to fill pools and ports, fail over and
/// reuse; longer inputs mostly repeat what shorter ones reach, more slowly.
pub const OPS_MAX: usize = 64;

// ------------------------------------------------------------------------------------------------
// Ops. Numbers that choose among a few options are taken modulo the number of options, so that
// any byte string decodes to a meaningful op.

/// Chooses one of the current objects of a kind (modulo how many there are).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub struct Pick(pub u8);

impl Pick {
    /// An index below `len` (which must not be 0).
    pub fn index(self, len: usize) -> usize {
        usize::from(self.0) % len
    }
}

#[derive(Clone, Debug, Arbitrary)]
pub enum NetKind {
    Default {
        attachable: bool,
    },
    /// One explicit IPv4 subnet from `SMALL_SUBNETS` (some overlap each other or a default one).
    Small(u8),
    /// An IPv4 /28 plus an IPv6 /125, one of 3 pairs (pairs with the same number overlap).
    DualStack(u8),
    /// One of `LOCAL_DRIVERS`.
    NodeLocal(u8),
    /// Two IPv4 subnets, a /30 (one address after the gateway) then a /29: picks in config order.
    TwoSubnets,
    /// An IPv6-only overlay network (it gets a VXLAN id all the same: one per IPAM config), one of 2.
    V6Only(u8),
    /// A default subnet with VXLAN id 4096, 4097 or 4098 pinned through the driver option (may
    /// clash with others).
    PinnedVni(u8),
    /// 192.168.3.0/28 with picks limited to the range 192.168.3.8/29 and the gateway .1 named.
    Ranged,
    /// A global-scope driver that is not overlay: addresses but no VXLAN ids.
    Remote,
    Ingress,
}

pub const SMALL_SUBNETS: [&str; 8] = [
    "192.168.0.0/29",
    "192.168.0.8/29",
    "192.168.0.0/28",
    "192.168.1.0/30",
    "192.168.1.4/31",
    "192.168.1.8/32",
    "10.0.0.16/28",
    "192.168.2.0/28",
];
pub const LOCAL_DRIVERS: [&str; 3] = ["bridge", "macvlan", "host"];
/// Fixed ingress ports: two plain ones and one inside the dynamic range.
pub const FIXED_PORTS: [u16; 3] = [8080, 8081, PORT_DYNAMIC_MIN + 2];
pub const HOST_PORTS: [u16; 2] = [8080, 9000];

#[derive(Clone, Debug, Arbitrary)]
pub enum Published {
    Dynamic,
    /// One of `FIXED_PORTS`.
    Fixed(u8),
    /// One of `HOST_PORTS`.
    Host(u8),
}

#[derive(Clone, Debug, Arbitrary)]
pub struct PortGen {
    /// One of `Protocol::ALL`.
    pub protocol: u8,
    /// Target port 80 or 81.
    pub target: u8,
    pub named: bool,
    pub published: Published,
}

/// A service spec; at most 3 networks and 3 ports are used.
#[derive(Clone, Debug, Arbitrary)]
pub struct ServiceShape {
    pub networks: Vec<Pick>,
    pub deprecated_field: bool,
    pub dnsrr: bool,
    pub ports: Vec<PortGen>,
}

#[derive(Clone, Debug, Arbitrary)]
pub enum ServiceEdit {
    AddNetwork(Pick),
    RemoveNetwork(Pick),
    ToggleMode,
    AddPort(PortGen),
    RemovePort(Pick),
    /// A spec change that touches neither networks, mode nor ports.
    Touch,
    Replace(ServiceShape),
}

#[derive(Clone, Copy, Debug, Arbitrary)]
pub enum Terminal {
    Complete,
    Shutdown,
    Failed,
    Rejected,
    Orphaned,
}

impl Terminal {
    pub fn state(self) -> TaskState {
        match self {
            Terminal::Complete => TaskState::Complete,
            Terminal::Shutdown => TaskState::Shutdown,
            Terminal::Failed => TaskState::Failed,
            Terminal::Rejected => TaskState::Rejected,
            Terminal::Orphaned => TaskState::Orphaned,
        }
    }
}

#[derive(Clone, Copy, Debug, Arbitrary)]
pub enum PassEnd {
    Commit,
    /// The first `k` updates land, `k` modulo the proposal's length plus one.
    Prefix(Pick),
    Drop,
}

/// User writes that can land between building a proposal and committing it.
#[derive(Clone, Debug, Arbitrary)]
pub enum RacingWrite {
    EndTask(Pick, Terminal),
    StopTask(Pick),
    DeleteTask(Pick),
    DeleteService(Pick),
    UpdateService(Pick, ServiceEdit),
    AssignTask(Pick, Pick),
    DeleteNode(Pick),
    DeleteNetwork(Pick),
}

impl RacingWrite {
    pub fn op(&self) -> Op {
        match self.clone() {
            RacingWrite::EndTask(t, s) => Op::EndTask(t, s),
            RacingWrite::StopTask(t) => Op::StopTask(t),
            RacingWrite::DeleteTask(t) => Op::DeleteTask(t),
            RacingWrite::DeleteService(s) => Op::DeleteService(s),
            RacingWrite::UpdateService(s, e) => Op::UpdateService(s, e),
            RacingWrite::AssignTask(t, n) => Op::AssignTask(t, n),
            RacingWrite::DeleteNode(n) => Op::DeleteNode(n),
            RacingWrite::DeleteNetwork(n) => Op::DeleteNetwork(n),
        }
    }
}

/// One step of an operation sequence.
#[derive(Clone, Debug, Arbitrary)]
pub enum Op {
    CreateNetwork(NetKind),
    DeleteNetwork(Pick),
    CreateService(ServiceShape),
    UpdateService(Pick, ServiceEdit),
    DeleteService(Pick),
    CreateTask(Pick),
    /// A standalone container joining an attachable network, optionally asking for the n-th
    /// host address of the network's first IPv4 subnet.
    CreateAttachTask {
        network: Pick,
        node: Pick,
        requested: Option<u8>,
    },
    CreateNode,
    AssignTask(Pick, Pick),
    RunTask(Pick),
    EndTask(Pick, Terminal),
    /// The orchestrator asks a task to stop (desired SHUTDOWN); its status does not change yet.
    StopTask(Pick),
    DeleteTask(Pick),
    DeleteNode(Pick),
    Pass(PassEnd),
    Restore(u64),
    /// Committed passes with no other write in between until a pass proposes nothing.
    Settle,
    /// A pass whose proposal lands after another writer's change: the allocator-owned fields
    /// are grafted onto the latest store copy, as SwarmKit's commit helpers do on a sequence
    /// conflict, and the engine observes what landed.
    PassRacing(RacingWrite),
}

/// Decodes up to [`OPS_MAX`] ops from fuzz input bytes: op after op until the bytes run out.
pub fn ops_from_bytes(data: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < OPS_MAX {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

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

// ------------------------------------------------------------------------------------------------
// The model

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
            Op::Restore(seed) => {
                // A new leader's engine: restore in an order of the op's choosing. It must equal
                // the engine it replaces, which the last check found equal to restore(store).
                let mut objects: Vec<&Object> = self.store.values().collect();
                shuffle(&mut objects, *seed | 1);
                let engine = self.engine.rebuilt(objects.into_iter().map(Object::as_ref));
                if let Some(diff) = self.engine.diff(&engine) {
                    return Err(format!("engine != restore(store) (shuffled by the op's seed):\n{diff}"));
                }
                self.engine = engine;
            }
        }
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
                spec.driver = Some(DriverConfig { name: name.into(), options: BTreeMap::new() });
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
                let vni = 4096 + u32::from(vni % 3);
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
                        gateway: Some("192.168.3.1".parse().expect("valid")),
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

    /// The control API's rule (allocator-spec.md 2.10): refused while a service lists the
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

    /// (d) and (f) after a committed pass; `before` is the store before it (None: the pass
    /// landed nothing, so it is the store). An address is taken when it was unavailable before
    /// the pass or is after it; the holder before the pass is the one named.
    fn check_committed_pass(&self, before: Option<View<'_>>) -> Check {
        let networks = Networks::of(View::of(&self.store));
        let mut held = unavailable_addresses(View::of(&self.store), &networks);
        // The networks before the pass: those of the store when it landed nothing.
        let before_networks = before.map(Networks::of);
        if let (Some(before), Some(before_networks)) = (before, &before_networks) {
            held.extend(unavailable_addresses(before, before_networks));
        }
        if let (Some(before), Some(before_networks)) = (before, &before_networks) {
            check_address_cursors(before, before_networks, &self.store, &networks)?;
        }
        let before = before.unwrap_or(View::of(&self.store));
        let before_networks = before_networks.as_ref().unwrap_or(&networks);
        self.check_liveness(before, &held, &networks)?;
        self.check_node_attachments(before, before_networks, &held, &networks)
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

    /// After a committed pass every node has load-balancer attachments on exactly the networks
    /// it needs (allocator-spec.md 2.8): the ingress, plus every allocated network whose driver
    /// is literally `overlay` that a live task on the node (as committed before the pass) is
    /// attached to. A needed one may be missing only when its pools have no free address.
    /// `before_networks` are those of `before`, `networks` those of the store.
    fn check_node_attachments(
        &self,
        before: View<'_>,
        before_networks: &Networks<'_>,
        held: &Held<'_>,
        networks: &Networks<'_>,
    ) -> Check {
        let allocated_overlay =
            |n: Option<&Network>| n.is_some_and(|n| n.is_allocated() && n.scope() == DriverScope::Overlay);
        // At most one ingress network is ever allocated; that one is the ingress.
        let ingress: Vec<&NetworkId> =
            networks.iter().filter(|n| n.is_ingress() && allocated_overlay(Some(n))).map(|n| &n.id).collect();
        // The networks the live tasks on each node (as committed before the pass) are attached
        // to, as sorted (node, network) pairs without repeats.
        let mut by_node: Vec<(&NodeId, &NetworkId)> = Vec::new();
        for object in before.values() {
            let Object::Task(task) = object else { continue };
            let Some(node) = task.node_id.as_ref().filter(|_| task.status.state.is_live()) else { continue };
            for attachment in &task.networks {
                if allocated_overlay(before_networks.get(&attachment.network_id)) {
                    by_node.push((node, &attachment.network_id));
                }
            }
        }
        by_node.sort_unstable();
        by_node.dedup();
        // Sets as sorted lists without repeats, reused from node to node.
        let (mut wanted, mut has): (Vec<&NetworkId>, Vec<&NetworkId>) = (Vec::new(), Vec::new());
        for node in self.nodes() {
            let first = by_node.partition_point(|(n, _)| *n < &node.id);
            wanted.clear();
            wanted.extend(by_node[first..].iter().take_while(|(n, _)| *n == &node.id).map(|(_, id)| *id));
            wanted.extend(ingress.iter().copied());
            wanted.sort_unstable();
            wanted.dedup();
            has.clear();
            has.extend(node.attachments.iter().map(|a| &a.network_id));
            has.sort_unstable();
            has.dedup();
            let room = |id: &NetworkId| {
                networks.get(id).is_some_and(|n| {
                    [false, true]
                        .iter()
                        .all(|v6| !has_family(n, *v6) || has_room(n, *v6, |ip| !held.contains_key(&(ip, id))))
                })
            };
            let missing: Vec<&NetworkId> = wanted.iter().filter(|id| has.binary_search(id).is_err()).copied().collect();
            let extra: Vec<&NetworkId> = has.iter().filter(|id| wanted.binary_search(id).is_err()).copied().collect();
            // Per network, as SwarmKit: a network with no room is skipped (the node keeps what it
            // had there), every other needed one is served, and stale ones are dropped.
            if let Some(id) = missing.iter().find(|id| room(id)) {
                return Err(format!("node {} has no LB attachment on {id} although it needs one", node.id));
            }
            if !extra.is_empty() {
                return Err(format!("node {} keeps LB attachments on {extra:?}, which it does not need", node.id));
            }
        }
        Ok(())
    }

    // --------------------------------------------------------------------------------------------
    // Checks after every step

    fn check(&mut self) -> Check {
        if self.store_changed || self.engine_changed {
            self.checks += 1;
            self.last_compared = self.check_restore_equal(Orders::One(self.checks))?;
        }
        if self.store_changed {
            check_store(&self.config, &self.store)?;
            self.check_sticky_networks()?;
        }
        self.store_changed = false;
        self.engine_changed = false;
        Ok(())
    }

    /// (a) The engine equals a fresh restore of the store, whatever the restore order, and
    /// restore finds no conflict in it. (Restore's queue is left out: the engine it builds is the
    /// same, and the `restore` property checks the queue.)
    /// Returns the order compared when it was one.
    fn check_restore_equal(&self, orders: Orders) -> Result<Option<Order>, String> {
        let seed = self.step.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let (chosen, one): ([Option<Order>; 3], Option<Order>) = match orders {
            Orders::One(n) => {
                let order = match n % 3 {
                    0 => Order::Store,
                    1 => Order::Reversed,
                    _ => Order::Shuffled(seed),
                };
                ([Some(order), None, None], Some(order))
            }
            Orders::All { compared } => {
                let all = [Order::Store, Order::Reversed, Order::Shuffled(seed)];
                (all.map(|o| Some(o).filter(|o| Some(*o) != compared)), None)
            }
        };
        // The store's order and its reverse are read from the store in place; only a shuffle
        // needs a list (of references).
        let shuffled: Vec<&Object> = match chosen.iter().flatten().find(|o| matches!(o, Order::Shuffled(_))) {
            Some(Order::Shuffled(seed)) => {
                let mut objects: Vec<&Object> = self.store.values().collect();
                shuffle(&mut objects, *seed);
                objects
            }
            _ => Vec::new(),
        };
        let sequence = |order: Order| match order {
            Order::Store => Sequence::Store(self.store.values()),
            Order::Reversed => Sequence::Reversed(self.store.values().rev()),
            Order::Shuffled(_) => Sequence::Shuffled(shuffled.iter()),
        };
        let mut done: [Option<Order>; 3] = [None; 3];
        for (i, order) in chosen.into_iter().enumerate() {
            let Some(order) = order else { continue };
            // Restore is a function of its input sequence: an order already checked (a store of
            // one object reversed, a shuffle that moved nothing) would give the same engine.
            let same = |other: &Order| sequence(*other).zip(sequence(order)).all(|(a, b)| std::ptr::eq(a, b));
            if done.iter().flatten().any(same) {
                continue;
            }
            let restored = self.engine.rebuilt(sequence(order).map(Object::as_ref));
            if let Some(diff) = self.engine.diff(&restored) {
                return Err(format!("engine != restore(store) ({} order):\n{diff}", order.name()));
            }
            done[i] = Some(order);
        }
        // Equal engines have equal findings.
        for finding in &self.engine.findings() {
            // A node LB attachment, a VIP, or a stopping task's attachment on a network
            // deleted since it was allocated: the control API allows the delete once no spec
            // and no task desired running lists the network.
            let stale = matches!(
                finding,
                Finding::UnallocatedNetwork {
                    network,
                    holder: Holder::NodeLb(_) | Holder::Vip(_) | Holder::Task(_)
                } if self.network(network).is_none()
            );
            // A second ingress network is possible (two creates racing the control API's
            // check); the allocator ignores it and restore says so.
            let extra_ingress = matches!(finding, Finding::ExtraIngress { .. });
            if !stale && !extra_ingress {
                return Err(format!("restore of the committed store reports a conflict: {finding}"));
            }
        }
        Ok(one)
    }

    /// (e) A network's stored subnets, gateways and VXLAN ids never change once committed.
    fn check_sticky_networks(&mut self) -> Check {
        // Compared in place; only a network's first allocation is copied.
        for object in self.store.values() {
            let Object::Network(n) = object else { continue };
            let (Some(ipam), Some(driver)) = (&n.ipam, &n.driver_state) else { continue };
            let id = &n.id;
            match self.sticky_networks.get(id) {
                Some((first_ipam, first_driver)) => {
                    // The address cursor moves on every pass that hands out addresses.
                    fn allocation(ipam: &Ipam) -> (&String, &Vec<IpamConfig>) {
                        (&ipam.driver, &ipam.configs)
                    }
                    if allocation(first_ipam) != allocation(ipam)
                        || first_driver.options.get(VXLAN_ID_LIST_OPTION) != driver.options.get(VXLAN_ID_LIST_OPTION)
                    {
                        return Err(format!(
                            "network {id} allocation changed from {first_ipam:?} {first_driver:?} to {ipam:?} {driver:?}"
                        ));
                    }
                }
                None => {
                    self.sticky_networks.insert(id.clone(), (ipam.clone(), driver.clone()));
                }
            }
        }
        Ok(())
    }

    /// (d) Every NEW task whose dependencies are allocated and whose pools have room was moved
    /// to PENDING by the pass that just committed. `before` is the store before the pass.
    fn check_liveness(&self, before: View<'_>, held: &Held<'_>, networks: &Networks<'_>) -> Check {
        let held = |network, ip: IpAddr| held.get(&(ip, network));
        for task in self.tasks() {
            if task.status.state != TaskState::New || task.desired_state > TaskState::Running {
                continue;
            }
            let Some(Object::Task(task_before)) = before.get(&ObjectId::Task(task.id.clone())) else { continue };
            if task_before.status.state != TaskState::New {
                continue;
            }
            let mut configs: Vec<NetworkAttachmentConfig> = Vec::new();
            if let Some(service_id) = &task.service_id {
                let Some(service) = self.service(service_id) else { continue };
                if !service_allocated(&self.store, service) {
                    continue;
                }
                if service.spec.needs_ingress() {
                    let ingress = ingress_networks(&self.store);
                    let [ingress] = ingress.as_slice() else { continue };
                    configs.push(NetworkAttachmentConfig::to(ingress.as_str()));
                }
                // The task's own networks, else only the service's deprecated field (SwarmKit).
                if task.spec.networks.is_empty() {
                    configs.extend(service.spec.networks.iter().cloned());
                }
            }
            configs.extend(task.spec.networks.iter().cloned());
            let mut satisfiable = true;
            for config in &configs {
                // A network missing from the store makes the task wait.
                let Some(network) = networks.get(&config.target) else {
                    satisfiable = false;
                    break;
                };
                if network.scope() == DriverScope::NodeLocal {
                    continue;
                }
                if !network.is_allocated() {
                    satisfiable = false;
                    break;
                }
                for v6 in [false, true] {
                    if !has_family(network, v6) {
                        continue;
                    }
                    let ok = match config.addresses.iter().find(|ip| ip.is_ipv6() == v6) {
                        Some(ip) => {
                            subnets(network).any(|s| usable(&s, *ip))
                                && held(&network.id, *ip).is_none_or(|h| *h == Claimant::Task(&task.id))
                        }
                        None => has_room(network, v6, |ip| held(&network.id, ip).is_none()),
                    };
                    if !ok {
                        satisfiable = false;
                    }
                }
            }
            if satisfiable {
                return Err(format!(
                    "task {} is still NEW after a committed pass although its service and networks are \
                     allocated and its pools have room (targets {:?})",
                    task.id,
                    configs.iter().map(|c| c.target.to_string()).collect::<Vec<_>>()
                ));
            }
        }
        Ok(())
    }
}

fn new_task(
    id: TaskId,
    service_id: Option<ServiceId>,
    node_id: Option<NodeId>,
    networks: Vec<NetworkAttachmentConfig>,
) -> Task {
    Task {
        id,
        version: Version(0),
        service_id,
        node_id,
        slot: 1,
        spec: TaskSpec { networks },
        status: TaskStatus { state: TaskState::New, message: "created".into() },
        desired_state: TaskState::Running,
        networks: Vec::new(),
        endpoint: None,
    }
}

/// Set to true once the engine pairs old and new ingress ports one to one when it keeps dynamic
/// ports sticky. Until then the generator avoids two ingress ports with the same (name, protocol,
/// target) in one spec, because (see the report) on every pass such a dynamic port either takes
/// the other port's number (two identical dynamic ports end up publishing the same port) or
/// moves to a fresh port (a fixed port with the same key makes the dynamic one never sticky).
const SAME_KEY_INGRESS_PORTS: bool = true;

fn push_port(ports: &mut Vec<PortConfig>, port: PortConfig) {
    let ingress = |p: &PortConfig| p.publish_mode == PublishMode::Ingress;
    if !SAME_KEY_INGRESS_PORTS && ingress(&port) && ports.iter().any(|p| ingress(p) && same_port(p, &port)) {
        return;
    }
    ports.push(port);
}

fn port_config(port: &PortGen) -> PortConfig {
    let (published_port, publish_mode) = match port.published {
        Published::Dynamic => (0, PublishMode::Ingress),
        Published::Fixed(p) => (FIXED_PORTS[usize::from(p) % FIXED_PORTS.len()], PublishMode::Ingress),
        Published::Host(p) => (HOST_PORTS[usize::from(p) % HOST_PORTS.len()], PublishMode::Host),
    };
    let target_port = 80 + u16::from(port.target % 2);
    PortConfig {
        name: if port.named { format!("p{target_port}") } else { String::new() },
        protocol: Protocol::ALL[usize::from(port.protocol) % Protocol::ALL.len()],
        target_port,
        published_port,
        publish_mode,
    }
}

// ------------------------------------------------------------------------------------------------
// The reference model's view of committed objects: written from allocator-spec.md, not from the
// engine's index.

/// A network's subnets, in config order.
fn subnets(network: &Network) -> impl Iterator<Item = IpNet> + '_ {
    network.ipam.iter().flat_map(|i| &i.configs).filter_map(|c| c.subnet)
}

/// A network's subnets as a list (for messages).
fn subnets_of(network: &Network) -> Vec<IpNet> {
    subnets(network).collect()
}

fn has_family(network: &Network, v6: bool) -> bool {
    subnets(network).any(|s| matches!(s, IpNet::V6(_)) == v6)
}

/// The networks of a store (or of a view of one) in id order, found by id without building an
/// `ObjectId` (a clone of the id) for a store lookup.
struct Networks<'a>(Vec<&'a Network>);

impl<'a> Networks<'a> {
    fn of(store: View<'a>) -> Networks<'a> {
        Networks(
            store
                .values()
                .filter_map(|o| match o {
                    Object::Network(n) => Some(n),
                    _ => None,
                })
                .collect(),
        )
    }

    /// What `store.get(&ObjectId::Network(id))` finds: the store lists networks in id order.
    fn get(&self, id: &NetworkId) -> Option<&'a Network> {
        self.0.binary_search_by(|n| n.id.cmp(id)).ok().map(|i| self.0[i])
    }

    fn iter(&self) -> impl Iterator<Item = &'a Network> + '_ {
        self.0.iter().copied()
    }
}

/// A [`Holder`] borrowed from the store object that names it (no id cloned); compares and
/// prints as the `Holder` it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claimant<'a> {
    Gateway(&'a NetworkId),
    Vip(&'a ServiceId),
    NodeLb(&'a NodeId),
    Task(&'a TaskId),
    Retired(&'a TaskId),
}

impl Claimant<'_> {
    fn holder(self) -> Holder {
        match self {
            Claimant::Gateway(id) => Holder::Gateway(id.clone()),
            Claimant::Vip(id) => Holder::Vip(id.clone()),
            Claimant::NodeLb(id) => Holder::NodeLb(id.clone()),
            Claimant::Task(id) => Holder::Task(id.clone()),
            Claimant::Retired(id) => Holder::Retired(id.clone()),
        }
    }
}

impl std::fmt::Display for Claimant<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.holder(), f)
    }
}

/// Whether a new pick of one family can succeed: some usable address inside a config's range
/// (or subnet when it has none) for which `free` holds.
fn has_room(network: &Network, v6: bool, free: impl Fn(IpAddr) -> bool) -> bool {
    network.ipam.iter().flat_map(|i| &i.configs).any(|config| {
        let Some(subnet) = config.subnet.filter(|s| matches!(s, IpNet::V6(_)) == v6) else { return false };
        hosts(&subnet).any(|ip| config.range.is_none_or(|r| r.contains(&ip)) && free(ip))
    })
}

fn ingress_networks(store: &Store) -> Vec<NetworkId> {
    store
        .values()
        .filter_map(|o| match o {
            Object::Network(n) if n.is_ingress() => Some(n.id.clone()),
            _ => None,
        })
        .collect()
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(value: u128, v6: bool) -> IpAddr {
    if v6 { IpAddr::V6(value.into()) } else { IpAddr::V4((value as u32).into()) }
}

/// Whether `ip` may be handed out in `subnet`: IPv4 reserves the network and broadcast addresses
/// above /31; IPv6 reserves the subnet-router anycast (network) address above /127.
fn usable(subnet: &IpNet, ip: IpAddr) -> bool {
    if !subnet.contains(&ip) {
        return false;
    }
    let (network, broadcast) = (subnet.network(), subnet.broadcast());
    match subnet {
        IpNet::V4(n) if n.prefix_len() <= 30 => ip != network && ip != broadcast,
        IpNet::V6(n) if n.prefix_len() <= 126 => ip != network,
        _ => true,
    }
}

/// Every usable address of a (small) subnet.
fn hosts(subnet: &IpNet) -> impl Iterator<Item = IpAddr> + '_ {
    let v6 = matches!(subnet, IpNet::V6(_));
    (to_u128(subnet.network())..=to_u128(subnet.broadcast()))
        .map(move |v| from_u128(v, v6))
        .filter(move |ip| usable(subnet, *ip))
}

/// An address a live holder has on a network, borrowed from the store.
struct Live<'a> {
    network: &'a NetworkId,
    addr: IpNet,
    holder: Claimant<'a>,
}

/// Every address a live holder has in the store, by (network, address), naming the holder.
/// Live holders: gateways, VIPs, node LB attachments, attachments of tasks with state <= RUNNING.
/// Networks missing from the store or node-local are skipped (nothing is allocated there).
/// `networks` are the store's.
fn live_holders<'a>(store: View<'a>, networks: &Networks<'a>) -> Vec<Live<'a>> {
    let allocated =
        |id: &NetworkId| networks.get(id).is_some_and(|n| n.is_allocated() && n.scope() != DriverScope::NodeLocal);
    let mut out = Vec::new();
    for object in store.values() {
        match object {
            Object::Network(n) => {
                for config in n.ipam.iter().flat_map(|i| &i.configs) {
                    if let (Some(gateway), Some(subnet)) = (config.gateway, config.subnet) {
                        let with_prefix =
                            IpNet::new(gateway, subnet.prefix_len()).expect("a gateway of the subnet's family");
                        out.push(Live { network: &n.id, addr: with_prefix, holder: Claimant::Gateway(&n.id) });
                    }
                }
            }
            Object::Service(s) => {
                for vip in s.endpoint.iter().flat_map(|e| &e.virtual_ips) {
                    if allocated(&vip.network_id) {
                        out.push(Live { network: &vip.network_id, addr: vip.addr, holder: Claimant::Vip(&s.id) });
                    }
                }
            }
            Object::Task(t) if t.status.state.is_live() => {
                for attachment in t.networks.iter().filter(|a| allocated(&a.network_id)) {
                    for addr in &attachment.addresses {
                        out.push(Live { network: &attachment.network_id, addr: *addr, holder: Claimant::Task(&t.id) });
                    }
                }
            }
            Object::Task(_) => {}
            Object::Node(n) => {
                for attachment in n.attachments.iter().filter(|a| allocated(&a.network_id)) {
                    for addr in &attachment.addresses {
                        out.push(Live {
                            network: &attachment.network_id,
                            addr: *addr,
                            holder: Claimant::NodeLb(&n.id),
                        });
                    }
                }
            }
        }
    }
    out
}

/// Addresses by (network, address), naming a holder. Keyed address first: a map is the same
/// map in any key order, and addresses tell most keys apart without comparing id strings.
type Held<'a> = BTreeMap<(IpAddr, &'a NetworkId), Claimant<'a>>;

/// Addresses an allocation may not take: those of live holders, and those of ORPHANED tasks
/// (their containers may still run). `networks` are the store's.
fn unavailable_addresses<'a>(store: View<'a>, networks: &Networks<'a>) -> Held<'a> {
    let mut held: Held<'a> =
        live_holders(store, networks).into_iter().map(|l| ((l.addr.addr(), l.network), l.holder)).collect();
    for object in store.values() {
        let Object::Task(t) = object else { continue };
        if t.status.state != TaskState::Orphaned {
            continue;
        }
        for attachment in &t.networks {
            for addr in &attachment.addresses {
                held.entry((addr.addr(), &attachment.network_id)).or_insert(Claimant::Retired(&t.id));
            }
        }
    }
    held
}

/// (c) Invariants of the committed store.
fn check_store(config: &ClusterConfig, store: &Store) -> Check {
    let networks = Networks::of(View::of(store));
    // No address held by two live holders on one network; every address usable in its subnets,
    // stored with the subnet's prefix length.
    // Keyed address first, as `Held` is: the insert that finds a repeat is the same.
    let mut seen: BTreeMap<(IpAddr, &NetworkId), Claimant> = BTreeMap::new();
    for Live { network: network_id, addr, holder } in live_holders(View::of(store), &networks) {
        let Some(network) = networks.get(network_id) else { continue };
        match subnets(network).find(|s| s.contains(&addr.addr())) {
            Some(subnet) if usable(&subnet, addr.addr()) && subnet.prefix_len() == addr.prefix_len() => {}
            Some(subnet) => {
                return Err(format!(
                    "{holder} has {addr} on network {network_id}: reserved address or wrong prefix in {subnet}"
                ));
            }
            None => {
                let subnets = subnets_of(network);
                return Err(format!("{holder} has {addr} outside every subnet {subnets:?} of network {network_id}"));
            }
        }
        if let Some(other) = seen.insert((addr.addr(), network_id), holder) {
            return Err(format!("address {addr} on network {network_id} held by both {other} and {holder}"));
        }
    }

    // One address per address family per attachment, and one VIP per network per service.
    for object in store.values() {
        let (attachments, who) = match object {
            Object::Task(t) if t.status.state.is_live() => (&t.networks, Claimant::Task(&t.id)),
            Object::Node(n) => (&n.attachments, Claimant::NodeLb(&n.id)),
            Object::Service(s) => {
                let vips = s.endpoint.as_ref().map(|e| e.virtual_ips.as_slice()).unwrap_or_default();
                for (i, vip) in vips.iter().enumerate() {
                    if vips[..i].iter().any(|v| v.network_id == vip.network_id) {
                        return Err(format!("service {} has two VIPs on network {}", s.id, vip.network_id));
                    }
                }
                continue;
            }
            _ => continue,
        };
        for attachment in attachments {
            let Some(network) = networks.get(&attachment.network_id) else {
                continue;
            };
            if !network.is_allocated() || network.scope() == DriverScope::NodeLocal {
                continue;
            }
            for v6 in [false, true] {
                let wanted = usize::from(has_family(network, v6));
                let got = attachment.addresses.iter().filter(|a| matches!(a, IpNet::V6(_)) == v6).count();
                if got != wanted {
                    let subnets = subnets_of(network);
                    return Err(format!(
                        "{who} has {got} IPv{} addresses on network {} (subnets {subnets:?}): {:?}",
                        if v6 { 6 } else { 4 },
                        network.id,
                        attachment.addresses
                    ));
                }
            }
        }
    }

    // Subnets never overlap; VXLAN ids unique, one per IPv4 subnet of overlay networks.
    let mut all_subnets: Vec<(IpNet, &NetworkId)> = Vec::new();
    let mut vnis: BTreeMap<u32, &NetworkId> = BTreeMap::new();
    for network in networks.iter() {
        if !network.is_allocated() {
            continue;
        }
        for subnet in subnets(network) {
            if let Some((other, owner)) = all_subnets.iter().find(|(o, _)| o.contains(&subnet) || subnet.contains(o)) {
                return Err(format!("subnet {subnet} of network {} overlaps {other} of network {owner}", network.id));
            }
            all_subnets.push((subnet, &network.id));
        }
        let list = network.driver_state.as_ref().and_then(|d| d.options.get(VXLAN_ID_LIST_OPTION));
        let ids: Vec<u32> = match list.map(|l| l.split(',').map(|v| v.trim().parse()).collect()) {
            None => Vec::new(),
            Some(Ok(ids)) => ids,
            Some(Err(e)) => return Err(format!("network {} has a malformed VXLAN id list {list:?}: {e}", network.id)),
        };
        if network.scope() == DriverScope::Overlay {
            // One per IPAM config, whatever its address family.
            let configs = subnets(network).count();
            if ids.len() != configs {
                return Err(format!("overlay network {} has VXLAN ids {ids:?} for {configs} IPAM configs", network.id));
            }
        } else if !ids.is_empty() {
            return Err(format!("{:?} network {} has VXLAN ids {ids:?}", network.scope(), network.id));
        }
        for id in ids {
            if let Some(owner) = vnis.insert(id, &network.id) {
                return Err(format!("VXLAN id {id} held by networks {owner} and {}", network.id));
            }
        }
    }

    // Ingress published ports unique per protocol (across and within services); dynamic ports in
    // range; the endpoint reflects the spec it was allocated for.
    let mut ports: BTreeMap<(Protocol, u16), &ServiceId> = BTreeMap::new();
    for object in store.values() {
        let Object::Service(service) = object else { continue };
        let Some(endpoint) = &service.endpoint else { continue };
        for port in endpoint.ports.iter().filter(|p| p.publish_mode == PublishMode::Ingress) {
            if port.published_port == 0 {
                return Err(format!("service {} has an ingress port without a published port: {port:?}", service.id));
            }
            if let Some(other) = ports.insert((port.protocol, port.published_port), &service.id) {
                return Err(format!(
                    "ingress port {}/{} published by service {other} and by service {}",
                    port.protocol, port.published_port, service.id
                ));
            }
            let dynamic = endpoint
                .spec
                .ports
                .iter()
                .filter(|s| same_port(s, port) && s.publish_mode == PublishMode::Ingress)
                .all(|s| s.published_port == 0);
            if dynamic && !config.dynamic_port_range.contains(port.published_port) {
                return Err(format!(
                    "service {} dynamic port {}/{} outside {}..={}",
                    service.id,
                    port.protocol,
                    port.published_port,
                    config.dynamic_port_range.min,
                    config.dynamic_port_range.max
                ));
            }
        }
        if endpoint.ports.len() != endpoint.spec.ports.len() {
            return Err(format!(
                "service {} endpoint has ports {:?} for spec {:?}",
                service.id, endpoint.ports, endpoint.spec
            ));
        }
    }
    Ok(())
}

fn same_port(a: &PortConfig, b: &PortConfig) -> bool {
    a.name == b.name && a.protocol == b.protocol && a.target_port == b.target_port
}

/// The networks a service needs a VIP on (allocator-spec.md 2.6): the ingress when it publishes
/// an ingress port, then its non-node-local networks. None when a listed network is missing.
fn wanted_vip_networks(store: &Store, service: &Service) -> Option<BTreeSet<NetworkId>> {
    let mut wanted = BTreeSet::new();
    if service.spec.resolution_mode() == ResolutionMode::Dnsrr {
        return Some(wanted);
    }
    if service.spec.needs_ingress() {
        let ingress = ingress_networks(store);
        let [ingress] = ingress.as_slice() else { return None };
        wanted.insert(ingress.clone());
    }
    for config in service.spec.attachment_configs() {
        let Some(Object::Network(network)) = store.get(&ObjectId::Network(config.target.clone())) else {
            return None;
        };
        if network.scope() != DriverScope::NodeLocal {
            wanted.insert(network.id.clone());
        }
    }
    Some(wanted)
}

/// Whether the committed service is allocated for its current spec. A service that publishes no
/// port and has no VIP to get (DNSRR, or no network) needs no endpoint: SwarmKit writes none.
fn service_allocated(store: &Store, service: &Service) -> bool {
    let holds_nothing = |e: &swarmalloc::Endpoint| e.virtual_ips.is_empty() && e.ports.is_empty();
    let vips = service.spec.resolution_mode() == ResolutionMode::Vip && !service.spec.attachment_configs().is_empty();
    let needs_endpoint = vips || !service.spec.endpoint.as_ref().is_none_or(|e| e.ports.is_empty());
    if !needs_endpoint && service.endpoint.as_ref().is_none_or(holds_nothing) {
        return true;
    }
    let Some(endpoint) = &service.endpoint else { return false };
    let spec = service.spec.endpoint.clone().unwrap_or_default();
    let vips: BTreeSet<NetworkId> = endpoint.virtual_ips.iter().map(|v| v.network_id.clone()).collect();
    endpoint.spec == spec
        && endpoint.ports.len() == spec.ports.len()
        && wanted_vip_networks(store, service).is_some_and(|wanted| wanted == vips)
}

/// (e) What an allocation update may change: a service keeps the VIPs of networks it still
/// wants and the published numbers of dynamic ports it still asks for.
fn check_allocation_result(before: View<'_>, updated: &Object) -> Check {
    let Object::Service(new) = updated else { return Ok(()) };
    let Some(Object::Service(old)) = before.get(&updated.id()) else { return Ok(()) };
    let (Some(old_endpoint), Some(new_endpoint)) = (&old.endpoint, &new.endpoint) else { return Ok(()) };
    for vip in &new_endpoint.virtual_ips {
        if let Some(old_vip) = old_endpoint.virtual_ips.iter().find(|v| v.network_id == vip.network_id)
            && old_vip.addr != vip.addr
        {
            return Err(format!(
                "service {} VIP on kept network {} changed from {} to {}",
                new.id, vip.network_id, old_vip.addr, vip.addr
            ));
        }
    }
    let dynamic_keys = |spec: &EndpointSpec| -> Vec<PortConfig> {
        spec.ports.iter().filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port == 0).cloned().collect()
    };
    let old_dynamic = dynamic_keys(&old_endpoint.spec);
    let new_dynamic = dynamic_keys(&new_endpoint.spec);
    for port in &new_dynamic {
        let count = |list: &[PortConfig]| list.iter().filter(|p| same_port(p, port)).count();
        if count(&old_dynamic) != 1 || count(&new_dynamic) != 1 {
            continue;
        }
        // The published number of the dynamic port: the endpoint port with the same key that is
        // not one of the spec's fixed ports.
        let published = |endpoint: &swarmalloc::Endpoint| {
            let fixed = |p: &PortConfig| {
                endpoint.spec.ports.iter().any(|f| {
                    f.publish_mode == PublishMode::Ingress
                        && f.protocol == p.protocol
                        && f.published_port == p.published_port
                })
            };
            let found: Vec<u16> = endpoint
                .ports
                .iter()
                .filter(|p| same_port(p, port) && p.publish_mode == PublishMode::Ingress && !fixed(p))
                .map(|p| p.published_port)
                .collect();
            if let [one] = found.as_slice() { Some(*one) } else { None }
        };
        let (Some(was), Some(now)) = (published(old_endpoint), published(new_endpoint)) else {
            continue;
        };
        let taken_by_fixed =
            new_endpoint.spec.ports.iter().any(|p| p.protocol == port.protocol && p.published_port == was);
        if was != now && !taken_by_fixed {
            return Err(format!(
                "service {} dynamic port {:?} changed from {was} to {now} across an update that kept it",
                new.id, port
            ));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// (g) The reuse delay: address cursors

/// A pool's pick range as numbers: the config's range (or its subnet) without the reserved
/// addresses.
fn pick_range(config: &IpamConfig) -> Option<(u128, u128)> {
    let subnet = config.subnet?;
    let area = config.range.unwrap_or(subnet);
    let hosts: Vec<u128> = hosts(&subnet).filter(|ip| area.contains(ip)).map(to_u128).collect();
    Some((*hosts.first()?, *hosts.last()?))
}

/// The cursors a network stores ([`ADDRESS_CURSOR_OPTION`]), one per IPAM config.
fn stored_cursors(network: &Network) -> Vec<Option<u128>> {
    let Some(ipam) = &network.ipam else { return Vec::new() };
    let list = ipam.options.get(ADDRESS_CURSOR_OPTION).map(String::as_str).unwrap_or("");
    let mut items = list.split(',');
    ipam.configs.iter().map(|_| items.next().and_then(|i| i.parse::<IpAddr>().ok()).map(to_u128)).collect()
}

/// The addresses one object has on `network`: a network's gateways, a service's VIPs, a task's
/// or node's attachment addresses.
fn addresses_on(object: &Object, network: &NetworkId) -> Vec<IpAddr> {
    let attachments = |list: &[swarmalloc::NetworkAttachment]| -> Vec<IpAddr> {
        list.iter().filter(|a| &a.network_id == network).flat_map(|a| &a.addresses).map(IpNet::addr).collect()
    };
    match object {
        Object::Network(n) if &n.id == network => {
            n.ipam.iter().flat_map(|i| &i.configs).filter_map(|c| c.gateway).collect()
        }
        Object::Network(_) => Vec::new(),
        Object::Service(s) => s
            .endpoint
            .iter()
            .flat_map(|e| &e.virtual_ips)
            .filter(|v| &v.network_id == network)
            .map(|v| v.addr.addr())
            .collect(),
        Object::Task(t) => attachments(&t.networks),
        Object::Node(n) => attachments(&n.attachments),
    }
}

/// Every address any object of `store` references on `network` (gateways, VIPs, node LB
/// attachments, tasks in every state).
fn referenced_on(store: View<'_>, network: &NetworkId) -> BTreeSet<u128> {
    store.values().flat_map(|o| addresses_on(o, network)).map(to_u128).collect()
}

/// The addresses a committed pass handed out on `network`: new to the object that has them
/// now, and not one a task asked for by address.
fn picks_on(before: View<'_>, after: &Store, network: &NetworkId) -> BTreeSet<u128> {
    let mut out = BTreeSet::new();
    for object in after.values().filter(|o| !matches!(o, Object::Network(_))) {
        let had = before.get(&object.id()).map(|old| addresses_on(old, network)).unwrap_or_default();
        let requested: Vec<IpAddr> = match object {
            Object::Task(t) => {
                t.spec.networks.iter().filter(|c| &c.target == network).flat_map(|c| c.addresses.clone()).collect()
            }
            _ => Vec::new(),
        };
        let new = addresses_on(object, network).into_iter().filter(|a| !had.contains(a) && !requested.contains(a));
        out.extend(new.map(to_u128));
    }
    out
}

/// (g) After a committed pass, in every pool: the addresses handed out that were free (nobody
/// referenced them) are the first free ones after the pool's cursor as it was before the pass
/// (the stored one, or, where none is stored, the highest address referenced in the pick range),
/// wrapping, so no address free before and after the pass is skipped on the way to them (a
/// just-freed address is not handed out again while others lie ahead of it). A retired task's
/// address is handed out only once no free one is left, so those come last. The stored cursor
/// is now the last address handed out: the furthest free one, or one of the retired ones.
fn check_address_cursors(
    before: View<'_>,
    before_networks: &Networks<'_>,
    after: &Store,
    networks: &Networks<'_>,
) -> Check {
    for network in networks.iter() {
        let Some(old) = before_networks.get(&network.id) else { continue };
        let (Some(ipam), Some(old_ipam)) = (&network.ipam, &old.ipam) else { continue };
        if network.scope() == DriverScope::NodeLocal || ipam.configs != old_ipam.configs {
            continue;
        }
        let picks = picks_on(before, after, &network.id);
        let referenced_before = referenced_on(before, &network.id);
        let referenced_after = referenced_on(View::of(after), &network.id);
        let (old_cursors, new_cursors) = (stored_cursors(old), stored_cursors(network));
        for (i, config) in ipam.configs.iter().enumerate() {
            let Some((lo, hi)) = pick_range(config) else { continue };
            let v6 = config.subnet.is_some_and(|s| matches!(s, IpNet::V6(_)));
            let (free_picks, reused): (Vec<u128>, Vec<u128>) =
                picks.iter().copied().filter(|p| (lo..=hi).contains(p)).partition(|p| !referenced_before.contains(p));
            if free_picks.is_empty() && reused.is_empty() {
                continue;
            }
            let cursor = old_cursors[i].or_else(|| referenced_before.range(lo..=hi).next_back().copied());
            // Steps forward from the cursor to an address, wrapping inside the pick range.
            let size = hi - lo + 1;
            let steps = |a: u128| match cursor {
                Some(c) => (a + size - c - 1) % size,
                None => a - lo,
            };
            let free = |a: u128| !referenced_before.contains(&a) && !referenced_after.contains(&a);
            let furthest = free_picks.iter().copied().max_by_key(|p| steps(*p));
            if let Some(furthest) = furthest
                && let Some(skipped) = (lo..=hi).find(|a| free(*a) && steps(*a) < steps(furthest))
            {
                return Err(format!(
                    "network {} handed out {} although {} was free before it after the cursor {:?}",
                    network.id,
                    from_u128(furthest, v6),
                    from_u128(skipped, v6),
                    cursor.map(|c| from_u128(c, v6)),
                ));
            }
            if !reused.is_empty() && (lo..=hi).any(&free) {
                return Err(format!(
                    "network {} handed out retired addresses {:?} while {} was free",
                    network.id,
                    reused.iter().map(|a| from_u128(*a, v6)).collect::<Vec<_>>(),
                    from_u128((lo..=hi).find(|a| free(*a)).expect("found"), v6),
                ));
            }
            let stored = new_cursors.get(i).copied().flatten();
            let expected =
                if reused.is_empty() { stored == furthest } else { stored.is_some_and(|c| reused.contains(&c)) };
            if !expected {
                return Err(format!(
                    "network {} stores the cursor {:?} in config {i} after a pass that handed out {:?}",
                    network.id,
                    stored.map(|c| from_u128(c, v6)),
                    free_picks.iter().chain(&reused).map(|a| from_u128(*a, v6)).collect::<Vec<_>>(),
                ));
            }
        }
    }
    Ok(())
}
