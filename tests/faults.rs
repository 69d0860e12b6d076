//! Faults on the real services (issue 14 §3): a ClickHouse server stopped in
//! the middle of a run and started again, an S3 endpoint that goes away and
//! comes back, an output root that fills up (or turns read-only), and a
//! corrupted or foreign state directory. Each run that goes through a fault
//! ends with the same outputs as an uninterrupted run of the same input.
//!
//! The runs read their input from a named pipe, so the test decides when
//! the fault strikes: after the first commits, before the rest of the input.
//! ClickHouse tests need `NEONBLUE_TEST_CLICKHOUSE` (they start a server of
//! their own on other ports, with `scripts/services/clickhouse.sh`), S3 tests
//! `NEONBLUE_TEST_S3_ENDPOINT`; without them they are skipped, unless
//! `NEONBLUE_REQUIRE_SERVICES=1`.

mod common;

use common::{aws_env, create_bucket, free_port};

use neonblue::sink::OutputRoot;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_neonblue");
const RECORDS: u64 = 4000;
const CHECKPOINT_RECORDS: &str = "200";

/// The service's URL from `var`, or `None` (test skipped, reason printed).
fn service(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(u) if !u.trim().is_empty() => Some(u.trim().trim_end_matches('/').to_string()),
        _ => {
            assert!(
                std::env::var("NEONBLUE_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "{test}: NEONBLUE_REQUIRE_SERVICES=1 but {var} is not set"
            );
            eprintln!("{test}: skipped, {var} is not set (scripts/test.sh sets it)");
            None
        }
    }
}

/// `neonblue run` of `input` in file mode; every `NEONBLUE_*`/`AWS_*`
/// variable of the test's environment removed.
fn run_cmd(input: &Path, state: &Path, output: &str, extra: &[&str]) -> Command {
    run_cmd_every(CHECKPOINT_RECORDS, input, state, output, extra)
}

/// [`run_cmd`] with a checkpoint every `checkpoint_records` lines.
fn run_cmd_every(
    checkpoint_records: &str,
    input: &Path,
    state: &Path,
    output: &str,
    extra: &[&str],
) -> Command {
    let mut c = Command::new(BIN);
    c.args(["run", "--no-progress", "--now", "2100-01-01T00:00:00Z"])
        .args(["--checkpoint-records", checkpoint_records])
        .arg("--input")
        .arg(input)
        .arg("--state")
        .arg(state)
        .args(["--output", output])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("NEONBLUE_") || k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.env("NEONBLUE_LOG", "warn");
    c
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn run_ok(mut c: Command) {
    let o = c.output().unwrap();
    assert!(o.status.success(), "neonblue run failed: {}", stderr_of(&o));
}

/// A generated input file `dir/in.jsonl` (the name fixes the default topic).
fn generate(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let input = dir.join("in.jsonl");
    let st = Command::new(BIN)
        .args(["generate", "--records", &RECORDS.to_string(), "--seed", "9"])
        .arg("--output")
        .arg(&input)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "generate");
    input
}

/// A named pipe `dir/in.jsonl` carrying `input` in two parts: the first
/// `first` of its lines at once, the rest when `release` is called.
struct Pipe {
    path: PathBuf,
    rest: Option<std::sync::mpsc::Sender<()>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Pipe {
    fn new(dir: &Path, input: &Path, first: f64) -> Pipe {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("in.jsonl");
        let st = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(st.success(), "mkfifo");
        let text = std::fs::read_to_string(input).unwrap();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let cut = (lines.len() as f64 * first) as usize;
        let (head, tail) = (lines[..cut].concat(), lines[cut..].concat());
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let p = path.clone();
        let writer = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.write_all(head.as_bytes()).unwrap();
            f.flush().unwrap();
            if rx.recv().is_ok() {
                // The reader may have stopped on an error: a broken pipe is its business.
                let _ = f.write_all(tail.as_bytes());
            }
        });
        Pipe {
            path,
            rest: Some(tx),
            writer: Some(writer),
        }
    }

    /// Sends the rest of the input and closes the pipe (end of input).
    fn release(&mut self) {
        if let Some(tx) = self.rest.take() {
            tx.send(()).unwrap();
        }
    }

    fn finish(&mut self) {
        self.release();
        if let Some(w) = self.writer.take() {
            w.join().unwrap();
        }
    }
}

