//! [`GenerateOptions`]: the knobs of the synthetic stream, their defaults,
//! the clean preset and validation.

use super::time::parse_start;
use anyhow::bail;
use serde::{Deserialize, Serialize};

/// Knobs of the synthetic stream. Every field has a realistic small default
/// ([`Default`]); [`GenerateOptions::clean`] turns every "trouble" knob off.
/// Probabilities are in `[0, 1]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateOptions {
    /// RNG seed: same seed and options ⇒ byte-identical output.
    pub seed: u64,
    /// Total number of lines (records) to write, everything included
    /// (snapshot rows, updates, deletes, tombstones, malformed lines, copies).
    pub records: u64,
    /// Number of distinct users (`user_0000000` …, at least 7 digits).
    pub users: u32,
    /// Number of experiments (ids `1..=experiments`).
    pub experiments: u32,
    /// Variants per experiment (1..=127). Variant `k` of experiment `e` has
    /// id `e * 100 + k + 1` and key `control` (k = 0), `treatment` (k = 1),
    /// `variant_<k+1>` (k ≥ 2).
    pub variants: u32,
    /// Per-variant probability that a session (one exposure) ends in a
    /// conversion, by variant index; variants past the end use the last
    /// value. Default `[0.10, 0.12]`: a real 20 % relative uplift.
    pub conversion_rates: Vec<f64>,
    /// Mean number of `page_view` events per session (geometric with at
    /// least one; `0` for none).
    pub mean_page_views: f64,
    /// Probability that a session has a `click`.
    pub click_rate: f64,
    /// Smallest conversion `value`, in cents.
    pub value_min_cents: u32,
    /// Largest conversion `value`, in cents.
    pub value_max_cents: u32,
    /// Fraction of events whose `properties` is a string holding JSON
    /// (as rows written by another client) instead of an object.
    pub string_properties: f64,
    /// Business time of the first record: ISO-8601 (`2025-09-30T00:00:00Z`,
    /// `…+00:00`, optional fraction).
    pub start: String,
    /// Business time covered by the stream, in seconds (default 2 days).
    pub span_secs: u64,
    /// Sessions interleaved at any moment (bounded by users × experiments).
    pub active_sessions: u32,
    /// Out-of-order jitter: an event's timestamp is up to this many seconds
    /// before the moment it is written (never before its assignment). Kept
    /// below the 5-minute grace by default so reordering is harmless.
    pub jitter_secs: f64,
    /// Probability that a new assignment is written *after* the user's
    /// first event (exposure) of the session, with an `assigned_at` later
    /// than it: that event is `before_assignment`.
    pub before_assignment: f64,
    /// Fraction of users that never get an assignment: all their events are
    /// `unassigned` (a client claim of a variant is still sent, or null).
    pub unassigned_users: f64,
    /// Probability that a session of an already assigned user starts with a
    /// re-assignment (`ASSIGNMENT_UPDATED`, another variant, later
    /// `assigned_at`, source `rebalance`).
    pub reassignments: f64,
    /// Probability that a session ends with `ASSIGNMENT_DELETED` of its
    /// assignment (the user's next session is assigned anew).
    pub deletes: f64,
    /// Probability that an event is late: its timestamp is
    /// `late_min_secs..late_max_secs` before the moment it is written, so its
    /// hourly window closed long ago.
    pub late_events: f64,
    /// Lower bound of a late event's lag, seconds.
    pub late_min_secs: u64,
    /// Upper bound of a late event's lag, seconds.
    pub late_max_secs: u64,
    /// Fraction of records that are malformed, cycling through: a line that
    /// is not JSON (torn write), an event payload without `user_id`, an
    /// event with an unparseable `timestamp`, a payload string that is not
    /// JSON.
    pub malformed: f64,
    /// Fraction of records that are a duplicated outbox row: a recent
    /// event's payload inserted again under a new outbox id (same event id).
    pub duplicates: f64,
    /// Per-record probability of a connector restart that re-delivers the
    /// last `1..=redelivery_max_batch` records verbatim (new offsets); the
    /// `runId` header changes from then on.
    pub redeliveries: f64,
    /// Upper bound of records re-delivered by one restart.
    pub redelivery_max_batch: u32,
    /// Outbox rows read by the initial snapshot (`op: r`) before streaming
    /// starts. Emitted in heap order: rows already updated (processed) before
    /// the snapshot come last, so some events precede their assignments.
    pub snapshot_rows: u64,
    /// Fraction of records that are outbox `processed_at` updates (`op: u`,
    /// `before: null`) of a recent row.
    pub outbox_updates: f64,
    /// Fraction of records that are outbox cleanup deletes (`op: d`, key-only
    /// `before`) of the oldest rows, each followed by its tombstone (so each
    /// one costs two records).
    pub outbox_deletes: f64,
    /// Topic written in every record (the original deployment's routed topic).
    pub topic: String,
    /// Number of input partitions; a record goes to `hash(outbox id) % n`.
    pub partitions: u32,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            seed: 42,
            records: 100_000,
            users: 20_000,
            experiments: 3,
            variants: 2,
            conversion_rates: vec![0.10, 0.12],
            mean_page_views: 2.0,
            click_rate: 0.35,
            value_min_cents: 500,
            value_max_cents: 20_000,
            string_properties: 0.05,
            start: "2025-09-30T00:00:00Z".to_string(),
            span_secs: 2 * 86_400,
            active_sessions: 256,
            jitter_secs: 30.0,
            before_assignment: 0.01,
            unassigned_users: 0.01,
            reassignments: 0.005,
            deletes: 0.001,
            late_events: 0.001,
            late_min_secs: 2 * 3600,
            late_max_secs: 6 * 3600,
            malformed: 0.0005,
            duplicates: 0.002,
            redeliveries: 0.000_01,
            redelivery_max_batch: 16,
            snapshot_rows: 1_000,
            outbox_updates: 0.01,
            outbox_deletes: 0.002,
            topic: "experiments_events".to_string(),
            partitions: 1,
        }
    }
}

