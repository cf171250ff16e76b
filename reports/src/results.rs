//! Reads the JSON lines `allocsim run --json` prints: one result line per seed and one summary
//! line per scenario of a sweep. Owns the result-line schema as the report reads it (documented
//! in `reports/README.md`, "Result lines"); the simulator writes it (`swarmalloc_sim::RunResult`),
//! and `sim/tests/report.rs` feeds a real sweep through this reader so the two cannot drift.
//!
//! Fields the report needs are required (a missing or mistyped one is an error naming the file,
//! line and field); fields it does not use are ignored; a line without `series` (older results)
//! is read with its series missing.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::error::{InputError, serde_position};
use crate::stats::Histogram;

/// One seed's result line.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SeedResult {
    pub scenario: String,
    pub seed: u64,
    /// The fault choice of the seed.
    #[serde(default)]
    pub faults: FaultPlan,
    pub violation: Option<Violation>,
    pub trace_hash: String,
    pub sim_ms: u64,
    /// Wall-clock time of the run (varies from run to run).
    #[serde(default)]
    pub wall_ms: u64,
    pub metrics: Metrics,
    #[serde(default)]
    pub series: Option<Series>,
    /// The last trace lines, for a failed run.
    #[serde(default)]
    pub trace_tail: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct FaultPlan {
    /// Rate of each fault kind: events per simulated second for node faults, a probability per
    /// message, proposal or batch for the others.
    #[serde(default)]
    pub rates: BTreeMap<String, f64>,
    #[serde(default)]
    pub batch_max: u64,
}

impl FaultPlan {
    /// `batch_max=N kind=rate ...`, the kinds in name order.
    pub fn to_text(&self) -> String {
        let mut parts = vec![format!("batch_max={}", self.batch_max)];
        parts.extend(self.rates.iter().map(|(kind, rate)| format!("{kind}={}", crate::stats::round(*rate, 4))));
        parts.join(" ")
    }
}

/// A broken invariant: which checker, what objects, when and where (the simulator writes it).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Violation {
    pub checker: String,
    pub objects: Vec<String>,
    pub detail: String,
    pub t_ms: u64,
    pub raft_index: u64,
    pub node: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at t={}ms raft index {} on {}: {} [{}]",
            self.checker,
            self.t_ms,
            self.raft_index,
            self.node,
            self.detail,
            self.objects.join(", ")
        )
    }
}

/// The run counters the report uses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Metrics {
    pub entries_applied: u64,
    pub leader_changes: u64,
    pub allocator_restores: u64,
    pub tasks_created: u64,
    pub tasks_pending: u64,
    pub first_task_ms: Option<u64>,
    pub last_pending_ms: Option<u64>,
    pub faults_injected: u64,
}

/// Simulated-time series of one run: the one definition, which the simulator records
/// (`sim/src/series.rs`) and writes in its result lines, and the report reads back. All times in
/// simulated milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    /// Width of each `pending` bucket.
    pub bucket_ms: u64,
    /// Tasks moved NEW -> PENDING in each bucket, from time 0; trailing empty buckets omitted.
    pub pending: Vec<u64>,
    /// NEW -> PENDING latency of every task that made the move (creation applied to PENDING applied).
    pub latency: Histogram,
    /// Who led when: a term ends when its leader steps down or is killed, or a newer leader starts.
    pub leaders: Vec<LeaderTerm>,
    /// Faults while they were on (a dropped proposal or an allocator restart is an instant).
    pub faults: Vec<FaultWindow>,
    /// The allocator's restore at each leader change.
    pub restores: Vec<Restore>,
    /// Every subnet of every allocated network, as the leader's engine sees it at the end checks.
    pub pools: Vec<PoolSample>,
    /// Entries left out of the lists above because one reached the simulator's cap.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderTerm {
    pub term: u64,
    pub node: String,
    pub start_ms: u64,
    /// `None` only while the term is open; every term is closed at the end of the run.
    pub end_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultWindow {
    /// The fault kind's name (`leader_partition`, `message_loss`, ...).
    pub kind: String,
    /// The node the fault hit; `None` for message faults, which hit every link.
    pub node: Option<String>,
    pub start_ms: u64,
    /// `None` only while the fault is on; every window is closed at the end of the run.
    pub end_ms: Option<u64>,
}

