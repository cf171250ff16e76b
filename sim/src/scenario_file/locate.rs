//! Where an error is in the scenario text. toml's own parser gives the span of every key and
//! value ([`DeTable`]); an error is placed by walking that tree, never by searching the text.
//! A deserialisation error already carries a span (the key is the innermost one around it); a
//! lowering or validation error names a field path (`step[3].node`), which is looked up key by
//! key.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The keys and values of a scenario text with their spans. Parsed with recovery, so that a
/// file with a syntax error still gives the keys before (and around) the error.
pub(super) struct Spans<'i> {
    doc: DeTable<'i>,
}

impl<'i> Spans<'i> {
    pub(super) fn new(text: &'i str) -> Spans<'i> {
        let (doc, _errors) = DeTable::parse_recoverable(text);
        Spans { doc: doc.into_inner() }
    }

    /// The innermost key whose key or value holds `offset` (an end offset counts, so that an
    /// unterminated string's error at its end names its key).
    pub(super) fn key_at(&self, offset: usize) -> Option<String> {
        key_in(&self.doc, offset)
    }

    /// Where the key at a field path (`random.faults.rates.batch_cut`, `step[3].node`,
    /// `expect.assert[1]`) is. Each segment is a key of what the segment before found, or,
    /// failing that, a key anywhere below it: validation speaks of `step[0].node` where the
    /// file says `partition = { node = "w9" }`. An `[i]` picks the i-th element of an array
    /// (the `[[step]]` header of an array of tables). A segment not found ends the walk at the
    /// deepest place found so far.
    pub(super) fn locate(&self, path: &str) -> Option<Range<usize>> {
        let mut table = &self.doc;
        let mut found = None;
        for segment in path.split('.') {
            let (name, index) = match segment.split_once('[') {
                Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (segment, None),
            };
            let Some((key, value)) = find_key(table, name) else { break };
            found = Some(key.span());
            let value = match (index, value.get_ref()) {
                (Some(i), DeValue::Array(items)) => match items.get(i) {
                    Some(item) => {
                        found = Some(item.span());
                        item
                    }
                    None => break,
                },
                _ => value,
            };
            match value.get_ref() {
                DeValue::Table(inner) => table = inner,
                _ => break,
            }
        }
        found
    }
}

type Entry<'a, 'i> = (&'a Spanned<toml::de::DeString<'i>>, &'a Spanned<DeValue<'i>>);

/// `name` in `table`, else the first `name` below it, breadth first (the nearest).
fn find_key<'a, 'i>(table: &'a DeTable<'i>, name: &str) -> Option<Entry<'a, 'i>> {
    let mut level = vec![table];
    while !level.is_empty() {
        if let Some(hit) = level.iter().find_map(|t| t.iter().find(|(k, _)| k.get_ref().as_ref() == name)) {
            return Some(hit);
        }
        level = level.iter().flat_map(|t| t.values()).flat_map(|v| tables_in(v.get_ref())).collect();
    }
    None
}

/// The tables a value is or holds (an inline table, the elements of an array of tables).
fn tables_in<'a, 'i>(value: &'a DeValue<'i>) -> Vec<&'a DeTable<'i>> {
    match value {
        DeValue::Table(t) => vec![t],
        DeValue::Array(items) => items.iter().flat_map(|v| tables_in(v.get_ref())).collect(),
        _ => Vec::new(),
    }
}

fn key_in(table: &DeTable<'_>, offset: usize) -> Option<String> {
    let holds = |span: Range<usize>| span.start <= offset && offset <= span.end;
    table.iter().find_map(|(key, value)| {
        let below = tables_in(value.get_ref()).into_iter().find_map(|t| key_in(t, offset));
        below.or_else(|| (holds(key.span()) || holds(value.span())).then(|| key.get_ref().to_string()))
    })
}

pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The key serde names in backticks ("unknown field `foo`", "missing field `bar`"): the span
/// of a missing field's error is its table, so the name comes from the message.
pub(super) fn quoted_key(message: &str) -> Option<String> {
    let field = ["unknown field `", "missing field `", "duplicate key `", "duplicate field `"]
        .iter()
        .find_map(|p| message.find(p).map(|i| i + p.len()))?;
    message[field..].split('`').next().map(str::to_string)
}

/// A validation message (which names `Scenario`'s fields, as the JSON form spells them) with
/// the field path at its start spelled as the scenario file spells it.
pub(super) fn file_message(message: &str) -> String {
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
