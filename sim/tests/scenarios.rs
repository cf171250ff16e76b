//! The scenario library and the scenario file format: every library file passes on fixed
//! seeds and writes back to itself; a file with a syntax error, an unknown key or a wrong type
//! gives the documented error; decompile and shrink turn a failing random run of 100+ steps
//! into a small explicit scenario that fails the same way. (The same through the command line:
//! `sim/cli/tests/scenario_files.rs`.)

use std::path::{Path, PathBuf};

use swarmalloc_sim::scenario_file::{self, ScenarioError};
use swarmalloc_sim::shrink::{Limits, Signature, decompile, is_explicit, shrink};
use swarmalloc_sim::{RunOptions, Scenario, run, sweep};

/// The general workloads of the library (issue 4); the bug-class files are listed in
/// `BUG_CLASSES`.
const WORKLOADS: [&str; 9] = [
    "attachable",
    "dual-stack",
    "ingress-port-churn",
    "leader-flapping",
    "node-drain",
    "partition-storm",
    "pool-exhaustion",
    "scale-1000",
    "steady-churn",
];

const BUG_CLASSES: [&str; 12] = [
    "b01-restore-allocate-interleaving",
    "b02-vip-not-restored",
    "b03-network-restore-order",
    "b04-leak-when-network-gone",
    "b05-delete-racing-allocation",
    "b06-freed-while-in-use",
    "b07-tasks-stuck-in-new",
    "b08-port-conflicts-after-restart",
    "b09-ingress",
    "b10-odd-stored-state",
    "b11-uncommitted-local-state",
    "b12-nondeterminism",
];

/// Seeds every library scenario must pass in `cargo test` (`allocsim run scenarios/` sweeps more).
const LIBRARY_SEEDS: std::ops::Range<u64> = 0..2;

fn library_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn library() -> Vec<(String, Scenario)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(library_dir())
        .expect("scenarios/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let stem = path.file_stem().expect("a file name").to_string_lossy().into_owned();
            let scenario = scenario_file::load(path).unwrap_or_else(|e| panic!("{e}"));
            (stem, scenario)
        })
        .collect()
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("allocsim-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write a temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_library_holds_every_listed_scenario_and_each_says_what_it_reproduces() {
    let names: Vec<String> = library().into_iter().map(|(stem, _)| stem).collect();
    let mut expected: Vec<String> = WORKLOADS.iter().chain(&BUG_CLASSES).map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected);
    for (stem, scenario) in library() {
        assert_eq!(scenario.name, stem, "scenarios/{stem}.toml: `name` should be the file's name");
        assert!(!scenario.description.is_empty(), "scenarios/{stem}.toml has no description");
        let source = std::fs::read_to_string(library_dir().join(format!("{stem}.toml"))).expect("readable");
        let comment: Vec<&str> = source.lines().take_while(|l| l.starts_with('#')).collect();
        assert!(comment.len() >= 2, "scenarios/{stem}.toml: start with a comment saying what it reproduces");
    }
}

#[test]
fn every_library_scenario_passes_on_fixed_seeds() {
    for (stem, scenario) in library() {
        let results = sweep(&scenario, LIBRARY_SEEDS, 2, &RunOptions::default(), |_| {});
        assert_eq!(results.len() as u64, LIBRARY_SEEDS.end - LIBRARY_SEEDS.start);
        for result in results {
            assert!(
                result.passed(),
                "scenarios/{stem}.toml seed {} failed: {}\nreplay: allocsim run scenarios/{stem}.toml --seed {}",
                result.seed,
                result.violation.as_ref().map(ToString::to_string).unwrap_or_default(),
                result.seed
            );
            // A scenario that never got going proves nothing.
            assert!(result.metrics.tasks_created > 0, "scenarios/{stem}.toml seed {}: no task created", result.seed);
        }
    }
}

#[test]
fn every_library_file_writes_back_to_the_same_scenario() {
    for (stem, scenario) in library() {
        let written = scenario_file::to_toml(&scenario).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let again = scenario_file::parse(&format!("{stem} (written back)"), &written)
            .unwrap_or_else(|e| panic!("{e}\n--- written:\n{written}"));
        assert_eq!(again, scenario, "scenarios/{stem}.toml does not survive a write and a parse:\n{written}");
    }
}

