//! `neonblue status` (issue 14 §2): what a state directory and an
//! application's group say about where processing stands.

mod common;
mod kafka_support;

use kafka_support::{bin, real_broker, unique};
use serde_json::Value;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

fn generate(path: &Path, records: u64) {
    let st = bin()
        .args(["generate", "--records", &records.to_string(), "--seed", "5"])
        .arg("--output")
        .arg(path)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
}

fn file_run(dir: &Path) -> std::process::Command {
    let mut c = bin();
    c.args(["run", "--no-progress", "--now", "2100-01-01T00:00:00Z"])
        .args(["--partitions", "2", "--checkpoint-records", "1000"])
        .arg("--input")
        .arg(dir.join("in.jsonl"))
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--output")
        .arg(dir.join("out"))
        .arg("--summary")
        .arg(dir.join("summary.json"))
        .env("NEONBLUE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn status(args: &[&str]) -> Output {
    bin()
        .arg("status")
        .args(args)
        .env("NEONBLUE_LOG", "warn")
        .output()
        .unwrap()
}

fn status_json(args: &[&str]) -> Value {
    let out = status(&[args, &["--format", "json"]].concat());
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(|k| k.as_str()).collect()
}

const TASK_KEYS: [&str; 14] = [
    "task",
    "kind",
    "input",
    "checkpointed",
    "next_offset",
    "stream_time",
    "watermark",
    "counters",
    "pending_events",
    "open_windows",
    "dedup_entries",
    "state_bytes",
    "changelog_ends",
    "unfinished_intent",
];

#[test]
fn a_finished_file_run_shows_its_summary_position_and_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate(&d.join("in.jsonl"), 3000);
    assert!(file_run(d).status().unwrap().success());
    let state = d.join("state");
    let s = status_json(&["--state", state.to_str().unwrap()]);

    assert_eq!(keys(&s), ["state", "state_error", "broker"]);
    assert!(s["state_error"].is_null());
    assert!(s["broker"].is_null());
    let l = &s["state"];
    assert_eq!(
        keys(l),
        [
            "dir",
            "format",
            "mode",
            "size_on_disk",
            "app_id",
            "file",
            "tasks",
            "summary"
        ]
    );
    assert_eq!(l["format"], "neonblue-state/5");
    assert_eq!(l["mode"], "file");
    assert!(l["size_on_disk"].as_u64().unwrap() > 0);
    assert_eq!(
        l["summary"],
        summary(d),
        "the accounting of the checkpoints"
    );
    assert_eq!(l["file"]["committed_lines"], 3000);
    assert_eq!(l["file"]["done"], true);
    assert_eq!(
        l["file"]["committed_bytes"].as_u64().unwrap(),
        std::fs::metadata(d.join("in.jsonl")).unwrap().len()
    );
    let tasks = l["tasks"].as_array().unwrap();
    let names: Vec<&str> = tasks.iter().map(|t| t["task"].as_str().unwrap()).collect();
    assert_eq!(names, ["router", "task-0000", "task-0001"]);
    let emitted: u64 = tasks[1..]
        .iter()
        .map(|t| t["counters"]["events_emitted"].as_u64().unwrap())
        .sum();
    assert_eq!(emitted, summary(d)["events_emitted"].as_u64().unwrap());
    for t in tasks {
        assert_eq!(keys(t), TASK_KEYS);
        assert_eq!(t["checkpointed"], true);
        assert!(t["stream_time"].as_str().unwrap().starts_with("20"));
        assert_eq!(t["unfinished_intent"], serde_json::json!([]));
        assert!(t["state_bytes"].as_u64().unwrap() > 0);
    }
    for t in &tasks[1..] {
        assert_eq!(t["kind"], "join");
        assert_eq!(t["open_windows"], 0, "the end of input closes every window");
        assert_eq!(t["pending_events"], 0);
        assert!(t["dedup_entries"].as_u64().unwrap() > 0);
    }

    // The table says the same to an operator.
    let table = status(&["--state", state.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("file mode"), "{text}");
    assert!(text.contains("line 3000"), "{text}");
    assert!(text.contains("task-0001"), "{text}");

    // Reading changed nothing: the same answer again, and the run is still complete.
    let again = status_json(&["--state", state.to_str().unwrap()]);
    assert_eq!(again["state"]["tasks"], s["state"]["tasks"]);
    assert!(file_run(d).status().unwrap().success());
    assert_eq!(summary(d), l["summary"]);
}

#[test]
fn a_killed_run_shows_a_consistent_checkpoint_and_any_unfinished_intent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate(&d.join("in.jsonl"), 60000);
    let mut child = file_run(d).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !has_file(&d.join("out")) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let state = d.join("state");
    let state_arg = state.to_str().unwrap();
    let busy = status(&["--state", state_arg]);
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(running, "the run finished before it could be killed");
    assert!(!busy.status.success());
    let err = String::from_utf8_lossy(&busy.stderr);
    assert!(
        err.contains("in use by a running instance") && err.contains(state_arg),
        "{err}"
    );

    let s = status_json(&["--state", state_arg]);
    let l = &s["state"];
    let f = &l["file"];
    assert_eq!(f["done"], false, "killed mid-way");
    let lines = f["committed_lines"].as_u64().unwrap();
    assert!(lines < 60000, "{f}");
    assert_eq!(f["checkpointed"], lines > 0);
    assert_eq!(
        l["summary"]["records_in"].as_u64(),
        Some(lines),
        "the checkpoint accounts for exactly the lines it committed"
    );
    let intent: Vec<&str> = l["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["unfinished_intent"].as_array().unwrap())
        .map(|o| o.as_str().unwrap())
        .collect();
    // Objects were published: either a checkpoint covers them, or the
    // commit was cut short and its intent names them.
    assert!(lines > 0 || !intent.is_empty(), "{l}");
    for o in &intent {
        assert!(!o.is_empty());
    }

    // Resumed to the end, the status agrees with the run's summary.
    assert!(file_run(d).status().unwrap().success());
    let s = status_json(&["--state", state_arg]);
    assert_eq!(s["state"]["summary"], summary(d));
    assert_eq!(s["state"]["file"]["done"], true);
}

fn has_file(root: &Path) -> bool {
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                return true;
            }
        }
    }
    false
}

