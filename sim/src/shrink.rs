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
//! keeps removing parts while the run still fails the same way ([`Signature`]: the same checker,
//! the same assertion, the same kinds of objects) at the same seed. A candidate that is not a
//! valid scenario is skipped, so what it returns always validates and replays.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::faults::{FaultKind, FaultSpace};
use crate::result::RunResult;
use crate::result::Violation;
use crate::run::{RunOptions, run};
use crate::scenario::{Action, MessageFault, Scenario, Step, Workload};
use crate::scenario_file::derived_name;

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
        name: derived_name(&scenario.name, &format!("-seed-{seed}")),
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
    /// The failure it kept.
    pub target: Signature,
    pub steps_before: usize,
    pub faults_before: usize,
    pub initial_before: usize,
    /// Simulations run, the first run of the input included.
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

/// What counts as "the same failure" while shrinking.
///
/// A shrinker that only asks "does it still fail?" slides to whatever bug is easiest to keep
/// (C-Reduce's interestingness test and Hypothesis's "same exception type at the same place"
/// exist to prevent that). The signature is stable under shrinking (no ids, times or raft
/// indexes, which removing steps changes) but names the place the failure comes from:
/// - the same checker;
/// - for `assertion`, the same assertion (`expect.assert[i]`; shrinking never removes one);
/// - the same kinds of objects: the first word of each object the violation names, sorted
///   (`task`, `VIP`, `gateway`, `load`, `network`, `service`, `container`, ...; a bare name
///   such as `m1` is a `node`), so that two tasks sharing an address is not the same failure
///   as a task and a load balancer sharing one.
///
/// [`Signature::checker`] (`--checker NAME`) is the explicit, looser override: any violation
/// of that checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub checker: String,
    /// `expect.assert[i]` of an assertion failure; `None` matches any.
    pub assertion: Option<String>,
    /// The sorted kinds of the violation's objects; `None` matches any.
    pub object_kinds: Option<Vec<String>>,
}

impl Signature {
    /// Any violation of `checker`.
    pub fn checker(checker: &str) -> Signature {
        Signature { checker: checker.to_string(), assertion: None, object_kinds: None }
    }

    /// The signature of a violation: its checker, assertion and kinds of objects.
    pub fn of(violation: &Violation) -> Signature {
        let mut kinds: Vec<String> = violation.objects.iter().map(|o| object_kind(o).to_string()).collect();
        kinds.sort();
        Signature {
            checker: violation.checker.clone(),
            assertion: crate::check::assertion_of(violation).map(str::to_string),
            object_kinds: Some(kinds),
        }
    }

    /// Whether `violation` is this failure.
    pub fn matches(&self, violation: &Violation) -> bool {
        let found = Signature::of(violation);
        found.checker == self.checker
            && self.assertion.as_ref().is_none_or(|a| found.assertion.as_ref() == Some(a))
            && self.object_kinds.as_ref().is_none_or(|k| found.object_kinds.as_ref() == Some(k))
    }
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.checker)?;
        if let Some(assertion) = &self.assertion {
            write!(f, " {assertion}")?;
        }
        match &self.object_kinds {
            Some(kinds) if !kinds.is_empty() => write!(f, " [{}]", kinds.join(", ")),
            Some(_) => f.write_str(" [no objects]"),
            None => f.write_str(" [any objects]"),
        }
    }
}

/// The kind of an object a violation names: its first word (`task t3` -> `task`, `VIP of
/// service web` -> `VIP`); a bare name (`m1`, a simulated node) is a `node`.
fn object_kind(object: &str) -> &str {
    match object.split_once(' ') {
        Some((kind, _)) => kind,
        None => "node",
    }
}

