//! Offsets a task has applied, per origin (topic, partition).

use serde::{Deserialize, Serialize};

/// The last applied offset per origin partition. A record at or below it is a
/// re-delivery (a replay after a crash, or a producer retry into a
/// repartition topic) and must be dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedOffsets {
    /// (topic, partition, last applied offset); few entries, scanned linearly.
    last: Vec<(String, i32, i64)>,
}

impl AppliedOffsets {
    fn find(&self, topic: &str, partition: i32) -> Option<usize> {
        self.last
            .iter()
            .position(|(t, p, _)| *p == partition && t == topic)
    }

    /// True when `offset` of (topic, partition) was already applied.
    pub fn is_applied(&self, topic: &str, partition: i32, offset: i64) -> bool {
        self.find(topic, partition)
            .is_some_and(|i| offset <= self.last[i].2)
    }

    /// Records `offset` as applied.
    pub fn mark(&mut self, topic: &str, partition: i32, offset: i64) {
        match self.find(topic, partition) {
            Some(i) => self.last[i].2 = self.last[i].2.max(offset),
            None => self.last.push((topic.to_string(), partition, offset)),
        }
    }

    /// The last applied offset of (topic, partition).
    pub fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.find(topic, partition).map(|i| self.last[i].2)
    }

    /// All (topic, partition, offset) entries.
    pub fn iter(&self) -> impl Iterator<Item = &(String, i32, i64)> {
        self.last.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_redeliveries() {
        let mut a = AppliedOffsets::default();
        assert!(!a.is_applied("t", 0, 0));
        a.mark("t", 0, 5);
        assert!(a.is_applied("t", 0, 5));
        assert!(a.is_applied("t", 0, 2));
        assert!(!a.is_applied("t", 0, 6));
        assert!(!a.is_applied("t", 1, 0));
        assert!(!a.is_applied("u", 0, 0));
        a.mark("t", 0, 3);
        assert_eq!(a.get("t", 0), Some(5));
    }
}
