//! Command-line interface (clap): `run`, `generate`, `demo`, `report`.

pub mod demo;
pub mod report;

use crate::config::{Config, Layout};
use crate::domain::Micros;
use crate::parse::timestamp::parse_timestamp_str;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// neonblue: A/B-testing analytics from Debezium outbox envelopes.
#[derive(Debug, Parser)]
#[command(name = "neonblue", version, about)]
pub struct Cli {
    /// TOML configuration file (every setting has a default).
    #[arg(long, global = true, env = "NEONBLUE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `neonblue=debug`.
    #[arg(long, global = true, env = "NEONBLUE_LOG", default_value = "info")]
    pub log: String,
    /// Log as JSON lines.
    #[arg(long, global = true, env = "NEONBLUE_LOG_JSON")]
    pub log_json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Process envelopes: from a JSONL file (`--input`) to the outputs.
    Run(RunArgs),
    /// Write deterministic synthetic outbox envelopes (JSONL).
    Generate(GenerateArgs),
    /// Rebuild outputs from the input topics: from offsets or a timestamp,
    /// into a fresh application id or after `--reset`; runs to the end.
    Replay(ReplayArgs),
    /// Print or apply the ClickHouse DDL (`schemas/clickhouse/`).
    Schema(SchemaArgs),
    /// Generate a data set, run it embedded, print the variant table and the report.
    Demo(demo::DemoArgs),
    /// The experiment report (SPEC 10): lifts, intervals, SRM from `user_daily`.
    Report(report::ReportArgs),
}

/// Settings shared by `run` and `demo`.
#[derive(Debug, Clone, Args)]
pub struct ProcessingArgs {
    /// Output root: a directory or an object_store URL (file:///…, s3://bucket/prefix).
    #[arg(long, env = "NEONBLUE_OUTPUT")]
    pub output: Option<String>,
    /// State directory (sled).
    #[arg(long, env = "NEONBLUE_STATE")]
    pub state: Option<PathBuf>,
    /// Task partitions (in file mode: worker threads).
    #[arg(long, env = "NEONBLUE_PARTITIONS")]
    pub partitions: Option<u32>,
    /// Grace for pending events and windows, e.g. `300`, `300s`, `5m`, `1h`.
    #[arg(long, env = "NEONBLUE_GRACE")]
    pub grace: Option<String>,
    /// Input layout.
    #[arg(long, value_enum, env = "NEONBLUE_LAYOUT")]
    pub layout: Option<Layout>,
    /// Input lines between checkpoints.
    #[arg(long, env = "NEONBLUE_CHECKPOINT_RECORDS")]
    pub checkpoint_records: Option<u64>,
    /// Memory for cached state, in bytes (`[state] cache_bytes`), e.g. `268435456`.
    #[arg(long, env = "NEONBLUE_STATE_CACHE_BYTES")]
    pub state_cache_bytes: Option<u64>,
}

/// Kafka mode settings (override `[kafka]`, `[metrics]` and the app id).
#[derive(Debug, Clone, Default, Args)]
pub struct KafkaArgs {
    /// Bootstrap servers, e.g. `localhost:9092`.
    #[arg(long, env = "NEONBLUE_BROKERS")]
    pub brokers: Option<String>,
    /// Application id: consumer group and prefix of the internal topics.
    #[arg(long, env = "NEONBLUE_APP_ID")]
    pub app_id: Option<String>,
    /// Input topics, comma-separated.
    #[arg(long, env = "NEONBLUE_TOPICS", value_delimiter = ',')]
    pub topics: Option<Vec<String>>,
    /// A librdkafka property, `name=value` (security settings …); repeatable.
    #[arg(long = "kafka-property", value_name = "NAME=VALUE")]
    pub properties: Vec<String>,
    /// Partitions of the repartition topic (default: as many as the largest input topic).
    #[arg(long, env = "NEONBLUE_REPARTITION_PARTITIONS")]
    pub repartition_partitions: Option<u32>,
    /// Commit interval in milliseconds.
    #[arg(long, env = "NEONBLUE_COMMIT_INTERVAL_MS")]
    pub commit_interval_ms: Option<u64>,
    /// Throttle: records per second per instance.
    #[arg(long, env = "NEONBLUE_MAX_RECORDS_PER_SECOND")]
    pub max_records_per_second: Option<u64>,
    /// Serve `/metrics` and `/healthz` on this address, e.g. `0.0.0.0:9464`.
    #[arg(long, env = "NEONBLUE_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
}

