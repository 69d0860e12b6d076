//! The application's topics: inputs, repartition, DLQ and changelogs.

use crate::processors::{join, router};
use anyhow::{bail, Context, Result};
use neonblue_topology::kafka::{TaskLog, TopicSpec};

/// Checkpoint "store" of router tasks.
pub const ROUTER_CHECKPOINT: &str = "router-checkpoint";
/// Checkpoint "store" of join tasks.
pub const JOIN_CHECKPOINT: &str = "task-checkpoint";

/// Names and partition counts of every topic an application uses.
#[derive(Clone, Debug)]
pub struct AppTopics {
    /// Group id and topic prefix.
    pub app_id: String,
    /// Input topics with their partition counts, in configuration order.
    pub inputs: Vec<(String, i32)>,
    /// `<app_id>-repartition`.
    pub repartition: String,
    /// Its partition count (= join tasks).
    pub repartition_partitions: i32,
    /// `<app_id>-dlq`.
    pub dlq: String,
}

impl AppTopics {
    /// Topics of `app_id` over `inputs`; `repartition_partitions` 0 means
    /// as many as the largest input topic.
    pub fn new(app_id: &str, inputs: Vec<(String, i32)>, repartition_partitions: u32) -> Self {
        let max_in = inputs.iter().map(|(_, n)| *n).max().unwrap_or(1);
        AppTopics {
            app_id: app_id.to_string(),
            repartition: format!("{app_id}-repartition"),
            repartition_partitions: if repartition_partitions == 0 {
                max_in
            } else {
                repartition_partitions as i32
            },
            dlq: format!("{app_id}-dlq"),
            inputs,
        }
    }

    /// The topics of the configured application, reading the input topics'
    /// partition counts from the brokers (a missing input topic is an error).
    pub fn discover(cfg: &crate::config::Config) -> Result<Self> {
        Self::discover_within(cfg, neonblue_topology::kafka::ADMIN_TIMEOUT)
    }

    /// [`AppTopics::discover`], giving up on the brokers after `timeout`.
    pub fn discover_within(
        cfg: &crate::config::Config,
        timeout: std::time::Duration,
    ) -> Result<Self> {
        if cfg.kafka.brokers.is_empty() {
            return Err(crate::ops::exit::Usage(
                "no brokers configured: set kafka.brokers (--brokers, NEONBLUE_KAFKA__BROKERS), or pass --input FILE for file mode".into(),
            )
            .into());
        }
        let base = super::client_config(&cfg.kafka, &cfg.processing.app_id);
        // Fails within seconds, naming the property to fix, when TLS, SASL
        // or the security protocol cannot work (librdkafka alone would retry).
        let existing = neonblue_topology::kafka::admin::topic_partitions_within(&base, timeout)
            .with_context(|| format!("cannot connect to the brokers at {}", cfg.kafka.brokers))?;
        let mut inputs = Vec::new();
        for t in &cfg.source.topics {
            match existing.get(t) {
                Some(n) => inputs.push((t.clone(), *n)),
                None => {
                    return Err(crate::ops::exit::Usage(format!(
                        "input topic {t} does not exist on {} (source.topics)",
                        cfg.kafka.brokers
                    ))
                    .into())
                }
            }
        }
        Ok(AppTopics::new(
            &cfg.processing.app_id,
            inputs,
            cfg.kafka.repartition_partitions,
        ))
    }

    /// `<app_id>-<store>-changelog`.
    pub fn changelog(&self, store: &str) -> String {
        format!("{}-{store}-changelog", self.app_id)
    }

    /// Every input (topic, partition), in router-task order: the index of
    /// a partition here is its router task ([`AppTopics::router_index`]).
    pub fn input_partitions(&self) -> Vec<(String, i32)> {
        self.inputs
            .iter()
            .flat_map(|(t, n)| (0..*n).map(move |p| (t.clone(), p)))
            .collect()
    }

    /// Router tasks: one per input (topic, partition).
    pub fn router_tasks(&self) -> i32 {
        self.inputs.iter().map(|(_, n)| *n).sum()
    }

    /// Index of the router task of an input partition (its changelog partition).
    pub fn router_index(&self, topic: &str, partition: i32) -> Result<u32> {
        let mut base = 0;
        for (t, n) in &self.inputs {
            if t == topic {
                if partition < 0 || partition >= *n {
                    bail!("partition {partition} of {topic} is beyond the {n} known at start; restart to pick up new partitions");
                }
                return Ok((base + partition) as u32);
            }
            base += n;
        }
        bail!("record from unexpected topic {topic}")
    }

    /// The input (topic, partition) of router task `index`.
    pub fn router_input(&self, index: u32) -> Option<(&str, i32)> {
        let mut base = 0u32;
        for (t, n) in &self.inputs {
            let n = *n as u32;
            if index < base + n {
                return Some((t, (index - base) as i32));
            }
            base += n;
        }
        None
    }

    /// Changelogs of router task `index`.
    pub fn router_log(&self, index: u32) -> TaskLog {
        TaskLog {
            ns: format!("router-{index:04}"),
            partition: index as i32,
            stores: router::STORES
                .iter()
                .map(|s| (s.to_string(), self.changelog(s)))
                .collect(),
            checkpoint_topic: self.changelog(ROUTER_CHECKPOINT),
        }
    }

    /// Changelogs of join task `partition`.
    pub fn join_log(&self, partition: i32) -> TaskLog {
        TaskLog {
            ns: join::namespace(partition as u32),
            partition,
            stores: join::STORES
                .iter()
                .map(|s| (s.to_string(), self.changelog(s)))
                .collect(),
            checkpoint_topic: self.changelog(JOIN_CHECKPOINT),
        }
    }

    /// Every internal topic with its required layout.
    pub fn internal_specs(&self) -> Vec<TopicSpec> {
        let mut specs = vec![
            TopicSpec {
                name: self.repartition.clone(),
                partitions: self.repartition_partitions,
                compacted: false,
            },
            TopicSpec {
                name: self.dlq.clone(),
                partitions: self.inputs.iter().map(|(_, n)| *n).max().unwrap_or(1),
                compacted: false,
            },
        ];
        for s in router::STORES.iter().chain([&ROUTER_CHECKPOINT]) {
            specs.push(TopicSpec {
                name: self.changelog(s),
                partitions: self.router_tasks(),
                compacted: true,
            });
        }
        for s in join::STORES.iter().chain([&JOIN_CHECKPOINT]) {
            specs.push(TopicSpec {
                name: self.changelog(s),
                partitions: self.repartition_partitions,
                compacted: true,
            });
        }
        specs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_indexes() {
        let t = AppTopics::new("app", vec![("a".into(), 2), ("b".into(), 3)], 0);
        assert_eq!(t.repartition, "app-repartition");
        assert_eq!(t.repartition_partitions, 3);
        assert_eq!(t.router_index("a", 1).unwrap(), 1);
        assert_eq!(t.router_index("b", 0).unwrap(), 2);
        assert!(t.router_index("b", 3).is_err());
        assert!(t.router_index("c", 0).is_err());
        for (topic, partition) in [("a", 0), ("a", 1), ("b", 0), ("b", 2)] {
            let index = t.router_index(topic, partition).unwrap();
            assert_eq!(t.router_input(index), Some((topic, partition)));
        }
        assert_eq!(t.router_input(5), None);
        assert_eq!(t.changelog("pending"), "app-pending-changelog");
        assert_eq!(t.internal_specs().len(), 2 + 2 + 8);
    }
}
