//! Deterministic synthetic Debezium outbox envelopes in the seed format.
//!
//! [`generate`] writes JSONL in the SPEC 2.4 record-object form
//! `{"topic","partition","offset","key","value","headers"}`, one record per
//! line, whose `value` is a Debezium PostgreSQL change envelope of the
//! `outbox_events` table exactly as `JsonConverter` (`schemas.enable=false`)
//! writes it (see `tests/fixtures/outbox_json.raw.jsonl`): compact separators,
//! `before`/`after`/`source`/`transaction`/`op`/`ts_ms`/`ts_us`/`ts_ns`, the
//! `after` row with `id`, `aggregate_id`, `aggregate_type`, `event_type`,
//! `payload` (the application's JSON text as a string, Python `json.dumps`
//! spacing, timestamps in Python `isoformat()`), `created_at` (Debezium
//! `ZonedTimestamp`, `Z` and six fraction digits) and `processed_at`, and the
//! four `__debezium.context.*` headers. A typical line is about 1.3 KB, of
//! which about 1 KB is the envelope.
//!
//! The simulation: users take part in experiments; each (experiment, user)
//! pair gets an `ASSIGNMENT_CREATED` before its first session, sessions are
//! `exposure`, a few `page_view`s, maybe a `click` and maybe a `conversion`
//! (with a `value` and a `score`) whose probability depends on the variant.
//! A fixed number of sessions is active at once and interleaved, so the
//! stream looks like live traffic. Business time advances linearly from
//! [`GenerateOptions::start`] over [`GenerateOptions::span_secs`]. On top of
//! that the "trouble" knobs add what production streams carry: out-of-order
//! timestamps, events before their assignment, unassigned users, late events,
//! duplicates and connector re-deliveries, malformed records; and the
//! Debezium/outbox mechanics add a snapshot (`op: r`, in heap order), outbox
//! `processed_at` updates (`op: u`), outbox cleanup deletes (`op: d`) each
//! followed by its tombstone.
//!
//! Same options ⇒ byte-identical output (the RNG is a seeded SplitMix64, no
//! hash maps, no clock). Offsets are the 0-based line index of the record in
//! the file whatever its partition (Kafka offsets may have gaps), so a line
//! that is not JSON at all — which a reader attributes to partition 0 at its
//! line index (SPEC 2.4) — never collides with another record's offset.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// Knobs of the synthetic stream. Every field has a realistic small default
/// ([`Default`]); [`GenerateOptions::clean`] turns every "trouble" knob off.
/// Probabilities are in `[0, 1]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateOptions {
    /// RNG seed: same seed and options ⇒ byte-identical output.
    pub seed: u64,
    /// Total number of lines (records) to write, everything included
    /// (snapshot rows, updates, deletes, tombstones, malformed lines, copies).
    pub records: u64,
    /// Number of distinct users (`user_0000000` …, at least 7 digits).
    pub users: u32,
    /// Number of experiments (ids `1..=experiments`).
    pub experiments: u32,
    /// Variants per experiment (1..=127). Variant `k` of experiment `e` has
    /// id `e * 100 + k + 1` and key `control` (k = 0), `treatment` (k = 1),
    /// `variant_<k+1>` (k ≥ 2).
    pub variants: u32,
    /// Per-variant probability that a session (one exposure) ends in a
    /// conversion, by variant index; variants past the end use the last
    /// value. Default `[0.10, 0.12]`: a real 20 % relative uplift.
    pub conversion_rates: Vec<f64>,
    /// Mean number of `page_view` events per session (geometric with at
    /// least one; `0` for none).
    pub mean_page_views: f64,
    /// Probability that a session has a `click`.
    pub click_rate: f64,
    /// Smallest conversion `value`, in cents.
    pub value_min_cents: u32,
    /// Largest conversion `value`, in cents.
    pub value_max_cents: u32,
    /// Fraction of events whose `properties` is a string holding JSON
    /// (as rows written by another client) instead of an object.
    pub string_properties: f64,
    /// Business time of the first record: ISO-8601 (`2025-09-30T00:00:00Z`,
    /// `…+00:00`, optional fraction).
    pub start: String,
    /// Business time covered by the stream, in seconds (default 2 days).
    pub span_secs: u64,
    /// Sessions interleaved at any moment (bounded by users × experiments).
    pub active_sessions: u32,
    /// Out-of-order jitter: an event's timestamp is up to this many seconds
    /// before the moment it is written (never before its assignment). Kept
    /// below the 5-minute grace by default so reordering is harmless.
    pub jitter_secs: f64,
    /// Probability that a new assignment is written *after* the user's
    /// first event (exposure) of the session, with an `assigned_at` later
    /// than it: that event is `before_assignment`.
    pub before_assignment: f64,
    /// Fraction of users that never get an assignment: all their events are
    /// `unassigned` (a client claim of a variant is still sent, or null).
    pub unassigned_users: f64,
    /// Probability that a session of an already assigned user starts with a
    /// re-assignment (`ASSIGNMENT_UPDATED`, another variant, later
    /// `assigned_at`, source `rebalance`).
    pub reassignments: f64,
    /// Probability that a session ends with `ASSIGNMENT_DELETED` of its
    /// assignment (the user's next session is assigned anew).
    pub deletes: f64,
    /// Probability that an event is late: its timestamp is
    /// `late_min_secs..late_max_secs` before the moment it is written, so its
    /// hourly window closed long ago.
    pub late_events: f64,
    /// Lower bound of a late event's lag, seconds.
    pub late_min_secs: u64,
    /// Upper bound of a late event's lag, seconds.
    pub late_max_secs: u64,
    /// Fraction of records that are malformed, cycling through: a line that
    /// is not JSON (torn write), an event payload without `user_id`, an
    /// event with an unparseable `timestamp`, a payload string that is not
    /// JSON.
    pub malformed: f64,
    /// Fraction of records that are a duplicated outbox row: a recent
    /// event's payload inserted again under a new outbox id (same event id).
    pub duplicates: f64,
    /// Per-record probability of a connector restart that re-delivers the
    /// last `1..=redelivery_max_batch` records verbatim (new offsets); the
    /// `runId` header changes from then on.
    pub redeliveries: f64,
    /// Upper bound of records re-delivered by one restart.
    pub redelivery_max_batch: u32,
    /// Outbox rows read by the initial snapshot (`op: r`) before streaming
    /// starts. Emitted in heap order: rows already updated (processed) before
    /// the snapshot come last, so some events precede their assignments.
    pub snapshot_rows: u64,
    /// Fraction of records that are outbox `processed_at` updates (`op: u`,
    /// `before: null`) of a recent row.
    pub outbox_updates: f64,
    /// Fraction of records that are outbox cleanup deletes (`op: d`, key-only
    /// `before`) of the oldest rows, each followed by its tombstone (so each
    /// one costs two records).
    pub outbox_deletes: f64,
    /// Topic written in every record (the original deployment's routed topic).
    pub topic: String,
    /// Number of input partitions; a record goes to `hash(outbox id) % n`.
    pub partitions: u32,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            seed: 42,
            records: 100_000,
            users: 20_000,
            experiments: 3,
            variants: 2,
            conversion_rates: vec![0.10, 0.12],
            mean_page_views: 2.0,
            click_rate: 0.35,
            value_min_cents: 500,
            value_max_cents: 20_000,
            string_properties: 0.05,
            start: "2025-09-30T00:00:00Z".to_string(),
            span_secs: 2 * 86_400,
            active_sessions: 256,
            jitter_secs: 30.0,
            before_assignment: 0.01,
            unassigned_users: 0.01,
            reassignments: 0.005,
            deletes: 0.001,
            late_events: 0.001,
            late_min_secs: 2 * 3600,
            late_max_secs: 6 * 3600,
            malformed: 0.0005,
            duplicates: 0.002,
            redeliveries: 0.000_01,
            redelivery_max_batch: 16,
            snapshot_rows: 1_000,
            outbox_updates: 0.01,
            outbox_deletes: 0.002,
            topic: "experiments_events".to_string(),
            partitions: 1,
        }
    }
}

