//! Command-line interface (clap): `run`, `replay`, `generate`, `schema`,
//! `demo`, `report`, `config`, `status`. Flags are values of configuration keys (their help
//! names the key in brackets) and go through [`crate::config::sources`].

pub mod demo;
pub mod report;
pub mod status;

use crate::config::sources::{self, FlagValue, Loaded, Sources};
use crate::config::Layout;
use crate::domain::Micros;
use crate::parse::timestamp::parse_timestamp_str;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// neonblue: A/B-testing analytics from Debezium outbox envelopes.
///
/// Settings come from, in increasing precedence: defaults, the TOML file
/// (--config), NEONBLUE_<SECTION>__<KEY> environment variables, flags; see
/// docs/neonblue.example.toml and `neonblue config print`. Durations take a
/// unit: 250ms, 2s, 5m, 1h 30m. Exit codes: 0 success, 1 other failure,
/// 2 usage or configuration error, 3 a dependency (Kafka, ClickHouse, object
/// store) unreachable or refusing, 4 data or I/O error, 5 shutdown timed out,
/// 130 interrupted twice.
#[derive(Debug, Parser)]
#[command(name = "neonblue", version, about, long_about)]
pub struct Cli {
    /// TOML configuration file (every setting has a default).
    #[arg(long, global = true, env = "NEONBLUE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `neonblue=debug,rdkafka=warn`;
    /// without it RUST_LOG, else `info`.
    #[arg(long, global = true, env = "NEONBLUE_LOG")]
    pub log: Option<String>,
    /// Log as JSON lines (the final error too).
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
    /// Show the settings in effect (`print`) or check a file (`validate`).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Where processing stands, from a state directory and/or the application's
    /// group on the brokers: tasks, offsets and lag, stream time, last
    /// checkpoint, state size, pending events, open windows, unfinished intents.
    Status(status::StatusArgs),
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
pub enum ConfigCommand {
    /// Print the settings in effect (defaults, `--config`, environment, these
    /// flags) as TOML, each value with where it came from; secrets masked.
    Print(ConfigPrintArgs),
    /// Check a configuration file: unknown keys and bad values are errors
    /// naming the key and what is allowed (exit code 2).
    Validate {
        /// The TOML file.
        file: PathBuf,
    },
}

/// `config print` arguments: the flags `run` takes.
#[derive(Debug, Args)]
pub struct ConfigPrintArgs {
    /// Processing settings.
    #[command(flatten)]
    pub processing: ProcessingArgs,
    /// Kafka settings.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// ClickHouse settings.
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
}

/// Settings shared by `run`, `replay` and `config print` (keys of `[processing]`,
/// `[source]` and `[output]`).
#[derive(Debug, Clone, Default, Args)]
pub struct ProcessingArgs {
    /// Output root: a directory or an object_store URL (file:///…, s3://bucket/prefix) [output.url].
    #[arg(long)]
    pub output: Option<String>,
    /// State directory (sled) [processing.state_dir].
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Task partitions (in file mode: worker threads) [processing.partitions].
    #[arg(long)]
    pub partitions: Option<String>,
    /// Grace for pending events and windows, e.g. `5m`, `300s`, `250ms` [processing.grace].
    #[arg(long)]
    pub grace: Option<String>,
    /// Input layout [source.layout].
    #[arg(long, value_enum)]
    pub layout: Option<Layout>,
    /// Input lines between checkpoints [processing.checkpoint_records].
    #[arg(long)]
    pub checkpoint_records: Option<String>,
    /// Memory for cached state pages of all tasks, in bytes [state.cache_bytes].
    #[arg(long)]
    pub state_cache_bytes: Option<String>,
}

impl ProcessingArgs {
    /// The flags given, as values of their keys.
    pub fn overrides(&self) -> Vec<FlagValue> {
        let mut v = Vec::new();
        if let Some(x) = &self.output {
            v.push(FlagValue::new("output.url", "--output", x));
        }
        if let Some(x) = &self.state {
            v.push(FlagValue::new(
                "processing.state_dir",
                "--state",
                x.display().to_string(),
            ));
        }
        if let Some(x) = &self.partitions {
            v.push(FlagValue::new("processing.partitions", "--partitions", x));
        }
        if let Some(x) = &self.grace {
            v.push(FlagValue::new("processing.grace", "--grace", x));
        }
        if let Some(x) = self.layout {
            let name = x
                .to_possible_value()
                .map(|p| p.get_name().to_string())
                .unwrap_or_default();
            v.push(FlagValue::new("source.layout", "--layout", name));
        }
        if let Some(x) = &self.checkpoint_records {
            v.push(FlagValue::new(
                "processing.checkpoint_records",
                "--checkpoint-records",
                x,
            ));
        }
        if let Some(x) = &self.state_cache_bytes {
            v.push(FlagValue::new(
                "state.cache_bytes",
                "--state-cache-bytes",
                x,
            ));
        }
        v
    }
}

/// Where an application lives on the brokers: the flags `run`, `replay`,
/// `config print` and `status` share.
#[derive(Debug, Clone, Default, Args)]
pub struct BrokerArgs {
    /// Bootstrap servers, e.g. `localhost:9092` [kafka.brokers].
    #[arg(long)]
    pub brokers: Option<String>,
    /// Application id: consumer group and prefix of the internal topics [processing.app_id].
    #[arg(long)]
    pub app_id: Option<String>,
    /// Input topics, comma-separated [source.topics].
    #[arg(long)]
    pub topics: Option<String>,
    /// A librdkafka property, `name=value` (security settings …); repeatable [kafka.properties].
    #[arg(long = "kafka-property", value_name = "NAME=VALUE")]
    pub properties: Vec<String>,
    /// Partitions of the repartition topic (default: as many as the largest input topic)
    /// [kafka.repartition_partitions].
    #[arg(long)]
    pub repartition_partitions: Option<String>,
}

impl BrokerArgs {
    /// The flags given, as values of their keys.
    pub fn overrides(&self) -> Vec<FlagValue> {
        let pairs = [
            ("kafka.brokers", "--brokers", &self.brokers),
            ("processing.app_id", "--app-id", &self.app_id),
            ("source.topics", "--topics", &self.topics),
            (
                "kafka.repartition_partitions",
                "--repartition-partitions",
                &self.repartition_partitions,
            ),
        ];
        let mut v = flag_values(&pairs);
        v.extend(kafka_property_flags(&self.properties));
        v
    }
}

/// Kafka mode settings (keys of `[kafka]`, `[metrics]`, the app id and topics).
#[derive(Debug, Clone, Default, Args)]
pub struct KafkaArgs {
    /// The application on the brokers.
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Commit interval, e.g. `2s`, `300ms` [kafka.commit_interval].
    #[arg(long)]
    pub commit_interval: Option<String>,
    /// Throttle: records per second per instance [kafka.max_records_per_second].
    #[arg(long)]
    pub max_records_per_second: Option<String>,
    /// Serve `/metrics` and `/healthz` on this address, e.g. `0.0.0.0:9464` [metrics.addr].
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// After SIGTERM, how long the final commit may take before exiting
    /// with code 5 without it, e.g. `30s` [processing.shutdown_timeout].
    #[arg(long)]
    pub shutdown_timeout: Option<String>,
}

impl KafkaArgs {
    /// The flags given, as values of their keys.
    pub fn overrides(&self) -> Vec<FlagValue> {
        let mut v = self.broker.overrides();
        v.extend(flag_values(&[
            (
                "kafka.commit_interval",
                "--commit-interval",
                &self.commit_interval,
            ),
            (
                "kafka.max_records_per_second",
                "--max-records-per-second",
                &self.max_records_per_second,
            ),
            ("metrics.addr", "--metrics-addr", &self.metrics_addr),
            (
                "processing.shutdown_timeout",
                "--shutdown-timeout",
                &self.shutdown_timeout,
            ),
        ]));
        v
    }
}

/// The flags of `(key, flag, value)` that were given, as values of their keys.
fn flag_values(pairs: &[(&str, &str, &Option<String>)]) -> Vec<FlagValue> {
    pairs
        .iter()
        .filter_map(|(key, flag, value)| value.as_ref().map(|x| FlagValue::new(key, flag, x)))
        .collect()
}

/// `--kafka-property NAME=VALUE` flags as values of `[kafka.properties]`
/// (a malformed one becomes a value the loader refuses, never echoed).
pub fn kafka_property_flags(flags: &[String]) -> Vec<FlagValue> {
    flags
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                FlagValue::kafka_property(k.trim(), "--kafka-property", v)
            }
            // No name: the loader reports it, without echoing the argument.
            _ => FlagValue::kafka_property("", "--kafka-property", ""),
        })
        .collect()
}

