//! [`GenerateStats`]: what the generator wrote, by kind and by variant.

use serde::{Deserialize, Serialize};

/// Exposures and conversions written for one variant index (all experiments).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantStats {
    /// Variant key (`control`, `treatment`, `variant_3`, …).
    pub variant_key: String,
    /// Exposure events of sessions in this variant.
    pub exposures: u64,
    /// Conversion events of sessions in this variant.
    pub conversions: u64,
}

/// What [`generate`](super::generate) wrote, by kind. `records` = lines written =
/// `assignments_created + assignments_updated + assignments_deleted + events
/// + duplicates + redelivered + outbox_updates + outbox_deletes + tombstones
/// + malformed()`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateStats {
    /// Lines written.
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Records read by the snapshot (`op: r`), included in the kinds below.
    pub snapshot: u64,
    /// `ASSIGNMENT_CREATED` outbox rows.
    pub assignments_created: u64,
    /// `ASSIGNMENT_UPDATED` outbox rows (re-assignments).
    pub assignments_updated: u64,
    /// `ASSIGNMENT_DELETED` outbox rows.
    pub assignments_deleted: u64,
    /// Well-formed `EVENT_CREATED` outbox rows, first copies only.
    pub events: u64,
    /// … of which `exposure`.
    pub exposures: u64,
    /// … of which `page_view`.
    pub page_views: u64,
    /// … of which `click`.
    pub clicks: u64,
    /// … of which `conversion` (all carry a `value`).
    pub conversions: u64,
    /// Events of users that never get an assignment.
    pub events_unassigned_user: u64,
    /// Events written before their (later) assignment.
    pub events_before_assignment: u64,
    /// Events timestamped hours in the past (late).
    pub events_late: u64,
    /// Duplicated outbox rows (an earlier event's payload, new outbox id).
    pub duplicates: u64,
    /// Records re-sent verbatim by simulated connector restarts.
    pub redelivered: u64,
    /// Connector restarts simulated.
    pub restarts: u64,
    /// Outbox `processed_at` updates (`op: u`).
    pub outbox_updates: u64,
    /// Outbox deletes (`op: d`).
    pub outbox_deletes: u64,
    /// Tombstones (null value), one after each delete.
    pub tombstones: u64,
    /// Lines that are not JSON.
    pub malformed_invalid_json: u64,
    /// Events whose payload lacks `user_id`.
    pub malformed_missing_user_id: u64,
    /// Events whose `timestamp` cannot be parsed.
    pub malformed_bad_timestamp: u64,
    /// Outbox rows whose payload string is not JSON.
    pub malformed_payload_not_json: u64,
    /// Per variant index: exposures and conversions of sessions in it.
    pub per_variant: Vec<VariantStats>,
}

impl GenerateStats {
    /// All malformed records.
    pub fn malformed(&self) -> u64 {
        self.malformed_invalid_json
            + self.malformed_missing_user_id
            + self.malformed_bad_timestamp
            + self.malformed_payload_not_json
    }
}