/// One malformed file: its text and the exact error (file, line, column, key, what was expected).
fn check_error(name: &str, text: &str, line: usize, column: usize, key: &str, message: &str) {
    let dir = TempDir::new(name);
    let path = dir.file(&format!("{name}.toml"), text);
    let file = path.display().to_string();
    let error = scenario_file::load(&path).expect_err("a malformed file is refused");
    let expected =
        ScenarioError { file: file.clone(), line, column, key: Some(key.to_string()), message: message.to_string() };
    assert_eq!(error, expected);
}

#[test]
fn a_syntax_error_names_file_line_column_and_key() {
    check_error(
        "syntax",
        "name = \"x\"\n[cluster]\nduration = \"10s\nmanagers = 3\n",
        3,
        16,
        "duration",
        "invalid basic string, expected `\"`",
    );
}

#[test]
fn an_unknown_key_is_refused_with_the_keys_that_are_allowed() {
    check_error(
        "unknown-key",
        "name = \"x\"\n[cluster]\nduration = \"10s\"\nmanagerz = 3\n",
        4,
        1,
        "managerz",
        "unknown field `managerz`, expected one of `managers`, `workers`, `clients`, `duration`, `faults_until`, \
         `batch_max`, `stop_when_all_pending`",
    );
    check_error(
        "unknown-action",
        "name = \"x\"\n[cluster]\nduration = \"10s\"\n\n[[step]]\nat = \"1s\"\nreboot = \"m1\"\n",
        7,
        1,
        "reboot",
        "unknown field `reboot`, expected one of `at`, `create_network`, `remove_network`, `create_service`, \
         `update_service`, `remove_service`, `scale`, `attach`, `detach`, `drain_node`, `remove_node`, `fail_task`, \
         `partition`, `heal`, `kill`, `restart`, `restart_allocator`, `cut_batch`, `ambiguous_proposal`, \
         `drop_proposal`, `drop_messages`, `delay_messages`, `duplicate_messages`, `slow_node`",
    );
}

#[test]
fn a_wrong_type_names_the_key_and_the_type_expected() {
    check_error(
        "wrong-type",
        "name = \"x\"\n[cluster]\nduration = \"10s\"\nmanagers = \"three\"\n",
        4,
        12,
        "managers",
        "invalid type: string \"three\", expected u8",
    );
    check_error(
        "bad-duration",
        "name = \"x\"\n[cluster]\nduration = \"ten seconds\"\n",
        3,
        12,
        "duration",
        "invalid value: string \"ten seconds\", expected a duration such as \"1500ms\", \"2s\", \"1.5s\" or \"1m\"",
    );
    // Inside an inline table of the second step: the innermost key around the value is named.
    check_error(
        "wrong-type-inline",
        "name = \"x\"\n[cluster]\nduration = \"10s\"\n\n[[step]]\nat = \"1s\"\n\n[[step]]\nat = \"2s\"\n\
         kill = { node = \"w1\", restart_after = true }\n",
        10,
        39,
        "restart_after",
        "invalid type: boolean `true`, expected a duration such as \"1500ms\", \"2s\", \"1.5s\" or \"1m\"",
    );
}

