//! Operations: Prometheus metrics and the `/metrics` + `/healthz` endpoint,
//! graceful shutdown on SIGTERM/SIGINT bounded by a timeout, exit codes and
//! the final error, progress bars.

pub mod exit;
pub mod health;
pub mod http;
pub mod metrics;
pub mod progress;

pub use health::{Health, Shutdown};

use anyhow::Result;

/// Starts, on a background runtime thread, the signal handler and (when
/// `addr` is not empty) the HTTP endpoint: `GET /metrics` (Prometheus text)
/// and `GET /healthz` (200 while the loop beat in the last 60 s, else 503).
pub fn serve(addr: &str, health: Health, shutdown: Shutdown) -> Result<()> {
    let handle = metrics::install_recorder()?;
    let listener = if addr.is_empty() {
        None
    } else {
        let l = std::net::TcpListener::bind(addr).map_err(|e| {
            exit::Usage(format!(
                "cannot listen on metrics address {addr} (metrics.addr): {e}"
            ))
        })?;
        l.set_nonblocking(true)?;
        tracing::info!(addr = %l.local_addr()?, "serving /metrics and /healthz");
        Some(l)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("neonblue-ops".into())
        .spawn(move || {
            rt.block_on(async move {
                let signals = tokio::spawn(health::wait_for_signal(shutdown));
                if let Some(l) = listener {
                    match tokio::net::TcpListener::from_std(l) {
                        Ok(l) => http::serve(l, handle, health).await,
                        Err(e) => tracing::error!(error = %e, "metrics listener failed"),
                    }
                }
                let _ = signals.await;
            })
        })?;
    Ok(())
}
