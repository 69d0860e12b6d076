//! The `neonblue` binary.

use anyhow::{Context, Result};
use clap::Parser;
use neonblue::cli::{self, Cli, Command};
use neonblue::drivers::file::{run_file, FileRun};
use neonblue::drivers::kafka::{self, replay, replay::ReplayFrom};
use neonblue::ops;
use neonblue::sink::clickhouse::ddl;
use std::io::{IsTerminal, Write};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() {
    let cli = Cli::parse();
    init_tracing(&cli.log, cli.log_json);
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => {
            let mut config = cli::load_config(cli.config.as_ref(), &args.processing)?;
            args.kafka.apply(&mut config)?;
            args.clickhouse.apply(&mut config);
            let Some(input) = args.input else {
                apply_per_app_defaults(&mut config);
                let progress = !args.no_progress && std::io::stderr().is_terminal();
                let now = cli::parse_now(args.now.as_deref())?;
                let summary = run_kafka(config, now, args.until_end, Default::default(), progress)?;
                return finish_kafka(summary, args.summary.as_deref());
            };
            apply_per_input_defaults(&mut config, &input);
            let run = FileRun {
                input,
                config,
                now: cli::parse_now(args.now.as_deref())?,
                progress: !args.no_progress && std::io::stderr().is_terminal(),
            };
            let summary = run_file(&run)?;
            eprint!("{}", summary.render());
            eprintln!(
                "outputs: {}  state: {}",
                run.config.output.url,
                run.config.processing.state_dir.display()
            );
            if let Some(path) = args.summary {
                std::fs::write(&path, summary.to_json() + "\n")
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            Ok(())
        }
        Command::Replay(args) => {
            let mut config = cli::load_config(cli.config.as_ref(), &args.processing)?;
            args.kafka.apply(&mut config)?;
            args.clickhouse.apply(&mut config);
            apply_per_app_defaults(&mut config);
            let progress = !args.no_progress && std::io::stderr().is_terminal();
            let now = cli::parse_now(args.now.as_deref())?;
            let base = kafka::client_config(&config.kafka, &config.processing.app_id);
            let from = match (&args.from_offsets, &args.from_timestamp) {
                (Some(o), _) => ReplayFrom::Offsets(replay::parse_offsets(o)?),
                (None, Some(t)) => ReplayFrom::Timestamp(cli::parse_now(Some(t))? / 1000),
                (None, None) => ReplayFrom::Beginning,
            };
            let topics = kafka::AppTopics::discover(&config)?;
            if args.reset {
                replay::reset(&base, &config, &topics)?;
            } else if !replay::is_fresh(&base, &topics)? {
                anyhow::bail!(
                    "application id {:?} already has internal topics: replay into a fresh --app-id, or pass --reset to delete its group, topics, state and outputs first",
                    config.processing.app_id
                );
            }
            let start = replay::output_start(&base, &topics, &from)?;
            let summary = run_kafka(config, now, true, start, progress)?;
            finish_kafka(summary, args.summary.as_deref())
        }
        Command::Schema(args) => {
            let mut config = match cli.config.as_ref() {
                Some(p) => neonblue::config::Config::from_file(p)?,
                None => Default::default(),
            };
            args.clickhouse.apply(&mut config);
            let ch = &config.clickhouse;
            ddl::check_identifier("database", &ch.database)?;
            if args.action == "print" {
                print!("{}", ddl::script(&ch.database, args.legacy));
                return Ok(());
            }
            if ch.url.is_empty() {
                anyhow::bail!(
                    "no ClickHouse configured: pass --clickhouse-url (or [clickhouse] url)"
                );
            }
            let (n, legacy) = ddl::apply(ch, args.legacy.then_some(true))?;
            eprintln!(
                "applied {n} statements ({} DDL) to {} (database {})",
                if legacy { "18.16" } else { "current" },
                ch.url,
                ch.database
            );
            Ok(())
        }
        Command::Generate(args) => {
            let opts = cli::generate_options(&args)?;
            if let Some(topic) = &args.topic {
                let mut kcfg = match cli.config.as_ref() {
                    Some(p) => neonblue::config::Config::from_file(p)?.kafka,
                    None => Default::default(),
                };
                if let Some(b) = &args.brokers {
                    kcfg.brokers = b.clone();
                }
                cli::apply_kafka_properties(&mut kcfg, &args.properties)?;
                let tmp = tempfile::NamedTempFile::new()?;
                let stats = neonblue::generate::generate_to_path(&opts, tmp.path())?;
                let base = kafka::client_config(&kcfg, "neonblue-generate");
                let n =
                    kafka::produce::produce_file(&base, tmp.path(), topic, args.topic_partitions)?;
                eprintln!("produced {n} records ({} bytes) to {topic}", stats.bytes);
                return Ok(());
            }
            let stats = if args.output == "-" {
                let stdout = std::io::stdout();
                let mut lock = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
                let s = neonblue::generate::generate(&opts, &mut lock)?;
                lock.flush()?;
                s
            } else {
                neonblue::generate::generate_to_path(&opts, std::path::Path::new(&args.output))?
            };
            eprintln!(
                "generated {} records ({} bytes)",
                stats.records, stats.bytes
            );
            Ok(())
        }
        Command::Demo(args) => cli::demo::run_demo(cli.config.as_ref(), &args),
        Command::Report(args) => cli::report::run_report(&args),
    }
}

