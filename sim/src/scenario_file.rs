//! Scenario files: the TOML form of a [`Scenario`] (documented with an example of every key in
//! scenarios/README.md). [`parse`] reads one and reports the first error with file, line, column,
//! the key and what was expected; [`to_toml`] writes a scenario back out (decompile and shrink
//! write their results this way), and parsing that text gives the same scenario.
//!
//! The file model is a set of plain serde structs with `deny_unknown_fields`, lowered to the
//! runtime [`Scenario`] (and raised back for writing). Stored objects in `[initial]` use the
//! engine's own object shapes, so any stored state, consistent or not, can be written down.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use swarmalloc::{
    ClusterConfig, DriverConfig, EndpointSpec, Ipam, IpamConfig, NetworkAttachmentConfig, NetworkId, NetworkSpec,
    NodeId, PortConfig, Protocol, PublishMode, ResolutionMode, ServiceId, ServiceSpec, TaskId, TaskState,
};

use crate::faults::{FaultKind, FaultSpace};
use crate::scenario::{
    Action, Assertion, Checks, ClientOp, Generator, InitialState, MessageFault, RaftSettings, Scenario, Step, Target,
    Weights, Workload,
};
use crate::store::Origin;

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
    let error_at = |span: Option<std::ops::Range<usize>>, key: Option<String>, message: String| {
        let (line, column) = span.as_ref().map_or((0, 0), |s| line_column(text, s.start));
        let key = key.or_else(|| span.and_then(|s| key_at(text, s)));
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
    let steps_at: Vec<std::ops::Range<usize>> = model.step.iter().map(|s| s.span()).collect();
    // A message that starts with a field path ("steps[3].node = ...", "faults.rates.x: ...")
    // is reported with the file's name for that field and its place in the text.
    let at_path = |message: String| {
        let message = file_message(&message);
        let path = message.split([' ', ':']).next().unwrap_or_default().to_string();
        let span = locate(text, &path);
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

/// Why a build refuses the `legacy` key and `--legacy`.
pub const LEGACY_HINT: &str = "; legacy flavours exist only in builds with the `legacy` feature \
     (cargo build --release -p allocsim --features legacy)";

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

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The key an error span points at: the span itself when it is a key, else the nearest `key =`
/// before it on the same line, else the table header above it.
fn key_at(text: &str, span: std::ops::Range<usize>) -> Option<String> {
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let inside = &text[start..span.end.min(line_end).max(start)];
    let rest = &text[span.end.min(line_end).max(start)..line_end];
    if is_key(inside.trim()) && rest.trim_start().starts_with('=') {
        return Some(inside.trim().to_string());
    }
    let before = &text[line_start..start];
    if let Some(eq) = before.rfind('=') {
        let word: String = before[..eq]
            .trim_end()
            .chars()
            .rev()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-' || *c == '.')
            .collect();
        let word: String = word.chars().rev().collect();
        if !word.is_empty() {
            return Some(word);
        }
    }
    let line = text[line_start..line_end].trim();
    if line.starts_with('[') {
        return Some(line.trim_matches(|c| c == '[' || c == ']').to_string());
    }
    None
}

fn is_key(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

/// The key serde names in backticks ("unknown field `foo`", "missing field `bar`").
fn quoted_key(message: &str) -> Option<String> {
    let field = ["unknown field `", "missing field `", "duplicate key `", "duplicate field `"]
        .iter()
        .find_map(|p| message.find(p).map(|i| i + p.len()))?;
    message[field..].split('`').next().map(str::to_string)
}

/// A validation message (which names `Scenario`'s fields, as the JSON form spells them) with
/// the field path at its start spelled as the scenario file spells it.
fn file_message(message: &str) -> String {
    let end = message.find([' ', ':']).unwrap_or(message.len());
    let (path, rest) = message.split_at(end);
    let renames: [(&str, &str); 10] = [
        ("steps[", "step["),
        ("faults.", "random.faults."),
        ("workload.ops_until_ms", "random.workload.ops_until"),
        ("workload.", "random.workload."),
        ("checks.", "expect."),
        ("assertions[", "expect.assert["),
        ("duration_ms", "cluster.duration"),
        ("faults_until_ms", "cluster.faults_until"),
        ("batch_max", "cluster.batch_max"),
        ("managers", "cluster.managers"),
    ];
    let mut path = renames
        .iter()
        .find_map(|(from, to)| path.strip_prefix(from).map(|tail| format!("{to}{tail}")))
        .unwrap_or_else(|| path.to_string());
    for key in ["workers", "clients"] {
        if path == key {
            path = format!("cluster.{key}");
        }
    }
    if let Some(tail) = path.strip_suffix("].since")
        && path.starts_with("expect.assert[")
    {
        path = format!("{tail}].vip_unchanged_since");
    }
    let rest = rest.replace("duration_ms", "duration").replace("faults_until_ms", "faults_until");
    format!("{path}{rest}")
}

/// Where the key at a dotted path (`random.faults.rates.batch_cut`, `step[3].node`,
/// `expect.assert[1]`) is in the text: each segment is looked up as an array-of-tables header
/// (`[[step]]`, its i-th occurrence), a table header (`[random.faults]`), or a `key =` inside
/// what the segments before it found, inline tables included. A segment that only prefixes
/// deeper headers (`random` of `[random.faults]`) is passed through.
fn locate(text: &str, path: &str) -> Option<std::ops::Range<usize>> {
    let mut window = 0..text.len();
    let mut found = None;
    let mut prefix = String::new();
    for segment in path.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        if !is_key(name) {
            return found;
        }
        let full = if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
        let tables = header_lines(text, &format!("[[{full}]]"));
        let table = header_lines(text, &format!("[{full}]"));
        if let Some(start) = tables.get(index.unwrap_or(0)).or(table.first()).copied() {
            window = start..next_header(text, start);
            found = Some(start..start + full.len() + 2);
        } else if let Some(at) = find_key(&text[window.clone()], name) {
            let start = window.start + at;
            window = start..window.end;
            found = Some(start..start + name.len());
        } else if !text.contains(&format!("[{full}.")) {
            // Not a table, not a key, and no deeper table header (`[random.faults]` for
            // `random`): the key is absent.
            return found;
        }
        prefix = full;
    }
    found
}

/// Offsets of the lines that are exactly this table header (comments after it allowed).
fn header_lines(text: &str, header: &str) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(after) = trimmed.strip_prefix(header)
            && (after.trim().is_empty() || after.trim_start().starts_with('#'))
        {
            offsets.push(offset + (line.len() - trimmed.len()));
        }
        offset += line.len();
    }
    offsets
}

