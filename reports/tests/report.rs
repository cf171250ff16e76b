//! The sweep report over a committed sweep (`tests/sweep/`): real `allocsim run --json` output of
//! the smoke workload (seeds 0..3, all pass) and of a scenario with a deliberately wrong
//! expectation (seeds 0..3, all fail), its failure files (seed 2's removed, to show a missing
//! one) and a real `allocsim shrink` output for seed 1; a fuzz summary and a hand-written
//! baseline. Paths are relative: cargo runs these tests in the package directory, so the
//! snapshot holds no machine-specific path.
//!
//! Regenerate the results after a simulator change with the commands in `tests/sweep/README.md`,
//! then the snapshot with `UPDATE_SNAPSHOTS=1 cargo test -p swarmalloc-reports --test report`.

use std::path::PathBuf;

use swarmalloc_reports::{
    InputError, ReportOptions, Sweep, SweepOptions, SweepVerdict, WallClock, make_report, read_sweep, write_files,
};

const SMOKE: &str = "tests/sweep/smoke.jsonl";
const PLANTED: &str = "tests/sweep/planted.jsonl";
const FAILURES: &str = "tests/sweep/allocsim-failures";

fn options(results: &[&str]) -> ReportOptions {
    ReportOptions {
        results: results.iter().map(PathBuf::from).collect(),
        fuzz: Some(PathBuf::from("tests/sweep/fuzz.json")),
        baseline: Some(PathBuf::from("tests/sweep/baseline.json")),
        sweep: SweepOptions { failures_dir: PathBuf::from(FAILURES) },
    }
}

fn report(results: &[&str]) -> Sweep {
    match make_report(&options(results), &mut |_| {}) {
        Ok(sweep) => sweep,
        Err(e) => panic!("the fixture sweep is readable, but: {e}"),
    }
}

/// `report.json` with its wall-clock part replaced by the default (the only part that varies).
fn normalised_json(sweep: &Sweep) -> String {
    let mut report = sweep.report.clone();
    report.wall_clock = WallClock::default();
    report.to_json()
}

#[test]
fn report_json_matches_the_snapshot() {
    let sweep = report(&[SMOKE, PLANTED]);
    let json = normalised_json(&sweep);
    let snapshot = PathBuf::from("tests/sweep/report.snapshot.json");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &json).expect("write the snapshot");
    }
    let expected = std::fs::read_to_string(&snapshot).expect("the committed snapshot");
    assert!(
        json == expected,
        "report.json differs from {}; if the change is intended, rerun with UPDATE_SNAPSHOTS=1\n--- got ---\n{json}",
        snapshot.display()
    );
}

#[test]
fn the_verdict_counts_seeds_per_scenario_and_per_checker() {
    let r = report(&[SMOKE, PLANTED]).report;
    assert_eq!(r.verdict, SweepVerdict::Fail);
    assert_eq!((r.totals.seeds, r.totals.passed, r.totals.failed, r.totals.fuzz_crashes), (6, 3, 3, 1));
    let per: Vec<(&str, u64, u64, &[u64])> =
        r.scenarios.iter().map(|s| (s.scenario.as_str(), s.seeds, s.failed, s.failing_seeds.as_slice())).collect();
    assert_eq!(per, [("planted-wrong-count", 3, 3, &[0u64, 1, 2][..]), ("smoke", 3, 0, &[][..])]);
    let [checker] = r.checkers.as_slice() else { panic!("one checker fired: {:?}", r.checkers) };
    assert_eq!((checker.checker.as_str(), checker.failed), ("assertion", 3));
    let found: Vec<(u64, bool, Option<&str>)> =
        r.failures.iter().map(|f| (f.seed, f.failure_file_found, f.shrunk.as_deref())).collect();
    assert_eq!(
        found,
        [
            (0, true, None),
            (1, true, Some("tests/sweep/allocsim-failures/planted-wrong-count-1.shrunk.toml")),
            (2, false, None)
        ]
    );
    assert_eq!(r.failures[0].replay, "allocsim replay tests/sweep/allocsim-failures/planted-wrong-count-0.json");
    assert_eq!(r.failures[0].violation.detail, "expected 7 RUNNING tasks of service web, found 6");
}

#[test]
fn series_add_up_to_the_run_counters() {
    let r = report(&[SMOKE, PLANTED]).report;
    for s in &r.scenarios {
        assert_eq!(s.series_seeds, s.seeds, "{}: every fixture line has series", s.scenario);
        assert_eq!(s.latency.count, s.tasks.pending, "{}: one latency sample per task to PENDING", s.scenario);
        let per_bucket: f64 =
            s.throughput.pending_per_s.iter().zip(&s.throughput.seeds).map(|(v, n)| v * *n as f64).sum();
        assert!((per_bucket - s.tasks.pending as f64).abs() < 0.01 * s.seeds as f64, "{}: {per_bucket}", s.scenario);
        assert!(s.restores.count > 0 && s.restores.count <= s.leader_changes, "{}: {:?}", s.scenario, s.restores);
        assert!(!s.pools.is_empty(), "{}: pools sampled at the end checks", s.scenario);
        let starts: u64 = s.throughput.leader_starts.iter().sum();
        assert_eq!(starts, s.leader_changes, "{}: one term per leader change", s.scenario);
    }
}

