//! Task state that moves between instances: changelog commit and restore.
//!
//! A task's stores each have a changelog partition; a checkpoint changelog
//! partition holds the task's checkpoints. A commit ([`crate::commit`],
//! with [`ChangelogDurability`]) writes, in order:
//! 1. the last committed checkpoint again, carrying the *intent* (object
//!    names about to be published) when the segment has outputs,
//! 2. (the caller publishes the outputs),
//! 3. the store changes, then a checkpoint with every store changelog's log
//!    end after them (and the application payload: offsets, counters),
//!    then the same into the local sled database, atomically.
//!
//! Restore reads the last checkpoint and applies each store changelog up to
//! the end it records — from the local sled checkpoint when that is an
//! earlier point of the same log, else from the start. Records past that end
//! come from a commit that never finished (a crash between 3's writes):
//! restore overwrites each of their keys with the restored value
//! (compensation records), so the log read up to any later checkpoint is
//! consistent again. An intent in the last checkpoint names objects of an
//! unfinished segment, which the caller discards before processing.

use super::changelog::{ChangelogProducer, PartitionReader};
use super::KafkaError;
use crate::commit::{Durability, TaskCommit};
use neonblue_state::{decode, encode, ChangeRecord, CommitBatch, StateDb};
use rdkafka::producer::DeliveryFuture;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// A task checkpoint, in its checkpoint changelog and in local sled metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Log end of each store's changelog partition at this checkpoint.
    pub ends: Vec<(String, i64)>,
    /// Objects of a segment being published (discarded on restore).
    pub intent: Vec<String>,
    /// Application payload (offsets applied, counters, …).
    pub payload: Vec<u8>,
    /// The state format of the store changelogs ([`StateDb::format`]), set
    /// when the checkpoint is sent.
    pub state_format: String,
}

impl Checkpoint {
    /// The recorded log end of `store` (0 when never written).
    pub fn end_of(&self, store: &str) -> i64 {
        self.ends
            .iter()
            .find(|(s, _)| s == store)
            .map_or(0, |(_, e)| *e)
    }

    fn set_end(&mut self, store: &str, end: i64) {
        match self.ends.iter_mut().find(|(s, _)| s == store) {
            Some(e) => e.1 = end,
            None => self.ends.push((store.to_string(), end)),
        }
    }
}

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Changelog records applied.
    pub records: u64,
    /// True when the local sled copy was reused (only a tail was read).
    pub incremental: bool,
    /// Compensation records written over an unfinished commit.
    pub compensated: u64,
}

/// The changelogs of one task.
#[derive(Clone, Debug)]
pub struct TaskLog {
    /// sled namespace of the task's trees.
    pub ns: String,
    /// Partition of every changelog topic the task owns.
    pub partition: i32,
    /// (store name, changelog topic).
    pub stores: Vec<(String, String)>,
    /// The checkpoint changelog topic.
    pub checkpoint_topic: String,
}

/// Most changelog records written to sled in one batch during a restore.
const RESTORE_BATCH_RECORDS: usize = 4096;

impl TaskLog {
    /// Local metadata key of the task's checkpoint.
    pub fn meta_key(&self) -> String {
        format!("checkpoint/{}", self.ns)
    }

    /// The changelog topic of `store`.
    pub fn topic_of(&self, store: &str) -> Option<&str> {
        self.stores
            .iter()
            .find(|(s, _)| s == store)
            .map(|(_, t)| t.as_str())
    }

