//! The sweep report's page (`index.html`), rendered from the askama template
//! `reports/templates/report.html`, which escapes every value it shows: the verdict, the
//! failures (each with its replay command, shrunk scenario, timeline and trace tail), the
//! tables per scenario and per checker, the baseline comparison, a block per scenario (failing
//! ones first and open, passing ones folded with their charts linked), latency, restores, sweep
//! speed and the fuzz summary. This file picks what goes where; the template lays it out.

use askama::Template;

use crate::baseline_diff::{BaselineDiff, Change};
use crate::charts::{Chart, slug};
use crate::html::{STYLE, inline_svg};
use crate::report::{none_or_list, seeds_text};
use crate::sweep::{FailureDetail, FailureSummary, ScenarioSummary, Sweep, SweepReport, SweepVerdict};

/// Trace lines shown under a failure.
const TRACE_TAIL: usize = 40;

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage<'a> {
    r: &'a SweepReport,
    style: &'static str,
    pass: bool,
    /// The verdict's words after its first one.
    headline: String,
    /// (section id, heading) in page order.
    nav: Vec<(&'static str, &'static str)>,
    failures: Vec<FailureView<'a>>,
    /// Failures with a timeline and a trace tail (the first ones).
    details_shown: usize,
    /// Result lines without a series: in the verdict, not in the charts.
    missing_series: u64,
    /// Failing scenarios first.
    blocks: Vec<ScenarioBlock<'a>>,
    latency: Vec<&'a Chart>,
    restores: Vec<&'a Chart>,
    speed: Vec<&'a Chart>,
    /// What a simulated throughput is worth beside a real manager's.
    relative: &'static str,
}

struct FailureView<'a> {
    summary: &'a FailureSummary,
    slug: String,
    detail: Option<&'a FailureDetail>,
    timeline: Option<&'a Chart>,
    trace_tail: Vec<&'a str>,
}

impl FailureView<'_> {
    fn shrunk_text(&self) -> Option<&str> {
        self.detail.and_then(|d| d.shrunk_text.as_deref())
    }
}

struct ScenarioBlock<'a> {
    summary: &'a ScenarioSummary,
    slug: String,
    charts: Vec<&'a Chart>,
}

impl<'a> ReportPage<'a> {
    fn new(sweep: &'a Sweep, headline: String, charts: &'a [Chart]) -> ReportPage<'a> {
        let r = &sweep.report;
        let mut nav = vec![("failures", "Failures"), ("scenarios", "Scenarios"), ("checkers", "Checkers")];
        if r.baseline.is_some() {
            nav.push(("baseline", "Since the baseline"));
        }
        nav.extend([
            ("by-scenario", "By scenario: throughput and pools"),
            ("latency", "NEW -> PENDING latency"),
            ("restores", "Restore at each leader change"),
            ("speed", "Sweep speed"),
        ]);
        if r.fuzz.is_some() {
            nav.push(("fuzz", "Fuzzing"));
        }
        let failures = r
            .failures
            .iter()
            .map(|f| {
                let slug = slug(&f.scenario);
                let detail = sweep.charts.failure_details.get(&(f.scenario.clone(), f.seed));
                let timeline_file = format!("failure-{slug}-{}.svg", f.seed);
                let tail = detail.map_or(&[][..], |d| &d.trace_tail[..]);
                FailureView {
                    summary: f,
                    timeline: charts.iter().find(|c| c.file == timeline_file),
                    trace_tail: tail[tail.len().saturating_sub(TRACE_TAIL)..].iter().map(String::as_str).collect(),
                    slug,
                    detail,
                }
            })
            .collect();
        let mut order: Vec<(usize, &ScenarioSummary)> = r.scenarios.iter().enumerate().collect();
        order.sort_by_key(|(i, s)| (s.failed == 0, *i));
        let blocks = order
            .into_iter()
            .map(|(i, s)| {
                let name = format!("{i:02}-{}", slug(&s.scenario));
                let mine = [format!("throughput-{name}.svg"), format!("pools-{name}.svg")];
                ScenarioBlock {
                    summary: s,
                    slug: slug(&s.scenario),
                    charts: charts.iter().filter(|c| mine.contains(&c.file)).collect(),
                }
            })
            .collect();
        let find = |prefix: &str| charts.iter().filter(|c| c.file.starts_with(prefix)).collect::<Vec<_>>();
        ReportPage {
            r,
            style: STYLE,
            pass: r.verdict == SweepVerdict::Pass,
            headline,
            nav,
            failures,
            details_shown: sweep.charts.failure_details.len(),
            missing_series: r.scenarios.iter().map(|s| s.seeds - s.series_seeds).sum(),
            blocks,
            latency: find("latency"),
            restores: find("restores"),
            speed: find("sweep-speed"),
            relative: swarmalloc_sim::series::THROUGHPUT_IS_RELATIVE,
        }
    }

    /// A number, or a dash when there is none.
    fn dash<T: std::fmt::Display>(&self, value: &Option<T>) -> String {
        value.as_ref().map_or_else(|| "–".into(), T::to_string)
    }

    /// Execs per second, whole.
    fn whole(&self, value: &Option<f64>) -> String {
        self.dash(&value.map(|n| format!("{n:.0}")))
    }

    /// A relative change in percent with its sign.
    fn change(&self, pct: &Option<f64>) -> String {
        self.dash(&pct.map(|p| format!("{p:+.1}%")))
    }

    /// The baseline's lists of changed seeds: title, changes, whether they are failures.
    fn changes<'b>(&self, b: &'b BaselineDiff) -> [(&'static str, &'b [Change], bool); 3] {
        [("New failures", &b.new_failures, true), ("Fixed", &b.fixed, false), ("Still failing", &b.still_failing, true)]
    }

    fn seeds(&self, seeds: &[u64]) -> String {
        seeds_text(seeds)
    }

    fn none_or_list(&self, items: &[String]) -> String {
        none_or_list(items)
    }

    fn inline_svg<'s>(&self, svg: &'s str) -> &'s str {
        inline_svg(svg)
    }
}

impl Sweep {
    /// One self-contained page: the verdict, the failures, per scenario and per checker, the
    /// baseline comparison, the charts, the fuzz summary.
    pub fn to_html(&self, charts: &[Chart]) -> String {
        let mut headline = self.headline();
        for reason in &self.report.incomplete {
            headline.push_str("; ");
            headline.push_str(reason);
        }
        ReportPage::new(self, headline, charts).render().expect("the report page renders plain data")
    }
}
