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

mod engine;
mod envelope;
mod kinds;
mod options;
mod payload;
mod rng;
mod scenario;
mod side;
mod state;
mod stats;
mod text;
mod time;

pub use kinds::{variant_id, variant_key};
pub use options::GenerateOptions;
pub use rng::Rng;
pub use stats::{GenerateStats, VariantStats};

use anyhow::Context;
use state::Gen;
use std::io::Write;
use std::path::Path;

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
