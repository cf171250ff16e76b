//! The store objects the allocator reads and writes, in SwarmKit's shape (docs/swarmkit.md section 1).
//!
//! Each object separates the user's `spec` from the fields the allocator owns (`ipam`,
//! `driver_state`, `endpoint`, `networks`, `attachments`). The allocator writes only the fields it
//! owns, plus a task's status on NEW -> PENDING.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::ids::{NetworkId, NodeId, ServiceId, TaskId, Version};

/// Driver option holding a network's VXLAN ids, comma-separated, one per IPAM config whatever its
/// address family (SwarmKit hands every config to the overlay driver: Docker never sets a family).
pub const VXLAN_ID_LIST_OPTION: &str = "com.docker.network.driver.overlay.vxlanid_list";
/// IPAM option in which this engine keeps a network's address cursors: comma-separated, one entry
/// per IPAM config in config order, each the last address handed out from that config's pool
/// (empty when none was). SwarmKit kept the same cursor in memory only (libnetwork's serial
/// bitmap); a store SwarmKit wrote has no such option, and the engine then derives the cursor.
pub const ADDRESS_CURSOR_OPTION: &str = "swarmalloc.ipam.last_addresses";
/// Label that, with the name `ingress`, marks the ingress network of clusters older than `Spec.Ingress`.
pub const INTERNAL_NETWORK_LABEL: &str = "com.docker.swarm.internal";
/// Label of the networks written at cluster creation (`bridge`, `host`); they cannot be removed.
pub const PREDEFINED_NETWORK_LABEL: &str = "com.docker.swarm.predefined";
/// The driver used when a network spec names none.
pub const DEFAULT_DRIVER: &str = "overlay";
/// The IPAM driver used when a network spec names none; the name allocated networks record then.
pub const DEFAULT_IPAM_DRIVER: &str = "default";
/// The network drivers a SwarmKit manager knows without plugins (libnetwork's Linux drivers that
/// `cnmallocator` registers). Names are exact: SwarmKit's control API compares them in lower
/// case, but its allocator then looks them up as given and fails.
pub const BUILTIN_DRIVERS: [&str; 5] = ["overlay", "bridge", "host", "macvlan", "ipvlan"];

/// How the allocator treats a network driver (docs/swarmkit.md section 1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DriverScope {
    /// `overlay`: subnets, addresses, VXLAN ids and node load-balancer attachments.
    Overlay,
    /// Any other global-scope (remote) driver: subnets and addresses, no VXLAN ids, no node LB.
    Global,
    /// `bridge`, `host`, `macvlan`, `ipvlan`, `nat`, `l2bridge`, `internal`: no swarm-level allocation.
    NodeLocal,
}

impl DriverScope {
    pub fn of(driver: &str) -> DriverScope {
        match driver {
            "overlay" => DriverScope::Overlay,
            "bridge" | "host" | "macvlan" | "ipvlan" | "nat" | "l2bridge" | "internal" | "null" => {
                DriverScope::NodeLocal
            }
            _ => DriverScope::Global,
        }
    }
}

/// One entry of a network's IPAM configuration. In a spec every field is optional; in
/// [`Ipam::configs`] (what the allocator wrote) `subnet` is always set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpamConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<IpNet>,
    /// Sub-range of the subnet that task and VIP addresses are drawn from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// IPAM options: the driver name, its options, and the configs, in order. In a spec an empty
/// driver name means the default driver.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ipam {
    #[serde(default)]
    pub driver: String,
    /// The IPAM driver's options (SwarmKit's `IPAM.Driver.Options`). Allocated networks copy the
    /// spec's and add [`ADDRESS_CURSOR_OPTION`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub configs: Vec<IpamConfig>,
}

/// A network driver's name and options (spec side) or state (allocated side).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverConfig {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `None` means the default driver, `overlay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<DriverConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    #[serde(default)]
    pub ingress: bool,
    #[serde(default)]
    pub attachable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub id: NetworkId,
    #[serde(default)]
    pub version: Version,
    pub spec: NetworkSpec,
    /// Written by the allocator. "Allocated" means both this and `ipam` are present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_state: Option<DriverConfig>,
    /// Written by the allocator: the subnets and gateways actually in use, in config order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
}

impl Network {
    pub fn driver_name(&self) -> &str {
        self.spec.driver.as_ref().map_or(DEFAULT_DRIVER, |d| d.name.as_str())
    }

    pub fn scope(&self) -> DriverScope {
        DriverScope::of(self.driver_name())
    }

    /// The ingress network: `Spec.Ingress`, or the pre-`Ingress` label plus the name `ingress`.
    pub fn is_ingress(&self) -> bool {
        self.spec.ingress || (self.spec.labels.contains_key(INTERNAL_NETWORK_LABEL) && self.spec.name == "ingress")
    }

