//! Versioned key-value store: each key holds versions ordered by a
//! timestamp; lookups find the version valid at a given time.

use crate::{ChangeRecord, KeyValueStore, StateError, Store, StoreTree};
use serde::{de::DeserializeOwned, Serialize};
use std::hash::Hash;

/// Versions of one key, sorted by timestamp (ascending, unique).
pub type Versions<V> = Vec<(i64, V)>;

/// A store of `K → [(timestamp, V)]`.
pub struct VersionedStore<K, V> {
    inner: KeyValueStore<K, Versions<V>>,
}

impl<K, V> VersionedStore<K, V>
where
    K: Hash + Eq + Clone + Ord + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// An empty store.
    pub fn new(name: impl Into<String>) -> Self {
        VersionedStore {
            inner: KeyValueStore::new(name),
        }
    }

    /// Loads every key from the tree.
    pub fn load(name: impl Into<String>, tree: &StoreTree) -> Result<Self, StateError> {
        Ok(VersionedStore {
            inner: KeyValueStore::load(name, tree)?,
        })
    }

    /// Upserts the version at `ts`: replaces an existing version with the same
    /// timestamp, otherwise adds one.
    pub fn upsert(&mut self, key: K, ts: i64, value: V) {
        if let Some(versions) = self.inner.get_mut(&key) {
            match versions.binary_search_by_key(&ts, |(t, _)| *t) {
                Ok(i) => versions[i].1 = value,
                Err(i) => versions.insert(i, (ts, value)),
            }
        } else {
            self.inner.insert(key, vec![(ts, value)]);
        }
    }

    /// Removes the whole history of `key`.
    pub fn delete(&mut self, key: &K) -> bool {
        self.inner.remove(key).is_some()
    }

    /// Mutable access to the versions of `key` (marks it changed).
    pub fn versions_mut(&mut self, key: &K) -> Option<&mut Versions<V>> {
        self.inner.get_mut(key)
    }

    /// All versions of `key`, oldest first.
    pub fn versions(&self, key: &K) -> Option<&Versions<V>> {
        self.inner.get(key)
    }

    /// The version with the greatest timestamp `<= ts`.
    pub fn as_of(&self, key: &K, ts: i64) -> Option<&(i64, V)> {
        let versions = self.inner.get(key)?;
        let i = versions.partition_point(|(t, _)| *t <= ts);
        if i == 0 {
            None
        } else {
            versions.get(i - 1)
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when no key has a version.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl<K, V> Store for VersionedStore<K, V>
where
    K: Hash + Eq + Clone + Ord + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn take_changes(&mut self, out: &mut Vec<ChangeRecord>) {
        self.inner.take_changes(out)
    }
}
