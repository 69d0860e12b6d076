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
/// A grace far beyond the data's span: no row depends on stream time
/// (SPEC 4: only late/unassigned rows may differ between runs that
/// interleave partitions differently).
pub const GRACE: &str = "30d";

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
    let raw = dir.join("raw.jsonl");
    let st = bin()
        .args([
            "generate",
            "--clean",
            "--records",
            &records.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args([
            "--set",
            "duplicates=0.02",
            "--set",
            "before_assignment=0.05",
        ])
        .args([
            "--set",
            "reassignments=0.05",
            "--set",
            "deletes=0.01",
            "--set",
            "malformed=0.005",
        ])
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

/// Runs file mode over `input` with `partitions` tasks into `dir/file-out`.
pub fn file_run(input: &Path, dir: &Path, partitions: u32) -> PathBuf {
    let out = dir.join("file-out");
    let st = bin()
        .args(["run", "--no-progress", "--now", NOW, "--grace", GRACE])
        .args(["--partitions", &partitions.to_string()])
        .arg("--input")
        .arg(input)
        .arg("--state")
        .arg(dir.join("file-state"))
        .arg("--output")
        .arg(&out)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "file-mode run failed");
    out
}

/// Starts a Kafka-mode instance; its log goes to `dir/<name>.log`.
pub fn start_instance(
    brokers: &str,
    app_id: &str,
    topic: &str,
    dir: &Path,
    name: &str,
    extra: &[&str],
) -> Child {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    bin()
        .args(["run", "--no-progress", "--now", NOW, "--grace", GRACE])
        .args(["--brokers", brokers, "--app-id", app_id, "--topics", topic])
        .args(["--commit-interval-ms", "300"])
        .arg("--state")
        .arg(dir.join(format!("state-{name}")))
        .arg("--output")
        .arg(dir.join("out"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
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

/// Waits until some Parquet object exists under `root`.
pub fn wait_for_output(root: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if walk(root)
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "parquet"))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
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
    let r = crate::common::root(&root.display().to_string());
    crate::common::block(async {
        let mut events: Vec<String> = read_events(&r)
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
        let hourly = aggs(read_aggregates(&r, WindowKind::Hourly).await.unwrap());
        let daily = aggs(read_aggregates(&r, WindowKind::Daily).await.unwrap());
        let mut user_daily: Vec<String> = read_user_daily(&r)
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
            panic!(
                "{what}: {name} differs: {} rows expected, {} found; first difference:\n  expected {:?}\n  found    {:?}",
                a.len(),
                b.len(),
                first.map(|f| f.0),
                first.map(|f| f.1)
            );
        }
    }
    assert!(!expected.events.is_empty(), "{what}: no events at all");
}