#[test]
fn shards_merge_in_any_order_and_duplicates_count_once() {
    let one = report(&[SMOKE, PLANTED]).report;
    let other = report(&[PLANTED, SMOKE, SMOKE]).report;
    let duplicates: Vec<u64> = other.inputs.iter().map(|i| i.duplicates).collect();
    assert_eq!(duplicates, [0, 0, 3]);
    let without_inputs = |report: &swarmalloc_reports::SweepReport| {
        let mut report = report.clone();
        report.inputs.clear();
        report.wall_clock = WallClock::default();
        report.to_json()
    };
    assert_eq!(without_inputs(&one), without_inputs(&other), "only inputs and wall_clock depend on the order");
}

#[test]
fn the_same_inputs_give_a_byte_identical_report() {
    let first = report(&[SMOKE, PLANTED]);
    let second = report(&[SMOKE, PLANTED]);
    assert_eq!(first.report.to_json(), second.report.to_json());
    assert_eq!(first.files(), second.files());
}

#[test]
fn the_baseline_shows_new_fixed_and_changed_throughput() {
    let b = report(&[SMOKE, PLANTED]).report.baseline.expect("a baseline was given");
    let list = |changes: &[swarmalloc_reports::Change]| -> Vec<(String, u64, String)> {
        changes.iter().map(|c| (c.scenario.clone(), c.seed, c.before.clone())).collect()
    };
    let planted = "planted-wrong-count".to_string();
    assert_eq!(list(&b.new_failures), [(planted.clone(), 1, "passed".into()), (planted.clone(), 2, "not run".into())]);
    assert_eq!(list(&b.fixed), [("smoke".into(), 1, "duplicate_live_address".into())]);
    assert_eq!(list(&b.still_failing), [(planted.clone(), 0, "assertion".into())]);
    assert_eq!((b.not_rerun, b.scenarios_removed.as_slice()), (1, &["retired-scenario".to_string()][..]));
    let planted_change = b.throughput.iter().find(|t| t.scenario == planted).expect("in both");
    assert_eq!(planted_change.before_per_s, 2.0);
    assert!(planted_change.change_pct.is_some_and(|p| p != 0.0), "{planted_change:?}");
    assert_eq!(planted_change.p99_before_ms, Some(120));
}

#[test]
fn the_fuzz_summary_is_read_tolerantly_and_its_crash_fails_the_verdict() {
    let sweep = report(&[SMOKE]);
    let fuzz = sweep.report.fuzz.as_ref().expect("given");
    assert_eq!(fuzz.warnings, ["targets[1].coverage: expected a number, found the string \"high\"; shown as unknown"]);
    assert_eq!(fuzz.crashes(), 1);
    assert_eq!(sweep.report.verdict, SweepVerdict::Fail, "smoke passes, but the fuzz summary lists a crash");
    assert_eq!(sweep.exit_code(), 1);
    let text = sweep.to_text();
    assert!(text.contains("crash: cargo fuzz run -s none restore fuzz/artifacts/restore/crash-3f2a"), "{text}");
    let mut passing = options(&[SMOKE]);
    passing.fuzz = None;
    passing.baseline = None;
    let sweep = make_report(&passing, &mut |_| {}).expect("readable");
    assert_eq!((sweep.report.verdict, sweep.exit_code()), (SweepVerdict::Pass, 0));
}

#[test]
fn every_crash_of_the_fuzz_summary_is_in_the_report_and_fails_it() {
    let summary = r#"{"version": 1, "targets": [
        {"target": "restore", "runs": 10, "execs_per_sec": 5.0, "coverage": 100, "features": 200, "corpus_size": 30,
         "crashes": [{"artifact": "crash-a", "minimized": "minimized-a", "reproduce": "cargo fuzz run restore crash-a"}]},
        {"runs": 5, "crashes": [{"artifact": "crash-b", "reproduce": "cargo fuzz run unnamed crash-b"}]},
        {"target": "engine_ops", "crashes": {"artifact": "crash-c"}},
        {"target": "sim", "crashes": "crash-d"},
        {"target": "scenario_parse", "crashes": 3},
        {"target": "many", "crashes": ["crash-e", 7, {"artifact": 12}]}
    ]}"#;
    let mut options = options(&[SMOKE]);
    let fuzz = temp("fuzz-crashes.json", summary);
    options.fuzz = Some(fuzz.to_path_buf());
    options.baseline = None;
    let sweep = make_report(&options, &mut |_| {}).expect("a readable fuzz summary");
    assert_eq!(sweep.report.totals.fuzz_crashes, 10, "1 + 1 + 1 + 1 + 3 + 3");
    assert_eq!((sweep.report.totals.failed, sweep.report.verdict, sweep.exit_code()), (0, SweepVerdict::Fail, 1));
    let json = sweep.report.to_json();
    let html = sweep.to_html(&sweep.charts());
    let text = sweep.to_text();
    for needle in ["crash-a", "minimized-a", "crash-b", "targets[1]", "crash-c", "crash-d", "crash-e", "12"] {
        assert!(json.contains(&format!("\"{needle}\"")), "report.json lacks {needle:?}:\n{json}");
        assert!(html.contains(&format!("<code>{needle}</code>")), "the page lacks {needle:?}");
    }
    assert!(json.contains("\"unlisted\": 3"), "{json}");
    assert!(html.contains("3 crashes counted but not listed"), "the page lacks the counted crashes");
    for line in ["fuzz targets[1]: 5 runs, ? execs/s, coverage ?, 1 crashes", "  crash: cargo fuzz run unnamed crash-b"]
    {
        assert!(text.lines().any(|l| l == line), "missing line {line:?} in:\n{text}");
    }
    assert!(
        text.ends_with("FAIL: 3 seeds of 1 scenarios: 3 passed, 0 failed; fuzz: 6 targets, 10 crashes\n"),
        "{text}"
    );
}

