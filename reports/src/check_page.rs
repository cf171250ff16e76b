//! The check's page (`index.html`): the sweep report's layout and style, rendered from the askama
//! template `reports/templates/check.html`, which escapes every value it shows. Verdict first,
//! then a count per problem kind, each problem in words with what restore makes of it, the
//! engine's rule and what the next allocation pass would do, restore's queue, and what the
//! check skipped.

use askama::Template;

use crate::check::{CheckReport, Named, Problem, kind_name, show};
use crate::html::STYLE;
use crate::output::Output;

#[derive(Template)]
#[template(path = "check.html")]
struct CheckPage<'a> {
    report: &'a CheckReport,
    kinds: Vec<(&'static str, usize)>,
    style: &'static str,
}

impl CheckPage<'_> {
    fn kind_of(&self, problem: &Problem) -> &'static str {
        kind_name(&problem.kind)
    }

    fn show_named(&self, named: &Named) -> String {
        show(&named.object, &named.name)
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
        let page = CheckPage { report: self, kinds: self.kinds().into_iter().collect(), style: STYLE };
        page.render().expect("the check page renders plain data")
    }
}
