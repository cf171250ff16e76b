//! Scenario files: the TOML form of a [`Scenario`] (documented with an example of every key in
//! scenarios/README.md). [`parse`] reads one and reports the first error with file, line, column,
//! the key and what was expected; [`to_toml`] writes a scenario back out (decompile and shrink
//! write their results this way), and parsing that text gives the same scenario.
//!
//! - `model.rs`: the file model, plain serde structs with `deny_unknown_fields` (stored objects
//!   in `[initial]` use the engine's own object shapes, so any stored state, consistent or not,
//!   can be written down);
//! - `lower.rs`: lowering the model to the runtime [`Scenario`], and raising it back for writing;
//! - `locate.rs`: where an error is in the text, from the spans of toml's own parser.

mod locate;
mod lower;
mod model;

use std::fmt;
use std::ops::Range;
use std::path::Path;

use locate::{Spans, file_message, line_column, quoted_key};
use model::FileModel;

pub use crate::scenario::LEGACY_HINT;
use crate::scenario::Scenario;

/// A scenario file error: where, which key, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: String,
    /// 1-based; 0 when the error has no position (an unreadable file).
    pub line: usize,
    pub column: usize,
    /// The key the error is about, when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ScenarioError {}

/// Reads and parses a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let error = |line, column, message: String| ScenarioError { file: file.clone(), line, column, key: None, message };
    let bytes = std::fs::read(path).map_err(|e| error(0, 0, format!("cannot read the scenario file: {e}")))?;
    if bytes.contains(&0) {
        return Err(error(0, 0, "a binary file (it holds NUL bytes), not a scenario file: expected TOML text".into()));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = String::from_utf8_lossy(valid).rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        error(line, column, "not UTF-8 text here: a scenario file is TOML in UTF-8".into())
    })?;
    parse(&file, &text)
}

/// The scenarios a command-line argument names: a built-in name, a scenario file, or a
/// directory (every `*.toml` in it, in name order).
pub fn resolve(name: &str) -> Result<Vec<Scenario>, ScenarioError> {
    let path = Path::new(name);
    let error = |message: String| ScenarioError { file: name.to_string(), line: 0, column: 0, key: None, message };
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| error(format!("cannot read the directory: {e}")))?;
        let mut files: Vec<std::path::PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(error("no scenario files (*.toml) in this directory".into()));
        }
        return files.iter().map(|f| load(f)).collect();
    }
    if path.extension().is_some() || name.contains('/') {
        return load(path).map(|s| vec![s]);
    }
    Scenario::built_in(name).map(|s| vec![s]).ok_or_else(|| {
        error(format!("not a built-in scenario ({}), a scenario file or a directory", Scenario::BUILT_IN.join(", ")))
    })
}

/// Parses scenario text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let error_at = |span: Option<Range<usize>>, key: Option<String>, message: String| {
        let (line, column) = span.as_ref().map_or((0, 0), |s| line_column(text, s.start));
        let key = key.or_else(|| span.and_then(|s| Spans::new(text).key_at(s.start)));
        ScenarioError { file: file.to_string(), line, column, key, message }
    };
    let model: FileModel = toml::from_str(text).map_err(|e| {
        let mut message = e.message().trim_end().to_string();
        let key = quoted_key(&message);
        if key.as_deref() == Some("legacy") && message.starts_with("unknown field") {
            message.push_str(LEGACY_HINT);
        }
        error_at(e.span(), key, message)
    })?;
    let steps_at: Vec<Range<usize>> = model.step.iter().map(|s| s.span()).collect();
    // A message that starts with a field path ("steps[3].node = ...", "faults.rates.x: ...")
    // is reported with the file's name for that field and its place in the text.
    let at_path = |message: String| {
        let message = file_message(&message);
        let path = message.split([' ', ':']).next().unwrap_or_default().to_string();
        let span = Spans::new(text).locate(&path);
        error_at(span, Some(path).filter(|p| !p.is_empty()), message)
    };
    let scenario = model.lower().map_err(|(i, message)| match i {
        Some(i) => error_at(steps_at.get(i).cloned(), Some(format!("step[{i}]")), message),
        None => at_path(message),
    })?;
    check_name(&scenario.name).map_err(at_path)?;
    scenario.validate().map_err(at_path)?;
    Ok(scenario)
}

/// The longest scenario name: failure files are named `NAME-SEED.json`.
pub const NAME_LEN_MAX: usize = 100;

/// A scenario name names files (`allocsim-failures/NAME-SEED.json`), so it is a plain file
/// name: 1 to [`NAME_LEN_MAX`] of `A-Z a-z 0-9 . _ -`, not starting with a dot (no `/`, no
/// `..`, no hidden file). The error starts with the key, as validation errors do.
pub fn check_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > NAME_LEN_MAX || name.starts_with('.') || !name.chars().all(allowed) {
        return Err(format!(
            "name = {name:?}: expected 1 to {NAME_LEN_MAX} characters of A-Z a-z 0-9 . _ -, not starting with a dot \
             (the name makes failure file names)"
        ));
    }
    Ok(())
}

/// `base` with `suffix` appended, `base` cut so that the result is at most [`NAME_LEN_MAX`]
/// long (decompile and shrink name their results this way, and the results must parse).
pub fn derived_name(base: &str, suffix: &str) -> String {
    let room = NAME_LEN_MAX.saturating_sub(suffix.len());
    let cut = base.char_indices().map(|(i, c)| i + c.len_utf8()).take_while(|&end| end <= room).last().unwrap_or(0);
    format!("{}{suffix}", &base[..cut])
}

/// Writes a scenario as scenario-file text (comments are not kept). Steps and initial objects
/// are written the way people write them: one `[[step]]` or `[[initial.networks]]` table each,
/// one line per key, nested values inline (`create_service = { id = "web", replicas = 3 }`).
pub fn to_toml(scenario: &Scenario) -> Result<String, String> {
    let cannot = |e: &dyn fmt::Display| format!("cannot write scenario {}: {e}", scenario.name);
    let mut model = FileModel::raise(scenario)?;
    let steps = std::mem::take(&mut model.step);
    let initial = std::mem::take(&mut model.initial);
    let mut text = toml::to_string(&model).map_err(|e| cannot(&e))?;
    let values = |items: Vec<Result<toml::Value, toml::ser::Error>>| {
        items.into_iter().collect::<Result<Vec<_>, _>>().map_err(|e| cannot(&e))
    };
    let tables = [
        ("initial.networks", values(initial.networks.iter().map(toml::Value::try_from).collect())?),
        ("initial.services", values(initial.services.iter().map(toml::Value::try_from).collect())?),
        ("initial.tasks", values(initial.tasks.iter().map(toml::Value::try_from).collect())?),
        ("initial.nodes", values(initial.nodes.iter().map(toml::Value::try_from).collect())?),
        ("step", values(steps.iter().map(|s| toml::Value::try_from(s.get_ref())).collect())?),
    ];
    for (header, entries) in tables {
        for entry in entries {
            text.push_str(&format!("\n[[{header}]]\n"));
            if let toml::Value::Table(table) = entry {
                for (key, value) in table {
                    text.push_str(&format!("{} = {value}\n", toml_key(&key)));
                }
            }
        }
    }
    Ok(text)
}

/// A key as TOML writes it: bare when it can be, quoted otherwise.
fn toml_key(key: &str) -> String {
    if is_key(key) { key.to_string() } else { toml::Value::String(key.to_string()).to_string() }
}

fn is_key(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}
