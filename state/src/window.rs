//! Window store: entries grouped by window start. Each checkpoint persists
//! only the entries changed in each window, as one chunk per window; closing
//! a window removes its chunks. Loading replays a window's chunks in order.

use crate::{decode, encode, ChangeRecord, KeyRef, StateError, Store, StoreTree};
use hashbrown::hash_table::{Entry, HashTable};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash};

/// Chunks a window may accumulate before its next write rewrites it whole.
const COMPACT_AFTER_CHUNKS: u32 = 16;

/// One entry with its "changed since the last checkpoint" flag.
struct Slot<K, V> {
    key: K,
    value: V,
    dirty: bool,
}

struct Window<K, V> {
    entries: HashTable<Slot<K, V>>,
    /// Entries with `dirty` set.
    dirty: usize,
    /// Chunks persisted so far (keys `0..chunks`).
    chunks: u32,
}

impl<K, V> Default for Window<K, V> {
    fn default() -> Self {
        Window {
            entries: HashTable::new(),
            dirty: 0,
            chunks: 0,
        }
    }
}

type Hasher = foldhash::fast::RandomState;

/// A store of `(window start, K) → V`.
pub struct WindowStore<K, V> {
    name: String,
    windows: BTreeMap<i64, Window<K, V>>,
    /// Windows closed since the last checkpoint, with their chunk counts.
    closed: Vec<(i64, u32)>,
    hasher: Hasher,
}

