//! Window store: entries grouped by window start (a segment each), for
//! tumbling windows, their user sets and time-bounded dedup. Closing or
//! expiring a window takes or drops its pages, never key by key.

use crate::{ChangeRecord, PagedStore, StateError, Store, StoreTree};
use serde::{de::DeserializeOwned, Serialize};

/// A window taken out of the store: its start and its entries sorted by key.
pub type ClosedWindow<K, V> = (i64, Vec<(K, V)>);

/// A store of `(window start, K) → V`.
pub struct WindowStore<K, V> {
    inner: PagedStore<(i64, K), V>,
}

fn start_of<K>(k: &(i64, K)) -> i64 {
    k.0
}

impl<K, V> WindowStore<K, V>
where
    K: Ord + std::hash::Hash + Clone + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// Opens the store `name` in `tree`.
    pub fn load(name: impl Into<String>, tree: &StoreTree) -> Result<Self, StateError> {
        Ok(WindowStore {
            inner: PagedStore::load_segmented(name, tree, start_of::<K>)?,
        })
    }

    /// The value of `key` in the window starting at `start`.
    pub fn get(&mut self, start: i64, key: &K) -> Result<Option<&V>, StateError> {
        self.inner.get(&(start, key.clone()))
    }

    /// True when `key` is present in any open window.
    pub fn contains_in_any(&mut self, key: &K) -> Result<bool, StateError> {
        self.contains_in_windows_but(&mut (0, key.clone()), None)
    }

    /// True when `probe.1` is present in an open window other than `except`.
    /// Looks it up with `probe` itself, aimed at each window in turn (no key
    /// is cloned per window); on success `probe.0` is back as it was.
    fn contains_in_windows_but(
        &mut self,
        probe: &mut (i64, K),
        except: Option<i64>,
    ) -> Result<bool, StateError> {
        let start = probe.0;
        let mut found = false;
        let mut next = self.inner.first_segment();
        while let Some(window) = next.filter(|_| !found) {
            if Some(window) != except {
                probe.0 = window;
                found = self.inner.get(probe)?.is_some();
            }
            next = self.inner.segment_after(window);
        }
        probe.0 = start;
        Ok(found)
    }

    /// Inserts `key` into window `start` if absent there; returns true when
    /// it was inserted.
    pub fn insert_if_absent(&mut self, start: i64, key: K, value: V) -> Result<bool, StateError> {
        self.inner.insert_if_absent(&(start, key), || value)
    }

    /// Inserts `key` into window `start` unless it is present in any open
    /// window (time-bounded dedup); returns true when it was inserted.
    pub fn insert_unless_in_any(
        &mut self,
        start: i64,
        key: K,
        value: V,
    ) -> Result<bool, StateError> {
        let mut key = (start, key);
        if self.contains_in_windows_but(&mut key, Some(start))? {
            return Ok(false);
        }
        self.inner.insert_if_absent(&key, || value)
    }

    /// Mutable access to `key` in window `start`, inserting `default()` first if absent.
    pub fn upsert_with(
        &mut self,
        start: i64,
        key: K,
        default: impl FnOnce() -> V,
    ) -> Result<&mut V, StateError> {
        Ok(self.inner.upsert_with(&(start, key), default)?.0)
    }

    /// Removes `key` from window `start`; true when it was there.
    pub fn remove(&mut self, start: i64, key: &K) -> Result<bool, StateError> {
        Ok(self.inner.remove(&(start, key.clone()))?.is_some())
    }

    /// Start of the oldest open window.
    pub fn first_start(&self) -> Option<i64> {
        self.inner.first_segment()
    }

    /// Removes and returns the oldest window if it starts before `before`,
    /// with its entries sorted by key.
    pub fn pop_before(&mut self, before: i64) -> Result<Option<ClosedWindow<K, V>>, StateError> {
        let Some(start) = self.first_start().filter(|s| *s < before) else {
            return Ok(None);
        };
        let entries = self.inner.take_first_segment()?;
        Ok(Some((
            start,
            entries.into_iter().map(|((_, k), v)| (k, v)).collect(),
        )))
    }

    /// Removes the entries at the start of the oldest window for which
    /// `take` holds (it must hold for a prefix of the window's keys, in
    /// order), returning them in key order; the rest of the window stays.
    pub fn take_first_while(
        &mut self,
        take: impl Fn(&K) -> bool,
    ) -> Result<Vec<(K, V)>, StateError> {
        let entries = self.inner.take_first_segment_while(|(_, k)| take(k))?;
        Ok(entries.into_iter().map(|((_, k), v)| (k, v)).collect())
    }

    /// Removes the oldest window if it starts before `before`, without
    /// reading it; returns its start.
    pub fn drop_before(&mut self, before: i64) -> Option<i64> {
        let start = self.first_start().filter(|s| *s < before)?;
        self.inner.drop_first_segment();
        Some(start)
    }

    /// Number of entries in every open window (reads every page: for tools).
    pub fn entry_count(&mut self) -> Result<usize, StateError> {
        self.inner.count()
    }

    /// Starts of the open windows, ascending.
    pub fn window_starts(&self) -> Vec<i64> {
        self.inner.segments().collect()
    }

    /// Number of open windows.
    pub fn window_count(&self) -> usize {
        self.inner.segment_count()
    }
}

impl<K, V> Store for WindowStore<K, V>
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
