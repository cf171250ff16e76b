//! Legacy flavours (feature `legacy`, for the simulator and tests only): each turns on one of
//! the old allocator's behaviours from docs/swarmkit.md section 4, so that the workbench can
//! show that its checkers catch it. A build without the feature has none of this module.
//!
//! The engine carries the flavours whose cause lived in SwarmKit's network allocator
//! (`cnmallocator`, libnetwork's IPAM and port allocator): B2, B4, B6 and B8, plus B5's
//! allocation rule. The flavours whose cause lived in the allocator's event loop and init
//! (`allocator/network.go`) live in the simulator's allocator loop: B1, B3, B5's commit handling,
//! B11 and the boolean-flag init; the engine only offers them `Proposal::from_updates` and
//! `Tx::rewrite` to build the batches the old loop wrote. This module only names the flavours:
//! each behaviour lives where the code it changes is (`index`, `tx`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One old behaviour. See docs/swarmkit.md section 4 for each class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Flavour {
    /// Restore and allocation interleaved: new objects are served before the addresses stored
    /// tasks hold are marked (allocator loop; fixed by moby/swarmkit#2237).
    B1,
    /// Service VIPs are not re-reserved on restore; a later allocation of the service re-requests
    /// its stored VIP as preferred (engine restore; fixed by moby/swarmkit#2468).
    B2,
    /// Networks are restored in id order and an unallocated one is allocated before the ones after
    /// it are restored (allocator loop init; fixed by moby/swarmkit#2571).
    B3,
    /// A task's addresses are not freed when one of its networks is already gone
    /// (`IsTaskAllocated` false; engine; moby/moby#37338, moby/swarmkit#3230).
    B4,
    /// Tasks below PENDING are allocated whatever their desired state (engine), and an allocation
    /// whose commit fails because a delete raced it stays in the local state, the delete having
    /// freed the pre-allocation copy (allocator loop; code reading, dperny's `deletedObjects`).
    B5,
    /// Addresses are freed on status alone (terminal tasks hold nothing), and a new allocator's
    /// address cursor restarts at the lowest free address (engine; moby/swarmkit#440, #2017).
    B6,
    /// Dynamic published ports are not re-reserved on restore; a later allocation of the service
    /// re-requests its stored port (engine restore; moby/moby#29247, fixed by moby/swarmkit#1802).
    B8,
    /// Local state is applied before the raft commit and never rolled back when the batch fails
    /// or is cut; only tasks are queued again (allocator loop; spec 3.4, B11).
    B11,
    /// The boolean-flag init: restore runs through the allocation path and rewrites every live
    /// task; an init whose batch fails stops the allocator until the next leader change
    /// (allocator loop; spec 3.1 and 3.2, moby/swarmkit#2516, #2237).
    #[serde(rename = "flag-init")]
    FlagInit,
}

impl Flavour {
    pub const ALL: [Flavour; 9] = [
        Flavour::B1,
        Flavour::B2,
        Flavour::B3,
        Flavour::B4,
        Flavour::B5,
        Flavour::B6,
        Flavour::B8,
        Flavour::B11,
        Flavour::FlagInit,
    ];

    /// The name the command line and scenario files use.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::B1 => "B1",
            Flavour::B2 => "B2",
            Flavour::B3 => "B3",
            Flavour::B4 => "B4",
            Flavour::B5 => "B5",
            Flavour::B6 => "B6",
            Flavour::B8 => "B8",
            Flavour::B11 => "B11",
            Flavour::FlagInit => "flag-init",
        }
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Flavour {
    type Err = String;

    fn from_str(text: &str) -> Result<Flavour, String> {
        Flavour::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(text.trim())).ok_or_else(|| {
            let names: Vec<&str> = Flavour::ALL.iter().map(|f| f.name()).collect();
            format!("unknown legacy flavour {text:?}: expected one of {}", names.join(", "))
        })
    }
}

/// Which flavour an engine runs, plus the old IPAM's in-memory serial cursors (B6). Equality
/// ignores it: two engines are equal when they hold the same claims, whatever their behaviour.
#[derive(Clone, Default)]
pub(crate) struct Mode {
    pub(crate) flavour: Option<Flavour>,
    /// The last address picked per (network, pool index) by this engine since its restore.
    pub(crate) cursors: std::collections::BTreeMap<(crate::ids::NetworkId, usize), u128>,
}

impl Mode {
    pub(crate) fn is(&self, flavour: Flavour) -> bool {
        self.flavour == Some(flavour)
    }
}

impl PartialEq for Mode {
    fn eq(&self, _: &Mode) -> bool {
        true
    }
}

impl Eq for Mode {}

impl fmt::Debug for Mode {
    /// The same text for every mode, so that a diff of two engines' dumps never stops here.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mode")
    }
}
