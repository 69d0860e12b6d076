//! Helpers shared by integration tests.
#![allow(dead_code)]

use neonblue::config::{Config, Layout};
use neonblue::pipeline::file::{run_file, FileRun};
use neonblue::pipeline::Summary;
use std::path::{Path, PathBuf};

/// Formats UTC microseconds as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn fmt_micros(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Formats the date part of UTC microseconds.
pub fn fmt_date(us: i64) -> String {
    fmt_micros(us)[..10].to_string()
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
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
