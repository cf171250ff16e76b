//! The `allocsim` command line: `run` (one seed, a sweep, or a determinism check, of a built-in
//! scenario, a scenario file or a directory of them), `replay` (a failure file, or a scenario
//! file at a seed), `decompile` and `shrink` (a failure to an explicit, small scenario), `bench`,
//! and `report` and `check`, thin wrappers over `swarmalloc_reports`.
//! Exit codes: 0 all passed, 1 a check failed, 2 bad input or usage.

use std::io::{IsTerminal, Write};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Instant;

use swarmalloc_reports::{ReportOptions, Status, check_path, make_report};

use swarmalloc_sim::RunResult;
use swarmalloc_sim::failure::{FailureFile, write_atomically};
use swarmalloc_sim::run::{RunOptions, run};
use swarmalloc_sim::scenario::{CHECKERS, LegacyFlavour, Scenario};
use swarmalloc_sim::scenario_file;
use swarmalloc_sim::shrink::{self, Limits, Signature, decompile, is_explicit};
use swarmalloc_sim::sweep::{check_determinism, sweep};

pub const USAGE: &str = "\
usage:
  allocsim run [SCENARIO...] [--seed N | --seeds A..B | --seeds A..=B] [--jobs J] [--json]
               [--check-determinism] [--trace FILE] [--failures DIR] [--legacy FLAVOUR]
  allocsim replay FAILURE.json [--json]
  allocsim replay SCENARIO.toml [--seed N] [--json] [--legacy FLAVOUR]
  allocsim decompile FAILURE.json [--out FILE.toml]
  allocsim shrink FAILURE.json|SCENARIO.toml [--seed N] [--checker NAME] [--out FILE.toml] [--jobs J]
                  [--max-runs N] [--legacy FLAVOUR]
  allocsim bench [--seeds N] [--jobs J] [--tasks N]
  allocsim report RESULTS.jsonl... --out DIR [--baseline OLD/report.json] [--fuzz FUZZ.json]
                  [--failures DIR] [--json]
  allocsim check STATE --out DIR [--json]

SCENARIO is a built-in scenario: default (3 managers, 5 workers, ~20 services / ~200 tasks,
60 simulated seconds, faults on), smoke (smaller and shorter), throughput (50,000 tasks, no faults);
or a scenario file (TOML, see scenarios/README.md); or a directory, which runs every *.toml in it.
--seeds A..B runs A up to B-1, A..=B up to B; an empty range is refused.
decompile writes a failure's random choices as explicit steps; shrink delta-debugs an explicit
failing scenario (decompiling a failure first) to the fewest steps and initial objects that
still fail the same way at the same seed: the same checker, for `assertion` the same
assertion (expect.assert[i]), and the same kinds of objects (task, VIP, gateway, load
balancer, network, ...; not their ids). --checker NAME keeps any failure of checker NAME
instead. Neither writes over its input (--out names another file; the write is atomic).
--legacy turns on one old allocator behaviour (B1, B2, B3, B4, B5, B6, B8, B11, flag-init; see
docs/legacy-flavours.md); only builds with the `legacy` feature have it.
report reads the JSON lines of `run --json` sweeps (several files merge) and writes report.json,
index.html and charts/ to DIR; failure files and shrunk scenarios are looked up in --failures
(default allocsim-failures). check reads a Docker inspect dump or a store snapshot (a file or a
directory of *.json) and writes check.json and index.html to DIR.
Exit codes: 0 every run passed (report: every seed passed; check: clean), 1 a checker fired (or a
replay diverged; report: a seed failed or the fuzz summary lists a crash; check: problems found),
2 bad input or usage.";

/// Exit code for a usage or input error.
pub const EXIT_USAGE: i32 = 2;

/// Why a command line was refused: a mistake in the arguments (the usage follows the message)
/// or an unreadable or invalid input file (the message names the file, line and key).
enum ArgError {
    Usage(String),
    Input(String),
}