/// Runs one Kafka-mode instance with the ops endpoint and signal handling.
fn run_kafka(
    config: neonblue::config::Config,
    now: i64,
    until_end: bool,
    output_start: kafka::OutputStart,
    progress: bool,
) -> Result<neonblue::domain::Summary> {
    let health = ops::Health::default();
    let shutdown = ops::Shutdown::default();
    ops::serve(
        config.metrics.addr.as_deref(),
        health.clone(),
        shutdown.clone(),
    )?;
    let out = config.output.url.clone();
    let state = config.processing.state_dir.clone();
    let summary = kafka::run_group(kafka::GroupRun {
        config,
        now,
        until_end,
        output_start,
        progress,
        health,
        shutdown,
    })?;
    eprintln!("outputs: {out}  state: {}", state.display());
    Ok(summary)
}

fn finish_kafka(summary: neonblue::domain::Summary, path: Option<&std::path::Path>) -> Result<()> {
    eprintln!("accounting of the tasks this instance held at exit:");
    eprint!("{}", summary.render());
    if let Some(path) = path {
        std::fs::write(path, summary.to_json() + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Kafka mode without explicit `--state`/`--output`: directories named
/// after the application id under `.neonblue/`.
fn apply_per_app_defaults(config: &mut neonblue::config::Config) {
    let defaults = neonblue::config::Config::default();
    let app = config.processing.app_id.clone();
    if config.processing.state_dir == defaults.processing.state_dir {
        config.processing.state_dir = defaults.processing.state_dir.join(&app);
    }
    if config.output.url == defaults.output.url {
        config.output.url = format!("{}/{app}", defaults.output.url);
    }
}

/// Without explicit `--state`/`--output` (flag, env or config file), each input
/// file gets its own state and output directories under `.neonblue/`, named
/// after the file and a hash of its path, size and modification time, so that
/// `run --input FILE` alone works for any number of files and a rewritten file
/// starts afresh instead of resuming the old one.
fn apply_per_input_defaults(config: &mut neonblue::config::Config, input: &std::path::Path) {
    let defaults = neonblue::config::Config::default();
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "input".into());
    let identity = std::fs::canonicalize(input)
        .ok()
        .and_then(|p| {
            let m = std::fs::metadata(&p).ok()?;
            let mtime = m
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_nanos();
            Some(format!("{}|{}|{}", p.display(), m.len(), mtime))
        })
        .unwrap_or_else(|| input.display().to_string());
    let name = format!(
        "{stem}-{:08x}",
        neonblue_topology::murmur2(identity.as_bytes()) as u32
    );
    if config.processing.state_dir == defaults.processing.state_dir {
        config.processing.state_dir = defaults.processing.state_dir.join(&name);
    }
    if config.output.url == defaults.output.url {
        config.output.url = format!("{}/{name}", defaults.output.url);
    }
}
