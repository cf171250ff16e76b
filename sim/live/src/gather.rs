//! Gathers a live swarm's state for `allocsim check` through the Docker Engine API, read-only
//! (GET requests only: version, info, networks, services, tasks, nodes; bollard negotiates the
//! API version, the JSON is read raw because bollard's models leave out a task's
//! `NetworksAttachments`), into the files a dump
//! directory holds, in the shapes `docker ... inspect` prints, so that one parser
//! (`swarmalloc_reports::load_texts`) reads a live swarm, a saved gather and a hand-made dump.
//!
//! What it gathers beyond the README's `docker ... inspect` recipe, all seen on a real swarm:
//! - the network-attachment tasks of standalone containers (`docker run --network NET`), which
//!   `GET /tasks` lists only with the filter `runtime=attachment`;
//! - tasks of removed services still shutting down (`GET /tasks` lists every task in the store);
//! - the cluster's default address pools and subnet size (`.Swarm.Cluster` of `GET /info`);
//! - the load balancer of the node that answers, on each network in use there: a network's
//!   inspect on that node lists it as the `lb-NAME` (`ingress-sbox`) endpoint;
//! - networks that `GET /networks` lists from the answering node's own copy only, because they
//!   are already gone from the store (a removal still in progress there), named in `gather.json`.
//!
//! The files: `swarm.json` (`.Swarm` of `GET /info`, without the CA certificate), `networks.json`,
//! `services.json`, `tasks.json`, `nodes.json` (arrays sorted by id) and `gather.json` (see
//! `swarmalloc_reports::GatherManifest`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyperlocal::{UnixClientExt, UnixConnector};
use serde_json::{Map, Value};
use swarmalloc_reports::{
    CheckReport, GATHER_SCHEMA, GatherManifest, GoneNetwork, InputError, Output, check_dump, load_texts,
};

use crate::Endpoint;

/// Why a live swarm could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("cannot start a runtime for the Docker API client: {0}")]
    Runtime(std::io::Error),
    #[error("{socket}: {what}: {source}")]
    Api { socket: String, what: &'static str, source: bollard::errors::Error },
    #[error("{socket}: {what}: {message}")]
    Http { socket: String, what: &'static str, message: String },
    #[error(
        "{socket}: this daemon is not a swarm manager (`docker info` says LocalNodeState={state:?}, ControlAvailable={manager}): the swarm's store can be read only from a manager"
    )]
    NotManager { socket: String, state: String, manager: bool },
    #[error("cannot save the gathered dump into {dir}: {message}")]
    Save { dir: PathBuf, message: String },
    #[error("the gathered state: {0}")]
    Check(InputError),
}

/// The gathered files, as (file name, JSON text), in the order a directory read gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gathered {
    /// `unix:///path/to/docker.sock`.
    pub source: String,
    pub files: Vec<(PathBuf, String)>,
}

impl Gathered {
    /// Writes the files into `dir` (created if missing), all or nothing, for sharing: `allocsim
    /// check DIR` reads them back to the same problems. Refuses a directory that holds other
    /// `*.json` files, which the check of the directory would read together with the gather's.
    pub fn save(&self, dir: &Path) -> Result<(), GatherError> {
        let ours: Vec<&Path> = self.files.iter().map(|(name, _)| name.as_path()).collect();
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut strays: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|e| PathBuf::from(e.file_name()))
                .filter(|name| name.extension().is_some_and(|e| e == "json") && !ours.contains(&name.as_path()))
                .map(|name| name.display().to_string())
                .collect();
            if !strays.is_empty() {
                strays.sort();
                return Err(GatherError::Save {
                    dir: dir.to_path_buf(),
                    message: format!(
                        "it holds other JSON files ({}), which `allocsim check` of the directory would read with the \
                         gathered ones: use an empty or new directory",
                        strays.join(", ")
                    ),
                });
            }
        }
        let files = self.files.iter().map(|(name, text)| (name.display().to_string(), text.clone())).collect();
        swarmalloc_reports::write_files(dir, &Output { dirs: Vec::new(), files })
            .map(|_| ())
            .map_err(|e| GatherError::Save { dir: dir.to_path_buf(), message: e.to_string() })
    }

    /// Checks the gathered state, as `allocsim check` of the saved directory would.
    pub fn check(&self) -> Result<CheckReport, InputError> {
        let dump = load_texts(&self.files)?;
        check_dump(&dump, &self.source)
    }
}