impl KafkaArgs {
    /// Applies the flags to `cfg`.
    pub fn apply(&self, cfg: &mut Config) -> Result<()> {
        if let Some(b) = &self.brokers {
            cfg.kafka.brokers = b.clone();
        }
        if let Some(a) = &self.app_id {
            if a.is_empty()
                || !a
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                bail!("--app-id {a:?}: use letters, digits, '.', '_' or '-' (it prefixes topic names)");
            }
            cfg.processing.app_id = a.clone();
        }
        if let Some(t) = &self.topics {
            cfg.source.topics = t.clone();
        }
        apply_kafka_properties(&mut cfg.kafka, &self.properties)?;
        if let Some(n) = self.repartition_partitions {
            cfg.kafka.repartition_partitions = n;
        }
        if let Some(n) = self.commit_interval_ms {
            cfg.kafka.commit_interval_ms = n;
        }
        if let Some(n) = self.max_records_per_second {
            cfg.kafka.max_records_per_second = n;
        }
        if let Some(a) = &self.metrics_addr {
            cfg.metrics.addr = Some(a.clone());
        }
        Ok(())
    }
}

/// Applies `NEONBLUE_KAFKA_<PROPERTY>` environment variables, then
/// `--kafka-property NAME=VALUE` flags, to the librdkafka properties.
pub fn apply_kafka_properties(
    kafka: &mut crate::config::KafkaConfig,
    flags: &[String],
) -> Result<()> {
    kafka.apply_env_properties(std::env::vars_os());
    for kv in flags {
        // Not echoed: the argument may hold a secret.
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            anyhow!("--kafka-property expects NAME=VALUE (an argument lacks '=')")
        })?;
        let k = k.trim();
        if k.is_empty() {
            bail!("--kafka-property expects NAME=VALUE: the name is empty");
        }
        kafka.properties.insert(k.to_string(), v.to_string());
    }
    Ok(())
}

/// ClickHouse sink settings (override `[clickhouse]`).
#[derive(Debug, Clone, Default, Args)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP interface, e.g. `http://localhost:8123` (enables the sink).
    #[arg(long, env = "NEONBLUE_CLICKHOUSE_URL")]
    pub clickhouse_url: Option<String>,
    /// ClickHouse database.
    #[arg(long, env = "NEONBLUE_CLICKHOUSE_DATABASE")]
    pub clickhouse_database: Option<String>,
    /// ClickHouse user.
    #[arg(long, env = "NEONBLUE_CLICKHOUSE_USER")]
    pub clickhouse_user: Option<String>,
    /// ClickHouse password.
    #[arg(long, env = "NEONBLUE_CLICKHOUSE_PASSWORD", hide_env_values = true)]
    pub clickhouse_password: Option<String>,
}

impl ClickHouseArgs {
    /// Applies the flags to `cfg`.
    pub fn apply(&self, cfg: &mut Config) {
        let c = &mut cfg.clickhouse;
        if let Some(v) = &self.clickhouse_url {
            c.url = v.clone();
        }
        if let Some(v) = &self.clickhouse_database {
            c.database = v.clone();
        }
        if let Some(v) = &self.clickhouse_user {
            c.user = v.clone();
        }
        if let Some(v) = &self.clickhouse_password {
            c.password = v.clone();
        }
    }
}

/// `schema` arguments.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// `print` the DDL, or `apply` it to the configured ClickHouse.
    #[arg(value_parser = ["print", "apply"])]
    pub action: String,
    /// The DDL adapted for ClickHouse 18.16 (no DateTime64/Bool/LowCardinality);
    /// `apply` picks it by itself for servers older than 20.1.
    #[arg(long)]
    pub legacy: bool,
    /// ClickHouse settings.
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
}

/// `replay` arguments.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Processing settings.
    #[command(flatten)]
    pub processing: ProcessingArgs,
    /// Kafka settings.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// ClickHouse settings.
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
    /// Output events from these offsets on: `topic:partition=offset,…`
    /// (unlisted partitions from 0). Assignments are always rebuilt from the start.
    #[arg(long, conflicts_with = "from_timestamp")]
    pub from_offsets: Option<String>,
    /// Output events from the first record at or after this time (ISO-8601) per partition.
    #[arg(long)]
    pub from_timestamp: Option<String>,
    /// Delete the application's group, internal topics, state directory and
    /// outputs first (otherwise the application id must be fresh).
    #[arg(long)]
    pub reset: bool,
    /// Write the accounting summary as JSON to this file.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Pin the wall clock used by the "more than 24 h ahead" check (ISO-8601).
    #[arg(long, env = "NEONBLUE_NOW")]
    pub now: Option<String>,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// `run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// JSONL input (SPEC 2.4). Without it: Kafka mode (a consumer group on `--brokers`).
    #[arg(long, env = "NEONBLUE_INPUT")]
    pub input: Option<PathBuf>,
    /// Processing settings.
    #[command(flatten)]
    pub processing: ProcessingArgs,
    /// Kafka settings.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// ClickHouse settings.
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
    /// Kafka mode: stop once every input record is processed (closing every window).
    #[arg(long)]
    pub until_end: bool,
    /// Write the accounting summary as JSON to this file.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Pin the wall clock used by the "more than 24 h ahead" check (ISO-8601).
    #[arg(long, env = "NEONBLUE_NOW")]
    pub now: Option<String>,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// `generate` arguments.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output file (`-` for stdout).
    #[arg(long, short, default_value = "-")]
    pub output: String,
    /// Number of envelopes.
    #[arg(long)]
    pub records: Option<u64>,
    /// Random seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of users.
    #[arg(long)]
    pub users: Option<u32>,
    /// Start from the `clean` preset (no late, unassigned, malformed, duplicate or reordered records).
    #[arg(long)]
    pub clean: bool,
    /// Any other knob, as `name=value` (value in JSON, e.g. `late_events=0.01`); repeatable.
    #[arg(long = "set", value_name = "KNOB=VALUE")]
    pub set: Vec<String>,
    /// Produce the records to this Kafka topic (on `--brokers`) instead of a file.
    #[arg(long, requires = "brokers")]
    pub topic: Option<String>,
    /// Bootstrap servers for `--topic`.
    #[arg(long, env = "NEONBLUE_BROKERS")]
    pub brokers: Option<String>,
    /// Partitions of `--topic` when it is created (records keep their partition modulo this).
    #[arg(long, default_value_t = 1)]
    pub topic_partitions: i32,
    /// A librdkafka property for `--topic`, `name=value` (security settings,
    /// `compression.type=zstd` …); repeatable. Also `NEONBLUE_KAFKA_<PROPERTY>`
    /// variables and `[kafka.properties]` of `--config`.
    #[arg(long = "kafka-property", value_name = "NAME=VALUE")]
    pub properties: Vec<String>,
}

