//! Benchmark baseline: parse every envelope and payload of a JSONL file with
//! the same JSON parser as neonblue, and print the count. Built only with
//! `--features bench` (see `scripts/bench/`).
//!
//!     neonblue-bench-parse FILE           # serde_json DOM of every line and payload
//!     neonblue-bench-parse --typed FILE   # a minimal typed skip-parse
//!     neonblue-bench-parse --neonblue FILE  # neonblue's line parser (outbox layout)
//!     neonblue-bench-parse --neonblue-serde FILE  # the same without its scanner

/// The same allocator as `neonblue` (see src/main.rs), so that the baseline
/// runs on the same allocation path.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let typed = args.iter().any(|a| a == "--typed");
    let own = args
        .iter()
        .any(|a| a == "--neonblue" || a == "--neonblue-serde");
    let scanner = !args.iter().any(|a| a == "--neonblue-serde");
    let Some(file) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: neonblue-bench-parse [--typed | --neonblue | --neonblue-serde] FILE");
        std::process::exit(2);
    };
    let n = if own {
        let ctx = neonblue::parse::ParseContext::new(
            neonblue::config::SourceConfig::default(),
            // 2100-01-01, as scripts/bench/run.py passes to `neonblue run --now`
            neonblue::time::from_secs(4_102_444_800),
        );
        neonblue::parse::bench::run_parser(std::path::Path::new(file), &ctx, scanner)
    } else if typed {
        neonblue::parse::bench::parse_file_typed(std::path::Path::new(file))
    } else {
        neonblue::parse::bench::parse_file(std::path::Path::new(file))
    };
    match n {
        Ok(n) => println!("{n}"),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
