//! The tasks one instance owns and how they process, commit and move.
//!
//! Sub-topology 1 (a *router* task per input partition) parses, accounts,
//! dead-letters and re-keys records into `<app_id>-repartition`; sub-topology 2
//! (a *join* task per repartition partition) runs the experiment task. Both
//! restore lazily from their changelogs on their first record, skip records
//! below their checkpointed position (re-deliveries after a rebalance or a
//! crash) and commit through [`commit_tasks`].
//!
//! Event time (SPEC 5.1): each router keeps its input partition's stream
//! time and sends it along with every record it re-keys and, as a watermark
//! record to every repartition partition, at each commit when it changed
//! (including when the partition has no unread records: idle). A join
//! task's stream time is the watermark over every input partition
//! ([`Watermarks`]), never the arrival order of records.

use super::repartition::Repartitioned;
use super::topics::AppTopics;
use crate::config::Config;
use crate::domain::task::{ExperimentTask, TaskMeta};
use crate::domain::{Change, Micros, Origin, OutputBatch, Parsed, SkipReason};
use crate::parse::raw::{Headers, RawRecord};
use crate::parse::{parse_record, ParseContext};
use crate::pipeline::router::{Router, RouterCounters};
use crate::pipeline::summary::Summary;
use crate::sink::clickhouse::ClickHouseSink;
use crate::sink::parquet::{EncodedObject, ParquetSink, Segment};
use anyhow::{Context, Result};
use neonblue_state::{decode, encode, CommitBatch, StateDb};
use neonblue_topology::kafka::checkpoint::RestoreStats;
use neonblue_topology::kafka::{
    commit_tasks, ChangelogProducer, Checkpoint, PartitionReader, TaskCommit, TaskLog,
};
use neonblue_topology::{AppliedOffsets, Processor, SourceTime, StreamTime, Task, Watermarks};
use rdkafka::message::{BorrowedMessage, Header, Headers as _, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use rdkafka::Message;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

/// Checkpoint payload of a router task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RouterPayload {
    next_offset: i64,
    counters: RouterCounters,
    /// Replays: events below this offset rebuild nothing and are not output.
    output_from: Option<i64>,
    /// The input partition's stream time (SPEC 5.1).
    time: StreamTime,
}

/// Checkpoint payload of a join task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct JoinPayload {
    next_offset: i64,
    meta: TaskMeta,
    applied: AppliedOffsets,
    drained: bool,
    /// What the task knows of every input partition's stream time.
    watermarks: Watermarks,
}

struct RouterTask {
    topic: String,
    partition: i32,
    log: TaskLog,
    router: Router,
    ckpt: Checkpoint,
    next_offset: i64,
    output_from: Option<i64>,
    /// The input partition's stream time.
    time: StreamTime,
    /// No unread records in the input partition (until the next record).
    idle: bool,
    /// The last time report sent to the join tasks.
    announced: Option<SourceTime>,
    /// The partition's log end was checked against `next_offset`.
    log_checked: bool,
    dirty: bool,
}

impl RouterTask {
    /// The partition's time report as of now.
    fn report(&self) -> SourceTime {
        SourceTime {
            position: self.next_offset,
            time: self.time.get(),
            idle: self.idle,
        }
    }

    /// True when the join tasks have not heard the latest report.
    fn unannounced(&self) -> bool {
        self.announced != Some(self.report())
    }

