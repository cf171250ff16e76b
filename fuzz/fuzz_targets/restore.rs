//! Restore of any stored state, consistent or not: `swarmalloc::testing::check_restore`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmalloc::testing::{StoredState, check_restore};

fuzz_target!(|state: StoredState| {
    if let Err(violation) = check_restore(&state) {
        panic!("{violation}");
    }
});
