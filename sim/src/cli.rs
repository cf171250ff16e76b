//! The `allocsim` command line: `run` (one seed, a sweep, or a determinism check), `replay`
//! (a failure file), `bench`. Exit codes: 0 all passed, 1 a check failed, 2 bad input or usage.

use std::io::{IsTerminal, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::failure::FailureFile;
use crate::run::{RunOptions, RunResult, run};
use crate::scenario::Scenario;
use crate::sweep::{check_determinism, sweep};

pub const USAGE: &str = "\
usage:
  allocsim run [SCENARIO] [--seed N | --seeds A..B] [--jobs J] [--json] [--check-determinism]
               [--trace FILE] [--failures DIR]
  allocsim replay FILE [--json]
  allocsim bench [--seeds N] [--jobs J] [--tasks N]

SCENARIO is a built-in scenario: default (3 managers, 5 workers, ~20 services / ~200 tasks,
60 simulated seconds, faults on), smoke (smaller and shorter), throughput (50,000 tasks, no faults).
Exit codes: 0 every run passed, 1 a checker fired (or a replay diverged), 2 bad input or usage.";

/// Exit code for a usage or input error.
pub const EXIT_USAGE: i32 = 2;

struct RunArgs {
    scenario: Scenario,
    seeds: Range<u64>,
    jobs: usize,
    json: bool,
    determinism: bool,
    trace: Option<PathBuf>,
    failures: PathBuf,
}

/// Runs the command line and returns the process exit code.
pub fn main(args: Vec<String>) -> i32 {
    let result = match args.first().map(String::as_str) {
        Some("run") => parse_run(&args[1..]).map(|a| cmd_run(&a)),
        Some("replay") => parse_replay(&args[1..]).map(|(file, json)| cmd_replay(&file, json)),
        Some("bench") => parse_bench(&args[1..]).map(|(seeds, jobs, tasks)| cmd_bench(seeds, jobs, tasks)),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(0)
        }
        Some(other) => Err(format!("unknown command {other:?}")),
        None => Err("no command given".into()),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("allocsim: {message}\n\n{USAGE}");
            EXIT_USAGE
        }
    }
}

fn value<'a>(args: &'a [String], i: &mut usize, flag: &str) -> Result<&'a str, String> {
    *i += 1;
    args.get(*i).map(String::as_str).ok_or_else(|| format!("{flag} needs a value"))
}

fn number<T: std::str::FromStr>(text: &str, flag: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("{flag} {text:?}: expected a non-negative integer"))
}

fn seed_range(text: &str) -> Result<Range<u64>, String> {
    let (a, b) = text.split_once("..").ok_or_else(|| format!("--seeds {text:?}: expected A..B"))?;
    let (a, b): (u64, u64) = (number(a, "--seeds")?, number(b, "--seeds")?);
    if a >= b {
        return Err(format!("--seeds {text:?}: the range is empty (A..B runs A up to B-1)"));
    }
    Ok(a..b)
}

fn scenario_named(name: &str) -> Result<Scenario, String> {
    if Path::new(name).extension().is_some() || name.contains('/') {
        return Err(format!(
            "{name}: scenario files are not supported yet; built-in scenarios: {}",
            Scenario::BUILT_IN.join(", ")
        ));
    }
    Scenario::built_in(name)
        .ok_or_else(|| format!("unknown scenario {name:?}; built-in scenarios: {}", Scenario::BUILT_IN.join(", ")))
}

fn parse_run(args: &[String]) -> Result<RunArgs, String> {
    let mut parsed = RunArgs {
        scenario: Scenario::default_workload(),
        seeds: 0..1,
        jobs: 1,
        json: false,
        determinism: false,
        trace: None,
        failures: PathBuf::from("allocsim-failures"),
    };
    let mut scenario_given = false;
    let mut seeds_given = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--seed" => {
                let seed: u64 = number(value(args, &mut i, "--seed")?, "--seed")?;
                if seeds_given {
                    return Err("give either --seed or --seeds, once".into());
                }
                seeds_given = true;
                parsed.seeds = seed..seed + 1;
            }
            "--seeds" => {
                if seeds_given {
                    return Err("give either --seed or --seeds, once".into());
                }
                seeds_given = true;
                parsed.seeds = seed_range(value(args, &mut i, "--seeds")?)?;
            }
            "--jobs" => {
                parsed.jobs = number(value(args, &mut i, "--jobs")?, "--jobs")?;
                if parsed.jobs == 0 {
                    return Err("--jobs 0: expected at least 1".into());
                }
            }
            "--json" => parsed.json = true,
            "--check-determinism" => parsed.determinism = true,
            "--trace" => parsed.trace = Some(PathBuf::from(value(args, &mut i, "--trace")?)),
            "--failures" => parsed.failures = PathBuf::from(value(args, &mut i, "--failures")?),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag:?}")),
            name => {
                if scenario_given {
                    return Err(format!("unexpected argument {name:?}"));
                }
                scenario_given = true;
                parsed.scenario = scenario_named(name)?;
            }
        }
        i += 1;
    }
    parsed.scenario.validate().map_err(|e| format!("scenario {}: {e}", parsed.scenario.name))?;
    if parsed.trace.is_some() && parsed.seeds.end - parsed.seeds.start != 1 {
        return Err("--trace needs a single --seed".into());
    }
    Ok(parsed)
}