    pub fn is_allocated(&self) -> bool {
        self.ipam.is_some() && self.driver_state.is_some()
    }
}

/// How a service's tasks are found by name: a virtual IP, or DNS round robin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResolutionMode {
    #[default]
    Vip,
    Dnsrr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    /// Published on every node through the ingress routing mesh; reserved cluster-wide.
    #[default]
    Ingress,
    /// Published on the node that runs the task; not reserved by the allocator.
    Host,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub protocol: Protocol,
    pub target_port: u16,
    /// 0 asks for a dynamic port.
    #[serde(default)]
    pub published_port: u16,
    #[serde(default)]
    pub publish_mode: PublishMode,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    #[serde(default)]
    pub mode: ResolutionMode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
}

/// A service's virtual IP on one network, with the subnet's prefix length (`10.0.1.2/24`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualIp {
    pub network_id: NetworkId,
    pub addr: IpNet,
}

/// What the allocator wrote for a service: the spec it allocated, the ports with their
/// published numbers filled in, and the VIPs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    #[serde(default)]
    pub spec: EndpointSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_ips: Vec<VirtualIp>,
}

/// A network a service or task asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkAttachmentConfig {
    pub target: NetworkId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Requested addresses (attachable networks), reserved exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_attachment_opts: BTreeMap<String, String>,
}

impl NetworkAttachmentConfig {
    pub fn to(target: impl Into<NetworkId>) -> Self {
        NetworkAttachmentConfig {
            target: target.into(),
            aliases: Vec::new(),
            addresses: Vec::new(),
            driver_attachment_opts: BTreeMap::new(),
        }
    }
}

impl From<&str> for NetworkAttachmentConfig {
    fn from(target: &str) -> Self {
        NetworkAttachmentConfig::to(target)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    #[serde(default)]
    pub replicas: u64,
    /// The networks of the service's tasks (`Spec.Task.Networks`), copied into each task's spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_networks: Vec<NetworkAttachmentConfig>,
    /// Deprecated `Spec.Networks`: used only when `task_networks` is empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachmentConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointSpec>,
}

impl ServiceSpec {
    /// The service's networks (SwarmKit's `serviceNetworks`): `task_networks`, or the deprecated
    /// `networks` when that is empty. VIPs are allocated on these; a task attaches to the
    /// networks of its own spec, which the orchestrator copies from `task_networks`.
    pub fn attachment_configs(&self) -> &[NetworkAttachmentConfig] {
        if self.task_networks.is_empty() { &self.networks } else { &self.task_networks }
    }

    pub fn resolution_mode(&self) -> ResolutionMode {
        self.endpoint.as_ref().map_or(ResolutionMode::Vip, |e| e.mode)
    }

    pub fn ports(&self) -> &[PortConfig] {
        self.endpoint.as_ref().map_or(&[], |e| &e.ports)
    }

    /// True when any port is published through the ingress routing mesh.
    pub fn needs_ingress(&self) -> bool {
        self.ports().iter().any(|p| p.publish_mode == PublishMode::Ingress)
    }

