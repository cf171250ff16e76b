//! The ops of a sequence and the reference configuration: small ranges, so that exhaustion,
//! wrapping and reuse happen in short sequences. Numbers that choose among a few options are taken
//! modulo the number of options, so that any byte string decodes to a meaningful op.

use arbitrary::{Arbitrary, Unstructured};
use ipnet::Ipv4Net;
use swarmalloc::{
    ClusterConfig, NetworkAttachmentConfig, NodeId, PortConfig, Protocol, PublishMode, Range, ServiceId, Task, TaskId,
    TaskSpec, TaskState, TaskStatus, Version,
};

use super::checks::same_port;

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
    /// clash with others), or 0 (an id is drawn).
    PinnedVni(u8),
    /// 192.168.3.0/28 with picks limited to the range 192.168.3.8/29, and every other one the
    /// gateway .1 named (else the gateway is drawn from the range).
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

pub(super) fn new_task(
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
pub(super) const SAME_KEY_INGRESS_PORTS: bool = true;

pub(super) fn push_port(ports: &mut Vec<PortConfig>, port: PortConfig) {
    let ingress = |p: &PortConfig| p.publish_mode == PublishMode::Ingress;
    if !SAME_KEY_INGRESS_PORTS && ingress(&port) && ports.iter().any(|p| ingress(p) && same_port(p, &port)) {
        return;
    }
    ports.push(port);
}

pub(super) fn port_config(port: &PortGen) -> PortConfig {
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
