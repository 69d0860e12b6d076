//! `eventrouter` layout (SPEC 2.2): Debezium Outbox Event Router output.
//!
//! The value is the payload itself: a JSON string holding the payload text,
//! or an object (`table.expand.json.payload=true`), either possibly
//! schema-wrapped. There is no op in the value. The aggregate type comes from
//! the configured header, else the topic (`topic_prefix` stripped, else its
//! last `.`-segment); the event type from the configured header, else
//! assignment → upsert and event → `EVENT_CREATED`; `r` in the op header marks
//! a snapshot. The event id is the payload `id`, else the record key — never
//! the `id` header (the outbox row id).

use super::build;
use super::common::payload_row;
use super::common::Action;
use super::common::{
    action_of, aggregate_of, dead, finish, read_top, reason, stage, Aggregate, ParseContext, Stop,
    Top, Wrapped,
};
use super::fields::{self, FieldError};
use super::headers;
use super::json::{Row, Val, Wrapper};
use super::raw::RawRecord;
use crate::domain::Text;
use crate::domain::{Parsed, SkipReason};

impl<'a> Wrapped<'a> for Row<'a> {
    fn wrapper(&self) -> &Wrapper<'a> {
        &self.wrapper
    }
}

/// The aggregate type a router topic name stands for: `topic` without
/// `prefix` when it starts with it, else its last `.`-segment.
pub fn aggregate_from_topic<'t>(topic: &'t str, prefix: &str) -> &'t str {
    match topic.strip_prefix(prefix) {
        Some(rest) if !prefix.is_empty() => rest,
        _ => super::common::topic_suffix(topic),
    }
}

/// The event id carried by a record key: a JSON string (non-empty) or
/// integer, possibly schema-wrapped.
pub fn key_id(key: Option<&str>) -> Result<Text, FieldError> {
    let Some(k) = key else {
        return Err(FieldError::Missing);
    };
    let v: serde_json::Value = serde_json::from_str(k).map_err(|_| FieldError::Invalid)?;
    let v = match &v {
        serde_json::Value::Object(m) if m.len() == 2 && m.contains_key("schema") => {
            m.get("payload").unwrap_or(&serde_json::Value::Null)
        }
        _ => &v,
    };
    fields::text_id(&Val::from_json(v))
}

/// Parses a record of the `eventrouter` layout.
pub(crate) fn parse(ctx: &ParseContext, rec: &RawRecord) -> Parsed {
    finish(interpret(ctx, rec, read_top(rec.value)))
}

/// Interprets an already read value (`rec.value` is not looked at again).
pub(crate) fn parse_top<'a>(ctx: &ParseContext, rec: &RawRecord, top: Top<'a, Row<'a>>) -> Parsed {
    finish(interpret(ctx, rec, top))
}

fn interpret<'a>(
    ctx: &ParseContext,
    rec: &RawRecord,
    top: Top<'a, Row<'a>>,
) -> Result<Parsed, Stop> {
    let cfg = &ctx.source.eventrouter;
    // tombstone → envelope
    let top = match top {
        Top::Tombstone => return Ok(Parsed::Skip(SkipReason::Tombstone)),
        Top::InvalidJson => return Err(dead(stage::ENVELOPE, reason::INVALID_JSON)),
        Top::Value(v) => v,
    };
    let [agg_h, type_h, op_h] = headers::lookup(
        &rec.headers,
        [
            cfg.aggregate_type_header.as_str(),
            cfg.event_type_header.as_str(),
            cfg.op_header.as_str(),
        ],
    );
    // op (header only): `r` marks a snapshot read
    let snapshot = op_h.as_deref() == Some("r");
    // aggregate type → event type
    let agg = match agg_h.as_deref() {
        Some(h) => aggregate_of(h)?,
        None => aggregate_of(aggregate_from_topic(rec.topic, &cfg.topic_prefix))?,
    };
    let action = match type_h.as_deref() {
        Some(t) => action_of(agg, t)?,
        None => match agg {
            Aggregate::Assignment => Action::Upsert,
            Aggregate::Event => Action::Event,
        },
    };
    // payload
    let mut parsed = None;
    let row = payload_row(&top, &mut parsed)?;
    // fields
    Ok(build::build(
        action,
        row,
        || key_id(rec.key),
        snapshot,
        None, // the routed value carries no capture time
        ctx.now,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        assert_eq!(
            aggregate_from_topic("outbox.event.assignment", "outbox.event."),
            "assignment"
        );
        assert_eq!(
            aggregate_from_topic("prod.events.event", "outbox.event."),
            "event"
        );
        assert_eq!(aggregate_from_topic("event", ""), "event");
        assert_eq!(aggregate_from_topic("a.b.", "x"), "");
    }

    #[test]
    fn keys() {
        assert_eq!(key_id(Some("\"11\"")), Ok("11".into()));
        assert_eq!(key_id(Some("11")), Ok("11".into()));
        assert_eq!(
            key_id(Some(r#"{"schema":{"type":"string"},"payload":"k"}"#)),
            Ok("k".into())
        );
        assert_eq!(key_id(Some("null")), Err(FieldError::Missing));
        assert_eq!(key_id(None), Err(FieldError::Missing));
        assert_eq!(key_id(Some("\"\"")), Err(FieldError::Invalid));
        assert_eq!(key_id(Some("{\"id\":1}")), Err(FieldError::Invalid));
        assert_eq!(key_id(Some("nope")), Err(FieldError::Invalid));
    }
}
