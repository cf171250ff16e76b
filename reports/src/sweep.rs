//! The sweep report's content: reads result lines (one or several files, for example CI shards)
//! into per-scenario accumulators and turns them into [`SweepReport`], the versioned
//! `report.json` (schema in `reports/README.md`), plus the per-point data only the charts need.
//!
//! Architecture invariant: the report is a function of its inputs. Every sum is an integer
//! (ratios in parts per million), every collection is ordered, so reading the same files in any
//! order gives the same `report.json` except `inputs` (listed in the order given, each file's
//! duplicates counted against the files before it) and `wall_clock`, which holds the only
//! wall-clock values.
//! Bounds: memory grows with scenarios, simulated seconds, networks and failures, not with seeds,
//! except one (scenario, seed, trace hash) entry per seed to merge shards.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::InputError;
use swarmalloc_sim::failure::file_stem;
use swarmalloc_sim::series::{FaultWindow, Series};
use swarmalloc_sim::{RunResult, SummaryLine, Violation};

use crate::results::{Line, Place, Progress, fault_text, read_lines};
use crate::stats::{Histogram, Overflow, PPM, add, ppm, round};

/// Names the JSON schema of `report.json`; bumped on any incompatible change.
pub const REPORT_SCHEMA: &str = "swarmalloc-report/1";

/// Failures whose series and trace tail are kept for the page (the first ones by scenario, seed).
pub const FAILURE_DETAILS_MAX: usize = 20;
/// Restore samples kept for the restore chart (the first ones by scenario, seed).
pub const RESTORE_POINTS_MAX: usize = 4_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepVerdict {
    Pass,
    Fail,
    /// No seed failed, but the sweep did not run to its end: a results file has result lines
    /// after its last summary line of their scenario (cut short), or a summary line says the
    /// sweep was interrupted. `SweepReport::incomplete` says which.
    Incomplete,
}

impl SweepVerdict {
    pub fn word(self) -> &'static str {
        match self {
            SweepVerdict::Pass => "PASS",
            SweepVerdict::Fail => "FAIL",
            SweepVerdict::Incomplete => "INCOMPLETE",
        }
    }
}

/// `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepReport {
    pub schema: &'static str,
    pub verdict: SweepVerdict,
    pub totals: Totals,
    /// Why the sweep is incomplete (empty when it ran to its end), one sentence per file and
    /// scenario.
    pub incomplete: Vec<String>,
    pub inputs: Vec<InputFile>,
    pub scenarios: Vec<ScenarioSummary>,
    pub checkers: Vec<CheckerSummary>,
    pub failures: Vec<FailureSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuzz: Option<crate::fuzz::FuzzSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<crate::baseline_diff::BaselineDiff>,
    /// Every wall-clock value of the report (they vary from run to run): the snapshot test
    /// replaces this with its default.
    pub wall_clock: WallClock,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub scenarios: u64,
    pub seeds: u64,
    pub passed: u64,
    pub failed: u64,
    /// Crashes listed by the fuzz summary (0 without one).
    pub fuzz_crashes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InputFile {
    pub file: String,
    pub results: u64,
    pub summaries: u64,
    /// Result lines for a (scenario, seed) already read, with the same trace hash: counted once.
    pub duplicates: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScenarioSummary {
    pub scenario: String,
    pub seeds: u64,
    pub passed: u64,
    pub failed: u64,
    /// The seeds run, as half-open `[start, end)` ranges.
    pub seed_ranges: Vec<(u64, u64)>,
    pub failing_seeds: Vec<u64>,
    /// Failed seeds per checker.
    pub failed_by_checker: BTreeMap<String, u64>,
    /// Simulated time of all seeds together.
    pub sim_ms: u64,
    pub entries_applied: u64,
    pub leader_changes: u64,
    pub allocator_restores: u64,
    pub faults_injected: u64,
    pub tasks: TaskCounts,
    /// Seeds whose result line has series (older lines have none), and entries the simulator
    /// left out of capped series lists.
    pub series_seeds: u64,
    pub series_dropped: u64,
    pub throughput: Throughput,
    pub latency: Distribution,
    pub restores: RestoreSummary,
    pub faults: Vec<FaultKindSummary>,
    pub pools: Vec<PoolSummary>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TaskCounts {
    pub created: u64,
    /// Moved NEW -> PENDING.
    pub pending: u64,
    /// Sum over seeds of (last task to PENDING - first task created).
    pub allocation_window_ms: u64,
    /// `pending` per simulated second of whole runs.
    pub pending_per_sim_s: f64,
    /// `pending` per simulated second of the allocation windows: the allocation throughput.
    pub pending_per_window_s: f64,
}

/// Per simulated-time bucket, across the seeds whose run reached it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Throughput {
    pub bucket_ms: u64,
    /// Seeds whose run reached each bucket.
    pub seeds: Vec<u64>,
    /// Mean tasks moved NEW -> PENDING per simulated second.
    pub pending_per_s: Vec<f64>,
    /// Share of the bucket's run time (all seeds) with at least one node or proposal fault on
    /// (partition, kill, slow follower, batch cut, ambiguous commit; instants count nothing).
    pub fault_share: Vec<f64>,
    /// The same for message faults (loss, delay, duplication), which are on for whole periods.
    pub message_fault_share: Vec<f64>,
    /// Share of the bucket's run time (all seeds) with no leader.
    pub leaderless_share: Vec<f64>,
    /// Leader terms that started in the bucket (all seeds).
    pub leader_starts: Vec<u64>,
}

/// A distribution of simulated milliseconds: p50 and p99 are histogram bucket upper bounds (at
/// most 12.5% above the exact value), max is exact.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Distribution {
    pub count: u64,
    pub mean_ms: Option<f64>,
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
    pub max_ms: Option<u64>,
    /// The merged histogram, `[low_ms, count]` (see `Histogram`).
    pub buckets: Vec<(u64, u64)>,
}

