//! What the two pages (the sweep report's and the check's, both askama templates under
//! `reports/templates/`) share: the style, and charts inlined into the page.

/// The style of both pages: one self-contained document each (inline CSS and SVG, no script,
/// no external asset), a verdict banner first, then sections with stable ids.
pub(crate) const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 16px 24px 48px; color: #1d2329; background: #fff; line-height: 1.45; }
h1 { font-size: 1.6em; margin: 0.4em 0; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
.verdict { border-radius: 6px; padding: 12px 16px; font-size: 1.15em; margin: 12px 0; }
.verdict.pass { background: #dafbe1; border: 1px solid #2da44e; }
.verdict.fail { background: #ffebe9; border: 1px solid #cf222e; }
.verdict strong { font-size: 1.2em; margin-right: 0.6em; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.fail td { background: #fff5f5; }
code, pre { font-family: 'DejaVu Sans Mono', ui-monospace, monospace; font-size: 0.9em; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; border-radius: 4px; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: 4px 14px 10px; margin: 12px 0; }
.card.fail { border-left: 5px solid #cf222e; }
.muted { color: #57606a; }
.chart { margin: 8px 0 16px; }
.chart svg, .chart img { max-width: 100%; height: auto; }
details > summary strong { margin-right: 0.5em; }
.chart .error { color: #9a6700; }
details > summary { cursor: pointer; margin: 6px 0; }
nav a { margin-right: 12px; }
";

/// A chart's SVG without its XML declaration, to put inline into HTML.
pub(crate) fn inline_svg(svg: &str) -> &str {
    svg.trim_start().strip_prefix("<?xml").and_then(|rest| rest.split_once("?>")).map_or(svg, |(_, rest)| rest).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inline_svg_has_no_xml_declaration() {
        assert_eq!(inline_svg("<?xml version=\"1.0\"?>\n<svg></svg>\n"), "<svg></svg>");
        assert_eq!(inline_svg("<svg></svg>"), "<svg></svg>");
    }
}