impl GenerateOptions {
    /// The defaults with every "trouble" knob at zero: no late events, no
    /// unassigned users, no events before their assignment, no malformed
    /// records, no duplicates or re-deliveries, no reordering (jitter 0).
    /// Every event of a clean stream is valid and on time. Snapshot,
    /// re-assignments, deletes, outbox updates/deletes and tombstones stay.
    pub fn clean() -> Self {
        GenerateOptions {
            jitter_secs: 0.0,
            before_assignment: 0.0,
            unassigned_users: 0.0,
            late_events: 0.0,
            malformed: 0.0,
            duplicates: 0.0,
            redeliveries: 0.0,
            ..GenerateOptions::default()
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.users == 0 || self.experiments == 0 {
            bail!("users and experiments must be at least 1");
        }
        if !(1..=127).contains(&self.variants) {
            bail!("variants must be in 1..=127");
        }
        if self.partitions == 0 {
            bail!("partitions must be at least 1");
        }
        if self.conversion_rates.is_empty() {
            bail!("conversion_rates must not be empty");
        }
        if self.value_min_cents > self.value_max_cents {
            bail!("value_min_cents > value_max_cents");
        }
        if self.late_min_secs > self.late_max_secs {
            bail!("late_min_secs > late_max_secs");
        }
        let probs = [
            ("click_rate", self.click_rate),
            ("string_properties", self.string_properties),
            ("before_assignment", self.before_assignment),
            ("unassigned_users", self.unassigned_users),
            ("reassignments", self.reassignments),
            ("deletes", self.deletes),
            ("late_events", self.late_events),
            ("malformed", self.malformed),
            ("duplicates", self.duplicates),
            ("redeliveries", self.redeliveries),
            ("outbox_updates", self.outbox_updates),
            ("outbox_deletes", self.outbox_deletes),
        ];
        for (name, p) in probs {
            if !(0.0..=1.0).contains(&p) {
                bail!("{name} must be a probability in [0, 1], got {p}");
            }
        }
        for &p in &self.conversion_rates {
            if !(0.0..=1.0).contains(&p) {
                bail!("conversion rate {p} not in [0, 1]");
            }
        }
        let side = self.malformed
            + self.duplicates
            + self.redeliveries
            + self.outbox_updates
            + self.outbox_deletes;
        if side > 0.9 {
            bail!("malformed + duplicates + redeliveries + outbox_updates + outbox_deletes must be ≤ 0.9");
        }
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if !non_negative(self.jitter_secs) || !non_negative(self.mean_page_views) {
            bail!("jitter_secs and mean_page_views must be ≥ 0");
        }
        parse_start(&self.start)?;
        Ok(())
    }
}

/// Exposures and conversions written for one variant index (all experiments).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantStats {
    /// Variant key (`control`, `treatment`, `variant_3`, …).
    pub variant_key: String,
    /// Exposure events of sessions in this variant.
    pub exposures: u64,
    /// Conversion events of sessions in this variant.
    pub conversions: u64,
}

