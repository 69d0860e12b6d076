//! The sled database of one instance.
//!
//! Everything lives in one sled tree: each store of each task has a
//! *keyspace* (a 4-byte prefix registered under its namespace and store
//! name), and metadata (checkpoints, intents, fingerprints) has its own. So a
//! commit — every change of every store plus the checkpoints — is one
//! `apply_batch`, atomic and cheap. The directory records its format
//! version; another version's state is refused with a clear message.
//!
//! Every durable write also counts a *generation*, stored with it and, once
//! flushed, in a small file beside sled's ([`GENERATION_FILE`]). sled
//! recovers from a damaged log by keeping its longest valid prefix, which
//! silently goes back in time (or to an empty database); a database whose
//! generation is behind the file's has lost committed state and is refused.

use crate::{Budget, Store};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
    /// The directory cannot be inspected: missing, or not a state directory.
    #[error("state directory {dir} {problem}")]
    NotState {
        /// The directory.
        dir: PathBuf,
        /// What was found.
        problem: String,
    },
    /// A running instance holds the directory's lock.
    #[error("state directory {dir} is in use by a running instance (its lock is held); stop it, or ask that instance (its /metrics) instead")]
    InUse {
        /// The directory.
        dir: PathBuf,
    },
    /// A write was attempted on a database opened by [`StateDb::inspect`].
    #[error("state directory {dir} is open read-only: {what}")]
    ReadOnly {
        /// The directory.
        dir: PathBuf,
        /// What would have been written.
        what: String,
    },
    /// A write to the state database failed earlier in this run: nothing
    /// more is read or written, so that nothing of the failed write reaches
    /// the disk.
    #[error("state database: an earlier write failed; stopped using it (the state directory keeps its last commit)")]
    FailedEarlier,
    /// The disk of the state directory has too little room for a commit;
    /// nothing of it was written.
    #[error("state directory {dir}: {available} bytes free on its disk, a commit of {bytes} bytes needs {needed} (3× its size + state.min_free_bytes); nothing of it was written: make room and run again")]
    NoRoom {
        /// The directory.
        dir: PathBuf,
        /// Free bytes on its disk.
        available: u64,
        /// Bytes of the commit's changes.
        bytes: u64,
        /// What the commit needs free.
        needed: u64,
    },
    /// The state directory was written by another version of the format.
    #[error("state directory {dir} {problem}: delete it (or use another --state directory) to start over — in Kafka mode the state is restored from the changelog topics; in file mode the input is processed again")]
    Format {
        /// The directory.
        dir: PathBuf,
        /// What was found.
        problem: String,
    },
}

/// One change of a store: a key of its keyspace and its new value, or
/// `None` for a delete. These are also the records of the store's changelog
/// topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeRecord {
    /// Key within the store's keyspace.
    pub key: Vec<u8>,
    /// Encoded value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
}

/// Handle to the keyspace of one store of one task.
#[derive(Clone)]
pub struct StoreTree {
    data: sled::Tree,
    prefix: [u8; 4],
    store: String,
    budget: Budget,
    read_only: bool,
    failure: Arc<Failure>,
}

impl StoreTree {
    /// The store's name (without the namespace): its changelog suffix.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// The cache budget the store's pages count against.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    fn full(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(4 + key.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(key);
        k
    }

    /// The stored value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.failure.refuse()?;
        Ok(self.data.get(self.full(key))?.map(|v| v.to_vec()))
    }

    /// Every (key, value) whose key starts with `sub`, in key order.
    pub fn scan(
        &self,
        sub: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, sled::IVec), StateError>> + '_ {
        self.data.scan_prefix(self.full(sub)).map(|r| {
            r.map(|(k, v)| (k[4..].to_vec(), v))
                .map_err(StateError::from)
        })
    }

    /// What the keyspace holds (reads every record: for tools).
    pub fn usage(&self) -> Result<Usage, StateError> {
        let mut u = Usage::default();
        for r in self.data.scan_prefix(self.prefix) {
            let (k, v) = r?;
            u.records += 1;
            u.bytes += (k.len() - 4 + v.len()) as u64;
        }
        Ok(u)
    }

    /// Removes every entry (before a full restore).
    pub fn clear(&self) -> Result<(), StateError> {
        if self.read_only {
            return Err(StateError::Mismatch(format!(
                "store {} is open read-only",
                self.store
            )));
        }
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for r in self.data.scan_prefix(self.prefix).keys().take(4096) {
                batch.remove(r?);
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            self.data
                .apply_batch(batch)
                .map_err(|e| self.failure.write_failed(e))?;
        }
    }
}

