//! Operations: Prometheus metrics, the `/metrics` + `/healthz` endpoint and
//! graceful shutdown on SIGTERM/SIGINT.

pub mod metrics;

pub use metrics::{serve, Health, Shutdown};
