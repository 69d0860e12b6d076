//! Sub-topology 2 (SPEC 4, 5): the validity join, windows and per-user
//! rollups of one repartition partition, owning the state of the users
//! hashed there.

use crate::domain::outputs::{EventRow, InvalidReason, OutputBatch, WindowKind};
use crate::domain::records::{
    Assignment, AssignmentDelete, Change, Event, Micros, Origin, Routed, Text,
};

mod id;
pub mod windows;

/// The join task's stores: its own three, then the window stores (their
/// changelogs are `<app_id>-<store>-changelog`).
pub const STORES: [&str; 7] = [
    "assignments",
    "pending",
    "pending-deadlines",
    "seen-events",
    windows::STORES[0],
    windows::STORES[1],
    windows::STORES[2],
];

/// Namespace (sled trees, checkpoint key) of the join task of `partition`.
pub fn namespace(partition: u32) -> String {
    format!("task-{partition:04}")
}

use crate::time::{DAY, MINUTE};
use neonblue_state::{
    CommitBatch, KeyValueStore, StateDb, StateError, StoreTree, VersionedStore, WindowStore,
};
use neonblue_topology::{Processor, StreamTime};
use serde::{Deserialize, Serialize};
use windows::WindowStores;

/// A pending event's deadline: (due, key, event id), in one-minute segments.
type Deadline = (Micros, AssignmentKey, Id);
/// Width of a deadline segment.
const DEADLINE_SEGMENT: Micros = MINUTE;

/// (experiment_id, user_id): the key of assignment versions and pending events.
pub type AssignmentKey = (u32, Id);

pub use id::Id;

/// One assignment version's payload (its timestamp is `assigned_at`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantRef {
    /// Variant id.
    pub variant_id: u32,
    /// Variant key (serialised like a `String`).
    pub variant_key: Option<Text>,
    /// Watermark clock: the capture time of the delete that ended this
    /// version. Events captured before it still see the version.
    pub deleted_at: Option<Micros>,
}

impl VariantRef {
    /// True when an event captured at `captured` sees this version.
    fn visible_to(&self, captured: Option<Micros>) -> bool {
        self.deleted_at
            .is_none_or(|d| captured.is_some_and(|c| c < d))
    }
}

/// What an event joins: the version it sees (SPEC 4).
struct Joined {
    variant_id: u32,
    variant_key: Option<Text>,
    assigned_at: Micros,
    /// `BeforeAssignment` when every version it sees is later than it.
    reason: Option<InvalidReason>,
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
    /// When it was captured (see [`Routed::captured`]).
    pub captured: Option<Micros>,
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
    /// Events waiting in the pending store.
    pub pending_events: u64,
}

/// Where a task's stream time comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The records it applies, in arrival order (file mode, SPEC 5).
    Records,
    /// Watermarks of its input partitions, given by
    /// [`JoinTask::advance_watermark`] (Kafka mode, SPEC 5.1); the
    /// records' own timestamps and snapshot flags do not move it.
    Watermark,
}

/// The join/window processor of one partition.
pub struct JoinTask {
    partition: i32,
    grace: Micros,
    clock: Clock,
    /// Watermark clock: the stream time of the record's input partition just
    /// before it, while the record is processed.
    source_time: Option<Micros>,
    /// Stream time and counters.
    pub meta: TaskMeta,
    assignments: VersionedStore<AssignmentKey, VariantRef>,
    pending: KeyValueStore<AssignmentKey, Vec<PendingEvent>>,
    /// When each pending event is next due, by one-minute segment.
    due: WindowStore<Deadline, ()>,
    seen: WindowStore<Id, ()>,
    windows: WindowStores,
    trees: [StoreTree; 4],
}

impl JoinTask {
    /// Loads (or creates) the task of `partition` from namespace `ns` of `db`.
    pub fn load(
        db: &StateDb,
        ns: &str,
        partition: i32,
        grace: Micros,
        meta: TaskMeta,
    ) -> Result<Self, StateError> {
        let trees = [
            db.tree(ns, STORES[0])?,
            db.tree(ns, STORES[1])?,
            db.tree(ns, STORES[2])?,
            db.tree(ns, STORES[3])?,
        ];
        Ok(JoinTask {
            partition,
            grace,
            clock: Clock::Records,
            source_time: None,
            meta,
            assignments: VersionedStore::load(STORES[0], &trees[0])?,
            pending: KeyValueStore::load(STORES[1], &trees[1])?,
            due: WindowStore::load(STORES[2], &trees[2])?,
            seen: WindowStore::load(STORES[3], &trees[3])?,
            windows: WindowStores::load(db, ns)?,
            trees,
        })
    }

