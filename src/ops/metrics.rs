//! Metrics recorder (Prometheus text format) and a minimal HTTP endpoint.
//!
//! Metric names (all prefixed `neonblue_`): `records_total{stage}`,
//! `skipped_total{reason}`, `dead_letters_total`, `late_events_total`,
//! `duplicates_total`, `pending_events`, `open_windows`, `consumer_lag{topic,partition}`,
//! `restore_records_total`, `restoring_tasks`, `commit_seconds` (histogram),
//! `commits_total`, `state_size_bytes`, `tasks{kind}`.

use anyhow::{Context, Result};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Liveness of the processing loop, read by `/healthz`.
#[derive(Clone, Default)]
pub struct Health {
    beat_ms: Arc<AtomicU64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Health {
    /// Marks the loop alive now.
    pub fn beat(&self) {
        self.beat_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// True when the loop beat within `max_age` (and has started).
    pub fn is_healthy(&self, max_age: Duration) -> bool {
        let b = self.beat_ms.load(Ordering::Relaxed);
        b > 0 && now_ms().saturating_sub(b) <= max_age.as_millis() as u64
    }
}

/// Set once SIGTERM or SIGINT arrives: finish the current step, commit, leave.
#[derive(Clone, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
}

impl Shutdown {
    /// True once a shutdown was requested.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Requests a shutdown.
    pub fn request(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }
}

/// Buckets of `commit_seconds`.
const COMMIT_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Installs the Prometheus recorder (once per process) and returns its handle.
pub fn install_recorder() -> Result<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("neonblue_commit_seconds".into()),
            &COMMIT_BUCKETS,
        )
        .context("metric buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Starts, on a background runtime thread, the signal handler and (when
/// `addr` is set) the HTTP endpoint: `GET /metrics` (Prometheus text) and
/// `GET /healthz` (200 while the loop beat in the last 60 s, else 503).
pub fn serve(addr: Option<&str>, health: Health, shutdown: Shutdown) -> Result<()> {
    let handle = install_recorder()?;
    let listener = match addr {
        Some(a) => {
            let l = std::net::TcpListener::bind(a)
                .with_context(|| format!("cannot listen on metrics address {a}"))?;
            l.set_nonblocking(true)?;
            tracing::info!(addr = %l.local_addr()?, "serving /metrics and /healthz");
            Some(l)
        }
        None => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("neonblue-ops".into())
        .spawn(move || {
            rt.block_on(async move {
                let signals = tokio::spawn(wait_for_signal(shutdown));
                if let Some(l) = listener {
                    match tokio::net::TcpListener::from_std(l) {
                        Ok(l) => accept_loop(l, handle, health).await,
                        Err(e) => tracing::error!(error = %e, "metrics listener failed"),
                    }
                }
                let _ = signals.await;
            })
        })?;
    Ok(())
}

async fn wait_for_signal(shutdown: Shutdown) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        if shutdown.requested() {
            tracing::warn!("second signal: exiting without a final commit");
            std::process::exit(130);
        }
        tracing::info!("shutdown requested: committing and leaving the group");
        shutdown.request();
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, handle: PrometheusHandle, health: Health) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let handle = handle.clone();
        let health = health.clone();
        tokio::spawn(async move {
            // Read the request head (up to the blank line; 8 KiB at most).
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
            }
            let request = String::from_utf8_lossy(&buf);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, ctype, body) = match path {
                "/metrics" => ("200 OK", "text/plain; version=0.0.4", handle.render()),
                "/healthz" if health.is_healthy(Duration::from_secs(60)) => {
                    ("200 OK", "text/plain", "ok\n".to_string())
                }
                "/healthz" => (
                    "503 Service Unavailable",
                    "text/plain",
                    "processing loop stalled\n".to_string(),
                ),
                _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
