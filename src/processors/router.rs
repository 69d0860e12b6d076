//! Sub-topology 1 (SPEC 3): accounting, the assignment-id mapping, re-keying
//! by `user_id` with Kafka's murmur2 partitioner, and the stream time of the
//! input it reads (SPEC 5.1).
//!
//! Kafka mode runs one router per input partition; file mode one for the
//! whole file (its join tasks keep their own records clock, so the file
//! router's stream time is not used there).

use crate::domain::{
    AssignmentDelete, Change, Micros, Origin, Parsed, Routed, SkipReason, Summary,
};
use neonblue_state::{CommitBatch, KeyValueStore, StateDb, StateError, StoreTree};
use neonblue_topology::{partition_for_key, Processor, StreamTime};
use serde::{Deserialize, Serialize};

/// The router's stores (its changelogs are `<app_id>-<store>-changelog`).
pub const STORES: [&str; 1] = ["assignment-ids"];

/// Counters of the router, checkpointed with its state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterCounters {
    /// Input records seen.
    pub records_in: u64,
    /// Skips by reason (index = `SkipReason::index`).
    pub skipped: [u64; 10],
    /// Dead letters.
    pub dead_lettered: u64,
    /// Deletes by id whose mapping was unknown (applied as no-ops).
    pub unresolved_deletes: u64,
}

impl RouterCounters {
    /// Adds the router's share to a summary.
    pub fn add_to(&self, s: &mut Summary) {
        s.records_in += self.records_in;
        s.dead_lettered += self.dead_lettered;
        s.assignments_applied += self.unresolved_deletes;
        for r in SkipReason::ALL {
            s.add_skipped(r, self.skipped[r.index()]);
        }
    }
}

/// What a router checkpoints besides its stores.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterState {
    /// Accounting.
    pub counters: RouterCounters,
    /// Stream time of the input it reads.
    pub time: StreamTime,
}

/// A record re-keyed for the join task of `partition`, with the stream time
/// of its input partition just before and just after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Rekeyed {
    /// Join task (repartition partition) of the record's user.
    pub partition: u32,
    /// The record.
    pub routed: Routed,
    /// Input stream time before the record (after a snapshot's release).
    pub before: Option<Micros>,
    /// Input stream time after it.
    pub after: Option<Micros>,
}

/// Accounts, resolves and re-keys parsed records.
pub struct Router {
    partitions: u32,
    ids: KeyValueStore<String, (u32, String)>,
    tree: StoreTree,
    /// Counters.
    pub counters: RouterCounters,
    /// Stream time of the input (SPEC 5, per input partition).
    pub time: StreamTime,
}

impl Router {
    /// Loads the router of namespace `ns`, re-keying into `partitions`.
    pub fn load(
        db: &StateDb,
        ns: &str,
        partitions: u32,
        state: RouterState,
    ) -> Result<Self, StateError> {
        let tree = db.tree(ns, STORES[0])?;
        Ok(Router {
            partitions,
            ids: KeyValueStore::load(STORES[0], &tree)?,
            tree,
            counters: state.counters,
            time: state.time,
        })
    }

    /// What the router checkpoints besides its stores.
    pub fn state(&self) -> RouterState {
        RouterState {
            counters: self.counters.clone(),
            time: self.time.clone(),
        }
    }

    /// The join task (repartition partition) of `user_id`.
    pub fn partition_of(&self, user_id: &str) -> u32 {
        partition_for_key(user_id.as_bytes(), self.partitions)
    }

    /// Accounts one parsed record; returns the record to hand to a join task, if any.
    pub fn route(&mut self, origin: Origin, parsed: Parsed) -> Result<Option<Rekeyed>, StateError> {
        self.counters.records_in += 1;
        let (change, snapshot, captured) = match parsed {
            Parsed::Skip(reason) => {
                self.counters.skipped[reason.index()] += 1;
                return Ok(None);
            }
            Parsed::Dead(_) => {
                self.counters.dead_lettered += 1;
                return Ok(None);
            }
            Parsed::Change {
                change,
                snapshot,
                captured,
            } => (change, snapshot, captured),
            Parsed::DeleteById(d) => match self.ids.get(&d.id)? {
                Some((experiment_id, user_id)) => (
                    Change::Unassign(AssignmentDelete {
                        id: Some(d.id),
                        experiment_id: *experiment_id,
                        user_id: user_id.clone(),
                    }),
                    false,
                    d.captured,
                ),
                None => {
                    self.counters.unresolved_deletes += 1;
                    return Ok(None);
                }
            },
        };
        match &change {
            Change::Assign(a) => {
                let known = self
                    .ids
                    .get(&a.id)?
                    .is_some_and(|(e, u)| *e == a.experiment_id && *u == a.user_id);
                if !known {
                    self.ids
                        .insert(a.id.clone(), (a.experiment_id, a.user_id.clone()))?;
                }
            }
            Change::Unassign(d) => {
                if let Some(id) = &d.id {
                    self.ids.remove(id)?;
                }
            }
            Change::Event(_) => {}
        }
        let (before, after) = self.clock(&change, snapshot);
        Ok(Some(Rekeyed {
            partition: self.partition_of(change.user_id()),
            routed: Routed {
                origin,
                snapshot,
                captured,
                change,
            },
            before,
            after,
        }))
    }

    /// A replay's record before its output start: it is neither accounted
    /// nor output, but it moves the stream time as in the full run.
    pub fn pass_hidden(&mut self, parsed: &Parsed) {
        if let Parsed::Change {
            change, snapshot, ..
        } = parsed
        {
            self.clock(change, *snapshot);
        }
    }

    /// Applies a change to the input's stream time (SPEC 5): a snapshot
    /// record holds its timestamp back; any other change first releases a
    /// freeze, then advances to its timestamp (deletes do not advance).
    /// Returns the time before and after it. (A router cannot know
    /// duplicates, which the join task drops: they release too.)
    fn clock(&mut self, change: &Change, snapshot: bool) -> (Option<Micros>, Option<Micros>) {
        let ts = change.time();
        if snapshot {
            let now = self.time.get();
            self.time.hold(ts);
            return (now, self.time.get());
        }
        self.time.release();
        let before = self.time.get();
        if let Some(ts) = ts {
            self.time.advance(ts);
        }
        (before, self.time.get())
    }

    /// Adds the mapping store's changes to `batch`.
    pub fn add_changes(&mut self, batch: &mut CommitBatch) {
        batch.add_store(&self.tree, &mut self.ids);
    }
}

impl Processor for Router {
    type Input = (Origin, Parsed);
    type Output = Vec<Rekeyed>;
    type Error = StateError;

    fn process(
        &mut self,
        (origin, parsed): (Origin, Parsed),
        out: &mut Vec<Rekeyed>,
    ) -> Result<(), StateError> {
        out.extend(self.route(origin, parsed)?);
        Ok(())
    }

    fn end_of_input(&mut self, _out: &mut Vec<Rekeyed>) -> Result<(), StateError> {
        Ok(())
    }
}
