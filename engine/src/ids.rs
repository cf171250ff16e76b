//! Identifier newtypes. Ids are cheap to clone (`Arc<str>`) because the engine's index stores
//! one per reservation. They compare as their strings do (byte order), but eight bytes at a time
//! without calling `memcmp`: ids are short and compared in every map lookup. It was written for
//! libFuzzer (whose `memcmp` interceptor it avoids) and stays because it pays natively too: with
//! `memcmp` a proposal of 50,000 task attachments runs 5.9% more instructions (criterion
//! `attach_50k_on_a_16/propose` under callgrind, docs/performance.md).

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.0, &other.0)
                    || (self.0.len() == other.0.len() && compare(&self.0, &other.0) == Ordering::Equal)
            }
        }

        // Written out only because `PartialEq` is: the string's hash, as the derive gave.
        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state);
            }
        }

        impl Ord for $name {
            fn cmp(&self, other: &Self) -> Ordering {
                compare(&self.0, &other.0)
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }

        impl $name {
            pub fn new(id: impl AsRef<str>) -> Self {
                Self(Arc::from(id.as_ref()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self::new(id)
            }
        }
    };
}

/// `a.cmp(b)` for strings, in big-endian 8-byte words, then bytes: the same order, without
/// `memcmp`.
fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let common = a.len().min(b.len());
    let mut at = 0;
    while at + 8 <= common {
        let x = u64::from_be_bytes(a[at..at + 8].try_into().expect("eight bytes"));
        let y = u64::from_be_bytes(b[at..at + 8].try_into().expect("eight bytes"));
        if x != y {
            return x.cmp(&y);
        }
        at += 8;
    }
    while at < common {
        if a[at] != b[at] {
            return a[at].cmp(&b[at]);
        }
        at += 1;
    }
    // One is a prefix of the other: the shorter sorts first.
    a.len().cmp(&b.len())
}

id_type!(
    /// Id of a [`crate::Network`].
    NetworkId
);
id_type!(
    /// Id of a [`crate::Service`].
    ServiceId
);
id_type!(
    /// Id of a [`crate::Task`].
    TaskId
);
id_type!(
    /// Id of a [`crate::Node`].
    NodeId
);

/// Store version of an object: the store index of its last write. Optimistic concurrency compares it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair of a set of ids chosen to hit word boundaries, prefixes, zero bytes and
    /// non-ASCII: the order and equality are those of the strings.
    #[test]
    fn ids_order_as_their_strings() {
        let ids = [
            "",
            "a",
            "a\0",
            "a\0b",
            "ab",
            "b",
            "n001",
            "n002",
            "n010",
            "t001",
            "task-0000",
            "task-00000",
            "task-000001",
            "task-000010",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefghi",
            "abcdefgi",
            "abcdefg\u{ff}",
            "\u{e9}t\u{e9}",
            "\u{7f}",
            "zzzzzzzzzzzzzzzzz",
            "zzzzzzzzzzzzzzzzy",
        ];
        for a in ids {
            for b in ids {
                assert_eq!(TaskId::new(a).cmp(&TaskId::new(b)), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(TaskId::new(a) == TaskId::new(b), a == b, "{a:?} == {b:?}");
            }
        }
    }

    /// Random strings over a small alphabet (so that long common prefixes are common).
    #[test]
    fn random_ids_order_as_their_strings() {
        let alphabet = ['\0', 'a', 'b', '\u{7f}', '\u{e9}'];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        let mut random = || -> String { (0..next(20)).map(|_| alphabet[next(5) as usize]).collect() };
        for _ in 0..20_000 {
            let (a, b) = (random(), random());
            let b = if a.len() % 3 == 0 { format!("{a}{b}") } else { b };
            assert_eq!(NodeId::new(&a).cmp(&NodeId::new(&b)), a.cmp(&b), "{a:?} vs {b:?}");
            assert_eq!(NodeId::new(&a) == NodeId::new(&b), a == b, "{a:?} == {b:?}");
        }
    }
}
