//! The experiment domain: records, validity join, windows, rollups.

pub mod outputs;
pub mod records;
pub mod task;
pub mod windows;

pub use outputs::*;
pub use records::*;