fn parse_replay(args: &[String]) -> Result<(PathBuf, bool), String> {
    let mut file = None;
    let mut json = false;
    for arg in args {
        match arg.as_str() {
            "--json" => json = true,
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag:?}")),
            path if file.is_none() => file = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument {extra:?}")),
        }
    }
    Ok((file.ok_or("replay needs a failure file")?, json))
}

fn parse_bench(args: &[String]) -> Result<(u64, usize, u64), String> {
    let (mut seeds, mut jobs, mut tasks) = (100u64, 2usize, 50_000u64);
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--seeds" => seeds = number(value(args, &mut i, "--seeds")?, "--seeds")?,
            "--jobs" => jobs = number(value(args, &mut i, "--jobs")?, "--jobs")?,
            "--tasks" => tasks = number(value(args, &mut i, "--tasks")?, "--tasks")?,
            other => return Err(format!("unknown option {other:?}")),
        }
        i += 1;
    }
    if seeds == 0 || jobs == 0 || tasks == 0 {
        return Err("bench: --seeds, --jobs and --tasks must be at least 1".into());
    }
    Ok((seeds, jobs, tasks))
}

fn describe(result: &RunResult) -> String {
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

fn cmd_run(args: &RunArgs) -> i32 {
    let options = RunOptions { keep_trace: args.trace.is_some(), ..Default::default() };
    if args.determinism {
        let mut code = 0;
        for seed in args.seeds.clone() {
            match check_determinism(&args.scenario, seed, &options) {
                Ok(hash) => println!("seed {seed}: deterministic, hash {hash}"),
                Err(d) => {
                    code = 1;
                    println!("seed {seed}: DIVERGED at trace line {}", d.line);
                    println!("  first:  {}", d.first.unwrap_or_else(|| "(end of trace)".into()));
                    println!("  second: {}", d.second.unwrap_or_else(|| "(end of trace)".into()));
                }
            }
        }
        return code;
    }
    let count = args.seeds.end - args.seeds.start;
    if count == 1 {
        let result = run(&args.scenario, args.seeds.start, &options);
        if let Some(path) = &args.trace {
            let mut text = result.trace.join("\n");
            text.push('\n');
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("allocsim: {}: cannot write the trace: {e}", path.display());
                return EXIT_USAGE;
            }
        }
        if args.json {
            println!("{}", serde_json::to_string(&result).expect("results serialise"));
        } else {
            println!("scenario {} seed {}", result.scenario, result.seed);
            println!("faults: {}", result.faults);
            println!("{}", describe(&result));
        }
        if let Some(v) = &result.violation {
            let replay = report_failure(&args.scenario, &result, &args.failures);
            if args.json {
                eprintln!("{replay}");
            } else {
                println!("violation: {v}");
                println!("{replay}");
            }
            return 1;
        }
        return 0;
    }
    let started = Instant::now();
    let progress = Progress::new(count);
    let mut failed = 0u64;
    let results = sweep(&args.scenario, args.seeds.clone(), args.jobs, &options, |result| {
        if args.json {
            println!("{}", serde_json::to_string(result).expect("results serialise"));
        }
        if let Some(v) = &result.violation {
            failed += 1;
            progress.clear();
            let replay = report_failure(&args.scenario, result, &args.failures);
            if args.json {
                eprintln!("FAIL seed {}: {replay}", result.seed);
            } else {
                let first_line = v.to_string().lines().next().unwrap_or_default().to_string();
                println!("FAIL seed {} ({}): {first_line}", result.seed, result.faults);
                println!("  {replay}");
            }
        }
        progress.tick(failed);
    });
    progress.clear();
    let secs = started.elapsed().as_secs_f64();
    let summary = format!(
        "{} seeds of {}: {} passed, {} failed in {:.1}s ({:.1} seeds/s, {} jobs)",
        results.len(),
        args.scenario.name,
        results.len() as u64 - failed,
        failed,
        secs,
        results.len() as f64 / secs.max(1e-9),
        args.jobs
    );
    if args.json {
        let summary = serde_json::json!({
            "summary": summary, "seeds": results.len(), "failed": failed, "seconds": secs,
            "failing_seeds": results.iter().filter(|r| !r.passed()).map(|r| r.seed).collect::<Vec<_>>(),
        });
        println!("{summary}");
    } else {
        println!("{summary}");
    }
    i32::from(failed > 0)
}