impl Distribution {
    pub fn of(h: &Histogram) -> Distribution {
        Distribution {
            count: h.count,
            mean_ms: h.mean_ms(),
            p50_ms: h.quantile_ms(0.5),
            p99_ms: h.quantile_ms(0.99),
            max_ms: (h.count > 0).then_some(h.max_ms),
            buckets: h.buckets.clone(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RestoreSummary {
    /// Leader changes whose restore was recorded.
    pub count: u64,
    /// From becoming leader to the allocator's first pass.
    pub duration: Distribution,
    pub objects_max: u64,
    pub objects_mean: Option<f64>,
    pub queued: u64,
    pub findings: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FaultKindSummary {
    pub kind: String,
    pub windows: u64,
    /// Seeds with at least one window of this kind.
    pub seeds: u64,
    /// Sum of window lengths (instants count 0).
    pub total_ms: u64,
}

/// One network of a scenario at the end of its runs, over the seeds that sampled it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolSummary {
    pub network: String,
    /// Subnets sampled (one per subnet per seed).
    pub samples: u64,
    pub capacity_max: u64,
    /// live / capacity.
    pub utilisation_mean: f64,
    pub utilisation_max: f64,
    /// retired / capacity.
    pub retired_mean: f64,
    /// 1 - largest free run / free addresses (0 when nothing or everything is free in one run).
    pub fragmentation_mean: f64,
    pub fragmentation_max: f64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckerSummary {
    pub checker: String,
    pub failed: u64,
    /// Failing seeds per scenario.
    pub seeds: BTreeMap<String, Vec<u64>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailureSummary {
    pub scenario: String,
    pub seed: u64,
    pub violation: Violation,
    /// The seed's fault choice.
    pub faults: String,
    pub trace_hash: String,
    /// The command that replays the failure.
    pub replay: String,
    /// Where `allocsim run` writes the failure file (`FAILURES/SCENARIO-SEED.json`), and
    /// whether it was there when the report was made.
    pub failure_file: String,
    pub failure_file_found: bool,
    /// `FAILURES/SCENARIO-SEED.shrunk.toml` (what `allocsim shrink FAILURE.json` writes), if found.
    pub shrunk: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WallClock {
    /// Each sweep summary line: one scenario of one input file.
    pub sweeps: Vec<SweepSpeed>,
    /// Per scenario: the sum of per-seed wall times.
    pub scenarios: Vec<ScenarioWall>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepSpeed {
    pub file: String,
    pub scenario: String,
    pub seeds: u64,
    pub seconds: f64,
    pub jobs: Option<u64>,
    pub seeds_per_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScenarioWall {
    pub scenario: String,
    pub seeds: u64,
    pub wall_ms: u64,
    /// Seeds per second of one job: seeds / sum of per-seed wall seconds.
    pub seeds_per_s_one_job: f64,
}

/// What only the page needs: per-seed detail of the first failures and restore samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChartData {
    pub failure_details: BTreeMap<(String, u64), FailureDetail>,
    /// (scenario, seed, index) -> (objects restored, duration ms).
    pub restore_points: BTreeMap<(String, u64, usize), (u64, u64)>,
    /// Points left out of `restore_points`.
    pub restore_points_dropped: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FailureDetail {
    pub sim_ms: u64,
    pub series: Option<Series>,
    pub trace_tail: Vec<String>,
    /// The shrunk scenario's text, when found.
    pub shrunk_text: Option<String>,
}

/// A finished sweep: the report and the chart data.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    pub report: SweepReport,
    pub charts: ChartData,
}

/// Options of `allocsim report` that shape the content.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    /// Where failure files and shrunk scenarios are looked for (`allocsim run --failures`).
    pub failures_dir: PathBuf,
}

impl Default for SweepOptions {
    fn default() -> SweepOptions {
        SweepOptions { failures_dir: PathBuf::from("allocsim-failures") }
    }
}

/// Reads every file in order and builds the report (without fuzz summary and baseline).
pub fn read_sweep(
    files: &[PathBuf],
    options: &SweepOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Sweep, InputError> {
    let mut acc = Accumulator::default();
    for file in files {
        let mut input = InputFile { file: file.display().to_string(), results: 0, summaries: 0, duplicates: 0 };
        acc.since_summary.clear();
        read_lines(file, &mut |line, place| acc.line(line, place, &mut input), progress)?;
        for (scenario, (lines, _)) in std::mem::take(&mut acc.since_summary) {
            acc.incomplete.push(format!(
                "{}: {lines} result lines of {scenario} and no summary line after them: the sweep was cut short",
                file.display()
            ));
        }
        if input.results + input.duplicates == 0 {
            return Err(InputError::Invalid {
                file: file.clone(),
                path: String::new(),
                reason: "no result lines: expected the output of `allocsim run --json`".into(),
            });
        }
        acc.inputs.push(input);
    }
    Ok(acc.finish(options))
}

#[derive(Default)]
struct Accumulator {
    inputs: Vec<InputFile>,
    seen: BTreeMap<(String, u64), (String, Place)>,
    scenarios: BTreeMap<String, ScenarioAcc>,
    /// (violation, fault text, trace hash, failure file stem) per (scenario, seed).
    failures: BTreeMap<(String, u64), (Violation, String, String, String)>,
    charts: ChartData,
    sweeps: Vec<SweepSpeed>,
    /// Per scenario, the result lines of the current file since its last summary line:
    /// (lines, lines with a violation), for the next summary line to be checked against.
    since_summary: BTreeMap<String, (u64, u64)>,
    /// Why the sweep is incomplete, as read so far.
    incomplete: Vec<String>,
}

#[derive(Default)]
struct ScenarioAcc {
    seeds: BTreeSet<u64>,
    failed: BTreeMap<u64, String>,
    sim_ms: u64,
    wall_ms: u64,
    entries_applied: u64,
    leader_changes: u64,
    allocator_restores: u64,
    faults_injected: u64,
    tasks: TaskCounts,
    series_seeds: u64,
    series_dropped: u64,
    bucket_ms: Option<u64>,
    pending: Vec<u64>,
    reached: Vec<u64>,
    reached_ms: Vec<u64>,
    fault_ms: Vec<u64>,
    message_fault_ms: Vec<u64>,
    leader_ms: Vec<u64>,
    leader_starts: Vec<u64>,
    latency: Histogram,
    restore: Histogram,
    restore_objects: u64,
    restore_objects_max: u64,
    restore_queued: u64,
    restore_findings: u64,
    faults: BTreeMap<String, (u64, BTreeSet<u64>, u64)>,
    pools: BTreeMap<String, PoolAcc>,
}

#[derive(Default)]
struct PoolAcc {
    samples: u64,
    capacity_max: u64,
    utilisation_ppm: u64,
    utilisation_max_ppm: u64,
    retired_ppm: u64,
    fragmentation_ppm: u64,
    fragmentation_max_ppm: u64,
}

fn grow<T: Clone + Default>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    }
}

/// Merges intervals into disjoint sorted ones.
fn union(mut intervals: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    intervals.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (start, end) in intervals {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// Adds the part of each interval that falls in each bucket to `per_bucket` (`field` names the
/// sum in an `Overflow`).
fn spread(intervals: &[(u64, u64)], bucket_ms: u64, per_bucket: &mut [u64], field: &str) -> Result<(), Overflow> {
    for &(start, end) in intervals {
        let mut at = start;
        while at < end {
            let bucket = at / bucket_ms;
            let Some(total) = usize::try_from(bucket).ok().and_then(|b| per_bucket.get_mut(b)) else { break };
            let until = end.min(bucket.saturating_add(1).saturating_mul(bucket_ms));
            add(total, until - at, field)?;
            at = until;
        }
    }
    Ok(())
}

impl Accumulator {
    fn line(&mut self, line: Line, place: Place, input: &mut InputFile) -> Result<(), InputError> {
        match line {
            Line::Summary(mut summary) => {
                // Rows go by the label: a sweep with a legacy flavour is its own scenario.
                summary.scenario = summary.label();
                input.summaries += 1;
                let (seeds, failed) = self.since_summary.remove(&summary.scenario).unwrap_or_default();
                let mismatch = |path: &str, claimed: u64, read: u64, what: &str| InputError::Line {
                    file: place.file.clone(),
                    line: place.line,
                    path: path.into(),
                    message: format!(
                        "the summary of scenario {} says {claimed} {what}, but the result lines before it in this \
                         file (since its previous summary line) have {read}: lines are missing, extra or from \
                         another sweep",
                        summary.scenario
                    ),
                };
                if summary.seeds != seeds {
                    return Err(mismatch("seeds", summary.seeds, seeds, "seeds run"));
                }
                if summary.failed != failed {
                    return Err(mismatch("failed", summary.failed, failed, "seeds failed"));
                }
                if summary.interrupted {
                    self.incomplete.push(format!(
                        "{}: the sweep of {} was interrupted after {} seeds",
                        place.file.display(),
                        summary.scenario,
                        summary.seeds
                    ));
                }
                self.sweeps.push(speed(&place.file, &summary));
            }
            Line::Result(mut result) => {
                let stem = file_stem(&result.scenario, result.legacy.as_deref(), result.seed);
                result.scenario = result.label();
                let counts = self.since_summary.entry(result.scenario.clone()).or_default();
                counts.0 += 1;
                counts.1 += u64::from(!result.passed());
                let key = (result.scenario.clone(), result.seed);
                if let Some((hash, first)) = self.seen.get(&key) {
                    if *hash == result.trace_hash {
                        input.duplicates += 1;
                        return Ok(());
                    }
                    return Err(InputError::Line {
                        file: place.file.clone(),
                        line: place.line,
                        path: "trace_hash".into(),
                        message: format!(
                            "scenario {} seed {} was already read from {first} with trace hash {hash}, and this \
                             line has {}: two different runs of one seed cannot merge into one report",
                            result.scenario, result.seed, result.trace_hash
                        ),
                    });
                }
                self.seen.insert(key, (result.trace_hash.clone(), place.clone()));
                input.results += 1;
                self.result(&result, &place, stem)?;
            }
        }
        Ok(())
    }

    /// Adds a result line; `stem` names its failure file (`swarmalloc_sim::failure::file_stem`).
    fn result(&mut self, r: &RunResult, place: &Place, stem: String) -> Result<(), InputError> {
        let overflow = |o: Overflow| InputError::Line {
            file: place.file.clone(),
            line: place.line,
            path: o.field,
            message: format!("the sum over the seeds of scenario {} passes {}", r.scenario, u64::MAX),
        };
        let acc = self.scenarios.entry(r.scenario.clone()).or_default();
        acc.counters(r).map_err(overflow)?;
        if let Some(v) = &r.violation {
            acc.failed.insert(r.seed, v.checker.clone());
            self.failures
                .insert((r.scenario.clone(), r.seed), (v.clone(), fault_text(&r.faults), r.trace_hash.clone(), stem));
            let detail = FailureDetail {
                sim_ms: r.sim_ms,
                series: r.series.clone(),
                trace_tail: r.trace_tail.clone(),
                shrunk_text: None,
            };
            self.charts.failure_details.insert((r.scenario.clone(), r.seed), detail);
            if self.charts.failure_details.len() > FAILURE_DETAILS_MAX {
                self.charts.failure_details.pop_last();
            }
        }
        let Some(series) = &r.series else { return Ok(()) };
        match acc.bucket_ms {
            Some(bucket_ms) if bucket_ms != series.bucket_ms => {
                return Err(InputError::Line {
                    file: place.file.clone(),
                    line: place.line,
                    path: "series.bucket_ms".into(),
                    message: format!(
                        "{} ms, but earlier seeds of scenario {} have {bucket_ms} ms buckets",
                        series.bucket_ms, r.scenario
                    ),
                });
            }
            _ => acc.bucket_ms = Some(series.bucket_ms),
        }
        acc.series(r, series).map_err(overflow)?;
        for (i, restore) in series.restores.iter().enumerate() {
            let points = &mut self.charts.restore_points;
            points.insert((r.scenario.clone(), r.seed, i), (restore.objects, restore.duration_ms()));
            if points.len() > RESTORE_POINTS_MAX {
                points.pop_last();
                self.charts.restore_points_dropped += 1;
            }
        }
        Ok(())
    }

    fn finish(self, options: &SweepOptions) -> Sweep {
        let mut charts = self.charts;
        let mut walls = Vec::new();
        let mut scenarios = Vec::new();
        for (name, acc) in self.scenarios {
            let seeds = acc.seeds.len() as u64;
            let seeds_per_s_one_job =
                if acc.wall_ms == 0 { 0.0 } else { round(seeds as f64 * 1000.0 / acc.wall_ms as f64, 3) };
            walls.push(ScenarioWall { scenario: name.clone(), seeds, wall_ms: acc.wall_ms, seeds_per_s_one_job });
            scenarios.push(acc.finish(name));
        }
        let (checkers, failures) = summarise_failures(self.failures, options, &mut charts);
        let totals = Totals {
            scenarios: scenarios.len() as u64,
            seeds: scenarios.iter().map(|s| s.seeds).sum(),
            passed: scenarios.iter().map(|s| s.passed).sum(),
            failed: scenarios.iter().map(|s| s.failed).sum(),
            fuzz_crashes: 0,
        };
        let mut report = SweepReport {
            schema: REPORT_SCHEMA,
            verdict: SweepVerdict::Pass,
            totals,
            incomplete: self.incomplete,
            inputs: self.inputs,
            scenarios,
            checkers,
            failures,
            fuzz: None,
            baseline: None,
            wall_clock: WallClock { sweeps: self.sweeps, scenarios: walls },
        };
        report.update_verdict();
        Sweep { report, charts }
    }
}

/// Per checker the seeds it failed, and per failure where its failure file and shrunk scenario
/// are (the shrunk text also goes to the failure's chart details).
fn summarise_failures(
    failures_read: BTreeMap<(String, u64), (Violation, String, String, String)>,
    options: &SweepOptions,
    charts: &mut ChartData,
) -> (Vec<CheckerSummary>, Vec<FailureSummary>) {
    let mut checkers: BTreeMap<String, CheckerSummary> = BTreeMap::new();
    let mut failures = Vec::new();
    for ((scenario, seed), (violation, faults, trace_hash, stem)) in failures_read {
        let checker = checkers.entry(violation.checker.clone()).or_insert_with(|| CheckerSummary {
            checker: violation.checker.clone(),
            failed: 0,
            seeds: BTreeMap::new(),
        });
        checker.failed += 1;
        checker.seeds.entry(scenario.clone()).or_default().push(seed);
        let failure_file = options.failures_dir.join(format!("{stem}.json"));
        let shrunk_file = options.failures_dir.join(format!("{stem}.shrunk.toml"));
        let shrunk_text = std::fs::read_to_string(&shrunk_file).ok();
        if let Some(detail) = charts.failure_details.get_mut(&(scenario.clone(), seed)) {
            detail.shrunk_text = shrunk_text.clone();
        }
        failures.push(FailureSummary {
            replay: format!("allocsim replay {}", failure_file.display()),
            failure_file_found: failure_file.is_file(),
            failure_file: failure_file.display().to_string(),
            shrunk: shrunk_text.map(|_| shrunk_file.display().to_string()),
            scenario,
            seed,
            violation,
            faults,
            trace_hash,
        });
    }
    (checkers.into_values().collect(), failures)
}

fn speed(file: &Path, summary: &SummaryLine) -> SweepSpeed {
    let seeds_per_s = if summary.seconds > 0.0 { round(summary.seeds as f64 / summary.seconds, 3) } else { 0.0 };
    SweepSpeed {
        file: file.display().to_string(),
        scenario: summary.scenario.clone(),
        seeds: summary.seeds,
        seconds: round(summary.seconds, 3),
        jobs: summary.jobs,
        seeds_per_s,
    }
}

/// Half-open ranges of consecutive seeds.
pub fn seed_ranges(seeds: &BTreeSet<u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &seed in seeds {
        match out.last_mut() {
            Some(last) if last.1 == seed => last.1 = seed + 1,
            _ => out.push((seed, seed + 1)),
        }
    }
    out
}

/// Message faults hit every link for a whole period rather than one node for a while.
fn is_message_fault(kind: &str) -> bool {
    kind.starts_with("message_")
}

fn share(part: u64, whole: u64) -> f64 {
    round(ppm(part, whole) as f64 / PPM as f64, 4)
}

impl ScenarioAcc {
    /// Adds a seed's counters. Sums of values read are checked (`Overflow` names the field);
    /// counts of lines and list entries read cannot reach `u64::MAX`.
    fn counters(&mut self, r: &RunResult) -> Result<(), Overflow> {
        self.seeds.insert(r.seed);
        add(&mut self.sim_ms, r.sim_ms, "sim_ms")?;
        add(&mut self.wall_ms, r.wall_ms, "wall_ms")?;
        let m = &r.metrics;
        add(&mut self.entries_applied, m.entries_applied, "metrics.entries_applied")?;
        add(&mut self.leader_changes, m.leader_changes, "metrics.leader_changes")?;
        add(&mut self.allocator_restores, m.allocator_restores, "metrics.allocator_restores")?;
        add(&mut self.faults_injected, m.faults_injected, "metrics.faults_injected")?;
        add(&mut self.tasks.created, m.tasks_created, "metrics.tasks_created")?;
        add(&mut self.tasks.pending, m.tasks_pending, "metrics.tasks_pending")?;
        if let (Some(first), Some(last)) = (m.first_task_ms, m.last_pending_ms) {
            add(&mut self.tasks.allocation_window_ms, last.saturating_sub(first), "metrics.last_pending_ms")?;
        }
        Ok(())
    }

    /// Adds a seed's series; `r.problem()` has bounded its values (buckets, times within the run).
    fn series(&mut self, r: &RunResult, series: &Series) -> Result<(), Overflow> {
        self.series_seeds += 1;
        add(&mut self.series_dropped, series.dropped, "series.dropped")?;
        let bucket_ms = series.bucket_ms;
        let buckets = r.sim_ms.div_ceil(bucket_ms).max(series.pending.len() as u64) as usize;
        for v in [
            &mut self.pending,
            &mut self.reached,
            &mut self.reached_ms,
            &mut self.fault_ms,
            &mut self.message_fault_ms,
            &mut self.leader_ms,
        ] {
            grow(v, buckets);
        }
        grow(&mut self.leader_starts, buckets);
        for (bucket, n) in series.pending.iter().enumerate() {
            add(&mut self.pending[bucket], *n, &format!("series.pending[{bucket}]"))?;
        }
        let run = [(0, r.sim_ms)];
        let mut reached = vec![0; buckets];
        spread(&run, bucket_ms, &mut reached, "sim_ms")?;
        for (bucket, ms) in reached.iter().enumerate() {
            add(&mut self.reached_ms[bucket], *ms, "sim_ms")?;
            self.reached[bucket] += u64::from(*ms > 0);
        }
        let end_of = |end: Option<u64>| end.unwrap_or(r.sim_ms);
        let (message, other): (Vec<_>, Vec<_>) = series.faults.iter().partition(|w| is_message_fault(&w.kind));
        let windows =
            |list: Vec<&FaultWindow>| union(list.into_iter().map(|w| (w.start_ms, end_of(w.end_ms))).collect());
        spread(&windows(other), bucket_ms, &mut self.fault_ms, "series.faults")?;
        spread(&windows(message), bucket_ms, &mut self.message_fault_ms, "series.faults")?;
        let terms = union(series.leaders.iter().map(|t| (t.start_ms, end_of(t.end_ms))).collect());
        spread(&terms, bucket_ms, &mut self.leader_ms, "series.leaders")?;
        for term in &series.leaders {
            let bucket = (term.start_ms / bucket_ms) as usize;
            grow(&mut self.leader_starts, bucket + 1);
            self.leader_starts[bucket] += 1;
        }
        self.latency.merge(&series.latency).map_err(|o| Overflow { field: format!("series.latency.{}", o.field) })?;
        for restore in &series.restores {
            let duration = Histogram::one(restore.duration_ms());
            self.restore.merge(&duration).map_err(|_| Overflow { field: "series.restores".into() })?;
            add(&mut self.restore_objects, restore.objects, "series.restores.objects")?;
            self.restore_objects_max = self.restore_objects_max.max(restore.objects);
            add(&mut self.restore_queued, restore.queued, "series.restores.queued")?;
            add(&mut self.restore_findings, restore.findings, "series.restores.findings")?;
        }
        for window in &series.faults {
            let entry = self.faults.entry(window.kind.clone()).or_default();
            entry.0 += 1;
            entry.1.insert(r.seed);
            add(&mut entry.2, end_of(window.end_ms) - window.start_ms, "series.faults")?;
        }
        for pool in &series.pools {
            let acc = self.pools.entry(pool.network.clone()).or_default();
            let utilisation = ppm(pool.live, pool.capacity);
            let free = pool.free();
            let fragmentation = if free == 0 { 0 } else { PPM - ppm(pool.largest_free_run.min(free), free) };
            acc.samples += 1;
            acc.capacity_max = acc.capacity_max.max(pool.capacity);
            add(&mut acc.utilisation_ppm, utilisation, "series.pools")?;
            acc.utilisation_max_ppm = acc.utilisation_max_ppm.max(utilisation);
            add(&mut acc.retired_ppm, ppm(pool.retired, pool.capacity), "series.pools")?;
            add(&mut acc.fragmentation_ppm, fragmentation, "series.pools")?;
            acc.fragmentation_max_ppm = acc.fragmentation_max_ppm.max(fragmentation);
        }
        Ok(())
    }

    fn finish(self, scenario: String) -> ScenarioSummary {
        let seeds = self.seeds.len() as u64;
        let failed = self.failed.len() as u64;
        let mut failed_by_checker = BTreeMap::new();
        for checker in self.failed.values() {
            *failed_by_checker.entry(checker.clone()).or_insert(0) += 1;
        }
        let mut tasks = self.tasks;
        let per_s = |n: u64, ms: u64| if ms == 0 { 0.0 } else { round(n as f64 * 1000.0 / ms as f64, 3) };
        tasks.pending_per_sim_s = per_s(tasks.pending, self.sim_ms);
        tasks.pending_per_window_s = per_s(tasks.pending, tasks.allocation_window_ms);
        let bucket_ms = self.bucket_ms.unwrap_or(0);
        let throughput = Throughput {
            bucket_ms,
            pending_per_s: self
                .pending
                .iter()
                .zip(&self.reached)
                .map(|(&n, &seeds)| if seeds == 0 { 0.0 } else { round(per_s(n, bucket_ms) / seeds as f64, 3) })
                .collect(),
            fault_share: self.fault_ms.iter().zip(&self.reached_ms).map(|(&f, &r)| share(f, r)).collect(),
            message_fault_share: self
                .message_fault_ms
                .iter()
                .zip(&self.reached_ms)
                .map(|(&f, &r)| share(f, r))
                .collect(),
            leaderless_share: self
                .leader_ms
                .iter()
                .zip(&self.reached_ms)
                .map(|(&l, &r)| share(r.saturating_sub(l), r))
                .collect(),
            leader_starts: self.leader_starts,
            seeds: self.reached,
        };
        let restores = RestoreSummary {
            count: self.restore.count,
            duration: Distribution::of(&self.restore),
            objects_max: self.restore_objects_max,
            objects_mean: (self.restore.count > 0)
                .then(|| round(self.restore_objects as f64 / self.restore.count as f64, 1)),
            queued: self.restore_queued,
            findings: self.restore_findings,
        };
        let faults = self
            .faults
            .into_iter()
            .map(|(kind, (windows, seeds, total_ms))| FaultKindSummary {
                kind,
                windows,
                seeds: seeds.len() as u64,
                total_ms,
            })
            .collect();
        let mean = |sum: u64, n: u64| sum.checked_div(n).map_or(0.0, |m| share(m, PPM));
        let pools = self
            .pools
            .into_iter()
            .map(|(network, p)| PoolSummary {
                network,
                samples: p.samples,
                capacity_max: p.capacity_max,
                utilisation_mean: mean(p.utilisation_ppm, p.samples),
                utilisation_max: share(p.utilisation_max_ppm, PPM),
                retired_mean: mean(p.retired_ppm, p.samples),
                fragmentation_mean: mean(p.fragmentation_ppm, p.samples),
                fragmentation_max: share(p.fragmentation_max_ppm, PPM),
            })
            .collect();
        ScenarioSummary {
            seed_ranges: seed_ranges(&self.seeds),
            failing_seeds: self.failed.keys().copied().collect(),
            scenario,
            seeds,
            passed: seeds - failed,
            failed,
            failed_by_checker,
            sim_ms: self.sim_ms,
            entries_applied: self.entries_applied,
            leader_changes: self.leader_changes,
            allocator_restores: self.allocator_restores,
            faults_injected: self.faults_injected,
            tasks,
            series_seeds: self.series_seeds,
            series_dropped: self.series_dropped,
            throughput,
            latency: Distribution::of(&self.latency),
            restores,
            faults,
            pools,
        }
    }
}

impl SweepReport {
    /// Fail when a seed failed or the fuzz summary lists a crash, else incomplete when the sweep
    /// did not run to its end.
    pub fn update_verdict(&mut self) {
        self.totals.fuzz_crashes = self.fuzz.as_ref().map_or(0, |f| f.crashes());
        self.verdict = if self.totals.failed > 0 || self.totals.fuzz_crashes > 0 {
            SweepVerdict::Fail
        } else if !self.incomplete.is_empty() {
            SweepVerdict::Incomplete
        } else {
            SweepVerdict::Pass
        };
    }

    /// The versioned JSON document, pretty-printed, ending in a newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a sweep report is plain data");
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_merge_and_spread_over_buckets() {
        let merged = union(vec![(500, 1_500), (0, 100), (1_400, 2_000), (3_000, 3_000)]);
        assert_eq!(merged, [(0, 100), (500, 2_000), (3_000, 3_000)]);
        let mut buckets = vec![0; 3];
        spread(&merged, 1_000, &mut buckets, "x").expect("small sums");
        assert_eq!(buckets, [600, 1_000, 0]);
    }

    #[test]
    fn seeds_compress_into_ranges() {
        let seeds: BTreeSet<u64> = [0, 1, 2, 5, 7, 8].into();
        assert_eq!(seed_ranges(&seeds), [(0, 3), (5, 6), (7, 9)]);
    }
}
