//! The report's charts, drawn with plotters into SVG strings: allocation throughput over
//! simulated time (leaderless time and faults shaded, per scenario and per failing seed with its
//! own leader terms and fault windows), NEW -> PENDING latency (p50, p99, max per scenario and
//! the merged histogram), pool utilisation and fragmentation per network, restore duration at
//! each leader change, and the sweep's seeds per second (the one wall-clock chart).
//!
//! Layout: every chart is `WIDTH` wide with its key in a column on the right (`Key`), so the
//! key never hides data; rows of a row chart read top to bottom in the report's order.
//! Fonts: DejaVu Sans is embedded (`dejavu`) and registered once; plotters measures text with
//! it, the browser draws the SVG's text with its own sans-serif. A chart that cannot be drawn
//! is an `Err` with plotters' message, shown in its place; it never stops the report.

use std::error::Error;
use std::sync::Once;

use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
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

const WIDTH: u32 = 1000;
/// The key column on the right of every chart.
const KEY_WIDTH: u32 = 230;
const FONT: &str = "sans-serif";
const BAR: RGBColor = RGBColor(70, 130, 180);
const FAULT: RGBColor = RGBColor(220, 50, 47);
const LEADERLESS: RGBColor = RGBColor(120, 120, 120);
const RETIRED: RGBColor = RGBColor(230, 150, 40);
/// Leader bands of a failure's timeline: cool colours only.
const LEADER_COLORS: [RGBColor; 4] =
    [RGBColor(31, 119, 180), RGBColor(44, 160, 44), RGBColor(148, 103, 189), RGBColor(23, 190, 207)];
/// Fault lanes of a failure's timeline: warm colours only, none of them a leader's.
const FAULT_COLORS: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(128, 0, 0),
];

