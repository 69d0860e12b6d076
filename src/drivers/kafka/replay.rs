//! Replays (SPEC 8): rebuild outputs from offsets or a timestamp, into a
//! fresh application id or after resetting an existing one.

use super::engine::OutputStart;
use super::topics::AppTopics;
use crate::config::Config;
use crate::time::MILLISECOND;
use anyhow::{bail, Context, Result};
use neonblue_topology::kafka::admin::{delete_topics, topic_partitions};
use neonblue_topology::kafka::{PartitionReader, ADMIN_TIMEOUT};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::Duration;

/// Where a replay's outputs start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayFrom {
    /// From the beginning of every input partition.
    Beginning,
    /// `topic:partition=offset` entries; unlisted partitions start at 0.
    Offsets(Vec<(String, i32, i64)>),
    /// The first record at or after this time (ms since the epoch) per partition.
    Timestamp(i64),
}

/// Parses `topic:partition=offset[,…]`.
pub fn parse_offsets(spec: &str) -> Result<Vec<(String, i32, i64)>> {
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|item| {
            let (tp, off) = item
                .rsplit_once('=')
                .with_context(|| format!("`{item}`: expected topic:partition=offset"))?;
            let (t, p) = tp
                .rsplit_once(':')
                .with_context(|| format!("`{item}`: expected topic:partition=offset"))?;
            Ok((
                t.trim().to_string(),
                p.trim()
                    .parse()
                    .with_context(|| format!("`{item}`: bad partition"))?,
                off.trim()
                    .parse()
                    .with_context(|| format!("`{item}`: bad offset"))?,
            ))
        })
        .collect()
}

/// Resolves the per-partition output start offsets.
pub fn output_start(
    base: &ClientConfig,
    topics: &AppTopics,
    from: &ReplayFrom,
) -> Result<OutputStart> {
    let mut start = OutputStart::new();
    match from {
        ReplayFrom::Beginning => {}
        ReplayFrom::Offsets(list) => {
            for (t, p, o) in list {
                topics.router_index(t, *p)?;
                start.insert((t.clone(), *p), *o);
            }
        }
        ReplayFrom::Timestamp(ms) => {
            let consumer: BaseConsumer = base.create()?;
            let mut tpl = TopicPartitionList::new();
            for (t, n) in &topics.inputs {
                for p in 0..*n {
                    tpl.add_partition_offset(t, p, Offset::Offset(*ms))?;
                }
            }
            let found = consumer.offsets_for_times(tpl, ADMIN_TIMEOUT)?;
            let reader = PartitionReader::new(base)?;
            for e in found.elements() {
                let (topic, partition) = (e.topic(), e.partition());
                e.error()
                    .with_context(|| format!("looking up {topic}[{partition}] by time"))?;
                let offset = match e.offset() {
                    Offset::Offset(o) => {
                        check_time_lookup(&reader, topic, partition, o, *ms)?;
                        o
                    }
                    // No record at or after the time: nothing of it is output.
                    _ => {
                        consumer
                            .fetch_watermarks(topic, partition, ADMIN_TIMEOUT)?
                            .1
                    }
                };
                start.insert((topic.to_string(), partition), offset);
            }
        }
    }
    Ok(start)
}

/// The record a broker found for a time must not be older than it. Some
/// brokers have no time index and answer with any offset (Tansu: always 0),
/// which would replay the whole log into outputs meant to start later.
/// (Kafka may answer with a transaction marker's offset, which no consumer
/// reads: only a record at the very offset is judged.)
fn check_time_lookup(
    reader: &PartitionReader,
    topic: &str,
    partition: i32,
    offset: i64,
    time_ms: i64,
) -> Result<()> {
    if let Some(record_ms) = reader.timestamp_at(topic, partition, offset)? {
        if record_ms < time_ms {
            bail!(
                "{topic}[{partition}]: asked for the first record at or after {}, the brokers answered offset {offset}, whose record is from {}: they cannot look records up by time. Replay with --from-offsets instead",
                crate::time::format_iso(time_ms * MILLISECOND),
                crate::time::format_iso(record_ms * MILLISECOND)
            );
        }
    }
    Ok(())
}

/// True when the application id has left nothing on the cluster.
pub fn is_fresh(base: &ClientConfig, topics: &AppTopics) -> Result<bool> {
    let existing = topic_partitions(base)?;
    Ok(topics
        .internal_specs()
        .iter()
        .all(|s| !existing.contains_key(&s.name)))
}

