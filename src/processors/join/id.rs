//! [`Id`]: a user or event id in a state key.

use crate::domain::Text;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// A user or event id in a state key: stored inline up to 24 bytes (no
/// allocation to build one, no pointer to follow when pages are searched),
/// ordered, hashed and serialised exactly like a `String`.
///
/// Page searches compare ids more than anything else, and the ids of one
/// source share long prefixes (`user_0001197`), so the order is computed
/// inline, eight bytes at a time, rather than through `memcmp`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Id(Text);

impl Id {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Self {
        Id(Text::from(s))
    }
}

impl From<String> for Id {
    fn from(s: String) -> Self {
        Id(Text::from(s))
    }
}

impl From<Text> for Id {
    fn from(s: Text) -> Self {
        Id(s)
    }
}

impl Ord for Id {
    fn cmp(&self, other: &Self) -> Ordering {
        byte_order(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl PartialOrd for Id {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The lexicographic order of byte strings (the order of `str`), compared
/// as big-endian words of eight bytes, then byte by byte, then by length.
fn byte_order(a: &[u8], b: &[u8]) -> Ordering {
    let common = a.len().min(b.len());
    let word =
        |s: &[u8], i: usize| u64::from_be_bytes(s[i..i + 8].try_into().expect("eight bytes"));
    let mut i = 0;
    while i + 8 <= common {
        let (x, y) = (word(a, i), word(b, i));
        if x != y {
            return x.cmp(&y);
        }
        i += 8;
    }
    while i < common {
        if a[i] != b[i] {
            return a[i].cmp(&b[i]);
        }
        i += 1;
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_order_like_their_strings() {
        let ids = [
            "",
            "a",
            "ab",
            "user_0000787",
            "user_0017740",
            "user_001774",
            "user_0017740x",
            "evt_1",
            "evt_10",
            "evt_9",
            "é",
            "e\u{301}",
            "user_0000787\u{0}",
        ];
        for a in ids {
            for b in ids {
                assert_eq!(Id::from(a).cmp(&Id::from(b)), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn any_two_ids_order_like_their_strings(
            prefix in "[a-z_0]{0,20}",
            a in "\\PC{0,12}",
            b in "\\PC{0,12}",
        ) {
            let (a, b) = (format!("{prefix}{a}"), format!("{prefix}{b}"));
            prop_assert_eq!(Id::from(a.as_str()).cmp(&Id::from(b.as_str())), a.cmp(&b));
        }
    }

    #[test]
    fn an_id_is_stored_like_a_string() {
        let id = Id::from("user_0017740");
        let bytes = neonblue_state::encode(&id);
        assert_eq!(bytes, neonblue_state::encode(&"user_0017740".to_string()));
        assert_eq!(neonblue_state::decode::<Id>(&bytes).unwrap(), id);
    }
}
