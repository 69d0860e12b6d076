//! Helpers shared by integration tests.
#![allow(dead_code)]

use neonblue::config::{Config, Layout};
use neonblue::domain::Summary;
use neonblue::drivers::file::{run_file, FileRun};
use std::path::{Path, PathBuf};

/// Formats UTC microseconds as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn fmt_micros(us: i64) -> String {
    neonblue::time::format_iso(us)
}

/// Formats the date part of UTC microseconds.
pub fn fmt_date(us: i64) -> String {
    fmt_micros(us)[..10].to_string()
}

/// Path of a fixture file.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Runs file mode on `input` into `dir/{state,output}`.
pub fn run_into(
    input: &Path,
    dir: &Path,
    layout: Layout,
    partitions: u32,
    checkpoint_records: u64,
) -> Summary {
    let mut config = Config::default();
    config.source.layout = layout;
    config.processing.partitions = partitions;
    config.processing.checkpoint_records = checkpoint_records;
    config.processing.state_dir = dir.join("state");
    config.output.url = dir.join("output").display().to_string();
    let run = FileRun {
        input: input.to_path_buf(),
        config,
        now: 4_102_444_800_000_000, // 2100-01-01
        progress: false,
    };
    run_file(&run).expect("run_file")
}

/// Runs a future to completion.
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Opens an output root.
pub fn root(url: &str) -> neonblue::sink::OutputRoot {
    neonblue::sink::OutputRoot::open(url).unwrap()
}

// ------------------------------------------------------------------------ S3

/// The standard AWS variables pointing at an S3 test endpoint (moto on
/// loopback, `scripts/services/s3.sh`), as `neonblue` reads them.
pub fn aws_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "neonblue-test"),
        ("AWS_SECRET_ACCESS_KEY", "neonblue-test-secret"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ALLOW_HTTP", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A fresh bucket name (3–63 characters of `[a-z0-9-]`).
pub fn fresh_bucket(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "nb-{tag}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

/// Creates a bucket with a plain unsigned `PUT /<bucket>` (enough for moto).
pub fn create_bucket(endpoint: &str, bucket: &str) {
    use std::io::{Read, Write};
    let url = url::Url::parse(endpoint).unwrap();
    let host = url.host_str().unwrap();
    let port = url.port_or_known_default().unwrap();
    let mut s = std::net::TcpStream::connect((host, port))
        .unwrap_or_else(|e| panic!("cannot connect to the S3 endpoint {endpoint}: {e}"));
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.lines().next().unwrap_or_default();
    assert!(
        status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200"),
        "creating bucket {bucket}: {resp}"
    );
}

/// A TCP proxy to `upstream` (`host:port` or `http://host:port`) that holds
/// everything the client sends for `delay` before passing it on: a distant
/// endpoint, where every request takes a round trip of at least `delay`.
pub struct SlowLink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SlowLink {
    /// Listens on a free loopback port, for as long as the test runs.
    pub fn new(upstream: &str, delay: std::time::Duration) -> SlowLink {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let holding = held.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let pipe = |mut from: TcpStream, mut to: TcpStream, hold: bool| {
                    let held = holding.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 65536];
                        while let Ok(n) = from.read(&mut buf) {
                            if hold && n > 0 {
                                held.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(delay);
                                held.fetch_sub(1, Ordering::SeqCst);
                            }
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                };
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    true,
                );
                pipe(server, client, false);
            }
        });
        SlowLink { port, held }
    }

    /// Its address as an HTTP endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// True while it holds a request back (one is on its way upstream).
    pub fn holding(&self) -> bool {
        self.held.load(std::sync::atomic::Ordering::SeqCst) > 0
    }
}

/// The S3 test endpoint (`NEONBLUE_TEST_S3_ENDPOINT`), or `None` (test
/// skipped) when not configured, unless `NEONBLUE_REQUIRE_SERVICES=1`.
pub fn s3_endpoint(test: &str) -> Option<String> {
    match std::env::var("NEONBLUE_TEST_S3_ENDPOINT") {
        Ok(e) if !e.trim().is_empty() => Some(e.trim().trim_end_matches('/').to_string()),
        _ => {
            if std::env::var("NEONBLUE_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("{test}: NEONBLUE_REQUIRE_SERVICES=1 but NEONBLUE_TEST_S3_ENDPOINT is unset (scripts/services/s3.sh start)");
            }
            eprintln!(
                "{test}: skipped, set NEONBLUE_TEST_S3_ENDPOINT (scripts/services/s3.sh start)"
            );
            None
        }
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` from `addr`: the whole HTTP response.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
