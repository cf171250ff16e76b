//! The replicated object store: the raft state machine every manager applies committed entries
//! to. It owns the objects (networks, services, tasks, nodes, cluster config) in ordered maps,
//! versions them with the raft index of their last write, and applies transactions atomically
//! with optimistic concurrency (a stale version rejects the whole transaction).
//!
//! Architecture invariant: applying the same entries in the same order gives the same store on
//! every replica; nothing here reads a clock, draws a random number or iterates a hash map.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use swarmalloc::{
    ClusterConfig, Network, NetworkId, Node, NodeId, Object, ObjectId, ObjectRef, Service, ServiceId, Task, TaskId,
    Version,
};

use crate::trace::fnv1a;

/// Who proposed a transaction, so the proposer can match the applied result to its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProposalId {
    /// Raft id of the proposing manager.
    pub node: u64,
    /// Incarnation of the proposing manager (bumped on every restart), so ids never repeat.
    pub incarnation: u64,
    pub seq: u64,
}

/// One change of a transaction. Externally tagged on the wire: decoding it needs no buffering.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The object must not exist yet.
    Create {
        #[serde(with = "wire_object")]
        object: Object,
    },
    /// The stored object must have the version the update carries.
    Update {
        #[serde(with = "wire_object")]
        object: Object,
    },
    /// The stored object must have `version`.
    Delete { id: ObjectId, version: Version },
    /// Sets the cluster config once (bootstrap); refused when one is stored.
    InitCluster { config: ClusterConfig },
}

/// Objects on the wire, externally tagged (the engine's `Object` is internally tagged, which
/// serde decodes through a buffer: several times slower for the raft log's hot path).
mod wire_object {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use swarmalloc::{Network, Node, Object, Service, Task};

    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum WireRef<'a> {
        Network(&'a Network),
        Service(&'a Service),
        Task(&'a Task),
        Node(&'a Node),
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Wire {
        Network(Network),
        Service(Service),
        Task(Task),
        Node(Node),
    }

    pub fn serialize<S: Serializer>(object: &Object, s: S) -> Result<S::Ok, S::Error> {
        match object {
            Object::Network(o) => WireRef::Network(o).serialize(s),
            Object::Service(o) => WireRef::Service(o).serialize(s),
            Object::Task(o) => WireRef::Task(o).serialize(s),
            Object::Node(o) => WireRef::Node(o).serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Object, D::Error> {
        Ok(match Wire::deserialize(d)? {
            Wire::Network(o) => Object::Network(o),
            Wire::Service(o) => Object::Service(o),
            Wire::Task(o) => Object::Task(o),
            Wire::Node(o) => Object::Node(o),
        })
    }
}

impl Change {
    pub fn object_id(&self) -> Option<ObjectId> {
        match self {
            Change::Create { object } | Change::Update { object } => Some(object.id()),
            Change::Delete { id, .. } => Some(id.clone()),
            Change::InitCluster { .. } => None,
        }
    }
}

/// What proposed a transaction; recorded in the trace and used to route results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Bootstrap,
    Control,
    Orchestrator,
    Scheduler,
    Dispatcher,
    Reaper,
    Allocator,
}

/// A transaction: all changes apply, or none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    pub id: ProposalId,
    pub origin: Origin,
    pub changes: Vec<Change>,
}

/// Why a transaction was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum TxnError {
    SequenceConflict { object: ObjectId, expected: Version, found: Version },
    AlreadyExists { object: ObjectId },
    NotFound { object: ObjectId },
    ClusterExists,
}

impl fmt::Display for TxnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnError::SequenceConflict { object, expected, found } => {
                write!(f, "sequence conflict on {object}: expected version {}, found {}", expected.0, found.0)
            }
            TxnError::AlreadyExists { object } => write!(f, "{object} already exists"),
            TxnError::NotFound { object } => write!(f, "{object} not found"),
            TxnError::ClusterExists => write!(f, "the cluster is already initialised"),
        }
    }
}

/// The cluster object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub version: Version,
    pub config: ClusterConfig,
}

/// One object touched by an applied transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Put(ObjectId),
    Deleted(ObjectId),
}