/// ClickHouse sink settings (keys of `[clickhouse]`).
#[derive(Debug, Clone, Default, Args)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP interface, e.g. `http://localhost:8123` (enables the sink) [clickhouse.url].
    #[arg(long)]
    pub clickhouse_url: Option<String>,
    /// ClickHouse database [clickhouse.database].
    #[arg(long)]
    pub clickhouse_database: Option<String>,
    /// ClickHouse user [clickhouse.user].
    #[arg(long)]
    pub clickhouse_user: Option<String>,
    /// ClickHouse password [clickhouse.password]; prefer NEONBLUE_CLICKHOUSE__PASSWORD
    /// (arguments are visible in `ps`).
    #[arg(long)]
    pub clickhouse_password: Option<String>,
}

impl ClickHouseArgs {
    /// The flags given, as values of their keys.
    pub fn overrides(&self) -> Vec<FlagValue> {
        let pairs = [
            ("clickhouse.url", "--clickhouse-url", &self.clickhouse_url),
            (
                "clickhouse.database",
                "--clickhouse-database",
                &self.clickhouse_database,
            ),
            (
                "clickhouse.user",
                "--clickhouse-user",
                &self.clickhouse_user,
            ),
            (
                "clickhouse.password",
                "--clickhouse-password",
                &self.clickhouse_password,
            ),
        ];
        pairs
            .into_iter()
            .filter_map(|(key, flag, value)| value.as_ref().map(|x| FlagValue::new(key, flag, x)))
            .collect()
    }
}

