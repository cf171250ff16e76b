//! `allocsim decompile` and `allocsim shrink`: a failure to an explicit, small scenario file
//! that replays it (`swarmalloc_sim::shrink` does the work).

use std::path::{Path, PathBuf};
use std::time::Instant;

use swarmalloc_sim::Violation;
use swarmalloc_sim::failure::{FailureFile, write_atomically};
use swarmalloc_sim::run::{RunOptions, run};
use swarmalloc_sim::scenario::Scenario;
use swarmalloc_sim::scenario_file;
use swarmalloc_sim::shrink::{self, Limits, Signature, is_explicit};

use crate::args::{DecompileArgs, ShrinkArgs};
use crate::{Error, Outcome};

fn is_scenario_file(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "toml")
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

/// Decompiles a failure file, and writes the explicit scenario only once its own run fails the
/// way the failure file records (the same `Signature`): a file that does not reproduce the
/// failure is never written (exit 1).
pub fn decompile(args: &DecompileArgs) -> Outcome {
    let (file, out) = (&args.file, &args.out);
    let failure = FailureFile::read(file)?;
    let path = output_path(file, out, ".decompiled")?;
    let (explicit, original) = shrink::decompile(&failure.scenario, failure.seed, &RunOptions::default());
    let check = run(&explicit, failure.seed, &RunOptions::default());
    println!(
        "decompiled {} seed {}: {} steps ({} faults), no random part",
        failure.scenario.name,
        failure.seed,
        explicit.steps.len(),
        shrink::count_faults(&explicit)
    );
    let show = |v: Option<&Violation>| v.map_or("PASS".to_string(), |v| format!("FAIL {v}"));
    println!("failure file:   {}", show(failure.violation.as_ref()));
    println!("original run:   {}", show(original.violation.as_ref()));
    println!("decompiled run: {}", show(check.violation.as_ref()));
    let same = match (&failure.violation, &check.violation) {
        (Some(recorded), Some(now)) => Signature::of(recorded).matches(now),
        _ => false,
    };
    if !same {
        println!("not written: the decompiled scenario does not fail the way the failure file records");
        return Ok(1);
    }
    let header =
        format!("Decompiled by `allocsim decompile {}`.\nReplay: allocsim replay {}", file.display(), path.display());
    write_scenario(&path, &explicit, &header)?;
    println!("wrote {}", path.display());
    println!("replay: allocsim replay {}", path.display());
    Ok(0)
}

pub fn shrink(args: &ShrinkArgs) -> Outcome {
    if (args.seed.is_some() || args.checker.is_some() || args.legacy.is_some()) && !is_scenario_file(&args.file) {
        let message = "--seed, --checker and --legacy go with a scenario file; a failure file has its own".to_string();
        return Err(Error::Usage { command: "shrink", message });
    }
    let (mut scenario, seed, recorded) = load(args)?;
    scenario.set_legacy(args.legacy);
    let path = output_path(&args.file, &args.out, ".shrunk")?;
    let options = RunOptions::default();
    // The failure to keep: --checker NAME (any failure of it), else the failure file's, else
    // the decompiled run's; an explicit scenario file's is its own first run's (in shrink).
    let mut target = args.checker.as_deref().map(Signature::checker).or(recorded.as_ref().map(Signature::of));
    let mut runs_before = 0;
    let explicit = if is_explicit(&scenario) {
        scenario.clone()
    } else {
        println!("decompiling {} seed {} first (it has a random part)", scenario.label(), seed);
        let (explicit, original) = shrink::decompile(&scenario, seed, &options);
        runs_before = 1;
        target = target.or(original.violation.as_ref().map(Signature::of));
        if target.is_none() {
            return Err(Error::Input(format!("{} at seed {seed} passes: nothing to shrink", scenario.name)));
        }
        explicit
    };
    let started = Instant::now();
    let limits = Limits { jobs: args.jobs, max_runs: args.max_runs };
    // The bar's length is the run budget: its ETA is an upper bound.
    let progress = crate::progress::bar(
        (runs_before + args.max_runs) as u64,
        "shrinking: {pos} runs of at most {len}, {msg} ({per_sec}, ETA at most {eta})",
    );
    progress.set_position(runs_before as u64);
    let shrunk = shrink::shrink(&explicit, seed, target.as_ref(), &options, limits, |runs, units| {
        progress.set_position((runs_before + runs) as u64);
        progress.set_message(format!("{units} parts left"));
    });
    progress.finish_and_clear();
    let shrunk = match shrunk {
        Ok(s) => s,
        // Without a failure to keep, the only refusal is a scenario that passes: bad input.
        Err(e) if target.is_none() => return Err(Error::Input(e.to_string())),
        Err(e) => {
            println!("cannot shrink: {e}");
            return Ok(1);
        }
    };
    let report = Report { scenario: &scenario, seed, runs_before, started, path: &path };
    write_shrunk(args, &shrunk, &report)
}

/// The scenario and seed to shrink, and the violation a failure file recorded.
fn load(args: &ShrinkArgs) -> Result<(Scenario, u64, Option<Violation>), Error> {
    let loaded = if is_scenario_file(&args.file) {
        scenario_file::load(&args.file).map_err(|e| crate::located::scenario_error(&e)).map(|s| {
            let seed = args.seed.or(s.seed).unwrap_or(0);
            (s, seed, None)
        })
    } else {
        FailureFile::read(&args.file).map(|f| (f.scenario, f.seed, f.violation))
    };
    Ok(loaded?)
}

/// What `write_shrunk` says about the run besides the shrunk result.
struct Report<'a> {
    scenario: &'a Scenario,
    seed: u64,
    runs_before: usize,
    started: Instant,
    path: &'a Path,
}

/// Writes the shrunk scenario file and says what shrinking did.
fn write_shrunk(args: &ShrinkArgs, shrunk: &shrink::Shrunk, report: &Report) -> Outcome {
    let &Report { scenario, seed, runs_before, started, path } = report;
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
    write_scenario(path, &small, &header)?;
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
    Ok(0)
}
