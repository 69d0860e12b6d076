//! A state directory: its job, each task's last checkpoint, stores and any
//! unfinished intent. Opened read-only ([`StateDb::inspect`]).

use super::{accounting, TaskKind, TaskStatus};
use crate::domain::Summary;
use crate::drivers::file::{FileCheckpoint, JobFingerprint, JOB_KEY, ROUTER};
use crate::drivers::kafka::engine::{JoinPayload, RouterPayload};
use crate::drivers::kafka::group::{KafkaJob, KAFKA_JOB_KEY};
use crate::processors::join::{JoinTask, TaskMeta};
use crate::processors::router::RouterState;
use anyhow::{Context, Result};
use neonblue_state::{decode, StateDb};
use neonblue_topology::kafka::Checkpoint;
use neonblue_topology::LocalDurability;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Cache for the pages read while counting (they are dropped as it goes).
const CACHE_BYTES: u64 = 64 << 20;

/// What a state directory holds.
#[derive(Debug, Serialize)]
pub struct LocalStatus {
    /// The directory.
    pub dir: String,
    /// Its state format.
    pub format: String,
    /// `file`, `kafka`, or `empty` (no job recorded yet).
    pub mode: String,
    /// sled's size on disk, bytes.
    pub size_on_disk: u64,
    /// Kafka mode: the application id it serves.
    pub app_id: Option<String>,
    /// File mode: the input and how far it is committed.
    pub file: Option<FileStatus>,
    /// Every task with a checkpoint or stores, by id.
    pub tasks: Vec<TaskStatus>,
    /// The accounting of the checkpoints (a finished file run's summary).
    pub summary: Summary,
}

/// File mode: the job and its last checkpoint.
#[derive(Debug, Serialize)]
pub struct FileStatus {
    /// The input file.
    pub input: String,
    /// Its size when the job started, bytes.
    pub input_bytes: u64,
    /// Input layout.
    pub layout: String,
    /// Task partitions.
    pub partitions: u32,
    /// Lines between checkpoints.
    pub checkpoint_records: u64,
    /// A checkpoint was committed (else the next start begins at the first line).
    pub checkpointed: bool,
    /// Last checkpoint: bytes of the input committed.
    pub committed_bytes: u64,
    /// Last checkpoint: lines committed (the next segment's number).
    pub committed_lines: u64,
    /// The whole input is processed.
    pub done: bool,
}

/// Reads the state directory `dir`.
pub fn read(dir: &Path) -> Result<LocalStatus> {
    let db = StateDb::inspect(dir, CACHE_BYTES)?;
    let bad = |what: &str| format!("state directory {}: {what} cannot be read", dir.display());
    let file_job: Option<JobFingerprint> = match db.get_meta(JOB_KEY)? {
        Some(b) => Some(decode(&b).with_context(|| bad("the file job"))?),
        None => None,
    };
    let kafka_job: Option<KafkaJob> = match db.get_meta(KAFKA_JOB_KEY)? {
        Some(b) => Some(decode(&b).with_context(|| bad("the Kafka job"))?),
        None => None,
    };
    let mode = match (&file_job, &kafka_job) {
        (Some(_), _) => "file",
        (None, Some(_)) => "kafka",
        (None, None) => "empty",
    };

    // Every namespace with a checkpoint or a store, and each one's bytes.
    let checkpoints: BTreeMap<String, Vec<u8>> = db
        .scan_meta("checkpoint/")?
        .into_iter()
        .map(|(k, v)| (k["checkpoint/".len()..].to_string(), v))
        .collect();
    let mut bytes: BTreeMap<String, u64> = BTreeMap::new();
    for ks in db.keyspaces()? {
        let usage = db.tree(&ks.ns, &ks.store)?.usage()?;
        *bytes.entry(ks.ns).or_default() += usage.bytes;
    }
    let namespaces: BTreeSet<&String> = checkpoints.keys().chain(bytes.keys()).collect();

    let durability = LocalDurability::new(db.clone());
    let mut router_checkpoint: Option<FileCheckpoint> = None;
    let mut tasks = Vec::new();
    let (mut routers, mut joins): (Vec<RouterState>, Vec<TaskMeta>) = Default::default();
    for ns in namespaces {
        let kind = if ns.starts_with("router") {
            TaskKind::Router
        } else {
            TaskKind::Join
        };
        let mut t = TaskStatus::new(ns, kind);
        t.state_bytes = Some(bytes.get(ns).copied().unwrap_or(0));
        let raw = checkpoints.get(ns);
        let what = format!("the checkpoint of {ns}");
        match (kind, mode, raw) {
            (_, _, None) => {}
            (TaskKind::Router, "file", Some(b)) => {
                let c: FileCheckpoint = decode(b).with_context(|| bad(&what))?;
                t.set_router(&c.router);
                routers.push(c.router.clone());
                if ns == ROUTER {
                    router_checkpoint = Some(c.clone());
                }
            }
            (TaskKind::Join, "file", Some(b)) => {
                let meta: TaskMeta = decode(b).with_context(|| bad(&what))?;
                t.set_join(&meta);
                joins.push(meta);
            }
            (kind, _, Some(b)) => {
                let c: Checkpoint = decode(b).with_context(|| bad(&what))?;
                t.checkpointed = true;
                t.changelog_ends = c.ends.iter().cloned().collect();
                t.unfinished_intent = c.intent.clone();
                if !c.payload.is_empty() {
                    if kind == TaskKind::Router {
                        let p: RouterPayload = decode(&c.payload).with_context(|| bad(&what))?;
                        t.set_router(&p.state);
                        t.next_offset = Some(p.next_offset);
                        routers.push(p.state);
                    } else {
                        let p: JoinPayload = decode(&c.payload).with_context(|| bad(&what))?;
                        t.set_join(&p.meta);
                        t.next_offset = Some(p.next_offset);
                        t.watermark = p.watermarks.get().map(crate::time::format_iso);
                        joins.push(p.meta);
                    }
                }
            }
        }
        if mode == "file" {
            t.unfinished_intent = durability.unfinished_intent(ns)?;
        }
        if kind == TaskKind::Join && bytes.contains_key(ns) {
            let mut task = JoinTask::load(&db, ns, 0, 0, TaskMeta::default())
                .with_context(|| bad(&format!("the stores of {ns}")))?;
            t.open_windows = Some(task.open_windows());
            t.dedup_entries = Some(task.dedup_entries()?);
        }
        tasks.push(t);
    }
    let file = file_job.as_ref().map(|j| {
        let c = router_checkpoint.clone().unwrap_or_default();
        FileStatus {
            input: j.input.clone(),
            input_bytes: j.input_bytes,
            layout: j.layout.clone(),
            partitions: j.partitions,
            checkpoint_records: j.checkpoint_records,
            checkpointed: router_checkpoint.is_some(),
            committed_bytes: c.pos,
            committed_lines: c.next_line,
            done: c.done,
        }
    });
    Ok(LocalStatus {
        dir: dir.display().to_string(),
        format: StateDb::format().to_string(),
        mode: mode.to_string(),
        size_on_disk: db.size_on_disk(),
        app_id: kafka_job.map(|j| j.app_id),
        file,
        tasks,
        summary: accounting(&routers, &joins),
    })
}
