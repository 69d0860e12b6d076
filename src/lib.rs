//! neonblue: Debezium change envelopes of an experimentation platform →
//! validated events, tumbling windows and per-user rollups, written to
//! Parquet on object storage and to ClickHouse, as a Kafka-Streams-style
//! topology. `docs/architecture.md` draws the layers; each points only down:
//!
//! - [`cli`]: the command line (`run`, `replay`, `generate`, `schema`, `demo`, `report`, `config`, `status`).
//! - [`status`]: what a state directory and an application's group say about where processing stands.
//! - [`drivers`]: file mode and Kafka mode — where records come from, when to commit.
//! - [`report`]: the experiment report over `user_daily` (SPEC 10).
//! - [`sink`]: the outputs — Parquet objects, ClickHouse tables, dead letters.
//! - [`processors`]: the two sub-topologies — router (parse → re-key) and join (validity, windows).
//! - [`parse`]: Debezium envelopes of every layout into domain records.
//! - [`ops`]: metrics, health, shutdown, progress.
//! - [`generate`]: deterministic synthetic input.
//! - [`domain`], [`config`], [`time`]: the data, the settings, time units and the calendar.
//! - [`metric_names`]: every exported metric with its help text.

pub mod cli;
pub mod config;
pub mod domain;
pub mod drivers;
pub mod generate;
pub mod metric_names;
pub mod ops;
pub mod parse;
pub mod processors;
pub mod report;
pub mod sink;
pub mod status;
pub mod time;
