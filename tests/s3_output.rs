//! Parquet output on S3 (SPEC 6, 7) against an S3-compatible server on
//! loopback (`scripts/services/s3.sh start` runs moto): file mode into
//! `s3://bucket/prefix` equals file mode into a local directory object for
//! object and row for row; multipart uploads; SIGKILLs during a run into S3.
//!
//! Needs `NEONBLUE_TEST_S3_ENDPOINT` (e.g. `http://127.0.0.1:19900`); without
//! it the tests are skipped, unless `NEONBLUE_REQUIRE_SERVICES=1`.
//!
//! The `neonblue` child processes get the endpoint and credentials as the
//! standard AWS environment variables (`AWS_ENDPOINT_URL`, …). The test process
//! itself does not mutate its environment (tests run on parallel threads): it
//! passes the very same `AWS_*` pairs to [`OutputRoot::open_with`], which
//! treats them exactly like environment variables.

mod common;

use common::{aws_env, create_bucket, fresh_bucket, s3_endpoint as endpoint};
use neonblue::domain::outputs::{EventRow, InvalidReason, OutputBatch, WindowKind};
use neonblue::domain::records::{Event, Origin};
use neonblue::sink::{
    read_aggregates, read_dead_letters, read_events, read_user_daily, OutputRoot, ParquetSink,
    ParquetSinkOptions, Segment,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_neonblue");

/// Opens an S3 root the way `neonblue` does with [`aws_env`] in its environment.
fn s3_root(endpoint: &str, url: &str) -> OutputRoot {
    OutputRoot::open_with(url, aws_env(endpoint)).unwrap()
}

fn generate(path: &Path, records: u64, seed: u64) {
    let st = Command::new(BIN)
        .args([
            "generate",
            "--records",
            &records.to_string(),
            "--seed",
            &seed.to_string(),
            "--output",
        ])
        .arg(path)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "generate");
}

/// `neonblue run` in file mode; `s3` is the endpoint when `output` is an S3 URL.
fn run_cmd(
    input: &Path,
    output: &str,
    state: &Path,
    summary: &Path,
    checkpoint_records: u64,
    s3: Option<&str>,
) -> Command {
    let mut c = Command::new(BIN);
    c.arg("run")
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .arg("--state")
        .arg(state)
        .arg("--summary")
        .arg(summary)
        .args([
            "--checkpoint-records",
            &checkpoint_records.to_string(),
            "--now",
            "2100-01-01T00:00:00Z",
            "--no-progress",
        ])
        .env("NEONBLUE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Only the variables set here reach the store builder.
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    if let Some(ep) = s3 {
        c.envs(aws_env(ep));
    }
    c
}

/// Runs to completion; panics with stderr on failure.
fn run_ok(mut c: Command) {
    let out = c.stderr(Stdio::piped()).output().unwrap();
    assert!(
        out.status.success(),
        "neonblue run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every object under the root: path → bytes.
async fn objects(root: &OutputRoot) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for meta in root.list("").await.unwrap() {
        let bytes = root.get(&meta.location).await.unwrap();
        out.insert(meta.location.to_string(), bytes.to_vec());
    }
    out
}

/// Asserts both roots hold the same objects, byte for byte, and the same rows.
async fn assert_same_outputs(expected: &OutputRoot, got: &OutputRoot) {
    let (e, g) = (objects(expected).await, objects(got).await);
    assert!(e.keys().any(|k| k.starts_with("events/")), "no events");
    assert_eq!(
        g.keys().collect::<Vec<_>>(),
        e.keys().collect::<Vec<_>>(),
        "object names of {got} vs {expected}"
    );
    for (k, v) in &e {
        assert!(g[k] == *v, "{k} differs between {got} and {expected}");
    }
    let events = read_events(expected).await.unwrap();
    assert!(!events.is_empty());
    assert_eq!(read_events(got).await.unwrap(), events);
    for kind in [WindowKind::Hourly, WindowKind::Daily] {
        assert_eq!(
            read_aggregates(got, kind).await.unwrap(),
            read_aggregates(expected, kind).await.unwrap(),
            "{kind:?} aggregates"
        );
    }
    assert_eq!(
        read_user_daily(got).await.unwrap(),
        read_user_daily(expected).await.unwrap()
    );
    assert_eq!(
        read_dead_letters(got).await.unwrap(),
        read_dead_letters(expected).await.unwrap()
    );
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn file_mode_into_s3_equals_local_output() {
    let Some(ep) = endpoint("file_mode_into_s3_equals_local_output") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("cdc.jsonl");
    generate(&input, 3000, 5);

    let local = work.path().join("local-out");
    run_ok(run_cmd(
        &input,
        local.to_str().unwrap(),
        &work.path().join("local-state"),
        &work.path().join("local-summary.json"),
        1000,
        None,
    ));

    let bucket = fresh_bucket("eq");
    create_bucket(&ep, &bucket);
    let url = format!("s3://{bucket}/some/prefix");
    run_ok(run_cmd(
        &input,
        &url,
        &work.path().join("s3-state"),
        &work.path().join("s3-summary.json"),
        1000,
        Some(&ep),
    ));

    assert_eq!(
        std::fs::read_to_string(work.path().join("s3-summary.json")).unwrap(),
        std::fs::read_to_string(work.path().join("local-summary.json")).unwrap(),
        "summaries"
    );
    block(async {
        let s3 = s3_root(&ep, &url);
        assert_same_outputs(&OutputRoot::open(local.to_str().unwrap()).unwrap(), &s3).await;
        // Everything sits under the prefix, nothing beside it in the bucket.
        let bucket_root = s3_root(&ep, &format!("s3://{bucket}"));
        let all = bucket_root.list("").await.unwrap();
        assert!(!all.is_empty());
        assert!(
            all.iter()
                .all(|m| m.location.as_ref().starts_with("some/prefix/")),
            "objects outside the prefix: {:?}",
            all.iter()
                .map(|m| m.location.to_string())
                .collect::<Vec<_>>()
        );
        eprintln!("s3 output equals local output ({} objects)", all.len());
    });
}

/// A deterministic, barely compressible string (xorshift over 64 characters).
fn noise(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % 64) as usize] as char
        })
        .collect()
}

