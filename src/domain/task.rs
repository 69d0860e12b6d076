//! The join/window task of sub-topology 2 (SPEC 4, 5): one per repartition
//! partition, owning the state of the users hashed there.

use super::outputs::{EventRow, InvalidReason, OutputBatch, WindowKind};
use super::records::{Assignment, AssignmentDelete, Change, Event, Micros, Origin, Routed};
use super::windows::WindowStores;
use neonblue_state::{
    CommitBatch, KeyValueStore, StateDb, StateError, StoreTree, VersionedStore, WindowStore,
};
use neonblue_topology::{Deadlines, Processor, StreamTime};
use serde::{Deserialize, Serialize};

/// (experiment_id, user_id): the key of assignment versions and pending events.
pub type AssignmentKey = (u32, String);

/// One assignment version's payload (its timestamp is `assigned_at`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantRef {
    /// Variant id.
    pub variant_id: u32,
    /// Variant key.
    pub variant_key: Option<String>,
}

/// An event waiting for its user's assignment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingEvent {
    /// The event.
    pub event: Event,
    /// Lateness decided on arrival.
    pub is_late: bool,
    /// Origin record.
    pub origin: Origin,
}

/// Counters of one task, checkpointed with its state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounters {
    /// Event rows emitted.
    pub events_emitted: u64,
    /// Assignment creates/updates/deletes applied.
    pub assignments_applied: u64,
    /// Events skipped as duplicates.
    pub duplicates: u64,
    /// Late events emitted.
    pub late: u64,
}

/// Scalar state of a task, stored in its checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskMeta {
    /// Stream time with snapshot hold-back.
    pub stream_time: StreamTime,
    /// Counters.
    pub counters: TaskCounters,
}

const DAY: Micros = 86_400_000_000;

/// The join/window processor of one partition.
pub struct ExperimentTask {
    partition: i32,
    grace: Micros,
    /// Stream time and counters.
    pub meta: TaskMeta,
    assignments: VersionedStore<AssignmentKey, VariantRef>,
    pending: KeyValueStore<AssignmentKey, Vec<PendingEvent>>,
    due: Deadlines<(AssignmentKey, String)>,
    seen: WindowStore<String, ()>,
    windows: WindowStores,
    trees: [StoreTree; 3],
}

impl ExperimentTask {
    /// Loads (or creates) the task of `partition` from namespace `ns` of `db`.
    pub fn load(
        db: &StateDb,
        ns: &str,
        partition: i32,
        grace: Micros,
        meta: TaskMeta,
    ) -> Result<Self, StateError> {
        let trees = [
            db.tree(ns, "assignments")?,
            db.tree(ns, "pending")?,
            db.tree(ns, "seen-events")?,
        ];
        let assignments = VersionedStore::load("assignments", &trees[0])?;
        let pending: KeyValueStore<AssignmentKey, Vec<PendingEvent>> =
            KeyValueStore::load("pending", &trees[1])?;
        let mut due = Deadlines::default();
        for (key, events) in pending.iter() {
            for p in events {
                due.schedule(
                    p.event.timestamp.saturating_add(grace),
                    (key.clone(), p.event.event_id.clone()),
                );
            }
        }
        Ok(ExperimentTask {
            partition,
            grace,
            meta,
            assignments,
            pending,
            due,
            seen: WindowStore::load("seen-events", &trees[2])?,
            windows: WindowStores::load(db, ns)?,
            trees,
        })
    }

    /// Adds every store's pending changes to `batch`.
    pub fn add_changes(&mut self, batch: &mut CommitBatch) {
        batch.add_store(&self.trees[0], &mut self.assignments);
        batch.add_store(&self.trees[1], &mut self.pending);
        batch.add_store(&self.trees[2], &mut self.seen);
        for (tree, store) in self.windows.stores_mut() {
            batch.add_store(tree, store);
        }
    }

    /// Events waiting for an assignment.
    pub fn pending_count(&self) -> usize {
        self.due.len()
    }

    /// Open hourly + daily windows.
    pub fn open_windows(&self) -> usize {
        self.windows.open_windows()
    }

    fn apply_event(&mut self, event: Event, origin: Origin, snapshot: bool, out: &mut OutputBatch) {
        if self.seen.contains_in_any(event.event_id.as_str()) {
            self.meta.counters.duplicates += 1;
            return;
        }
        if !snapshot && self.meta.stream_time.release() {
            self.punctuate(out);
        }
        let ts = event.timestamp;
        let hour_end = WindowKind::Hourly.start_of(ts) + WindowKind::Hourly.len_micros();
        let is_late = self
            .meta
            .stream_time
            .get()
            .is_some_and(|now| now >= hour_end.saturating_add(self.grace));
        self.seen
            .insert_ref_if_absent(WindowKind::Daily.start_of(ts), event.event_id.as_str(), ());
        let key: AssignmentKey = (event.experiment_id, event.user_id.clone());
        if self.assignments.versions(&key).is_some() {
            self.emit(&key, event, is_late, origin, out);
        } else {
            self.due.schedule(
                ts.saturating_add(self.grace),
                (key.clone(), event.event_id.clone()),
            );
            let p = PendingEvent {
                event,
                is_late,
                origin,
            };
            match self.pending.get_mut(&key) {
                Some(list) => list.push(p),
                None => self.pending.insert(key, vec![p]),
            }
        }
        self.advance(ts, snapshot, out);
    }

