//! Many seeds: a sweep over a seed range on a pool of threads (each seed still on a fresh
//! thread of its own), and the determinism check that runs one seed twice and diffs the traces.

use std::ops::{Bound, RangeBounds};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use crate::result::RunResult;
use crate::run::{RunOptions, run};
use crate::scenario::Scenario;

/// Runs every seed in `seeds` (`a..b` or `a..=b`; `..=u64::MAX` included) with `jobs` runs at a
/// time; `each` sees results as they finish. Returns the results in seed order.
pub fn sweep(
    scenario: &Scenario,
    seeds: impl RangeBounds<u64>,
    jobs: usize,
    options: &RunOptions,
    each: impl FnMut(&RunResult),
) -> Vec<RunResult> {
    sweep_until(scenario, seeds, jobs, options, &AtomicBool::new(false), each)
}

/// [`sweep`], taking no new seed once `stop` is set (an interrupted sweep: the runs under way
/// finish); the results are those of the seeds that ran.
pub fn sweep_until(
    scenario: &Scenario,
    seeds: impl RangeBounds<u64>,
    jobs: usize,
    options: &RunOptions,
    stop: &AtomicBool,
    mut each: impl FnMut(&RunResult),
) -> Vec<RunResult> {
    let first = match seeds.start_bound() {
        Bound::Included(&s) => Some(s),
        Bound::Excluded(&s) => s.checked_add(1),
        Bound::Unbounded => Some(0),
    };
    let last = match seeds.end_bound() {
        Bound::Included(&e) => Some(e),
        Bound::Excluded(&e) => e.checked_sub(1),
        Bound::Unbounded => Some(u64::MAX),
    };
    // The next seed to run; `None` once every seed is taken (no wrap-around at u64::MAX).
    let next = Mutex::new(first.zip(last).filter(|(f, l)| f <= l).map(|(f, _)| f));
    let last = last.unwrap_or(0);
    let take = || {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let mut next = next.lock().expect("no sweep worker panics holding the lock");
        let seed = (*next)?;
        *next = seed.checked_add(1).filter(|&s| s <= last);
        Some(seed)
    };
    let (sender, receiver) = mpsc::channel();
    let mut results = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let sender = sender.clone();
            let take = &take;
            scope.spawn(move || {
                while let Some(seed) = take() {
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
