//! Any bytes as a scenario file: `swarmalloc_sim::fuzzing::check_scenario_bytes`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = swarmalloc_sim::fuzzing::check_scenario_bytes(data) {
        panic!("{violation}");
    }
});