#[test]
fn a_value_the_simulator_cannot_use_names_the_files_key_and_where_it_is() {
    let head = "name = \"x\"\n[cluster]\nworkers = 2\nduration = \"10s\"\nfaults_until = \"5s\"\n";
    check_error(
        "out-of-range",
        "name = \"x\"\n[cluster]\nduration = \"10s\"\nmanagers = 9\n",
        4,
        1,
        "cluster.managers",
        "cluster.managers = 9: expected 1 to 7",
    );
    check_error(
        "unknown-node",
        &format!("{head}\n[[step]]\nat = \"1s\"\npartition = {{ node = \"w9\" }}\n"),
        9,
        15,
        "step[0].node",
        "step[0].node = \"w9\": expected \"leader\" or one of m1, m2, m3, w1, w2",
    );
    check_error(
        "late-fault",
        &format!(
            "{head}\n[[step]]\nat = \"1s\"\nscale = {{ service = \"s\", replicas = 1 }}\n\n[[step]]\nat = \"7s\"\nrestart_allocator = true\n"
        ),
        12,
        1,
        "step[1].at",
        "step[1].at = 7000ms: a fault must come before faults_until = 5000ms (everything heals then)",
    );
    check_error(
        "rate-of-a-kind-not-listed",
        &format!("{head}\n[random.faults]\nkinds = [\"leader_partition\"]\nrates = {{ batch_cut = 0.5 }}\n"),
        9,
        11,
        "random.faults.rates.batch_cut",
        "random.faults.rates.batch_cut: expected a kind listed in faults.kinds",
    );
    check_error(
        "duplicate-initial-object",
        &format!(
            "{head}\n[[initial.networks]]\nid = \"a\"\nspec = {{ name = \"a\" }}\n\n[[initial.networks]]\nid = \"a\"\nspec = {{ name = \"a\" }}\n"
        ),
        12,
        1,
        "initial.networks[1].id",
        "initial.networks[1].id = \"a\": listed twice (also initial.networks[0])",
    );
    check_error(
        "two-checks-in-one-assertion",
        &format!(
            "{head}\n[[expect.assert]]\nno_task_in = \"new\"\n\n[[expect.assert]]\nservice = \"web\"\nrunning = 2\ndistinct_addresses = true\n"
        ),
        10,
        1,
        "expect.assert[1]",
        "expect.assert[1]: expected exactly one of `running`, `distinct_addresses`, `vip_unchanged_since`, \
         `no_task_in`, `allocated`/`subnet`, `gone`, `vip_networks`",
    );
    check_error(
        "service-with-a-check-not-about-one",
        &format!("{head}\n[[expect.assert]]\nservice = \"web\"\nno_task_in = \"new\"\n"),
        7,
        1,
        "expect.assert[0]",
        "expect.assert[0]: `service` does not go with this check: expected it only with `running`, \
         `distinct_addresses`, `vip_unchanged_since` or `vip_networks`",
    );
    check_error(
        "fail-task-and-service",
        &format!("{head}\n[[step]]\nat = \"1s\"\nfail_task = {{ task = \"t1\", service = \"web\", slot = 1 }}\n"),
        9,
        1,
        "step[0].fail_task",
        "step[0].fail_task: expected a task, or a service and a slot, not both",
    );
    check_error(
        "fail-task-without-slot",
        &format!("{head}\n[[step]]\nat = \"1s\"\nfail_task = {{ service = \"web\" }}\n"),
        9,
        1,
        "step[0].fail_task.slot",
        "step[0].fail_task.slot = 0: expected a slot of the service, from 1",
    );
    // Values past what a run can do in reasonable time and memory, or that would overflow.
    check_error(
        "too-long",
        "name = \"x\"\n[cluster]\nduration = \"120m\"\n",
        3,
        1,
        "cluster.duration",
        "cluster.duration = 7200000ms: expected at most 1 hour",
    );
    check_error(
        "fault-window-past-the-run",
        &format!("{head}\n[[step]]\nat = \"1s\"\nkill = {{ node = \"w1\", restart_after = \"20s\" }}\n"),
        9,
        23,
        "step[0].restart_after",
        "step[0].restart_after = 20000ms: expected at most duration = 10000ms",
    );
    check_error(
        "too-many-replicas",
        &format!("{head}\n[[step]]\nat = \"1s\"\nscale = {{ service = \"web\", replicas = 1000000 }}\n"),
        9,
        28,
        "step[0].replicas",
        "step[0].replicas = 1000000: expected at most 200000",
    );
    check_error(
        "generator-replicas-overflow",
        &format!(
            "{head}[random.workload]\nnetworks = 3\nservices = 5\nreplicas_min = 1\n\
             replicas_max = 18446744073709551615\nchanges = 20\nops_until = \"5s\"\n"
        ),
        10,
        1,
        "random.workload.replicas_max",
        "random.workload.replicas_max = 18446744073709551615: expected at most 200000",
    );
    check_error(
        "election-ticks",
        &format!("{head}[raft]\nelection_ticks = 100000\n"),
        7,
        1,
        "raft.election_ticks",
        "raft.election_ticks = 100000: expected at most 1000",
    );
    check_error(
        "cluster-config",
        &format!("{head}\n[config]\nsubnet_size = 40\n"),
        8,
        1,
        "config.subnet_size",
        "config.subnet_size = 40: expected a prefix length between 8 (the base 10.0.0.0/8) and 30",
    );
}

