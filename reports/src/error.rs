//! Unreadable input: [`InputError`] names the file, where in it (line and column for bad JSON, a
//! JSON path such as `[3].Spec.TaskTemplate.Networks[0].Target` for a wrong shape) and what was
//! expected. Also owns [`JsonPath`], the path a reader carries while it walks a document, and
//! [`path_at`], which recovers the path of a byte offset for errors that only carry a position.

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

/// A location inside a JSON document, rendered as `[3].Spec.Networks[0].Target`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct JsonPath(String);

impl JsonPath {
    pub fn root() -> JsonPath {
        JsonPath(String::new())
    }

    pub fn key(&self, key: &str) -> JsonPath {
        if self.0.is_empty() { JsonPath(key.to_string()) } else { JsonPath(format!("{}.{key}", self.0)) }
    }

    pub fn index(&self, index: usize) -> JsonPath {
        JsonPath(format!("{}[{index}]", self.0))
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(show_path(&self.0))
    }
}

/// The JSON path of the value that contains byte `offset` of `text` (or ends just before it).
/// serde reports type errors of typed documents by line and column only; this turns the
/// position back into a path by scanning the document's brackets, keys and commas.
pub(crate) fn path_at(text: &str, offset: usize) -> String {
    path_at_inner(text, offset, false)
}

/// The path of the innermost array or object open at `offset` (not of its current key): where
/// serde reports a missing field, at the object's closing brace.
fn container_at(text: &str, offset: usize) -> String {
    path_at_inner(text, offset, true)
}

fn path_at_inner(text: &str, offset: usize, container: bool) -> String {
    enum Frame {
        Object { key: Option<String>, after_colon: bool },
        Array { index: usize },
    }
    let mut stack: Vec<Frame> = Vec::new();
    let bytes = text.as_bytes();
    let end = offset.min(bytes.len());
    let mut at = 0;
    while at < end {
        match bytes[at] {
            b'{' => stack.push(Frame::Object { key: None, after_colon: false }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b':' => {
                if let Some(Frame::Object { after_colon, .. }) = stack.last_mut() {
                    *after_colon = true;
                }
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { key, after_colon }) => {
                    *key = None;
                    *after_colon = false;
                }
                None => {}
            },
            b'"' => {
                let start = at + 1;
                at = start;
                while at < bytes.len() && bytes[at] != b'"' {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Object { key, after_colon: false }) = stack.last_mut() {
                    let raw = text.get(start..at.min(text.len())).unwrap_or("");
                    *key = Some(serde_json::from_str::<String>(&format!("\"{raw}\"")).unwrap_or(raw.to_string()));
                }
            }
            _ => {}
        }
        at += 1;
    }
    let mut path = JsonPath::root();
    let innermost = stack.len().saturating_sub(1);
    for (depth, frame) in stack.iter().enumerate() {
        path = match frame {
            Frame::Object { .. } if container && depth == innermost => path,
            Frame::Object { key: Some(key), .. } => path.key(key),
            Frame::Object { key: None, .. } => path,
            Frame::Array { index } => path.index(*index),
        };
    }
    path.0
}

/// Where a serde_json error happened in `text`: (1-based line, 1-based column, JSON path,
/// message without serde's own " at line L column C" suffix).
pub(crate) fn serde_position(text: &str, e: &serde_json::Error) -> (usize, usize, String, String) {
    let message = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = message.strip_suffix(&suffix).unwrap_or(&message).to_string();
    let offset = offset_of(text, e.line(), e.column());
    let path = if message.starts_with("missing field") { container_at(text, offset) } else { path_at(text, offset) };
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

/// The byte offset of a 1-based line and column as serde_json reports them.
pub(crate) fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    (line_start + column.saturating_sub(1)).min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, marker: &str, expected: &str) {
        let offset = text.find(marker).expect("marker in text");
        assert_eq!(path_at(text, offset), expected, "in {text} at {marker:?}");
    }

    #[test]
    fn path_at_follows_keys_and_indexes() {
        check(r#"[{"a": 1}, {"b": [1, 2, X]}]"#, "X", "[1].b[2]");
        check(r#"{"tasks": [{"id": "t", "status": {"state": X}}]}"#, "X", "tasks[0].status.state");
        check(r#"{"a": {"b": 1}, "c": X}"#, "X", "c");
        check(r#"{"a,[{": X}"#, "X", "a,[{");
        check(r#"{"q\"x": X}"#, "X", "q\"x");
        check("X", "X", "");
    }

    #[test]
    fn a_missing_field_is_named_in_its_object() {
        let text = r#"{"a": {"b": 1, "c": 2}}"#;
        let error = serde_json::from_str::<Outer>(text).expect_err("a.d is missing");
        let (_, _, path, message) = serde_position(text, &error);
        assert_eq!((path.as_str(), message.as_str()), ("a", "missing field `d`"));
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        a: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        d: u8,
    }

    #[test]
    fn errors_at_the_end_of_the_input_have_a_real_column() {
        for (text, expected) in [
            ("{\"a\": ", (1, 6)),
            ("{\"a\": \n", (1, 6)),
            ("{\"a\":\r\n\n", (2, 1)),
            ("[1,\n 2,\n", (2, 3)),
            ("\n", (1, 1)),
            ("", (1, 1)),
            ("{\"a\": x}", (1, 7)),
        ] {
            let error = serde_json::from_str::<serde_json::Value>(text).expect_err("not JSON");
            let (line, column, _, _) = serde_position(text, &error);
            assert_eq!((line, column), expected, "in {text:?}: serde says {error}");
        }
    }

    #[test]
    fn offset_of_counts_lines_from_one() {
        let text = "ab\ncd\nef";
        assert_eq!(offset_of(text, 1, 1), 0);
        assert_eq!(offset_of(text, 2, 2), 4);
        assert_eq!(offset_of(text, 9, 9), text.len());
    }
}
