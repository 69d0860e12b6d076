//! Effectively-once in file mode (SPEC 7): SIGKILL `neonblue run` at random
//! moments, start it again with the same input, state and output, and the
//! final outputs must equal those of an uninterrupted run, byte for byte.
//! With a tiny state cache (SPEC 9.1: eviction, re-reads and early commits
//! all the time) the rows equal those of a run with the default cache.

mod common;
mod kafka_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_neonblue");

fn generate(path: &Path, records: u64) {
    let st = Command::new(BIN)
        .args([
            "generate",
            "--records",
            &records.to_string(),
            "--seed",
            "7",
            "--output",
        ])
        .arg(path)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
}

fn run_cmd(input: &Path, dir: &Path, partitions: u32) -> Command {
    run_cmd_with(input, dir, partitions, &[])
}

fn run_cmd_with(input: &Path, dir: &Path, partitions: u32, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("run")
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(dir.join("output"))
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--summary")
        .arg(dir.join("summary.json"))
        .args([
            "--partitions",
            &partitions.to_string(),
            "--checkpoint-records",
            "3000",
            "--now",
            "2100-01-01T00:00:00Z",
            "--no-progress",
        ])
        .args(extra)
        .env("NEONBLUE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Every file under `root`, relative path → bytes.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
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

fn kill_and_restart(partitions: u32, seed: u64) {
    kill_and_restart_with(partitions, seed, &[]);
}

/// A 256 KiB cache for the state of a 40,000-record stream.
const TINY_CACHE: [&str; 2] = ["--state-cache-bytes", "262144"];

fn kill_and_restart_with(partitions: u32, seed: u64, crashed_args: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("cdc.jsonl");
    generate(&input, 40_000);

    let reference = work.path().join("reference");
    let started = Instant::now();
    assert!(run_cmd(&input, &reference, partitions)
        .status()
        .unwrap()
        .success());
    let full = started.elapsed();
    let expected = tree(&reference.join("output"));
    let expected_summary = std::fs::read_to_string(reference.join("summary.json")).unwrap();
    assert!(expected.keys().any(|k| k.starts_with("events/")));

    let crashed = work.path().join("crashed");
    let mut rng = Rng(seed);
    // Kill after a random part of a quarter of the full run time, again and
    // again, until a run gets to finish by itself. Run times vary with the
    // load of the machine: when a run finishes before three kills landed,
    // start again from nothing with delays half as long.
    let mut max_delay = (full.as_micros() as u64 / 4).max(1000);
    let mut kills = 0;
    for _attempt in 0..6 {
        kills = 0;
        let _ = std::fs::remove_dir_all(&crashed);
        for _ in 0..40 {
            let mut child = run_cmd_with(&input, &crashed, partitions, crashed_args)
                .spawn()
                .unwrap();
            let delay = Duration::from_micros(rng.next() % max_delay);
            std::thread::sleep(delay);
            if child.try_wait().unwrap().is_some() {
                break;
            }
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
        }
        if kills >= 3 {
            break;
        }
        max_delay = (max_delay / 2).max(1000);
    }
    assert!(kills >= 3, "only {kills} kills landed");
    let last = run_cmd_with(&input, &crashed, partitions, crashed_args)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        last.status.success(),
        "final run after {kills} kills: {}",
        String::from_utf8_lossy(&last.stderr)
    );
    let got_summary = std::fs::read_to_string(crashed.join("summary.json")).unwrap();
    assert_eq!(got_summary, expected_summary);
    if !crashed_args.is_empty() {
        // Early commits cut segments elsewhere: the same rows, in more objects.
        let got = tree(&crashed.join("output"));
        assert!(
            got.len() > expected.len(),
            "no early commit with a tiny cache ({} objects)",
            got.len()
        );
        kafka_support::assert_same(
            &kafka_support::outputs(&reference.join("output")),
            &kafka_support::outputs(&crashed.join("output")),
            "tiny cache with SIGKILLs",
        );
        eprintln!(
            "partitions={partitions}, tiny cache: {kills} SIGKILLs, rows identical ({} objects vs {})",
            got.len(),
            expected.len()
        );
        return;
    }
    let got = tree(&crashed.join("output"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "object names after {kills} kills"
    );
    for (k, v) in &expected {
        assert!(got[k] == *v, "{k} differs after {kills} kills");
    }
    eprintln!(
        "partitions={partitions}: {kills} SIGKILLs, outputs identical ({} objects)",
        got.len()
    );
}

#[test]
fn sigkill_at_random_points_one_partition() {
    kill_and_restart(1, 0x9E37_79B9_7F4A_7C15);
}

#[test]
fn sigkill_at_random_points_two_partitions() {
    kill_and_restart(2, 0xD1B5_4A32_D192_ED03);
}

#[test]
fn sigkill_with_a_tiny_cache_gives_the_rows_of_the_default_cache() {
    kill_and_restart_with(2, 0x2545_F491_4F6C_DD1D, &TINY_CACHE);
}