/// A random workload of more than 100 operations with faults, plus a service that cannot fit
/// its /29 network, so that tasks stay in NEW and the end assertion fails.
const FAILING_RANDOM_RUN: &str = include_str!("fixtures/too-small.toml");

const FAILING_SEED: u64 = 4;

#[test]
fn decompile_writes_the_seeds_choices_and_the_explicit_run_is_the_same_run() {
    let scenario = scenario_file::parse("too-small.toml", FAILING_RANDOM_RUN).expect("valid");
    let options = RunOptions { keep_trace: true, ..Default::default() };
    let (explicit, original) = decompile(&scenario, FAILING_SEED, &options);
    let violation = original.violation.clone().expect("the random run fails");
    assert_eq!(violation.checker, "assertion");
    assert!(is_explicit(&explicit));
    assert!(explicit.steps.len() > 100, "{} steps", explicit.steps.len());
    assert_eq!(explicit.seed, Some(FAILING_SEED));
    // Written out and read back, it replays the very same run: only the header line (scenario
    // name and fault plan) differs.
    let text = scenario_file::to_toml(&explicit).expect("writes");
    let reread = scenario_file::parse("decompiled.toml", &text).expect("parses");
    let replayed = run(&reread, reread.seed.expect("the seed is in the file"), &options);
    assert_eq!(replayed.violation, Some(violation));
    assert_eq!(replayed.trace.len(), original.trace.len());
    assert_eq!(replayed.trace[1..], original.trace[1..]);
}

#[test]
fn shrink_reduces_a_failing_random_run_of_over_100_steps_to_at_most_10() {
    let scenario = scenario_file::parse("too-small.toml", FAILING_RANDOM_RUN).expect("valid");
    let options = RunOptions::default();
    let (explicit, _) = decompile(&scenario, FAILING_SEED, &options);
    let limits = Limits { jobs: 2, max_runs: 400 };
    let shrunk = shrink(&explicit, FAILING_SEED, None, &options, limits, |_, _| {}).expect("it fails");
    assert!(shrunk.steps_before > 100, "{} steps before", shrunk.steps_before);
    assert!(
        (1..=10).contains(&shrunk.steps_after()),
        "{} steps after:\n{}",
        shrunk.steps_after(),
        scenario_file::to_toml(&shrunk.scenario).expect("writes")
    );
    assert_eq!(shrunk.result.violation.as_ref().map(|v| v.checker.as_str()), Some("assertion"));
    // 1-minimal: without any one of its steps the scenario passes.
    for i in 0..shrunk.steps_after() {
        let mut smaller = shrunk.scenario.clone();
        smaller.steps.remove(i);
        assert!(run(&smaller, FAILING_SEED, &options).passed(), "step {i} can go: not minimal");
    }
}

/// The ```toml blocks of scenarios/README.md.
fn readme_examples() -> (String, Vec<String>) {
    let readme = std::fs::read_to_string(library_dir().join("README.md")).expect("scenarios/README.md");
    let blocks = readme.split("```toml\n").skip(1).map(|b| b.split("```").next().expect("a closed block").to_string());
    let blocks = blocks.collect();
    (readme, blocks)
}

#[test]
fn every_example_in_the_scenario_readme_is_a_valid_scenario_file() {
    let (_, blocks) = readme_examples();
    assert!(blocks.len() >= 3, "expected the key, step and assertion examples");
    for (i, block) in blocks.iter().enumerate() {
        let scenario = scenario_file::parse(&format!("README.md example {i}"), block).unwrap_or_else(|e| panic!("{e}"));
        let written = scenario_file::to_toml(&scenario).expect("writes");
        assert_eq!(scenario_file::parse("written back", &written).expect("parses"), scenario);
        let result = run(&scenario, 0, &RunOptions::default());
        assert!(result.passed(), "README.md example {i} ({}) fails at seed 0: {:?}", scenario.name, result.violation);
    }
}