/// Delta-debugs an explicit failing scenario at `seed` down to a 1-minimal set of steps and
/// initial objects that still fails the same way: with `target`, or, when it is `None`, with
/// the signature of the scenario's own failure. Candidates that are not valid scenarios (a step
/// naming an initial node that was removed, ...) are skipped, never run. Runs up to `jobs`
/// candidates at a time and at most `max_runs` runs in all, counting the first run of
/// `scenario`; `progress` sees (runs so far, units left).
pub fn shrink(
    scenario: &Scenario,
    seed: u64,
    target: Option<&Signature>,
    options: &RunOptions,
    limits: Limits,
    progress: impl FnMut(usize, usize),
) -> Result<Shrunk, String> {
    shrink_by(scenario, target, limits, &|candidate: &Scenario| run(candidate, seed, options), progress)
        .map_err(|e| format!("scenario {} at seed {seed} {e}", scenario.name))
}

/// How much work a shrink may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Candidates run at a time (at least 1).
    pub jobs: usize,
    /// Runs in all, the first run of the input included (at least 1).
    pub max_runs: usize,
}

/// A function from a candidate to its run (the seed and options are inside).
type Runner<'a> = &'a (dyn Fn(&Scenario) -> RunResult + Sync);

/// [`shrink`] with the run as a parameter; errors continue "scenario NAME at seed N ...".
fn shrink_by(
    scenario: &Scenario,
    target: Option<&Signature>,
    limits: Limits,
    runner: Runner<'_>,
    mut progress: impl FnMut(usize, usize),
) -> Result<Shrunk, String> {
    if !is_explicit(scenario) {
        return Err(
            "has a random part; decompile it first (allocsim decompile) so that shrinking removes explicit steps"
                .into(),
        );
    }
    let max_runs = limits.max_runs.max(1);
    let runs = AtomicUsize::new(0);
    let counted = |candidate: &Scenario| {
        runs.fetch_add(1, Ordering::Relaxed);
        runner(candidate)
    };
    let original = counted(scenario);
    let target = match (target, &original.violation) {
        (Some(target), Some(v)) if target.matches(v) => target.clone(),
        (None, Some(v)) => Signature::of(v),
        (Some(target), Some(v)) => return Err(format!("fails differently: {v}; expected {target}")),
        (Some(target), None) => return Err(format!("passes; expected it to fail with {target}")),
        (None, None) => return Err("passes: nothing to shrink".into()),
    };
    let fails = |candidate: &Scenario| -> Option<RunResult> {
        let result = counted(candidate);
        result.violation.as_ref().is_some_and(|v| target.matches(v)).then_some(result)
    };
    let mut best = original;
    let mut units: Vec<Unit> =
        (0..scenario.steps.len()).map(Unit::Step).chain((0..scenario.initial.len()).map(Unit::Initial)).collect();
    let mut n = 2usize;
    while units.len() >= 2 && runs.load(Ordering::Relaxed) < max_runs {
        progress(runs.load(Ordering::Relaxed), units.len());
        let chunk = units.len().div_ceil(n);
        let candidates: Vec<Vec<Unit>> = (0..units.len())
            .step_by(chunk)
            .map(|start| {
                let end = (start + chunk).min(units.len());
                units[..start].iter().chain(&units[end..]).copied().collect()
            })
            .collect();
        match first_failing(&candidates, scenario, limits.jobs, &fails, &runs, max_runs) {
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
    if units.len() == 1 && runs.load(Ordering::Relaxed) < max_runs {
        let empty = with_units(scenario, &[]);
        if let Some(result) = empty.validate().ok().and_then(|()| fails(&empty)) {
            units.clear();
            best = result;
        }
    }
    let runs = runs.into_inner();
    progress(runs, units.len());
    Ok(Shrunk {
        scenario: with_units(scenario, &units),
        result: best,
        target,
        steps_before: scenario.steps.len(),
        faults_before: count_faults(scenario),
        initial_before: scenario.initial.len(),
        runs,
    })
}

/// Runs the valid candidates `jobs` at a time in order, while fewer than `max_runs` runs were
/// made; returns the first (lowest index) that fails. Invalid candidates are skipped.
fn first_failing(
    candidates: &[Vec<Unit>],
    scenario: &Scenario,
    jobs: usize,
    fails: &(dyn Fn(&Scenario) -> Option<RunResult> + Sync),
    runs: &AtomicUsize,
    max_runs: usize,
) -> Option<(usize, RunResult)> {
    let valid: Vec<(usize, Scenario)> = candidates
        .iter()
        .enumerate()
        .map(|(i, units)| (i, with_units(scenario, units)))
        .filter(|(_, candidate)| candidate.validate().is_ok())
        .collect();
    for batch in valid.chunks(jobs.max(1)) {
        let room = max_runs.saturating_sub(runs.load(Ordering::Relaxed));
        let batch = &batch[..batch.len().min(room)];
        if batch.is_empty() {
            return None;
        }
        let found: Option<(usize, RunResult)> = std::thread::scope(|scope| {
            let workers: Vec<_> =
                batch.iter().map(|(i, candidate)| scope.spawn(move || fails(candidate).map(|r| (*i, r)))).collect();
            let results: Vec<Option<(usize, RunResult)>> =
                workers.into_iter().map(|w| w.join().expect("shrink workers do not panic")).collect();
            // In candidate order: the lowest index that fails.
            results.into_iter().flatten().next()
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::scenario_file;

    /// Steps 0..=3: attach a container on the initial node `extra`, create networks a, b, c;
    /// initial object 0: the node `extra` (without it the attach step is not valid).
    const UNITS: &str = r#"
name = "units"
[cluster]
managers = 1
workers = 1
duration = "10s"

[[initial.nodes]]
id = "extra"
spec = { name = "extra", role = "worker", availability = "active" }

[[step]]
at = "1s"
attach = { task = "c1", network = "a", node = "extra" }
"#;

    fn units() -> Scenario {
        let creates: String = ["a", "b", "c"]
            .iter()
            .map(|id| format!("\n[[step]]\nat = \"2s\"\ncreate_network = {{ id = \"{id}\" }}\n"))
            .collect();
        scenario_file::parse("units.toml", &format!("{UNITS}{creates}")).expect("valid")
    }

    fn violation(checker: &str, detail: &str, objects: &[&str]) -> Violation {
        Violation {
            checker: checker.into(),
            objects: objects.iter().map(|o| o.to_string()).collect(),
            detail: detail.into(),
            t_ms: 0,
            raft_index: 0,
            node: "m1".into(),
        }
    }

    fn result(violation: Option<Violation>) -> RunResult {
        RunResult {
            scenario: "units".into(),
            legacy: None,
            seed: 0,
            faults: Default::default(),
            violation,
            trace_hash: String::new(),
            trace_lines: 0,
            sim_ms: 0,
            wall_ms: 0,
            metrics: Default::default(),
            series: Default::default(),
            trace_tail: Vec::new(),
            trace: Vec::new(),
            decisions: Vec::new(),
            ops: Vec::new(),
            real: None,
        }
    }

    /// The networks a candidate's steps create.
    fn creates(scenario: &Scenario) -> Vec<String> {
        let names = scenario.steps.iter().filter_map(|s| match &s.action {
            Action::Client(crate::scenario::ClientOp::CreateNetwork { id, .. }) => Some(id.to_string()),
            _ => None,
        });
        names.collect()
    }

    /// A fake run: the violation `b` when the candidate creates network b, else `c` (if any)
    /// when it creates network c, else a pass.
    fn fake(b: &Violation, c: Option<&Violation>) -> impl Fn(&Scenario) -> RunResult + Sync {
        move |candidate: &Scenario| {
            let created = creates(candidate);
            let has = |id: &str| created.iter().any(|c| c == id);
            result(if has("b") { Some(b.clone()) } else { c.filter(|_| has("c")).cloned() })
        }
    }

    #[test]
    fn shrinking_keeps_the_same_failure_not_another_of_the_same_checker() {
        let gone = |i: usize, net: &str| {
            violation(
                "assertion",
                &format!("expect.assert[{i}]: network {net} still exists"),
                &[&format!("network {net}")],
            )
        };
        let shared = |a: &str, b: &str| violation("duplicate_live_address", "address 10.0.0.3 held twice", &[a, b]);
        let any_assertion = Signature::checker("assertion");
        // (failure with b, failure with c only, the target given, the networks the result creates)
        let cases: [(Violation, Violation, Option<&Signature>, &[&str]); 5] = [
            // Another assertion, of the same checker and the same kinds of objects: not the same.
            (gone(0, "b"), gone(1, "c"), None, &["b"]),
            // Two tasks sharing an address is not a task and a load balancer sharing one.
            (shared("task t1", "task t2"), shared("task t3", "load balancer of node w1"), None, &["b"]),
            // Other ids, same kinds: the same failure (ids change as steps go).
            (shared("task t1", "task t2"), shared("task t8", "task t9"), None, &["c"]),
            (shared("VIP of service s", "task t2"), shared("task t8", "VIP of service r"), None, &["c"]),
            // --checker NAME: any failure of that checker.
            (gone(0, "b"), gone(1, "c"), Some(&any_assertion), &["c"]),
        ];
        for (b, c, target, want) in cases {
            let runner = fake(&b, Some(&c));
            let limits = Limits { jobs: 2, max_runs: 100 };
            let shrunk = shrink_by(&units(), target, limits, &runner, |_, _| {}).expect("the input fails");
            assert_eq!(creates(&shrunk.scenario), want, "{b} / {c} / {target:?}");
            assert_eq!(shrunk.target, target.cloned().unwrap_or_else(|| Signature::of(&b)));
        }
    }

    #[test]
    fn the_run_count_is_every_simulation_and_invalid_candidates_are_never_run() {
        let fails = violation("assertion", "expect.assert[0]: network b still exists", &["network b"]);
        for jobs in 1..=3 {
            for max_runs in 1..=20 {
                let ran = AtomicUsize::new(0);
                let invalid = Mutex::new(Vec::new());
                let fake = fake(&fails, None);
                let runner = |candidate: &Scenario| {
                    ran.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = candidate.validate() {
                        invalid.lock().expect("not poisoned").push(e);
                    }
                    fake(candidate)
                };
                let limits = Limits { jobs, max_runs };
                let shrunk = shrink_by(&units(), None, limits, &runner, |_, _| {}).expect("the input fails");
                let ran = ran.into_inner();
                assert_eq!(shrunk.runs, ran, "jobs {jobs}, max_runs {max_runs}: runs counted vs made");
                assert!(ran <= max_runs, "jobs {jobs}: {ran} runs, at most {max_runs} allowed");
                assert_eq!(invalid.into_inner().expect("not poisoned"), Vec::<String>::new(), "jobs {jobs}");
                assert_eq!(shrunk.scenario.validate(), Ok(()));
                assert!(creates(&shrunk.scenario).contains(&"b".to_string()), "jobs {jobs}, max_runs {max_runs}");
                if max_runs == 20 {
                    // Enough runs: down to the one step, the last try (no step at all) run and counted.
                    assert_eq!(creates(&shrunk.scenario), ["b"]);
                    assert_eq!((shrunk.steps_after(), shrunk.scenario.initial.len()), (1, 0));
                }
            }
        }
    }

    #[test]
    fn a_failure_signature_reads_the_checker_the_assertion_and_the_kinds_of_objects() {
        let v = violation("duplicate_live_address", "x", &["task t2", "load balancer of node w1"]);
        let s = Signature::of(&v);
        assert_eq!((s.assertion.as_deref(), s.object_kinds.clone()), (None, Some(vec!["load".into(), "task".into()])));
        assert_eq!(s.to_string(), "duplicate_live_address [load, task]");
        let v = violation("assertion", "expect.assert[3]: task t1 is still New at the end", &["task t1"]);
        assert_eq!(Signature::of(&v).to_string(), "assertion expect.assert[3] [task]");
        let v = violation("replicas_identical", "digest differs", &["m2", "m1"]);
        assert_eq!(Signature::of(&v).to_string(), "replicas_identical [node, node]");
        assert_eq!(Signature::checker("liveness").to_string(), "liveness [any objects]");
    }
}
