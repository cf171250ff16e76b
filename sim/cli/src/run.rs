//! `allocsim run` (one seed, a sweep, a determinism check) and `allocsim replay`.

use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use signal_hook::consts::{SIGINT, SIGTERM};

use swarmalloc_sim::failure::{FailureFile, write_atomically};
use swarmalloc_sim::run::{RunOptions, run as run_seed};
use swarmalloc_sim::scenario::{Checker, Scenario};
use swarmalloc_sim::scenario_file;
use swarmalloc_sim::sweep::{check_determinism, sweep_until};
use swarmalloc_sim::{RunResult, SummaryLine};

use crate::args::{ReplayArgs, RunArgs};
use crate::{Error, Outcome};

/// How many seeds a range holds (saturating: `0..=u64::MAX` is one more than a u64).
fn seed_count(seeds: &RangeInclusive<u64>) -> u64 {
    (seeds.end() - seeds.start()).saturating_add(1)
}

/// The scenarios of `run`'s arguments, with `--legacy`, validated.
fn scenarios(args: &RunArgs) -> Result<Vec<Scenario>, Error> {
    let mut scenarios = Vec::new();
    for name in &args.scenarios {
        scenarios.extend(scenario_file::resolve(name).map_err(|e| crate::located::scenario_error(&e))?);
    }
    for scenario in &mut scenarios {
        scenario.set_legacy(args.legacy);
        scenario.validate().map_err(|e| format!("scenario {}: {e}", scenario.name))?;
    }
    Ok(scenarios)
}

pub fn run(args: &RunArgs) -> Outcome {
    let scenarios = scenarios(args)?;
    let seeds = match (args.seed, &args.seeds, scenarios.as_slice()) {
        (Some(seed), _, _) => seed..=seed,
        (None, Some(seeds), _) => seeds.clone(),
        // A single scenario file that records its seed (decompiled and shrunk files do) runs at it.
        (None, None, [scenario]) if scenario.seed.is_some() => scenario.seed.map_or(0..=0, |s| s..=s),
        (None, None, _) => 0..=0,
    };
    if args.trace.is_some() && (seed_count(&seeds) != 1 || scenarios.len() != 1) {
        let message = "--trace needs a single scenario and a single --seed".to_string();
        return Err(Error::Usage { command: "run", message });
    }
    let options = RunOptions { keep_trace: args.trace.is_some(), ..Default::default() };
    if args.check_determinism {
        return Ok(determinism(&scenarios, &seeds, &options));
    }
    if seed_count(&seeds) == 1 && scenarios.len() == 1 {
        return run_one(args, &scenarios[0], *seeds.start(), &options);
    }
    Ok(run_sweep(args, &scenarios, &seeds, &options))
}

fn determinism(scenarios: &[Scenario], seeds: &RangeInclusive<u64>, options: &RunOptions) -> u8 {
    let mut code = 0;
    for scenario in scenarios {
        for seed in seeds.clone() {
            match check_determinism(scenario, seed, options) {
                Ok(hash) => println!("{} seed {seed}: deterministic, hash {hash}", scenario.name),
                Err(d) => {
                    code = 1;
                    println!("{} seed {seed}: DIVERGED at trace line {}", scenario.name, d.line);
                    println!("  first:  {}", d.first.unwrap_or_else(|| "(end of trace)".into()));
                    println!("  second: {}", d.second.unwrap_or_else(|| "(end of trace)".into()));
                }
            }
        }
    }
    code
}

pub fn describe(result: &RunResult) -> String {
    let verdict = if result.passed() { "PASS" } else { "FAIL" };
    format!(
        "seed {} {verdict} hash {} trace {} lines, sim {:.1}s, wall {:.2}s, {} entries, {} leader changes, {} faults",
        result.seed,
        result.trace_hash,
        result.trace_lines,
        result.sim_ms as f64 / 1000.0,
        result.wall_ms as f64 / 1000.0,
        result.metrics.entries_applied,
        result.metrics.leader_changes,
        result.metrics.faults_injected,
    )
}

/// Writes the failure file and returns the line telling how to replay it.
fn report_failure(scenario: &Scenario, result: &RunResult, dir: &Path) -> String {
    match FailureFile::new(scenario, result).write(dir) {
        Ok(path) => format!("replay: allocsim replay {}", path.display()),
        Err(e) => format!("could not write the failure file: {e}"),
    }
}

fn json_line(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("result lines serialise")
}

/// The summary of one scenario's seeds, in words and as its JSON line.
fn summary(args: &RunArgs, scenario: &Scenario, seeds: u64, failing: Vec<u64>, secs: f64) -> SummaryLine {
    SummaryLine {
        summary: summary_text(args, &scenario.label(), seeds, failing.len() as u64, secs),
        scenario: scenario.name.clone(),
        legacy: scenario.legacy_flavour().map(|f| f.to_string()),
        seeds,
        failed: failing.len() as u64,
        seconds: secs,
        failing_seeds: failing,
        jobs: Some(args.jobs as u64),
        interrupted: false,
        real: false,
    }
}

