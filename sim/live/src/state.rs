//! A real swarm's state, read through the API, as the check reads it: the networks, services,
//! tasks (the network-attachment tasks of standalone containers too) and nodes, in the shape
//! `docker inspect` prints, then loaded by `swarmalloc_reports` into engine objects.
//!
//! Kept small on purpose: `gather.rs` (the check engineer's) is the project's state gathering,
//! and this moves onto it once it lands.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use swarmalloc::Object;
use swarmalloc_reports::{CheckReport, Dump, InputError};

use crate::Endpoint;
use crate::raw::{RawError, get_json};

/// What the API shows of a swarm at one moment, as the API's JSON (each list is one request;
/// the lists are not one snapshot of the store, so an object may change between them).
#[derive(Clone, Debug, Default)]
pub struct RealState {
    pub networks: Vec<Value>,
    pub services: Vec<Value>,
    pub tasks: Vec<Value>,
    pub nodes: Vec<Value>,
    /// The id of the node that answered.
    pub local_node: String,
    /// The answering node's load balancers that the API shows, by network id: Docker's node API
    /// does not show a node's load-balancer attachments, and a network's inspect lists the
    /// node's one (`lb-NAME`, `ingress-sbox`) only while the network is set up on that node
    /// (the ingress often is not, although the store gives the node an address on it).
    pub load_balancers: BTreeMap<String, Vec<String>>,
}

/// `filters={"runtime":["attachment"]}`, URL-encoded.
const ATTACHMENT_TASKS: &str = "/tasks?filters=%7B%22runtime%22%3A%5B%22attachment%22%5D%7D";

