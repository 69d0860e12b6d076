//! SPEC 5.1 on a real Kafka-compatible broker (Tansu, started by
//! `scripts/test.sh`): event time across input partitions.
//!
//! Everything is produced before neonblue starts (a catch-up after an
//! outage, a first deployment over an existing topic, a replay), over
//! several input partitions, some empty, read at uneven pace. With the
//! product's default grace, the outputs must equal file mode's on the same
//! records row for row: no on-time event may turn late, no pending event may
//! expire early, whatever the interleaving.

mod common;
mod kafka_support;

use kafka_support::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(300);

/// Runs `neonblue run --until-end` (or `replay`) instances to completion.
fn run_to_end(dir: &Path, name: &str, mut child: std::process::Child) {
    let log = dir.join(format!("{name}.log"));
    wait_ok(&mut child, LIMIT, name, &log);
}

#[test]
fn catch_up_replay_and_a_lagging_instance_equal_file_mode_over_six_partitions() {
    let Some(brokers) = real_broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let topic = unique("nb-time");
    // Users spread over 4 of the topic's 6 partitions (2 stay empty); the
    // generator's default trouble (snapshot, jitter, duplicates, events
    // before their assignment, unassigned users, re-assignments, …) but no
    // genuinely late event.
    let input = prepare_input_with(
        d,
        &topic,
        4,
        30_000,
        21,
        &["--set", "late_events=0", "--set", "malformed=0.002"],
    );
    let expected = outputs(&file_run(&input, d, 4));
    produce(&brokers, &input, &topic, 6);

    // 1. One instance catches up on everything.
    let app = unique("nb-time-app");
    let out = d.join("catch-up-out");
    let until_end = ["--until-end", "--repartition-partitions", "4"];
    run_to_end(
        d,
        "catch-up",
        start_instance_into(&brokers, &app, &topic, d, "catch-up", &out, &until_end),
    );
    assert_same(&expected, &outputs(&out), "catch-up");

    // 2. A replay from offset 0 into a fresh id rebuilds the same outputs.
    let replay_out = d.join("replay-out");
    let log = std::fs::File::create(d.join("replay.log")).unwrap();
    let replay = bin()
        .args(["replay", "--no-progress", "--now", NOW, "--grace", GRACE])
        .args(["--brokers", &brokers, "--topics", &topic])
        .args(["--app-id", &unique("nb-time-replay")])
        .args(["--repartition-partitions", "4"])
        .arg("--from-offsets")
        .arg(format!("{topic}:0=0"))
        .arg("--state")
        .arg(d.join("state-replay"))
        .arg("--output")
        .arg(&replay_out)
        .stderr(log)
        .spawn()
        .unwrap();
    run_to_end(d, "replay", replay);
    assert_same(&expected, &outputs(&replay_out), "replay --from-offsets 0");

    // 3. Two instances, one throttled hard: the partitions it owns fall far
    //    behind those of the other.
    let app = unique("nb-time-lag");
    let out = d.join("lagging-out");
    let fast = start_instance_into(&brokers, &app, &topic, d, "fast", &out, &until_end);
    let slow_args = [
        "--until-end",
        "--repartition-partitions",
        "4",
        "--max-records-per-second",
        "2000",
    ];
    let slow = start_instance_into(&brokers, &app, &topic, d, "slow", &out, &slow_args);
    run_to_end(d, "slow", slow);
    run_to_end(d, "fast", fast);
    let slow_log = std::fs::read_to_string(d.join("slow.log")).unwrap();
    assert!(
        slow_log.contains("partitions assigned"),
        "the slow instance never got partitions:\n{slow_log}"
    );
    assert_same(&expected, &outputs(&out), "two instances, one lagging");
}

/// The captured `tables` layout split into its topics, as Debezium writes
/// it: one topic per table, each with its own offsets. Returns the baseline
/// file (topics renamed, offsets per topic) and each topic with its records.
fn split_by_topic(fixture: &Path, prefix: &str, dir: &Path) -> (PathBuf, Vec<(String, PathBuf)>) {
    let text = std::fs::read_to_string(fixture).unwrap();
    let mut next: BTreeMap<String, i64> = BTreeMap::new();
    let mut per_topic: BTreeMap<String, String> = BTreeMap::new();
    let mut baseline = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut v: Value = serde_json::from_str(line).unwrap();
        let original = v["topic"].as_str().unwrap().to_string();
        let suffix = original.rsplit('.').next().unwrap();
        let topic = format!("{prefix}.public.{suffix}");
        let offset = next.entry(topic.clone()).or_insert(0);
        v["topic"] = Value::from(topic.clone());
        v["partition"] = Value::from(0);
        v["offset"] = Value::from(*offset);
        *offset += 1;
        let line = v.to_string();
        baseline.push_str(&line);
        baseline.push('\n');
        let t = per_topic.entry(topic).or_default();
        t.push_str(&line);
        t.push('\n');
    }
    let base = dir.join("tables-baseline.jsonl");
    std::fs::write(&base, baseline).unwrap();
    let topics = per_topic
        .into_iter()
        .map(|(t, records)| {
            let path = dir.join(format!("{t}.jsonl"));
            std::fs::write(&path, records).unwrap();
            (t, path)
        })
        .collect();
    (base, topics)
}

