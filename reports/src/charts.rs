//! The report's charts, drawn with plotters into SVG strings: allocation throughput over
//! simulated time (leaderless time and faults shaded, per scenario and per failing seed with its
//! own leader terms and fault windows), NEW -> PENDING latency (p50, p99, max per scenario and
//! the merged histogram), pool utilisation and fragmentation per network, restore duration at
//! each leader change, and the sweep's seeds per second (the one wall-clock chart).
//!
//! Fonts: DejaVu Sans is embedded (`dejavu`) and registered once; plotters measures text with
//! it, the browser draws the SVG's text with its own sans-serif. A chart that cannot be drawn
//! is an `Err` with plotters' message, shown in its place; it never stops the report.

use std::error::Error;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::stats::bucket_width;
use crate::sweep::{FailureDetail, FailureSummary, PoolSummary, ScenarioSummary, Sweep};

/// One chart: its file name under `charts/`, a title, and the SVG or why it could not be drawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chart {
    pub file: String,
    pub title: String,
    pub svg: Result<String, String>,
}

type Drawn = Result<(), Box<dyn Error>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

const WIDTH: u32 = 900;
const FONT: &str = "sans-serif";
const BAR: RGBColor = RGBColor(70, 130, 180);
const FAULT: RGBColor = RGBColor(220, 50, 47);
const LEADERLESS: RGBColor = RGBColor(120, 120, 120);
const RETIRED: RGBColor = RGBColor(230, 150, 40);

fn register_fonts() {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        // Both calls only fail on a corrupt font, which the embedded one is not; a failure would
        // show as each chart's error (`FontUnavailable`).
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Draws into an SVG string of `width` x `height`.
fn render(width: u32, height: u32, draw: impl FnOnce(&Area) -> Drawn) -> Result<String, String> {
    register_fonts();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// A label safe for any XML text (plotters escapes markup; control characters are dropped).
fn label(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    if clean.chars().count() > 48 { clean.chars().take(47).chain(['…']).collect() } else { clean }
}

/// A file-name-safe form of a name.
pub fn slug(text: &str) -> String {
    let s: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    s.chars().take(60).collect()
}

fn caption_style() -> TextStyle<'static> {
    (FONT, 17).into_font().style(FontStyle::Bold).color(&BLACK)
}

/// Every chart of a sweep, in page order.
pub fn sweep_charts(sweep: &Sweep) -> Vec<Chart> {
    let report = &sweep.report;
    let mut charts = vec![
        Chart {
            file: "latency.svg".into(),
            title: "NEW -> PENDING latency per scenario (p50, p99, max)".into(),
            svg: latency_by_scenario(&report.scenarios),
        },
        Chart {
            file: "latency-histogram.svg".into(),
            title: "NEW -> PENDING latency, all scenarios".into(),
            svg: latency_histogram(&report.scenarios),
        },
        Chart {
            file: "restores.svg".into(),
            title: "Restore at each leader change: objects restored and time to the first pass".into(),
            svg: restores(sweep),
        },
        Chart {
            file: "sweep-speed.svg".into(),
            title: "Seeds per second of the sweep (wall clock)".into(),
            svg: sweep_speed(sweep),
        },
    ];
    for (i, scenario) in report.scenarios.iter().enumerate() {
        let name = format!("{:02}-{}", i, slug(&scenario.scenario));
        charts.push(Chart {
            file: format!("throughput-{name}.svg"),
            title: format!("{}: tasks NEW -> PENDING per simulated second", scenario.scenario),
            svg: throughput(scenario),
        });
        charts.push(Chart {
            file: format!("pools-{name}.svg"),
            title: format!("{}: pool utilisation and fragmentation at the end", scenario.scenario),
            svg: pools(&scenario.scenario, &scenario.pools),
        });
    }
    for failure in &report.failures {
        let key = (failure.scenario.clone(), failure.seed);
        let Some(detail) = sweep.charts.failure_details.get(&key) else { continue };
        charts.push(Chart {
            file: format!("failure-{}-{}.svg", slug(&failure.scenario), failure.seed),
            title: format!("{} seed {}: timeline", failure.scenario, failure.seed),
            svg: failure_timeline(failure, detail),
        });
    }
    charts
}

/// Mean tasks to PENDING per simulated second, with the share of run time without a leader and
/// with a fault on shaded behind, and leader terms starting marked on top.
pub fn throughput(s: &ScenarioSummary) -> Result<String, String> {
    let t = &s.throughput;
    let seconds = t.bucket_ms as f64 / 1000.0;
    let buckets = t.pending_per_s.len().max(t.seeds.len());
    let x_max = (buckets as f64 * seconds).max(1.0);
    let y_max = t.pending_per_s.iter().copied().fold(0.0, f64::max).max(1.0) * 1.3;
    render(WIDTH, 340, |root| {
        let caption =
            format!("{}: tasks NEW -> PENDING per simulated s (mean of {} seeds)", label(&s.scenario), s.series_seeds);
        let mut chart = ChartBuilder::on(root)
            .caption(caption, caption_style())
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc("simulated seconds")
            .y_desc("tasks / s")
            .light_line_style(WHITE)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        let x = |i: usize| i as f64 * seconds;
        chart
            .draw_series(
                t.leaderless_share
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v > 0.0)
                    .map(|(i, v)| Rectangle::new([(x(i), 0.0), (x(i + 1), y_max)], LEADERLESS.mix(0.5 * v).filled())),
            )?
            .label("no leader (share of run time)")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], LEADERLESS.mix(0.4).filled()));
        chart
            .draw_series(
                t.fault_share
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v > 0.0)
                    .map(|(i, v)| Rectangle::new([(x(i), 0.0), (x(i + 1), y_max)], FAULT.mix(0.3 * v).filled())),
            )?
            .label("node or proposal fault on (share of run time)")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], FAULT.mix(0.3).filled()));
        chart
            .draw_series(t.message_fault_share.iter().enumerate().filter(|(_, v)| **v > 0.0).map(|(i, v)| {
                Rectangle::new([(x(i), y_max * 0.95), (x(i + 1), y_max)], RETIRED.mix(0.8 * v).filled())
            }))?
            .label("message faults on (top strip)")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], RETIRED.mix(0.8).filled()));
        chart
            .draw_series(t.pending_per_s.iter().enumerate().map(|(i, v)| {
                Rectangle::new([(x(i) + seconds * 0.1, 0.0), (x(i + 1) - seconds * 0.1, *v)], BAR.filled())
            }))?
            .label("tasks to PENDING / s (mean)")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], BAR.filled()));
        chart
            .draw_series(
                t.leader_starts
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                    .map(|(i, _)| TriangleMarker::new((x(i) + seconds / 2.0, y_max * 0.91), 5, BLACK.filled())),
            )?
            .label("leader terms starting")
            .legend(|(x, y)| TriangleMarker::new((x + 6, y), 4, BLACK.filled()));
        chart
            .configure_series_labels()
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

