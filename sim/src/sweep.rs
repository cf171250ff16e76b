//! Many seeds: a sweep over a seed range on a pool of threads (each seed still on a fresh
//! thread of its own), and the determinism check that runs one seed twice and diffs the traces.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use crate::run::{RunOptions, RunResult, run};
use crate::scenario::Scenario;

/// Runs every seed in `seeds` with `jobs` runs at a time; `each` sees results as they finish.
/// Returns the results in seed order.
pub fn sweep(
    scenario: &Scenario,
    seeds: Range<u64>,
    jobs: usize,
    options: &RunOptions,
    mut each: impl FnMut(&RunResult),
) -> Vec<RunResult> {
    let next = AtomicU64::new(seeds.start);
    let (sender, receiver) = mpsc::channel();
    let mut results = Vec::with_capacity((seeds.end - seeds.start) as usize);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let sender = sender.clone();
            let next = &next;
            let end = seeds.end;
            scope.spawn(move || {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        return;
                    }
                    if sender.send(run(scenario, seed, options)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(sender);
        for result in receiver {
            each(&result);
            results.push(result);
        }
    });
    results.sort_by_key(|r| r.seed);
    results
}

/// Where two runs of one seed first differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// 0-based trace line.
    pub line: usize,
    pub first: Option<String>,
    pub second: Option<String>,
}

/// Runs `seed` twice; `Ok(hash)` when both traces are identical.
pub fn check_determinism(scenario: &Scenario, seed: u64, options: &RunOptions) -> Result<String, Divergence> {
    let options = RunOptions { keep_trace: true, ..options.clone() };
    let a = run(scenario, seed, &options);
    let b = run(scenario, seed, &options);
    if a.trace_hash == b.trace_hash && a.trace == b.trace {
        return Ok(a.trace_hash);
    }
    let line = a.trace.iter().zip(&b.trace).position(|(x, y)| x != y).unwrap_or(a.trace.len().min(b.trace.len()));
    Err(Divergence { line, first: a.trace.get(line).cloned(), second: b.trace.get(line).cloned() })
}