impl From<String> for ArgError {
    fn from(message: String) -> ArgError {
        ArgError::Usage(message)
    }
}

impl From<&str> for ArgError {
    fn from(message: &str) -> ArgError {
        ArgError::Usage(message.to_string())
    }
}

struct RunArgs {
    scenarios: Vec<Scenario>,
    seeds: RangeInclusive<u64>,
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
        Some("replay") => parse_replay(&args[1..]).map(|a| cmd_replay(&a)),
        Some("decompile") => parse_decompile(&args[1..]).map(|(file, out)| cmd_decompile(&file, out)),
        Some("shrink") => parse_shrink(&args[1..]).map(|a| cmd_shrink(&a)),
        Some("bench") => parse_bench(&args[1..]).map(|(seeds, jobs, tasks)| cmd_bench(seeds, jobs, tasks)),
        Some("report") => parse_report(&args[1..]).map(|a| cmd_report(&a)),
        Some("check") => parse_check(&args[1..]).map(|a| cmd_check(&a)),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(0)
        }
        Some(other) => Err(format!("unknown command {other:?}").into()),
        None => Err("no command given".into()),
    };
    match result {
        Ok(code) => code,
        Err(ArgError::Usage(message)) => {
            eprintln!("allocsim: {message}\n\n{USAGE}");
            EXIT_USAGE
        }
        Err(ArgError::Input(message)) => {
            eprintln!("allocsim: {message}");
            EXIT_USAGE
        }
    }
}

fn value<'a>(args: &'a [String], i: &mut usize, flag: &str) -> Result<&'a str, String> {
    *i += 1;
    args.get(*i).map(String::as_str).ok_or_else(|| format!("{flag} needs a value"))
}

/// `--legacy FLAVOUR`: refused (exit 2) by a build without the flavours.
fn legacy_flag(args: &[String], i: &mut usize) -> Result<LegacyFlavour, ArgError> {
    value(args, i, "--legacy")?.parse().map_err(|e| ArgError::Input(format!("--legacy: {e}")))
}

fn label(scenario: &Scenario) -> String {
    scenario.label()
}

fn number<T: std::str::FromStr>(text: &str, flag: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("{flag} {text:?}: expected a non-negative integer"))
}

/// `A..B` (A up to B-1) or `A..=B` (A up to B), never empty.
fn seed_range(text: &str) -> Result<RangeInclusive<u64>, String> {
    let expected = || format!("--seeds {text:?}: expected A..B or A..=B, A and B integers from 0 to {}", u64::MAX);
    let (a, b) = text.split_once("..").ok_or_else(expected)?;
    let (b, inclusive) = b.strip_prefix('=').map_or((b, false), |b| (b, true));
    let (a, b): (u64, u64) = (a.parse().map_err(|_| expected())?, b.parse().map_err(|_| expected())?);
    let last = if inclusive { Some(b) } else { b.checked_sub(1) };
    match last {
        Some(last) if a <= last => Ok(a..=last),
        _ => Err(format!("--seeds {text:?}: the range is empty (A..B runs A up to B-1, A..=B up to B)")),
    }
}

/// How many seeds a range holds (saturating: `0..=u64::MAX` is one more than a u64).
fn seed_count(seeds: &RangeInclusive<u64>) -> u64 {
    (seeds.end() - seeds.start()).saturating_add(1)
}

/// The scenarios a command-line argument names: a built-in name, a scenario file, or a
/// directory (every `*.toml` in it, in name order).
pub fn scenarios_named(name: &str) -> Result<Vec<Scenario>, String> {
    let path = Path::new(name);
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("{name}: cannot read the directory: {e}"))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!("{name}: no scenario files (*.toml) in this directory"));
        }
        return files.iter().map(|f| scenario_file::load(f).map_err(|e| e.to_string())).collect();
    }
    if path.extension().is_some() || name.contains('/') {
        return scenario_file::load(path).map(|s| vec![s]).map_err(|e| e.to_string());
    }
    Scenario::built_in(name).map(|s| vec![s]).ok_or_else(|| {
        format!(
            "unknown scenario {name:?}; built-in scenarios: {}, or give a scenario file or directory",
            Scenario::BUILT_IN.join(", ")
        )
    })
}

