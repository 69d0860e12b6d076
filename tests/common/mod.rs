//! Helpers shared by integration tests.
#![allow(dead_code)]

use neonblue::config::{Config, Layout};
use neonblue::domain::Summary;
use neonblue::drivers::file::{run_file, FileRun};
use std::path::{Path, PathBuf};

/// Formats UTC microseconds as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn fmt_micros(us: i64) -> String {
    neonblue::time::format_iso(us)
}

/// Formats the date part of UTC microseconds.
pub fn fmt_date(us: i64) -> String {
    fmt_micros(us)[..10].to_string()
}

/// Path of a fixture file.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Runs file mode on `input` into `dir/{state,output}`.
pub fn run_into(
    input: &Path,
    dir: &Path,
    layout: Layout,
    partitions: u32,
    checkpoint_records: u64,
) -> Summary {
    let mut config = Config::default();
    config.source.layout = layout;
    config.processing.partitions = partitions;
    config.processing.checkpoint_records = checkpoint_records;
    config.processing.state_dir = dir.join("state");
    config.output.url = dir.join("output").display().to_string();
    let run = FileRun {
        input: input.to_path_buf(),
        config,
        now: 4_102_444_800_000_000, // 2100-01-01
        progress: false,
    };
    run_file(&run).expect("run_file")
}

/// Runs a future to completion.
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Opens an output root.
pub fn root(url: &str) -> neonblue::sink::OutputRoot {
    neonblue::sink::OutputRoot::open(url).unwrap()
}