/// `allocsim check` of a live swarm: gathers what `endpoint` serves (read-only), writes the dump
/// into `save` when given (for sharing), and checks the gathered state.
pub fn check_live(endpoint: &Endpoint, save: Option<&Path>, timeout_s: u64) -> Result<CheckReport, GatherError> {
    let gathered = gather(endpoint, timeout_s)?;
    if let Some(dir) = save {
        gathered.save(dir)?;
    }
    gathered.check().map_err(GatherError::Check)
}

/// Gathers the swarm that `endpoint` serves, in a runtime of its own.
pub fn gather(endpoint: &Endpoint, timeout_s: u64) -> Result<Gathered, GatherError> {
    let runtime =
        real_tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(GatherError::Runtime)?;
    runtime.block_on(gather_from(endpoint, timeout_s))
}

/// A read-only client: GET requests of raw JSON, at the API version bollard negotiated.
struct Api {
    client: Client<UnixConnector, Full<Bytes>>,
    socket: PathBuf,
    source: String,
    version: String,
}

impl Api {
    async fn get(&self, what: &'static str, path: &str) -> Result<Value, GatherError> {
        let fail = |message: String| GatherError::Http { socket: self.source.clone(), what, message };
        let uri: hyper::Uri = hyperlocal::Uri::new(&self.socket, &format!("/v{}{path}", self.version)).into();
        let response = self.client.get(uri).await.map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| fail(e.to_string()))?.to_bytes();
        if !status.is_success() {
            return Err(fail(format!("{status}: {}", String::from_utf8_lossy(&body).trim())));
        }
        serde_json::from_slice(&body).map_err(|e| fail(format!("the answer is not JSON: {e}")))
    }
}

