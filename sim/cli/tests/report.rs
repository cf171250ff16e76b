//! The simulator's result lines and the report that reads them: a real `allocsim run --json`
//! sweep is read by `swarmalloc_reports` (the types are the simulator's own) and writes back
//! the same. Then `allocsim report` and `allocsim check`
//! end to end: exit codes, the files they write, and bad input that leaves old output alone.

mod common;

use std::path::{Path, PathBuf};

use swarmalloc_reports::{Line, Place, SweepOptions, parse_line, read_sweep};

fn allocsim(args: &[&str]) -> (i32, String, String) {
    let out = common::allocsim(args);
    (out.status.code().unwrap_or(-1), common::utf8(&out.stdout), common::utf8(&out.stderr))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("allocsim-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Runs a smoke sweep through the CLI and returns its results file.
fn smoke_sweep(dir: &Path) -> PathBuf {
    let (code, stdout, stderr) = allocsim(&["run", "smoke", "--seeds", "0..3", "--json", "--jobs", "2"]);
    assert_eq!(code, 0, "{stderr}");
    let file = dir.join("results.jsonl");
    std::fs::write(&file, stdout).expect("write results");
    file
}

#[test]
fn a_real_sweep_reads_back_field_for_field() {
    let dir = temp_dir("schema");
    let file = smoke_sweep(&dir);
    let text = std::fs::read_to_string(&file).expect("results");
    let mut results = 0;
    for (i, line) in text.lines().enumerate() {
        let place = Place { file: file.clone(), line: i + 1 };
        let read = parse_line(line, &place).unwrap_or_else(|e| panic!("the report cannot read line {}: {e}", i + 1));
        let Line::Result(read) = read else { continue };
        results += 1;
        let r = read.series.as_ref().expect("series");
        assert!(!r.leaders.is_empty() && !r.restores.is_empty() && !r.pools.is_empty(), "seed {}: {r:?}", read.seed);
        assert_eq!(r.latency.count, read.metrics.tasks_pending, "seed {}: one latency per task to PENDING", read.seed);
        let again = serde_json::to_string(&*read).expect("a result line writes");
        let reread = parse_line(&again, &place).expect("the line written back reads");
        assert_eq!(reread, Line::Result(read.clone()), "seed {}: the line as read writes back the same", read.seed);
    }
    assert_eq!(results, 3);
    let sweep = read_sweep(&[file], &SweepOptions::default(), &mut |_| {}).expect("the report reads the sweep");
    assert_eq!((sweep.report.totals.seeds, sweep.report.totals.passed), (3, 3));
    assert_eq!(sweep.report.wall_clock.sweeps.first().and_then(|s| s.jobs), Some(2), "the summary line's jobs");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_writes_its_files_and_bad_input_keeps_the_old_ones() {
    let dir = temp_dir("cli");
    let file = smoke_sweep(&dir);
    let out = dir.join("out");
    let (code, stdout, stderr) = allocsim(&["report", path(&file), "--out", path(&out)]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("PASS: 3 seeds of 1 scenarios: 3 passed, 0 failed"), "{stdout}");
    for name in ["report.json", "index.html", "charts/latency.svg", "charts/throughput-00-smoke.svg"] {
        assert!(out.join(name).is_file(), "{name} was not written: {stdout}");
    }
    let (code, json, _) = allocsim(&["report", path(&file), "--out", path(&out), "--json"]);
    assert_eq!(code, 0);
    assert_eq!(json, std::fs::read_to_string(out.join("report.json")).expect("written"), "--json prints report.json");
    let page = std::fs::read_to_string(out.join("index.html")).expect("written");
    let corrupt = dir.join("corrupt.jsonl");
    std::fs::write(&corrupt, "{\"scenario\": \"smoke\", \"seed\": \n").expect("write");
    let (code, _, stderr) = allocsim(&["report", path(&file), path(&corrupt), "--out", path(&out)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with(&format!("allocsim: {}: line 1 column ", corrupt.display())), "{stderr}");
    assert_eq!(std::fs::read_to_string(out.join("index.html")).expect("kept"), page, "the old report is kept");
    let (code, _, stderr) = allocsim(&["report", path(&file)]);
    assert_eq!(code, 2);
    assert!(stderr.contains("required arguments were not provided") && stderr.contains("--out <DIR>"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_exits_by_verdict_and_writes_json_and_a_page() {
    let dumps = common::repo().join("reports/tests/dumps");
    let dir = temp_dir("check");
    let out = dir.join("out");
    let (code, stdout, stderr) = allocsim(&["check", path(&dumps.join("clean")), "--out", path(&out)]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("CLEAN: no problems"), "{stdout}");
    let (code, stdout, _) = allocsim(&["check", path(&dumps.join("duplicate_address.json")), "--out", path(&out)]);
    assert_eq!(code, 1);
    assert!(stdout.contains("PROBLEMS: 1 found (1 duplicate_address)"), "{stdout}");
    let json = std::fs::read_to_string(out.join("check.json")).expect("written");
    assert!(json.contains("\"kind\": \"duplicate_address\""), "{json}");
    let page = std::fs::read_to_string(out.join("index.html")).expect("written");
    assert!(page.contains("<strong>PROBLEMS</strong>") && page.contains("id=\"problems\""), "{page}");
    let malformed = dumps.join("malformed/bad_json.json");
    let (code, _, stderr) = allocsim(&["check", path(&malformed), "--out", path(&out)]);
    assert_eq!(code, 2);
    assert!(stderr.contains(": line 5 column 5, in [0]: invalid JSON: key must be a string"), "{stderr}");
    assert_eq!(std::fs::read_to_string(out.join("index.html")).expect("kept"), page, "the old page is kept");
    let _ = std::fs::remove_dir_all(&dir);
}
