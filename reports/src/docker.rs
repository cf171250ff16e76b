//! Reads the JSON that Docker prints for `docker network inspect`, `docker service inspect`,
//! `docker node inspect` and `docker inspect <task id>` (the Docker Engine API's shapes) and
//! converts each object into the engine's store object. Owns the mapping from Docker's field
//! names to the engine's and the decisions about what a Docker dump cannot say (see [`Read::Skip`]).
//!
//! Values are walked by hand (`serde_json::Value` plus a [`JsonPath`]) so that every error names
//! the field, e.g. `[3].Spec.TaskTemplate.Networks[0].Target`, and what it expected.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde_json::Value;
use swarmalloc::{
    DriverConfig, DriverScope, Endpoint, EndpointSpec, Ipam, IpamConfig, Network, NetworkAttachment,
    NetworkAttachmentConfig, NetworkId, NetworkSpec, Node, NodeAvailability, NodeId, NodeRole, NodeSpec, Object,
    PortConfig, Protocol, PublishMode, ResolutionMode, Service, ServiceId, ServiceSpec, Task, TaskId, TaskSpec,
    TaskState, TaskStatus, VXLAN_ID_LIST_OPTION, Version, VirtualIp,
};

use crate::error::{InputError, JsonPath};

/// What one Docker object becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    Object(Box<Object>),
    /// Not part of the swarm store, or not checkable from a Docker dump; the reason says which.
    Skip(String),
}

/// A JSON value with the file and path it was found at, for error messages.
#[derive(Clone, Copy)]
struct At<'a> {
    file: &'a Path,
    value: &'a Value,
    path: &'a JsonPath,
}

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

impl<'a> At<'a> {
    fn wrong(&self, expected: &str) -> InputError {
        InputError::Field {
            file: self.file.to_path_buf(),
            path: self.path.as_str().to_string(),
            expected: expected.to_string(),
            found: describe(self.value),
        }
    }

    /// Calls `f` with the value under `key`, when it is present and not null.
    fn with<T>(&self, key: &str, f: impl FnOnce(At<'_>) -> Result<T, InputError>) -> Result<Option<T>, InputError> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => f(At { file: self.file, value, path: &self.path.key(key) }).map(Some),
        }
    }

    fn require<T>(&self, key: &str, f: impl FnOnce(At<'_>) -> Result<T, InputError>) -> Result<T, InputError> {
        self.with(key, f)?.ok_or_else(|| InputError::Field {
            file: self.file.to_path_buf(),
            path: self.path.key(key).as_str().to_string(),
            expected: "a value (the field is required)".into(),
            found: "nothing".into(),
        })
    }

    fn string(&self) -> Result<String, InputError> {
        self.value.as_str().map(str::to_string).ok_or_else(|| self.wrong("a string"))
    }

    fn boolean(&self) -> Result<bool, InputError> {
        self.value.as_bool().ok_or_else(|| self.wrong("true or false"))
    }

    fn number<T: TryFrom<u64>>(&self, expected: &str) -> Result<T, InputError> {
        self.value.as_u64().and_then(|n| T::try_from(n).ok()).ok_or_else(|| self.wrong(expected))
    }

    fn each<T>(&self, mut f: impl FnMut(At<'_>) -> Result<T, InputError>) -> Result<Vec<T>, InputError> {
        let items = self.value.as_array().ok_or_else(|| self.wrong("an array"))?;
        let mut out = Vec::with_capacity(items.len());
        for (i, value) in items.iter().enumerate() {
            out.push(f(At { file: self.file, value, path: &self.path.index(i) })?);
        }
        Ok(out)
    }

    fn string_map(&self) -> Result<BTreeMap<String, String>, InputError> {
        let map = self.value.as_object().ok_or_else(|| self.wrong("an object of strings"))?;
        let mut out = BTreeMap::new();
        for (key, value) in map {
            let at = At { file: self.file, value, path: &self.path.key(key) };
            out.insert(key.clone(), at.string()?);
        }
        Ok(out)
    }

    /// One of a few names (compared without case), e.g. `"tcp"`; the error lists them.
    fn choice<T: Copy>(&self, key: &str, choices: &[(&str, T)]) -> Result<Option<T>, InputError> {
        self.with(key, |v| {
            let text = v.string()?;
            choices.iter().find(|(name, _)| name.eq_ignore_ascii_case(&text)).map(|(_, t)| *t).ok_or_else(|| {
                let names: Vec<String> =
                    choices.iter().filter(|(n, _)| !n.is_empty()).map(|(n, _)| format!("{n:?}")).collect();
                v.wrong(&format!("one of {}", names.join(", ")))
            })
        })
    }

    fn opt_string(&self, key: &str) -> Result<Option<String>, InputError> {
        Ok(self.with(key, |v| v.string())?.filter(|s| !s.is_empty()))
    }

    fn version(&self) -> Result<Version, InputError> {
        Ok(Version(
            self.with("Version", |v| v.with("Index", |i| i.number::<u64>("a version index")))?.flatten().unwrap_or(0),
        ))
    }

    fn ip(&self) -> Result<IpAddr, InputError> {
        self.string()?.parse().map_err(|_| self.wrong("an IP address such as \"10.0.0.1\""))
    }

    fn net(&self) -> Result<IpNet, InputError> {
        self.string()?.parse().map_err(|_| self.wrong("a subnet in CIDR form such as \"10.0.0.0/24\""))
    }

    /// An address as SwarmKit stores it: `a.b.c.d/nn`, or a bare IP (taken with a host prefix).
    fn address(&self) -> Result<IpNet, InputError> {
        let text = self.string()?;
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(net);
        }
        text.parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| self.wrong("an address such as \"10.0.0.5/24\" or \"10.0.0.5\""))
    }
}