    /// Applies a domain change to the partition's stream time (SPEC 5, per
    /// input partition): a snapshot record holds its timestamp back; any
    /// other record first releases a freeze, then advances to its timestamp
    /// (deletes do not advance). Returns the time before and after it.
    fn clock(&mut self, change: &Change, snapshot: bool) -> (Option<Micros>, Option<Micros>) {
        let ts = match change {
            Change::Event(e) => Some(e.timestamp),
            Change::Assign(a) => Some(a.assigned_at),
            Change::Unassign(_) => None,
        };
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
}

struct JoinTask {
    log: TaskLog,
    task: Task<ExperimentTask>,
    ckpt: Checkpoint,
    next_offset: i64,
    segment_start: i64,
    out: OutputBatch,
    drained: bool,
    watermarks: Watermarks,
    /// The partition's log end was checked against `next_offset`.
    log_checked: bool,
    dirty: bool,
}

impl JoinTask {
    /// Applies an input partition's time report; punctuates when the
    /// watermark advanced.
    fn observe(&mut self, inputs: &[(String, i32)], topic: &str, partition: i32, st: SourceTime) {
        if let Some(w) = self.watermarks.observe(inputs, topic, partition, st) {
            self.task.processor.advance_watermark(w, &mut self.out);
        }
    }
}

/// Looks up the end of a partition's log as last fetched (see
/// [`neonblue_topology::kafka::fetched_log_end`]).
pub type LogEnd<'a> = &'a dyn Fn(&str, i32) -> Option<i64>;

/// Fails when a partition's log ends before a position already applied: the
/// topic was deleted and re-created, or truncated. Skipping "re-deliveries"
/// then would silently drop new records.
fn check_log_end(topic: &str, partition: i32, applied_to: i64, end: Option<i64>) -> Result<()> {
    match end {
        Some(end) if end < applied_to => anyhow::bail!(
            "{topic}[{partition}] ends at offset {end}, but this application already processed it up to offset {applied_to}: the topic was deleted and re-created or truncated. Its new records would be skipped as re-deliveries; rebuild with `neonblue replay --reset` or use a fresh --app-id"
        ),
        _ => Ok(()),
    }
}

/// Where replays start emitting outputs, per input (topic, partition).
pub type OutputStart = HashMap<(String, i32), i64>;

/// Everything an instance owns: its tasks, clients and sinks.
pub struct Engine {
    ctx: ParseContext,
    topics: AppTopics,
    grace: Micros,
    db: StateDb,
    producer: ChangelogProducer,
    reader: PartitionReader,
    sink: ParquetSink,
    clickhouse: Option<ClickHouseSink>,
    rt: tokio::runtime::Runtime,
    routers: BTreeMap<u32, RouterTask>,
    joins: BTreeMap<i32, JoinTask>,
    inflight: Vec<DeliveryFuture>,
    output_start: OutputStart,
    /// Input records since the last commit.
    pub uncommitted: u64,
    /// When the last commit finished.
    pub last_commit: Instant,
}

impl Engine {
    /// An engine with no tasks yet.
    pub fn new(
        cfg: &Config,
        now: Micros,
        topics: AppTopics,
        db: StateDb,
        base: &rdkafka::ClientConfig,
        output_start: OutputStart,
    ) -> Result<Self> {
        let sink = ParquetSink::open(
            &cfg.output.url,
            crate::sink::parquet::ParquetSinkOptions {
                row_group_rows: cfg.output.row_group_rows,
                zstd_level: cfg.output.zstd_level,
                ..Default::default()
            },
        )?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(sink.root().check_access())?;
        Ok(Engine {
            ctx: ParseContext {
                source: cfg.source.clone(),
                now,
            },
            topics,
            grace: cfg.processing.grace_seconds as i64 * 1_000_000,
            db,
            producer: ChangelogProducer::new(base)?,
            reader: PartitionReader::new(base)?,
            sink,
            clickhouse: if cfg.clickhouse.url.is_empty() {
                None
            } else {
                Some(ClickHouseSink::connect(&cfg.clickhouse)?)
            },
            rt,
            routers: BTreeMap::new(),
            joins: BTreeMap::new(),
            inflight: Vec::new(),
            output_start,
            uncommitted: 0,
            last_commit: Instant::now(),
        })
    }

    /// The topics of the application.
    pub fn topics(&self) -> &AppTopics {
        &self.topics
    }

