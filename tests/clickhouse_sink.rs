//! The ClickHouse sink against a real server (Debian's clickhouse-server
//! 18.16, started by `scripts/test.sh`; URL in `NEONBLUE_TEST_CLICKHOUSE`):
//! schema apply, inserts equal to the Parquet outputs, a full re-delivery
//! that changes nothing under FINAL, retries through injected failures, and
//! clear errors for credentials, missing tables and schema mismatches.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn server() -> Option<String> {
    match std::env::var("NEONBLUE_TEST_CLICKHOUSE") {
        Ok(u) if !u.is_empty() => Some(u.trim_end_matches('/').to_string()),
        _ => {
            assert!(
                std::env::var("NEONBLUE_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "NEONBLUE_TEST_CLICKHOUSE is not set but services are required"
            );
            eprintln!(
                "skipped: no ClickHouse (set NEONBLUE_TEST_CLICKHOUSE, or run scripts/test.sh)"
            );
            None
        }
    }
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_neonblue"));
    c.env_remove("NEONBLUE_CONFIG").env("NEONBLUE_LOG", "info");
    c
}

fn sql(url: &str, db: &str, q: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            &format!("{url}/?database={db}"),
            "--data-binary",
            q,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{q}: {text}");
    text
}

fn unique_db(prefix: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    format!("{prefix}_{t}_{}", std::process::id())
}

fn run(input: &Path, dir: &Path, url: &str, db: &str, extra: &[&str]) -> std::process::Output {
    bin()
        .args(["run", "--no-progress", "--now", "2100-01-01T00:00:00Z"])
        .arg("--input")
        .arg(input)
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--output")
        .arg(dir.join("out"))
        .args(["--clickhouse-url", url, "--clickhouse-database", db])
        .args(extra)
        .output()
        .unwrap()
}

fn generate(dir: &Path) -> std::path::PathBuf {
    let input = dir.join("in.jsonl");
    let st = bin()
        .args(["generate", "--records", "4000", "--seed", "9", "--output"])
        .arg(&input)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    input
}

/// ClickHouse (FINAL) and Parquet agree, row for row on the key columns.
fn assert_matches_parquet(url: &str, db: &str, out: &Path) {
    let root = common::root(&out.display().to_string());
    let events = common::block(neonblue::sink::read::read_events(&root)).unwrap();
    let mut want: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                e.event.event_id,
                e.variant_id.map_or("\\N".to_string(), |v| v.to_string()),
                e.is_valid as u8,
                e.invalid_reason.map_or("", |r| r.as_str()),
                e.is_late as u8,
                e.origin.offset,
                e.event.timestamp.rem_euclid(1_000_000)
            )
        })
        .collect();
    want.sort();
    let got = sql(
        url,
        db,
        "SELECT event_id, variant_id, is_valid, invalid_reason, is_late, source_offset, timestamp_us FROM events_processed FINAL ORDER BY event_id, source_offset FORMAT TabSeparated",
    );
    let mut got: Vec<String> = got.lines().map(String::from).collect();
    got.sort();
    assert_eq!(got.len(), want.len(), "event rows");
    assert_eq!(got, want);

    for (kind, table) in [
        (neonblue::domain::WindowKind::Hourly, "agg_hourly"),
        (neonblue::domain::WindowKind::Daily, "agg_daily"),
    ] {
        let aggs = common::block(neonblue::sink::read::read_aggregates(&root, kind)).unwrap();
        let (n, events, users): (usize, u64, u64) = aggs
            .iter()
            .fold((0, 0, 0), |a, r| (a.0 + 1, a.1 + r.events, a.2 + r.users));
        let got = sql(
            url,
            db,
            &format!(
                "SELECT count(), sum(events), sum(users) FROM {table} FINAL FORMAT TabSeparated"
            ),
        );
        assert_eq!(got.trim(), format!("{n}\t{events}\t{users}"), "{table}");
    }
    let days = common::block(neonblue::sink::read::read_user_daily(&root)).unwrap();
    let journeys: usize = days.iter().map(|d| d.journey.len()).sum();
    let got = sql(
        url,
        db,
        "SELECT count(), sum(length(journey)) FROM user_journeys FINAL FORMAT TabSeparated",
    );
    assert_eq!(got.trim(), format!("{}\t{journeys}", days.len()));
}

#[test]
fn inserts_redelivery_and_errors_on_a_real_server() {
    let Some(url) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path());
    let db = unique_db("nb_sink");

    // Missing tables: a clear error before anything is processed.
    sql(&url, "default", &format!("CREATE DATABASE {db}"));
    let out = run(&input, &dir.path().join("a"), &url, &db, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("does not exist; create the tables with `neonblue schema apply`"),
        "{err}"
    );

    // Schema apply (18.16 detected), twice: idempotent.
    for _ in 0..2 {
        let o = bin()
            .args([
                "schema",
                "apply",
                "--clickhouse-url",
                &url,
                "--clickhouse-database",
                &db,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = run(&input, &dir.path().join("a"), &url, &db, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_matches_parquet(&url, &db, &dir.path().join("a/out"));

    // A full re-delivery (fresh state): plain counts double, FINAL does not move.
    let before = sql(
        &url,
        &db,
        "SELECT count() FROM events_processed FORMAT TabSeparated",
    );
    let o = run(&input, &dir.path().join("b"), &url, &db, &[]);
    assert!(o.status.success());
    let after = sql(
        &url,
        &db,
        "SELECT count() FROM events_processed FORMAT TabSeparated",
    );
    assert_eq!(
        after.trim().parse::<u64>().unwrap(),
        2 * before.trim().parse::<u64>().unwrap()
    );
    assert_matches_parquet(&url, &db, &dir.path().join("a/out"));

    // Wrong credentials.
    let o = run(
        &input,
        &dir.path().join("c"),
        &url,
        &db,
        &["--clickhouse-user", "nobody"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("refused the credentials of user \"nobody\""),
        "{err}"
    );

    // Schema mismatch: a table lacking a column.
    let db2 = unique_db("nb_mismatch");
    let o = bin()
        .args([
            "schema",
            "apply",
            "--clickhouse-url",
            &url,
            "--clickhouse-database",
            &db2,
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    sql(&url, &db2, "ALTER TABLE user_journeys DROP COLUMN sessions");
    let o = run(&input, &dir.path().join("d"), &url, &db2, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("table user_journeys does not match") && err.contains("sessions"),
        "{err}"
    );
}

/// A proxy that answers the first `fail` connections with HTTP 503 and
/// forwards the rest to `upstream`.
fn flaky_proxy(upstream: &str, fail: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_string();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { continue };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            if n < fail {
                let mut buf = [0u8; 4096];
                let _ = client.read(&mut buf);
                let _ = client.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 33\r\nconnection: close\r\n\r\nCode: 202. Too many simultaneous",
                );
                continue;
            }
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut s2);
                let _ = s2.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let (mut client, mut server) = (client, server);
                let _ = std::io::copy(&mut server, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, seen)
}

#[test]
fn transient_failures_are_retried_and_nothing_is_lost() {
    let Some(url) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path());
    let db = unique_db("nb_retry");
    let o = bin()
        .args([
            "schema",
            "apply",
            "--clickhouse-url",
            &url,
            "--clickhouse-database",
            &db,
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let (proxy, seen) = flaky_proxy(&url, 4);
    let o = run(&input, dir.path(), &proxy, &db, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("ClickHouse request failed; retrying"), "{err}");
    assert!(seen.load(Ordering::SeqCst) > 4);
    assert_matches_parquet(&url, &db, &dir.path().join("out"));
}
