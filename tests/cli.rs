//! The binary as a user runs it: summary file, dead letters, clear errors.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_neonblue");

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("NEONBLUE_LOG", "warn")
        .output()
        .unwrap()
}

/// Runs `cdc.jsonl` in `dir` with the clock pinned at `now`; returns the summary JSON.
fn run_with_summary(dir: &std::path::Path, now: &str) -> serde_json::Value {
    let args = [
        "run",
        "--input",
        "cdc.jsonl",
        "--output",
        "out",
        "--state",
        "state",
        "--summary",
        "s.json",
        "--now",
        now,
    ];
    let out = run(&args, dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(dir.join("s.json")).unwrap()).unwrap()
}

#[test]
fn run_writes_the_summary_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cdc.jsonl");
    let mut text = std::fs::read_to_string(fixture("outbox_json.jsonl")).unwrap();
    text.push_str("this is not json\n");
    std::fs::write(&input, text).unwrap();
    let summary = run_with_summary(dir.path(), "2025-10-01T00:00:00Z");
    assert_eq!(summary["records_in"], 75);
    assert_eq!(summary["events_emitted"], 37);
    assert_eq!(summary["dead_lettered"], 1);
    assert_eq!(summary["skipped"]["duplicate"], 1);
    let dlq: Vec<_> = std::fs::read_dir(dir.path().join("out/dlq"))
        .unwrap()
        .collect();
    assert_eq!(dlq.len(), 1);
    let line = std::fs::read_to_string(dlq[0].as_ref().unwrap().path()).unwrap();
    let dl: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(dl["value"], "this is not json");
    assert_eq!(
        (dl["offset"].as_i64(), dl["topic"].as_str()),
        (Some(74), Some("cdc.jsonl"))
    );
    assert_eq!(
        (dl["reason"].as_str(), dl["stage"].as_str()),
        (Some("invalid_json"), Some("input"))
    );
}

#[test]
fn future_timestamps_are_dead_letters_relative_to_now() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("outbox_json.jsonl"), dir.path().join("cdc.jsonl")).unwrap();
    // With the clock pinned before the business timestamps, they are > 24 h ahead.
    let summary = run_with_summary(dir.path(), "2025-09-01T00:00:00Z");
    assert_eq!(
        summary["dead_lettered"], 65,
        "27 assignment upserts + 38 events; the delete carries no timestamp"
    );
}

