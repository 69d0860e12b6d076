//! The tasks one instance hosts, how they process, commit and move.
//!
//! Sub-topology 1 (a router task per input partition: [`Router`]) parses,
//! accounts, dead-letters and re-keys records into `<app_id>-repartition`;
//! sub-topology 2 (a join task per repartition partition: [`JoinTask`]) runs
//! the join and windows. Both are hosted alike ([`Tasks`], [`Hosted`]):
//! restored from their changelogs before their first record, records below
//! their checkpointed position skipped as re-deliveries (after a rebalance
//! or a crash), and committed through the commit protocol with
//! [`ChangelogDurability`].
//!
//! Event time (SPEC 5.1): each router's stream time travels with every
//! record it re-keys and, as a watermark record to every repartition
//! partition, at each commit when it changed (including when its partition
//! has no unread records: idle). A join task's stream time is the watermark
//! over every input partition ([`Watermarks`]), never the arrival order.

use super::gauges;
use super::prepare::{Consumed, DeadLetterOut};
use super::repartition::{FormatError, Repartitioned};
use super::topics::AppTopics;
use crate::config::Config;
use crate::domain::{Change, Micros, Origin, OutputBatch, Parsed, Summary};
use crate::metric_names as names;
use crate::processors::join::{JoinTask, TaskMeta};
use crate::processors::router::{Router, RouterState};
use crate::processors::summary;
use crate::sink::{task_part, Outputs, Segment};
use anyhow::{Context, Result};
use metrics::Counter;
use neonblue_state::{decode, encode, CommitBatch, StateDb};
use neonblue_topology::kafka::checkpoint::RestoreStats;
use neonblue_topology::kafka::{
    ChangelogDurability, ChangelogProducer, Checkpoint, LoggedTask, PartitionReader, TaskLog,
};
use neonblue_topology::{
    AppliedOffsets, Hosted, Processor, SourceTime, TaskCommit, Tasks, Watermarks,
};
use rdkafka::producer::DeliveryFuture;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Checkpoint payload of a router task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterPayload {
    /// The next input offset: everything below was applied.
    pub next_offset: i64,
    /// Replays: events below this offset rebuild nothing and are not output.
    pub output_from: Option<i64>,
    /// Counters and the input partition's stream time.
    pub state: RouterState,
}

/// Checkpoint payload of a join task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JoinPayload {
    /// The next repartition offset: everything below was applied.
    pub next_offset: i64,
    /// Stream time, counters, pending events.
    pub meta: TaskMeta,
    /// Input offsets applied, per origin partition (drops re-deliveries).
    pub applied: AppliedOffsets,
    /// Every window and pending event was flushed (end of input).
    pub drained: bool,
    /// What the task knows of every input partition's stream time.
    pub watermarks: Watermarks,
}

/// A router task: sub-topology 1 over one input partition.
struct RouterSlot {
    /// Shared by the origin of every record it routes.
    topic: Arc<str>,
    partition: i32,
    logged: LoggedTask,
    router: Router,
    output_from: Option<i64>,
    /// No unread records in the input partition (until the next record).
    idle: bool,
    /// The last time report sent to the join tasks.
    announced: Option<SourceTime>,
}

/// A join task: sub-topology 2 over one repartition partition.
struct JoinSlot {
    logged: LoggedTask,
    task: JoinTask,
    /// Origin offsets applied (drops repartition records re-produced after a crash).
    applied: AppliedOffsets,
    out: OutputBatch,
    drained: bool,
    watermarks: Watermarks,
    /// The input partition the gauges last showed holding the watermark back.
    shown_held_back_by: Option<(String, i32)>,
}

impl JoinSlot {
    /// Applies an input partition's time report; punctuates when the
    /// watermark advanced.
    fn observe(
        &mut self,
        inputs: &[(String, i32)],
        topic: &str,
        partition: i32,
        st: SourceTime,
    ) -> Result<(), neonblue_state::StateError> {
        if let Some(w) = self.watermarks.observe(inputs, topic, partition, st) {
            self.task.advance_watermark(w, &mut self.out)?;
        }
        Ok(())
    }
}

/// The time report of a hosted router.
fn report(r: &Hosted<RouterSlot>) -> SourceTime {
    SourceTime {
        position: r.position,
        time: r.task.router.time.get(),
        idle: r.task.idle,
    }
}

/// True when the join tasks have not heard a router's latest report.
fn unannounced(r: &Hosted<RouterSlot>) -> bool {
    r.task.announced != Some(report(r))
}

/// Looks up the end of a partition's log as last fetched (see
/// [`neonblue_topology::kafka::fetched_log_end`]).
pub type LogEnd<'a> = &'a dyn Fn(&str, i32) -> Option<i64>;

