//! An ordered map stored in sled as pages, with the working set cached.
//!
//! The key space of a store is cut into pages of at most [`PAGE_ENTRIES`]
//! entries; a page is one sled value (its entries, bincode), found through an
//! index of the pages' lower bounds. The index is small (one entry per page)
//! and read at open; pages are read when first needed and kept decoded in
//! memory, against the instance's [`Budget`]: when the budget is exceeded
//! the least recently used clean pages are dropped (they can be read again).
//! Pages changed since the last commit are *dirty*: they stay in memory and
//! reach sled only through a commit ([`Store::take_changes`]), so the stored
//! state always matches a checkpoint.
//!
//! A commit does not rewrite a page for a few changed entries: it writes the
//! page's *delta*, the current values of every key changed since the page
//! itself was last written (`None` for a removed key), as long as the delta
//! stays under a quarter of the page ([`DELTA_SHARE`]); past that, the page
//! is written whole and its delta deleted. A page is read as page + delta.
//! So the bytes a commit writes follow what changed, not the state's size.
//!
//! A *segmented* store keeps every page within one segment (e.g. a window
//! start or a day): a whole segment is taken or dropped page by page, never
//! key by key.
//!
//! sled layout of a store's keyspace: `i` + page id → the page's lower
//! bound; `p` + page id → the page; `d` + page id → its delta. These are
//! also its changelog records.

use crate::codec::encode_into;
use crate::{decode, encode, Budget, ChangeRecord, StateError, Store, StoreTree};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The entries of a page. A B-tree rather than a sorted `Vec`: an insert
/// in the middle of a 1,024-entry page moved half the page (37 KB for a
/// user-set key), the largest single cost of the join in the profile. It
/// serialises exactly like the `Vec<(K, V)>` it replaced (bincode: length,
/// then key, value, ...), so stored pages are unchanged.
type Entries<K, V> = BTreeMap<K, V>;
use std::hash::Hash;

/// The keys of a page changed since it was last written whole (hashed:
/// sorted only when a delta is written).
type ChangedKeys<K> = hashbrown::HashSet<K, foldhash::fast::FixedState>;

/// Page id → something, hashed cheaply (ids are not chosen by input).
type PageMap<T> = hashbrown::HashMap<u64, T, foldhash::fast::FixedState>;

/// Entries per page before it splits. Measured on 1M users
/// (`scripts/bench/scale.py`): 1,024 against 256 is faster (+21% records/s)
/// with a smaller peak RSS (-15%) and half the disk, since sled's cost and
/// memory follow its record count; 64 and 4,096 were both slower.
pub const PAGE_ENTRIES: usize = 1024;
/// Largest encoded page written: a larger one is split at the commit, so
/// that every page also fits in a changelog record (Kafka's default limit
/// is 1 MB).
pub const PAGE_BYTES: usize = 256 << 10;
/// Assumed bytes per entry until a store has measured its own.
const INITIAL_ENTRY_WEIGHT: usize = 96;
/// Fixed cost of a resident page.
const PAGE_OVERHEAD: usize = 128;
/// A page's delta is written while it encodes to at most this share of the
/// page (1/4); past it, the page is written whole.
pub const DELTA_SHARE: usize = 4;

struct Page<K, V> {
    entries: Entries<K, V>,
    /// Keys changed since the page was last written whole: what its delta
    /// holds, or will hold at the next commit. Not kept while the next
    /// commit writes the page whole anyway (`base_bytes == 0`).
    since_base: ChangedKeys<K>,
    /// Encoded size of the page as last written whole; 0 when it never was,
    /// was split since, or has changed too much for a delta: the next commit
    /// writes it whole.
    base_bytes: usize,
    /// Whether sled holds a delta of the page (deleted when it is written whole).
    has_delta: bool,
    dirty: bool,
    /// The commit that took its last changes: it stays resident until that
    /// commit has landed (see [`Budget`]).
    pinned: u64,
    last_used: u64,
    /// What the page counts against the budget.
    weight: usize,
}