/// The state database of one instance.
#[derive(Clone)]
pub struct StateDb {
    db: sled::Db,
    data: sled::Tree,
    budget: Budget,
    dir: PathBuf,
    /// Opened by [`StateDb::inspect`]: every write is refused.
    read_only: bool,
    /// The generation of the last durable write; held while writing one.
    generation: Arc<Mutex<u64>>,
    /// What a failed write stops (see [`Failure`]).
    failure: Arc<Failure>,
    /// Free bytes a commit must leave on the directory's disk (0: no check).
    min_free: u64,
}

/// A registered keyspace: a store of a namespace (e.g. a task).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyspace {
    /// The namespace (task id).
    pub ns: String,
    /// The store.
    pub store: String,
}

/// What a keyspace holds in sled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// sled records (for paged stores: pages and index entries).
    pub records: u64,
    /// Bytes of their keys and values.
    pub bytes: u64,
}

/// The file beside sled's recording the generation of the last durable
/// write (decimal text).
pub const GENERATION_FILE: &str = "neonblue-generation";
const GENERATION_KEY: &str = "generation";

/// Keyspace of the metadata.
const META: [u8; 4] = [0xff; 4];
/// Version of the layout described above (and of the changelog checkpoints,
/// which record it since `neonblue-state/3`; `/4`: page deltas; `/5`: the
/// join task's distinct-user sets live in its users' daily rollups).
const FORMAT: &str = "neonblue-state/5";
const FORMAT_KEY: &str = "format";
const DATA_TREE: &str = "data";

impl StateDb {
    /// Opens (creating) the database in `dir`. `cache_bytes` bounds the
    /// memory of decoded pages shared by every store; sled's own page cache
    /// gets an eighth of it (at least 8 MiB).
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<StateDb, StateError> {
        std::fs::create_dir_all(dir).map_err(sled::Error::Io)?;
        let format_error = |problem: String| StateError::Format {
            dir: dir.to_path_buf(),
            problem,
        };
        // A running instance holding the directory: sled's open reports it.
        if let Some(lock) = lock_unused(dir)? {
            remove_unfinished_snapshots(dir)?;
            drop(lock); // sled takes it
        }
        let config = sled_config(dir, cache_bytes);
        let db = open_sled(config)
            .map_err(|panic| format_error(damaged(&panic)))?
            .map_err(|e| match e {
                sled::Error::Io(_) => StateError::Sled(e),
                other => format_error(format!(
                    "is not a readable state database (damaged, or not written by neonblue): {other}"
                )),
            })?;
        if has_legacy_trees(&db) {
            return Err(format_error(
                "holds state of an older neonblue (one sled tree per store)".into(),
            ));
        }
        let data = db.open_tree(DATA_TREE)?;
        let generation = check_generation(dir, &data)?;
        let s = StateDb {
            failure: Failure::new(&db),
            db,
            data,
            budget: Budget::new(cache_bytes as usize),
            dir: dir.to_path_buf(),
            read_only: false,
            generation: Arc::new(Mutex::new(generation)),
            min_free: 0,
        };
        match s.get_meta(FORMAT_KEY)? {
            Some(v) if v == FORMAT.as_bytes() => {}
            Some(v) => {
                return Err(format_error(format!(
                    "has state format {:?}, this neonblue reads {FORMAT:?}",
                    String::from_utf8_lossy(&v)
                )))
            }
            None if s.data.is_empty() => s.put_meta_durable(FORMAT_KEY, Some(FORMAT.as_bytes()))?,
            None => return Err(format_error("has no format version".into())),
        }
        Ok(s)
    }

