//! Loads a cluster state dump into engine objects: a directory of JSON files, one file, or the
//! files `swarmalloc-live`'s gather produced in memory. Each file is either the project's store
//! snapshot (`{"networks": [...], "services": [...], "tasks": [...], "nodes": [...], "config":
//! {...}}` of the engine's serde types) or Docker inspect output (one object, an array, or
//! several arrays one after the other as `>>` appends them). Owns file discovery, format
//! detection, merging the objects of several files, and what the dump says beside the objects
//! (the cluster's address pools, the load balancers of the node that answered, networks gone
//! from the store).
//!
//! A file that is not JSON is unreadable (exit 2); one object that does not fit its shape is
//! kept as an [`Unreadable`] and the others are read.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Serialize;
use serde_json::Value;
use swarmalloc::{ClusterConfig, NetworkAttachment, NetworkId, Node, NodeId, Object, ObjectId, TaskId};

use crate::docker::{self, Docker, GATHER_SCHEMA, Kind};
use crate::error::{InputError, syntax_position};

/// The keys of a store snapshot; a top-level object with only these keys is one.
const SNAPSHOT_KEYS: [&str; 5] = ["networks", "services", "tasks", "nodes", "config"];

/// Something in the dump that the check does not read, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Skipped {
    /// `file: path` of the value.
    pub place: String,
    pub reason: String,
}

/// An object of the dump that does not fit its shape: the check goes on without it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Unreadable {
    /// `file: path` of the object.
    pub place: String,
    /// What the object looks like (`None`: no known kind).
    pub kind: Option<Kind>,
    /// The id and name it shows, when they can be read.
    pub id: Option<String>,
    pub name: Option<String>,
    /// The path of the bad value inside the object (empty: the object itself).
    pub at: String,
    /// What was wrong and what was expected there.
    pub error: String,
}

/// Everything read from a dump, ready for `Allocator::restore`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dump {
    pub config: ClusterConfig,
    /// Where the config came from (`None`: SwarmKit's defaults, the dump does not show it).
    pub config_source: Option<String>,
    /// Sorted by id: networks, services, tasks, nodes.
    pub objects: Vec<Object>,
    /// Where each object was read (`file: path`).
    pub sources: BTreeMap<ObjectId, String>,
    pub skipped: Vec<Skipped>,
    pub unreadable: Vec<Unreadable>,
    /// Nodes whose load-balancer attachments come from network inspects on that node: the
    /// networks whose inspect showed one. On the other networks the node's address is unknown.
    pub lb_known: BTreeMap<NodeId, BTreeSet<NetworkId>>,
    /// The container each network-attachment task (`docker run --network`) stands for.
    pub containers: BTreeMap<TaskId, String>,
    /// Container names by container id, from the network inspects of the node that answered.
    pub container_names: BTreeMap<String, String>,
    /// Networks gone from the store that the gather's manifest names, by id: their names.
    pub gone_networks: BTreeMap<NetworkId, String>,
}

