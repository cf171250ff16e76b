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

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::InputError;
use crate::results::read_json_file;

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
    let value: Value = read_json_file(file, &text)?;
    parse_fuzz(&file.display().to_string(), &value).map_err(|(path, found)| InputError::Field {
        file: file.to_path_buf(),
        path,
        expected: "an object with a `targets` array (the nightly fuzz summary)".into(),
        found,
    })
}

// The file as serde reads it. Every field the report uses is `Lenient`: read as its type when it
// is one, else kept as the JSON it is, so that a mistyped field becomes a warning, never a
// failure. An array where an object belongs is its own variant, tried first, because a derived
// struct would otherwise read an array's items as its fields in order.
// (The top level is checked to be an object before it is read.)

#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient<T> {
    Valid(T),
    Other(Value),
}

#[derive(Deserialize)]
struct RawSummary {
    #[serde(default)]
    version: Option<Lenient<u64>>,
    #[serde(default)]
    targets: Option<Lenient<Vec<Entry<RawTarget>>>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Entry<T> {
    Array(Vec<Value>),
    Object(T),
    Other(Value),
}

#[derive(Deserialize)]
struct RawTarget {
    #[serde(default)]
    target: Option<Lenient<String>>,
    #[serde(default)]
    runs: Option<Lenient<u64>>,
    #[serde(default)]
    execs_per_sec: Option<Lenient<f64>>,
    #[serde(default)]
    coverage: Option<Lenient<f64>>,
    #[serde(default)]
    crashes: Option<Crashes>,
}

/// What a target's `crashes` may be: the documented list, or a count, `false`, or anything else
/// (one crash: no crash is dropped).
#[derive(Deserialize)]
#[serde(untagged)]
enum Crashes {
    List(Vec<Entry<RawCrash>>),
    Count(u64),
    Flag(bool),
    Other(Value),
}

#[derive(Deserialize)]
struct RawCrash {
    #[serde(default)]
    artifact: Option<Lenient<String>>,
    #[serde(default)]
    minimized: Option<Lenient<String>>,
    #[serde(default)]
    reproduce: Option<Lenient<String>>,
}

/// Reads a parsed summary; `Err((path, what was found))` only when there is no targets array.
pub fn parse_fuzz(source: &str, value: &Value) -> Result<FuzzSummary, (String, String)> {
    // Only an object is a summary (a derived struct would also read an array).
    let top = match value {
        Value::Object(_) => RawSummary::deserialize(value).map_err(|e| (String::new(), e.to_string()))?,
        _ => return Err((String::new(), crate::docker::describe(value))),
    };
    let targets = match top.targets {
        Some(Lenient::Valid(targets)) => targets,
        Some(Lenient::Other(other)) => return Err(("targets".into(), crate::docker::describe(&other))),
        None => return Err(("targets".into(), "no `targets` key".into())),
    };
    let mut warnings = Vec::new();
    let version = match top.version {
        Some(Lenient::Valid(v)) => Some(v),
        _ => None,
    };
    match version {
        Some(FUZZ_VERSION) => {}
        Some(v) => warnings.push(format!("version {v}: read as version {FUZZ_VERSION}")),
        None => warnings.push(format!("version: missing or not a number; read as version {FUZZ_VERSION}")),
    }
    let mut out = Vec::new();
    for (i, entry) in targets.into_iter().enumerate() {
        let at = format!("targets[{i}]");
        let raw = match entry {
            Entry::Object(raw) => raw,
            Entry::Array(items) => {
                let found = crate::docker::describe(&Value::Array(items));
                warnings.push(format!("{at}: expected an object, found {found}; skipped"));
                continue;
            }
            Entry::Other(other) => {
                let found = crate::docker::describe(&other);
                warnings.push(format!("{at}: expected an object, found {found}; skipped"));
                continue;
            }
        };
        out.push(read_target(raw, &at, &mut warnings));
    }
    Ok(FuzzSummary { source: source.to_string(), version, targets: out, warnings })
}

fn read_target(raw: RawTarget, at: &str, warnings: &mut Vec<String>) -> FuzzTarget {
    let target = match raw.target {
        Some(Lenient::Valid(name)) => name,
        _ => {
            warnings.push(format!("{at}.target: expected a string; shown as {at}"));
            at.to_string()
        }
    };
    let mut number = |key: &str, field: Option<Lenient<f64>>| match field? {
        Lenient::Valid(n) => Some(n),
        Lenient::Other(other) => {
            let found = crate::docker::describe(&other);
            warnings.push(format!("{at}.{key}: expected a number, found {found}; shown as unknown"));
            None
        }
    };
    let runs = match raw.runs {
        Some(Lenient::Valid(n)) => Some(n),
        Some(Lenient::Other(other)) => number("runs", Some(Lenient::Other(other))).map(|n| n as u64),
        None => None,
    };
    let execs_per_sec = number("execs_per_sec", raw.execs_per_sec);
    let coverage = number("coverage", raw.coverage);
    let (crashes, unlisted) = crashes(raw.crashes, at, warnings);
    FuzzTarget { target, runs, execs_per_sec, coverage, crashes, unlisted }
}

/// The crashes listed, and how many more are only counted.
fn crashes(crashes: Option<Crashes>, at: &str, warnings: &mut Vec<String>) -> (Vec<FuzzCrash>, u64) {
    let mut warn = |found: String, read_as: &str| {
        warnings.push(format!("{at}.crashes: expected an array, found {found}; read as {read_as}"));
    };
    let entries = match crashes {
        None | Some(Crashes::Other(Value::Null)) => return (Vec::new(), 0),
        Some(Crashes::List(entries)) => entries,
        Some(Crashes::Count(count)) => {
            warn(crate::docker::describe(&Value::from(count)), &format!("{count} crashes"));
            return (Vec::new(), count);
        }
        Some(Crashes::Flag(flag)) => {
            warn(crate::docker::describe(&Value::Bool(flag)), if flag { "one crash" } else { "no crashes" });
            return (if flag { vec![FuzzCrash::default()] } else { Vec::new() }, 0);
        }
        Some(Crashes::Other(other)) => {
            warn(crate::docker::describe(&other), "one crash");
            if other.is_number() {
                return (vec![FuzzCrash::default()], 0);
            }
            vec![match other {
                Value::Object(_) => RawCrash::deserialize(&other).map_or(Entry::Other(other), Entry::Object),
                other => Entry::Other(other),
            }]
        }
    };
    let crashes =
        entries.into_iter().enumerate().map(|(i, crash)| read_crash(crash, &format!("{at}.crashes[{i}]"), warnings));
    (crashes.collect(), 0)
}

fn read_crash(crash: Entry<RawCrash>, at: &str, warnings: &mut Vec<String>) -> FuzzCrash {
    let raw = match crash {
        Entry::Object(raw) => raw,
        Entry::Array(items) => return crash_without_details(&Value::Array(items), at, warnings),
        Entry::Other(other) => return crash_without_details(&other, at, warnings),
    };
    let mut text = |key: &str, field: Option<Lenient<String>>| match field? {
        Lenient::Valid(text) => Some(text),
        Lenient::Other(Value::Null) => None,
        Lenient::Other(other) => {
            let found = crate::docker::describe(&other);
            warnings.push(format!("{at}.{key}: expected a string, found {found}; shown as JSON"));
            Some(other.to_string())
        }
    };
    FuzzCrash {
        artifact: text("artifact", raw.artifact),
        minimized: text("minimized", raw.minimized),
        reproduce: text("reproduce", raw.reproduce),
    }
}

/// A crash entry that is not an object: a string is its artifact.
fn crash_without_details(crash: &Value, at: &str, warnings: &mut Vec<String>) -> FuzzCrash {
    let found = crate::docker::describe(crash);
    if let Some(artifact) = crash.as_str() {
        warnings.push(format!("{at}: expected an object, found {found}; read as its artifact"));
        return FuzzCrash { artifact: Some(artifact.to_string()), ..FuzzCrash::default() };
    }
    warnings.push(format!("{at}: expected an object, found {found}; read as a crash without details"));
    FuzzCrash::default()
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

    /// A derived struct would read an array's items as its fields in order: an array where a
    /// target or a crash belongs is reported as such.
    #[test]
    fn an_array_is_not_read_as_a_target_or_a_crash() {
        let value = json!({"version": 1, "targets": [["sim", 5], {"target": "t", "crashes": [["a", "b"]]}]});
        let summary = parse_fuzz("f.json", &value).expect("readable");
        assert_eq!(
            summary.warnings,
            [
                "targets[0]: expected an object, found an array of 2 items; skipped",
                "targets[1].crashes[0]: expected an object, found an array of 2 items; read as a crash without details",
            ]
        );
        assert_eq!(summary.targets[0].crashes, [FuzzCrash::default()]);
    }
}
