//! Typed configuration with defaults: one TOML file, overridable by
//! `NEONBLUE_<SECTION>__<KEY>` environment variables and command-line flags
//! ([`sources`]: the layers, where each value came from, `config print` and
//! `config validate`). Every key is documented in `docs/neonblue.example.toml`.
//! Durations are strings with a unit everywhere ([`duration`]).

pub mod duration;
pub mod sources;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

impl Layout {
    /// The layout's parser reads record headers (the others never look at
    /// them, so they need not be decoded).
    pub fn reads_headers(self) -> bool {
        matches!(self, Layout::Eventrouter)
    }
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
    /// Grace for pending events and window closing (honoured to the microsecond).
    #[serde(with = "duration")]
    pub grace: Duration,
    /// Number of task partitions (file mode: in-process partitions).
    pub partitions: u32,
    /// Input records between two checkpoints (file mode; deterministic boundaries).
    pub checkpoint_records: u64,
    /// State directory (one sled database per instance).
    pub state_dir: PathBuf,
    /// Kafka mode: after SIGTERM/SIGINT, how long the final commit may take
    /// before the instance exits non-zero without it (a restart resumes from
    /// the last commit; nothing is lost or doubled).
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
}

impl ProcessingConfig {
    /// The grace in [`crate::time::Micros`] (exact for a validated configuration).
    pub fn grace_micros(&self) -> crate::time::Micros {
        crate::time::from_duration_saturating(self.grace)
    }
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        ProcessingConfig {
            app_id: "neonblue".into(),
            grace: Duration::from_secs(300),
            partitions: 1,
            // Bounds the outputs buffered per segment: ~600 MB peak RSS on
            // the 1 KB seed format, and the fastest setting measured.
            checkpoint_records: 100_000,
            state_dir: PathBuf::from(".neonblue/state"),
            shutdown_timeout: Duration::from_secs(30),
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
    /// Retries of a failed request to a remote store (S3: connection
    /// refused or cut, 5xx, throttling) before the commit fails (the run
    /// then stops; a restart completes it, nothing is lost or doubled).
    /// Each back-off is at least `retry_initial`, and a request is given up
    /// 3 minutes after its first attempt, so with the default the time
    /// bound is the one that counts.
    pub max_retries: u32,
    /// First back-off; grows per retry (with jitter).
    #[serde(with = "duration")]
    pub retry_initial: Duration,
    /// Back-off cap.
    #[serde(with = "duration")]
    pub retry_max: Duration,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            url: ".neonblue/output".into(),
            row_group_rows: 128 * 1024,
            zstd_level: 3,
            max_retries: 100,
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
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
    /// Free space the state directory's disk must keep beyond a commit
    /// (3× the commit's bytes): a commit that would leave less is refused
    /// before anything is written. 0 turns the check off.
    pub min_free_bytes: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            cache_bytes: 256 << 20,
            min_free_bytes: 256 << 20,
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
    #[serde(with = "duration")]
    pub retry_initial: Duration,
    /// Back-off cap.
    #[serde(with = "duration")]
    pub retry_max: Duration,
    /// Request timeout.
    #[serde(with = "duration")]
    pub timeout: Duration,
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
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            timeout: Duration::from_secs(120),
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
    /// `NEONBLUE_KAFKA__PROPERTIES__<PROPERTY>` variables (`_` for `.`) and
    /// `--kafka-property`.
    pub properties: std::collections::BTreeMap<String, String>,
    /// Partitions of `<app_id>-repartition` (0: as many as the largest input topic).
    pub repartition_partitions: u32,
    /// Replication factor of the internal topics it creates.
    pub replication_factor: i32,
    /// How often outputs, state and offsets are committed.
    #[serde(with = "duration")]
    pub commit_interval: Duration,
    /// Also commit after this many input records, or this many repartition
    /// records.
    pub commit_records: u64,
    /// Consumer group session timeout (how fast a dead instance's partitions
    /// move); whole milliseconds (librdkafka's `session.timeout.ms`).
    #[serde(with = "duration")]
    pub session_timeout: Duration,
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
            commit_interval: Duration::from_secs(2),
            commit_records: 100_000,
            session_timeout: Duration::from_secs(10),
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
            .field("retry_initial", &self.retry_initial)
            .field("retry_max", &self.retry_max)
            .field("timeout", &self.timeout)
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
            .field("commit_interval", &self.commit_interval)
            .field("commit_records", &self.commit_records)
            .field("session_timeout", &self.session_timeout)
            .field("max_records_per_second", &self.max_records_per_second)
            .finish()
    }
}

/// The operations endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Listen address of `/metrics` and `/healthz` (e.g. `0.0.0.0:9464`); empty: off.
    pub addr: String,
}

