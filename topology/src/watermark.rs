//! Event time across input partitions (Flink-style watermarks).
//!
//! A task that reads a repartition topic receives the records of every input
//! partition interleaved at whatever pace each partition is fetched. Its
//! stream time must therefore not follow arrival order: it is the
//! **watermark**, the minimum of the input partitions' own stream times. The
//! router of each input partition sends its stream time along (on every
//! record it re-keys, and as a watermark record at least every commit and
//! when the partition has no unread records), so the watermark is part of the
//! replayable log. [`Watermarks`] is what a task knows of those times.
//!
//! Rules:
//! - a partition never heard of holds the watermark back (it may still have
//!   everything to say);
//! - an *idle* partition (no unread records) does not hold it back; it counts
//!   again with its next record;
//! - with every known partition idle, the watermark is the greatest of their
//!   times (everything there was has been read);
//! - the watermark never goes back, and updates from a source are applied in
//!   source-position order, so re-delivered (older) updates change nothing.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One input partition's stream time as its router last reported it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceTime {
    /// The input position the report was made at (the next offset to read):
    /// later positions supersede earlier ones.
    pub position: i64,
    /// The partition's stream time (`None` before its first timestamp, or
    /// while a snapshot holds it back from the start).
    pub time: Option<i64>,
    /// True when the partition had no unread records.
    pub idle: bool,
}

/// An input partition: (topic, partition).
pub type Source = (String, i32);

/// The watermark of a task reading the records of `sources` input partitions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermarks {
    /// By topic, then partition: looked up twice a record without building
    /// a key. Serialised as one map by (topic, partition), as it always was.
    #[serde(with = "by_source")]
    known: BTreeMap<String, BTreeMap<i32, SourceTime>>,
    current: Option<i64>,
}

/// Serialises the nested map exactly as a `BTreeMap<Source, SourceTime>`
/// (same entries, same order), so checkpoints are unchanged.
mod by_source {
    use super::{Source, SourceTime};
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;

    type Nested = BTreeMap<String, BTreeMap<i32, SourceTime>>;

