//! The `neonblue` binary.

use anyhow::{Context, Result};
use clap::Parser;
use neonblue::cli::{self, Cli, Command};
use neonblue::pipeline::file::{run_file, FileRun};
use std::io::{IsTerminal, Write};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
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
            let config = cli::load_config(cli.config.as_ref(), &args.processing)?;
            let Some(input) = args.input else {
                anyhow::bail!("Kafka mode is not available in this build yet: pass --input FILE");
            };
            let mut config = config;
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
        Command::Generate(args) => {
            let opts = cli::generate_options(&args)?;
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
        Command::BenchParse { file, typed } => {
            let n = if typed {
                neonblue::parse::bench::parse_file_typed(&file)?
            } else {
                neonblue::parse::bench::parse_file(&file)?
            };
            println!("{n}");
            Ok(())
        }
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
