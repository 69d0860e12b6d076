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
pub mod queue;

pub use admin::{ensure_topics, TopicSpec};
pub use changelog::{ChangelogProducer, PartitionReader};
pub use checkpoint::{ChangelogDurability, Checkpoint, LoggedTask, RestoreStats, TaskLog};
pub use connect::ConnectProblem;
pub use group::{describe_group, group_lag, GroupDescription, GroupMember, PartitionLag};
pub use position::{fetched_log_end, query_log_bounds};
pub use queue::{queued_events, PartitionQueues};

use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::ClientConfig;
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

/// Logs a client error as librdkafka's default context does, except the
/// end of a partition: a consumer with `enable.partition.eof` reads to the
/// end of a log by it, and rust-rdkafka hands it to the context as an error
/// as well as to the poll.
pub fn log_client_error(error: &rdkafka::error::KafkaError, reason: &str) {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    let end_of_partition = matches!(
        error,
        KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
    );
    if !end_of_partition {
        tracing::error!("librdkafka: {error}: {reason}");
    }
}

/// The context of a consumer that reads partitions to their ends: the
/// default one, without an error in the log at every end.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadToEnd;

impl ClientContext for ReadToEnd {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        log_client_error(&error, reason);
    }
}

impl ConsumerContext for ReadToEnd {}

/// How long admin and metadata calls may take.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// `fetch.wait.max.ms` of a consumer that reads a range and stops (restore,
/// checkpoints, log ends). Some brokers (Tansu) hold every fetch that does
/// not fill its byte limit for the whole wait: with librdkafka's 500 ms,
/// each read of a small range took half a second.
const SHORT_READ_FETCH_WAIT_MS: &str = "10";

/// `base` as the start of a consumer's configuration.
///
/// Once a consumer's local queue holds more than `queued.max.messages.kbytes`,
/// librdkafka stops fetching for `fetch.queue.backoff.ms`, 1 s by default. A
/// consumer that empties its queue faster than that then waits with nothing
/// to do until the pause ends: a 300k-record catch-up through one broker
/// spent a third of its time so. A 10 ms pause keeps the queue just as
/// bounded without the idle gaps. `base` may set its own value.
pub fn consumer_config(base: &ClientConfig) -> ClientConfig {
    let mut config = base.clone();
    set_unless_given(&mut config, "fetch.queue.backoff.ms", "10");
    config
}

/// Sets `property` to `value` unless `config` already gives it one (the
/// user's settings win over neonblue's defaults).
pub fn set_unless_given(config: &mut ClientConfig, property: &str, value: &str) {
    if config.get(property).is_none() {
        config.set(property, value);
    }
}