/// Loads the configuration: defaults, `file`, the process environment, `flags`.
pub fn load(file: Option<&PathBuf>, flags: Vec<FlagValue>) -> Result<Loaded> {
    Ok(sources::load(&Sources {
        file: file.cloned(),
        env: Sources::process_env(),
        flags,
    })?)
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
    /// Delete the application's group, internal topics, state directory,
    /// every object under the output root and the ClickHouse rows first
    /// (otherwise the application id must be fresh). Prints the plan, then
    /// asks on a terminal; `--yes` for scripts, `--dry-run` for the plan only.
    #[arg(long)]
    pub reset: bool,
    /// With `--reset`: print what would be deleted, delete nothing, exit.
    #[arg(long, requires = "reset")]
    pub dry_run: bool,
    /// With `--reset`: do not ask for confirmation (scripts; required without a terminal).
    #[arg(long, requires = "reset")]
    pub yes: bool,
    /// Write the accounting summary as JSON to this file.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Pin the wall clock used by the "more than 24 h ahead" check (ISO-8601).
    #[arg(long)]
    pub now: Option<String>,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// `run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// JSONL input (SPEC 2.4). Without it: Kafka mode (a consumer group on `--brokers`).
    #[arg(long)]
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
    #[arg(long)]
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
    /// Bootstrap servers for `--topic` [kafka.brokers].
    #[arg(long)]
    pub brokers: Option<String>,
    /// Partitions of `--topic` when it is created; the records are spread
    /// over them (`hash(outbox id) % n`, as `--set partitions=N` spreads a
    /// file's; a `--set partitions` of its own is kept, modulo this).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    pub topic_partitions: i32,
    /// A librdkafka property for `--topic`, `name=value` (security settings,
    /// `compression.type=zstd` …); repeatable. Also `NEONBLUE_KAFKA__PROPERTIES__<PROPERTY>`
    /// variables and `[kafka.properties]` of `--config`.
    #[arg(long = "kafka-property", value_name = "NAME=VALUE")]
    pub properties: Vec<String>,
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
    if a.topic.is_some() {
        opts.partitions = u32::try_from(a.topic_partitions).context("--topic-partitions")?;
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
    use clap::Parser;

    fn generate_args(args: &[&str]) -> GenerateArgs {
        let cli = Cli::try_parse_from([&["neonblue", "generate"], args].concat()).unwrap();
        match cli.command {
            Command::Generate(a) => a,
            _ => unreachable!("parsed as generate"),
        }
    }

    #[test]
    fn records_generated_for_a_topic_are_spread_over_its_partitions() {
        let topic = ["--topic", "t", "--brokers", "b:9092"];
        let opts = |extra: &[&str]| generate_options(&generate_args(&[&topic[..], extra].concat()));
        assert_eq!(opts(&["--topic-partitions", "4"]).unwrap().partitions, 4);
        assert_eq!(opts(&[]).unwrap().partitions, 1);
        let own = ["--topic-partitions", "4", "--set", "partitions=8"];
        assert_eq!(opts(&own).unwrap().partitions, 8);
        let zero = [&topic[..], &["--topic-partitions", "0"]].concat();
        assert!(Cli::try_parse_from([&["neonblue", "generate"], &zero[..]].concat()).is_err());
        // A file keeps the generator's default.
        let file = generate_options(&generate_args(&["--records", "10"])).unwrap();
        assert_eq!(file.partitions, 1);
    }
}
