//! Every Prometheus metric neonblue exports: its name (written once, here),
//! kind, labels and help text. `ops::metrics` registers the help texts;
//! `scripts/check_ops.py` checks that the code emits no other `neonblue_*`
//! name and that the README, the Grafana dashboard and the alert rules use
//! only these.

/// Input records: `stage` = `input` (read by routers), `routed` (re-keyed
/// into the repartition topic), `joined` (processed by join tasks).
pub const RECORDS_TOTAL: &str = "neonblue_records_total";
/// Records skipped on purpose, by `reason` (SPEC 2.5).
pub const SKIPPED_TOTAL: &str = "neonblue_skipped_total";
/// Records sent to the dead-letter queue, by `reason`.
pub const DEAD_LETTERS_TOTAL: &str = "neonblue_dead_letters_total";
/// Events that arrived after their hourly window closed.
pub const LATE_EVENTS_TOTAL: &str = "neonblue_late_events_total";
/// Re-deliveries dropped by position checks, by `stage`.
pub const REDELIVERED_TOTAL: &str = "neonblue_redelivered_total";
/// Replays: input records before the output start (state only, not output).
pub const REPLAY_HIDDEN_TOTAL: &str = "neonblue_replay_hidden_total";
/// Events waiting for their assignment, per join task (`partition`).
pub const PENDING_EVENTS: &str = "neonblue_pending_events";
/// Open hourly and daily windows, per join task (`partition`).
pub const OPEN_WINDOWS: &str = "neonblue_open_windows";
/// A join task's watermark, Unix seconds, by `task`.
pub const WATERMARK_SECONDS: &str = "neonblue_watermark_seconds";
/// 1 for the input partition that holds a join task's watermark back.
pub const WATERMARK_HELD_BACK_BY: &str = "neonblue_watermark_held_back_by";
/// An input partition's own stream time, Unix seconds.
pub const INPUT_STREAM_TIME_SECONDS: &str = "neonblue_input_stream_time_seconds";
/// 1 while an input partition has no unread records.
pub const INPUT_IDLE: &str = "neonblue_input_idle";
/// Records not yet read, per assigned `topic` and `partition`.
pub const CONSUMER_LAG: &str = "neonblue_consumer_lag";
/// Changelog records replayed to restore tasks.
pub const RESTORE_RECORDS_TOTAL: &str = "neonblue_restore_records_total";
/// Tasks being restored right now.
pub const RESTORING_TASKS: &str = "neonblue_restoring_tasks";
/// Duration of a commit (outputs, changelogs, checkpoints, offsets).
pub const COMMIT_SECONDS: &str = "neonblue_commit_seconds";
/// 1 while a commit lands in the background (Kafka mode) and processing
/// goes on.
pub const COMMIT_IN_FLIGHT: &str = "neonblue_commit_in_flight";
/// Commits completed.
pub const COMMITS_TOTAL: &str = "neonblue_commits_total";
/// Commits that failed, by `stage`: `commit` (outputs, changelogs or state:
/// the instance stops) or `offsets` (group offsets only: state is committed).
pub const COMMIT_FAILURES_TOTAL: &str = "neonblue_commit_failures_total";
/// Size of the local state directory.
pub const STATE_SIZE_BYTES: &str = "neonblue_state_size_bytes";
/// Bytes of decoded state pages cached in memory, by `kind`: `used` (all,
/// against `[state] cache_bytes`) and `dirty` (changed since the last commit).
pub const STATE_CACHE_BYTES: &str = "neonblue_state_cache_bytes";
/// Tasks held by this instance, by `kind` (`router`, `join`).
pub const TASKS: &str = "neonblue_tasks";
/// Rows inserted into ClickHouse, by `table`.
pub const CLICKHOUSE_ROWS_TOTAL: &str = "neonblue_clickhouse_rows_total";
/// Duration of one ClickHouse INSERT request, retries included.
pub const CLICKHOUSE_INSERT_SECONDS: &str = "neonblue_clickhouse_insert_seconds";
/// Failed ClickHouse requests that were retried.
pub const CLICKHOUSE_RETRIES_TOTAL: &str = "neonblue_clickhouse_retries_total";