/// The start of the next table header after `from`, or the end of the text.
fn next_header(text: &str, from: usize) -> usize {
    let mut offset = from;
    for (i, line) in text[from..].split_inclusive('\n').enumerate() {
        if i > 0 && line.trim_start().starts_with('[') {
            return offset;
        }
        offset += line.len();
    }
    text.len()
}

/// The first `name =` in `text` that starts a key: at a line start or after `{`, `,` or a space.
fn find_key(text: &str, name: &str) -> Option<usize> {
    text.match_indices(name).map(|(at, _)| at).find(|&at| {
        let before = text[..at].chars().next_back();
        let starts = before.is_none_or(|c| c == '\n' || c == '{' || c == ',' || c == ' ' || c == '\t');
        starts && text[at + name.len()..].trim_start_matches([' ', '\t']).starts_with('=')
    })
}

// ------------------------------------------------------------------------------------------------
// Durations: "1500ms", "2s", "1.5s", "1m", or an integer number of milliseconds.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dur(u64);

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(1000) {
            s.serialize_str(&format!("{}s", self.0 / 1000))
        } else {
            s.serialize_str(&format!("{}ms", self.0))
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"1500ms\", \"2s\", \"1.5s\" or \"1m\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v).map(Dur).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                Ok(Dur(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_duration(text: &str) -> Option<Dur> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        return None;
    };
    let value: f64 = number.trim().parse().ok()?;
    let ms = value * scale;
    (value.is_finite() && value >= 0.0 && ms < 1e15 && ms.fract() == 0.0).then_some(Dur(ms as u64))
}

// ------------------------------------------------------------------------------------------------
// The file model.

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    cluster: ClusterFile,
    #[serde(default, skip_serializing_if = "is_default_raft")]
    raft: RaftSettings,
    #[serde(default, skip_serializing_if = "is_default_config")]
    config: ClusterConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    random: Option<RandomFile>,
    #[serde(default)]
    expect: ExpectFile,
    #[serde(default, skip_serializing_if = "InitialState::is_empty")]
    initial: InitialState,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    step: Vec<toml::Spanned<StepFile>>,
    /// One old allocator behaviour to turn on (legacy builds only).
    #[cfg(feature = "legacy")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    legacy: Option<swarmalloc::legacy::Flavour>,
}

fn is_default_raft(r: &RaftSettings) -> bool {
    *r == RaftSettings::default()
}

