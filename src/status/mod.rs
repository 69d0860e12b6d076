//! `neonblue status`: what a state directory and an application's group on a
//! broker say about where processing stands — the questions asked before a
//! replay and after an incident. Reads only: the state directory is opened
//! with [`neonblue_state::StateDb::inspect`], the broker is asked for
//! metadata, committed offsets and the checkpoint changelogs' last records.
//!
//! - [`local`]: a state directory (file mode or a Kafka mode instance).
//! - [`broker`]: an application id on a broker.
//! - [`table`]: the operator's table; `--format json` is [`Status`] itself.

pub mod broker;
pub mod local;
pub mod table;

use crate::domain::Summary;
use crate::processors::join::TaskMeta;
use crate::processors::router::RouterState;
use crate::processors::summary;
use serde::Serialize;
use std::collections::BTreeMap;

/// Everything `status` found. Every key is always present (`null` when it
/// does not apply), so scripts can rely on the shape.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The state directory, when one was asked for.
    pub state: Option<local::LocalStatus>,
    /// Why the state directory could not be read while the broker could be
    /// asked (a running instance holds it).
    pub state_error: Option<String>,
    /// The application on the broker, when one was asked for.
    pub broker: Option<broker::BrokerStatus>,
}

/// Kind of task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Sub-topology 1: accounting and re-keying of an input partition.
    Router,
    /// Sub-topology 2: join, windows and rollups of a repartition partition.
    Join,
}

/// One task as its last checkpoint (and, locally, its stores) describe it.
#[derive(Clone, Debug, Serialize)]
pub struct TaskStatus {
    /// Task id: its state namespace (`router`, `router-0003`, `task-0001`).
    pub task: String,
    /// Router or join task.
    pub kind: TaskKind,
    /// The partition it reads, `topic[partition]`, when known.
    pub input: Option<String>,
    /// A checkpoint was found.
    pub checkpointed: bool,
    /// Next input offset (everything below was applied); Kafka mode.
    pub next_offset: Option<i64>,
    /// Stream time (ISO-8601).
    pub stream_time: Option<String>,
    /// Join tasks in Kafka mode: the watermark over the input partitions.
    pub watermark: Option<String>,
    /// The task's counters at its checkpoint.
    pub counters: serde_json::Value,
    /// Join tasks: events waiting for an assignment.
    pub pending_events: Option<u64>,
    /// Join tasks, from the state directory: open hourly + daily windows.
    pub open_windows: Option<usize>,
    /// Join tasks, from the state directory: event ids kept to drop duplicates.
    pub dedup_entries: Option<usize>,
    /// From the state directory: bytes of the task's stores.
    pub state_bytes: Option<u64>,
    /// Kafka mode: each store changelog's log end at the checkpoint.
    pub changelog_ends: BTreeMap<String, i64>,
    /// Objects of a commit that did not finish (a crash between publishing
    /// and committing): the next start discards them and writes them again.
    pub unfinished_intent: Vec<String>,
}

impl TaskStatus {
    /// A task with nothing known yet but its id and kind.
    pub fn new(task: &str, kind: TaskKind) -> Self {
        TaskStatus {
            task: task.to_string(),
            kind,
            input: None,
            checkpointed: false,
            next_offset: None,
            stream_time: None,
            watermark: None,
            counters: serde_json::Value::Null,
            pending_events: None,
            open_windows: None,
            dedup_entries: None,
            state_bytes: None,
            changelog_ends: BTreeMap::new(),
            unfinished_intent: Vec::new(),
        }
    }

    /// Fills in a router's checkpointed state.
    pub fn set_router(&mut self, state: &RouterState) {
        self.checkpointed = true;
        self.stream_time = state.time.get().map(crate::time::format_iso);
        self.counters = to_json(&summary([&state.counters], []));
    }

    /// Fills in a join task's checkpointed state.
    pub fn set_join(&mut self, meta: &TaskMeta) {
        self.checkpointed = true;
        self.stream_time = meta.stream_time.get().map(crate::time::format_iso);
        self.counters = to_json(&meta.counters);
        self.pending_events = Some(meta.pending_events);
    }
}

fn to_json(v: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// The accounting (SPEC 2.5) of checkpointed routers and join tasks: equal
/// to a finished run's summary.
pub fn accounting(routers: &[RouterState], joins: &[TaskMeta]) -> Summary {
    summary(
        routers.iter().map(|r| &r.counters),
        joins.iter().map(|j| &j.counters),
    )
}
