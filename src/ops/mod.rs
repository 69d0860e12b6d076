//! Operations: Prometheus metrics, the `/metrics` + `/healthz` endpoint,
//! graceful shutdown on SIGTERM/SIGINT, and progress bars.

pub mod metrics;
pub mod progress;

pub use metrics::{serve, Health, Shutdown};
