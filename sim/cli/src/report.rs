//! `allocsim report` (the sweep report) and `allocsim check` (a swarm's state): thin wrappers
//! over `swarmalloc_reports`.

use std::io::IsTerminal;
use std::path::Path;

use swarmalloc_reports::{ReportOptions, Status, check_path, make_report};

use crate::args::{CheckArgs, ReportArgs};
use crate::{Error, Outcome};

/// Shows reading progress on stderr for inputs of more than a few megabytes.
fn reading_progress(progress: swarmalloc_reports::Progress) {
    const SHOW_ABOVE_BYTES: u64 = 8 << 20;
    if progress.bytes_total < SHOW_ABOVE_BYTES {
        return;
    }
    let percent = progress.bytes_read * 100 / progress.bytes_total.max(1);
    let text = format!("reading {}: {percent}% ({} lines)", progress.file.display(), progress.lines);
    if std::io::stderr().is_terminal() {
        eprint!("\r{text}   ");
        if progress.bytes_read >= progress.bytes_total {
            eprintln!();
        }
    } else {
        eprintln!("{text}");
    }
}

/// Writes a report's files; a failure names the file (exit 2).
fn write_out(dir: &Path, files: &swarmalloc_reports::Output) -> Result<(), Error> {
    swarmalloc_reports::write_files(dir, files).map(|_| ()).map_err(|e| Error::Input(e.to_string()))
}

pub fn report(args: &ReportArgs) -> Outcome {
    let mut options = ReportOptions {
        results: args.results.clone(),
        fuzz: args.fuzz.clone(),
        baseline: args.baseline.clone(),
        ..ReportOptions::default()
    };
    options.sweep.failures_dir = args.failures.clone();
    let sweep = make_report(&options, &mut reading_progress).map_err(|e| Error::Input(e.to_string()))?;
    let files = sweep.files();
    write_out(&args.out, &files)?;
    if args.json {
        print!("{}", sweep.report.to_json());
    } else {
        print!("{}", sweep.to_text());
        let charts = files.files.iter().filter(|(name, _)| name.starts_with("charts/")).count();
        println!("wrote {} ({charts} charts)", args.out.join("index.html").display());
    }
    Ok(sweep.exit_code())
}

pub fn check(args: &CheckArgs) -> Outcome {
    let result = check_path(&args.state);
    let report = match &result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("allocsim: {e}");
            return Ok(Status::of(&result).code());
        }
    };
    write_out(&args.out, &report.files())?;
    if args.json {
        print!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
        println!("wrote {}", args.out.join("index.html").display());
    }
    Ok(Status::of(&result).code())
}
