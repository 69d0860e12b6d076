//! [`UserKey`]: a user id as a hash-map key, stored inline when short.
//!
//! Looking a user up must compare the probed key with the row's id; with a
//! `Box<str>` that comparison first loads the key from elsewhere on the heap
//! (a cache miss per row on millions of users). Ids of up to 22 bytes — the
//! generator's `user_0001234`, numeric ids, most slugs — live inside the map's
//! entry instead; longer ones (UUIDs) fall back to the heap. Exact either way:
//! hashing and equality are those of the `str`.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// Longest id stored inline.
const INLINE: usize = 22;

/// A user id owned by the population's index.
#[derive(Clone, Debug)]
pub enum UserKey {
    /// Up to [`INLINE`] bytes of UTF-8, and their length.
    Inline(u8, [u8; INLINE]),
    /// A longer id.
    Heap(Box<str>),
}

impl UserKey {
    /// The id as text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match self {
            // SAFETY: built from a `&str` prefix of exactly `len` bytes.
            UserKey::Inline(len, bytes) => unsafe {
                std::str::from_utf8_unchecked(&bytes[..*len as usize])
            },
            UserKey::Heap(s) => s,
        }
    }
}

impl From<&str> for UserKey {
    fn from(s: &str) -> Self {
        if s.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            UserKey::Inline(s.len() as u8, bytes)
        } else {
            UserKey::Heap(Box::from(s))
        }
    }
}

impl Borrow<str> for UserKey {
    #[inline]
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for UserKey {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for UserKey {}

impl Hash for UserKey {
    /// As `str` hashes, so that lookups by `&str` find the key.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustc_hash::FxHashMap;

    #[test]
    fn short_and_long_ids_are_found_by_their_text() {
        let long = "0b6e7d2c-8a3f-4f0e-9a59-2f7c1d3e4b5a";
        let mut m: FxHashMap<UserKey, u32> = FxHashMap::default();
        m.insert(UserKey::from("user_0000042"), 1);
        m.insert(UserKey::from(long), 2);
        m.insert(UserKey::from(""), 3);
        assert!(matches!(
            UserKey::from("user_0000042"),
            UserKey::Inline(12, _)
        ));
        assert!(matches!(UserKey::from(long), UserKey::Heap(_)));
        assert_eq!(m.get("user_0000042"), Some(&1));
        assert_eq!(m.get(long), Some(&2));
        assert_eq!(m.get(""), Some(&3));
        assert_eq!(m.get("user_000004"), None);
        assert_eq!(std::mem::size_of::<UserKey>(), 24);
    }
}
