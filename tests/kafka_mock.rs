//! Kafka mode on librdkafka's in-process mock cluster (fast, no broker):
//! one instance with `/metrics` and `/healthz`, stopped by SIGTERM mid-stream
//! (graceful: commit and leave the group), restarted with `--until-end`; the
//! outputs equal a file-mode run. Also: restore with compensation of an
//! unfinished commit, directly on the topology's changelog API; the log bounds
//! of many partitions in one ListOffsets round; the `eventrouter` layout's
//! headers; no commit after a record fails; a takeover by an instance on
//! an empty disk, which restores its tasks from the changelogs; records
//! behind client logs in the consumer's queue; a member that lost its
//! partitions discards its uncommitted work instead of committing it; the
//! gauges of partitions given up in a rebalance are cleared.

mod common;
mod kafka_support;

use common::{fixture, free_port, http_get};

use kafka_support::*;
use neonblue_state::{CommitBatch, KeyValueStore, StateDb};
use neonblue_topology::kafka::{
    ensure_topics, ChangelogDurability, ChangelogProducer, Checkpoint, KafkaError, LoggedTask,
    PartitionReader, TaskLog, TopicSpec,
};
use neonblue_topology::{commit, TaskCommit};
use rdkafka::mocking::MockCluster;
use std::io::{Read, Write};
use std::time::Duration;

