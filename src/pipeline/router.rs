//! Sub-topology 1's stateful step: accounting, the assignment id mapping and
//! re-keying by `user_id` (Kafka's murmur2 partitioner).

use crate::domain::{AssignmentDelete, Change, Origin, Parsed, Routed, SkipReason};
use crate::pipeline::summary::Summary;
use neonblue_state::{CommitBatch, KeyValueStore, StateDb, StateError, StoreTree};
use neonblue_topology::partition_for_key;
use serde::{Deserialize, Serialize};

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

/// Accounts, resolves and re-keys parsed records.
pub struct Router {
    partitions: u32,
    ids: KeyValueStore<String, (u32, String)>,
    tree: StoreTree,
    /// Counters.
    pub counters: RouterCounters,
}

impl Router {
    /// Loads the router of namespace `ns`.
    pub fn load(
        db: &StateDb,
        ns: &str,
        partitions: u32,
        counters: RouterCounters,
    ) -> Result<Self, StateError> {
        let tree = db.tree(ns, "assignment-ids")?;
        Ok(Router {
            partitions,
            ids: KeyValueStore::load("assignment-ids", &tree)?,
            tree,
            counters,
        })
    }

    /// The task partition of `user_id`.
    pub fn partition_of(&self, user_id: &str) -> u32 {
        partition_for_key(user_id.as_bytes(), self.partitions)
    }

    /// Accounts one parsed record; returns the record to hand to a task, if any.
    pub fn route(&mut self, origin: Origin, parsed: Parsed) -> Option<(u32, Routed)> {
        self.counters.records_in += 1;
        let (change, snapshot, captured) = match parsed {
            Parsed::Skip(reason) => {
                self.counters.skipped[reason.index()] += 1;
                return None;
            }
            Parsed::Dead(_) => {
                self.counters.dead_lettered += 1;
                return None;
            }
            Parsed::Change {
                change,
                snapshot,
                captured,
            } => (change, snapshot, captured),
            Parsed::DeleteById(d) => match self.ids.get(&d.id) {
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
                    return None;
                }
            },
        };
        match &change {
            Change::Assign(a) => {
                let known = self
                    .ids
                    .get(&a.id)
                    .is_some_and(|(e, u)| *e == a.experiment_id && *u == a.user_id);
                if !known {
                    self.ids
                        .insert(a.id.clone(), (a.experiment_id, a.user_id.clone()));
                }
            }
            Change::Unassign(d) => {
                if let Some(id) = &d.id {
                    self.ids.remove(id);
                }
            }
            Change::Event(_) => {}
        }
        let partition = self.partition_of(change.user_id());
        Some((
            partition,
            Routed {
                origin,
                snapshot,
                captured,
                change,
            },
        ))
    }

    /// Adds the mapping store's changes to `batch`.
    pub fn add_changes(&mut self, batch: &mut CommitBatch) {
        batch.add_store(&self.tree, &mut self.ids);
    }
}
