//! The check's page (`index.html`): the sweep report's layout and style, rendered from the askama
//! template `reports/templates/check.html`, which escapes every value it shows. Verdict first,
//! then the problems grouped by kind (the engine's rule once per kind; each problem in words,
//! what restore makes of it and what the next allocation pass would do), restore's queue with
//! where each queued object is explained, and, folded, what the check skipped.

use askama::Template;

use crate::check::{CheckReport, Named, Problem, kind_name, show};
use crate::html::STYLE;
use crate::output::Output;

#[derive(Template)]
#[template(path = "check.html")]
struct CheckPage<'a> {
    report: &'a CheckReport,
    groups: Vec<Group<'a>>,
    queue: Vec<Queued>,
    style: &'static str,
}

/// The problems of one kind, numbered as in the text and the JSON (from 1).
struct Group<'a> {
    kind: &'static str,
    rule: &'a str,
    problems: Vec<(usize, &'a Problem)>,
}

/// An object of restore's queue, and where the page explains it.
struct Queued {
    shown: String,
    /// The problems whose rule acts on it.
    problems: Vec<usize>,
    /// A skipped entry says why the check does not judge it.
    skipped: bool,
}

impl CheckPage<'_> {
    fn new(report: &CheckReport) -> CheckPage<'_> {
        let mut groups: Vec<Group<'_>> = Vec::new();
        for (i, problem) in report.problems.iter().enumerate() {
            let kind = kind_name(&problem.kind);
            match groups.iter_mut().find(|g| g.kind == kind) {
                Some(group) => group.problems.push((i + 1, problem)),
                None => groups.push(Group { kind, rule: &problem.rule, problems: vec![(i + 1, problem)] }),
            }
        }
        let queue = report
            .queue
            .iter()
            .map(|named: &Named| {
                let shown = show(&named.object, &named.name);
                let problems = (1..=report.problems.len())
                    .filter(|&n| report.problems[n - 1].actions.iter().any(|a| a.object == named.object))
                    .collect();
                let skipped = report.skipped.iter().any(|s| s.reason.starts_with(&format!("{shown}:")));
                Queued { shown, problems, skipped }
            })
            .collect();
        CheckPage { report, groups, queue, style: STYLE }
    }

    /// A place without the checked directory in front (`networks.json: [3]`).
    fn place<'p>(&self, place: &'p str) -> &'p str {
        place.strip_prefix(&format!("{}/", self.report.source)).unwrap_or(place)
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
        CheckPage::new(self).render().expect("the check page renders plain data")
    }
}
