//! What changed since a baseline report (`--baseline`), as report.json and the page show it.
//! [`crate::baseline`] computes it; the report holds it.

use serde::Serialize;

/// What changed since the baseline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BaselineDiff {
    /// The baseline file as given.
    pub file: String,
    /// Failing now; in the baseline the seed passed, or was not run (`before`).
    pub new_failures: Vec<Change>,
    /// Failed in the baseline, run again and passed.
    pub fixed: Vec<Change>,
    /// Failing in both (`before` is the baseline's checker).
    pub still_failing: Vec<Change>,
    /// Baseline failures whose seed was not run this time.
    pub not_rerun: u64,
    pub scenarios_added: Vec<String>,
    pub scenarios_removed: Vec<String>,
    /// Scenarios in both: allocation throughput and latency before and after.
    pub throughput: Vec<ThroughputChange>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub scenario: String,
    pub seed: u64,
    /// The checker that fires now (for new and still failing) or fired before (for fixed).
    pub checker: String,
    /// "passed", "not run", or the baseline's checker.
    pub before: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThroughputChange {
    pub scenario: String,
    pub before_per_s: f64,
    pub after_per_s: f64,
    /// Relative change in percent (None when the baseline had none).
    pub change_pct: Option<f64>,
    pub p50_before_ms: Option<u64>,
    pub p50_after_ms: Option<u64>,
    pub p99_before_ms: Option<u64>,
    pub p99_after_ms: Option<u64>,
}