fn chunk_key(start: i64, chunk: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(12);
    k.extend_from_slice(&((start as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}

fn parse_chunk_key(k: &[u8]) -> Option<(i64, u32)> {
    if k.len() != 12 {
        return None;
    }
    let start = u64::from_be_bytes(k[..8].try_into().ok()?) ^ (1 << 63);
    let chunk = u32::from_be_bytes(k[8..].try_into().ok()?);
    Some((start as i64, chunk))
}

impl<K, V> WindowStore<K, V>
where
    K: Hash + Eq + Clone + Ord + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// An empty store.
    pub fn new(name: impl Into<String>) -> Self {
        WindowStore {
            name: name.into(),
            windows: BTreeMap::new(),
            closed: Vec::new(),
            hasher: Hasher::default(),
        }
    }

    /// Loads every open window from the tree.
    pub fn load(name: impl Into<String>, tree: &StoreTree) -> Result<Self, StateError> {
        let mut store = Self::new(name);
        for entry in tree.scan() {
            let (k, v) = entry?;
            let Some((start, chunk)) = parse_chunk_key(&k) else {
                return Err(StateError::Mismatch(format!(
                    "bad window key in {}",
                    store.name
                )));
            };
            let hasher = &store.hasher;
            let w = store.windows.entry(start).or_default();
            let entries: Vec<(K, V)> = decode(&v)?;
            for (key, value) in entries {
                // Later chunks replace earlier values of the same key.
                let hash = hasher.hash_one(&key);
                match w
                    .entries
                    .entry(hash, |s| s.key == key, |s| hasher.hash_one(&s.key))
                {
                    Entry::Occupied(mut o) => o.get_mut().value = value,
                    Entry::Vacant(vac) => {
                        vac.insert(Slot {
                            key,
                            value,
                            dirty: false,
                        });
                    }
                }
            }
            w.chunks = w.chunks.max(chunk + 1);
        }
        Ok(store)
    }

    /// The value of `key` in the window starting at `start`.
    pub fn get<Q: KeyRef<K> + ?Sized>(&self, start: i64, key: &Q) -> Option<&V> {
        let hash = self.hasher.hash_one(key);
        self.windows
            .get(&start)?
            .entries
            .find(hash, |s| key.matches(&s.key))
            .map(|s| &s.value)
    }

    /// True when `key` is present in any open window.
    pub fn contains_in_any<Q: KeyRef<K> + ?Sized>(&self, key: &Q) -> bool {
        let hash = self.hasher.hash_one(key);
        self.windows
            .values()
            .any(|w| w.entries.find(hash, |s| key.matches(&s.key)).is_some())
    }

    /// Inserts `key` if absent; returns true when it was inserted.
    pub fn insert_if_absent(&mut self, start: i64, key: K, value: V) -> bool {
        self.insert_ref_if_absent(start, &key, value)
    }

    /// Inserts `key` (made owned only when absent) if absent; returns true when it was inserted.
    pub fn insert_ref_if_absent<Q: KeyRef<K> + ?Sized>(
        &mut self,
        start: i64,
        key: &Q,
        value: V,
    ) -> bool {
        let hash = self.hasher.hash_one(key);
        let hasher = &self.hasher;
        let w = self.windows.entry(start).or_default();
        match w
            .entries
            .entry(hash, |s| key.matches(&s.key), |s| hasher.hash_one(&s.key))
        {
            Entry::Occupied(_) => false,
            Entry::Vacant(vac) => {
                vac.insert(Slot {
                    key: key.to_key(),
                    value,
                    dirty: true,
                });
                w.dirty += 1;
                true
            }
        }
    }

    /// Mutable access to `key` in window `start`, inserting `default()` first if absent.
    pub fn upsert_with<Q: KeyRef<K> + ?Sized>(
        &mut self,
        start: i64,
        key: &Q,
        default: impl FnOnce() -> V,
    ) -> &mut V {
        let hash = self.hasher.hash_one(key);
        let hasher = &self.hasher;
        let w = self.windows.entry(start).or_default();
        let slot = match w
            .entries
            .entry(hash, |s| key.matches(&s.key), |s| hasher.hash_one(&s.key))
        {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(vac) => vac
                .insert(Slot {
                    key: key.to_key(),
                    value: default(),
                    dirty: false,
                })
                .into_mut(),
        };
        if !slot.dirty {
            slot.dirty = true;
            w.dirty += 1;
        }
        &mut slot.value
    }

    /// Start of the oldest open window.
    pub fn first_start(&self) -> Option<i64> {
        self.windows.keys().next().copied()
    }

    /// Removes and returns the oldest window if it starts before `before`,
    /// with its entries sorted by key.
    pub fn pop_before(&mut self, before: i64) -> Option<(i64, Vec<(K, V)>)> {
        let start = self.first_start().filter(|s| *s < before)?;
        let w = self.windows.remove(&start)?;
        if w.chunks > 0 {
            self.closed.push((start, w.chunks));
        }
        let mut entries: Vec<(K, V)> = w.entries.into_iter().map(|s| (s.key, s.value)).collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Some((start, entries))
    }

    /// Removes the oldest window if it starts before `before`, discarding its
    /// entries; returns its start.
    pub fn drop_before(&mut self, before: i64) -> Option<i64> {
        let start = self.first_start().filter(|s| *s < before)?;
        let w = self.windows.remove(&start)?;
        if w.chunks > 0 {
            self.closed.push((start, w.chunks));
        }
        Some(start)
    }

    /// Number of open windows.
    pub fn window_count(&self) -> usize {
        self.windows.len()
    }

    /// Number of entries across open windows.
    pub fn entry_count(&self) -> usize {
        self.windows.values().map(|w| w.entries.len()).sum()
    }
}

impl<K, V> Store for WindowStore<K, V>
where
    K: Hash + Eq + Clone + Ord + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn take_changes(&mut self, out: &mut Vec<ChangeRecord>) {
        for (start, chunks) in self.closed.drain(..) {
            for c in 0..chunks {
                out.push(ChangeRecord {
                    key: chunk_key(start, c),
                    value: None,
                });
            }
        }
        for (&start, w) in self.windows.iter_mut() {
            if w.dirty == 0 {
                continue;
            }
            if w.chunks >= COMPACT_AFTER_CHUNKS {
                // Rewrite the window as a single chunk.
                let mut all: Vec<(&K, &V)> = w.entries.iter().map(|s| (&s.key, &s.value)).collect();
                all.sort_unstable_by(|a, b| a.0.cmp(b.0));
                out.push(ChangeRecord {
                    key: chunk_key(start, 0),
                    value: Some(encode(&all)),
                });
                for c in 1..w.chunks {
                    out.push(ChangeRecord {
                        key: chunk_key(start, c),
                        value: None,
                    });
                }
                w.chunks = 1;
            } else {
                let mut delta: Vec<(&K, &V)> = w
                    .entries
                    .iter()
                    .filter(|s| s.dirty)
                    .map(|s| (&s.key, &s.value))
                    .collect();
                delta.sort_unstable_by(|a, b| a.0.cmp(b.0));
                out.push(ChangeRecord {
                    key: chunk_key(start, w.chunks),
                    value: Some(encode(&delta)),
                });
                w.chunks += 1;
            }
            for s in w.entries.iter_mut() {
                s.dirty = false;
            }
            w.dirty = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CommitBatch, StateDb};

    #[test]
    fn changes_persist_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path(), 1 << 20).unwrap();
        let tree = db.tree("t", "w").unwrap();
        let mut s: WindowStore<String, u64> = WindowStore::new("w");
        assert!(s.insert_ref_if_absent(0, "a", 1));
        assert!(!s.insert_if_absent(0, "a".to_string(), 2));
        *s.upsert_with(0, "b", || 0) += 5;
        *s.upsert_with(10, "c", || 7) += 1;
        let mut batch = CommitBatch::default();
        assert_eq!(batch.add_store(&tree, &mut s).len(), 2);
        db.commit(batch).unwrap();
        // Only the touched entry goes into the next chunk.
        *s.upsert_with(0, "b", || 0) += 1;
        let mut batch = CommitBatch::default();
        let changes = batch.add_store(&tree, &mut s).to_vec();
        assert_eq!(changes.len(), 1);
        let delta: Vec<(String, u64)> = decode(changes[0].value.as_ref().unwrap()).unwrap();
        assert_eq!(delta, vec![("b".to_string(), 6)]);
        db.commit(batch).unwrap();
        let mut batch = CommitBatch::default();
        assert!(batch.add_store(&tree, &mut s).is_empty());

        let r: WindowStore<String, u64> = WindowStore::load("w", &tree).unwrap();
        assert_eq!(r.get(0, "a"), Some(&1));
        assert_eq!(r.get(0, "b"), Some(&6));
        assert_eq!(r.get(10, "c"), Some(&8));
        assert!(r.contains_in_any("c"));
        assert!(!r.contains_in_any("d"));

        let (start, entries) = s.pop_before(5).unwrap();
        assert_eq!(start, 0);
        assert_eq!(entries, vec![("a".to_string(), 1), ("b".to_string(), 6)]);
        let mut batch = CommitBatch::default();
        let changes = batch.add_store(&tree, &mut s).to_vec();
        assert_eq!(changes.len(), 2);
        assert!(changes.iter().all(|c| c.value.is_none()));
    }
}
