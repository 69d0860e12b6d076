//! The generator's main loop: the snapshot first, then per record either a
//! side record (malformed, duplicate, outbox update or delete, re-delivery)
//! or the next step of a session.

use super::state::Gen;

/// Outbox rows younger than this (in ids) are never deleted by the cleanup.
const DELETE_LAG: u64 = 2_000;

impl Gen<'_> {
    pub(super) fn run(&mut self) -> anyhow::Result<()> {
        let n = self.o.records;
        let pairs = self.pair_state.len();
        let k = (self.o.active_sessions.max(1) as usize).min(pairs);
        for _ in 0..k {
            let s = self.new_session();
            self.sessions.push(s);
        }

        // Snapshot: the first rows of the table, read before streaming starts.
        let snap = self.o.snapshot_rows.min(n);
        if snap > 0 {
            self.snapshot_phase = true;
            // the snapshot runs between the last row it reads and the first streamed one
            self.tick(snap - 1);
            let last_row_ms = self.clock / 1000;
            self.tick(snap);
            self.snapshot_ts_ms = (self.clock / 1000 - 60).max(last_row_ms);
            while (self.snapshot.len() as u64) < snap {
                self.tick(self.snapshot.len() as u64);
                self.domain_step()?;
            }
            self.snapshot_phase = false;
            self.emit_snapshot()?;
        }

        while self.lines < n {
            self.tick(self.lines);
            let left = n - self.lines;
            let r = self.rng.f64();
            let o = self.o;
            let mut acc = o.malformed;
            if r < acc {
                self.malformed()?;
                continue;
            }
            acc += o.duplicates;
            if r < acc && !self.dups.is_empty() {
                self.duplicate()?;
                continue;
            }
            acc += o.outbox_updates;
            if r < acc && !self.rows.is_empty() {
                self.outbox_update()?;
                continue;
            }
            acc += o.outbox_deletes;
            if r < acc && left >= 2 && self.next_delete_id + DELETE_LAG < self.next_outbox_id {
                self.outbox_delete()?;
                continue;
            }
            acc += o.redeliveries;
            if r < acc && !self.history.is_empty() {
                self.redeliver(left)?;
                continue;
            }
            self.domain_step()?;
        }
        Ok(())
    }

    /// Business clock for the `i`-th record: linear over the span.
    #[inline]
    fn tick(&mut self, i: u64) {
        let n = self.o.records.max(1) as i128;
        self.clock = self.start_us + (self.span_us as i128 * i as i128 / n) as i64;
    }
}
