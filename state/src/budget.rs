//! The memory budget of one instance's state cache, shared by every store
//! of every task (`[state] cache_bytes`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes of decoded pages held in memory, against a limit. Stores add what
/// they load and subtract what they evict; when the total exceeds the limit
/// a store evicts its own least recently used clean pages. Dirty pages
/// cannot be evicted before they are committed: when they fill their share
/// of the budget, [`Budget::wants_commit`] asks the driver to commit early.
///
/// A commit may land after processing has gone on (a driver that commits
/// in the background): pages whose changes it took stay resident until it
/// has landed, so they are never read back from sled before their changes
/// are there. Commits are numbered as they are opened and land in that order.
#[derive(Clone, Debug)]
pub struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    used: AtomicUsize,
    dirty: AtomicUsize,
    /// Number of the newest commit opened (its changes being taken).
    opened: AtomicU64,
    /// Number of the newest commit landed (durable in sled).
    landed: AtomicU64,
}

/// Share of the budget dirty pages may fill before a commit is asked for.
const DIRTY_SHARE: f64 = 0.5;

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Budget {
            inner: Arc::new(Inner {
                limit: limit.max(1),
                used: AtomicUsize::new(0),
                dirty: AtomicUsize::new(0),
                opened: AtomicU64::new(0),
                landed: AtomicU64::new(0),
            }),
        }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Bytes in use.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// Bytes of dirty (uncommitted) pages.
    pub fn dirty(&self) -> usize {
        self.inner.dirty.load(Ordering::Relaxed)
    }

    /// True when the cache holds more than its limit.
    pub fn over(&self) -> bool {
        self.used() > self.inner.limit
    }

    /// True when dirty pages fill their share: commit to make them evictable.
    pub fn wants_commit(&self) -> bool {
        self.dirty() as f64 > self.inner.limit as f64 * DIRTY_SHARE
    }

    /// Opens a commit: returns its number, which the pages whose changes it
    /// takes are pinned with.
    pub(crate) fn open_commit(&self) -> u64 {
        self.inner.opened.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The newest commit opened: changes taken now belong to it (or to an
    /// earlier one that lands with it).
    pub(crate) fn newest_commit(&self) -> u64 {
        self.inner.opened.load(Ordering::Acquire)
    }

    /// Commit `number` (and every earlier one) has landed.
    pub(crate) fn commit_landed(&self, number: u64) {
        self.inner.landed.fetch_max(number, Ordering::AcqRel);
    }

    /// True when the changes a page gave to commit `pinned` are in sled, so
    /// it may be dropped and read back.
    pub(crate) fn has_landed(&self, pinned: u64) -> bool {
        self.inner.landed.load(Ordering::Acquire) >= pinned
    }

    pub(crate) fn add(&self, used: isize, dirty: isize) {
        adjust(&self.inner.used, used);
        adjust(&self.inner.dirty, dirty);
    }
}

fn adjust(counter: &AtomicUsize, delta: isize) {
    if delta >= 0 {
        counter.fetch_add(delta as usize, Ordering::Relaxed);
    } else {
        let d = delta.unsigned_abs();
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(d))
        });
    }
}
