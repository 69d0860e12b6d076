//! The hand-off from the consumer thread to the apply thread.
//!
//! librdkafka serves rebalance callbacks inside `poll`, on the consumer
//! thread. That thread polls and prepares records ([`super::prepare`]);
//! the apply thread runs the tasks and their commits. Both work at once,
//! one core each. Items keep the order they were polled in, and
//! [`Feed::sync`] returns once every item fed before it is applied: a
//! revoked partition's commit, the end of input and shutdown must see
//! everything polled.

use super::prepare::Consumed;
use anyhow::{anyhow, Result};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Mutex, MutexGuard};

/// Items per hand-off: the channel's cost spread over many records.
const BATCH: usize = 256;
/// Hand-offs waiting at most; then the consumer thread waits (back-pressure).
const BATCHES_AHEAD: usize = 4;

/// What the consumer thread hands to the apply thread.
// Records far outnumber the rest: boxing them would cost an allocation per
// record for no gain.
#[allow(clippy::large_enum_variant)]
pub enum Item {
    /// A consumed record.
    Record(Consumed),
    /// The consumer reached the fetched end of an input partition.
    InputEnd {
        /// Input topic.
        topic: String,
        /// Input partition.
        partition: i32,
        /// The log end it fetched.
        end: i64,
        /// The consumer's position in it, if known.
        position: Option<i64>,
    },
    /// A poll found no record for its whole wait.
    Idle,
    /// Answered once every earlier item is applied.
    Sync(Sender<()>),
    /// The apply thread ends.
    Stop,
}

/// The consumer thread's end: items gather into batches until a batch is
/// full or [`Feed::flush`].
pub struct Feed {
    batches: SyncSender<Vec<Item>>,
    // Only the consumer thread touches it (rebalance callbacks run there
    // too); the lock makes the feed shareable with the consumer's context.
    pending: Mutex<Vec<Item>>,
}

impl Feed {
    /// A feed and the apply thread's end of it.
    pub fn new() -> (Feed, Receiver<Vec<Item>>) {
        let (batches, received) = sync_channel(BATCHES_AHEAD);
        let feed = Feed {
            batches,
            pending: Mutex::new(Vec::with_capacity(BATCH)),
        };
        (feed, received)
    }

    fn pending(&self) -> MutexGuard<'_, Vec<Item>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an item; hands the batch over once it is full.
    pub fn push(&self, item: Item) -> Result<()> {
        let mut pending = self.pending();
        pending.push(item);
        if pending.len() < BATCH {
            return Ok(());
        }
        let batch = std::mem::replace(&mut *pending, Vec::with_capacity(BATCH));
        drop(pending);
        self.send(batch)
    }

    /// True when items wait for their hand-off.
    pub fn has_pending(&self) -> bool {
        !self.pending().is_empty()
    }

    /// Hands over the items gathered so far.
    pub fn flush(&self) -> Result<()> {
        let batch = std::mem::take(&mut *self.pending());
        if batch.is_empty() {
            return Ok(());
        }
        self.send(batch)
    }

    /// Returns once every item fed so far is applied.
    pub fn sync(&self) -> Result<()> {
        self.flush()?;
        let (done, applied) = channel();
        self.send(vec![Item::Sync(done)])?;
        applied.recv().map_err(|_| stopped())
    }

    /// Ends the apply thread after the items handed over; items still
    /// gathering are dropped (their records are not committed, so whoever
    /// reads their partitions next reads them again).
    pub fn stop(&self) {
        self.pending().clear();
        // An apply thread that already stopped needs no message.
        let _ = self.batches.send(vec![Item::Stop]);
    }

    fn send(&self, batch: Vec<Item>) -> Result<()> {
        self.batches.send(batch).map_err(|_| stopped())
    }
}

fn stopped() -> anyhow::Error {
    anyhow!("the apply thread stopped")
}
