//! Liveness of the processing loop (`/healthz`) and graceful shutdown on
//! SIGTERM/SIGINT, bounded by the shutdown timeout.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Set once SIGTERM or SIGINT arrives: finish the current step, commit,
/// leave. If that takes longer than `timeout` (an unreachable broker makes
/// the final commit wait), the process exits with
/// [`super::exit::SHUTDOWN_TIMEOUT`] without it: the last commit stands
/// and a restart resumes from it (effectively-once makes that safe).
#[derive(Clone)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    timeout: Duration,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new(Duration::from_secs(30))
    }
}

impl Shutdown {
    /// A shutdown bounded by `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Shutdown {
            flag: Arc::new(AtomicBool::new(false)),
            timeout,
        }
    }

    /// True once a shutdown was requested.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Requests a shutdown.
    pub fn request(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    /// How long the final commit may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Waits for SIGTERM/SIGINT: the first requests a shutdown and starts the
/// watchdog, a second exits at once (130).
pub(crate) async fn wait_for_signal(shutdown: Shutdown) {
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
            std::process::exit(super::exit::INTERRUPTED);
        }
        let timeout = shutdown.timeout();
        tracing::info!(
            timeout = %crate::config::duration::format(timeout),
            "shutdown requested: committing and leaving the group"
        );
        shutdown.request();
        // A thread, not a task: it must fire even if this runtime is busy.
        let _ = std::thread::Builder::new()
            .name("neonblue-shutdown".into())
            .spawn(move || {
                std::thread::sleep(timeout);
                super::exit::fail(
                    super::exit::SHUTDOWN_TIMEOUT,
                    &format!(
                        "shutdown timed out after {}: exiting without the final commit \
                         (processing.shutdown_timeout); a restart resumes from the last commit",
                        crate::config::duration::format(timeout)
                    ),
                );
            });
    }
}
