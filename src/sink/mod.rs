//! The outputs (SPEC 6, 7): [`Outputs`] ties together the Parquet sink on
//! object storage (Arrow schemas of the datasets, Hive-style object layout,
//! deterministic in-memory encoding, idempotent uploads), the ClickHouse sink
//! and the dead-letter lines; [`read`] reads the datasets back for `demo`,
//! `report` and tests.
//!
//! The write path is split so that the caller can log its intent before
//! anything reaches the store:
//!
//! 1. [`ParquetSink::encode`] turns a [`Segment`] (everything one writer
//!    emitted between two checkpoints) into [`EncodedObject`]s whose names
//!    depend only on the segment (`part`, `seq`) and the rows' Hive partitions;
//! 2. the caller records the object names (intent log);
//! 3. [`ParquetSink::put_all`] uploads them (each put is atomic, re-uploading
//!    the same segment overwrites with identical bytes);
//! 4. after a crash, [`ParquetSink::delete_all`] removes the objects of an
//!    intent that will be re-done differently.

pub mod clickhouse;
pub mod outputs;
pub mod parquet;
pub mod paths;
pub mod read;
pub mod schema;
pub mod store;

pub use self::outputs::{task_part, Outputs, ROUTER_PART};
pub use self::parquet::{EncodedObject, ParquetSink, ParquetSinkOptions, Segment};
pub use self::paths::{Dataset, HivePartition};
pub use self::read::{
    decode_columns, list_parts, read_aggregates, read_dataset, read_dead_letters, read_events,
    read_files, read_user_daily, DatasetFile,
};
pub use self::store::OutputRoot;

use std::path::PathBuf;

/// Errors at the sink boundary.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The output root is neither a usable local path nor a supported object_store URL.
    #[error("invalid output root {root:?}: {reason}")]
    InvalidRoot {
        /// The root as given.
        root: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The local output directory could not be created.
    #[error("cannot create output directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A segment's `part` cannot be used in an object name.
    #[error("invalid segment part {0:?}: use 1-64 characters of [A-Za-z0-9_-], e.g. `p0003`")]
    InvalidPart(String),
    /// Building an Arrow record batch failed (schema/array mismatch).
    #[error("building the Arrow batch of {dataset}: {source}")]
    Arrow {
        /// Dataset name.
        dataset: &'static str,
        /// The Arrow error.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// Encoding or decoding Parquet failed.
    #[error("parquet {path}: {source}")]
    Parquet {
        /// Object path.
        path: String,
        /// The Parquet error.
        #[source]
        source: ::parquet::errors::ParquetError,
    },
    /// An object store operation failed.
    #[error("object store {op} {path}: {source}")]
    Store {
        /// `put`, `get`, `delete`, `list`, …
        op: &'static str,
        /// Object path (relative to the output root).
        path: String,
        /// The object_store error.
        #[source]
        source: object_store::Error,
    },
    /// A stored object does not have the expected layout or schema.
    #[error("unexpected content in {path}: {reason}")]
    Decode {
        /// Object path.
        path: String,
        /// What did not match.
        reason: String,
    },
}

/// Result type of the sink.
pub type Result<T, E = SinkError> = std::result::Result<T, E>;
