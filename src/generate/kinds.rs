//! The plain data of the generator: kinds of records and rows, sessions,
//! and the variant naming scheme. No behaviour beyond naming.

/// A snapshot row, held until the snapshot is complete (heap order).
pub(super) struct SnapRow {
    pub(super) outbox_id: u64,
    /// The `after` row without `processed_at` and the closing brace.
    pub(super) after: Vec<u8>,
    pub(super) assignment: bool,
}

/// How `aggregate_id` is written.
#[derive(Clone, Copy)]
pub(super) enum AggId {
    Assignment(u32),
    Event(u64),
}

/// Debezium operation of a record.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Create,
    Read,
    Update,
    Delete,
}

/// The application event types.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum EventType {
    Exposure,
    PageView,
    Click,
    Conversion,
}

impl EventType {
    pub(super) fn name(self) -> &'static str {
        match self {
            EventType::Exposure => "exposure",
            EventType::PageView => "page_view",
            EventType::Click => "click",
            EventType::Conversion => "conversion",
        }
    }
}

/// How a malformed event payload is broken (if at all).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Malformed {
    None,
    MissingUserId,
    BadTimestamp,
    PayloadNotJson,
}

/// Which assignment outbox row.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum AssignKind {
    Created,
    Updated,
    Deleted,
}

impl AssignKind {
    pub(super) fn event_type(self) -> &'static [u8] {
        match self {
            AssignKind::Created => b"ASSIGNMENT_CREATED",
            AssignKind::Updated => b"ASSIGNMENT_UPDATED",
            AssignKind::Deleted => b"ASSIGNMENT_DELETED",
        }
    }
}

/// What precedes a session's exposure.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Pre {
    None,
    Create,
    CreateAfterFirst,
    Update,
}

/// Where a session is in its sequence of records.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    Pre,
    Exposure,
    LateCreate,
    PageViews,
    Click,
    Conversion,
    Delete,
    Done,
}

/// One (experiment, user) session in flight.
#[derive(Clone, Copy)]
pub(super) struct Session {
    pub(super) user: u32,
    pub(super) exp: u32,
    pub(super) pair: usize,
    pub(super) variant: u8,
    /// The client's claimed variant is sent (else `null`).
    pub(super) claim: bool,
    pub(super) assigned_user: bool,
    pub(super) pre: Pre,
    pub(super) stage: Stage,
    pub(super) page_views: u32,
    pub(super) click: bool,
    pub(super) convert: bool,
    pub(super) delete: bool,
    /// Event timestamps never go below this (the assignment in force).
    pub(super) floor: i64,
    pub(super) no: u64,
    /// Timestamp of the exposure (for a later assignment).
    pub(super) first_ts: i64,
}

/// Variant key of variant index `k`.
pub fn variant_key(k: u32) -> String {
    match k {
        0 => "control".to_string(),
        1 => "treatment".to_string(),
        _ => format!("variant_{}", k + 1),
    }
}

/// Variant id of variant index `k` of experiment `experiment_id`.
pub fn variant_id(experiment_id: u32, k: u32) -> u32 {
    experiment_id * 100 + k + 1
}