    /// Opens an existing state directory to read it, writing nothing: no
    /// directory is created, no format recorded, no keyspace registered, and
    /// every write is refused ([`StateError::ReadOnly`]). (sled itself
    /// rewrites its snapshot file on opening; the keys stay as they are.) A directory a
    /// running instance holds is [`StateError::InUse`], reported at once.
    pub fn inspect(dir: &Path, cache_bytes: u64) -> Result<StateDb, StateError> {
        let not_state = |problem: &str| StateError::NotState {
            dir: dir.to_path_buf(),
            problem: problem.to_string(),
        };
        if !dir.is_dir() {
            return Err(not_state(if dir.exists() {
                "is not a directory"
            } else {
                "does not exist"
            }));
        }
        if !dir.join("db").is_file() || !dir.join("conf").is_file() {
            return Err(not_state(
                "is not a neonblue state directory (no sled database in it)",
            ));
        }
        // Probed first so that a running instance is named as such.
        let Some(lock) = lock_unused(dir)? else {
            return Err(StateError::InUse {
                dir: dir.to_path_buf(),
            });
        };
        remove_unfinished_snapshots(dir)?;
        drop(lock); // sled takes it
        let format_error = |problem: String| StateError::Format {
            dir: dir.to_path_buf(),
            problem,
        };
        let config = sled_config(dir, cache_bytes);
        let db = open_sled(config).map_err(|panic| format_error(damaged(&panic)))??;
        if has_legacy_trees(&db) {
            return Err(format_error(
                "holds state of an older neonblue (one sled tree per store)".into(),
            ));
        }
        if !db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == DATA_TREE.as_bytes())
        {
            return Err(not_state(
                "holds no neonblue state (a foreign sled database)",
            ));
        }
        let data = db.open_tree(DATA_TREE)?;
        let generation = check_generation(dir, &data)?;
        let s = StateDb {
            data,
            failure: Failure::new(&db),
            db,
            budget: Budget::new(cache_bytes as usize),
            dir: dir.to_path_buf(),
            read_only: true,
            generation: Arc::new(Mutex::new(generation)),
            min_free: 0,
        };
        match s.get_meta(FORMAT_KEY)? {
            Some(v) if v == FORMAT.as_bytes() => Ok(s),
            Some(v) => Err(format_error(format!(
                "has state format {:?}, this neonblue reads {FORMAT:?}",
                String::from_utf8_lossy(&v)
            ))),
            None => Err(format_error("has no format version".into())),
        }
    }

    /// The format version this build reads and writes.
    pub fn format() -> &'static str {
        FORMAT
    }

    fn refuse_if_read_only(&self, what: impl FnOnce() -> String) -> Result<(), StateError> {
        if self.read_only {
            return Err(StateError::ReadOnly {
                dir: self.dir.clone(),
                what: what(),
            });
        }
        Ok(())
    }

    /// Every registered keyspace, by namespace and store.
    pub fn keyspaces(&self) -> Result<Vec<Keyspace>, StateError> {
        Ok(self
            .scan_meta("keyspace/")?
            .into_iter()
            .filter_map(|(k, _)| {
                let rest = k.strip_prefix("keyspace/")?;
                let (ns, store) = rest.rsplit_once('/')?;
                Some(Keyspace {
                    ns: ns.to_string(),
                    store: store.to_string(),
                })
            })
            .collect())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cache budget shared by every store of this instance.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The keyspace of store `store` in namespace `ns` (e.g. a task id),
    /// registered on first use.
    pub fn tree(&self, ns: &str, store: &str) -> Result<StoreTree, StateError> {
        let name = format!("keyspace/{ns}/{store}");
        let prefix = match self.get_meta(&name)? {
            Some(v) if v.len() == 4 => [v[0], v[1], v[2], v[3]],
            Some(_) => return Err(StateError::Mismatch(format!("bad keyspace id of {name}"))),
            None => {
                self.refuse_if_read_only(|| format!("register keyspace {ns}/{store}"))?;
                let next = match self.get_meta("keyspace-next")? {
                    Some(v) if v.len() == 4 => u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                    _ => 1,
                };
                if next == u32::MAX {
                    return Err(StateError::Mismatch("keyspaces exhausted".into()));
                }
                let id = next.to_be_bytes();
                let mut batch = sled::Batch::default();
                batch.insert(meta_key(&name), &id);
                batch.insert(meta_key("keyspace-next"), &(next + 1).to_be_bytes());
                self.apply_durable(batch)?;
                id
            }
        };
        Ok(StoreTree {
            data: self.data.clone(),
            prefix,
            store: store.to_string(),
            budget: self.budget.clone(),
            read_only: self.read_only,
            failure: self.failure.clone(),
        })
    }

    /// Reads a metadata value (checkpoints, intents, fingerprints).
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.failure.refuse()?;
        Ok(self.data.get(meta_key(key))?.map(|v| v.to_vec()))
    }

    /// Every metadata key starting with `prefix`, with its value.
    pub fn scan_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        self.data
            .scan_prefix(meta_key(prefix))
            .map(|r| {
                let (k, v) = r?;
                Ok((String::from_utf8_lossy(&k[4..]).into_owned(), v.to_vec()))
            })
            .collect()
    }

    /// Writes a metadata value outside a commit and makes it durable.
    pub fn put_meta_durable(&self, key: &str, value: Option<&[u8]>) -> Result<(), StateError> {
        self.refuse_if_read_only(|| format!("write {key}"))?;
        let mut batch = sled::Batch::default();
        match value {
            Some(v) => batch.insert(meta_key(key), v),
            None => batch.remove(meta_key(key)),
        };
        self.apply_durable(batch)
    }

    /// Applies `batch` with the next generation, flushes it, then records
    /// the generation in [`GENERATION_FILE`] (written aside and renamed).
    fn apply_durable(&self, mut batch: sled::Batch) -> Result<(), StateError> {
        self.failure.refuse()?;
        let mut generation = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        let next = *generation + 1;
        batch.insert(meta_key(GENERATION_KEY), &next.to_be_bytes());
        self.data
            .apply_batch(batch)
            .and_then(|()| self.db.flush().map(drop))
            .map_err(|e| self.failure.write_failed(e))?;
        *generation = next;
        let file = self.dir.join(GENERATION_FILE);
        let aside = self.dir.join(format!("{GENERATION_FILE}.new"));
        std::fs::write(&aside, next.to_string())
            .and_then(|()| std::fs::rename(&aside, &file))
            .map_err(sled::Error::Io)?;
        Ok(())
    }

    /// Refuses commits that would leave less than `bytes` free on the
    /// directory's disk (after 3× their size; see [`StateError::NoRoom`]).
    /// sled may keep part of a batch whose write failed, so a disk that
    /// fills up is better met before writing. 0 turns the check off.
    pub fn keeping_free(mut self, bytes: u64) -> Self {
        self.min_free = bytes;
        self
    }

    /// [`StateError::NoRoom`] when writing `bytes` would leave less than
    /// the configured free space.
    fn check_room(&self, bytes: u64) -> Result<(), StateError> {
        if self.min_free == 0 {
            return Ok(());
        }
        let needed = bytes.saturating_mul(3).saturating_add(self.min_free);
        let available = fs2::available_space(&self.dir).map_err(sled::Error::Io)?;
        if available < needed {
            return Err(StateError::NoRoom {
                dir: self.dir.clone(),
                available,
                bytes,
                needed,
            });
        }
        Ok(())
    }

    /// Atomically applies a commit batch (one sled batch) and flushes it.
    /// Its pages may then be evicted (see [`Budget`]).
    pub fn commit(&self, batch: CommitBatch) -> Result<(), StateError> {
        self.refuse_if_read_only(|| "commit".into())?;
        let number = batch.number;
        let mut b = sled::Batch::default();
        let mut bytes = 0;
        for (tree, changes) in batch.stores {
            for c in changes {
                bytes += c.key.len() + c.value.as_ref().map_or(0, Vec::len);
                let key = tree.full(&c.key);
                match c.value {
                    Some(v) => b.insert(key, v),
                    None => b.remove(key),
                }
            }
        }
        for (k, v) in batch.meta {
            bytes += k.len() + v.as_ref().map_or(0, Vec::len);
            match v {
                Some(v) => b.insert(meta_key(&k), v),
                None => b.remove(meta_key(&k)),
            }
        }
        self.check_room(bytes as u64)?;
        self.apply_durable(b)?;
        if let Some(n) = number {
            self.budget.commit_landed(n);
        }
        Ok(())
    }

    /// Replays changelog records into a store's keyspace (restore before
    /// processing). Callers pass bounded chunks.
    pub fn restore(
        &self,
        tree: &StoreTree,
        records: impl IntoIterator<Item = ChangeRecord>,
    ) -> Result<u64, StateError> {
        self.refuse_if_read_only(|| format!("restore {}", tree.store))?;
        self.failure.refuse()?;
        let mut b = sled::Batch::default();
        let mut n = 0;
        for c in records {
            let key = tree.full(&c.key);
            match c.value {
                Some(v) => b.insert(key, v),
                None => b.remove(key),
            }
            n += 1;
        }
        self.data
            .apply_batch(b)
            .map_err(|e| self.failure.write_failed(e))?;
        Ok(n)
    }

    /// Approximate on-disk size in bytes.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// The generation recorded in the database, checked against the file beside
