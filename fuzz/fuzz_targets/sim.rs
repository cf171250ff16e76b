//! A small scenario in the simulator with every checker on: `swarmalloc_sim::fuzzing::check_sim_bytes`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = swarmalloc_sim::fuzzing::check_sim_bytes(data) {
        panic!("{violation}");
    }
});