#[test]
fn sigterm_then_until_end_equals_file_mode() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let topic = "mock-input";
    cluster.create_topic(topic, 4, 1).unwrap();
    // The mock cluster has no CreateTopics API: create the internal topics
    // the way an operator would for a locked-down cluster.
    let app = neonblue::drivers::kafka::AppTopics::new("mock-app", vec![(topic.into(), 4)], 0);
    for spec in app.internal_specs() {
        cluster
            .create_topic(&spec.name, spec.partitions, 1)
            .unwrap();
    }
    let input = prepare_input(d, topic, 4, 3000, 5);
    let expected = outputs(&file_run(&input, d, 4));
    produce(&brokers, &input, topic, 4);

    let addr = format!("127.0.0.1:{}", free_port());
    let mut a = start_instance(
        &brokers,
        "mock-app",
        topic,
        d,
        "a",
        &["--metrics-addr", &addr, "--max-records-per-second", "500"],
    );
    assert!(
        wait_for_output(&d.join("out"), Duration::from_secs(60)),
        "no output; log:\n{}",
        std::fs::read_to_string(d.join("a.log")).unwrap_or_default()
    );
    let metrics = http_get(&addr, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("neonblue_records_total{stage=\"input\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("neonblue_commit_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("neonblue_state_cache_bytes{kind=\"used\"}"),
        "{metrics}"
    );
    assert!(http_get(&addr, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(http_get(&addr, "/nope").starts_with("HTTP/1.1 404"));
    // Query strings do not change the route; every metric has its HELP text.
    let with_query = http_get(&addr, "/metrics?x=1");
    assert!(with_query.starts_with("HTTP/1.1 200"), "{with_query}");
    for m in neonblue::metric_names::ALL {
        assert!(
            with_query.contains(&format!("# HELP {} ", m.name)) || !with_query.contains(m.name),
            "{} is exported without HELP",
            m.name
        );
    }
    assert!(
        with_query.contains("# HELP neonblue_records_total "),
        "{with_query}"
    );
    assert!(http_get(&addr, "/healthz?from=probe").starts_with("HTTP/1.1 200"));
    let post = {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(
            b"POST /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");

    stop_with_sigterm(&mut a, &d.join("a.log"));
    let log = std::fs::read_to_string(d.join("a.log")).unwrap();
    assert!(log.contains("left the group"), "{log}");
    let partial = outputs(&d.join("out"));
    assert!(
        partial.events.len() < expected.events.len(),
        "SIGTERM came too late to test a restart ({} events)",
        partial.events.len()
    );

    // Same state directory: resumes from the local checkpoints.
    let mut b = start_instance(&brokers, "mock-app", topic, d, "a", &["--until-end"]);
    wait_ok(
        &mut b,
        Duration::from_secs(120),
        "restart",
        &d.join("a.log"),
    );
    assert_same(&expected, &outputs(&d.join("out")), "SIGTERM + restart");
}

/// An instance rescheduled onto an empty disk: the first one stops
/// mid-stream (SIGTERM), a second one with an empty state directory takes
/// over its group. It restores its tasks from the changelogs, join and
/// router tasks with state in them, and finishes with the outputs of file
/// mode.
#[test]
fn an_instance_on_an_empty_disk_restores_its_tasks_from_the_changelogs() {
    let (app, topic) = ("mock-empty-disk", "mock-empty-disk-input");
    let (cluster, dir, expected) = mock_job(app, topic, 4, 3000, 9);
    let brokers = cluster.bootstrap_servers();
    let d = dir.path();

    let mut first = start_instance(
        &brokers,
        app,
        topic,
        d,
        "first",
        &["--max-records-per-second", "500"],
    );
    assert!(
        wait_for_output(&d.join("out"), Duration::from_secs(60)),
        "no output; log:\n{}",
        std::fs::read_to_string(d.join("first.log")).unwrap_or_default()
    );
    stop_with_sigterm(&mut first, &d.join("first.log"));
    let partial = outputs(&d.join("out"));
    assert!(
        partial.events.len() < expected.events.len(),
        "SIGTERM came too late to test a takeover ({} events)",
        partial.events.len()
    );

    let mut second = start_instance(&brokers, app, topic, d, "second", &["--until-end"]);
    wait_ok(
        &mut second,
        Duration::from_secs(120),
        "the instance on an empty disk",
        &d.join("second.log"),
    );
    let log = std::fs::read_to_string(d.join("second.log")).unwrap();
    // Each "<kind> task ready" line: restored from scratch (the disk is
    // empty), and at least one of each kind with records from its changelog.
    let restored = |kind: &str| -> Vec<u64> {
        log.lines()
            .filter(|l| l.contains(&format!("{kind} task ready")))
            .map(|l| {
                assert!(l.contains("incremental=false"), "{l}");
                l.split_whitespace()
                    .find_map(|f| f.strip_prefix("records="))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("no record count in: {l}"))
            })
            .collect()
    };
    for kind in ["join", "router"] {
        assert!(
            restored(kind).iter().any(|&n| n > 0),
            "no {kind} task restored with state from the changelogs:\n{log}"
        );
    }
    assert_same(
        &expected,
        &outputs(&d.join("out")),
        "takeover on an empty disk",
    );
}

/// The `eventrouter` layout takes a record's type from its headers: Kafka
/// mode decodes them for it (the other layouts skip them) and gives the rows
/// file mode gives. The fixture's routed records go to one topic whose name
/// says nothing, so only the `aggregateType` header tells assignments from
/// events.
#[test]
fn eventrouter_headers_type_records_in_kafka_mode_as_in_file_mode() {
    // One partition, as in file mode: an empty partition would hold the
    // watermark back until it is found idle, and change which events
    // expire before their assignment.
    let topic = "er-input";
    let cluster = mock_app("er-app", topic, 1);
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = std::fs::read_to_string(fixture("outbox_eventrouter.jsonl")).unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let routed = v["topic"].as_str().unwrap().to_string();
            let aggregate = routed.strip_prefix("outbox.event.").unwrap();
            v["topic"] = topic.into();
            v["headers"]["aggregateType"] = aggregate.into();
            v.to_string()
        })
        .collect();
    let input = d.join("routed.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let layout = ["--layout", "eventrouter"];
    let expected = outputs(&file_run_with(&input, d, "file", &layout));
    assert!(!expected.events.is_empty(), "the fixture gives no events");
    produce(&brokers, &input, topic, 1);
    let mut a = start_instance(
        &brokers,
        "er-app",
        topic,
        d,
        "a",
        &["--until-end", layout[0], layout[1]],
    );
    wait_ok(
        &mut a,
        Duration::from_secs(120),
        "eventrouter run",
        &d.join("a.log"),
    );
    assert_same(
        &expected,
        &outputs(&d.join("out")),
        "eventrouter by headers",
    );
}

/// librdkafka's logs arrive as events in the consumer's own queue, before
/// the records behind them. A poll that serves one returns nothing, exactly
/// like a poll of an empty queue: read as "empty", the records behind a
/// steady flow of logs would wait forever (the run hung at the end of its
/// input with `debug=fetch`). Every record must be read, as in file mode.
#[test]
fn client_logs_in_the_consumers_queue_do_not_stall_reading() {
    let topic = "log-input";
    let (cluster, dir, expected) = mock_job("log-app", topic, 2, 2000, 11);
    let brokers = cluster.bootstrap_servers();
    let d = dir.path();
    let mut a = start_instance(
        &brokers,
        "log-app",
        topic,
        d,
        "a",
        &[
            "--until-end",
            "--kafka-property",
            "debug=fetch,consumer",
            "--log",
            "info,librdkafka=debug",
        ],
    );
    wait_ok(
        &mut a,
        Duration::from_secs(60),
        "run with client logs",
        &d.join("a.log"),
    );
    assert_same(&expected, &outputs(&d.join("out")), "with client logs");
}

/// Stops an instance with SIGTERM (a graceful stop: it commits and leaves
/// the group) and waits for its clean exit.
fn stop_with_sigterm(child: &mut std::process::Child, log: &std::path::Path) {
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    wait_ok(child, Duration::from_secs(60), "SIGTERM shutdown", log);
}

/// The per-partition gauges of partitions an instance gave up in a
/// rebalance read 0 (counts) or NaN (times) there, so that sums over the
/// group count each partition once, where it is held: an instance that
/// kept exporting its last values would add a moved partition's lag,
/// pending events and open windows twice, for good.
#[test]
fn gauges_of_partitions_given_up_in_a_rebalance_are_cleared() {
    let (app, topic) = ("mock-gauges", "mock-gauges-input");
    let (cluster, dir, expected) = mock_job(app, topic, 4, 3000, 5);
    let brokers = cluster.bootstrap_servers();
    let d = dir.path();
    let addr = format!("127.0.0.1:{}", free_port());
    // Slow enough that `a` still runs when its gauges are read, on a
    // loaded machine too (it may catch up on a slow start).
    let slow = ["--until-end", "--max-records-per-second", "100"];
    let mut a = start_instance(
        &brokers,
        app,
        topic,
        d,
        "a",
        &[&slow[..], &["--metrics-addr", &addr]].concat(),
    );
    let a_log = d.join("a.log");
    assert!(
        wait_for_output(&d.join("out"), Duration::from_secs(60)),
        "no output; log:\n{}",
        std::fs::read_to_string(&a_log).unwrap_or_default()
    );
    let mut b = start_instance(&brokers, app, topic, d, "b", &slow);
    assert!(
        wait_for_log(&a_log, "committing before release", Duration::from_secs(60)),
        "a gave nothing up; log:\n{}",
        std::fs::read_to_string(&a_log).unwrap_or_default()
    );
    let log = std::fs::read_to_string(&a_log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("committing before release"))
        .unwrap();
    let revoked: Vec<(String, i32)> = line
        .split("partitions=[")
        .nth(1)
        .unwrap()
        .split(')')
        .filter_map(|t| {
            let (topic, p) = t
                .trim_start_matches([',', ' ', '(', ']'])
                .split_once(", ")?;
            Some((topic.trim_matches('"').to_string(), p.parse().ok()?))
        })
        .collect();
    let (joins, routers): (Vec<_>, Vec<_>) = revoked
        .iter()
        .partition(|(t, _)| t.ends_with("-repartition"));
    assert!(!revoked.is_empty(), "nothing moved: {line}");
    // The lag gauges are refreshed every 5 s.
    std::thread::sleep(Duration::from_secs(7));
    assert!(
        a.try_wait().unwrap().is_none(),
        "a ended before its gauges were read; log:\n{}",
        std::fs::read_to_string(&a_log).unwrap_or_default()
    );
    let metrics = http_get(&addr, "/metrics");
    let value = |series: &str| -> Option<String> {
        metrics
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .map(|l| l[series.len() + 1..].to_string())
    };
    // Gauges are set for the tasks `a` hosted (all of them, most likely,
    // since it ran alone first), and cleared for those.
    let mut want = Vec::new();
    for (_, p) in &joins {
        want.push((format!("neonblue_pending_events{{partition=\"{p}\"}}"), "0"));
        want.push((format!("neonblue_open_windows{{partition=\"{p}\"}}"), "0"));
        want.push((format!("neonblue_watermark_seconds{{task=\"{p}\"}}"), "NaN"));
    }
    for (t, p) in &routers {
        let labels = format!("{{topic=\"{t}\",partition=\"{p}\"}}");
        want.push((format!("neonblue_input_idle{labels}"), "0"));
        want.push((format!("neonblue_input_stream_time_seconds{labels}"), "NaN"));
    }
    for (t, p) in &revoked {
        want.push((
            format!("neonblue_consumer_lag{{topic=\"{t}\",partition=\"{p}\"}}"),
            "0",
        ));
    }
    let mut present = 0;
    for (series, cleared) in &want {
        if let Some(v) = value(series) {
            assert_eq!(v, *cleared, "{series}:\n{metrics}");
            present += 1;
        }
    }
    assert!(present > 0, "none of {want:?} exported:\n{metrics}");
    wait_ok(&mut a, Duration::from_secs(120), "a", &a_log);
    wait_ok(&mut b, Duration::from_secs(120), "b", &d.join("b.log"));
    assert_same(
        &expected,
        &outputs(&d.join("out")),
        "two instances, one rebalance",
    );
}

/// A member whose group session ends under it (here a heartbeat answered
/// `ILLEGAL_GENERATION`, as when it was frozen or cut off for longer than
/// the session) has lost its partitions: another member may hold them
/// already, so it must not commit them (its checkpoint would land after the
/// new holder's restore). It commits nothing between the loss and its next
/// assignment, discards its work since the last commit, restores its tasks
/// from their last commit and redoes the rest: the outputs equal file mode.
#[test]
fn a_member_that_lost_its_partitions_discards_its_uncommitted_work_and_redoes_it() {
    let (app, topic) = ("mock-lost", "mock-lost-input");
    let (cluster, dir, expected, mut a) = committing_session_job(app, topic, 5);
    let d = dir.path();
    let log = d.join("a.log");
    cluster.request_errors(
        rdkafka::types::RDKafkaApiKey::Heartbeat,
        &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION],
    );
    wait_ok(&mut a, Duration::from_secs(120), "lost partitions", &log);
    let text = std::fs::read_to_string(&log).unwrap();
    let lost = text
        .find("partitions lost")
        .unwrap_or_else(|| panic!("the partitions were never lost; log:\n{text}"));
    let rest = &text[lost..];
    let reassigned = rest
        .find("partitions assigned")
        .unwrap_or_else(|| panic!("never assigned again; log:\n{text}"));
    assert!(
        !rest[..reassigned].contains("engine: committed"),
        "committed between the loss and the next assignment:\n{text}"
    );
    assert!(
        rest[reassigned..]
            .lines()
            .any(|l| l.contains("task ready") && !l.contains("next_offset=0 ")),
        "no task restored a commit after the loss:\n{text}"
    );
    assert_same(
        &expected,
        &outputs(&d.join("out")),
        "lost, discarded, redone",
    );
}

