//! From a failing (scenario, seed) to a small explicit scenario.
//!
//! [`decompile`] reruns the failure and writes down every random choice the seed made: the
//! generated user requests, the node faults with their targets and durations, the proposal
//! faults, the task failures, the batch size and the message-fault rates. The result is a
//! scenario with no random part, and because each kind of random decision has its own stream
//! (run.rs), running it at the same seed replays the same run: the seed then only drives
//! message timing and election timeouts.
//!
//! [`shrink`] delta-debugs an explicit scenario (ddmin over its steps and initial objects): it
//! keeps removing parts while the run still fails with the same checker at the same seed.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::faults::{FaultKind, FaultSpace};
use crate::run::{RunOptions, RunResult, run};
use crate::scenario::{Action, MessageFault, Scenario, Step, Workload};

/// The explicit form of `scenario` at `seed`, and the original run it was read from.
pub fn decompile(scenario: &Scenario, seed: u64, options: &RunOptions) -> (Scenario, RunResult) {
    let options = RunOptions { keep_decisions: true, ..options.clone() };
    let result = run(scenario, seed, &options);
    let mut steps: Vec<Step> =
        result.ops.iter().map(|op| Step { at_ms: op.at_ms, action: Action::Client(op.op.clone()) }).collect();
    steps.extend(scenario.steps.iter().filter(|s| !matches!(s.action, Action::Client(_))).cloned());
    for (kind, fault) in [
        (FaultKind::MessageLoss, MessageFault::Loss),
        (FaultKind::MessageDelay, MessageFault::Delay),
        (FaultKind::MessageDuplication, MessageFault::Duplication),
    ] {
        let rate = result.faults.rate(kind);
        if rate > 0.0 && scenario.faults_until_ms > 0 {
            steps.push(Step { at_ms: 0, action: Action::Messages { fault, rate, for_ms: scenario.faults_until_ms } });
        }
    }
    steps.extend(result.decisions.iter().cloned());
    // Stable: user requests keep their send order, and faults due at the same nemesis step keep
    // the order they were injected in.
    steps.sort_by_key(|s| s.at_ms);
    let explicit = Scenario {
        name: format!("{}-seed-{seed}", scenario.name),
        description: format!(
            "Decompiled from scenario {} at seed {seed}: the seed's workload and fault choices ({}) as explicit steps.{}",
            scenario.name,
            result.faults,
            result.violation.as_ref().map(|v| format!(" The original run failed: {v}.")).unwrap_or_default()
        ),
        steps,
        seed: Some(seed),
        workload: Workload::Scripted(Vec::new()),
        faults: FaultSpace::none(),
        batch_max: result.faults.batch_max,
        ..scenario.clone()
    };
    (explicit, result)
}

/// Whether a scenario has no random part (a seed only drives timing).
pub fn is_explicit(scenario: &Scenario) -> bool {
    matches!(&scenario.workload, Workload::Scripted(ops) if ops.is_empty()) && scenario.faults.kinds.is_empty()
}

/// What shrinking did.
#[derive(Clone, Debug)]
pub struct Shrunk {
    pub scenario: Scenario,
    pub result: RunResult,
    pub steps_before: usize,
    pub faults_before: usize,
    pub initial_before: usize,
    pub runs: usize,
}

impl Shrunk {
    pub fn steps_after(&self) -> usize {
        self.scenario.steps.len()
    }

    pub fn faults_after(&self) -> usize {
        count_faults(&self.scenario)
    }
}

pub fn count_faults(scenario: &Scenario) -> usize {
    scenario.steps.iter().filter(|s| s.action.is_fault()).count()
}

/// One removable part of a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Step(usize),
    Initial(usize),
}

fn with_units(scenario: &Scenario, keep: &[Unit]) -> Scenario {
    let mut out = scenario.clone();
    out.steps = keep
        .iter()
        .filter_map(|u| match u {
            Unit::Step(i) => Some(scenario.steps[*i].clone()),
            Unit::Initial(_) => None,
        })
        .collect();
    let objects = scenario.initial.objects();
    let kept: Vec<usize> = keep
        .iter()
        .filter_map(|u| match u {
            Unit::Initial(i) => Some(*i),
            Unit::Step(_) => None,
        })
        .collect();
    let mut initial = crate::scenario::InitialState::default();
    for i in kept {
        match objects[i].clone() {
            swarmalloc::Object::Network(n) => initial.networks.push(n),
            swarmalloc::Object::Service(s) => initial.services.push(s),
            swarmalloc::Object::Task(t) => initial.tasks.push(t),
            swarmalloc::Object::Node(n) => initial.nodes.push(n),
        }
    }
    out.initial = initial;
    out
}