    /// Takes stream time from watermarks instead of records (Kafka mode).
    /// (Deadlines are stored with the clock they were scheduled under: a
    /// task keeps one clock for its whole life.)
    pub fn driven_by_watermark(mut self) -> Self {
        self.clock = Clock::Watermark;
        self
    }

    /// The watermark moved to `watermark` (Kafka mode): stream time follows,
    /// due pending events resolve, due windows close, old event ids expire.
    pub fn advance_watermark(
        &mut self,
        watermark: Micros,
        out: &mut OutputBatch,
    ) -> Result<(), StateError> {
        self.meta.stream_time.advance(watermark);
        self.punctuate(out)
    }

    fn schedule(
        &mut self,
        due: Micros,
        key: &AssignmentKey,
        event_id: &str,
    ) -> Result<(), StateError> {
        let segment = due.div_euclid(DEADLINE_SEGMENT) * DEADLINE_SEGMENT;
        self.due
            .insert_if_absent(segment, (due, key.clone(), Id::from(event_id)), ())?;
        Ok(())
    }

    fn cancel(
        &mut self,
        due: Micros,
        key: &AssignmentKey,
        event_id: &str,
    ) -> Result<bool, StateError> {
        let segment = due.div_euclid(DEADLINE_SEGMENT) * DEADLINE_SEGMENT;
        self.due
            .remove(segment, &(due, key.clone(), Id::from(event_id)))
    }

    /// The deadlines due at `now` (every one when `None`), in (due, key, id)
    /// order. Only what is due is taken: a segment's later deadlines stay
    /// where they are.
    fn take_due(&mut self, now: Option<Micros>) -> Result<Vec<Deadline>, StateError> {
        let mut due = Vec::new();
        let limit = now.unwrap_or(i64::MAX);
        while let Some(start) = self.due.first_start().filter(|s| *s <= limit) {
            let taken = self.due.take_first_while(|d| d.0 <= limit)?;
            due.extend(taken.into_iter().map(|(d, ())| d));
            if self.due.first_start() == Some(start) {
                break; // the rest of this segment is later
            }
        }
        Ok(due)
    }

    /// Processes a record of the watermark clock. `source_time` is the
    /// stream time of its input partition just before it: an event is late
    /// when its hourly window has closed by the watermark (it can no longer
    /// be counted) or in the order of its own partition — so lateness does
    /// not depend on how fast other partitions are read.
    pub fn process_from(
        &mut self,
        input: Routed,
        source_time: Option<Micros>,
        out: &mut OutputBatch,
    ) -> Result<(), StateError> {
        self.source_time = source_time;
        let r = self.process(input, out);
        self.source_time = None;
        r
    }

    /// Adds every store's pending changes to `batch`.
    pub fn add_changes(&mut self, batch: &mut CommitBatch) {
        batch.add_store(&self.trees[0], &mut self.assignments);
        batch.add_store(&self.trees[1], &mut self.pending);
        batch.add_store(&self.trees[2], &mut self.due);
        batch.add_store(&self.trees[3], &mut self.seen);
        for (tree, store) in self.windows.stores_mut() {
            batch.add_store(tree, store);
        }
    }

    /// Events waiting for an assignment.
    pub fn pending_count(&self) -> u64 {
        self.meta.pending_events
    }

    /// Open hourly + daily windows.
    pub fn open_windows(&self) -> usize {
        self.windows.open_windows()
    }

    /// Event ids remembered to drop duplicates (reads every page: for tools).
    pub fn dedup_entries(&mut self) -> Result<usize, StateError> {
        self.seen.entry_count()
    }