fn parse_run(args: &[String]) -> Result<RunArgs, ArgError> {
    let mut parsed = RunArgs {
        scenarios: Vec::new(),
        seeds: 0..=0,
        jobs: 1,
        json: false,
        determinism: false,
        trace: None,
        failures: PathBuf::from("allocsim-failures"),
    };
    let mut seeds_given = false;
    let mut legacy = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--legacy" => legacy = Some(legacy_flag(args, &mut i)?),
            "--seed" => {
                let seed: u64 = number(value(args, &mut i, "--seed")?, "--seed")?;
                if seeds_given {
                    return Err("give either --seed or --seeds, once".into());
                }
                seeds_given = true;
                parsed.seeds = seed..=seed;
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
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag:?}").into()),
            name => parsed.scenarios.extend(scenarios_named(name).map_err(ArgError::Input)?),
        }
        i += 1;
    }
    if parsed.scenarios.is_empty() {
        parsed.scenarios.push(Scenario::default_workload());
    }
    for scenario in &mut parsed.scenarios {
        scenario.set_legacy(legacy);
    }
    // A single scenario file that records its seed (decompiled and shrunk files do) runs at it.
    if let ([scenario], false) = (parsed.scenarios.as_slice(), seeds_given)
        && let Some(seed) = scenario.seed
    {
        parsed.seeds = seed..=seed;
    }
    for scenario in &parsed.scenarios {
        scenario.validate().map_err(|e| ArgError::Input(format!("scenario {}: {e}", scenario.name)))?;
    }
    if parsed.trace.is_some() && (seed_count(&parsed.seeds) != 1 || parsed.scenarios.len() != 1) {
        return Err("--trace needs a single scenario and a single --seed".into());
    }
    Ok(parsed)
}

struct ReplayArgs {
    file: PathBuf,
    seed: Option<u64>,
    json: bool,
    legacy: Option<LegacyFlavour>,
}

fn is_scenario_file(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "toml")
}

fn parse_replay(args: &[String]) -> Result<ReplayArgs, ArgError> {
    let mut file = None;
    let mut seed = None;
    let mut json = false;
    let mut legacy = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--json" => json = true,
            "--legacy" => legacy = Some(legacy_flag(args, &mut i)?),
            "--seed" => seed = Some(number(value(args, &mut i, "--seed")?, "--seed")?),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag:?}").into()),
            path if file.is_none() => file = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument {extra:?}").into()),
        }
        i += 1;
    }
    let file: PathBuf = file.ok_or("replay needs a failure file or a scenario file")?;
    if seed.is_some() && !is_scenario_file(&file) {
        return Err("--seed goes with a scenario file; a failure file has its own seed".into());
    }
    if legacy.is_some() && !is_scenario_file(&file) {
        return Err("--legacy goes with a scenario file; a failure file has its own flavour".into());
    }
    Ok(ReplayArgs { file, seed, json, legacy })
}

fn parse_decompile(args: &[String]) -> Result<(PathBuf, Option<PathBuf>), ArgError> {
    let mut file = None;
    let mut out = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--out" => out = Some(PathBuf::from(value(args, &mut i, "--out")?)),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag:?}").into()),
            path if file.is_none() => file = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument {extra:?}").into()),
        }
        i += 1;
    }
    Ok((file.ok_or("decompile needs a failure file")?, out))
}

struct ShrinkArgs {
    file: PathBuf,
    seed: Option<u64>,
    checker: Option<String>,
    out: Option<PathBuf>,
    jobs: usize,
    max_runs: usize,
    legacy: Option<LegacyFlavour>,
}

