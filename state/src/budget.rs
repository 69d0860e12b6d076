//! The memory budget of one instance's state cache, shared by every store
//! of every task (`[state] cache_bytes`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes of decoded pages held in memory, against a limit. Stores add what
/// they load and subtract what they evict; when the total exceeds the limit
/// a store evicts its own least recently used clean pages. Dirty pages
/// cannot be evicted before they are committed: when they fill their share
/// of the budget, [`Budget::wants_commit`] asks the driver to commit early.
#[derive(Clone, Debug)]
pub struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    used: AtomicUsize,
    dirty: AtomicUsize,
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
