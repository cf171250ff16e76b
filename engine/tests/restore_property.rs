//! The restore property (`swarmalloc::testing::check_restore`, also the `restore` fuzz target)
//! over deterministic pseudo-random inputs, plus every committed fuzz regression input.

use arbitrary::{Arbitrary, Unstructured};
use swarmalloc::testing::{StoredState, check_restore};

fn check_bytes(bytes: &[u8]) -> Result<(), String> {
    let Ok(state) = StoredState::arbitrary(&mut Unstructured::new(bytes)) else { return Ok(()) };
    check_restore(&state).map_err(|e| format!("{e}\ninput: {state:#?}"))
}

#[test]
fn restore_property_holds_on_generated_stores() {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for case in 0..3000 {
        let len = 32 + (next() % 480) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if let Err(e) = check_bytes(&bytes) {
            panic!("case {case} failed: {e}\nbytes: {bytes:02x?}");
        }
    }
}

#[test]
fn restore_fuzz_regressions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/restore");
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    for entry in entries {
        let path = entry.expect("readable directory").path();
        let bytes = std::fs::read(&path).expect("readable file");
        if let Err(e) = check_bytes(&bytes) {
            panic!("{}: {e}", path.display());
        }
    }
}