/// Gathers through the endpoint (GET requests only).
pub async fn gather_from(endpoint: &Endpoint, timeout_s: u64) -> Result<Gathered, GatherError> {
    let source = format!("unix://{}", endpoint.socket.display());
    let docker = endpoint.connect(timeout_s).await.map_err(|e| GatherError::Api {
        socket: source.clone(),
        what: "connect",
        source: e,
    })?;
    let api = Api {
        client: Client::unix(),
        socket: endpoint.socket.clone(),
        source: source.clone(),
        version: docker.client_version().to_string(),
    };
    let version = api.get("GET /version", "/version").await?;
    let info = api.get("GET /info", "/info").await?;
    let mut swarm = info.get("Swarm").cloned().unwrap_or(Value::Null);
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let manager = swarm.get("ControlAvailable").and_then(Value::as_bool).unwrap_or(false);
    if !manager {
        return Err(GatherError::NotManager { socket: source, state: text(&swarm, "LocalNodeState"), manager });
    }
    // The CA certificate is no part of the allocator's state; leave it out of shared dumps.
    if let Some(cluster) = swarm.get_mut("Cluster").and_then(Value::as_object_mut) {
        cluster.remove("TLSInfo");
    }
    let mut manifest = GatherManifest {
        schema: GATHER_SCHEMA.to_string(),
        source: source.clone(),
        daemon: text(&version, "Version"),
        api_version: api.version.clone(),
        not_in_store: Vec::new(),
    };
    let mut networks = Vec::new();
    for mut network in list(api.get("GET /networks", "/networks").await?) {
        let id = text(&network, "Id");
        if network.get("Scope").and_then(Value::as_str) != Some("swarm") {
            networks.push(network);
            continue;
        }
        // The list takes swarm networks from the store, without endpoints (`"Containers":
        // null`), and adds the answering node's own copies of networks the store no longer
        // has, with their endpoints (`{}` or more).
        if network.get("Containers").is_some_and(|c| !c.is_null()) {
            manifest.not_in_store.push(GoneNetwork { id, name: text(&network, "Name") });
            continue;
        }
        // The node's endpoints (its load balancer among them) are in the network's inspect; the
        // allocation is taken from the store's copy in the list.
        match api.get("GET /networks/{id}", &format!("/networks/{id}")).await {
            Ok(inspect) => {
                if let (Some(object), Some(containers)) = (network.as_object_mut(), inspect.get("Containers")) {
                    object.insert("Containers".into(), containers.clone());
                }
            }
            // Removed between the list and the inspect: keep what the list showed.
            Err(GatherError::Http { message, .. }) if message.starts_with("404") => {}
            Err(e) => return Err(e),
        }
        networks.push(network);
    }
    let services = list(api.get("GET /services", "/services").await?);
    let mut tasks: BTreeMap<String, Value> = BTreeMap::new();
    for task in list(api.get("GET /tasks", "/tasks").await?) {
        tasks.insert(text(&task, "ID"), task);
    }
    // Network-attachment tasks of standalone containers: listed only when asked for by runtime.
    let filter = "/tasks?filters=%7B%22runtime%22%3A%5B%22attachment%22%5D%7D";
    for task in list(api.get("GET /tasks?filters={\"runtime\":[\"attachment\"]}", filter).await?) {
        tasks.insert(text(&task, "ID"), task);
    }
    let nodes = list(api.get("GET /nodes", "/nodes").await?);
    let manifest = serde_json::to_value(&manifest).expect("the manifest is plain data");
    let files = vec![
        (PathBuf::from("gather.json"), pretty(&manifest)),
        (PathBuf::from("networks.json"), pretty(&by_id(networks, "Id"))),
        (PathBuf::from("nodes.json"), pretty(&by_id(nodes, "ID"))),
        (PathBuf::from("services.json"), pretty(&by_id(services, "ID"))),
        (PathBuf::from("swarm.json"), pretty(&sorted(swarm))),
        (PathBuf::from("tasks.json"), pretty(&Value::Array(tasks.into_values().map(sorted).collect()))),
    ];
    Ok(Gathered { source, files })
}

fn list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