/// Checks, once per task, that a record below the task's position is a
/// re-delivery: the partition's log must not end before that position (the
/// topic was deleted and re-created, or truncated — then its new records
/// would be skipped).
fn check_redelivery<T>(
    t: &mut Hosted<T>,
    topic: &str,
    partition: i32,
    end: Option<i64>,
) -> Result<()> {
    if t.log_checked {
        return Ok(());
    }
    if let Some(end) = end.filter(|e| *e < t.position) {
        anyhow::bail!(
            "{topic}[{partition}] ends at offset {end}, but this application already processed it up to offset {}: the topic was deleted and re-created or truncated. Its new records would be skipped as re-deliveries; rebuild with `neonblue replay --reset` or use a fresh --app-id",
            t.position
        );
    }
    t.log_checked = true;
    Ok(())
}

/// Checks that the repartition record at `offset` is the one a join task
/// expects next (`position`). Its topic is written without transactions
/// and never compacted, so its offsets have no holes. A record past the
/// position means the records before it are gone (acknowledged, then lost
/// by the brokers, or deleted by retention before they were processed), or
/// were there and skipped: the group's committed offset was ahead of the
/// task's checkpoint. One read at the position tells which. Either way,
/// going on would leave them out of every output without a trace, so the
/// instance stops. (Tansu, killed while the idempotent producer's batches are
/// in flight, acknowledges them after its restart without holding them.)
fn check_no_hole(
    reader: &PartitionReader,
    topic: &str,
    partition: i32,
    position: i64,
    offset: i64,
) -> Result<()> {
    if offset <= position {
        return Ok(());
    }
    let last = offset - 1;
    let what = match reader.read(topic, partition, position, position + 1, |_, _| {}) {
        Ok(0) => format!("holds no records from offset {position} to {last}: the brokers lost them after acknowledging them, or retention deleted them before they were processed"),
        Ok(_) => format!("was read from offset {offset}, past the join task's checkpoint at {position}, though the records between are there: the task's latest checkpoints are gone (lost by the brokers?), or the group's offsets were committed without them"),
        Err(e) => format!("skips from offset {position} to {last} (lost, or skipped by the group's offsets; reading offset {position} failed: {e})"),
    };
    anyhow::bail!(
        "{topic}[{partition}] {what}. Going on would leave those records out of every output without a trace, so the instance stops, as will any instance that takes the task over: rebuild with `neonblue replay --reset`, or replay into a fresh --app-id"
    )
}

/// Where replays start emitting outputs, per input (topic, partition).
pub type OutputStart = HashMap<(String, i32), i64>;

/// Restores a task's trees from its changelogs and discards the objects of
/// its unfinished commit.
fn restore(
    log: &TaskLog,
    db: &StateDb,
    reader: &PartitionReader,
    producer: &ChangelogProducer,
    outputs: &Outputs,
) -> Result<(Checkpoint, RestoreStats)> {
    let started = Instant::now();
    metrics::gauge!(names::RESTORING_TASKS).increment(1.0);
    let result = log.restore(db, reader, producer);
    metrics::gauge!(names::RESTORING_TASKS).decrement(1.0);
    let (mut ckpt, stats) =
        result.with_context(|| format!("restoring {} from its changelogs", log.ns))?;
    metrics::counter!(names::RESTORE_RECORDS_TOTAL).increment(stats.records);
    if !ckpt.intent.is_empty() {
        outputs.discard(&ckpt.intent)?;
        tracing::info!(task = %log.ns, objects = ckpt.intent.len(), "discarded the objects of an unfinished commit");
        log.clear_intent(db, producer, &mut ckpt)?;
    }
    if stats.compensated > 0 {
        tracing::warn!(task = %log.ns, records = stats.compensated, "repaired the changelog tail of an unfinished commit");
    }
    tracing::info!(
        task = %log.ns,
        records = stats.records,
        incremental = stats.incremental,
        ms = started.elapsed().as_millis() as u64,
        "restored"
    );
    Ok((ckpt, stats))
}

/// The counters every record moves, looked up once (a registry lookup
/// hashes the name and labels).
struct RecordCounters {
    input: Counter,
    routed: Counter,
    joined: Counter,
    late: Counter,
}

impl RecordCounters {
    fn new() -> Self {
        RecordCounters {
            input: metrics::counter!(names::RECORDS_TOTAL, "stage" => "input"),
            routed: metrics::counter!(names::RECORDS_TOTAL, "stage" => "routed"),
            joined: metrics::counter!(names::RECORDS_TOTAL, "stage" => "joined"),
            late: metrics::counter!(names::LATE_EVENTS_TOTAL),
        }
    }
}

/// Records consumed since the last commit, by topic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Uncommitted {
    /// Records of the input topics.
    pub input: u64,
    /// Records of the repartition topic (watermarks and re-deliveries too).
    pub repartition: u64,
}

impl Uncommitted {
    /// Counts one consumed record.
    pub fn count(&mut self, repartition: bool) {
        if repartition {
            self.repartition += 1;
        } else {
            self.input += 1;
        }
    }

    /// True once either count reaches `commit_records`.
    pub fn reached(&self, commit_records: u64) -> bool {
        self.input.max(self.repartition) >= commit_records
    }
}