impl Config {
    /// Reads a TOML file alone (no environment, no flags); a missing section
    /// or key takes its default. [`sources::load`] is the full story.
    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let loaded = sources::load(&sources::Sources {
            file: Some(path.to_path_buf()),
            env: Vec::new(),
            flags: Vec::new(),
        })?;
        Ok(loaded.config)
    }

    /// Checks what types alone cannot: ranges, precision of durations,
    /// names. Returns `(key, problem)` pairs, the problem saying what is allowed.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut bad: Vec<(String, String)> = Vec::new();
        let mut check = |ok: bool, key: &str, why: &str| {
            if !ok {
                bad.push((key.to_string(), why.to_string()));
            }
        };
        let p = &self.processing;
        check(
            !p.app_id.is_empty()
                && p.app_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "processing.app_id",
            "use letters, digits, '.', '_' or '-' (it names the consumer group and prefixes topic names)",
        );
        check(
            crate::time::from_duration(p.grace).is_some(),
            "processing.grace",
            "a whole number of microseconds, at most about 292,000 years",
        );
        check(p.partitions >= 1, "processing.partitions", "at least 1");
        check(
            p.checkpoint_records >= 1,
            "processing.checkpoint_records",
            "at least 1",
        );
        check(
            !p.shutdown_timeout.is_zero(),
            "processing.shutdown_timeout",
            "more than 0, e.g. \"30s\"",
        );
        check(
            !p.state_dir.as_os_str().is_empty(),
            "processing.state_dir",
            "a directory path",
        );
        check(
            self.source.topics.iter().all(|t| !t.trim().is_empty()),
            "source.topics",
            "topic names, none empty",
        );
        check(
            self.state.cache_bytes >= 64 << 10,
            "state.cache_bytes",
            "at least 65536 (64 KiB)",
        );
        let o = &self.output;
        check(
            !o.url.is_empty(),
            "output.url",
            "a directory or an object_store URL",
        );
        check(o.row_group_rows >= 1, "output.row_group_rows", "at least 1");
        check(
            (1..=22).contains(&o.zstd_level),
            "output.zstd_level",
            "1 to 22",
        );
        check(
            o.retry_initial <= o.retry_max,
            "output.retry_initial",
            "at most output.retry_max",
        );
        let k = &self.kafka;
        check(
            k.replication_factor >= 1 || k.replication_factor == -1,
            "kafka.replication_factor",
            "at least 1, or -1 for the brokers' default",
        );
        check(
            k.commit_interval >= Duration::from_millis(10),
            "kafka.commit_interval",
            "at least 10ms",
        );
        check(k.commit_records >= 1, "kafka.commit_records", "at least 1");
        check(
            k.session_timeout.subsec_millis() * 1_000_000 == k.session_timeout.subsec_nanos()
                && (Duration::from_secs(1)..=Duration::from_secs(3600))
                    .contains(&k.session_timeout),
            "kafka.session_timeout",
            "whole milliseconds from 1s to 1h (librdkafka's session.timeout.ms)",
        );
        check(
            k.properties.keys().all(|n| !n.trim().is_empty()),
            "kafka.properties",
            "librdkafka property names, none empty",
        );
        let c = &self.clickhouse;
        check(
            c.database
                .chars()
                .next()
                .is_some_and(|x| x.is_ascii_alphabetic() || x == '_')
                && c.database
                    .chars()
                    .all(|x| x.is_ascii_alphanumeric() || x == '_'),
            "clickhouse.database",
            "a plain identifier: letters, digits and '_', not starting with a digit",
        );
        check(c.batch_rows >= 1, "clickhouse.batch_rows", "at least 1");
        check(
            !c.timeout.is_zero(),
            "clickhouse.timeout",
            "more than 0, e.g. \"2m\"",
        );
        check(
            c.retry_initial <= c.retry_max,
            "clickhouse.retry_initial",
            "at most clickhouse.retry_max",
        );
        let a = &self.metrics.addr;
        check(
            a.is_empty()
                || a.rsplit_once(':')
                    .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok()),
            "metrics.addr",
            "HOST:PORT, e.g. \"0.0.0.0:9464\", or \"\" for no endpoint",
        );
        bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_durations_are_strings() {
        assert_eq!(Config::default().validate(), vec![]);
        let text = toml::to_string(&Config::default()).unwrap();
        assert!(text.contains("grace = \"5m\""), "{text}");
        assert!(text.contains("commit_interval = \"2s\""), "{text}");
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, Config::default());
    }

    #[test]
    fn validation_names_the_key_and_what_is_allowed() {
        let mut c = Config::default();
        c.processing.grace = Duration::from_nanos(1_500);
        c.processing.partitions = 0;
        c.kafka.session_timeout = Duration::from_micros(1_500_500);
        c.output.zstd_level = 30;
        c.clickhouse.database = "x-y".into();
        c.metrics.addr = "9464".into();
        let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "processing.grace",
                "processing.partitions",
                "output.zstd_level",
                "kafka.session_timeout",
                "clickhouse.database",
                "metrics.addr"
            ]
        );
        c = Config::default();
        c.processing.grace = Duration::from_millis(250);
        assert_eq!(c.validate(), vec![]);
        assert_eq!(c.processing.grace_micros(), 250_000);
    }
}