    /// Handles one consumed record (input or repartition). `log_end` tells
    /// where a partition's log ends, to tell re-deliveries from a re-created
    /// topic.
    pub fn on_message(&mut self, m: &BorrowedMessage<'_>, log_end: LogEnd<'_>) -> Result<()> {
        if m.topic() == self.topics.repartition {
            self.on_routed(m, log_end)
        } else {
            self.uncommitted += 1;
            self.on_input(m, log_end)
        }
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
        let index = self.router(topic, partition)?;
        let r = self.routers.get_mut(&index).expect("router restored");
        if r.next_offset.max(position.unwrap_or(i64::MIN)) >= end && !r.idle {
            r.idle = true;
            tracing::debug!(topic, partition, end, "input partition idle");
        }
        Ok(())
    }

    /// The router task of an input partition, restored if needed; returns its index.
    fn router(&mut self, topic: &str, partition: i32) -> Result<u32> {
        let index = self.topics.router_index(topic, partition)?;
        if !self.routers.contains_key(&index) {
            let r = self.restore_router(index, topic, partition)?;
            self.routers.insert(index, r);
        }
        Ok(index)
    }

    fn restore_router(&mut self, index: u32, topic: &str, partition: i32) -> Result<RouterTask> {
        let log = self.topics.router_log(index);
        let (ckpt, stats) = self.restore(&log)?;
        let payload: RouterPayload = if ckpt.payload.is_empty() {
            RouterPayload {
                output_from: self
                    .output_start
                    .get(&(topic.to_string(), partition))
                    .copied(),
                ..Default::default()
            }
        } else {
            decode(&ckpt.payload)?
        };
        let router = Router::load(
            &self.db,
            &log.ns,
            self.topics.repartition_partitions as u32,
            payload.counters.clone(),
        )?;
        tracing::info!(
            topic,
            partition,
            next_offset = payload.next_offset,
            records = stats.records,
            incremental = stats.incremental,
            "router task ready"
        );
        Ok(RouterTask {
            topic: topic.to_string(),
            partition,
            log,
            router,
            ckpt,
            next_offset: payload.next_offset,
            output_from: payload.output_from,
            time: payload.time,
            idle: false,
            announced: None,
            log_checked: false,
            dirty: false,
        })
    }

    fn join(&mut self, partition: i32) -> Result<&mut JoinTask> {
        if !self.joins.contains_key(&partition) {
            let t = self.restore_join(partition)?;
            self.joins.insert(partition, t);
        }
        Ok(self.joins.get_mut(&partition).expect("just inserted"))
    }

    fn restore_join(&mut self, partition: i32) -> Result<JoinTask> {
        let log = self.topics.join_log(partition);
        let (ckpt, stats) = self.restore(&log)?;
        let payload: JoinPayload = if ckpt.payload.is_empty() {
            JoinPayload::default()
        } else {
            decode(&ckpt.payload)?
        };
        let processor =
            ExperimentTask::load(&self.db, &log.ns, partition, self.grace, payload.meta)?
                .driven_by_watermark();
        tracing::info!(
            partition,
            next_offset = payload.next_offset,
            records = stats.records,
            incremental = stats.incremental,
            "join task ready"
        );
        Ok(JoinTask {
            log,
            task: Task::new(partition as u32, processor, payload.applied),
            ckpt,
            next_offset: payload.next_offset,
            segment_start: payload.next_offset,
            out: OutputBatch::default(),
            drained: payload.drained,
            watermarks: payload.watermarks,
            log_checked: false,
            dirty: false,
        })
    }

