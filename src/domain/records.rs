//! Normalised domain records: what the parser produces and what travels
//! through the repartition topic to the join/window tasks.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub use crate::time::Micros;

/// Where an input record came from (topic, partition, offset).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// Source topic (the file's base name in file mode).
    pub topic: Arc<str>,
    /// Source partition.
    pub partition: i32,
    /// Source offset (0-based line index in file mode unless the line says otherwise).
    pub offset: i64,
}

/// A user-to-variant assignment version (create or update).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// Assignment id (integer ids are kept as their decimal text).
    pub id: String,
    /// Experiment the user is assigned in.
    pub experiment_id: u32,
    /// The user (integer ids are kept as their decimal text).
    pub user_id: String,
    /// Assigned variant.
    pub variant_id: u32,
    /// Human-readable variant key, when the source carries one.
    pub variant_key: Option<String>,
    /// When the assignment took effect; versions are ordered by it.
    pub assigned_at: Micros,
}

/// Removal of every version of a user's assignment in an experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssignmentDelete {
    /// Assignment id, when known (used to drop the id mapping).
    pub id: Option<String>,
    /// Experiment.
    pub experiment_id: u32,
    /// User.
    pub user_id: String,
}

/// A short text field of an event (user id, event type, session, page,
/// device, browser): kept inline up to 24 bytes, with no allocation;
/// serialised exactly like a `String`.
pub type Text = compact_str::CompactString;

/// A user event, normalised (SPEC 2.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Payload `id`, else the outbox `aggregate_id` / record key.
    pub event_id: String,
    /// Experiment.
    pub experiment_id: u32,
    /// User.
    pub user_id: Text,
    /// `exposure`, `page_view`, `click`, `conversion` or any other string.
    pub event_type: Text,
    /// Event time, UTC microseconds.
    pub timestamp: Micros,
    /// Optional session id (integers kept as text).
    pub session_id: Option<Text>,
    /// The variant the client claimed, if any (never decides validity).
    pub claimed_variant_id: Option<u32>,
    /// `properties.page` when it is a string.
    pub page: Option<Text>,
    /// `properties.device` when it is a string.
    pub device: Option<Text>,
    /// `properties.browser` when it is a string.
    pub browser: Option<Text>,
    /// `properties.value`: a JSON number or a string in JSON number syntax.
    pub value: Option<f64>,
    /// `properties.score`: a JSON integer or an integral float.
    pub score: Option<i64>,
    /// The properties object as compact JSON (`{}` when absent).
    pub properties: String,
}

/// A domain change after parsing, before re-keying.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// Upsert an assignment version.
    Assign(Assignment),
    /// Delete the whole assignment history of (experiment, user).
    Unassign(AssignmentDelete),
    /// A user event.
    Event(Event),
}

impl Change {
    /// The user this change belongs to (the re-keying key).
    pub fn user_id(&self) -> &str {
        match self {
            Change::Assign(a) => &a.user_id,
            Change::Unassign(d) => &d.user_id,
            Change::Event(e) => &e.user_id,
        }
    }

    /// The event time it moves its input's stream time to: an event's
    /// timestamp, an assignment's `assigned_at` (a delete has none).
    pub fn time(&self) -> Option<Micros> {
        match self {
            Change::Event(e) => Some(e.timestamp),
            Change::Assign(a) => Some(a.assigned_at),
            Change::Unassign(_) => None,
        }
    }
}

/// The compact record carried by the repartition topic: a change plus its origin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Routed {
    /// Where the input record came from (used to drop re-deliveries).
    pub origin: Origin,
    /// True for Debezium snapshot reads (`op = r`): they freeze stream time.
    pub snapshot: bool,
    /// When the change was captured (see [`Parsed::Change`]).
    pub captured: Option<Micros>,
    /// The change itself.
    pub change: Change,
}

