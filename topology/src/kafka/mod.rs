//! Kafka plumbing of the topology: internal topics, changelogs and task
//! restore/commit against a broker (rdkafka). Nothing application-specific.
//!
//! Every function takes a base [`ClientConfig`] (brokers, security settings)
//! and adds what it needs.

pub mod admin;
pub mod changelog;
pub mod checkpoint;
pub mod connect;
pub mod group;
pub mod position;

pub use admin::{ensure_topics, TopicSpec};
pub use changelog::{ChangelogProducer, PartitionReader};
pub use checkpoint::{ChangelogDurability, Checkpoint, LoggedTask, RestoreStats, TaskLog};
pub use connect::ConnectProblem;
pub use group::{describe_group, group_lag, GroupDescription, GroupMember, PartitionLag};
pub use position::fetched_log_end;

use std::time::Duration;

/// Errors at the broker boundary.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The client library reported an error.
    #[error("kafka: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    /// A topic exists with another layout than the application needs.
    #[error("topic {topic}: {problem}")]
    Topic {
        /// The topic.
        topic: String,
        /// What is wrong.
        problem: String,
    },
    /// Local state failed.
    #[error(transparent)]
    State(#[from] neonblue_state::StateError),
    /// The brokers cannot be used with this configuration (TLS, SASL,
    /// security protocol, files): retrying would not help.
    #[error("{0}")]
    Connection(ConnectProblem),
    /// A broker call did not finish in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

/// How long admin and metadata calls may take.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