    /// Rebuilds the task's trees in `db` from its changelogs and returns the
    /// last checkpoint (its intent still set: the caller discards those
    /// objects, then calls [`TaskLog::clear_intent`]).
    pub fn restore(
        &self,
        db: &StateDb,
        reader: &PartitionReader,
        producer: &ChangelogProducer,
    ) -> Result<(Checkpoint, RestoreStats), KafkaError> {
        let mut remote = match reader.read_last(&self.checkpoint_topic, self.partition)? {
            Some((_, ChangeRecord { value: Some(v), .. })) => self.decode_checkpoint(&v)?,
            _ => Checkpoint::default(),
        };
        let local: Option<Checkpoint> = match db.get_meta(&self.meta_key())? {
            Some(b) => Some(decode(&b).map_err(neonblue_state::StateError::from)?),
            None => None,
        };
        let incremental = local.as_ref().is_some_and(|l| {
            self.stores
                .iter()
                .all(|(s, _)| l.end_of(s) <= remote.end_of(s))
        });
        let mut stats = RestoreStats {
            incremental,
            ..Default::default()
        };
        // Every changelog's bounds, checked before any tree changes.
        let mut bounds = Vec::with_capacity(self.stores.len());
        for (store, topic) in &self.stores {
            let (low, high) = reader.log_bounds(topic, self.partition)?;
            let end = remote.end_of(store);
            if end > high {
                return Err(KafkaError::Topic {
                    topic: topic.clone(),
                    problem: format!(
                        "partition {} ends at offset {high}, before the end {end} its task's last checkpoint recorded: the topic was deleted and re-created or truncated; rebuild with `neonblue replay --reset` or use a fresh --app-id",
                        self.partition
                    ),
                });
            }
            bounds.push((low, high));
        }
        let mut compensations = Vec::new();
        for ((store, topic), (low, high)) in self.stores.iter().zip(bounds) {
            let tree = db.tree(&self.ns, store)?;
            let end = remote.end_of(store);
            let from = if incremental {
                local.as_ref().map_or(0, |l| l.end_of(store)).max(low)
            } else {
                tree.clear()?;
                low
            };
            // Written to sled in batches of at most RESTORE_BATCH_RECORDS
            // records and a tenth of the instance's cache budget in bytes.
            let max_bytes = (db.budget().limit() / 10).max(1 << 20);
            let mut chunk = Vec::with_capacity(RESTORE_BATCH_RECORDS);
            let mut chunk_bytes = 0usize;
            let mut failed = None;
            stats.records += reader.read(topic, self.partition, from, end, |_, rec| {
                if failed.is_some() {
                    return; // the restore fails below
                }
                chunk_bytes += rec.key.len() + rec.value.as_ref().map_or(0, Vec::len);
                chunk.push(rec);
                if chunk.len() >= RESTORE_BATCH_RECORDS || chunk_bytes >= max_bytes {
                    chunk_bytes = 0;
                    if let Err(e) = db.restore(&tree, chunk.drain(..)) {
                        failed = Some(e);
                    }
                }
            })?;
            if let Some(e) = failed {
                return Err(e.into());
            }
            db.restore(&tree, chunk.drain(..))?;
            if high > end {
                // An unfinished commit's records: overwrite their keys.
                let mut keys = HashSet::new();
                reader.read(topic, self.partition, end, high, |_, rec| {
                    keys.insert(rec.key);
                })?;
                let mut fix: Vec<ChangeRecord> = Vec::with_capacity(keys.len());
                for key in keys {
                    let value = tree.get(&key)?;
                    fix.push(ChangeRecord { key, value });
                }
                fix.sort_by(|a, b| a.key.cmp(&b.key));
                compensations.push((store.clone(), topic.clone(), fix));
            }
        }
        if !compensations.is_empty() {
            for (store, topic, fix) in compensations {
                stats.compensated += fix.len() as u64;
                if let Some(end) = producer.write_changes(&topic, self.partition, &fix)? {
                    remote.set_end(&store, end);
                } else {
                    let (_, high) = reader.log_bounds(&topic, self.partition)?;
                    remote.set_end(&store, high);
                }
            }
            let f = self.send_checkpoint(producer, &remote)?;
            ChangelogProducer::await_all(vec![f])?;
        }
        db.put_meta_durable(&self.meta_key(), Some(&encode(&remote)))?;
        Ok((remote, stats))
    }

    /// Records that the intent of `ckpt` has been discarded.
    pub fn clear_intent(
        &self,
        db: &StateDb,
        producer: &ChangelogProducer,
        ckpt: &mut Checkpoint,
    ) -> Result<(), KafkaError> {
        ckpt.intent.clear();
        ChangelogProducer::await_all(vec![self.send_checkpoint(producer, ckpt)?])?;
        db.put_meta_durable(&self.meta_key(), Some(&encode(&*ckpt)))?;
        Ok(())
    }

    /// A checkpoint record read back, refused unless written in this
    /// build's state format.
    fn decode_checkpoint(&self, bytes: &[u8]) -> Result<Checkpoint, KafkaError> {
        let ckpt = decode::<Checkpoint>(bytes).ok();
        match ckpt {
            Some(c) if c.state_format == StateDb::format() => Ok(c),
            other => Err(KafkaError::Topic {
                topic: self.checkpoint_topic.clone(),
                problem: format!(
                    "the changelogs of task {} were written in state format {}, this neonblue reads {}: rebuild with `neonblue replay --reset` or use a fresh --app-id",
                    self.ns,
                    other.map_or("an older one (none recorded)".into(), |c| format!("{:?}", c.state_format)),
                    StateDb::format()
                ),
            }),
        }
    }