/// Router indices and repartition partitions being lost.
#[derive(Debug, Default)]
struct Losing {
    routers: Vec<u32>,
    joins: Vec<i32>,
}

/// Everything an instance owns: its tasks, clients and outputs.
pub struct Engine {
    topics: AppTopics,
    grace: Micros,
    db: StateDb,
    producer: ChangelogProducer,
    reader: PartitionReader,
    outputs: Arc<Outputs>,
    routers: Tasks<u32, RouterSlot>,
    joins: Tasks<i32, JoinSlot>,
    inflight: Vec<DeliveryFuture>,
    counters: RecordCounters,
    /// The commit landing on the committer thread (one at a time).
    landing: Option<std::thread::JoinHandle<Result<Landed>>>,
    /// A call failed: the state may hold half a record, or a segment that
    /// did not land, so nothing more is committed from it.
    failed: bool,
    /// Positions of landed commits, not yet given to the consumer group.
    landed: Vec<Position>,
    /// The output batches of the last landed commit, emptied
    /// ([`OutputBatch::recycle`]): the next seal's segments fill them again
    /// instead of growing new ones, whose fresh memory costs page faults
    /// and a copy at every doubling.
    spare_batches: Vec<OutputBatch>,
    output_start: OutputStart,
    /// Tasks of partitions the group took away ([`Engine::lose`]): their
    /// records are dropped until [`Engine::discard`] gives them up.
    losing: Losing,
    /// Records consumed since the last commit.
    pub uncommitted: Uncommitted,
    /// When the last commit finished.
    pub last_commit: Instant,
}

impl Engine {
    /// An engine with no tasks yet.
    pub fn new(
        cfg: &Config,
        topics: AppTopics,
        db: StateDb,
        base: &rdkafka::ClientConfig,
        output_start: OutputStart,
    ) -> Result<Self> {
        Ok(Engine {
            topics,
            grace: cfg.processing.grace_micros(),
            db,
            producer: ChangelogProducer::new(base)?,
            reader: PartitionReader::new(base)?,
            outputs: Arc::new(Outputs::open(&cfg.output, &cfg.clickhouse)?),
            routers: Tasks::default(),
            joins: Tasks::default(),
            inflight: Vec::new(),
            losing: Losing::default(),
            counters: RecordCounters::new(),
            landing: None,
            failed: false,
            landed: Vec::new(),
            spare_batches: Vec::new(),
            output_start,
            uncommitted: Uncommitted::default(),
            last_commit: Instant::now(),
        })
    }

    /// Applies one consumed record (input or repartition) to its task.
    /// `log_end` tells where a partition's log ends, to tell re-deliveries
    /// from a re-created topic.
    pub fn apply(&mut self, record: Consumed, log_end: LogEnd<'_>) -> Result<()> {
        self.guarded(|e| match record {
            Consumed::Input { router, .. } if e.losing.routers.contains(&router) => Ok(()),
            Consumed::Repartition { partition, .. } if e.losing.joins.contains(&partition) => {
                Ok(())
            }
            Consumed::Input {
                router,
                offset,
                parsed,
                dead_letter,
            } => {
                e.uncommitted.count(false);
                e.on_input(router, offset, parsed, dead_letter, log_end)
            }
            Consumed::Repartition {
                partition,
                offset,
                record,
            } => {
                e.uncommitted.count(true);
                e.on_routed(partition, offset, record, log_end)
            }
        })
    }

    /// Commits nothing more (see [`Engine::commit`]): a call failed or
    /// panicked.
    pub fn mark_failed(&mut self) {
        self.failed = true;
    }

    /// Runs `f`, remembering a failure (see [`Engine::commit`]).
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let result = f(self);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Refuses to commit after a failure.
    fn ensure_sound(&self) -> Result<()> {
        anyhow::ensure!(
            !self.failed,
            "an earlier failure stopped this instance's commits; a restart resumes from the last commit"
        );
        Ok(())
    }

    /// The consumer reached the end of an input partition (`end`, the log end
    /// it fetched; `position`, its own position if known): when this
    /// partition's router has read everything, the partition is idle and no
    /// longer holds the watermark back (SPEC 5.1).
    pub fn on_input_end(
        &mut self,
        topic: &str,
        partition: i32,
        end: i64,
        position: Option<i64>,
    ) -> Result<()> {
        self.guarded(|e| {
            let index = e.topics.router_index(topic, partition)?;
            if e.losing.routers.contains(&index) {
                return Ok(());
            }
            let r = e.router(index)?;
            if r.position.max(position.unwrap_or(i64::MIN)) >= end && !r.task.idle {
                r.task.idle = true;
                tracing::debug!(topic, partition, end, "input partition idle");
            }
            Ok(())
        })
    }