#[test]
fn tables_capture_on_separate_topics_equals_file_mode() {
    let Some(brokers) = real_broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let prefix = unique("nbtables");
    let (baseline, topics) = split_by_topic(&common::fixture("tables_json.jsonl"), &prefix, d);
    assert!(topics.len() >= 3, "{topics:?}");
    let expected = outputs(&file_run_with(
        &baseline,
        d,
        "file",
        &["--layout", "tables"],
    ));
    assert_eq!(expected.hourly.len(), 25, "the capture's reference outcome");
    // The events topic first: its own timestamps must not expire the
    // pending events before the assignments topic is read.
    let mut order: Vec<&(String, PathBuf)> = topics.iter().collect();
    order.sort_by_key(|(t, _)| !t.ends_with(".events"));
    for (t, path) in order {
        produce(&brokers, path, t, 1);
    }
    let names: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
    let out = d.join("kafka-out");
    let app = unique("nbtables-app");
    let child = start_instance_into(
        &brokers,
        &app,
        &names.join(","),
        d,
        "tables",
        &out,
        &["--until-end", "--layout", "tables"],
    );
    run_to_end(d, "tables", child);
    assert_same(&expected, &outputs(&out), "tables layout on its topics");
}

/// An outbox envelope (SPEC 2.2) as Debezium writes it, for live producing.
fn outbox_envelope(kind: &str, event_type: &str, payload: serde_json::Value, ts_ms: i64) -> String {
    serde_json::json!({
        "before": null,
        "after": {
            "id": ts_ms,
            "aggregate_id": payload["id"].to_string(),
            "aggregate_type": kind,
            "event_type": event_type,
            "payload": payload.to_string(),
        },
        "source": {"table": "outbox_events"},
        "op": "c",
        "ts_ms": ts_ms,
    })
    .to_string()
}

#[test]
fn live_windows_close_promptly_with_an_idle_partition() {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use std::time::Instant;
    let Some(brokers) = real_broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let topic = unique("nb-live");
    let base = neonblue::drivers::kafka::client_config(
        &neonblue::config::KafkaConfig {
            brokers: brokers.clone(),
            ..Default::default()
        },
        "test-live",
    );
    neonblue_topology::kafka::ensure_topics(
        &base,
        1,
        &[neonblue_topology::kafka::TopicSpec {
            name: topic.clone(),
            partitions: 3,
            compacted: false,
        }],
    )
    .unwrap();
    let out = d.join("live-out");
    let app = unique("nb-live-app");
    let mut instance = start_instance_into(&brokers, &app, &topic, d, "live", &out, &[]);

    // Event time runs 120× faster than the wall clock: two simulated
    // minutes per second, a record per partition every 50 ms. Partition 2
    // never gets a record.
    let producer: ThreadedProducer<DefaultProducerContext> =
        base.clone().set("linger.ms", "0").create().unwrap();
    let t0: i64 = 1_759_219_200_000; // 2025-09-30T08:00:00Z, ms
    let iso = |ms: i64| common::fmt_micros(ms * 1000);
    let send = |partition: i32, value: String| loop {
        let rec = BaseRecord::<(), str>::to(&topic)
            .partition(partition)
            .payload(&value);
        match producer.send(rec) {
            Ok(()) => break,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    for p in 0..2 {
        let a = serde_json::json!({"id": p, "experiment_id": 1, "user_id": format!("u{p}"),
            "variant_id": 2, "assigned_at": iso(t0 - 60_000)});
        send(
            p,
            outbox_envelope("assignment", "ASSIGNMENT_CREATED", a, t0),
        );
    }
    let window_end = t0 + 3_600_000; // the 08:00 hourly window
    let due = window_end + 5 * 60_000; // … closes at 09:05 (grace 5 min)
    let started = Instant::now();
    let mut due_at = None;
    let mut n = 0i64;
    let delay = loop {
        let sim = t0 + started.elapsed().as_millis() as i64 * 120;
        if sim < due + 10 * 60_000 {
            for p in 0..2 {
                n += 1;
                let e = serde_json::json!({"id": format!("e{n}"), "experiment_id": 1,
                    "user_id": format!("u{p}"), "event_type": "click", "timestamp": iso(sim)});
                send(p, outbox_envelope("event", "EVENT_CREATED", e, sim));
            }
            if sim >= due && due_at.is_none() {
                due_at = Some(Instant::now()); // both partitions passed 09:05
            }
        }
        if let Some(at) = due_at {
            let rows = common::block(neonblue::sink::read::read_aggregates(
                &common::root(&out.display().to_string()),
                neonblue::domain::WindowKind::Hourly,
            ))
            .unwrap_or_default();
            if rows.iter().any(|r| r.window_start == t0 * 1000) {
                break at.elapsed();
            }
            assert!(
                at.elapsed() < Duration::from_secs(60),
                "the 08:00 window never appeared; log:\n{}",
                std::fs::read_to_string(d.join("live.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    producer.flush(Duration::from_secs(10)).unwrap();
    instance.kill().unwrap();
    instance.wait().unwrap();
    eprintln!(
        "window end + grace reached on both active partitions -> hourly row visible: {} ms (commit interval 300 ms, one partition idle)",
        delay.as_millis()
    );
    assert!(
        delay < Duration::from_secs(10),
        "windows are not produced promptly: {delay:?}"
    );
}