fn summary_text(args: &RunArgs, name: &str, seeds: u64, failed: u64, secs: f64) -> String {
    format!(
        "{seeds} seeds of {name}: {} passed, {failed} failed in {secs:.1}s ({:.1} seeds/s, {} jobs)",
        seeds - failed,
        seeds as f64 / secs.max(1e-9),
        args.jobs
    )
}

/// Exit code of a sweep stopped by a signal: 128 + the signal's number, as shells report it.
fn interrupted_code(signal: usize) -> u8 {
    u8::try_from(128 + signal).unwrap_or(130)
}

/// A sweep over scenarios and seeds. SIGINT or SIGTERM (Ctrl-C, a CI time-out) stops it taking
/// new seeds: the runs under way finish, the scenario's summary says what ran, marked
/// `interrupted`, and the exit code is 128 + the signal. A second signal ends it at once.
fn run_sweep(args: &RunArgs, scenarios: &[Scenario], seeds: &RangeInclusive<u64>, options: &RunOptions) -> u8 {
    let signal = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registration fails only for signals that cannot be caught, which these are not.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone());
        let _ = signal_hook::flag::register(sig, stop.clone());
        let _ = signal_hook::flag::register_usize(sig, signal.clone(), sig as usize);
    }
    let started = Instant::now();
    let progress = crate::progress::seeds(seed_count(seeds).saturating_mul(scenarios.len() as u64));
    let mut failed = 0u64;
    let mut total = 0u64;
    let mut summaries = Vec::new();
    for scenario in scenarios {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let scenario_started = Instant::now();
        let mut scenario_failed = Vec::new();
        let results = sweep_until(scenario, seeds.clone(), args.jobs, options, &stop, |result| {
            if args.json {
                progress.suspend(|| println!("{}", json_line(result)));
            }
            if let Some(v) = &result.violation {
                failed += 1;
                scenario_failed.push(result.seed);
                let replay = report_failure(scenario, result, &args.failures);
                progress.suspend(|| {
                    if args.json {
                        eprintln!("FAIL {} seed {}: {replay}", scenario.label(), result.seed);
                    } else {
                        let first_line = v.to_string().lines().next().unwrap_or_default().to_string();
                        println!("FAIL {} seed {} ({}): {first_line}", scenario.label(), result.seed, result.faults);
                        println!("  {replay}");
                    }
                });
                progress.set_message(format!("{failed} failed"));
            }
            progress.inc(1);
        });
        total += results.len() as u64;
        scenario_failed.sort_unstable();
        let secs = scenario_started.elapsed().as_secs_f64();
        let mut line = summary(args, scenario, results.len() as u64, scenario_failed, secs);
        line.interrupted = stop.load(Ordering::Relaxed);
        if args.json {
            progress.suspend(|| println!("{}", json_line(&line)));
        }
        summaries.push(line);
    }
    progress.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let interrupted = stop.load(Ordering::Relaxed);
    if !args.json {
        if summaries.len() > 1 || interrupted {
            for line in &summaries {
                let verdict = if line.failed > 0 { "FAIL" } else { "PASS" };
                println!("{verdict} {}", line.summary);
            }
        }
        let what = if scenarios.len() == 1 { scenarios[0].label() } else { format!("{} scenarios", scenarios.len()) };
        println!("{}", summary_text(args, &what, total, failed, secs));
    }
    if interrupted {
        let signal = signal.load(Ordering::Relaxed);
        eprintln!("allocsim: interrupted (signal {signal}) after {total} seeds; the summary says what ran");
        return interrupted_code(signal);
    }
    u8::from(failed > 0)
}

fn run_one(args: &RunArgs, scenario: &Scenario, seed: u64, options: &RunOptions) -> Outcome {
    let result = run_seed(scenario, seed, options);
    if let Some(path) = &args.trace {
        let mut text = result.trace.join("\n");
        text.push('\n');
        write_atomically(path, &text).map_err(|e| format!("{e} (the trace)"))?;
    }
    if args.json {
        println!("{}", json_line(&result));
        let failing = if result.passed() { Vec::new() } else { vec![result.seed] };
        let secs = result.wall_ms as f64 / 1000.0;
        println!("{}", json_line(&summary(args, scenario, 1, failing, secs)));
    } else {
        print!("{}", what_ran(scenario, &result));
        println!("{}", describe(&result));
    }
    if let Some(v) = &result.violation {
        let replay = report_failure(scenario, &result, &args.failures);
        if args.json {
            eprintln!("{replay}");
        } else {
            println!("violation: {v}");
            println!("{replay}");
        }
        return Ok(1);
    }
    if !args.json {
        println!("verdict: PASS (every checker held)");
        println!("{}", next_steps(scenario, seed));
    }
    Ok(0)
}

