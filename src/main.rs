//! The `neonblue` binary.

use anyhow::{Context, Result};
use clap::Parser;
use neonblue::cli::{self, Cli, Command, ConfigCommand};
use neonblue::config::sources::{self, FlagValue, Loaded};
use neonblue::drivers::file::{run_file, FileRun};
use neonblue::drivers::kafka::{self, replay, replay::ReplayFrom};
use neonblue::ops;
use neonblue::sink::clickhouse::ddl;
use std::io::{IsTerminal, Write};

/// mimalloc (feature `mimalloc`, on by default), which also serves the C
/// libraries' malloc; without it, the system allocator (for heap profilers
/// such as heaptrack, which see only the system allocator).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The log filter: `--log`/`NEONBLUE_LOG`, else `RUST_LOG`, else `info`.
fn init_tracing(flag: Option<&str>, json: bool) -> Result<()> {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let flag = flag.filter(|s| !s.trim().is_empty());
    let (text, from) = match (flag, env.as_deref()) {
        (Some(f), _) => (f, "--log / NEONBLUE_LOG"),
        (None, Some(e)) => (e, "RUST_LOG"),
        (None, None) => ("info", "the default"),
    };
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map_err(|e| {
            ops::exit::Usage(format!(
                "invalid log filter {text:?} from {from}: {e} (e.g. info, neonblue=debug,rdkafka=warn)"
            ))
        })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!json && std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

/// True when the command line or the environment asks for JSON logs (read
/// before clap, so that even a usage error comes out as JSON).
fn wants_json() -> bool {
    std::env::args_os().any(|a| a == "--log-json")
        || std::env::var("NEONBLUE_LOG_JSON")
            .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() && wants_json() => {
            ops::exit::set_json(true);
            ops::exit::fail(ops::exit::USAGE, e.render().to_string().trim_end());
        }
        Err(e) => e.exit(),
    };
    ops::exit::set_json(cli.log_json);
    if let Err(e) = init_tracing(cli.log.as_deref(), cli.log_json) {
        ops::exit::fail(ops::exit::USAGE, &format!("{e:#}"));
    }
    if let Err(e) = run(cli) {
        let code = ops::exit::code_of(&e);
        ops::exit::fail(code, &ops::exit::message(&e));
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => {
            let mut flags = args.processing.overrides();
            flags.extend(args.kafka.overrides());
            flags.extend(args.clickhouse.overrides());
            let loaded = cli::load(cli.config.as_ref(), flags)?;
            let Some(input) = args.input else {
                let config = with_per_app_defaults(&loaded);
                let progress = !args.no_progress && std::io::stderr().is_terminal();
                let now = cli::parse_now(args.now.as_deref())?;
                let summary = run_kafka(config, now, args.until_end, Default::default(), progress)?;
                return finish_kafka(summary, args.summary.as_deref());
            };
            let config = with_per_input_defaults(&loaded, &input);
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
            let mut flags = args.processing.overrides();
            flags.extend(args.kafka.overrides());
            flags.extend(args.clickhouse.overrides());
            let loaded = cli::load(cli.config.as_ref(), flags)?;
            let config = with_per_app_defaults(&loaded);
            let progress = !args.no_progress && std::io::stderr().is_terminal();
            let now = cli::parse_now(args.now.as_deref())?;
            let from = match (&args.from_offsets, &args.from_timestamp) {
                (Some(o), _) => ReplayFrom::Offsets(
                    replay::parse_offsets(o)
                        .map_err(|e| ops::exit::Usage(format!("--from-offsets: {e:#}")))?,
                ),
                (None, Some(t)) => ReplayFrom::Timestamp(
                    cli::parse_now(Some(t))
                        .map_err(|e| ops::exit::Usage(format!("--from-timestamp: {e:#}")))?
                        / neonblue::time::MILLISECOND,
                ),
                (None, None) => ReplayFrom::Beginning,
            };
            let base = kafka::client_config(&config.kafka, &config.processing.app_id);
            let topics = kafka::AppTopics::discover(&config)?;
            // Resolved first: a start the brokers cannot give deletes nothing.
            let start = replay::output_start(&base, &topics, &from)?;
            if args.reset {
                let plan = replay::reset_plan(&base, &config, &topics)?;
                eprint!("{plan}");
                if args.dry_run {
                    eprintln!("dry run: nothing was deleted");
                    return Ok(());
                }
                confirm_reset(&plan, args.yes)?;
                replay::reset(&base, &config, &topics)?;
            } else if !replay::is_fresh(&base, &topics)? {
                return Err(ops::exit::Usage(format!(
                    "application id {:?} already has internal topics: replay into a fresh --app-id, or pass --reset to delete its group, topics, state and outputs first",
                    config.processing.app_id
                ))
                .into());
            }
            let summary = run_kafka(config, now, true, start, progress)?;
            finish_kafka(summary, args.summary.as_deref())
        }
        Command::Schema(args) => {
            let config = cli::load(cli.config.as_ref(), args.clickhouse.overrides())?.config;
            let ch = &config.clickhouse;
            ddl::check_identifier("database", &ch.database)?;
            if args.action == "print" {
                print!("{}", ddl::script(&ch.database, args.legacy));
                return Ok(());
            }
            if ch.url.is_empty() {
                return Err(ops::exit::Usage(
                    "no ClickHouse configured: pass --clickhouse-url (or [clickhouse] url)".into(),
                )
                .into());
            }
            let (n, legacy) = ddl::apply(ch, args.legacy.then_some(true))?;
            eprintln!(
                "applied {n} statements ({} DDL) to {} (database {})",
                if legacy { "18.16" } else { "current" },
                neonblue::config::redacted_url(&ch.url),
                ch.database
            );
            Ok(())
        }
        Command::Generate(args) => {
            let opts =
                cli::generate_options(&args).map_err(|e| ops::exit::Usage(format!("{e:#}")))?;
            if let Some(topic) = &args.topic {
                let mut flags = Vec::new();
                if let Some(b) = &args.brokers {
                    flags.push(FlagValue::new("kafka.brokers", "--brokers", b));
                }
                flags.extend(cli::kafka_property_flags(&args.properties));
                let kcfg = cli::load(cli.config.as_ref(), flags)?.config.kafka;
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
        Command::Status(args) => cli::status::run_status(cli.config.as_ref(), &args),
        Command::Config(ConfigCommand::Print(args)) => {
            let mut flags = args.processing.overrides();
            flags.extend(args.kafka.overrides());
            flags.extend(args.clickhouse.overrides());
            let loaded = cli::load(cli.config.as_ref(), flags)?;
            print!("{}", loaded.render());
            Ok(())
        }
        Command::Config(ConfigCommand::Validate { file }) => {
            let loaded = sources::load(&sources::Sources {
                file: Some(file.clone()),
                ..Default::default()
            })?;
            let set = loaded.origins.len();
            println!(
                "{}: valid ({set} setting{} given, the others default)",
                file.display(),
                if set == 1 { "" } else { "s" }
            );
            Ok(())
        }
    }
}

/// Asks before a reset: `--yes`, or the application id typed on a terminal.
fn confirm_reset(plan: &replay::ResetPlan, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(ops::exit::Usage(
            "replay --reset needs confirmation: pass --yes (no terminal to ask on), or --dry-run to see the plan only".into(),
        )
        .into());
    }
    eprint!(
        "This cannot be undone. Type the application id ({}) to go on: ",
        plan.app_id
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() == plan.app_id {
        Ok(())
    } else {
        Err(ops::exit::Usage("reset not confirmed: nothing was deleted".into()).into())
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
    let shutdown = ops::Shutdown::new(config.processing.shutdown_timeout);
    ops::serve(&config.metrics.addr, health.clone(), shutdown.clone())?;
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

/// Kafka mode without explicit `--state`/`--output` (flag, env or config
/// file): directories named after the application id under `.neonblue/`.
fn with_per_app_defaults(loaded: &Loaded) -> neonblue::config::Config {
    let mut config = loaded.config.clone();
    let app = config.processing.app_id.clone();
    if loaded.is_default("processing.state_dir") {
        config.processing.state_dir = config.processing.state_dir.join(&app);
    }
    if loaded.is_default("output.url") {
        config.output.url = format!("{}/{app}", config.output.url);
    }
    config
}

/// Without explicit `--state`/`--output` (flag, env or config file), each input
/// file gets its own state and output directories under `.neonblue/`, named
/// after the file and a hash of its path, size and modification time, so that
/// `run --input FILE` alone works for any number of files and a rewritten file
/// starts afresh instead of resuming the old one.
fn with_per_input_defaults(loaded: &Loaded, input: &std::path::Path) -> neonblue::config::Config {
    let mut config = loaded.config.clone();
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
    if loaded.is_default("processing.state_dir") {
        config.processing.state_dir = config.processing.state_dir.join(&name);
    }
    if loaded.is_default("output.url") {
        config.output.url = format!("{}/{name}", config.output.url);
    }
    config
}
