//! Kafka mode against a real Kafka-compatible broker (Tansu, started by
//! `scripts/test.sh`; address in `NEONBLUE_TEST_BROKERS`).
//!
//! A 4-partition input is processed by a consumer group: two instances, a
//! third joining mid-stream, one of the first two killed with SIGKILL. The
//! Parquet outputs must equal a file-mode run over the same records, row for
//! row; so must a replay from offset 0 into a fresh application id.

mod common;
mod kafka_support;

use kafka_support::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use std::collections::BTreeSet;
use std::time::Duration;

/// Distinct origins of the records in a DLQ topic (re-deliveries after a
/// SIGKILL may repeat a record; its origin headers identify it).
fn dlq_origins(brokers: &str, topic: &str) -> BTreeSet<(String, String, String, String)> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let parts = md.topics()[0].partitions().len();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..parts {
        tpl.add_partition_offset(topic, p as i32, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut eof = BTreeSet::new();
    let mut out = BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while eof.len() < parts && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let h = m.headers().expect("DLQ records carry headers");
                let get = |k: &str| {
                    h.iter()
                        .find(|x| x.key == k)
                        .and_then(|x| x.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default()
                };
                out.insert((
                    get("neonblue.topic"),
                    get("neonblue.partition"),
                    get("neonblue.offset"),
                    get("neonblue.reason"),
                ));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            _ => {}
        }
    }
    out
}

#[test]
fn group_with_join_and_sigkill_equals_file_mode_and_replay() {
    let Some(brokers) = real_broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let topic = unique("nb-input");
    let app = unique("nb-app");
    let input = prepare_input(d, &topic, 4, 6000, 11);
    let expected = outputs(&file_run(&input, d, 4));
    let base = neonblue::drivers::kafka::client_config(
        &neonblue::config::KafkaConfig {
            brokers: brokers.clone(),
            ..Default::default()
        },
        "test",
    );
    neonblue::drivers::kafka::produce::produce_file(&base, &input, &topic, 4).unwrap();

    // Slow enough that the group changes while records flow.
    // A tiny state cache (SPEC 9.1): eviction, re-reads and early commits all the time.
    let throttle = [
        "--until-end",
        "--max-records-per-second",
        "150",
        "--state-cache-bytes",
        "262144",
    ];
    let mut a = start_instance(&brokers, &app, &topic, d, "a", &throttle);
    let mut b = start_instance(&brokers, &app, &topic, d, "b", &throttle);
    assert!(
        wait_for_output(&d.join("out"), Duration::from_secs(90)),
        "no output after 90 s; log a:\n{}",
        std::fs::read_to_string(d.join("a.log")).unwrap_or_default()
    );
    std::thread::sleep(Duration::from_secs(3));
    let mut c = start_instance(&brokers, &app, &topic, d, "c", &throttle);
    std::thread::sleep(Duration::from_secs(8));
    b.kill().unwrap(); // SIGKILL
    b.wait().unwrap();
    wait_ok(
        &mut a,
        Duration::from_secs(300),
        "instance a",
        &d.join("a.log"),
    );
    wait_ok(
        &mut c,
        Duration::from_secs(300),
        "instance c",
        &d.join("c.log"),
    );
    let log_c = std::fs::read_to_string(d.join("c.log")).unwrap();
    assert!(
        log_c.contains("partitions assigned"),
        "c never got partitions:\n{log_c}"
    );
    // State moved: some task was restored from non-empty changelogs.
    let log_a = std::fs::read_to_string(d.join("a.log")).unwrap();
    let restored = |log: &str| {
        log.lines()
            .any(|l| l.contains("task ready") && !l.contains(" records=0 "))
    };
    assert!(
        restored(&log_a) || restored(&log_c),
        "no task was restored from its changelog:\n{log_a}\n{log_c}"
    );
    assert_same(&expected, &outputs(&d.join("out")), "group with SIGKILL");

    // Every dead letter of the input reached the DLQ topic, with its reason.
    let dlq = dlq_origins(&brokers, &format!("{app}-dlq"));
    let file_dlq = std::fs::read_to_string(
        std::fs::read_dir(d.join("file-out/dlq"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap();
    assert_eq!(dlq.len(), file_dlq.lines().count(), "DLQ records: {dlq:?}");
    assert!(dlq.iter().all(|(t, _, _, r)| *t == topic && !r.is_empty()));

    // A replay from offset 0 into a fresh application id reproduces them.
    let replay_app = format!("{app}-replay");
    let log = d.join("replay.log");
    let mut r = bin()
        .args(["replay", "--no-progress", "--now", NOW, "--grace", GRACE])
        .args([
            "--brokers",
            &brokers,
            "--app-id",
            &replay_app,
            "--topics",
            &topic,
        ])
        .arg("--from-offsets")
        .arg(format!("{topic}:0=0"))
        .arg("--state")
        .arg(d.join("state-replay"))
        .arg("--output")
        .arg(d.join("replay-out"))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_ok(&mut r, Duration::from_secs(300), "replay", &log);
    assert_same(&expected, &outputs(&d.join("replay-out")), "replay");

    // Replaying the same id again with --reset, outputs from offset 100 of
    // every partition: assignments are rebuilt from offset 0, so each event
    // from offset 100 on gets the row of the full run.
    let from = 100;
    let spec: Vec<String> = (0..4).map(|p| format!("{topic}:{p}={from}")).collect();
    let mut r = bin()
        .args([
            "replay",
            "--reset",
            "--yes",
            "--no-progress",
            "--now",
            NOW,
            "--grace",
            GRACE,
        ])
        .args([
            "--brokers",
            &brokers,
            "--app-id",
            &replay_app,
            "--topics",
            &topic,
        ])
        .args(["--from-offsets", &spec.join(",")])
        .arg("--state")
        .arg(d.join("state-replay"))
        .arg("--output")
        .arg(d.join("replay-out"))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_ok(
        &mut r,
        Duration::from_secs(300),
        "replay --reset --from-offsets",
        &log,
    );
    let rows = |root: &std::path::Path| {
        common::block(neonblue::sink::read::read_events(&common::root(
            &root.display().to_string(),
        )))
        .unwrap()
    };
    let full = rows(&d.join("file-out"));
    let partial = rows(&d.join("replay-out"));
    assert!(partial.iter().all(|e| e.origin.offset >= from));
    let partial_dbg: BTreeSet<String> = partial.iter().map(|e| format!("{e:?}")).collect();
    let wanted: Vec<String> = full
        .iter()
        .filter(|e| e.origin.offset >= from)
        .map(|e| format!("{e:?}"))
        .collect();
    assert!(wanted.len() > 100 && wanted.len() < full.len());
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|w| !partial_dbg.contains(*w))
        .collect();
    assert!(
        missing.is_empty(),
        "rows missing from the partial replay: {missing:?}"
    );
    // Extra rows can only be repeats of events first seen before the start.
    let wanted_ids: BTreeSet<&str> = full
        .iter()
        .filter(|e| e.origin.offset >= from)
        .map(|e| e.event.event_id.as_str())
        .collect();
    let extra = partial
        .iter()
        .filter(|e| !wanted_ids.contains(e.event.event_id.as_str()))
        .count();
    assert!(extra * 20 < partial.len(), "{extra} unexpected rows");
}
