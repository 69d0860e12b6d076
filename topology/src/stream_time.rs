//! Stream time of a task, with hold-back while reading a snapshot, and a
//! queue of deadlines punctuated on stream time.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Stream time: the greatest timestamp among the records a task applied.
///
/// Snapshot records (read in storage order, not time order) do not move it:
/// their greatest timestamp is held back until the next non-snapshot record is
/// applied, which first [releases](StreamTime::release) it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamTime {
    current: Option<i64>,
    held_back: Option<i64>,
    frozen: bool,
}

impl StreamTime {
    /// Current stream time (`None` before the first applied record).
    pub fn get(&self) -> Option<i64> {
        self.current
    }

    /// True while snapshot records are being read.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// A snapshot record with timestamp `ts` (if any) was applied: freeze and hold it back.
    pub fn hold(&mut self, ts: Option<i64>) {
        self.frozen = true;
        if let Some(ts) = ts {
            self.held_back = Some(self.held_back.map_or(ts, |h| h.max(ts)));
        }
    }

    /// Ends a freeze: advances to the held-back time. Returns true when the
    /// task was frozen (the caller then punctuates before handling the record).
    pub fn release(&mut self) -> bool {
        if !self.frozen {
            return false;
        }
        self.frozen = false;
        if let Some(h) = self.held_back.take() {
            self.advance(h);
        }
        true
    }

    /// Advances to `ts` if it is later (stream time never goes back).
    pub fn advance(&mut self, ts: i64) {
        self.current = Some(self.current.map_or(ts, |c| c.max(ts)));
    }
}

/// Deadlines ordered by time, each with a key: punctuation pops the due ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadlines<K: Ord> {
    queue: BTreeSet<(i64, K)>,
}

impl<K: Ord> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines {
            queue: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone> Deadlines<K> {
    /// Schedules `key` at `due`.
    pub fn schedule(&mut self, due: i64, key: K) {
        self.queue.insert((due, key));
    }

    /// Cancels a scheduled deadline.
    pub fn cancel(&mut self, due: i64, key: &K) -> bool {
        self.queue.remove(&(due, key.clone()))
    }

    /// Pops the earliest deadline with `due <= now`.
    pub fn pop_due(&mut self, now: i64) -> Option<(i64, K)> {
        let first = self.queue.first()?;
        if first.0 <= now {
            self.queue.pop_first()
        } else {
            None
        }
    }

    /// Pops the earliest deadline regardless of time (end of input).
    pub fn pop_first(&mut self) -> Option<(i64, K)> {
        self.queue.pop_first()
    }

    /// Number of scheduled deadlines.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_holds_back_until_release() {
        let mut st = StreamTime::default();
        st.hold(Some(50));
        st.hold(Some(30));
        assert_eq!(st.get(), None);
        assert!(st.release());
        assert_eq!(st.get(), Some(50));
        assert!(!st.release());
        st.advance(40);
        assert_eq!(st.get(), Some(50));
        st.advance(60);
        assert_eq!(st.get(), Some(60));
    }

    #[test]
    fn deadlines_pop_in_order() {
        let mut d = Deadlines::default();
        d.schedule(10, "b");
        d.schedule(10, "a");
        d.schedule(5, "c");
        assert_eq!(d.pop_due(9), Some((5, "c")));
        assert_eq!(d.pop_due(9), None);
        assert_eq!(d.pop_due(10), Some((10, "a")));
        assert!(d.cancel(10, &"b"));
        assert!(d.is_empty());
    }
}