/// Why a record was deliberately skipped (SPEC 2.5). Every reason is reported, zeros included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SkipReason {
    /// Null value (Kafka tombstone).
    Tombstone,
    /// Outbox row update (e.g. `processed_at`).
    OutboxUpdate,
    /// Outbox row delete.
    OutboxDelete,
    /// Table truncate (`op = t`).
    Truncate,
    /// Logical decoding message (`op = m`).
    Message,
    /// Aggregate type is a string but neither `assignment` nor `event`.
    UnknownAggregateType,
    /// Event type is a string but not one this processor knows.
    UnknownEventType,
    /// Event id already seen by the task.
    Duplicate,
    /// Table other than assignments/events in the `tables` layout.
    OtherTable,
    /// Delete of an event row in the `tables` layout.
    EventDelete,
}

impl SkipReason {
    /// Every reason, in report order.
    pub const ALL: [SkipReason; 10] = [
        SkipReason::Tombstone,
        SkipReason::OutboxUpdate,
        SkipReason::OutboxDelete,
        SkipReason::Truncate,
        SkipReason::Message,
        SkipReason::UnknownAggregateType,
        SkipReason::UnknownEventType,
        SkipReason::Duplicate,
        SkipReason::OtherTable,
        SkipReason::EventDelete,
    ];

    /// Stable snake_case name used in summaries and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Tombstone => "tombstone",
            SkipReason::OutboxUpdate => "outbox_update",
            SkipReason::OutboxDelete => "outbox_delete",
            SkipReason::Truncate => "truncate",
            SkipReason::Message => "message",
            SkipReason::UnknownAggregateType => "unknown_aggregate_type",
            SkipReason::UnknownEventType => "unknown_event_type",
            SkipReason::Duplicate => "duplicate",
            SkipReason::OtherTable => "other_table",
            SkipReason::EventDelete => "event_delete",
        }
    }

    /// Position in [`SkipReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A record that could not be understood: reason and stage are short stable snake_case words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// e.g. `invalid_json`, `missing_user_id`, `future_timestamp`.
    pub reason: String,
    /// e.g. `input`, `envelope`, `op`, `aggregate_type`, `event_type`, `payload`, `fields`.
    pub stage: &'static str,
}

impl DeadLetter {
    /// Builds a dead letter.
    pub fn new(stage: &'static str, reason: impl Into<String>) -> Self {
        DeadLetter {
            reason: reason.into(),
            stage,
        }
    }
}

/// A delete that carries only the assignment id (`tables` layout, key-only `before`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteById {
    /// The assignment id to resolve through the id → (experiment, user) mapping.
    pub id: String,
    /// When the delete was captured (see [`Parsed::Change`]'s `captured`).
    pub captured: Option<Micros>,
}

impl Parsed {
    /// Dates a change or delete that the envelope did not date (e.g. with
    /// the Kafka record's timestamp).
    pub fn date_if_undated(&mut self, captured: Option<Micros>) {
        match self {
            Parsed::Change { captured: c, .. }
            | Parsed::DeleteById(DeleteById { captured: c, .. }) => {
                *c = c.or(captured);
            }
            Parsed::Skip(_) | Parsed::Dead(_) => {}
        }
    }
}

/// What the parser concluded about one input record.
// One per record, moved once from the parser to its consumer: boxing the
// large variant would cost an allocation per record for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    /// A domain change; `snapshot` is true for `op = r`.
    Change {
        /// The change.
        change: Change,
        /// Snapshot read?
        snapshot: bool,
        /// When the change was captured from the database: the envelope's
        /// `ts_ms` (in Kafka mode, else the record's timestamp). It orders a
        /// user's changes that arrive through different topics (SPEC 5.1).
        captured: Option<Micros>,
    },
    /// An assignment delete that must be resolved through the id mapping.
    DeleteById(DeleteById),
    /// Deliberately skipped.
    Skip(SkipReason),
    /// Sent to the dead-letter queue.
    Dead(DeadLetter),
}
