//! The consumer-group loop of one instance.

use super::engine::{Engine, OutputStart};
use super::freeze::FreezeWatch;
use super::gauges;
use super::pipeline::{AbortOnDrop, Batches, Feed, Item};
use super::prepare::Prepare;
use super::topics::AppTopics;
use crate::config::{Config, KafkaConfig};
use crate::domain::Micros;
use crate::domain::Summary;
use crate::metric_names as names;
use crate::ops::{Health, Shutdown};
use anyhow::{anyhow, bail, Context, Result};
use neonblue_state::{decode, encode, StateDb};
use neonblue_topology::alignment::Alignment;
use neonblue_topology::kafka::{
    consumer_config, ensure_topics, fetched_log_end, group_lag, query_log_bounds, queued_events,
    set_unless_given, PartitionQueues,
};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a group run needs.
pub struct GroupRun {
    /// Configuration (kafka, source, processing, output).
    pub config: Config,
    /// Wall clock for the "more than 24 h ahead" check.
    pub now: Micros,
    /// Stop once every input record has been processed (drain windows first).
    pub until_end: bool,
    /// Replays: per input partition, the first offset whose events are output.
    pub output_start: OutputStart,
    /// Show a progress bar (records routed by the group, with ETA).
    pub progress: bool,
    /// Loop liveness for `/healthz`.
    pub health: Health,
    /// Set by SIGTERM.
    pub shutdown: Shutdown,
}

type Shared = Arc<Mutex<Engine>>;

struct GroupContext {
    engine: Shared,
    feed: Arc<Feed>,
    fatal: Mutex<Option<anyhow::Error>>,
    /// Commits wait after a freeze (the partitions may be lost).
    freeze: FreezeWatch,
}

impl GroupContext {
    /// May a commit of the partitions held start now: not after a freeze
    /// until the group would have told of a loss, nor once it has.
    fn may_commit(&self, consumer: &BaseConsumer<GroupContext>) -> bool {
        self.freeze.allows_commit() && !consumer.assignment_lost()
    }

    fn fail(&self, e: anyhow::Error) {
        *self.fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }
}

