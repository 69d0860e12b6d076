//! Watermark alignment (as Flink has it): which input partitions to hold
//! back so that none is read far ahead, in event time, of the slowest one
//! that still has unread records.
//!
//! A task's watermark is the minimum of its input partitions' stream times
//! ([`crate::watermark`]), so an input partition read ahead of the others
//! only makes its events wait for the watermark, in state, at a cost. The
//! outputs do not depend on the pace; only that cost does. This policy never
//! holds back the slowest partition, so reading always progresses.

use std::collections::BTreeMap;

/// What the reader should change: partitions to hold back and to release.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Steps<K> {
    /// Read ahead of the slowest partition by more than the drift.
    pub hold: Vec<K>,
    /// Back within half the drift of the slowest.
    pub release: Vec<K>,
}

#[derive(Debug)]
struct Source {
    /// Greatest event time read from it.
    time: i64,
    held: bool,
}

/// The alignment of the input partitions one reader holds, keyed by `K`.
#[derive(Debug)]
pub struct Alignment<K> {
    drift: i64,
    sources: BTreeMap<K, Source>,
}

impl<K: Ord + Clone> Alignment<K> {
    /// Allows a partition at most `drift` (event time) ahead of the slowest.
    pub fn new(drift: i64) -> Self {
        Alignment {
            drift,
            sources: BTreeMap::new(),
        }
    }

    /// A record of `source` with event time `time` was read.
    pub fn observe(&mut self, source: &K, time: i64) {
        match self.sources.get_mut(source) {
            Some(s) => s.time = s.time.max(time),
            None => {
                self.sources
                    .insert(source.clone(), Source { time, held: false });
            }
        }
    }

    /// True when no source is known.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Forgets every source that `held` rejects (partitions given up in a
    /// rebalance); returns those of them that were held back.
    pub fn retain(&mut self, held: impl Fn(&K) -> bool) -> Vec<K> {
        let gone: Vec<K> = self.sources.keys().filter(|k| !held(k)).cloned().collect();
        gone.into_iter()
            .filter(|k| self.sources.remove(k).is_some_and(|s| s.held))
            .collect()
    }

    /// The steps to take now. `unread` tells whether a source still has
    /// records to read: the floor is the slowest of those and of the held
    /// ones (a source with nothing left is not waited for; one not read from
    /// yet is not known here and holds nothing back).
    pub fn decide(&mut self, unread: impl Fn(&K) -> bool) -> Steps<K> {
        let floor = self
            .sources
            .iter()
            .filter(|(k, s)| s.held || unread(k))
            .map(|(_, s)| s.time)
            .min();
        let mut steps = Steps {
            hold: Vec::new(),
            release: Vec::new(),
        };
        for (k, s) in &mut self.sources {
            let ahead = floor.map_or(0, |f| s.time.saturating_sub(f));
            if !s.held && ahead > self.drift {
                s.held = true;
                steps.hold.push(k.clone());
            } else if s.held && ahead <= self.drift / 2 {
                s.held = false;
                steps.release.push(k.clone());
            }
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_read_ahead_is_held_until_the_slowest_catches_up() {
        let mut a = Alignment::new(100);
        a.observe(&0, 1_000);
        a.observe(&1, 1_050);
        a.observe(&2, 1_101);
        let all = |_: &i32| true;
        assert_eq!(
            a.decide(all),
            Steps {
                hold: vec![2],
                release: vec![]
            }
        );
        assert_eq!(a.decide(all), Steps::default(), "nothing changed");
        a.observe(&0, 1_040);
        assert_eq!(
            a.decide(all),
            Steps::default(),
            "61 ahead: above half the drift"
        );
        a.observe(&0, 1_060);
        assert_eq!(
            a.decide(all),
            Steps::default(),
            "1 at 1,050 is the slowest now"
        );
        a.observe(&1, 1_070);
        assert_eq!(
            a.decide(all),
            Steps {
                hold: vec![],
                release: vec![2]
            }
        );
    }

    #[test]
    fn the_slowest_partition_is_never_held_and_read_ones_do_not_hold_back() {
        let mut a = Alignment::new(100);
        a.observe(&0, 0);
        a.observe(&1, 5_000);
        a.observe(&2, 5_001);
        // Partition 0 has nothing left to read: the others are not held.
        let unread = |k: &i32| *k != 0;
        assert_eq!(a.decide(unread), Steps::default());
        // With records left in 0, both others are held, never 0.
        let all = |_: &i32| true;
        assert_eq!(
            a.decide(all),
            Steps {
                hold: vec![1, 2],
                release: vec![]
            }
        );
        // 0 runs dry: the held ones still count as waiting, so the floor
        // is theirs and both are released.
        assert_eq!(
            a.decide(unread),
            Steps {
                hold: vec![],
                release: vec![1, 2]
            }
        );
    }

    #[test]
    fn a_source_given_up_is_forgotten_and_reported_if_held() {
        let mut a = Alignment::new(10);
        a.observe(&0, 0);
        a.observe(&1, 100);
        a.decide(|_| true);
        assert_eq!(a.retain(|k| *k == 0), vec![1]);
        assert_eq!(a.decide(|_| true), Steps::default());
    }
}
