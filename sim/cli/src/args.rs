//! The command line as clap parses it: one struct per subcommand. Adding a subcommand is a
//! variant of [`Command`] with its arguments struct here, and a line in `main::dispatch`.

use std::ops::RangeInclusive;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use swarmalloc_sim::scenario::{Checker, LegacyFlavour};

/// The swarmalloc workbench: a deterministic simulator of SwarmKit's network allocator in a
/// raft cluster with faults, its scenario files, sweep reports, and the check of a real swarm's
/// state.
///
/// Exit codes: 0 all good (every run passed; report: every seed passed; check: clean), 1 a
/// check failed (a checker fired or a replay diverged; report: a seed failed or the fuzz
/// summary lists a crash; check: problems found), 2 bad input or usage.
#[derive(Debug, Parser)]
#[command(name = "allocsim", version, subcommand_required = true, arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one seed, a sweep of seeds, or a determinism check of scenarios.
    Run(RunArgs),
    /// Run a failure file or a scenario again and compare the trace hash.
    Replay(ReplayArgs),
    /// Write a failure's random choices as the explicit steps of a scenario file.
    Decompile(DecompileArgs),
    /// Delta-debug a failure to the fewest steps and initial objects that fail the same way.
    Shrink(ShrinkArgs),
    /// Measure seeds per second and tasks moved NEW -> PENDING per second; with --real, a real
    /// manager beside the simulator.
    Bench(BenchArgs),
    /// Read the JSON lines of `run --json` sweeps and write report.json, index.html and charts.
    Report(ReportArgs),
    /// Check a swarm's state for allocation problems: a live swarm through the Docker Engine API
    /// (read-only), or a saved dump (Docker inspect output or a store snapshot).
    Check(CheckArgs),
    /// Run a scenario's user steps and the faults a real swarm can take on a real Docker swarm,
    /// checking its state after each step (sim/live/README.md).
    Live(LiveArgs),
}

/// Runs at a time when `--jobs` is not given: one per core.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// `A..B` (A up to B-1) or `A..=B` (A up to B), never empty.
pub fn seed_range(text: &str) -> Result<RangeInclusive<u64>, String> {
    let expected = || format!("expected A..B or A..=B, A and B integers from 0 to {}", u64::MAX);
    let (a, b) = text.split_once("..").ok_or_else(expected)?;
    let (b, inclusive) = b.strip_prefix('=').map_or((b, false), |b| (b, true));
    let (a, b): (u64, u64) = (a.parse().map_err(|_| expected())?, b.parse().map_err(|_| expected())?);
    let last = if inclusive { Some(b) } else { b.checked_sub(1) };
    match last {
        Some(last) if a <= last => Ok(a..=last),
        _ => Err("the range is empty (A..B runs A up to B-1, A..=B up to B)".into()),
    }
}

/// A count that must be at least 1 (`--jobs`, `--max-runs`).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("expected at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("expected a positive integer ({e})")),
    }
}

fn legacy(text: &str) -> Result<LegacyFlavour, String> {
    text.parse()
}

/// What `run` and `replay` take as SCENARIO.
const SCENARIO_HELP: &str = "A built-in scenario (default: 3 managers, 5 workers, ~20 services / ~200 tasks, 60 \
                             simulated seconds, faults on; smoke: smaller and shorter; throughput: 50,000 tasks, no \
                             faults), a scenario file (TOML, see scenarios/README.md), or a directory (every *.toml \
                             in it)";

#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(value_name = "SCENARIO", help = SCENARIO_HELP, default_value = "default")]
    pub scenarios: Vec<String>,
    /// One seed (a scenario file that records its seed runs at it by default).
    #[arg(long, value_name = "N", conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// A sweep: A..B runs A up to B-1, A..=B up to B; an empty range is refused.
    #[arg(long, value_name = "A..B", value_parser = seed_range)]
    pub seeds: Option<RangeInclusive<u64>>,
    /// Runs at a time.
    #[arg(long, value_name = "J", default_value_t = cores(), value_parser = at_least_one)]
    pub jobs: usize,
    /// One JSON result line per seed (and a summary line per scenario of a sweep).
    #[arg(long)]
    pub json: bool,
    /// Run each seed twice and report the first trace line where they differ.
    #[arg(long)]
    pub check_determinism: bool,
    /// Write the whole trace of the run (JSON lines) to FILE; one scenario and one seed only.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Where failing seeds write their failure files.
    #[arg(long, value_name = "DIR", default_value = "allocsim-failures")]
    pub failures: PathBuf,
    /// Turn on one old allocator behaviour (B1, B2, B3, B4, B5, B6, B8, B11, flag-init; see
    /// docs/legacy-flavours.md); only builds with the `legacy` feature have them.
    #[arg(long, value_name = "FLAVOUR", value_parser = legacy)]
    pub legacy: Option<LegacyFlavour>,
}

/// Exit codes for a failure file: 1 reproduced (the same trace hash, so the same failure), 3
/// diverged (another trace hash: the code or the build changed the run). For a scenario: 0 it
/// passed, 1 a checker fired. 2 bad input or usage.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A failure file (NAME-SEED.json, written by a failing run), a scenario file, or a built-in
    /// scenario (default, smoke, throughput).
    #[arg(value_name = "FAILURE|SCENARIO")]
    pub file: String,
    /// The seed to run a scenario at (default: the seed the file records, else 0); a failure
    /// file has its own.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// One JSON result line.
    #[arg(long)]
    pub json: bool,
    /// Run a scenario with a legacy flavour; a failure file has its own.
    #[arg(long, value_name = "FLAVOUR", value_parser = legacy)]
    pub legacy: Option<LegacyFlavour>,
}