/// A new leader's first restore: from becoming leader (`leader_ms`) to the restore, after which
/// the allocator's first pass runs in the same tick (`restored_ms`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restore {
    pub term: u64,
    pub node: String,
    pub leader_ms: u64,
    pub restored_ms: u64,
    /// Objects in the applied store the engine was restored from.
    pub objects: u64,
    /// Objects restore queued for the first pass.
    pub queued: u64,
    /// Conflicts restore found in stored state.
    pub findings: u64,
}

impl Restore {
    pub fn duration_ms(&self) -> u64 {
        self.restored_ms.saturating_sub(self.leader_ms)
    }
}

/// One subnet's use at the end. Counts saturate at `u64::MAX` (an IPv6 subnet can be larger).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSample {
    pub network: String,
    pub subnet: String,
    /// Addresses new picks are drawn from.
    pub capacity: u64,
    /// Addresses with a live holder.
    pub live: u64,
    /// Addresses quarantined by terminal tasks still in the store.
    pub retired: u64,
    /// The longest run of consecutive free addresses.
    pub largest_free_run: u64,
}

impl PoolSample {
    pub fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.live).saturating_sub(self.retired)
    }
}

/// The summary line a sweep prints after each scenario's seeds.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SummaryLine {
    pub scenario: String,
    pub seeds: u64,
    pub failed: u64,
    /// Wall-clock seconds the scenario's seeds took.
    pub seconds: f64,
    /// Runs at a time (absent in lines from before the field existed).
    #[serde(default)]
    pub jobs: Option<u64>,
}

/// Where a line came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}", self.file.display(), self.line)
    }
}

/// One line read.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    Result(Box<SeedResult>),
    Summary(SummaryLine),
}

/// How far reading has come, for a progress indication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress<'a> {
    pub file: &'a Path,
    pub bytes_read: u64,
    pub bytes_total: u64,
    pub lines: usize,
}

/// Tells a summary line from a result line without building either.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    summary: Option<IgnoredAny>,
}

/// Progress is reported about every this many bytes.
const PROGRESS_EVERY_BYTES: u64 = 4 << 20;

/// Bounds on what one result line may claim; past one, the line is an input error. They keep
/// reading bounded: a line is read into memory whole, and the report keeps one entry per
/// throughput bucket per scenario. The simulator writes lines of a few KB, 1000 ms buckets
/// and runs of minutes.
pub const LINE_BYTES_MAX: usize = 16 << 20;
/// Widest throughput bucket: a simulated day.
pub const BUCKET_MS_MAX: u64 = 86_400_000;
/// Most throughput buckets in one run (`sim_ms / bucket_ms`): 27 simulated hours of 1 s buckets.
pub const THROUGHPUT_BUCKETS_MAX: u64 = 100_000;