/// One failing seed: tasks to PENDING per second, its leader terms as bands (labelled with the
/// leader), its fault windows in lanes above, and the violation's time.
pub fn failure_timeline(failure: &FailureSummary, detail: &FailureDetail) -> Result<String, String> {
    let Some(series) = &detail.series else { return Err("the result line has no series".into()) };
    let kinds: Vec<&str> = {
        let mut kinds: Vec<&str> = series.faults.iter().map(|w| w.kind.as_str()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    };
    let seconds = series.bucket_ms as f64 / 1000.0;
    let end_s = (detail.sim_ms as f64 / 1000.0).max(series.pending.len() as f64 * seconds).max(1.0);
    let peak = series.pending.iter().copied().max().unwrap_or(0) as f64 / seconds;
    let bars_max = peak.max(1.0) * 1.1;
    let lane = bars_max * 0.12;
    let y_max = bars_max + lane * (kinds.len() as f64 + 1.0);
    let height = 360 + 14 * kinds.len() as u32;
    render(WIDTH, height, |root| {
        let caption =
            format!("{} seed {}: {}", label(&failure.scenario), failure.seed, label(&failure.violation.checker));
        let mut chart = ChartBuilder::on(root)
            .caption(caption, caption_style())
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..end_s, 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc("simulated seconds")
            .y_desc("tasks / s")
            .light_line_style(WHITE)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .y_label_formatter(&|y| if *y <= bars_max { format!("{y:.0}") } else { String::new() })
            .draw()?;
        let ms = |t: u64| t as f64 / 1000.0;
        let mut nodes: Vec<&str> = series.leaders.iter().map(|t| t.node.as_str()).collect();
        nodes.sort_unstable();
        nodes.dedup();
        let color = |node: &str| Palette99::pick(nodes.iter().position(|n| *n == node).unwrap_or(0) + 1);
        let end_of = |end: Option<u64>| end.unwrap_or(detail.sim_ms);
        chart.draw_series(series.leaders.iter().map(|t| {
            Rectangle::new([(ms(t.start_ms), 0.0), (ms(end_of(t.end_ms)), bars_max)], color(&t.node).mix(0.15).filled())
        }))?;
        chart.draw_series(series.leaders.iter().map(|t| {
            let style = (FONT, 13).into_font().color(&BLACK);
            Text::new(format!("{} t{}", label(&t.node), t.term), (ms(t.start_ms) + 0.2, bars_max * 0.98), style)
        }))?;
        chart
            .draw_series(series.pending.iter().enumerate().map(|(i, n)| {
                let x = i as f64 * seconds;
                Rectangle::new([(x + seconds * 0.1, 0.0), (x + seconds * 0.9, *n as f64 / seconds)], BAR.filled())
            }))?
            .label("tasks to PENDING / s")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], BAR.filled()));
        for (k, kind) in kinds.iter().enumerate() {
            let y0 = bars_max + lane * (k as f64 + 0.6);
            let style = Palette99::pick(k + 10).filled();
            let min_width = end_s / 300.0;
            chart
                .draw_series(series.faults.iter().filter(|w| w.kind == *kind).map(|w| {
                    let (a, b) = (ms(w.start_ms), ms(end_of(w.end_ms)));
                    Rectangle::new([(a, y0), (b.max(a + min_width), y0 + lane * 0.8)], style)
                }))?
                .label(format!("fault: {}", label(kind)))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], style));
        }
        let at = ms(failure.violation.t_ms);
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(at, 0.0), (at, y_max)], FAULT.stroke_width(2))))?
            .label(format!("violation at {:.1} s", at))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], FAULT.stroke_width(2)));
        chart
            .configure_series_labels()
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