fn is_default_config(c: &ClusterConfig) -> bool {
    *c == ClusterConfig::default()
}

fn default_managers() -> u8 {
    3
}

fn default_clients() -> u8 {
    1
}

fn default_batch() -> usize {
    200
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    #[serde(default = "default_managers")]
    managers: u8,
    #[serde(default)]
    workers: u8,
    #[serde(default = "default_clients")]
    clients: u8,
    duration: Dur,
    /// Faults stop and everything heals at this time; defaults to 0 (no faults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    faults_until: Option<Dur>,
    #[serde(default = "default_batch")]
    batch_max: usize,
    #[serde(default, skip_serializing_if = "is_false")]
    stop_when_all_pending: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RandomFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    workload: Option<GeneratorFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    faults: Option<FaultsFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GeneratorFile {
    networks: u32,
    services: u32,
    replicas_min: u64,
    replicas_max: u64,
    changes: u32,
    ops_until: Dur,
    #[serde(default, skip_serializing_if = "is_default_weights")]
    weights: Weights,
}

fn is_default_weights(w: &Weights) -> bool {
    *w == Weights::default()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsFile {
    kinds: Vec<FaultKind>,
    #[serde(default = "yes")]
    swarm: bool,
    /// Fixed rates instead of the seed's draw.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    rates: BTreeMap<FaultKind, f64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFile {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    checkers: Vec<String>,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    per_entry: bool,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    engine_after_batch: bool,
    #[serde(default, rename = "assert", skip_serializing_if = "Vec::is_empty")]
    asserts: Vec<AssertFile>,
}

impl Default for ExpectFile {
    fn default() -> ExpectFile {
        ExpectFile { checkers: Vec::new(), per_entry: true, engine_after_batch: true, asserts: Vec::new() }
    }
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssertFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<ServiceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    network: Option<NetworkId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    running: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    distinct_addresses: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vip_unchanged_since: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    no_task_in: Option<TaskState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allocated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subnet: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gone: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vip_networks: Option<Vec<NetworkId>>,
}

/// One `[[step]]`: `at` and exactly one action key.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    at: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    create_network: Option<NetworkDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remove_network: Option<NetworkId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    create_service: Option<ServiceDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    update_service: Option<ServiceDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remove_service: Option<ServiceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scale: Option<ScaleDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attach: Option<AttachDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detach: Option<TaskId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    drain_node: Option<NodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remove_node: Option<NodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fail_task: Option<FailDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    partition: Option<PartitionDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    heal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kill: Option<KillDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    restart: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    restart_allocator: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cut_batch: Option<CutDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ambiguous_proposal: Option<AmbiguousDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    drop_proposal: Option<DropDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    drop_messages: Option<MessagesDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay_messages: Option<MessagesDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duplicate_messages: Option<MessagesDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    slow_node: Option<SlowDef>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaleDef {
    service: ServiceId,
    replicas: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachDef {
    task: TaskId,
    network: NetworkId,
    node: NodeId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<IpAddr>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    task: Option<TaskId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<ServiceId>,
    #[serde(default, skip_serializing_if = "is_zero")]
    slot: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionDef {
    node: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    for_: Option<Dur>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KillDef {
    node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    restart_after: Option<Dur>,
}

fn two_seconds() -> Dur {
    Dur(2_000)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CutDef {
    after: u64,
    #[serde(default = "two_seconds", rename = "for")]
    for_: Dur,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmbiguousDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<Origin>,
    #[serde(default = "two_seconds", rename = "for")]
    for_: Dur,
    #[serde(default, skip_serializing_if = "is_zero")]
    skip: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DropDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<Origin>,
    #[serde(default, skip_serializing_if = "is_zero")]
    skip: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagesDef {
    rate: f64,
    #[serde(rename = "for")]
    for_: Dur,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlowDef {
    node: String,
    extra: Dur,
    #[serde(rename = "for")]
    for_: Dur,
}

/// A network in a step: `subnet`/`gateway` for one IPAM config, or `ipam` for any number.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkDef {
    id: NetworkId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    driver: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    driver_options: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subnet: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipam: Option<Vec<IpamConfig>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    ipam_driver: String,
    #[serde(default, skip_serializing_if = "is_false")]
    attachable: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    ingress: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

/// A service in a step. `mode` or `ports` make an endpoint spec; neither means none.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceDef {
    id: ServiceId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default = "one")]
    replicas: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    networks: Vec<NetRef>,
    /// The older service-level attachments (`ServiceSpec.Networks`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    service_networks: Vec<NetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<ResolutionMode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ports: Vec<PortDef>,
}

fn one() -> u64 {
    1
}

/// A network attachment: the network's id, or a table with aliases and requested addresses.
#[derive(Clone, Debug, PartialEq)]
struct NetRef(NetworkAttachmentConfig);

impl Serialize for NetRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = &self.0;
        if a.aliases.is_empty() && a.addresses.is_empty() && a.driver_attachment_opts.is_empty() {
            s.serialize_str(a.target.as_str())
        } else {
            a.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for NetRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NetRef, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NetRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a network id, or a table { target, aliases, addresses }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NetRef, E> {
                Ok(NetRef(NetworkAttachmentConfig::to(NetworkId::new(v))))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<NetRef, A::Error> {
                NetworkAttachmentConfig::deserialize(de::value::MapAccessDeserializer::new(map)).map(NetRef)
            }
        }
        d.deserialize_any(V)
    }
}

/// A published port: "8080:80/tcp" (ingress, published 8080, target 80), ":80" or "80" (a
/// dynamic published port), "host:8080:80/udp" (host mode); or a table with a `name`.
#[derive(Clone, Debug, PartialEq)]
struct PortDef(PortConfig);

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortTable {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(default = "tcp")]
    protocol: Protocol,
    target: u16,
    #[serde(default)]
    published: u16,
    #[serde(default)]
    mode: PublishMode,
}

fn tcp() -> Protocol {
    Protocol::Tcp
}

fn port_text(p: &PortConfig) -> String {
    let host = if p.publish_mode == PublishMode::Host { "host:" } else { "" };
    let published = if p.published_port == 0 { String::new() } else { p.published_port.to_string() };
    format!("{host}{published}:{}/{}", p.target_port, p.protocol)
}

fn parse_port(text: &str) -> Option<PortConfig> {
    let (mode, rest) = match text.strip_prefix("host:") {
        Some(rest) => (PublishMode::Host, rest),
        None => (PublishMode::Ingress, text.strip_prefix("ingress:").unwrap_or(text)),
    };
    let (ports, protocol) = match rest.rsplit_once('/') {
        Some((ports, proto)) => (ports, serde_json::from_value(serde_json::Value::String(proto.into())).ok()?),
        None => (rest, Protocol::Tcp),
    };
    let (published, target) = match ports.split_once(':') {
        Some(("", target)) => (0, target.parse().ok()?),
        Some((published, target)) => (published.parse().ok()?, target.parse().ok()?),
        None => (0, ports.parse().ok()?),
    };
    Some(PortConfig {
        name: String::new(),
        protocol,
        target_port: target,
        published_port: published,
        publish_mode: mode,
    })
}

impl Serialize for PortDef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = &self.0;
        if p.name.is_empty() {
            return s.serialize_str(&port_text(p));
        }
        PortTable {
            name: p.name.clone(),
            protocol: p.protocol,
            target: p.target_port,
            published: p.published_port,
            mode: p.publish_mode,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for PortDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PortDef, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PortDef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port such as \"8080:80/tcp\", \":80\" or \"host:8080:80/udp\", or a table { name, protocol, target, published, mode }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortDef, E> {
                parse_port(v).map(PortDef).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PortDef, A::Error> {
                let t = PortTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(PortDef(PortConfig {
                    name: t.name,
                    protocol: t.protocol,
                    target_port: t.target,
                    published_port: t.published,
                    publish_mode: t.mode,
                }))
            }
        }
        d.deserialize_any(V)
    }
}

