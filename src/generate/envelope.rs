//! Outbox rows and their Debezium envelopes: the `after` row around the
//! payload, the snapshot (`op: r`, heap order), streamed records with their
//! transaction/LSN bookkeeping, and the record line with its headers.

use super::kinds::{AggId, Op, SnapRow};
use super::rng::mix64;
use super::state::Gen;
use super::text::{push_i64, push_u64};

/// Ring of recent outbox rows kept for `processed_at` updates.
const ROW_RING: usize = 1024;

impl Gen<'_> {
    /// Start a new outbox row in `self.after`, up to the opening quote of `payload`.
    pub(super) fn after_begin(&mut self, agg: AggId, agg_type: &[u8], event_type: &[u8]) -> u64 {
        let oid = self.next_outbox_id;
        self.next_outbox_id += 1;
        self.cur_assignment = matches!(agg, AggId::Assignment(_));
        let a = &mut self.after;
        a.clear();
        a.extend_from_slice(b"{\"id\":");
        push_u64(a, oid);
        a.extend_from_slice(b",\"aggregate_id\":\"");
        match agg {
            AggId::Assignment(id) => push_u64(a, id as u64),
            AggId::Event(id) => {
                a.extend_from_slice(b"evt_");
                push_u64(a, id);
            }
        }
        a.extend_from_slice(b"\",\"aggregate_type\":\"");
        a.extend_from_slice(agg_type);
        a.extend_from_slice(b"\",\"event_type\":\"");
        a.extend_from_slice(event_type);
        a.extend_from_slice(b"\",\"payload\":\"");
        oid
    }

    /// Close the payload and add `created_at` (= the clock), then write the
    /// row (`c`), or hold it for the snapshot (`r`).
    pub(super) fn after_end(&mut self, oid: u64, keep: bool) -> anyhow::Result<()> {
        let a = &mut self.after;
        a.extend_from_slice(b"\",\"created_at\":\"");
        self.ts.zoned(a, self.clock);
        a.push(b'"');
        if keep
            && self.o.outbox_updates > 0.0
            && (self.rows.len() < ROW_RING || oid.is_multiple_of(8))
        {
            if self.rows.len() < ROW_RING {
                self.rows.push((oid, self.after.clone()));
            } else {
                let r = &mut self.rows[self.rows_pos];
                r.0 = oid;
                r.1.clear();
                r.1.extend_from_slice(&self.after);
                self.rows_pos = (self.rows_pos + 1) % ROW_RING;
            }
        }
        let row = std::mem::take(&mut self.after);
        let r = if self.snapshot_phase {
            self.snapshot.push(SnapRow {
                outbox_id: oid,
                after: row.clone(),
                assignment: self.cur_assignment,
            });
            Ok(())
        } else {
            self.write_streamed(oid, &row, b",\"processed_at\":null}", Op::Create)
        };
        self.after = row;
        r
    }

    /// Emit the snapshot in heap order: rows updated before the snapshot
    /// (some assignments, already processed) come last.
    pub(super) fn emit_snapshot(&mut self) -> anyhow::Result<()> {
        let rows = std::mem::take(&mut self.snapshot);
        let mut front = Vec::with_capacity(rows.len());
        let mut back = Vec::new();
        for r in rows {
            if r.assignment && self.rng.chance(0.25) {
                back.push(r);
            } else {
                front.push(r);
            }
        }
        let processed = self.snapshot_ts_ms * 1000 - 1_000;
        let total = front.len() + back.len();
        self.tx_id += 1;
        let snap_lsn = self.lsn;
        let mut suffix = Vec::with_capacity(64);
        for (i, (r, was_processed)) in front
            .into_iter()
            .map(|r| (r, false))
            .chain(back.into_iter().map(|r| (r, true)))
            .enumerate()
        {
            suffix.clear();
            if was_processed {
                suffix.extend_from_slice(b",\"processed_at\":\"");
                self.ts.zoned(&mut suffix, processed);
                suffix.extend_from_slice(b"\"}");
            } else {
                suffix.extend_from_slice(b",\"processed_at\":null}");
            }
            let flag: &[u8] = if i == 0 {
                b"first"
            } else if i + 1 == total {
                b"last"
            } else {
                b"true"
            };
            self.write_envelope(r.outbox_id, &r.after, &suffix, Op::Read, flag, snap_lsn)?;
            self.snapshot_emitted += 1;
            self.stats.snapshot += 1;
        }
        self.tx_id += 1;
        self.lsn += 272;
        Ok(())
    }

    /// One streamed row in its own transaction: `row` + `suffix` is the
    /// `after` row (create, update) or the `before` row (delete).
    pub(super) fn write_streamed(
        &mut self,
        oid: u64,
        row: &[u8],
        suffix: &[u8],
        op: Op,
    ) -> anyhow::Result<()> {
        self.tx_id += 1;
        self.lsn += 232 + (row.len() as u64 & !7);
        let lsn = self.lsn;
        self.write_envelope(oid, row, suffix, op, b"false", lsn)?;
        self.last_commit_lsn = Some(lsn + 48);
        Ok(())
    }

    /// Write a whole record line: `"key":{"id":oid},"value":{envelope}`.
    fn write_envelope(
        &mut self,
        oid: u64,
        row: &[u8],
        suffix: &[u8],
        op: Op,
        snapshot: &[u8],
        lsn: u64,
    ) -> anyhow::Result<()> {
        let snap = op == Op::Read;
        let commit_ms = if snap {
            self.snapshot_ts_ms
        } else {
            self.clock / 1000 + 3
        };
        let proc_us = if snap {
            self.snapshot_ts_ms * 1000 + 5_000 + (self.snapshot_emitted as i64) * 20
        } else {
            self.clock + 40_000 + (self.rng.below(400_000) as i64)
        };
        let sub_ns = self.rng.below(1000) as i64;
        let src_us = commit_ms * 1000 + (lsn % 997) as i64;
        let p = self.partition_of(oid);
        let body_start = self.line_begin(p);
        let b = &mut self.obuf;
        b.extend_from_slice(b"\"key\":{\"id\":");
        push_u64(b, oid);
        b.extend_from_slice(b"},\"value\":{\"before\":");
        if op == Op::Delete {
            b.extend_from_slice(row);
            b.extend_from_slice(suffix);
            b.extend_from_slice(b",\"after\":null");
        } else {
            b.extend_from_slice(b"null,\"after\":");
            b.extend_from_slice(row);
            b.extend_from_slice(suffix);
        }
        b.extend_from_slice(b",\"source\":{\"version\":\"3.6.3.Final\",\"connector\":\"postgresql\",\"name\":\"experiments\",\"ts_ms\":");
        push_i64(b, commit_ms);
        b.extend_from_slice(b",\"snapshot\":\"");
        b.extend_from_slice(snapshot);
        b.extend_from_slice(b"\",\"db\":\"experiments\",\"sequence\":\"[");
        match (snap, self.last_commit_lsn) {
            (false, Some(c)) => {
                b.extend_from_slice(br#"\""#);
                push_u64(b, c);
                b.extend_from_slice(br#"\""#);
            }
            _ => b.extend_from_slice(b"null"),
        }
        b.extend_from_slice(br#",\""#);
        push_u64(b, lsn);
        b.extend_from_slice(br#"\"]","ts_us":"#);
        push_i64(b, src_us);
        b.extend_from_slice(b",\"ts_ns\":");
        push_i64(b, src_us * 1000);
        b.extend_from_slice(b",\"schema\":\"public\",\"table\":\"outbox_events\",\"txId\":");
        push_u64(b, self.tx_id);
        b.extend_from_slice(b",\"lsn\":");
        push_u64(b, lsn);
        b.extend_from_slice(
            b",\"xmin\":null,\"origin\":null,\"origin_lsn\":null},\"transaction\":null,\"op\":\"",
        );
        b.push(match op {
            Op::Create => b'c',
            Op::Read => b'r',
            Op::Update => b'u',
            Op::Delete => b'd',
        });
        b.extend_from_slice(b"\",\"ts_ms\":");
        push_i64(b, proc_us / 1000);
        b.extend_from_slice(b",\"ts_us\":");
        push_i64(b, proc_us);
        b.extend_from_slice(b",\"ts_ns\":");
        push_i64(b, proc_us * 1000 + sub_ns);
        b.push(b'}');
        self.line_end(body_start, p)
    }

    /// Input partition of an outbox row.
    pub(super) fn partition_of(&self, oid: u64) -> u32 {
        if self.o.partitions <= 1 {
            0
        } else {
            (mix64(oid) % self.o.partitions as u64) as u32
        }
    }

    /// Write `{"topic":…,"partition":…,"offset":…,` and return where the body starts.
    #[inline]
    pub(super) fn line_begin(&mut self, partition: u32) -> usize {
        self.line_start = self.obuf.len();
        let ob = &mut self.obuf;
        ob.extend_from_slice(b"{\"topic\":\"");
        ob.extend_from_slice(self.o.topic.as_bytes());
        ob.extend_from_slice(b"\",\"partition\":");
        push_u64(ob, partition as u64);
        ob.extend_from_slice(b",\"offset\":");
        push_u64(ob, self.lines);
        ob.push(b',');
        self.obuf.len()
    }

    /// Close the line with the headers; remember the body for re-delivery.
    #[inline]
    pub(super) fn line_end(&mut self, body_start: usize, partition: u32) -> anyhow::Result<()> {
        let body_end = self.obuf.len();
        let ob = &mut self.obuf;
        ob.extend_from_slice(
            b",\"headers\":{\"__debezium.context.connectorLogicalName\":\"experiments\",\"__debezium.context.taskId\":\"0\",\"__debezium.context.connectorName\":\"postgresql\",\"__debezium.context.runId\":\"",
        );
        ob.extend_from_slice(self.run_id.as_bytes());
        ob.extend_from_slice(b"\"}}\n");
        if self.o.redeliveries > 0.0 {
            let cap = self.o.redelivery_max_batch.max(1) as usize;
            if self.history.len() == cap {
                self.history.pop_front();
            }
            self.history.push_back((body_start, body_end, partition));
        }
        let line_len = self.obuf.len() - self.line_start;
        self.count_line(line_len)
    }

    #[inline]
    /// Count a written line; write the buffer out when it is full.
    pub(super) fn count_line(&mut self, len: usize) -> anyhow::Result<()> {
        self.lines += 1;
        self.stats.records += 1;
        self.stats.bytes += len as u64;
        if self.obuf.len() >= (1 << 20) {
            self.out.write_all(&self.obuf[self.written..])?;
            // keep the recent records (re-delivery), drop the rest
            let keep_from = self.history.front().map(|h| h.0).unwrap_or(self.obuf.len());
            self.obuf.drain(..keep_from);
            for h in self.history.iter_mut() {
                h.0 -= keep_from;
                h.1 -= keep_from;
            }
            self.written = self.obuf.len();
        }
        Ok(())
    }
}