fn parse_shrink(args: &[String]) -> Result<ShrinkArgs, ArgError> {
    let mut parsed = ShrinkArgs {
        file: PathBuf::new(),
        seed: None,
        checker: None,
        out: None,
        jobs: 2,
        max_runs: 2_000,
        legacy: None,
    };
    let mut file = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--seed" => parsed.seed = Some(number(value(args, &mut i, "--seed")?, "--seed")?),
            "--checker" => {
                let checker = value(args, &mut i, "--checker")?;
                if !CHECKERS.contains(&checker) {
                    return Err(ArgError::Input(format!(
                        "--checker {checker:?}: expected one of {}",
                        CHECKERS.join(", ")
                    )));
                }
                parsed.checker = Some(checker.to_string());
            }
            "--out" => parsed.out = Some(PathBuf::from(value(args, &mut i, "--out")?)),
            "--jobs" => parsed.jobs = number(value(args, &mut i, "--jobs")?, "--jobs")?,
            "--max-runs" => parsed.max_runs = number(value(args, &mut i, "--max-runs")?, "--max-runs")?,
            "--legacy" => parsed.legacy = Some(legacy_flag(args, &mut i)?),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag:?}").into()),
            path if file.is_none() => file = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument {extra:?}").into()),
        }
        i += 1;
    }
    parsed.file = file.ok_or("shrink needs a failure file or a scenario file")?;
    if parsed.jobs == 0 || parsed.max_runs == 0 {
        return Err("--jobs and --max-runs must be at least 1".into());
    }
    if (parsed.seed.is_some() || parsed.checker.is_some()) && !is_scenario_file(&parsed.file) {
        return Err("--seed and --checker go with a scenario file; a failure file has its own".into());
    }
    if parsed.legacy.is_some() && !is_scenario_file(&parsed.file) {
        return Err("--legacy goes with a scenario file; a failure file has its own flavour".into());
    }
    Ok(parsed)
}

