//! sled-backed state stores for stream processing tasks.
//!
//! sled is the store of record: every store keeps its entries in pages in
//! one sled tree per instance ([`StateDb`]), reads them when first needed and
//! caches them decoded within one memory [`Budget`] per instance. Changes
//! reach sled only through [`StateDb::commit`], which writes the changes of
//! many stores together with the tasks' checkpoints (offsets applied,
//! counters) as one atomic batch, so state and offsets never disagree after
//! a crash. The same changes are the records of the stores' changelog
//! topics, and [`StateDb::restore`] rebuilds a store's keyspace from them.

pub mod budget;
pub mod codec;
pub mod db;
pub mod kv;
pub mod paged;
pub mod versioned;
pub mod window;

pub use budget::Budget;
pub use codec::{decode, encode, encode_after, CodecError};
pub use db::{ChangeRecord, CommitBatch, Keyspace, StateDb, StateError, StoreTree, Usage};
pub use kv::KeyValueStore;
pub use paged::PagedStore;
pub use versioned::VersionedStore;
pub use window::WindowStore;

/// A store whose pending changes can be committed.
pub trait Store {
    /// The store's name (its keyspace and changelog suffix).
    fn name(&self) -> &str;
    /// Moves the changes recorded since the last call into `out` as
    /// (key, value-or-tombstone) pairs, in a deterministic order.
    fn take_changes(&mut self, out: &mut Vec<ChangeRecord>);
}