/// What [`generate`] wrote, by kind. `records` = lines written =
/// `assignments_created + assignments_updated + assignments_deleted + events
/// + duplicates + redelivered + outbox_updates + outbox_deletes + tombstones
/// + malformed()`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateStats {
    /// Lines written.
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Records read by the snapshot (`op: r`), included in the kinds below.
    pub snapshot: u64,
    /// `ASSIGNMENT_CREATED` outbox rows.
    pub assignments_created: u64,
    /// `ASSIGNMENT_UPDATED` outbox rows (re-assignments).
    pub assignments_updated: u64,
    /// `ASSIGNMENT_DELETED` outbox rows.
    pub assignments_deleted: u64,
    /// Well-formed `EVENT_CREATED` outbox rows, first copies only.
    pub events: u64,
    /// … of which `exposure`.
    pub exposures: u64,
    /// … of which `page_view`.
    pub page_views: u64,
    /// … of which `click`.
    pub clicks: u64,
    /// … of which `conversion` (all carry a `value`).
    pub conversions: u64,
    /// Events of users that never get an assignment.
    pub events_unassigned_user: u64,
    /// Events written before their (later) assignment.
    pub events_before_assignment: u64,
    /// Events timestamped hours in the past (late).
    pub events_late: u64,
    /// Duplicated outbox rows (an earlier event's payload, new outbox id).
    pub duplicates: u64,
    /// Records re-sent verbatim by simulated connector restarts.
    pub redelivered: u64,
    /// Connector restarts simulated.
    pub restarts: u64,
    /// Outbox `processed_at` updates (`op: u`).
    pub outbox_updates: u64,
    /// Outbox deletes (`op: d`).
    pub outbox_deletes: u64,
    /// Tombstones (null value), one after each delete.
    pub tombstones: u64,
    /// Lines that are not JSON.
    pub malformed_invalid_json: u64,
    /// Events whose payload lacks `user_id`.
    pub malformed_missing_user_id: u64,
    /// Events whose `timestamp` cannot be parsed.
    pub malformed_bad_timestamp: u64,
    /// Outbox rows whose payload string is not JSON.
    pub malformed_payload_not_json: u64,
    /// Per variant index: exposures and conversions of sessions in it.
    pub per_variant: Vec<VariantStats>,
}

impl GenerateStats {
    /// All malformed records.
    pub fn malformed(&self) -> u64 {
        self.malformed_invalid_json
            + self.malformed_missing_user_id
            + self.malformed_bad_timestamp
            + self.malformed_payload_not_json
    }
}

/// Write `opts.records` JSONL records to `out`. Output is buffered
/// internally (write to a plain `File` without a `BufWriter` if you like).
pub fn generate(opts: &GenerateOptions, out: &mut dyn Write) -> anyhow::Result<GenerateStats> {
    opts.validate()?;
    let mut g = Gen::new(opts, out)?;
    g.run()?;
    g.flush()?;
    Ok(g.stats)
}

/// [`generate`] into a new file at `path` (created or truncated).
pub fn generate_to_path(
    opts: &GenerateOptions,
    path: impl AsRef<Path>,
) -> anyhow::Result<GenerateStats> {
    let path = path.as_ref();
    let mut f =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let stats = generate(opts, &mut f)?;
    Ok(stats)
}

/// Variant key of variant index `k`.
pub fn variant_key(k: u32) -> String {
    match k {
        0 => "control".to_string(),
        1 => "treatment".to_string(),
        _ => format!("variant_{}", k + 1),
    }
}

/// Variant id of variant index `k` of experiment `experiment_id`.
pub fn variant_id(experiment_id: u32, k: u32) -> u32 {
    experiment_id * 100 + k + 1
}

// ---------------------------------------------------------------------------
// RNG and hashing

#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Rng(u64);

impl Rng {
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }
    /// Uniform in [0, 1).
    #[inline]
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    #[inline]
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.f64() < p
    }
    /// Uniform in [0, n) (n > 0).
    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
    /// Uniform in [lo, hi].
    #[inline]
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

// ---------------------------------------------------------------------------
// Formatting helpers

#[inline]
fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

#[inline]
fn push_i64(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
        push_u64(buf, v.unsigned_abs());
    } else {
        push_u64(buf, v as u64);
    }
}

#[inline]
fn push_padded(buf: &mut Vec<u8>, v: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    let mut v = v;
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let start = (tmp.len() - width).min(i);
    buf.extend_from_slice(&tmp[start..]);
}

/// Cents as Python's `repr(float)` would print `cents / 100` (`12.3`, `12.0`).
fn push_cents(buf: &mut Vec<u8>, cents: u64) {
    push_u64(buf, cents / 100);
    buf.push(b'.');
    let c = cents % 100;
    if c % 10 == 0 {
        buf.push(b'0' + (c / 10) as u8);
    } else {
        buf.push(b'0' + (c / 10) as u8);
        buf.push(b'0' + (c % 10) as u8);
    }
}

const US_PER_SEC: i64 = 1_000_000;
const US_PER_DAY: i64 = 86_400 * US_PER_SEC;

fn days_to_civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i64 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn civil_to_days(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u64;
    let mp = if m > 2 { m - 3 } else { m + 9 } as u64;
    let doy = (153 * mp + 2) / 5 + d as u64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i64 - 719_468
}

