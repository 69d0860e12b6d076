//! Typed configuration with defaults: one TOML file, overridable by
//! `NEONBLUE_*` environment variables and command-line flags.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How Debezium records are laid out on the input topics (SPEC 2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// One topic carrying the `outbox_events` table's change envelopes.
    #[default]
    Outbox,
    /// Debezium's Outbox Event Router output (value = payload).
    Eventrouter,
    /// The `assignments` and `events` tables captured directly.
    Tables,
}

/// Options of the `eventrouter` layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventRouterConfig {
    /// Header carrying the aggregate type (`table.fields.additional.placement`); when
    /// absent the type is the routed topic's suffix (`outbox.event.<type>`).
    pub aggregate_type_header: String,
    /// Header carrying the event type (e.g. `ASSIGNMENT_DELETED`); when absent an
    /// assignment is an upsert and an event is `EVENT_CREATED`.
    pub event_type_header: String,
    /// Header carrying the Debezium op (copied by a `HeaderFrom` SMT); `r` marks a
    /// snapshot read. Without it every routed record counts as a create.
    pub op_header: String,
    /// Prefix of routed topics (`route.topic.replacement` without `${routedByValue}`).
    pub topic_prefix: String,
}

impl Default for EventRouterConfig {
    fn default() -> Self {
        EventRouterConfig {
            aggregate_type_header: "aggregateType".into(),
            event_type_header: "eventType".into(),
            op_header: "__op".into(),
            topic_prefix: "outbox.event.".into(),
        }
    }
}

/// Options of the `tables` layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TablesConfig {
    /// Name of the assignments table (matched against `source.table`, else the topic suffix).
    pub assignments_table: String,
    /// Name of the events table.
    pub events_table: String,
}

impl Default for TablesConfig {
    fn default() -> Self {
        TablesConfig {
            assignments_table: "assignments".into(),
            events_table: "events".into(),
        }
    }
}

/// The input side: layout and topics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// Record layout.
    pub layout: Layout,
    /// Input topics (Kafka mode).
    pub topics: Vec<String>,
    /// Event Router options.
    pub eventrouter: EventRouterConfig,
    /// Table-capture options.
    pub tables: TablesConfig,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            layout: Layout::Outbox,
            topics: vec!["experiments_events".into()],
            eventrouter: EventRouterConfig::default(),
            tables: TablesConfig::default(),
        }
    }
}

/// Processing options shared by file and Kafka mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessingConfig {
    /// Application id: consumer group, topic prefix, state namespace.
    pub app_id: String,
    /// Grace for pending events and window closing, in seconds.
    pub grace_seconds: u64,
    /// Number of task partitions (file mode: in-process partitions).
    pub partitions: u32,
    /// Input records between two checkpoints (file mode; deterministic boundaries).
    pub checkpoint_records: u64,
    /// State directory (one sled database per instance).
    pub state_dir: PathBuf,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        ProcessingConfig {
            app_id: "neonblue".into(),
            grace_seconds: 300,
            partitions: 1,
            // Bounds the outputs buffered per segment: ~600 MB peak RSS on
            // the 1 KB seed format, and the fastest setting measured.
            checkpoint_records: 100_000,
            state_dir: PathBuf::from(".neonblue/state"),
        }
    }
}

/// Where outputs go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Output root: a local path or any object_store URL (`file:///…`, `s3://bucket/prefix`).
    pub url: String,
    /// Target rows per Parquet row group.
    pub row_group_rows: usize,
    /// zstd compression level of the Parquet files (1–22).
    pub zstd_level: i32,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            url: ".neonblue/output".into(),
            row_group_rows: 128 * 1024,
            zstd_level: 3,
        }
    }
}

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Input layout and topics.
    pub source: SourceConfig,
    /// Processing options.
    pub processing: ProcessingConfig,
    /// Output options.
    pub output: OutputConfig,
    /// Kafka mode (consumer group) settings.
    pub kafka: KafkaConfig,
    /// Prometheus `/metrics` and `/healthz`.
    pub metrics: MetricsConfig,
    /// The ClickHouse sink (off while `url` is empty).
    pub clickhouse: ClickHouseConfig,
    /// The state store.
    pub state: StateConfig,
}

/// The state store (SPEC 9.1): sled on disk is the store of record; the
/// working set of every task of the instance is cached within one budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// Memory for decoded state pages, shared by every task of the instance
    /// (sled's own page cache takes an eighth of it on top). Uncommitted
    /// changes may fill half of it before a commit is made early.
    pub cache_bytes: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            cache_bytes: 256 << 20,
        }
    }
}

/// The ClickHouse sink (SPEC 6.4). Its `Debug` form masks the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP interface, e.g. `http://localhost:8123`; empty: no ClickHouse output.
    pub url: String,
    /// Database of the tables.
    pub database: String,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
    /// Rows per INSERT request.
    pub batch_rows: usize,
    /// Retries of a transient failure before the commit fails (the run then
    /// stops; a restart re-delivers, nothing is lost).
    pub max_retries: u32,
    /// First back-off; doubles per retry (with jitter).
    pub retry_initial_ms: u64,
    /// Back-off cap.
    pub retry_max_ms: u64,
    /// Request timeout.
    pub timeout_secs: u64,
    /// gzip request bodies.
    pub compression: bool,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: String::new(),
            database: "neonblue".into(),
            user: "default".into(),
            password: String::new(),
            batch_rows: 100_000,
            max_retries: 12,
            retry_initial_ms: 200,
            retry_max_ms: 30_000,
            timeout_secs: 120,
            compression: true,
        }
    }
}

