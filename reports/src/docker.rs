//! The Docker Engine API's JSON shapes, as `docker network inspect`, `docker service inspect`,
//! `docker node inspect`, `docker inspect <task id>` and `docker info --format '{{json .Swarm}}'`
//! print them (and as `swarmalloc-live`'s gather saves them), read with serde derive, and their
//! conversion into the engine's store objects. Owns the mapping from Docker's field names to the
//! engine's and the decisions about what a Docker dump cannot say (see [`Read::Skip`]).
//!
//! Each object is deserialized on its own through `serde_path_to_error`, so one malformed object
//! is reported with its JSON path (`Spec.TaskTemplate.Networks[0].Target`) and what was expected,
//! and the others are still checked.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use swarmalloc::{
    ClusterConfig, DriverConfig, DriverScope, Endpoint, EndpointSpec, Ipam, IpamConfig, Network, NetworkAttachment,
    NetworkAttachmentConfig, NetworkId, NetworkSpec, Node, NodeAvailability, NodeId, NodeRole, NodeSpec, PortConfig,
    Protocol, PublishMode, ResolutionMode, Service, ServiceId, ServiceSpec, Task, TaskId, TaskSpec, TaskState,
    TaskStatus, VXLAN_ID_LIST_OPTION, Version, VirtualIp,
};

/// Which Docker object a JSON object is, told from the fields only that kind has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Network,
    Service,
    Task,
    Node,
    /// `docker info --format '{{json .Swarm}}'` (or only its `.Cluster`).
    Swarm,
    /// The gather's own `gather.json`.
    Gather,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Network => "network",
            Kind::Service => "service",
            Kind::Task => "task",
            Kind::Node => "node",
            Kind::Swarm => "swarm info",
            Kind::Gather => "gather manifest",
        })
    }
}

/// The schema name of the manifest `swarmalloc-live`'s gather writes beside the Docker objects.
pub const GATHER_SCHEMA: &str = "swarmalloc-gather/1";
const GATHER_SCHEMA_PREFIX: &str = "swarmalloc-gather/";

pub fn classify(value: &Map<String, Value>) -> Option<Kind> {
    let has = |key: &str| value.contains_key(key);
    let spec_has = |key: &str| value.get("Spec").and_then(|s| s.get(key)).is_some();
    // Any version of the manifest is one, so that another version is refused by name.
    if value.get("schema").and_then(Value::as_str).is_some_and(|s| s.starts_with(GATHER_SCHEMA_PREFIX)) {
        Some(Kind::Gather)
    } else if has("IPAM") || (has("Id") && has("Driver")) {
        Some(Kind::Network)
    } else if has("DesiredState") || has("NetworksAttachments") || (has("ServiceID") && has("Status")) {
        Some(Kind::Task)
    } else if has("Endpoint") || spec_has("TaskTemplate") || spec_has("EndpointSpec") {
        Some(Kind::Service)
    } else if has("Description") || has("ManagerStatus") || spec_has("Role") || spec_has("Availability") {
        Some(Kind::Node)
    } else if has("LocalNodeState") || has("DefaultAddrPool") || has("SubnetSize") || has("Cluster") {
        Some(Kind::Swarm)
    } else {
        None
    }
}

/// The id and name an object shows, read leniently so that a malformed object can be named.
pub fn identify(value: &Map<String, Value>) -> (Option<String>, Option<String>) {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let id = text(value.get("ID")).or_else(|| text(value.get("Id")));
    let name = text(value.get("Name"))
        .or_else(|| text(value.get("Spec").and_then(|s| s.get("Name"))))
        .or_else(|| text(value.get("Description").and_then(|d| d.get("Hostname"))));
    (id, name)
}

/// A JSON value in words, for error messages: `the number 42`, `an array of 3 items`.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

/// One deserialized Docker object, before conversion.
pub enum Docker {
    Network(Box<DockerNetwork>),
    Service(Box<DockerService>),
    Task(Box<DockerTask>),
    Node(Box<DockerNode>),
    Swarm(Box<DockerSwarm>),
    Gather(Box<GatherManifest>),
}

/// Deserializes `value` as `kind`; the error carries the path inside the object.
pub fn deserialize(kind: Kind, value: &Value) -> Result<Docker, serde_path_to_error::Error<serde_json::Error>> {
    fn de<T: for<'de> Deserialize<'de>>(value: &Value) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
        serde_path_to_error::deserialize(value)
    }
    Ok(match kind {
        Kind::Network => Docker::Network(de(value)?),
        Kind::Service => Docker::Service(de(value)?),
        Kind::Task => Docker::Task(de(value)?),
        Kind::Node => Docker::Node(de(value)?),
        Kind::Swarm => Docker::Swarm(de(value)?),
        Kind::Gather => Docker::Gather(de(value)?),
    })
}

