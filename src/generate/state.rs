//! The generator state ([`Gen`]), threaded through every step: output
//! buffer, clock, Debezium bookkeeping, ids, sessions and recent rows.

use super::kinds::{variant_key, Session, SnapRow};
use super::rng::{mix64, uuid_like, Rng};
use super::stats::{GenerateStats, VariantStats};
use super::time::{parse_start, TsFmt};
use super::GenerateOptions;
use crate::time::SECOND;
use std::io::Write;

/// The whole generator state, threaded through every step.
pub(super) struct Gen<'a> {
    pub(super) o: &'a GenerateOptions,
    pub(super) out: &'a mut dyn Write,
    /// Output buffer; `obuf[..written]` has been written out already (kept
    /// for re-deliveries).
    pub(super) obuf: Vec<u8>,
    pub(super) written: usize,
    /// Where the line being written starts in `obuf`.
    pub(super) line_start: usize,
    pub(super) stats: GenerateStats,
    pub(super) rng: Rng,
    pub(super) ts: TsFmt,
    pub(super) start_us: i64,
    pub(super) span_us: i64,
    /// Business clock: the moment the current record is written.
    pub(super) clock: i64,
    pub(super) lines: u64,
    // Debezium bookkeeping
    pub(super) tx_id: u64,
    pub(super) lsn: u64,
    pub(super) last_commit_lsn: Option<u64>,
    pub(super) run_id: String,
    pub(super) snapshot_phase: bool,
    pub(super) snapshot_ts_ms: i64,
    pub(super) snapshot_emitted: u64,
    // ids
    pub(super) next_outbox_id: u64,
    pub(super) next_assignment_id: u32,
    pub(super) next_event_id: u64,
    pub(super) next_session_no: u64,
    pub(super) next_delete_id: u64,
    pub(super) malformed_cycle: u32,
    // per (experiment, user) pair: bit 7 = in an active session, bits 0..6 = variant + 1 (0 = none)
    pub(super) pair_state: Vec<u8>,
    pub(super) pair_assign_id: Vec<u32>,
    pub(super) pair_assigned_at: Vec<i64>,
    pub(super) sessions: Vec<Session>,
    /// A session whose next record must come at once (an assignment right
    /// after the event that preceded it).
    pub(super) sticky: Option<usize>,
    /// The outbox row being built (`after` without `processed_at`).
    pub(super) after: Vec<u8>,
    pub(super) props: Vec<u8>,
    /// Recent outbox rows (id, row) kept for `processed_at` updates.
    pub(super) rows: Vec<(u64, Vec<u8>)>,
    pub(super) rows_pos: usize,
    /// Recent event payloads (event id, escaped payload) kept for duplicates.
    pub(super) dups: Vec<(u64, Vec<u8>)>,
    pub(super) dups_pos: usize,
    /// Recent records (body start, body end, partition) in `obuf`, for re-delivery.
    pub(super) history: std::collections::VecDeque<(usize, usize, u32)>,
    pub(super) snapshot: Vec<SnapRow>,
    /// The row being built is an assignment.
    pub(super) cur_assignment: bool,
    pub(super) user_width: usize,
    pub(super) variant_keys: Vec<String>,
}

impl<'a> Gen<'a> {
    pub(super) fn new(o: &'a GenerateOptions, out: &'a mut dyn Write) -> anyhow::Result<Self> {
        let start_us = parse_start(&o.start)?;
        let pairs = o.users as usize * o.experiments as usize;
        let mut rng = Rng(mix64(o.seed ^ 0x6e65_6f6e_626c_7565));
        let run_id = uuid_like(&mut rng, start_us);
        let digits = (o.users.saturating_sub(1)).max(1).ilog10() as usize + 1;
        let mut stats = GenerateStats::default();
        let variant_keys: Vec<String> = (0..o.variants).map(variant_key).collect();
        stats.per_variant = variant_keys
            .iter()
            .map(|k| VariantStats {
                variant_key: k.clone(),
                exposures: 0,
                conversions: 0,
            })
            .collect();
        Ok(Gen {
            o,
            out,
            obuf: Vec::with_capacity(1 << 20),
            written: 0,
            line_start: 0,
            stats,
            rng,
            ts: TsFmt::new(),
            start_us,
            span_us: (o.span_secs as i64).saturating_mul(SECOND),
            clock: start_us,
            lines: 0,
            tx_id: 752,
            lsn: 26_536_208,
            last_commit_lsn: None,
            run_id,
            snapshot_phase: false,
            snapshot_ts_ms: 0,
            snapshot_emitted: 0,
            next_outbox_id: 1,
            next_assignment_id: 1,
            next_event_id: 1,
            next_session_no: 1,
            next_delete_id: 1,
            malformed_cycle: 0,
            pair_state: vec![0; pairs],
            pair_assign_id: vec![0; pairs],
            pair_assigned_at: vec![0; pairs],
            sessions: Vec::new(),
            sticky: None,
            after: Vec::with_capacity(1024),
            props: Vec::with_capacity(256),
            rows: Vec::new(),
            rows_pos: 0,
            dups: Vec::new(),
            dups_pos: 0,
            history: std::collections::VecDeque::new(),
            snapshot: Vec::new(),
            cur_assignment: false,
            user_width: digits.max(7),
            variant_keys,
        })
    }

    pub(super) fn flush(&mut self) -> anyhow::Result<()> {
        self.out.write_all(&self.obuf[self.written..])?;
        self.obuf.clear();
        self.written = 0;
        self.history.clear();
        self.out.flush()?;
        Ok(())
    }
}
