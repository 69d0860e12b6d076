//! Benchmark baseline: parse every envelope and payload of a JSONL file with
//! the same JSON parser as neonblue, and print the count. Built only with
//! `--features bench` (see `scripts/bench/`).
//!
//!     neonblue-bench-parse FILE           # serde_json DOM of every line and payload
//!     neonblue-bench-parse --typed FILE   # a minimal typed skip-parse

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let typed = args.iter().any(|a| a == "--typed");
    let Some(file) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: neonblue-bench-parse [--typed] FILE");
        std::process::exit(2);
    };
    let n = if typed {
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
