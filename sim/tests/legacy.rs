//! The legacy flavours (feature `legacy`, which test builds turn on): each old allocator
//! behaviour fails its bug-class scenario of the library with the expected checker on fixed
//! seeds, and the random workload (the default scenario, swarm-tested faults) still finds it
//! on the seed where docs/legacy-flavours.md measured its first find, a seed that passes with
//! no flavour. This is the fast version of that table: it pins each measured find (one debug
//! run with the flavour, one without); how often the random workload finds each flavour, over
//! five seed ranges, is the table's job.

#![cfg(feature = "legacy")]

use std::path::{Path, PathBuf};

use swarmalloc::legacy::Flavour;
use swarmalloc_sim::scenario::Action;
use swarmalloc_sim::scenario_file;
use swarmalloc_sim::shrink::{Limits, Signature, decompile, shrink};
use swarmalloc_sim::{RunOptions, RunResult, Scenario, run, sweep};

/// One row of the table.
struct Case {
    flavour: Flavour,
    /// The bug-class scenario it fails, and the checker that fires there.
    scenario: &'static str,
    checker: &'static str,
    /// The first seed of range 0 of the default workload that fails with this flavour, as the
    /// table in docs/legacy-flavours.md measured it, and the checkers that fire on it.
    seed: u64,
    checkers: &'static [&'static str],
}

const RESTORE: &str = "engine_equals_restore";
const COMMITTED: &str = "engine_equals_committed";

const CASES: [Case; 9] = [
    Case {
        flavour: Flavour::B1,
        scenario: "b01-restore-allocate-interleaving",
        checker: "duplicate_live_address",
        seed: 1,
        checkers: &["duplicate_live_address"],
    },
    Case {
        flavour: Flavour::B2,
        scenario: "b02-vip-not-restored",
        checker: "duplicate_live_address",
        seed: 0,
        checkers: &["duplicate_live_address", RESTORE],
    },
    Case {
        flavour: Flavour::B3,
        scenario: "b03-network-restore-order",
        checker: "overlapping_subnets",
        seed: 0,
        checkers: &["overlapping_subnets", "vxlan_ids_unique", RESTORE],
    },
    Case {
        flavour: Flavour::B4,
        scenario: "b04-leak-when-network-gone",
        checker: RESTORE,
        seed: 91,
        checkers: &[RESTORE],
    },
    Case {
        flavour: Flavour::B5,
        scenario: "b05-delete-racing-allocation",
        checker: COMMITTED,
        seed: 0,
        checkers: &[COMMITTED],
    },
    Case {
        flavour: Flavour::B6,
        scenario: "b06-freed-while-in-use",
        checker: "address_freed_while_in_use",
        seed: 0,
        checkers: &["address_freed_while_in_use", RESTORE],
    },
    Case {
        flavour: Flavour::B8,
        scenario: "b08-port-conflicts-after-restart",
        checker: "ingress_ports_unique",
        seed: 0,
        checkers: &["ingress_ports_unique", RESTORE],
    },
    Case {
        flavour: Flavour::B11,
        scenario: "b11-uncommitted-local-state",
        checker: COMMITTED,
        seed: 0,
        checkers: &[COMMITTED, RESTORE],
    },
    Case {
        flavour: Flavour::FlagInit,
        scenario: "b07-tasks-stuck-in-new",
        checker: "liveness_tasks_leave_new",
        seed: 8,
        checkers: &["liveness_tasks_leave_new"],
    },
];

/// Seeds of the bug-class scenarios (the library test runs the same ones with no flavour).
const LIBRARY_SEEDS: std::ops::Range<u64> = 0..2;

fn library(name: &str) -> (PathBuf, Scenario) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{name}.toml"));
    let scenario = scenario_file::load(&path).unwrap_or_else(|e| panic!("{e}"));
    (path, scenario)
}

fn with(scenario: &Scenario, flavour: Option<Flavour>) -> Scenario {
    Scenario { legacy: flavour, ..scenario.clone() }
}

fn checker(result: &RunResult) -> Option<&str> {
    result.violation.as_ref().map(|v| v.checker.as_str())
}

