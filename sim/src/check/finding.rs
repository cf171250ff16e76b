//! What a checker reports, and the words checkers share.

use ipnet::IpNet;
use swarmalloc::{Network, TaskState};

/// What a checker reports before the world stamps time and place on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub checker: &'static str,
    pub objects: Vec<String>,
    pub detail: String,
}

impl Finding {
    pub fn new(checker: &'static str, objects: Vec<String>, detail: impl Into<String>) -> Finding {
        Finding { checker, objects, detail: detail.into() }
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
