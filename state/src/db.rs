//! The sled database of one instance: trees per task and store, atomic
//! commits of store changes plus checkpoints, restore from changelogs.

use crate::Store;
use std::path::Path;

/// Errors at the state boundary.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// sled failed (I/O, corruption).
    #[error("state database: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value could not be decoded.
    #[error(transparent)]
    Codec(#[from] crate::CodecError),
    /// The state directory belongs to another job or configuration.
    #[error("state mismatch: {0}")]
    Mismatch(String),
}

/// One change of a store: a key and its new value, or `None` for a delete.
/// These are also the records of the store's changelog topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeRecord {
    /// Encoded key.
    pub key: Vec<u8>,
    /// Encoded value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
}

/// Handle to the tree of one store of one task.
#[derive(Clone)]
pub struct StoreTree {
    tree: sled::Tree,
    store: String,
}

impl StoreTree {
    /// The store's name (without the namespace): its changelog suffix.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// The stored value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    /// Removes every entry (before a full restore).
    pub fn clear(&self) -> Result<(), StateError> {
        Ok(self.tree.clear()?)
    }

    /// Every (key, value) in key order.
    pub fn scan(&self) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec), StateError>> + '_ {
        self.tree.iter().map(|r| r.map_err(StateError::from))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

/// The state database of one instance.
#[derive(Clone)]
pub struct StateDb {
    db: sled::Db,
}

const META_TREE: &str = "__meta";

impl StateDb {
    /// Opens (creating) the database in `dir`; `cache_bytes` bounds sled's page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<StateDb, StateError> {
        std::fs::create_dir_all(dir).map_err(|e| sled::Error::Io(e))?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None)
            .open()?;
        Ok(StateDb { db })
    }

    /// The tree of store `store` in namespace `ns` (e.g. a task id).
    pub fn tree(&self, ns: &str, store: &str) -> Result<StoreTree, StateError> {
        Ok(StoreTree {
            tree: self.db.open_tree(format!("{ns}/{store}"))?,
            store: store.to_string(),
        })
    }

    /// Reads a metadata value (checkpoints, intents, fingerprints).
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.db.open_tree(META_TREE)?.get(key)?.map(|v| v.to_vec()))
    }

    /// Writes a metadata value outside a commit and makes it durable.
    pub fn put_meta_durable(&self, key: &str, value: Option<&[u8]>) -> Result<(), StateError> {
        let meta = self.db.open_tree(META_TREE)?;
        match value {
            Some(v) => meta.insert(key, v)?,
            None => meta.remove(key)?,
        };
        self.db.flush()?;
        Ok(())
    }

    /// Atomically applies a commit batch and flushes it to disk.
    pub fn commit(&self, batch: CommitBatch) -> Result<(), StateError> {
        let meta = self.db.open_tree(META_TREE)?;
        let mut trees = Vec::with_capacity(batch.stores.len() + 1);
        let mut batches = Vec::with_capacity(batch.stores.len() + 1);
        for (tree, changes) in batch.stores {
            let mut b = sled::Batch::default();
            for c in changes {
                match c.value {
                    Some(v) => b.insert(c.key, v),
                    None => b.remove(c.key),
                }
            }
            trees.push(tree.tree);
            batches.push(b);
        }
        let mut mb = sled::Batch::default();
        for (k, v) in batch.meta {
            match v {
                Some(v) => mb.insert(k.as_bytes(), v),
                None => mb.remove(k.as_bytes()),
            }
        }
        trees.push(meta);
        batches.push(mb);
        use sled::Transactional;
        trees
            .as_slice()
            .transaction(|txs| {
                for (tx, b) in txs.iter().zip(&batches) {
                    tx.apply_batch(b)?;
                }
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => StateError::Sled(e),
                sled::transaction::TransactionError::Abort(()) => {
                    StateError::Mismatch("commit aborted".into())
                }
            })?;
        self.db.flush()?;
        Ok(())
    }

    /// Replays changelog records into a store's tree (restore before processing).
    pub fn restore(
        &self,
        tree: &StoreTree,
        records: impl IntoIterator<Item = ChangeRecord>,
    ) -> Result<u64, StateError> {
        let mut b = sled::Batch::default();
        let mut n = 0;
        for c in records {
            match c.value {
                Some(v) => b.insert(c.key, v),
                None => b.remove(c.key),
            }
            n += 1;
        }
        tree.tree.apply_batch(b)?;
        Ok(n)
    }

    /// Approximate on-disk size in bytes.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// Everything one commit writes: the changes of many stores and metadata
/// (checkpoints), applied atomically by [`StateDb::commit`].
#[derive(Default)]
pub struct CommitBatch {
    stores: Vec<(StoreTree, Vec<ChangeRecord>)>,
    meta: Vec<(String, Option<Vec<u8>>)>,
}

impl CommitBatch {
    /// Takes the pending changes of `store` (to be written to `tree`) and
    /// returns them so that the caller may also send them to a changelog.
    pub fn add_store(&mut self, tree: &StoreTree, store: &mut dyn Store) -> &[ChangeRecord] {
        let mut changes = Vec::new();
        store.take_changes(&mut changes);
        self.stores.push((tree.clone(), changes));
        &self.stores.last().map(|s| s.1.as_slice()).unwrap_or(&[])
    }

    /// Sets (or with `None` removes) a metadata key in the same commit.
    pub fn set_meta(&mut self, key: impl Into<String>, value: Option<Vec<u8>>) {
        self.meta.push((key.into(), value));
    }

    /// The changes of every store in the batch, by store name: the records
    /// to write to the stores' changelogs.
    pub fn store_changes(&self) -> impl Iterator<Item = (&str, &[ChangeRecord])> {
        self.stores.iter().map(|(t, c)| (t.store(), c.as_slice()))
    }

    /// Moves everything of `other` into this batch.
    pub fn append(&mut self, other: CommitBatch) {
        self.stores.extend(other.stores);
        self.meta.extend(other.meta);
    }

    /// True when the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty() && self.stores.iter().all(|s| s.1.is_empty())
    }

    /// Number of store changes in the batch.
    pub fn change_count(&self) -> usize {
        self.stores.iter().map(|s| s.1.len()).sum()
    }
}
