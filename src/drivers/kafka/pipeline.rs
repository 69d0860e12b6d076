//! The hand-off from the consumer thread to the apply thread.
//!
//! librdkafka serves rebalance callbacks inside `poll`, on the consumer
//! thread. That thread polls and prepares records ([`super::prepare`]);
//! the apply thread runs the tasks and their commits. Both work at once,
//! one core each. Items keep the order they were polled in; a revoked
//! partition's commit, the end of input and shutdown must see everything
//! polled, and wait for it with [`Feed::sync`].

use super::prepare::Consumed;
use anyhow::{anyhow, Result};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};

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
    /// A poll found no record for its whole wait, or failed.
    Idle,
    /// Answers a [`Feed::sync`].
    Sync(Sender<()>),
    /// The apply thread ends.
    Stop,
}

const RUNNING: u8 = 0;
const STOPPED: u8 = 1;
const ABORTED: u8 = 2;

/// What both ends see.
#[derive(Default)]
struct Control {
    /// RUNNING, STOPPED or ABORTED.
    state: AtomicU8,
    /// A [`Feed::sync`] waits.
    syncing: AtomicBool,
}

/// The consumer thread's end: items gather into batches until a batch is
/// full or [`Feed::flush`].
pub struct Feed {
    batches: SyncSender<Vec<Item>>,
    // Only the consumer thread touches it (rebalance callbacks run there
    // too); the lock makes the feed shareable with the consumer's context.
    pending: Mutex<Vec<Item>>,
    control: Arc<Control>,
}

/// The apply thread's end of a [`Feed`].
pub struct Batches {
    received: Receiver<Vec<Item>>,
    control: Arc<Control>,
}

impl Batches {
    /// The next batch; `None` once the feed is gone or aborted.
    pub fn next(&self) -> Option<Vec<Item>> {
        let batch = self.received.recv().ok()?;
        (!self.aborted()).then_some(batch)
    }

    /// True once the consumer thread failed: nothing more is applied or
    /// committed.
    pub fn aborted(&self) -> bool {
        self.control.state.load(Ordering::Acquire) == ABORTED
    }

    /// True while a [`Feed::sync`] waits (no commit starts meanwhile).
    pub fn syncing(&self) -> bool {
        self.control.syncing.load(Ordering::Acquire)
    }
}