/// it: a database behind the file has lost committed state.
fn check_generation(dir: &Path, data: &sled::Tree) -> Result<u64, StateError> {
    let format_error = |problem: String| StateError::Format {
        dir: dir.to_path_buf(),
        problem,
    };
    let generation = match data.get(meta_key(GENERATION_KEY))? {
        Some(v) => u64::from_be_bytes(
            v.as_ref()
                .try_into()
                .map_err(|_| format_error("has a malformed generation record".into()))?,
        ),
        None => 0,
    };
    let file = dir.join(GENERATION_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let durable: u64 = text.trim().parse().map_err(|_| {
                format_error(format!("has a malformed {GENERATION_FILE} ({text:?})"))
            })?;
            if generation < durable {
                return Err(format_error(format!(
                    "has lost committed state: its database is at generation {generation} but generation {durable} was made durable (its files are damaged, truncated or were replaced)"
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StateError::Sled(sled::Error::Io(e))),
    }
    Ok(generation)
}

/// The exclusive lock sled takes on the directory's `db` file, taken here
/// to make sure no running instance holds the directory; `None` when one
/// does, or when there is no database yet. A handle dropped a moment ago in
/// this process holds the lock until sled's threads have wound down, so a
/// held lock is retried for up to [`LOCK_WAIT`] before it counts as held.
fn lock_unused(dir: &Path) -> Result<Option<std::fs::File>, StateError> {
    let file = match std::fs::File::open(dir.join("db")) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::Sled(sled::Error::Io(e))),
    };
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        if fs2::FileExt::try_lock_exclusive(&file).is_ok() {
            return Ok(Some(file));
        }
        if std::time::Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// How long a held directory lock is retried (see [`lock_unused`]).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Deletes the snapshot files sled left unfinished (`snap.<lsn>.generating`)
/// when the process was killed while writing one. The caller holds the
/// directory's lock ([`lock_unused`]).
///
/// sled 0.34 writes a snapshot to such a file, syncs it and renames it, but
/// on opening takes the highest-named `snap.*` file, unfinished ones
/// included, and fails with "Read corrupted data" on a cut-short one
/// (sled issue #1527). The file is the only trace of the interrupted
/// write, so deleting it gives exactly the directory a kill just before that
/// write would have left, which sled recovers from its log.
fn remove_unfinished_snapshots(dir: &Path) -> Result<(), StateError> {
    let io = |e| StateError::Sled(sled::Error::Io(e));
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(
                file = %path.display(),
                "deleting an unfinished sled snapshot left by a killed process"
            );
            std::fs::remove_file(&path).map_err(io)?;
        }
    }
    Ok(())
}