fn cmd_replay(path: &Path, json: bool) -> i32 {
    let file = match FailureFile::read(path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("allocsim: {e}");
            return EXIT_USAGE;
        }
    };
    let result = run(&file.scenario, file.seed, &RunOptions::default());
    let same = result.trace_hash == file.trace_hash;
    if json {
        println!("{}", serde_json::to_string(&result).expect("results serialise"));
    } else {
        println!("replaying {} seed {} (faults: {})", file.scenario.name, file.seed, file.faults_text);
        println!("{}", describe(&result));
        if let Some(v) = &result.violation {
            println!("violation: {v}");
        }
        if same {
            println!("reproduced: trace hash {} matches the failure file", result.trace_hash);
        } else {
            println!("DIVERGED: trace hash {} but the failure file has {}", result.trace_hash, file.trace_hash);
        }
    }
    if !same || result.violation.is_some() { 1 } else { 0 }
}

fn cmd_bench(seeds: u64, jobs: usize, tasks: u64) -> i32 {
    let scenario = Scenario::default_workload();
    // Other processes skew wall-clock numbers: say how busy the machine was.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("load average before: {}", load.join(" "));
    }
    println!("bench 1: {seeds} seeds of the default workload, {jobs} jobs");
    let started = Instant::now();
    let results = sweep(&scenario, 0..seeds, jobs, &RunOptions::default(), |_| {});
    let secs = started.elapsed().as_secs_f64();
    let failed = results.iter().filter(|r| !r.passed()).count();
    let mean_entries = results.iter().map(|r| r.metrics.entries_applied).sum::<u64>() / seeds.max(1);
    println!(
        "  {:.1} seeds/s ({seeds} seeds in {secs:.1}s; {failed} failed; {mean_entries} entries per seed on average)",
        seeds as f64 / secs
    );
    println!("bench 2: {tasks} tasks NEW -> PENDING, faults off, 3 managers");
    let result = run(&Scenario::throughput(tasks), 1, &RunOptions::default());
    let m = &result.metrics;
    match (m.first_task_ms, m.last_pending_ms) {
        (Some(first), Some(last)) if m.tasks_pending >= tasks => {
            let sim_secs = (last.saturating_sub(first)) as f64 / 1000.0;
            let wall_secs = result.wall_ms as f64 / 1000.0;
            println!(
                "  {} tasks PENDING after {sim_secs:.2} simulated s ({:.0} tasks per simulated s); whole run {wall_secs:.2} wall s \
                 ({:.0} tasks per wall s)",
                m.tasks_pending,
                m.tasks_pending as f64 / sim_secs.max(1e-9),
                m.tasks_pending as f64 / wall_secs.max(1e-9),
            );
        }
        _ => println!("  did not finish: {} of {tasks} tasks PENDING; {}", m.tasks_pending, describe(&result)),
    }
    i32::from(failed > 0 || !result.passed())
}

/// A one-line progress bar on a terminal; a line per tenth otherwise.
struct Progress {
    total: u64,
    done: std::cell::Cell<u64>,
    terminal: bool,
}

impl Progress {
    fn new(total: u64) -> Progress {
        Progress { total, done: std::cell::Cell::new(0), terminal: std::io::stderr().is_terminal() }
    }

    fn tick(&self, failed: u64) {
        let done = self.done.get() + 1;
        self.done.set(done);
        let mut err = std::io::stderr();
        if self.terminal {
            let width = 40;
            let filled = (done * width / self.total) as usize;
            let _ = write!(
                err,
                "\r[{}{}] {done}/{} seeds, {failed} failed",
                "=".repeat(filled),
                " ".repeat(width as usize - filled),
                self.total
            );
            let _ = err.flush();
        } else if done * 10 / self.total != (done - 1) * 10 / self.total || done == self.total {
            let _ = writeln!(err, "progress: {done}/{} seeds, {failed} failed", self.total);
        }
    }

    fn clear(&self) {
        if self.terminal {
            let _ = write!(std::io::stderr(), "\r{}\r", " ".repeat(70));
        }
    }
}
