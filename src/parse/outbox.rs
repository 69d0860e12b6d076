//! `outbox` layout (SPEC 2.2): change envelopes of the `outbox_events` table.
//!
//! Only `c`/`r` rows are domain messages (`r` = snapshot); `u`, `d`, `t`, `m`
//! are skipped as `outbox_update`, `outbox_delete`, `truncate`, `message`.
//! `after.aggregate_type` selects assignment/event, `after.event_type` the
//! action, `after.payload` (JSON text or an object) carries the fields. The
//! event id falls back to `after.aggregate_id`.

use super::build::{self};
use super::common::payload_row;
use super::common::{
    action_of, aggregate_of, dead, finish, read_op, read_top, reason, stage, type_str, Op,
    ParseContext, Stop, Top, Wrapped,
};
use super::fields::{self, FieldError};
use super::json::{FromMap, KeySeed, Row, Shape, Val, Wrapper};
use super::raw::RawRecord;
use super::scan::Scan;
use crate::domain::{Parsed, SkipReason};
use serde::de::{IgnoredAny, MapAccess};
use serde_json::value::RawValue;

/// The outbox row (`after`) fields the parser reads.
#[derive(Debug, Default)]
pub(crate) struct OutboxRow<'a> {
    aggregate_type: Val<'a>,
    event_type: Val<'a>,
    aggregate_id: Val<'a>,
    payload: Shape<'a, Box<Row<'a>>>,
}

const ROW_KEYS: &[&str] = &["aggregate_type", "event_type", "aggregate_id", "payload"];

impl<'de> FromMap<'de> for OutboxRow<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut r = OutboxRow::default();
        while let Some(k) = map.next_key_seed(KeySeed(ROW_KEYS))? {
            match k {
                0 => r.aggregate_type = map.next_value()?,
                1 => r.event_type = map.next_value()?,
                2 => r.aggregate_id = map.next_value()?,
                3 => r.payload = Shape::from_raw(map.next_value::<&'de RawValue>()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(r)
    }
}

/// The envelope fields of the outbox layout (`before`, `source` skipped).
#[derive(Debug, Default)]
pub(crate) struct OutboxEnvelope<'a> {
    op: Val<'a>,
    after: Shape<'a, OutboxRow<'a>>,
    ts_ms: Val<'a>,
    wrapper: Wrapper<'a>,
}

const ENV_KEYS: &[&str] = &["op", "after", "schema", "payload", "ts_ms"];

impl<'de> FromMap<'de> for OutboxEnvelope<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut e = OutboxEnvelope::default();
        while let Some(k) = map.next_key_seed(KeySeed(ENV_KEYS))? {
            e.wrapper.n_keys += 1;
            match k {
                0 => e.op = map.next_value()?,
                1 => e.after = map.next_value()?,
                2 => {
                    e.wrapper.schema = true;
                    map.next_value::<IgnoredAny>()?;
                }
                3 => e.wrapper.payload = Some(map.next_value::<&'de RawValue>()?),
                4 => e.ts_ms = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(e)
    }
}

impl<'a> OutboxRow<'a> {
    /// The scanner's capture, exactly as [`FromMap`] captures it.
    fn scan(s: &mut Scan<'a>) -> Option<Self> {
        let mut r = OutboxRow::default();
        s.object(|s, key| {
            match key {
                "aggregate_type" => r.aggregate_type = s.val()?,
                "event_type" => r.event_type = s.val()?,
                "aggregate_id" => r.aggregate_id = s.val()?,
                "payload" => {
                    r.payload = match s.peek()? {
                        b'"' => Shape::Str(s.string()?),
                        _ => Shape::from_text(s.raw()?),
                    }
                }
                _ => {
                    s.raw()?;
                }
            }
            Some(())
        })?;
        Some(r)
    }
}

impl<'a> OutboxEnvelope<'a> {
    /// The scanner's capture of an envelope object, exactly as [`FromMap`]
    /// captures it; `None` for what it leaves to the serde path (a schema
    /// wrapper's keys, an `after` that is neither an object nor null).
    pub(crate) fn scan(s: &mut Scan<'a>) -> Option<Self> {
        let mut e = OutboxEnvelope::default();
        s.object(|s, key| {
            e.wrapper.n_keys += 1;
            match key {
                "op" => e.op = s.val()?,
                "after" => {
                    e.after = match s.peek()? {
                        b'{' => Shape::Object(OutboxRow::scan(s)?),
                        b'n' => s.val().filter(|v| *v == Val::Null).map(|_| Shape::Null)?,
                        _ => return None,
                    }
                }
                "schema" | "payload" => return None,
                "ts_ms" => e.ts_ms = s.val()?,
                _ => {
                    s.raw()?;
                }
            }
            Some(())
        })?;
        Some(e)
    }
}

impl<'a> Wrapped<'a> for OutboxEnvelope<'a> {
    fn wrapper(&self) -> &Wrapper<'a> {
        &self.wrapper
    }
}