impl ClientContext for GroupContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        // End-of-partition is how idleness is detected (SPEC 5.1), not an error.
        neonblue_topology::kafka::log_client_error(&error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let revoked: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        // Lost, not given up: another member may hold them already. Their
        // records still queued are dropped, and their tasks given up
        // without a commit, which would land after the new holder's restore
        // (a later restore could take its checkpoint for the task's last).
        let lost = consumer.assignment_lost();
        if lost {
            lock(&self.engine).lose(&revoked);
        }
        // Every record polled before the revocation is applied first.
        if let Err(e) = self.feed.sync() {
            if self.feed.stopped() {
                tracing::info!(partitions = ?revoked, "partitions revoked after the last commit");
            } else {
                tracing::warn!(partitions = ?revoked, "partitions revoked after the apply thread stopped: nothing more is committed");
                self.fail(e);
            }
            return;
        }
        let mut engine = lock(&self.engine);
        if lost {
            match engine.discard(&revoked) {
                Ok(dirty_tasks) => tracing::warn!(
                    partitions = ?revoked,
                    dirty_tasks,
                    "partitions lost (this member's session expired or it was fenced): their work since the last commit is discarded, and whoever holds them next redoes it"
                ),
                Err(e) => {
                    metrics::counter!(names::COMMIT_FAILURES_TOTAL, "stage" => "commit")
                        .increment(1);
                    self.fail(e);
                }
            }
            return;
        }
        tracing::info!(
            partitions = ?revoked,
            commit_in_flight = engine.commit_in_flight(),
            "partitions revoked: committing before release"
        );
        match engine.commit() {
            Ok(positions) => {
                commit_positions(consumer, &positions, CommitMode::Sync);
                engine.release(&revoked);
            }
            Err(e) => {
                metrics::counter!(names::COMMIT_FAILURES_TOTAL, "stage" => "commit").increment(1);
                self.fail(e);
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                tracing::info!(partitions = ?parts, "partitions assigned");
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// Commits the group offsets of committed tasks. A failure is only logged:
/// state and checkpoints are committed already, so whoever reads these
/// partitions next skips what was applied (a rebalance in progress makes
/// brokers refuse commits of the old generation).
fn commit_positions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    positions: &[(String, i32, i64)],
    mode: CommitMode,
) {
    if positions.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (t, p, o) in positions {
        if let Err(e) = tpl.add_partition_offset(t, *p, Offset::Offset(*o)) {
            tracing::warn!(topic = %t, partition = p, error = %e, "cannot commit this offset");
        }
    }
    if let Err(e) = consumer.commit(&tpl, mode) {
        metrics::counter!(names::COMMIT_FAILURES_TOTAL, "stage" => "offsets").increment(1);
        tracing::warn!(error = %e, "offset commit failed (state is committed; the next reader skips what was applied)");
    }
}

/// Identity of the state directory in Kafka mode.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KafkaJob {
    /// The application id it serves.
    pub app_id: String,
}

/// Metadata key of the [`KafkaJob`].
pub const KAFKA_JOB_KEY: &str = "kafka-job";

/// librdkafka's `fetch.wait.max.ms` for the group's consumer, unless the
/// configuration sets it: brokers that hold a fetch for the whole wait
/// (Tansu) would stall the repartition round trip; short waits cost only
/// idle requests.
const FETCH_WAIT_MAX_MS: &str = "50";

/// librdkafka's `queued.max.messages.kbytes` for the group's consumer,
/// unless the configuration sets it: librdkafka stops fetching for an input
/// partition once its queue holds about this much (or `queued.min.messages`
/// records), and likewise for the consumer's own queue (repartition
/// records); so memory grows with the input partitions assigned. (The
/// default 64 MiB is meant for one queue; with 16 MiB, catch-ups of 1M
/// envelopes over 1 and 4 input partitions ran as fast, and over 4 with
/// about 225 MiB less peak memory.)
const PREFETCH_KBYTES: &str = "16384";

/// The settings of a consumer that reads input and repartition records, as
/// the group's consumer does (before its group settings).
pub fn round_trip_consumer_config(base: &ClientConfig) -> ClientConfig {
    let mut config = consumer_config(base);
    set_unless_given(&mut config, "fetch.wait.max.ms", FETCH_WAIT_MAX_MS);
    config
}

/// Runs one instance of the application until SIGTERM (or, with
/// `until_end`, until the group has processed every input record).
/// Returns the accounting of the tasks held at exit.
pub fn run_group(run: GroupRun) -> Result<Summary> {
    let cfg = &run.config;
    let app_id = cfg.processing.app_id.clone();
    let topics = AppTopics::discover(cfg)?;
    let base = super::client_config(&cfg.kafka, &app_id);
    ensure_topics(
        &base,
        cfg.kafka.replication_factor,
        &topics.internal_specs(),
    )?;

    let db = StateDb::open(&cfg.processing.state_dir, cfg.state.cache_bytes).with_context(|| {
        format!(
            "cannot open state directory {} (is another instance using it? give each instance its own --state)",
            cfg.processing.state_dir.display()
        )
    })?
    .keeping_free(cfg.state.min_free_bytes);
    let job = KafkaJob {
        app_id: app_id.clone(),
    };
    match db.get_meta(KAFKA_JOB_KEY)? {
        Some(b) if decode::<KafkaJob>(&b)? != job => bail!(
            "state directory {} belongs to another application; use a fresh --state",
            cfg.processing.state_dir.display()
        ),
        Some(_) => {}
        None => {
            if db.get_meta(crate::drivers::file::JOB_KEY)?.is_some() {
                bail!(
                    "state directory {} holds a file-mode job; use a fresh --state",
                    cfg.processing.state_dir.display()
                );
            }
            db.put_meta_durable(KAFKA_JOB_KEY, Some(&encode(&job)))?;
        }
    }

    let engine: Shared = Arc::new(Mutex::new(Engine::new(
        cfg,
        topics.clone(),
        db,
        &base,
        run.output_start.clone(),
    )?));
    let prepare = Prepare::new(cfg, run.now, topics.clone());
    let (feed, batches) = Feed::new();
    let feed = Arc::new(feed);
    let context = GroupContext {
        engine: engine.clone(),
        feed: feed.clone(),
        fatal: Mutex::new(None),
        freeze: FreezeWatch::start(cfg.kafka.session_timeout)?,
    };
    let mut config = round_trip_consumer_config(&base);
    set_unless_given(&mut config, "queued.max.messages.kbytes", PREFETCH_KBYTES);
    let mut consumer: BaseConsumer<GroupContext> = config
        .set("group.id", &app_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // End-of-partition events tell when an input partition is idle (SPEC 5.1).
        .set("enable.partition.eof", "true")
        .set(
            "session.timeout.ms",
            cfg.kafka.session_timeout.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (cfg.kafka.session_timeout.as_millis() / 4)
                .max(100)
                .to_string(),
        )
        .create_with_context(context)
        .context("cannot create the consumer")?;
    // This thread polls; it sleeps while every queue it reads is empty.
    let reader = std::thread::current();
    consumer.set_nonempty_callback({
        let reader = reader.clone();
        move || reader.unpark()
    });
    let consumer = Arc::new(consumer);
    // Input partitions are read from queues of their own, so that one can
    // be held back (watermark alignment) by not reading it; the queues are
    // indexed by router task.
    let mut inputs = PartitionQueues::split(&consumer, &topics.input_partitions(), &reader)?;
    let mut subscription: Vec<&str> = topics.inputs.iter().map(|(t, _)| t.as_str()).collect();
    subscription.push(&topics.repartition);
    consumer.subscribe(&subscription)?;
    tracing::info!(group = %app_id, topics = ?subscription, "joined the consumer group (the first assignment may take a while)");

    let outcome = std::thread::scope(|scope| -> Result<Summary> {
        let applier = std::thread::Builder::new()
            .name("apply".into())
            .spawn_scoped(scope, || {
                apply_items(batches, &engine, &consumer, &cfg.kafka)
            })
            .context("cannot start the apply thread")?;
        // A failure or panic here stops the apply thread at once.
        let _abort = AbortOnDrop(&feed);
        let bar = crate::ops::progress::records_bar(run.progress);
        let polled = poll_records(
            &run,
            &consumer,
            &mut inputs,
            &engine,
            &feed,
            &prepare,
            &topics,
            &bar,
        );
        bar.finish_and_clear();
        let left = polled
            .and_then(|()| feed.sync())
            .and_then(|()| leave(&consumer, &engine));
        if left.is_ok() {
            feed.stop();
        } else {
            feed.abort();
        }
        let applied = applier
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the apply thread panicked")));
        match (left, applied) {
            (Ok(summary), Ok(())) => Ok(summary),
            (Err(e), Ok(())) => Err(e),
            // The apply thread's failure is the cause of what followed it.
            (left, Err(cause)) => {
                if let Err(e) = left {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "failed after the apply thread had failed"
                    );
                }
                Err(cause)
            }
        }
    });
    let summary = match outcome {
        Ok(summary) => summary,
        Err(e) => {
            // A commit in flight that failed is the cause of what followed it.
            let e = match lock(&engine).failed_landing() {
                Some(cause) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "failed after the commit in flight had failed"
                    );
                    cause
                }
                None => e,
            };
            tracing::error!(
                error = format!("{e:#}"),
                "stopping without a final commit; a restart resumes from the last one"
            );
            return Err(e);
        }
    };
    // The input queues must go first: each holds the consumer, and a queue
    // destroyed after its consumer would outlive librdkafka's handle.
    drop(inputs);
    drop(consumer);
    tracing::info!("left the group");
    Ok(summary)
}