fn event(i: u64, properties: String) -> EventRow {
    EventRow {
        event: Event {
            event_id: format!("mp-{i}"),
            experiment_id: 7,
            user_id: format!("u{}", i % 97).into(),
            event_type: "click".into(),
            // 2024-05-01, one second apart: a single `event_date` partition.
            timestamp: 1_714_521_600_000_000 + i as i64 * 1_000_000,
            session_id: None,
            claimed_variant_id: None,
            page: None,
            device: None,
            browser: None,
            value: None,
            score: None,
            properties,
        },
        variant_id: None,
        variant_key: None,
        assigned_at: None,
        is_valid: false,
        invalid_reason: Some(InvalidReason::Unassigned),
        is_late: false,
        origin: Origin {
            topic: Arc::from("experiments_events"),
            partition: 0,
            offset: i as i64,
        },
    }
}

#[test]
fn multipart_uploads_to_s3() {
    let Some(ep) = endpoint("multipart_uploads_to_s3") else {
        return;
    };
    // The part size is not a CLI/config setting, so this drives ParquetSink
    // directly. S3 (and moto) reject parts under 5 MiB except the last one,
    // so an object of ~12 MiB with 5 MiB parts takes three parts.
    const PART: usize = 5 * 1024 * 1024;
    let bucket = fresh_bucket("mp");
    create_bucket(&ep, &bucket);
    let url = format!("s3://{bucket}/multi");
    let opts = ParquetSinkOptions {
        multipart_threshold: PART,
        multipart_part_size: PART,
        max_concurrency: 2,
        row_group_rows: 4096,
        ..ParquetSinkOptions::default()
    };
    block(async {
        let sink = ParquetSink::new(s3_root(&ep, &url), opts.clone()).unwrap();
        let mut big = OutputBatch::default();
        for i in 0..32_000 {
            big.events
                .push(event(i, format!("{{\"n\":\"{}\"}}", noise(i, 500))));
        }
        let big_objs = sink
            .encode(&Segment {
                part: "p0000",
                seq: 0,
                batch: &big,
            })
            .unwrap();
        assert_eq!(big_objs.len(), 1);
        let size = big_objs[0].bytes.len();
        assert!(size > 2 * PART, "object of {size} bytes needs three parts");

        // Below the threshold: a plain PUT.
        let mut small = OutputBatch::default();
        small.events.push(event(1_000_000, "{}".into()));
        let small_objs = sink
            .encode(&Segment {
                part: "p0001",
                seq: 0,
                batch: &small,
            })
            .unwrap();

        sink.put_all(&big_objs).await.unwrap();
        sink.put_all(&small_objs).await.unwrap();
        // Re-uploading the same segment is idempotent.
        sink.put_all(&big_objs).await.unwrap();

        let listed = sink.root().list("").await.unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        for meta in &listed {
            let etag = meta.e_tag.clone().unwrap_or_default();
            if meta.location == big_objs[0].path {
                assert_eq!(meta.size, size as u64);
                // S3 ETags of multipart objects end in `-<number of parts>`.
                let parts = size.div_ceil(PART);
                assert!(
                    etag.trim_matches('"').ends_with(&format!("-{parts}")),
                    "multipart ETag with {parts} parts, got {etag}"
                );
            } else {
                assert_eq!(meta.location, small_objs[0].path);
                assert!(!etag.contains('-'), "single PUT ETag, got {etag}");
            }
        }
        let got = sink.root().get(&big_objs[0].path).await.unwrap();
        assert!(got == big_objs[0].bytes, "multipart object bytes");

        // Read back through a freshly opened root.
        let mut expected = big.events.clone();
        expected.extend(small.events.iter().cloned());
        let rows = read_events(&s3_root(&ep, &url)).await.unwrap();
        assert_eq!(rows.len(), expected.len());
        assert!(rows == expected, "rows read back from S3");

        // A multipart upload of a single (short) part works too.
        let one_part = ParquetSink::new(
            s3_root(&ep, &format!("s3://{bucket}/one-part")),
            ParquetSinkOptions {
                multipart_threshold: 0,
                ..opts
            },
        )
        .unwrap();
        one_part
            .write_segment(&Segment {
                part: "p0002",
                seq: 3,
                batch: &small,
            })
            .await
            .unwrap();
        let listed = one_part.root().list("").await.unwrap();
        assert_eq!(listed.len(), 1);
        let etag = listed[0].e_tag.clone().unwrap_or_default();
        assert!(etag.trim_matches('"').ends_with("-1"), "got {etag}");
        assert_eq!(read_events(one_part.root()).await.unwrap(), small.events);
        eprintln!("multipart: {size} bytes in {} parts", size.div_ceil(PART));
    });
}