    fn apply_event(
        &mut self,
        event: Event,
        origin: Origin,
        snapshot: bool,
        captured: Option<Micros>,
        out: &mut OutputBatch,
    ) -> Result<(), StateError> {
        let ts = event.timestamp;
        // Remembered before the snapshot's release, which may expire old
        // ids: had its day expired, the punctuation at the end of this
        // record (`advance`) expires it again, as when remembered after the
        // release. (Only a state error stops a record before that, and a
        // task that failed commits nothing more: file mode stops, Kafka
        // mode's engine refuses to commit.)
        if !self.seen.insert_unless_in_any(
            WindowKind::Daily.start_of(ts),
            Id::from(event.event_id.as_str()),
            (),
        )? {
            self.meta.counters.duplicates += 1;
            return Ok(());
        }
        self.release_snapshot(snapshot, out)?;
        let hour_end = WindowKind::Hourly.start_of(ts) + WindowKind::Hourly.len_micros();
        let is_late = self
            .meta
            .stream_time
            .get()
            .max(self.source_time)
            .is_some_and(|now| now >= hour_end.saturating_add(self.grace));
        let key: AssignmentKey = (event.experiment_id, Id::from(event.user_id.clone()));
        if let Some(joined) = self.joinable(&key, ts, captured)? {
            self.emit(joined, event, is_late, origin, out)?;
        } else {
            let due = self.deadline(ts);
            self.schedule(due, &key, &event.event_id)?;
            let p = PendingEvent {
                event,
                is_late,
                origin,
                captured,
            };
            self.pending.upsert_with(&key, Vec::new)?.push(p);
            self.meta.pending_events += 1;
        }
        self.advance(ts, snapshot, out)
    }

    fn apply_assignment(
        &mut self,
        a: Assignment,
        snapshot: bool,
        out: &mut OutputBatch,
    ) -> Result<(), StateError> {
        self.release_snapshot(snapshot, out)?;
        self.meta.counters.assignments_applied += 1;
        let key: AssignmentKey = (a.experiment_id, Id::from(a.user_id));
        self.assignments.upsert(
            key.clone(),
            a.assigned_at,
            VariantRef {
                variant_id: a.variant_id,
                variant_key: a.variant_key.map(Text::from),
                deleted_at: None,
            },
        )?;
        if let Some(waiting) = self.pending.remove(&key)? {
            let mut still = Vec::new();
            for p in waiting {
                let Some(joined) = self.joinable(&key, p.event.timestamp, p.captured)? else {
                    still.push(p);
                    continue;
                };
                let ts = p.event.timestamp;
                if !self.cancel(ts.saturating_add(self.grace), &key, &p.event.event_id)? {
                    self.cancel(ts, &key, &p.event.event_id)?;
                }
                self.meta.pending_events -= 1;
                self.emit(joined, p.event, p.is_late, p.origin, out)?;
            }
            if !still.is_empty() {
                self.pending.insert(key, still)?;
            }
        }
        self.advance(a.assigned_at, snapshot, out)
    }

    /// Can an event of `key` at `ts`, captured at `captured`, join now?
    /// When its user has versions it sees, and, with the watermark clock,
    /// once the watermark has reached its time: every input partition has
    /// then been read past it, so every version in effect at `ts` has
    /// arrived, whatever the pace of the partitions (an event-time temporal
    /// join). Returns what it joins.
    fn joinable(
        &mut self,
        key: &AssignmentKey,
        ts: Micros,
        captured: Option<Micros>,
    ) -> Result<Option<Joined>, StateError> {
        if self.clock == Clock::Watermark && !self.reached(ts) {
            return Ok(None);
        }
        self.join(key, ts, captured)
    }

    /// Joins an event of `key` at `ts`, captured at `captured`, against the
    /// versions it sees: `None` when it sees none.
    fn join(
        &mut self,
        key: &AssignmentKey,
        ts: Micros,
        captured: Option<Micros>,
    ) -> Result<Option<Joined>, StateError> {
        let versions = self
            .assignments
            .versions(key)?
            .map_or(&[][..], |v| v.as_slice());
        let seen = |v: &&(Micros, VariantRef)| v.1.visible_to(captured);
        let split = versions.partition_point(|(t, _)| *t <= ts);
        // The latest version at or before the event, else (every version
        // is later) the earliest one.
        let (version, reason) = match versions[..split].iter().rev().find(seen) {
            Some(v) => (v, None),
            None => match versions[split..].iter().find(seen) {
                Some(v) => (v, Some(InvalidReason::BeforeAssignment)),
                None => return Ok(None),
            },
        };
        Ok(Some(Joined {
            variant_id: version.1.variant_id,
            variant_key: version.1.variant_key.clone(),
            assigned_at: version.0,
            reason,
        }))
    }

