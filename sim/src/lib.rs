//! swarmalloc-sim: a deterministic cluster simulator for the swarmalloc engine. Managers run
//! raft-rs over madsim's network with a replicated object store as the state machine; the
//! leader runs the control API, orchestrator, scheduler, dispatcher and the allocator loop
//! around the engine; workers run agents; a nemesis injects faults from the seed; checkers
//! re-derive the allocator's invariants from committed state. See ARCHITECTURE.md.
//!
//! ```text
//! let result = swarmalloc_sim::run(&Scenario::default_workload(), seed, &RunOptions::default());
//! assert!(result.passed(), "{:?}", result.violation);
//! ```

#[cfg(not(any(madsim, doc, doctest)))]
compile_error!(
    "swarmalloc-sim runs on madsim's simulated runtime: build it with RUSTFLAGS=\"--cfg madsim\" (the workspace's .cargo/config.toml sets it; cargo fuzz needs the variable)"
);

pub mod agent;
pub mod alloc_loop;
pub mod check;
pub mod client;
pub mod duties;
pub mod failure;
pub mod faults;
pub mod fuzzing;
pub mod histogram;
pub mod manager;
pub mod net;
pub mod result;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod scenario_file;
pub mod series;
pub mod shrink;
pub mod store;
pub mod sweep;
pub mod trace;
pub mod world;

pub use failure::FailureFile;
pub use result::{Metrics, RunResult, SummaryLine, Violation};
pub use run::{RunOptions, run};
pub use scenario::Scenario;
pub use sweep::{Divergence, check_determinism, sweep};