/// Kafka mode: brokers, internal topics, commits (SPEC 3, 7). Its `Debug`
/// form masks secret properties ([`is_secret_property`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers (`host:port,…`); empty runs nothing but file mode.
    pub brokers: String,
    /// librdkafka properties passed through as is (`security.protocol`,
    /// `sasl.mechanism`, `sasl.username`, `ssl.ca.location`, …); also set by
    /// `NEONBLUE_KAFKA_<PROPERTY>` variables and `--kafka-property`.
    pub properties: std::collections::BTreeMap<String, String>,
    /// Partitions of `<app_id>-repartition` (0: as many as the largest input topic).
    pub repartition_partitions: u32,
    /// Replication factor of the internal topics it creates.
    pub replication_factor: i32,
    /// How often outputs, state and offsets are committed.
    pub commit_interval_ms: u64,
    /// Also commit after this many input records.
    pub commit_records: u64,
    /// Consumer group session timeout (how fast a dead instance's partitions move).
    pub session_timeout_ms: u64,
    /// Throttle for replays and tests: records per second per instance (0 = none).
    pub max_records_per_second: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            properties: Default::default(),
            repartition_partitions: 0,
            replication_factor: 1,
            commit_interval_ms: 2_000,
            commit_records: 100_000,
            session_timeout_ms: 10_000,
            max_records_per_second: 0,
        }
    }
}

pub use neonblue_topology::kafka::connect::is_secret_property;

/// `url` without the password of any credentials embedded in it, for logs and errors.
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => "<unparseable URL>".to_string(),
    }
}

const MASK: &str = "****";

impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &redacted_url(&self.url))
            .field("database", &self.database)
            .field("user", &self.user)
            .field(
                "password",
                &if self.password.is_empty() { "" } else { MASK },
            )
            .field("batch_rows", &self.batch_rows)
            .field("max_retries", &self.max_retries)
            .field("retry_initial_ms", &self.retry_initial_ms)
            .field("retry_max_ms", &self.retry_max_ms)
            .field("timeout_secs", &self.timeout_secs)
            .field("compression", &self.compression)
            .finish()
    }
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: std::collections::BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_property(k) {
                    MASK
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("properties", &properties)
            .field("repartition_partitions", &self.repartition_partitions)
            .field("replication_factor", &self.replication_factor)
            .field("commit_interval_ms", &self.commit_interval_ms)
            .field("commit_records", &self.commit_records)
            .field("session_timeout_ms", &self.session_timeout_ms)
            .field("max_records_per_second", &self.max_records_per_second)
            .finish()
    }
}

/// Prefix of the environment variables that set librdkafka properties: the
/// property upper-cased with `_` for `.`, e.g. `NEONBLUE_KAFKA_SASL_PASSWORD`
/// sets `sasl.password` (keeps secrets off the command line and out of files).
pub const KAFKA_PROPERTY_ENV_PREFIX: &str = "NEONBLUE_KAFKA_";

impl KafkaConfig {
    /// Sets the properties named by `NEONBLUE_KAFKA_<PROPERTY>` variables
    /// among `vars` (over the configuration file, under `--kafka-property`).
    pub fn apply_env_properties<I, K, V>(&mut self, vars: I)
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        for (k, v) in vars {
            let (Some(k), Some(v)) = (k.as_ref().to_str(), v.as_ref().to_str()) else {
                continue;
            };
            if let Some(name) = k.strip_prefix(KAFKA_PROPERTY_ENV_PREFIX) {
                if !name.is_empty() {
                    self.properties
                        .insert(name.to_ascii_lowercase().replace('_', "."), v.to_string());
                }
            }
        }
    }
}

/// The operations endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Listen address of `/metrics` and `/healthz` (e.g. `0.0.0.0:9464`); unset: off.
    pub addr: Option<String>,
}

impl Config {
    /// Reads a TOML file; a missing section or key takes its default.
    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("invalid config {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_properties_from_the_environment() {
        let mut k: KafkaConfig = toml::from_str::<Config>(
            "[kafka]\nbrokers = \"b:9092\"\n[kafka.properties]\n\"security.protocol\" = \"SSL\"\n\"sasl.username\" = \"file-user\"\n",
        )
        .unwrap()
        .kafka;
        k.apply_env_properties([
            ("NEONBLUE_KAFKA_SASL_PASSWORD", "s3cret"),
            ("NEONBLUE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("NEONBLUE_KAFKA_", "ignored"),
            ("NEONBLUE_BROKERS", "not-a-property"),
        ]);
        let p = &k.properties;
        assert_eq!(p["sasl.password"], "s3cret");
        assert_eq!(p["security.protocol"], "SASL_SSL");
        assert_eq!(p["sasl.username"], "file-user");
        assert_eq!(p.len(), 3, "{p:?}");
    }
}
