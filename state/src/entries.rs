//! An ordered map stored in sled one entry per key, with the working set cached.
//!
//! Every entry is one sled record, so a commit writes exactly the entries
//! that changed, however scattered their keys. Entries are read when first
//! needed and kept decoded in memory against the instance's [`Budget`]:
//! when the budget is exceeded the least recently used clean entries are
//! dropped (they can be read again). Entries changed since the last commit
//! are *dirty*: they stay in memory and reach sled only through a commit
//! ([`Store::take_changes`]), so the stored state always matches a
//! checkpoint.
//!
//! A *segmented* store groups its keys by a segment (e.g. a window start or
//! a day) that prefixes their sled keys: the segments present are known
//! without reading entries, and a whole segment is taken or dropped with one
//! range scan of sled.
//!
//! sled layout of a store's keyspace: `e` + segment + key → value;
//! `s` + segment → number of entries of the segment. These are also its
//! changelog records.

use crate::{decode, encode, Budget, ChangeRecord, StateError, Store, StoreTree};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;

/// Memory of a cached entry beyond its encoded key and value (map slot,
/// list links, heap headers).
const ENTRY_OVERHEAD: usize = 64;
/// Assumed encoded size of an entry until a store has measured its own.
const INITIAL_ENCODED_SIZE: usize = 48;

type Hasher = foldhash::fast::RandomState;
type Map<K, V> = hashbrown::HashMap<K, V, Hasher>;

/// A decoded entry in memory and what it counts against the budget.
struct Cached<V> {
    value: V,
    weight: usize,
}

/// A change not yet committed: the new value, or `None` for a removal.
struct Dirty<V> {
    value: Option<V>,
    weight: usize,
}

/// An ordered map `K → V`, one sled record per entry (see the module docs).
pub struct EntryStore<K: Hash + Eq, V> {
    name: String,
    tree: StoreTree,
    budget: Budget,
    segment: fn(&K) -> i64,
    /// Segment → number of its entries (committed and dirty).
    segments: BTreeMap<i64, u64>,
    /// Segments whose count must be written at the next commit.
    segments_changed: BTreeSet<i64>,
    /// Entries changed since the last commit.
    dirty: Map<K, Dirty<V>>,
    /// sled keys of dropped segments, removed at the next commit.
    dropped: Vec<Vec<u8>>,
    /// Segments dropped since the last commit: what sled still holds of
    /// them is gone.
    dropped_segments: BTreeSet<i64>,
    /// Clean entries, least recently used first out.
    clean: lru::LruCache<K, Cached<V>, Hasher>,
    /// Running estimate of an entry's encoded size.
    encoded_size: usize,
}

fn segment_prefix(segment: i64) -> [u8; 9] {
    let mut p = [b'e'; 9];
    // Sign bit flipped: segments sort in numeric order as bytes.
    p[1..].copy_from_slice(&((segment as u64) ^ (1 << 63)).to_be_bytes());
    p
}

fn count_key(segment: i64) -> Vec<u8> {
    let mut k = segment_prefix(segment).to_vec();
    k[0] = b's';
    k
}

fn no_segments<K>(_: &K) -> i64 {
    0
}

fn weight_of(encoded: usize) -> usize {
    // Decoded entries take about twice their encoded size.
    2 * encoded + ENTRY_OVERHEAD
}