/// How long the consumer thread sleeps, with nothing to read, before it
/// calls the input idle (and the apply thread may commit).
const POLL_WAIT: Duration = Duration::from_millis(100);
/// Records (or events) taken from one queue before the next one is read.
const TURN: usize = 256;

/// The consumer thread: polls, prepares and feeds records to the apply
/// thread until SIGTERM, a failure or (`until_end`) the end of input.
///
/// Each turn reads the consumer's queue (repartition records, the group's
/// events), then the queue of every input partition not held back, up to
/// [`TURN`] each; a turn that finds nothing sleeps until a queue receives
/// something.
#[allow(clippy::too_many_arguments)]
fn poll_records(
    run: &GroupRun,
    consumer: &BaseConsumer<GroupContext>,
    inputs: &mut PartitionQueues<GroupContext>,
    engine: &Shared,
    feed: &Feed,
    prepare: &Prepare,
    topics: &AppTopics,
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    let cfg = &run.config;
    let base = super::client_config(&cfg.kafka, &topics.app_id);
    let started = Instant::now();
    let mut processed: u64 = 0;
    let mut last_check = Instant::now();
    let mut last_lag = Instant::now();
    let mut lag_shown = BTreeSet::new();
    let mut alignment = Alignment::new(ALIGNMENT_DRIFT);
    let mut unaligned: u32 = 0;
    // Since when no queue had anything (one clock read per empty turn).
    let mut quiet_since: Option<Instant> = None;
    loop {
        run.health.beat();
        if let Some(e) = consumer
            .context()
            .fatal
            .lock()
            .ok()
            .and_then(|mut f| f.take())
        {
            return Err(e);
        }
        if run.shutdown.requested() {
            return Ok(());
        }
        if cfg.kafka.max_records_per_second > 0 {
            let allowed = started.elapsed().as_secs_f64() * cfg.kafka.max_records_per_second as f64;
            if processed as f64 > allowed {
                feed.flush()?;
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        }
        let mut got = 0usize;
        let mut events = 0usize;
        let mut failed = false;
        let mut take = |polled: KafkaResult<BorrowedMessage<'_>>| -> Result<()> {
            got += 1;
            match polled {
                Ok(m) => {
                    processed += 1;
                    unaligned += 1;
                    let record = prepare.record(&m)?;
                    if let Some((router, time)) = record.input_time() {
                        alignment.observe(&router, time);
                    }
                    feed.push(Item::Record(record))?;
                }
                Err(KafkaError::PartitionEOF(p)) => {
                    // Live, partitions reach their end after every fetch:
                    // that is no reason to commit (the interval or an idle
                    // input is).
                    on_partition_end(consumer, feed, topics, p)?;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "consumer error");
                    failed = true;
                }
            }
            Ok(())
        };
        for _ in 0..TURN {
            match consumer.poll(Duration::ZERO) {
                Some(polled) => take(polled)?,
                // It served an event that is not a record: more may wait.
                None if queued_events(consumer) > 0 => events += 1,
                None => break,
            }
        }
        for queue in inputs.readable() {
            for _ in 0..TURN {
                match queue.poll(Duration::ZERO) {
                    Some(polled) => take(polled)?,
                    None => break,
                }
            }
        }
        // Events are not input: only records end a quiet spell (librdkafka's
        // logs can come faster than `POLL_WAIT`).
        let idle = if got > 0 {
            quiet_since = None;
            failed
        } else if feed.has_pending() {
            // Gathered records wait for their hand-off only while more are
            // ready at once.
            feed.flush()?;
            false
        } else {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            let waited = since.elapsed();
            if waited >= POLL_WAIT {
                quiet_since = None;
                true
            } else {
                if events == 0 {
                    // A queue turning non-empty wakes this thread.
                    std::thread::park_timeout(POLL_WAIT - waited);
                }
                false
            }
        };
        if idle {
            feed.push(Item::Idle)?;
            feed.flush()?;
        }
        if idle || unaligned >= ALIGN_EVERY {
            unaligned = 0;
            // Only the pace depends on it: a failed step is not a failed run.
            if let Err(e) = align(consumer, topics, &mut alignment, inputs) {
                tracing::warn!(error = %e, "cannot align the input partitions");
            }
        }
        // One clock read per loop turn, shared by the checks below.
        let now = Instant::now();
        if now.saturating_duration_since(last_lag) >= Duration::from_secs(5) {
            last_lag = now;
            report_lag(consumer, &mut lag_shown);
        }
        // Three round trips to the brokers (committed offsets, log starts and
        // ends): only for the bar, or for `--until-end` once the input seems
        // to have run dry (then a fetch confirms the ends they gave).
        let awaiting_end = run.until_end && idle;
        let every = if awaiting_end {
            UNTIL_END_CHECK
        } else {
            PROGRESS_CHECK
        };
        if (run.progress || awaiting_end) && now.saturating_duration_since(last_check) >= every {
            last_check = now;
            match group_progress(consumer, topics) {
                Ok((done, total)) => {
                    bar.set_length(total);
                    bar.set_position(done);
                    if awaiting_end
                        && done >= total
                        && end_confirmed(&base, engine, consumer, topics, feed)?
                    {
                        return Ok(());
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the group's progress"),
            }
        }
    }
}

/// How far (event time) an input partition may be read ahead of the
/// slowest one that still has unread records before it is held back: further
/// ahead, its events would only wait for the watermark, in state.
const ALIGNMENT_DRIFT: Micros = crate::time::HOUR;
/// Records read between two alignment steps.
const ALIGN_EVERY: u32 = 1024;

/// Holds back the input partitions read too far ahead of the slowest one
/// that still has unread records, and releases them once it has caught up
/// ([`Alignment`], [`PartitionQueues`]). Only the pace changes: outputs never
/// depend on it. Alignment is per instance: partitions another instance
/// reads are not compared.
fn align(
    consumer: &BaseConsumer<GroupContext>,
    topics: &AppTopics,
    alignment: &mut Alignment<u32>,
    inputs: &mut PartitionQueues<GroupContext>,
) -> Result<()> {
    if alignment.is_empty() {
        return Ok(());
    }
    // The position of every assigned partition, by router task: a router
    // missing here was given up in a rebalance.
    let mut positions: BTreeMap<u32, Option<i64>> = BTreeMap::new();
    for e in consumer.position()?.elements() {
        if let Ok(router) = topics.router_index(e.topic(), e.partition()) {
            positions.insert(router, e.offset().to_raw().filter(|o| *o >= 0));
        }
    }
    for router in alignment.retain(|r| positions.contains_key(r)) {
        inputs.hold(router as usize, false);
    }
    // Unread records: a position before the end of the last fetch. An
    // unknown position or end (a partition just assigned, not read from
    // yet) counts as nothing to read, so it never holds others back.
    let unread = |r: &u32| {
        let Some((Some(position), Some((t, p)))) =
            positions.get(r).map(|pos| (*pos, topics.router_input(*r)))
        else {
            return false;
        };
        fetched_log_end(consumer.client(), t, p).is_some_and(|end| position < end)
    };
    let steps = alignment.decide(unread);
    if !(steps.hold.is_empty() && steps.release.is_empty()) {
        tracing::debug!(hold = ?steps.hold, release = ?steps.release, "aligning input partitions (router tasks)");
    }
    for router in steps.hold {
        inputs.hold(router as usize, true);
    }
    for router in steps.release {
        inputs.hold(router as usize, false);
    }
    Ok(())
}

/// The apply thread: applies the fed items in order and commits as the
/// configuration says (SPEC 8), until [`Item::Stop`] or a failure.
fn apply_items(
    batches: Batches,
    engine: &Shared,
    consumer: &BaseConsumer<GroupContext>,
    kafka: &KafkaConfig,
) -> Result<()> {
    let log_end = |t: &str, p: i32| fetched_log_end(consumer.client(), t, p);
    let mut synced = Vec::new();
    while let Some(batch) = batches.next() {
        let mut e = lock(engine);
        let mut idle = false;
        // The whole assignment is lost, and the revocation callback has not
        // run yet: its records are dropped (applying them could restore a
        // task another member holds already).
        let lost = consumer.assignment_lost();
        for item in batch {
            match item {
                Item::Record(_) | Item::InputEnd { .. } if lost => {}
                Item::Record(record) => e.apply(record, &log_end)?,
                Item::InputEnd {
                    topic,
                    partition,
                    end,
                    position,
                } => e.on_input_end(&topic, partition, end, position)?,
                Item::Idle => idle = true,
                Item::Sync(done) => synced.push(done),
                Item::Stop => return Ok(()),
            }
        }
        if batches.aborted() {
            return Ok(());
        }
        let may_start = || !batches.syncing() && consumer.context().may_commit(consumer);
        commit_if_due(&mut e, consumer, kafka, idle, may_start).inspect_err(|_| {
            metrics::counter!(names::COMMIT_FAILURES_TOTAL, "stage" => "commit").increment(1);
        })?;
        // Everything fed before them is applied, and nothing failed.
        for done in synced.drain(..) {
            let _ = done.send(());
        }
    }
    Ok(())
}

/// Gives the group the offsets of a commit that landed in the background,
/// and (if `may_start`) starts the next commit when it is due:
/// `commit_records` records, the interval, the cache's share of uncommitted
/// state, or an idle poll.
fn commit_if_due(
    e: &mut Engine,
    consumer: &BaseConsumer<GroupContext>,
    kafka: &KafkaConfig,
    idle: bool,
    may_start: impl Fn() -> bool,
) -> Result<()> {
    commit_positions(consumer, &e.take_landed()?, CommitMode::Async);
    let due = !e.is_clean()
        && (e.uncommitted.reached(kafka.commit_records)
            || e.last_commit.elapsed() >= kafka.commit_interval
            || e.wants_commit()
            || idle);
    if !due || !may_start() {
        return Ok(());
    }
    // One commit lands at a time. The wait for the one in flight may span
    // a freeze: ask again after it.
    e.finish_commit_in_flight()?;
    commit_positions(consumer, &e.take_landed()?, CommitMode::Async);
    if may_start() {
        // Processing goes on while it lands.
        let positions = e.commit_in_background()?;
        commit_positions(consumer, &positions, CommitMode::Async);
    }
    Ok(())
}

/// The last commit, then leaving the group (the revocation callback finds
/// every task committed and releases it). Returns the accounting of the
/// tasks held. After a freeze it first waits (serving the group's events)
/// until the group would have told of a loss; lost partitions are not
/// committed.
fn leave(consumer: &BaseConsumer<GroupContext>, engine: &Shared) -> Result<Summary> {
    while !consumer.context().freeze.allows_commit() {
        // Records polled here are not applied, so not committed either.
        let _ = consumer.poll(Duration::from_millis(100));
    }
    if consumer.assignment_lost() {
        tracing::warn!("partitions lost before the last commit: their work since the previous one is not committed");
    } else {
        let positions = lock(engine).commit()?;
        commit_positions(consumer, &positions, CommitMode::Sync);
    }
    let summary = lock(engine).summary();
    consumer.unsubscribe();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if consumer.poll(Duration::from_millis(100)).is_none()
            && consumer.assignment()?.count() == 0
        {
            break;
        }
    }
    Ok(summary)
}