    /// Restores a task's trees and discards the objects of its unfinished segment.
    fn restore(&mut self, log: &TaskLog) -> Result<(Checkpoint, RestoreStats)> {
        let started = Instant::now();
        metrics::gauge!("neonblue_restoring_tasks").increment(1.0);
        let result = log.restore(&self.db, &self.reader, &self.producer);
        metrics::gauge!("neonblue_restoring_tasks").decrement(1.0);
        let (mut ckpt, stats) =
            result.with_context(|| format!("restoring {} from its changelogs", log.ns))?;
        metrics::counter!("neonblue_restore_records_total").increment(stats.records);
        if !ckpt.intent.is_empty() {
            let paths: Vec<object_store::path::Path> =
                ckpt.intent.iter().map(|n| n.as_str().into()).collect();
            self.rt.block_on(self.sink.delete_all(&paths))?;
            tracing::info!(task = %log.ns, objects = paths.len(), "discarded the objects of an unfinished segment");
            log.clear_intent(&self.db, &self.producer, &mut ckpt)?;
        }
        if stats.compensated > 0 {
            tracing::warn!(task = %log.ns, records = stats.compensated, "repaired the changelog tail of an unfinished commit");
        }
        tracing::debug!(task = %log.ns, ms = started.elapsed().as_millis() as u64, "restored");
        Ok((ckpt, stats))
    }

    fn on_input(&mut self, m: &BorrowedMessage<'_>, log_end: LogEnd<'_>) -> Result<()> {
        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
        let index = self.router(topic, partition)?;
        let Engine {
            ctx,
            topics,
            producer,
            routers,
            inflight,
            ..
        } = self;
        let (repartition, dlq) = (&topics.repartition, &topics.dlq);
        let r = routers.get_mut(&index).expect("router restored");
        if offset < r.next_offset {
            // Applied before a crash or a rebalance, provided the log still
            // holds what was applied.
            if !r.log_checked {
                check_log_end(topic, partition, r.next_offset, log_end(topic, partition))?;
                r.log_checked = true;
            }
            metrics::counter!("neonblue_redelivered_total", "stage" => "input").increment(1);
            return Ok(());
        }
        r.idle = false;
        let key = m.key().map(String::from_utf8_lossy);
        let value = m.payload().map(String::from_utf8_lossy);
        let pairs: Vec<(String, String)> = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            h.value
                                .map(|v| String::from_utf8_lossy(v).into_owned())
                                .unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let raw = RawRecord {
            topic,
            partition,
            offset,
            key: key.as_deref(),
            value: value.as_deref(),
            headers: if pairs.is_empty() {
                Headers::None
            } else {
                Headers::Pairs(&pairs)
            },
        };
        let mut parsed = parse_record(ctx, &raw);
        // Changes the envelope does not date are dated by the Kafka record.
        parsed.date_if_undated(
            m.timestamp()
                .to_millis()
                .and_then(|ms| ms.checked_mul(1000)),
        );
        r.next_offset = offset + 1;
        r.dirty = true;
        metrics::counter!("neonblue_records_total", "stage" => "input").increment(1);
        let hidden = r.output_from.is_some_and(|from| offset < from)
            && matches!(
                &parsed,
                Parsed::Change {
                    change: Change::Event(_),
                    ..
                }
            );
        if hidden {
            // A replay rebuilds assignments from the start but outputs events
            // only from its start offsets; hidden events still move the
            // partition's stream time, as in the full run.
            if let Parsed::Change {
                change, snapshot, ..
            } = &parsed
            {
                r.clock(change, *snapshot);
            }
            metrics::counter!("neonblue_replay_hidden_total").increment(1);
            return Ok(());
        }
        match &parsed {
            Parsed::Dead(d) => {
                metrics::counter!("neonblue_dead_letters_total", "reason" => d.reason.clone())
                    .increment(1);
                let mut headers = OwnedHeaders::new();
                if let Some(h) = m.headers() {
                    for h in h.iter() {
                        headers = headers.insert(Header {
                            key: h.key,
                            value: h.value,
                        });
                    }
                }
                let pstr = partition.to_string();
                let ostr = offset.to_string();
                for (k, v) in [
                    ("neonblue.reason", d.reason.as_str()),
                    ("neonblue.stage", d.stage),
                    ("neonblue.topic", topic),
                    ("neonblue.partition", pstr.as_str()),
                    ("neonblue.offset", ostr.as_str()),
                ] {
                    headers = headers.insert(Header {
                        key: k,
                        value: Some(v),
                    });
                }
                let mut rec = FutureRecord::<[u8], [u8]>::to(dlq).headers(headers);
                if let Some(k) = m.key() {
                    rec = rec.key(k);
                }
                if let Some(v) = m.payload() {
                    rec = rec.payload(v);
                }
                inflight.push(producer.send_record(rec)?);
            }
            Parsed::Skip(reason) => {
                metrics::counter!("neonblue_skipped_total", "reason" => reason.as_str())
                    .increment(1);
            }
            _ => {}
        }
        let origin = Origin {
            topic: Arc::from(topic),
            partition,
            offset,
        };
        if let Some((p, routed)) = r.router.route(origin, parsed) {
            let (before, after) = r.clock(&routed.change, routed.snapshot);
            let key = routed.change.user_id().as_bytes().to_vec();
            let bytes = Repartitioned::Record {
                routed,
                before,
                after,
            }
            .encode();
            inflight.push(producer.send(repartition, p as i32, &key, Some(&bytes))?);
            metrics::counter!("neonblue_records_total", "stage" => "routed").increment(1);
        }
        Ok(())
    }