/// A small deterministic PRNG (xorshift) for kill delays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkill_during_run_into_s3() {
    let Some(ep) = endpoint("sigkill_during_run_into_s3") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("cdc.jsonl");
    generate(&input, 20_000, 11);
    let bucket = fresh_bucket("crash");
    create_bucket(&ep, &bucket);

    let reference = format!("s3://{bucket}/reference");
    let started = Instant::now();
    run_ok(run_cmd(
        &input,
        &reference,
        &work.path().join("reference-state"),
        &work.path().join("reference-summary.json"),
        500,
        Some(&ep),
    ));
    let full = started.elapsed();

    let crashed = format!("s3://{bucket}/crashed");
    let state = work.path().join("crashed-state");
    let summary = work.path().join("crashed-summary.json");
    let mut rng = Rng(0xA076_1D64_78BD_642F);
    let mut kills = 0;
    // Up to five SIGKILLs, each after a random part of a third of the full
    // run time, then a run to completion.
    for _ in 0..5 {
        let mut child = run_cmd(&input, &crashed, &state, &summary, 500, Some(&ep))
            .spawn()
            .unwrap();
        let delay = Duration::from_micros(rng.next() % (full.as_micros() as u64 / 3).max(1000));
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    assert!(kills >= 3, "only {kills} kills landed");
    let before = block(async { s3_root(&ep, &crashed).list("").await.unwrap().len() });
    assert!(before > 0, "no kill landed after the first upload");
    run_ok(run_cmd(&input, &crashed, &state, &summary, 500, Some(&ep)));

    assert_eq!(
        std::fs::read_to_string(&summary).unwrap(),
        std::fs::read_to_string(work.path().join("reference-summary.json")).unwrap(),
        "summary after {kills} kills"
    );
    block(async {
        let expected = s3_root(&ep, &reference);
        let got = s3_root(&ep, &crashed);
        assert_same_outputs(&expected, &got).await;
        eprintln!(
            "{kills} SIGKILLs during a run into S3 ({} ms uninterrupted, {before} objects before the last run), outputs identical ({} objects)",
            full.as_millis(),
            got.list("").await.unwrap().len()
        );
    });
}
