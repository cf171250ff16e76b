//! Loads a cluster state dump from disk into engine objects: a directory of JSON files or one
//! file; each file is either the project's store snapshot (`{"networks": [...], "services": [...],
//! "tasks": [...], "nodes": [...], "config": {...}}` of the engine's serde types) or Docker inspect
//! output (one object, an array, or several arrays one after the other as `>>` appends them).
//! Owns file discovery, format detection, and merging the objects of several files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use swarmalloc::{ClusterConfig, Network, Node, Object, ObjectId, Service, Task};

use crate::docker::{self, Read};
use crate::error::{InputError, JsonPath, serde_position};

/// The keys of a store snapshot; a top-level object with only these keys is one.
const SNAPSHOT_KEYS: [&str; 5] = ["networks", "services", "tasks", "nodes", "config"];

/// The project's own store snapshot.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    #[serde(default)]
    pub networks: Vec<Network>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub tasks: Vec<Task>,
    #[serde(default)]
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub config: Option<ClusterConfig>,
}

/// Something in the dump that the check does not read, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Skipped {
    /// `file: path` of the value.
    pub place: String,
    pub reason: String,
}

/// Everything read from a dump, ready for `Allocator::restore`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dump {
    pub config: ClusterConfig,
    /// Sorted by id: networks, services, tasks, nodes.
    pub objects: Vec<Object>,
    /// Where each object was read (`file: path`).
    pub sources: BTreeMap<ObjectId, String>,
    pub skipped: Vec<Skipped>,
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
    let mut loader = Loader::default();
    for file in &files {
        let bytes = fs::read(file).map_err(|e| InputError::Io { file: file.clone(), message: e.to_string() })?;
        let text = String::from_utf8(bytes)
            .map_err(|e| InputError::Io { file: file.clone(), message: format!("not UTF-8 text: {e}") })?;
        loader.file(file, &text)?;
    }
    let mut skipped = loader.skipped;
    skipped.sort();
    let mut sources = BTreeMap::new();
    let mut objects = Vec::with_capacity(loader.objects.len());
    for (id, (object, source)) in loader.objects {
        sources.insert(id, source);
        objects.push(object);
    }
    Ok(Dump { config: loader.config.map(|(c, _)| c).unwrap_or_default(), objects, sources, skipped })
}

#[derive(Default)]
struct Loader {
    objects: BTreeMap<ObjectId, (Object, String)>,
    skipped: Vec<Skipped>,
    config: Option<(ClusterConfig, String)>,
}

impl Loader {
    fn file(&mut self, file: &Path, text: &str) -> Result<(), InputError> {
        let mut documents = Vec::new();
        for document in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            documents.push(document.map_err(|e| syntax(file, text, &e))?);
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
            return self.snapshot(file, text);
        }
        let several = documents.len() > 1;
        for (n, document) in documents.iter().enumerate() {
            let root = if several { JsonPath::document(n + 1) } else { JsonPath::root() };
            match document {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let path = root.index(i);
                        let read = docker::read(file, item, &path)?;
                        self.add(file, &path, read)?;
                    }
                }
                Value::Object(_) => {
                    let read = docker::read(file, document, &root)?;
                    self.add(file, &root, read)?;
                }
                other => {
                    return Err(InputError::Field {
                        file: file.to_path_buf(),
                        path: root.as_str().to_string(),
                        expected: "an array of Docker objects, one Docker object, or a store snapshot".into(),
                        found: docker::describe(other),
                    });
                }
            }
        }
        Ok(())
    }

    fn snapshot(&mut self, file: &Path, text: &str) -> Result<(), InputError> {
        let snapshot: Snapshot = serde_json::from_str(text).map_err(|e| {
            let (line, column, path, message) = serde_position(text, &e);
            InputError::Typed { file: file.to_path_buf(), line, column, path, message }
        })?;
        if let Some(config) = snapshot.config {
            config.validate().map_err(|e| InputError::Invalid {
                file: file.to_path_buf(),
                path: "config".into(),
                reason: e.to_string(),
            })?;
            let place = format!("{}: config", file.display());
            match &self.config {
                Some((other, first)) if *other != config => {
                    return Err(InputError::Conflict {
                        id: "the cluster config".into(),
                        first: first.clone(),
                        second: place,
                    });
                }
                _ => self.config = Some((config, place)),
            }
        }
        let kinds = [
            ("networks", snapshot.networks.into_iter().map(Object::Network).collect::<Vec<_>>()),
            ("services", snapshot.services.into_iter().map(Object::Service).collect()),
            ("tasks", snapshot.tasks.into_iter().map(Object::Task).collect()),
            ("nodes", snapshot.nodes.into_iter().map(Object::Node).collect()),
        ];
        for (key, objects) in kinds {
            for (i, object) in objects.into_iter().enumerate() {
                self.add(file, &JsonPath::root().key(key).index(i), Read::Object(Box::new(object)))?;
            }
        }
        Ok(())
    }

    /// Keeps one copy per id: identical copies merge, the higher version wins, and two different
    /// copies of one version are an error (the dump cannot say which one the store holds).
    fn add(&mut self, file: &Path, path: &JsonPath, read: Read) -> Result<(), InputError> {
        let place = format!("{}: {path}", file.display());
        let object = match read {
            Read::Skip(reason) => {
                self.skipped.push(Skipped { place, reason });
                return Ok(());
            }
            Read::Object(object) => *object,
        };
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
}

fn syntax(file: &Path, text: &str, e: &serde_json::Error) -> InputError {
    let (line, column, path, message) = serde_position(text, e);
    InputError::Syntax { file: file.to_path_buf(), line, column, path, message }
}
