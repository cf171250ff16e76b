//! swarmalloc-reports: reports over the allocator's state. This crate holds the consistency
//! check of a cluster state (`allocsim check STATE`): read a dump of a real swarm (Docker inspect
//! JSON) or of the project's store, list every problem, and say what a fresh restore would do.
//!
//! ```text
//! let result = swarmalloc_reports::check_path(Path::new("dump/"));   // Result<CheckReport, InputError>
//! match &result { Ok(report) => print!("{}", report.to_text()), Err(e) => eprintln!("{e}") }
//! std::process::exit(Status::of(&result).code().into());             // 0 clean, 1 problems, 2 unreadable
//! ```
//!
//! Architecture invariant: the check never changes the dump and never panics on its content;
//! everything it concludes comes from `Allocator::restore` and a dropped `Tx`.

mod check;
mod docker;
mod dump;
mod error;

use std::path::Path;

pub use check::{Action, CheckReport, Counts, Problem, ProblemKind, SCHEMA, Status, Verdict, check_dump, kind_name};
pub use docker::{Kind, Read, classify};
pub use dump::{Dump, Skipped, Snapshot, load};
pub use error::{InputError, JsonPath, path_at};

/// Reads the dump at `path` (a directory of JSON files or one file) and checks it.
pub fn check_path(path: &Path) -> Result<CheckReport, InputError> {
    let dump = load(path)?;
    check_dump(&dump, &path.display().to_string())
}