fn log_max(max_ms: u64) -> f64 {
    (max_ms as f64 * 6.0).max(10.0)
}

/// p50 to p99 as a bar, with markers for p50, p99 and max, one row per scenario (log scale).
pub fn latency_by_scenario(scenarios: &[ScenarioSummary]) -> Result<String, String> {
    let rows: Vec<&ScenarioSummary> = scenarios.iter().filter(|s| s.latency.count > 0).collect();
    if rows.is_empty() {
        return Err("no task moved NEW -> PENDING in any seed with series".into());
    }
    let x_max = log_max(rows.iter().filter_map(|s| s.latency.max_ms).max().unwrap_or(1));
    let n = rows.len() as u32;
    render(WIDTH, 90 + 26 * n.max(3), |root| {
        let names: Vec<String> = rows.iter().map(|s| label(&s.scenario)).collect();
        let mut chart = ChartBuilder::on(root)
            .caption("NEW -> PENDING latency (simulated ms, log scale)", caption_style())
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(230)
            .build_cartesian_2d((0.5f64..x_max).log_scale(), (0..n).into_segmented())?;
        chart
            .configure_mesh()
            .x_desc("ms")
            .y_labels(rows.len())
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .light_line_style(WHITE)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        let at = |i: usize| SegmentValue::CenterOf(i as u32);
        let ms = |v: Option<u64>| v.unwrap_or(0).max(1) as f64;
        chart.draw_series(rows.iter().enumerate().map(|(i, s)| {
            PathElement::new(
                vec![(ms(s.latency.p50_ms), at(i)), (ms(s.latency.p99_ms), at(i))],
                BAR.mix(0.5).stroke_width(6),
            )
        }))?;
        chart
            .draw_series(
                rows.iter().enumerate().map(|(i, s)| Circle::new((ms(s.latency.p50_ms), at(i)), 5, BAR.filled())),
            )?
            .label("p50")
            .legend(|(x, y)| Circle::new((x + 6, y), 5, BAR.filled()));
        chart
            .draw_series(
                rows.iter()
                    .enumerate()
                    .map(|(i, s)| TriangleMarker::new((ms(s.latency.p99_ms), at(i)), 6, RETIRED.filled())),
            )?
            .label("p99")
            .legend(|(x, y)| TriangleMarker::new((x + 6, y), 6, RETIRED.filled()));
        chart
            .draw_series(
                rows.iter()
                    .enumerate()
                    .map(|(i, s)| Cross::new((ms(s.latency.max_ms), at(i)), 6, FAULT.stroke_width(2))),
            )?
            .label("max")
            .legend(|(x, y)| Cross::new((x + 6, y), 6, FAULT.stroke_width(2)));
        chart
            .configure_series_labels()
            .label_font((FONT, 13))
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

/// The merged latency histogram of every scenario, bars per bucket on a log scale, with p50,
/// p99 and max marked.
pub fn latency_histogram(scenarios: &[ScenarioSummary]) -> Result<String, String> {
    let mut all = crate::stats::Histogram::default();
    for s in scenarios {
        let d = &s.latency;
        let h = crate::stats::Histogram {
            count: d.count,
            sum_ms: 0,
            max_ms: d.max_ms.unwrap_or(0),
            buckets: d.buckets.clone(),
        };
        all.merge(&h);
    }
    if all.count == 0 {
        return Err("no task moved NEW -> PENDING in any seed with series".into());
    }
    let x_max = log_max(all.max_ms);
    let y_max = all.buckets.iter().map(|(_, n)| *n).max().unwrap_or(1) as f64 * 1.15;
    let marks =
        [("p50", all.quantile_ms(0.5), BAR), ("p99", all.quantile_ms(0.99), RETIRED), ("max", Some(all.max_ms), FAULT)];
    render(WIDTH, 320, |root| {
        let caption = format!("NEW -> PENDING latency of {} tasks (simulated ms, log scale)", all.count);
        let mut chart = ChartBuilder::on(root)
            .caption(caption, caption_style())
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d((0.5f64..x_max).log_scale(), 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc("ms")
            .y_desc("tasks")
            .light_line_style(WHITE)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        chart.draw_series(all.buckets.iter().map(|&(low, n)| {
            let (a, b) = ((low as f64).max(0.5), (low + bucket_width(low)) as f64);
            Rectangle::new([(a, 0.0), (b, n as f64)], BAR.mix(0.7).filled())
        }))?;
        for (name, value, color) in marks {
            let Some(v) = value else { continue };
            let x = (v as f64).max(0.5);
            chart
                .draw_series(std::iter::once(PathElement::new(vec![(x, 0.0), (x, y_max)], color.stroke_width(2))))?
                .label(format!("{name} {v} ms"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

/// Per network: mean share of addresses live and retired (stacked), mean and max fragmentation.
pub fn pools(scenario: &str, pools: &[PoolSummary]) -> Result<String, String> {
    if pools.is_empty() {
        return Err("no pool was sampled (the end checks did not run, or the result lines have no series)".into());
    }
    let n = pools.len() as u32;
    render(WIDTH, 90 + 26 * n.max(3), |root| {
        let names: Vec<String> = pools.iter().map(|p| label(&p.network)).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(format!("{}: pools at the end (mean over seeds)", label(scenario)), caption_style())
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(160)
            .build_cartesian_2d(0f64..100.0, (0..n).into_segmented())?;
        chart
            .configure_mesh()
            .x_desc("% of the pool's addresses")
            .y_labels(pools.len())
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .light_line_style(WHITE)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        let band = |i: usize| (SegmentValue::Exact(i as u32), SegmentValue::Exact(i as u32 + 1));
        let pct = |share: f64| share * 100.0;
        chart
            .draw_series(pools.iter().enumerate().map(|(i, p)| {
                let (lo, hi) = band(i);
                Rectangle::new([(0.0, lo), (pct(p.utilisation_mean), hi)], BAR.filled())
            }))?
            .label("live")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], BAR.filled()));
        chart
            .draw_series(pools.iter().enumerate().map(|(i, p)| {
                let (lo, hi) = band(i);
                let start = pct(p.utilisation_mean);
                Rectangle::new([(start, lo), (start + pct(p.retired_mean), hi)], RETIRED.filled())
            }))?
            .label("retired (quarantined)")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], RETIRED.filled()));
        let center = |i: usize| SegmentValue::CenterOf(i as u32);
        chart
            .draw_series(
                pools
                    .iter()
                    .enumerate()
                    .map(|(i, p)| Cross::new((pct(p.fragmentation_mean), center(i)), 6, BLACK.stroke_width(2))),
            )?
            .label("fragmentation (mean)")
            .legend(|(x, y)| Cross::new((x + 6, y), 6, BLACK.stroke_width(2)));
        chart
            .draw_series(
                pools
                    .iter()
                    .enumerate()
                    .map(|(i, p)| Circle::new((pct(p.utilisation_max), center(i)), 5, FAULT.stroke_width(2))),
            )?
            .label("live (max)")
            .legend(|(x, y)| Circle::new((x + 6, y), 5, FAULT.stroke_width(2)));
        chart
            .configure_series_labels()
            .label_font((FONT, 13))
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

/// Each recorded restore: objects restored against the time from becoming leader to the first
/// allocation pass, coloured by scenario.
pub fn restores(sweep: &Sweep) -> Result<String, String> {
    let points = &sweep.charts.restore_points;
    if points.is_empty() {
        return Err("no restore was recorded".into());
    }
    let names: Vec<&str> = sweep.report.scenarios.iter().map(|s| s.scenario.as_str()).collect();
    let x_max = points.values().map(|p| p.0).max().unwrap_or(1).max(1) as f64 * 1.05;
    let y_max = points.values().map(|p| p.1).max().unwrap_or(1).max(1) as f64 * 1.1;
    render(WIDTH, 380, |root| {
        let mut caption = format!("restore at each leader change ({} restores", points.len());
        if sweep.charts.restore_points_dropped > 0 {
            caption += &format!(", {} more not drawn", sweep.charts.restore_points_dropped);
        }
        caption += ")";
        let mut chart = ChartBuilder::on(root)
            .caption(caption, caption_style())
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc("objects restored")
            .y_desc("simulated ms to the first pass")
            .light_line_style(WHITE)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        for (i, name) in names.iter().enumerate() {
            let style = Palette99::pick(i).mix(0.7).filled();
            let mine = points.iter().filter(|((s, _, _), _)| s == name).map(|(_, &(objects, ms))| (objects, ms));
            let series = chart.draw_series(mine.map(|(x, y)| Circle::new((x as f64, y as f64), 3, style)))?;
            if i < 12 {
                series.label(label(name)).legend(move |(x, y)| Circle::new((x + 6, y), 4, style));
            }
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

/// Seeds per second of each sweep summary line, or per scenario from per-seed wall times when
/// the input has no summary lines. Wall-clock values: they vary from run to run.
pub fn sweep_speed(sweep: &Sweep) -> Result<String, String> {
    let wall = &sweep.report.wall_clock;
    let rows: Vec<(String, f64)> = if wall.sweeps.is_empty() {
        wall.scenarios.iter().map(|s| (format!("{} (one job)", s.scenario), s.seeds_per_s_one_job)).collect()
    } else {
        wall.sweeps
            .iter()
            .map(|s| {
                let file =
                    std::path::Path::new(&s.file).file_name().map_or(s.file.clone(), |f| f.to_string_lossy().into());
                let jobs = s.jobs.map_or(String::new(), |j| format!(", {j} jobs"));
                (format!("{} · {}{jobs}", s.scenario, file), s.seeds_per_s)
            })
            .collect()
    };
    if rows.is_empty() {
        return Err("no wall-clock times in the input".into());
    }
    let n = rows.len() as u32;
    let x_max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(0.001) * 1.15;
    render(WIDTH, 90 + 24 * n.max(3), |root| {
        let names: Vec<String> = rows.iter().map(|r| label(&r.0)).collect();
        let mut chart = ChartBuilder::on(root)
            .caption("seeds per second (wall clock, varies between runs)", caption_style())
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(300)
            .build_cartesian_2d(0f64..x_max, (0..n).into_segmented())?;
        chart
            .configure_mesh()
            .x_desc("seeds / s")
            .y_labels(rows.len())
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .light_line_style(WHITE)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        chart.draw_series(rows.iter().enumerate().map(|(i, (_, v))| {
            Rectangle::new(
                [(0.0, SegmentValue::Exact(i as u32)), (*v, SegmentValue::Exact(i as u32 + 1))],
                BAR.filled(),
            )
        }))?;
        Ok(())
    })
}