    /// True when stream time has reached `ts`.
    fn reached(&self, ts: Micros) -> bool {
        self.meta.stream_time.get().is_some_and(|now| now >= ts)
    }

    /// When a pending event of time `ts` is next due: at `ts + grace` it
    /// resolves as `unassigned`; with the watermark clock it is first due at
    /// `ts`, to join the versions that arrived by then.
    fn deadline(&self, ts: Micros) -> Micros {
        if self.clock == Clock::Watermark && !self.reached(ts) {
            ts
        } else {
            ts.saturating_add(self.grace)
        }
    }

    fn apply_delete(
        &mut self,
        d: AssignmentDelete,
        snapshot: bool,
        captured: Option<Micros>,
        out: &mut OutputBatch,
    ) -> Result<(), StateError> {
        // A delete read in a snapshot (an outbox `ASSIGNMENT_DELETED` row with
        // `op = r`) is a snapshot record: it keeps the freeze, it does not
        // release it (SPEC 5).
        self.release_snapshot(snapshot, out)?;
        if snapshot && self.clock == Clock::Records {
            self.meta.stream_time.hold(None);
        }
        self.meta.counters.assignments_applied += 1;
        let key: AssignmentKey = (d.experiment_id, Id::from(d.user_id));
        // Records clock: the delete removes the history now (SPEC 4). Watermark
        // clock: records of a user that come through different topics arrive
        // in any order, so the history ends at the delete's capture time
        // instead: events captured before it still see their versions, later
        // ones see none, whenever each arrives.
        match (self.clock, captured) {
            (Clock::Watermark, Some(at)) => {
                for (_, v) in self.assignments.versions_mut(&key)?.into_iter().flatten() {
                    v.deleted_at = v.deleted_at.or(Some(at));
                }
            }
            _ => {
                self.assignments.delete(&key)?;
            }
        }
        Ok(())
    }

    /// A non-snapshot record ends a snapshot's freeze: stream time first
    /// advances to the held-back time (records clock only).
    fn release_snapshot(
        &mut self,
        snapshot: bool,
        out: &mut OutputBatch,
    ) -> Result<(), StateError> {
        if self.clock == Clock::Records && !snapshot && self.meta.stream_time.release() {
            self.punctuate(out)?;
        }
        Ok(())
    }

    /// Step 3: stream time takes the record's timestamp, or holds it back in
    /// a snapshot (records clock; a watermark clock does not move here).
    /// Then steps 4 and 5.
    fn advance(
        &mut self,
        ts: Micros,
        snapshot: bool,
        out: &mut OutputBatch,
    ) -> Result<(), StateError> {
        match (self.clock, snapshot) {
            (Clock::Watermark, _) => {}
            (Clock::Records, true) => self.meta.stream_time.hold(Some(ts)),
            (Clock::Records, false) => self.meta.stream_time.advance(ts),
        }
        self.punctuate(out)
    }

    /// Emits the row of `event`, joined to `joined`.
    fn emit(
        &mut self,
        joined: Joined,
        event: Event,
        is_late: bool,
        origin: Origin,
        out: &mut OutputBatch,
    ) -> Result<(), StateError> {
        let row = EventRow {
            variant_id: Some(joined.variant_id),
            variant_key: joined.variant_key,
            assigned_at: Some(joined.assigned_at),
            is_valid: joined.reason.is_none(),
            invalid_reason: joined.reason,
            is_late,
            origin,
            event,
        };
        self.push_row(row, out)
    }

    fn push_row(&mut self, row: EventRow, out: &mut OutputBatch) -> Result<(), StateError> {
        self.meta.counters.events_emitted += 1;
        if row.is_late {
            self.meta.counters.late += 1;
        } else if row.is_valid {
            self.windows.add(&row)?;
        }
        out.events.push(row);
        Ok(())
    }

