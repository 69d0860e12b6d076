//! Key-value store: a [`PagedStore`] of `K → V` (sled is the store of
//! record, the working set is cached; see [`crate::paged`]).

use crate::{ChangeRecord, PagedStore, StateError, Store, StoreTree};
use serde::{de::DeserializeOwned, Serialize};

/// A store of `K → V`.
pub struct KeyValueStore<K, V> {
    inner: PagedStore<K, V>,
}

impl<K, V> KeyValueStore<K, V>
where
    K: Ord + std::hash::Hash + Clone + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// Opens the store `name` in `tree`.
    pub fn load(name: impl Into<String>, tree: &StoreTree) -> Result<Self, StateError> {
        Ok(KeyValueStore {
            inner: PagedStore::load(name, tree)?,
        })
    }

    /// The value of `key`.
    pub fn get(&mut self, key: &K) -> Result<Option<&V>, StateError> {
        self.inner.get(key)
    }

    /// Mutable access to the value of `key` (marks it changed).
    pub fn get_mut(&mut self, key: &K) -> Result<Option<&mut V>, StateError> {
        self.inner.get_mut(key)
    }

    /// Mutable access to the value of `key` (marks it changed), inserting
    /// `default()` first if absent: one lookup where `get_mut` then
    /// `insert` take two.
    pub fn upsert_with(
        &mut self,
        key: &K,
        default: impl FnOnce() -> V,
    ) -> Result<&mut V, StateError> {
        Ok(self.inner.upsert_with(key, default)?.0)
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: K, value: V) -> Result<Option<V>, StateError> {
        self.inner.insert(key, value)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Result<Option<V>, StateError> {
        self.inner.remove(key)
    }

    /// Every entry in key order (reads the whole store: tests and tools).
    pub fn entries(&mut self) -> Result<Vec<(K, V)>, StateError>
    where
        V: Clone,
    {
        self.inner.entries()
    }
}

impl<K, V> Store for KeyValueStore<K, V>
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