/// Parse the `start` option: `YYYY-MM-DD[T ]HH:MM:SS[.f…][Z|±HH:MM]`.
fn parse_start(s: &str) -> anyhow::Result<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> anyhow::Result<i64> {
        let part = s.get(r).context("start: too short")?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            bail!("start: bad number in {s:?}");
        }
        Ok(part.parse()?)
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        bail!("start must look like 2025-09-30T00:00:00Z, got {s:?}");
    }
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 59 {
        bail!("start: out of range in {s:?}");
    }
    let mut i = 19;
    let mut frac_us = 0i64;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let mut digits = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            if digits < 6 {
                frac_us = frac_us * 10 + (b[i] - b'0') as i64;
            }
            digits += 1;
            i += 1;
        }
        for _ in digits..6 {
            frac_us *= 10;
        }
    }
    let offset_us = match &s[i..] {
        "" | "Z" | "z" => 0,
        z if (z.starts_with('+') || z.starts_with('-')) && z.len() == 6 && &z[3..4] == ":" => {
            let hh: i64 = z[1..3].parse().context("start: bad zone")?;
            let mm: i64 = z[4..6].parse().context("start: bad zone")?;
            let off = (hh * 3600 + mm * 60) * US_PER_SEC;
            if z.starts_with('-') {
                -off
            } else {
                off
            }
        }
        z => bail!("start: bad zone {z:?}"),
    };
    let days = civil_to_days(y, mo as u32, d as u32);
    if days_to_civil(days) != (y, mo as u32, d as u32) {
        bail!("start: no such date in {s:?}");
    }
    Ok(days * US_PER_DAY + ((h * 60 + mi) * 60 + se) * US_PER_SEC + frac_us - offset_us)
}

/// Formats `YYYY-MM-DDTHH:MM:SS`, caching the last second (time moves slowly).
struct TsFmt {
    sec: i64,
    text: [u8; 19],
}

impl TsFmt {
    fn new() -> Self {
        TsFmt {
            sec: i64::MIN,
            text: [0; 19],
        }
    }

    #[inline]
    fn base(&mut self, sec: i64) -> &[u8; 19] {
        if sec != self.sec {
            let days = sec.div_euclid(86_400);
            let rem = sec.rem_euclid(86_400);
            let (y, m, d) = days_to_civil(days);
            let mut v = Vec::with_capacity(19);
            push_padded(&mut v, y.max(0) as u64, 4);
            v.push(b'-');
            push_padded(&mut v, m as u64, 2);
            v.push(b'-');
            push_padded(&mut v, d as u64, 2);
            v.push(b'T');
            push_padded(&mut v, (rem / 3600) as u64, 2);
            v.push(b':');
            push_padded(&mut v, (rem / 60 % 60) as u64, 2);
            v.push(b':');
            push_padded(&mut v, (rem % 60) as u64, 2);
            self.text.copy_from_slice(&v[..19]);
            self.sec = sec;
        }
        &self.text
    }

    /// Python `datetime.isoformat()` of an aware UTC datetime:
    /// `2025-09-30T10:01:00.000100+00:00`, no fraction when it is zero.
    #[inline]
    fn python(&mut self, buf: &mut Vec<u8>, us: i64) {
        let sec = us.div_euclid(US_PER_SEC);
        let frac = us.rem_euclid(US_PER_SEC);
        buf.extend_from_slice(self.base(sec));
        if frac != 0 {
            buf.push(b'.');
            push_padded(buf, frac as u64, 6);
        }
        buf.extend_from_slice(b"+00:00");
    }

    /// Debezium `ZonedTimestamp`: `2025-09-30T10:01:00.000100Z`, always 6 digits.
    #[inline]
    fn zoned(&mut self, buf: &mut Vec<u8>, us: i64) {
        let sec = us.div_euclid(US_PER_SEC);
        let frac = us.rem_euclid(US_PER_SEC);
        buf.extend_from_slice(self.base(sec));
        buf.push(b'.');
        push_padded(buf, frac as u64, 6);
        buf.push(b'Z');
    }
}

// ---------------------------------------------------------------------------
// The simulation

const PAGES: [&str; 8] = [
    "/landing",
    "/pricing",
    "/features",
    "/product/1",
    "/product/2",
    "/product/3",
    "/cart",
    "/checkout",
];
const DEVICES: [&str; 3] = ["mobile", "desktop", "tablet"];
const BROWSERS: [&str; 4] = ["chrome", "safari", "firefox", "edge"];
const ELEMENTS: [&str; 4] = ["cta", "checkout_button", "nav_link", "add_to_cart"];
const BAD_TIMESTAMPS: [&str; 4] = [
    "2025-13-45T99:00:00+00:00",
    "yesterday",
    "2025-02-30T10:00:00+00:00",
    "",
];

/// Ring of recent outbox rows kept for `processed_at` updates.
const ROW_RING: usize = 1024;
/// Ring of recent event payloads kept for duplicates.
const DUP_RING: usize = 256;
/// Outbox rows younger than this (in ids) are never deleted by the cleanup.
const DELETE_LAG: u64 = 2_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pre {
    None,
    Create,
    CreateAfterFirst,
    Update,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Pre,
    Exposure,
    LateCreate,
    PageViews,
    Click,
    Conversion,
    Delete,
    Done,
}