    /// Router task `index`, restored if needed.
    fn router(&mut self, index: u32) -> Result<&mut Hosted<RouterSlot>> {
        if self.routers.get(index).is_none() {
            // A restore writes to the state: not beside a commit in flight.
            self.finish_landing()?;
        }
        let Engine {
            topics,
            db,
            reader,
            producer,
            outputs,
            routers,
            output_start,
            ..
        } = self;
        let held = routers.len() + 1;
        routers.get_or_restore(index, || {
            let (topic, partition) = topics
                .router_input(index)
                .with_context(|| format!("router task {index} has no input partition"))?;
            let log = topics.router_log(index);
            let (checkpoint, stats) = restore(&log, db, reader, producer, outputs)?;
            let payload: RouterPayload = if checkpoint.payload.is_empty() {
                RouterPayload {
                    output_from: output_start.get(&(topic.to_string(), partition)).copied(),
                    ..Default::default()
                }
            } else {
                decode(&checkpoint.payload)?
            };
            let router = Router::load(
                db,
                &log.ns,
                topics.repartition_partitions as u32,
                payload.state,
            )?;
            tracing::info!(
                topic,
                partition,
                next_offset = payload.next_offset,
                records = stats.records,
                incremental = stats.incremental,
                "router task ready"
            );
            let slot = RouterSlot {
                topic: Arc::from(topic),
                partition,
                logged: LoggedTask { log, checkpoint },
                router,
                output_from: payload.output_from,
                idle: false,
                announced: None,
            };
            gauges::report_tasks("router", held);
            Ok(Hosted::new(slot, payload.next_offset))
        })
    }

    /// The join task of a repartition partition, restored if needed.
    fn join(&mut self, partition: i32) -> Result<&mut Hosted<JoinSlot>> {
        if self.joins.get(partition).is_none() {
            // A restore writes to the state: not beside a commit in flight.
            self.finish_landing()?;
        }
        let Engine {
            topics,
            db,
            reader,
            producer,
            outputs,
            joins,
            grace,
            ..
        } = self;
        let held = joins.len() + 1;
        joins.get_or_restore(partition, || {
            let log = topics.join_log(partition);
            let (checkpoint, stats) = restore(&log, db, reader, producer, outputs)?;
            let payload: JoinPayload = if checkpoint.payload.is_empty() {
                JoinPayload::default()
            } else {
                decode(&checkpoint.payload)?
            };
            let task =
                JoinTask::load(db, &log.ns, partition, *grace, payload.meta)?.driven_by_watermark();
            tracing::info!(
                partition,
                next_offset = payload.next_offset,
                records = stats.records,
                incremental = stats.incremental,
                "join task ready"
            );
            let slot = JoinSlot {
                logged: LoggedTask { log, checkpoint },
                task,
                applied: payload.applied,
                out: OutputBatch::default(),
                drained: payload.drained,
                watermarks: payload.watermarks,
                shown_held_back_by: None,
            };
            gauges::report_tasks("join", held);
            Ok(Hosted::new(slot, payload.next_offset))
        })
    }

    fn on_input(
        &mut self,
        index: u32,
        offset: i64,
        parsed: Parsed,
        dead_letter: Option<Box<DeadLetterOut>>,
        log_end: LogEnd<'_>,
    ) -> Result<()> {
        self.router(index)?;
        let Engine {
            topics,
            producer,
            routers,
            inflight,
            counters,
            ..
        } = self;
        let r = routers.get_mut(index).expect("router restored");
        let partition = r.task.partition;
        if !r.admit(offset) {
            let topic = r.task.topic.clone();
            check_redelivery(r, &topic, partition, log_end(&topic, partition))?;
            metrics::counter!(names::REDELIVERED_TOTAL, "stage" => "input").increment(1);
            return Ok(());
        }
        r.task.idle = false;
        counters.input.increment(1);
        let hidden = r.task.output_from.is_some_and(|from| offset < from)
            && matches!(
                &parsed,
                Parsed::Change {
                    change: Change::Event(_),
                    ..
                }
            );
        if hidden {
            // A replay rebuilds assignments from the start but outputs events
            // only from its start offsets.
            r.task.router.pass_hidden(&parsed);
            metrics::counter!(names::REPLAY_HIDDEN_TOTAL).increment(1);
            return Ok(());
        }
        match &parsed {
            Parsed::Dead(dead) => {
                metrics::counter!(names::DEAD_LETTERS_TOTAL, "reason" => dead.reason.clone())
                    .increment(1);
                let out =
                    dead_letter.context("a rejected record came without its dead-letter record")?;
                inflight.push(out.send(producer, &topics.dlq)?);
            }
            Parsed::Skip(reason) => {
                metrics::counter!(names::SKIPPED_TOTAL, "reason" => reason.as_str()).increment(1);
            }
            _ => {}
        }
        let origin = Origin {
            topic: r.task.topic.clone(),
            partition,
            offset,
        };
        if let Some(r) = r.task.router.route(origin, parsed)? {
            let key = r.routed.change.user_id().as_bytes().to_vec();
            let bytes = Repartitioned::Record {
                routed: r.routed,
                before: r.before,
                after: r.after,
            }
            .encode();
            inflight.push(producer.send(
                &topics.repartition,
                r.partition as i32,
                &key,
                Some(&bytes),
            )?);
            counters.routed.increment(1);
        }
        Ok(())
    }