/// The store replica. See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Store {
    pub networks: BTreeMap<NetworkId, Network>,
    pub services: BTreeMap<ServiceId, Service>,
    pub tasks: BTreeMap<TaskId, Task>,
    pub nodes: BTreeMap<NodeId, Node>,
    pub cluster: Option<Cluster>,
    /// Raft index of the last applied entry.
    pub applied: u64,
    /// XOR of the hashes of every stored object's (kind, id, version). A version is the raft
    /// index of the object's last write, and what an entry writes is fixed by the log, so equal
    /// digests at one index mean equal stores (barring hash collisions).
    digest: u64,
}

fn object_hash(object: ObjectRef<'_>) -> u64 {
    let (kind, id) = match object {
        ObjectRef::Network(o) => (b'n', o.id.as_str()),
        ObjectRef::Service(o) => (b's', o.id.as_str()),
        ObjectRef::Task(o) => (b't', o.id.as_str()),
        ObjectRef::Node(o) => (b'o', o.id.as_str()),
    };
    let hash = fnv1a(fnv1a(crate::trace::FNV_OFFSET, &[kind]), id.as_bytes());
    fnv1a(hash, &object.version().0.to_le_bytes())
}

impl Store {
    pub fn digest(&self) -> u64 {
        self.digest ^ self.cluster.as_ref().map_or(0, |c| c.version.0.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    pub fn get(&self, id: &ObjectId) -> Option<ObjectRef<'_>> {
        match id {
            ObjectId::Network(id) => self.networks.get(id).map(ObjectRef::Network),
            ObjectId::Service(id) => self.services.get(id).map(ObjectRef::Service),
            ObjectId::Task(id) => self.tasks.get(id).map(ObjectRef::Task),
            ObjectId::Node(id) => self.nodes.get(id).map(ObjectRef::Node),
        }
    }

    /// Every object, in kind then id order.
    pub fn objects(&self) -> impl Iterator<Item = ObjectRef<'_>> {
        self.networks
            .values()
            .map(ObjectRef::Network)
            .chain(self.services.values().map(ObjectRef::Service))
            .chain(self.tasks.values().map(ObjectRef::Task))
            .chain(self.nodes.values().map(ObjectRef::Node))
    }

    /// How many objects `objects` yields.
    pub fn object_count(&self) -> u64 {
        (self.networks.len() + self.services.len() + self.tasks.len() + self.nodes.len()) as u64
    }

    pub fn config(&self) -> ClusterConfig {
        self.cluster.as_ref().map(|c| c.config.clone()).unwrap_or_default()
    }

    fn version_of(&self, id: &ObjectId) -> Option<Version> {
        self.get(id).map(|o| o.version())
    }