/// Reads every line of `file` in order and hands it to `each`; `progress` sees the bytes read.
pub fn read_lines(
    file: &Path,
    each: &mut dyn FnMut(Line, Place) -> Result<(), InputError>,
    progress: &mut dyn FnMut(Progress),
) -> Result<usize, InputError> {
    let io = |message: String| InputError::Io { file: file.to_path_buf(), message };
    let handle = File::open(file).map_err(|e| io(e.to_string()))?;
    let bytes_total = handle.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = BufReader::new(handle);
    let mut text = Vec::new();
    let (mut bytes_read, mut reported, mut number, mut lines) = (0u64, 0u64, 0usize, 0usize);
    loop {
        text.clear();
        let limit = LINE_BYTES_MAX as u64 + 1;
        let n = (&mut reader).take(limit).read_until(b'\n', &mut text).map_err(|e| io(e.to_string()))?;
        if n == 0 {
            break;
        }
        number += 1;
        bytes_read += n as u64;
        let place = Place { file: file.to_path_buf(), line: number };
        if n > LINE_BYTES_MAX {
            return Err(InputError::Line {
                file: file.to_path_buf(),
                line: number,
                path: String::new(),
                message: format!("longer than {LINE_BYTES_MAX} bytes; a result line is a few KB"),
            });
        }
        let line = std::str::from_utf8(&text).map_err(|e| InputError::Line {
            file: file.to_path_buf(),
            line: number,
            path: String::new(),
            message: format!("not UTF-8 text: {e}"),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        each(parse_line(line, &place)?, place)?;
        lines += 1;
        if bytes_read - reported >= PROGRESS_EVERY_BYTES {
            reported = bytes_read;
            progress(Progress { file, bytes_read, bytes_total, lines });
        }
    }
    progress(Progress { file, bytes_read, bytes_total, lines });
    Ok(lines)
}

/// Parses one non-empty line.
pub fn parse_line(line: &str, place: &Place) -> Result<Line, InputError> {
    let positioned = |e: serde_json::Error, syntax: bool| {
        let (_, column, path, message) = serde_position(line, &e);
        let file = place.file.clone();
        if syntax {
            InputError::Syntax { file, line: place.line, column, path, message }
        } else {
            InputError::Typed { file, line: place.line, column, path, message }
        }
    };
    if !line.trim_start().starts_with('{') {
        serde_json::from_str::<IgnoredAny>(line).map_err(|e| positioned(e, true))?;
        return Err(InputError::Line {
            file: place.file.clone(),
            line: place.line,
            path: String::new(),
            message: "expected a JSON object: a result line or a summary line of `allocsim run --json`".into(),
        });
    }
    let probe: Probe = serde_json::from_str(line).map_err(|e| {
        let syntax = e.is_syntax() || e.is_eof();
        positioned(e, syntax)
    })?;
    if probe.summary.is_some() {
        let summary: SummaryLine = serde_json::from_str(line).map_err(|e| positioned(e, false))?;
        return Ok(Line::Summary(summary));
    }
    let result: SeedResult = serde_json::from_str(line).map_err(|e| positioned(e, false))?;
    if let Some((path, message)) = result.problem() {
        return Err(InputError::Line { file: place.file.clone(), line: place.line, path, message });
    }
    Ok(Line::Result(Box::new(result)))
}

impl SeedResult {
    pub fn passed(&self) -> bool {
        self.violation.is_none()
    }

    /// The first value that is well-typed but impossible or out of bounds, as (JSON path, what is
    /// wrong). Within the bounds, every time of the series is at most `sim_ms`, so the report's
    /// per-bucket arrays and sums stay bounded by the run's length.
    pub fn problem(&self) -> Option<(String, String)> {
        if self.seed == u64::MAX {
            return Some(("seed".into(), format!("expected at most {} (seed ranges are half-open)", u64::MAX - 1)));
        }
        let series = self.series.as_ref()?;
        if !(1..=BUCKET_MS_MAX).contains(&series.bucket_ms) {
            let message = format!("expected a bucket width from 1 to {BUCKET_MS_MAX} ms, found {}", series.bucket_ms);
            return Some(("series.bucket_ms".into(), message));
        }
        let buckets = self.sim_ms.div_ceil(series.bucket_ms);
        if buckets > THROUGHPUT_BUCKETS_MAX {
            let message = format!(
                "{} ms in buckets of {} ms makes {buckets} buckets; at most {THROUGHPUT_BUCKETS_MAX} are read",
                self.sim_ms, series.bucket_ms
            );
            return Some(("sim_ms".into(), message));
        }
        if series.pending.len() as u64 > buckets + 1 {
            let message = format!(
                "{} buckets, but a run of {} ms has {buckets} of {} ms",
                series.pending.len(),
                self.sim_ms,
                series.bucket_ms
            );
            return Some(("series.pending".into(), message));
        }
        if let Some(problem) = series.latency.problem() {
            return Some(("series.latency".into(), problem));
        }
        let late = |path: String, ms: u64| {
            (ms > self.sim_ms).then(|| (path, format!("{ms} ms is after the end of the run (sim_ms {})", self.sim_ms)))
        };
        let window = |path: String, start_ms: u64, end_ms: Option<u64>| {
            late(format!("{path}.start_ms"), start_ms)
                .or_else(|| end_ms.and_then(|end| late(format!("{path}.end_ms"), end)))
                .or_else(|| {
                    end_ms
                        .is_some_and(|end| end < start_ms)
                        .then(|| (format!("{path}.end_ms"), "ends before it starts".into()))
                })
        };
        if let Some(problem) = late("series.latency.max_ms".into(), series.latency.max_ms) {
            return Some(problem);
        }
        for (i, term) in series.leaders.iter().enumerate() {
            if let Some(problem) = window(format!("series.leaders[{i}]"), term.start_ms, term.end_ms) {
                return Some(problem);
            }
        }
        for (i, fault) in series.faults.iter().enumerate() {
            if let Some(problem) = window(format!("series.faults[{i}]"), fault.start_ms, fault.end_ms) {
                return Some(problem);
            }
        }
        for (i, restore) in series.restores.iter().enumerate() {
            if let Some(problem) = late(format!("series.restores[{i}].restored_ms"), restore.restored_ms) {
                return Some(problem);
            }
            if restore.restored_ms < restore.leader_ms {
                return Some((format!("series.restores[{i}].restored_ms"), "is before leader_ms".into()));
            }
        }
        for (i, pool) in series.pools.iter().enumerate() {
            let used = pool.live.checked_add(pool.retired);
            if used.is_none_or(|used| used > pool.capacity) || pool.largest_free_run > pool.capacity {
                let message = format!(
                    "live {} + retired {} and largest_free_run {} must fit in capacity {}",
                    pool.live, pool.retired, pool.largest_free_run, pool.capacity
                );
                return Some((format!("series.pools[{i}]"), message));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place() -> Place {
        Place { file: PathBuf::from("r.jsonl"), line: 7 }
    }

    fn error(line: &str) -> String {
        parse_line(line, &place()).expect_err("a bad line").to_string()
    }

    const GOOD: &str = r#"{"scenario":"s","seed":1,"violation":null,"trace_hash":"ab","sim_ms":10,"metrics":{"entries_applied":1,"leader_changes":1,"allocator_restores":1,"tasks_created":2,"tasks_pending":2,"first_task_ms":1,"last_pending_ms":5,"faults_injected":0,"messages_sent":9},"extra":true}"#;

    #[test]
    fn result_and_summary_lines() {
        let Line::Result(result) = parse_line(GOOD, &place()).expect("a good line") else { panic!("a result") };
        assert_eq!((result.scenario.as_str(), result.seed, result.series.is_none()), ("s", 1, true));
        let summary = r#"{"summary":"..","scenario":"s","seeds":3,"failed":0,"seconds":1.5,"failing_seeds":[]}"#;
        let Line::Summary(s) = parse_line(summary, &place()).expect("a summary") else { panic!("a summary") };
        assert_eq!((s.seeds, s.jobs), (3, None));
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        assert_eq!(
            error(&GOOD.replace(r#""tasks_pending":2"#, r#""tasks_pending":"2""#)),
            "r.jsonl: line 7 column 182, at metrics.tasks_pending: invalid type: string \"2\", expected u64"
        );
        assert_eq!(
            error(&GOOD.replace(r#""seed":1,"#, "")),
            "r.jsonl: line 7 column 262, at the top level: missing field `seed`"
        );
        assert_eq!(
            error(r#"{"scenario": "#),
            "r.jsonl: line 7 column 13, in scenario: invalid JSON: EOF while parsing a value"
        );
        assert_eq!(
            error("[1, 2]"),
            "r.jsonl: line 7, at the top level: expected a JSON object: a result line or a summary line of `allocsim run --json`"
        );
    }
}