    fn on_routed(
        &mut self,
        partition: i32,
        offset: i64,
        record: Result<Repartitioned, FormatError>,
        log_end: LogEnd<'_>,
    ) -> Result<()> {
        self.join(partition)?;
        let Engine {
            topics,
            joins,
            counters,
            reader,
            ..
        } = self;
        let (repartition, inputs) = (&topics.repartition, &topics.inputs);
        let t = joins.get_mut(partition).expect("join restored");
        if offset < t.position {
            check_redelivery(t, repartition, partition, log_end(repartition, partition))?;
            metrics::counter!(names::REDELIVERED_TOTAL, "stage" => "repartition").increment(1);
            return Ok(());
        }
        check_no_hole(reader, repartition, partition, t.position, offset)?;
        let record =
            record.with_context(|| format!("{repartition}[{partition}] at offset {offset}"))?;
        t.admit(offset);
        let s = &mut t.task;
        let (routed, before_time, after_time) = match record {
            Repartitioned::Watermark {
                topic,
                partition,
                time,
            } => {
                s.observe(inputs, &topic, partition, time)?;
                return Ok(());
            }
            Repartitioned::Record {
                routed,
                before,
                after,
            } => (routed, before, after),
        };
        let (topic, p, o) = (
            routed.origin.topic.clone(),
            routed.origin.partition,
            routed.origin.offset,
        );
        if s.applied.is_applied(&topic, p, o) {
            // Re-produced by a router that restarted from its checkpoint.
            metrics::counter!(names::REDELIVERED_TOTAL, "stage" => "routed").increment(1);
            return Ok(());
        }
        let before = s.task.meta.counters.clone();
        let report = |position, time| SourceTime {
            position,
            time,
            idle: false,
        };
        s.observe(inputs, &topic, p, report(o, before_time))?;
        s.task.process_from(routed, before_time, &mut s.out)?;
        s.applied.mark(&topic, p, o);
        s.observe(inputs, &topic, p, report(o + 1, after_time))?;
        let after = &s.task.meta.counters;
        counters.joined.increment(1);
        counters.late.increment(after.late - before.late);
        if after.duplicates > before.duplicates {
            metrics::counter!(names::SKIPPED_TOTAL, "reason" => "duplicate")
                .increment(after.duplicates - before.duplicates);
        }
        Ok(())
    }

    /// True when uncommitted state fills its share of the cache: commit now
    /// so that it can be evicted.
    pub fn wants_commit(&self) -> bool {
        self.db.budget().wants_commit()
    }

    /// True when nothing changed since the last commit.
    pub fn is_clean(&self) -> bool {
        self.inflight.is_empty()
            && self
                .routers
                .iter()
                .all(|(_, r)| !r.dirty && !unannounced(r))
            && self.joins.iter().all(|(_, t)| !t.dirty)
    }

    /// Sends each router's stream time to every join task when it changed
    /// since the last report (SPEC 5.1: at least every commit).
    fn announce_watermarks(&mut self) -> Result<()> {
        let parts = self.topics.repartition_partitions;
        for (_, r) in self.routers.iter_mut().filter(|(_, r)| unannounced(r)) {
            let time = report(r);
            let bytes = Repartitioned::Watermark {
                topic: r.task.topic.to_string(),
                partition: r.task.partition,
                time,
            }
            .encode();
            for p in 0..parts {
                self.inflight.push(self.producer.send(
                    &self.topics.repartition,
                    p,
                    b"",
                    Some(&bytes),
                )?);
            }
            r.task.announced = Some(time);
            r.dirty = true;
            gauges::report_input(&r.task.topic, r.task.partition, time.idle, time.time);
        }
        Ok(())
    }

    /// True while a commit lands in the background.
    pub fn commit_in_flight(&self) -> bool {
        self.landing.is_some()
    }

    /// Commits every dirty task in line: waits for the commit in flight, then
    /// seals and lands the rest. Returns the positions to commit to the
    /// consumer group (rebalances, the end of input, shutdown). After any
    /// failed call, this and every other commit fail: nothing more is
    /// committed, and a restart resumes from the last commit.
    pub fn commit(&mut self) -> Result<Vec<Position>> {
        self.ensure_sound()?;
        self.guarded(|e| {
            e.finish_landing()?;
            if let Some(sealed) = e.seal()? {
                let landed = land(sealed, &e.producer, &e.db, &e.outputs)?;
                e.acknowledge(landed);
            }
            Ok(latest_positions(std::mem::take(&mut e.landed)))
        })
    }