/// A member frozen (SIGSTOP) for longer than its session has lost its
/// partitions, but learns it only once it runs again. Told to stop
/// (SIGTERM) while frozen, it must not make its last commit of them: its
/// checkpoint would land after the new holder's restore. It starts no
/// commit between the resumption and the loss, and exits; restarted, it
/// redoes the discarded work: the outputs equal file mode. Which thread
/// runs first on resumption is a race (librdkafka notices the expired
/// session within milliseconds): without the check in `leave`, this failed
/// one run in three.
#[test]
fn a_member_stopped_after_a_freeze_does_not_commit_the_partitions_it_lost() {
    let (app, topic) = ("mock-frozen", "mock-frozen-input");
    let (cluster, dir, expected, mut a) = committing_session_job(app, topic, 6);
    let d = dir.path();
    let log = d.join("a.log");
    let signal = |name: &str| {
        let sent = std::process::Command::new("kill")
            .args([name, &a.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {name}");
    };
    // Half way between two commits: work is dirty, none in flight.
    std::thread::sleep(Duration::from_millis(500));
    signal("-STOP");
    std::thread::sleep(Duration::from_secs(10));
    signal("-TERM");
    // Log lines start with their RFC 3339 time (UTC, microseconds).
    let resumed = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    signal("-CONT");
    wait_ok(
        &mut a,
        Duration::from_secs(60),
        "stopped after a freeze",
        &log,
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let lost = text
        .find("partitions lost")
        .unwrap_or_else(|| panic!("the partitions were never lost; log:\n{text}"));
    let started: Vec<&str> = text[..lost]
        .lines()
        .filter(|l| l.contains("commit started") && l[..resumed.len()] >= *resumed)
        .collect();
    assert!(
        started.is_empty(),
        "resumed at {resumed}; commits started before the loss was known: {started:#?}\nlog:\n{text}"
    );
    let brokers = cluster.bootstrap_servers();
    let mut again = session_instance(&brokers, app, topic, d, "again")
        .spawn()
        .unwrap();
    wait_ok(
        &mut again,
        Duration::from_secs(120),
        "restarted",
        &d.join("again.log"),
    );
    assert_same(
        &expected,
        &outputs(&d.join("out")),
        "frozen, stopped, redone",
    );
}

/// [`mock_job`] on 4 partitions and 3,000 records, with a
/// [`session_instance`] `a` running, past its first commit.
fn committing_session_job(
    app: &str,
    topic: &str,
    seed: u64,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    tempfile::TempDir,
    Outputs,
    std::process::Child,
) {
    let (cluster, dir, expected) = mock_job(app, topic, 4, 3000, seed);
    let d = dir.path();
    let a = session_instance(&cluster.bootstrap_servers(), app, topic, d, "a")
        .spawn()
        .unwrap();
    assert!(
        wait_for_output(&d.join("out"), Duration::from_secs(60)),
        "no commit; log:\n{}",
        std::fs::read_to_string(d.join("a.log")).unwrap_or_default()
    );
    (cluster, dir, expected, a)
}

/// An instance for the tests of lost partitions: a 6 s group session,
/// commits every second (logged, at debug), 300 records/s until the end.
fn session_instance(
    brokers: &str,
    app: &str,
    topic: &str,
    d: &std::path::Path,
    name: &str,
) -> std::process::Command {
    let mut c = instance_committing_every("1s", brokers, app, topic, d, name, &d.join("out"));
    c.args(["--until-end", "--max-records-per-second", "300"])
        .env("NEONBLUE_KAFKA__SESSION_TIMEOUT", "6s")
        .env(
            "NEONBLUE_LOG",
            "info,neonblue::drivers::kafka::engine=debug",
        );
    c
}

/// A mock cluster for `app` whose `topic` holds `records` generated
/// envelopes (seed `seed`) in `partitions`, a working directory, and the
/// outputs of file mode on the same records.
fn mock_job(
    app: &str,
    topic: &str,
    partitions: i32,
    records: u64,
    seed: u64,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    tempfile::TempDir,
    Outputs,
) {
    let cluster = mock_app(app, topic, partitions);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = prepare_input(d, topic, partitions as u32, records, seed);
    let expected = outputs(&file_run(&input, d, partitions as u32));
    produce(&cluster.bootstrap_servers(), &input, topic, partitions);
    (cluster, dir, expected)
}

/// A mock cluster with `topic` (of `partitions`) and the internal topics of `app`.
fn mock_app(
    app: &str,
    topic: &str,
    partitions: i32,
) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(topic, partitions, 1).unwrap();
    let topics = neonblue::drivers::kafka::AppTopics::new(app, vec![(topic.into(), partitions)], 0);
    for spec in topics.internal_specs() {
        cluster
            .create_topic(&spec.name, spec.partitions, 1)
            .unwrap();
    }
    cluster
}

#[test]
fn reset_prints_its_plan_and_deletes_nothing_without_confirmation() {
    let cluster = mock_app("reset-app", "reset-input", 4);
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("state")).unwrap();
    std::fs::write(d.join("state/db"), vec![0u8; 2048]).unwrap();
    std::fs::create_dir_all(d.join("out/events")).unwrap();
    std::fs::write(d.join("out/events/part.parquet"), b"x").unwrap();
    let replay = |extra: &[&str]| {
        bin()
            .args(["replay", "--reset", "--no-progress", "--brokers", &brokers])
            .args(["--app-id", "reset-app", "--topics", "reset-input"])
            .arg("--state")
            .arg(d.join("state"))
            .arg("--output")
            .arg(d.join("out"))
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let plan = replay(&["--dry-run"]);
    let err = String::from_utf8_lossy(&plan.stderr);
    assert_eq!(plan.status.code(), Some(0), "{err}");
    for want in [
        "replay --reset of application \"reset-app\" deletes",
        "consumer group   reset-app on",
        "internal topics  ",
        "reset-app-repartition",
        "reset-app-dlq",
        "state directory  ",
        "(2.0 KiB)",
        "output objects   every object under",
        "1 objects, 1 B",
        "ClickHouse rows  none",
        "dry run: nothing was deleted",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // Without a terminal and without --yes: refused, exit code 2.
    let refused = replay(&[]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains("pass --yes"), "{err}");
    assert!(d.join("state/db").exists() && d.join("out/events/part.parquet").exists());
    let base = neonblue::drivers::kafka::client_config(
        &neonblue::config::KafkaConfig {
            brokers: brokers.clone(),
            ..Default::default()
        },
        "test",
    );
    let existing = neonblue_topology::kafka::admin::topic_partitions(&base).unwrap();
    assert!(
        existing.contains_key("reset-app-repartition"),
        "{existing:?}"
    );
}

#[test]
fn sigterm_with_the_broker_gone_exits_non_zero_within_the_shutdown_timeout() {
    let cluster = mock_app("gone-app", "gone-input", 4);
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = prepare_input(d, "gone-input", 4, 2000, 9);
    produce(&brokers, &input, "gone-input", 4);
    let mut a = start_instance(
        &brokers,
        "gone-app",
        "gone-input",
        d,
        "a",
        &[
            "--shutdown-timeout",
            "3s",
            "--max-records-per-second",
            "300",
        ],
    );
    assert!(
        wait_for_output(&d.join("out"), Duration::from_secs(60)),
        "no output; log:\n{}",
        std::fs::read_to_string(d.join("a.log")).unwrap_or_default()
    );
    drop(cluster);
    let sent = std::time::Instant::now();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &a.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = loop {
        if let Some(st) = a.try_wait().unwrap() {
            break st;
        }
        if sent.elapsed() > Duration::from_secs(20) {
            let _ = a.kill();
            panic!(
                "still running 20 s after SIGTERM; log:\n{}",
                std::fs::read_to_string(d.join("a.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(d.join("a.log")).unwrap_or_default();
    assert!(
        !status.success(),
        "exited 0 without its final commit; log:\n{log}"
    );
    assert!(
        sent.elapsed() < Duration::from_secs(3 + 5),
        "took {:?}; log:\n{log}",
        sent.elapsed()
    );
    eprintln!("exit {status} after {:?}", sent.elapsed());
    if status.code() == Some(5) {
        assert!(log.contains("shutdown timed out after 3s"), "{log}");
    }
}

/// An engine of application `app` (input `events`, one partition) on a
/// mock cluster, with its state and outputs in the returned directory.
fn mock_engine(
    app: &str,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    tempfile::TempDir,
    neonblue::drivers::kafka::Engine,
) {
    use neonblue::drivers::kafka::{AppTopics, Engine, OutputStart};
    let cluster = mock_app(app, "events", 1);
    let mut base = rdkafka::ClientConfig::new();
    base.set("bootstrap.servers", cluster.bootstrap_servers());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = neonblue::config::Config::default();
    cfg.output.url = dir.path().join("out").display().to_string();
    let db = StateDb::open(&dir.path().join("state"), 1 << 20).unwrap();
    let topics = AppTopics::new(app, vec![("events".into(), 1)], 0);
    let engine = Engine::new(&cfg, topics, db, &base, OutputStart::default()).unwrap();
    (cluster, dir, engine)
}

#[test]
fn after_a_record_fails_the_engine_commits_nothing_more() {
    use neonblue::drivers::kafka::prepare::Consumed;
    use neonblue::drivers::kafka::repartition::Repartitioned;

    let (_cluster, _dir, mut engine) = mock_engine("failing");
    let no_log_end = |_: &str, _: i32| None;
    let repartition = |offset, bytes: &[u8]| Consumed::Repartition {
        partition: 0,
        offset,
        record: Repartitioned::decode(Some(bytes)),
    };

    // A watermark record applies and commits.
    let watermark = Repartitioned::Watermark {
        topic: "events".into(),
        partition: 0,
        time: neonblue_topology::SourceTime {
            position: 1,
            time: Some(1_700_000_000_000_000),
            idle: false,
        },
    }
    .encode();
    engine
        .apply(repartition(0, &watermark), &no_log_end)
        .unwrap();
    let positions = engine.commit().unwrap();
    assert_eq!(positions, [("failing-repartition".to_string(), 0, 1)]);

    // A record this version cannot read fails; after it, nothing commits:
    // not in line, not in the background, and no landed positions are
    // handed out (a restart resumes from offset 1).
    let err = engine
        .apply(repartition(1, &[9, 9]), &no_log_end)
        .unwrap_err();
    assert!(format!("{err:#}").contains("record format 9"), "{err:#}");
    for refused in [
        engine.commit().map(|_| ()),
        engine.commit_in_background().map(|_| ()),
        engine.take_landed().map(|_| ()),
    ] {
        let err = refused.unwrap_err().to_string();
        assert!(err.contains("an earlier failure"), "{err}");
    }
}

/// The time report of input partition `events[0]` at `position`, as the
/// repartition record at offset `position - 1` of partition 0 (mock_engine's
/// topics).
fn watermark(position: i64) -> neonblue::drivers::kafka::prepare::Consumed {
    use neonblue::drivers::kafka::repartition::Repartitioned;
    neonblue::drivers::kafka::prepare::Consumed::Repartition {
        partition: 0,
        offset: position - 1,
        record: Ok(Repartitioned::Watermark {
            topic: "events".into(),
            partition: 0,
            time: neonblue_topology::SourceTime {
                position,
                time: Some(1_700_000_000_000_000),
                idle: false,
            },
        }),
    }
}

/// Partitions the group took away (`Engine::lose`): their records are
/// dropped, so no task is restored for them (a restore writes to the task's
/// changelogs, and discards the objects its last intent names, which may be
/// the new holder's), and `Engine::discard` gives their tasks up without a
/// commit. Taken again later, a task restores its last commit.
#[test]
fn records_of_lost_partitions_are_dropped_and_their_work_discarded() {
    let no_log_end = |_: &str, _: i32| None;
    let (_cluster, _dir, mut engine) = mock_engine("losing");
    let lost = [
        ("losing-repartition".to_string(), 0),
        ("events".to_string(), 0),
    ];

    // A record of a lost partition restores nothing and changes nothing.
    engine.lose(&lost);
    engine.apply(watermark(1), &no_log_end).unwrap();
    engine.on_input_end("events", 0, 10, Some(10)).unwrap();
    assert!(engine.is_clean(), "a lost partition's record was applied");
    assert_eq!(engine.discard(&lost).unwrap(), 0);

    // A hosted task with uncommitted work, then lost: discarded, not committed.
    engine.apply(watermark(1), &no_log_end).unwrap();
    assert!(!engine.is_clean());
    engine.lose(&lost);
    engine.apply(watermark(2), &no_log_end).unwrap();
    assert_eq!(
        engine.discard(&lost).unwrap(),
        1,
        "one dirty task discarded"
    );
    assert!(engine.is_clean());
    assert!(engine.commit().unwrap().is_empty(), "nothing to commit");

    // Assigned again: restored from its last commit (none), it redoes it.
    engine.apply(watermark(1), &no_log_end).unwrap();
    assert_eq!(
        engine.commit().unwrap(),
        [("losing-repartition".to_string(), 0, 1)]
    );
}

#[test]
fn a_hole_in_a_repartition_partition_stops_its_join_task() {
    use neonblue_state::ChangeRecord;

    let no_log_end = |_: &str, _: i32| None;
    // Offsets 0 and 1 apply (1 twice: a re-delivery) and commit; then the
    // brokers give offset 5. If the log holds nothing at offsets 2 to 4,
    // they were lost; if it does, they were skipped. Either way the task
    // stops, saying which, and commits nothing more.
    for (app, logged, problem) in [
        ("holes", 0, "holes-repartition[0] holds no records from offset 2 to 4"),
        (
            "skips",
            6,
            "skips-repartition[0] was read from offset 5, past the join task's checkpoint at 2, though the records between are there",
        ),
    ] {
        let (cluster, _dir, mut engine) = mock_engine(app);
        let records: Vec<ChangeRecord> = (0..logged)
            .map(|i| ChangeRecord {
                key: vec![i],
                value: Some(vec![i]),
            })
            .collect();
        let mut base = rdkafka::ClientConfig::new();
        base.set("bootstrap.servers", cluster.bootstrap_servers());
        ChangelogProducer::new(&base)
            .unwrap()
            .write_changes(&format!("{app}-repartition"), 0, &records)
            .unwrap();
        for position in [1, 2, 2] {
            engine.apply(watermark(position), &no_log_end).unwrap();
        }
        assert_eq!(
            engine.commit().unwrap(),
            [(format!("{app}-repartition"), 0, 2)]
        );
        let err = engine
            .apply(watermark(6), &no_log_end)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(problem) && err.contains("replay --reset"),
            "{err}"
        );
        assert!(engine.commit().is_err());
    }
}

#[test]
fn restore_overwrites_an_unfinished_commit_and_discards_nothing_committed() {
    let cluster = MockCluster::new(1).unwrap();
    restore_after_an_unfinished_commit(&cluster.bootstrap_servers(), |spec| {
        cluster
            .create_topic(&spec.name, spec.partitions, 1)
            .unwrap()
    });
}

/// The same on a real broker. Tansu answers ListOffsets with the first
/// offset of a partition's last batch, plus one: taken as the log end, it
/// cut the unfinished commit (one batch) short, and only its first key was
/// compensated.
#[test]
fn restore_overwrites_an_unfinished_commit_on_a_real_broker() {
    let Some(brokers) = real_broker() else { return };
    restore_after_an_unfinished_commit(&brokers, |_| {});
}

/// Instance 1 commits, then dies in a commit whose store records reached
/// the changelog (one batch) but whose checkpoint did not; instances on
/// empty and stale disks restore the committed state alike.
fn restore_after_an_unfinished_commit(brokers: &str, create_topic: impl Fn(&TopicSpec)) {
    let mut base = rdkafka::ClientConfig::new();
    base.set("bootstrap.servers", brokers);
    let (kv_topic, ckpt_topic) = (unique("kv-changelog"), unique("ckpt-changelog"));
    let specs: Vec<TopicSpec> = [&kv_topic, &ckpt_topic]
        .iter()
        .map(|n| TopicSpec {
            name: n.to_string(),
            partitions: 2,
            compacted: true,
        })
        .collect();
    for spec in &specs {
        create_topic(spec);
    }
    // Existing topics are accepted; partition counts are checked.
    ensure_topics(&base, 1, &specs).unwrap();
    let wrong = TopicSpec {
        partitions: 3,
        ..specs[0].clone()
    };
    let err = ensure_topics(&base, 1, &[wrong]).unwrap_err().to_string();
    assert!(err.contains("has 2 partitions but 3 are required"), "{err}");

    let log = TaskLog {
        ns: "task-0001".into(),
        partition: 1,
        stores: vec![("kv".into(), kv_topic.clone())],
        checkpoint_topic: ckpt_topic.clone(),
    };
    let producer = ChangelogProducer::new(&base).unwrap();
    let reader = PartitionReader::new(&base).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Instance 1 commits a = 1, b = 2.
    let db1 = StateDb::open(&dir.path().join("one"), 1 << 20).unwrap();
    let tree = db1.tree(&log.ns, "kv").unwrap();
    let mut kv: KeyValueStore<String, u64> = KeyValueStore::load("kv", &tree).unwrap();
    kv.insert("a".into(), 1).unwrap();
    kv.insert("b".into(), 2).unwrap();
    let mut changes = CommitBatch::default();
    let first_records = changes.add_store(&tree, &mut kv).len() as i64;
    let mut durability = ChangelogDurability::new(&producer, &db1);
    let task = LoggedTask {
        log: log.clone(),
        checkpoint: Checkpoint::default(),
    };
    let committed = commit::<_, KafkaError>(
        &mut durability,
        vec![TaskCommit {
            key: task,
            intent: Vec::new(),
            checkpoint: b"first".to_vec(),
            changes,
        }],
        || Ok(()),
    )
    .unwrap();
    assert_eq!(committed[0].checkpoint.end_of("kv"), first_records);

    // Its next commit (a = 99, c = 7 and 4,000 more keys: several pages,
    // position "second") dies while publishing: the intent is recorded,
    // nothing else.
    kv.insert("a".into(), 99).unwrap();
    kv.insert("c".into(), 7).unwrap();
    for i in 0..4000 {
        kv.insert(format!("u{i:05}"), 1).unwrap();
    }
    let mut changes = CommitBatch::default();
    let unfinished = changes.add_store(&tree, &mut kv).to_vec();
    assert!(unfinished.len() > 2, "several changelog records, one batch");
    let failed = commit::<_, KafkaError>(
        &mut durability,
        vec![TaskCommit {
            key: committed[0].clone(),
            intent: vec!["events/part-x.parquet".into()],
            checkpoint: b"second".to_vec(),
            changes,
        }],
        || Err(KafkaError::Timeout("the object store went away".into())),
    );
    assert!(failed.is_err());
    // A later attempt got further: its store records reached the changelog,
    // its checkpoint did not.
    producer.write_changes(&kv_topic, 1, &unfinished).unwrap();

    // Instance 2 (empty local state) restores the committed state only, and
    // is told about the intent.
    let db2 = StateDb::open(&dir.path().join("two"), 1 << 20).unwrap();
    let (ckpt2, stats) = log.restore(&db2, &reader, &producer).unwrap();
    // The committed position, not the unfinished commit's.
    assert_eq!(ckpt2.payload, b"first");
    assert_eq!(ckpt2.intent, vec!["events/part-x.parquet".to_string()]);
    assert!(!stats.incremental);
    assert_eq!(stats.compensated as usize, unfinished.len());
    let mut kv2: KeyValueStore<String, u64> =
        KeyValueStore::load("kv", &db2.tree(&log.ns, "kv").unwrap()).unwrap();
    assert_eq!(kv2.get(&"a".to_string()).unwrap(), Some(&1));
    assert_eq!(kv2.get(&"b".to_string()).unwrap(), Some(&2));
    assert_eq!(kv2.get(&"c".to_string()).unwrap(), None);

    // Instance 1's stale local copy catches up incrementally and agrees:
    // the compensation records undid the unfinished commit in the log.
    let (_, stats1) = log.restore(&db1, &reader, &producer).unwrap();
    assert!(stats1.incremental);
    let mut kv1: KeyValueStore<String, u64> =
        KeyValueStore::load("kv", &db1.tree(&log.ns, "kv").unwrap()).unwrap();
    assert_eq!(kv1.get(&"a".to_string()).unwrap(), Some(&1));
    assert_eq!(kv1.get(&"c".to_string()).unwrap(), None);
    assert_eq!(kv1.get(&"u02999".to_string()).unwrap(), None);
    // A third, fresh restore reads the whole log (with compensations) alike.
    let db3 = StateDb::open(&dir.path().join("three"), 1 << 20).unwrap();
    log.restore(&db3, &reader, &producer).unwrap();
    let mut kv3: KeyValueStore<String, u64> =
        KeyValueStore::load("kv", &db3.tree(&log.ns, "kv").unwrap()).unwrap();
    assert_eq!(kv3.get(&"a".to_string()).unwrap(), Some(&1));
    assert_eq!(kv3.get(&"c".to_string()).unwrap(), None);
    assert_eq!(kv3.get(&"u02999".to_string()).unwrap(), None);

    // Changelogs written in an older state format are refused with what to
    // do, not restored into a silently empty state.
    #[derive(serde::Serialize)]
    struct OlderCheckpoint {
        ends: Vec<(String, i64)>,
        intent: Vec<String>,
        payload: Vec<u8>,
    }
    let older = TaskLog {
        partition: 0,
        ..log.clone()
    };
    let record = neonblue_state::encode(&OlderCheckpoint {
        ends: vec![("kv".into(), 0)],
        intent: Vec::new(),
        payload: b"old".to_vec(),
    });
    let sent = producer
        .send(&ckpt_topic, 0, older.ns.as_bytes(), Some(&record))
        .unwrap();
    ChangelogProducer::await_all(vec![sent]).unwrap();
    let db4 = StateDb::open(&dir.path().join("four"), 1 << 20).unwrap();
    let err = older
        .restore(&db4, &reader, &producer)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("state format") && err.contains("replay --reset"),
        "{err}"
    );
}

#[test]
fn log_bounds_of_many_partitions_in_one_round_equal_the_watermarks() {
    use neonblue_topology::kafka::query_log_bounds;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("bounds", 3, 1).unwrap();
    let mut base = rdkafka::ClientConfig::new();
    base.set("bootstrap.servers", cluster.bootstrap_servers());
    let producer = ChangelogProducer::new(&base).unwrap();
    let sends = [(0, 5), (2, 2)]
        .into_iter()
        .flat_map(|(partition, n)| (0..n).map(move |i| (partition, i)))
        .map(|(partition, i)| producer.send("bounds", partition, b"k", Some(&[i])))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    ChangelogProducer::await_all(sends).unwrap();

    let consumer: BaseConsumer = base.clone().set("group.id", "bounds").create().unwrap();
    let partitions: Vec<(String, i32)> = (0..3).map(|p| ("bounds".to_string(), p)).collect();
    let timeout = Duration::from_secs(10);
    let bounds = query_log_bounds(&consumer, &partitions, timeout).unwrap();
    for key in &partitions {
        let watermarks = consumer.fetch_watermarks(&key.0, key.1, timeout).unwrap();
        assert_eq!(bounds[key], watermarks, "{key:?}");
    }
    assert_eq!(bounds[&partitions[0]], (0, 5));
    assert_eq!(bounds[&partitions[1]], (0, 0));
    assert_eq!(bounds[&partitions[2]], (0, 2));
    assert!(query_log_bounds(&consumer, &[], timeout)
        .unwrap()
        .is_empty());
}
