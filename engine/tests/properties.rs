//! The properties of `swarmalloc_testing` (the same functions the fuzz targets wrap) over
//! deterministic pseudo-random inputs, plus every committed fuzz input: the seed corpora under
//! `fuzz/corpus-seed/TARGET/` and the crashes kept under `fuzz/regressions/TARGET/`.

use std::path::Path;

use swarmalloc_testing::{check_ops_bytes, check_restore_bytes};

/// Runs `property` on `cases` byte strings from a fixed xorshift stream.
fn generated(cases: usize, max_len: usize, property: fn(&[u8]) -> Result<(), String>) {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for case in 0..cases {
        let len = 32 + (next() as usize % max_len);
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if let Err(e) = property(&bytes) {
            panic!("case {case} failed: {e}\nbytes: {bytes:02x?}");
        }
    }
}

/// Every committed input of fuzz/DIR/TARGET (see `swarmalloc_testing::committed_inputs`).
fn committed_inputs(dir: &str, target: &str, property: fn(&[u8]) -> Result<(), String>) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz").join(dir).join(target);
    swarmalloc_testing::committed_inputs(&dir, property)
}

#[test]
fn restore_property_holds_on_generated_stores() {
    generated(3000, 480, check_restore_bytes);
}

#[test]
fn ops_property_holds_on_generated_sequences() {
    generated(1500, 1500, check_ops_bytes);
}

#[test]
fn fuzz_regressions_still_pass() {
    committed_inputs("regressions", "restore", check_restore_bytes);
    committed_inputs("regressions", "engine_ops", check_ops_bytes);
}

#[test]
fn seed_corpora_pass() {
    assert!(committed_inputs("corpus-seed", "restore", check_restore_bytes) > 0, "no restore seeds");
    assert!(committed_inputs("corpus-seed", "engine_ops", check_ops_bytes) > 0, "no engine_ops seeds");
}
