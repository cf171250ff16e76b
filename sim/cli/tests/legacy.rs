//! The legacy flavours through the command line (the tests build `allocsim` with the
//! `legacy` feature): a flavour runs, is written into the failure file and replays; an unknown
//! one is refused.

mod common;

use common::{allocsim, library_dir};
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
