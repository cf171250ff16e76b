//! A scenario file's error as people read compiler errors: the one-line summary (file, line,
//! column, key, what was expected), then the source line with a caret under the place, drawn by
//! miette's graphical report handler (no colours).

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};
use swarmalloc_sim::scenario_file::ScenarioError;

/// The error's text: its summary line and, when it has a place in a readable file, the source
/// line with a caret.
pub fn scenario_error(error: &ScenarioError) -> String {
    let summary = error.to_string();
    match snippet(error) {
        Some(snippet) => format!("{summary}\n{}", snippet.trim_end()),
        None => summary,
    }
}

fn snippet(error: &ScenarioError) -> Option<String> {
    if error.line == 0 {
        return None;
    }
    let text = std::fs::read_to_string(&error.file).ok()?;
    let line_start: usize = text.split_inclusive('\n').take(error.line - 1).map(str::len).sum();
    let line = text.get(line_start..)?.lines().next().unwrap_or("");
    // The column counts characters; the span is in bytes.
    let column = line.char_indices().nth(error.column.saturating_sub(1)).map_or(line.len(), |(i, _)| i);
    let offset = line_start + column;
    let width = error.key.as_deref().map_or(1, |key| {
        let at = &text[offset..];
        let last = key.rsplit('.').next().unwrap_or(key);
        if at.starts_with(last) { last.len() } else { 1 }
    });
    let label = error.key.as_ref().map(|k| format!("key `{k}`"));
    // The summary line above carries the message; the snippet only points.
    let diagnostic = MietteDiagnostic::new("here").with_label(LabeledSpan::new(label, offset, width));
    let report = miette::Report::new(diagnostic).with_source_code(NamedSource::new(&error.file, text));
    let mut out = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_context_lines(1)
        .render_report(&mut out, report.as_ref())
        .ok()?;
    Some(out)
}