/// The keys a table accepts, as its "unknown field" error lists them.
fn keys_of(table_with_bogus_key: &str) -> Vec<String> {
    let error = scenario_file::parse("probe.toml", table_with_bogus_key).expect_err("the bogus key is refused");
    // serde says "expected `a`", "expected `a` or `b`", or "expected one of `a`, `b`, `c`".
    let list = error.message.split("expected ").nth(1).unwrap_or_else(|| panic!("{error}"));
    let list = list.strip_prefix("one of ").unwrap_or(list);
    list.split([',', ' ']).filter(|w| w.starts_with('`')).map(|k| k.trim_matches('`').to_string()).collect()
}

#[test]
fn the_scenario_readme_shows_every_key_the_format_accepts() {
    let (readme, _) = readme_examples();
    let head = "name = \"p\"\n[cluster]\nduration = \"1s\"\n";
    let step = |action: &str| format!("{head}[[step]]\nat = \"1s\"\n{action}\n");
    let probes = [
        format!("bogus = 1\n{head}"),
        format!("{head}bogus = 1\n"),
        format!("{head}[raft]\nbogus = 1\n"),
        format!("{head}[config]\nbogus = 1\n"),
        format!("{head}[random]\nbogus = 1\n"),
        format!("{head}[random.workload]\nbogus = 1\n"),
        format!("{head}[random.workload.weights]\nbogus = 1\n"),
        format!("{head}[random.faults]\nbogus = 1\n"),
        format!("{head}[expect]\nbogus = 1\n"),
        format!("{head}[[expect.assert]]\nbogus = 1\n"),
        format!("{head}[initial]\nbogus = 1\n"),
        step("bogus = 1"),
        step("create_network = { bogus = 1 }"),
        step("create_service = { bogus = 1 }"),
        step("scale = { bogus = 1 }"),
        step("attach = { bogus = 1 }"),
        step("fail_task = { bogus = 1 }"),
        step("partition = { bogus = 1 }"),
        step("kill = { bogus = 1 }"),
        step("cut_batch = { bogus = 1 }"),
        step("ambiguous_proposal = { bogus = 1 }"),
        step("drop_proposal = { bogus = 1 }"),
        step("drop_messages = { bogus = 1 }"),
        step("slow_node = { bogus = 1 }"),
    ];
    let mut missing = Vec::new();
    for probe in &probes {
        for key in keys_of(probe) {
            let shown = [
                format!("\n{key} ="),
                format!(" {key} ="),
                format!("[{key}"),
                format!(".{key}]"),
                format!("{{ {key} ="),
            ];
            if !shown.iter().any(|s| readme.contains(s.as_str())) {
                missing.push(format!("{key} (from {:?})", probe.lines().last().unwrap_or_default()));
            }
        }
    }
    assert!(missing.is_empty(), "keys the format accepts but scenarios/README.md never shows: {missing:?}");
}

/// Two end-state assertions: network x allocated (holds when its step runs) and network y gone
/// (fails when its step runs). Without the step creating x, assertion 0 fails instead: the
/// same checker, a different (vacuous) failure that shrinking must not slide to.
const TWO_ASSERTIONS: &str = include_str!("fixtures/two-assertions.toml");

fn assertion_key(violation: &swarmalloc_sim::Violation) -> Option<&str> {
    swarmalloc_sim::check::assertion_of(violation)
}

#[test]
fn shrink_keeps_the_failing_assertion_and_does_not_slide_to_another_one() {
    let scenario = scenario_file::parse("two-assertions.toml", TWO_ASSERTIONS).expect("valid");
    let options = RunOptions::default();
    let original = run(&scenario, 0, &options).violation.expect("assertion 1 fails");
    assert_eq!((original.checker.as_str(), assertion_key(&original)), ("assertion", Some("expect.assert[1]")));
    let mut without_x = scenario.clone();
    without_x.steps.remove(0);
    let other = run(&without_x, 0, &options).violation.expect("without x, assertion 0 fails");
    assert_eq!(assertion_key(&other), Some("expect.assert[0]"), "{other}");
    assert!(!Signature::of(&original).matches(&other), "{original} / {other}");

    let limits = Limits { jobs: 2, max_runs: 50 };
    let shrunk = shrink(&scenario, 0, None, &options, limits, |_, _| {}).expect("it fails");
    let kept = shrunk.result.violation.as_ref().expect("the shrunk run fails");
    assert_eq!(assertion_key(kept), Some("expect.assert[1]"), "{kept}");
    assert_eq!(shrunk.steps_after(), 2, "both steps are needed for assertion 1 to be the failure");
    assert_eq!(shrunk.target, Signature::of(&original));
    // `--checker assertion` is the looser override: any assertion will do, so it may slide.
    let any = Signature::checker("assertion");
    let loose = shrink(&scenario, 0, Some(&any), &options, limits, |_, _| {}).expect("it fails");
    assert!(loose.steps_after() < 2, "the looser rule keeps a smaller, different failure");
}