#[test]
fn the_page_has_every_section_and_each_failure_its_replay_and_shrunk_scenario() {
    let sweep = report(&[SMOKE, PLANTED]);
    let html = sweep.to_html(&sweep.charts());
    // Simulated throughput is not a real manager's: the page says so where it shows it.
    let note = swarmalloc_sim::series::THROUGHPUT_IS_RELATIVE;
    assert!(html.contains(&format!("Throughput in {note}.")), "the page lacks the relative-only note");
    // Failures first, then every scenario (its charts folded when it passed).
    let sections = [
        "verdict",
        "failures",
        "scenarios",
        "checkers",
        "baseline",
        "by-scenario",
        "latency",
        "restores",
        "speed",
        "fuzz",
    ];
    let mut last = 0;
    for id in sections {
        let at = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no section {id}"));
        assert!(at > last || id == "verdict", "section {id} is out of order");
        last = at;
    }
    for needle in [
        "<strong>FAIL</strong>6 seeds of 2 scenarios: 3 passed, 3 failed; fuzz: 2 targets, 1 crashes",
        "Replay: <code>allocsim replay tests/sweep/allocsim-failures/planted-wrong-count-1.json</code>",
        "name = &#34;planted-wrong-count-shrunk&#34;",
        "the failure file was not found next to the results",
        "expected 7 RUNNING tasks of service web, found 6",
        "fuzz/artifacts/restore/crash-3f2a",
    ] {
        assert!(html.contains(needle), "the page lacks {needle:?}");
    }
    for chart in sweep.charts() {
        assert!(html.contains(&format!("charts/{}", chart.file)), "the page lacks chart {}", chart.file);
        assert!(chart.svg.is_ok(), "chart {} was not drawn: {:?}", chart.file, chart.svg);
    }
    // The failing scenario's block comes first and is open with its charts inline; the passing
    // one is folded and links its charts.
    let failing = html.find("<details id=\"scenario-planted-wrong-count\" open>").expect("the failing scenario, open");
    let passing = html.find("<details id=\"scenario-smoke\">").expect("the passing scenario, folded");
    assert!(failing < passing, "failures first");
    let folded = &html[passing..html[passing..].find("</details>").map_or(html.len(), |e| passing + e)];
    assert!(folded.contains("<img src=\"charts/throughput-01-smoke.svg\"") && !folded.contains("<svg"), "{folded}");
    assert!(!html.contains("<script"), "no script");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "no external asset");
}

/// Text from the inputs (scenario names, violations, file names, fuzz artifacts) is escaped
/// wherever the page shows it: in element content and in attribute values.
#[test]
fn the_page_escapes_what_it_reads() {
    let mut sweep = report(&[SMOKE, PLANTED]);
    let hostile = "<script>alert('x')</script> & \"quoted\"";
    sweep.report.failures[0].violation.detail = hostile.to_string();
    sweep.report.failures[0].violation.checker = hostile.to_string();
    sweep.report.scenarios[0].scenario = hostile.to_string();
    sweep.report.inputs[0].file = hostile.to_string();
    let fuzz = sweep.report.fuzz.as_mut().expect("the fixture has a fuzz summary");
    fuzz.targets[0].target = hostile.to_string();
    fuzz.warnings.push(hostile.to_string());
    let mut charts = sweep.charts();
    charts[0].title = hostile.to_string();
    let html = sweep.to_html(&charts);
    assert!(!html.contains("<script"), "unescaped markup in the page");
    let escaped = "&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; &#38; &#34;quoted&#34;";
    // The violation, the checker, the scenario (table and block), the input, the fuzz target
    // and warning, a chart's heading.
    assert!(html.matches(escaped).count() >= 8, "expected the escaped text everywhere:\n{html}");
    assert!(html.contains("<a href=\"#failures\">Failures</a>"), "the navigation");
}

/// Each SVG, standalone and inline in the page, parses as XML with an `svg` root that draws.
#[test]
fn every_svg_is_well_formed_xml() {
    let sweep = report(&[SMOKE, PLANTED]);
    let charts = sweep.charts();
    assert_eq!(charts.len(), 4 + 2 * 2 + 3, "4 sweep charts, 2 per scenario, 1 per failure");
    let html = sweep.to_html(&charts);
    let inline: Vec<&str> = html.split("<svg").skip(1).map(|rest| rest.split("</svg>").next().unwrap_or("")).collect();
    assert_eq!(inline.len(), charts.len() - 2, "all but the passing scenario's two (linked) are inline");
    let texts = charts.iter().map(|c| (c.file.clone(), "file", c.svg.clone().expect("drawn"))).chain(
        inline.iter().enumerate().map(|(i, s)| (format!("inline chart {i}"), "inline", format!("<svg{s}</svg>"))),
    );
    for (file, what, text) in texts {
        {
            let doc = roxmltree::Document::parse(&text)
                .unwrap_or_else(|e| panic!("{file} ({what}) is not well-formed XML: {e}"));
            assert_eq!(doc.root_element().tag_name().name(), "svg", "{file}");
            assert!(doc.root_element().children().filter(|n| n.is_element()).count() > 10, "{file} draws");
        }
    }
}