    /// Commits every dirty task in the background: waits for the commit in
    /// flight (one lands at a time, so a page it took is never read back
    /// before it is in sled), seals, and hands the segment to a committer
    /// thread while processing goes on. Returns the positions of commits
    /// that landed meanwhile.
    pub fn commit_in_background(&mut self) -> Result<Vec<Position>> {
        self.ensure_sound()?;
        self.guarded(|e| {
            e.finish_landing()?;
            if let Some(sealed) = e.seal()? {
                let (producer, db, outputs) = (e.producer.clone(), e.db.clone(), e.outputs.clone());
                let handle = std::thread::Builder::new()
                    .name("commit".into())
                    .spawn(move || land(sealed, &producer, &db, &outputs))
                    .context("cannot start the committer thread")?;
                e.landing = Some(handle);
                metrics::gauge!(names::COMMIT_IN_FLIGHT).set(1.0);
            }
            Ok(std::mem::take(&mut e.landed))
        })
    }

    /// Waits for the commit in flight, if any (its positions come with the
    /// next [`Engine::take_landed`]).
    pub fn finish_commit_in_flight(&mut self) -> Result<()> {
        self.ensure_sound()?;
        self.guarded(Self::finish_landing)
    }

    /// The positions of commits that landed since the last call (without
    /// waiting for the one in flight).
    pub fn take_landed(&mut self) -> Result<Vec<Position>> {
        self.ensure_sound()?;
        if self.landing_finished() {
            self.guarded(Self::finish_landing)?;
        }
        Ok(std::mem::take(&mut self.landed))
    }

    /// The error of a commit in flight that already failed: after an error
    /// elsewhere, the cause to report first (a state that stopped after a
    /// failed write, say).
    pub fn failed_landing(&mut self) -> Option<anyhow::Error> {
        if !self.landing_finished() {
            return None;
        }
        self.guarded(Self::finish_landing).err()
    }

    /// True when the commit in flight has finished, landed or failed.
    fn landing_finished(&self) -> bool {
        self.landing.as_ref().is_some_and(|h| h.is_finished())
    }

    /// Waits for the commit in flight and takes in its result.
    fn finish_landing(&mut self) -> Result<()> {
        let Some(handle) = self.landing.take() else {
            return Ok(());
        };
        let landed = handle
            .join()
            .map_err(|_| anyhow::anyhow!("the committer thread panicked"))?;
        metrics::gauge!(names::COMMIT_IN_FLIGHT).set(0.0);
        self.acknowledge(landed?);
        Ok(())
    }

    /// Takes in a landed commit: each task's new checkpoint (the base of its
    /// next intent and log ends), and its positions for the group.
    fn acknowledge(&mut self, landed: Landed) {
        for (id, logged) in landed.tasks.into_iter().zip(landed.logged) {
            match id {
                TaskId::Join(p) => {
                    if let Some(t) = self.joins.get_mut(p) {
                        t.task.logged = logged;
                    }
                }
                TaskId::Router(i) => {
                    if let Some(r) = self.routers.get_mut(i) {
                        r.task.logged = logged;
                    }
                }
            }
        }
        self.landed.extend(landed.positions);
        self.spare_batches.extend(landed.emptied);
    }

    /// Ends every dirty task's segment: takes its store changes, checkpoint
    /// and outputs as they are now, and the deliveries it produced. The tasks
    /// may go on at once; [`land`] makes the segment durable. `None` when
    /// nothing changed.
    fn seal(&mut self) -> Result<Option<Sealed>> {
        self.announce_watermarks()?;
        gauges::report_cache(self.db.budget()); // before the dirty pages are taken
        let Engine {
            topics,
            routers,
            joins,
            inflight,
            uncommitted,
            last_commit,
            spare_batches,
            ..
        } = self;
        let uncommitted = std::mem::take(uncommitted);
        let mut sealed = Sealed {
            deliveries: std::mem::take(inflight),
            outputs: Vec::new(),
            commits: Vec::new(),
            tasks: Vec::new(),
            positions: Vec::new(),
            uncommitted,
        };
        *last_commit = Instant::now();
        // Join tasks first: their commits pair with their outputs.
        for (p, t) in joins.iter_mut().filter(|(_, t)| t.dirty) {
            let s = &mut t.task;
            let mut changes = CommitBatch::default();
            s.task.add_changes(&mut changes);
            sealed.commits.push(TaskCommit {
                key: s.logged.clone(),
                intent: Vec::new(),
                checkpoint: encode(&JoinPayload {
                    next_offset: t.position,
                    meta: s.task.meta.clone(),
                    applied: s.applied.clone(),
                    drained: s.drained,
                    watermarks: s.watermarks.clone(),
                }),
                changes,
            });
            sealed.outputs.push(SealedOutput {
                part: task_part(p as u32),
                seq: t.segment_start as u64,
                batch: std::mem::replace(&mut s.out, spare_batches.pop().unwrap_or_default()),
            });
            sealed.tasks.push(TaskId::Join(p));
            sealed
                .positions
                .push((topics.repartition.clone(), p, t.position));
            gauges::report_join(
                p,
                s.task.pending_count(),
                s.task.open_windows(),
                s.watermarks.get(),
                s.watermarks.held_back_by(&topics.inputs),
                &mut s.shown_held_back_by,
            );
            t.committed();
        }
        // Spares this seal did not need are not kept for later ones.
        spare_batches.clear();
        for (id, r) in routers.iter_mut().filter(|(_, r)| r.dirty) {
            let mut changes = CommitBatch::default();
            r.task.router.add_changes(&mut changes);
            sealed.commits.push(TaskCommit {
                key: r.task.logged.clone(),
                intent: Vec::new(),
                checkpoint: encode(&RouterPayload {
                    next_offset: r.position,
                    output_from: r.task.output_from,
                    state: r.task.router.state(),
                }),
                changes,
            });
            sealed.tasks.push(TaskId::Router(id));
            sealed
                .positions
                .push((r.task.topic.to_string(), r.task.partition, r.position));
            r.committed();
        }
        if sealed.commits.is_empty() && sealed.deliveries.is_empty() {
            return Ok(None);
        }
        tracing::debug!(tasks = sealed.tasks.len(), "commit started");
        Ok(Some(sealed))
    }

