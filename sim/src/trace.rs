//! The run trace: one JSON line per event, stamped with simulated time, and its running hash.
//! Two runs of one seed must produce the same lines; the hash is what a replay compares.

use serde::Serialize;
use serde_json::Value;

/// FNV-1a 64 over `bytes`, continuing from `hash`. Stable across platforms, builds and processes.
pub fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// One trace line.
#[derive(Debug, Serialize)]
struct Line<'a> {
    t_ms: u64,
    node: &'a str,
    ev: &'a str,
    #[serde(skip_serializing_if = "Value::is_null")]
    data: Value,
}

/// The trace of one run. Lines are kept in memory (bounded by `keep_max`; the hash covers all).
#[derive(Debug)]
pub struct Trace {
    hash: u64,
    count: u64,
    lines: Vec<String>,
    keep_max: usize,
    dropped: u64,
}

impl Trace {
    pub fn new(keep_max: usize) -> Trace {
        Trace { hash: FNV_OFFSET, count: 0, lines: Vec::new(), keep_max, dropped: 0 }
    }

    pub fn record(&mut self, t_ms: u64, node: &str, ev: &str, data: Value) {
        let line = serde_json::to_string(&Line { t_ms, node, ev, data }).expect("trace lines serialise");
        self.hash = fnv1a(fnv1a(self.hash, line.as_bytes()), b"\n");
        self.count += 1;
        if self.lines.len() >= self.keep_max {
            // Keep the newest lines: the tail is what a failure report shows.
            let half = self.keep_max / 2;
            self.lines.drain(..half);
            self.dropped += half as u64;
        }
        self.lines.push(line);
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The kept lines with their position in the whole trace (0-based).
    pub fn lines(&self) -> impl Iterator<Item = (u64, &str)> {
        self.lines.iter().enumerate().map(|(i, l)| (self.dropped + i as u64, l.as_str()))
    }

    pub fn tail(&self, n: usize) -> Vec<String> {
        self.lines[self.lines.len().saturating_sub(n)..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_covers_every_line_and_tail_keeps_the_newest() {
        let mut a = Trace::new(4);
        let mut b = Trace::new(1000);
        for i in 0..10 {
            a.record(i, "m1", "tick", serde_json::json!({ "i": i }));
            b.record(i, "m1", "tick", serde_json::json!({ "i": i }));
        }
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.count(), 10);
        assert_eq!(a.tail(1), vec![r#"{"t_ms":9,"node":"m1","ev":"tick","data":{"i":9}}"#.to_string()]);
        let first_kept = a.lines().next().map(|(i, _)| i);
        assert!(first_kept.is_some_and(|i| i >= 6), "kept from {first_kept:?}");
        b.record(10, "m1", "tick", Value::Null);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn fnv_matches_the_reference_vector() {
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
