//! A small Kafka-Streams-style topology library.
//!
//! - [`partitioner`]: Kafka's murmur2 key partitioner, for re-keying into a
//!   repartition topic exactly as a Java producer would.
//! - [`stream_time`]: per-task stream time with snapshot hold-back, and
//!   punctuation of due deadlines on stream time.
//! - [`offsets`]: the offsets a task has applied, per origin partition, used to
//!   drop re-deliveries after a crash or a producer retry.
//! - [`task`]: the processor trait every task implements.
//! - [`host`]: hosting tasks — positions, dirty tracking, segments, restore
//!   before the first record.
//! - [`commit`]: the commit protocol, the same in both modes — outputs first
//!   (behind durable intents), then state, checkpoints and positions.
//! - [`watermark`]: event time across input partitions: a task's watermark
//!   as the minimum of its input partitions' stream times.
//! - [`alignment`]: which input partitions to pause so that none is read
//!   far ahead of the others in event time.
//! - [`lines`]: a resumable, chunked line source for files.
//! - [`kafka`]: internal topics, changelog commit and restore on a broker.

pub mod alignment;
pub mod commit;
pub mod host;
pub mod kafka;
pub mod lines;
pub mod offsets;
pub mod partitioner;
pub mod stream_time;
pub mod task;
pub mod watermark;

pub use commit::{commit, Durability, Intent, LocalDurability, TaskCommit};
pub use host::{Hosted, Tasks};
pub use offsets::AppliedOffsets;
pub use partitioner::{murmur2, partition_for_key};
pub use stream_time::{Deadlines, StreamTime};
pub use task::Processor;
pub use watermark::{SourceTime, Watermarks};
