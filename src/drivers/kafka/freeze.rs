//! Notices when the process was frozen or starved of CPU (SIGSTOP, a VM
//! paused, a long stall) for longer than half the group session: the group
//! may have given its partitions to another member meanwhile, and librdkafka
//! tells (assignment lost) only at its next session check or heartbeat,
//! within about half a session of the resumption. A commit started before
//! that would land after the new holder's restore, so none starts until
//! then.
//!
//! A thread of its own ticks every [`TICK`], so a slow commit, a long
//! restore or a throttled turn of the other threads is not taken for a
//! freeze. Its clock is monotonic: a system suspend is not seen.

use anyhow::{Context, Result};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often the watch thread wakes.
const TICK: Duration = Duration::from_millis(100);

/// Whether commits may start: shared by the threads of a group run; its
/// thread ends when the last handle is dropped.
pub struct FreezeWatch(Arc<Mutex<Pauses>>);

impl FreezeWatch {
    /// Starts the watch for a group session of `session_timeout`.
    pub fn start(session_timeout: Duration) -> Result<Self> {
        let pauses = Arc::new(Mutex::new(Pauses::new(session_timeout / 2, Instant::now())));
        let watched = Arc::downgrade(&pauses);
        std::thread::Builder::new()
            .name("freeze-watch".into())
            .spawn(move || loop {
                std::thread::sleep(TICK);
                let Some(pauses) = watched.upgrade() else {
                    return;
                };
                let mut p = pauses.lock().unwrap_or_else(PoisonError::into_inner);
                p.tick(Instant::now());
            })
            .context("cannot start the freeze watch thread")?;
        Ok(FreezeWatch(pauses))
    }

    /// May a commit of the partitions held start now? False during half a
    /// session after a freeze, and right after one the watch has not seen yet.
    pub fn allows_commit(&self) -> bool {
        let p = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        p.allows(Instant::now())
    }
}

/// The watch's state: when it last ticked and until when commits wait.
struct Pauses {
    /// A gap between ticks longer than this is a freeze (half the session).
    longest: Duration,
    last_tick: Instant,
    hold_until: Option<Instant>,
}

impl Pauses {
    fn new(longest: Duration, now: Instant) -> Self {
        Pauses {
            longest,
            last_tick: now,
            hold_until: None,
        }
    }

    fn tick(&mut self, now: Instant) {
        let gap = now.saturating_duration_since(self.last_tick);
        if gap > self.longest {
            tracing::warn!(
                paused_ms = gap.as_millis() as u64,
                hold_ms = self.longest.as_millis() as u64,
                "the process was stopped or starved for longer than half the group session: commits wait until the group would have told whether its partitions were lost"
            );
            self.hold_until = Some(now + self.longest);
        }
        self.last_tick = now;
    }

    fn allows(&self, now: Instant) -> bool {
        // The watch has not ticked for that long: the process was frozen
        // until just now.
        let unseen = now.saturating_duration_since(self.last_tick) > self.longest;
        let held = self.hold_until.is_some_and(|until| now < until);
        !unseen && !held
    }
}

#[cfg(test)]
mod tests {
    use super::Pauses;
    use std::time::{Duration, Instant};

    #[test]
    fn commits_wait_half_a_session_after_a_freeze_longer_than_half_a_session() {
        let s = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut p = Pauses::new(5 * s, t0);
        p.tick(t0 + s);
        assert!(p.allows(t0 + s), "ticking in time");
        p.tick(t0 + 5 * s);
        assert!(p.allows(t0 + 5 * s), "a gap of 4 s is no freeze");
        assert!(
            !p.allows(t0 + 11 * s),
            "6 s without a tick: frozen until now, before the watch saw it"
        );
        p.tick(t0 + 11 * s);
        assert!(!p.allows(t0 + 11 * s), "seen: held");
        p.tick(t0 + 15 * s);
        assert!(!p.allows(t0 + 15 * s), "still within 5 s of it");
        p.tick(t0 + 16 * s);
        assert!(p.allows(t0 + 16 * s), "5 s later");
    }
}
