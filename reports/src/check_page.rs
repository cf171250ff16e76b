//! The check's page (`allocsim check STATE --out DIR`): the same layout as the sweep report —
//! verdict first, then a count per problem kind, each problem with the engine's rule and what the
//! next allocation pass would do, restore's queue, and what the check skipped.

use std::fmt::Write as _;

use crate::check::{Action, CheckReport, Verdict, kind_name};
use crate::html::{Page, esc, num, table};
use crate::output::Output;

fn action_html(action: &Action) -> String {
    match action {
        Action::NotQueued { object } => {
            format!("<code>{}</code>: not queued; kept as stored", esc(&object.to_string()))
        }
        Action::Allocated { object, changes } => {
            let changes: Vec<String> = changes.iter().map(|c| esc(c)).collect();
            format!("<code>{}</code>: queued; the next pass would {}", esc(&object.to_string()), changes.join("; "))
        }
        Action::Unchanged { object } => {
            format!("<code>{}</code>: queued; the next pass would change nothing", esc(&object.to_string()))
        }
        Action::Fails { object, error, retryable } => {
            let then = if *retryable { "and retry on every pass" } else { "until its spec changes" };
            format!(
                "<code>{}</code>: queued; the next pass would fail ({}) {then}",
                esc(&object.to_string()),
                esc(error)
            )
        }
    }
}

impl CheckReport {
    /// The files of DIR: `check.json`, then `index.html`.
    pub fn files(&self) -> Output {
        let files = vec![("check.json".into(), self.to_json()), ("index.html".into(), self.to_html())];
        Output { dirs: Vec::new(), files }
    }

    /// One self-contained page in the sweep report's style.
    pub fn to_html(&self) -> String {
        let mut page = Page::new("swarmalloc state check");
        let c = &self.objects;
        let read = format!(
            "{}: {} networks, {} services, {} tasks, {} nodes read; {} skipped",
            self.source,
            c.networks,
            c.services,
            c.tasks,
            c.nodes,
            self.skipped.len()
        );
        match self.verdict {
            Verdict::Clean => page.verdict(true, "CLEAN", &format!("no problems in {read}")),
            Verdict::Problems => page.verdict(false, "PROBLEMS", &format!("{} found in {read}", self.problems.len())),
        }
        let rows: Vec<(Option<&str>, Vec<String>)> =
            self.kinds().iter().map(|(kind, n)| (Some("fail"), vec![format!("<code>{kind}</code>"), num(n)])).collect();
        let kinds =
            if rows.is_empty() { "<p>No problems.</p>\n".to_string() } else { table(&["kind", "problems"], &rows) };
        page.section("kinds", "Problems by kind", &kinds);
        let mut problems = String::new();
        for (i, p) in self.problems.iter().enumerate() {
            let _ = write!(
                problems,
                "<div class=\"card fail\" id=\"problem-{}\">\n<h3>{}. <code>{}</code></h3>\n<p>{}</p>\n\
                 <p class=\"muted\">Rule: {}</p>\n<ul>\n",
                i + 1,
                i + 1,
                kind_name(&p.kind),
                esc(&p.message),
                esc(&p.rule)
            );
            for action in &p.actions {
                let _ = writeln!(problems, "<li>{}</li>", action_html(action));
            }
            problems.push_str("</ul>\n</div>\n");
        }
        if problems.is_empty() {
            problems = "<p>Nothing to report: a fresh restore would keep every allocation as stored.</p>\n".into();
        }
        page.section("problems", "Problems and what a fresh restore would do", &problems);
        let queue: Vec<String> = self.queue.iter().map(|o| format!("<code>{}</code>", esc(&o.to_string()))).collect();
        let queue = if queue.is_empty() {
            "<p>Empty: the next allocation pass has nothing to do.</p>\n".to_string()
        } else {
            format!("<p>{}</p>\n", queue.join(", "))
        };
        page.section("queue", "Restore's queue", &queue);
        let rows: Vec<(Option<&str>, Vec<String>)> = self
            .skipped
            .iter()
            .map(|s| (None, vec![format!("<code>{}</code>", esc(&s.place)), esc(&s.reason)]))
            .collect();
        let skipped = if rows.is_empty() { "<p>Nothing.</p>\n".to_string() } else { table(&["where", "why"], &rows) };
        page.section("skipped", "Skipped", &skipped);
        page.finish()
    }
}
