//! The gauges an instance exports per task and partition. They are set
//! while the instance holds the task or partition, and cleared when it
//! gives them up (rebalance, lost partitions), since the Prometheus
//! exporter keeps a series at its last value: counts (lag, pending events,
//! open windows, flags) go to 0, so sums over the group count each
//! partition once, where it is held; times go to NaN, which `min` and
//! `max` skip.

use crate::domain::Micros;
use crate::metric_names as names;

/// A join task's gauges, as of a commit: its pending events, open windows,
/// watermark, and the input partition holding the watermark back (1; the
/// one that held it before, in `shown`, goes back to 0).
pub(super) fn report_join(
    partition: i32,
    pending: u64,
    open_windows: usize,
    watermark: Option<Micros>,
    held_back_by: Option<(String, i32)>,
    shown: &mut Option<(String, i32)>,
) {
    let task = partition.to_string();
    metrics::gauge!(names::PENDING_EVENTS, "partition" => task.clone()).set(pending as f64);
    metrics::gauge!(names::OPEN_WINDOWS, "partition" => task.clone()).set(open_windows as f64);
    if let Some(w) = watermark {
        metrics::gauge!(names::WATERMARK_SECONDS, "task" => task.clone()).set(w as f64 / 1e6);
    }
    if held_back_by != *shown {
        if let Some(before) = shown.take() {
            held_back(&task, before, 0.0);
        }
        if let Some(now) = &held_back_by {
            held_back(&task, now.clone(), 1.0);
        }
        *shown = held_back_by;
    }
}

/// Clears a join task's gauges (see the module's doc); `shown` is the input
/// partition its last report showed holding the watermark back.
pub(super) fn clear_join(partition: i32, shown: Option<(String, i32)>) {
    let mut shown = shown;
    report_join(partition, 0, 0, None, None, &mut shown);
    metrics::gauge!(names::WATERMARK_SECONDS, "task" => partition.to_string()).set(f64::NAN);
}

fn held_back(task: &str, (topic, partition): (String, i32), value: f64) {
    metrics::gauge!(names::WATERMARK_HELD_BACK_BY, "task" => task.to_string(), "topic" => topic, "partition" => partition.to_string())
        .set(value);
}

/// An input partition's gauges: idle or not, and its stream time.
pub(super) fn report_input(topic: &str, partition: i32, idle: bool, time: Option<Micros>) {
    let labels = [
        ("topic", topic.to_string()),
        ("partition", partition.to_string()),
    ];
    metrics::gauge!(names::INPUT_IDLE, &labels).set(if idle { 1.0 } else { 0.0 });
    if let Some(t) = time {
        metrics::gauge!(names::INPUT_STREAM_TIME_SECONDS, &labels).set(t as f64 / 1e6);
    }
}

/// Clears an input partition's gauges (see the module's doc).
pub(super) fn clear_input(topic: &str, partition: i32) {
    report_input(topic, partition, false, None);
    metrics::gauge!(names::INPUT_STREAM_TIME_SECONDS, "topic" => topic.to_string(), "partition" => partition.to_string())
        .set(f64::NAN);
}

/// The records of an assigned partition not read yet.
pub(super) fn report_lag(topic: &str, partition: i32, lag: i64) {
    metrics::gauge!(names::CONSUMER_LAG, "topic" => topic.to_string(), "partition" => partition.to_string())
        .set(lag.max(0) as f64);
}

/// The tasks of `kind` (`router`, `join`) held.
pub(super) fn report_tasks(kind: &'static str, held: usize) {
    metrics::gauge!(names::TASKS, "kind" => kind).set(held as f64);
}

/// The state cache's bytes: used, and dirty (not committed yet).
pub(super) fn report_cache(budget: &neonblue_state::Budget) {
    metrics::gauge!(names::STATE_CACHE_BYTES, "kind" => "used").set(budget.used() as f64);
    metrics::gauge!(names::STATE_CACHE_BYTES, "kind" => "dirty").set(budget.dirty() as f64);
}
