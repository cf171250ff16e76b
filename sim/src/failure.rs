//! Failure files: everything needed to reproduce a failing run (the scenario itself, the seed),
//! plus what it found (fault choice, violation, trace hash and tail). `allocsim replay FILE`
//! runs it again and compares the trace hash.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::faults::FaultPlan;
use crate::result::RunResult;
use crate::result::Violation;
use crate::scenario::Scenario;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureFile {
    pub scenario: Scenario,
    pub seed: u64,
    pub faults: FaultPlan,
    /// The fault choice as printed.
    pub faults_text: String,
    pub violation: Option<Violation>,
    pub trace_hash: String,
    pub trace_tail: Vec<String>,
}

impl FailureFile {
    pub fn new(scenario: &Scenario, result: &RunResult) -> FailureFile {
        FailureFile {
            scenario: scenario.clone(),
            seed: result.seed,
            faults: result.faults.clone(),
            faults_text: result.faults.to_string(),
            violation: result.violation.clone(),
            trace_hash: result.trace_hash.clone(),
            trace_tail: result.trace_tail.clone(),
        }
    }

    /// Writes `DIR/SCENARIO-SEED.json` and returns its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create directory: {e}", dir.display()))?;
        let legacy = self.scenario.legacy_flavour().map(|f| f.to_string());
        // The name is checked when a scenario is read; a scenario built in code is checked here,
        // so that no name writes outside `dir`.
        crate::scenario_file::check_name(&self.scenario.name).map_err(|e| format!("scenario.{e}"))?;
        let path = dir.join(format!("{}.json", file_stem(&self.scenario.name, legacy.as_deref(), self.seed)));
        let text = serde_json::to_string_pretty(self).expect("failure files serialise");
        write_atomically(&path, &text)?;
        Ok(path)
    }

    /// Reads and validates a failure file; errors name the file and the field.
    pub fn read(path: &Path) -> Result<FailureFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let file: FailureFile =
            serde_json::from_str(&text).map_err(|e| format!("{}: not a failure file: {e}", path.display()))?;
        crate::scenario_file::check_name(&file.scenario.name)
            .and_then(|()| file.scenario.validate())
            .map_err(|e| format!("{}: scenario.{e}", path.display()))?;
        Ok(file)
    }
}

/// The name of a seed's failure file without `.json`: `NAME-SEED`, or `NAME-legacy-FLAVOUR-SEED`
/// for a run with a legacy flavour. `allocsim shrink` writes `STEM.shrunk.toml` beside it.
pub fn file_stem(scenario: &str, legacy: Option<&str>, seed: u64) -> String {
    match legacy {
        Some(flavour) => format!("{scenario}-legacy-{flavour}-{seed}"),
        None => format!("{scenario}-{seed}"),
    }
}

/// Writes `text` to `path` through a temporary file in the same directory (tempfile) and a
/// rename, so that an interrupted write leaves either the old file or the new one, never half
/// of one, and no temporary file.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let cannot = |e: &dyn std::fmt::Display| format!("{}: cannot write: {e}", path.display());
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if path.file_name().is_none() {
        return Err(format!("{}: expected a file name", path.display()));
    }
    let mut temp = tempfile::Builder::new().prefix(".allocsim-").tempfile_in(dir).map_err(|e| cannot(&e))?;
    std::io::Write::write_all(&mut temp, text.as_bytes()).map_err(|e| cannot(&e))?;
    temp.persist(path).map_err(|e| cannot(&e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("allocsim-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run-7.json");
        write_atomically(&path, "old").unwrap();
        write_atomically(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["run-7.json"]);

        let missing = dir.join("no-such-dir").join("run-7.json");
        let err = write_atomically(&missing, "x").unwrap_err();
        assert!(err.starts_with(&format!("{}: cannot write: ", missing.display())), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
