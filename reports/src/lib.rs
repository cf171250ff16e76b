//! swarmalloc-reports: reports over the allocator's state, behind `allocsim report` and
//! `allocsim check` (the subcommands in `sim/src/cli.rs` are thin wrappers).
//!
//! - The sweep report: reads the JSON lines of `allocsim run --json` (several files merge),
//!   optionally a fuzz summary and a baseline report, and writes `report.json`, `index.html` and
//!   SVG charts drawn with plotters.
//! - The consistency check of a cluster state: reads a dump of a real swarm (Docker inspect
//!   JSON) or of the project's store, lists every problem, and says what a fresh restore would do.
//!
//! ```text
//! let sweep = swarmalloc_reports::make_report(&options, &mut |_| {})?;    // Result<Sweep, InputError>
//! print!("{}", sweep.to_text());
//! swarmalloc_reports::write_files(&out, &sweep.files())?;                  // charts/, report.json, index.html
//! let result = swarmalloc_reports::check_path(Path::new("dump/"));         // Result<CheckReport, InputError>
//! std::process::exit(Status::of(&result).code().into());                   // 0 clean, 1 problems, 2 unreadable
//! ```
//!
//! Architecture invariants: the simulator owns the result-line types and this crate only reads
//! them (the simulator does not depend on it); the check never changes the dump and never panics on its content; everything it
//! concludes comes from `Allocator::restore` and a dropped `Tx`; a report is a function of its
//! inputs, except the values under `wall_clock`.

mod baseline;
mod baseline_diff;
mod charts;
mod check;
mod check_page;
mod docker;
mod dump;
mod error;
mod fuzz;
mod html;
mod output;
mod report;
mod report_page;
mod results;
mod stats;
mod sweep;

use std::path::Path;

pub use baseline_diff::{BaselineDiff, Change, ThroughputChange};
pub use charts::Chart;
pub use check::{
    Action, CheckReport, ConfigShown, Counts, Named, Names, Outcomes, Problem, ProblemKind, SCHEMA, Status, Verdict,
    check_dump, kind_name, show,
};
pub use docker::{GATHER_SCHEMA, GatherManifest, GoneNetwork, Kind, classify};
pub use dump::{Dump, Skipped, Unreadable, load, load_texts};
pub use error::InputError;
pub use fuzz::{FuzzCrash, FuzzSummary, FuzzTarget, read_fuzz};
pub use output::{Output, write_files};
pub use report::{ReportOptions, make_report};
pub use results::{Line, Place, Progress, fault_text, parse_line, problem, read_lines};
pub use sweep::{
    ChartData, Distribution, FailureDetail, FailureSummary, REPORT_SCHEMA, ScenarioSummary, Sweep, SweepOptions,
    SweepReport, SweepVerdict, WallClock, read_sweep,
};

/// Reads the dump at `path` (a directory of JSON files or one file) and checks it.
pub fn check_path(path: &Path) -> Result<CheckReport, InputError> {
    let dump = load(path)?;
    check_dump(&dump, &path.display().to_string())
}
