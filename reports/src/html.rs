//! The one-page HTML layout shared by the sweep report and the check: a self-contained document
//! (inline CSS, inline SVG, no script, no external asset), a verdict banner first, then
//! sections with stable ids. Owns escaping: every text from the input goes through [`esc`].

use std::fmt::Write as _;

/// Escapes text for HTML element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

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

/// A page being written: sections appended in order, then `finish`.
pub struct Page {
    body: String,
    nav: Vec<(String, String)>,
    title: String,
}

impl Page {
    pub fn new(title: &str) -> Page {
        Page { body: String::new(), nav: Vec::new(), title: title.to_string() }
    }

    /// The verdict banner: the first thing on the page.
    pub fn verdict(&mut self, pass: bool, word: &str, text: &str) {
        let class = if pass { "pass" } else { "fail" };
        let _ = writeln!(
            self.body,
            "<div class=\"verdict {class}\" id=\"verdict\"><strong>{}</strong>{}</div>",
            esc(word),
            esc(text)
        );
    }

    /// A section with an id (the tests look for it) and a heading; `html` is already escaped.
    pub fn section(&mut self, id: &str, heading: &str, html: &str) {
        self.nav.push((id.to_string(), heading.to_string()));
        let _ = writeln!(self.body, "<section id=\"{id}\">\n<h2>{}</h2>\n{html}</section>", esc(heading));
    }

    /// The raw HTML of a part without a heading (under the verdict).
    pub fn raw(&mut self, html: &str) {
        self.body.push_str(html);
    }

    pub fn finish(self) -> String {
        let mut nav = String::from("<nav>");
        for (id, heading) in &self.nav {
            let _ = write!(nav, "<a href=\"#{id}\">{}</a>", esc(heading));
        }
        nav.push_str("</nav>\n");
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n{nav}{}</body>\n</html>\n",
            esc(&self.title),
            esc(&self.title),
            self.body
        )
    }
}

/// A table: header cells and rows of already-escaped cells; a cell starting with `#` is a
/// number (right-aligned, the `#` dropped). `row_class` marks rows (e.g. "fail").
pub fn table(headers: &[&str], rows: &[(Option<&str>, Vec<String>)]) -> String {
    let mut out = String::from("<table>\n<tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>\n");
    for (class, cells) in rows {
        match class {
            Some(class) => {
                let _ = write!(out, "<tr class=\"{class}\">");
            }
            None => out.push_str("<tr>"),
        }
        for cell in cells {
            match cell.strip_prefix('#') {
                Some(number) => {
                    let _ = write!(out, "<td class=\"n\">{number}</td>");
                }
                None => {
                    let _ = write!(out, "<td>{cell}</td>");
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// A number cell for [`table`].
pub fn num(n: impl std::fmt::Display) -> String {
    format!("#{n}")
}

/// An optional number cell ("–" when absent).
pub fn opt<T: std::fmt::Display>(n: Option<T>) -> String {
    n.map_or_else(|| "#–".to_string(), |n| format!("#{n}"))
}

/// A chart's SVG (the XML declaration dropped) or its error, under a heading.
pub fn chart(title: &str, file: &str, svg: &Result<String, String>) -> String {
    match svg {
        Ok(svg) => {
            let inline = svg
                .trim_start()
                .strip_prefix("<?xml")
                .and_then(|rest| rest.split_once("?>"))
                .map_or(svg.as_str(), |(_, rest)| rest);
            format!(
                "<div class=\"chart\"><h3>{}</h3>\n{}\n<div class=\"muted\">charts/{}</div></div>\n",
                esc(title),
                inline.trim(),
                esc(file)
            )
        }
        Err(e) => {
            format!("<div class=\"chart\"><h3>{}</h3><p class=\"error\">not drawn: {}</p></div>\n", esc(title), esc(e))
        }
    }
}

/// A chart as a linked image of its file under `charts/` (loaded when shown), or its error.
pub fn linked_chart(title: &str, file: &str, svg: &Result<String, String>) -> String {
    match svg {
        Ok(_) => format!(
            "<div class=\"chart\"><h3>{}</h3>\n<img src=\"charts/{}\" alt=\"{}\" loading=\"lazy\">\n\
             <div class=\"muted\">charts/{}</div></div>\n",
            esc(title),
            esc(file),
            esc(title),
            esc(file)
        ),
        Err(_) => chart(title, file, svg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(esc("<a href=\"x\">&'\u{1}"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;\u{FFFD}");
    }

    #[test]
    fn the_page_starts_with_the_verdict_and_lists_sections() {
        let mut page = Page::new("t <1>");
        page.verdict(false, "FAIL", "2 of 3 seeds failed");
        page.section("failures", "Failures", "<p>x</p>\n");
        let html = page.finish();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>t &lt;1&gt;</title>"));
        assert!(html.find("id=\"verdict\"") < html.find("id=\"failures\""));
        assert!(html.contains("<a href=\"#failures\">Failures</a>"));
    }
}
