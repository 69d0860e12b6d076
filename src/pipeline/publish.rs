//! Adapts the Parquet/object sink to the topology's commit protocol.

use crate::sink::parquet::{EncodedObject, ParquetSink};
use crate::sink::SinkError;
use neonblue_state::StateError;
use neonblue_topology::SegmentSink;

/// Errors of publishing a segment.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The object store failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The async runtime could not be started.
    #[error("runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Publishes encoded objects through a [`ParquetSink`] from synchronous code.
pub struct ObjectSink<'a> {
    sink: &'a ParquetSink,
    rt: tokio::runtime::Runtime,
}

impl<'a> ObjectSink<'a> {
    /// Wraps `sink` with a small runtime for its async object-store calls.
    pub fn new(sink: &'a ParquetSink) -> Result<Self, PublishError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(ObjectSink { sink, rt })
    }

    /// Checks the output root is reachable (see `OutputRoot::check_access`).
    pub fn check_access(&self) -> Result<(), PublishError> {
        Ok(self.rt.block_on(self.sink.root().check_access())?)
    }
}

impl SegmentSink for ObjectSink<'_> {
    type Prepared = Vec<EncodedObject>;
    type Error = PublishError;

    fn object_names(&self, prepared: &Self::Prepared) -> Vec<String> {
        prepared.iter().map(|o| o.path.to_string()).collect()
    }

    fn publish(&self, prepared: Self::Prepared) -> Result<(), PublishError> {
        Ok(self.rt.block_on(self.sink.put_all(&prepared))?)
    }

    fn discard(&self, names: &[String]) -> Result<(), PublishError> {
        let paths: Vec<object_store::path::Path> = names
            .iter()
            .map(|n| object_store::path::Path::from(n.as_str()))
            .collect();
        Ok(self.rt.block_on(self.sink.delete_all(&paths))?)
    }
}