impl<K: Eq + Hash + Clone, V> Page<K, V> {
    /// Records that `key` changed since the page was last written whole.
    /// Once more than a [`DELTA_SHARE`] of the page has changed (counting
    /// an insert that may not be made yet), the next commit will write it
    /// whole (inserts add to both counts, removals to the changed keys
    /// only), so the keys are no longer tracked.
    fn mark_changed(&mut self, key: &K) {
        self.mark_changed_counting(key, self.entries.len());
    }

    /// [`Self::mark_changed`], counting `len` entries: an insert that marks
    /// its key after inserting passes the length before it, so that it
    /// counts exactly as [`PagedStore::upsert_with`], which marks first
    /// (the same weights, so the same evictions and early commits).
    fn mark_changed_counting(&mut self, key: &K, len: usize) {
        if self.base_bytes == 0 {
            return;
        }
        self.since_base.get_or_insert_with(key, K::clone);
        if self.since_base.len() * DELTA_SHARE > len + 2 {
            self.base_bytes = 0;
            self.since_base = ChangedKeys::default();
        }
    }
}

/// An ordered map `K → V` in pages (see the module docs).
pub struct PagedStore<K, V> {
    name: String,
    tree: StoreTree,
    budget: Budget,
    segment: fn(&K) -> i64,
    /// Lower bound of each page → page id.
    index: BTreeMap<K, u64>,
    /// Segment → number of its pages (the segments present, without a
    /// walk over the index).
    segment_pages: BTreeMap<i64, usize>,
    /// Page id → its current lower bound (to re-key and to persist).
    bounds: PageMap<K>,
    resident: PageMap<Page<K, V>>,
    /// Pages whose index record must be written, or removed, at the next commit.
    index_changed: BTreeSet<u64>,
    /// Pages removed since the last commit.
    removed: BTreeSet<u64>,
    next_id: u64,
    tick: u64,
    entry_weight: usize,
}

