//! Internal topics: create when missing, check partition counts.

use super::{KafkaError, ADMIN_TIMEOUT};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use std::collections::BTreeMap;

/// A topic the application needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Required partition count.
    pub partitions: i32,
    /// `cleanup.policy=compact` (changelogs) instead of delete.
    pub compacted: bool,
}

/// Partition counts of every topic on the cluster (no auto-creation).
/// Fails fast on a configuration problem (TLS, SASL, security protocol):
/// see [`super::connect`].
pub fn topic_partitions(base: &ClientConfig) -> Result<BTreeMap<String, i32>, KafkaError> {
    topic_partitions_within(base, ADMIN_TIMEOUT)
}

/// [`topic_partitions`], giving up after `timeout` (tools that answer an
/// operator, where waiting long for unreachable brokers helps nobody).
pub fn topic_partitions_within(
    base: &ClientConfig,
    timeout: std::time::Duration,
) -> Result<BTreeMap<String, i32>, KafkaError> {
    let md = super::connect::fetch_metadata(base, timeout)?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect())
}

/// Creates missing topics and checks the partition count of existing ones;
/// a mismatch is an error naming the topic (it would route users to the wrong
/// task). Waits until every topic is visible in the metadata.
pub fn ensure_topics(
    base: &ClientConfig,
    replication: i32,
    specs: &[TopicSpec],
) -> Result<(), KafkaError> {
    let existing = topic_partitions(base)?;
    let mut missing = Vec::new();
    for spec in specs {
        match existing.get(&spec.name) {
            Some(&n) if n == spec.partitions => {}
            Some(&n) => {
                return Err(KafkaError::Topic {
                    topic: spec.name.clone(),
                    problem: format!(
                        "has {n} partitions but {} are required; delete it (or reset the application with `neonblue replay --reset`) or configure the matching partition count",
                        spec.partitions
                    ),
                })
            }
            None => missing.push(spec),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = base.create()?;
    let new: Vec<NewTopic> = missing
        .iter()
        .map(|s| {
            let t = NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(replication));
            if s.compacted {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
    let results = futures::executor::block_on(admin.create_topics(&new, &opts))?;
    for r in results {
        if let Err((topic, code)) = r {
            if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                return Err(KafkaError::Topic {
                    topic,
                    problem: format!("cannot be created: {code}"),
                });
            }
        }
    }
    let deadline = std::time::Instant::now() + ADMIN_TIMEOUT;
    loop {
        let now = topic_partitions(base)?;
        if missing
            .iter()
            .all(|s| now.get(&s.name) == Some(&s.partitions))
        {
            tracing::info!(
                topics = ?missing.iter().map(|s| &s.name).collect::<Vec<_>>(),
                "created internal topics"
            );
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(KafkaError::Timeout("waiting for created topics".into()));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Deletes topics (missing ones are fine).
pub fn delete_topics(base: &ClientConfig, names: &[String]) -> Result<(), KafkaError> {
    let existing = topic_partitions(base)?;
    let names: Vec<&str> = names
        .iter()
        .filter(|n| existing.contains_key(*n))
        .map(|s| s.as_str())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = base.create()?;
    let opts = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
    for r in futures::executor::block_on(admin.delete_topics(&names, &opts))? {
        if let Err((topic, code)) = r {
            if code != rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition {
                return Err(KafkaError::Topic {
                    topic,
                    problem: format!("cannot be deleted: {code}"),
                });
            }
        }
    }
    let deadline = std::time::Instant::now() + ADMIN_TIMEOUT;
    while topic_partitions(base)?
        .keys()
        .any(|k| names.contains(&k.as_str()))
    {
        if std::time::Instant::now() > deadline {
            return Err(KafkaError::Timeout("waiting for deleted topics".into()));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    Ok(())
}
