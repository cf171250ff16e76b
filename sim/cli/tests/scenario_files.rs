//! Scenario files through the command line: replay reproduces a run's trace hash; decompile
//! and shrink write files that replay the failure, never over their input; seed ranges; names
//! that would write outside the failures directory are refused.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{TempDir, allocsim, library_dir, utf8};
use swarmalloc_sim::scenario_file;
use swarmalloc_sim::shrink::{Signature, is_explicit};
use swarmalloc_sim::{RunOptions, run};

/// Assertion 1 fails; without the step creating network x, assertion 0 fails instead (see
/// `sim/tests/scenarios.rs`).
const TWO_ASSERTIONS: &str = include_str!("../../tests/fixtures/two-assertions.toml");
/// A random workload of more than 100 operations whose end assertion fails at `FAILING_SEED`.
const FAILING_RANDOM_RUN: &str = include_str!("../../tests/fixtures/too-small.toml");
const FAILING_SEED: u64 = 4;

#[test]
fn replay_of_a_scenario_file_at_a_seed_gives_the_same_trace_hash_as_its_run() {
    let path = library_dir().join("b02-vip-not-restored.toml");
    let path = path.to_str().expect("utf-8 path");
    let hash = |out: Output| -> String {
        assert_eq!(out.status.code(), Some(0), "{}", utf8(&out.stderr));
        let line = utf8(&out.stdout);
        let result: serde_json::Value = serde_json::from_str(line.lines().next().expect("a line")).expect("JSON");
        result["trace_hash"].as_str().expect("a trace hash").to_string()
    };
    let ran = hash(allocsim(&["run", path, "--seed", "7", "--json"]));
    let replayed = hash(allocsim(&["replay", path, "--seed", "7", "--json"]));
    assert_eq!(ran, replayed);
}

