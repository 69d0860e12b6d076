//! neonblue: Debezium outbox envelopes → validated events, windows and rollups,
//! written to Parquet (and ClickHouse), as a Kafka-Streams-style topology.
//!
//! - [`parse`]: Debezium envelope parsing (every JsonConverter form and layout).
//! - [`domain`]: the experiment domain — validity join, windows, rollups.
//! - [`pipeline`]: the topology wiring and the file-mode driver.
//! - [`sink`]: Parquet on object storage.
//! - [`report`]: the experiment report (statistics from `user_daily`).
//! - [`cli`], [`config`], [`generate`]: operations.

pub mod cli;
pub mod config;
pub mod domain;
pub mod generate;
pub mod kafka;
pub mod ops;
pub mod parse;
pub mod pipeline;
pub mod report;
pub mod sink;
