//! The Prometheus recorder: every metric of [`crate::metric_names`] with
//! its HELP text, histogram buckets, rendering for `/metrics`.

use crate::metric_names::{self as names, Kind};
use anyhow::{Context, Result};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of the latency histograms (seconds).
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the Prometheus recorder (once per process), registers every
/// metric's help text, and returns the handle that renders them.
pub fn install_recorder() -> Result<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let mut builder = PrometheusBuilder::new();
    for m in names::ALL.iter().filter(|m| m.kind == Kind::Histogram) {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(m.name.to_string()), &LATENCY_BUCKETS)
            .context("metric buckets")?;
    }
    let handle = builder
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    describe_all();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Registers the HELP text of every metric.
fn describe_all() {
    for m in names::ALL {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_renders_with_its_help() {
        let handle = install_recorder().unwrap();
        for m in names::ALL {
            match m.kind {
                Kind::Counter => metrics::counter!(m.name).increment(0),
                Kind::Gauge => metrics::gauge!(m.name).set(0.0),
                Kind::Histogram => metrics::histogram!(m.name).record(0.01),
            }
        }
        let text = handle.render();
        for m in names::ALL {
            assert!(
                text.contains(&format!("# HELP {} {}", m.name, m.help)),
                "{} lacks its HELP:\n{text}",
                m.name
            );
        }
        assert!(text.contains("neonblue_commit_seconds_bucket"), "{text}");
        assert!(
            text.contains("neonblue_clickhouse_insert_seconds_bucket"),
            "{text}"
        );
    }
}
