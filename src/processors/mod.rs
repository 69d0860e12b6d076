//! The two sub-topologies' processors (SPEC 3), side by side. Both run
//! unchanged in file mode and in Kafka mode; the drivers only decide where
//! their records come from and when they commit.
//!
//! - [`router`] (sub-topology 1, one per input partition): accounting, the
//!   assignment-id mapping, re-keying by user, the partition's stream time.
//! - [`join`] (sub-topology 2, one per repartition partition): the validity
//!   join, windows and per-user rollups.

pub mod join;
pub mod router;

use crate::domain::{SkipReason, Summary};

/// The accounting of a run (SPEC 2.5) from its routers' and join tasks'
/// counters.
pub fn summary<'a>(
    routers: impl IntoIterator<Item = &'a router::RouterCounters>,
    joins: impl IntoIterator<Item = &'a join::TaskCounters>,
) -> Summary {
    let mut s = Summary::default();
    for r in routers {
        r.add_to(&mut s);
    }
    for c in joins {
        s.events_emitted += c.events_emitted;
        s.assignments_applied += c.assignments_applied;
        s.add_skipped(SkipReason::Duplicate, c.duplicates);
    }
    s
}