#[test]
fn reusing_a_state_directory_for_other_settings_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("outbox_json.jsonl"), dir.path().join("cdc.jsonl")).unwrap();
    let base = [
        "run",
        "--input",
        "cdc.jsonl",
        "--output",
        "out",
        "--state",
        "state",
    ];
    assert!(run(&base, dir.path()).status.success());
    let mut other = base.to_vec();
    other.extend(["--partitions", "2"]);
    let out = run(&other, dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("belongs to another job"), "{err}");
    let out = run(&["run", "--input", "missing.jsonl"], dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open input"));
    let out = run(
        &["run", "--input", "cdc.jsonl", "--grace", "soon"],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid duration"));
}

fn run_env(args: &[&str], dir: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(dir)
        .env_remove("NEONBLUE_CONFIG")
        .env_remove("RUST_LOG")
        .env("NEONBLUE_LOG", "warn");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn config_print_shows_every_value_with_its_origin_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("n.toml"),
        "[processing]\ngrace = \"10m\"\napp_id = \"from-file\"\n[clickhouse]\npassword = \"file-secret\"\n",
    )
    .unwrap();
    let out = run_env(
        &[
            "--config",
            "n.toml",
            "config",
            "print",
            "--partitions",
            "3",
            "--commit-interval",
            "250ms",
        ],
        dir.path(),
        &[
            ("NEONBLUE_PROCESSING__GRACE", "1500ms"),
            ("NEONBLUE_KAFKA__PROPERTIES__SASL_PASSWORD", "env-secret"),
            ("NEONBLUE_KAFKA__PROPERTIES__SASL_USERNAME", "bob"),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "grace = \"1s 500ms\"",
        "# env NEONBLUE_PROCESSING__GRACE",
        "app_id = \"from-file\"",
        "# file n.toml",
        "partitions = 3",
        "# flag --partitions",
        "commit_interval = \"250ms\"",
        "# flag --commit-interval",
        "\"sasl.username\" = \"bob\"",
        "\"sasl.password\" = \"****\"",
        "password = \"****\"",
        "session_timeout = \"10s\"",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(
        !text.contains("env-secret") && !text.contains("file-secret"),
        "{text}"
    );
}

#[test]
fn config_validate_names_every_bad_key_and_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/neonblue.example.toml"),
        dir.path().join("example.toml"),
    )
    .unwrap();
    let out = run(&["config", "validate", "example.toml"], dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("example.toml: valid"));
    std::fs::write(
        dir.path().join("bad.toml"),
        "[processing]\ngrace_seconds = 300\npartitions = 0\n[source]\nlayout = \"csv\"\n\
         [kafka]\ncommit_interval = 2000\nsession_timeout = \"1500us\"\n",
    )
    .unwrap();
    let out = run(&["config", "validate", "bad.toml"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "unknown key processing.grace_seconds; keys of [processing]: app_id, grace, partitions",
        "source.layout = \"csv\" (file bad.toml): unknown variant `csv`, expected one of `outbox`, `eventrouter`, `tables`",
        "kafka.commit_interval = 2000 (file bad.toml): invalid type: integer `2000`, expected a duration as a string with a unit",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // Semantic checks run once the types are right.
    std::fs::write(
        dir.path().join("bad2.toml"),
        "[processing]\npartitions = 0\n[kafka]\nsession_timeout = \"1500us\"\n",
    )
    .unwrap();
    let out = run(&["config", "validate", "bad2.toml"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("processing.partitions = 0 (file bad2.toml): at least 1"),
        "{err}"
    );
    assert!(
        err.contains(
            "kafka.session_timeout = \"1500us\" (file bad2.toml): whole milliseconds from 1s to 1h"
        ),
        "{err}"
    );
}

#[test]
fn sub_second_grace_is_honoured_and_durations_need_units() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("outbox_json.jsonl"), dir.path().join("cdc.jsonl")).unwrap();
    let out = run(&["config", "print", "--grace", "250ms"], dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("grace = \"250ms\""));
    for bad in ["300", "99999999999999999999s", "5x"] {
        let out = run(&["run", "--input", "cdc.jsonl", "--grace", bad], dir.path());
        assert_eq!(out.status.code(), Some(2), "--grace {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("processing.grace"), "{err}");
    }
    let out = run(
        &[
            "run",
            "--input",
            "cdc.jsonl",
            "--output",
            "o",
            "--state",
            "s",
            "--grace",
            "250ms",
            "--now",
            "2025-10-01T00:00:00Z",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn exit_codes_tell_usage_dependency_and_data_errors_apart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("outbox_json.jsonl"), dir.path().join("cdc.jsonl")).unwrap();
    let code = |args: &[&str], env: &[(&str, &str)]| run_env(args, dir.path(), env);
    // Usage: clap, a bad value, an old variable, a bad log filter.
    assert_eq!(code(&["run", "--no-such-flag"], &[]).status.code(), Some(2));
    assert_eq!(
        code(&["run", "--input", "cdc.jsonl", "--partitions", "0"], &[])
            .status
            .code(),
        Some(2)
    );
    let old = code(
        &["run", "--input", "cdc.jsonl"],
        &[("NEONBLUE_BROKERS", "x:1")],
    );
    assert_eq!(old.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&old.stderr).contains("use NEONBLUE_KAFKA__BROKERS"));
    let bad_filter = code(
        &["config", "print"],
        &[("NEONBLUE_LOG", ""), ("RUST_LOG", "x=[")],
    );
    assert_eq!(bad_filter.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_filter.stderr)
        .contains("invalid log filter \"x=[\" from RUST_LOG"));
    // Data / IO: the input cannot be read.
    assert_eq!(
        code(&["run", "--input", "missing.jsonl"], &[])
            .status
            .code(),
        Some(4)
    );
    // Dependency: ClickHouse unreachable (no retries).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ch = code(
        &[
            "run",
            "--input",
            "cdc.jsonl",
            "--output",
            "o",
            "--state",
            "s",
            "--clickhouse-url",
            &format!("http://127.0.0.1:{port}"),
        ],
        &[("NEONBLUE_CLICKHOUSE__MAX_RETRIES", "0")],
    );
    assert_eq!(
        ch.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&ch.stderr)
    );
    // The final error honours --log-json.
    let json = code(&["--log-json", "run", "--input", "missing.jsonl"], &[]);
    assert_eq!(json.status.code(), Some(4));
    let line = String::from_utf8_lossy(&json.stderr);
    let last: serde_json::Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "ERROR");
    assert_eq!(last["fields"]["exit_code"], 4);
    assert!(last["fields"]["message"]
        .as_str()
        .unwrap()
        .contains("cannot open input"));
    let usage = code(&["--log-json", "run", "--no-such-flag"], &[]);
    assert_eq!(usage.status.code(), Some(2));
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&usage.stderr).trim()).unwrap();
    assert_eq!(v["fields"]["exit_code"], 2);
}

#[test]
fn rust_log_sets_the_filter_unless_log_is_given() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("outbox_json.jsonl"), dir.path().join("cdc.jsonl")).unwrap();
    let args = [
        "run",
        "--input",
        "cdc.jsonl",
        "--output",
        "o",
        "--state",
        "s",
    ];
    let mut c = Command::new(BIN);
    let out = c
        .args(args)
        .current_dir(dir.path())
        .env_remove("NEONBLUE_LOG")
        .env("RUST_LOG", "neonblue=debug")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DEBUG"),
        "RUST_LOG=neonblue=debug shows debug lines"
    );
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir.path())
        .env("NEONBLUE_LOG", "error")
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("DEBUG"),
        "--log/NEONBLUE_LOG wins"
    );
}