/// Which Docker object a JSON object is, told from the fields only that kind has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Network,
    Service,
    Task,
    Node,
}

pub fn classify(value: &Value) -> Option<Kind> {
    let has = |key: &str| value.get(key).is_some();
    let spec_has = |key: &str| value.get("Spec").and_then(|s| s.get(key)).is_some();
    if has("IPAM") || (has("Id") && has("Driver")) {
        Some(Kind::Network)
    } else if has("DesiredState") || has("NetworksAttachments") || (has("ServiceID") && has("Status")) {
        Some(Kind::Task)
    } else if has("Endpoint") || spec_has("TaskTemplate") || spec_has("EndpointSpec") {
        Some(Kind::Service)
    } else if has("Description") || has("ManagerStatus") || spec_has("Role") || spec_has("Availability") {
        Some(Kind::Node)
    } else {
        None
    }
}

/// Converts one Docker object found at `path` of `file`.
pub fn read(file: &Path, value: &Value, path: &JsonPath) -> Result<Read, InputError> {
    let at = At { file, value, path };
    if !value.is_object() {
        return Err(at.wrong("an object (a Docker network, service, task or node)"));
    }
    match classify(value) {
        Some(Kind::Network) => network(at),
        Some(Kind::Service) => service(at).map(|s| Read::Object(Box::new(Object::Service(s)))),
        Some(Kind::Task) => task(at).map(|t| Read::Object(Box::new(Object::Task(t)))),
        Some(Kind::Node) => node(at),
        None => Err(InputError::Invalid {
            file: file.to_path_buf(),
            path: path.as_str().to_string(),
            reason: "an object that is no Docker network (`IPAM`), task (`DesiredState`), service \
                     (`Spec.TaskTemplate`) or node (`Spec.Role`)"
                .into(),
        }),
    }
}

