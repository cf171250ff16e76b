//! The nightly fuzz summary (`--fuzz FILE`), read tolerantly: it is written by another tool
//! that may grow. The fields used are `version` (1), `targets[].target`, `.runs`,
//! `.execs_per_sec`, `.coverage` and `.crashes[].{artifact, reproduce}`; unknown fields are
//! ignored, and a missing or mistyped field is shown as unknown with a warning. Only a file that
//! is not JSON, or has no `targets` array, is unreadable.

use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{InputError, serde_position};

/// The schema version this reader knows.
pub const FUZZ_VERSION: u64 = 1;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FuzzSummary {
    /// The file as given.
    pub source: String,
    pub version: Option<u64>,
    pub targets: Vec<FuzzTarget>,
    /// What could not be read as expected, each naming the JSON path.
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FuzzTarget {
    pub target: String,
    pub runs: Option<u64>,
    pub execs_per_sec: Option<f64>,
    /// As the fuzzer counts it (libFuzzer: covered edges).
    pub coverage: Option<f64>,
    pub crashes: Vec<FuzzCrash>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FuzzCrash {
    pub artifact: Option<String>,
    pub reproduce: Option<String>,
}

impl FuzzSummary {
    pub fn crashes(&self) -> u64 {
        self.targets.iter().map(|t| t.crashes.len() as u64).sum()
    }
}

/// Reads a fuzz summary file.
pub fn read_fuzz(file: &Path) -> Result<FuzzSummary, InputError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| InputError::Io { file: file.to_path_buf(), message: e.to_string() })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        let (line, column, path, message) = serde_position(&text, &e);
        InputError::Syntax { file: file.to_path_buf(), line, column, path, message }
    })?;
    parse_fuzz(&file.display().to_string(), &value).map_err(|(path, found)| InputError::Field {
        file: file.to_path_buf(),
        path,
        expected: "an object with a `targets` array (the nightly fuzz summary)".into(),
        found,
    })
}

/// Reads a parsed summary; `Err((path, what was found))` only when there is no targets array.
pub fn parse_fuzz(source: &str, value: &Value) -> Result<FuzzSummary, (String, String)> {
    let Some(top) = value.as_object() else { return Err((String::new(), crate::docker::describe(value))) };
    let Some(targets) = top.get("targets").and_then(Value::as_array) else {
        let found = top.get("targets").map_or("no `targets` key".to_string(), crate::docker::describe);
        return Err(("targets".into(), found));
    };
    let mut warnings = Vec::new();
    let version = top.get("version").and_then(Value::as_u64);
    match version {
        Some(FUZZ_VERSION) => {}
        Some(v) => warnings.push(format!("version {v}: read as version {FUZZ_VERSION}")),
        None => warnings.push(format!("version: missing or not a number; read as version {FUZZ_VERSION}")),
    }
    let mut out = Vec::new();
    for (i, item) in targets.iter().enumerate() {
        let at = format!("targets[{i}]");
        let Some(map) = item.as_object() else {
            warnings.push(format!("{at}: expected an object, found {}; skipped", crate::docker::describe(item)));
            continue;
        };
        let Some(name) = map.get("target").and_then(Value::as_str) else {
            warnings.push(format!("{at}.target: expected a string; skipped"));
            continue;
        };
        let mut field = |key: &str, read: fn(&Value) -> Option<f64>| -> Option<f64> {
            let value = map.get(key)?;
            let read = read(value);
            if read.is_none() {
                let found = crate::docker::describe(value);
                warnings.push(format!("{at}.{key}: expected a number, found {found}; shown as unknown"));
            }
            read
        };
        let runs = field("runs", |v| v.as_u64().map(|n| n as f64)).map(|n| n as u64);
        let execs_per_sec = field("execs_per_sec", Value::as_f64);
        let coverage = field("coverage", Value::as_f64);
        let crashes = crashes(map, &at, &mut warnings);
        out.push(FuzzTarget { target: name.to_string(), runs, execs_per_sec, coverage, crashes });
    }
    Ok(FuzzSummary { source: source.to_string(), version, targets: out, warnings })
}

fn crashes(map: &Map<String, Value>, at: &str, warnings: &mut Vec<String>) -> Vec<FuzzCrash> {
    let Some(value) = map.get("crashes") else { return Vec::new() };
    let Some(items) = value.as_array() else {
        let found = crate::docker::describe(value);
        warnings.push(format!("{at}.crashes: expected an array, found {found}; read as no crashes"));
        return Vec::new();
    };
    let text = |crash: &Value, key: &str, i: usize, warnings: &mut Vec<String>| -> Option<String> {
        let value = crash.get(key)?;
        let text = value.as_str().map(str::to_string);
        if text.is_none() {
            let found = crate::docker::describe(value);
            warnings.push(format!("{at}.crashes[{i}].{key}: expected a string, found {found}"));
        }
        text
    };
    items
        .iter()
        .enumerate()
        .map(|(i, crash)| FuzzCrash {
            artifact: text(crash, "artifact", i, warnings),
            reproduce: text(crash, "reproduce", i, warnings),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_documented_fields_and_ignores_the_rest() {
        let value = json!({"version": 1, "date": "x", "targets": [
            {"target": "restore", "runs": 120000, "execs_per_sec": 7500.5, "coverage": 812, "extra": [1],
             "crashes": [{"artifact": "fuzz/artifacts/restore/crash-1", "reproduce": "cargo fuzz run restore crash-1"}]},
            {"target": "engine_ops"}
        ]});
        let summary = parse_fuzz("f.json", &value).expect("readable");
        assert_eq!(summary.warnings, Vec::<String>::new());
        assert_eq!(summary.crashes(), 1);
        assert_eq!(summary.targets[0].runs, Some(120_000));
        assert_eq!(
            summary.targets[1],
            FuzzTarget {
                target: "engine_ops".into(),
                runs: None,
                execs_per_sec: None,
                coverage: None,
                crashes: vec![]
            }
        );
    }

    #[test]
    fn mistyped_fields_warn_and_only_a_missing_targets_array_fails() {
        let value =
            json!({"version": 2, "targets": [{"target": "sim", "runs": "many", "crashes": {}}, 7, {"runs": 1}]});
        let summary = parse_fuzz("f.json", &value).expect("readable");
        assert_eq!(
            summary.warnings,
            [
                "version 2: read as version 1",
                "targets[0].runs: expected a number, found the string \"many\"; shown as unknown",
                "targets[0].crashes: expected an array, found an object; read as no crashes",
                "targets[1]: expected an object, found the number 7; skipped",
                "targets[2].target: expected a string; skipped",
            ]
        );
        assert_eq!(summary.targets.len(), 1);
        assert_eq!(parse_fuzz("f.json", &json!({"targets": 3})), Err(("targets".into(), "the number 3".into())));
        assert_eq!(parse_fuzz("f.json", &json!([])), Err((String::new(), "an array of 0 items".into())));
    }
}
