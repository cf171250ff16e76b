//! `allocsim`: the workbench's command line. It parses the arguments (clap, `args`), then hands
//! each subcommand to its module, which calls the libraries (`swarmalloc_sim`,
//! `swarmalloc_reports`) and prints the outcome. Exit codes: 0 good, 1 a check failed, 2 bad
//! input or usage (`replay` adds 3, see `args::ReplayArgs`).

mod args;
mod bench;
mod bench_real;
mod live;
mod located;
mod progress;
mod report;
mod run;
mod shrink;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};

/// Exit code for bad input or usage.
pub const EXIT_USAGE: u8 = 2;

/// Why a command stopped before its verdict.
#[derive(Debug)]
pub enum Error {
    /// A mistake in the arguments that clap's rules cannot express: the message, then where to
    /// read the subcommand's usage.
    Usage { command: &'static str, message: String },
    /// An unreadable or invalid input: the message names the file (and line, key, field).
    Input(String),
}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::Input(message)
    }
}

/// A command's outcome: its exit code, or why it could not run.
pub type Outcome = Result<u8, Error>;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(clap_error(&e)),
    };
    let outcome = dispatch(cli.command);
    ExitCode::from(match outcome {
        Ok(code) => code,
        Err(Error::Usage { command, message }) => usage(command, &message),
        Err(Error::Input(message)) => {
            eprintln!("allocsim: {message}");
            EXIT_USAGE
        }
    })
}

fn dispatch(command: Command) -> Outcome {
    match command {
        Command::Run(args) => run::run(&args),
        Command::Replay(args) => run::replay(&args),
        Command::Decompile(args) => shrink::decompile(&args),
        Command::Shrink(args) => shrink::shrink(&args),
        Command::Bench(args) if args.real => bench_real::bench_real(&args),
        Command::Bench(args) => Ok(bench::bench(&args)),
        Command::Report(args) => report::report(&args),
        Command::Check(args) => report::check(&args),
        Command::Live(args) => live::live(&args),
    }
}

/// A usage mistake: one short message and where to read more (not the whole usage).
fn usage(command: &str, message: &str) -> u8 {
    let help = if command.is_empty() { "allocsim --help".to_string() } else { format!("allocsim {command} --help") };
    eprintln!("allocsim: {message}\n\nFor more information, try '{help}'.");
    EXIT_USAGE
}

/// Prints clap's help and version as they are, and a parse error as [`usage`] does: clap's
/// message and its suggestions (a similar argument or value), without its usage lines.
fn clap_error(error: &clap::Error) -> u8 {
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            return 0;
        }
        // `allocsim` alone: the help is the answer.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            return EXIT_USAGE;
        }
        _ => {}
    }
    // clap renders "error: MESSAGE", tips, "Usage: ..." and "For more information, try
    // '--help'." as paragraphs; keep the message and the tips.
    let text = error.render().to_string();
    let kept: Vec<&str> = text
        .trim_end()
        .split("\n\n")
        .filter(|part| !part.starts_with("Usage:") && !part.starts_with("For more information"))
        .collect();
    let message = kept.join("\n\n");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    // The subcommand whose help to point at: the first argument that names one.
    let names: Vec<String> = Cli::command().get_subcommands().map(|c| c.get_name().to_string()).collect();
    let command = std::env::args().skip(1).find(|a| names.contains(a));
    let command = command.and_then(|c| Cli::command().find_subcommand(&c).map(|s| s.get_name().to_string()));
    usage(command.as_deref().unwrap_or(""), message)
}