impl Feed {
    /// A feed and the apply thread's end of it.
    pub fn new() -> (Feed, Batches) {
        let (batches, received) = sync_channel(BATCHES_AHEAD);
        let control = Arc::new(Control::default());
        let feed = Feed {
            batches,
            pending: Mutex::new(Vec::with_capacity(BATCH)),
            control: control.clone(),
        };
        (feed, Batches { received, control })
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

    /// Returns once every item fed so far is applied and the commit step
    /// after them succeeded. Meanwhile the apply thread starts no commit:
    /// callers commit in line next (a revocation, shutdown), or, when they
    /// do not (the end of input not reached yet), leave it to the next
    /// batch. Fails once the apply thread has ended or failed.
    pub fn sync(&self) -> Result<()> {
        self.control.syncing.store(true, Ordering::Release);
        let synced = self.flush().and_then(|()| {
            let (done, applied) = channel();
            self.send(vec![Item::Sync(done)])?;
            applied.recv().map_err(|_| apply_thread_gone())
        });
        self.control.syncing.store(false, Ordering::Release);
        synced
    }

    /// Ends the apply thread once everything fed is applied ([`Feed::sync`]
    /// first): the clean end of a run. No-op after [`Feed::abort`].
    pub fn stop(&self) {
        if self.shift(STOPPED) {
            // An apply thread that already ended needs no message.
            let _ = self.send(vec![Item::Stop]);
        }
    }

    /// True after [`Feed::stop`].
    pub fn stopped(&self) -> bool {
        self.control.state.load(Ordering::Acquire) == STOPPED
    }

    /// Ends the apply thread at once, after a failure of the consumer
    /// thread: batches waiting are neither applied nor committed (their
    /// records are not committed, so whoever reads their partitions next
    /// reads them again). A batch being applied finishes, and commits only
    /// if the abort came after the apply thread's check; that is sound,
    /// since the consumer thread's failures leave the tasks sound. No-op
    /// after [`Feed::stop`].
    pub fn abort(&self) {
        if self.shift(ABORTED) {
            self.pending().clear();
            // Wakes an apply thread waiting for a batch; a full channel
            // needs no message (the apply thread checks before each batch).
            let _ = self.batches.try_send(vec![Item::Stop]);
        }
    }

    /// Moves from RUNNING to `state`; false when no longer running.
    fn shift(&self, state: u8) -> bool {
        self.control
            .state
            .compare_exchange(RUNNING, state, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn send(&self, batch: Vec<Item>) -> Result<()> {
        self.batches.send(batch).map_err(|_| apply_thread_gone())
    }
}

fn apply_thread_gone() -> anyhow::Error {
    anyhow!("the apply thread stopped")
}

/// Aborts the feed when dropped, unless it stopped: a consumer thread that
/// fails or panics stops the apply thread too.
pub struct AbortOnDrop<'a>(pub &'a Feed);

impl Drop for AbortOnDrop<'_> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::kafka::repartition::Repartitioned;
    use std::sync::Arc;

    fn record(offset: i64) -> Item {
        Item::Record(Consumed::Repartition {
            partition: 0,
            offset,
            record: Repartitioned::decode(None),
        })
    }

    /// An apply thread that notes what it receives, answering syncs.
    fn apply_side(batches: Batches) -> (Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let noted = seen.clone();
        let thread = std::thread::spawn(move || {
            while let Some(batch) = batches.next() {
                for item in batch {
                    let note = match item {
                        Item::Record(Consumed::Repartition { offset, .. }) => {
                            format!("record {offset}")
                        }
                        Item::Record(Consumed::Input { .. }) => "input".into(),
                        Item::InputEnd { partition, .. } => format!("end {partition}"),
                        Item::Idle => "idle".into(),
                        Item::Sync(done) => {
                            // The apply thread starts no commit meanwhile.
                            let note = format!("sync (syncing: {})", batches.syncing());
                            noted.lock().unwrap().push(note);
                            let _ = done.send(());
                            continue;
                        }
                        Item::Stop => return,
                    };
                    noted.lock().unwrap().push(note);
                }
            }
        });
        (seen, thread)
    }

    #[test]
    fn items_arrive_in_poll_order_and_sync_returns_once_all_are_applied() {
        let (feed, batches) = Feed::new();
        let (seen, thread) = apply_side(batches);
        let records = 2 * BATCH as i64 + 7;
        for offset in 0..records {
            feed.push(record(offset)).unwrap();
        }
        feed.push(Item::InputEnd {
            topic: "events".into(),
            partition: 3,
            end: records,
            position: Some(records),
        })
        .unwrap();
        feed.push(Item::Idle).unwrap();
        assert!(feed.has_pending(), "the last, partial batch waits");
        feed.sync().unwrap();
        let mut expected: Vec<String> = (0..records).map(|o| format!("record {o}")).collect();
        expected.extend(["end 3".into(), "idle".into(), "sync (syncing: true)".into()]);
        assert_eq!(*seen.lock().unwrap(), expected);
        feed.stop();
        assert!(feed.stopped());
        thread.join().unwrap();
        // Revocations after the end find the apply thread gone.
        assert!(feed.sync().is_err());
    }

    #[test]
    fn an_abort_applies_nothing_that_waits() {
        let (feed, batches) = Feed::new();
        let (seen, thread) = apply_side(batches);
        feed.push(record(0)).unwrap();
        feed.sync().unwrap();
        feed.push(record(1)).unwrap();
        {
            // A consumer thread that fails (or panics) drops its guard.
            let _abort = AbortOnDrop(&feed);
        }
        thread.join().unwrap();
        assert_eq!(*seen.lock().unwrap(), ["record 0", "sync (syncing: true)"]);
        assert!(!feed.stopped(), "aborted, not stopped");
        assert!(feed.sync().is_err());
    }

    /// A feed with one full batch handed over, then aborted.
    fn aborted_after_one_batch() -> (Feed, Batches) {
        let (feed, batches) = Feed::new();
        for offset in 0..BATCH as i64 {
            feed.push(record(offset)).unwrap();
        }
        feed.abort();
        (feed, batches)
    }

    #[test]
    fn an_abort_applies_no_batch_already_handed_over() {
        let (_feed, batches) = aborted_after_one_batch();
        let (seen, thread) = apply_side(batches);
        thread.join().unwrap();
        assert!(seen.lock().unwrap().is_empty());
    }

    #[test]
    fn a_stop_after_an_abort_applies_nothing() {
        let (feed, batches) = aborted_after_one_batch();
        feed.stop();
        assert!(!feed.stopped(), "still aborted");
        assert!(batches.aborted());
        assert!(batches.next().is_none());
    }

    #[test]
    fn the_feed_fails_once_the_apply_thread_is_gone() {
        let (feed, batches) = Feed::new();
        drop(batches);
        assert!(feed.sync().is_err());
        let full: Result<Vec<()>> = (0..BATCH as i64).map(|o| feed.push(record(o))).collect();
        assert!(full.is_err(), "a full batch finds no one to take it");
    }
}
