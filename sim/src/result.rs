//! The result lines `allocsim run --json` writes, one definition for the simulator that writes
//! them and the sweep report (`swarmalloc_reports`) that reads them back: a [`RunResult`] per
//! seed (its [`Violation`], [`Metrics`] and [`Series`]), and a [`SummaryLine`] per scenario of a
//! sweep. The schema is documented in `reports/README.md` ("Result lines").

use serde::{Deserialize, Serialize};

use crate::faults::FaultPlan;
use crate::scenario::{Step, TimedOp, label};
use crate::series::Series;

/// The outcome of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub scenario: String,
    /// The legacy flavour the run had on (builds with the `legacy` feature), by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<String>,
    pub seed: u64,
    /// The seed's fault choice.
    #[serde(default)]
    pub faults: FaultPlan,
    pub violation: Option<Violation>,
    pub trace_hash: String,
    #[serde(default)]
    pub trace_lines: u64,
    pub sim_ms: u64,
    /// Wall-clock time of the run (varies from run to run).
    #[serde(default)]
    pub wall_ms: u64,
    pub metrics: Metrics,
    /// Simulated-time series for the sweep report; `None` for a run that panicked, and in lines
    /// written before series existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<Series>,
    /// The last trace lines of a failed run (empty, and left out of the JSON, when it passed).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub trace_tail: Vec<String>,
    /// The whole trace when `keep_trace` was set.
    #[serde(skip)]
    pub trace: Vec<String>,
    /// The random fault decisions as explicit steps, when `keep_decisions` was set.
    #[serde(skip)]
    pub decisions: Vec<Step>,
    /// Every user request sent, when `keep_decisions` was set.
    #[serde(skip)]
    pub ops: Vec<TimedOp>,
    /// A run on a real swarm (`allocsim live`), not in the simulator; absent for simulated runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real: Option<RealRun>,
}

/// What a run on a real swarm did besides the checks: the daemon, how many steps ran, and the
/// steps (and settings, initial objects, assertions) a real swarm cannot take.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealRun {
    /// dockerd's version.
    pub daemon: String,
    /// Steps that ran (done or refused by the real swarm).
    pub steps: u64,
    pub skipped: Vec<SkippedStep>,
}

/// A part of a scenario a real run could not take, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedStep {
    /// The scenario's time of the step (0 for its settings and initial state).
    pub at_ms: u64,
    pub action: String,
    pub reason: String,
}

impl RunResult {
    pub fn passed(&self) -> bool {
        self.violation.is_none()
    }
}

/// A broken invariant: which checker, what objects, when and where (the simulator writes it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub checker: String,
    pub objects: Vec<String>,
    pub detail: String,
    pub t_ms: u64,
    pub raft_index: u64,
    pub node: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at t={}ms raft index {} on {}: {} [{}]",
            self.checker,
            self.t_ms,
            self.raft_index,
            self.node,
            self.detail,
            self.objects.join(", ")
        )
    }
}

/// Run counters, reported with the verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    pub entries_applied: u64,
    pub txns_rejected: u64,
    pub leader_changes: u64,
    pub allocator_batches: u64,
    pub allocator_batches_cut: u64,
    pub allocator_restores: u64,
    /// Services created in the store (by the scenario's initial state or the user).
    #[serde(default)]
    pub services_created: u64,
    pub tasks_created: u64,
    /// Tasks moved from NEW to PENDING (counted once each).
    pub tasks_pending: u64,
    /// Simulated time when the first task was created and when the last one became PENDING.
    pub first_task_ms: Option<u64>,
    pub last_pending_ms: Option<u64>,
    pub faults_injected: u64,
    pub messages_sent: u64,
}

/// The summary line a sweep prints after each scenario's seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SummaryLine {
    /// The summary in words, as the sweep prints it on a terminal.
    pub summary: String,
    pub scenario: String,
    /// The legacy flavour the sweep had on, by name (as in its result lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<String>,
    pub seeds: u64,
    pub failed: u64,
    /// Wall-clock seconds the scenario's seeds took.
    pub seconds: f64,
    /// The failed seeds, in order.
    #[serde(default)]
    pub failing_seeds: Vec<u64>,
    /// Runs at a time (absent in lines from before the field existed).
    #[serde(default)]
    pub jobs: Option<u64>,
    /// The sweep was interrupted (SIGINT, SIGTERM) after these seeds: the scenario's other seeds
    /// did not run. Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// The runs were on a real swarm (`allocsim live`). Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub real: bool,
}

impl RunResult {
    /// [`label`] of this run.
    pub fn label(&self) -> String {
        label(&self.scenario, self.legacy.as_deref(), self.real.is_some())
    }
}

impl SummaryLine {
    /// [`label`] of this sweep.
    pub fn label(&self) -> String {
        label(&self.scenario, self.legacy.as_deref(), self.real)
    }
}
