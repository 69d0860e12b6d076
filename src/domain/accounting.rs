//! The accounting summary of a run (SPEC 2.5).

use crate::domain::SkipReason;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

/// `records_in = events_emitted + assignments_applied + skipped + dead_lettered`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Input records.
    pub records_in: u64,
    /// Event rows emitted.
    pub events_emitted: u64,
    /// Assignment creates, updates and deletes applied.
    pub assignments_applied: u64,
    /// Skips by reason, every reason present.
    #[serde(serialize_with = "ordered_skips")]
    pub skipped: [u64; 10],
    /// Dead letters.
    pub dead_lettered: u64,
}

fn ordered_skips<S: Serializer>(skipped: &[u64; 10], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(10))?;
    for r in SkipReason::ALL {
        m.serialize_entry(r.as_str(), &skipped[r.index()])?;
    }
    m.end()
}

impl Summary {
    /// Adds `n` skips of `reason`.
    pub fn add_skipped(&mut self, reason: SkipReason, n: u64) {
        self.skipped[reason.index()] += n;
    }

    /// Total skipped.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.iter().sum()
    }

    /// Records not yet accounted for (events still pending in Kafka mode).
    pub fn unaccounted(&self) -> i64 {
        self.records_in as i64
            - (self.events_emitted
                + self.assignments_applied
                + self.skipped_total()
                + self.dead_lettered) as i64
    }

    /// Skips as a name → count map.
    pub fn skipped_map(&self) -> BTreeMap<&'static str, u64> {
        SkipReason::ALL
            .iter()
            .map(|r| (r.as_str(), self.skipped[r.index()]))
            .collect()
    }

    /// The summary as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A human-readable table for the end of `run`.
    pub fn render(&self) -> String {
        let mut s = format!(
            "records_in            {}\nevents_emitted        {}\nassignments_applied   {}\nskipped               {}\n",
            self.records_in,
            self.events_emitted,
            self.assignments_applied,
            self.skipped_total()
        );
        for r in SkipReason::ALL {
            s += &format!("  {:<24}{}\n", r.as_str(), self.skipped[r.index()]);
        }
        s += &format!("dead_lettered         {}\n", self.dead_lettered);
        s
    }
}