/// Parses a duration like `300`, `300s`, `5m`, `1h`, `250ms` into seconds.
pub fn parse_duration_secs(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        let ms: u64 = n
            .trim()
            .parse()
            .map_err(|_| anyhow!("invalid duration {s:?}"))?;
        return Ok(ms / 1000);
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600)
    } else if let Some(n) = s.strip_suffix('d') {
        (n, 86400)
    } else {
        (s, 1)
    };
    let v: u64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow!("invalid duration {s:?} (e.g. 300s, 5m, 1h)"))?;
    Ok(v * mult)
}

/// Parses `--now`.
pub fn parse_now(now: Option<&str>) -> Result<Micros> {
    match now {
        Some(s) => parse_timestamp_str(s).ok_or_else(|| {
            anyhow!("invalid --now {s:?}: expected ISO-8601, e.g. 2025-10-01T00:00:00Z")
        }),
        None => {
            let d = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("clock before 1970")?;
            Ok(d.as_micros() as Micros)
        }
    }
}

/// Loads the config file (if any) and applies flag/env overrides.
pub fn load_config(path: Option<&PathBuf>, p: &ProcessingArgs) -> Result<Config> {
    let mut cfg = match path {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(o) = &p.output {
        cfg.output.url = o.clone();
    }
    if let Some(s) = &p.state {
        cfg.processing.state_dir = s.clone();
    }
    if let Some(n) = p.partitions {
        if n == 0 {
            bail!("--partitions must be at least 1");
        }
        cfg.processing.partitions = n;
    }
    if let Some(g) = &p.grace {
        cfg.processing.grace_seconds = parse_duration_secs(g)?;
    }
    if let Some(l) = p.layout {
        cfg.source.layout = l;
    }
    if let Some(c) = p.checkpoint_records {
        if c == 0 {
            bail!("--checkpoint-records must be at least 1");
        }
        cfg.processing.checkpoint_records = c;
    }
    if let Some(c) = p.state_cache_bytes {
        cfg.state.cache_bytes = c;
    }
    Ok(cfg)
}

/// Builds generator options from the flags.
pub fn generate_options(a: &GenerateArgs) -> Result<crate::generate::GenerateOptions> {
    let mut opts = if a.clean {
        crate::generate::GenerateOptions::clean()
    } else {
        Default::default()
    };
    if let Some(r) = a.records {
        opts.records = r;
    }
    if let Some(s) = a.seed {
        opts.seed = s;
    }
    if let Some(u) = a.users {
        opts.users = u;
    }
    if !a.set.is_empty() {
        let mut v = serde_json::to_value(&opts)?;
        for kv in &a.set {
            let (k, val) = kv
                .split_once('=')
                .ok_or_else(|| anyhow!("--set expects KNOB=VALUE, got {kv:?}"))?;
            let obj = v
                .as_object_mut()
                .ok_or_else(|| anyhow!("generator options are not an object"))?;
            if !obj.contains_key(k) {
                let known: Vec<&String> = obj.keys().collect();
                bail!("unknown generator knob {k:?}; known: {known:?}");
            }
            let parsed = serde_json::from_str(val)
                .unwrap_or_else(|_| serde_json::Value::String(val.to_string()));
            obj.insert(k.to_string(), parsed);
        }
        opts = serde_json::from_value(v).context("invalid --set value")?;
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("300").unwrap(), 300);
        assert_eq!(parse_duration_secs("5m").unwrap(), 300);
        assert_eq!(parse_duration_secs("1h").unwrap(), 3600);
        assert_eq!(parse_duration_secs("30s").unwrap(), 30);
        assert!(parse_duration_secs("abc").is_err());
    }
}