#[derive(Clone, Copy)]
struct Session {
    user: u32,
    exp: u32,
    pair: usize,
    variant: u8,
    /// The client's claimed variant is sent (else `null`).
    claim: bool,
    assigned_user: bool,
    pre: Pre,
    stage: Stage,
    page_views: u32,
    click: bool,
    convert: bool,
    delete: bool,
    /// Event timestamps never go below this (the assignment in force).
    floor: i64,
    no: u64,
    /// Timestamp of the exposure (for a later assignment).
    first_ts: i64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum EventType {
    Exposure,
    PageView,
    Click,
    Conversion,
}

impl EventType {
    fn name(self) -> &'static str {
        match self {
            EventType::Exposure => "exposure",
            EventType::PageView => "page_view",
            EventType::Click => "click",
            EventType::Conversion => "conversion",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Malformed {
    None,
    MissingUserId,
    BadTimestamp,
    PayloadNotJson,
}

/// A snapshot row, held until the snapshot is complete (heap order).
struct SnapRow {
    outbox_id: u64,
    /// The `after` row without `processed_at` and the closing brace.
    after: Vec<u8>,
    assignment: bool,
}

/// How `aggregate_id` is written.
#[derive(Clone, Copy)]
enum AggId {
    Assignment(u32),
    Event(u64),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Read,
    Update,
    Delete,
}

/// Quote of the application's JSON inside the `payload` string (`\"`), and
/// inside a properties string inside it (`\\\"`).
const Q1: &[u8] = br#"\""#;
const Q2: &[u8] = br#"\\\""#;

struct Gen<'a> {
    o: &'a GenerateOptions,
    out: &'a mut dyn Write,
    /// Output buffer; `obuf[..written]` has been written out already (kept
    /// for re-deliveries).
    obuf: Vec<u8>,
    written: usize,
    /// Where the line being written starts in `obuf`.
    line_start: usize,
    stats: GenerateStats,
    rng: Rng,
    ts: TsFmt,
    start_us: i64,
    span_us: i64,
    /// Business clock: the moment the current record is written.
    clock: i64,
    lines: u64,
    // Debezium bookkeeping
    tx_id: u64,
    lsn: u64,
    last_commit_lsn: Option<u64>,
    run_id: String,
    snapshot_phase: bool,
    snapshot_ts_ms: i64,
    snapshot_emitted: u64,
    // ids
    next_outbox_id: u64,
    next_assignment_id: u32,
    next_event_id: u64,
    next_session_no: u64,
    next_delete_id: u64,
    malformed_cycle: u32,
    // per (experiment, user) pair: bit 7 = in an active session, bits 0..6 = variant + 1 (0 = none)
    pair_state: Vec<u8>,
    pair_assign_id: Vec<u32>,
    pair_assigned_at: Vec<i64>,
    sessions: Vec<Session>,
    /// A session whose next record must come at once (an assignment right
    /// after the event that preceded it).
    sticky: Option<usize>,
    /// The outbox row being built (`after` without `processed_at`).
    after: Vec<u8>,
    props: Vec<u8>,
    /// Recent outbox rows (id, row) kept for `processed_at` updates.
    rows: Vec<(u64, Vec<u8>)>,
    rows_pos: usize,
    /// Recent event payloads (event id, escaped payload) kept for duplicates.
    dups: Vec<(u64, Vec<u8>)>,
    dups_pos: usize,
    /// Recent records (body start, body end, partition) in `obuf`, for re-delivery.
    history: std::collections::VecDeque<(usize, usize, u32)>,
    snapshot: Vec<SnapRow>,
    /// The row being built is an assignment.
    cur_assignment: bool,
    user_width: usize,
    variant_keys: Vec<String>,
}

impl<'a> Gen<'a> {
    fn new(o: &'a GenerateOptions, out: &'a mut dyn Write) -> anyhow::Result<Self> {
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
            span_us: (o.span_secs as i64).saturating_mul(US_PER_SEC),
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

    fn flush(&mut self) -> anyhow::Result<()> {
        self.out.write_all(&self.obuf[self.written..])?;
        self.obuf.clear();
        self.written = 0;
        self.history.clear();
        self.out.flush()?;
        Ok(())
    }

    fn run(&mut self) -> anyhow::Result<()> {
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

    // --- sessions ---------------------------------------------------------

    fn user_unassigned(&self, user: u32) -> bool {
        let p = self.o.unassigned_users;
        p > 0.0
            && (mix64(self.o.seed ^ 0x756e_6173 ^ (user as u64).wrapping_mul(0x9e37_79b9)) >> 11)
                as f64
                * (1.0 / (1u64 << 53) as f64)
                < p
    }

    fn hash_variant(&self, exp: u32, user: u32) -> u8 {
        (mix64(self.o.seed ^ ((exp as u64) << 32 | user as u64)) % self.o.variants as u64) as u8
    }

    fn new_session(&mut self) -> Session {
        let pairs = self.pair_state.len();
        let mut pair = self.rng.below(pairs as u64) as usize;
        // one session per (experiment, user) at a time
        while self.pair_state[pair] & 0x80 != 0 {
            pair += 1;
            if pair == pairs {
                pair = 0;
            }
        }
        self.pair_state[pair] |= 0x80;
        let exp = (pair % self.o.experiments as usize) as u32 + 1;
        let user = (pair / self.o.experiments as usize) as u32;
        let assigned_user = !self.user_unassigned(user);
        let cur = self.pair_state[pair] & 0x7f;
        let (pre, variant) = if !assigned_user {
            (Pre::None, self.hash_variant(exp, user))
        } else if cur == 0 {
            let v = if self.pair_assign_id[pair] != 0 {
                // assigned anew after a delete
                self.rng.below(self.o.variants as u64) as u8
            } else {
                self.hash_variant(exp, user)
            };
            if self.rng.chance(self.o.before_assignment) {
                (Pre::CreateAfterFirst, v)
            } else {
                (Pre::Create, v)
            }
        } else if self.rng.chance(self.o.reassignments) {
            let v = cur - 1;
            let nv = if self.o.variants > 1 {
                ((v as u64 + 1 + self.rng.below(self.o.variants as u64 - 1))
                    % self.o.variants as u64) as u8
            } else {
                v
            };
            (Pre::Update, nv)
        } else {
            (Pre::None, cur - 1)
        };
        let mut page_views = 1;
        if self.o.mean_page_views > 1.0 {
            let q = 1.0 - 1.0 / self.o.mean_page_views;
            while page_views < 50 && self.rng.f64() < q {
                page_views += 1;
            }
        } else if self.o.mean_page_views <= 0.0 {
            page_views = 0;
        }
        let rates = &self.o.conversion_rates;
        let rate = *rates
            .get(variant as usize)
            .unwrap_or(&rates[rates.len() - 1]);
        let click = self.rng.chance(self.o.click_rate);
        let convert = self.rng.chance(rate);
        let delete = assigned_user && self.rng.chance(self.o.deletes);
        let claim = assigned_user || self.rng.below(4) != 0;
        let no = self.next_session_no;
        self.next_session_no += 1;
        Session {
            user,
            exp,
            pair,
            variant,
            claim,
            assigned_user,
            pre,
            stage: Stage::Pre,
            page_views,
            click,
            convert,
            delete,
            floor: self.pair_assigned_at[pair],
            no,
            first_ts: 0,
        }
    }

    /// Emit the next record of a random active session.
    fn domain_step(&mut self) -> anyhow::Result<()> {
        let i = match self.sticky.take() {
            Some(i) => i,
            None => self.rng.below(self.sessions.len() as u64) as usize,
        };
        let mut s = self.sessions[i];
        loop {
            match s.stage {
                Stage::Pre => {
                    s.stage = Stage::Exposure;
                    match s.pre {
                        Pre::Create => {
                            self.assignment(&mut s, AssignKind::Created, self.clock)?;
                            break;
                        }
                        Pre::Update => {
                            self.assignment(&mut s, AssignKind::Updated, self.clock)?;
                            break;
                        }
                        _ => {}
                    }
                }
                Stage::Exposure => {
                    s.stage = if s.pre == Pre::CreateAfterFirst {
                        self.sticky = Some(i);
                        Stage::LateCreate
                    } else {
                        Stage::PageViews
                    };
                    self.event(&mut s, EventType::Exposure)?;
                    break;
                }
                Stage::LateCreate => {
                    s.stage = Stage::PageViews;
                    // strictly later than the exposure it follows
                    let at = self.clock.max(s.first_ts + 1_000);
                    self.assignment(&mut s, AssignKind::Created, at)?;
                    break;
                }
                Stage::PageViews => {
                    if s.page_views > 0 {
                        s.page_views -= 1;
                        self.event(&mut s, EventType::PageView)?;
                        break;
                    }
                    s.stage = Stage::Click;
                }
                Stage::Click => {
                    s.stage = Stage::Conversion;
                    if s.click {
                        self.event(&mut s, EventType::Click)?;
                        break;
                    }
                }
                Stage::Conversion => {
                    s.stage = Stage::Delete;
                    if s.convert {
                        self.event(&mut s, EventType::Conversion)?;
                        break;
                    }
                }
                Stage::Delete => {
                    s.stage = Stage::Done;
                    if s.delete {
                        let at = self.pair_assigned_at[s.pair];
                        self.assignment(&mut s, AssignKind::Deleted, at)?;
                        break;
                    }
                }
                Stage::Done => unreachable!("a finished session is replaced at once"),
            }
        }
        // A session with nothing left is replaced now.
        let done = match s.stage {
            Stage::Done => true,
            Stage::PageViews => s.page_views == 0 && !s.click && !s.convert && !s.delete,
            Stage::Click => !s.click && !s.convert && !s.delete,
            Stage::Conversion => !s.convert && !s.delete,
            Stage::Delete => !s.delete,
            _ => false,
        };
        if done {
            self.pair_state[s.pair] &= 0x7f;
            s = self.new_session();
        }
        self.sessions[i] = s;
        Ok(())
    }

    #[inline]
    fn push_user(buf: &mut Vec<u8>, width: usize, user: u32) {
        buf.extend_from_slice(b"user_");
        push_padded(buf, user as u64, width);
    }

    /// An assignment outbox row (`assigned_at` given; the clock is `created_at`).
    fn assignment(
        &mut self,
        s: &mut Session,
        kind: AssignKind,
        assigned_at: i64,
    ) -> anyhow::Result<()> {
        let id = if kind == AssignKind::Created {
            let id = self.next_assignment_id;
            self.next_assignment_id += 1;
            id
        } else {
            self.pair_assign_id[s.pair]
        };
        let variant = if kind == AssignKind::Deleted {
            (self.pair_state[s.pair] & 0x7f).saturating_sub(1)
        } else {
            s.variant
        };
        let oid = self.after_begin(AggId::Assignment(id), b"assignment", kind.event_type());
        let p = &mut self.after;
        p.extend_from_slice(br#"{\"id\": "#);
        push_u64(p, id as u64);
        p.extend_from_slice(br#", \"experiment_id\": "#);
        push_u64(p, s.exp as u64);
        p.extend_from_slice(br#", \"user_id\": \""#);
        Self::push_user(p, self.user_width, s.user);
        p.extend_from_slice(br#"\", \"variant_id\": "#);
        push_u64(p, variant_id(s.exp, variant as u32) as u64);
        p.extend_from_slice(br#", \"variant_key\": \""#);
        p.extend_from_slice(self.variant_keys[variant as usize].as_bytes());
        p.extend_from_slice(br#"\", \"assigned_at\": \""#);
        self.ts.python(p, assigned_at);
        p.extend_from_slice(br#"\", \"source\": \""#);
        p.extend_from_slice(if kind == AssignKind::Updated {
            b"rebalance"
        } else {
            b"api"
        });
        p.extend_from_slice(br#"\"}"#);
        self.after_end(oid, true)?;
        match kind {
            AssignKind::Created => {
                self.stats.assignments_created += 1;
                self.pair_assign_id[s.pair] = id;
                self.pair_assigned_at[s.pair] = assigned_at;
                self.pair_state[s.pair] = 0x80 | (s.variant + 1);
                s.floor = assigned_at;
            }
            AssignKind::Updated => {
                self.stats.assignments_updated += 1;
                self.pair_assigned_at[s.pair] = assigned_at;
                self.pair_state[s.pair] = 0x80 | (s.variant + 1);
                s.floor = assigned_at;
            }
            AssignKind::Deleted => {
                self.stats.assignments_deleted += 1;
                self.pair_state[s.pair] = 0x80;
                self.pair_assigned_at[s.pair] = 0;
            }
        }
        Ok(())
    }

    /// The properties object, Python spacing, quotes written as `q`.
    fn push_props(&mut self, q: &[u8], s: &Session, et: EventType, value_cents: u64, score: u64) {
        let h = mix64(self.o.seed ^ 0x6465_7669 ^ s.user as u64);
        let device = DEVICES[(h % 3) as usize];
        let browser = BROWSERS[((h >> 8) % 4) as usize];
        let page = match et {
            EventType::Exposure => "/landing",
            EventType::Conversion => "/checkout/complete",
            _ => PAGES[self.rng.below(PAGES.len() as u64) as usize],
        };
        let element = if et == EventType::Click {
            ELEMENTS[self.rng.below(ELEMENTS.len() as u64) as usize]
        } else {
            ""
        };
        let pr = &mut self.props;
        pr.clear();
        pr.push(b'{');
        pr.extend_from_slice(q);
        pr.extend_from_slice(b"page");
        pr.extend_from_slice(q);
        pr.extend_from_slice(b": ");
        pr.extend_from_slice(q);
        pr.extend_from_slice(page.as_bytes());
        pr.extend_from_slice(q);
        if et == EventType::Click {
            pr.extend_from_slice(b", ");
            pr.extend_from_slice(q);
            pr.extend_from_slice(b"element");
            pr.extend_from_slice(q);
            pr.extend_from_slice(b": ");
            pr.extend_from_slice(q);
            pr.extend_from_slice(element.as_bytes());
            pr.extend_from_slice(q);
        }
        if et == EventType::Conversion {
            pr.extend_from_slice(b", ");
            pr.extend_from_slice(q);
            pr.extend_from_slice(b"value");
            pr.extend_from_slice(q);
            pr.extend_from_slice(b": ");
            push_cents(pr, value_cents);
            pr.extend_from_slice(b", ");
            pr.extend_from_slice(q);
            pr.extend_from_slice(b"score");
            pr.extend_from_slice(q);
            pr.extend_from_slice(b": ");
            push_u64(pr, score);
        }
        pr.extend_from_slice(b", ");
        pr.extend_from_slice(q);
        pr.extend_from_slice(b"device");
        pr.extend_from_slice(q);
        pr.extend_from_slice(b": ");
        pr.extend_from_slice(q);
        pr.extend_from_slice(device.as_bytes());
        pr.extend_from_slice(q);
        pr.extend_from_slice(b", ");
        pr.extend_from_slice(q);
        pr.extend_from_slice(b"browser");
        pr.extend_from_slice(q);
        pr.extend_from_slice(b": ");
        pr.extend_from_slice(q);
        pr.extend_from_slice(browser.as_bytes());
        pr.extend_from_slice(q);
        pr.push(b'}');
    }

    /// Append an event payload (escaped, as inside the `payload` string) to `self.after`.
    fn push_event_payload(
        &mut self,
        s: &Session,
        event_id: u64,
        et: EventType,
        ts: i64,
        bad: Malformed,
    ) {
        let (value_cents, score) = if et == EventType::Conversion {
            (
                self.rng
                    .range(self.o.value_min_cents as u64, self.o.value_max_cents as u64),
                self.rng.range(0, 100),
            )
        } else {
            (0, 0)
        };
        let string_props = self.rng.chance(self.o.string_properties);
        self.push_props(
            if string_props { Q2 } else { Q1 },
            s,
            et,
            value_cents,
            score,
        );
        let bad_ts = if bad == Malformed::BadTimestamp {
            BAD_TIMESTAMPS[self.rng.below(BAD_TIMESTAMPS.len() as u64) as usize]
        } else {
            ""
        };
        let start = self.after.len();
        let p = &mut self.after;
        p.extend_from_slice(br#"{\"id\": \"evt_"#);
        push_u64(p, event_id);
        p.extend_from_slice(br#"\", \"experiment_id\": "#);
        push_u64(p, s.exp as u64);
        if bad != Malformed::MissingUserId {
            p.extend_from_slice(br#", \"user_id\": \""#);
            Self::push_user(p, self.user_width, s.user);
            p.extend_from_slice(Q1);
        }
        if s.claim {
            p.extend_from_slice(br#", \"variant_id\": "#);
            push_u64(p, variant_id(s.exp, s.variant as u32) as u64);
            p.extend_from_slice(br#", \"variant_key\": \""#);
            p.extend_from_slice(self.variant_keys[s.variant as usize].as_bytes());
            p.extend_from_slice(Q1);
        } else {
            p.extend_from_slice(br#", \"variant_id\": null, \"variant_key\": null"#);
        }
        p.extend_from_slice(br#", \"event_type\": \""#);
        p.extend_from_slice(et.name().as_bytes());
        p.extend_from_slice(br#"\", \"timestamp\": \""#);
        if bad == Malformed::BadTimestamp {
            p.extend_from_slice(bad_ts.as_bytes());
        } else {
            self.ts.python(p, ts);
        }
        p.extend_from_slice(br#"\", \"properties\": "#);
        if string_props {
            p.extend_from_slice(Q1);
            p.extend_from_slice(&self.props);
            p.extend_from_slice(Q1);
        } else {
            p.extend_from_slice(&self.props);
        }
        p.extend_from_slice(br#", \"session_id\": \"sess_"#);
        Self::push_user(p, self.user_width, s.user);
        p.push(b'_');
        push_u64(p, s.no);
        p.extend_from_slice(br#"\"}"#);
        if bad == Malformed::PayloadNotJson {
            // torn text: cut in the middle, never inside an escape
            let cut = start + (p.len() - start) / 2;
            p.truncate(cut);
            while p.last() == Some(&b'\\') {
                p.pop();
            }
        }
    }

    fn event(&mut self, s: &mut Session, et: EventType) -> anyhow::Result<()> {
        let event_id = self.next_event_id;
        self.next_event_id += 1;
        let late = self.rng.chance(self.o.late_events);
        let ts = if late {
            self.clock
                - self.rng.range(self.o.late_min_secs, self.o.late_max_secs) as i64 * US_PER_SEC
                - self.rng.below(US_PER_SEC as u64) as i64
        } else {
            let mut ts = self.clock;
            if self.o.jitter_secs > 0.0 {
                ts -= (self.rng.f64() * self.o.jitter_secs * US_PER_SEC as f64) as i64;
            }
            if s.pre != Pre::CreateAfterFirst || et != EventType::Exposure {
                ts = ts.max(s.floor);
            }
            ts
        };
        if et == EventType::Exposure {
            s.first_ts = ts;
        }
        let oid = self.after_begin(AggId::Event(event_id), b"event", b"EVENT_CREATED");
        let start = self.after.len();
        self.push_event_payload(s, event_id, et, ts, Malformed::None);
        // keep some payloads for duplicates
        if self.o.duplicates > 0.0 && (self.dups.len() < DUP_RING || event_id % 4 == 0) {
            let payload = &self.after[start..];
            if self.dups.len() < DUP_RING {
                self.dups.push((event_id, payload.to_vec()));
            } else {
                let slot = &mut self.dups[self.dups_pos];
                slot.0 = event_id;
                slot.1.clear();
                slot.1.extend_from_slice(payload);
                self.dups_pos = (self.dups_pos + 1) % DUP_RING;
            }
        }
        self.after_end(oid, true)?;
        let st = &mut self.stats;
        st.events += 1;
        match et {
            EventType::Exposure => {
                st.exposures += 1;
                st.per_variant[s.variant as usize].exposures += 1;
            }
            EventType::PageView => st.page_views += 1,
            EventType::Click => st.clicks += 1,
            EventType::Conversion => {
                st.conversions += 1;
                st.per_variant[s.variant as usize].conversions += 1;
            }
        }
        if !s.assigned_user {
            st.events_unassigned_user += 1;
        }
        if s.pre == Pre::CreateAfterFirst && et == EventType::Exposure {
            st.events_before_assignment += 1;
        }
        if late {
            st.events_late += 1;
        }
        Ok(())
    }

    // --- side records -------------------------------------------------------

    fn malformed(&mut self) -> anyhow::Result<()> {
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
    fn duplicate(&mut self) -> anyhow::Result<()> {
        let idx = self.rng.below(self.dups.len() as u64) as usize;
        let event_id = self.dups[idx].0;
        let oid = self.after_begin(AggId::Event(event_id), b"event", b"EVENT_CREATED");
        let (a, d) = (&mut self.after, &self.dups);
        a.extend_from_slice(&d[idx].1);
        self.after_end(oid, false)?;
        self.stats.duplicates += 1;
        Ok(())
    }

    fn outbox_update(&mut self) -> anyhow::Result<()> {
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
    fn outbox_delete(&mut self) -> anyhow::Result<()> {
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
    fn redeliver(&mut self, left: u64) -> anyhow::Result<()> {
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

    // --- envelopes --------------------------------------------------------------

    /// Start a new outbox row in `self.after`, up to the opening quote of `payload`.
    fn after_begin(&mut self, agg: AggId, agg_type: &[u8], event_type: &[u8]) -> u64 {
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
    fn after_end(&mut self, oid: u64, keep: bool) -> anyhow::Result<()> {
        let a = &mut self.after;
        a.extend_from_slice(b"\",\"created_at\":\"");
        self.ts.zoned(a, self.clock);
        a.push(b'"');
        if keep && self.o.outbox_updates > 0.0 && (self.rows.len() < ROW_RING || oid % 8 == 0) {
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
    fn emit_snapshot(&mut self) -> anyhow::Result<()> {
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
    fn write_streamed(
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

    fn partition_of(&self, oid: u64) -> u32 {
        if self.o.partitions <= 1 {
            0
        } else {
            (mix64(oid) % self.o.partitions as u64) as u32
        }
    }

    /// Write `{"topic":…,"partition":…,"offset":…,` and return where the body starts.
    #[inline]
    fn line_begin(&mut self, partition: u32) -> usize {
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
    fn line_end(&mut self, body_start: usize, partition: u32) -> anyhow::Result<()> {
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
    fn count_line(&mut self, len: usize) -> anyhow::Result<()> {
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum AssignKind {
    Created,
    Updated,
    Deleted,
}

impl AssignKind {
    fn event_type(self) -> &'static [u8] {
        match self {
            AssignKind::Created => b"ASSIGNMENT_CREATED",
            AssignKind::Updated => b"ASSIGNMENT_UPDATED",
            AssignKind::Deleted => b"ASSIGNMENT_DELETED",
        }
    }
}

/// A UUIDv7-looking id (as Debezium's `runId`), from the RNG and a time.
fn uuid_like(rng: &mut Rng, us: i64) -> String {
    let ms = (us / 1000) as u64 & 0xffff_ffff_ffff;
    let a = rng.next();
    let b = rng.next();
    format!(
        "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
        ms >> 16,
        ms & 0xffff,
        a & 0xfff,
        0x8000 | ((a >> 12) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}
