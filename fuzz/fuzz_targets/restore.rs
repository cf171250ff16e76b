//! Restore of any stored state, consistent or not: `swarmalloc_testing::check_restore_bytes`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = swarmalloc_testing::check_restore_bytes(data) {
        panic!("{violation}");
    }
});