/// What a run simulated, in words: the cluster, what the user created, how long, the faults,
/// and which checkers watched.
fn what_ran(scenario: &Scenario, result: &RunResult) -> String {
    let m = &result.metrics;
    let mut text = format!("scenario {} seed {}\n", scenario.label(), result.seed);
    text += &format!(
        "cluster: {} managers (raft), {} workers, {} clients sending requests\n",
        scenario.managers, scenario.workers, scenario.clients
    );
    text += &format!(
        "work: {} services and {} tasks created; {} of the tasks reached PENDING; {} raft entries applied\n",
        m.services_created, m.tasks_created, m.tasks_pending, m.entries_applied
    );
    let healed = if scenario.faults_until_ms > 0 && scenario.faults_until_ms < scenario.duration_ms {
        format!(", faults until {:.0} s, then everything healed", scenario.faults_until_ms as f64 / 1000.0)
    } else {
        String::new()
    };
    text += &format!("simulated time: {:.1} s{healed}\n", result.sim_ms as f64 / 1000.0);
    let faults = result.faults.in_words();
    if faults.is_empty() {
        text += "faults: none\n";
    } else {
        text += &format!(
            "faults ({} injected; batches of at most {} changes): {}\n",
            m.faults_injected,
            result.faults.batch_max,
            faults.join("; ")
        );
    }
    text += &format!("leader changes: {}, allocator restores: {}\n", m.leader_changes, m.allocator_restores);
    let checkers: Vec<&str> = Checker::ALL
        .into_iter()
        .filter(|c| !matches!(c, Checker::Panic | Checker::Custom) && scenario.checks.enabled(c.name()))
        .map(Checker::name)
        .collect();
    let when = match (scenario.checks.per_entry, scenario.checks.engine_after_batch) {
        (true, true) => "after every raft entry and allocator batch, and at the end",
        (true, false) => "after every raft entry, and at the end",
        (false, true) => "after every allocator batch, and at the end",
        (false, false) => "at the end",
    };
    text += &format!("checkers ({}, {when}): {}\n", checkers.len(), checkers.join(", "));
    text
}

/// What to try after a passing run.
fn next_steps(scenario: &Scenario, seed: u64) -> String {
    let name = if Scenario::BUILT_IN.contains(&scenario.name.as_str()) { scenario.name.clone() } else { "FILE".into() };
    format!(
        "next: allocsim run {name} --seeds 0..100 (a sweep of 100 seeds); allocsim run scenarios/ --seeds 0..10 (the \
         scenario library); allocsim run {name} --seed {seed} --trace trace.jsonl (this run's whole trace)"
    )
}

/// `replay`'s exit code when the failure file's run has another trace hash.
pub const EXIT_DIVERGED: u8 = 3;

pub fn replay(args: &ReplayArgs) -> Outcome {
    let usage = |message: &str| Err(Error::Usage { command: "replay", message: message.to_string() });
    let is_failure_file = Path::new(&args.file).extension().is_some_and(|x| x == "json");
    let (scenario, seed, expected) = if is_failure_file {
        if args.seed.is_some() {
            return usage("--seed goes with a scenario; a failure file has its own seed");
        }
        if args.legacy.is_some() {
            return usage("--legacy goes with a scenario; a failure file has its own flavour");
        }
        let file = FailureFile::read(Path::new(&args.file))?;
        (file.scenario, file.seed, Some(file.trace_hash))
    } else {
        let mut scenarios = scenario_file::resolve(&args.file).map_err(|e| crate::located::scenario_error(&e))?;
        if scenarios.len() != 1 {
            return usage("replay runs one scenario: give a scenario file or a built-in name, not a directory");
        }
        let mut scenario = scenarios.remove(0);
        let seed = args.seed.or(scenario.seed).unwrap_or(0);
        scenario.set_legacy(args.legacy);
        scenario.validate().map_err(|e| format!("scenario {}: {e}", scenario.name))?;
        (scenario, seed, None)
    };
    let result = run_seed(&scenario, seed, &RunOptions::default());
    let same = expected.as_ref().is_none_or(|h| *h == result.trace_hash);
    if args.json {
        println!("{}", json_line(&result));
    } else {
        println!("replaying {} seed {} (faults: {})", scenario.label(), seed, result.faults);
        println!("{}", describe(&result));
        if let Some(v) = &result.violation {
            println!("violation: {v}");
        }
        match &expected {
            Some(hash) if same => println!("reproduced: trace hash {hash} matches the failure file"),
            Some(hash) => println!("DIVERGED: trace hash {} but the failure file has {hash}", result.trace_hash),
            None => println!("trace hash {} (the same for every replay at seed {seed})", result.trace_hash),
        }
    }
    Ok(if !same { EXIT_DIVERGED } else { u8::from(result.violation.is_some()) })
}
