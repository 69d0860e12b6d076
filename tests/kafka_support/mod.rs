//! Helpers of the Kafka-mode tests: input preparation, instances, output comparison.
#![allow(dead_code)]

use neonblue::domain::WindowKind;
use neonblue::sink::read::{read_aggregates, read_events, read_user_daily};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pinned clock of every run.
pub const NOW: &str = "2100-01-01T00:00:00Z";
/// The product's default grace. Rows that depend on stream time (late,
/// unassigned at grace, window closing) must equal file mode's whatever the
/// pace of the input partitions: SPEC 5.1's watermarks make Kafka mode's
/// stream time independent of how partitions interleave.
pub const GRACE: &str = "5m";

/// The real broker's address (`NEONBLUE_TEST_BROKERS`, set by
/// `scripts/test.sh`); `None` skips the test unless a broker is required.
pub fn real_broker() -> Option<String> {
    match std::env::var("NEONBLUE_TEST_BROKERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            assert!(
                std::env::var("NEONBLUE_REQUIRE_BROKER").as_deref() != Ok("1"),
                "NEONBLUE_TEST_BROKERS is not set but a broker is required (scripts/test.sh starts Tansu)"
            );
            eprintln!("skipped: no broker (set NEONBLUE_TEST_BROKERS, or run scripts/test.sh)");
            None
        }
    }
}

/// A name no earlier run used (topics and application ids on a shared broker).
pub fn unique(prefix: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("{prefix}-{t}-{}", std::process::id())
}

/// The neonblue binary.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_neonblue"));
    c.env_remove("NEONBLUE_CONFIG").env("NEONBLUE_LOG", "info");
    c
}

fn user_of(v: &serde_json::Value) -> Option<String> {
    let payload = v.get("value")?.get("after")?.get("payload")?;
    let parsed: serde_json::Value = match payload {
        serde_json::Value::String(s) => serde_json::from_str(s).ok()?,
        other => other.clone(),
    };
    match parsed.get("user_id")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Generates `records` envelopes and lays them out for `partitions` input
/// partitions of `topic` keyed by user (so a user's records keep their
/// order, as with an outbox keyed by user), offsets counted per partition.
pub fn prepare_input(dir: &Path, topic: &str, partitions: u32, records: u64, seed: u64) -> PathBuf {
    let knobs = [
        "--clean",
        "--set",
        "duplicates=0.02",
        "--set",
        "before_assignment=0.05",
        "--set",
        "reassignments=0.05",
        "--set",
        "deletes=0.01",
        "--set",
        "malformed=0.005",
    ];
    prepare_input_with(dir, topic, partitions, records, seed, &knobs)
}

/// [`prepare_input`] with the generator's arguments `knobs` (e.g. `--clean`,
/// `--set k=v`); users are spread over `partitions` partitions (a topic may
/// have more, left empty).
pub fn prepare_input_with(
    dir: &Path,
    topic: &str,
    partitions: u32,
    records: u64,
    seed: u64,
    knobs: &[&str],
) -> PathBuf {
    let raw = dir.join("raw.jsonl");
    let st = bin()
        .args([
            "generate",
            "--records",
            &records.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args(knobs)
        .arg("--output")
        .arg(&raw)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&raw).unwrap();
    let mut next = vec![0i64; partitions as usize];
    let mut out = String::new();
    for line in text.lines() {
        let mut v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v @ serde_json::Value::Object(_)) if line.contains("\"value\"") => v,
            _ => continue, // malformed lines are exercised by the file tests
        };
        let p = user_of(&v)
            .map(|u| neonblue_topology::partition_for_key(u.as_bytes(), partitions))
            .unwrap_or(0);
        let o = &mut v.as_object_mut().unwrap();
        o.insert("topic".into(), topic.into());
        o.insert("partition".into(), p.into());
        o.insert("offset".into(), next[p as usize].into());
        next[p as usize] += 1;
        out.push_str(&serde_json::to_string(&v).unwrap());
        out.push('\n');
    }
    let path = dir.join("input.jsonl");
    std::fs::write(&path, out).unwrap();
    path
}

