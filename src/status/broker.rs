//! An application id on a broker: the group's committed offsets and lag on
//! every input and repartition partition, its members, each task's last
//! checkpoint in the checkpoint changelogs, and which internal topics exist.

use super::{accounting, TaskKind, TaskStatus};
use crate::config::Config;
use crate::domain::Summary;
use crate::drivers::kafka::engine::{JoinPayload, RouterPayload};
use crate::drivers::kafka::{client_config, AppTopics};
use crate::processors::join::TaskMeta;
use crate::processors::router::RouterState;
use anyhow::{Context, Result};
use neonblue_state::{decode, ChangeRecord};
use neonblue_topology::kafka::{self, admin, Checkpoint, PartitionReader, TaskLog};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The application on the broker.
#[derive(Debug, Serialize)]
pub struct BrokerStatus {
    /// Bootstrap servers asked.
    pub brokers: String,
    /// Application id (consumer group, topic prefix).
    pub app_id: String,
    /// The group's state and members (`null`: the broker does not know the group).
    pub group: Option<GroupStatus>,
    /// Every input and repartition partition.
    pub partitions: Vec<PartitionStatus>,
    /// Σ lag over the input partitions.
    pub input_lag: i64,
    /// Σ lag over the repartition partitions.
    pub repartition_lag: i64,
    /// Each task's last checkpoint record.
    pub tasks: Vec<TaskStatus>,
    /// The accounting of those checkpoints.
    pub summary: Summary,
    /// The internal topics the application needs, and whether each exists.
    pub internal_topics: Vec<TopicStatus>,
}

/// A consumer group.
#[derive(Debug, Serialize)]
pub struct GroupStatus {
    /// `Stable`, `Empty`, …
    pub state: String,
    /// The assignor.
    pub protocol: String,
    /// Members (instances) and their partitions.
    pub members: Vec<MemberStatus>,
}

/// A group member (brokers may leave any of these empty: Tansu does).
#[derive(Debug, Serialize)]
pub struct MemberStatus {
    /// Member id.
    pub id: String,
    /// `client.id`.
    pub client_id: String,
    /// Host.
    pub host: String,
    /// Assigned partitions, `topic[partition]`.
    pub partitions: Vec<String>,
}

/// One partition the group reads.
#[derive(Debug, Serialize)]
pub struct PartitionStatus {
    /// `input` or `repartition`.
    pub role: &'static str,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset (`null`: never committed).
    pub committed: Option<i64>,
    /// Log end (high watermark).
    pub log_end: i64,
    /// Records not yet committed.
    pub lag: i64,
}

/// An internal topic.
#[derive(Debug, Serialize)]
pub struct TopicStatus {
    /// Name.
    pub name: String,
    /// Partitions it needs.
    pub partitions: i32,
    /// Partitions it has (`null`: missing).
    pub present: Option<i32>,
}