fn parse_bench(args: &[String]) -> Result<(u64, usize, u64), ArgError> {
    let (mut seeds, mut jobs, mut tasks) = (100u64, 2usize, 50_000u64);
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--seeds" => seeds = number(value(args, &mut i, "--seeds")?, "--seeds")?,
            "--jobs" => jobs = number(value(args, &mut i, "--jobs")?, "--jobs")?,
            "--tasks" => tasks = number(value(args, &mut i, "--tasks")?, "--tasks")?,
            other => return Err(format!("unknown option {other:?}").into()),
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
        for scenario in &args.scenarios {
            for seed in args.seeds.clone() {
                match check_determinism(scenario, seed, &options) {
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
        return code;
    }
    let count = seed_count(&args.seeds);
    if count == 1 && args.scenarios.len() == 1 {
        return run_one(args, &args.scenarios[0], &options);
    }
    let started = Instant::now();
    let progress = Progress::new(count.saturating_mul(args.scenarios.len() as u64));
    let mut failed = 0u64;
    let mut total = 0u64;
    let mut summaries = Vec::new();
    for scenario in &args.scenarios {
        let scenario_started = Instant::now();
        let mut scenario_failed = Vec::new();
        let results = sweep(scenario, args.seeds.clone(), args.jobs, &options, |result| {
            if args.json {
                println!("{}", serde_json::to_string(result).expect("results serialise"));
            }
            if let Some(v) = &result.violation {
                failed += 1;
                scenario_failed.push(result.seed);
                progress.clear();
                let replay = report_failure(scenario, result, &args.failures);
                if args.json {
                    eprintln!("FAIL {} seed {}: {replay}", label(scenario), result.seed);
                } else {
                    let first_line = v.to_string().lines().next().unwrap_or_default().to_string();
                    println!("FAIL {} seed {} ({}): {first_line}", label(scenario), result.seed, result.faults);
                    println!("  {replay}");
                }
            }
            progress.tick(failed);
        });
        total += results.len() as u64;
        scenario_failed.sort_unstable();
        let secs = scenario_started.elapsed().as_secs_f64();
        summaries.push((label(scenario), results.len() as u64, scenario_failed, secs));
    }
    progress.clear();
    let secs = started.elapsed().as_secs_f64();
    let line = |name: &str, seeds: u64, failed: usize, secs: f64| {
        format!(
            "{seeds} seeds of {name}: {} passed, {failed} failed in {secs:.1}s ({:.1} seeds/s, {} jobs)",
            seeds - failed as u64,
            seeds as f64 / secs.max(1e-9),
            args.jobs
        )
    };
    if args.json {
        for (name, seeds, failing, secs) in &summaries {
            let summary = serde_json::json!({
                "summary": line(name, *seeds, failing.len(), *secs), "scenario": name, "seeds": seeds,
                "failed": failing.len(), "seconds": secs, "failing_seeds": failing, "jobs": args.jobs,
            });
            println!("{summary}");
        }
    } else {
        if summaries.len() > 1 {
            for (name, seeds, failing, secs) in &summaries {
                let verdict = if failing.is_empty() { "PASS" } else { "FAIL" };
                println!("{verdict} {}", line(name, *seeds, failing.len(), *secs));
            }
        }
        let what = if summaries.len() == 1 { summaries[0].0.clone() } else { format!("{} scenarios", summaries.len()) };
        println!("{}", line(&what, total, failed as usize, secs));
    }
    i32::from(failed > 0)
}

fn run_one(args: &RunArgs, scenario: &Scenario, options: &RunOptions) -> i32 {
    let result = run(scenario, *args.seeds.start(), options);
    if let Some(path) = &args.trace {
        let mut text = result.trace.join("\n");
        text.push('\n');
        if let Err(e) = write_atomically(path, &text) {
            eprintln!("allocsim: {e} (the trace)");
            return EXIT_USAGE;
        }
    }
    if args.json {
        println!("{}", serde_json::to_string(&result).expect("results serialise"));
    } else {
        println!("scenario {} seed {}", label(scenario), result.seed);
        println!("faults: {}", result.faults);
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
        return 1;
    }
    if !args.json {
        println!("verdict: PASS (every checker held)");
    }
    0
}

fn cmd_replay(args: &ReplayArgs) -> i32 {
    let (scenario, seed, expected) = if is_scenario_file(&args.file) {
        match scenario_file::load(&args.file) {
            Ok(mut scenario) => {
                let seed = args.seed.or(scenario.seed).unwrap_or(0);
                scenario.set_legacy(args.legacy);
                (scenario, seed, None)
            }
            Err(e) => {
                eprintln!("allocsim: {e}");
                return EXIT_USAGE;
            }
        }
    } else {
        match FailureFile::read(&args.file) {
            Ok(file) => (file.scenario, file.seed, Some(file.trace_hash)),
            Err(e) => {
                eprintln!("allocsim: {e}");
                return EXIT_USAGE;
            }
        }
    };
    let result = run(&scenario, seed, &RunOptions::default());
    let same = expected.as_ref().is_none_or(|h| *h == result.trace_hash);
    if args.json {
        println!("{}", serde_json::to_string(&result).expect("results serialise"));
    } else {
        println!("replaying {} seed {} (faults: {})", label(&scenario), seed, result.faults);
        println!("{}", describe(&result));
        if let Some(v) = &result.violation {
            println!("violation: {v}");
        }
        match &expected {
            Some(hash) if same => println!("reproduced: trace hash {hash} matches the failure file"),
            Some(hash) => println!("DIVERGED: trace hash {} but the failure file has {hash}", result.trace_hash),
            None => {
                println!("trace hash {} (the same for every replay of this file at seed {seed})", result.trace_hash)
            }
        }
    }
    if !same || result.violation.is_some() { 1 } else { 0 }
}

/// Where decompile and shrink write: `--out`, or next to the input with a suffix. Refused
/// (exit 2) when it is the input file itself, however spelled (`./x.toml`, `d/../x.toml`, a
/// symbolic link), or when its directory does not exist: checked before any run.
fn output_path(input: &Path, out: &Option<PathBuf>, suffix: &str) -> Result<PathBuf, String> {
    let path = out.clone().unwrap_or_else(|| {
        let stem = input.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "scenario".into());
        input.with_file_name(format!("{stem}{suffix}.toml"))
    });
    let input_real = input.canonicalize().map_err(|e| format!("{}: cannot read: {e}", input.display()))?;
    if same_file(&input_real, &path)? {
        return Err(format!(
            "{}: this is the input file; refusing to overwrite it (give --out OTHER.toml)",
            path.display()
        ));
    }
    Ok(path)
}

/// Whether `path` (which may not exist yet) is the file `real` (a canonical path).
fn same_file(real: &Path, path: &Path) -> Result<bool, String> {
    if let Ok(existing) = path.canonicalize() {
        return Ok(existing == real);
    }
    let name = path.file_name().ok_or_else(|| format!("{}: expected a file name", path.display()))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent = parent.canonicalize().map_err(|e| format!("{}: cannot write there: {e}", parent.display()))?;
    Ok(parent.join(name) == real)
}

/// Writes a scenario file with a header comment, after checking that the text reads back as
/// the same scenario (so the file written always replays).
fn write_scenario(path: &Path, scenario: &Scenario, header: &str) -> Result<(), String> {
    let text = scenario_file::to_toml(scenario)?;
    let cannot = |why: String| format!("{}: not written: the scenario {why}", path.display());
    match scenario_file::parse(&path.display().to_string(), &text) {
        Ok(reread) if reread == *scenario => {}
        Ok(_) => return Err(cannot("does not read back the same".into())),
        Err(e) => return Err(cannot(format!("would not read back: {e}"))),
    }
    let comments: String = header.lines().map(|l| format!("# {l}\n")).collect();
    write_atomically(path, &format!("{comments}\n{text}"))
}

fn cmd_decompile(file: &Path, out: Option<PathBuf>) -> i32 {
    let failure = match FailureFile::read(file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("allocsim: {e}");
            return EXIT_USAGE;
        }
    };
    let path = match output_path(file, &out, ".decompiled") {
        Ok(path) => path,
        Err(e) => {
            eprintln!("allocsim: {e}");
            return EXIT_USAGE;
        }
    };
    let (explicit, original) = decompile(&failure.scenario, failure.seed, &RunOptions::default());
    let header =
        format!("Decompiled by `allocsim decompile {}`.\nReplay: allocsim replay {}", file.display(), path.display());
    if let Err(e) = write_scenario(&path, &explicit, &header) {
        eprintln!("allocsim: {e}");
        return EXIT_USAGE;
    }
    let check = run(&explicit, failure.seed, &RunOptions::default());
    println!(
        "decompiled {} seed {}: {} steps ({} faults), no random part",
        failure.scenario.name,
        failure.seed,
        explicit.steps.len(),
        shrink::count_faults(&explicit)
    );
    let show = |r: &RunResult| r.violation.as_ref().map_or("PASS".to_string(), |v| format!("FAIL {v}"));
    println!("original run:   {}", show(&original));
    println!("decompiled run: {}", show(&check));
    println!("wrote {}", path.display());
    println!("replay: allocsim replay {}", path.display());
    let same = match (&original.violation, &check.violation) {
        (Some(a), Some(b)) => Signature::of(a).matches(b),
        (None, None) => true,
        _ => false,
    };
    if !same {
        println!("the decompiled scenario does NOT fail the same way as the original run");
        return 1;
    }
    0
}

