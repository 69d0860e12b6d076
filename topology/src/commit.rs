//! The commit protocol, the same in both modes: outputs first, then state
//! and positions.
//!
//! 1. **intents**: for every task whose segment has outputs, the names of
//!    the objects it is about to publish become durable;
//! 2. **publish**: the sink writes them (each object atomically, names
//!    deterministic, so writing them again gives the same objects);
//! 3. **state**: every task's store changes and checkpoint (input position,
//!    counters, stream time …) become durable, and its intent is cleared;
//! 4. the driver acknowledges its input (file mode: the position is part of
//!    the checkpoint; Kafka mode: the group offsets, after this).
//!
//! Where "durable" lives is a [`Durability`]: the local state database
//! alone ([`LocalDurability`], file mode) or the changelog topics followed by
//! the local copy (`kafka::ChangelogDurability`). A crash before step 3
//! leaves an intent behind: recovery discards those objects (a re-run may
//! cut segments differently) and processing resumes from the previous
//! checkpoint, writing them again. Nothing is lost, nothing written twice.

use neonblue_state::{decode, encode, CommitBatch, StateDb, StateError};

/// Object names a task's segment is about to publish.
pub type Intent = Vec<String>;

/// One task's share of a commit.
pub struct TaskCommit<K> {
    /// Identifies the task to the [`Durability`] (and carries what it needs).
    pub key: K,
    /// Objects its segment publishes (empty when it has no outputs).
    pub intent: Intent,
    /// The task's checkpoint payload (position, counters, stream time …).
    pub checkpoint: Vec<u8>,
    /// Its store changes.
    pub changes: CommitBatch,
}

/// Where intents, state and checkpoints become durable.
pub trait Durability {
    /// Identifies a task (and, for changelogs, where its logs are).
    type Key;
    /// Failures.
    type Error;
    /// Step 1: makes the non-empty intents durable.
    fn record_intents(&mut self, commits: &[TaskCommit<Self::Key>]) -> Result<(), Self::Error>;
    /// Step 3: makes every task's changes and checkpoint durable, clearing
    /// its intent. Returns the keys, updated (e.g. with new log ends).
    fn record_state(
        &mut self,
        commits: Vec<TaskCommit<Self::Key>>,
    ) -> Result<Vec<Self::Key>, Self::Error>;
}

/// Runs the protocol: intents, `publish`, state. Returns the updated keys.
pub fn commit<D, E>(
    durability: &mut D,
    commits: Vec<TaskCommit<D::Key>>,
    publish: impl FnOnce() -> Result<(), E>,
) -> Result<Vec<D::Key>, E>
where
    D: Durability,
    E: From<D::Error>,
{
    durability.record_intents(&commits)?;
    publish()?;
    Ok(durability.record_state(commits)?)
}

/// File mode: everything in the local state database. Intents are metadata
/// keys `intent/<task>`, checkpoints `checkpoint/<task>`; step 3 is one
/// atomic sled commit.
pub struct LocalDurability {
    db: StateDb,
}

impl LocalDurability {
    /// Commits into `db`.
    pub fn new(db: StateDb) -> Self {
        LocalDurability { db }
    }

    fn intent_key(task: &str) -> String {
        format!("intent/{task}")
    }

    /// Metadata key of a task's checkpoint.
    pub fn checkpoint_key(task: &str) -> String {
        format!("checkpoint/{task}")
    }

    /// The last committed checkpoint payload of `task`.
    pub fn checkpoint(&self, task: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.db.get_meta(&Self::checkpoint_key(task))
    }

    /// The intent `task` left unfinished (a crash between steps 1 and 3).
    pub fn unfinished_intent(&self, task: &str) -> Result<Intent, StateError> {
        Ok(match self.db.get_meta(&Self::intent_key(task))? {
            Some(bytes) => decode(&bytes)?,
            None => Intent::new(),
        })
    }

    /// Forgets the unfinished intent of `task` once its objects are discarded.
    pub fn clear_intent(&self, task: &str) -> Result<(), StateError> {
        self.db.put_meta_durable(&Self::intent_key(task), None)
    }
}

impl Durability for LocalDurability {
    type Key = String;
    type Error = StateError;

    fn record_intents(&mut self, commits: &[TaskCommit<String>]) -> Result<(), StateError> {
        let mut batch = CommitBatch::default();
        for c in commits.iter().filter(|c| !c.intent.is_empty()) {
            batch.set_meta(Self::intent_key(&c.key), Some(encode(&c.intent)));
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.db.commit(batch)
    }

    fn record_state(
        &mut self,
        commits: Vec<TaskCommit<String>>,
    ) -> Result<Vec<String>, StateError> {
        let mut all = CommitBatch::default();
        let mut keys = Vec::with_capacity(commits.len());
        for c in commits {
            all.append(c.changes);
            all.set_meta(Self::checkpoint_key(&c.key), Some(c.checkpoint));
            if !c.intent.is_empty() {
                all.set_meta(Self::intent_key(&c.key), None);
            }
            keys.push(c.key);
        }
        self.db.commit(all)?;
        Ok(keys)
    }
}
