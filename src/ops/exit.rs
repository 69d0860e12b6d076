//! Exit codes, and the final error as a human line or a JSON log line.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any other failure |
//! | 2 | usage or configuration error: a bad flag, key or value; `replay --reset` not confirmed |
//! | 3 | a dependency is unreachable or refuses: Kafka brokers, ClickHouse, the object store |
//! | 4 | data or I/O error: the input, the state directory, local files |
//! | 5 | shutdown timed out: the final commit did not finish within `processing.shutdown_timeout` |
//! | 130 | a second SIGTERM/SIGINT: exited at once |
//!
//! Codes 3 and 4 are told apart by the errors' types anywhere in the chain
//! (a configuration error wins over both).

use crate::config::sources::ConfigError;
use crate::sink::clickhouse::ClickHouseError;
use std::sync::atomic::{AtomicBool, Ordering};

/// Success.
pub const OK: i32 = 0;
/// Any other failure.
pub const FAILURE: i32 = 1;
/// Usage or configuration error.
pub const USAGE: i32 = 2;
/// A dependency (broker, ClickHouse, object store) unreachable or refusing.
pub const DEPENDENCY: i32 = 3;
/// Data or I/O error (input, state directory, local files).
pub const DATA: i32 = 4;
/// The final commit did not finish within the shutdown timeout.
pub const SHUTDOWN_TIMEOUT: i32 = 5;
/// A second signal.
pub const INTERRUPTED: i32 = 130;

/// A usage error found outside the configuration (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// A dependency that is unreachable or refuses (exit code 3), for errors
/// that carry no typed cause.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Dependency(pub String);

static JSON: AtomicBool = AtomicBool::new(false);

/// Makes [`fail`] and [`report`] write JSON lines (`--log-json`).
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// The exit code of `e`.
pub fn code_of(e: &anyhow::Error) -> i32 {
    let mut found = None;
    for cause in e.chain() {
        let code = if cause.is::<ConfigError>() || cause.is::<Usage>() || cause.is::<clap::Error>()
        {
            Some(USAGE)
        } else if let Some(ch) = cause.downcast_ref::<ClickHouseError>() {
            Some(match ch {
                ClickHouseError::BadIdentifier { .. } => USAGE,
                _ => DEPENDENCY,
            })
        } else if cause.is::<Dependency>()
            || cause.is::<rdkafka::error::KafkaError>()
            || cause.is::<reqwest::Error>()
        {
            Some(DEPENDENCY)
        } else if let Some(k) = cause.downcast_ref::<neonblue_topology::kafka::KafkaError>() {
            Some(match k {
                neonblue_topology::kafka::KafkaError::State(_) => DATA,
                _ => DEPENDENCY,
            })
        } else if let Some(o) = cause.downcast_ref::<object_store::Error>() {
            Some(match o {
                object_store::Error::Generic { store, .. } if *store == "LocalFileSystem" => DATA,
                _ => DEPENDENCY,
            })
        } else if cause.is::<std::io::Error>()
            || cause.is::<neonblue_state::StateError>()
            || cause.is::<parquet::errors::ParquetError>()
            || cause.is::<arrow::error::ArrowError>()
        {
            Some(DATA)
        } else {
            None
        };
        match code {
            Some(USAGE) => return USAGE,
            Some(c) if found.is_none() => found = Some(c),
            _ => {}
        }
    }
    found.unwrap_or(FAILURE)
}

/// The final error's text: its chain joined by `: `, leaving out a cause
/// whose text is already there (object_store's errors repeat their source).
pub fn message(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Writes the final error: `error: …` on stderr, or with `--log-json` a
/// JSON line shaped like the other log lines (level ERROR, the exit code).
pub fn report(code: i32, message: &str) {
    if JSON.load(Ordering::Relaxed) {
        let line = serde_json::json!({
            "timestamp": crate::time::format_iso(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros() as i64)
                    .unwrap_or(0)
            ),
            "level": "ERROR",
            "fields": { "message": message, "exit_code": code },
            "target": "neonblue",
        });
        eprintln!("{line}");
    } else {
        eprintln!("error: {message}");
    }
}

/// [`report`]s and exits with `code`.
pub fn fail(code: i32, message: &str) -> ! {
    report(code, message);
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn codes_follow_the_cause() {
        let io: anyhow::Error = std::io::Error::other("disk").into();
        assert_eq!(code_of(&io.context("writing the state")), DATA);
        let usage = anyhow::Error::new(Usage("--yes".into())).context("reset");
        assert_eq!(code_of(&usage), USAGE);
        let ch: anyhow::Error = ClickHouseError::RetriesExhausted {
            what: "insert".into(),
            attempts: 3,
            secs: 1,
            last: "refused".into(),
        }
        .into();
        assert_eq!(code_of(&ch), DEPENDENCY);
        let dep = Err::<(), _>(Dependency("down".into()))
            .context("commit")
            .unwrap_err();
        assert_eq!(code_of(&dep), DEPENDENCY);
        assert_eq!(code_of(&anyhow::anyhow!("something else")), FAILURE);
    }

    #[test]
    fn the_message_says_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("put a.parquet: {0}")]
        struct Repeats(#[source] std::io::Error);
        let e = anyhow::Error::new(Repeats(std::io::Error::other("No space left on device")))
            .context("writing the outputs under out");
        assert_eq!(
            message(&e),
            "writing the outputs under out: put a.parquet: No space left on device"
        );
    }
}
