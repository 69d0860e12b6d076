//! Versioned key-value store: each key holds versions ordered by a
//! timestamp; lookups find the version valid at a given time.

use crate::{ChangeRecord, KeyValueStore, StateError, Store, StoreTree};
use serde::{de::DeserializeOwned, Serialize};

/// Versions of one key, sorted by timestamp (ascending, unique).
pub type Versions<V> = Vec<(i64, V)>;

/// A store of `K → [(timestamp, V)]`.
pub struct VersionedStore<K, V> {
    inner: KeyValueStore<K, Versions<V>>,
}

impl<K, V> VersionedStore<K, V>
where
    K: Ord + std::hash::Hash + Clone + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// Opens the store `name` in `tree`.
    pub fn load(name: impl Into<String>, tree: &StoreTree) -> Result<Self, StateError> {
        Ok(VersionedStore {
            inner: KeyValueStore::load(name, tree)?,
        })
    }

    /// Upserts the version at `ts`: replaces an existing version with the same
    /// timestamp, otherwise adds one.
    pub fn upsert(&mut self, key: K, ts: i64, value: V) -> Result<(), StateError> {
        if let Some(versions) = self.inner.get_mut(&key)? {
            match versions.binary_search_by_key(&ts, |(t, _)| *t) {
                Ok(i) => versions[i].1 = value,
                Err(i) => versions.insert(i, (ts, value)),
            }
        } else {
            self.inner.insert(key, vec![(ts, value)])?;
        }
        Ok(())
    }

    /// Removes the whole history of `key`.
    pub fn delete(&mut self, key: &K) -> Result<bool, StateError> {
        Ok(self.inner.remove(key)?.is_some())
    }

    /// All versions of `key`, oldest first.
    pub fn versions(&mut self, key: &K) -> Result<Option<&Versions<V>>, StateError> {
        self.inner.get(key)
    }

    /// Mutable access to the versions of `key` (marks it changed).
    pub fn versions_mut(&mut self, key: &K) -> Result<Option<&mut Versions<V>>, StateError> {
        self.inner.get_mut(key)
    }

    /// The version with the greatest timestamp `<= ts`.
    pub fn as_of(&mut self, key: &K, ts: i64) -> Result<Option<&(i64, V)>, StateError> {
        let Some(versions) = self.inner.get(key)? else {
            return Ok(None);
        };
        let i = versions.partition_point(|(t, _)| *t <= ts);
        Ok(if i == 0 { None } else { versions.get(i - 1) })
    }
}

impl<K, V> Store for VersionedStore<K, V>
where
    K: Ord + std::hash::Hash + Clone + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn take_changes(&mut self, out: &mut Vec<ChangeRecord>) {
        self.inner.take_changes(out)
    }
}