fn page_key(id: u64) -> Vec<u8> {
    let mut k = vec![b'p'];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn index_key(id: u64) -> Vec<u8> {
    let mut k = vec![b'i'];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn delta_key(id: u64) -> Vec<u8> {
    let mut k = vec![b'd'];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn no_segments<K>(_: &K) -> i64 {
    0
}

impl<K, V> PagedStore<K, V>
where
    K: Ord + Hash + Clone + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// Opens the store `name` in `tree` (reading its page index only).
    pub fn load(name: impl Into<String>, tree: &StoreTree) -> Result<Self, StateError> {
        Self::load_segmented(name, tree, no_segments::<K>)
    }

    /// Opens a segmented store: `segment` gives a key's segment, and keys
    /// of one segment are contiguous in the key order.
    pub fn load_segmented(
        name: impl Into<String>,
        tree: &StoreTree,
        segment: fn(&K) -> i64,
    ) -> Result<Self, StateError> {
        let mut s = PagedStore {
            name: name.into(),
            tree: tree.clone(),
            budget: tree.budget().clone(),
            segment,
            index: BTreeMap::new(),
            segment_pages: BTreeMap::new(),
            bounds: PageMap::default(),
            resident: PageMap::default(),
            index_changed: BTreeSet::new(),
            removed: BTreeSet::new(),
            next_id: 0,
            tick: 0,
            entry_weight: INITIAL_ENTRY_WEIGHT,
        };
        for r in tree.scan(b"i") {
            let (k, v) = r?;
            let id = k
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| StateError::Mismatch(format!("bad page index key in {}", s.name)))?;
            let bound: K = decode(&v)?;
            s.index_insert(bound.clone(), id);
            s.bounds.insert(id, bound);
            s.next_id = s.next_id.max(id + 1);
        }
        Ok(s)
    }

    /// Number of pages.
    pub fn page_count(&self) -> usize {
        self.index.len()
    }

    fn index_insert(&mut self, bound: K, id: u64) {
        *self
            .segment_pages
            .entry((self.segment)(&bound))
            .or_insert(0) += 1;
        self.index.insert(bound, id);
    }

    fn index_remove(&mut self, bound: &K) {
        if self.index.remove(bound).is_some() {
            let seg = (self.segment)(bound);
            if let Some(n) = self.segment_pages.get_mut(&seg) {
                *n -= 1;
                if *n == 0 {
                    self.segment_pages.remove(&seg);
                }
            }
        }
    }

    /// The page that holds (or would hold) `key`, if one exists in its segment.
    fn page_of(&self, key: &K) -> Option<u64> {
        let seg = (self.segment)(key);
        self.index
            .range(..=key)
            .next_back()
            .filter(|(lb, _)| (self.segment)(lb) == seg)
            .map(|(_, id)| *id)
    }

    /// Makes page `id` resident (reading it and its delta from sled) and returns it.
    fn page(&mut self, id: u64) -> Result<&mut Page<K, V>, StateError> {
        self.tick += 1;
        if !self.resident.contains_key(&id) {
            let (mut entries, base_bytes): (Entries<K, V>, usize) =
                match self.tree.get(&page_key(id))? {
                    Some(bytes) => (decode(&bytes)?, bytes.len()),
                    None => (Entries::new(), 0),
                };
            let mut since_base = ChangedKeys::default();
            let stored_delta = self.tree.get(&delta_key(id))?;
            let has_delta = stored_delta.is_some();
            if let Some(bytes) = stored_delta {
                let delta: Vec<(K, Option<V>)> = decode(&bytes)?;
                for (k, v) in delta {
                    match v {
                        Some(v) => entries.insert(k.clone(), v),
                        None => entries.remove(&k),
                    };
                    since_base.insert(k);
                }
            }
            let weight = PAGE_OVERHEAD + (entries.len() + since_base.len()) * self.entry_weight;
            self.budget.add(weight as isize, 0);
            self.resident.insert(
                id,
                Page {
                    entries,
                    since_base,
                    base_bytes,
                    has_delta,
                    dirty: false,
                    pinned: 0,
                    last_used: self.tick,
                    weight,
                },
            );
        }
        let p = self.resident.get_mut(&id).expect("resident");
        p.last_used = self.tick;
        Ok(p)
    }

    /// Marks `key` of page `id` changed (it goes into the page's delta),
    /// the page dirty, and re-weighs it.
    fn changed(&mut self, id: u64, key: &K) {
        if let Some(p) = self.resident.get_mut(&id) {
            p.mark_changed(key);
            Self::reweigh_dirty(&self.budget, self.entry_weight, p);
        }
    }

    /// Marks page `id` dirty and re-weighs it.
    fn touched(&mut self, id: u64) {
        if let Some(p) = self.resident.get_mut(&id) {
            Self::reweigh_dirty(&self.budget, self.entry_weight, p);
        }
    }

    /// Marks page `p` dirty and re-weighs it against `budget`.
    fn reweigh_dirty(budget: &Budget, entry_weight: usize, p: &mut Page<K, V>) {
        Self::reweigh_dirty_counting(budget, entry_weight, p, p.entries.len());
    }

    /// [`Self::reweigh_dirty`], counting `len` entries (see
    /// [`Page::mark_changed_counting`]).
    fn reweigh_dirty_counting(
        budget: &Budget,
        entry_weight: usize,
        p: &mut Page<K, V>,
        len: usize,
    ) {
        let weight = PAGE_OVERHEAD + (len + p.since_base.len()) * entry_weight;
        if p.dirty && weight == p.weight {
            // Nothing to count: spare the shared counters.
            return;
        }
        let dirty_before = if p.dirty { p.weight as isize } else { 0 };
        budget.add(
            weight as isize - p.weight as isize,
            weight as isize - dirty_before,
        );
        p.weight = weight;
        p.dirty = true;
    }

    /// Drops least recently used clean pages while the budget is exceeded
    /// (not those whose changes a commit still in flight took).
    fn evict(&mut self) {
        self.evict_except(None);
    }

    /// [`Self::evict`], never dropping page `keep` (the one being used).
    fn evict_except(&mut self, keep: impl Into<Option<u64>>) {
        if !self.budget.over() {
            return;
        }
        let keep = keep.into();
        let mut clean: Vec<(u64, u64)> = self
            .resident
            .iter()
            .filter(|(id, p)| !p.dirty && Some(**id) != keep && self.budget.has_landed(p.pinned))
            .map(|(id, p)| (p.last_used, *id))
            .collect();
        clean.sort_unstable();
        let target = self.budget.limit() / 10 * 9;
        for (_, id) in clean {
            if self.budget.used() <= target {
                break;
            }
            if let Some(p) = self.resident.remove(&id) {
                self.budget.add(-(p.weight as isize), 0);
            }
        }
    }

    /// The value of `key`.
    pub fn get(&mut self, key: &K) -> Result<Option<&V>, StateError> {
        let Some(id) = self.page_of(key) else {
            return Ok(None);
        };
        self.page(id)?;
        self.evict_except(id);
        Ok(self.resident[&id].entries.get(key))
    }

    /// Mutable access to the value of `key` (its page becomes dirty).
    pub fn get_mut(&mut self, key: &K) -> Result<Option<&mut V>, StateError> {
        let Some(id) = self.page_of(key) else {
            return Ok(None);
        };
        if !self.page(id)?.entries.contains_key(key) {
            self.evict_except(id);
            return Ok(None);
        }
        self.changed(id, key);
        self.evict_except(id);
        Ok(self
            .resident
            .get_mut(&id)
            .expect("resident")
            .entries
            .get_mut(key))
    }

    /// The page that must receive `key`: its page, else the next page of
    /// its segment (re-keyed to start at `key`), else a new page.
    fn page_for_insert(&mut self, key: &K) -> u64 {
        if let Some(id) = self.page_of(key) {
            return id;
        }
        let seg = (self.segment)(key);
        let next = self
            .index
            .range(key..)
            .next()
            .filter(|(lb, _)| (self.segment)(lb) == seg)
            .map(|(lb, id)| (lb.clone(), *id));
        match next {
            Some((lb, id)) => {
                self.index_remove(&lb);
                self.index_insert(key.clone(), id);
                self.bounds.insert(id, key.clone());
                self.index_changed.insert(id);
                id
            }
            None => {
                let id = self.next_id;
                self.next_id += 1;
                self.index_insert(key.clone(), id);
                self.bounds.insert(id, key.clone());
                self.index_changed.insert(id);
                self.budget.add(PAGE_OVERHEAD as isize, 0);
                self.resident.insert(
                    id,
                    Page {
                        entries: Entries::new(),
                        since_base: ChangedKeys::default(),
                        base_bytes: 0,
                        has_delta: false,
                        dirty: false,
                        pinned: 0,
                        last_used: self.tick,
                        weight: PAGE_OVERHEAD,
                    },
                );
                id
            }
        }
    }

    /// Mutable access to `key`, inserting `default()` first if absent.
    /// Returns whether it was inserted.
    pub fn upsert_with(
        &mut self,
        key: &K,
        default: impl FnOnce() -> V,
    ) -> Result<(&mut V, bool), StateError> {
        let id = self.page_for_insert(key);
        let entries = &self.page(id)?.entries;
        if entries.len() >= PAGE_ENTRIES && !entries.contains_key(key) {
            let id = self.insert_splitting(id, key, default());
            let p = self.resident.get_mut(&id).expect("resident");
            return Ok((p.entries.get_mut(key).expect("just inserted"), true));
        }
        self.changed(id, key);
        self.evict_except(id);
        let p = self.resident.get_mut(&id).expect("resident");
        let mut inserted = false;
        let v = p.entries.entry(key.clone()).or_insert_with(|| {
            inserted = true;
            default()
        });
        Ok((v, inserted))
    }

    /// Inserts `key` with `value()` unless it is present; returns whether
    /// it was inserted. One search of the page, where a `get` and then an
    /// insert make two; a key already present leaves the page clean.
    pub fn insert_if_absent(
        &mut self,
        key: &K,
        value: impl FnOnce() -> V,
    ) -> Result<bool, StateError> {
        let id = self.page_for_insert(key);
        let entries = &self.page(id)?.entries;
        if entries.len() >= PAGE_ENTRIES {
            let present = entries.contains_key(key);
            if present {
                self.evict_except(id);
            } else {
                self.insert_splitting(id, key, value());
            }
            return Ok(!present);
        }
        let p = self.resident.get_mut(&id).expect("resident");
        let len_before = p.entries.len();
        let inserted = match p.entries.entry(key.clone()) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(value());
                p.mark_changed_counting(key, len_before);
                Self::reweigh_dirty_counting(&self.budget, self.entry_weight, p, len_before);
                true
            }
            std::collections::btree_map::Entry::Occupied(_) => false,
        };
        self.evict_except(id);
        Ok(inserted)
    }

    /// Inserts `key`, absent from full page `id`, and splits the page;
    /// returns the page that holds `key` now.
    fn insert_splitting(&mut self, id: u64, key: &K, value: V) -> u64 {
        let p = self.resident.get_mut(&id).expect("resident");
        p.entries.insert(key.clone(), value);
        self.changed(id, key);
        let id = self.split_if_full(id, key);
        self.evict_except(id);
        id
    }

    /// Splits page `id` in two when it is over-full; returns the page that
    /// holds `key` now.
    fn split_if_full(&mut self, id: u64, key: &K) -> u64 {
        let len = self.resident[&id].entries.len();
        if len <= PAGE_ENTRIES {
            return id;
        }
        let new_id = self.split_page(id, len / 2);
        if self.resident[&new_id].entries.contains_key(key) {
            new_id
        } else {
            id
        }
    }

    /// Moves the entries of resident page `id` from `at` on to a new page
    /// (both dirty); returns the new page's id.
    fn split_page(&mut self, id: u64, at: usize) -> u64 {
        let entries = &mut self.resident.get_mut(&id).expect("resident").entries;
        let bound = entries.keys().nth(at).expect("at < len").clone();
        let upper = entries.split_off(&bound);
        let new_id = self.next_id;
        self.next_id += 1;
        self.index_insert(bound.clone(), new_id);
        self.bounds.insert(new_id, bound);
        self.index_changed.insert(new_id);
        self.budget.add(PAGE_OVERHEAD as isize, 0);
        // Both halves are written whole at the next commit (the old page's
        // delta is deleted then).
        let old = self.resident.get_mut(&id).expect("resident");
        old.base_bytes = 0;
        old.since_base.clear();
        self.resident.insert(
            new_id,
            Page {
                entries: upper,
                since_base: ChangedKeys::default(),
                base_bytes: 0,
                has_delta: false,
                dirty: false,
                pinned: 0,
                last_used: self.tick,
                weight: PAGE_OVERHEAD,
            },
        );
        self.touched(id);
        self.touched(new_id);
        new_id
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
        let Some(id) = self.page_of(key) else {
            return Ok(None);
        };
        let removed = self.page(id)?.entries.remove(key);
        if removed.is_some() {
            self.changed(id, key);
            if self.resident[&id].entries.is_empty() {
                self.drop_page(id);
            }
        }
        self.evict();
        Ok(removed)
    }

    /// Forgets page `id` (its records are removed at the next commit).
    fn drop_page(&mut self, id: u64) {
        if let Some(p) = self.resident.remove(&id) {
            let dirty = if p.dirty { p.weight as isize } else { 0 };
            self.budget.add(-(p.weight as isize), -dirty);
        }
        if let Some(lb) = self.bounds.remove(&id) {
            self.index_remove(&lb);
        }
        self.index_changed.remove(&id);
        self.removed.insert(id);
    }

    /// The first (smallest) segment present.
    pub fn first_segment(&self) -> Option<i64> {
        self.segment_pages.keys().next().copied()
    }

    /// The segments present, ascending.
    pub fn segments(&self) -> impl Iterator<Item = i64> + '_ {
        self.segment_pages.keys().copied()
    }

    /// The first segment present after `segment`.
    pub fn segment_after(&self, segment: i64) -> Option<i64> {
        self.segment_pages
            .range(segment.saturating_add(1)..)
            .next()
            .map(|(s, _)| *s)
            .filter(|s| *s > segment)
    }

    /// Number of segments present.
    pub fn segment_count(&self) -> usize {
        self.segment_pages.len()
    }

    fn pages_of_first_segment(&self) -> Vec<u64> {
        let Some(first) = self.first_segment() else {
            return Vec::new();
        };
        self.index
            .iter()
            .take_while(|(k, _)| (self.segment)(k) == first)
            .map(|(_, id)| *id)
            .collect()
    }

    /// Removes the first segment, returning its entries in key order.
    pub fn take_first_segment(&mut self) -> Result<Vec<(K, V)>, StateError> {
        self.take_first_segment_while(|_| true)
    }

    /// Removes the entries at the start of the first segment for which
    /// `take` holds, returning them in key order; the rest of the segment
    /// stays in place. `take` must hold for a prefix of the segment's keys
    /// (true, then false), so the cost follows what is taken, not the
    /// segment's size.
    pub fn take_first_segment_while(
        &mut self,
        take: impl Fn(&K) -> bool,
    ) -> Result<Vec<(K, V)>, StateError> {
        let mut out = Vec::new();
        let Some(segment) = self.first_segment() else {
            return Ok(out);
        };
        // The first page of the index is the first page of the first
        // segment until that segment's last page is dropped.
        while let Some(id) = self
            .index
            .iter()
            .next()
            .filter(|(lb, _)| (self.segment)(lb) == segment)
            .map(|(_, id)| *id)
        {
            let p = self.page(id)?;
            let Some((position, kept)) = p.entries.keys().enumerate().find(|(_, k)| !take(k))
            else {
                out.extend(std::mem::take(&mut p.entries));
                self.drop_page(id);
                continue;
            };
            if position == 0 {
                // Nothing to take (the usual case): no key to copy, no split.
                break;
            }
            let kept = kept.clone();
            let rest = p.entries.split_off(&kept);
            let taken = std::mem::replace(&mut p.entries, rest);
            for k in taken.keys() {
                p.mark_changed(k);
            }
            out.extend(taken);
            self.touched(id);
            break;
        }
        self.evict();
        Ok(out)
    }

    /// Removes the first segment without reading it.
    pub fn drop_first_segment(&mut self) {
        for id in self.pages_of_first_segment() {
            self.drop_page(id);
        }
    }

    /// Number of entries (reads every page: for tests and tools).
    pub fn count(&mut self) -> Result<usize, StateError> {
        let ids: Vec<u64> = self.index.values().copied().collect();
        let mut n = 0;
        for id in ids {
            n += self.page(id)?.entries.len();
        }
        self.evict();
        Ok(n)
    }

    /// Every entry in key order (reads every page: for tests and tools).
    pub fn entries(&mut self) -> Result<Vec<(K, V)>, StateError>
    where
        V: Clone,
    {
        let ids: Vec<u64> = self.index.values().copied().collect();
        let mut out = Vec::new();
        for id in ids {
            out.extend(
                self.page(id)?
                    .entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        self.evict();
        Ok(out)
    }
}
/// A store dropped (its task given up in a rebalance, or the run over) gives
/// its resident pages back to the instance's budget, dirty ones included:
/// their changes were never committed and are gone with it. Pages a commit
/// in flight took are safe to drop: the commit holds their changes, and a
/// driver loads the store again only after that commit has landed (the
/// Kafka engine waits for it before any restore).
impl<K, V> Drop for PagedStore<K, V> {
    fn drop(&mut self) {
        let (used, dirty) = self.resident.values().fold((0, 0), |(u, d), p| {
            (u + p.weight, d + if p.dirty { p.weight } else { 0 })
        });
        self.budget.add(-(used as isize), -(dirty as isize));
    }
}

impl<K, V> Store for PagedStore<K, V>
where
    K: Ord + Hash + Clone + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn take_changes(&mut self, out: &mut Vec<ChangeRecord>) {
        // Encode the dirty pages first: as a delta when it is small enough,
        // else whole; a whole page too large for a record is split (which
        // changes the index) until every part fits.
        let mut dirty: Vec<u64> = self
            .resident
            .iter()
            .filter(|(_, p)| p.dirty)
            .map(|(id, _)| *id)
            .collect();
        let mut encoded: Vec<(u64, Encoded)> = Vec::with_capacity(dirty.len());
        // One buffer encodes every page and delta (in one pass); what is
        // kept is copied out at its exact size.
        let mut scratch = Vec::new();
        let (mut bytes, mut entries) = (0usize, 0usize);
        while let Some(id) = dirty.pop() {
            let p = &self.resident[&id];
            if let Some(delta) = delta_of(p, &mut scratch) {
                encoded.push((id, Encoded::Delta(delta)));
                continue;
            }
            encode_into(&mut scratch, &p.entries);
            let len = p.entries.len();
            if scratch.len() > PAGE_BYTES && len > 1 {
                let upper = self.split_page(id, len / 2);
                dirty.extend([id, upper]);
                continue;
            }
            bytes += scratch.len();
            entries += len;
            encoded.push((id, Encoded::Whole(scratch.clone())));
        }
        for id in std::mem::take(&mut self.removed) {
            for key in [index_key(id), page_key(id), delta_key(id)] {
                out.push(ChangeRecord { key, value: None });
            }
        }
        for id in std::mem::take(&mut self.index_changed) {
            if let Some(lb) = self.bounds.get(&id) {
                out.push(ChangeRecord {
                    key: index_key(id),
                    value: Some(encode(lb)),
                });
            }
        }
        encoded.sort_unstable_by_key(|(id, _)| *id);
        let pinned = self.budget.newest_commit();
        for (id, value) in encoded {
            let p = self.resident.get_mut(&id).expect("resident");
            match value {
                Encoded::Delta(delta) => {
                    p.has_delta = true;
                    out.push(ChangeRecord {
                        key: delta_key(id),
                        value: Some(delta),
                    });
                }
                Encoded::Whole(page) => {
                    p.base_bytes = page.len();
                    p.since_base.clear();
                    out.push(ChangeRecord {
                        key: page_key(id),
                        value: Some(page),
                    });
                    if std::mem::take(&mut p.has_delta) {
                        out.push(ChangeRecord {
                            key: delta_key(id),
                            value: None,
                        });
                    }
                }
            }
            p.dirty = false;
            p.pinned = pinned;
            self.budget.add(0, -(p.weight as isize));
        }
        // Decoded entries take about twice their encoded size.
        if let Some(average) = (bytes * 2).checked_div(entries) {
            self.entry_weight = average.max(16) + 16;
        }
        self.evict();
    }
}

/// A dirty page as written by a commit.
enum Encoded {
    /// The page's delta (`d` record).
    Delta(Vec<u8>),
    /// The whole page (`p` record; its delta is deleted).
    Whole(Vec<u8>),
}

/// The encoded delta of `page` (the current value of each key changed since
/// it was written whole, `None` when removed), if the page was written
/// whole before and the delta stays within [`DELTA_SHARE`] of it
/// (encoded in `scratch`).
fn delta_of<K: Ord + Hash + Serialize, V: Serialize>(
    page: &Page<K, V>,
    scratch: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    if page.base_bytes == 0 || page.since_base.len() * DELTA_SHARE > page.entries.len() + 1 {
        return None;
    }
    let mut delta: Vec<(&K, Option<&V>)> = page
        .since_base
        .iter()
        .map(|k| (k, page.entries.get(k)))
        .collect();
    delta.sort_unstable_by(|a, b| a.0.cmp(b.0));
    encode_into(scratch, &delta);
    (scratch.len() * DELTA_SHARE <= page.base_bytes).then(|| scratch.clone())
}