#[test]
fn a_report_written_over_an_older_one_leaves_no_stale_chart() {
    let tmp = tempfile::Builder::new().prefix("swarmalloc-report-rewrite-").tempdir().expect("temp dir");
    let dir = tmp.path().join("report");
    let old = report(&[SMOKE, PLANTED]);
    write_files(&dir, &old.files()).expect("writable");
    assert!(dir.join("charts/failure-planted-wrong-count-0.svg").is_file(), "the first report has failure charts");
    let new = report(&[SMOKE]);
    write_files(&dir, &new.files()).expect("writable");
    let mut expected: Vec<String> =
        new.charts().into_iter().filter(|c| c.svg.is_ok()).map(|c| format!("charts/{}", c.file)).collect();
    expected.extend(["index.html".to_string(), "report.json".to_string()]);
    expected.sort();
    let mut found: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("listable") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            for chart in std::fs::read_dir(entry.path()).expect("listable") {
                found.push(format!("{name}/{}", chart.expect("entry").file_name().to_string_lossy()));
            }
        } else {
            found.push(name);
        }
    }
    found.sort();
    assert_eq!(found, expected, "exactly the second report's files, no temporary");
}

#[test]
fn the_text_output_has_the_same_verdict() {
    let text = report(&[SMOKE, PLANTED]).to_text();
    for line in [
        "checker assertion: 3 failed (planted-wrong-count seeds 0, 1, 2)",
        "  replay: allocsim replay tests/sweep/allocsim-failures/planted-wrong-count-2.json (failure file not found)",
        "  shrunk: tests/sweep/allocsim-failures/planted-wrong-count-1.shrunk.toml",
        "  new: planted-wrong-count seed 2 (assertion; before: not run)",
        "  fixed: smoke seed 1 (was duplicate_live_address)",
        "FAIL: 6 seeds of 2 scenarios: 3 passed, 3 failed; fuzz: 2 targets, 1 crashes",
    ] {
        assert!(text.lines().any(|l| l == line), "missing line {line:?} in:\n{text}");
    }
}

/// The throughput column of the text is the allocation throughput of report.json, and says so.
#[test]
fn the_text_throughput_column_is_labelled_by_its_quantity() {
    let sweep = report(&[SMOKE, PLANTED]);
    let text = sweep.to_text();
    let mut lines = text.lines().skip(1);
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    let column = header.iter().position(|h| h.starts_with("tasks/")).expect("a throughput column");
    assert_eq!(header[column], "tasks/alloc-s", "pending_per_window_s is per simulated second of allocation");
    for s in &sweep.report.scenarios {
        let row: Vec<&str> = lines.next().expect("a row per scenario").split_whitespace().collect();
        assert_eq!(
            (row[0], row[column]),
            (s.scenario.as_str(), format!("{:.1}", s.tasks.pending_per_window_s).as_str())
        );
        assert_ne!(s.tasks.pending_per_window_s, s.tasks.pending_per_sim_s, "{}: the two rates differ", s.scenario);
    }
    // Simulated throughput is not a real manager's: the text says so.
    let note = swarmalloc_sim::series::THROUGHPUT_IS_RELATIVE;
    assert!(
        text.lines().any(|l| l.starts_with("tasks/alloc-s: ") && l.ends_with(note)),
        "no relative-only note:\n{text}"
    );
}

// Bad input: every error names the file, the line and the field, and nothing is written.

/// A file in a temporary directory of its own, removed when the value is dropped.
struct Temp {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl std::ops::Deref for Temp {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.path
    }
}

fn temp(name: &str, text: &str) -> Temp {
    let dir = tempfile::Builder::new().prefix("swarmalloc-report-test-").tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("temp file");
    Temp { _dir: dir, path }
}

fn unreadable(files: Vec<PathBuf>) -> String {
    let error: InputError =
        read_sweep(&files, &SweepOptions::default(), &mut |_| {}).expect_err("bad input must not read");
    error.to_string()
}

/// The first result line of the smoke fixture, to corrupt.
fn first_smoke_line() -> String {
    std::fs::read_to_string(SMOKE).expect("fixture").lines().next().expect("a line").to_string()
}

#[test]
fn a_corrupt_line_names_the_file_line_and_field() {
    let good = std::fs::read_to_string(SMOKE).expect("fixture");
    let first = first_smoke_line();
    let first = first.as_str();
    let bad = good.replacen(first, &first.replacen("\"sim_ms\":", "\"sim_ms\":\"soon\",\"was\":", 1), 1);
    let path = temp("corrupt.jsonl", &bad);
    let error = unreadable(vec![path.clone()]);
    assert!(error.starts_with(&format!("{}: line 1 column ", path.display())), "{error}");
    assert!(error.ends_with(", at sim_ms: invalid type: string \"soon\", expected u64"), "{error}");
    let cut = first.find("\"sim_ms\":").expect("a sim_ms field") + "\"sim_ms\":".len();
    let path = temp("truncated.jsonl", &format!("{first}\n{}\n", &first[..cut]));
    let expected =
        format!("{}: line 2 column {cut}, in sim_ms: invalid JSON: EOF while parsing a value", path.display());
    assert_eq!(unreadable(vec![path.clone()]), expected, "the column of the last character read");
}

