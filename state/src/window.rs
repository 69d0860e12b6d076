//! Window store: entries grouped by window start. Each checkpoint persists
//! only the entries changed in each window, as one chunk per window; closing
//! a window removes its chunks. Loading replays a window's chunks in order.

use crate::{decode, encode, ChangeRecord, StateError, Store, StoreTree};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;

/// Chunks a window may accumulate before its next write rewrites it whole.
const COMPACT_AFTER_CHUNKS: u32 = 16;

struct Window<K, V> {
    entries: HashMap<K, V>,
    dirty: HashSet<K>,
    /// Chunks persisted so far (keys `0..chunks`).
    chunks: u32,
}

impl<K, V> Default for Window<K, V> {
    fn default() -> Self {
        Window { entries: HashMap::new(), dirty: HashSet::new(), chunks: 0 }
    }
}

/// A store of `(window start, K) → V`.
pub struct WindowStore<K, V> {
    name: String,
    windows: BTreeMap<i64, Window<K, V>>,
    /// Windows closed since the last checkpoint, with their chunk counts.
    closed: Vec<(i64, u32)>,
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
        WindowStore { name: name.into(), windows: BTreeMap::new(), closed: Vec::new() }
    }

    /// Loads every open window from the tree.
    pub fn load(name: impl Into<String>, tree: &StoreTree) -> Result<Self, StateError> {
        let mut store = Self::new(name);
        for entry in tree.scan() {
            let (k, v) = entry?;
            let Some((start, chunk)) = parse_chunk_key(&k) else {
                return Err(StateError::Mismatch(format!("bad window key in {}", store.name)));
            };
            let w = store.windows.entry(start).or_default();
            let entries: Vec<(K, V)> = decode(&v)?;
            w.entries.extend(entries);
            w.chunks = w.chunks.max(chunk + 1);
        }
        Ok(store)
    }

    /// The value of `key` in the window starting at `start`.
    pub fn get(&self, start: i64, key: &K) -> Option<&V> {
        self.windows.get(&start)?.entries.get(key)
    }

    /// True when `key` is present in any open window.
    pub fn contains_in_any(&self, key: &K) -> bool {
        self.windows.values().any(|w| w.entries.contains_key(key))
    }

    /// Inserts `key` if absent; returns true when it was inserted.
    pub fn insert_if_absent(&mut self, start: i64, key: K, value: V) -> bool {
        let w = self.windows.entry(start).or_default();
        if w.entries.contains_key(&key) {
            return false;
        }
        w.dirty.insert(key.clone());
        w.entries.insert(key, value);
        true
    }

    /// Mutable access to `key` in window `start`, inserting `default()` first if absent.
    pub fn upsert_with(&mut self, start: i64, key: &K, default: impl FnOnce() -> V) -> &mut V {
        let w = self.windows.entry(start).or_default();
        if !w.dirty.contains(key) {
            w.dirty.insert(key.clone());
        }
        w.entries.entry(key.clone()).or_insert_with(default)
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
        let mut entries: Vec<(K, V)> = w.entries.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Some((start, entries))
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
                out.push(ChangeRecord { key: chunk_key(start, c), value: None });
            }
        }
        for (&start, w) in self.windows.iter_mut() {
            if w.dirty.is_empty() {
                continue;
            }
            if w.chunks >= COMPACT_AFTER_CHUNKS {
                // Rewrite the window as a single chunk.
                let mut all: Vec<(&K, &V)> = w.entries.iter().collect();
                all.sort_by(|a, b| a.0.cmp(b.0));
                out.push(ChangeRecord { key: chunk_key(start, 0), value: Some(encode(&all)) });
                for c in 1..w.chunks {
                    out.push(ChangeRecord { key: chunk_key(start, c), value: None });
                }
                w.chunks = 1;
                w.dirty.clear();
                continue;
            }
            let mut keys: Vec<K> = w.dirty.drain().collect();
            keys.sort();
            let delta: Vec<(&K, &V)> =
                keys.iter().filter_map(|k| w.entries.get_key_value(k)).collect();
            out.push(ChangeRecord { key: chunk_key(start, w.chunks), value: Some(encode(&delta)) });
            w.chunks += 1;
        }
    }
}
