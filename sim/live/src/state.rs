//! A real swarm's state as the tests and tools read it: what [`crate::gather`] gathers (the
//! files `allocsim check` reads), with the lists parsed for the waits and the differential.

use std::collections::BTreeMap;

use serde_json::Value;
use swarmalloc::Object;
use swarmalloc_reports::{CheckReport, Dump, InputError, load_texts};

use crate::Endpoint;
use crate::gather::{GatherError, Gathered, gather_from};

/// What the API shows of a swarm at one moment (each list is one request; the lists are not one
/// snapshot of the store, so an object may change between them).
#[derive(Clone, Debug)]
pub struct RealState {
    pub gathered: Gathered,
    /// The swarm's networks (scope `swarm`), services, tasks (the network-attachment tasks of
    /// standalone containers too) and nodes, as the API's JSON.
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

impl RealState {
    /// Gathers the swarm at `endpoint`.
    pub async fn read(endpoint: &Endpoint, timeout_s: u64) -> Result<RealState, GatherError> {
        Ok(RealState::of(gather_from(endpoint, timeout_s).await?))
    }

    /// The gathered files, parsed.
    pub fn of(gathered: Gathered) -> RealState {
        let file = |name: &str| -> Value {
            let text = gathered.files.iter().find(|(f, _)| f.as_os_str() == name).map_or("null", |(_, t)| t.as_str());
            serde_json::from_str(text).unwrap_or(Value::Null)
        };
        let networks: Vec<Value> = array(file("networks.json"))
            .into_iter()
            .filter(|n| n.get("Scope").and_then(Value::as_str) == Some("swarm"))
            .collect();
        let local_node = file("swarm.json").get("NodeID").and_then(Value::as_str).unwrap_or_default().to_string();
        let load_balancers = load_balancers(&networks);
        RealState {
            services: array(file("services.json")),
            tasks: array(file("tasks.json")),
            nodes: array(file("nodes.json")),
            networks,
            local_node,
            load_balancers,
            gathered,
        }
    }

    /// The state as the check loads it.
    pub fn dump(&self) -> Result<Dump, InputError> {
        load_texts(&self.gathered.files)
    }

    /// `allocsim check` of this state.
    pub fn check(&self) -> Result<CheckReport, InputError> {
        self.gathered.check()
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
