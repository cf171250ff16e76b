//! The legacy flavours through the command line (the tests build `allocsim` with the
//! `legacy` feature): a flavour runs, is written into the failure file and replays; an unknown
//! one is refused.

mod common;

use common::{TempDir, allocsim, library_dir, utf8};
use swarmalloc::legacy::Flavour;
use swarmalloc_sim::FailureFile;

#[test]
fn the_cli_runs_a_flavour_writes_it_into_the_failure_file_and_refuses_unknown_ones() {
    let path = library_dir().join("b08-port-conflicts-after-restart.toml");
    let dir = std::env::temp_dir().join(format!("allocsim-legacy-{}", std::process::id()));
    let file = path.to_str().expect("utf-8");
    let out = allocsim(&["run", file, "--seed", "0", "--legacy", "B8", "--failures", dir.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("[legacy B8]") && stdout.contains("ingress_ports_unique"), "{stdout}");
    let failure = dir.join("b08-port-conflicts-after-restart-legacy-B8-0.json");
    let recorded = FailureFile::read(&failure).expect("the failure file");
    assert_eq!(recorded.scenario.legacy, Some(Flavour::B8));
    let replay = allocsim(&["replay", failure.to_str().expect("utf-8")]);
    assert!(String::from_utf8_lossy(&replay.stdout).contains("reproduced"), "{replay:?}");
    assert_eq!(replay.status.code(), Some(1), "a reproduced failure exits 1 (a divergence 3)");
    // Without the flavour the same seed passes.
    assert_eq!(allocsim(&["run", file, "--seed", "0"]).status.code(), Some(0));
    let bad = allocsim(&["run", file, "--legacy", "B7"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown legacy flavour \"B7\"") && stderr.contains("flag-init"), "{stderr}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

/// A sweep with `--legacy` reads back into a report: its rows and failures go by
/// `NAME [legacy FLAVOUR]` (what its summary line says) and the failure files it wrote
/// (`NAME-legacy-FLAVOUR-SEED.json`) are found.
#[test]
fn the_report_reads_a_sweep_run_with_a_legacy_flavour() {
    let dir = TempDir::new("legacy-report");
    let scenario = library_dir().join("b03-network-restore-order.toml");
    let failures = dir.path("failures");
    let out = allocsim(&[
        "run",
        scenario.to_str().expect("utf-8"),
        "--seeds",
        "0..2",
        "--legacy",
        "B3",
        "--json",
        "--failures",
        failures.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "B3 fails its scenario: {}", utf8(&out.stderr));
    let results = dir.file("results.jsonl", &utf8(&out.stdout));
    let report = allocsim(&[
        "report",
        results.to_str().expect("utf-8"),
        "--failures",
        failures.to_str().expect("utf-8"),
        "--out",
        dir.path("out").to_str().expect("utf-8"),
    ]);
    let text = utf8(&report.stdout);
    assert_eq!(report.status.code(), Some(1), "a FAIL verdict, not unreadable input: {}", utf8(&report.stderr));
    assert!(text.contains("FAIL b03-network-restore-order [legacy B3] seed 0"), "{text}");
    assert!(!text.contains("failure file not found"), "{text}");
    let expected = failures.join("b03-network-restore-order-legacy-B3-0.json");
    assert!(text.contains(&format!("replay: allocsim replay {}", expected.display())), "{text}");
}