// Values that Docker writes as strings and the engine keeps typed. Each reads the string and
// says what it expected when the text does not parse; `""` is Docker's "none" where noted.

/// Implements `Deserialize` for a type read from a string by `parse`, naming `expected`.
macro_rules! from_text {
    ($name:ident, $inner:ty, $expected:literal, |$text:ident| $parse:expr) => {
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let $text = String::deserialize(d)?;
                let parsed: Option<$inner> = $parse;
                parsed.map($name).ok_or_else(|| de::Error::invalid_value(de::Unexpected::Str(&$text), &$expected))
            }
        }
    };
}

/// A subnet in CIDR form; `""` is none.
#[derive(Debug)]
pub struct Subnet(Option<IpNet>);
from_text!(Subnet, Option<IpNet>, "a subnet in CIDR form such as \"10.0.0.0/24\"", |text| if text.is_empty() {
    Some(None)
} else {
    text.parse().ok().map(Some)
});

/// A default address pool base: an IPv4 subnet.
#[derive(Debug)]
pub struct PoolBase(Ipv4Net);
from_text!(PoolBase, Ipv4Net, "an IPv4 subnet in CIDR form such as \"10.0.0.0/8\"", |text| text.parse().ok());

/// An IP address; `""` is none.
#[derive(Debug)]
pub struct Ip(Option<IpAddr>);
from_text!(Ip, Option<IpAddr>, "an IP address such as \"10.0.0.1\"", |text| if text.is_empty() {
    Some(None)
} else {
    text.parse().ok().map(Some)
});

/// An address as SwarmKit stores it: `a.b.c.d/nn`, or a bare IP (taken with a host prefix);
/// `""` is none (a VIP on a node-local network, an endpoint without IPv6).
#[derive(Debug)]
pub struct Address(Option<IpNet>);
from_text!(Address, Option<IpNet>, "an address such as \"10.0.0.5/24\" or \"10.0.0.5\"", |text| if text.is_empty() {
    Some(None)
} else {
    text.parse::<IpNet>().ok().or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from)).map(Some)
});

/// One of a few names, compared without case (Docker prints `tcp`, `vip`, `running`...).
pub trait Named: Copy + 'static {
    const NAMES: &'static [(&'static str, Self)];
}

#[derive(Debug)]
pub struct Choice<T>(pub T);

impl<'de, T: Named> Deserialize<'de> for Choice<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Names<T>(PhantomData<T>);
        impl<T: Named> de::Expected for Names<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let names: Vec<String> =
                    T::NAMES.iter().filter(|(n, _)| !n.is_empty()).map(|(n, _)| format!("{n:?}")).collect();
                write!(f, "one of {}", names.join(", "))
            }
        }
        let text = String::deserialize(d)?;
        T::NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&text))
            .map(|(_, t)| Choice(*t))
            .ok_or_else(|| de::Error::invalid_value(de::Unexpected::Str(&text), &Names::<T>(PhantomData)))
    }
}

impl Named for Protocol {
    const NAMES: &'static [(&'static str, Self)] =
        &[("tcp", Protocol::Tcp), ("udp", Protocol::Udp), ("sctp", Protocol::Sctp)];
}

impl Named for PublishMode {
    const NAMES: &'static [(&'static str, Self)] = &[("ingress", PublishMode::Ingress), ("host", PublishMode::Host)];
}

impl Named for ResolutionMode {
    const NAMES: &'static [(&'static str, Self)] =
        &[("vip", ResolutionMode::Vip), ("dnsrr", ResolutionMode::Dnsrr), ("", ResolutionMode::Vip)];
}

impl Named for TaskState {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("new", TaskState::New),
        ("pending", TaskState::Pending),
        ("assigned", TaskState::Assigned),
        ("accepted", TaskState::Accepted),
        ("preparing", TaskState::Preparing),
        ("ready", TaskState::Ready),
        ("starting", TaskState::Starting),
        ("running", TaskState::Running),
        ("complete", TaskState::Complete),
        ("shutdown", TaskState::Shutdown),
        ("failed", TaskState::Failed),
        ("rejected", TaskState::Rejected),
        ("remove", TaskState::Remove),
        ("orphaned", TaskState::Orphaned),
    ];
}

