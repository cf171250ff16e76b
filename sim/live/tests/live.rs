//! `allocsim live` on a real swarm: two scenarios of the library run, their checks hold, the
//! steps a real swarm cannot take are listed, and `allocsim report` shows the real runs beside
//! the simulated ones.

use std::path::Path;

use swarmalloc_live::harness::real_swarm_or_skip;
use swarmalloc_live::live::{LiveOptions, Outcome, run_live};
use swarmalloc_reports::{ReportOptions, make_report};
use swarmalloc_sim::scenario_file;

fn library(name: &str) -> swarmalloc_sim::Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios").join(name);
    scenario_file::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn two_library_scenarios_run_live_and_report_beside_their_simulated_runs() {
    if !real_swarm_or_skip("allocsim live") {
        return;
    }
    let mut lines = String::new();
    for (file, skipped) in [
        // The partition of the only manager cannot be taken.
        ("b04-leak-when-network-gone.toml", vec!["partition leader for 3.000s"]),
        // A cut batch needs control of raft; the initial tasks cannot be written into a real store.
        (
            "b11-uncommitted-local-state.toml",
            vec!["cut the next allocator batch after 1 transactions", "initial tasks (2)"],
        ),
    ] {
        let scenario = library(file);
        let run = run_live(&scenario, &LiveOptions::default()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(run.result.violation.is_none(), "{file}:\n{}", run.to_text());
        let real = run.result.real.as_ref().expect("a real run says so");
        assert!(real.daemon.starts_with("20.10"), "{}", real.daemon);
        let skipped_actions: Vec<&str> = real.skipped.iter().map(|s| s.action.as_str()).collect();
        for action in skipped {
            assert!(skipped_actions.contains(&action), "{file}: {action:?} is listed as skipped: {skipped_actions:?}");
        }
        assert!(run.steps.iter().any(|s| s.outcome == Outcome::Done), "{file}: steps ran");
        assert_eq!(real.steps as usize, run.steps.iter().filter(|s| !matches!(s.outcome, Outcome::Skipped(_))).count());
        lines += &serde_json::to_string(&run.result).unwrap();
        lines.push('\n');
        lines += &serde_json::to_string(&run.summary).unwrap();
        lines.push('\n');
    }
    // Beside a simulated sweep of the same scenarios, in one report.
    let dir = tempfile::tempdir().unwrap();
    let real_file = dir.path().join("real.jsonl");
    std::fs::write(&real_file, lines).unwrap();
    let mut simulated = String::new();
    for file in ["b04-leak-when-network-gone.toml", "b11-uncommitted-local-state.toml"] {
        let scenario = library(file);
        let result = swarmalloc_sim::run(&scenario, 0, &Default::default());
        simulated += &serde_json::to_string(&result).unwrap();
        simulated.push('\n');
        let summary = swarmalloc_sim::SummaryLine {
            summary: String::new(),
            scenario: scenario.name.clone(),
            legacy: None,
            seeds: 1,
            failed: u64::from(!result.passed()),
            seconds: 0.0,
            failing_seeds: Vec::new(),
            jobs: Some(1),
            interrupted: false,
            real: false,
        };
        simulated += &serde_json::to_string(&summary).unwrap();
        simulated.push('\n');
    }
    let sim_file = dir.path().join("sim.jsonl");
    std::fs::write(&sim_file, simulated).unwrap();
    let options = ReportOptions { results: vec![sim_file, real_file], ..ReportOptions::default() };
    let sweep = make_report(&options, &mut |_| {}).expect("the report reads both");
    let rows: Vec<&str> = sweep.report.scenarios.iter().map(|s| s.scenario.as_str()).collect();
    assert_eq!(
        rows,
        [
            "b04-leak-when-network-gone",
            "b04-leak-when-network-gone [real]",
            "b11-uncommitted-local-state",
            "b11-uncommitted-local-state [real]"
        ]
    );
    let text = sweep.to_text();
    assert!(text.contains("b04-leak-when-network-gone [real]"), "{text}");
}