#[test]
fn every_flavour_has_a_row() {
    let flavours: Vec<Flavour> = CASES.iter().map(|c| c.flavour).collect();
    assert_eq!(flavours, Flavour::ALL);
}

#[test]
fn each_flavour_fails_its_library_scenario_with_the_expected_checker() {
    for case in &CASES {
        let (_, scenario) = library(case.scenario);
        let legacy = with(&scenario, Some(case.flavour));
        for result in sweep(&legacy, LIBRARY_SEEDS, 2, &RunOptions::default(), |_| {}) {
            assert_eq!(
                checker(&result),
                Some(case.checker),
                "{} with legacy {} at seed {}: {:?}",
                case.scenario,
                case.flavour,
                result.seed,
                result.violation
            );
            // What users tripped over: a violation read as a Debug dump of internal structs
            // (`NetEntry { ... alloc: Some(Ok(NetAlloc {`). It says in words who holds what.
            let detail = result.violation.as_ref().map_or("", |v| v.detail.as_str());
            for dump in ["Some(", "Ok(", "Err(", " { ", "NetEntry", "NetAlloc"] {
                assert!(!detail.contains(dump), "{} with legacy {}: {dump:?} in {detail}", case.scenario, case.flavour);
            }
        }
    }
}

#[test]
fn the_random_workload_still_finds_each_flavour_on_its_measured_seed_and_passes_without_it() {
    let default = Scenario::default_workload();
    for case in &CASES {
        let found = run(&with(&default, Some(case.flavour)), case.seed, &RunOptions::default());
        let fired = checker(&found);
        assert!(
            fired.is_some_and(|c| case.checkers.contains(&c)),
            "legacy {} at default seed {}: {:?}",
            case.flavour,
            case.seed,
            found.violation
        );
        let without = run(&default, case.seed, &RunOptions::default());
        assert!(without.passed(), "seed {} fails with no flavour: {:?}", case.seed, without.violation);
    }
}

/// B4's find at default seed 153 has a random proposal fault that hit a later chunk of a
/// proposal split in the same millisecond: the decompiled step says how many to let pass
/// (`skip`), so the explicit run fails exactly like the seeded one.
#[test]
fn a_random_fault_on_a_later_chunk_of_a_split_proposal_decompiles_faithfully() {
    let seeded = with(&Scenario::default_workload(), Some(Flavour::B4));
    let (explicit, original) = decompile(&seeded, 153, &RunOptions::default());
    assert_eq!(checker(&original), Some(RESTORE), "{:?}", original.violation);
    let skips = explicit.steps.iter().filter(
        |s| matches!(s.action, Action::DropProposal { skip, .. } | Action::AmbiguousProposal { skip, .. } if skip > 0),
    );
    assert!(skips.count() > 0, "no decompiled proposal fault skips a chunk: the case this test is about is gone");
    let replayed = run(&explicit, 153, &RunOptions::default());
    assert_eq!(replayed.violation, original.violation);
}

#[test]
fn a_legacy_failure_shrinks_to_the_steps_that_cause_it() {
    let (_, scenario) = library("b03-network-restore-order");
    let legacy = with(&scenario, Some(Flavour::B3));
    let target = Signature::checker("overlapping_subnets");
    let limits = Limits { jobs: 2, max_runs: 200 };
    let shrunk =
        shrink(&legacy, 0, Some(&target), &RunOptions::default(), limits, |_, _| {}).expect("it fails, so it shrinks");
    assert_eq!(checker(&shrunk.result), Some("overlapping_subnets"));
    assert!(shrunk.steps_after() < shrunk.steps_before, "{} steps before and after", shrunk.steps_before);
    assert_eq!(shrunk.scenario.legacy, Some(Flavour::B3), "the shrunk scenario keeps its flavour");
    let text = scenario_file::to_toml(&shrunk.scenario).expect("writes");
    assert!(text.contains("legacy = \"B3\""), "{text}");
    assert_eq!(scenario_file::parse("shrunk", &text).expect("parses back"), shrunk.scenario);
}
