//! `allocsim report RESULTS... --out DIR`: the sweep report as a whole. Reads the inputs
//! ([`make_report`]), then renders the same verdict three ways: text for terminals
//! ([`Sweep::to_text`]), `report.json` ([`SweepReport::to_json`]) and `index.html` with its charts
//! ([`Sweep::to_html`], in `report_page.rs`); [`Sweep::files`] lists what goes into DIR.

use std::fmt::Write as _;
use std::path::PathBuf;

use swarmalloc_sim::series::THROUGHPUT_IS_RELATIVE;

use crate::baseline_diff::BaselineDiff;
use crate::charts::{Chart, sweep_charts};
use crate::error::InputError;
use crate::fuzz::FuzzSummary;
use crate::output::Output;
use crate::results::Progress;
use crate::sweep::{ScenarioSummary, Sweep, SweepOptions, SweepReport, SweepVerdict, read_sweep};

/// What `allocsim report` reads.
#[derive(Clone, Debug, Default)]
pub struct ReportOptions {
    pub results: Vec<PathBuf>,
    pub fuzz: Option<PathBuf>,
    pub baseline: Option<PathBuf>,
    pub sweep: SweepOptions,
}

/// Reads every input; fails on the first unreadable one, before anything is written.
pub fn make_report(options: &ReportOptions, progress: &mut dyn FnMut(Progress)) -> Result<Sweep, InputError> {
    let mut sweep = read_sweep(&options.results, &options.sweep, progress)?;
    if let Some(file) = &options.fuzz {
        sweep.report.fuzz = Some(crate::fuzz::read_fuzz(file)?);
    }
    if let Some(file) = &options.baseline {
        sweep.report.baseline = Some(crate::baseline::compare(file, &sweep.report)?);
    }
    sweep.report.update_verdict();
    Ok(sweep)
}

pub(crate) fn seeds_text(seeds: &[u64]) -> String {
    const SHOWN: usize = 12;
    let mut text: Vec<String> = seeds.iter().take(SHOWN).map(u64::to_string).collect();
    if seeds.len() > SHOWN {
        text.push(format!("and {} more", seeds.len() - SHOWN));
    }
    text.join(", ")
}

