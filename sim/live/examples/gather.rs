//! Gathers the swarm that `DOCKER_HOST` names into DIR, checks it, and checks that the saved
//! directory reads back to the same problems: what `reports/tests/dumps/real/make.sh` runs for
//! each fixture (`allocsim check --save-dump DIR` does the same for users once the CLI has it).
//!
//!     cargo run -p swarmalloc-live --example gather -- DIR
//!
//! Prints the check's text; exits 0 clean, 1 problems found, 2 the swarm or DIR could not be
//! read or written, 3 the saved directory checks differently from the live state.

use std::path::PathBuf;
use std::process::ExitCode;

use swarmalloc_live::Endpoint;
use swarmalloc_live::gather::gather;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: gather DIR (the swarm DOCKER_HOST names is gathered into DIR)");
        return ExitCode::from(2);
    };
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("gather: {e}");
        ExitCode::from(2)
    };
    let endpoint = match Endpoint::from_env() {
        Ok(endpoint) => endpoint,
        Err(e) => return fail(&e),
    };
    let gathered = match gather(&endpoint, 60) {
        Ok(gathered) => gathered,
        Err(e) => return fail(&e),
    };
    if let Err(e) = gathered.save(&dir) {
        return fail(&e);
    }
    let live = match gathered.check() {
        Ok(report) => report,
        Err(e) => return fail(&e),
    };
    let saved = match swarmalloc_reports::check_path(&dir) {
        Ok(report) => report,
        Err(e) => return fail(&e),
    };
    print!("{}", saved.to_text());
    if (&live.problems, &live.queue) != (&saved.problems, &saved.queue) {
        eprintln!("gather: the saved directory checks differently from the live state:\n{}", live.to_text());
        return ExitCode::from(3);
    }
    ExitCode::from(saved.status().code())
}
