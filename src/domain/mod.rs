//! The experiment domain's data: normalised records, output rows, dead
//! letters and the accounting of a run. No behaviour beyond small helpers.

pub mod accounting;
pub mod outputs;
pub mod records;

pub use accounting::Summary;
pub use outputs::*;
pub use records::*;
