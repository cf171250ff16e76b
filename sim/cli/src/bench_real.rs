//! `allocsim bench --real`: the simulator's throughput figure beside a real SwarmKit manager's
//! for the same task count (`swarmalloc_live::bench` measures the real one). Both cover the same
//! interval, the first task created until the last task PENDING; the real one also from the
//! create request. Wall-clock numbers: the load average is printed with them.

use std::time::Duration;

use serde_json::json;
use swarmalloc_live::bench::{RealThroughput, measure, median};
use swarmalloc_live::harness::{SwarmOptions, unavailable};
use swarmalloc_sim::run::{RunOptions, run};
use swarmalloc_sim::scenario::Scenario;
use swarmalloc_sim::series::THROUGHPUT_IS_RELATIVE;

use crate::args::BenchArgs;
use crate::bench::simulated_secs;
use crate::{Error, Outcome};

/// How long one real run may take from the create request until every task is PENDING.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

pub fn bench_real(args: &BenchArgs) -> Outcome {
    if let Some(reason) = unavailable() {
        return Err(Error::Input(format!("bench --real: no real swarm on this machine: {reason}")));
    }
    let mut code = 0;
    for &tasks in &args.real_tasks {
        let load_before = load_average();
        // The simulator: as many seeds as real runs (its network latencies are drawn per seed).
        let mut simulated = Vec::new();
        for seed in 1..=args.runs as u64 {
            let result = run(&Scenario::throughput(tasks), seed, &RunOptions::default());
            match simulated_secs(&result.metrics, tasks) {
                Some(secs) if result.passed() => simulated.push(Duration::from_secs_f64(secs)),
                _ => {
                    eprintln!(
                        "allocsim: bench --real: the simulator's throughput run of {tasks} tasks, seed {seed}, did not finish"
                    );
                    code = 1;
                }
            }
        }
        let mut real: Vec<RealThroughput> = Vec::new();
        for i in 1..=args.runs {
            let one = measure(tasks, &SwarmOptions::default(), RUN_TIMEOUT)
                .map_err(|e| Error::Input(format!("bench --real: {tasks} tasks, run {i}: {e}")))?;
            if !args.json {
                println!(
                    "real run {i}/{}: {tasks} tasks PENDING {:.2} s after the first was created, {:.2} s after the \
                     create request (tasks all created after {:.2} s; seen by a poll after {:.2} s; {} raft entries)",
                    args.runs,
                    one.first_task_to_pending.as_secs_f64(),
                    one.create_to_pending.as_secs_f64(),
                    one.create_to_last_created.as_secs_f64(),
                    one.observed.as_secs_f64(),
                    one.entries,
                );
            }
            real.push(one);
        }
        let summary = Summary::of(tasks, &real, &simulated, load_before, load_average());
        if args.json {
            println!("{}", summary.to_json());
        } else {
            print!("{}", summary.to_text());
        }
    }
    Ok(code)
}

/// `/proc/loadavg`'s three averages, or "unknown".
fn load_average() -> String {
    match std::fs::read_to_string("/proc/loadavg") {
        Ok(text) => text.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        Err(_) => "unknown".into(),
    }
}

/// Median, least and most of some durations, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(values: &[Duration]) -> Spread {
        let secs = |d: Option<&Duration>| d.map_or(0.0, Duration::as_secs_f64);
        Spread { median: median(values).as_secs_f64(), min: secs(values.iter().min()), max: secs(values.iter().max()) }
    }

    fn json(&self) -> serde_json::Value {
        json!({ "median_s": self.median, "min_s": self.min, "max_s": self.max })
    }
}

/// One task count's figures.
#[derive(Clone, Debug, PartialEq)]
struct Summary {
    tasks: u64,
    runs: usize,
    /// Real: first task created -> last PENDING (the simulator's interval).
    real: Spread,
    /// Real: create request -> last PENDING.
    real_from_request: Spread,
    /// Real: create request -> last task created.
    real_created: Spread,
    /// Simulated seconds, first task created -> last PENDING.
    simulated: Spread,
    /// Real: raft entries from the service's creation to the last task write (median).
    entries: u64,
    load_before: String,
    load_after: String,
}

impl Summary {
    fn of(tasks: u64, real: &[RealThroughput], simulated: &[Duration], before: String, after: String) -> Summary {
        let pick = |f: fn(&RealThroughput) -> Duration| Spread::of(&real.iter().map(f).collect::<Vec<_>>());
        Summary {
            tasks,
            runs: real.len(),
            real: pick(|r| r.first_task_to_pending),
            real_from_request: pick(|r| r.create_to_pending),
            real_created: pick(|r| r.create_to_last_created),
            simulated: Spread::of(simulated),
            entries: {
                let mut entries: Vec<u64> = real.iter().map(|r| r.entries).collect();
                entries.sort_unstable();
                entries.get(entries.len() / 2).copied().unwrap_or(0)
            },
            load_before: before,
            load_after: after,
        }
    }