    /// Forgets the tasks of revoked partitions (after a commit), and clears
    /// their gauges.
    pub fn release(&mut self, revoked: &[(String, i32)]) {
        for (topic, partition) in revoked {
            if *topic == self.topics.repartition {
                if let Some(t) = self.joins.get(*partition) {
                    gauges::clear_join(*partition, t.task.shown_held_back_by.clone());
                }
                self.joins.release(|p, _| p == *partition);
            } else {
                let held = |r: &RouterSlot| *r.topic == **topic && r.partition == *partition;
                if self.routers.iter().any(|(_, r)| held(&r.task)) {
                    gauges::clear_input(topic, *partition);
                }
                self.routers.release(|_, r| held(r));
            }
        }
        self.report_tasks();
        gauges::report_cache(self.db.budget());
    }

    /// The gauges of the tasks held.
    fn report_tasks(&self) {
        gauges::report_tasks("join", self.joins.len());
        gauges::report_tasks("router", self.routers.len());
    }

    /// Marks partitions the group took away: their records are dropped from
    /// now on (a task not hosted yet is not restored for them: a restore
    /// writes to the task's changelogs and discards objects named by its
    /// last intent, which may be the new holder's), until [`Engine::discard`].
    pub fn lose(&mut self, lost: &[(String, i32)]) {
        for (topic, partition) in lost {
            if *topic == self.topics.repartition {
                self.losing.joins.push(*partition);
            } else if let Ok(index) = self.topics.router_index(topic, *partition) {
                self.losing.routers.push(index);
            }
        }
    }

    /// Gives up the tasks of lost partitions without committing them: the
    /// group may have given the partitions to another member already, and
    /// their next holder restores the last commit and redoes the rest (as
    /// after a crash). Waits for the commit in flight, which began while
    /// they were held. Returns how many of them had uncommitted work.
    pub fn discard(&mut self, lost: &[(String, i32)]) -> Result<usize> {
        self.guarded(Self::finish_landing)?;
        self.losing = Losing::default();
        let is_lost = |t: &str, p: i32| lost.iter().any(|(lt, lp)| lt == t && *lp == p);
        self.landed.retain(|(t, p, _)| !is_lost(t, *p));
        let repartition = self.topics.repartition.clone();
        let dirty = self
            .joins
            .iter()
            .filter(|(p, t)| t.dirty && is_lost(&repartition, *p))
            .count()
            + self
                .routers
                .iter()
                .filter(|(_, r)| r.dirty && is_lost(&r.task.topic, r.task.partition))
                .count();
        self.release(lost);
        if self.routers.is_empty() && self.joins.is_empty() {
            // Deliveries and counts of discarded work only.
            self.inflight.clear();
            self.uncommitted = Uncommitted::default();
        }
        Ok(dirty)
    }

    /// Position of a repartition partition's task, restoring it if needed.
    pub fn join_position(&mut self, partition: i32) -> Result<i64> {
        self.guarded(|e| Ok(e.join(partition)?.position))
    }

    /// End of input (`--until-end`, replays): resolves every pending event
    /// and closes every window of the given join partitions.
    pub fn drain(&mut self, partitions: &[i32]) -> Result<()> {
        self.guarded(|e| {
            for &p in partitions {
                let t = e.join(p)?;
                if !t.task.drained {
                    t.task.task.end_of_input(&mut t.task.out)?;
                    t.task.drained = true;
                    t.dirty = true;
                }
            }
            Ok(())
        })
    }