#[test]
fn impossible_series_values_are_named() {
    let first = first_smoke_line();
    let first = first.as_str();
    let bad = first.replacen("\"bucket_ms\":1000", "\"bucket_ms\":0", 1);
    let path = temp("zero-bucket.jsonl", &bad);
    assert_eq!(
        unreadable(vec![path.clone()]),
        format!(
            "{}: line 1, at series.bucket_ms: expected a bucket width from 1 to 86400000 ms, found 0",
            path.display()
        )
    );
}

/// The first smoke line with `edit` applied to its JSON.
fn edited(edit: impl Fn(&mut serde_json::Value)) -> String {
    let mut value: serde_json::Value = serde_json::from_str(&first_smoke_line()).expect("fixture JSON");
    edit(&mut value);
    value.to_string()
}

/// Reading `lines` fails with exactly `FILE: expected` (and never panics).
#[track_caller]
fn check_unreadable(name: &str, lines: &[String], expected: &str) {
    let path = temp(name, &(lines.join("\n") + "\n"));
    assert_eq!(unreadable(vec![path.clone()]), format!("{}: {expected}", path.display()), "case {name}");
}

const MAX: u64 = u64::MAX;

#[test]
fn values_out_of_bounds_are_input_errors_not_panics() {
    let set = |pointer: &'static str, value: serde_json::Value| {
        edited(move |v| *v.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer} in the fixture")) = value.clone())
    };
    let after_end = "ms is after the end of the run (sim_ms 30100)";
    let cases: Vec<(&str, String, String)> = vec![
        (
            "huge-bucket",
            set("/series/bucket_ms", MAX.into()),
            format!("line 1, at series.bucket_ms: expected a bucket width from 1 to 86400000 ms, found {MAX}"),
        ),
        (
            "huge-run",
            set("/sim_ms", MAX.into()),
            format!(
                "line 1, at sim_ms: {MAX} ms in buckets of 1000 ms makes 18446744073709552 buckets; at most 100000 \
                 are read"
            ),
        ),
        (
            "long-pending",
            set("/series/pending", serde_json::json!(vec![1; 40])),
            "line 1, at series.pending: 40 buckets, but a run of 30100 ms has 31 of 1000 ms".into(),
        ),
        (
            "late-leader",
            set("/series/leaders/1/start_ms", MAX.into()),
            format!("line 1, at series.leaders[1].start_ms: {MAX} {after_end}"),
        ),
        (
            "late-fault-end",
            set("/series/faults/0/end_ms", 30_101.into()),
            format!("line 1, at series.faults[0].end_ms: 30101 {after_end}"),
        ),
        (
            "late-restore",
            set("/series/restores/0/restored_ms", MAX.into()),
            format!("line 1, at series.restores[0].restored_ms: {MAX} {after_end}"),
        ),
        (
            "late-latency",
            set("/series/latency", serde_json::json!({"count": 1, "sum_ms": 1, "max_ms": MAX, "buckets": [[16, 1]]})),
            format!("line 1, at series.latency.max_ms: {MAX} {after_end}"),
        ),
        (
            "bucket-counts-overflow",
            set(
                "/series/latency",
                serde_json::json!({"count": 1, "sum_ms": 1, "max_ms": 5, "buckets": [[1, MAX], [2, 2]]}),
            ),
            format!("line 1, at series.latency: the bucket counts add up to more than {MAX}"),
        ),
        (
            "last-seed",
            set("/seed", MAX.into()),
            format!("line 1, at seed: expected at most {} (seed ranges are half-open)", MAX - 1),
        ),
    ];
    for (name, line, expected) in cases {
        check_unreadable(name, &[line], &expected);
    }
    let negative = first_smoke_line().replacen("\"sim_ms\":30100", "\"sim_ms\":-1", 1);
    let error = unreadable(vec![temp("negative.jsonl", &negative).to_path_buf()]);
    assert!(error.ends_with(", at sim_ms: invalid value: integer `-1`, expected u64"), "{error}");
    let too_big = first_smoke_line().replacen("\"sim_ms\":30100", "\"sim_ms\":18446744073709551616", 1);
    let error = unreadable(vec![temp("too-big.jsonl", &too_big).to_path_buf()]);
    assert!(
        error.ends_with(", at sim_ms: invalid type: floating point `1.8446744073709552e+19`, expected u64"),
        "{error}"
    );
}

#[test]
fn sums_over_seeds_that_overflow_name_the_line_and_field() {
    let seed = |n: u64, edit: &dyn Fn(&mut serde_json::Value)| {
        edited(|v| {
            v["seed"] = n.into();
            edit(v);
        })
    };
    let pending = |v: &mut serde_json::Value| v["metrics"]["tasks_pending"] = MAX.into();
    check_unreadable(
        "sum-pending",
        &[seed(0, &pending), seed(1, &pending)],
        &format!("line 2, at metrics.tasks_pending: the sum over the seeds of scenario smoke passes {MAX}"),
    );
    let latency = |v: &mut serde_json::Value| {
        v["series"]["latency"] = serde_json::json!({"count": MAX, "sum_ms": 0, "max_ms": 5, "buckets": [[5, MAX]]})
    };
    check_unreadable(
        "sum-latency",
        &[seed(0, &latency), seed(1, &latency)],
        &format!("line 2, at series.latency.count: the sum over the seeds of scenario smoke passes {MAX}"),
    );
    let bucket = |v: &mut serde_json::Value| v["series"]["pending"][0] = MAX.into();
    check_unreadable(
        "sum-bucket",
        &[seed(0, &bucket), seed(1, &bucket)],
        &format!("line 2, at series.pending[0]: the sum over the seeds of scenario smoke passes {MAX}"),
    );
}