    fn on_routed(&mut self, m: &BorrowedMessage<'_>, log_end: LogEnd<'_>) -> Result<()> {
        let (partition, offset) = (m.partition(), m.offset());
        let repartition = self.topics.repartition.clone();
        let inputs = self.topics.inputs.clone();
        let t = self.join(partition)?;
        if offset < t.next_offset {
            if !t.log_checked {
                check_log_end(
                    &repartition,
                    partition,
                    t.next_offset,
                    log_end(&repartition, partition),
                )?;
                t.log_checked = true;
            }
            metrics::counter!("neonblue_redelivered_total", "stage" => "repartition").increment(1);
            return Ok(());
        }
        let record = Repartitioned::decode(m.payload())
            .with_context(|| format!("{repartition}[{partition}] at offset {offset}"))?;
        t.next_offset = offset + 1;
        t.dirty = true;
        let (routed, before_time, after_time) = match record {
            Repartitioned::Watermark {
                topic,
                partition,
                time,
            } => {
                t.observe(&inputs, &topic, partition, time);
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
        if t.task.applied.is_applied(&topic, p, o) {
            // Re-produced by a router that restarted from its checkpoint.
            metrics::counter!("neonblue_redelivered_total", "stage" => "routed").increment(1);
            return Ok(());
        }
        let before = t.task.processor.meta.counters.clone();
        let report = |position, time| SourceTime {
            position,
            time,
            idle: false,
        };
        t.observe(&inputs, &topic, p, report(o, before_time));
        t.task
            .processor
            .process_from(routed, before_time, &mut t.out);
        t.task.applied.mark(&topic, p, o);
        t.observe(&inputs, &topic, p, report(o + 1, after_time));
        let after = &t.task.processor.meta.counters;
        metrics::counter!("neonblue_records_total", "stage" => "joined").increment(1);
        metrics::counter!("neonblue_late_events_total").increment(after.late - before.late);
        if after.duplicates > before.duplicates {
            metrics::counter!("neonblue_skipped_total", "reason" => SkipReason::Duplicate.as_str())
                .increment(after.duplicates - before.duplicates);
        }
        Ok(())
    }

    /// True when nothing changed since the last commit.
    pub fn is_clean(&self) -> bool {
        self.inflight.is_empty()
            && self.routers.values().all(|r| !r.dirty && !r.unannounced())
            && self.joins.values().all(|t| !t.dirty)
    }

    /// Sends each router's stream time to every join task when it changed
    /// since the last report (SPEC 5.1: at least every commit).
    fn announce_watermarks(&mut self) -> Result<()> {
        let parts = self.topics.repartition_partitions;
        for r in self.routers.values_mut().filter(|r| r.unannounced()) {
            let time = r.report();
            let bytes = Repartitioned::Watermark {
                topic: r.topic.clone(),
                partition: r.partition,
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
            r.announced = Some(time);
            r.dirty = true;
            let labels = [
                ("topic", r.topic.clone()),
                ("partition", r.partition.to_string()),
            ];
            metrics::gauge!("neonblue_input_idle", &labels).set(if time.idle { 1.0 } else { 0.0 });
            if let Some(t) = time.time {
                metrics::gauge!("neonblue_input_stream_time_seconds", &labels).set(t as f64 / 1e6);
            }
        }
        Ok(())
    }

    /// Commits every dirty task: repartition/DLQ deliveries, then outputs,
    /// changelogs, checkpoints and local state (see [`commit_tasks`]).
    /// Returns the positions to commit to the consumer group.
    pub fn commit(&mut self) -> Result<Vec<(String, i32, i64)>> {
        let started = Instant::now();
        self.announce_watermarks()?;
        ChangelogProducer::await_all(std::mem::take(&mut self.inflight))
            .context("producing to the repartition/DLQ topics")?;
        // Encode the join tasks' segments in parallel.
        let sink = &self.sink;
        let dirty: Vec<&mut JoinTask> = self.joins.values_mut().filter(|t| t.dirty).collect();
        let encoded: Vec<Result<Vec<EncodedObject>>> = std::thread::scope(|s| {
            let handles: Vec<_> = dirty
                .iter()
                .map(|t| {
                    let part = format!("p{:04}", t.task.partition);
                    let (seq, out) = (t.segment_start as u64, &t.out);
                    s.spawn(move || {
                        sink.encode(&Segment {
                            part: &part,
                            seq,
                            batch: out,
                        })
                        .map_err(anyhow::Error::from)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("encoder panicked")))
                })
                .collect()
        });
        let mut objects = Vec::new();
        let mut outs: Vec<&OutputBatch> = Vec::new();
        let mut commits = Vec::new();
        let mut join_ids = Vec::new();
        for (t, enc) in self.joins.values_mut().filter(|t| t.dirty).zip(encoded) {
            let enc = enc?;
            let mut batch = CommitBatch::default();
            t.task.processor.add_changes(&mut batch);
            let mut ckpt = t.ckpt.clone();
            ckpt.intent = enc.iter().map(|o| o.path.to_string()).collect();
            ckpt.payload = encode(&JoinPayload {
                next_offset: t.next_offset,
                meta: t.task.processor.meta.clone(),
                applied: t.task.applied.clone(),
                drained: t.drained,
                watermarks: t.watermarks.clone(),
            });
            objects.extend(enc);
            let task = t.task.partition.to_string();
            if let Some(w) = t.watermarks.get() {
                metrics::gauge!("neonblue_watermark_seconds", "task" => task.clone())
                    .set(w as f64 / 1e6);
            }
            if let Some((topic, p)) = t.watermarks.held_back_by(&self.topics.inputs) {
                metrics::gauge!("neonblue_watermark_held_back_by", "task" => task, "topic" => topic, "partition" => p.to_string())
                    .set(1.0);
            }
            metrics::gauge!("neonblue_pending_events", "partition" => t.task.partition.to_string())
                .set(t.task.processor.pending_count() as f64);
            metrics::gauge!("neonblue_open_windows", "partition" => t.task.partition.to_string())
                .set(t.task.processor.open_windows() as f64);
            join_ids.push(t.task.partition as i32);
            outs.push(&t.out);
            commits.push(TaskCommit {
                log: &t.log,
                checkpoint: ckpt,
                batch,
            });
        }
        let mut router_ids = Vec::new();
        for (id, r) in self.routers.iter_mut().filter(|(_, r)| r.dirty) {
            let mut batch = CommitBatch::default();
            r.router.add_changes(&mut batch);
            let mut ckpt = r.ckpt.clone();
            ckpt.payload = encode(&RouterPayload {
                next_offset: r.next_offset,
                counters: r.router.counters.clone(),
                output_from: r.output_from,
                time: r.time.clone(),
            });
            router_ids.push(*id);
            commits.push(TaskCommit {
                log: &r.log,
                checkpoint: ckpt,
                batch,
            });
        }
        if commits.is_empty() {
            self.last_commit = Instant::now();
            return Ok(Vec::new());
        }
        let (sink, rt, clickhouse) = (&self.sink, &self.rt, self.clickhouse.as_ref());
        let committed = commit_tasks::<anyhow::Error>(&self.producer, &self.db, commits, || {
            rt.block_on(sink.put_all(&objects))?;
            if let Some(ch) = clickhouse {
                for out in &outs {
                    ch.insert(out)?;
                }
            }
            Ok(())
        })?;
        let mut committed = committed.into_iter();
        let mut positions = Vec::new();
        for id in join_ids {
            let t = self.joins.get_mut(&id).expect("committed task");
            t.ckpt = committed.next().expect("one checkpoint per task");
            t.segment_start = t.next_offset;
            t.dirty = false;
            t.out.events.clear();
            t.out.aggregates.clear();
            t.out.user_daily.clear();
            positions.push((self.topics.repartition.clone(), id, t.next_offset));
        }
        for id in router_ids {
            let r = self.routers.get_mut(&id).expect("committed router");
            r.ckpt = committed.next().expect("one checkpoint per task");
            r.dirty = false;
            positions.push((r.topic.clone(), r.partition, r.next_offset));
        }
        tracing::debug!(
            ms = started.elapsed().as_millis() as u64,
            input_records = self.uncommitted,
            tasks = positions.len(),
            "committed"
        );
        metrics::histogram!("neonblue_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("neonblue_commits_total").increment(1);
        metrics::gauge!("neonblue_state_size_bytes").set(self.db.size_on_disk() as f64);
        self.uncommitted = 0;
        self.last_commit = Instant::now();
        Ok(positions)
    }

    /// Forgets the tasks of revoked partitions (after a commit).
    pub fn release(&mut self, revoked: &[(String, i32)]) {
        for (topic, partition) in revoked {
            if *topic == self.topics.repartition {
                self.joins.remove(partition);
            } else {
                self.routers
                    .retain(|_, r| !(r.topic == *topic && r.partition == *partition));
            }
        }
        metrics::gauge!("neonblue_tasks", "kind" => "join").set(self.joins.len() as f64);
        metrics::gauge!("neonblue_tasks", "kind" => "router").set(self.routers.len() as f64);
    }

    /// Position of a repartition partition's task, restoring it if needed.
    pub fn join_position(&mut self, partition: i32) -> Result<i64> {
        Ok(self.join(partition)?.next_offset)
    }

    /// End of input (`--until-end`, replays): resolves every pending event
    /// and closes every window of the given join partitions.
    pub fn drain(&mut self, partitions: &[i32]) -> Result<()> {
        for &p in partitions {
            let t = self.join(p)?;
            if !t.drained {
                t.task.processor.end_of_input(&mut t.out);
                t.drained = true;
                t.dirty = true;
            }
        }
        Ok(())
    }

    /// True when every join task of the application (held here or not) has
    /// committed a drained checkpoint: the whole group reached the end.
    pub fn all_joins_drained(&self) -> Result<bool> {
        for p in 0..self.topics.repartition_partitions {
            let drained = match self.joins.get(&p) {
                Some(t) => t.drained && !t.dirty,
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
        let mut s = Summary::default();
        for r in self.routers.values() {
            r.router.counters.add_to(&mut s);
        }
        for t in self.joins.values() {
            let c = &t.task.processor.meta.counters;
            s.events_emitted += c.events_emitted;
            s.assignments_applied += c.assignments_applied;
            s.add_skipped(SkipReason::Duplicate, c.duplicates);
        }
        s
    }
}