fn cmd_shrink(args: &ShrinkArgs) -> i32 {
    let loaded = if is_scenario_file(&args.file) {
        scenario_file::load(&args.file).map_err(|e| e.to_string()).map(|s| {
            let seed = args.seed.or(s.seed).unwrap_or(0);
            (s, seed, None)
        })
    } else {
        FailureFile::read(&args.file).map(|f| (f.scenario, f.seed, f.violation))
    };
    let (scenario, seed, recorded) = match loaded {
        Ok((mut scenario, seed, recorded)) => {
            scenario.set_legacy(args.legacy);
            (scenario, seed, recorded)
        }
        Err(e) => {
            eprintln!("allocsim: {e}");
            return EXIT_USAGE;
        }
    };
    let path = match output_path(&args.file, &args.out, ".shrunk") {
        Ok(path) => path,
        Err(e) => {
            eprintln!("allocsim: {e}");
            return EXIT_USAGE;
        }
    };
    let options = RunOptions::default();
    // The failure to keep: --checker NAME (any failure of it), else the failure file's, else
    // the decompiled run's; an explicit scenario file's is its own first run's (in shrink).
    let mut target = args.checker.as_deref().map(Signature::checker).or(recorded.as_ref().map(Signature::of));
    let mut runs_before = 0;
    let explicit = if is_explicit(&scenario) {
        scenario.clone()
    } else {
        println!("decompiling {} seed {} first (it has a random part)", label(&scenario), seed);
        let (explicit, original) = decompile(&scenario, seed, &options);
        runs_before = 1;
        target = target.or(original.violation.as_ref().map(Signature::of));
        if target.is_none() {
            eprintln!("allocsim: {} at seed {seed} passes: nothing to shrink", scenario.name);
            return EXIT_USAGE;
        }
        explicit
    };
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let limits = Limits { jobs: args.jobs, max_runs: args.max_runs };
    let shrunk = shrink::shrink(&explicit, seed, target.as_ref(), &options, limits, |runs, units| {
        if terminal {
            eprint!("\rshrinking: {} runs, {units} parts left   ", runs_before + runs);
        }
    });
    if terminal {
        eprint!("\r{}\r", " ".repeat(50));
    }
    let shrunk = match shrunk {
        Ok(s) => s,
        // Without a failure to keep, the only refusal is a scenario that passes: bad input.
        Err(e) if target.is_none() => {
            eprintln!("allocsim: {e}");
            return EXIT_USAGE;
        }
        Err(e) => {
            println!("cannot shrink: {e}");
            return 1;
        }
    };
    let target = &shrunk.target;
    let mut small = shrunk.scenario.clone();
    small.name = scenario_file::derived_name(&scenario.name, "-shrunk");
    small.description = format!(
        "Shrunk by `allocsim shrink {}` from {} steps ({} faults) and {} initial objects; fails with {target} at seed {seed}.",
        args.file.display(),
        shrunk.steps_before,
        shrunk.faults_before,
        shrunk.initial_before
    );
    small.seed = Some(seed);
    let header = format!("{}\nReplay: allocsim replay {}", small.description, path.display());
    if let Err(e) = write_scenario(&path, &small, &header) {
        eprintln!("allocsim: {e}");
        return EXIT_USAGE;
    }
    let decompiling = if runs_before > 0 { format!(" ({runs_before} to decompile)") } else { String::new() };
    println!(
        "shrunk {} seed {seed} ({target}) in {} runs{decompiling}, {:.1}s",
        scenario.name,
        runs_before + shrunk.runs,
        started.elapsed().as_secs_f64()
    );
    println!(
        "  steps: {} -> {}   faults: {} -> {}   initial objects: {} -> {}",
        shrunk.steps_before,
        shrunk.steps_after(),
        shrunk.faults_before,
        shrunk.faults_after(),
        shrunk.initial_before,
        small.initial.len()
    );
    if let Some(v) = &shrunk.result.violation {
        println!("  still fails: {v}");
    }
    println!("wrote {}", path.display());
    println!("replay: allocsim replay {}", path.display());
    0
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

struct ReportArgs {
    options: ReportOptions,
    out: PathBuf,
    json: bool,
}

fn parse_report(args: &[String]) -> Result<ReportArgs, ArgError> {
    let mut options = ReportOptions::default();
    let (mut out, mut json) = (None, false);
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--out" => out = Some(PathBuf::from(value(args, &mut i, "--out")?)),
            "--baseline" => options.baseline = Some(PathBuf::from(value(args, &mut i, "--baseline")?)),
            "--fuzz" => options.fuzz = Some(PathBuf::from(value(args, &mut i, "--fuzz")?)),
            "--failures" => options.sweep.failures_dir = PathBuf::from(value(args, &mut i, "--failures")?),
            "--json" => json = true,
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag:?}").into()),
            path => options.results.push(PathBuf::from(path)),
        }
        i += 1;
    }
    if options.results.is_empty() {
        return Err("report needs at least one results file (the output of `allocsim run --json`)".into());
    }
    Ok(ReportArgs { options, out: out.ok_or("report needs --out DIR")?, json })
}