#[test]
fn errors_name_the_directory_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let out = status(&["--state", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nowhere") && err.contains("does not exist"),
        "{err}"
    );

    std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
    let out = status(&["--state", dir.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is not a neonblue state directory"), "{err}");
    assert!(
        !dir.path().join("db").exists(),
        "nothing created in a foreign directory"
    );

    let out = status(&[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_group_run_to_the_end_shows_zero_lag_and_its_committed_offsets() {
    let Some(brokers) = real_broker() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let topic = unique("status-in");
    let app = unique("status-app");
    let st = bin()
        .args(["generate", "--records", "1500", "--seed", "9", "--clean"])
        .args([
            "--topic",
            &topic,
            "--brokers",
            &brokers,
            "--topic-partitions",
            "2",
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let st = bin()
        .args([
            "run",
            "--no-progress",
            "--until-end",
            "--commit-interval",
            "300ms",
        ])
        .args(["--brokers", &brokers, "--app-id", &app, "--topics", &topic])
        .arg("--state")
        .arg(d.join("state"))
        .arg("--output")
        .arg(d.join("out"))
        .arg("--summary")
        .arg(d.join("summary.json"))
        .env("NEONBLUE_LOG", "warn")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());

    let state = d.join("state");
    let s = status_json(&[
        "--brokers",
        &brokers,
        "--app-id",
        &app,
        "--topics",
        &topic,
        "--state",
        state.to_str().unwrap(),
    ]);
    let b = &s["broker"];
    assert_eq!(b["app_id"], app.as_str());
    assert_eq!(b["input_lag"], 0, "{b}");
    assert_eq!(b["repartition_lag"], 0, "{b}");
    let parts = b["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 4, "2 input + 2 repartition partitions");
    let committed_input: i64 = parts
        .iter()
        .filter(|p| p["role"] == "input")
        .map(|p| p["committed"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(committed_input, 1500, "{b}");
    for p in parts {
        assert_eq!(p["lag"], 0, "{p}");
        assert_eq!(
            p["committed"].as_i64().unwrap_or(0),
            p["log_end"].as_i64().unwrap()
        );
    }
    assert_eq!(
        b["summary"],
        summary(d),
        "the checkpoint changelogs' accounting"
    );
    assert_eq!(
        s["state"]["summary"],
        summary(d),
        "the local checkpoints' accounting"
    );
    assert_eq!(s["state"]["mode"], "kafka");
    assert_eq!(s["state"]["app_id"], app.as_str());
    for t in b["tasks"].as_array().unwrap() {
        assert_eq!(keys(t), TASK_KEYS);
        assert_eq!(t["unfinished_intent"], serde_json::json!([]));
    }
    assert!(b["internal_topics"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["present"] == t["partitions"]));

    // While an instance holds the directory, the broker still answers.
    let held = neonblue_state::StateDb::open(&state, 8 << 20).unwrap();
    let s = status_json(&[
        "--brokers",
        &brokers,
        "--app-id",
        &app,
        "--topics",
        &topic,
        "--state",
        state.to_str().unwrap(),
    ]);
    drop(held);
    assert!(s["state"].is_null());
    assert!(s["state_error"]
        .as_str()
        .unwrap()
        .contains("in use by a running instance"));
    assert_eq!(s["broker"]["input_lag"], 0);
}

#[test]
fn unreachable_brokers_fail_within_seconds() {
    let started = Instant::now();
    let out = status(&["--brokers", "127.0.0.1:1", "--app-id", "a", "--topics", "t"]);
    assert_eq!(out.status.code(), Some(3), "a dependency is unreachable");
    assert!(started.elapsed() < Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect to the brokers at 127.0.0.1:1"),
        "{err}"
    );
}