/// sled's settings: its own page cache an eighth of the budget (≥ 8 MiB),
/// flushed only by commits.
fn sled_config(dir: &Path, cache_bytes: u64) -> sled::Config {
    sled::Config::new()
        .path(dir)
        .cache_capacity((cache_bytes / 8).max(8 << 20))
        .flush_every_ms(None)
}

/// True when `db` has trees of the older one-tree-per-store layout.
fn has_legacy_trees(db: &sled::Db) -> bool {
    db.tree_names()
        .iter()
        .any(|n| n.as_ref() != b"__sled__default" && n.as_ref() != DATA_TREE.as_bytes())
}

/// Opens sled, turning a panic inside it into an error: sled 0.34 panics on
/// some damaged logs (e.g. one cut short) instead of returning an error.
fn open_sled(config: sled::Config) -> Result<sled::Result<sled::Db>, String> {
    thread_local! {
        /// Set while this thread opens sled: its panic is caught, not reported.
        static OPENING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    // One hook for the process, installed once, that stays quiet only for
    // the opening thread (swapping the global hook per call raced between
    // threads and could leave every later panic unreported).
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !OPENING.with(|o| o.get()) {
                previous(info)
            }
        }));
    });
    OPENING.with(|o| o.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
    OPENING.with(|o| o.set(false));
    result.map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "an unknown failure".into())
    })
}

