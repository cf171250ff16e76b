//! What a checker reports, and the words checkers share. A breach is the simulator's own word:
//! `swarmalloc::Finding` is what the engine's restore found and repaired in a store, and a
//! breach becomes a `Violation` when the world stamps time and place on it.

use ipnet::IpNet;
use swarmalloc::{Network, TaskState};

use crate::scenario::Checker;

/// An invariant a checker found broken, before the world stamps time and place on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breach {
    /// The checker's name, as violations and scenario files spell it: a [`Checker::name`], or a
    /// planted checker's own name. (A name, not the enum, because it is written out as is and
    /// read by sim/live.)
    pub checker: &'static str,
    pub objects: Vec<String>,
    pub detail: String,
}

impl Breach {
    pub fn new(checker: Checker, objects: Vec<String>, detail: impl Into<String>) -> Breach {
        Breach { checker: checker.name(), objects, detail: detail.into() }
    }

    /// A breach of a checker a test plants (`RunOptions::hooks`), under its own name.
    pub fn planted(name: &'static str, objects: Vec<String>, detail: impl Into<String>) -> Breach {
        Breach { checker: name, objects, detail: detail.into() }
    }

    /// The checker's name.
    pub fn name(&self) -> &'static str {
        self.checker
    }

    /// The checker, [`Checker::Custom`] for a planted one.
    pub fn kind(&self) -> Checker {
        Checker::from_name(self.checker).unwrap_or(Checker::Custom)
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
