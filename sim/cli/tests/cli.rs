//! The command line end to end: the same trace hash across processes, exit codes, JSON output,
//! and a failure file that replays.

mod common;

use std::sync::Arc;

use common::{TempDir, allocsim, utf8};
use swarmalloc_sim::check::Breach;
use swarmalloc_sim::world::StoreHook;
use swarmalloc_sim::{FailureFile, RunOptions, Scenario, check_determinism, run};

#[test]
fn a_seed_gives_the_same_trace_in_process_and_across_processes() {
    let scenario = Scenario::smoke();
    let hash = check_determinism(&scenario, 3, &RunOptions::default()).expect("two runs of seed 3 agree");
    let out = allocsim(&["run", "smoke", "--seed", "3", "--json"]);
    let stdout = utf8(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let result: serde_json::Value = serde_json::from_str(stdout.lines().next().expect("a line")).expect("json");
    assert_eq!(result["trace_hash"].as_str(), Some(hash.as_str()), "{stdout}");
}

#[test]
fn bad_input_exits_2_with_a_message_naming_it() {
    for args in [
        vec!["run", "nope"],
        vec!["run", "scenarios/x.toml"],
        vec!["run", "--seeds", "5..5"],
        vec!["run", "--jobs", "0"],
        vec!["frobnicate"],
        vec!["replay", "/nonexistent/failure.json"],
    ] {
        let out = allocsim(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.starts_with("allocsim: "), "{args:?}: {stderr}");
    }
    let bad = std::env::temp_dir().join(format!("allocsim-bad-{}.json", std::process::id()));
    std::fs::write(&bad, r#"{"seed": 1}"#).expect("write");
    let out = allocsim(&["replay", bad.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains(bad.to_str().expect("utf-8")) && stderr.contains("missing field"), "{stderr}");
    std::fs::remove_file(&bad).expect("clean up");
}

#[test]
fn a_json_sweep_prints_a_result_per_seed_and_a_summary() {
    let out = allocsim(&["run", "smoke", "--seeds", "0..2", "--jobs", "2", "--json"]);
    let stdout = utf8(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let mut seeds: Vec<u64> = lines[..2].iter().map(|l| l["seed"].as_u64().expect("seed")).collect();
    seeds.sort();
    assert_eq!(seeds, vec![0, 1]);
    assert_eq!(lines[2]["failed"].as_u64(), Some(0), "{stdout}");
    assert_eq!(lines[2]["seeds"].as_u64(), Some(2), "{stdout}");
}

#[test]
fn a_planted_checker_fires_its_failure_file_replays_and_decompile_writes_only_what_fails_the_same_way() {
    let scenario = Scenario::smoke();
    let options = RunOptions { hooks: vec![planted()], ..Default::default() };
    let result = run(&scenario, 5, &options);
    let violation = result.violation.clone().expect("the planted checker fires");
    assert_eq!(violation.checker, "planted_at_most_3_tasks");
    assert!(violation.raft_index > 0 && violation.t_ms > 0, "{violation:?}");
    let dir = std::env::temp_dir().join(format!("allocsim-test-{}", std::process::id()));
    let path = FailureFile::new(&scenario, &result).write(&dir).expect("write the failure file");
    let file = FailureFile::read(&path).expect("read it back");
    assert_eq!(file.seed, 5);
    assert_eq!(file.violation.as_ref(), Some(&violation));
    let replayed = run(&file.scenario, file.seed, &options);
    assert_eq!(replayed.trace_hash, file.trace_hash);
    assert_eq!(replayed.violation, Some(violation));
    // Without the planted checker the same seed passes, and the CLI says its hash differs:
    // exit 3, not 1 (which says the failure was reproduced).
    let out = allocsim(&["replay", path.to_str().expect("utf-8 path")]);
    let stdout = utf8(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("DIVERGED"), "{stdout}");
    // Decompiling it gives a run that passes: no file is written.
    let out = allocsim(&["decompile", path.to_str().expect("utf-8 path")]);
    let stdout = utf8(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("not written"), "{stdout}");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("listable")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    assert_eq!(names, [path.file_name().expect("a name").to_str().expect("utf-8")], "only the failure file");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

/// A deliberately wrong checker: no service may ever have more than 3 tasks. It fires on the
/// smoke workload; the failure file it writes must replay to the same trace hash.
fn planted() -> StoreHook {
    Arc::new(|store: &swarmalloc_sim::store::Store| {
        let mut per_service = std::collections::BTreeMap::new();
        for task in store.tasks.values() {
            *per_service.entry(task.service_id.clone()).or_insert(0u32) += 1;
        }
        per_service.into_iter().find(|(_, n)| *n > 3).map(|(service, n)| {
            Breach::planted("planted_at_most_3_tasks", vec![format!("{service:?}")], format!("{n} tasks"))
        })
    })
}

/// What people expect of a command line: `--help` for every subcommand, `--version`,
/// `--flag=value`, a suggestion for a typo, and a usage mistake as one short error with a
/// pointer to the subcommand's help (not the whole usage), exit 2.
#[test]
fn usage_mistakes_get_one_short_error_and_a_pointer_to_the_help() {
    for command in ["run", "replay", "decompile", "shrink", "bench", "report", "check", "live"] {
        let out = allocsim(&[command, "--help"]);
        let stdout = utf8(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{command} --help: {}", utf8(&out.stderr));
        assert!(stdout.contains(&format!("Usage: allocsim {command}")), "{command} --help: {stdout}");
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    for command in ["run", "shrink", "bench"] {
        let help = utf8(&allocsim(&[command, "--help"]).stdout);
        assert!(help.contains(&format!("[default: {cores}]")), "{command}: --jobs defaults to the cores: {help}");
    }
    let out = allocsim(&["--version"]);
    assert_eq!((out.status.code(), utf8(&out.stdout)), (Some(0), format!("allocsim {}\n", env!("CARGO_PKG_VERSION"))));

    let out = allocsim(&["run", "smoke", "--seed=3", "--json"]);
    assert_eq!(out.status.code(), Some(0), "--flag=value: {}", utf8(&out.stderr));

    for (args, says) in [
        (vec!["run", "--jsno"], "tip: a similar argument exists: '--json'"),
        (vec!["repaly", "x.json"], "tip: a similar subcommand exists: 'replay'"),
        (vec!["run", "--seed", "1", "--seeds", "1..3"], "cannot be used with"),
        (vec!["run", "--jobs", "0"], "invalid value '0' for '--jobs <J>': expected at least 1"),
        (vec!["live", "smoke", "--host", "x", "--docker-host"], "cannot be used with"),
    ] {
        let out = allocsim(&args);
        let stderr = utf8(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("allocsim: ") && stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("Usage:") && stderr.lines().count() <= 5, "{args:?}: a short error: {stderr}");
        assert!(stderr.trim_end().ends_with("--help'."), "{args:?}: a pointer to the help: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing runs");
    }
    let stderr = utf8(&allocsim(&["run", "--jsno"]).stderr);
    assert!(stderr.contains("try 'allocsim run --help'"), "{stderr}");
}

/// `allocsim live` on a swarm it cannot reach says where it looked, exit 2, before any step.
#[test]
fn live_refuses_a_host_that_is_no_unix_socket() {
    let out = allocsim(&["live", "smoke", "--host", "tcp://10.0.0.1:2375"]);
    let stderr = utf8(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--host is \"tcp://10.0.0.1:2375\": expected unix:///path/to/docker.sock"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// A built-in scenario replays at a seed like a scenario file: the same trace hash as its run.
#[test]
fn replay_of_a_built_in_scenario_at_a_seed_gives_its_runs_trace_hash() {
    let hash = |args: &[&str]| {
        let out = allocsim(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", utf8(&out.stderr));
        let stdout = utf8(&out.stdout);
        let line: serde_json::Value = serde_json::from_str(stdout.lines().next().expect("a line")).expect("JSON");
        line["trace_hash"].as_str().expect("a trace hash").to_string()
    };
    let ran = hash(&["run", "smoke", "--seed", "7", "--json"]);
    assert_eq!(hash(&["replay", "smoke", "--seed", "7", "--json"]), ran);
    let library = common::library_dir();
    let out = allocsim(&["replay", library.to_str().expect("utf-8"), "--seed", "7"]);
    let stderr = utf8(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("replay runs one scenario"), "{stderr}");
}

/// SIGINT or SIGTERM (Ctrl-C, a CI time-out) stops a sweep taking new seeds; what ran gets its
/// summary line, marked interrupted, the exit code is 128 + the signal, and the report of that
/// output says INCOMPLETE and exits 1.
#[test]
fn an_interrupted_sweep_writes_a_summary_of_what_it_ran() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = common::TempDir::new("interrupted");
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_allocsim"))
            .args(["run", "smoke", "--seeds", "0..100000", "--jobs", "1", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start allocsim");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut lines = Vec::new();
        while lines.len() < 2 {
            let mut line = String::new();
            assert!(stdout.read_line(&mut line).expect("readable") > 0, "allocsim ended early");
            lines.push(line);
        }
        let kill = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status();
        assert!(kill.expect("kill runs").success());
        let rest: Vec<String> = stdout.lines().map(|l| l.expect("utf-8") + "\n").collect();
        lines.extend(rest);
        let status = child.wait().expect("allocsim ends");
        assert_eq!(status.code(), Some(code), "SIG{signal}");
        let summary: serde_json::Value = serde_json::from_str(lines.last().expect("a last line")).expect("JSON");
        assert_eq!(summary["interrupted"], true, "SIG{signal}: {summary}");
        assert_eq!(summary["seeds"].as_u64(), Some(lines.len() as u64 - 1), "SIG{signal}: every seed that ran");
        let results = dir.file(&format!("{signal}.jsonl"), &lines.concat());
        let out = dir.path(&format!("{signal}-report"));
        let report = allocsim(&["report", results.to_str().expect("utf-8"), "--out", out.to_str().expect("utf-8")]);
        let text = utf8(&report.stdout);
        assert_eq!(report.status.code(), Some(1), "{text}{}", utf8(&report.stderr));
        assert!(text.contains("INCOMPLETE:") && text.contains("was interrupted after"), "{text}");
    }
}

/// `allocsim run --seed N` says what it simulated, not only PASS: the cluster, services and
/// tasks, the simulated time, the faults in words, the checkers that watched, what to try next.
#[test]
fn a_single_run_says_what_was_simulated_and_what_to_try_next() {
    let out = allocsim(&["run", "smoke", "--seed", "1"]);
    let stdout = utf8(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", utf8(&out.stderr));
    let line = |start: &str| {
        stdout.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no {start:?} line in:\n{stdout}"))
    };
    assert!(line("cluster: ").contains("managers (raft)"), "{stdout}");
    let work = line("work: ");
    assert!(work.contains(" services and ") && work.contains(" tasks created"), "{stdout}");
    assert!(!work.contains("work: 0 services"), "the smoke workload creates services: {stdout}");
    assert!(line("simulated time: ").contains(" s"), "{stdout}");
    let faults = line("faults");
    assert!(faults.contains("about every") || faults.contains("% of"), "faults in words: {stdout}");
    assert!(!faults.contains("1/"), "not the rate notation: {stdout}");
    assert!(line("checkers (").contains("duplicate_live_address"), "{stdout}");
    assert!(line("next: ").contains("allocsim run smoke --seeds 0..100"), "{stdout}");
    assert_eq!(line("verdict: "), "verdict: PASS (every checker held)");
}

/// What users tripped over: the `allocsim replay ...` commands the tool prints failed with
/// "command not found" because the README used the binary before installing it.
#[test]
fn the_readme_installs_allocsim_before_it_first_runs_it() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README.md");
    let first_use = readme.lines().position(|l| l.contains("allocsim run") || l.contains("allocsim replay"));
    let install = readme.lines().position(|l| l.contains("cargo install --path sim/cli"));
    match (install, first_use) {
        (Some(install), Some(first_use)) => {
            assert!(install <= first_use, "README.md runs allocsim before installing it")
        }
        other => panic!("README.md should install allocsim (cargo install --path sim/cli) and then run it: {other:?}"),
    }
}

/// `--trace FILE` replaces FILE whole (a temporary next to it, then a rename): a reader that
/// had the old file open (here: a hard link to it) still sees the old trace, the new file
/// holds the run's whole trace, and no temporary is left beside it.
#[test]
fn trace_is_written_whole_by_rename_and_leaves_no_temporary() {
    let dir = TempDir::new("trace");
    let trace = dir.file("trace.jsonl", "an older trace\n");
    let old_reader = dir.path("old-reader");
    std::fs::hard_link(&trace, &old_reader).expect("hard link");
    let out = allocsim(&["run", "smoke", "--seed", "2", "--json", "--trace", trace.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", utf8(&out.stderr));

    let expected = run(&Scenario::smoke(), 2, &RunOptions { keep_trace: true, ..Default::default() }).trace;
    let written = std::fs::read_to_string(&trace).expect("the trace");
    assert!(written.ends_with('\n'), "the trace ends with its last line");
    assert_eq!(written.lines().collect::<Vec<_>>(), expected, "the whole trace of seed 2");
    let old = std::fs::read_to_string(&old_reader).expect("the old file");
    assert!(old == "an older trace\n", "the trace was rewritten in place, not replaced: {} bytes", old.len());
    let mut names: Vec<String> = std::fs::read_dir(&dir.0)
        .expect("listable")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    assert_eq!(names, ["old-reader", "trace.jsonl"], "no temporary left next to the trace");
}