#[test]
fn a_line_past_the_length_bound_is_an_input_error() {
    let long = format!("{{\"scenario\": \"{}\"}}", "a".repeat(16 << 20));
    check_unreadable(
        "long-line",
        &[first_smoke_line(), long],
        "line 2, at the top level: longer than 16777216 bytes; a result line is a few KB",
    );
}

#[test]
fn one_seed_with_two_different_hashes_cannot_merge() {
    let first = first_smoke_line();
    let first = first.as_str();
    let other = first.replacen("\"trace_hash\":\"", "\"trace_hash\":\"ff", 1);
    let path = temp("other-hash.jsonl", &other);
    let error = unreadable(vec![PathBuf::from(SMOKE), path.clone()]);
    assert!(
        error.starts_with(&format!(
            "{}: line 1, at trace_hash: scenario smoke seed 0 was already read from {SMOKE} line 1",
            path.display()
        )),
        "{error}"
    );
}

#[test]
fn a_summary_line_must_match_the_result_lines_before_it() {
    let lines: Vec<String> = std::fs::read_to_string(SMOKE).expect("fixture").lines().map(str::to_string).collect();
    let [r0, r1, r2, summary] = lines.as_slice() else { panic!("3 results and a summary: {lines:?}") };
    let says = |n: u64, what: &str, have: u64| {
        format!(
            "the summary of scenario smoke says {n} {what}, but the result lines before it in this file (since its \
             previous summary line) have {have}: lines are missing, extra or from another sweep"
        )
    };
    check_unreadable(
        "summary-missing-line",
        &[r0.clone(), r2.clone(), summary.clone()],
        &format!("line 3, at seeds: {}", says(3, "seeds run", 2)),
    );
    check_unreadable(
        "summary-first",
        &[summary.clone(), r0.clone(), r1.clone(), r2.clone()],
        &format!("line 1, at seeds: {}", says(3, "seeds run", 0)),
    );
    let failed = r1.replacen("\"violation\":null", VIOLATION, 1);
    check_unreadable(
        "summary-failed",
        &[r0.clone(), failed, r2.clone(), summary.clone()],
        &format!("line 4, at failed: {}", says(0, "seeds failed", 1)),
    );
    let twice: Vec<String> = [r0, r1, r2, summary, r0, r1, r2, summary].map(String::clone).into();
    let path = temp("summary-twice.jsonl", &twice.join("\n"));
    let sweep =
        read_sweep(&[path.to_path_buf()], &SweepOptions::default(), &mut |_| {}).expect("two sweeps of one file");
    assert_eq!((sweep.report.inputs[0].results, sweep.report.inputs[0].duplicates), (3, 3));
}

const VIOLATION: &str = r#""violation":{"checker":"c","objects":[],"detail":"d","t_ms":1,"raft_index":1,"node":"m1"}"#;

#[test]
fn a_results_file_without_result_lines_is_an_input_error() {
    let summary = r#"{"summary":"0 seeds","scenario":"smoke","seeds":0,"failed":0,"seconds":0.0}"#;
    check_unreadable(
        "only-summary",
        &[summary.into()],
        "at the top level: no result lines: expected the output of `allocsim run --json`",
    );
}

#[test]
fn empty_and_missing_files() {
    let path = temp("empty.jsonl", "\n\n");
    assert_eq!(
        unreadable(vec![path.clone()]),
        format!("{}: at the top level: no result lines: expected the output of `allocsim run --json`", path.display())
    );
    let missing = PathBuf::from("tests/sweep/no-such-file.jsonl");
    assert!(unreadable(vec![missing]).starts_with("tests/sweep/no-such-file.jsonl: cannot read: "));
    let mut bad_fuzz = options(&[SMOKE]);
    let fuzz = temp("fuzz.json", "{\"version\": 1}");
    bad_fuzz.fuzz = Some(fuzz.to_path_buf());
    let error = make_report(&bad_fuzz, &mut |_| {}).expect_err("no targets").to_string();
    assert!(
        error.ends_with(
            ": at targets: expected an object with a `targets` array (the nightly fuzz summary), found no `targets` key"
        ),
        "{error}"
    );
    let mut bad_baseline = options(&[SMOKE]);
    let baseline = temp("baseline.json", "{\"schema\": \"swarmalloc-check/1\", \"scenarios\": [], \"failures\": []}");
    bad_baseline.baseline = Some(baseline.to_path_buf());
    let error = make_report(&bad_baseline, &mut |_| {}).expect_err("not a report").to_string();
    assert!(
        error.ends_with(
            ": at schema: expected a report of schema \"swarmalloc-report/1\", found the string \"swarmalloc-check/1\""
        ),
        "{error}"
    );
    // A mistyped value deep inside names its JSON path, line and column.
    let text = "{\"schema\": \"swarmalloc-report/1\", \"failures\": [],\n \"scenarios\": [{\"scenario\": \"a\", \"seed_ranges\": \"all\"}]}";
    let baseline = temp("typed.json", text);
    bad_baseline.baseline = Some(baseline.to_path_buf());
    let error = make_report(&bad_baseline, &mut |_| {}).expect_err("a mistyped baseline").to_string();
    assert_eq!(
        error,
        format!(
            "{}: line 2 column 53, at scenarios[0].seed_ranges: invalid type: string \"all\", expected a sequence",
            baseline.display()
        )
    );
    let baseline = temp("cut.json", "{\"schema\": \"swarmalloc-report/1\",\n \"scenarios\": [\n");
    bad_baseline.baseline = Some(baseline.to_path_buf());
    let error = make_report(&bad_baseline, &mut |_| {}).expect_err("a cut baseline").to_string();
    assert_eq!(
        error,
        format!("{}: line 2 column 15, in scenarios: invalid JSON: EOF while parsing a list", baseline.display())
    );
}