    fn check(&self, txn: &Txn) -> Result<(), TxnError> {
        // Versions are checked against the store before the transaction: one transaction
        // touching an object twice is refused by the second change's stale version.
        let mut touched: BTreeMap<ObjectId, ()> = BTreeMap::new();
        for change in &txn.changes {
            if let Some(id) = change.object_id()
                && touched.insert(id.clone(), ()).is_some()
            {
                return Err(TxnError::AlreadyExists { object: id });
            }
            match change {
                Change::Create { object } => {
                    if self.version_of(&object.id()).is_some() {
                        return Err(TxnError::AlreadyExists { object: object.id() });
                    }
                }
                Change::Update { object } => match self.version_of(&object.id()) {
                    None => return Err(TxnError::NotFound { object: object.id() }),
                    Some(found) if found != object.version() => {
                        return Err(TxnError::SequenceConflict {
                            object: object.id(),
                            expected: object.version(),
                            found,
                        });
                    }
                    Some(_) => {}
                },
                Change::Delete { id, version } => match self.version_of(id) {
                    None => return Err(TxnError::NotFound { object: id.clone() }),
                    Some(found) if found != *version => {
                        return Err(TxnError::SequenceConflict { object: id.clone(), expected: *version, found });
                    }
                    Some(_) => {}
                },
                Change::InitCluster { .. } => {
                    if self.cluster.is_some() {
                        return Err(TxnError::ClusterExists);
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies a committed transaction at raft index `index`: all changes, or none.
    pub fn apply(&mut self, index: u64, txn: &Txn) -> Result<Vec<Event>, TxnError> {
        self.applied = index;
        self.check(txn)?;
        let mut events = Vec::with_capacity(txn.changes.len());
        for change in &txn.changes {
            match change {
                Change::Create { object } | Change::Update { object } => {
                    let mut object = object.clone();
                    object.set_version(Version(index));
                    let id = object.id();
                    self.digest ^= object_hash(object.as_ref());
                    if let Some(old) = self.insert(object) {
                        self.digest ^= object_hash(old.as_ref());
                    }
                    events.push(Event::Put(id));
                }
                Change::Delete { id, .. } => {
                    self.remove(id);
                    events.push(Event::Deleted(id.clone()));
                }
                Change::InitCluster { config } => {
                    self.cluster = Some(Cluster { version: Version(index), config: config.clone() });
                }
            }
        }
        Ok(events)
    }

    /// Records that an entry without a transaction (a leader's empty entry) was applied.
    pub fn skip(&mut self, index: u64) {
        self.applied = index;
    }

    fn remove(&mut self, id: &ObjectId) {
        let hash = self.get(id).map(object_hash);
        if let Some(hash) = hash {
            self.digest ^= hash;
        }
        match id {
            ObjectId::Network(id) => drop(self.networks.remove(id)),
            ObjectId::Service(id) => drop(self.services.remove(id)),
            ObjectId::Task(id) => drop(self.tasks.remove(id)),
            ObjectId::Node(id) => drop(self.nodes.remove(id)),
        }
    }

    /// Stores an object; returns the version it replaced.
    fn insert(&mut self, object: Object) -> Option<Object> {
        match object {
            Object::Network(o) => self.networks.insert(o.id.clone(), o).map(Object::Network),
            Object::Service(o) => self.services.insert(o.id.clone(), o).map(Object::Service),
            Object::Task(o) => self.tasks.insert(o.id.clone(), o).map(Object::Task),
            Object::Node(o) => self.nodes.insert(o.id.clone(), o).map(Object::Node),
        }
    }
}

/// Splits changes into transactions of at most `max` changes each (a store batch).
pub fn split_batch(changes: Vec<Change>, max: usize) -> Vec<Vec<Change>> {
    let max = max.max(1);
    let mut out = Vec::with_capacity(changes.len().div_ceil(max));
    let mut current = Vec::new();
    for change in changes {
        current.push(change);
        if current.len() == max {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmalloc::{NetworkSpec, ObjectId};

    fn net(id: &str, version: u64) -> Object {
        Object::Network(Network {
            id: id.into(),
            version: Version(version),
            spec: NetworkSpec { name: id.into(), ..Default::default() },
            driver_state: None,
            ipam: None,
        })
    }

    fn txn(changes: Vec<Change>) -> Txn {
        Txn { id: ProposalId { node: 1, incarnation: 0, seq: 0 }, origin: Origin::Control, changes }
    }

    #[test]
    fn versions_are_raft_indexes_and_stale_updates_conflict() {
        let mut store = Store::default();
        store.apply(5, &txn(vec![Change::Create { object: net("a", 0) }])).expect("create");
        assert_eq!(store.networks[&NetworkId::from("a")].version, Version(5));
        let stale = store.apply(6, &txn(vec![Change::Update { object: net("a", 4) }]));
        assert_eq!(
            stale,
            Err(TxnError::SequenceConflict {
                object: ObjectId::Network("a".into()),
                expected: Version(4),
                found: Version(5)
            })
        );
        store.apply(7, &txn(vec![Change::Update { object: net("a", 5) }])).expect("fresh update");
        assert_eq!(store.networks[&NetworkId::from("a")].version, Version(7));
        assert_eq!(store.applied, 7);
    }

    #[test]
    fn a_rejected_transaction_changes_nothing_and_digests_follow_content() {
        let mut store = Store::default();
        let empty = store.digest();
        store.apply(1, &txn(vec![Change::Create { object: net("a", 0) }])).expect("create");
        let before = store.clone();
        let result =
            store.apply(2, &txn(vec![Change::Create { object: net("b", 0) }, Change::Create { object: net("a", 0) }]));
        assert_eq!(result, Err(TxnError::AlreadyExists { object: ObjectId::Network("a".into()) }));
        assert_eq!(store.networks, before.networks);
        assert_eq!(store.digest(), before.digest());
        store
            .apply(3, &txn(vec![Change::Delete { id: ObjectId::Network("a".into()), version: Version(1) }]))
            .expect("delete");
        assert_eq!(store.digest(), empty);
    }

    #[test]
    fn batches_split_into_transactions_of_at_most_n_changes() {
        let changes: Vec<Change> = (0..5).map(|i| Change::Create { object: net(&i.to_string(), 0) }).collect();
        let sizes: Vec<usize> = split_batch(changes, 2).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
    }
}
