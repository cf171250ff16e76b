//! `--baseline OLD/report.json`: what changed since an earlier report. Reads only the fields it
//! compares (scenarios' seeds, throughput and latency; failures), so a baseline written by a
//! newer version 1 still reads. Failures are matched by (scenario, seed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use crate::baseline_diff::{BaselineDiff, Change, ThroughputChange};
use crate::error::InputError;
use crate::results::read_json_file;
use crate::stats::round;
use crate::sweep::{REPORT_SCHEMA, SweepReport};

#[derive(Deserialize)]
struct OldReport {
    schema: String,
    scenarios: Vec<OldScenario>,
    failures: Vec<OldFailure>,
}

#[derive(Deserialize)]
struct OldScenario {
    scenario: String,
    seed_ranges: Vec<(u64, u64)>,
    tasks: OldTasks,
    latency: OldLatency,
}

#[derive(Deserialize)]
struct OldTasks {
    pending_per_window_s: f64,
}

#[derive(Deserialize)]
struct OldLatency {
    p50_ms: Option<u64>,
    p99_ms: Option<u64>,
}

#[derive(Deserialize)]
struct OldFailure {
    scenario: String,
    seed: u64,
    violation: OldViolation,
}

#[derive(Deserialize)]
struct OldViolation {
    checker: String,
}

/// Reads a baseline `report.json` and compares `report` with it.
pub fn compare(file: &Path, report: &SweepReport) -> Result<BaselineDiff, InputError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| InputError::Io { file: file.to_path_buf(), message: e.to_string() })?;
    let old: OldReport = read_json_file(file, &text)?;
    if old.schema != REPORT_SCHEMA {
        return Err(InputError::Field {
            file: file.to_path_buf(),
            path: "schema".into(),
            expected: format!("a report of schema {REPORT_SCHEMA:?}"),
            found: format!("the string {:?}", old.schema),
        });
    }
    Ok(diff(&file.display().to_string(), &old, report))
}

fn diff(file: &str, old: &OldReport, report: &SweepReport) -> BaselineDiff {
    let ran_before: BTreeMap<&str, &[(u64, u64)]> =
        old.scenarios.iter().map(|s| (s.scenario.as_str(), s.seed_ranges.as_slice())).collect();
    let ran_now: BTreeMap<&str, &[(u64, u64)]> =
        report.scenarios.iter().map(|s| (s.scenario.as_str(), s.seed_ranges.as_slice())).collect();
    let ran = |runs: &BTreeMap<&str, &[(u64, u64)]>, scenario: &str, seed: u64| {
        runs.get(scenario).is_some_and(|ranges| ranges.iter().any(|&(a, b)| a <= seed && seed < b))
    };
    let failed_before: BTreeMap<(&str, u64), &str> =
        old.failures.iter().map(|f| ((f.scenario.as_str(), f.seed), f.violation.checker.as_str())).collect();
    let failed_now: BTreeMap<(&str, u64), &str> =
        report.failures.iter().map(|f| ((f.scenario.as_str(), f.seed), f.violation.checker.as_str())).collect();
    let change = |(scenario, seed): (&str, u64), checker: &str, before: String| Change {
        scenario: scenario.to_string(),
        seed,
        checker: checker.to_string(),
        before,
    };
    let mut out = BaselineDiff {
        file: file.to_string(),
        new_failures: Vec::new(),
        fixed: Vec::new(),
        still_failing: Vec::new(),
        not_rerun: 0,
        scenarios_added: Vec::new(),
        scenarios_removed: Vec::new(),
        throughput: Vec::new(),
    };
    for (&key, &checker) in &failed_now {
        match failed_before.get(&key) {
            Some(before) => out.still_failing.push(change(key, checker, before.to_string())),
            None if ran(&ran_before, key.0, key.1) => out.new_failures.push(change(key, checker, "passed".into())),
            None => out.new_failures.push(change(key, checker, "not run".into())),
        }
    }
    for (&key, &checker) in &failed_before {
        if failed_now.contains_key(&key) {
            continue;
        }
        if ran(&ran_now, key.0, key.1) {
            out.fixed.push(change(key, checker, checker.to_string()));
        } else {
            out.not_rerun += 1;
        }
    }
    let before: BTreeSet<&str> = ran_before.keys().copied().collect();
    let now: BTreeSet<&str> = ran_now.keys().copied().collect();
    out.scenarios_added = now.difference(&before).map(|s| s.to_string()).collect();
    out.scenarios_removed = before.difference(&now).map(|s| s.to_string()).collect();
    let old_by_name: BTreeMap<&str, &OldScenario> = old.scenarios.iter().map(|s| (s.scenario.as_str(), s)).collect();
    for scenario in &report.scenarios {
        let Some(old) = old_by_name.get(scenario.scenario.as_str()) else { continue };
        let (before, after) = (old.tasks.pending_per_window_s, scenario.tasks.pending_per_window_s);
        out.throughput.push(ThroughputChange {
            scenario: scenario.scenario.clone(),
            before_per_s: before,
            after_per_s: after,
            change_pct: (before > 0.0).then(|| round((after - before) / before * 100.0, 1)),
            p50_before_ms: old.latency.p50_ms,
            p50_after_ms: scenario.latency.p50_ms,
            p99_before_ms: old.latency.p99_ms,
            p99_after_ms: scenario.latency.p99_ms,
        });
    }
    out
}