/// How long to wait for the brokers' metadata before saying they are
/// unreachable (`run` waits longer: brokers may be starting).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the brokers of `cfg` about application `cfg.processing.app_id`.
/// A configuration problem (TLS, SASL) fails within seconds, naming the
/// property, as in `run`; unreachable brokers after [`CONNECT_TIMEOUT`].
pub fn read(cfg: &Config) -> Result<BrokerStatus> {
    let topics = AppTopics::discover_within(cfg, CONNECT_TIMEOUT)?;
    let app_id = &cfg.processing.app_id;
    let base = client_config(&cfg.kafka, app_id);
    let existing = admin::topic_partitions_within(&base, CONNECT_TIMEOUT)
        .with_context(|| format!("cannot connect to the brokers at {}", cfg.kafka.brokers))?;
    let internal_topics: Vec<TopicStatus> = topics
        .internal_specs()
        .into_iter()
        .map(|s| TopicStatus {
            present: existing.get(&s.name).copied(),
            name: s.name,
            partitions: s.partitions,
        })
        .collect();

    let mut wanted = topics.input_partitions();
    let repartition_present = existing.contains_key(&topics.repartition);
    if repartition_present {
        wanted.extend((0..topics.repartition_partitions).map(|p| (topics.repartition.clone(), p)));
    }
    let lags = kafka::group_lag(&base, app_id, &wanted)
        .with_context(|| format!("cannot read the offsets of group {app_id}"))?;
    let partitions: Vec<PartitionStatus> = lags
        .iter()
        .map(|l| PartitionStatus {
            role: if l.topic == topics.repartition {
                "repartition"
            } else {
                "input"
            },
            topic: l.topic.clone(),
            partition: l.partition,
            committed: l.committed,
            log_end: l.log_end,
            lag: l.lag(),
        })
        .collect();
    let lag_of = |role: &str| {
        partitions
            .iter()
            .filter(|p| p.role == role)
            .map(|p| p.lag)
            .sum()
    };
    let group = kafka::describe_group(&base, app_id)
        .with_context(|| format!("cannot describe group {app_id}"))?
        .map(|g| GroupStatus {
            state: g.state,
            protocol: g.protocol,
            members: g
                .members
                .into_iter()
                .map(|m| MemberStatus {
                    id: m.id,
                    client_id: m.client_id,
                    host: m.host,
                    partitions: m
                        .assignment
                        .iter()
                        .flat_map(|(t, ps)| ps.iter().map(move |p| format!("{t}[{p}]")))
                        .collect(),
                })
                .collect(),
        });

    let reader = PartitionReader::new(&base)?;
    let mut tasks = Vec::new();
    let (mut routers, mut joins): (Vec<RouterState>, Vec<TaskMeta>) = Default::default();
    let mut index = 0u32;
    for (topic, n) in &topics.inputs {
        for p in 0..*n {
            let log = topics.router_log(index);
            let mut t = TaskStatus::new(&log.ns, TaskKind::Router);
            t.input = Some(format!("{topic}[{p}]"));
            if let Some(c) = last_checkpoint(&reader, &existing, &log)? {
                fill(&mut t, &c);
                if !c.payload.is_empty() {
                    let payload: RouterPayload = decode(&c.payload)
                        .with_context(|| format!("the checkpoint of {} cannot be read", log.ns))?;
                    t.set_router(&payload.state);
                    t.next_offset = Some(payload.next_offset);
                    routers.push(payload.state);
                }
            }
            tasks.push(t);
            index += 1;
        }
    }
    for p in 0..topics.repartition_partitions {
        let log = topics.join_log(p);
        let mut t = TaskStatus::new(&log.ns, TaskKind::Join);
        t.input = Some(format!("{}[{p}]", topics.repartition));
        if let Some(c) = last_checkpoint(&reader, &existing, &log)? {
            fill(&mut t, &c);
            if !c.payload.is_empty() {
                let payload: JoinPayload = decode(&c.payload)
                    .with_context(|| format!("the checkpoint of {} cannot be read", log.ns))?;
                t.set_join(&payload.meta);
                t.next_offset = Some(payload.next_offset);
                t.watermark = payload.watermarks.get().map(crate::time::format_iso);
                joins.push(payload.meta);
            }
        }
        tasks.push(t);
    }

    Ok(BrokerStatus {
        brokers: cfg.kafka.brokers.clone(),
        app_id: app_id.clone(),
        group,
        input_lag: lag_of("input"),
        repartition_lag: lag_of("repartition"),
        partitions,
        tasks,
        summary: accounting(&routers, &joins),
        internal_topics,
    })
}

/// The last record of the task's checkpoint changelog partition.
fn last_checkpoint(
    reader: &PartitionReader,
    existing: &BTreeMap<String, i32>,
    log: &TaskLog,
) -> Result<Option<Checkpoint>> {
    if existing
        .get(&log.checkpoint_topic)
        .is_none_or(|n| *n <= log.partition)
    {
        return Ok(None);
    }
    match reader.read_last(&log.checkpoint_topic, log.partition)? {
        Some((_, ChangeRecord { value: Some(v), .. })) => {
            Ok(Some(decode(&v).with_context(|| {
                format!(
                    "{}[{}]: the last checkpoint cannot be read",
                    log.checkpoint_topic, log.partition
                )
            })?))
        }
        _ => Ok(None),
    }
}

fn fill(t: &mut TaskStatus, c: &Checkpoint) {
    t.checkpointed = true;
    t.changelog_ends = c.ends.iter().cloned().collect();
    t.unfinished_intent = c.intent.clone();
}