#[test]
fn reading_reports_progress_up_to_the_whole_file() {
    let mut seen = Vec::new();
    let files = [PathBuf::from(SMOKE), PathBuf::from(PLANTED)];
    read_sweep(&files, &SweepOptions::default(), &mut |p| seen.push((p.file.to_path_buf(), p.bytes_read, p.lines)))
        .expect("readable");
    let size = |f: &str| std::fs::metadata(f).expect("fixture").len();
    assert_eq!(seen, [(PathBuf::from(SMOKE), size(SMOKE), 4), (PathBuf::from(PLANTED), size(PLANTED), 4)]);
}

/// A sweep cut short (SIGINT, a CI time-out) is not a PASS: result lines with no summary line
/// after them, or a summary line marked interrupted, make the verdict INCOMPLETE (exit 1), and
/// the report says which file and scenario.
#[test]
fn a_results_file_without_its_summary_line_is_incomplete() {
    let lines: Vec<String> = std::fs::read_to_string(SMOKE).expect("fixture").lines().map(str::to_string).collect();
    let results: Vec<&String> = lines.iter().filter(|l| !l.contains("\"summary\"")).collect();
    let cut = temp("cut.jsonl", &format!("{}\n{}\n", results[0], results[1]));
    let sweep = read_sweep(std::slice::from_ref(&*cut), &SweepOptions::default(), &mut |_| {}).expect("readable");
    assert_eq!(sweep.report.verdict, swarmalloc_reports::SweepVerdict::Incomplete);
    assert_eq!(sweep.exit_code(), 1);
    let text = sweep.to_text();
    assert!(
        text.contains(&format!(
            "incomplete: {}: 2 result lines of smoke and no summary line after them: the sweep was cut short",
            cut.display()
        )),
        "{text}"
    );
    assert!(text.contains("INCOMPLETE: 2 seeds of 1 scenarios: 2 passed, 0 failed"), "{text}");
    let page = sweep.to_html(&sweep.charts());
    assert!(page.contains("<strong>INCOMPLETE</strong>"), "the page's verdict");

    let mut summary: serde_json::Value =
        serde_json::from_str(lines.iter().find(|l| l.contains("\"summary\"")).expect("the fixture's summary line"))
            .expect("JSON");
    summary["seeds"] = 2.into();
    summary["interrupted"] = true.into();
    let interrupted = temp("interrupted.jsonl", &format!("{}\n{}\n{summary}\n", results[0], results[1]));
    let sweep =
        read_sweep(std::slice::from_ref(&*interrupted), &SweepOptions::default(), &mut |_| {}).expect("readable");
    assert_eq!(sweep.report.verdict, swarmalloc_reports::SweepVerdict::Incomplete);
    assert_eq!(
        sweep.report.incomplete,
        [format!("{}: the sweep of smoke was interrupted after 2 seeds", interrupted.display())]
    );
    // The whole fixture, with its summary line, is complete.
    let whole = read_sweep(&[PathBuf::from(SMOKE)], &SweepOptions::default(), &mut |_| {}).expect("readable");
    assert_eq!(whole.report.verdict, swarmalloc_reports::SweepVerdict::Pass);
}

/// The `<text>` (x, y, content) and `<rect>` (x, fill) marks of an SVG, in drawing order.
enum Mark {
    Text(f64, f64, String),
    Rect(f64, String),
}

fn marks(svg: &str) -> Vec<Mark> {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed XML: {e}"));
    let at = |n: roxmltree::Node, a: &str| n.attribute(a).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    doc.descendants()
        .filter_map(|n| match n.tag_name().name() {
            "text" => Some(Mark::Text(at(n, "x"), at(n, "y"), n.text().unwrap_or("").trim().to_string())),
            "rect" => Some(Mark::Rect(at(n, "x"), n.attribute("fill").unwrap_or("").to_string())),
            _ => None,
        })
        .collect()
}

/// Where the key column of every chart starts (charts.rs: WIDTH - KEY_WIDTH).
const KEY_X: f64 = 770.0;

