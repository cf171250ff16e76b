//! What a checker reports, and the words checkers share. A breach is the simulator's own word:
//! `swarmalloc::Finding` is what the engine's restore found and repaired in a store, and a
//! breach becomes a `Violation` when the world stamps time and place on it.

use ipnet::IpNet;
use swarmalloc::{Network, TaskState};

/// An invariant a checker found broken, before the world stamps time and place on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breach {
    pub checker: &'static str,
    pub objects: Vec<String>,
    pub detail: String,
}

impl Breach {
    pub fn new(checker: &'static str, objects: Vec<String>, detail: impl Into<String>) -> Breach {
        Breach { checker, objects, detail: detail.into() }
    }
}

/// Subnets of an allocated network, in config order.
pub(super) fn subnets(network: &Network) -> Vec<IpNet> {
    network.ipam.iter().flat_map(|i| i.configs.iter().filter_map(|c| c.subnet)).collect()
}

/// `items` joined with ", ", or `none` when there are none: lists in violations read as words.
pub(super) fn list<T: std::fmt::Display>(items: &[T], none: &str) -> String {
    if items.is_empty() { none.to_string() } else { items.iter().map(T::to_string).collect::<Vec<_>>().join(", ") }
}

/// A task state as SwarmKit's API spells it (`NEW`, `PENDING`, ...).
pub(super) fn state_name(state: TaskState) -> String {
    format!("{state:?}").to_uppercase()
}
