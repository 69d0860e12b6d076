//! Kafka mode against a real Kafka-compatible broker (Tansu, started by
//! `scripts/test.sh`; address in `NEONBLUE_TEST_BROKERS`).
//!
//! A 4-partition input is processed by a consumer group: two instances, a
//! third joining mid-stream, one of the first two killed with SIGKILL. The
//! Parquet outputs must equal a file-mode run over the same records, row for
//! row; so must a replay from offset 0 into a fresh application id. Also:
//! the end of a log written in one batch, which decides when
//! `--until-end` drains the join tasks and what a restore reads; a replay
//! from a time the brokers cannot look up.

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
    produce(&brokers, &input, &topic, 4);

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
    // c joins and b dies while both route the input (about 20 s at this
    // pace), not once outputs appear: the join tasks may see their first
    // records only after the input (the broker returns the input partitions'
    // records first), and a change after that can come too late to move
    // any task.
    for name in ["a", "b"] {
        let log = d.join(format!("{name}.log"));
        assert!(
            wait_for_log(&log, "router task ready", Duration::from_secs(90)),
            "{name} routed nothing after 90 s; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
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
    // Its tasks restored from empty changelogs, read to their ends.
    assert_no_errors(&log, "the replay");
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

/// The value of an unlabelled metric on `/metrics` at `addr` (`None` until
/// the instance serves it).
fn metric(addr: &str, name: &str) -> Option<f64> {
    std::net::TcpStream::connect(addr).ok()?;
    common::http_get(addr, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until `ready`, at most `limit`.
fn wait_until(what: &str, limit: Duration, ready: impl FnMut() -> bool) {
    assert!(
        poll_until(limit, Duration::from_millis(5), ready),
        "{what}: not within {limit:?}"
    );
}

/// Every log of the test's instances, concatenated.
fn all_logs(dir: &std::path::Path) -> String {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

/// Kafka mode commits in the background while processing goes on. The
/// input is in the topic before the start and the instances are throttled;
/// each writes to S3 through its own slow link (every request held back),
/// so a commit with outputs stays in flight for seconds, while it publishes.
/// - A second instance joins while the first publishes, until the first
///   gives partitions up with a commit in flight.
/// - Whichever instance publishes is SIGKILLed and restarted on its state,
///   until a restore discards the objects of an interrupted commit.
/// - Both run to the end: the rows in the bucket equal file mode's (nothing
///   lost, nothing twice).
#[test]
fn a_rebalance_and_sigkills_during_commits_in_flight_equal_file_mode() {
    let Some(brokers) = real_broker() else { return };
    let test = "a_rebalance_and_sigkills_during_commits_in_flight_equal_file_mode";
    let Some(s3) = common::s3_endpoint(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let topic = unique("nb-inflight");
    let app = unique("nb-inflight-app");
    let input = prepare_input(d, &topic, 4, 8000, 29);
    let expected = outputs(&file_run(&input, d, 4));
    // Everything is in the topic before the start: no partition goes idle
    // before its end (live input with pauses and kills is another matter,
    // see the README's known limits).
    produce(&brokers, &input, &topic, 4);

    let link_a = common::SlowLink::new(&s3, Duration::from_millis(3000));
    let link_b = common::SlowLink::new(&s3, Duration::from_millis(500));
    let bucket = common::fresh_bucket("inflight");
    common::create_bucket(&s3, &bucket);
    let out = std::path::PathBuf::from(format!("s3://{bucket}/out"));
    let start = |name: &str, link: &common::SlowLink, metrics: &str| {
        instance(&brokers, &app, &topic, d, name, &out)
            .envs(common::aws_env(&link.endpoint()))
            .args(["--metrics-addr", metrics])
            .args(["--until-end", "--max-records-per-second", "200"])
            .spawn()
            .unwrap()
    };
    let in_flight = |addr: &str| metric(addr, "neonblue_commit_in_flight") == Some(1.0);
    let (addr_a, addr_b) = (
        format!("127.0.0.1:{}", common::free_port()),
        format!("127.0.0.1:{}", common::free_port()),
    );

    let publishing = |link: &common::SlowLink, addr: &str| link.holding() && in_flight(addr);
    let revoked_in_flight = || all_logs(d).contains("commit_in_flight=true");

    // A rebalance while a commit is in flight: b joins while a publishes,
    // and a gives partitions up once the group has agreed (seconds later;
    // a's publish takes longer). Again if a's commit had landed by then.
    let mut a = start("a", &link_a, &addr_a);
    let mut b: Option<std::process::Child> = None;
    for _ in 0..4 {
        wait_until("a publishing a commit", Duration::from_secs(90), || {
            publishing(&link_a, &addr_a)
        });
        if let Some(mut b) = b.take() {
            b.kill().unwrap();
            b.wait().unwrap();
        }
        let revocations = all_logs(d).matches("partitions revoked").count();
        b = Some(start("b", &link_b, &addr_b));
        wait_until("a giving partitions up", Duration::from_secs(60), || {
            all_logs(d).matches("partitions revoked").count() > revocations
        });
        if revoked_in_flight() {
            break;
        }
    }
    let mut b = b.unwrap();

    // SIGKILLs in the middle of publishing a commit, until a restore finds
    // the commit's objects.
    let interrupted = "discarded the objects of an unfinished commit";
    for round in 0..5 {
        // Whichever instance holds join tasks publishes their outputs.
        let mut victim = None;
        wait_until(
            "an instance publishing a commit",
            Duration::from_secs(90),
            || {
                victim = [("a", &link_a, &addr_a), ("b", &link_b, &addr_b)]
                    .into_iter()
                    .find(|(_, link, addr)| publishing(link, addr));
                victim.is_some()
            },
        );
        let (name, link, addr) = victim.unwrap();
        let child = if name == "a" { &mut a } else { &mut b };
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        std::fs::rename(
            d.join(format!("{name}.log")),
            d.join(format!("{name}-{round}.log")),
        )
        .unwrap();
        // The same state directory: its tasks restore incrementally, here or
        // on the other instance.
        *child = start(name, link, addr);
        wait_until("the instance restarted", Duration::from_secs(60), || {
            metric(addr, "neonblue_commits_total").is_some() || all_logs(d).contains(interrupted)
        });
        if all_logs(d).contains(interrupted) {
            break;
        }
    }
    wait_ok(
        &mut a,
        Duration::from_secs(300),
        "instance a",
        &d.join("a.log"),
    );
    wait_ok(
        &mut b,
        Duration::from_secs(300),
        "instance b",
        &d.join("b.log"),
    );

    let logs = all_logs(d);
    assert!(
        revoked_in_flight(),
        "no partitions were given up while a commit was in flight:\n{logs}"
    );
    assert!(
        logs.contains(interrupted),
        "no SIGKILL interrupted a commit between its intent and its state:\n{logs}"
    );
    let bucket_root =
        neonblue::sink::OutputRoot::open_with(&out.display().to_string(), common::aws_env(&s3))
            .unwrap();
    assert_same(
        &expected,
        &outputs_of(&bucket_root),
        "commits in flight, a rebalance and SIGKILLs",
    );
}

/// A topic of `partitions` no earlier run used, and a client configuration
/// for the brokers.
fn new_topic(brokers: &str, prefix: &str, partitions: i32) -> (String, rdkafka::ClientConfig) {
    use neonblue_topology::kafka::{ensure_topics, TopicSpec};
    let topic = unique(prefix);
    let base = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .clone();
    let spec = TopicSpec {
        name: topic.clone(),
        partitions,
        compacted: false,
    };
    ensure_topics(&base, 1, &[spec]).unwrap();
    (topic, base)
}

/// Where a partition's log ends decides when `--until-end` drains the join
/// tasks, which checkpoint a restore starts from and which records of an
/// unfinished commit it overwrites. Some brokers answer ListOffsets with a
/// stale end (Tansu: the first offset of the last batch, plus one); taken
/// as the end, the run stopped before the last batch of a partition reached
/// the join tasks (events missing from the outputs). `group_lag` confirms
/// the end with a fetch, from where the group stands: before it committed,
/// and after it committed past the stale end; so does the changelog
/// reader, for a partition with one batch and an empty one.
#[test]
fn the_end_of_a_log_written_in_one_batch_is_after_its_last_record() {
    use neonblue_topology::kafka::{group_lag, PartitionReader};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let Some(brokers) = real_broker() else { return };
    let (topic, base) = new_topic(&brokers, "nb-batch", 2);
    let group = unique("nb-group");
    let producer: BaseProducer = base.clone().set("linger.ms", "200").create().unwrap();
    for i in 0..50 {
        let payload = format!("record {i}");
        let record = BaseRecord::<(), str>::to(&topic)
            .partition(0)
            .payload(&payload);
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let partitions = [(topic.clone(), 0)];
    let lags = group_lag(&base, &group, &partitions).unwrap();
    assert_eq!((lags[0].log_end, lags[0].lag()), (50, 50), "{lags:?}");
    assert!(lags[0].end_fetched, "{lags:?}");

    let committer: BaseConsumer = base.clone().set("group.id", &group).create().unwrap();
    let mut offsets = rdkafka::TopicPartitionList::new();
    offsets
        .add_partition_offset(&topic, 0, rdkafka::Offset::Offset(50))
        .unwrap();
    committer
        .commit(&offsets, rdkafka::consumer::CommitMode::Sync)
        .unwrap();
    let lags = group_lag(&base, &group, &partitions).unwrap();
    assert_eq!((lags[0].log_end, lags[0].lag()), (50, 0), "{lags:?}");
    assert!(lags[0].end_fetched, "{lags:?}");

    let reader = PartitionReader::new(&base).unwrap();
    assert_eq!(reader.log_bounds(&topic, 0).unwrap(), (0, 50));
    let (offset, last) = reader.read_last(&topic, 0).unwrap().unwrap();
    assert_eq!(
        (offset, last.value.as_deref()),
        (49, Some(&b"record 49"[..]))
    );
    // A read past the end stops where the log does.
    let mut read = Vec::new();
    reader.read(&topic, 0, 45, 60, |o, _| read.push(o)).unwrap();
    assert_eq!(read, [45, 46, 47, 48, 49]);
    assert_eq!(reader.log_bounds(&topic, 1).unwrap(), (0, 0));
    assert!(reader.read_last(&topic, 1).unwrap().is_none());
    assert_eq!(reader.read(&topic, 1, 0, 10, |_, _| ()).unwrap(), 0);
}

/// `replay --from-timestamp` asks the brokers for the first record at or
/// after a time. A broker without a time index (Tansu answers offset 0
/// whatever the time) would replay the whole log into outputs meant to
/// start later; the replay refuses before `--reset` deletes anything. A
/// broker with one (it finds no record after the last) is not refused.
#[test]
fn a_replay_from_a_time_the_brokers_cannot_look_up_deletes_nothing() {
    use neonblue_topology::kafka::PartitionReader;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let Some(brokers) = real_broker() else { return };
    let (topic, base) = new_topic(&brokers, "nb-times", 1);
    // Five records an hour apart, the last an hour ago (brokers refuse
    // times far from their clock).
    let hour_ms = 3_600_000i64;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let first_ms = now_ms - 5 * hour_ms;
    let producer: BaseProducer = base.create().unwrap();
    for i in 0..5 {
        let record = BaseRecord::<(), str>::to(&topic)
            .partition(0)
            .payload("{}")
            .timestamp(first_ms + i * hour_ms);
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let reader = PartitionReader::new(&base).unwrap();
    assert_eq!(
        reader.log_bounds(&topic, 0).unwrap(),
        (0, 5),
        "not all delivered"
    );
    // A time index finds no record after the last one.
    let consumer: BaseConsumer = base.clone().set("group.id", "nb-times").create().unwrap();
    let mut probe = rdkafka::TopicPartitionList::new();
    probe
        .add_partition_offset(&topic, 0, rdkafka::Offset::Offset(now_ms))
        .unwrap();
    let found = consumer
        .offsets_for_times(probe, Duration::from_secs(10))
        .unwrap();
    let has_time_index = found.elements()[0].offset() == rdkafka::Offset::End;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("kept.txt"), "an earlier output").unwrap();
    let app = unique("nb-times-app");
    let from = neonblue::time::format_iso((first_ms + 2 * hour_ms + hour_ms / 2) * 1000);
    let run = bin()
        .args(["replay", "--reset", "--yes", "--no-progress", "--now", NOW])
        .args(["--brokers", &brokers, "--app-id", &app, "--topics", &topic])
        .args(["--from-timestamp", &from])
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    if has_time_index {
        assert!(run.status.success(), "{stderr}");
        assert!(!out.join("kept.txt").exists(), "no reset: {stderr}");
    } else {
        assert!(
            !run.status.success(),
            "a broker without a time index was trusted"
        );
        assert!(
            stderr.contains("cannot look records up by time")
                && stderr.contains("offset 0")
                && stderr.contains("--from-offsets"),
            "{stderr}"
        );
        assert!(out.join("kept.txt").exists(), "the reset ran: {stderr}");
    }
}
