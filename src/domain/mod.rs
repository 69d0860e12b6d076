//! The experiment domain: records, validity join, windows, rollups.

pub mod records;

pub use records::*;