#[derive(Debug, Args)]
pub struct DecompileArgs {
    /// The failure file (FAILURE.json).
    #[arg(value_name = "FAILURE")]
    pub file: PathBuf,
    /// The scenario file to write (default: next to the input, NAME.decompiled.toml); never the
    /// input.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// A smaller candidate is kept only if it fails the same way at the same seed: the same
/// checker, for `assertion` the same assertion (expect.assert[i]), and the same kinds of
/// objects (task, VIP, gateway, load balancer, network, ...; not their ids).
#[derive(Debug, Args)]
pub struct ShrinkArgs {
    /// A failure file (decompiled first) or an explicit failing scenario file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The seed a scenario file fails at (default: the seed it records, else 0).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Keep any failure of this checker instead (a looser rule); scenario files only.
    #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(Checker::names()))]
    pub checker: Option<String>,
    /// The scenario file to write (default: next to the input, NAME.shrunk.toml); never the input.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Candidates run at a time.
    #[arg(long, value_name = "J", default_value_t = cores(), value_parser = at_least_one)]
    pub jobs: usize,
    /// Give up after this many runs.
    #[arg(long, value_name = "N", default_value_t = 2_000, value_parser = at_least_one)]
    pub max_runs: usize,
    /// Shrink a scenario file with a legacy flavour; a failure file has its own.
    #[arg(long, value_name = "FLAVOUR", value_parser = legacy)]
    pub legacy: Option<LegacyFlavour>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Seeds of the default workload to sweep.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub seeds: u64,
    /// Runs at a time.
    #[arg(long, value_name = "J", default_value_t = cores(), value_parser = at_least_one)]
    pub jobs: usize,
    /// Tasks to move NEW -> PENDING in the throughput run.
    #[arg(long, value_name = "N", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub tasks: u64,
    /// Instead: a real manager beside the simulator. For each of --real-tasks, the simulator's
    /// throughput run, then --runs runs on a fresh one-manager Docker swarm of its own (needs
    /// root, dockerd and busybox-static; waits for the machine's swarm lock), from `service
    /// create` until every task is PENDING (see docs/performance.md).
    #[arg(long, conflicts_with_all = ["seeds", "tasks", "jobs"])]
    pub real: bool,
    /// Task counts of --real, comma-separated.
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_values_t = [1_000u64, 5_000], requires = "real",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub real_tasks: Vec<u64>,
    /// Runs on the real manager per task count (the median is quoted).
    #[arg(long, value_name = "R", default_value_t = 3, requires = "real", value_parser = at_least_one)]
    pub runs: usize,
    /// With --real: one JSON line per task count instead of the text.
    #[arg(long, requires = "real")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results files: the output of `allocsim run --json` (several merge, for example shards).
    #[arg(value_name = "RESULTS", required = true)]
    pub results: Vec<PathBuf>,
    /// Where report.json, index.html and charts/ are written.
    #[arg(long, value_name = "DIR", required = true)]
    pub out: PathBuf,
    /// An earlier report.json to compare with.
    #[arg(long, value_name = "REPORT")]
    pub baseline: Option<PathBuf>,
    /// A fuzzing summary (scripts/nightly-fuzz.sh's summary.json).
    #[arg(long, value_name = "SUMMARY")]
    pub fuzz: Option<PathBuf>,
    /// Where the failure files and shrunk scenarios are (`run --failures`).
    #[arg(long, value_name = "DIR", default_value = "allocsim-failures")]
    pub failures: PathBuf,
    /// Print report.json instead of the text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A saved state: a JSON file or a directory of them (Docker inspect output, a dump that
    /// --save-dump wrote, or a store snapshot). Without it, the live swarm that --host or
    /// DOCKER_HOST names is read through the Docker Engine API (GET requests only, on a manager).
    #[arg(value_name = "STATE")]
    pub state: Option<PathBuf>,
    /// The Docker Engine API of a swarm manager, unix:///path/to/docker.sock (default:
    /// DOCKER_HOST, else unix:///var/run/docker.sock).
    #[arg(long, short = 'H', value_name = "HOST", conflicts_with = "state")]
    pub host: Option<String>,
    /// Also save the live swarm's state into DIR, a dump that `allocsim check DIR` reads back to
    /// the same problems (for sharing; DIR must hold no other *.json files).
    #[arg(long, value_name = "DIR", conflicts_with = "state")]
    pub save_dump: Option<PathBuf>,
    /// Also write check.json and index.html into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print check.json instead of the text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Scenario files or built-in scenarios (a directory: every *.toml in it), run one after another.
    #[arg(value_name = "SCENARIO", required = true)]
    pub scenarios: Vec<String>,
    /// The seed of the scenarios' random part (default: a file's own seed, else 0).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Run on the running swarm manager at this socket (unix:///path) instead of starting one.
    /// Its objects stay behind and faults are skipped.
    #[arg(long, value_name = "HOST", conflicts_with = "docker_host")]
    pub host: Option<String>,
    /// Run on the running swarm manager DOCKER_HOST names instead of starting one.
    #[arg(long)]
    pub docker_host: bool,
    /// Run the services' tasks in containers (small scenarios), so that `running` assertions can
    /// hold; otherwise tasks are constrained to no node and stay PENDING.
    #[arg(long)]
    pub run_tasks: bool,
    /// Seconds a step may take to settle.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub settle: u64,
    /// Print the result and summary lines (JSON, as `run --json`) for `allocsim report`.
    #[arg(long)]
    pub json: bool,
}
