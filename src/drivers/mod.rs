//! Drivers: where records come from and when state is committed.
//!
//! - [`file`]: the embedded mode on a JSONL file (SPEC 2.4).
//! - [`kafka`]: a consumer group on a broker (SPEC 3, 7, 8).

pub mod file;
pub mod kafka;