#[test]
fn the_cli_decompiles_and_shrinks_a_failure_file_and_both_outputs_replay_it() {
    let dir = TempDir::new("shrink-cli");
    let source = dir.file("too-small.toml", FAILING_RANDOM_RUN);
    let failures = dir.0.join("failures");
    let seed = FAILING_SEED.to_string();
    let out = allocsim(&[
        "run",
        source.to_str().expect("utf-8"),
        "--seed",
        &seed,
        "--failures",
        failures.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", utf8(&out.stdout));
    let failure = failures.join(format!("too-small-{seed}.json"));
    assert!(utf8(&out.stdout).contains(&format!("replay: allocsim replay {}", failure.display())));
    let failure = failure.to_str().expect("utf-8");

    let out = allocsim(&["decompile", failure]);
    assert_eq!(out.status.code(), Some(0), "{}", utf8(&out.stdout));
    let decompiled = failures.join(format!("too-small-{seed}.decompiled.toml"));
    let explicit = scenario_file::load(&decompiled).expect("the decompiled file parses");
    assert!(is_explicit(&explicit) && explicit.steps.len() > 100);

    let out = allocsim(&["shrink", failure, "--jobs", "2"]);
    let stdout = utf8(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let shrunk_path = failures.join(format!("too-small-{seed}.shrunk.toml"));
    let shrunk = scenario_file::load(&shrunk_path).expect("the shrunk file parses");
    assert!((1..=10).contains(&shrunk.steps.len()), "{stdout}");
    let counts = format!("steps: {} -> {}", explicit.steps.len(), shrunk.steps.len());
    assert!(stdout.contains(&counts), "expected {counts:?} in:\n{stdout}");
    assert!(stdout.contains(&format!("replay: allocsim replay {}", shrunk_path.display())), "{stdout}");

    // Both files replay the failure on their own: the seed is written in them.
    for path in [&decompiled, &shrunk_path] {
        let out = allocsim(&["replay", path.to_str().expect("utf-8")]);
        let stdout = utf8(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{}: {stdout}", path.display());
        assert!(stdout.contains("violation: assertion"), "{}: {stdout}", path.display());
    }
}

#[test]
fn the_cli_shrinks_to_a_file_that_replays_the_same_failure_and_counts_its_runs() {
    let dir = TempDir::new("shrink-same-failure");
    let (source, out) = shrink_two_assertions(&dir, &["--jobs", "2"]);
    let stdout = utf8(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", utf8(&out.stderr));
    assert!(stdout.contains("(assertion expect.assert[1] [network]) in "), "{stdout}");
    let runs: usize = stdout
        .split(") in ")
        .nth(1)
        .and_then(|rest| rest.split(" runs").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no run count in {stdout}"));
    // The input, then each step left out alone (both fail differently or pass): 3 runs.
    assert_eq!(runs, 3, "{stdout}");
    let shrunk = dir.0.join("two.shrunk.toml");
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .expect("readable")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".") || n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    let out = allocsim(&["replay", shrunk.to_str().expect("utf-8"), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", utf8(&out.stderr));
    let line: serde_json::Value =
        serde_json::from_str(utf8(&out.stdout).lines().next().expect("a line")).expect("JSON");
    let replayed: swarmalloc_sim::Violation = serde_json::from_value(line["violation"].clone()).expect("a violation");
    let original = run(&scenario_file::load(&source).expect("valid"), 0, &RunOptions::default());
    let original = original.violation.expect("it fails");
    assert!(Signature::of(&original).matches(&replayed), "{original}\nreplayed: {replayed}");
}

#[test]
fn shrink_refuses_an_unknown_checker_and_lists_the_known_ones() {
    let dir = TempDir::new("shrink-bogus-checker");
    let (_, out) = shrink_two_assertions(&dir, &["--checker", "bogus"]);
    let stderr = utf8(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid value 'bogus' for '--checker <NAME>'"), "{stderr}");
    for checker in swarmalloc_sim::scenario::Checker::names() {
        assert!(stderr.contains(checker), "{checker} is not listed: {stderr}");
    }
    assert!(out.stdout.is_empty() && !dir.0.join("two.shrunk.toml").exists(), "nothing ran, nothing written");
}

#[test]
fn decompile_and_shrink_refuse_to_write_over_their_input_however_it_is_spelled() {
    let dir = TempDir::new("shrink-overwrite");
    let source = dir.file("two.toml", TWO_ASSERTIONS);
    std::fs::create_dir_all(dir.0.join("sub")).expect("mkdir");
    std::os::unix::fs::symlink(&source, dir.0.join("link.toml")).expect("symlink");
    let failures = dir.0.join("failures");
    let out = allocsim(&["run", source.to_str().expect("utf-8"), "--failures", failures.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", utf8(&out.stdout));
    let failure = failures.join("two-assertions-0.json");
    let failure_text = std::fs::read_to_string(&failure).expect("the failure file");

    let spellings = [dir.0.join("sub/../two.toml"), dir.0.join("link.toml")];
    for spelled in &spellings {
        let out = allocsim(&["shrink", source.to_str().expect("utf-8"), "--out", spelled.to_str().expect("utf-8")]);
        let stderr = utf8(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", spelled.display());
        assert!(stderr.contains("refusing to overwrite"), "{stderr}");
        assert_eq!(std::fs::read_to_string(&source).expect("still there"), TWO_ASSERTIONS);
    }
    let spelled = failures.join("../failures/two-assertions-0.json");
    let out = allocsim(&["decompile", failure.to_str().expect("utf-8"), "--out", spelled.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", utf8(&out.stderr));
    assert_eq!(std::fs::read_to_string(&failure).expect("still there"), failure_text);
    // A directory that does not exist is refused before anything runs.
    let nowhere = dir.0.join("missing/out.toml");
    let out = allocsim(&["shrink", source.to_str().expect("utf-8"), "--out", nowhere.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", utf8(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", utf8(&out.stdout));
}

#[test]
fn seeds_run_up_to_u64_max_and_an_empty_range_is_a_usage_error() {
    let dir = TempDir::new("seed-ranges");
    let source = dir.file("quick.toml", &quick_pass());
    let source = source.to_str().expect("utf-8");
    let out = allocsim(&["run", source, "--seed", "18446744073709551615"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", utf8(&out.stdout), utf8(&out.stderr));
    assert!(utf8(&out.stdout).contains("seed 18446744073709551615 PASS"), "{}", utf8(&out.stdout));

    let out = allocsim(&["run", source, "--seeds", "18446744073709551614..=18446744073709551615", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", utf8(&out.stderr));
    let mut seeds: Vec<u64> = utf8(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["seed"].as_u64())
        .collect();
    seeds.sort_unstable(); // lines come in the order runs finish, --jobs at a time
    assert_eq!(seeds, [u64::MAX - 1, u64::MAX]);

    for empty in ["5..5", "7..3", "7..=3", "0..0", "3..", "..3", "1..18446744073709551616", "a..b", "5"] {
        let out = allocsim(&["run", source, "--seeds", empty]);
        let stderr = utf8(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--seeds {empty}: {stderr}");
        assert!(stderr.contains(&format!("invalid value '{empty}' for '--seeds")), "--seeds {empty}: {stderr}");
        assert!(out.stdout.is_empty(), "--seeds {empty}: nothing runs");
    }
}

#[test]
fn a_failure_file_whose_scenario_name_is_not_a_plain_file_name_is_refused() {
    let dir = TempDir::new("bad-name-failure");
    let source = dir.file("two.toml", TWO_ASSERTIONS);
    let failures = dir.0.join("failures");
    let out = allocsim(&["run", source.to_str().expect("utf-8"), "--failures", failures.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", utf8(&out.stdout));
    let failure = failures.join("two-assertions-0.json");
    let text = std::fs::read_to_string(&failure).expect("the failure file");
    std::fs::write(&failure, text.replacen("\"two-assertions\"", "\"../../escaped\"", 1)).expect("rewrite");
    for command in ["replay", "shrink", "decompile"] {
        let out = allocsim(&[command, failure.to_str().expect("utf-8")]);
        let stderr = utf8(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains(&format!("{}: scenario.name = \"../../escaped\": expected", failure.display())),
            "{stderr}"
        );
    }
}

/// `allocsim shrink` of `TWO_ASSERTIONS`, written to DIR/two.toml, with more arguments.
fn shrink_two_assertions(dir: &TempDir, more: &[&str]) -> (PathBuf, Output) {
    let source = dir.file("two.toml", TWO_ASSERTIONS);
    let out = allocsim(&[&["shrink", source.to_str().expect("utf-8")], more].concat());
    (source, out)
}

/// A scenario that passes, in a few simulated seconds: the steps of `TWO_ASSERTIONS` alone.
fn quick_pass() -> String {
    let steps = TWO_ASSERTIONS.split("[[expect.assert]]").next().expect("the part before the assertions");
    steps.replace("two-assertions", "quick-pass")
}

#[test]
fn a_scenario_named_to_escape_the_failures_directory_writes_nothing() {
    let dir = TempDir::new("bad-name-run");
    let escaping = TWO_ASSERTIONS.replace("name = \"two-assertions\"", "name = \"../escaped\"");
    let source = dir.file("escape.toml", &escaping);
    let failures = dir.0.join("failures");
    let out = allocsim(&["run", source.to_str().expect("utf-8"), "--failures", failures.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", utf8(&out.stdout));
    assert!(!dir.0.join("escaped-0.json").exists() && !failures.exists());
}

/// A malformed file: one line naming the file, line, column, key and what was expected, then
/// the source line with a mark under the key (miette); a binary or non-UTF-8 file gets a clear
/// message; exit 2, no usage, nothing run.
#[test]
fn a_malformed_scenario_file_shows_where_with_the_source_line_exit_2() {
    let dir = TempDir::new("malformed");
    let path = dir.file("unknown-key.toml", "name = \"x\"\n[cluster]\nduration = \"10s\"\nmanagerz = 3\n");
    let out = allocsim(&["run", path.to_str().expect("utf-8")]);
    let stderr = utf8(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let error = scenario_file::load(&path).expect_err("an unknown key");
    let mut lines = stderr.lines();
    assert_eq!(lines.next(), Some(format!("allocsim: {error}").as_str()), "the summary line first: {stderr}");
    assert!(stderr.contains(":4:1: key `managerz`"), "{stderr}");
    let rest: Vec<&str> = lines.collect();
    assert!(rest.iter().any(|l| l.contains("4 │ managerz = 3")), "the source line: {stderr}");
    assert!(rest.iter().any(|l| l.contains("╰── key `managerz`")), "a mark under the key: {stderr}");
    assert!(!stderr.contains("Usage"), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", utf8(&out.stdout));

    let binary = dir.path("binary.toml");
    std::fs::write(&binary, b"name = \"x\"\0\x01\x02").expect("write");
    let latin1 = dir.path("latin1.toml");
    std::fs::write(&latin1, b"name = \"caf\xe9\"\n").expect("write");
    for (file, says) in [
        (&binary, "a binary file (it holds NUL bytes), not a scenario file: expected TOML text".to_string()),
        (&latin1, format!("{}:1:12: not UTF-8 text here", latin1.display())),
    ] {
        let out = allocsim(&["run", file.to_str().expect("utf-8")]);
        let stderr = utf8(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.starts_with("allocsim: ") && stderr.contains(&says), "{stderr}");
    }
}
