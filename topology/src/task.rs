//! The processing logic of a task.

/// The processing logic of one task (one partition of a sub-topology).
pub trait Processor {
    /// Input record type.
    type Input;
    /// Where outputs are collected.
    type Output;
    /// Failures (reading or writing state).
    type Error;
    /// Applies one record.
    fn process(&mut self, input: Self::Input, out: &mut Self::Output) -> Result<(), Self::Error>;
    /// End of input (file mode, `--until-end`, replays): flush everything pending.
    fn end_of_input(&mut self, out: &mut Self::Output) -> Result<(), Self::Error>;
}