/// Waits until `ready` holds (polling), panicking after `limit`.
fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The child's output once it exits (it must, within two minutes).
fn wait_child(mut child: Child, what: &str) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{what}: still running after 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Every object under an output root: name → bytes.
fn objects(root: &OutputRoot) -> BTreeMap<String, Vec<u8>> {
    common::block(async {
        let mut out = BTreeMap::new();
        for meta in root.list("").await.unwrap() {
            let bytes = root.get(&meta.location).await.unwrap();
            out.insert(meta.location.to_string(), bytes.to_vec());
        }
        out
    })
}

/// Both roots hold the same objects, byte for byte.
fn assert_same_objects(expected: &OutputRoot, got: &OutputRoot) {
    let (e, g) = (objects(expected), objects(got));
    assert!(e.keys().any(|k| k.starts_with("events/")), "no events");
    assert_eq!(
        g.keys().collect::<Vec<_>>(),
        e.keys().collect::<Vec<_>>(),
        "object names of {got} vs {expected}"
    );
    for (k, v) in &e {
        assert!(g[k] == *v, "{k} differs between {got} and {expected}");
    }
}

// ---------------------------------------------------------------- ClickHouse

/// A ClickHouse server of this test's own (its directory and ports).
struct OwnClickHouse {
    dir: PathBuf,
    http: u16,
    tcp: u16,
}

impl OwnClickHouse {
    fn script(&self, action: &str) -> Output {
        Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/services/clickhouse.sh"
        ))
        .args([action, &self.http.to_string()])
        .env("CLICKHOUSE_DIR", &self.dir)
        .env("CLICKHOUSE_TCP_PORT", self.tcp.to_string())
        .output()
        .unwrap()
    }

    fn start(&self) {
        let o = self.script("start");
        assert!(o.status.success(), "clickhouse start: {}", stderr_of(&o));
    }

    /// Stops the server and waits until it is gone: SIGTERM, then SIGKILL
    /// when it takes more than 20 s (a loaded machine).
    fn stop(&self) {
        let pid = std::fs::read_to_string(self.dir.join("clickhouse.pid")).unwrap();
        let pid = pid.trim().to_string();
        let alive = || {
            Command::new("kill")
                .args(["-0", &pid])
                .status()
                .unwrap()
                .success()
        };
        let _ = Command::new("kill").arg(&pid).status();
        let start = Instant::now();
        while alive() && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(100));
        }
        if alive() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            wait_for("ClickHouse to die", Duration::from_secs(30), || !alive());
        }
        let _ = std::fs::remove_file(self.dir.join("clickhouse.pid"));
        assert!(
            TcpStream::connect(("127.0.0.1", self.http)).is_err(),
            "ClickHouse still answers"
        );
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }
}

impl Drop for OwnClickHouse {
    fn drop(&mut self) {
        let _ = self.script("stop");
    }
}

fn sql(url: &str, db: &str, q: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", &format!("{url}/?database={db}")])
        .args(["--data-binary", q])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{q}: {text}");
    text
}

/// Every table's rows (FINAL), sorted.
fn clickhouse_rows(url: &str, db: &str) -> BTreeMap<&'static str, Vec<String>> {
    [
        "events_processed",
        "agg_hourly",
        "agg_daily",
        "user_journeys",
    ]
    .into_iter()
    .map(|t| {
        let text = sql(
            url,
            db,
            &format!("SELECT * FROM {t} FINAL FORMAT TabSeparated"),
        );
        let mut rows: Vec<String> = text.lines().map(str::to_string).collect();
        rows.sort();
        (t, rows)
    })
    .collect()
}

