//! `allocsim report` (the sweep report) and `allocsim check` (a swarm's state): thin wrappers
//! over `swarmalloc_reports` (and `swarmalloc_live`, which reads a live swarm).

use std::path::{Path, PathBuf};

use swarmalloc_live::Endpoint;
use swarmalloc_live::gather::check_live;
use swarmalloc_reports::{ReportOptions, check_path, make_report};

use crate::args::{CheckArgs, ReportArgs};
use crate::{Error, Outcome};

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
    // One bar per file, in bytes; small files finish before a bar would show.
    let mut bar: Option<(PathBuf, indicatif::ProgressBar)> = None;
    let mut progress = |p: swarmalloc_reports::Progress| {
        if bar.as_ref().is_none_or(|(file, _)| file != p.file) {
            let template = "reading {msg}: {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta})";
            let new = crate::progress::bar(p.bytes_total, template);
            new.set_message(p.file.display().to_string());
            if let Some((_, old)) = bar.replace((p.file.to_path_buf(), new)) {
                old.finish_and_clear();
            }
        }
        if let Some((_, bar)) = &bar {
            bar.set_position(p.bytes_read);
        }
    };
    let made = make_report(&options, &mut progress);
    if let Some((_, bar)) = bar {
        bar.finish_and_clear();
    }
    let sweep = made.map_err(|e| Error::Input(e.to_string()))?;
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

/// Seconds the Docker API client waits for an answer (listing thousands of tasks takes the
/// manager about a second).
const DOCKER_TIMEOUT_S: u64 = 60;

/// `allocsim check`: prints the verdict; writes files only when asked (`--out`, `--save-dump`).
pub fn check(args: &CheckArgs) -> Outcome {
    let report = match &args.state {
        Some(state) => check_path(state).map_err(|e| e.to_string())?,
        None => {
            let docker_host = std::env::var("DOCKER_HOST").ok();
            let endpoint =
                Endpoint::resolve(args.host.as_deref(), docker_host.as_deref()).map_err(|e| e.to_string())?;
            check_live(&endpoint, args.save_dump.as_deref(), DOCKER_TIMEOUT_S).map_err(|e| e.to_string())?
        }
    };
    if let Some(out) = &args.out {
        write_out(out, &report.files())?;
    }
    if args.json {
        print!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
        if let Some(dir) = &args.save_dump {
            println!("saved the state to {} (`allocsim check {0}` reads it back)", dir.display());
        }
        if let Some(out) = &args.out {
            println!("wrote {}", out.join("index.html").display());
        }
    }
    Ok(report.status().code())
}