#[test]
fn a_scenario_name_that_is_not_a_plain_file_name_is_refused() {
    let expected = |name: &str| {
        format!(
            "name = {name:?}: expected 1 to 100 characters of A-Z a-z 0-9 . _ -, not starting with a dot (the name makes \
             failure file names)"
        )
    };
    let long = "n".repeat(101);
    for (i, name) in
        ["../outside", "a/b", ".hidden", "..", "", "two words", "tab\there", long.as_str()].iter().enumerate()
    {
        let text = format!("name = {}\n[cluster]\nduration = \"3s\"\n", toml_string(name));
        check_error(&format!("bad-name-{i}"), &text, 1, 1, "name", &expected(name));
    }
    for name in ["a", "b01-restore_2.x", "n".repeat(100).as_str(), "x..y"] {
        let text = format!("name = {}\n[cluster]\nduration = \"3s\"\n", toml_string(name));
        let scenario = scenario_file::parse("ok.toml", &text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(scenario.name, name);
    }
}

#[test]
fn derived_names_stay_valid_names() {
    let long = "n".repeat(100);
    for suffix in ["-shrunk", "-seed-18446744073709551615"] {
        let name = scenario_file::derived_name(&long, suffix);
        assert!(name.ends_with(suffix) && name.len() == scenario_file::NAME_LEN_MAX, "{name}");
        assert_eq!(scenario_file::check_name(&name), Ok(()));
        assert_eq!(scenario_file::derived_name("short", suffix), format!("short{suffix}"));
    }
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// Steps may be listed in any order: scripted faults fire at their times, and a proposal fault
/// still waiting for its proposal when the faults heal expires rather than firing later.
#[test]
fn scripted_faults_fire_in_time_order_and_expire_when_the_faults_heal() {
    let text = r#"
name = "out-of-order"
[cluster]
managers = 3
workers = 2
duration = "12s"
faults_until = "6s"

[[step]]
at = "4s"
kill = { node = "w1", restart_after = "1s" }

[[step]]
at = "1s"
kill = { node = "w2", restart_after = "1s" }

[[step]]
at = "2s"
drop_proposal = { origin = "control" }
"#;
    let scenario = scenario_file::parse("out-of-order.toml", text).expect("a valid scenario");
    let result = run(&scenario, 0, &RunOptions { keep_trace: true, ..RunOptions::default() });
    assert!(result.passed(), "{:?}", result.violation);
    let events: Vec<serde_json::Value> =
        result.trace.iter().map(|line| serde_json::from_str(line).expect("a JSON trace line")).collect();
    let kill_at = |node: &str| {
        events
            .iter()
            .find(|e| e["ev"] == "fault" && e["data"]["kind"] == "kill_restart" && e["data"]["node"] == node)
            .and_then(|e| e["t_ms"].as_u64())
            .unwrap_or_else(|| panic!("no kill of {node} in the trace"))
    };
    assert!((1_000..1_200).contains(&kill_at("w2")), "w2 killed at {}ms", kill_at("w2"));
    assert!((4_000..4_200).contains(&kill_at("w1")), "w1 killed at {}ms", kill_at("w1"));
    // No control request is ever sent, so the drop waits until the faults heal and expires.
    let expired = events.iter().find(|e| e["ev"] == "proposal_faults_expired").expect("the drop expired");
    assert_eq!(expired["data"]["at_ms"], serde_json::json!([2000]));
    assert!(expired["t_ms"].as_u64().is_some_and(|t| (6_000..6_200).contains(&t)), "{expired}");
    assert!(!events.iter().any(|e| e["ev"] == "fault" && e["data"]["kind"] == "dropped_proposal"));
}