#[test]
fn clickhouse_stopped_mid_run_then_restarted_gives_the_rows_of_an_uninterrupted_run() {
    let test = "clickhouse_stopped_mid_run";
    if service("NEONBLUE_TEST_CLICKHOUSE", test).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ch = OwnClickHouse {
        dir: dir.path().join("clickhouse"),
        http: free_port(),
        tcp: free_port(),
    };
    ch.start();
    let url = ch.url();
    for db in ["steady", "stopped"] {
        let o = Command::new(BIN)
            .args(["schema", "apply", "--clickhouse-url", &url])
            .args(["--clickhouse-database", db])
            .output()
            .unwrap();
        assert!(o.status.success(), "schema apply: {}", stderr_of(&o));
    }
    let input = generate(&dir.path().join("gen"));
    let clickhouse = |db: &'static str| {
        vec![
            "--clickhouse-url".to_string(),
            url.clone(),
            "--clickhouse-database".to_string(),
            db.to_string(),
        ]
    };
    let args = clickhouse("steady");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let steady = dir.path().join("steady");
    run_ok(run_cmd(
        &input,
        &steady.join("state"),
        &steady.join("out").display().to_string(),
        &args,
    ));

    let stopped = dir.path().join("stopped");
    let mut pipe = Pipe::new(&stopped.join("pipe"), &input, 0.4);
    let args = clickhouse("stopped");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = run_cmd(
        &pipe.path,
        &stopped.join("state"),
        &stopped.join("out").display().to_string(),
        &args,
    );
    // Retries often enough to see the server come back within a second.
    cmd.env("NEONBLUE_CLICKHOUSE__RETRY_INITIAL", "100ms")
        .env("NEONBLUE_CLICKHOUSE__RETRY_MAX", "1s")
        .env("NEONBLUE_CLICKHOUSE__MAX_RETRIES", "60")
        .env("NEONBLUE_LOG", "info");
    let mut child = cmd.spawn().unwrap();
    let count = || {
        sql(
            &url,
            "stopped",
            "SELECT count() FROM events_processed FORMAT TabSeparated",
        )
        .trim()
        .parse::<u64>()
        .unwrap()
    };
    wait_for(
        "the first rows in ClickHouse",
        Duration::from_secs(60),
        || count() > 0,
    );
    ch.stop();
    pipe.release();
    std::thread::sleep(Duration::from_secs(5));
    if child.try_wait().unwrap().is_some() {
        let out = wait_child(child, "run through a ClickHouse outage");
        panic!("the run did not wait for ClickHouse: {}", stderr_of(&out));
    }
    ch.start();
    pipe.finish();
    let out = wait_child(child, "run through a ClickHouse outage");
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("ClickHouse request failed; retrying"), "{err}");
    assert_eq!(
        clickhouse_rows(&url, "stopped"),
        clickhouse_rows(&url, "steady")
    );
    assert_same_objects(
        &common::root(&steady.join("out").display().to_string()),
        &common::root(&stopped.join("out").display().to_string()),
    );
}

// ------------------------------------------------------------------------ S3

/// A TCP proxy to `upstream` that goes away (its port closed, its
/// connections cut) once `cut_after` bytes went upstream, and comes back on
/// the same port `outage` later: a fault at a reproducible point of a run.
struct Switch {
    port: u16,
    cut: Arc<AtomicBool>,
}