    /// True when every join task of the application (held here or not) has
    /// committed a drained checkpoint: the whole group reached the end.
    pub fn all_joins_drained(&self) -> Result<bool> {
        for p in 0..self.topics.repartition_partitions {
            let drained = match self.joins.get(p) {
                Some(t) => t.task.drained && !t.dirty,
                None => {
                    let log = self.topics.join_log(p);
                    match self.reader.read_last(&log.checkpoint_topic, p)? {
                        Some((_, rec)) => {
                            let ckpt: Checkpoint =
                                decode(rec.value.as_deref().unwrap_or_default())?;
                            !ckpt.payload.is_empty()
                                && decode::<JoinPayload>(&ckpt.payload)?.drained
                        }
                        None => false,
                    }
                }
            };
            if !drained {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The accounting of the tasks this instance holds now.
    pub fn summary(&self) -> Summary {
        summary(
            self.routers.iter().map(|(_, r)| &r.task.router.counters),
            self.joins.iter().map(|(_, t)| &t.task.task.meta.counters),
        )
    }
}

/// A consumer-group position: (topic, partition, next offset).
pub type Position = (String, i32, i64);

/// The last position of each partition, in first-seen order (a commit in
/// line after one that landed in the background moves the same partitions
/// further).
fn latest_positions(positions: Vec<Position>) -> Vec<Position> {
    let mut latest: Vec<Position> = Vec::with_capacity(positions.len());
    for (topic, partition, offset) in positions {
        match latest
            .iter_mut()
            .find(|(t, p, _)| *t == topic && *p == partition)
        {
            Some(known) => known.2 = offset,
            None => latest.push((topic, partition, offset)),
        }
    }
    latest
}

/// A task of this instance, as a commit names it.
#[derive(Clone, Copy, Debug)]
enum TaskId {
    Join(i32),
    Router(u32),
}

/// A join task's outputs in a sealed segment.
struct SealedOutput {
    /// Its part in object names.
    part: String,
    /// The repartition offset its segment started at (object names).
    seq: u64,
    batch: OutputBatch,
}

/// Segments whose state changes, checkpoints and outputs are taken, on
/// their way to durability.
struct Sealed {
    /// Repartition and DLQ records produced in them (delivered before any
    /// checkpoint that covers their input).
    deliveries: Vec<DeliveryFuture>,
    /// The join tasks' outputs, in the order of their commits.
    outputs: Vec<SealedOutput>,
    /// Join tasks' commits first (paired with `outputs`), then routers'.
    commits: Vec<TaskCommit<LoggedTask>>,
    /// Whose each commit is.
    tasks: Vec<TaskId>,
    /// The positions to commit to the group once they landed.
    positions: Vec<Position>,
    /// Records consumed in them.
    uncommitted: Uncommitted,
}

/// A sealed commit that is durable.
struct Landed {
    /// Whose each checkpoint is.
    tasks: Vec<TaskId>,
    /// Each task's new last checkpoint.
    logged: Vec<LoggedTask>,
    /// The positions to commit to the group.
    positions: Vec<Position>,
    /// The segments' output batches, emptied for reuse.
    emptied: Vec<OutputBatch>,
}

/// Makes a sealed segment durable: its repartition/DLQ deliveries, then the
/// commit protocol (intents, outputs, changelogs and checkpoints, local
/// state). Runs on the committer thread, or in line.
fn land(
    sealed: Sealed,
    producer: &ChangelogProducer,
    db: &StateDb,
    outputs: &Outputs,
) -> Result<Landed> {
    let started = Instant::now();
    let Sealed {
        deliveries,
        outputs: sealed_outputs,
        commits,
        tasks,
        positions,
        uncommitted,
    } = sealed;
    ChangelogProducer::await_all(deliveries).context("producing to the repartition/DLQ topics")?;
    if commits.is_empty() {
        return Ok(Landed {
            tasks,
            logged: Vec::new(),
            positions,
            emptied: Vec::new(),
        });
    }
    let segments: Vec<Segment<'_>> = sealed_outputs
        .iter()
        .map(|o| Segment {
            part: &o.part,
            seq: o.seq,
            batch: &o.batch,
        })
        .collect();
    let logged = outputs.commit_segments(
        &mut ChangelogDurability::new(producer, db),
        commits,
        &segments,
    )?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        input_records = uncommitted.input,
        repartition_records = uncommitted.repartition,
        tasks = positions.len(),
        "committed"
    );
    metrics::histogram!(names::COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
    metrics::counter!(names::COMMITS_TOTAL).increment(1);
    metrics::gauge!(names::STATE_SIZE_BYTES).set(db.size_on_disk() as f64);
    Ok(Landed {
        tasks,
        logged,
        positions,
        emptied: sealed_outputs
            .into_iter()
            .map(|mut o| {
                o.batch.recycle();
                o.batch
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::Uncommitted;

    #[test]
    fn input_or_repartition_records_alone_make_a_commit_due() {
        let counted = |input, repartition| {
            let mut u = Uncommitted::default();
            (0..input).for_each(|_| u.count(false));
            (0..repartition).for_each(|_| u.count(true));
            assert_eq!(u, Uncommitted { input, repartition });
            u
        };
        assert!(counted(100, 0).reached(100), "input records");
        assert!(
            counted(0, 100).reached(100),
            "repartition records after the input ran out"
        );
        assert!(!counted(99, 99).reached(100), "neither count reached");
        // A commit starts both counts again (`seal` takes them).
        let mut u = counted(100, 100);
        assert_eq!(
            std::mem::take(&mut u),
            Uncommitted {
                input: 100,
                repartition: 100
            }
        );
        assert!(!u.reached(1));
    }
}
