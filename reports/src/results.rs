//! Reads the JSON lines `allocsim run --json` prints: one result line per seed and one summary
//! line per scenario of a sweep. The types are the simulator's (`swarmalloc_sim::result`: one
//! definition for writer and reader; schema in `reports/README.md`, "Result lines"); this module
//! reads them line by line, with bounds, and names the file, line and field of a bad one.
//!
//! A missing or mistyped field is an error naming the file, line and field; fields the types do
//! not know are ignored; a line without `series` (older results) is read with its series missing.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;
use swarmalloc_sim::faults::FaultPlan;
use swarmalloc_sim::series::Series;
use swarmalloc_sim::{RunResult, SummaryLine};

use crate::error::InputError;

/// The fault choice of a seed as the report shows it: `batch_max=N kind=rate ...`, the kinds in
/// name order, rates rounded to 4 decimals.
pub fn fault_text(plan: &FaultPlan) -> String {
    let mut rates: Vec<(String, f64)> = plan.rates.iter().map(|(kind, rate)| (kind.to_string(), *rate)).collect();
    rates.sort_by(|a, b| a.0.cmp(&b.0));
    let mut parts = vec![format!("batch_max={}", plan.batch_max)];
    parts.extend(rates.iter().map(|(kind, rate)| format!("{kind}={}", crate::stats::round(*rate, 4))));
    parts.join(" ")
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
    Result(Box<RunResult>),
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

/// Reads one JSON value of type `T` from `line`; an error names the JSON path of the value,
/// the line and the column.
fn read<'a, T: Deserialize<'a>>(line: &'a str, place: &Place) -> Result<T, InputError> {
    deserialize_json(line).map_err(|e| e.input_error(place.file.clone(), place.line))
}

/// Reads a whole JSON file's `text` as `T`; an error names the JSON path of the value, the
/// line and the column.
pub(crate) fn read_json_file<'a, T: Deserialize<'a>>(file: &Path, text: &'a str) -> Result<T, InputError> {
    deserialize_json(text).map_err(|e| {
        let line = e.line;
        e.input_error(file.to_path_buf(), line)
    })
}

/// Where and why serde could not read a JSON text.
struct JsonError {
    /// 1-based, of the last character read (past a line's end: that line's last character).
    line: usize,
    column: usize,
    /// The JSON path of the value being read (serde_path_to_error tracks it), "" at the top.
    path: String,
    /// serde's message without its " at line L column C".
    message: String,
    syntax: bool,
}

impl JsonError {
    fn input_error(self, file: PathBuf, line: usize) -> InputError {
        let JsonError { column, path, message, .. } = self;
        if self.syntax {
            InputError::Syntax { file, line, column, path, message }
        } else {
            InputError::Typed { file, line, column, path, message }
        }
    }
}

fn deserialize_json<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, JsonError> {
    let error = |inner: serde_json::Error, path: String| {
        let suffix = format!(" at line {} column {}", inner.line(), inner.column());
        let message = inner.to_string();
        let message = message.strip_suffix(&suffix).unwrap_or(&message).to_string();
        // At the end of the input serde may point past a newline (column 0 of the next line):
        // say the last character of the line before instead.
        let (line, column) = match (inner.column(), inner.line().checked_sub(2)) {
            (0, Some(before)) => {
                let last = text.split_inclusive('\n').nth(before).unwrap_or_default();
                (inner.line() - 1, last.trim_end_matches(['\n', '\r']).len().max(1))
            }
            (0, None) => (1, text.trim_end_matches(['\n', '\r']).len().max(1)),
            (column, _) => (inner.line(), column),
        };
        JsonError { line, column, path, message, syntax: inner.is_syntax() || inner.is_eof() }
    };
    let mut reader = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let path = e.path().to_string();
        error(e.into_inner(), if path == "." { String::new() } else { path })
    })?;
    reader.end().map_err(|e| error(e, String::new()))?;
    Ok(value)
}

/// Parses one non-empty line.
pub fn parse_line(line: &str, place: &Place) -> Result<Line, InputError> {
    if !line.trim_start().starts_with('{') {
        read::<IgnoredAny>(line, place)?;
        return Err(InputError::Line {
            file: place.file.clone(),
            line: place.line,
            path: String::new(),
            message: "expected a JSON object: a result line or a summary line of `allocsim run --json`".into(),
        });
    }
    let probe: Probe = read(line, place)?;
    if probe.summary.is_some() {
        return Ok(Line::Summary(read(line, place)?));
    }
    let result: RunResult = read(line, place)?;
    if let Some((path, message)) = problem(&result) {
        return Err(InputError::Line { file: place.file.clone(), line: place.line, path, message });
    }
    Ok(Line::Result(Box::new(result)))
}

/// The first value of a result line that is well-typed but impossible or out of bounds, as (JSON path, what is
/// wrong). Within the bounds, every time of the series is at most `sim_ms`, so the report's
/// per-bucket arrays and sums stay bounded by the run's length.
pub fn problem(r: &RunResult) -> Option<(String, String)> {
    if r.seed == u64::MAX {
        return Some(("seed".into(), format!("expected at most {} (seed ranges are half-open)", u64::MAX - 1)));
    }
    let series = r.series.as_ref()?;
    if !(1..=BUCKET_MS_MAX).contains(&series.bucket_ms) {
        let message = format!("expected a bucket width from 1 to {BUCKET_MS_MAX} ms, found {}", series.bucket_ms);
        return Some(("series.bucket_ms".into(), message));
    }
    let buckets = r.sim_ms.div_ceil(series.bucket_ms);
    if buckets > THROUGHPUT_BUCKETS_MAX {
        let message = format!(
            "{} ms in buckets of {} ms makes {buckets} buckets; at most {THROUGHPUT_BUCKETS_MAX} are read",
            r.sim_ms, series.bucket_ms
        );
        return Some(("sim_ms".into(), message));
    }
    if series.pending.len() as u64 > buckets + 1 {
        let message = format!(
            "{} buckets, but a run of {} ms has {buckets} of {} ms",
            series.pending.len(),
            r.sim_ms,
            series.bucket_ms
        );
        return Some(("series.pending".into(), message));
    }
    if let Some(problem) = series.latency.problem() {
        return Some(("series.latency".into(), problem));
    }
    time_problem(r, series)
}

/// The first time of the series after the end of the run, or a window that ends before it
/// starts, or a pool that does not fit its capacity.
fn time_problem(r: &RunResult, series: &Series) -> Option<(String, String)> {
    let late = |path: String, ms: u64| {
        (ms > r.sim_ms).then(|| (path, format!("{ms} ms is after the end of the run (sim_ms {})", r.sim_ms)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn place() -> Place {
        Place { file: PathBuf::from("r.jsonl"), line: 7 }
    }

    fn error(line: &str) -> String {
        parse_line(line, &place()).expect_err("a bad line").to_string()
    }

    const GOOD: &str = r#"{"scenario":"s","seed":1,"violation":null,"trace_hash":"ab","sim_ms":10,"metrics":{"entries_applied":1,"leader_changes":1,"allocator_restores":1,"tasks_created":2,"tasks_pending":2,"first_task_ms":1,"last_pending_ms":5,"faults_injected":0,"messages_sent":9,"txns_rejected":0,"allocator_batches":0,"allocator_batches_cut":0},"extra":true}"#;

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
            "r.jsonl: line 7 column 328, at the top level: missing field `seed`"
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