impl RealState {
    /// Reads the swarm at `endpoint`, speaking API `version` (e.g. "1.41").
    pub async fn read(endpoint: &Endpoint, version: &str) -> Result<RealState, RawError> {
        let get = |path: String| async move { get_json(&endpoint.socket, version, &path).await };
        let mut networks = Vec::new();
        for listed in array(get("/networks".into()).await?) {
            if listed.get("Scope").and_then(Value::as_str) != Some("swarm") {
                continue;
            }
            let Some(id) = listed.get("Id").and_then(Value::as_str) else { continue };
            // Listed, then removed before its inspect: it is gone.
            match get(format!("/networks/{id}")).await {
                Ok(network) => networks.push(network),
                Err(RawError::Status { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let services = array(get("/services".into()).await?);
        let mut tasks = array(get("/tasks".into()).await?);
        // `GET /tasks` leaves out the tasks that attach standalone containers to networks.
        for task in array(get(ATTACHMENT_TASKS.into()).await?) {
            if !tasks.iter().any(|t| t.get("ID") == task.get("ID")) {
                tasks.push(task);
            }
        }
        let nodes = array(get("/nodes".into()).await?);
        let info = get("/info".into()).await?;
        let local_node = info.pointer("/Swarm/NodeID").and_then(Value::as_str).unwrap_or_default().to_string();
        let load_balancers = load_balancers(&networks);
        Ok(RealState { networks, services, tasks, nodes, local_node, load_balancers })
    }

    /// Every object as one JSON array in `docker inspect`'s shape. The nodes carry no
    /// `Attachments` (see [`RealState::load_balancers`]), so the check leaves them out.
    pub fn to_json(&self) -> Value {
        let all = [&self.networks, &self.services, &self.tasks, &self.nodes];
        Value::Array(all.into_iter().flatten().cloned().collect())
    }

    /// Writes [`RealState::to_json`] to `dir/state.json` (the file a check reads back).
    pub fn write(&self, dir: &Path) -> std::io::Result<std::path::PathBuf> {
        let path = dir.join("state.json");
        let text = serde_json::to_string_pretty(&self.to_json()).map_err(std::io::Error::other)?;
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// The state as the check loads it (through a file, as `allocsim check` reads one).
    pub fn dump(&self) -> Result<Dump, InputError> {
        let dir = tempfile::tempdir()
            .map_err(|e| InputError::Io { file: "a temporary directory".into(), message: e.to_string() })?;
        let path =
            self.write(dir.path()).map_err(|e| InputError::Io { file: dir.path().into(), message: e.to_string() })?;
        swarmalloc_reports::load(&path)
    }

    /// `allocsim check` of this state.
    pub fn check(&self) -> Result<CheckReport, InputError> {
        let dump = self.dump()?;
        swarmalloc_reports::check_dump(&dump, "the real swarm")
    }

    /// The engine objects the check reads.
    pub fn objects(&self) -> Result<Vec<Object>, InputError> {
        Ok(self.dump()?.objects)
    }
}

/// The load balancers a network's inspect lists (`lb-NAME`, `ingress-sbox`), by network id.
fn load_balancers(networks: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for network in networks {
        let id = network.get("Id").and_then(Value::as_str).unwrap_or_default();
        let Some(containers) = network.get("Containers").and_then(Value::as_object) else { continue };
        for (key, endpoint) in containers {
            if !(key.starts_with("lb-") || key == "ingress-sbox") {
                continue;
            }
            let addresses = ["IPv4Address", "IPv6Address"]
                .iter()
                .filter_map(|family| endpoint.get(family).and_then(Value::as_str))
                .filter(|a| !a.is_empty())
                .map(str::to_string);
            out.entry(id.to_string()).or_insert_with(Vec::new).extend(addresses);
        }
    }
    out
}

fn array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

impl RealState {
    /// What the swarm still has to do for the last requests, in words; None when nothing: every
    /// replicated service has as many allocated tasks (past NEW) with desired state RUNNING as it
    /// asks for, and no task of a removed service is left.
    pub fn unsettled(&self) -> Option<String> {
        let str_at = |v: &Value, path: &[&str]| -> String {
            let mut at = v;
            for key in path {
                at = at.get(key).unwrap_or(&Value::Null);
            }
            at.as_str().unwrap_or_default().to_string()
        };
        for service in &self.services {
            let id = str_at(service, &["ID"]);
            let name = str_at(service, &["Spec", "Name"]);
            let Some(replicas) = service.pointer("/Spec/Mode/Replicated/Replicas").and_then(Value::as_u64) else {
                continue;
            };
            let wanted: Vec<&Value> = self
                .tasks
                .iter()
                .filter(|t| str_at(t, &["ServiceID"]) == id && str_at(t, &["DesiredState"]) == "running")
                .collect();
            let allocated = wanted.iter().filter(|t| str_at(t, &["Status", "State"]) != "new").count();
            if wanted.len() as u64 != replicas || allocated != wanted.len() {
                return Some(format!(
                    "service {name}: {} tasks want to run, {allocated} of them allocated, {replicas} replicas asked",
                    wanted.len()
                ));
            }
        }
        let services: Vec<String> = self.services.iter().map(|s| str_at(s, &["ID"])).collect();
        if let Some(task) = self.tasks.iter().find(|t| {
            let service = str_at(t, &["ServiceID"]);
            !service.is_empty() && !services.contains(&service)
        }) {
            return Some(format!(
                "task {} of removed service {} is still in the store ({})",
                str_at(task, &["ID"]),
                str_at(task, &["ServiceID"]),
                str_at(task, &["Status", "State"])
            ));
        }
        None
    }

    /// The ids and store versions of every object: equal signatures, nothing changed.
    pub fn signature(&self) -> Vec<(String, u64)> {
        let all = [&self.networks, &self.services, &self.tasks, &self.nodes];
        let mut out: Vec<(String, u64)> = all
            .into_iter()
            .flatten()
            .map(|o| {
                let id = o.get("ID").or_else(|| o.get("Id")).and_then(Value::as_str).unwrap_or_default();
                (id.to_string(), o.pointer("/Version/Index").and_then(Value::as_u64).unwrap_or(0))
            })
            .collect();
        out.sort();
        out
    }
}
