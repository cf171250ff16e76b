//! Failure files: everything needed to reproduce a failing run (the scenario itself, the seed),
//! plus what it found (fault choice, violation, trace hash and tail). `allocsim replay FILE`
//! runs it again and compares the trace hash.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::faults::FaultPlan;
use crate::run::RunResult;
use crate::scenario::Scenario;
use crate::world::Violation;

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
        #[cfg(not(feature = "legacy"))]
        let name = self.scenario.name.clone();
        #[cfg(feature = "legacy")]
        let name = match self.scenario.legacy {
            Some(flavour) => format!("{}-legacy-{flavour}", self.scenario.name),
            None => self.scenario.name.clone(),
        };
        // The name is checked when a scenario is read; a scenario built in code is checked here,
        // so that no name writes outside `dir`.
        crate::scenario_file::check_name(&self.scenario.name).map_err(|e| format!("scenario.{e}"))?;
        let path = dir.join(format!("{name}-{}.json", self.seed));
        let text = serde_json::to_string_pretty(self).expect("failure files serialise");
        std::fs::write(&path, text).map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
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