/// What `replay --reset` would delete, read before anything is.
#[derive(Clone, Debug)]
pub struct ResetPlan {
    /// Application id (= consumer group).
    pub app_id: String,
    /// Bootstrap servers.
    pub brokers: String,
    /// Members of the group now (instances still running).
    pub group_members: Option<usize>,
    /// Internal topics that exist, and how many the application can have.
    pub topics: (Vec<String>, usize),
    /// The state directory and its size when it exists.
    pub state_dir: (std::path::PathBuf, Option<u64>),
    /// The output root and (objects, bytes) under it, if it could be listed.
    pub output: (String, Result<(usize, u64), String>),
    /// ClickHouse (redacted URL, database, tables), when configured.
    pub clickhouse: Option<(String, String, Vec<&'static str>)>,
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// `n` bytes for people.
pub fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Reads what a reset of `cfg`'s application would delete (deletes nothing).
pub fn reset_plan(base: &ClientConfig, cfg: &Config, topics: &AppTopics) -> Result<ResetPlan> {
    let existing = topic_partitions(base)?;
    let internal: Vec<String> = topics
        .internal_specs()
        .into_iter()
        .map(|s| s.name)
        .collect();
    let found: Vec<String> = internal
        .iter()
        .filter(|n| existing.contains_key(*n))
        .cloned()
        .collect();
    let group_members = base
        .create::<BaseConsumer>()
        .ok()
        .and_then(|c| {
            c.fetch_group_list(Some(&topics.app_id), Duration::from_secs(10))
                .ok()
        })
        .map(|list| list.groups().iter().map(|g| g.members().len()).sum());
    let dir = cfg.processing.state_dir.clone();
    let size = dir.exists().then(|| dir_size(&dir));
    let output = (
        crate::config::redacted_url(&cfg.output.url),
        crate::sink::Outputs::inventory(&cfg.output).map_err(|e| e.to_string()),
    );
    let clickhouse = (!cfg.clickhouse.url.is_empty()).then(|| {
        (
            crate::config::redacted_url(&cfg.clickhouse.url),
            cfg.clickhouse.database.clone(),
            crate::sink::clickhouse::Table::ALL
                .iter()
                .map(|t| t.name())
                .collect(),
        )
    });
    Ok(ResetPlan {
        app_id: topics.app_id.clone(),
        brokers: cfg.kafka.brokers.clone(),
        group_members,
        topics: (found, internal.len()),
        state_dir: (dir, size),
        output,
        clickhouse,
    })
}

impl std::fmt::Display for ResetPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "replay --reset of application {:?} deletes, in this order:",
            self.app_id
        )?;
        let members = match self.group_members {
            Some(0) | None => String::new(),
            Some(n) => format!(" — {n} members now: stop the running instances first"),
        };
        writeln!(
            f,
            "  consumer group   {} on {}{members}",
            self.app_id, self.brokers
        )?;
        let (found, of) = &self.topics;
        writeln!(
            f,
            "  internal topics  {} of {of} exist{}{}",
            found.len(),
            if found.is_empty() { "" } else { ": " },
            found.join(", ")
        )?;
        let (dir, size) = &self.state_dir;
        match size {
            Some(n) => writeln!(
                f,
                "  state directory  {} ({})",
                dir.display(),
                human_bytes(*n)
            )?,
            None => writeln!(f, "  state directory  {} (does not exist)", dir.display())?,
        }
        match &self.output.1 {
            Ok((n, bytes)) => writeln!(
                f,
                "  output objects   every object under {}: {n} objects, {}",
                self.output.0,
                human_bytes(*bytes)
            )?,
            Err(e) => writeln!(
                f,
                "  output objects   every object under {} (cannot list them now: {e})",
                self.output.0
            )?,
        }
        match &self.clickhouse {
            Some((url, db, tables)) => writeln!(
                f,
                "  ClickHouse rows  every row of {} in database {db} at {url}",
                tables.join(", ")
            ),
            None => writeln!(f, "  ClickHouse rows  none (no ClickHouse configured)"),
        }
    }
}

/// Resets an application: deletes its consumer group, internal topics
/// (repartition, changelogs, DLQ), the local state directory, every
/// object under the output root and the ClickHouse rows.
pub fn reset(base: &ClientConfig, cfg: &Config, topics: &AppTopics) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = base.create()?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    match futures::executor::block_on(admin.delete_groups(&[&topics.app_id], &opts)) {
        Ok(results) => {
            for r in results {
                if let Err((group, code)) = r {
                    use rdkafka::types::RDKafkaErrorCode as C;
                    if !matches!(code, C::GroupIdNotFound | C::NotCoordinator) {
                        bail!("cannot delete consumer group {group}: {code} (are instances still running?)");
                    }
                }
            }
        }
        Err(e) => bail!("cannot delete consumer group {}: {e}", topics.app_id),
    }
    let names: Vec<String> = topics
        .internal_specs()
        .into_iter()
        .map(|s| s.name)
        .collect();
    delete_topics(base, &names)?;
    let dir = &cfg.processing.state_dir;
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove state directory {}", dir.display()))?;
    }
    let removed = crate::sink::Outputs::reset(&cfg.output, &cfg.clickhouse)?;
    tracing::info!(app_id = %topics.app_id, objects = removed, "reset: group, internal topics, state and outputs removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_spec() {
        assert_eq!(
            parse_offsets("a.b:0=5, a.b:3=0").unwrap(),
            vec![("a.b".into(), 0, 5), ("a.b".into(), 3, 0)]
        );
        assert!(parse_offsets("a=5").is_err());
        assert!(parse_offsets("a:x=5").is_err());
    }
}
