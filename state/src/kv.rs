//! Key-value store: the working set lives in a hash map; changes since the
//! last checkpoint are tracked and written to sled at commit.

use crate::{decode, encode, ChangeRecord, StateError, Store, StoreTree};
use serde::{de::DeserializeOwned, Serialize};
use std::hash::Hash;

type HashMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = hashbrown::HashSet<K, foldhash::fast::RandomState>;

/// A key-value store of `K → V`.
pub struct KeyValueStore<K, V> {
    name: String,
    map: HashMap<K, V>,
    dirty: HashSet<K>,
}

impl<K, V> KeyValueStore<K, V>
where
    K: Hash + Eq + Clone + Ord + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// An empty store.
    pub fn new(name: impl Into<String>) -> Self {
        KeyValueStore {
            name: name.into(),
            map: HashMap::default(),
            dirty: HashSet::default(),
        }
    }

    /// Loads every entry from the store's tree.
    pub fn load(name: impl Into<String>, tree: &StoreTree) -> Result<Self, StateError> {
        let mut store = Self::new(name);
        for entry in tree.scan() {
            let (k, v) = entry?;
            store.map.insert(decode(&k)?, decode(&v)?);
        }
        Ok(store)
    }

    /// The value of `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// Mutable access to the value of `key` (marks it changed).
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let v = self.map.get_mut(key)?;
        if !self.dirty.contains(key) {
            self.dirty.insert(key.clone());
        }
        Some(v)
    }

    /// Inserts or replaces.
    pub fn insert(&mut self, key: K, value: V) {
        if !self.dirty.contains(&key) {
            self.dirty.insert(key.clone());
        }
        self.map.insert(key, value);
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let old = self.map.remove(key);
        if old.is_some() && !self.dirty.contains(key) {
            self.dirty.insert(key.clone());
        }
        old
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Iterates over all entries (unordered).
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }
}

impl<K, V> Store for KeyValueStore<K, V>
where
    K: Hash + Eq + Clone + Ord + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn take_changes(&mut self, out: &mut Vec<ChangeRecord>) {
        let mut keys: Vec<K> = self.dirty.drain().collect();
        keys.sort_unstable();
        out.reserve(keys.len());
        for k in keys {
            let value = self.map.get(&k).map(|v| encode(v));
            out.push(ChangeRecord {
                key: encode(&k),
                value,
            });
        }
    }
}
