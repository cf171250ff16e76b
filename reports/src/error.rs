//! Unreadable input: [`InputError`] names the file, where in it (line and column for bad JSON, a
//! JSON path such as `[3].Spec.TaskTemplate.Networks[0].Target` for a wrong shape) and what was
//! expected. The paths come from `serde_path_to_error`, which tracks them while serde reads.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a dump could not be read. Reading never panics: every malformed input ends here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputError {
    /// The file or directory could not be read at all.
    Io { file: PathBuf, message: String },
    /// An output file or directory could not be written (the report's inputs were fine).
    Write { file: PathBuf, message: String },
    /// The file is not JSON; line and column are 1-based, `path` is the value being read there.
    Syntax { file: PathBuf, line: usize, column: usize, path: String, message: String },
    /// A value has the wrong type or an unusable content.
    Field { file: PathBuf, path: String, expected: String, found: String },
    /// A store snapshot value that does not fit the engine's types (serde's message).
    Typed { file: PathBuf, line: usize, column: usize, path: String, message: String },
    /// A value that is well-formed but unusable: an object of no known kind, an invalid config.
    Invalid { file: PathBuf, path: String, reason: String },
    /// Two different objects with one id and one version.
    Conflict { id: String, first: String, second: String },
    /// A line of a JSON-lines file (1-based) that is valid JSON but not what was expected there.
    Line { file: PathBuf, line: usize, path: String, message: String },
}

impl InputError {
    pub fn file(&self) -> Option<&Path> {
        match self {
            InputError::Io { file, .. }
            | InputError::Write { file, .. }
            | InputError::Syntax { file, .. }
            | InputError::Field { file, .. }
            | InputError::Typed { file, .. }
            | InputError::Invalid { file, .. }
            | InputError::Line { file, .. } => Some(file),
            InputError::Conflict { .. } => None,
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Io { file, message } => write!(f, "{}: cannot read: {message}", file.display()),
            InputError::Write { file, message } => write!(f, "{}: cannot write: {message}", file.display()),
            InputError::Syntax { file, line, column, path, message } if path.is_empty() => {
                write!(f, "{}: line {line} column {column}: invalid JSON: {message}", file.display())
            }
            InputError::Syntax { file, line, column, path, message } => {
                write!(f, "{}: line {line} column {column}, in {path}: invalid JSON: {message}", file.display())
            }
            InputError::Field { file, path, expected, found } => {
                write!(f, "{}: at {}: expected {expected}, found {found}", file.display(), show_path(path))
            }
            InputError::Typed { file, line, column, path, message } => {
                write!(f, "{}: line {line} column {column}, at {}: {message}", file.display(), show_path(path))
            }
            InputError::Invalid { file, path, reason } => {
                write!(f, "{}: at {}: {reason}", file.display(), show_path(path))
            }
            InputError::Conflict { id, first, second } => {
                write!(f, "{id} appears twice with the same version but different contents: {first} and {second}")
            }
            InputError::Line { file, line, path, message } => {
                write!(f, "{}: line {line}, at {}: {message}", file.display(), show_path(path))
            }
        }
    }
}

impl std::error::Error for InputError {}

fn show_path(path: &str) -> &str {
    if path.is_empty() { "the top level" } else { path }
}

/// Where a JSON syntax error happened in `document`, a JSON value that starts at byte `start` of
/// `text`: (1-based line, 1-based column, JSON path, message without serde's own " at line L
/// column C" suffix). serde_json's error carries only a position; reading the document again
/// through `serde_path_to_error` gives the path of the value being read where it broke.
pub(crate) fn syntax_position(text: &str, start: usize, e: &serde_json::Error) -> (usize, usize, String, String) {
    let message = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = message.strip_suffix(&suffix).unwrap_or(&message).to_string();
    let document = text.get(start..).unwrap_or("");
    let path = match serde_path_to_error::deserialize::<_, serde_json::Value>(&mut serde_json::Deserializer::from_str(
        document,
    )) {
        Err(e) => e.path().to_string(),
        Ok(_) => String::new(),
    };
    // "." is the root; a trailing "?" is a key that was being read when the text broke.
    let path = path.trim_end_matches(".?").trim_end_matches('?');
    let path = if path == "." { String::new() } else { path.to_string() };
    let (line, column) = one_based(text, e.line(), e.column());
    (line, column, path, message)
}

/// serde_json's position as a 1-based line and column. At the end of the input serde points at
/// the last character read, but when that is a newline it says column 0 of the next line; this
/// turns that into the last character of the previous line (column 1 of an empty one).
fn one_based(text: &str, line: usize, column: usize) -> (usize, usize) {
    if column > 0 {
        return (line, column);
    }
    match line.checked_sub(2).and_then(|previous| text.split_inclusive('\n').nth(previous)) {
        Some(previous) => (line - 1, previous.trim_end_matches(['\n', '\r']).len().max(1)),
        None => (line.max(1), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The syntax error of the documents of `text` (concatenated, as `>>` appends them), read
    /// the way the dump reader reads them.
    fn position(text: &str) -> (usize, usize, String, String) {
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
        let mut start = 0;
        loop {
            match stream.next() {
                Some(Ok(_)) => start = stream.byte_offset(),
                Some(Err(e)) => return syntax_position(text, start, &e),
                None => panic!("{text:?} is JSON"),
            }
        }
    }

    #[test]
    fn the_path_follows_keys_and_indexes() {
        for (text, expected) in [
            (r#"[{"a": 1}, {"b": [1, 2, X]}]"#, "[1].b[2]"),
            (r#"{"tasks": [{"id": "t", "status": {"state": X}}]}"#, "tasks[0].status.state"),
            (r#"{"a": {"b": 1}, "c": X}"#, "c"),
            (r#"{"a,[{": X}"#, "a,[{"),
            ("X", ""),
            // The second of two arrays appended to one file: the path is inside that array.
            (r#"[{"a": 1}] [{"b": 1}, {"c": X}]"#, "[1].c"),
        ] {
            assert_eq!(position(text).2, expected, "in {text}");
        }
    }

    #[test]
    fn errors_at_the_end_of_the_input_have_a_real_column() {
        for (text, expected) in [
            ("{\"a\": ", (1, 6)),
            ("{\"a\": \n", (1, 6)),
            ("{\"a\":\r\n\n", (2, 1)),
            ("[1,\n 2,\n", (2, 3)),
            ("{\"a\": x}", (1, 7)),
        ] {
            let (line, column, _, _) = position(text);
            assert_eq!((line, column), expected, "in {text:?}");
        }
    }
}
