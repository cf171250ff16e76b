//! `allocsim bench`: seeds per second of a default sweep, and tasks moved NEW -> PENDING per
//! second without faults. Wall-clock numbers: the load average is printed with them.

use std::time::Instant;

use swarmalloc_sim::Metrics;
use swarmalloc_sim::run::{RunOptions, run};
use swarmalloc_sim::scenario::Scenario;
use swarmalloc_sim::series::THROUGHPUT_IS_RELATIVE;
use swarmalloc_sim::sweep::sweep;

use crate::args::BenchArgs;

pub fn bench(args: &BenchArgs) -> u8 {
    let (seeds, jobs, tasks) = (args.seeds, args.jobs, args.tasks);
    let scenario = Scenario::default_workload();
    // Other processes skew wall-clock numbers: say how busy the machine was.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("load average before: {}", load.join(" "));
    }
    println!("bench 1: {seeds} seeds of the default workload, {jobs} jobs");
    let started = Instant::now();
    let results = sweep(&scenario, 0..seeds, jobs, &RunOptions::default(), |_| {});
    let secs = started.elapsed().as_secs_f64();
    let failed = results.iter().filter(|r| !r.passed()).count();
    let mean_entries = results.iter().map(|r| r.metrics.entries_applied).sum::<u64>() / seeds.max(1);
    println!(
        "  {:.1} seeds/s ({seeds} seeds in {secs:.1}s; {failed} failed; {mean_entries} entries per seed on average)",
        seeds as f64 / secs
    );
    println!("bench 2: {tasks} tasks NEW -> PENDING, faults off, 3 managers");
    let result = run(&Scenario::throughput(tasks), 1, &RunOptions::default());
    let m = &result.metrics;
    match simulated_secs(m, tasks) {
        Some(sim_secs) => {
            let wall_secs = result.wall_ms as f64 / 1000.0;
            println!(
                "  {} tasks PENDING after {sim_secs:.2} simulated s ({:.0} tasks per simulated s); whole run {wall_secs:.2} wall s \
                 ({:.0} tasks per wall s)",
                m.tasks_pending,
                m.tasks_pending as f64 / sim_secs.max(1e-9),
                m.tasks_pending as f64 / wall_secs.max(1e-9),
            );
            println!("  tasks per simulated s: {THROUGHPUT_IS_RELATIVE}");
        }
        _ => println!(
            "  did not finish: {} of {tasks} tasks PENDING; {}",
            m.tasks_pending,
            crate::run::describe(&result)
        ),
    }
    u8::from(failed > 0 || !result.passed())
}

/// Simulated seconds of a throughput run from its first task created to its last task PENDING,
/// when all `tasks` got there.
pub fn simulated_secs(m: &Metrics, tasks: u64) -> Option<f64> {
    match (m.first_task_ms, m.last_pending_ms) {
        (Some(first), Some(last)) if m.tasks_pending >= tasks => Some(last.saturating_sub(first) as f64 / 1000.0),
        _ => None,
    }
}
