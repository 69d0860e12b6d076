//! Kafka mode against a secured cluster: Tansu behind a TLS terminator
//! (stunnel) with a throwaway CA, as `scripts/services/tansu.sh start-tls`
//! sets it up (`scripts/test.sh` starts it and exports the variables read
//! here; the tests skip without them unless `NEONBLUE_REQUIRE_BROKER=1`).
//!
//! - a zstd-compressed input topic produced over TLS, `run --until-end` with
//!   `security.protocol=SSL` + `ssl.ca.location`: outputs equal file mode;
//! - the same over mutual TLS (client certificate, encrypted key);
//! - `generate --topic --kafka-property …` produces over TLS;
//! - configuration mistakes (missing or wrong CA, wrong host name, no client
//!   certificate, a wrong key password, plaintext on the TLS port, TLS on a
//!   plaintext port, failed SASL, a SASL mechanism the broker does not
//!   offer, SASL required) stop `run`/`replay` within seconds with a message
//!   naming the problem and the property, never showing a password.

mod common;
mod kafka_support;

use kafka_support::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The secured test cluster.
struct Tls {
    /// TLS bootstrap (server certificate for localhost).
    brokers: String,
    /// The throwaway CA; client.pem, client.key, client.key.password and
    /// wrong-ca.pem lie next to it.
    ca: PathBuf,
    /// Mutual-TLS bootstrap.
    mtls: String,
    /// TLS in front of a broker that requires SASL (and has no users).
    sasl_ssl: String,
    /// TLS with a certificate for another host name.
    mismatch: String,
    /// The TLS broker's private plaintext port.
    plaintext: String,
}

impl Tls {
    fn file(&self, name: &str) -> PathBuf {
        self.ca.parent().unwrap().join(name)
    }

