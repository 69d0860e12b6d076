//! Kafka mode (SPEC 3, 7, 8): the topology as a consumer group.
//!
//! One consumer per instance subscribes to the input topics and to
//! `<app_id>-repartition` in group `<app_id>` (cooperative-sticky). Records
//! of input partitions go to router tasks, records of repartition partitions
//! to join tasks ([`engine`]). The consumer thread polls and parses
//! ([`prepare`]) and hands them to an apply thread, which runs the tasks
//! ([`pipeline`], [`group`]). Every
//! `commit_interval` (or `commit_records`) the instance commits:
//! repartition/DLQ deliveries, Parquet segments behind an intent,
//! changelogs and checkpoints, local state, then the group offsets. Revoked
//! partitions are committed and released inside the rebalance callback;
//! assigned ones restore lazily before their first record.

pub mod engine;
mod freeze;
mod gauges;
pub mod group;
pub mod pipeline;
pub mod prepare;
pub mod produce;
pub mod repartition;
pub mod replay;
pub mod topics;

pub use engine::{Engine, OutputStart};
pub use group::{run_group, GroupRun};
pub use topics::AppTopics;

use crate::config::KafkaConfig;
use rdkafka::ClientConfig;

/// The base client configuration: brokers, client id and every
/// pass-through property (security settings).
pub fn client_config(kafka: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers)
        .set("client.id", client_id);
    for (k, v) in &kafka.properties {
        c.set(k, v);
    }
    c
}
