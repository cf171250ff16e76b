//! `scripts/fuzz-rustc-wrapper.sh`, the fuzz builds' RUSTC_WRAPPER, run with a stand-in rustc that
//! prints its arguments: coverage flags stay for the crates to instrument and go for the rest
//! (this crate among them), and nothing else changes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The flags cargo fuzz 0.13 adds for `-s none --no-trace-compares`, in both of rustc's spellings.
const COVERAGE: [&str; 6] = [
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-C",
    "llvm-args=-sanitizer-coverage-trace-compares",
];
const OTHER: [&str; 5] = ["--cfg", "fuzzing", "-Cllvm-args=-simplifycfg-branch-fold-threshold=0", "-C", "opt-level=3"];

fn fake_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("swarmalloc-fuzz-wrapper-{}-{name}", std::process::id()))
}

fn remove_fake(name: &str) {
    std::fs::remove_dir_all(fake_dir(name)).expect("remove the stand-in rustc");
}

fn wrapper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fuzz-rustc-wrapper.sh")
}

/// A stand-in rustc in its own directory (one per test: they run in parallel): prints each
/// argument on a line.
fn fake_rustc(name: &str) -> PathBuf {
    let dir = fake_dir(name);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("rustc");
    std::fs::write(&path, "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n").expect("write");
    let made = Command::new("chmod").arg("+x").arg(&path).status().expect("chmod runs");
    assert!(made.success());
    path
}

/// The arguments the wrapper hands rustc for a compile of `crate_name`.
fn passed_on(name: &str, instrument: Option<&str>, crate_name: &str) -> Vec<String> {
    let mut command = Command::new(wrapper());
    command.arg(fake_rustc(name)).args(["--crate-name", crate_name, "src/lib.rs"]).args(COVERAGE).args(OTHER);
    match instrument {
        Some(list) => command.env("FUZZ_INSTRUMENT", list),
        None => command.env_remove("FUZZ_INSTRUMENT"),
    };
    let output = command.output().expect("the wrapper runs");
    remove_fake(name);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8").lines().map(str::to_string).collect()
}

fn all_args(crate_name: &str, coverage: bool) -> Vec<String> {
    let mut args = vec!["--crate-name", crate_name, "src/lib.rs"];
    if coverage {
        args.extend(COVERAGE);
    }
    args.extend(OTHER);
    args.into_iter().map(str::to_string).collect()
}

#[test]
fn the_engine_and_simulator_keep_their_coverage_flags() {
    for crate_name in ["swarmalloc", "swarmalloc_sim", "toml_parser"] {
        assert_eq!(passed_on("keep", None, crate_name), all_args(crate_name, true), "{crate_name}");
    }
}

#[test]
fn the_model_and_dependencies_lose_only_their_coverage_flags() {
    for crate_name in ["swarmalloc_testing", "arbitrary", "ipnet", "raft", "engine_ops"] {
        assert_eq!(passed_on("drop", None, crate_name), all_args(crate_name, false), "{crate_name}");
    }
}

#[test]
fn fuzz_instrument_replaces_the_list() {
    assert_eq!(
        passed_on("env", Some("swarmalloc_testing"), "swarmalloc_testing"),
        all_args("swarmalloc_testing", true)
    );
    assert_eq!(passed_on("env", Some("swarmalloc_testing"), "swarmalloc"), all_args("swarmalloc", false));
}

#[test]
fn a_call_without_a_crate_name_passes_through() {
    let output = Command::new(wrapper()).arg(fake_rustc("probe")).args(["-vV"]).output().expect("runs");
    remove_fake("probe");
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "-vV\n");
}