/// Reads a directory (every `*.json` file in it, by name, not recursive) or a single file.
pub fn load(path: &Path) -> Result<Dump, InputError> {
    let io = |e: std::io::Error| InputError::Io { file: path.to_path_buf(), message: e.to_string() };
    let files: Vec<PathBuf> = if fs::metadata(path).map_err(io)?.is_dir() {
        let mut files = Vec::new();
        for entry in fs::read_dir(path).map_err(io)? {
            let file = entry.map_err(io)?.path();
            if file.extension().is_some_and(|e| e == "json") && file.is_file() {
                files.push(file);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(InputError::Io {
                file: path.to_path_buf(),
                message: "the directory holds no *.json file".into(),
            });
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut texts = Vec::with_capacity(files.len());
    for file in files {
        let bytes = fs::read(&file).map_err(|e| InputError::Io { file: file.clone(), message: e.to_string() })?;
        let text = String::from_utf8(bytes)
            .map_err(|e| InputError::Io { file: file.clone(), message: format!("not UTF-8 text: {e}") })?;
        texts.push((file, text));
    }
    load_texts(&texts)
}

/// Reads files already in memory, as (name, text), in the order given: what `load` does after
/// reading a directory, and what a check of a live swarm does with the gathered files.
pub fn load_texts(files: &[(PathBuf, String)]) -> Result<Dump, InputError> {
    let mut loader = Loader::default();
    for (file, text) in files {
        loader.file(file, text)?;
    }
    Ok(loader.finish())
}

#[derive(Default)]
struct Loader {
    objects: BTreeMap<ObjectId, (Object, String)>,
    skipped: Vec<Skipped>,
    unreadable: Vec<Unreadable>,
    config: Option<(ClusterConfig, String)>,
    /// The node that answered the network inspects (`docker info`'s `.Swarm.NodeID`).
    local_node: Option<(String, String)>,
    /// Load-balancer endpoints seen in network inspects: network -> (addresses, place).
    load_balancers: BTreeMap<NetworkId, (Vec<IpNet>, String)>,
    /// Whether any network inspect showed its endpoints (`Containers`).
    endpoints_seen: bool,
    /// Nodes without attachments in the dump: they get the local node's load balancers, or are skipped.
    bare_nodes: Vec<(Node, String)>,
    gone: BTreeMap<NetworkId, String>,
    containers: BTreeMap<TaskId, String>,
    container_names: BTreeMap<String, String>,
}

impl Loader {
    fn file(&mut self, file: &Path, text: &str) -> Result<(), InputError> {
        let mut documents = Vec::new();
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        let mut start = 0;
        while let Some(document) = stream.next() {
            documents.push(document.map_err(|e| syntax(file, text, start, &e))?);
            start = stream.byte_offset();
        }
        if documents.is_empty() {
            return Err(InputError::Invalid {
                file: file.to_path_buf(),
                path: String::new(),
                reason: "the file holds no JSON value".into(),
            });
        }
        if let [Value::Object(map)] = documents.as_slice()
            && !map.is_empty()
            && map.keys().all(|k| SNAPSHOT_KEYS.contains(&k.as_str()))
        {
            return self.snapshot(file, map);
        }
        let several = documents.len() > 1;
        for (n, document) in documents.iter().enumerate() {
            let root = if several { format!("(document {})", n + 1) } else { String::new() };
            match document {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.docker(file, &format!("{root}[{i}]"), item)?;
                    }
                }
                Value::Object(_) => self.docker(file, &root, document)?,
                other => {
                    return Err(InputError::Field {
                        file: file.to_path_buf(),
                        path: root,
                        expected: "an array of Docker objects, one Docker object, or a store snapshot".into(),
                        found: docker::describe(other),
                    });
                }
            }
        }
        Ok(())
    }

    fn bad(&mut self, place: String, kind: Option<Kind>, value: &Value, at: String, error: String) {
        let (id, name) = value.as_object().map(docker::identify).unwrap_or_default();
        self.unreadable.push(Unreadable { place, kind, id, name, at, error });
    }

    /// One Docker object at `path` of `file`.
    fn docker(&mut self, file: &Path, path: &str, value: &Value) -> Result<(), InputError> {
        let place = place(file, path);
        let Some(map) = value.as_object() else {
            let error =
                format!("expected a Docker network, service, task or node object, found {}", docker::describe(value));
            self.bad(place, None, value, String::new(), error);
            return Ok(());
        };
        let Some(kind) = docker::classify(map) else {
            let error = "an object that is no Docker network (`IPAM`), task (`DesiredState`), service \
                         (`Spec.TaskTemplate`), node (`Spec.Role`) or swarm info (`Cluster`)"
                .to_string();
            self.bad(place, None, value, String::new(), error);
            return Ok(());
        };
        if kind == Kind::Gather
            && let Some(schema) = map.get("schema").and_then(Value::as_str).filter(|s| *s != GATHER_SCHEMA)
        {
            // Before its fields are read: another version may have other fields.
            let error = format!(
                "a gather manifest of schema {schema:?}: this check reads {GATHER_SCHEMA:?} (it was gathered by \
                 another version of allocsim)"
            );
            self.bad(place, Some(kind), value, "schema".into(), error);
            return Ok(());
        }
        let read = match docker::deserialize(kind, value) {
            Ok(read) => read,
            Err(e) => {
                let at = e.path().to_string();
                let at = if at == "." { String::new() } else { at };
                self.bad(place, Some(kind), value, at, e.into_inner().to_string());
                return Ok(());
            }
        };
        match read {
            Docker::Network(n) => {
                // A shown endpoint list (even an empty one) says the inspect came from a node.
                self.endpoints_seen |= n.containers.is_some();
                for (id, name) in n.container_names() {
                    self.container_names.insert(id.to_string(), name.to_string());
                }
                match n.to_network(swarmalloc::Version(0)) {
                    None => {
                        let scope = n.scope.as_deref().unwrap_or("");
                        let name = n.name.as_deref().unwrap_or("");
                        let reason =
                            format!("network {name} ({}) has scope {scope:?}: it is not in the swarm store", n.id);
                        self.skipped.push(Skipped { place, reason });
                    }
                    Some(network) => {
                        if let Some(addresses) = n.load_balancer() {
                            self.load_balancers.entry(network.id.clone()).or_insert((addresses, place.clone()));
                        }
                        self.add(place, Object::Network(network))?;
                    }
                }
            }
            Docker::Service(s) => self.add(place, Object::Service(s.to_service()))?,
            Docker::Task(t) => {
                if let Some(container) = t.container() {
                    self.containers.insert(TaskId::new(&t.id), container.to_string());
                }
                self.add(place, Object::Task(t.to_task()))?;
            }
            Docker::Node(n) => match n.to_node() {
                (mut node, Some(attachments)) => {
                    node.attachments = attachments;
                    self.add(place, Object::Node(node))?;
                }
                (node, None) => self.bare_nodes.push((node, place)),
            },
            Docker::Swarm(s) => {
                if let Some(config) = s.config() {
                    self.set_config(config, &place, file)?;
                }
                if let Some(node) = s.node_id.filter(|n| !n.is_empty()) {
                    match &self.local_node {
                        Some((other, first)) if *other != node => {
                            return Err(InputError::Conflict {
                                id: "the node that answered (`.Swarm.NodeID`)".into(),
                                first: first.clone(),
                                second: place,
                            });
                        }
                        _ => self.local_node = Some((node, place)),
                    }
                }
            }
            Docker::Gather(g) => {
                for network in &g.not_in_store {
                    self.gone.insert(NetworkId::new(&network.id), network.name.clone());
                }
            }
        }
        Ok(())
    }

    fn set_config(&mut self, config: ClusterConfig, place: &str, file: &Path) -> Result<(), InputError> {
        config.validate().map_err(|e| InputError::Invalid {
            file: file.to_path_buf(),
            path: place.rsplit_once(": ").map_or("", |(_, p)| p).to_string(),
            reason: e.to_string(),
        })?;
        match &self.config {
            Some((other, first)) if *other != config => Err(InputError::Conflict {
                id: "the cluster config".into(),
                first: first.clone(),
                second: place.to_string(),
            }),
            _ => {
                self.config = Some((config, place.to_string()));
                Ok(())
            }
        }
    }

    fn snapshot(&mut self, file: &Path, map: &serde_json::Map<String, Value>) -> Result<(), InputError> {
        if let Some(config) = map.get("config") {
            let config: ClusterConfig = serde_path_to_error::deserialize(config).map_err(|e| InputError::Invalid {
                file: file.to_path_buf(),
                path: format!("config.{}", e.path()),
                reason: e.into_inner().to_string(),
            })?;
            self.set_config(config, &place(file, "config"), file)?;
        }
        for key in ["networks", "services", "tasks", "nodes"] {
            let Some(list) = map.get(key) else { continue };
            let Some(items) = list.as_array() else {
                self.bad(
                    place(file, key),
                    None,
                    list,
                    String::new(),
                    format!("expected an array, found {}", docker::describe(list)),
                );
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                let path = format!("{key}[{i}]");
                let (kind, object) = match key {
                    "networks" => (Kind::Network, serde_path_to_error::deserialize(item).map(Object::Network)),
                    "services" => (Kind::Service, serde_path_to_error::deserialize(item).map(Object::Service)),
                    "tasks" => (Kind::Task, serde_path_to_error::deserialize(item).map(Object::Task)),
                    _ => (Kind::Node, serde_path_to_error::deserialize(item).map(Object::Node)),
                };
                match object {
                    Ok(object) => self.add(place(file, &path), object)?,
                    Err(e) => {
                        let at = e.path().to_string();
                        let at = if at == "." { String::new() } else { at };
                        let (id, name) = item
                            .as_object()
                            .map(|m| {
                                let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
                                (
                                    text("id"),
                                    m.get("spec")
                                        .and_then(|s| s.get("name"))
                                        .and_then(Value::as_str)
                                        .map(str::to_string),
                                )
                            })
                            .unwrap_or_default();
                        let error = e.into_inner().to_string();
                        self.unreadable.push(Unreadable {
                            place: place(file, &path),
                            kind: Some(kind),
                            id,
                            name,
                            at,
                            error,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Keeps one copy per id: identical copies merge, the higher version wins, and two different
    /// copies of one version are an error (the dump cannot say which one the store holds).
    fn add(&mut self, place: String, object: Object) -> Result<(), InputError> {
        let id = object.id();
        match self.objects.get(&id) {
            None => {}
            Some((old, _)) if *old == object => return Ok(()),
            Some((old, old_place)) if old.version() == object.version() => {
                return Err(InputError::Conflict { id: id.to_string(), first: old_place.clone(), second: place });
            }
            Some((old, old_place)) => {
                let (kept, dropped) = if old.version() > object.version() {
                    (old_place.clone(), place.clone())
                } else {
                    (place.clone(), old_place.clone())
                };
                self.skipped
                    .push(Skipped { place: dropped, reason: format!("an older copy of {id}; {kept} is newer") });
                if old.version() > object.version() {
                    return Ok(());
                }
            }
        }
        self.objects.insert(id, (object, place));
        Ok(())
    }

    fn finish(mut self) -> Dump {
        // Networks removed from the store while this node still had them.
        for (id, name) in &self.gone {
            let what = format!("{name} ({id})");
            let key = ObjectId::Network(id.clone());
            let place = self.objects.remove(&key).map_or_else(|| "gather.json".to_string(), |(_, place)| place);
            let reason = format!(
                "network {what} is gone from the swarm store: only the node that answered still had it (a removal \
                 still in progress there)"
            );
            self.skipped.push(Skipped { place, reason });
        }
        let mut lb_known = BTreeMap::new();
        for (mut node, place) in std::mem::take(&mut self.bare_nodes) {
            let local = self.local_node.as_ref().is_some_and(|(id, _)| *id == node.id.as_str());
            if !(local && self.endpoints_seen) {
                let reason = format!(
                    "node {} ({}): Docker's node API does not show its load-balancer attachments, so they are not \
                     checked",
                    node.spec.name, node.id
                );
                self.skipped.push(Skipped { place, reason });
                continue;
            }
            // The node answered the network inspects: its load balancers are the `lb-NAME` and
            // `ingress-sbox` endpoints, on the networks in use there.
            let mut attachments: Vec<(bool, NetworkAttachment)> = Vec::new();
            let mut known = BTreeSet::new();
            for (network, (addresses, _)) in &self.load_balancers {
                let Some((Object::Network(n), _)) = self.objects.get(&ObjectId::Network(network.clone())) else {
                    continue;
                };
                known.insert(network.clone());
                attachments.push((
                    !n.is_ingress(),
                    NetworkAttachment {
                        network_id: network.clone(),
                        addresses: addresses.clone(),
                        aliases: Vec::new(),
                        driver_attachment_opts: BTreeMap::new(),
                    },
                ));
            }
            // The engine's order: the ingress first, then by network id.
            attachments.sort_by(|a, b| (a.0, &a.1.network_id).cmp(&(b.0, &b.1.network_id)));
            node.attachments = attachments.into_iter().map(|(_, a)| a).collect();
            lb_known.insert(node.id.clone(), known);
            if let Err(e) = self.add(place.clone(), Object::Node(node)) {
                self.skipped.push(Skipped { place, reason: e.to_string() });
            }
        }
        let mut skipped = self.skipped;
        skipped.sort();
        let mut unreadable = self.unreadable;
        unreadable.sort();
        let mut sources = BTreeMap::new();
        let mut objects = Vec::with_capacity(self.objects.len());
        for (id, (object, source)) in self.objects {
            sources.insert(id, source);
            objects.push(object);
        }
        let (config, config_source) = match self.config {
            Some((config, place)) => (config, Some(place)),
            None => (ClusterConfig::default(), None),
        };
        Dump {
            config,
            config_source,
            objects,
            sources,
            skipped,
            unreadable,
            lb_known,
            containers: self.containers,
            container_names: self.container_names,
            gone_networks: self.gone,
        }
    }
}

fn place(file: &Path, path: &str) -> String {
    format!("{}: {}", file.display(), if path.is_empty() { "the top level" } else { path })
}

fn syntax(file: &Path, text: &str, start: usize, e: &serde_json::Error) -> InputError {
    let (line, column, path, message) = syntax_position(text, start, e);
    InputError::Syntax { file: file.to_path_buf(), line, column, path, message }
}

impl Dump {
    /// A dump of objects already in memory (a simulator's store), with the given config.
    pub fn of(config: ClusterConfig, objects: Vec<Object>) -> Dump {
        let mut objects = objects;
        objects.sort_by_key(Object::id);
        Dump {
            config,
            config_source: None,
            sources: objects.iter().map(|o| (o.id(), String::new())).collect(),
            objects,
            skipped: Vec::new(),
            unreadable: Vec::new(),
            lb_known: BTreeMap::new(),
            containers: BTreeMap::new(),
            container_names: BTreeMap::new(),
            gone_networks: BTreeMap::new(),
        }
    }
}
