//! Wiring of the topology: the router (sub-topology 1), the tasks
//! (sub-topology 2), and the drivers that feed them.

pub mod file;
pub mod publish;
pub mod router;
pub mod summary;

pub use summary::Summary;