impl<K, V> EntryStore<K, V>
where
    K: Ord + Hash + Eq + Clone + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// Opens the store `name` in `tree` (reading its segment counts only).
    pub fn load(name: impl Into<String>, tree: &StoreTree) -> Result<Self, StateError> {
        Self::load_segmented(name, tree, no_segments::<K>)
    }

    /// Opens a segmented store: `segment` gives a key's segment.
    pub fn load_segmented(
        name: impl Into<String>,
        tree: &StoreTree,
        segment: fn(&K) -> i64,
    ) -> Result<Self, StateError> {
        let name = name.into();
        let mut segments = BTreeMap::new();
        for r in tree.scan(b"s") {
            let (k, v) = r?;
            let seg = k
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(|b| (u64::from_be_bytes(b) ^ (1 << 63)) as i64)
                .ok_or_else(|| StateError::Mismatch(format!("bad segment key in {name}")))?;
            segments.insert(seg, decode::<u64>(&v)?);
        }
        Ok(EntryStore {
            name,
            tree: tree.clone(),
            budget: tree.budget().clone(),
            segment,
            segments,
            segments_changed: BTreeSet::new(),
            dirty: Map::default(),
            dropped: Vec::new(),
            dropped_segments: BTreeSet::new(),
            clean: lru::LruCache::unbounded_with_hasher(Hasher::default()),
            encoded_size: INITIAL_ENCODED_SIZE,
        })
    }

    fn sled_key(&self, key: &K) -> Vec<u8> {
        let mut k = segment_prefix((self.segment)(key)).to_vec();
        bincode_into(&mut k, key);
        k
    }

    /// Reads `key` from sled into the clean cache; true when it exists.
    fn read(&mut self, key: &K) -> Result<bool, StateError> {
        if self.dropped_segments.contains(&(self.segment)(key)) {
            return Ok(false);
        }
        let sled_key = self.sled_key(key);
        let Some(bytes) = self.tree.get(&sled_key)? else {
            return Ok(false);
        };
        let value: V = decode(&bytes)?;
        let weight = weight_of(sled_key.len() + bytes.len());
        self.budget.add(weight as isize, 0);
        self.clean.put(key.clone(), Cached { value, weight });
        Ok(true)
    }

    /// Drops least recently used clean entries while the budget is exceeded.
    fn evict(&mut self) {
        if !self.budget.over() {
            return;
        }
        let target = self.budget.limit() / 10 * 9;
        while self.budget.used() > target {
            let Some((_, c)) = self.clean.pop_lru() else {
                break;
            };
            self.budget.add(-(c.weight as isize), 0);
        }
    }

    /// The value of `key`.
    pub fn get(&mut self, key: &K) -> Result<Option<&V>, StateError> {
        if self.dirty.contains_key(key) {
            return Ok(self.dirty[key].value.as_ref());
        }
        if !self.clean.contains(key) {
            self.evict();
            if !self.read(key)? {
                return Ok(None);
            }
        }
        Ok(self.clean.get(key).map(|c| &c.value))
    }

    /// Makes `key` dirty (moving it from the cache or reading it); false
    /// when it does not exist.
    fn make_dirty(&mut self, key: &K) -> Result<bool, StateError> {
        if let Some(d) = self.dirty.get(key) {
            return Ok(d.value.is_some());
        }
        self.evict();
        if !self.clean.contains(key) && !self.read(key)? {
            return Ok(false);
        }
        let c = self.clean.pop(key).expect("just cached");
        self.budget.add(0, c.weight as isize);
        self.dirty.insert(
            key.clone(),
            Dirty {
                value: Some(c.value),
                weight: c.weight,
            },
        );
        Ok(true)
    }

    fn dirty_value(&mut self, key: &K) -> &mut V {
        self.dirty
            .get_mut(key)
            .and_then(|d| d.value.as_mut())
            .expect("dirty entry present")
    }

    /// Mutable access to the value of `key` (it becomes dirty).
    pub fn get_mut(&mut self, key: &K) -> Result<Option<&mut V>, StateError> {
        if !self.make_dirty(key)? {
            return Ok(None);
        }
        Ok(Some(self.dirty_value(key)))
    }

    fn count_segment(&mut self, key: &K, delta: i64) {
        let seg = (self.segment)(key);
        let n = self.segments.entry(seg).or_insert(0);
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            self.segments.remove(&seg);
        }
        self.segments_changed.insert(seg);
    }

    /// Mutable access to `key`, inserting `default()` first if absent.
    /// Returns whether it was inserted.
    pub fn upsert_with(
        &mut self,
        key: &K,
        default: impl FnOnce() -> V,
    ) -> Result<(&mut V, bool), StateError> {
        let existed = self.make_dirty(key)?;
        if !existed {
            let weight = weight_of(self.encoded_size);
            let before = self.dirty.insert(
                key.clone(),
                Dirty {
                    value: Some(default()),
                    weight,
                },
            );
            let freed = before.map_or(0, |d| d.weight as isize);
            self.budget
                .add(weight as isize - freed, weight as isize - freed);
            self.count_segment(key, 1);
        }
        Ok((self.dirty_value(key), !existed))
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: K, value: V) -> Result<Option<V>, StateError> {
        let mut value = Some(value);
        let (slot, inserted) = self.upsert_with(&key, || value.take().expect("once"))?;
        if inserted {
            return Ok(None);
        }
        Ok(Some(std::mem::replace(slot, value.take().expect("unused"))))
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Result<Option<V>, StateError> {
        if !self.make_dirty(key)? {
            return Ok(None);
        }
        let d = self.dirty.get_mut(key).expect("dirty entry present");
        let old = d.value.take();
        // A removal keeps only its key in memory until the commit.
        let freed = d.weight.saturating_sub(ENTRY_OVERHEAD) as isize;
        d.weight = ENTRY_OVERHEAD;
        self.budget.add(-freed, -freed);
        self.count_segment(key, -1);
        Ok(old)
    }

    /// The first (smallest) segment present.
    pub fn first_segment(&self) -> Option<i64> {
        self.segments.keys().next().copied()
    }

    /// The segments present, ascending.
    pub fn segments(&self) -> impl Iterator<Item = i64> + '_ {
        self.segments.keys().copied()
    }

    /// The first segment present after `segment`.
    pub fn segment_after(&self, segment: i64) -> Option<i64> {
        self.segments
            .range(segment.saturating_add(1)..)
            .next()
            .map(|(s, _)| *s)
            .filter(|s| *s > segment)
    }

    /// Number of segments present.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Removes segment `seg`: its committed records are queued for removal,
    /// its cached and dirty entries leave memory. With `keep`, returns its
    /// entries (committed values overlaid with dirty ones) in key order.
    fn remove_segment(&mut self, seg: i64, keep: bool) -> Result<Vec<(K, V)>, StateError> {
        let mut entries: BTreeMap<K, V> = BTreeMap::new();
        let mut removed = Vec::new();
        let committed = if self.dropped_segments.insert(seg) {
            self.tree.scan(&segment_prefix(seg)).collect()
        } else {
            Vec::new() // dropped before: sled holds nothing of it any more
        };
        for r in committed {
            let (k, v) = r?;
            let key: K = decode(&k[9..])?;
            if let Some(c) = self.clean.pop(&key) {
                self.budget.add(-(c.weight as isize), 0);
            }
            if keep && !self.dirty.contains_key(&key) {
                entries.insert(key, decode(&v)?);
            }
            removed.push(k);
        }
        let in_segment: Vec<K> = self
            .dirty
            .keys()
            .filter(|k| (self.segment)(k) == seg)
            .cloned()
            .collect();
        for key in in_segment {
            let d = self.dirty.remove(&key).expect("listed");
            self.budget.add(-(d.weight as isize), -(d.weight as isize));
            if let (true, Some(v)) = (keep, d.value) {
                entries.insert(key, v);
            }
        }
        let held = removed.iter().map(|k| k.len() + 24).sum::<usize>() as isize;
        self.budget.add(held, held);
        self.dropped.extend(removed);
        if self.segments.remove(&seg).is_some() {
            self.segments_changed.insert(seg);
        }
        Ok(entries.into_iter().collect())
    }

    /// Removes the first segment, returning its entries in key order.
    pub fn take_first_segment(&mut self) -> Result<Vec<(K, V)>, StateError> {
        match self.first_segment() {
            Some(seg) => self.remove_segment(seg, true),
            None => Ok(Vec::new()),
        }
    }

    /// Removes the first segment without decoding its values.
    pub fn drop_first_segment(&mut self) -> Result<(), StateError> {
        if let Some(seg) = self.first_segment() {
            self.remove_segment(seg, false)?;
        }
        Ok(())
    }

    /// Number of entries (from the segment counts, without reading entries).
    pub fn count(&self) -> usize {
        self.segments.values().sum::<u64>() as usize
    }

    /// Every entry in key order (reads the whole store: for tests and tools).
    pub fn entries(&mut self) -> Result<Vec<(K, V)>, StateError>
    where
        V: Clone,
    {
        let mut out: BTreeMap<K, V> = BTreeMap::new();
        for r in self.tree.scan(b"e") {
            let (k, v) = r?;
            let key: K = decode(&k[9..])?;
            if !self.dirty.contains_key(&key) {
                out.insert(key, decode(&v)?);
            }
        }
        for (k, d) in &self.dirty {
            if let Some(v) = &d.value {
                out.insert(k.clone(), v.clone());
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// Appends the encoding of `value` to `buf`.
fn bincode_into<T: Serialize>(buf: &mut Vec<u8>, value: &T) {
    buf.extend_from_slice(&encode(value));
}

impl<K, V> Store for EntryStore<K, V>
where
    K: Ord + Hash + Eq + Clone + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn take_changes(&mut self, out: &mut Vec<ChangeRecord>) {
        let held: usize = self.dropped.iter().map(|k| k.len() + 24).sum();
        self.budget.add(-(held as isize), -(held as isize));
        self.dropped_segments.clear();
        for key in std::mem::take(&mut self.dropped) {
            out.push(ChangeRecord { key, value: None });
        }
        for seg in std::mem::take(&mut self.segments_changed) {
            out.push(ChangeRecord {
                key: count_key(seg),
                value: self.segments.get(&seg).map(encode),
            });
        }
        let mut dirty: Vec<(K, Dirty<V>)> = self.dirty.drain().collect();
        dirty.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let (mut bytes, entries) = (0usize, dirty.len());
        for (key, d) in dirty {
            let sled_key = self.sled_key(&key);
            self.budget.add(-(d.weight as isize), -(d.weight as isize));
            match d.value {
                Some(value) => {
                    let encoded = encode(&value);
                    let size = sled_key.len() + encoded.len();
                    bytes += size;
                    let weight = weight_of(size);
                    self.budget.add(weight as isize, 0);
                    self.clean.put(key, Cached { value, weight });
                    out.push(ChangeRecord {
                        key: sled_key,
                        value: Some(encoded),
                    });
                }
                None => out.push(ChangeRecord {
                    key: sled_key,
                    value: None,
                }),
            }
        }
        if let Some(average) = bytes.checked_div(entries) {
            self.encoded_size = average.max(16);
        }
        self.evict();
    }
}
