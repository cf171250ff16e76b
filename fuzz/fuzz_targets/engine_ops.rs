//! Operation sequences against the engine: `swarmalloc::testing::check_ops`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmalloc::testing::{Op, check_ops};

fuzz_target!(|ops: Vec<Op>| {
    if let Err(violation) = check_ops(&ops) {
        panic!("{violation}");
    }
});