// ------------------------------------------------------------------------------------------------
// Lowering (file -> scenario) and raising (scenario -> file).

type LowerError = (Option<usize>, String);

impl FileModel {
    fn lower(self) -> Result<Scenario, LowerError> {
        let c = self.cluster;
        let (workload, faults) = match self.random {
            Some(r) => (
                r.workload.map(|g| Generator {
                    networks: g.networks,
                    services: g.services,
                    replicas_min: g.replicas_min,
                    replicas_max: g.replicas_max,
                    changes: g.changes,
                    ops_until_ms: g.ops_until.0,
                    weights: g.weights,
                }),
                r.faults.map(|f| FaultSpace { kinds: f.kinds, swarm: f.swarm, rates: f.rates }),
            ),
            None => (None, None),
        };
        let mut steps = Vec::with_capacity(self.step.len());
        for (i, step) in self.step.into_iter().enumerate() {
            steps.push(step.into_inner().lower().map_err(|e| (Some(i), e))?);
        }
        let assertions = self
            .expect
            .asserts
            .into_iter()
            .enumerate()
            .map(|(i, a)| a.lower().map_err(|e| (None, format!("expect.assert[{i}]: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Scenario {
            name: self.name,
            description: self.description,
            raft: self.raft,
            config: self.config,
            initial: self.initial,
            steps,
            assertions,
            seed: self.seed,
            managers: c.managers,
            workers: c.workers,
            clients: c.clients,
            duration_ms: c.duration.0,
            faults_until_ms: c.faults_until.map_or(0, |d| d.0),
            batch_max: c.batch_max,
            workload: workload.map_or(Workload::Scripted(Vec::new()), Workload::Generated),
            faults: faults.unwrap_or_else(FaultSpace::none),
            checks: Checks {
                per_entry: self.expect.per_entry,
                engine_after_batch: self.expect.engine_after_batch,
                checkers: self.expect.checkers,
            },
            stop_when_all_pending: c.stop_when_all_pending,
            #[cfg(feature = "legacy")]
            legacy: self.legacy,
        })
    }

    fn raise(s: &Scenario) -> Result<FileModel, String> {
        let workload = match &s.workload {
            Workload::Generated(g) => Some(GeneratorFile {
                networks: g.networks,
                services: g.services,
                replicas_min: g.replicas_min,
                replicas_max: g.replicas_max,
                changes: g.changes,
                ops_until: Dur(g.ops_until_ms),
                weights: g.weights,
            }),
            Workload::Scripted(ops) if ops.is_empty() => None,
            Workload::Scripted(_) => {
                return Err("a scripted workload is written as steps: move its operations into `steps`".into());
            }
        };
        let faults = (!s.faults.kinds.is_empty() || s.faults.swarm || !s.faults.rates.is_empty()).then(|| FaultsFile {
            kinds: s.faults.kinds.clone(),
            swarm: s.faults.swarm,
            rates: s.faults.rates.clone(),
        });
        let random = (workload.is_some() || faults.is_some()).then_some(RandomFile { workload, faults });
        let step = s
            .steps
            .iter()
            .map(|st| StepFile::raise(st).map(|f| toml::Spanned::new(0..0, f)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FileModel {
            name: s.name.clone(),
            description: s.description.clone(),
            seed: s.seed,
            cluster: ClusterFile {
                managers: s.managers,
                workers: s.workers,
                clients: s.clients,
                duration: Dur(s.duration_ms),
                faults_until: (s.faults_until_ms > 0).then_some(Dur(s.faults_until_ms)),
                batch_max: s.batch_max,
                stop_when_all_pending: s.stop_when_all_pending,
            },
            raft: s.raft,
            config: s.config.clone(),
            random,
            expect: ExpectFile {
                checkers: s.checks.checkers.clone(),
                per_entry: s.checks.per_entry,
                engine_after_batch: s.checks.engine_after_batch,
                asserts: s.assertions.iter().map(AssertFile::raise).collect(),
            },
            initial: s.initial.clone(),
            step,
            #[cfg(feature = "legacy")]
            legacy: s.legacy,
        })
    }
}

fn target(name: String) -> Target {
    if name == "leader" { Target::Leader } else { Target::Node(name) }
}

fn target_name(t: &Target) -> String {
    t.to_string()
}

impl StepFile {
    fn lower(self) -> Result<Step, String> {
        let at_ms = self.at.ok_or("missing key `at`: expected when the step happens, such as \"2s\"")?.0;
        let mut actions: Vec<(&str, Action)> = Vec::new();
        let mut add = |key: &'static str, action: Option<Action>| {
            if let Some(a) = action {
                actions.push((key, a));
            }
        };
        add("create_network", self.create_network.map(|n| Action::Client(n.lower_create())));
        add("remove_network", self.remove_network.map(|id| Action::Client(ClientOp::RemoveNetwork { id })));
        add(
            "create_service",
            self.create_service.map(|d| {
                let (id, spec) = d.lower();
                Action::Client(ClientOp::CreateService { id, spec })
            }),
        );
        add(
            "update_service",
            self.update_service.map(|d| {
                let (id, spec) = d.lower();
                Action::Client(ClientOp::UpdateService { id, spec })
            }),
        );
        add("remove_service", self.remove_service.map(|id| Action::Client(ClientOp::RemoveService { id })));
        add(
            "scale",
            self.scale.map(|s| Action::Client(ClientOp::ScaleService { id: s.service, replicas: s.replicas })),
        );
        add(
            "attach",
            self.attach.map(|a| {
                Action::Client(ClientOp::AttachNetwork {
                    task: a.task,
                    network: a.network,
                    node: a.node,
                    address: a.address,
                })
            }),
        );
        add("detach", self.detach.map(|task| Action::Client(ClientOp::DetachNetwork { task })));
        add("drain_node", self.drain_node.map(|node| Action::Client(ClientOp::DrainNode { node })));
        add("remove_node", self.remove_node.map(|node| Action::Client(ClientOp::RemoveNode { node })));
        add("fail_task", self.fail_task.map(|f| Action::FailTask { task: f.task, service: f.service, slot: f.slot }));
        add(
            "partition",
            self.partition.map(|p| Action::Partition { node: target(p.node), for_ms: p.for_.map(|d| d.0) }),
        );
        add("heal", self.heal.map(|n| Action::Heal { node: (n != "all").then(|| target(n)) }));
        add(
            "kill",
            self.kill.map(|k| Action::Kill { node: target(k.node), restart_after_ms: k.restart_after.map(|d| d.0) }),
        );
        add("restart", self.restart.map(|n| Action::Restart { node: target(n) }));
        let restart_allocator = match self.restart_allocator {
            Some(false) => return Err("restart_allocator = false: expected true (or leave the key out)".into()),
            Some(true) => Some(Action::RestartAllocator),
            None => None,
        };
        add("restart_allocator", restart_allocator);
        add("cut_batch", self.cut_batch.map(|c| Action::CutBatch { after: c.after, for_ms: c.for_.0 }));
        add(
            "ambiguous_proposal",
            self.ambiguous_proposal.map(|a| Action::AmbiguousProposal {
                origin: a.origin,
                for_ms: a.for_.0,
                skip: a.skip,
            }),
        );
        add("drop_proposal", self.drop_proposal.map(|d| Action::DropProposal { origin: d.origin, skip: d.skip }));
        for (key, fault, def) in [
            ("drop_messages", MessageFault::Loss, self.drop_messages),
            ("delay_messages", MessageFault::Delay, self.delay_messages),
            ("duplicate_messages", MessageFault::Duplication, self.duplicate_messages),
        ] {
            add(key, def.map(|m| Action::Messages { fault, rate: m.rate, for_ms: m.for_.0 }));
        }
        add(
            "slow_node",
            self.slow_node.map(|s| Action::SlowNode { node: target(s.node), extra_ms: s.extra.0, for_ms: s.for_.0 }),
        );
        match actions.len() {
            1 => Ok(Step { at_ms, action: actions.remove(0).1 }),
            0 => Err(format!("a step needs one action key; expected one of {}", ACTION_KEYS.join(", "))),
            _ => {
                let keys: Vec<&str> = actions.iter().map(|(k, _)| *k).collect();
                Err(format!("a step has one action, found {}: split it into several steps", keys.join(" and ")))
            }
        }
    }

    fn raise(step: &Step) -> Result<StepFile, String> {
        let mut f = StepFile { at: Some(Dur(step.at_ms)), ..Default::default() };
        match &step.action {
            Action::Client(op) => match op {
                ClientOp::CreateNetwork { id, spec } => f.create_network = Some(NetworkDef::raise(id, spec)),
                ClientOp::RemoveNetwork { id } => f.remove_network = Some(id.clone()),
                ClientOp::CreateService { id, spec } => f.create_service = Some(ServiceDef::raise(id, spec)),
                ClientOp::UpdateService { id, spec } => f.update_service = Some(ServiceDef::raise(id, spec)),
                ClientOp::RemoveService { id } => f.remove_service = Some(id.clone()),
                ClientOp::ScaleService { id, replicas } => {
                    f.scale = Some(ScaleDef { service: id.clone(), replicas: *replicas })
                }
                ClientOp::AttachNetwork { task, network, node, address } => {
                    f.attach = Some(AttachDef {
                        task: task.clone(),
                        network: network.clone(),
                        node: node.clone(),
                        address: *address,
                    })
                }
                ClientOp::DetachNetwork { task } => f.detach = Some(task.clone()),
                ClientOp::DrainNode { node } => f.drain_node = Some(node.clone()),
                ClientOp::RemoveNode { node } => f.remove_node = Some(node.clone()),
            },
            Action::FailTask { task, service, slot } => {
                f.fail_task = Some(FailDef { task: task.clone(), service: service.clone(), slot: *slot })
            }
            Action::Partition { node, for_ms } => {
                f.partition = Some(PartitionDef { node: target_name(node), for_: for_ms.map(Dur) })
            }
            Action::Heal { node } => f.heal = Some(node.as_ref().map_or("all".to_string(), target_name)),
            Action::Kill { node, restart_after_ms } => {
                f.kill = Some(KillDef { node: target_name(node), restart_after: restart_after_ms.map(Dur) })
            }
            Action::Restart { node } => f.restart = Some(target_name(node)),
            Action::RestartAllocator => f.restart_allocator = Some(true),
            Action::CutBatch { after, for_ms } => f.cut_batch = Some(CutDef { after: *after, for_: Dur(*for_ms) }),
            Action::AmbiguousProposal { origin, for_ms, skip } => {
                f.ambiguous_proposal = Some(AmbiguousDef { origin: *origin, for_: Dur(*for_ms), skip: *skip })
            }
            Action::DropProposal { origin, skip } => f.drop_proposal = Some(DropDef { origin: *origin, skip: *skip }),
            Action::Messages { fault, rate, for_ms } => {
                let def = Some(MessagesDef { rate: *rate, for_: Dur(*for_ms) });
                match fault {
                    MessageFault::Loss => f.drop_messages = def,
                    MessageFault::Delay => f.delay_messages = def,
                    MessageFault::Duplication => f.duplicate_messages = def,
                }
            }
            Action::SlowNode { node, extra_ms, for_ms } => {
                f.slow_node = Some(SlowDef { node: target_name(node), extra: Dur(*extra_ms), for_: Dur(*for_ms) })
            }
        }
        Ok(f)
    }
}

/// Every action key a step can have.
pub const ACTION_KEYS: [&str; 23] = [
    "create_network",
    "remove_network",
    "create_service",
    "update_service",
    "remove_service",
    "scale",
    "attach",
    "detach",
    "drain_node",
    "remove_node",
    "fail_task",
    "partition",
    "heal",
    "kill",
    "restart",
    "restart_allocator",
    "cut_batch",
    "ambiguous_proposal",
    "drop_proposal",
    "drop_messages",
    "delay_messages",
    "duplicate_messages",
    "slow_node",
];

impl NetworkDef {
    fn lower_create(self) -> ClientOp {
        let ipam = if self.subnet.is_some() || self.gateway.is_some() {
            let config = IpamConfig { subnet: self.subnet, gateway: self.gateway, ..Default::default() };
            Some(Ipam { driver: self.ipam_driver, configs: vec![config], ..Default::default() })
        } else if let Some(configs) = self.ipam {
            Some(Ipam { driver: self.ipam_driver, configs, ..Default::default() })
        } else if !self.ipam_driver.is_empty() {
            Some(Ipam { driver: self.ipam_driver, ..Default::default() })
        } else {
            None
        };
        let driver = match (self.driver, self.driver_options.is_empty()) {
            (None, true) => None,
            (name, _) => Some(DriverConfig { name: name.unwrap_or_default(), options: self.driver_options }),
        };
        let spec = NetworkSpec {
            name: self.name.unwrap_or_else(|| self.id.to_string()),
            labels: self.labels,
            driver,
            ipam,
            ingress: self.ingress,
            attachable: self.attachable,
        };
        ClientOp::CreateNetwork { id: self.id, spec }
    }

    fn raise(id: &NetworkId, spec: &NetworkSpec) -> NetworkDef {
        let mut def = NetworkDef {
            id: id.clone(),
            name: (spec.name != id.as_str()).then(|| spec.name.clone()),
            driver: spec.driver.as_ref().map(|d| d.name.clone()),
            driver_options: spec.driver.as_ref().map(|d| d.options.clone()).unwrap_or_default(),
            subnet: None,
            gateway: None,
            ipam: None,
            ipam_driver: String::new(),
            attachable: spec.attachable,
            ingress: spec.ingress,
            labels: spec.labels.clone(),
        };
        if let Some(ipam) = &spec.ipam {
            def.ipam_driver = ipam.driver.clone();
            match ipam.configs.as_slice() {
                [one] if one.range.is_none() && (one.subnet.is_some() || one.gateway.is_some()) => {
                    def.subnet = one.subnet;
                    def.gateway = one.gateway;
                }
                configs if !configs.is_empty() || ipam.driver.is_empty() => def.ipam = Some(configs.to_vec()),
                _ => {}
            }
        }
        def
    }
}

impl ServiceDef {
    fn lower(self) -> (ServiceId, ServiceSpec) {
        let endpoint = (self.mode.is_some() || !self.ports.is_empty()).then(|| EndpointSpec {
            mode: self.mode.unwrap_or_default(),
            ports: self.ports.into_iter().map(|p| p.0).collect(),
        });
        let spec = ServiceSpec {
            name: self.name.unwrap_or_else(|| self.id.to_string()),
            replicas: self.replicas,
            task_networks: self.networks.into_iter().map(|n| n.0).collect(),
            networks: self.service_networks.into_iter().map(|n| n.0).collect(),
            endpoint,
        };
        (self.id, spec)
    }

    fn raise(id: &ServiceId, spec: &ServiceSpec) -> ServiceDef {
        ServiceDef {
            id: id.clone(),
            name: (spec.name != id.as_str()).then(|| spec.name.clone()),
            replicas: spec.replicas,
            networks: spec.task_networks.iter().cloned().map(NetRef).collect(),
            service_networks: spec.networks.iter().cloned().map(NetRef).collect(),
            mode: spec.endpoint.as_ref().map(|e| e.mode),
            ports: spec.endpoint.iter().flat_map(|e| e.ports.iter().cloned().map(PortDef)).collect(),
        }
    }
}

impl AssertFile {
    fn lower(self) -> Result<Assertion, String> {
        let service = || self.service.clone().ok_or("expected `service` with this check");
        let network = || self.network.clone().ok_or("expected `network` with this check");
        let checks = [
            self.running.is_some(),
            self.distinct_addresses.is_some(),
            self.vip_unchanged_since.is_some(),
            self.no_task_in.is_some(),
            self.allocated.is_some() || self.subnet.is_some(),
            self.gone.is_some(),
            self.vip_networks.is_some(),
        ];
        if checks.iter().filter(|c| **c).count() != 1 {
            return Err("expected exactly one of `running`, `distinct_addresses`, `vip_unchanged_since`, \
                        `no_task_in`, `allocated`/`subnet`, `gone`, `vip_networks`"
                .into());
        }
        // The keys that name what a check is about: each check takes its own and no other.
        let about_service = self.running.is_some()
            || self.distinct_addresses.is_some()
            || self.vip_unchanged_since.is_some()
            || self.vip_networks.is_some();
        let about_network = self.allocated.is_some() || self.subnet.is_some() || self.gone.is_some();
        if self.service.is_some() && !about_service {
            return Err("`service` does not go with this check: expected it only with `running`, \
                        `distinct_addresses`, `vip_unchanged_since` or `vip_networks`"
                .into());
        }
        if self.network.is_some() && !about_network {
            return Err(
                "`network` does not go with this check: expected it only with `allocated`/`subnet` or `gone`".into()
            );
        }
        if let Some(networks) = self.vip_networks.clone() {
            return Ok(Assertion::VipNetworks { service: service()?, networks });
        }
        if let Some(count) = self.running {
            return Ok(Assertion::Running { service: service()?, count });
        }
        if let Some(flag) = self.distinct_addresses {
            if !flag {
                return Err("distinct_addresses = false: expected true".into());
            }
            return Ok(Assertion::DistinctAddresses { service: service()? });
        }
        if let Some(since) = self.vip_unchanged_since {
            return Ok(Assertion::VipUnchangedSince { service: service()?, since_ms: since.0 });
        }
        if let Some(state) = self.no_task_in {
            return Ok(Assertion::NoTaskIn { state });
        }
        if let Some(flag) = self.gone {
            if !flag {
                return Err("gone = false: expected true".into());
            }
            return Ok(Assertion::NetworkGone { network: network()? });
        }
        if self.allocated == Some(false) {
            return Err("allocated = false: expected true".into());
        }
        Ok(Assertion::NetworkAllocated { network: network()?, subnet: self.subnet })
    }

    fn raise(a: &Assertion) -> AssertFile {
        let mut f = AssertFile::default();
        match a {
            Assertion::Running { service, count } => {
                f.service = Some(service.clone());
                f.running = Some(*count);
            }
            Assertion::DistinctAddresses { service } => {
                f.service = Some(service.clone());
                f.distinct_addresses = Some(true);
            }
            Assertion::VipUnchangedSince { service, since_ms } => {
                f.service = Some(service.clone());
                f.vip_unchanged_since = Some(Dur(*since_ms));
            }
            Assertion::NoTaskIn { state } => f.no_task_in = Some(*state),
            Assertion::NetworkAllocated { network, subnet } => {
                f.network = Some(network.clone());
                f.allocated = Some(true);
                f.subnet = *subnet;
            }
            Assertion::NetworkGone { network } => {
                f.network = Some(network.clone());
                f.gone = Some(true);
            }
            Assertion::VipNetworks { service, networks } => {
                f.service = Some(service.clone());
                f.vip_networks = Some(networks.clone());
            }
        }
        f
    }
}
