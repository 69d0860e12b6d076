//! Output rows of the three datasets (SPEC 6).

use super::records::{Micros, Origin, Text};
use serde::{Deserialize, Serialize};

/// Why an event is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvalidReason {
    /// No assignment version existed by the grace deadline.
    Unassigned,
    /// Every version was assigned after the event.
    BeforeAssignment,
}

impl InvalidReason {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidReason::Unassigned => "unassigned",
            InvalidReason::BeforeAssignment => "before_assignment",
        }
    }
}

/// One row of `events` / `events_processed` (SPEC 6.1). Derived flags
/// (`event_date`, `event_hour`, `is_exposure`, …) are computed by the sinks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    /// The normalised event.
    pub event: super::records::Event,
    /// Joined variant (from the assignment), if any.
    pub variant_id: Option<u32>,
    /// Joined variant key: inline up to 24 bytes, so no allocation and no
    /// reference count shared by the thread that joins and the one that
    /// writes the row (a longer key is copied to the heap per row).
    pub variant_key: Option<Text>,
    /// `assigned_at` of the joined version.
    pub assigned_at: Option<Micros>,
    /// SPEC 4 validity.
    pub is_valid: bool,
    /// Why not valid.
    pub invalid_reason: Option<InvalidReason>,
    /// Arrived after its hourly window closed.
    pub is_late: bool,
    /// Origin record.
    pub origin: Origin,
}

impl EventRow {
    /// True when the client claimed a variant and it differs from the assignment's.
    pub fn variant_mismatch(&self) -> bool {
        matches!((self.event.claimed_variant_id, self.variant_id), (Some(c), Some(v)) if c != v)
    }
}

/// Window granularity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WindowKind {
    /// One hour, UTC.
    Hourly,
    /// One UTC day.
    Daily,
}

impl WindowKind {
    /// Window length in microseconds.
    pub fn len_micros(self) -> Micros {
        match self {
            WindowKind::Hourly => crate::time::HOUR,
            WindowKind::Daily => crate::time::DAY,
        }
    }

    /// Start of the window containing `ts`.
    pub fn start_of(self, ts: Micros) -> Micros {
        ts.div_euclid(self.len_micros()) * self.len_micros()
    }
}

/// One row of `agg_hourly` / `agg_daily` (SPEC 6.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggRow {
    /// Hourly or daily.
    pub kind: WindowKind,
    /// Inclusive start.
    pub window_start: Micros,
    /// Exclusive end.
    pub window_end: Micros,
    /// Experiment.
    pub experiment_id: u32,
    /// Variant.
    pub variant_id: u32,
    /// Variant key (null when the assignment had none).
    pub variant_key: Option<String>,
    /// Event type.
    pub event_type: String,
    /// Valid non-late events.
    pub events: u64,
    /// Exact distinct users among them.
    pub users: u64,
    /// How many had a value.
    pub value_count: u64,
    /// Σ value.
    pub value_sum: f64,
    /// Σ value².
    pub value_sum_sq: f64,
    /// Task partition that computed the row.
    pub partition: i32,
}

/// One row of `user_daily` / `user_journeys` (SPEC 6.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserDailyRow {
    /// UTC day start (the `date` partition).
    pub date: Micros,
    /// Experiment.
    pub experiment_id: u32,
    /// Variant.
    pub variant_id: u32,
    /// User.
    pub user_id: String,
    /// Variant key of the first event in journey order.
    pub variant_key: Option<String>,
    /// Valid non-late events.
    pub events: u64,
    /// Event types in timestamp order (ties by event_id as text).
    pub journey: Vec<String>,
    /// Σ value (0.0 when none).
    pub value_sum: f64,
    /// Distinct non-null session ids.
    pub sessions: u64,
    /// Any `exposure`.
    pub exposed: bool,
    /// Any `conversion`.
    pub converted: bool,
    /// First event time.
    pub first_ts: Micros,
    /// Last event time.
    pub last_ts: Micros,
    /// Task partition.
    pub partition: i32,
}

/// A dead-lettered input record, ready for the DLQ sink (one JSON line in file mode).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterRow {
    /// The complete DLQ JSON line (SPEC 2.5), without trailing newline.
    pub line: String,
}

/// Everything a task or the router emits, in emission order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutputBatch {
    /// Enriched events.
    pub events: Vec<EventRow>,
    /// Closed hourly and daily windows.
    pub aggregates: Vec<AggRow>,
    /// Closed per-user daily rollups.
    pub user_daily: Vec<UserDailyRow>,
    /// Dead letters.
    pub dead_letters: Vec<DeadLetterRow>,
}

impl OutputBatch {
    /// Empties a landed batch for another segment of about the same size
    /// (see [`clear_keeping_used_room`]): without re-growing it, and
    /// without keeping a large segment's memory for small ones.
    pub fn recycle(&mut self) {
        clear_keeping_used_room(&mut self.events);
        clear_keeping_used_room(&mut self.aggregates);
        clear_keeping_used_room(&mut self.user_daily);
        clear_keeping_used_room(&mut self.dead_letters);
    }

    /// True when nothing was emitted.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.aggregates.is_empty()
            && self.user_daily.is_empty()
            && self.dead_letters.is_empty()
    }

    /// Appends another batch.
    pub fn append(&mut self, other: &mut OutputBatch) {
        self.events.append(&mut other.events);
        self.aggregates.append(&mut other.aggregates);
        self.user_daily.append(&mut other.user_daily);
        self.dead_letters.append(&mut other.dead_letters);
    }
}

/// Room, in rows, that a recycled vector always keeps.
const RECYCLE_MIN: usize = 64;

/// Empties `v`. It keeps its room when what it held (or [`RECYCLE_MIN`]
/// rows, if more) filled at least half of it; otherwise it is replaced by a
/// vector with room for just that.
fn clear_keeping_used_room<T>(v: &mut Vec<T>) {
    let used = v.len().max(RECYCLE_MIN);
    if v.capacity() > 2 * used {
        *v = Vec::with_capacity(used);
    } else {
        v.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_letters(n: usize) -> Vec<DeadLetterRow> {
        (0..n)
            .map(|i| DeadLetterRow {
                line: i.to_string(),
            })
            .collect()
    }

    #[test]
    fn a_recycled_batch_is_empty_and_keeps_the_room_its_segment_used() {
        let recycled_room = |room: usize, rows: usize| {
            let mut batch = OutputBatch {
                dead_letters: Vec::with_capacity(room),
                ..Default::default()
            };
            batch.dead_letters.extend(dead_letters(rows));
            let room = batch.dead_letters.capacity();
            batch.recycle();
            assert!(batch.is_empty());
            (room, batch.dead_letters.capacity())
        };
        // A well-used vector keeps its room.
        let (before, after) = recycled_room(1_000, 1_000);
        assert_eq!(after, before);
        // A small segment after a large one: the large one's room goes.
        let (_, after) = recycled_room(100_000, 1_000);
        assert!((1_000..100_000).contains(&after), "{after}");
        // Small vectors are kept whole, and room for a few rows stays.
        assert_eq!(recycled_room(100, 0), (100, 100));
        let (_, after) = recycled_room(10_000, 0);
        assert!((RECYCLE_MIN..10_000).contains(&after), "{after}");
    }
}
