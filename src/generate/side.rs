//! Side records: malformed lines, duplicated outbox rows, outbox
//! `processed_at` updates and cleanup deletes, connector re-deliveries.

use super::kinds::{AggId, EventType, Malformed, Op};
use super::rng::uuid_like;
use super::state::Gen;
use super::text::push_u64;

impl Gen<'_> {
    /// A malformed record, cycling through the four kinds.
    pub(super) fn malformed(&mut self) -> anyhow::Result<()> {
        let kind = self.malformed_cycle % 4;
        self.malformed_cycle += 1;
        if kind == 0 {
            // a torn line: the start of a record, cut mid-way, not JSON
            let oid = self.next_outbox_id;
            let start = self.obuf.len();
            let ob = &mut self.obuf;
            ob.extend_from_slice(b"{\"topic\":\"");
            ob.extend_from_slice(self.o.topic.as_bytes());
            ob.extend_from_slice(b"\",\"partition\":0,\"offset\":");
            push_u64(ob, self.lines);
            ob.extend_from_slice(b",\"key\":{\"id\":");
            push_u64(ob, oid);
            ob.extend_from_slice(b"},\"value\":{\"before\":null,\"after\":{\"id\":");
            push_u64(ob, oid);
            ob.extend_from_slice(b",\"aggregate_id\":\"evt_\n");
            let len = self.obuf.len() - start;
            self.stats.malformed_invalid_json += 1;
            return self.count_line(len);
        }
        let bad = match kind {
            1 => Malformed::MissingUserId,
            2 => Malformed::BadTimestamp,
            _ => Malformed::PayloadNotJson,
        };
        // a bad page view of a random active session's user
        let i = self.rng.below(self.sessions.len() as u64) as usize;
        let s = self.sessions[i];
        let event_id = self.next_event_id;
        self.next_event_id += 1;
        let oid = self.after_begin(AggId::Event(event_id), b"event", b"EVENT_CREATED");
        self.push_event_payload(&s, event_id, EventType::PageView, self.clock, bad);
        self.after_end(oid, false)?;
        match bad {
            Malformed::MissingUserId => self.stats.malformed_missing_user_id += 1,
            Malformed::BadTimestamp => self.stats.malformed_bad_timestamp += 1,
            _ => self.stats.malformed_payload_not_json += 1,
        }
        Ok(())
    }

    /// The same event inserted again into the outbox (new outbox id).
    pub(super) fn duplicate(&mut self) -> anyhow::Result<()> {
        let idx = self.rng.below(self.dups.len() as u64) as usize;
        let event_id = self.dups[idx].0;
        let oid = self.after_begin(AggId::Event(event_id), b"event", b"EVENT_CREATED");
        let (a, d) = (&mut self.after, &self.dups);
        a.extend_from_slice(&d[idx].1);
        self.after_end(oid, false)?;
        self.stats.duplicates += 1;
        Ok(())
    }

    /// A `processed_at` update (`op: u`) of a recent outbox row.
    pub(super) fn outbox_update(&mut self) -> anyhow::Result<()> {
        let idx = self.rng.below(self.rows.len() as u64) as usize;
        let oid = self.rows[idx].0;
        let mut row = std::mem::take(&mut self.after);
        row.clear();
        row.extend_from_slice(&self.rows[idx].1);
        row.extend_from_slice(b",\"processed_at\":\"");
        self.ts.zoned(&mut row, self.clock);
        row.extend_from_slice(b"\"}");
        let r = self.write_streamed(oid, &row, b"", Op::Update);
        self.after = row;
        r?;
        self.stats.outbox_updates += 1;
        Ok(())
    }

    /// Cleanup of the oldest outbox row: `d` with a key-only `before`, then its tombstone.
    pub(super) fn outbox_delete(&mut self) -> anyhow::Result<()> {
        let oid = self.next_delete_id;
        self.next_delete_id += 1;
        let mut before = std::mem::take(&mut self.after);
        before.clear();
        before.extend_from_slice(b"{\"id\":");
        push_u64(&mut before, oid);
        before.extend_from_slice(
            b",\"aggregate_id\":null,\"aggregate_type\":null,\"event_type\":null,\"payload\":null,\"created_at\":\"1970-01-01T00:00:00.000000Z\",\"processed_at\":null}",
        );
        let r = self.write_streamed(oid, &before, b"", Op::Delete);
        self.after = before;
        r?;
        self.stats.outbox_deletes += 1;
        let p = self.partition_of(oid);
        let body_start = self.line_begin(p);
        let ob = &mut self.obuf;
        ob.extend_from_slice(b"\"key\":{\"id\":");
        push_u64(ob, oid);
        ob.extend_from_slice(b"},\"value\":null");
        self.line_end(body_start, p)?;
        self.stats.tombstones += 1;
        Ok(())
    }

    /// A connector restart: the last records are delivered again, and the
    /// `runId` header changes from now on.
    pub(super) fn redeliver(&mut self, left: u64) -> anyhow::Result<()> {
        let max = (self.o.redelivery_max_batch.max(1) as u64)
            .min(self.history.len() as u64)
            .min(left);
        let k = self.rng.range(1, max) as usize;
        self.run_id = uuid_like(&mut self.rng, self.clock);
        self.stats.restarts += 1;
        let first = self.history.len() - k;
        let items: Vec<(u32, Vec<u8>)> = self
            .history
            .iter()
            .skip(first)
            .map(|&(bs, be, p)| (p, self.obuf[bs..be].to_vec()))
            .collect();
        for (p, body) in items {
            let body_start = self.line_begin(p);
            self.obuf.extend_from_slice(&body);
            self.line_end(body_start, p)?;
            self.stats.redelivered += 1;
        }
        Ok(())
    }
}