/// Produces the envelopes of `input` to `topic` (created with `partitions`
/// partitions if missing), each to the partition its line names.
pub fn produce(brokers: &str, input: &Path, topic: &str, partitions: i32) {
    let base = neonblue::drivers::kafka::client_config(
        &neonblue::config::KafkaConfig {
            brokers: brokers.to_string(),
            ..Default::default()
        },
        "test",
    );
    neonblue::drivers::kafka::produce::produce_file(&base, input, topic, partitions).unwrap();
}

/// Runs file mode over `input` with `partitions` tasks into `dir/file-out`.
pub fn file_run(input: &Path, dir: &Path, partitions: u32) -> PathBuf {
    file_run_with(
        input,
        dir,
        "file",
        &["--partitions", &partitions.to_string()],
    )
}

/// Runs file mode over `input` with `extra` arguments into `dir/<name>-out`.
pub fn file_run_with(input: &Path, dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!("{name}-out"));
    let st = bin()
        .args(["run", "--no-progress", "--now", NOW, "--grace", GRACE])
        .args(extra)
        .arg("--input")
        .arg(input)
        .arg("--state")
        .arg(dir.join(format!("{name}-state")))
        .arg("--output")
        .arg(&out)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "file-mode run failed");
    out
}

/// Starts a Kafka-mode instance writing to `dir/out`; its log goes to `dir/<name>.log`.
pub fn start_instance(
    brokers: &str,
    app_id: &str,
    topic: &str,
    dir: &Path,
    name: &str,
    extra: &[&str],
) -> Child {
    start_instance_into(brokers, app_id, topic, dir, name, &dir.join("out"), extra)
}

/// [`start_instance`] writing to `out`. `topics` is comma-separated.
pub fn start_instance_into(
    brokers: &str,
    app_id: &str,
    topics: &str,
    dir: &Path,
    name: &str,
    out: &Path,
    extra: &[&str],
) -> Child {
    instance(brokers, app_id, topics, dir, name, out)
        .args(extra)
        .spawn()
        .unwrap()
}

/// The command of a Kafka-mode instance (`run`, committing every 300 ms)
/// with its state in `dir/state-<name>`, writing to `out` (a directory or
/// URL) and its log to `dir/<name>.log`; `topics` is comma-separated.
pub fn instance(
    brokers: &str,
    app_id: &str,
    topics: &str,
    dir: &Path,
    name: &str,
    out: &Path,
) -> Command {
    instance_committing_every("300ms", brokers, app_id, topics, dir, name, out)
}

/// [`instance`] with another commit interval.
pub fn instance_committing_every(
    interval: &str,
    brokers: &str,
    app_id: &str,
    topics: &str,
    dir: &Path,
    name: &str,
    out: &Path,
) -> Command {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let mut c = bin();
    c.args(["run", "--no-progress", "--now", NOW, "--grace", GRACE])
        .args(["--brokers", brokers, "--app-id", app_id, "--topics", topics])
        .args(["--commit-interval", interval])
        .arg("--state")
        .arg(dir.join(format!("state-{name}")))
        .arg("--output")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(log);
    c
}

/// Waits for `child` to exit successfully within `limit`.
pub fn wait_ok(child: &mut Child, limit: Duration, what: &str, log: &Path) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(
                st.success(),
                "{what} failed ({st}); log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{what} did not finish in {limit:?}; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Fails unless the log at `log` holds no line at ERROR level: a run
/// without faults has none (an operator would chase each one).
pub fn assert_no_errors(log: &Path, what: &str) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains(r#""level":"ERROR""#))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} logged errors:\n{}",
        errors.join("\n")
    );
}

