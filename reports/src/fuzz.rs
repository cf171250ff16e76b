//! The nightly fuzz summary (`--fuzz FILE`), read tolerantly: it is written by another tool
//! that may grow. The fields used are `version` (1), `targets[].target`, `.runs`,
//! `.execs_per_sec`, `.coverage` and `.crashes[].{artifact, minimized, reproduce}`; unknown
//! fields are ignored, and a missing or mistyped field is shown as unknown with a warning. Only
//! a file that is not JSON, or has no `targets` array, is unreadable.
//!
//! Architecture invariant: no crash is dropped. Every crash the file lists counts in the verdict
//! and appears in `report.json` and on the page, however malformed its target or entry: a target
//! without a name is kept under its JSON path, a `crashes` object or string is one crash, a
//! `crashes` number counts that many crashes (`unlisted`), an entry that is not an object is a
//! crash without details (a string is its artifact).

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
    /// Crashes counted (`"crashes": N`) but not listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub unlisted: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FuzzCrash {
    pub artifact: Option<String>,
    /// The minimized input, when the fuzzer made one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimized: Option<String>,
    pub reproduce: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FuzzTarget {
    /// Crashes listed and counted.
    pub fn crash_count(&self) -> u64 {
        (self.crashes.len() as u64).saturating_add(self.unlisted)
    }
}

impl FuzzSummary {
    pub fn crashes(&self) -> u64 {
        self.targets.iter().fold(0u64, |sum, t| sum.saturating_add(t.crash_count()))
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
        let name = match map.get("target").and_then(Value::as_str) {
            Some(name) => name.to_string(),
            None => {
                warnings.push(format!("{at}.target: expected a string; shown as {at}"));
                at.clone()
            }
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
        let (crashes, unlisted) = crashes(map, &at, &mut warnings);
        out.push(FuzzTarget { target: name, runs, execs_per_sec, coverage, crashes, unlisted });
    }
    Ok(FuzzSummary { source: source.to_string(), version, targets: out, warnings })
}

/// The crashes listed, and how many more are only counted.
fn crashes(map: &Map<String, Value>, at: &str, warnings: &mut Vec<String>) -> (Vec<FuzzCrash>, u64) {
    let value = match map.get("crashes") {
        None | Some(Value::Null) => return (Vec::new(), 0),
        Some(value) => value,
    };
    let found = crate::docker::describe(value);
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Number(n) => {
            let Some(count) = n.as_u64() else {
                warnings.push(format!("{at}.crashes: expected an array, found {found}; read as one crash"));
                return (vec![FuzzCrash::default()], 0);
            };
            warnings.push(format!("{at}.crashes: expected an array, found {found}; read as {count} crashes"));
            return (Vec::new(), count);
        }
        Value::Bool(false) => {
            warnings.push(format!("{at}.crashes: expected an array, found {found}; read as no crashes"));
            return (Vec::new(), 0);
        }
        _ => {
            warnings.push(format!("{at}.crashes: expected an array, found {found}; read as one crash"));
            vec![value]
        }
    };
    let crashes =
        items.into_iter().enumerate().map(|(i, crash)| read_crash(crash, &format!("{at}.crashes[{i}]"), warnings));
    (crashes.collect(), 0)
}

fn read_crash(crash: &Value, at: &str, warnings: &mut Vec<String>) -> FuzzCrash {
    let Some(map) = crash.as_object() else {
        let found = crate::docker::describe(crash);
        if let Some(artifact) = crash.as_str() {
            warnings.push(format!("{at}: expected an object, found {found}; read as its artifact"));
            return FuzzCrash { artifact: Some(artifact.to_string()), ..FuzzCrash::default() };
        }
        warnings.push(format!("{at}: expected an object, found {found}; read as a crash without details"));
        return FuzzCrash::default();
    };
    let mut text = |key: &str| -> Option<String> {
        let value = map.get(key).filter(|v| !v.is_null())?;
        Some(value.as_str().map(str::to_string).unwrap_or_else(|| {
            let found = crate::docker::describe(value);
            warnings.push(format!("{at}.{key}: expected a string, found {found}; shown as JSON"));
            value.to_string()
        }))
    };
    FuzzCrash { artifact: text("artifact"), minimized: text("minimized"), reproduce: text("reproduce") }
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
                crashes: vec![],
                unlisted: 0
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
                "targets[0].crashes: expected an array, found an object; read as one crash",
                "targets[1]: expected an object, found the number 7; skipped",
                "targets[2].target: expected a string; shown as targets[2]",
            ]
        );
        let targets: Vec<(&str, u64)> = summary.targets.iter().map(|t| (t.target.as_str(), t.crash_count())).collect();
        assert_eq!(targets, [("sim", 1), ("targets[2]", 0)]);
        assert_eq!(parse_fuzz("f.json", &json!({"targets": 3})), Err(("targets".into(), "the number 3".into())));
        assert_eq!(parse_fuzz("f.json", &json!([])), Err((String::new(), "an array of 0 items".into())));
    }
}