/// `docker network inspect`. The store keeps the user's spec apart from the allocation; the
/// inspect output shows only the allocation, so the IPAM configs become the stored `ipam` and the
/// driver options (with the VXLAN id list) the stored `driver_state`.
fn network(at: At<'_>) -> Result<Read, InputError> {
    let id = at.require("Id", |v| v.string())?;
    let name = at.opt_string("Name")?.unwrap_or_default();
    if let Some(scope) = at.opt_string("Scope")?
        && scope != "swarm"
    {
        return Ok(Read::Skip(format!("network {id} ({name}) has scope {scope:?}: it is not in the swarm store")));
    }
    let driver = at.opt_string("Driver")?.unwrap_or_else(|| swarmalloc::DEFAULT_DRIVER.to_string());
    let options = at.with("Options", |v| v.string_map())?.unwrap_or_default();
    let labels = at.with("Labels", |v| v.string_map())?.unwrap_or_default();
    let ipam = at.with("IPAM", |ipam| {
        let driver = ipam.opt_string("Driver")?.unwrap_or_else(|| swarmalloc::DEFAULT_IPAM_DRIVER.to_string());
        let ipam_options = ipam.with("Options", |v| v.string_map())?.unwrap_or_default();
        let configs = ipam
            .with("Config", |configs| {
                configs.each(|config| {
                    Ok(IpamConfig {
                        subnet: config.with("Subnet", |v| v.net())?,
                        range: config.with("IPRange", |v| v.net())?,
                        gateway: config.with("Gateway", |v| v.ip())?,
                    })
                })
            })?
            .unwrap_or_default();
        Ok(Ipam { driver, options: ipam_options, configs })
    })?;
    let mut spec_options = options.clone();
    spec_options.remove(VXLAN_ID_LIST_OPTION);
    let mut network = Network {
        id: NetworkId::new(&id),
        version: at.version()?,
        spec: NetworkSpec {
            name,
            labels,
            driver: Some(DriverConfig { name: driver.clone(), options: spec_options }),
            ipam: None,
            ingress: at.with("Ingress", |v| v.boolean())?.unwrap_or(false),
            attachable: at.with("Attachable", |v| v.boolean())?.unwrap_or(false),
        },
        driver_state: Some(DriverConfig { name: driver, options }),
        ipam,
    };
    if network.scope() == DriverScope::NodeLocal {
        // The store holds an empty IPAM for node-local networks (allocator-spec.md 1.2); what
        // inspect shows comes from the node's own driver.
        network.spec.ipam = network.ipam.take();
        network.ipam = Some(Ipam::default());
    }
    Ok(Read::Object(Box::new(Object::Network(network))))
}

fn attachment_config(at: At<'_>) -> Result<NetworkAttachmentConfig, InputError> {
    let target = at.require("Target", |v| v.string())?;
    let mut config = NetworkAttachmentConfig::to(target.as_str());
    config.aliases = at.with("Aliases", |v| v.each(|a| a.string()))?.unwrap_or_default();
    config.driver_attachment_opts = at.with("DriverOpts", |v| v.string_map())?.unwrap_or_default();
    Ok(config)
}

fn port(at: At<'_>) -> Result<PortConfig, InputError> {
    let protocol =
        at.choice("Protocol", &[("tcp", Protocol::Tcp), ("udp", Protocol::Udp), ("sctp", Protocol::Sctp)])?;
    let publish_mode = at.choice("PublishMode", &[("ingress", PublishMode::Ingress), ("host", PublishMode::Host)])?;
    Ok(PortConfig {
        name: at.opt_string("Name")?.unwrap_or_default(),
        protocol: protocol.unwrap_or(Protocol::Tcp),
        target_port: at.with("TargetPort", |v| v.number::<u16>("a port number 0..=65535"))?.unwrap_or(0),
        published_port: at.with("PublishedPort", |v| v.number::<u16>("a port number 0..=65535"))?.unwrap_or(0),
        publish_mode: publish_mode.unwrap_or_default(),
    })
}

fn endpoint_spec(at: At<'_>) -> Result<EndpointSpec, InputError> {
    let mode = at
        .choice("Mode", &[("vip", ResolutionMode::Vip), ("dnsrr", ResolutionMode::Dnsrr), ("", ResolutionMode::Vip)])?;
    Ok(EndpointSpec { mode: mode.unwrap_or_default(), ports: at.with("Ports", |v| v.each(port))?.unwrap_or_default() })
}

/// `docker service inspect`. A VIP with an empty `Addr` is SwarmKit's entry for a node-local
/// network; the engine writes none, so it is dropped.
fn service(at: At<'_>) -> Result<Service, InputError> {
    let id = at.require("ID", |v| v.string())?;
    let spec = at.require("Spec", |spec| {
        let replicas =
            spec.with("Mode", |mode| mode.with("Replicated", |r| r.with("Replicas", |n| n.number("a count"))))?;
        Ok(ServiceSpec {
            name: spec.opt_string("Name")?.unwrap_or_default(),
            replicas: replicas.flatten().flatten().unwrap_or(0),
            task_networks: spec
                .with("TaskTemplate", |t| t.with("Networks", |n| n.each(attachment_config)))?
                .flatten()
                .unwrap_or_default(),
            networks: spec.with("Networks", |n| n.each(attachment_config))?.unwrap_or_default(),
            endpoint: spec.with("EndpointSpec", endpoint_spec)?,
        })
    })?;
    let endpoint = at.with("Endpoint", |endpoint| {
        let vips =
            endpoint
                .with("VirtualIPs", |vips| {
                    vips.each(|vip| {
                        let network_id = vip.require("NetworkID", |v| v.string())?;
                        let addr = vip.with("Addr", |a| {
                            if a.value.as_str() == Some("") { Ok(None) } else { a.address().map(Some) }
                        })?;
                        Ok(addr.flatten().map(|addr| VirtualIp { network_id: NetworkId::new(network_id), addr }))
                    })
                })?
                .unwrap_or_default();
        Ok(Endpoint {
            spec: endpoint.with("Spec", endpoint_spec)?.unwrap_or_default(),
            ports: endpoint.with("Ports", |v| v.each(port))?.unwrap_or_default(),
            virtual_ips: vips.into_iter().flatten().collect(),
        })
    })?;
    Ok(Service { id: ServiceId::new(id), version: at.version()?, spec, endpoint })
}

