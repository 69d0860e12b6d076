//! `tables` layout (SPEC 2.2): the `assignments` and `events` tables captured
//! directly.
//!
//! The table is `source.table` when present, else the topic's last
//! `.`-segment; other tables are skipped (`other_table`). Assignments:
//! `c`/`r`/`u` upsert from `after`, `d` deletes from `before` (key only →
//! [`Parsed::DeleteById`]). Events: `c`/`r`/`u` from `after` (the
//! `variant_id` column is the client's claim, `properties` jsonb text),
//! `d` skipped (`event_delete`). `t`/`m` are skipped as `truncate`/`message`.

use super::build;
use super::common::Action;
use super::common::{
    dead, finish, read_op, read_top, reason, stage, topic_suffix, Op, ParseContext, Stop, Top,
    Wrapped,
};
use super::fields::FieldError;
use super::json::{FromMap, KeySeed, Row, Shape, Val, Wrapper};
use super::raw::RawRecord;
use crate::domain::{Parsed, SkipReason};
use serde::de::{IgnoredAny, MapAccess};
use serde_json::value::RawValue;

/// `source` block fields the parser reads.
#[derive(Debug, Default)]
pub(crate) struct SourceInfo<'a> {
    table: Val<'a>,
}

impl<'de> FromMap<'de> for SourceInfo<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut s = SourceInfo::default();
        while let Some(k) = map.next_key_seed(KeySeed(&["table"]))? {
            match k {
                0 => s.table = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(s)
    }
}

/// The envelope fields of the tables layout.
#[derive(Debug, Default)]
pub(crate) struct TableEnvelope<'a> {
    op: Val<'a>,
    before: Shape<'a, Box<Row<'a>>>,
    after: Shape<'a, Box<Row<'a>>>,
    source: Shape<'a, SourceInfo<'a>>,
    ts_ms: Val<'a>,
    wrapper: Wrapper<'a>,
}

const ENV_KEYS: &[&str] = &[
    "op", "before", "after", "source", "schema", "payload", "ts_ms",
];

impl<'de> FromMap<'de> for TableEnvelope<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut e = TableEnvelope::default();
        while let Some(k) = map.next_key_seed(KeySeed(ENV_KEYS))? {
            e.wrapper.n_keys += 1;
            match k {
                0 => e.op = map.next_value()?,
                1 => e.before = map.next_value()?,
                2 => e.after = map.next_value()?,
                3 => e.source = map.next_value()?,
                4 => {
                    e.wrapper.schema = true;
                    map.next_value::<IgnoredAny>()?;
                }
                5 => e.wrapper.payload = Some(map.next_value::<&'de RawValue>()?),
                6 => e.ts_ms = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(e)
    }
}

impl<'a> Wrapped<'a> for TableEnvelope<'a> {
    fn wrapper(&self) -> &Wrapper<'a> {
        &self.wrapper
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    Assignments,
    Events,
}

/// Parses a record of the `tables` layout.
pub(crate) fn parse(ctx: &ParseContext, rec: &RawRecord) -> Parsed {
    finish(interpret(ctx, rec, read_top(rec.value)))
}

/// Interprets an already read value (`rec.value` is not looked at again).
pub(crate) fn parse_top<'a>(
    ctx: &ParseContext,
    rec: &RawRecord,
    top: Top<'a, TableEnvelope<'a>>,
) -> Parsed {
    finish(interpret(ctx, rec, top))
}

fn interpret<'a>(
    ctx: &ParseContext,
    rec: &RawRecord,
    top: Top<'a, TableEnvelope<'a>>,
) -> Result<Parsed, Stop> {
    let cfg = &ctx.source.tables;
    // tombstone → envelope
    let env = match top {
        Top::Tombstone => return Ok(Parsed::Skip(SkipReason::Tombstone)),
        Top::InvalidJson => return Err(dead(stage::ENVELOPE, reason::INVALID_JSON)),
        Top::Value(Shape::Object(e)) => e,
        Top::Value(_) => return Err(dead(stage::ENVELOPE, reason::INVALID_ENVELOPE)),
    };
    // op
    let op = read_op(&env.op)?;
    match op {
        Op::Truncate => return Ok(Parsed::Skip(SkipReason::Truncate)),
        Op::Message => return Ok(Parsed::Skip(SkipReason::Message)),
        _ => {}
    }
    // table (the aggregate-type stage of this layout)
    let name = match &env.source {
        Shape::Object(SourceInfo { table: Val::Str(t) }) => t.as_ref(),
        _ => topic_suffix(rec.topic),
    };
    let table = if name == cfg.assignments_table {
        Table::Assignments
    } else if name == cfg.events_table {
        Table::Events
    } else {
        return Ok(Parsed::Skip(SkipReason::OtherTable));
    };
    let (action, image) = match (table, op) {
        (Table::Events, Op::Delete) => return Ok(Parsed::Skip(SkipReason::EventDelete)),
        (Table::Assignments, Op::Delete) => (Action::Delete, &env.before),
        (Table::Assignments, _) => (Action::Upsert, &env.after),
        (Table::Events, _) => (Action::Event, &env.after),
    };
    let Shape::Object(row) = image else {
        return Err(dead(stage::ENVELOPE, reason::INVALID_ENVELOPE));
    };
    // fields (the `id` column is required: no event id fallback)
    Ok(build::build(
        action,
        row,
        || Err(FieldError::Missing),
        op == Op::Read,
        build::captured_at(&env.ts_ms),
        ctx.now,
    ))
}