    /// False when the service publishes no port (in either mode) and has no VIP to get: in DNSRR
    /// mode, or in VIP mode on no network. Then nothing is allocated for it and SwarmKit stores
    /// no endpoint (`IsServiceAllocated` holds; a real swarm showed `"Endpoint": {"Spec": {}}`).
    pub fn needs_endpoint(&self) -> bool {
        !self.ports().is_empty()
            || (self.resolution_mode() == ResolutionMode::Vip && !self.attachment_configs().is_empty())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: ServiceId,
    #[serde(default)]
    pub version: Version,
    pub spec: ServiceSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
}

/// Task states with SwarmKit's numeric values: comparisons between states are meaningful.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u16)]
pub enum TaskState {
    #[default]
    New = 0,
    Pending = 64,
    Assigned = 192,
    Accepted = 256,
    Preparing = 320,
    Ready = 384,
    Starting = 448,
    Running = 512,
    Complete = 576,
    Shutdown = 640,
    Failed = 704,
    Rejected = 768,
    Remove = 800,
    Orphaned = 832,
}

impl TaskState {
    /// "Live": the task holds its resources (`state <= RUNNING`).
    pub fn is_live(self) -> bool {
        self <= TaskState::Running
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskStatus {
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// What the allocator gave a task, node or container on one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkAttachment {
    pub network_id: NetworkId,
    /// At most one address per address family, each with its subnet's prefix length.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_attachment_opts: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// The task's own network list; when empty, the service's deprecated `networks` are used
    /// (SwarmKit's fallback; not `task_networks`, which the orchestrator copied here already).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachmentConfig>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub id: TaskId,
    #[serde(default)]
    pub version: Version,
    /// `None` for the tasks that attach a standalone container to an attachable network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<ServiceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<NodeId>,
    #[serde(default)]
    pub slot: u64,
    #[serde(default)]
    pub spec: TaskSpec,
    #[serde(default)]
    pub status: TaskStatus,
    #[serde(default)]
    pub desired_state: TaskState,
    /// Written by the allocator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachment>,
    /// Written by the allocator: a copy of the service's endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    #[default]
    Worker,
    Manager,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeAvailability {
    #[default]
    Active,
    Pause,
    Drain,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub role: NodeRole,
    #[serde(default)]
    pub availability: NodeAvailability,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub id: NodeId,
    #[serde(default)]
    pub version: Version,
    #[serde(default)]
    pub spec: NodeSpec,
    /// Written by the allocator: one load-balancer attachment per network the node needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<NetworkAttachment>,
}

/// Any store object, owned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Object {
    Network(Network),
    Service(Service),
    Task(Task),
    Node(Node),
}

/// Any store object, borrowed: what `restore` and `observe` read.
#[derive(Clone, Copy, Debug)]
pub enum ObjectRef<'a> {
    Network(&'a Network),
    Service(&'a Service),
    Task(&'a Task),
    Node(&'a Node),
}

/// [`ObjectRef::pass_rank`] of every task.
pub(crate) const TASK_PASS_RANK: u8 = 3;

/// The kind and id of a store object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum ObjectId {
    Network(NetworkId),
    Service(ServiceId),
    Task(TaskId),
    Node(NodeId),
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectId::Network(id) => write!(f, "network {id}"),
            ObjectId::Service(id) => write!(f, "service {id}"),
            ObjectId::Task(id) => write!(f, "task {id}"),
            ObjectId::Node(id) => write!(f, "node {id}"),
        }
    }
}

impl Object {
    pub fn as_ref(&self) -> ObjectRef<'_> {
        match self {
            Object::Network(o) => ObjectRef::Network(o),
            Object::Service(o) => ObjectRef::Service(o),
            Object::Task(o) => ObjectRef::Task(o),
            Object::Node(o) => ObjectRef::Node(o),
        }
    }

    pub fn id(&self) -> ObjectId {
        self.as_ref().id()
    }

    pub fn version(&self) -> Version {
        self.as_ref().version()
    }

    /// Sets the store version, as the store does when it commits a write.
    pub fn set_version(&mut self, version: Version) {
        match self {
            Object::Network(o) => o.version = version,
            Object::Service(o) => o.version = version,
            Object::Task(o) => o.version = version,
            Object::Node(o) => o.version = version,
        }
    }
}

impl ObjectRef<'_> {
    /// Where this object comes in an allocation pass: passes (and restore's queue) take objects
    /// sorted by `(pass_rank, id)`. Networks come before the services, tasks and nodes that use
    /// them, and the ingress network before every other network whatever its id: SwarmKit's init
    /// allocates the ingress first, so no other network takes the default subnet it would get.
    pub fn pass_rank(&self) -> u8 {
        match self {
            ObjectRef::Network(n) if n.is_ingress() => 0,
            ObjectRef::Network(_) => 1,
            ObjectRef::Service(_) => 2,
            ObjectRef::Task(_) => TASK_PASS_RANK,
            ObjectRef::Node(_) => 4,
        }
    }

    pub fn id(&self) -> ObjectId {
        match self {
            ObjectRef::Network(o) => ObjectId::Network(o.id.clone()),
            ObjectRef::Service(o) => ObjectId::Service(o.id.clone()),
            ObjectRef::Task(o) => ObjectId::Task(o.id.clone()),
            ObjectRef::Node(o) => ObjectId::Node(o.id.clone()),
        }
    }

    pub fn version(&self) -> Version {
        match self {
            ObjectRef::Network(o) => o.version,
            ObjectRef::Service(o) => o.version,
            ObjectRef::Task(o) => o.version,
            ObjectRef::Node(o) => o.version,
        }
    }

    pub fn to_owned(&self) -> Object {
        match *self {
            ObjectRef::Network(o) => Object::Network(o.clone()),
            ObjectRef::Service(o) => Object::Service(o.clone()),
            ObjectRef::Task(o) => Object::Task(o.clone()),
            ObjectRef::Node(o) => Object::Node(o.clone()),
        }
    }
}

macro_rules! object_from {
    ($($kind:ident),*) => {$(
        impl From<$kind> for Object {
            fn from(object: $kind) -> Self {
                Object::$kind(object)
            }
        }

        impl<'a> From<&'a $kind> for ObjectRef<'a> {
            fn from(object: &'a $kind) -> Self {
                ObjectRef::$kind(object)
            }
        }
    )*};
}

object_from!(Network, Service, Task, Node);

impl<'a> From<&'a Object> for ObjectRef<'a> {
    fn from(object: &'a Object) -> Self {
        object.as_ref()
    }
}