struct CheckArgs {
    state: PathBuf,
    out: PathBuf,
    json: bool,
}

fn parse_check(args: &[String]) -> Result<CheckArgs, ArgError> {
    let (mut state, mut out, mut json) = (None, None, false);
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--out" => out = Some(PathBuf::from(value(args, &mut i, "--out")?)),
            "--json" => json = true,
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag:?}").into()),
            path if state.is_none() => state = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument {extra:?}").into()),
        }
        i += 1;
    }
    let state = state.ok_or("check needs a state dump (a JSON file or a directory of them)")?;
    Ok(CheckArgs { state, out: out.ok_or("check needs --out DIR")?, json })
}

/// Shows reading progress on stderr for inputs of more than a few megabytes.
fn reading_progress(progress: swarmalloc_reports::Progress) {
    const SHOW_ABOVE_BYTES: u64 = 8 << 20;
    if progress.bytes_total < SHOW_ABOVE_BYTES {
        return;
    }
    let percent = progress.bytes_read * 100 / progress.bytes_total.max(1);
    let text = format!("reading {}: {percent}% ({} lines)", progress.file.display(), progress.lines);
    if std::io::stderr().is_terminal() {
        eprint!("\r{text}   ");
        if progress.bytes_read >= progress.bytes_total {
            eprintln!();
        }
    } else {
        eprintln!("{text}");
    }
}