impl Switch {
    fn new(upstream: &str, cut_after: u64, outage: Duration) -> Switch {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (flag, was_cut) = (up.clone(), cut.clone());
        std::thread::spawn(move || {
            let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
            let mut listener = Some(listener);
            loop {
                match (&listener, flag.load(Ordering::SeqCst)) {
                    (Some(_), false) => {
                        listener = None;
                        for c in live.lock().unwrap().drain(..) {
                            let _ = c.shutdown(Shutdown::Both);
                        }
                    }
                    (None, true) => {
                        listener = Some(TcpListener::bind(("127.0.0.1", port)).unwrap());
                    }
                    _ => {}
                }
                let Some(l) = &listener else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                l.set_nonblocking(true).unwrap();
                let Ok((client, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                live.lock().unwrap().push(client.try_clone().unwrap());
                live.lock().unwrap().push(server.try_clone().unwrap());
                for (mut from, mut to, upstream_bound) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        true,
                    ),
                    (server, client, false),
                ] {
                    let (sent, up, cut) = (sent.clone(), flag.clone(), was_cut.clone());
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            if upstream_bound
                                && sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64
                                    >= cut_after
                                && !cut.swap(true, Ordering::SeqCst)
                            {
                                up.store(false, Ordering::SeqCst);
                                let up = up.clone();
                                std::thread::spawn(move || {
                                    std::thread::sleep(outage);
                                    up.store(true, Ordering::SeqCst);
                                });
                            }
                        }
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Switch { port, cut }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Runs the input into S3 through an endpoint that goes away for 4 s once a
/// third of the outputs went up, with `retries` as `[output] max_retries`;
/// `then` gets the run's output and a closure running it again. Ends by
/// comparing the bucket with an uninterrupted local run, object for object.
fn s3_outage(
    test: &str,
    retries: Option<&str>,
    then: impl FnOnce(Output, &dyn Fn() -> Output, &str),
) {
    let Some(s3) = service("NEONBLUE_TEST_S3_ENDPOINT", test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = generate(&dir.path().join("gen"));
    let steady = dir.path().join("steady");
    run_ok(run_cmd(
        &input,
        &steady.join("state"),
        &steady.join("out").display().to_string(),
        &[],
    ));
    let switch = Switch::new(&s3, du(&steady.join("out")) / 3, Duration::from_secs(4));
    let bucket = format!("nb-faults-{}-{}", std::process::id(), free_port());
    create_bucket(&s3, &bucket);
    let url = format!("s3://{bucket}/out");
    let state = dir.path().join("away/state");
    let run = || {
        let mut cmd = run_cmd(&input, &state, &url, &[]);
        cmd.envs(aws_env(&switch.endpoint()));
        if let Some(n) = retries {
            cmd.env("NEONBLUE_OUTPUT__MAX_RETRIES", n);
        }
        cmd.output().unwrap()
    };
    let out = run();
    assert!(
        switch.cut.load(Ordering::SeqCst),
        "the endpoint never went away"
    );
    then(out, &run, &bucket);
    let root = OutputRoot::open_with(&url, aws_env(&s3)).unwrap();
    assert_same_objects(
        &common::root(&steady.join("out").display().to_string()),
        &root,
    );
}

/// A run stopped by an S3 outage named the bucket or the endpoint, and a
/// restart once the endpoint is back completes it.
fn stopped_clearly_then_restart_completes(out: &Output, run: &dyn Fn() -> Output, bucket: &str) {
    let err = stderr_of(out);
    assert!(
        err.contains(bucket) || err.contains("127.0.0.1"),
        "an unclear error: {err}"
    );
    std::thread::sleep(Duration::from_secs(5));
    let again = run();
    assert!(again.status.success(), "restart: {}", stderr_of(&again));
}

#[test]
fn an_s3_endpoint_that_goes_away_for_seconds_loses_and_doubles_nothing() {
    // The default retries: the 3-minute bound, not their count, ends them.
    s3_outage("s3_endpoint_goes_away", None, |out, _, _| {
        assert!(
            out.status.success(),
            "the run did not wait a 4 s outage out: {}",
            stderr_of(&out)
        );
    });
}

#[test]
fn an_s3_outage_longer_than_the_retries_stops_the_run_clearly_and_a_restart_completes_it() {
    s3_outage(
        "s3_outage_outlasts_retries",
        Some("0"),
        |out, run, bucket| {
            assert!(!out.status.success(), "the run did not notice the outage");
            stopped_clearly_then_restart_completes(&out, run, bucket);
        },
    );
}

// --------------------------------------------------------------- output root

/// Total bytes of the files under `dir`.
fn du(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() { du(&e.path()) } else { m.len() };
    }
    n
}

fn mount_tmpfs(dir: &Path, bytes: u64, remount: bool) -> bool {
    let opts = format!("{}size={}", if remount { "remount," } else { "" }, bytes);
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

#[test]
fn an_output_root_that_fills_up_stops_the_run_clearly_and_a_restart_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(&dir.path().join("gen"));
    let steady = dir.path().join("steady");
    run_ok(run_cmd(
        &input,
        &steady.join("state"),
        &steady.join("out").display().to_string(),
        &[],
    ));
    let total = du(&steady.join("out"));

    let full = dir.path().join("full");
    let out = full.join("out");
    std::fs::create_dir_all(&out).unwrap();
    // Root (as in CI) ignores permissions: a filesystem too small for the
    // outputs instead. Otherwise a read-only root.
    let _unmount;
    let o = if is_root() {
        if !mount_tmpfs(&out, total / 2, false) {
            eprintln!("output_root_fills_up: skipped, cannot mount a tmpfs here");
            return;
        }
        _unmount = Unmount(out.clone());
        run_cmd(&input, &full.join("state"), &out.display().to_string(), &[])
            .output()
            .unwrap()
    } else {
        let st = Command::new("chmod").arg("a-w").arg(&out).status();
        assert!(st.unwrap().success());
        run_cmd(&input, &full.join("state"), &out.display().to_string(), &[])
            .output()
            .unwrap()
    };
    let err = stderr_of(&o);
    assert!(!o.status.success(), "the run did not notice: {err}");
    assert!(
        err.contains("No space left on device") || err.contains("ermission denied"),
        "an unclear error: {err}"
    );
    assert!(
        err.contains(&out.display().to_string()),
        "the error names no path: {err}"
    );
    // Nothing committed past the failure: every object there is one of the
    // uninterrupted run's, the same bytes.
    let steady_root = common::root(&steady.join("out").display().to_string());
    let expected = objects(&steady_root);
    for (name, bytes) in objects(&common::root(&out.display().to_string())) {
        assert!(
            expected.get(&name) == Some(&bytes),
            "{name} is not the uninterrupted run's"
        );
    }

    // The fix: room (or permission) again; the restart completes identically.
    if is_root() {
        assert!(mount_tmpfs(&out, total * 4 + (1 << 20), true), "remount");
    } else {
        let st = Command::new("chmod").arg("u+w").arg(&out).status();
        assert!(st.unwrap().success());
    }
    run_ok(run_cmd(
        &input,
        &full.join("state"),
        &out.display().to_string(),
        &[],
    ));
    assert_same_objects(&steady_root, &common::root(&out.display().to_string()));
}

/// A state directory on a small disk: 60,000 records in segments of 20,000
/// lines (large batches: the sled hang followed one failing part way) with
/// `[state] min_free_bytes = min_free`, and the state and outputs of its
/// uninterrupted run.
struct SmallStateDisk {
    dir: tempfile::TempDir,
    input: PathBuf,
    min_free: u64,
    /// Bytes of the uninterrupted run's state.
    total: u64,
    expected: OutputRoot,
}

impl SmallStateDisk {
    fn new(min_free: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("gen.jsonl");
        let st = Command::new(BIN)
            .args(["generate", "--records", "60000", "--seed", "13", "--output"])
            .arg(&input)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let mut case = SmallStateDisk {
            input,
            min_free,
            total: 0,
            expected: common::root(&dir.path().join("steady/out").display().to_string()),
            dir,
        };
        let steady = case.dir.path().join("steady");
        run_ok(case.run(
            &steady.join("state"),
            &steady.join("out").display().to_string(),
        ));
        case.total = du(&steady.join("state"));
        case
    }

    fn run(&self, state: &Path, out: &str) -> Command {
        let mut c = run_cmd_every("20000", &self.input, state, out, &["--partitions", "2"]);
        c.env("NEONBLUE_STATE__MIN_FREE_BYTES", self.min_free.to_string());
        c
    }

    /// Run `i` with its state on a tmpfs of `size` bytes: its output, state
    /// directory (mounted while the guard lives) and output root; `None`
    /// when no tmpfs can be mounted here.
    fn run_on_tmpfs(&self, i: usize, size: u64) -> Option<(Output, PathBuf, String, Unmount)> {
        let state = self.dir.path().join(format!("full-{i}"));
        std::fs::create_dir_all(&state).unwrap();
        if !mount_tmpfs(&state, size, false) {
            eprintln!("small state disk: skipped, cannot mount a tmpfs here");
            return None;
        }
        let unmount = Unmount(state.clone());
        let out = self
            .dir
            .path()
            .join(format!("out-{i}"))
            .display()
            .to_string();
        let child = self.run(&state, &out).spawn().unwrap();
        let what = format!("a run with {size} bytes for {} of state", self.total);
        Some((wait_child(child, &what), state, out, unmount))
    }

    /// Room again on the tmpfs of `state`.
    fn make_room(&self, state: &Path) {
        assert!(
            mount_tmpfs(state, self.total * 4 + (8 << 20), true),
            "remount"
        );
    }
}

#[test]
fn a_state_directory_that_fills_up_stops_the_run_clearly_and_a_fresh_state_completes_it() {
    // sled 0.34, once a write failed for want of room, waited forever in
    // the flush it does when its last handle is dropped: the run hung
    // instead of reporting the error. (And the failed batch may survive in
    // part: the state directory is not trusted after it, see the README's
    // known limits.)
    if !is_root() {
        eprintln!("state_directory_fills_up: skipped, mounting a tmpfs needs root");
        return;
    }
    // Without the free-space check (the next test): sled meets the full disk.
    let case = SmallStateDisk::new(0);
    let total = case.total;
    // Where the disk fills up decides whether sled hung: several sizes.
    for (i, size) in [total / 3, total / 2, total * 2 / 3]
        .into_iter()
        .enumerate()
    {
        let Some((o, state, out, _unmount)) = case.run_on_tmpfs(i, size) else {
            return;
        };
        let err = stderr_of(&o);
        assert!(!o.status.success(), "the run did not notice: {err}");
        assert!(
            err.contains("state database") && err.contains("No space left on device"),
            "an unclear error: {err}"
        );
        // Room again and a fresh state directory: the run completes, with the
        // uninterrupted run's outputs.
        case.make_room(&state);
        for e in std::fs::read_dir(&state).unwrap().flatten() {
            let p = e.path();
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
        run_ok(case.run(&state, &out));
        assert_same_objects(&case.expected, &common::root(&out));
    }
}

#[test]
fn a_commit_that_would_fill_the_state_disk_is_refused_before_writing_and_a_restart_completes_it() {
    if !is_root() {
        eprintln!("state_disk_free_space: skipped, mounting a tmpfs needs root");
        return;
    }
    let case = SmallStateDisk::new(1 << 20);
    let total = case.total;
    let mut refused = 0;
    for (i, size) in [total / 2, total * 3 / 4, total, total * 3 / 2]
        .into_iter()
        .enumerate()
    {
        let Some((o, state, out, _unmount)) = case.run_on_tmpfs(i, size) else {
            return;
        };
        if !o.status.success() {
            let err = stderr_of(&o);
            assert!(
                err.contains("nothing of it was written: make room"),
                "not the free-space refusal: {err}"
            );
            refused += 1;
            // Room again: the restart on the same state completes exactly.
            case.make_room(&state);
            run_ok(case.run(&state, &out));
        }
        assert_same_objects(&case.expected, &common::root(&out));
    }
    assert!(refused > 0, "no size made a commit wait for room");
}

// ----------------------------------------------------------- state directory

/// A completed run's state directory, and its input.
fn finished_state(dir: &Path) -> (PathBuf, PathBuf) {
    let input = generate(&dir.join("gen"));
    let state = dir.join("state");
    run_ok(run_cmd(
        &input,
        &state,
        &dir.join("out").display().to_string(),
        &[],
    ));
    (input, state)
}

/// A run on `state` fails with a clear error naming the directory.
fn assert_refused(input: &Path, state: &Path, out: &Path, what: &str) -> String {
    let o = run_cmd(input, state, &out.display().to_string(), &[])
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert!(!o.status.success(), "{what}: the state was reused: {err}");
    assert!(!err.contains("panicked"), "{what}: a panic: {err}");
    assert!(
        err.contains(&state.display().to_string()),
        "{what}: the error does not name {}: {err}",
        state.display()
    );
    eprintln!("{what}: refused: {err}");
    err
}

/// Bytes that are no sled log.
fn garbage(len: usize) -> Vec<u8> {
    (0..len.max(64)).map(|i| (i * 7919 % 251) as u8).collect()
}

#[test]
fn a_corrupted_state_directory_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (input, state) = finished_state(dir.path());
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 3] = [
        ("garbage over every file", |d| {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                if e.file_type().unwrap().is_file() {
                    let len = e.metadata().unwrap().len() as usize;
                    std::fs::write(e.path(), garbage(len)).unwrap();
                }
            }
        }),
        ("garbage over the log", |d| {
            let len = std::fs::metadata(d.join("db")).unwrap().len() as usize;
            std::fs::write(d.join("db"), garbage(len)).unwrap();
        }),
        ("the log truncated", |d| {
            let f = std::fs::OpenOptions::new().write(true).open(d.join("db"));
            let f = f.unwrap();
            f.set_len(f.metadata().unwrap().len() / 3).unwrap();
        }),
    ];
    for (i, (what, damage)) in damages.into_iter().enumerate() {
        let copy = dir.path().join(format!("damaged-{i}"));
        let st = Command::new("cp").arg("-a").arg(&state).arg(&copy).status();
        assert!(st.unwrap().success());
        damage(&copy);
        assert_refused(&input, &copy, &dir.path().join(format!("out-{i}")), what);
    }
}

#[test]
fn a_foreign_state_directory_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (input, state) = finished_state(dir.path());

    // Another input's state.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(&input, other.join("other.jsonl")).unwrap();
    let err = assert_refused(
        &other.join("other.jsonl"),
        &state,
        &dir.path().join("out2"),
        "another input",
    );
    assert!(err.contains("belongs to another job"), "{err}");

    // Another format version.
    {
        let db = neonblue_state::StateDb::open(&state, 1 << 20).unwrap();
        db.put_meta_durable("format", Some(b"neonblue-state/999"))
            .unwrap();
    }
    let err = assert_refused(&input, &state, &dir.path().join("out3"), "another format");
    assert!(err.contains("neonblue-state/999"), "{err}");
}
