//! Progress on stderr (indicatif): a bar with its rate and ETA while sweeps, shrinks and the
//! report's reading run. indicatif draws nothing when stderr is not a terminal, so piped output
//! and CI logs carry no progress lines.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps; `template` in indicatif's template language.
pub fn bar(len: u64, template: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(template).expect("the templates here are valid");
    ProgressBar::new(len).with_style(style.progress_chars("=> "))
}

/// A sweep's bar: seeds done of all, failures so far, rate and time left.
pub fn seeds(len: u64) -> ProgressBar {
    let bar = bar(len, "[{bar:40}] {pos}/{len} seeds, {msg} ({per_sec}, ETA {eta})");
    bar.set_message("0 failed");
    bar
}