impl GenerateOptions {
    /// The defaults with every "trouble" knob at zero: no late events, no
    /// unassigned users, no events before their assignment, no malformed
    /// records, no duplicates or re-deliveries, no reordering (jitter 0).
    /// Every event of a clean stream is valid and on time. Snapshot,
    /// re-assignments, deletes, outbox updates/deletes and tombstones stay.
    pub fn clean() -> Self {
        GenerateOptions {
            jitter_secs: 0.0,
            before_assignment: 0.0,
            unassigned_users: 0.0,
            late_events: 0.0,
            malformed: 0.0,
            duplicates: 0.0,
            redeliveries: 0.0,
            ..GenerateOptions::default()
        }
    }

    /// Reject inconsistent or out-of-range knobs before generating.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.users == 0 || self.experiments == 0 {
            bail!("users and experiments must be at least 1");
        }
        if !(1..=127).contains(&self.variants) {
            bail!("variants must be in 1..=127");
        }
        if self.partitions == 0 {
            bail!("partitions must be at least 1");
        }
        if self.conversion_rates.is_empty() {
            bail!("conversion_rates must not be empty");
        }
        if self.value_min_cents > self.value_max_cents {
            bail!("value_min_cents > value_max_cents");
        }
        if self.late_min_secs > self.late_max_secs {
            bail!("late_min_secs > late_max_secs");
        }
        let probs = [
            ("click_rate", self.click_rate),
            ("string_properties", self.string_properties),
            ("before_assignment", self.before_assignment),
            ("unassigned_users", self.unassigned_users),
            ("reassignments", self.reassignments),
            ("deletes", self.deletes),
            ("late_events", self.late_events),
            ("malformed", self.malformed),
            ("duplicates", self.duplicates),
            ("redeliveries", self.redeliveries),
            ("outbox_updates", self.outbox_updates),
            ("outbox_deletes", self.outbox_deletes),
        ];
        for (name, p) in probs {
            if !(0.0..=1.0).contains(&p) {
                bail!("{name} must be a probability in [0, 1], got {p}");
            }
        }
        for &p in &self.conversion_rates {
            if !(0.0..=1.0).contains(&p) {
                bail!("conversion rate {p} not in [0, 1]");
            }
        }
        let side = self.malformed
            + self.duplicates
            + self.redeliveries
            + self.outbox_updates
            + self.outbox_deletes;
        if side > 0.9 {
            bail!("malformed + duplicates + redeliveries + outbox_updates + outbox_deletes must be ≤ 0.9");
        }
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if !non_negative(self.jitter_secs) || !non_negative(self.mean_page_views) {
            bail!("jitter_secs and mean_page_views must be ≥ 0");
        }
        parse_start(&self.start)?;
        Ok(())
    }
}