/// The problem of a directory on which sled failed while recovering.
fn damaged(failure: &str) -> String {
    format!("is not a readable state database (damaged: sled failed recovering it: {failure})")
}

/// A write sled failed (e.g. on a full disk) leaves the failed batch in
/// sled's memory but not on disk. Anything sled writes afterwards (a node
/// rewritten after a read, the flush when the last handle is dropped) could
/// carry part of it to the disk, and that flush may also wait forever (sled
/// 0.34). So from then on nothing is read or written
/// ([`StateError::FailedEarlier`]), and one handle is leaked so that nothing
/// is flushed at the end: the process reports the error and exits.
struct Failure {
    failed: AtomicBool,
    db: sled::Db,
}

impl Failure {
    fn new(db: &sled::Db) -> Arc<Failure> {
        Arc::new(Failure {
            failed: AtomicBool::new(false),
            db: db.clone(),
        })
    }

    /// [`StateError::FailedEarlier`] once a write failed.
    fn refuse(&self) -> Result<(), StateError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StateError::FailedEarlier);
        }
        Ok(())
    }

    /// Records that a write failed with `e`, which it returns.
    fn write_failed(&self, e: sled::Error) -> StateError {
        if !self.failed.swap(true, Ordering::AcqRel) {
            std::mem::forget(self.db.clone());
        }
        StateError::Sled(e)
    }
}

fn meta_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + key.len());
    k.extend_from_slice(&META);
    k.extend_from_slice(key.as_bytes());
    k
}

/// Everything one commit writes: the changes of many stores and metadata
/// (checkpoints), applied atomically by [`StateDb::commit`].
#[derive(Default)]
pub struct CommitBatch {
    stores: Vec<(StoreTree, Vec<ChangeRecord>)>,
    meta: Vec<(String, Option<Vec<u8>>)>,
    /// The commit number its store changes were taken under (see [`Budget`]).
    number: Option<u64>,
}

impl CommitBatch {
    /// Takes the pending changes of `store` (to be written to `tree`) and
    /// returns them so that the caller may also send them to a changelog.
    pub fn add_store(&mut self, tree: &StoreTree, store: &mut dyn Store) -> &[ChangeRecord] {
        self.number
            .get_or_insert_with(|| tree.budget().open_commit());
        let mut changes = Vec::new();
        store.take_changes(&mut changes);
        self.stores.push((tree.clone(), changes));
        self.stores.last().map(|s| s.1.as_slice()).unwrap_or(&[])
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
        self.number = self.number.max(other.number);
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