/// Writes a report's files; a failure names the file (exit 2).
fn write_out(dir: &Path, files: &swarmalloc_reports::Output) -> Result<(), i32> {
    swarmalloc_reports::write_files(dir, files).map(|_| ()).map_err(|e| {
        eprintln!("allocsim: {e}");
        EXIT_USAGE
    })
}

fn cmd_report(args: &ReportArgs) -> i32 {
    let sweep = match make_report(&args.options, &mut reading_progress) {
        Ok(sweep) => sweep,
        Err(e) => {
            eprintln!("allocsim: {e}");
            return EXIT_USAGE;
        }
    };
    let files = sweep.files();
    if let Err(code) = write_out(&args.out, &files) {
        return code;
    }
    if args.json {
        print!("{}", sweep.report.to_json());
    } else {
        print!("{}", sweep.to_text());
        let charts = files.files.iter().filter(|(name, _)| name.starts_with("charts/")).count();
        println!("wrote {} ({charts} charts)", args.out.join("index.html").display());
    }
    i32::from(sweep.exit_code())
}

fn cmd_check(args: &CheckArgs) -> i32 {
    let result = check_path(&args.state);
    let report = match &result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("allocsim: {e}");
            return i32::from(Status::of(&result).code());
        }
    };
    if let Err(code) = write_out(&args.out, &report.files()) {
        return code;
    }
    if args.json {
        print!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
        println!("wrote {}", args.out.join("index.html").display());
    }
    i32::from(Status::of(&result).code())
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