    pub fn serialize<S: Serializer>(known: &Nested, s: S) -> Result<S::Ok, S::Error> {
        // bincode needs the length up front.
        let mut map = s.serialize_map(Some(known.values().map(BTreeMap::len).sum()))?;
        for (t, ps) in known {
            for (p, st) in ps {
                map.serialize_entry(&(t, p), st)?;
            }
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Nested, D::Error> {
        let flat = BTreeMap::<Source, SourceTime>::deserialize(d)?;
        let mut known = Nested::new();
        for ((t, p), st) in flat {
            known.entry(t).or_default().insert(p, st);
        }
        Ok(known)
    }
}

impl Watermarks {
    /// The current watermark (`None` until every input partition has reported).
    pub fn get(&self) -> Option<i64> {
        self.current
    }

    /// What is known of `source`.
    pub fn source(&self, topic: &str, partition: i32) -> Option<&SourceTime> {
        self.known.get(topic)?.get(&partition)
    }

    /// Applies a report of `source`'s time and recomputes the watermark over
    /// `inputs` (every input partition: topic and partition count). Returns
    /// the new watermark when it advanced.
    pub fn observe(
        &mut self,
        inputs: &[(String, i32)],
        topic: &str,
        partition: i32,
        report: SourceTime,
    ) -> Option<i64> {
        match self
            .known
            .get_mut(topic)
            .and_then(|ps| ps.get_mut(&partition))
        {
            Some(known) if known.position > report.position => return None,
            Some(known) => {
                if *known == report {
                    return None;
                }
                *known = report;
            }
            None => {
                self.known
                    .entry(topic.to_string())
                    .or_default()
                    .insert(partition, report);
            }
        }
        let candidate = self.compute(inputs)?;
        if self.current.is_some_and(|c| c >= candidate) {
            return None;
        }
        self.current = Some(candidate);
        self.current
    }

    /// The minimum over active partitions, else the maximum over idle ones;
    /// `None` while a partition is unknown or active without a time.
    fn compute(&self, inputs: &[(String, i32)]) -> Option<i64> {
        let mut active_min: Option<i64> = None;
        let mut any_active = false;
        let mut idle_max: Option<i64> = None;
        for (topic, count) in inputs {
            for partition in 0..*count {
                let st = self.source(topic, partition)?;
                if st.idle {
                    idle_max = idle_max.max(st.time);
                } else {
                    let t = st.time?;
                    any_active = true;
                    active_min = Some(active_min.map_or(t, |m| m.min(t)));
                }
            }
        }
        if any_active {
            active_min
        } else {
            idle_max
        }
    }

    /// The input partition holding the watermark back: the active one with
    /// the smallest time, or one not heard of yet (for operators).
    pub fn held_back_by(&self, inputs: &[(String, i32)]) -> Option<Source> {
        let mut best: Option<(Option<i64>, Source)> = None;
        for (topic, count) in inputs {
            for partition in 0..*count {
                let time = match self.source(topic, partition) {
                    None => None,
                    Some(st) if st.idle => continue,
                    Some(st) => st.time,
                };
                // Unknown (None) sorts first: it holds back hardest.
                if best.as_ref().is_none_or(|(t, _)| time < *t) {
                    best = Some((time, (topic.clone(), partition)));
                }
            }
        }
        best.map(|(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Vec<(String, i32)> {
        vec![("a".to_string(), 2), ("b".to_string(), 1)]
    }

    fn at(position: i64, time: i64) -> SourceTime {
        SourceTime {
            position,
            time: Some(time),
            idle: false,
        }
    }

    fn idle(position: i64, time: Option<i64>) -> SourceTime {
        SourceTime {
            position,
            time,
            idle: true,
        }
    }

    /// Checkpoints hold `Watermarks`: the nested map must encode exactly
    /// as the one map by (topic, partition) that earlier versions wrote.
    #[test]
    fn encodes_as_the_map_by_source_that_checkpoints_hold() {
        #[derive(Serialize)]
        struct Flat {
            known: BTreeMap<Source, SourceTime>,
            current: Option<i64>,
        }
        let (i, mut w) = (inputs(), Watermarks::default());
        w.observe(&i, "b", 0, at(3, 40));
        w.observe(&i, "a", 1, idle(0, None));
        w.observe(&i, "a", 0, at(5, 100));
        let flat = Flat {
            known: [
                (("a".to_string(), 0), at(5, 100)),
                (("a".to_string(), 1), idle(0, None)),
                (("b".to_string(), 0), at(3, 40)),
            ]
            .into(),
            current: w.get(),
        };
        let bytes = neonblue_state::encode(&w);
        assert_eq!(bytes, neonblue_state::encode(&flat));
        assert_eq!(neonblue_state::decode::<Watermarks>(&bytes).unwrap(), w);
    }

    #[test]
    fn the_minimum_over_every_partition_once_all_have_reported() {
        let (i, mut w) = (inputs(), Watermarks::default());
        assert_eq!(w.observe(&i, "a", 0, at(1, 100)), None);
        assert_eq!(w.observe(&i, "a", 1, at(1, 50)), None);
        assert_eq!(w.held_back_by(&i), Some(("b".to_string(), 0)));
        assert_eq!(w.observe(&i, "b", 0, at(1, 70)), Some(50));
        assert_eq!(w.held_back_by(&i), Some(("a".to_string(), 1)));
        assert_eq!(w.observe(&i, "a", 1, at(2, 90)), Some(70));
        assert_eq!(w.get(), Some(70));
    }

    #[test]
    fn idle_partitions_do_not_hold_back_and_count_again_with_records() {
        let (i, mut w) = (inputs(), Watermarks::default());
        w.observe(&i, "a", 0, at(5, 100));
        w.observe(&i, "a", 1, idle(0, None)); // empty partition
        assert_eq!(w.observe(&i, "b", 0, at(3, 40)), Some(40));
        assert_eq!(w.observe(&i, "b", 0, idle(3, Some(40))), Some(100));
        // a[1] gets a record with an old time: the watermark does not go back.
        assert_eq!(w.observe(&i, "a", 1, at(1, 10)), None);
        assert_eq!(w.get(), Some(100));
        assert_eq!(w.held_back_by(&i), Some(("a".to_string(), 1)));
    }

    #[test]
    fn all_idle_gives_the_greatest_time() {
        let (i, mut w) = (inputs(), Watermarks::default());
        w.observe(&i, "a", 0, idle(5, Some(100)));
        w.observe(&i, "a", 1, idle(0, None));
        assert_eq!(w.observe(&i, "b", 0, idle(9, Some(300))), Some(300));
    }

    #[test]
    fn an_active_partition_without_a_time_holds_back() {
        let (i, mut w) = (inputs(), Watermarks::default());
        w.observe(&i, "a", 0, at(5, 100));
        w.observe(&i, "b", 0, at(5, 100));
        // a[1] reads a snapshot: frozen, no time yet.
        let frozen = SourceTime {
            position: 3,
            time: None,
            idle: false,
        };
        assert_eq!(w.observe(&i, "a", 1, frozen), None);
        assert_eq!(w.get(), None);
    }

    #[test]
    fn older_reports_are_ignored() {
        let (i, mut w) = (inputs(), Watermarks::default());
        w.observe(&i, "a", 0, at(10, 100));
        w.observe(&i, "a", 1, at(10, 100));
        assert_eq!(w.observe(&i, "b", 0, idle(10, Some(100))), Some(100));
        // A re-delivered, older report of b[0] (active, earlier time) is ignored.
        assert_eq!(w.observe(&i, "b", 0, at(4, 20)), None);
        assert_eq!(w.source("b", 0), Some(&idle(10, Some(100))));
    }
}
