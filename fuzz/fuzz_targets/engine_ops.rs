//! Operation sequences against the reference model: `swarmalloc_testing::check_ops_bytes`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = swarmalloc_testing::check_ops_bytes(data) {
        panic!("{violation}");
    }
});