impl Named for NodeRole {
    const NAMES: &'static [(&'static str, Self)] = &[("worker", NodeRole::Worker), ("manager", NodeRole::Manager)];
}

impl Named for NodeAvailability {
    const NAMES: &'static [(&'static str, Self)] =
        &[("active", NodeAvailability::Active), ("pause", NodeAvailability::Pause), ("drain", NodeAvailability::Drain)];
}

type Strings = Option<BTreeMap<String, String>>;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerVersion {
    pub index: Option<u64>,
}

fn version(v: &Option<DockerVersion>) -> Version {
    Version(v.as_ref().and_then(|v| v.index).unwrap_or(0))
}

/// `docker network inspect` (and one item of `GET /networks`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerNetwork {
    #[serde(rename = "Id")]
    pub id: String,
    pub name: Option<String>,
    pub driver: Option<String>,
    pub scope: Option<String>,
    pub ingress: Option<bool>,
    pub attachable: Option<bool>,
    pub labels: Strings,
    pub options: Strings,
    #[serde(rename = "IPAM")]
    pub ipam: Option<DockerIpam>,
    /// The endpoints on the node that answered: containers, and the node's load balancer as
    /// `lb-NAME` (`ingress-sbox` on the ingress network).
    pub containers: Option<BTreeMap<String, DockerEndpoint>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerIpam {
    pub driver: Option<String>,
    /// The IPAM driver's options (SwarmKit adds `com.docker.network.ipam.serial` to the spec's).
    pub options: Strings,
    pub config: Option<Vec<DockerIpamConfig>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerIpamConfig {
    pub subnet: Option<Subnet>,
    #[serde(rename = "IPRange")]
    pub ip_range: Option<Subnet>,
    pub gateway: Option<Ip>,
}

#[derive(Debug, Deserialize)]
pub struct DockerEndpoint {
    /// The container's name (`c1`), or Docker's name for the endpoint (`NET-endpoint`).
    #[serde(rename = "Name")]
    pub name: Option<String>,
    #[serde(rename = "IPv4Address")]
    pub ipv4: Option<Address>,
    #[serde(rename = "IPv6Address")]
    pub ipv6: Option<Address>,
}

/// The endpoint key under which a network's inspect lists the node's load balancer.
pub fn is_load_balancer(network_name: &str, key: &str) -> bool {
    key == "ingress-sbox" || key.strip_prefix("lb-") == Some(network_name)
}

impl DockerNetwork {
    /// The store's network. The store keeps the user's spec apart from the allocation; inspect
    /// shows only the allocation, so the IPAM configs become the stored `ipam` and the driver
    /// options (with the VXLAN id list) the stored `driver_state`. `None`: not in the swarm store.
    pub fn to_network(&self, version: Version) -> Option<Network> {
        if self.scope.as_deref().is_some_and(|s| !s.is_empty() && s != "swarm") {
            return None;
        }
        let driver =
            self.driver.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| swarmalloc::DEFAULT_DRIVER.to_string());
        let options = self.options.clone().unwrap_or_default();
        let ipam = self.ipam.as_ref().map(|ipam| Ipam {
            driver: ipam
                .driver
                .clone()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| swarmalloc::DEFAULT_IPAM_DRIVER.to_string()),
            options: ipam.options.clone().unwrap_or_default(),
            configs: ipam
                .config
                .iter()
                .flatten()
                .map(|c| IpamConfig {
                    subnet: c.subnet.as_ref().and_then(|s| s.0),
                    range: c.ip_range.as_ref().and_then(|s| s.0),
                    gateway: c.gateway.as_ref().and_then(|g| g.0),
                })
                .collect(),
        });
        let mut spec_options = options.clone();
        spec_options.remove(VXLAN_ID_LIST_OPTION);
        let mut network = Network {
            id: NetworkId::new(&self.id),
            version,
            spec: NetworkSpec {
                name: self.name.clone().unwrap_or_default(),
                labels: self.labels.clone().unwrap_or_default(),
                driver: Some(DriverConfig { name: driver.clone(), options: spec_options }),
                ipam: None,
                ingress: self.ingress.unwrap_or(false),
                attachable: self.attachable.unwrap_or(false),
            },
            driver_state: Some(DriverConfig { name: driver, options }),
            ipam,
        };
        if network.scope() == DriverScope::NodeLocal {
            // The store holds an empty IPAM for node-local networks (docs/swarmkit.md section
            // 1.2); what inspect shows comes from the node's own driver.
            network.spec.ipam = network.ipam.take();
            network.ipam = Some(Ipam::default());
        }
        Some(network)
    }

    /// The node's load-balancer addresses that this inspect lists (on the node that answered).
    pub fn load_balancer(&self) -> Option<Vec<IpNet>> {
        let name = self.name.as_deref().unwrap_or("");
        let (_, lb) = self.containers.iter().flatten().find(|(key, _)| is_load_balancer(name, key))?;
        Some([&lb.ipv4, &lb.ipv6].into_iter().flatten().filter_map(|a| a.0).collect())
    }

    /// The containers this inspect lists (on the node that answered), as (container id, name).
    pub fn container_names(&self) -> impl Iterator<Item = (&str, &str)> {
        let network = self.name.as_deref().unwrap_or("");
        self.containers
            .iter()
            .flatten()
            .filter(move |(key, _)| !is_load_balancer(network, key))
            .filter_map(|(key, endpoint)| Some((key.as_str(), endpoint.name.as_deref().filter(|n| !n.is_empty())?)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerAttachmentConfig {
    pub target: String,
    pub aliases: Option<Vec<String>>,
    pub driver_opts: Strings,
}

impl DockerAttachmentConfig {
    fn to_config(&self) -> NetworkAttachmentConfig {
        let mut config = NetworkAttachmentConfig::to(self.target.as_str());
        config.aliases = self.aliases.clone().unwrap_or_default();
        config.driver_attachment_opts = self.driver_opts.clone().unwrap_or_default();
        config
    }
}

fn configs(list: Option<&Vec<DockerAttachmentConfig>>) -> Vec<NetworkAttachmentConfig> {
    list.into_iter().flatten().map(DockerAttachmentConfig::to_config).collect()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerPort {
    pub name: Option<String>,
    pub protocol: Option<Choice<Protocol>>,
    pub target_port: Option<u16>,
    pub published_port: Option<u16>,
    pub publish_mode: Option<Choice<PublishMode>>,
}

impl DockerPort {
    fn to_port(&self) -> PortConfig {
        PortConfig {
            name: self.name.clone().unwrap_or_default(),
            protocol: self.protocol.as_ref().map_or(Protocol::Tcp, |p| p.0),
            target_port: self.target_port.unwrap_or(0),
            published_port: self.published_port.unwrap_or(0),
            publish_mode: self.publish_mode.as_ref().map(|m| m.0).unwrap_or_default(),
        }
    }
}

fn ports(list: &Option<Vec<DockerPort>>) -> Vec<PortConfig> {
    list.iter().flatten().map(DockerPort::to_port).collect()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerEndpointSpec {
    pub mode: Option<Choice<ResolutionMode>>,
    pub ports: Option<Vec<DockerPort>>,
}

impl DockerEndpointSpec {
    fn to_spec(&self) -> EndpointSpec {
        EndpointSpec { mode: self.mode.as_ref().map(|m| m.0).unwrap_or_default(), ports: ports(&self.ports) }
    }

    fn is_empty(&self) -> bool {
        self.mode.is_none() && self.ports.as_ref().is_none_or(Vec::is_empty)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerVip {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    pub addr: Option<Address>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerServiceEndpoint {
    pub spec: Option<DockerEndpointSpec>,
    pub ports: Option<Vec<DockerPort>>,
    #[serde(rename = "VirtualIPs")]
    pub virtual_ips: Option<Vec<DockerVip>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerReplicated {
    pub replicas: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerMode {
    pub replicated: Option<DockerReplicated>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerTaskTemplate {
    pub networks: Option<Vec<DockerAttachmentConfig>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerServiceSpec {
    pub name: Option<String>,
    pub mode: Option<DockerMode>,
    pub task_template: Option<DockerTaskTemplate>,
    pub networks: Option<Vec<DockerAttachmentConfig>>,
    pub endpoint_spec: Option<DockerEndpointSpec>,
}

/// `docker service inspect` (and one item of `GET /services`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerService {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: Option<DockerVersion>,
    pub spec: DockerServiceSpec,
    pub endpoint: Option<DockerServiceEndpoint>,
}

impl DockerService {
    /// The store's service. A VIP with an empty `Addr` is SwarmKit's entry for a node-local
    /// network; the engine writes none, so it is dropped. `"Endpoint": {"Spec": {}}` is how
    /// Docker shows a service without a stored endpoint (docs/swarmkit.md section 1.3).
    pub fn to_service(&self) -> Service {
        let spec = &self.spec;
        let endpoint = self.endpoint.as_ref().filter(|e| {
            !(e.spec.as_ref().is_none_or(DockerEndpointSpec::is_empty)
                && e.ports.as_ref().is_none_or(Vec::is_empty)
                && e.virtual_ips.as_ref().is_none_or(Vec::is_empty))
        });
        Service {
            id: ServiceId::new(&self.id),
            version: version(&self.version),
            spec: ServiceSpec {
                name: spec.name.clone().unwrap_or_default(),
                replicas: spec.mode.as_ref().and_then(|m| m.replicated.as_ref()).and_then(|r| r.replicas).unwrap_or(0),
                task_networks: configs(spec.task_template.as_ref().and_then(|t| t.networks.as_ref())),
                networks: configs(spec.networks.as_ref()),
                endpoint: spec.endpoint_spec.as_ref().map(DockerEndpointSpec::to_spec),
            },
            endpoint: endpoint.map(|e| Endpoint {
                spec: e.spec.as_ref().map(DockerEndpointSpec::to_spec).unwrap_or_default(),
                ports: ports(&e.ports),
                virtual_ips: e
                    .virtual_ips
                    .iter()
                    .flatten()
                    .filter_map(|vip| {
                        let addr = vip.addr.as_ref().and_then(|a| a.0)?;
                        Some(VirtualIp { network_id: NetworkId::new(&vip.network_id), addr })
                    })
                    .collect(),
            }),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerEmbeddedNetwork {
    #[serde(rename = "ID")]
    pub id: String,
}

/// One entry of a task's `NetworksAttachments` (or a node's `Attachments`): the embedded network
/// is only read for its `ID`; the store's network object is what the check trusts.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerAttachment {
    pub network: DockerEmbeddedNetwork,
    pub addresses: Option<Vec<Address>>,
    pub aliases: Option<Vec<String>>,
    pub driver_attachment_opts: Strings,
}

impl DockerAttachment {
    fn to_attachment(&self) -> NetworkAttachment {
        NetworkAttachment {
            network_id: NetworkId::new(&self.network.id),
            addresses: self.addresses.iter().flatten().filter_map(|a| a.0).collect(),
            aliases: self.aliases.clone().unwrap_or_default(),
            driver_attachment_opts: self.driver_attachment_opts.clone().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerNetworkAttachmentSpec {
    #[serde(rename = "ContainerID")]
    pub container_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerTaskSpec {
    pub networks: Option<Vec<DockerAttachmentConfig>>,
    pub network_attachment_spec: Option<DockerNetworkAttachmentSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerTaskStatus {
    pub state: Option<Choice<TaskState>>,
    pub message: Option<String>,
}

/// `docker inspect <task id>` (and one item of `GET /tasks`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerTask {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: Option<DockerVersion>,
    #[serde(rename = "ServiceID")]
    pub service_id: Option<String>,
    #[serde(rename = "NodeID")]
    pub node_id: Option<String>,
    pub slot: Option<u64>,
    pub spec: Option<DockerTaskSpec>,
    pub status: Option<DockerTaskStatus>,
    pub desired_state: Option<Choice<TaskState>>,
    pub networks_attachments: Option<Vec<DockerAttachment>>,
}

impl DockerTask {
    pub fn to_task(&self) -> Task {
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        Task {
            id: TaskId::new(&self.id),
            version: version(&self.version),
            service_id: nonempty(&self.service_id).map(ServiceId::new),
            node_id: nonempty(&self.node_id).map(NodeId::new),
            slot: self.slot.unwrap_or(0),
            spec: TaskSpec { networks: configs(self.spec.as_ref().and_then(|s| s.networks.as_ref())) },
            status: self
                .status
                .as_ref()
                .map(|s| TaskStatus {
                    state: s.state.as_ref().map(|c| c.0).unwrap_or_default(),
                    message: s.message.clone().unwrap_or_default(),
                })
                .unwrap_or_default(),
            desired_state: self.desired_state.as_ref().map(|c| c.0).unwrap_or_default(),
            networks: self.networks_attachments.iter().flatten().map(DockerAttachment::to_attachment).collect(),
            endpoint: None,
        }
    }

    /// The container a network-attachment task (`docker run --network`) stands for.
    pub fn container(&self) -> Option<&str> {
        self.spec.as_ref()?.network_attachment_spec.as_ref()?.container_id.as_deref()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerNodeSpec {
    pub name: Option<String>,
    pub role: Option<Choice<NodeRole>>,
    pub availability: Option<Choice<NodeAvailability>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerNodeDescription {
    pub hostname: Option<String>,
}

/// `docker node inspect` (and one item of `GET /nodes`). Docker's node API does not show the
/// node's load-balancer attachments (SwarmKit's `Node.Attachments`); a dump may add them as
/// `Attachments` (or `NetworksAttachments`) in the task attachment shape.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerNode {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: Option<DockerVersion>,
    pub spec: Option<DockerNodeSpec>,
    pub description: Option<DockerNodeDescription>,
    pub attachments: Option<Vec<DockerAttachment>>,
    pub networks_attachments: Option<Vec<DockerAttachment>>,
}

impl DockerNode {
    /// The store's node, with the attachments the dump carries (`None`: it carries none).
    pub fn to_node(&self) -> (Node, Option<Vec<NetworkAttachment>>) {
        let spec = self.spec.as_ref();
        let mut name = spec.and_then(|s| s.name.clone()).unwrap_or_default();
        if name.is_empty() {
            name = self.description.as_ref().and_then(|d| d.hostname.clone()).unwrap_or_default();
        }
        let node = Node {
            id: NodeId::new(&self.id),
            version: version(&self.version),
            spec: NodeSpec {
                name,
                role: spec.and_then(|s| s.role.as_ref()).map(|c| c.0).unwrap_or_default(),
                availability: spec.and_then(|s| s.availability.as_ref()).map(|c| c.0).unwrap_or_default(),
            },
            attachments: Vec::new(),
        };
        let attachments = self
            .attachments
            .as_ref()
            .or(self.networks_attachments.as_ref())
            .map(|list| list.iter().map(DockerAttachment::to_attachment).collect());
        (node, attachments)
    }
}

/// `docker info --format '{{json .Swarm}}'`: the node that answered and the cluster; or only
/// `.Swarm.Cluster` (then it has no `NodeID`).
#[derive(Debug, Deserialize)]
pub struct DockerSwarm {
    #[serde(rename = "NodeID")]
    pub node_id: Option<String>,
    #[serde(rename = "Cluster")]
    pub cluster: Option<DockerCluster>,
    #[serde(rename = "DefaultAddrPool")]
    pub default_addr_pool: Option<Vec<PoolBase>>,
    #[serde(rename = "SubnetSize")]
    pub subnet_size: Option<u8>,
}

#[derive(Debug, Deserialize)]
pub struct DockerCluster {
    #[serde(rename = "DefaultAddrPool")]
    pub default_addr_pool: Option<Vec<PoolBase>>,
    #[serde(rename = "SubnetSize")]
    pub subnet_size: Option<u8>,
}

impl DockerSwarm {
    /// The allocator's settings the dump shows: the default address pools and subnet size
    /// (SwarmKit's defaults, 10.0.0.0/8 and /24, when unset); the port and VXLAN ranges are
    /// not configurable in Docker and stay the engine's defaults.
    pub fn config(&self) -> Option<ClusterConfig> {
        let (pools, size) = match &self.cluster {
            Some(c) => (&c.default_addr_pool, c.subnet_size),
            None if self.default_addr_pool.is_some() || self.subnet_size.is_some() => {
                (&self.default_addr_pool, self.subnet_size)
            }
            None => return None,
        };
        let mut config = ClusterConfig::default();
        if let Some(pools) = pools.as_ref().filter(|p| !p.is_empty()) {
            config.default_address_pools = pools.iter().map(|p| p.0).collect();
        }
        if let Some(size) = size.filter(|s| *s != 0) {
            config.subnet_size = size;
        }
        Some(config)
    }
}

/// `gather.json`, written by `swarmalloc-live`'s gather beside the Docker objects: what the API
/// showed that no Docker object says.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatherManifest {
    pub schema: String,
    /// The socket the dump was read from.
    #[serde(default)]
    pub source: String,
    /// The daemon's version and API version (`docker version`).
    #[serde(default)]
    pub daemon: String,
    #[serde(default)]
    pub api_version: String,
    /// Swarm-scope networks that `GET /networks` listed from the answering node's own copy
    /// only: removed from the store while still in use on that node.
    #[serde(default)]
    pub not_in_store: Vec<GoneNetwork>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GoneNetwork {
    pub id: String,
    pub name: String,
}
