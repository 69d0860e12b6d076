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