/// How often the progress bar asks the brokers where the group stands.
const PROGRESS_CHECK: Duration = Duration::from_secs(1);
/// How often `--until-end` asks whether the group is done, while no records
/// arrive: a run ends at most this long after its last commit lands.
const UNTIL_END_CHECK: Duration = Duration::from_millis(200);

/// librdkafka reports the end of a partition by number only: every assigned
/// input partition with that number whose fetched log end this instance has
/// read up to is idle (the repartition topic's ends are not input ends).
fn on_partition_end(
    consumer: &BaseConsumer<GroupContext>,
    feed: &Feed,
    topics: &AppTopics,
    partition: i32,
) -> Result<()> {
    let assignment = consumer.assignment()?;
    let positions = consumer.position()?;
    for e in assignment.elements() {
        if e.partition() != partition || e.topic() == topics.repartition {
            continue;
        }
        let Some(end) = fetched_log_end(consumer.client(), e.topic(), partition) else {
            continue;
        };
        let position = positions
            .find_partition(e.topic(), partition)
            .and_then(|p| p.offset().to_raw())
            .filter(|o| *o >= 0);
        feed.push(Item::InputEnd {
            topic: e.topic().to_string(),
            partition,
            end,
            position,
        })?;
    }
    Ok(())
}

/// The engine; after a panic while it was held, one that commits nothing
/// more.
fn lock(engine: &Shared) -> std::sync::MutexGuard<'_, Engine> {
    engine.lock().unwrap_or_else(|poisoned| {
        let mut engine = poisoned.into_inner();
        engine.mark_failed();
        engine
    })
}