    fn key_password(&self) -> String {
        std::fs::read_to_string(self.file("client.key.password"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// `security.protocol=SSL` with the CA.
    fn ssl(&self) -> Vec<(String, String)> {
        vec![
            ("security.protocol".into(), "SSL".into()),
            ("ssl.ca.location".into(), self.ca.display().to_string()),
        ]
    }

    /// [`Tls::ssl`] plus the client certificate and its encrypted key.
    fn mutual(&self) -> Vec<(String, String)> {
        let mut p = self.ssl();
        p.push((
            "ssl.certificate.location".into(),
            self.file("client.pem").display().to_string(),
        ));
        p.push((
            "ssl.key.location".into(),
            self.file("client.key").display().to_string(),
        ));
        p.push(("ssl.key.password".into(), self.key_password()));
        p
    }
}

fn tls() -> Option<Tls> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        var("NEONBLUE_TEST_TLS_BROKERS"),
        var("NEONBLUE_TEST_TLS_CA"),
    ) {
        (Some(brokers), Some(ca)) => Some(Tls {
            brokers,
            ca: PathBuf::from(ca),
            mtls: var("NEONBLUE_TEST_MTLS_BROKERS").expect("NEONBLUE_TEST_MTLS_BROKERS"),
            sasl_ssl: var("NEONBLUE_TEST_SASL_SSL_BROKERS")
                .expect("NEONBLUE_TEST_SASL_SSL_BROKERS"),
            mismatch: var("NEONBLUE_TEST_TLS_MISMATCH_BROKERS")
                .expect("NEONBLUE_TEST_TLS_MISMATCH_BROKERS"),
            plaintext: var("NEONBLUE_TEST_TLS_PLAINTEXT_BROKERS")
                .expect("NEONBLUE_TEST_TLS_PLAINTEXT_BROKERS"),
        }),
        _ => {
            assert!(
                std::env::var("NEONBLUE_REQUIRE_BROKER").as_deref() != Ok("1"),
                "NEONBLUE_TEST_TLS_BROKERS / NEONBLUE_TEST_TLS_CA are not set but a broker is required \
                 (scripts/test.sh starts `scripts/services/tansu.sh start-tls`)"
            );
            eprintln!("skipped: no TLS broker (run scripts/test.sh, or export the output of scripts/services/tansu.sh start-tls)");
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("{prefix}-{t}-{}", std::process::id())
}

fn client_config(brokers: &str, props: &[(String, String)]) -> rdkafka::ClientConfig {
    neonblue::drivers::kafka::client_config(
        &neonblue::config::KafkaConfig {
            brokers: brokers.to_string(),
            properties: props.iter().cloned().collect(),
            ..Default::default()
        },
        "test",
    )
}

fn flags(props: &[(String, String)]) -> Vec<String> {
    props
        .iter()
        .flat_map(|(k, v)| ["--kafka-property".to_string(), format!("{k}={v}")])
        .collect()
}

/// Produces a generated input (2 partitions keyed by user) over `brokers`
/// with `props` + `compression`, runs one instance `--until-end` with
/// `props`, and compares its Parquet with a file-mode run.
fn run_equals_file_mode(
    brokers: &str,
    props: &[(String, String)],
    compression: &str,
    seed: u64,
    what: &str,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let topic = unique("nb-tls-input");
    let app = unique("nb-tls-app");
    let input = prepare_input(d, &topic, 2, 3000, seed);
    let expected = outputs(&file_run(&input, d, 2));
    let mut produce = props.to_vec();
    produce.push(("compression.type".into(), compression.into()));
    let n = neonblue::drivers::kafka::produce::produce_file(
        &client_config(brokers, &produce),
        &input,
        &topic,
        2,
    )
    .unwrap();
    assert!(n > 2000, "{n} records produced");

    let extra: Vec<String> = ["--until-end".to_string()]
        .into_iter()
        .chain(flags(props))
        .collect();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut a = start_instance(brokers, &app, &topic, d, "a", &extra);
    let log = d.join("a.log");
    wait_ok(&mut a, Duration::from_secs(240), what, &log);
    assert_same(&expected, &outputs(&d.join("out")), what);
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn zstd_topic_over_tls_equals_file_mode() {
    let Some(tls) = tls() else { return };
    run_equals_file_mode(&tls.brokers, &tls.ssl(), "zstd", 21, "run over TLS");
}

#[test]
fn mutual_tls_equals_file_mode() {
    let Some(tls) = tls() else { return };
    let log = run_equals_file_mode(&tls.mtls, &tls.mutual(), "zstd", 22, "run over mutual TLS");
    assert!(
        !log.contains(&tls.key_password()),
        "the key password appears in the log"
    );
}

#[test]
fn generate_produces_over_tls() {
    let Some(tls) = tls() else { return };
    let topic = unique("nb-tls-generate");
    let out = bin()
        .args(["generate", "--records", "500", "--seed", "3"])
        .args(["--topic", &topic, "--topic-partitions", "2"])
        .args(["--brokers", &tls.brokers])
        .args(flags(&tls.ssl()))
        .args(["--kafka-property", "compression.type=zstd"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "generate failed: {stderr}");
    assert!(stderr.contains("produced 500 records"), "{stderr}");
    // Counted by reading (Tansu's high watermark is the last batch's base
    // offset + 1, not the end of the log).
    let mut consumer_config = client_config(&tls.brokers, &tls.ssl());
    consumer_config
        .set("group.id", unique("nb-tls-reader"))
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer = consumer_config.create().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(&topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let (mut total, mut eof) = (0, std::collections::BTreeSet::new());
    let mut filled = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while eof.len() < 2 && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                total += 1;
                filled.insert(rdkafka::Message::partition(&m));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            _ => {}
        }
    }
    assert_eq!(total, 500);
    assert_eq!(filled.len(), 2, "records spread over both partitions");

    // The same without the CA: a fast, named failure.
    let started = Instant::now();
    let out = bin()
        .args(["generate", "--records", "10", "--topic", &topic])
        .args(["--brokers", &tls.brokers])
        .args(["--kafka-property", "security.protocol=SSL"])
        .arg("--kafka-property")
        .arg(format!(
            "ssl.ca.location={}",
            tls.file("wrong-ca.pem").display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(stderr.contains("certificate verify failed"), "{stderr}");
}

/// A start that must fail: the command, what its stderr must contain and
/// must not contain.
struct Case {
    name: &'static str,
    command: &'static str,
    brokers: String,
    props: Vec<(String, String)>,
    /// Environment variables of the process.
    env: Vec<(&'static str, String)>,
    expect: Vec<&'static str>,
    secret: Option<String>,
}

fn fail_case(case: &Case, dir: &Path) -> (Duration, String, bool) {
    let started = Instant::now();
    let mut cmd = bin();
    cmd.args([case.command, "--no-progress", "--now", NOW])
        .args(["--brokers", &case.brokers])
        .args(["--app-id", &unique("nb-tls-fail")])
        .args(["--topics", "experiments_events"])
        .arg("--state")
        .arg(dir.join(format!("state-{}", case.name)))
        .arg("--output")
        .arg(dir.join(format!("out-{}", case.name)))
        .args(flags(&case.props))
        .envs(case.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null());
    if case.command == "run" {
        cmd.arg("--until-end");
    }
    let out = cmd.output().unwrap();
    (
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn configuration_problems_fail_fast_naming_the_problem() {
    let Some(tls) = tls() else { return };
    let dir = tempfile::tempdir().unwrap();
    let with = |base: Vec<(String, String)>, k: &str, v: String| {
        let mut p: Vec<(String, String)> = base.into_iter().filter(|(x, _)| x != k).collect();
        p.push((k.to_string(), v));
        p
    };
    let sasl_password = "wrong-password-Zq81".to_string();
    let cases = vec![
        Case {
            name: "missing-ca",
            command: "run",
            brokers: tls.brokers.clone(),
            props: with(
                tls.ssl(),
                "ssl.ca.location",
                tls.file("no-such-ca.pem").display().to_string(),
            ),
            env: vec![],
            expect: vec!["ssl.ca.location", "no-such-ca.pem", "No such file"],
            secret: None,
        },
        Case {
            name: "wrong-ca",
            command: "run",
            brokers: tls.brokers.clone(),
            props: with(
                tls.ssl(),
                "ssl.ca.location",
                tls.file("wrong-ca.pem").display().to_string(),
            ),
            env: vec![],
            expect: vec!["certificate verify failed", "ssl.ca.location"],
            secret: None,
        },
        Case {
            name: "wrong-ca-replay",
            command: "replay",
            brokers: tls.brokers.clone(),
            props: with(
                tls.ssl(),
                "ssl.ca.location",
                tls.file("wrong-ca.pem").display().to_string(),
            ),
            env: vec![],
            expect: vec!["certificate verify failed", "ssl.ca.location"],
            secret: None,
        },
        Case {
            name: "system-ca-only",
            command: "run",
            brokers: tls.brokers.clone(),
            props: vec![("security.protocol".into(), "SSL".into())],
            env: vec![],
            expect: vec!["certificate verify failed", "ssl.ca.location"],
            secret: None,
        },
        Case {
            name: "hostname-mismatch",
            command: "run",
            brokers: tls.mismatch.clone(),
            props: tls.ssl(),
            env: vec![],
            expect: vec!["hostname mismatch", "ssl.endpoint.identification.algorithm"],
            secret: None,
        },
        Case {
            name: "no-client-certificate",
            command: "run",
            brokers: tls.mtls.clone(),
            props: tls.ssl(),
            env: vec![],
            expect: vec!["client certificate", "ssl.certificate.location"],
            secret: None,
        },
        Case {
            name: "wrong-key-password",
            command: "run",
            brokers: tls.mtls.clone(),
            props: with(tls.mutual(), "ssl.key.password", "not-the-key-pw-77".into()),
            env: vec![],
            expect: vec!["private key", "ssl.key.password"],
            secret: Some("not-the-key-pw-77".into()),
        },
        Case {
            name: "plaintext-to-tls-port",
            command: "run",
            brokers: tls.brokers.clone(),
            props: vec![],
            env: vec![],
            expect: vec!["expects TLS", "security.protocol=SSL"],
            secret: None,
        },
        Case {
            name: "tls-to-plaintext-port",
            command: "run",
            brokers: tls.plaintext.clone(),
            props: tls.ssl(),
            env: vec![],
            expect: vec!["did not answer the TLS handshake", "security.protocol"],
            secret: None,
        },
        Case {
            name: "sasl-scram-wrong-credentials",
            command: "run",
            brokers: tls.sasl_ssl.clone(),
            props: {
                let mut p = with(tls.ssl(), "security.protocol", "SASL_SSL".into());
                p.push(("sasl.mechanism".into(), "SCRAM-SHA-512".into()));
                p.push(("sasl.username".into(), "neonblue".into()));
                p
            },
            // The password from the environment, as the README recommends.
            env: vec![(
                "NEONBLUE_KAFKA__PROPERTIES__SASL_PASSWORD",
                sasl_password.clone(),
            )],
            expect: vec!["SASL: authentication failed", "sasl.password"],
            secret: Some(sasl_password.clone()),
        },
        Case {
            name: "sasl-mechanism-not-offered",
            command: "run",
            brokers: tls.sasl_ssl.clone(),
            props: {
                let mut p = with(tls.ssl(), "security.protocol", "SASL_SSL".into());
                p.push(("sasl.mechanism".into(), "PLAIN".into()));
                p.push(("sasl.username".into(), "neonblue".into()));
                p
            },
            env: vec![(
                "NEONBLUE_KAFKA__PROPERTIES__SASL_PASSWORD",
                sasl_password.clone(),
            )],
            expect: vec!["does not accept the configured mechanism", "sasl.mechanism"],
            secret: Some(sasl_password.clone()),
        },
        Case {
            name: "sasl-required",
            command: "run",
            brokers: tls.sasl_ssl.clone(),
            props: tls.ssl(),
            env: vec![],
            expect: vec!["requires SASL", "security.protocol=SASL_SSL"],
            secret: None,
        },
    ];
    // All at once: each takes seconds (the slowest, TLS on a plaintext
    // port, waits out the 8 s connection set-up timeout of the probe).
    let results: Vec<(Duration, String, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|c| s.spawn(|| fail_case(c, dir.path())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut failures = Vec::new();
    for (case, (elapsed, stderr, success)) in cases.iter().zip(&results) {
        eprintln!("{}: exited after {elapsed:.1?}", case.name);
        let mut wrong = Vec::new();
        if *success {
            wrong.push("succeeded".to_string());
        }
        if *elapsed >= Duration::from_secs(15) {
            wrong.push(format!("took {elapsed:?}"));
        }
        for e in &case.expect {
            if !stderr.contains(e) {
                wrong.push(format!("stderr lacks {e:?}"));
            }
        }
        if let Some(s) = &case.secret {
            if stderr.contains(s.as_str()) {
                wrong.push("stderr shows the password".into());
            }
        }
        if !wrong.is_empty() {
            failures.push(format!("{}: {}\n{stderr}", case.name, wrong.join(", ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
