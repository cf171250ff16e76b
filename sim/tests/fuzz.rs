//! The simulator's fuzz properties (`swarmalloc_sim::fuzzing`, the functions the `scenario_parse`
//! and `sim` targets wrap) over committed inputs: the seed corpora under `fuzz/corpus-seed/TARGET/`,
//! the crashes kept under `fuzz/regressions/TARGET/`, and every scenario file of the library.

use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use swarmalloc_sim::fuzzing::{SmallScenario, check_scenario_bytes, check_scenario_text, check_sim_bytes};
use swarmalloc_testing::committed_inputs;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn scenario_parse_regressions_and_seeds_pass() {
    committed_inputs(&repo().join("fuzz/regressions/scenario_parse"), check_scenario_bytes);
    let seeds = committed_inputs(&repo().join("fuzz/corpus-seed/scenario_parse"), check_scenario_bytes);
    assert!(seeds > 0, "no scenario_parse seeds");
}

#[test]
fn every_library_scenario_round_trips() {
    let files = committed_inputs(&repo().join("scenarios"), check_scenario_bytes);
    assert!(files > 0, "no scenario files");
}

/// Texts that once broke parsing or writing, and the error cases a clear error must cover.
#[test]
fn scenario_texts_give_a_scenario_or_a_clear_error() {
    for text in [
        "",
        "name = \"x\"",
        "name = \"x\"\n[cluster]\nduration = \"1s\"\n",
        "name = \"x\"\n[cluster]\nduration = \"-1s\"\n",
        "name = \"x\"\n[cluster]\nduration = 1e400\n",
        "name = \"é\"\n[cluster]\nduration = \"é\"\n",
        "name = \"x\"\n[cluster]\nduration = \"2s\"\nmanagers = 9\n",
        "[[step]]\nat = \"1s\"\n",
        "name = \"x\"\n[cluster]\nduration = \"2s\"\n[[step]]\nat = \"1s\"\nkill = { node = \"m9\" }\n",
    ] {
        if let Err(e) = check_scenario_text(text) {
            panic!("{text:?}: {e}");
        }
    }
}

#[test]
fn sim_regressions_and_seeds_pass() {
    committed_inputs(&repo().join("fuzz/regressions/sim"), check_sim_bytes);
    let seeds = committed_inputs(&repo().join("fuzz/corpus-seed/sim"), check_sim_bytes);
    assert!(seeds > 0, "no sim seeds");
}

/// The seeds are real runs: a leader commits the bootstrap and the scripted requests.
#[test]
fn sim_seeds_run_a_cluster() {
    let dir = repo().join("fuzz/corpus-seed/sim");
    for entry in std::fs::read_dir(&dir).expect("seed directory") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("readable");
        let small = SmallScenario::arbitrary_take_rest(Unstructured::new(&bytes)).expect("decodes");
        let result = small.run().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(result.metrics.entries_applied > 0, "{}: nothing applied: {:?}", path.display(), result.metrics);
    }
}