/// (records of every input partition committed by the group, records in them).
fn group_progress<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topics: &AppTopics,
) -> Result<(u64, u64)> {
    let timeout = Duration::from_secs(10);
    let partitions = topics.input_partitions();
    let mut tpl = TopicPartitionList::new();
    for (t, p) in &partitions {
        tpl.add_partition(t, *p);
    }
    let committed = consumer.committed_offsets(tpl, timeout)?;
    let bounds = query_log_bounds(consumer, &partitions, timeout)?;
    let (mut done, mut total) = (0u64, 0u64);
    for e in committed.elements() {
        let Some(&(low, high)) = bounds.get(&(e.topic().to_string(), e.partition())) else {
            bail!("no log bounds for {}[{}]", e.topic(), e.partition());
        };
        let pos = e
            .offset()
            .to_raw()
            .filter(|o| *o >= 0)
            .unwrap_or(low)
            .clamp(low, high);
        done += (pos - low) as u64;
        total += (high - low) as u64;
    }
    Ok((done, total))
}

/// Once the cheap check says the group is done: confirms that every input
/// partition is committed to its end, then finishes this instance's join
/// tasks ([`finish_if_caught_up`]); true once the whole group is drained.
/// A failed confirmation is only logged (not done yet); reading the other
/// join tasks' checkpoints retries what the brokers recover from, then fails.
///
/// The ends come from a fetch, not from ListOffsets alone ([`group_lag`]):
/// some brokers answer ListOffsets with a stale end (Tansu: the first offset
/// of the last batch, plus one), and an end taken too early would drain the
/// join tasks before the last batch reached them. An end no fetch confirmed
/// counts as not reached.
fn end_confirmed(
    base: &ClientConfig,
    engine: &Shared,
    consumer: &BaseConsumer<GroupContext>,
    topics: &AppTopics,
    feed: &Feed,
) -> Result<bool> {
    let committed = group_lag(base, &topics.app_id, &topics.input_partitions())
        .map(|lags| lags.iter().all(|l| l.end_fetched && l.lag() == 0));
    match committed {
        Ok(true) => {}
        Ok(false) => return Ok(false),
        Err(e) => {
            tracing::warn!(error = %e, "cannot confirm the end of input");
            return Ok(false);
        }
    }
    feed.sync()?;
    finish_if_caught_up(base, engine, consumer, topics)
}

