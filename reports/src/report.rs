//! `allocsim report RESULTS... --out DIR`: the sweep report as a whole. Reads the inputs
//! ([`make_report`]), then renders the same verdict three ways: text for terminals
//! ([`Sweep::to_text`]), `report.json` ([`SweepReport::to_json`]) and `index.html` with its charts
//! ([`Sweep::to_html`]); [`Sweep::files`] lists what goes into DIR.

use std::fmt::Write as _;
use std::path::PathBuf;

use swarmalloc_sim::series::THROUGHPUT_IS_RELATIVE;

use crate::charts::{Chart, sweep_charts};
use crate::error::InputError;
use crate::html::{Page, chart, esc, linked_chart, num, opt, table};
use crate::output::Output;
use crate::results::Progress;
use crate::sweep::{ScenarioSummary, Sweep, SweepOptions, SweepVerdict, read_sweep};

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

fn seeds_text(seeds: &[u64]) -> String {
    const SHOWN: usize = 12;
    let mut text: Vec<String> = seeds.iter().take(SHOWN).map(u64::to_string).collect();
    if seeds.len() > SHOWN {
        text.push(format!("and {} more", seeds.len() - SHOWN));
    }
    text.join(", ")
}

fn none_or_list(items: &[String]) -> String {
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

    fn headline(&self) -> String {
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
        let width = r.scenarios.iter().map(|s| s.scenario.len()).max().unwrap_or(8).max(8);
        let _ = writeln!(
            out,
            "{:<width$} {:>6} {:>6} {:>6} {:>13} {:>16} {:>8}",
            "scenario", "seeds", "passed", "failed", "tasks/alloc-s", "p50/p99/max ms", "leaders"
        );
        for s in &r.scenarios {
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
        let _ =
            writeln!(out, "tasks/alloc-s: tasks NEW -> PENDING per second of allocation, in {THROUGHPUT_IS_RELATIVE}");
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
        if let Some(fuzz) = &r.fuzz {
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
        if let Some(b) = &r.baseline {
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

    /// One self-contained page: the verdict, per scenario and per checker, the failures, the
    /// charts, the fuzz summary and the baseline comparison.
    pub fn to_html(&self, charts: &[Chart]) -> String {
        let r = &self.report;
        let mut page = Page::new("swarmalloc sweep report");
        let pass = r.verdict == SweepVerdict::Pass;
        let mut headline = self.headline();
        for reason in &r.incomplete {
            let _ = write!(headline, "; {reason}");
        }
        page.verdict(pass, r.verdict.word(), &headline);
        let inputs: Vec<String> = r
            .inputs
            .iter()
            .map(|i| {
                let dup = if i.duplicates > 0 { format!(", {} duplicates", i.duplicates) } else { String::new() };
                format!("<code>{}</code> ({} results{dup})", esc(&i.file), i.results)
            })
            .collect();
        page.raw(&format!("<p class=\"muted\">Read from {}. Schema {}.</p>\n", inputs.join(", "), r.schema));
        // What failed comes first; then every scenario, its charts folded when it passed.
        page.section("failures", "Failures", &self.failures_html(charts));
        page.section("scenarios", "Scenarios", &self.scenarios_html());
        page.section("checkers", "Checkers", &self.checkers_html());
        if r.baseline.is_some() {
            page.section("baseline", "Since the baseline", &self.baseline_html());
        }
        let find = |prefix: &'static str| charts.iter().filter(move |c| c.file.starts_with(prefix));
        page.section("by-scenario", "By scenario: throughput and pools", &self.by_scenario_html(charts));
        let mut latency = String::from(
            "<p class=\"muted\">From the task's creation being applied to its move to PENDING being applied. p50 and \
             p99 are histogram bucket upper bounds (at most 12.5% above the exact value); max is exact.</p>\n",
        );
        for c in find("latency") {
            latency.push_str(&chart(&c.title, &c.file, &c.svg));
        }
        page.section("latency", "NEW -> PENDING latency", &latency);
        let mut restores = self.restores_html();
        for c in find("restores") {
            restores.push_str(&chart(&c.title, &c.file, &c.svg));
        }
        page.section("restores", "Restore at each leader change", &restores);
        let mut speed =
            String::from("<p class=\"muted\">Wall clock: the only values here that vary between runs.</p>\n");
        for c in find("sweep-speed") {
            speed.push_str(&chart(&c.title, &c.file, &c.svg));
        }
        page.section("speed", "Sweep speed", &speed);
        if r.fuzz.is_some() {
            page.section("fuzz", "Fuzzing", &self.fuzz_html());
        }
        page.finish()
    }

    /// One block per scenario, failing ones first and open, with its throughput and pool charts;
    /// a scenario whose seeds all passed is folded and its charts are linked images (drawn from
    /// `charts/` when unfolded), which keeps the page small for a library of scenarios.
    fn by_scenario_html(&self, charts: &[Chart]) -> String {
        let mut html = String::from(
            "<p class=\"muted\">Throughput: simulated time, mean over seeds. Shading behind the bars: grey, the share \
             of run time without a leader; red, with a node or proposal fault on (partition, kill, slow follower, \
             batch cut, ambiguous commit); the orange strip on top, with message faults on. Triangles: leader terms \
             starting. Pools: each network's subnets at the end checks, mean over seeds; fragmentation is 1 - the \
             longest run of free addresses / all free addresses. Each failure above has its own timeline.</p>\n",
        );
        let mut order: Vec<(usize, &ScenarioSummary)> = self.report.scenarios.iter().enumerate().collect();
        order.sort_by_key(|(i, s)| (s.failed == 0, *i));
        for (i, s) in order {
            let name = format!("{:02}-{}", i, crate::charts::slug(&s.scenario));
            let mine: Vec<&Chart> = charts
                .iter()
                .filter(|c| c.file == format!("throughput-{name}.svg") || c.file == format!("pools-{name}.svg"))
                .collect();
            let failed = s.failed > 0;
            let verdict = if failed {
                format!("FAIL, {} of {} seeds", s.failed, s.seeds)
            } else {
                format!("PASS, {} seeds", s.seeds)
            };
            let _ = writeln!(
                html,
                "<details id=\"scenario-{}\"{}><summary><strong>{}</strong> {}</summary>",
                esc(&crate::charts::slug(&s.scenario)),
                if failed { " open" } else { "" },
                esc(&s.scenario),
                esc(&verdict)
            );
            for c in mine {
                if failed {
                    html.push_str(&chart(&c.title, &c.file, &c.svg));
                } else {
                    html.push_str(&linked_chart(&c.title, &c.file, &c.svg));
                }
            }
            html.push_str("</details>\n");
        }
        html
    }

    fn scenarios_html(&self) -> String {
        let rows: Vec<(Option<&str>, Vec<String>)> = self
            .report
            .scenarios
            .iter()
            .map(|s| {
                let class = (s.failed > 0).then_some("fail");
                let failing =
                    if s.failing_seeds.is_empty() { String::new() } else { esc(&seeds_text(&s.failing_seeds)) };
                let cells = vec![
                    esc(&s.scenario),
                    num(s.seeds),
                    num(s.passed),
                    num(s.failed),
                    failing,
                    num(s.tasks.pending),
                    num(format!("{:.1}", s.tasks.pending_per_window_s)),
                    opt(s.latency.p50_ms),
                    opt(s.latency.p99_ms),
                    opt(s.latency.max_ms),
                    num(s.leader_changes),
                    num(s.faults_injected),
                ];
                (class, cells)
            })
            .collect();
        let headers = [
            "scenario",
            "seeds",
            "passed",
            "failed",
            "failing seeds",
            "tasks to PENDING",
            "tasks / sim s (allocating)",
            "p50 ms",
            "p99 ms",
            "max ms",
            "leader changes",
            "faults",
        ];
        let mut html = table(&headers, &rows);
        let missing: u64 = self.report.scenarios.iter().map(|s| s.seeds - s.series_seeds).sum();
        if missing > 0 {
            html += &format!(
                "<p class=\"muted\">{missing} result lines have no series (written before series existed): they count in \
                 the verdict but not in the charts.</p>\n"
            );
        }
        html
    }

    fn checkers_html(&self) -> String {
        if self.report.checkers.is_empty() {
            return "<p>No checker fired.</p>\n".into();
        }
        let rows: Vec<(Option<&str>, Vec<String>)> = self
            .report
            .checkers
            .iter()
            .map(|c| {
                let seeds: Vec<String> = c
                    .seeds
                    .iter()
                    .map(|(scenario, seeds)| format!("{}: {}", esc(scenario), esc(&seeds_text(seeds))))
                    .collect();
                (Some("fail"), vec![format!("<code>{}</code>", esc(&c.checker)), num(c.failed), seeds.join("<br>")])
            })
            .collect();
        table(&["checker", "failed seeds", "where"], &rows)
    }

    fn failures_html(&self, charts: &[Chart]) -> String {
        if self.report.failures.is_empty() {
            return "<p>No seed failed.</p>\n".into();
        }
        let mut html = String::new();
        for f in &self.report.failures {
            let v = &f.violation;
            let _ = write!(
                html,
                "<div class=\"card fail\" id=\"failure-{}-{}\">\n<h3>{} seed {}: <code>{}</code></h3>\n",
                esc(&crate::charts::slug(&f.scenario)),
                f.seed,
                esc(&f.scenario),
                f.seed,
                esc(&v.checker)
            );
            let _ = writeln!(
                html,
                "<p>First violation at simulated {} ms, raft index {}, on {}: {}</p>",
                v.t_ms,
                v.raft_index,
                esc(&v.node),
                esc(&v.detail)
            );
            if !v.objects.is_empty() {
                let _ = writeln!(html, "<p>Objects: <code>{}</code></p>", esc(&v.objects.join(", ")));
            }
            let _ = writeln!(
                html,
                "<p>Faults: <code>{}</code>; trace hash <code>{}</code></p>",
                esc(&f.faults),
                esc(&f.trace_hash)
            );
            let found = if f.failure_file_found {
                ""
            } else {
                " <span class=\"muted\">(the failure file was not found next to the results; <code>allocsim run</code> writes it there)</span>"
            };
            let _ = writeln!(html, "<p>Replay: <code>{}</code>{found}</p>", esc(&f.replay));
            let detail = self.charts.failure_details.get(&(f.scenario.clone(), f.seed));
            match (&f.shrunk, detail.and_then(|d| d.shrunk_text.as_ref())) {
                (Some(path), Some(text)) => {
                    let _ = writeln!(
                        html,
                        "<details open><summary>Shrunk scenario <code>{}</code> (replay: <code>allocsim replay {} --seed {}</code>)</summary><pre>{}</pre></details>",
                        esc(path),
                        esc(path),
                        f.seed,
                        esc(text)
                    );
                }
                (Some(path), None) => {
                    let _ = writeln!(html, "<p>Shrunk scenario: <code>{}</code></p>", esc(path));
                }
                (None, _) => {
                    let _ = writeln!(
                        html,
                        "<p class=\"muted\">No shrunk scenario yet: <code>allocsim shrink {}</code> writes one next to \
                         the failure file.</p>",
                        esc(&f.failure_file)
                    );
                }
            }
            let name = format!("failure-{}-{}.svg", crate::charts::slug(&f.scenario), f.seed);
            if let Some(c) = charts.iter().find(|c| c.file == name) {
                html.push_str(&chart(&c.title, &c.file, &c.svg));
            }
            if let Some(d) = detail.filter(|d| !d.trace_tail.is_empty()) {
                let tail: Vec<&str> = d.trace_tail.iter().rev().take(40).rev().map(String::as_str).collect();
                let _ = writeln!(
                    html,
                    "<details><summary>Last {} trace lines</summary><pre>{}</pre></details>",
                    tail.len(),
                    esc(&tail.join("\n"))
                );
            }
            html.push_str("</div>\n");
        }
        let shown = self.charts.failure_details.len();
        if self.report.failures.len() > shown {
            let _ = writeln!(
                html,
                "<p class=\"muted\">Timelines and trace tails are shown for the first {shown} failures only.</p>"
            );
        }
        html
    }

    fn restores_html(&self) -> String {
        let rows: Vec<(Option<&str>, Vec<String>)> = self
            .report
            .scenarios
            .iter()
            .filter(|s| s.restores.count > 0)
            .map(|s| {
                let d = &s.restores.duration;
                (
                    None,
                    vec![
                        esc(&s.scenario),
                        num(s.restores.count),
                        opt(d.p50_ms),
                        opt(d.p99_ms),
                        opt(d.max_ms),
                        opt(s.restores.objects_mean),
                        num(s.restores.objects_max),
                        num(s.restores.queued),
                        num(s.restores.findings),
                    ],
                )
            })
            .collect();
        let mut html = String::from(
            "<p class=\"muted\">Simulated time from becoming leader to the allocator's restore and first pass \
             (which run in the same tick): mostly waiting for the term's first entry to apply.</p>\n",
        );
        html += &table(
            &[
                "scenario",
                "restores",
                "p50 ms",
                "p99 ms",
                "max ms",
                "objects (mean)",
                "objects (max)",
                "queued",
                "findings",
            ],
            &rows,
        );
        html
    }

    fn fuzz_html(&self) -> String {
        let Some(fuzz) = &self.report.fuzz else { return String::new() };
        let rows: Vec<(Option<&str>, Vec<String>)> = fuzz
            .targets
            .iter()
            .map(|t| {
                let mut crashes: Vec<String> = t
                    .crashes
                    .iter()
                    .map(|c| {
                        let code = |v: &Option<String>| {
                            v.as_deref().map_or("?".into(), |v| format!("<code>{}</code>", esc(v)))
                        };
                        let minimized = c
                            .minimized
                            .as_ref()
                            .map_or(String::new(), |_| format!("<br>minimized: {}", code(&c.minimized)));
                        format!("{}{minimized}<br>reproduce: {}", code(&c.artifact), code(&c.reproduce))
                    })
                    .collect();
                if t.unlisted > 0 {
                    crashes.push(format!("{} crashes counted but not listed", t.unlisted));
                }
                let class = (t.crash_count() > 0).then_some("fail");
                let cells = vec![
                    format!("<code>{}</code>", esc(&t.target)),
                    opt(t.runs),
                    opt(t.execs_per_sec.map(|n| format!("{n:.0}"))),
                    opt(t.coverage),
                    num(t.crash_count()),
                    crashes.join("<br>"),
                ];
                (class, cells)
            })
            .collect();
        let mut html = format!("<p class=\"muted\">From <code>{}</code>.</p>\n", esc(&fuzz.source));
        html += &table(&["target", "runs", "execs / s", "coverage", "crashes", "artifacts"], &rows);
        if !fuzz.warnings.is_empty() {
            html += "<p>Read with warnings:</p>\n<ul>\n";
            for w in &fuzz.warnings {
                let _ = writeln!(html, "<li>{}</li>", esc(w));
            }
            html += "</ul>\n";
        }
        html
    }

    fn baseline_html(&self) -> String {
        let Some(b) = &self.report.baseline else { return String::new() };
        let mut html = format!(
            "<p>Compared with <code>{}</code>: {} new failures, {} fixed, {} still failing, {} baseline failures not rerun.</p>\n",
            esc(&b.file),
            b.new_failures.len(),
            b.fixed.len(),
            b.still_failing.len(),
            b.not_rerun
        );
        let changes = |list: &[crate::baseline::Change],
                       class: Option<&'static str>|
         -> Vec<(Option<&'static str>, Vec<String>)> {
            list.iter()
                .map(|c| {
                    (
                        class,
                        vec![
                            esc(&c.scenario),
                            num(c.seed),
                            format!("<code>{}</code>", esc(&c.checker)),
                            esc(&c.before),
                        ],
                    )
                })
                .collect()
        };
        for (title, list, class) in [
            ("New failures", &b.new_failures, Some("fail")),
            ("Fixed", &b.fixed, None),
            ("Still failing", &b.still_failing, Some("fail")),
        ] {
            if !list.is_empty() {
                let _ = writeln!(html, "<h3>{title}</h3>");
                html += &table(&["scenario", "seed", "checker", "before"], &changes(list, class));
            }
        }
        if !b.scenarios_added.is_empty() || !b.scenarios_removed.is_empty() {
            let _ = writeln!(
                html,
                "<p>Scenarios added: {}; removed: {}.</p>",
                esc(&none_or_list(&b.scenarios_added)),
                esc(&none_or_list(&b.scenarios_removed))
            );
        }
        let rows: Vec<(Option<&str>, Vec<String>)> = b
            .throughput
            .iter()
            .map(|t| {
                (
                    None,
                    vec![
                        esc(&t.scenario),
                        num(format!("{:.1}", t.before_per_s)),
                        num(format!("{:.1}", t.after_per_s)),
                        opt(t.change_pct.map(|p| format!("{p:+.1}%"))),
                        opt(t.p50_before_ms),
                        opt(t.p50_after_ms),
                        opt(t.p99_before_ms),
                        opt(t.p99_after_ms),
                    ],
                )
            })
            .collect();
        html += "<h3>Throughput and latency</h3>\n";
        html += &table(
            &[
                "scenario",
                "tasks / sim s (allocating) before",
                "after",
                "change",
                "p50 before",
                "p50 after",
                "p99 before",
                "p99 after",
            ],
            &rows,
        );
        html
    }
}