/// How a metric behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// One exported metric.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// Its name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Its labels, comma-separated (empty: none).
    pub labels: &'static str,
    /// Its unit, in Prometheus' terms (empty: a count).
    pub unit: &'static str,
    /// The HELP text.
    pub help: &'static str,
}

const fn m(
    name: &'static str,
    kind: Kind,
    labels: &'static str,
    unit: &'static str,
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        unit,
        help,
    }
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric, in the README's order.
pub const ALL: [Metric; 25] = [
    m(RECORDS_TOTAL, Counter, "stage", "", "Input records by stage: read by routers (input), re-keyed to the repartition topic (routed), processed by join tasks (joined)."),
    m(SKIPPED_TOTAL, Counter, "reason", "", "Records skipped on purpose (tombstones, outbox updates, duplicates, ...), by reason."),
    m(DEAD_LETTERS_TOTAL, Counter, "reason", "", "Records sent to the dead-letter queue, by reason."),
    m(LATE_EVENTS_TOTAL, Counter, "", "", "Events that arrived after their hourly window had closed."),
    m(REDELIVERED_TOTAL, Counter, "stage", "", "Re-delivered records dropped by position checks, by stage."),
    m(REPLAY_HIDDEN_TOTAL, Counter, "", "", "Replays: records before the output start, applied to state but not output."),
    m(PENDING_EVENTS, Gauge, "partition", "", "Events waiting for their assignment, per join task."),
    m(OPEN_WINDOWS, Gauge, "partition", "", "Open hourly and daily windows, per join task."),
    m(WATERMARK_SECONDS, Gauge, "task", "seconds", "A join task's watermark (event time reached by every input partition), Unix seconds."),
    m(WATERMARK_HELD_BACK_BY, Gauge, "task,topic,partition", "", "1 for the input partition that holds a join task's watermark back."),
    m(INPUT_STREAM_TIME_SECONDS, Gauge, "topic,partition", "seconds", "An input partition's own stream time, Unix seconds."),
    m(INPUT_IDLE, Gauge, "topic,partition", "", "1 while an input partition has no unread records."),
    m(CONSUMER_LAG, Gauge, "topic,partition", "", "Records not yet read, per assigned topic and partition."),
    m(RESTORE_RECORDS_TOTAL, Counter, "", "", "Changelog records replayed to restore tasks."),
    m(RESTORING_TASKS, Gauge, "", "", "Tasks being restored from their changelogs right now."),
    m(COMMIT_SECONDS, Histogram, "", "seconds", "Duration of a commit: outputs, changelogs, checkpoints, local state."),
    m(COMMIT_IN_FLIGHT, Gauge, "", "", "1 while a commit lands in the background and processing goes on."),
    m(COMMITS_TOTAL, Counter, "", "", "Commits completed."),
    m(COMMIT_FAILURES_TOTAL, Counter, "stage", "", "Failed commits by stage: commit (outputs, changelogs or state; the instance stops) or offsets (group offsets only; state is committed)."),
    m(STATE_SIZE_BYTES, Gauge, "", "bytes", "Size of the local state directory."),
    m(STATE_CACHE_BYTES, Gauge, "kind", "bytes", "Decoded state pages cached in memory, by kind: used (against [state] cache_bytes) and dirty (changed since the last commit)."),
    m(TASKS, Gauge, "kind", "", "Tasks held by this instance, by kind (router, join)."),
    m(CLICKHOUSE_ROWS_TOTAL, Counter, "table", "", "Rows inserted into ClickHouse, by table."),
    m(CLICKHOUSE_INSERT_SECONDS, Histogram, "", "seconds", "Duration of one ClickHouse INSERT request, retries included."),
    m(CLICKHOUSE_RETRIES_TOTAL, Counter, "", "", "Failed ClickHouse requests that were retried."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_prefixed_and_described() {
        let mut seen = std::collections::BTreeSet::new();
        for m in ALL {
            assert!(m.name.starts_with("neonblue_"), "{}", m.name);
            assert!(seen.insert(m.name), "{} twice", m.name);
            assert!(m.help.len() > 10, "{} needs a help text", m.name);
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}",
                m.name
            );
        }
    }
}