/// Checks `ready` every `every` until it holds (true) or `limit` passed (false).
pub fn poll_until(limit: Duration, every: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// Waits until the log at `path` has a line containing `needle`.
pub fn wait_for_log(path: &Path, needle: &str, limit: Duration) -> bool {
    poll_until(limit, Duration::from_millis(200), || {
        std::fs::read_to_string(path).is_ok_and(|log| log.contains(needle))
    })
}

/// Waits until some Parquet object exists under `root`.
pub fn wait_for_output(root: &Path, limit: Duration) -> bool {
    poll_until(limit, Duration::from_millis(200), || {
        walk(root)
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "parquet"))
    })
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Every dataset as sorted text rows; aggregates summed over partitions.
#[derive(Debug, PartialEq)]
pub struct Outputs {
    /// Event rows.
    pub events: Vec<String>,
    /// Hourly aggregates.
    pub hourly: Vec<String>,
    /// Daily aggregates.
    pub daily: Vec<String>,
    /// Per-user daily rollups.
    pub user_daily: Vec<String>,
}

/// Reads the outputs under `root`.
pub fn outputs(root: &Path) -> Outputs {
    outputs_of(&crate::common::root(&root.display().to_string()))
}

/// [`outputs`] of any output root (S3 too).
pub fn outputs_of(r: &neonblue::sink::OutputRoot) -> Outputs {
    crate::common::block(async {
        let mut events: Vec<String> = read_events(r)
            .await
            .unwrap()
            .iter()
            .map(|e| format!("{e:?}"))
            .collect();
        events.sort();
        let aggs = |rows: Vec<neonblue::domain::AggRow>| {
            let mut sum: BTreeMap<String, (u64, u64, u64, f64, f64)> = BTreeMap::new();
            for a in rows {
                let k = format!(
                    "{} {} {} {} {:?} {}",
                    a.window_start,
                    a.window_end,
                    a.experiment_id,
                    a.variant_id,
                    a.variant_key,
                    a.event_type
                );
                let s = sum.entry(k).or_default();
                s.0 += a.events;
                s.1 += a.users;
                s.2 += a.value_count;
                s.3 += a.value_sum;
                s.4 += a.value_sum_sq;
            }
            sum.into_iter()
                .map(|(k, s)| format!("{k} {} {} {} {:.6} {:.4}", s.0, s.1, s.2, s.3, s.4))
                .collect::<Vec<_>>()
        };
        let hourly = aggs(read_aggregates(r, WindowKind::Hourly).await.unwrap());
        let daily = aggs(read_aggregates(r, WindowKind::Daily).await.unwrap());
        let mut user_daily: Vec<String> = read_user_daily(r)
            .await
            .unwrap()
            .into_iter()
            .map(|mut u| {
                u.partition = 0;
                format!("{u:?}")
            })
            .collect();
        user_daily.sort();
        Outputs {
            events,
            hourly,
            daily,
            user_daily,
        }
    })
}

/// Asserts two output sets are equal row for row, naming the first difference.
pub fn assert_same(expected: &Outputs, actual: &Outputs, what: &str) {
    for (name, a, b) in [
        ("events", &expected.events, &actual.events),
        ("agg_hourly", &expected.hourly, &actual.hourly),
        ("agg_daily", &expected.daily, &actual.daily),
        ("user_daily", &expected.user_daily, &actual.user_daily),
    ] {
        if a != b {
            let first = a.iter().zip(b.iter()).find(|(x, y)| x != y);
            let differing = a.iter().zip(b.iter()).filter(|(x, y)| x != y).count();
            // Where the rows part ways, with some context.
            let at = first.map_or(0, |(x, y)| {
                x.bytes().zip(y.bytes()).take_while(|(p, q)| p == q).count()
            });
            let cut = |r: &String| {
                // The char boundary at or before the context's start
                // (`str::floor_char_boundary` needs Rust 1.91).
                let mut start = at.saturating_sub(120).min(r.len());
                while !r.is_char_boundary(start) {
                    start -= 1;
                }
                r[start..].chars().take(400).collect::<String>()
            };
            panic!(
                "{what}: {name} differs: {} rows expected, {} found, {differing} differ; first difference (from byte {at}):\n  expected …{}\n  found    …{}",
                a.len(),
                b.len(),
                first.map(|f| cut(f.0)).unwrap_or_default(),
                first.map(|f| cut(f.1)).unwrap_or_default()
            );
        }
    }
    assert!(!expected.events.is_empty(), "{what}: no events at all");
}
