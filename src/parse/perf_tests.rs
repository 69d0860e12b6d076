//! Throughput measurement of the hot path (ignored; run by hand):
//! `NB_FILE=/tmp/nb/in.jsonl NB_LINES=200000 cargo test --release --lib parse::perf_tests -- --ignored --nocapture`

use super::common::ParseContext;
use super::line_parse::parse_line;
use crate::config::SourceConfig;

/// CPU time of the calling thread in nanoseconds.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|t| t.parse().ok()))
        .unwrap_or(0)
}

#[test]
#[ignore]
fn parse_line_throughput() {
    let Ok(path) = std::env::var("NB_FILE") else {
        return;
    };
    let n: usize = std::env::var("NB_LINES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().take(n).collect();
    let ctx = ParseContext::new(SourceConfig::default(), 1_800_000_000_000_000);
    for round in 0..5 {
        let t = cpu_ns();
        let mut k = 0usize;
        for (i, l) in lines.iter().enumerate() {
            if let Some(p) = parse_line(&ctx, l, i as u64, "in.jsonl") {
                k += p.dlq.is_some() as usize;
                std::hint::black_box(&p);
            }
        }
        let ns = cpu_ns() - t;
        println!(
            "round {round}: parse_line {:.0}k lines/s (cpu), {k} dlq",
            lines.len() as f64 / (ns as f64 / 1e9) / 1e3
        );
    }
}

#[test]
#[ignore]
fn baseline_throughput() {
    let Ok(path) = std::env::var("NB_FILE") else {
        return;
    };
    let path = std::path::Path::new(&path);
    for round in 0..3 {
        let t = cpu_ns();
        let mut lines = 0u64;
        super::bench::count_lines(path, &mut lines).unwrap();
        let read = cpu_ns() - t;
        println!(
            "round {round}: read+split {:.0} ms for {lines} lines",
            read as f64 / 1e6
        );
        let t = cpu_ns();
        let n = super::bench::parse_file(path).unwrap();
        let bare = cpu_ns() - t;
        let t = cpu_ns();
        let m = super::bench::parse_file_typed(path).unwrap();
        let typed = cpu_ns() - t;
        println!(
            "round {round}: bare DOM {:.0}k lines/s ({n}), typed {:.0}k lines/s ({m}) (cpu, file read excluded)",
            n as f64 / ((bare - read) as f64 / 1e9) / 1e3,
            m as f64 / ((typed - read) as f64 / 1e9) / 1e3
        );
    }
}