/// A failure's timeline keys each leader band and each fault lane by name, their swatches never
/// share a colour, and each lane and band is labelled in the plot too.
#[test]
fn a_failure_timeline_tells_leader_bands_and_fault_lanes_apart() {
    let sweep = report(&[SMOKE, PLANTED]);
    let timelines: Vec<_> = sweep.charts().into_iter().filter(|c| c.file.starts_with("failure-")).collect();
    assert!(!timelines.is_empty(), "the fixture has failure timelines");
    for chart in timelines {
        let marks = marks(&chart.svg.expect("drawn"));
        let (mut leaders, mut faults) = (Vec::new(), Vec::new());
        let mut swatch = None;
        for mark in &marks {
            match mark {
                Mark::Rect(x, fill) if *x >= KEY_X => swatch = Some(fill.clone()),
                Mark::Text(x, _, text) if *x >= KEY_X => {
                    let mut fill =
                        || swatch.take().unwrap_or_else(|| panic!("{}: key {text:?} has no swatch", chart.file));
                    if let Some(node) = text.strip_prefix("leader ") {
                        leaders.push((node.trim_end_matches(" (band)").to_string(), fill()));
                    } else if let Some(kind) = text.strip_prefix("fault lane: ") {
                        faults.push((kind.to_string(), fill()));
                    }
                }
                _ => {}
            }
        }
        assert!(!leaders.is_empty() && !faults.is_empty(), "{}: leaders {leaders:?}, faults {faults:?}", chart.file);
        for (node, fill) in &leaders {
            assert!(
                faults.iter().all(|(_, f)| f != fill),
                "{}: leader {node} and a fault lane share {fill}: {faults:?}",
                chart.file
            );
        }
        let mut fills: Vec<&String> = leaders.iter().chain(&faults).map(|(_, f)| f).collect();
        fills.sort();
        fills.dedup();
        assert_eq!(fills.len(), leaders.len() + faults.len(), "{}: one colour per key", chart.file);
        let plot: Vec<&str> = marks
            .iter()
            .filter_map(|m| match m {
                Mark::Text(x, _, t) if *x < KEY_X => Some(t.as_str()),
                _ => None,
            })
            .collect();
        for (kind, _) in &faults {
            assert!(plot.contains(&kind.as_str()), "{}: the {kind} lane has no label in the plot", chart.file);
        }
        for (node, _) in &leaders {
            let band = format!("{node} t");
            assert!(plot.iter().any(|t| t.starts_with(&band)), "{}: no band labelled {band}..", chart.file);
        }
    }
}

/// Numbers shown along one axis (the texts sharing an x, or sharing a y) never repeat: an axis
/// reading `0 0 0 1 1 1` says nothing. The failure timeline is drawn again with a peak of one
/// task per second, where whole numbers would repeat.
#[test]
fn no_chart_axis_repeats_a_tick_label() {
    let mut sweep = report(&[SMOKE, PLANTED]);
    let detail = sweep.charts.failure_details.values_mut().next().expect("a failure detail");
    let series = detail.series.as_mut().expect("its series");
    series.pending.iter_mut().for_each(|n| *n = 0);
    series.pending[3] = series.bucket_ms / 1000;
    let charts = sweep.charts();
    assert!(charts.iter().any(|c| c.file.starts_with("failure-")), "a failure timeline is drawn");
    for chart in charts {
        let numbers: Vec<(f64, f64, String)> = marks(&chart.svg.expect("drawn"))
            .into_iter()
            .filter_map(|m| match m {
                Mark::Text(x, y, t) if !t.is_empty() && t.parse::<f64>().is_ok() => Some((x, y, t)),
                _ => None,
            })
            .collect();
        let mut axes = 0;
        type Same = fn(&(f64, f64, String), &(f64, f64, String)) -> bool;
        let same_x: Same = |a, b| a.0 == b.0;
        let same_y: Same = |a, b| a.1 == b.1;
        for same in [same_x, same_y] {
            for n in &numbers {
                let axis: Vec<&str> = numbers.iter().filter(|m| same(m, n)).map(|m| m.2.as_str()).collect();
                if axis.len() < 3 {
                    continue;
                }
                axes += 1;
                let mut distinct = axis.clone();
                distinct.sort_unstable();
                distinct.dedup();
                assert_eq!(distinct.len(), axis.len(), "{}: an axis reads {axis:?}", chart.file);
            }
        }
        assert!(axes > 0, "{}: no numbered axis found", chart.file);
    }
}

/// A sweep of 21 seeds (the failing fixture scenario and six passing copies of smoke) gives a
/// small page: passing scenarios are folded with their charts linked, not inlined, so each adds
/// a few kilobytes and no inline chart. (Before folding, a sweep like it gave a page of 46
/// inline charts and 1.2 MB.)
#[test]
fn passing_scenarios_are_folded_and_the_page_stays_small() {
    let smoke = std::fs::read_to_string(SMOKE).expect("fixture");
    let copies: Vec<Temp> = (0..6)
        .map(|i| {
            let renamed: Vec<String> = smoke
                .lines()
                .map(|line| {
                    let mut value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
                    value["scenario"] = format!("smoke-{i}").into();
                    value.to_string()
                })
                .collect();
            temp(&format!("smoke-{i}.jsonl"), &(renamed.join("\n") + "\n"))
        })
        .collect();
    let mut files: Vec<&str> = copies.iter().map(|t| t.to_str().expect("utf-8")).collect();
    files.push(PLANTED);
    let sweep = report(&files);
    let seeds: u64 = sweep.report.scenarios.iter().map(|s| s.seeds).sum();
    assert_eq!((sweep.report.scenarios.len(), seeds), (7, 21), "the sweep the test means");
    let charts = sweep.charts();
    let html = sweep.to_html(&charts);
    let small = report(&[PLANTED]);
    let small_html = small.to_html(&small.charts());
    assert_eq!(
        html.matches("<svg").count(),
        small_html.matches("<svg").count(),
        "a passing scenario adds no inline chart"
    );
    for i in 0..6 {
        assert!(html.contains(&format!("<details id=\"scenario-smoke-{i}\">")), "smoke-{i} is folded");
    }
    let per_passing = (html.len() - small_html.len()) / 6;
    assert!(per_passing < 8_000, "each passing scenario adds {per_passing} bytes to the page");
    assert!(html.len() < 300_000, "the page is {} bytes", html.len());
}
