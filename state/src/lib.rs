//! sled-backed state stores for stream processing tasks.
//!
//! Stores keep their working set in memory and record every change since the
//! last checkpoint. [`StateDb::commit`] writes the changes of many stores,
//! together with each task's checkpoint (e.g. the offsets it applied), in one
//! atomic sled transaction, so state and offsets never disagree after a crash.
//! The same changes are the records of the stores' changelog topics, and
//! [`StateDb::restore`] rebuilds a store's tree from such records.

pub mod codec;
pub mod db;
pub mod kv;
pub mod versioned;
pub mod window;

pub use codec::{decode, encode, CodecError};
pub use db::{ChangeRecord, CommitBatch, StateDb, StateError, StoreTree};
pub use kv::KeyValueStore;
pub use versioned::VersionedStore;
pub use window::WindowStore;

/// A borrowed form of a store key `K`, for lookups that do not build an owned
/// key. It must hash exactly like the owned key it matches.
pub trait KeyRef<K>: std::hash::Hash {
    /// True when `self` denotes `key`.
    fn matches(&self, key: &K) -> bool;
    /// The owned key (made only when inserting).
    fn to_key(&self) -> K;
}

impl<K: std::hash::Hash + Eq + Clone> KeyRef<K> for K {
    fn matches(&self, key: &K) -> bool {
        self == key
    }
    fn to_key(&self) -> K {
        self.clone()
    }
}

impl KeyRef<String> for str {
    fn matches(&self, key: &String) -> bool {
        self == key.as_str()
    }
    fn to_key(&self) -> String {
        self.to_owned()
    }
}

/// A store whose pending changes can be committed.
pub trait Store {
    /// The store's name (its tree and changelog suffix).
    fn name(&self) -> &str;
    /// Moves the changes recorded since the last call into `out` as
    /// (key, value-or-tombstone) pairs, in a deterministic order.
    fn take_changes(&mut self, out: &mut Vec<ChangeRecord>);
}