/// The value with every object's keys in order, whatever map type serde_json was built with: a
/// saved dump is the same for the same state.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect::<Map<String, Value>>())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn by_id(items: Vec<Value>, key: &str) -> Value {
    let mut items: Vec<Value> = items.into_iter().map(sorted).collect();
    items.sort_by(|a, b| a.get(key).and_then(Value::as_str).cmp(&b.get(key).and_then(Value::as_str)));
    Value::Array(items)
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a JSON value prints");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_values_have_sorted_keys_at_every_depth() {
        let value = serde_json::json!({"b": [{"z": 1, "a": 2}], "a": {"y": null, "x": true}});
        let text = serde_json::to_string(&sorted(value)).unwrap();
        assert_eq!(text, r#"{"a":{"x":true,"y":null},"b":[{"a":2,"z":1}]}"#);
    }

    /// The files of a committed real-swarm gather (reports/tests/dumps/real/NAME), as gathered.
    fn fixture(name: &str) -> Gathered {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../reports/tests/dumps/real").join(name);
        let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|p| (PathBuf::from(p.file_name().unwrap()), std::fs::read_to_string(&p).unwrap()))
            .collect();
        files.sort();
        Gathered { source: "unix:///test/docker.sock".into(), files }
    }

    /// A directory of its own under the system's temporary directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("swarmalloc-gather-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// What `allocsim check --save-dump DIR` writes reads back, with `allocsim check DIR`, to the
    /// problems the check of the live swarm found: here a real gather with one address planted
    /// twice (a task of service web takes another's), saved twice into one directory.
    #[test]
    fn a_saved_gather_reads_back_to_the_same_problems() {
        let mut gathered = fixture("default_pools");
        let (_, tasks) = gathered.files.iter_mut().find(|(n, _)| n == Path::new("tasks.json")).unwrap();
        let mut list: Value = serde_json::from_str(tasks).unwrap();
        // The first two tasks of service web, each with one address on network front.
        let address = |t: &Value| t["NetworksAttachments"][0]["Addresses"][0].clone();
        let web: Vec<usize> = (0..list.as_array().unwrap().len())
            .filter(|&i| list[i]["NetworksAttachments"].as_array().is_some_and(|a| a.len() == 1))
            .collect();
        assert!(web.len() >= 2, "three tasks of web in the fixture");
        list[web[1]]["NetworksAttachments"][0]["Addresses"][0] = address(&list[web[0]]);
        *tasks = pretty(&list);
        let live = gathered.check().unwrap();
        assert_eq!(live.kinds().get("duplicate_address"), Some(&1), "{}", live.to_text());
        let dir = Scratch::new("readback");
        gathered.save(&dir.0).unwrap();
        gathered.save(&dir.0).expect("a second save replaces the first");
        let saved = swarmalloc_reports::check_path(&dir.0).unwrap();
        assert_eq!(saved.problems, live.problems);
        assert_eq!(saved.queue, live.queue);
        assert_eq!(saved.objects, live.objects);
        assert_eq!(saved.skipped.len(), live.skipped.len());
    }

    #[test]
    fn save_refuses_a_directory_holding_other_json_files() {
        let gathered = fixture("default_pools");
        let dir = Scratch::new("strays");
        std::fs::create_dir_all(&dir.0).unwrap();
        std::fs::write(dir.0.join("old-state.json"), "[]").unwrap();
        std::fs::write(dir.0.join("notes.txt"), "kept").unwrap();
        let err = gathered.save(&dir.0).unwrap_err().to_string();
        assert!(err.contains("other JSON files (old-state.json)"), "{err}");
        assert!(!dir.0.join("tasks.json").exists(), "nothing written");
    }

    /// `allocsim check` of a swarm that is not there says which socket it tried, and saves nothing.
    #[test]
    fn a_live_check_names_the_socket_it_cannot_reach() {
        let dir = Scratch::new("unreachable");
        let endpoint = Endpoint { socket: dir.0.join("docker.sock") };
        let err = check_live(&endpoint, Some(&dir.0), 5).unwrap_err().to_string();
        let expected = format!("unix://{}/docker.sock: connect: ", dir.0.display());
        assert!(err.starts_with(&expected), "{err}");
        assert!(!dir.0.exists(), "nothing saved");
    }

    /// A read-only Docker Engine API on a unix socket that answers with a saved gather, as the
    /// daemon it was gathered from answered: `GET /networks` lists swarm networks without their
    /// endpoints (as the store has them), `GET /networks/ID` adds this node's, `GET /tasks`
    /// leaves out the attachment tasks that `GET /tasks?filters={"runtime":["attachment"]}`
    /// lists. Serves until the test process ends; one thread per connection, keep-alive.
    fn serve(fixture: &Gathered, socket: &Path) {
        let file = |name: &str| -> Value {
            let (_, text) = fixture.files.iter().find(|(n, _)| n == Path::new(name)).unwrap();
            serde_json::from_str(text).unwrap()
        };
        let networks = list(file("networks.json"));
        let tasks = list(file("tasks.json"));
        let is_attachment = |t: &Value| t["Spec"]["Runtime"] == "attachment";
        let mut routes: BTreeMap<String, Value> = BTreeMap::new();
        let listed = networks.iter().map(|n| {
            let mut n = n.clone();
            if n["Scope"] == "swarm" {
                n["Containers"] = Value::Null;
            }
            n
        });
        routes.insert("/networks".into(), Value::Array(listed.collect()));
        for n in &networks {
            routes.insert(format!("/networks/{}", n["Id"].as_str().unwrap()), n.clone());
        }
        routes.insert("/tasks".into(), tasks.iter().filter(|t| !is_attachment(t)).cloned().collect());
        routes.insert(
            "/tasks?filters=%7B%22runtime%22%3A%5B%22attachment%22%5D%7D".into(),
            tasks.iter().filter(|t| is_attachment(t)).cloned().collect(),
        );
        routes.insert("/services".into(), file("services.json"));
        routes.insert("/nodes".into(), file("nodes.json"));
        routes.insert("/info".into(), serde_json::json!({"Swarm": file("swarm.json")}));
        let version = serde_json::json!({"Version": "20.10.24+dfsg1", "ApiVersion": "1.41", "MinAPIVersion": "1.12"});
        routes.insert("/version".into(), version);
        let routes = std::sync::Arc::new(routes);
        let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let (routes, stream) = (routes.clone(), stream.unwrap());
                std::thread::spawn(move || answer(&routes, stream));
            }
        });
    }

    /// Answers the HTTP/1.1 requests of one connection (GET only, no body) from `routes`.
    fn answer(routes: &BTreeMap<String, Value>, stream: std::os::unix::net::UnixStream) {
        use std::io::{BufRead, BufReader, Write};
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        loop {
            let mut request = String::new();
            if reader.read_line(&mut request).unwrap_or(0) == 0 {
                return;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
            }
            let mut words = request.split_whitespace();
            let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            // `/v1.41/networks` and `/version` alike.
            let path = match target.strip_prefix("/v") {
                Some(rest) => rest.find('/').map_or(target, |i| &rest[i..]),
                None => target,
            };
            let (status, body) = match (method, routes.get(path)) {
                ("GET", Some(value)) => ("200 OK", value.to_string()),
                ("GET", None) => ("404 Not Found", format!("{{\"message\":\"no route {path}\"}}")),
                _ => ("405 Method Not Allowed", "{\"message\":\"read-only\"}".to_string()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            if writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(body.as_bytes())).is_err() {
                return;
            }
        }
    }

    /// The gather through the API, end to end (bollard's version negotiation, the raw GETs, the
    /// network inspects, the attachment tasks, the manifest): served the files of a real gather
    /// (standalone containers, node load balancers), it writes them back byte for byte, and
    /// `check_live` saves a directory that checks as the fixture does.
    #[test]
    fn gathering_an_api_that_serves_a_real_gather_gives_it_back() {
        let fixture = fixture("attachable");
        let dir = Scratch::new("api");
        std::fs::create_dir_all(&dir.0).unwrap();
        let socket = dir.0.join("docker.sock");
        serve(&fixture, &socket);
        let endpoint = Endpoint { socket: socket.clone() };
        let gathered = gather(&endpoint, 10).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&Path> = gathered.files.iter().map(|(n, _)| n.as_path()).collect();
        let expected: Vec<&Path> = fixture.files.iter().map(|(n, _)| n.as_path()).collect();
        assert_eq!(names, expected);
        for ((name, text), (_, want)) in gathered.files.iter().zip(&fixture.files) {
            if name != Path::new("gather.json") {
                assert_eq!(text, want, "{} differs from the fixture's", name.display());
            }
        }
        let manifest: Value = serde_json::from_str(&gathered.files[0].1).unwrap();
        assert_eq!(manifest["source"], format!("unix://{}", socket.display()));
        assert_eq!(manifest["api_version"], "1.41");
        assert_eq!(manifest["daemon"], "20.10.24+dfsg1");

        let saved = dir.0.join("saved");
        let live = check_live(&endpoint, Some(&saved), 10).unwrap_or_else(|e| panic!("{e}"));
        let from_disk = swarmalloc_reports::check_path(&saved).unwrap();
        let committed = fixture.check().unwrap();
        assert_eq!(live.problems, committed.problems);
        assert_eq!(from_disk.problems, committed.problems);
        assert_eq!(from_disk.queue, committed.queue);
        assert_eq!(from_disk.objects.tasks, committed.objects.tasks);
        assert!(committed.objects.tasks > 0 && committed.problems.is_empty(), "{}", committed.to_text());
    }
}