/// Parses a record of the `outbox` layout: the value is read by the
/// validating scanner, and by serde_json when the scanner leaves it (the
/// outcome is the same either way).
pub(crate) fn parse(ctx: &ParseContext, rec: &RawRecord) -> Parsed {
    match rec.value.and_then(scan_value) {
        Some(env) => finish(interpret(ctx, rec, Top::Value(Shape::Object(env)))),
        None => parse_serde(ctx, rec),
    }
}

/// [`parse`] with serde_json alone: the reference the scanner is checked
/// against.
pub(crate) fn parse_serde(ctx: &ParseContext, rec: &RawRecord) -> Parsed {
    finish(interpret(ctx, rec, read_top(rec.value)))
}

/// A whole value that is an envelope object, as [`read_top`] would capture
/// it; `None` for everything else (left to serde_json).
fn scan_value(text: &str) -> Option<OutboxEnvelope<'_>> {
    Scan::whole_object(text, OutboxEnvelope::scan)
}

/// Interprets an already read value (`rec.value` is not looked at again).
pub(crate) fn parse_top<'a>(
    ctx: &ParseContext,
    rec: &RawRecord,
    top: Top<'a, OutboxEnvelope<'a>>,
) -> Parsed {
    finish(interpret(ctx, rec, top))
}

fn interpret<'a>(
    ctx: &ParseContext,
    _rec: &RawRecord,
    top: Top<'a, OutboxEnvelope<'a>>,
) -> Result<Parsed, Stop> {
    // tombstone → envelope
    let env = match top {
        Top::Tombstone => return Ok(Parsed::Skip(SkipReason::Tombstone)),
        Top::InvalidJson => return Err(dead(stage::ENVELOPE, reason::INVALID_JSON)),
        Top::Value(Shape::Object(e)) => e,
        Top::Value(_) => return Err(dead(stage::ENVELOPE, reason::INVALID_ENVELOPE)),
    };
    // op
    let snapshot = match read_op(&env.op)? {
        Op::Create => false,
        Op::Read => true,
        Op::Update => return Ok(Parsed::Skip(SkipReason::OutboxUpdate)),
        Op::Delete => return Ok(Parsed::Skip(SkipReason::OutboxDelete)),
        Op::Truncate => return Ok(Parsed::Skip(SkipReason::Truncate)),
        Op::Message => return Ok(Parsed::Skip(SkipReason::Message)),
    };
    let Shape::Object(after) = &env.after else {
        return Err(dead(stage::ENVELOPE, reason::INVALID_ENVELOPE));
    };
    // aggregate type → event type
    let agg = aggregate_of(type_str(
        &after.aggregate_type,
        stage::AGGREGATE_TYPE,
        "aggregate_type",
    )?)?;
    let action = action_of(
        agg,
        type_str(&after.event_type, stage::EVENT_TYPE, "event_type")?,
    )?;
    // payload
    let mut parsed = None;
    let row = payload_row(&after.payload, &mut parsed)?;
    // fields
    let fallback = || match &after.aggregate_id {
        Val::Absent | Val::Null => Err(FieldError::Missing),
        v => fields::text_id(v),
    };
    let captured = build::captured_at(&env.ts_ms);
    Ok(build::build(
        action, row, fallback, snapshot, captured, ctx.now,
    ))
}