/// With every input routed: when this instance's join tasks have read their
/// repartition partitions to the end (fetched, as in [`end_confirmed`]),
/// drains them (every pending event and window resolves) and commits;
/// returns true once every join task of the group is drained (tasks of a
/// dead instance move here first).
fn finish_if_caught_up(
    base: &ClientConfig,
    engine: &Shared,
    consumer: &BaseConsumer<GroupContext>,
    topics: &AppTopics,
) -> Result<bool> {
    // Restoring or committing partitions the group may have taken away.
    if !consumer.context().may_commit(consumer) {
        return Ok(false);
    }
    let repartition: Vec<(String, i32)> = consumer
        .assignment()?
        .elements()
        .iter()
        .filter(|e| e.topic() == topics.repartition)
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect();
    let lags = match group_lag(base, &topics.app_id, &repartition) {
        Ok(lags) => lags,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the repartition topic's ends");
            return Ok(false);
        }
    };
    let mut joins = Vec::new();
    for lag in &lags {
        let position = lock(engine).join_position(lag.partition)?;
        if !lag.end_fetched || position < lag.log_end {
            return Ok(false);
        }
        joins.push(lag.partition);
    }
    let mut e = lock(engine);
    e.drain(&joins)?;
    let positions = e.commit()?;
    let done = e.all_joins_drained()?;
    drop(e);
    commit_positions(consumer, &positions, CommitMode::Sync);
    if done {
        tracing::info!(tasks = ?joins, "every task of the group reached the end of input: stopping");
    }
    Ok(done)
}