    /// Real median over simulated median (None when the simulator took no time).
    fn ratio(&self) -> Option<f64> {
        (self.simulated.median > 0.0).then(|| self.real.median / self.simulated.median)
    }

    fn to_text(&self) -> String {
        let Summary { tasks, runs, real, real_from_request, real_created, simulated, .. } = self;
        let rate = |secs: f64| if secs > 0.0 { format!("{:.0}", *tasks as f64 / secs) } else { "-".into() };
        let ratio = self.ratio().map_or("-".into(), |r| format!("{r:.1}"));
        format!(
            "{tasks} tasks NEW -> PENDING, {runs} runs each (first task created .. last task PENDING):\n  \
             real manager (1 manager, wall s):  median {:.2} s (min {:.2}, max {:.2}), {} tasks/s; from the create \
             request {:.2} s, the orchestrator done after {:.2} s; {} raft entries\n  \
             simulator (3 managers, simulated s): median {:.2} s (min {:.2}, max {:.2}), {} tasks/simulated s\n  \
             real / simulated: {ratio}x; load average before {}, after {}\n  \
             the simulator's seconds are {THROUGHPUT_IS_RELATIVE}\n",
            real.median,
            real.min,
            real.max,
            rate(real.median),
            real_from_request.median,
            real_created.median,
            self.entries,
            simulated.median,
            simulated.min,
            simulated.max,
            rate(simulated.median),
            self.load_before,
            self.load_after,
        )
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "tasks": self.tasks,
            "runs": self.runs,
            "real_first_task_to_pending": self.real.json(),
            "real_request_to_pending": self.real_from_request.json(),
            "real_request_to_last_created": self.real_created.json(),
            "real_raft_entries": self.entries,
            "simulated_first_task_to_pending": self.simulated.json(),
            "ratio_real_over_simulated": self.ratio(),
            "load_before": self.load_before,
            "load_after": self.load_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real(first_ms: u64) -> RealThroughput {
        let ms = Duration::from_millis;
        RealThroughput {
            tasks: 1000,
            create_to_pending: ms(first_ms + 100),
            first_task_to_pending: ms(first_ms),
            create_to_last_created: ms(50),
            observed: ms(2000),
            polls: 2,
            entries: 15,
        }
    }

    #[test]
    fn the_summary_quotes_medians_and_the_ratio_of_the_medians() {
        let ms = Duration::from_millis;
        let runs = [real(3000), real(1000), real(2000)];
        let summary = Summary::of(1000, &runs, &[ms(500), ms(400), ms(600)], "1.0 1.0 1.0".into(), "2.0".into());
        assert_eq!(summary.real, Spread { median: 2.0, min: 1.0, max: 3.0 });
        assert_eq!(summary.real_from_request.median, 2.1);
        assert_eq!(summary.simulated, Spread { median: 0.5, min: 0.4, max: 0.6 });
        assert_eq!(summary.ratio(), Some(4.0));
        let text = summary.to_text();
        assert!(text.contains("median 2.00 s (min 1.00, max 3.00), 500 tasks/s"), "{text}");
        assert!(text.contains("real / simulated: 4.0x"), "{text}");
        assert_eq!(summary.to_json()["ratio_real_over_simulated"], 4.0);
        assert_eq!(summary.to_json()["simulated_first_task_to_pending"]["median_s"], 0.5);
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        use clap::Parser as _;
        let cli = crate::args::Cli::try_parse_from(["allocsim", "bench"].iter().chain(args))?;
        match cli.command {
            crate::args::Command::Bench(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn real_takes_task_counts_and_runs_and_refuses_the_simulator_only_flags() {
        let args = parse(&["--real"]).unwrap();
        assert_eq!(
            (args.real, args.real_tasks.as_slice(), args.runs, args.json),
            (true, &[1_000, 5_000][..], 3, false)
        );
        let args = parse(&["--real", "--real-tasks", "10,20", "--runs", "2", "--json"]).unwrap();
        assert_eq!((args.real_tasks.as_slice(), args.runs, args.json), (&[10, 20][..], 2, true));
        for wrong in [
            &["--real-tasks", "10"][..],
            &["--runs", "2"],
            &["--json"],
            &["--real", "--tasks", "5"],
            &["--real", "--real-tasks", "0"],
        ] {
            assert!(parse(wrong).is_err(), "{wrong:?} parsed");
        }
    }

    #[test]
    fn no_simulated_time_gives_no_ratio() {
        let summary = Summary::of(10, &[real(10)], &[], String::new(), String::new());
        assert_eq!(summary.ratio(), None);
        assert!(summary.to_text().contains("real / simulated: -x"));
    }
}