    /// Steps 4 and 5: resolve due pending events as unassigned, then close due
    /// windows and forget expired event ids.
    fn punctuate(&mut self, out: &mut OutputBatch) -> Result<(), StateError> {
        let Some(now) = self.meta.stream_time.get() else {
            return Ok(());
        };
        // Resolving may schedule a later deadline: repeat until none is due.
        loop {
            let due = self.take_due(Some(now))?;
            if due.is_empty() {
                break;
            }
            for (_, key, event_id) in due {
                self.resolve_due(&key, event_id.as_str(), Some(now), out)?;
            }
        }
        self.windows.close(
            Some(now),
            self.grace,
            self.partition,
            &mut out.aggregates,
            &mut out.user_daily,
        )?;
        // An id is remembered until end of its day + grace + 24 h.
        let before = now.saturating_sub(2 * DAY + self.grace) + 1;
        while self.seen.drop_before(before).is_some() {}
        Ok(())
    }

    /// A pending event is due at stream time `now` (`None`: end of input):
    /// it joins the versions that arrived meanwhile (watermark clock), or
    /// resolves as `unassigned` once `timestamp + grace` has passed, or waits
    /// for that.
    fn resolve_due(
        &mut self,
        key: &AssignmentKey,
        event_id: &str,
        now: Option<Micros>,
        out: &mut OutputBatch,
    ) -> Result<(), StateError> {
        // Taken out first (one lookup), and put back in its place in the
        // rare case that it must wait longer.
        let Some(list) = self.pending.get_mut(key)? else {
            return Ok(());
        };
        let Some(i) = list.iter().position(|p| p.event.event_id == event_id) else {
            return Ok(());
        };
        let p = list.remove(i);
        let emptied = list.is_empty();
        let joined = self.join(key, p.event.timestamp, p.captured)?;
        let expired = now.is_none_or(|n| n >= p.event.timestamp.saturating_add(self.grace));
        if joined.is_none() && !expired {
            self.schedule(p.event.timestamp.saturating_add(self.grace), key, event_id)?;
            self.pending.upsert_with(key, Vec::new)?.insert(i, p);
            return Ok(());
        }
        if emptied {
            self.pending.remove(key)?;
        }
        self.meta.pending_events -= 1;
        if let Some(joined) = joined {
            return self.emit(joined, p.event, p.is_late, p.origin, out);
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
        self.push_row(row, out)
    }
}

impl Processor for JoinTask {
    type Input = Routed;
    type Output = OutputBatch;
    type Error = StateError;

    fn process(&mut self, input: Routed, out: &mut OutputBatch) -> Result<(), StateError> {
        match input.change {
            Change::Event(e) => {
                self.apply_event(e, input.origin, input.snapshot, input.captured, out)
            }
            Change::Assign(a) => self.apply_assignment(a, input.snapshot, out),
            Change::Unassign(d) => self.apply_delete(d, input.snapshot, input.captured, out),
        }
    }

    fn end_of_input(&mut self, out: &mut OutputBatch) -> Result<(), StateError> {
        if self.meta.stream_time.release() {
            self.punctuate(out)?;
        }
        for (_, key, event_id) in self.take_due(None)? {
            self.resolve_due(&key, event_id.as_str(), None, out)?;
        }
        self.windows.close(
            None,
            self.grace,
            self.partition,
            &mut out.aggregates,
            &mut out.user_daily,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Assignment versions in state and changelogs keep the bytes they had
    /// when the variant key was a `String`.
    #[test]
    fn a_variant_ref_is_stored_as_with_a_string_key() {
        for key in [None, Some(""), Some("treatment"), Some("contrôle")] {
            let stored = VariantRef {
                variant_id: 7,
                variant_key: key.map(Text::from),
                deleted_at: Some(-3),
            };
            let as_before = (7u32, key.map(String::from), Some(-3i64));
            let bytes = neonblue_state::encode(&stored);
            assert_eq!(bytes, neonblue_state::encode(&as_before));
            let back: VariantRef = neonblue_state::decode(&bytes).unwrap();
            assert_eq!(back, stored);
        }
        // The bytes themselves (bincode: fixed-width little-endian
        // integers, a u64 length before a string, a tag byte for an Option).
        let stored = VariantRef {
            variant_id: 7,
            variant_key: Some(Text::from("ab")),
            deleted_at: None,
        };
        assert_eq!(
            neonblue_state::encode(&stored),
            [7, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, b'a', b'b', 0]
        );
    }
}