/// Sets the lag gauges from the log ends of the latest fetch responses (no
/// round trip to the brokers), and those of partitions in `shown` that are
/// no longer assigned to 0.
fn report_lag<C: ConsumerContext>(consumer: &BaseConsumer<C>, shown: &mut BTreeSet<(String, i32)>) {
    let (Ok(assignment), Ok(position)) = (consumer.assignment(), consumer.position()) else {
        return;
    };
    let mut now_shown = BTreeSet::new();
    for e in assignment.elements() {
        let Some(high) = fetched_log_end(consumer.client(), e.topic(), e.partition()) else {
            continue;
        };
        let pos = position
            .find_partition(e.topic(), e.partition())
            .and_then(|p| p.offset().to_raw())
            .filter(|o| *o >= 0);
        if let Some(pos) = pos {
            gauges::report_lag(e.topic(), e.partition(), high - pos);
            now_shown.insert((e.topic().to_string(), e.partition()));
        }
    }
    for (topic, partition) in std::mem::take(shown) {
        if now_shown.contains(&(topic.clone(), partition)) {
            continue;
        }
        if assignment.find_partition(&topic, partition).is_none() {
            gauges::report_lag(&topic, partition, 0);
        } else {
            now_shown.insert((topic, partition)); // still held, its end not known now
        }
    }
    *shown = now_shown;
}