    /// Queues a checkpoint record (stamped with the state format).
    pub fn send_checkpoint(
        &self,
        producer: &ChangelogProducer,
        ckpt: &Checkpoint,
    ) -> Result<DeliveryFuture, KafkaError> {
        let ckpt = Checkpoint {
            state_format: StateDb::format().into(),
            ..ckpt.clone()
        };
        producer.send(
            &self.checkpoint_topic,
            self.partition,
            self.ns.as_bytes(),
            Some(&encode(&ckpt)),
        )
    }
}

/// A task whose state is kept in changelogs: its logs and its last
/// committed checkpoint (the [`Durability`] key of Kafka mode).
#[derive(Clone, Debug)]
pub struct LoggedTask {
    /// The task's changelogs.
    pub log: TaskLog,
    /// Its last committed checkpoint (store log ends, payload).
    pub checkpoint: Checkpoint,
}

/// Kafka mode's [`Durability`]: intents and checkpoints in each task's
/// checkpoint changelog, store changes in its store changelogs (one round
/// trip per step for all tasks, not per task), then the local sled copy,
/// atomically with the checkpoints.
pub struct ChangelogDurability<'a> {
    producer: &'a ChangelogProducer,
    db: &'a StateDb,
}

impl<'a> ChangelogDurability<'a> {
    /// Commits through `producer` into the changelogs and into `db`.
    pub fn new(producer: &'a ChangelogProducer, db: &'a StateDb) -> Self {
        ChangelogDurability { producer, db }
    }
}

impl Durability for ChangelogDurability<'_> {
    type Key = LoggedTask;
    type Error = KafkaError;

    /// The intent rides on the *last committed* checkpoint: a restore that
    /// finds it restores the committed state and position, and discards the
    /// named objects.
    fn record_intents(&mut self, commits: &[TaskCommit<LoggedTask>]) -> Result<(), KafkaError> {
        let futures = commits
            .iter()
            .filter(|c| !c.intent.is_empty())
            .map(|c| {
                let mut ckpt = c.key.checkpoint.clone();
                ckpt.intent = c.intent.clone();
                c.key.log.send_checkpoint(self.producer, &ckpt)
            })
            .collect::<Result<Vec<_>, _>>()?;
        ChangelogProducer::await_all(futures)?;
        Ok(())
    }

    fn record_state(
        &mut self,
        commits: Vec<TaskCommit<LoggedTask>>,
    ) -> Result<Vec<LoggedTask>, KafkaError> {
        // Store changes, then checkpoints with the new log ends.
        let mut pending: Vec<(usize, String, Vec<DeliveryFuture>)> = Vec::new();
        for (i, c) in commits.iter().enumerate() {
            for (store, changes) in c.changes.store_changes() {
                if changes.is_empty() {
                    continue;
                }
                let topic = c.key.log.topic_of(store).ok_or_else(|| KafkaError::Topic {
                    topic: store.to_string(),
                    problem: "store has no changelog topic".into(),
                })?;
                let futures = changes
                    .iter()
                    .map(|ch| {
                        self.producer
                            .send(topic, c.key.log.partition, &ch.key, ch.value.as_deref())
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                pending.push((i, store.to_string(), futures));
            }
        }
        let mut next: Vec<Checkpoint> = commits
            .iter()
            .map(|c| Checkpoint {
                ends: c.key.checkpoint.ends.clone(),
                payload: c.checkpoint.clone(),
                ..Default::default()
            })
            .collect();
        for (i, store, futures) in pending {
            if let Some(last) = ChangelogProducer::await_all(futures)? {
                next[i].set_end(&store, last + 1);
            }
        }
        let futures = commits
            .iter()
            .zip(&next)
            .map(|(c, ckpt)| c.key.log.send_checkpoint(self.producer, ckpt))
            .collect::<Result<Vec<_>, _>>()?;
        ChangelogProducer::await_all(futures)?;
        // The local copy, atomically with the checkpoints.
        let mut all = CommitBatch::default();
        let mut out = Vec::with_capacity(commits.len());
        for (c, ckpt) in commits.into_iter().zip(next) {
            all.append(c.changes);
            all.set_meta(c.key.log.meta_key(), Some(encode(&ckpt)));
            out.push(LoggedTask {
                log: c.key.log,
                checkpoint: ckpt,
            });
        }
        self.db.commit(all)?;
        Ok(out)
    }
}
