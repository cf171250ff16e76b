//! `allocsim bench --real`'s measurement on a real swarm: the times it reads back from the
//! manager's tasks are consistent with each other and with the wall clock. Skips loudly without
//! Docker (a failure under CI=true).

use std::time::Duration;

use swarmalloc_live::bench::measure_on;
use swarmalloc_live::harness::{SwarmOptions, swarm_for_test};

#[test]
fn a_real_throughput_run_reads_consistent_times_from_the_manager() {
    let Some(swarm) = swarm_for_test("the real throughput measurement", &SwarmOptions::default()) else { return };
    let run = measure_on(&swarm, 30, Duration::from_secs(120)).unwrap_or_else(|e| panic!("measuring 30 tasks: {e}"));
    assert_eq!(run.tasks, 30);
    assert!(run.polls >= 1);
    // At least one transaction created the tasks and one allocated them.
    assert!(run.entries >= 2, "{run:?}");
    // Each task is created before it is PENDING, and the first one after the request was sent.
    assert!(run.create_to_last_created <= run.create_to_pending, "{run:?}");
    assert!(run.first_task_to_pending <= run.create_to_pending, "{run:?}");
    assert!(run.first_task_to_pending > Duration::ZERO, "{run:?}");
    // The poll saw them all PENDING after the last one became so (the clocks are the same
    // machine's; a millisecond of slack for the manager's rounding).
    assert!(run.create_to_pending <= run.observed + Duration::from_millis(1), "{run:?}");
    // 30 tasks take a manager well under a minute; a figure beyond that is a misread timestamp.
    assert!(run.create_to_pending < Duration::from_secs(60), "{run:?}");
}