fn register_fonts() {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        // Both calls only fail on a corrupt font, which the embedded one is not; a failure would
        // show as each chart's error (`FontUnavailable`).
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// One entry of a chart's key: how its mark looks, and what it means.
#[derive(Clone)]
enum Key {
    Box(ShapeStyle, String),
    Line(ShapeStyle, String),
    Dot(ShapeStyle, String),
    Cross(ShapeStyle, String),
    Triangle(ShapeStyle, String),
}

/// Draws the plot into the left part of a `WIDTH` x `height` SVG and `keys` into the column on
/// the right.
fn render(height: u32, draw: impl FnOnce(&Area) -> Result<Vec<Key>, Box<dyn Error>>) -> Result<String, String> {
    register_fonts();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (plot, key) = root.split_horizontally(WIDTH - KEY_WIDTH);
        let keys = draw(&plot).map_err(|e| e.to_string())?;
        draw_keys(&key, &keys).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn draw_keys(area: &Area, keys: &[Key]) -> Drawn {
    let text = (FONT, 13).into_font().color(&BLACK);
    for (i, key) in keys.iter().enumerate() {
        let y = 52 + 22 * i as i32;
        let (x, mid) = (8, 15);
        let what = match key {
            Key::Box(style, what) => {
                area.draw(&Rectangle::new([(x, y - 6), (x + 14, y + 6)], *style))?;
                what
            }
            Key::Line(style, what) => {
                area.draw(&PathElement::new(vec![(x, y), (x + 14, y)], *style))?;
                what
            }
            Key::Dot(style, what) => {
                area.draw(&Circle::new((mid, y), 5, *style))?;
                what
            }
            Key::Cross(style, what) => {
                area.draw(&Cross::new((mid, y), 5, *style))?;
                what
            }
            Key::Triangle(style, what) => {
                area.draw(&TriangleMarker::new((mid, y), 5, *style))?;
                what
            }
        };
        area.draw(&Text::new(label(what), (x + 22, y - 7), text.clone()))?;
    }
    Ok(())
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

/// A chart with the common caption, margin and x label area; `y_labels` wide for row names.
fn builder<'a, 'b>(
    root: &'a Area<'b>,
    caption: impl AsRef<str>,
    y_labels: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder.caption(caption, caption_style()).margin(12).x_label_area_size(36).y_label_area_size(y_labels);
    builder
}

/// The mesh every chart uses: no light grid lines, readable labels.
fn mesh<'m, 'a, 'b, 'c, X, Y, XT, YT>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, SVGBackend<'c>>,
) -> &'m mut MeshStyle<'a, 'b, X, Y, SVGBackend<'c>>
where
    X: Ranged<ValueType = XT> + ValueFormatter<XT>,
    Y: Ranged<ValueType = YT> + ValueFormatter<YT>,
{
    mesh.light_line_style(WHITE).label_style((FONT, 13)).axis_desc_style((FONT, 14))
}

/// Row `i` of `n` in a row chart, counted from the top (plotters counts from the bottom).
fn row(i: usize, n: usize) -> u32 {
    (n - 1 - i) as u32
}

/// The name of the row at a segment's centre, for the y axis labels.
fn row_name(names: &[String], value: &SegmentValue<u32>) -> String {
    match value {
        SegmentValue::CenterOf(r) => {
            let i = names.len().checked_sub(1 + *r as usize);
            i.and_then(|i| names.get(i)).cloned().unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// The band of row `i` of `n`, a few pixels in from its neighbours.
fn band(i: usize, n: usize, from: f64, to: f64, style: ShapeStyle) -> Rectangle<(f64, SegmentValue<u32>)> {
    let r = row(i, n);
    let mut bar = Rectangle::new([(from, SegmentValue::Exact(r)), (to, SegmentValue::Exact(r + 1))], style);
    bar.set_margin(4, 4, 0, 0);
    bar
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
            title: format!("{}: tasks NEW -> PENDING per simulated second (relative only)", scenario.scenario),
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
    let y_max = t.pending_per_s.iter().copied().fold(0.0, f64::max).max(1.0) * 1.2;
    render(340, |root| {
        let caption = format!("{}: mean of {} seeds", label(&s.scenario), s.series_seeds);
        let mut chart = builder(root, caption, 56).build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        mesh(&mut chart.configure_mesh()).x_desc("simulated seconds").y_desc("tasks to PENDING / s").draw()?;
        let x = |i: usize| i as f64 * seconds;
        let shaded = |shares: &[f64], color: RGBColor, alpha: f64, from: f64, to: f64| {
            let bands: Vec<Rectangle<(f64, f64)>> = shares
                .iter()
                .enumerate()
                .filter(|(_, v)| **v > 0.0)
                .map(|(i, v)| Rectangle::new([(x(i), from), (x(i + 1), to)], color.mix(alpha * v).filled()))
                .collect();
            bands
        };
        chart.draw_series(shaded(&t.leaderless_share, LEADERLESS, 0.5, 0.0, y_max))?;
        chart.draw_series(shaded(&t.fault_share, FAULT, 0.3, 0.0, y_max))?;
        chart.draw_series(shaded(&t.message_fault_share, RETIRED, 0.8, y_max * 0.96, y_max))?;
        chart.draw_series(t.pending_per_s.iter().enumerate().map(|(i, v)| {
            Rectangle::new([(x(i) + seconds * 0.1, 0.0), (x(i + 1) - seconds * 0.1, *v)], BAR.filled())
        }))?;
        chart.draw_series(
            t.leader_starts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, _)| TriangleMarker::new((x(i) + seconds / 2.0, y_max * 0.92), 5, BLACK.filled())),
        )?;
        Ok(vec![
            Key::Box(BAR.filled(), "tasks to PENDING / s (mean)".into()),
            Key::Box(LEADERLESS.mix(0.4).filled(), "no leader (share of time)".into()),
            Key::Box(FAULT.mix(0.3).filled(), "node/proposal fault (share)".into()),
            Key::Box(RETIRED.mix(0.8).filled(), "message faults (top strip)".into()),
            Key::Triangle(BLACK.filled(), "leader terms starting".into()),
        ])
    })
}

/// One failing seed: tasks to PENDING per second, its leader terms as bands (labelled with the
/// leader and term), its fault windows in lanes above, and the violation's time.
pub fn failure_timeline(failure: &FailureSummary, detail: &FailureDetail) -> Result<String, String> {
    let Some(series) = &detail.series else { return Err("the result line has no series".into()) };
    let mut kinds: Vec<&str> = series.faults.iter().map(|w| w.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut nodes: Vec<&str> = series.leaders.iter().map(|t| t.node.as_str()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let seconds = series.bucket_ms as f64 / 1000.0;
    let end_s = (detail.sim_ms as f64 / 1000.0).max(series.pending.len() as f64 * seconds).max(1.0);
    let peak = series.pending.iter().copied().max().unwrap_or(0) as f64 / seconds;
    let bars_max = peak.max(1.0) * 1.1;
    let lane = bars_max * 0.12;
    let y_max = bars_max + lane * (kinds.len() as f64 + 1.0);
    let height = (360 + 14 * kinds.len() as u32).max(90 + 22 * (4 + nodes.len() + kinds.len()) as u32);
    // Leaders in cool colours (light bands behind the bars), faults in warm ones (solid lanes
    // above): the two never share a colour.
    let node_color =
        |node: &str| LEADER_COLORS[nodes.iter().position(|n| *n == node).unwrap_or(0) % LEADER_COLORS.len()];
    let kind_color = |k: usize| FAULT_COLORS[k % FAULT_COLORS.len()];
    render(height, |root| {
        let caption =
            format!("{} seed {}: {}", label(&failure.scenario), failure.seed, label(&failure.violation.checker));
        let mut chart = builder(root, caption, 56).build_cartesian_2d(0f64..end_s, 0f64..y_max)?;
        mesh(&mut chart.configure_mesh())
            .x_desc("simulated seconds")
            .y_desc("tasks to PENDING / s")
            // Below 10 tasks/s, whole numbers would repeat ("0 0 0 1 1 1"): one decimal.
            .y_label_formatter(&|y| match *y {
                y if y > bars_max => String::new(),
                y if bars_max < 10.0 => format!("{y:.1}"),
                y => format!("{y:.0}"),
            })
            .draw()?;
        let ms = |t: u64| t as f64 / 1000.0;
        let end_of = |end: Option<u64>| end.unwrap_or(detail.sim_ms);
        chart.draw_series(series.leaders.iter().map(|t| {
            let corners = [(ms(t.start_ms), 0.0), (ms(end_of(t.end_ms)), bars_max)];
            Rectangle::new(corners, node_color(&t.node).mix(0.15).filled())
        }))?;
        chart.draw_series(series.leaders.iter().map(|t| {
            let style = (FONT, 12).into_font().color(&BLACK);
            let text = format!("{} t{}", label(&t.node), t.term);
            Text::new(text, (ms(t.start_ms) + end_s / 200.0, bars_max * 0.98), style)
        }))?;
        chart.draw_series(series.pending.iter().enumerate().map(|(i, n)| {
            let x = i as f64 * seconds;
            Rectangle::new([(x + seconds * 0.1, 0.0), (x + seconds * 0.9, *n as f64 / seconds)], BAR.filled())
        }))?;
        let min_width = end_s / 300.0;
        for (k, kind) in kinds.iter().enumerate() {
            let y0 = bars_max + lane * (k as f64 + 0.6);
            chart.draw_series(series.faults.iter().filter(|w| w.kind == *kind).map(|w| {
                let (a, b) = (ms(w.start_ms), ms(end_of(w.end_ms)));
                Rectangle::new([(a, y0), (b.max(a + min_width), y0 + lane * 0.8)], kind_color(k).filled())
            }))?;
            // Each lane says what it is, at its left end.
            let style = (FONT, 11).into_font().color(&BLACK);
            chart.draw_series(std::iter::once(Text::new(label(kind), (end_s / 300.0, y0 + lane * 0.75), style)))?;
        }
        let at = ms(failure.violation.t_ms);
        // Black: no fault lane and no leader band has it.
        chart.draw_series(std::iter::once(PathElement::new(vec![(at, 0.0), (at, y_max)], BLACK.stroke_width(2))))?;
        let mut keys = vec![Key::Box(BAR.filled(), "tasks to PENDING / s".into())];
        keys.extend(nodes.iter().map(|n| Key::Box(node_color(n).mix(0.3).filled(), format!("leader {n} (band)"))));
        keys.extend(
            kinds.iter().enumerate().map(|(k, kind)| Key::Box(kind_color(k).filled(), format!("fault lane: {kind}"))),
        );
        keys.push(Key::Line(BLACK.stroke_width(2), format!("violation at {at:.1} s")));
        Ok(keys)
    })
}

fn log_max(max_ms: u64) -> f64 {
    (max_ms as f64 * 2.0).max(10.0)
}

/// p50 to p99 as a bar, with markers for p50, p99 and max, one row per scenario (log scale).
pub fn latency_by_scenario(scenarios: &[ScenarioSummary]) -> Result<String, String> {
    let rows: Vec<&ScenarioSummary> = scenarios.iter().filter(|s| s.latency.count > 0).collect();
    if rows.is_empty() {
        return Err("no task moved NEW -> PENDING in any seed with series".into());
    }
    let x_max = log_max(rows.iter().filter_map(|s| s.latency.max_ms).max().unwrap_or(1));
    let n = rows.len();
    render(100 + 26 * n.max(4) as u32, |root| {
        let names: Vec<String> = rows.iter().map(|s| label(&s.scenario)).collect();
        let mut chart = builder(root, "simulated ms, log scale", 200)
            .build_cartesian_2d((0.5f64..x_max).log_scale(), (0..n as u32).into_segmented())?;
        mesh(&mut chart.configure_mesh())
            .x_desc("ms from NEW to PENDING")
            .y_labels(n)
            .y_label_formatter(&|v| row_name(&names, v))
            .draw()?;
        let at = |i: usize| SegmentValue::CenterOf(row(i, n));
        let ms = |v: Option<u64>| v.unwrap_or(0).max(1) as f64;
        chart.draw_series(rows.iter().enumerate().map(|(i, s)| {
            let span = vec![(ms(s.latency.p50_ms), at(i)), (ms(s.latency.p99_ms), at(i))];
            PathElement::new(span, BAR.mix(0.5).stroke_width(6))
        }))?;
        chart.draw_series(
            rows.iter().enumerate().map(|(i, s)| Circle::new((ms(s.latency.p50_ms), at(i)), 5, BAR.filled())),
        )?;
        chart.draw_series(
            rows.iter()
                .enumerate()
                .map(|(i, s)| TriangleMarker::new((ms(s.latency.p99_ms), at(i)), 6, RETIRED.filled())),
        )?;
        chart.draw_series(
            rows.iter().enumerate().map(|(i, s)| Cross::new((ms(s.latency.max_ms), at(i)), 6, FAULT.stroke_width(2))),
        )?;
        Ok(vec![
            Key::Dot(BAR.filled(), "p50".into()),
            Key::Triangle(RETIRED.filled(), "p99".into()),
            Key::Cross(FAULT.stroke_width(2), "max".into()),
            Key::Line(BAR.mix(0.5).stroke_width(6), "p50 to p99".into()),
        ])
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
        all.merge(&h).map_err(|o| format!("the latency histograms of all scenarios overflow their {}", o.field))?;
    }
    if all.count == 0 {
        return Err("no task moved NEW -> PENDING in any seed with series".into());
    }
    let x_max = log_max(all.max_ms);
    let y_max = all.buckets.iter().map(|(_, n)| *n).max().unwrap_or(1) as f64 * 1.15;
    let marks =
        [("p50", all.quantile_ms(0.5), BAR), ("p99", all.quantile_ms(0.99), RETIRED), ("max", Some(all.max_ms), FAULT)];
    render(320, |root| {
        let caption = format!("{} tasks, simulated ms, log scale", all.count);
        let mut chart = builder(root, caption, 64).build_cartesian_2d((0.5f64..x_max).log_scale(), 0f64..y_max)?;
        mesh(&mut chart.configure_mesh()).x_desc("ms from NEW to PENDING").y_desc("tasks").draw()?;
        chart.draw_series(all.buckets.iter().map(|&(low, n)| {
            let (a, b) = ((low as f64).max(0.5), (low + bucket_width(low)) as f64);
            Rectangle::new([(a, 0.0), (b, n as f64)], BAR.mix(0.7).filled())
        }))?;
        let mut keys = vec![Key::Box(BAR.mix(0.7).filled(), "tasks per bucket".into())];
        for (name, value, color) in marks {
            let Some(v) = value else { continue };
            let x = (v as f64).max(0.5);
            chart.draw_series(std::iter::once(PathElement::new(vec![(x, 0.0), (x, y_max)], color.stroke_width(2))))?;
            keys.push(Key::Line(color.stroke_width(2), format!("{name} {v} ms")));
        }
        Ok(keys)
    })
}

/// Per network: mean share of addresses live and retired (stacked), mean fragmentation, max live.
pub fn pools(scenario: &str, pools: &[PoolSummary]) -> Result<String, String> {
    if pools.is_empty() {
        return Err("no pool was sampled (the end checks did not run, or the result lines have no series)".into());
    }
    let n = pools.len();
    render(100 + 26 * n.max(4) as u32, |root| {
        let names: Vec<String> = pools.iter().map(|p| label(&p.network)).collect();
        let caption = format!("{}: mean over seeds", label(scenario));
        let mut chart = builder(root, caption, 150).build_cartesian_2d(0f64..100.0, (0..n as u32).into_segmented())?;
        mesh(&mut chart.configure_mesh())
            .x_desc("% of the pool's addresses")
            .y_labels(n)
            .y_label_formatter(&|v| row_name(&names, v))
            .draw()?;
        let pct = |share: f64| share * 100.0;
        chart.draw_series(
            pools.iter().enumerate().map(|(i, p)| band(i, n, 0.0, pct(p.utilisation_mean), BAR.filled())),
        )?;
        chart.draw_series(pools.iter().enumerate().map(|(i, p)| {
            let start = pct(p.utilisation_mean);
            band(i, n, start, start + pct(p.retired_mean), RETIRED.filled())
        }))?;
        let center = |i: usize| SegmentValue::CenterOf(row(i, n));
        chart.draw_series(
            pools
                .iter()
                .enumerate()
                .map(|(i, p)| Cross::new((pct(p.fragmentation_mean), center(i)), 6, BLACK.stroke_width(2))),
        )?;
        chart.draw_series(
            pools
                .iter()
                .enumerate()
                .map(|(i, p)| Circle::new((pct(p.utilisation_max), center(i)), 5, FAULT.stroke_width(2))),
        )?;
        Ok(vec![
            Key::Box(BAR.filled(), "live (mean)".into()),
            Key::Box(RETIRED.filled(), "retired, quarantined (mean)".into()),
            Key::Cross(BLACK.stroke_width(2), "fragmentation (mean)".into()),
            Key::Dot(FAULT.stroke_width(2), "live (max)".into()),
        ])
    })
}

/// Each recorded restore: objects restored (log scale) against the time from becoming leader
/// to the first allocation pass, coloured by scenario.
pub fn restores(sweep: &Sweep) -> Result<String, String> {
    let points = &sweep.charts.restore_points;
    if points.is_empty() {
        return Err("no restore was recorded".into());
    }
    let names: Vec<&str> = sweep.report.scenarios.iter().map(|s| s.scenario.as_str()).collect();
    let x_max = points.values().map(|p| p.0).max().unwrap_or(1).max(1) as f64 * 1.5;
    let y_max = points.values().map(|p| p.1).max().unwrap_or(1).max(1) as f64 * 1.1;
    const KEYS_MAX: usize = 14;
    let height = 380.max(90 + 22 * names.len().min(KEYS_MAX + 1) as u32);
    render(height, |root| {
        let mut caption = format!("{} restores", points.len());
        if sweep.charts.restore_points_dropped > 0 {
            caption += &format!(" ({} more not drawn)", sweep.charts.restore_points_dropped);
        }
        let mut chart = builder(root, caption, 64).build_cartesian_2d((0.8f64..x_max).log_scale(), 0f64..y_max)?;
        mesh(&mut chart.configure_mesh())
            .x_desc("objects restored (log scale)")
            .y_desc("simulated ms to the first pass")
            .draw()?;
        let mut keys = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let style = Palette99::pick(i).mix(0.7).filled();
            let mine = points.iter().filter(|((s, _, _), _)| s == name).map(|(_, &(objects, ms))| (objects, ms));
            chart.draw_series(mine.map(|(x, y)| Circle::new(((x as f64).max(1.0), y as f64), 3, style)))?;
            if i < KEYS_MAX {
                keys.push(Key::Dot(style, name.to_string()));
            }
        }
        if names.len() > KEYS_MAX {
            keys.push(Key::Dot(WHITE.filled(), format!("and {} more scenarios", names.len() - KEYS_MAX)));
        }
        Ok(keys)
    })
}

/// Seeds per second of each sweep summary line, or per scenario from per-seed wall times when
/// the input has no summary lines. Wall-clock values: they vary from run to run.
pub fn sweep_speed(sweep: &Sweep) -> Result<String, String> {
    let wall = &sweep.report.wall_clock;
    let (rows, what): (Vec<(String, f64)>, &str) = if wall.sweeps.is_empty() {
        let rows = wall.scenarios.iter().map(|s| (s.scenario.clone(), s.seeds_per_s_one_job)).collect();
        (rows, "per-seed wall time, 1 job")
    } else {
        let rows = wall
            .sweeps
            .iter()
            .map(|s| {
                let file =
                    std::path::Path::new(&s.file).file_name().map_or(s.file.clone(), |f| f.to_string_lossy().into());
                let jobs = s.jobs.map_or(String::new(), |j| format!(", {j} jobs"));
                (format!("{} ({file}{jobs})", s.scenario), s.seeds_per_s)
            })
            .collect();
        (rows, "sweep summary lines")
    };
    if rows.is_empty() {
        return Err("no wall-clock times in the input".into());
    }
    let n = rows.len();
    let x_max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(0.001) * 1.15;
    render(100 + 24 * n.max(4) as u32, |root| {
        let names: Vec<String> = rows.iter().map(|r| label(&r.0)).collect();
        let mut chart = builder(root, "wall clock: varies between runs", 280)
            .build_cartesian_2d(0f64..x_max, (0..n as u32).into_segmented())?;
        mesh(&mut chart.configure_mesh())
            .x_desc("seeds / s")
            .y_labels(n)
            .y_label_formatter(&|v| row_name(&names, v))
            .draw()?;
        chart.draw_series(rows.iter().enumerate().map(|(i, (_, v))| band(i, n, 0.0, *v, BAR.filled())))?;
        Ok(vec![Key::Box(BAR.filled(), format!("seeds / s ({what})"))])
    })
}