const TASK_STATES: [(&str, TaskState); 14] = [
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

/// One entry of a task's `NetworksAttachments` (or a node's `Attachments`): the embedded network
/// is only read for its `ID`; the store's network object is what the check trusts.
fn attachment(at: At<'_>) -> Result<NetworkAttachment, InputError> {
    let network_id = at.require("Network", |n| n.require("ID", |id| id.string()))?;
    Ok(NetworkAttachment {
        network_id: NetworkId::new(network_id),
        addresses: at.with("Addresses", |v| v.each(|a| a.address()))?.unwrap_or_default(),
        aliases: at.with("Aliases", |v| v.each(|a| a.string()))?.unwrap_or_default(),
        driver_attachment_opts: at.with("DriverAttachmentOpts", |v| v.string_map())?.unwrap_or_default(),
    })
}

/// `docker inspect <task id>` (or one item of `GET /tasks`).
fn task(at: At<'_>) -> Result<Task, InputError> {
    let id = at.require("ID", |v| v.string())?;
    let status = at
        .with("Status", |s| {
            Ok(TaskStatus {
                state: s.choice("State", &TASK_STATES)?.unwrap_or_default(),
                message: s.opt_string("Message")?.unwrap_or_default(),
            })
        })?
        .unwrap_or_default();
    Ok(Task {
        id: TaskId::new(id),
        version: at.version()?,
        service_id: at.opt_string("ServiceID")?.map(ServiceId::new),
        node_id: at.opt_string("NodeID")?.map(NodeId::new),
        slot: at.with("Slot", |v| v.number("a slot number"))?.unwrap_or(0),
        spec: TaskSpec {
            networks: at
                .with("Spec", |s| s.with("Networks", |n| n.each(attachment_config)))?
                .flatten()
                .unwrap_or_default(),
        },
        status,
        desired_state: at.choice("DesiredState", &TASK_STATES)?.unwrap_or_default(),
        networks: at.with("NetworksAttachments", |v| v.each(attachment))?.unwrap_or_default(),
        endpoint: None,
    })
}

/// `docker node inspect`. Docker's node API does not show the per-node load-balancer attachments
/// that the store keeps (SwarmKit's `Node.Attachments`); a node is checked only when the dump
/// carries them, under `Attachments` (or `NetworksAttachments`), in the task attachment shape.
fn node(at: At<'_>) -> Result<Read, InputError> {
    let id = at.require("ID", |v| v.string())?;
    let spec = at
        .with("Spec", |spec| {
            let role = spec.choice("Role", &[("worker", NodeRole::Worker), ("manager", NodeRole::Manager)])?;
            let availability = spec.choice(
                "Availability",
                &[
                    ("active", NodeAvailability::Active),
                    ("pause", NodeAvailability::Pause),
                    ("drain", NodeAvailability::Drain),
                ],
            )?;
            Ok(NodeSpec {
                name: spec.opt_string("Name")?.unwrap_or_default(),
                role: role.unwrap_or_default(),
                availability: availability.unwrap_or_default(),
            })
        })?
        .unwrap_or_default();
    let attachments = match at.with("Attachments", |v| v.each(attachment))? {
        Some(list) => Some(list),
        None => at.with("NetworksAttachments", |v| v.each(attachment))?,
    };
    let Some(attachments) = attachments else {
        return Ok(Read::Skip(format!(
            "node {id}: Docker's node API does not show its load-balancer attachments, so they are not checked"
        )));
    };
    let mut spec = spec;
    if spec.name.is_empty() {
        spec.name = at.with("Description", |d| d.opt_string("Hostname"))?.flatten().unwrap_or_default();
    }
    let node = Node { id: NodeId::new(id), version: at.version()?, spec, attachments };
    Ok(Read::Object(Box::new(Object::Node(node))))
}
