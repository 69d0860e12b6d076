//! Per-partition tasks: a processor plus the offsets it applied.

use crate::AppliedOffsets;

/// The processing logic of one task (one partition of a sub-topology).
pub trait Processor {
    /// Input record type.
    type Input;
    /// Where outputs are collected.
    type Output;
    /// Applies one record.
    fn process(&mut self, input: Self::Input, out: &mut Self::Output);
    /// End of input (file mode, `--until-end`, replays): flush everything pending.
    fn end_of_input(&mut self, out: &mut Self::Output);
}

/// A task: a processor for one partition, dropping re-delivered records by
/// their origin offsets.
pub struct Task<P> {
    /// Partition the task owns.
    pub partition: u32,
    /// The processing logic and its state.
    pub processor: P,
    /// Offsets applied so far (checkpointed with the state).
    pub applied: AppliedOffsets,
}

impl<P: Processor> Task<P> {
    /// A task for `partition`.
    pub fn new(partition: u32, processor: P, applied: AppliedOffsets) -> Self {
        Task {
            partition,
            processor,
            applied,
        }
    }

    /// Offers a record from (topic, partition, offset); returns false when it
    /// was already applied and therefore dropped.
    pub fn offer(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        input: P::Input,
        out: &mut P::Output,
    ) -> bool {
        if self.applied.is_applied(topic, partition, offset) {
            return false;
        }
        self.processor.process(input, out);
        self.applied.mark(topic, partition, offset);
        true
    }
}