    fn apply_assignment(&mut self, a: Assignment, snapshot: bool, out: &mut OutputBatch) {
        if !snapshot && self.meta.stream_time.release() {
            self.punctuate(out);
        }
        self.meta.counters.assignments_applied += 1;
        let key: AssignmentKey = (a.experiment_id, a.user_id);
        self.assignments.upsert(
            key.clone(),
            a.assigned_at,
            VariantRef {
                variant_id: a.variant_id,
                variant_key: a.variant_key,
            },
        );
        if let Some(waiting) = self.pending.remove(&key) {
            for p in waiting {
                self.due.cancel(
                    p.event.timestamp.saturating_add(self.grace),
                    &(key.clone(), p.event.event_id.clone()),
                );
                self.emit(&key, p.event, p.is_late, p.origin, out);
            }
        }
        self.advance(a.assigned_at, snapshot, out);
    }

    fn apply_delete(&mut self, d: AssignmentDelete, out: &mut OutputBatch) {
        if self.meta.stream_time.release() {
            self.punctuate(out);
        }
        self.meta.counters.assignments_applied += 1;
        self.assignments.delete(&(d.experiment_id, d.user_id));
    }

    fn advance(&mut self, ts: Micros, snapshot: bool, out: &mut OutputBatch) {
        if snapshot {
            self.meta.stream_time.hold(Some(ts));
        } else {
            self.meta.stream_time.advance(ts);
        }
        self.punctuate(out);
    }

    /// Joins `event` against the assignment versions and emits its row.
    /// `key` is the event's (experiment_id, user_id).
    fn emit(
        &mut self,
        key: &AssignmentKey,
        event: Event,
        is_late: bool,
        origin: Origin,
        out: &mut OutputBatch,
    ) {
        let (version, reason) = match self.assignments.as_of(key, event.timestamp) {
            Some(v) => (Some(v), None),
            None => match self.assignments.versions(key).and_then(|v| v.first()) {
                Some(v) => (Some(v), Some(InvalidReason::BeforeAssignment)),
                None => (None, Some(InvalidReason::Unassigned)),
            },
        };
        let row = EventRow {
            variant_id: version.map(|v| v.1.variant_id),
            variant_key: version.and_then(|v| v.1.variant_key.clone()),
            assigned_at: version.map(|v| v.0),
            is_valid: reason.is_none(),
            invalid_reason: reason,
            is_late,
            origin,
            event,
        };
        self.push_row(row, out);
    }

    fn push_row(&mut self, row: EventRow, out: &mut OutputBatch) {
        self.meta.counters.events_emitted += 1;
        if row.is_late {
            self.meta.counters.late += 1;
        } else if row.is_valid {
            self.windows.add(&row);
        }
        out.events.push(row);
    }

    /// Steps 4 and 5: resolve due pending events as unassigned, then close due
    /// windows and forget expired event ids.
    fn punctuate(&mut self, out: &mut OutputBatch) {
        let Some(now) = self.meta.stream_time.get() else {
            return;
        };
        while let Some((_, (key, event_id))) = self.due.pop_due(now) {
            self.resolve_unassigned(&key, &event_id, out);
        }
        self.windows.close(
            Some(now),
            self.grace,
            self.partition,
            &mut out.aggregates,
            &mut out.user_daily,
        );
        // An id is remembered until end of its day + grace + 24 h.
        let before = now.saturating_sub(2 * DAY + self.grace) + 1;
        while self.seen.drop_before(before).is_some() {}
    }

    fn resolve_unassigned(&mut self, key: &AssignmentKey, event_id: &str, out: &mut OutputBatch) {
        let Some(list) = self.pending.get_mut(key) else {
            return;
        };
        let Some(i) = list.iter().position(|p| p.event.event_id == event_id) else {
            return;
        };
        let p = list.remove(i);
        if list.is_empty() {
            self.pending.remove(key);
        }
        let row = EventRow {
            variant_id: None,
            variant_key: None,
            assigned_at: None,
            is_valid: false,
            invalid_reason: Some(InvalidReason::Unassigned),
            is_late: p.is_late,
            origin: p.origin,
            event: p.event,
        };
        self.push_row(row, out);
    }
}

impl Processor for ExperimentTask {
    type Input = Routed;
    type Output = OutputBatch;

    fn process(&mut self, input: Routed, out: &mut OutputBatch) {
        match input.change {
            Change::Event(e) => self.apply_event(e, input.origin, input.snapshot, out),
            Change::Assign(a) => self.apply_assignment(a, input.snapshot, out),
            Change::Unassign(d) => self.apply_delete(d, out),
        }
    }

    fn end_of_input(&mut self, out: &mut OutputBatch) {
        if self.meta.stream_time.release() {
            self.punctuate(out);
        }
        while let Some((_, (key, event_id))) = self.due.pop_first() {
            self.resolve_unassigned(&key, &event_id, out);
        }
        self.windows.close(
            None,
            self.grace,
            self.partition,
            &mut out.aggregates,
            &mut out.user_daily,
        );
    }
}

/// Names every store tree of a task namespace (for restore and reset).
pub const TASK_STORES: [&str; 8] = [
    "assignments",
    "pending",
    "seen-events",
    "agg-hourly",
    "agg-daily",
    "users-hourly",
    "users-daily",
    "user-daily",
];
