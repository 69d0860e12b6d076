//! The commit protocol: outputs first, then state and offsets atomically.
//!
//! 1. the names of every object the segment will write are stored durably as
//!    an *intent*;
//! 2. the sink publishes them (each object atomically, names deterministic);
//! 3. store changes, checkpoints and the cleared intent commit in one sled
//!    transaction.
//!
//! A crash before 3 leaves the previous checkpoint: on restart
//! [`CommitProtocol::recover`] deletes the objects of the unfinished intent
//! (a re-run may cut segments differently) and processing resumes from the
//! checkpoint, re-creating them. Nothing is lost and nothing is written twice.

use neonblue_state::{decode, encode, CommitBatch, StateDb, StateError};

/// Object names a segment is about to publish.
pub type Intent = Vec<String>;

/// A sink that publishes prepared segments of output.
pub trait SegmentSink {
    /// A segment ready to publish (e.g. encoded files).
    type Prepared;
    /// Error type.
    type Error: From<StateError>;
    /// The names of the objects `prepared` will create.
    fn object_names(&self, prepared: &Self::Prepared) -> Vec<String>;
    /// Publishes the prepared segment (idempotent: same names, same bytes).
    fn publish(&self, prepared: Self::Prepared) -> Result<(), Self::Error>;
    /// Deletes objects of an unfinished segment (missing objects are fine).
    fn discard(&self, names: &[String]) -> Result<(), Self::Error>;
}

/// Runs the commit protocol against one state database.
pub struct CommitProtocol {
    db: StateDb,
    intent_key: String,
}

impl CommitProtocol {
    /// A protocol whose intent lives under `intent_key` (one per committing unit).
    pub fn new(db: StateDb, intent_key: impl Into<String>) -> Self {
        CommitProtocol {
            db,
            intent_key: intent_key.into(),
        }
    }

    /// Discards the objects of a segment that was published but never
    /// committed. Returns how many object names were discarded.
    pub fn recover<S: SegmentSink>(&self, sink: &S) -> Result<usize, S::Error> {
        let Some(bytes) = self.db.get_meta(&self.intent_key)? else {
            return Ok(0);
        };
        let names: Intent = decode(&bytes).map_err(StateError::from)?;
        sink.discard(&names)?;
        self.db.put_meta_durable(&self.intent_key, None)?;
        Ok(names.len())
    }

    /// Publishes `prepared` and then commits `batch` (state + checkpoints).
    pub fn commit<S: SegmentSink>(
        &self,
        sink: &S,
        prepared: Vec<S::Prepared>,
        mut batch: CommitBatch,
    ) -> Result<(), S::Error> {
        let names: Intent = prepared.iter().flat_map(|p| sink.object_names(p)).collect();
        if !names.is_empty() {
            self.db
                .put_meta_durable(&self.intent_key, Some(&encode(&names)))?;
        }
        for p in prepared {
            sink.publish(p)?;
        }
        batch.set_meta(self.intent_key.clone(), None);
        self.db.commit(batch)?;
        Ok(())
    }
}