pub(crate) fn none_or_list(items: &[String]) -> String {
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

fn ms(v: Option<u64>) -> String {
    v.map_or("–".into(), |v| v.to_string())
}

fn latency_text(s: &ScenarioSummary) -> String {
    format!("{}/{}/{}", ms(s.latency.p50_ms), ms(s.latency.p99_ms), ms(s.latency.max_ms))
}

impl Sweep {
    /// 0 when every seed passed (and the fuzz summary lists no crash) and the sweep ran to its
    /// end, else 1.
    pub fn exit_code(&self) -> u8 {
        match self.report.verdict {
            SweepVerdict::Pass => 0,
            SweepVerdict::Fail | SweepVerdict::Incomplete => 1,
        }
    }

    pub(crate) fn headline(&self) -> String {
        let t = &self.report.totals;
        let mut text =
            format!("{} seeds of {} scenarios: {} passed, {} failed", t.seeds, t.scenarios, t.passed, t.failed);
        if let Some(fuzz) = &self.report.fuzz {
            let _ = write!(text, "; fuzz: {} targets, {} crashes", fuzz.targets.len(), t.fuzz_crashes);
        }
        text
    }

    /// The verdict for terminals: per scenario, per checker, each failure with its replay
    /// command, the fuzz summary and the baseline comparison, then the verdict line.
    pub fn to_text(&self) -> String {
        let r = &self.report;
        let mut out = String::new();
        let files: Vec<&str> = r.inputs.iter().map(|i| i.file.as_str()).collect();
        let _ = writeln!(out, "report of {}", files.join(", "));
        scenarios_text(&mut out, &r.scenarios);
        failures_text(&mut out, r);
        if let Some(fuzz) = &r.fuzz {
            fuzz_text(&mut out, fuzz);
        }
        if let Some(b) = &r.baseline {
            baseline_text(&mut out, b);
        }
        for reason in &r.incomplete {
            let _ = writeln!(out, "incomplete: {reason}");
        }
        let _ = writeln!(out, "{}: {}", r.verdict.word(), self.headline());
        out
    }

    /// The charts of this report.
    pub fn charts(&self) -> Vec<Chart> {
        sweep_charts(self)
    }

    /// The files of DIR, put in place in this order: `charts/` (replaced whole), `report.json`,
    /// `index.html`.
    pub fn files(&self) -> Output {
        let charts = self.charts();
        let mut files: Vec<(String, String)> = charts
            .iter()
            .filter_map(|c| c.svg.as_ref().ok().map(|svg| (format!("charts/{}", c.file), svg.clone())))
            .collect();
        files.push(("report.json".into(), self.report.to_json()));
        files.push(("index.html".into(), self.to_html(&charts)));
        Output { dirs: vec!["charts".into()], files }
    }
}

/// The table of scenarios: seeds, verdicts, throughput, latency, leader changes.
fn scenarios_text(out: &mut String, scenarios: &[ScenarioSummary]) {
    let width = scenarios.iter().map(|s| s.scenario.len()).max().unwrap_or(8).max(8);
    let _ = writeln!(
        out,
        "{:<width$} {:>6} {:>6} {:>6} {:>13} {:>16} {:>8}",
        "scenario", "seeds", "passed", "failed", "tasks/alloc-s", "p50/p99/max ms", "leaders"
    );
    for s in scenarios {
        let _ = writeln!(
            out,
            "{:<width$} {:>6} {:>6} {:>6} {:>13} {:>16} {:>8}",
            s.scenario,
            s.seeds,
            s.passed,
            s.failed,
            // A real run (`allocsim live`) has no simulated time to measure throughput in.
            if s.scenario.ends_with(" [real]") {
                "–".to_string()
            } else {
                format!("{:.1}", s.tasks.pending_per_window_s)
            },
            latency_text(s),
            s.leader_changes
        );
    }
    let _ = writeln!(out, "tasks/alloc-s: tasks NEW -> PENDING per second of allocation, in {THROUGHPUT_IS_RELATIVE}");
}

/// Which checkers failed on which seeds, then each failure with its replay command.
fn failures_text(out: &mut String, r: &SweepReport) {
    for c in &r.checkers {
        let seeds: Vec<String> =
            c.seeds.iter().map(|(scenario, seeds)| format!("{scenario} seeds {}", seeds_text(seeds))).collect();
        let _ = writeln!(out, "checker {}: {} failed ({})", c.checker, c.failed, seeds.join("; "));
    }
    for f in &r.failures {
        let v = &f.violation;
        let _ = writeln!(
            out,
            "FAIL {} seed {}: {} at t={}ms raft index {} on {}: {}",
            f.scenario, f.seed, v.checker, v.t_ms, v.raft_index, v.node, v.detail
        );
        let found = if f.failure_file_found { "" } else { " (failure file not found)" };
        let _ = writeln!(out, "  replay: {}{found}", f.replay);
        if let Some(shrunk) = &f.shrunk {
            let _ = writeln!(out, "  shrunk: {shrunk}");
        }
    }
}

/// Each fuzz target's numbers and crashes, and what the fuzz summary warned of.
fn fuzz_text(out: &mut String, fuzz: &FuzzSummary) {
    for t in &fuzz.targets {
        let _ = writeln!(
            out,
            "fuzz {}: {} runs, {} execs/s, coverage {}, {} crashes",
            t.target,
            t.runs.map_or("?".into(), |n| n.to_string()),
            t.execs_per_sec.map_or("?".into(), |n| format!("{n:.0}")),
            t.coverage.map_or("?".into(), |n| n.to_string()),
            t.crash_count()
        );
        for crash in &t.crashes {
            let _ = writeln!(
                out,
                "  crash: {}",
                crash.reproduce.as_deref().or(crash.artifact.as_deref()).unwrap_or("(no details)")
            );
        }
        if t.unlisted > 0 {
            let _ = writeln!(out, "  and {} crashes counted but not listed", t.unlisted);
        }
    }
    for warning in &fuzz.warnings {
        let _ = writeln!(out, "fuzz summary {}: {warning}", fuzz.source);
    }
}

/// What changed since the baseline.
fn baseline_text(out: &mut String, b: &BaselineDiff) {
    let _ = writeln!(
        out,
        "since {}: {} new failures, {} fixed, {} still failing, {} not rerun",
        b.file,
        b.new_failures.len(),
        b.fixed.len(),
        b.still_failing.len(),
        b.not_rerun
    );
    for c in &b.new_failures {
        let _ = writeln!(out, "  new: {} seed {} ({}; before: {})", c.scenario, c.seed, c.checker, c.before);
    }
    for c in &b.fixed {
        let _ = writeln!(out, "  fixed: {} seed {} (was {})", c.scenario, c.seed, c.checker);
    }
    for t in b.throughput.iter().filter(|t| t.change_pct.is_some_and(|p| p != 0.0)) {
        let _ = writeln!(
            out,
            "  throughput {}: {:.1} -> {:.1} tasks/alloc-s ({:+.1}%)",
            t.scenario,
            t.before_per_s,
            t.after_per_s,
            t.change_pct.unwrap_or(0.0)
        );
    }
}