/// Delta-debugs an explicit failing scenario at `seed` down to a 1-minimal set of steps and
/// initial objects that still fails with `checker`. Runs up to `jobs` candidates at a time and
/// at most `max_runs` runs in all; `progress` sees (runs so far, units left).
pub fn shrink(
    scenario: &Scenario,
    seed: u64,
    checker: &str,
    options: &RunOptions,
    jobs: usize,
    max_runs: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Shrunk, String> {
    if !is_explicit(scenario) {
        return Err(format!(
            "scenario {} has a random part; decompile it first (allocsim decompile) so that shrinking removes explicit steps",
            scenario.name
        ));
    }
    let fails = |candidate: &Scenario| -> Option<RunResult> {
        let result = run(candidate, seed, options);
        (result.violation.as_ref().is_some_and(|v| v.checker == checker)).then_some(result)
    };
    let mut runs = 1;
    let Some(mut best) = fails(scenario) else {
        return Err(format!("scenario {} at seed {seed} does not fail with checker {checker}", scenario.name));
    };
    let mut units: Vec<Unit> =
        (0..scenario.steps.len()).map(Unit::Step).chain((0..scenario.initial.len()).map(Unit::Initial)).collect();
    let mut n = 2usize;
    while units.len() >= 2 && runs < max_runs {
        progress(runs, units.len());
        let chunk = units.len().div_ceil(n);
        let candidates: Vec<Vec<Unit>> = (0..units.len())
            .step_by(chunk)
            .map(|start| {
                let end = (start + chunk).min(units.len());
                units[..start].iter().chain(&units[end..]).copied().collect()
            })
            .collect();
        match first_failing(&candidates, scenario, jobs, &fails, &mut runs, max_runs) {
            Some((i, result)) => {
                units = candidates[i].clone();
                best = result;
                n = (n - 1).max(2);
            }
            None if n >= units.len() => break,
            None => n = (n * 2).min(units.len()),
        }
    }
    // A last try without any unit at all (the failure may not need the scenario's steps).
    if runs < max_runs
        && units.len() == 1
        && let Some(result) = fails(&with_units(scenario, &[]))
    {
        runs += 1;
        units.clear();
        best = result;
    }
    progress(runs, units.len());
    Ok(Shrunk {
        scenario: with_units(scenario, &units),
        result: best,
        steps_before: scenario.steps.len(),
        faults_before: count_faults(scenario),
        initial_before: scenario.initial.len(),
        runs,
    })
}

/// Runs candidates `jobs` at a time in order; returns the first (lowest index) that fails.
fn first_failing(
    candidates: &[Vec<Unit>],
    scenario: &Scenario,
    jobs: usize,
    fails: &(dyn Fn(&Scenario) -> Option<RunResult> + Sync),
    runs: &mut usize,
    max_runs: usize,
) -> Option<(usize, RunResult)> {
    for batch_start in (0..candidates.len()).step_by(jobs.max(1)) {
        let batch_end =
            (batch_start + jobs.max(1)).min(candidates.len()).min(batch_start + max_runs.saturating_sub(*runs));
        if batch_end <= batch_start {
            return None;
        }
        let next = AtomicUsize::new(batch_start);
        let mut found: Vec<(usize, RunResult)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (batch_start..batch_end)
                .map(|_| {
                    scope.spawn(|| {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        fails(&with_units(scenario, &candidates[i])).map(|r| (i, r))
                    })
                })
                .collect();
            workers.into_iter().filter_map(|w| w.join().expect("shrink workers do not panic")).collect()
        });
        *runs += batch_end - batch_start;
        found.sort_by_key(|(i, _)| *i);
        if let Some(first) = found.into_iter().next() {
            return Some(first);
        }
    }
    None
}
