//! What the layouts share: the parse context, dead-letter stages and
//! reasons, the early-exit type, schema-wrapper unwrapping, the op and the
//! payload readers.
//!
//! Checks run in the order SPEC 2.5 fixes — tombstone → envelope → op →
//! aggregate type → event type → payload → fields — so a record skipped for
//! its op or type is never dead-lettered for its payload.

use super::json::{self, FromMap, Shape, Val, Wrapper};
use crate::config::SourceConfig;
use crate::domain::{DeadLetter, Micros, Parsed, SkipReason};

/// What an outbox/router record or table row asks for, once its types are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Assignment create or update.
    Upsert,
    /// Assignment delete.
    Delete,
    /// Event create.
    Event,
}

/// What the parser needs besides the record: the source configuration and
/// the clock used by the "more than 24 h in the future" check.
#[derive(Clone, Debug)]
pub struct ParseContext {
    /// Layout and layout options.
    pub source: SourceConfig,
    /// Wall clock (or `--now`), UTC microseconds.
    pub now: Micros,
}

impl ParseContext {
    /// A context for `source` with the clock pinned at `now`.
    pub fn new(source: SourceConfig, now: Micros) -> Self {
        ParseContext { source, now }
    }
}

/// Dead-letter stages (short stable snake_case words).
pub mod stage {
    /// The input line is not JSON at all (file mode).
    pub const INPUT: &str = "input";
    /// The value is not JSON or not a Debezium envelope.
    pub const ENVELOPE: &str = "envelope";
    /// The op is not one of c/r/u/d/t/m.
    pub const OP: &str = "op";
    /// Missing or non-string aggregate type.
    pub const AGGREGATE_TYPE: &str = "aggregate_type";
    /// Missing or non-string event type.
    pub const EVENT_TYPE: &str = "event_type";
    /// The payload is not a JSON object (or a string holding one).
    pub const PAYLOAD: &str = "payload";
    /// A required domain field is missing, ill-typed or out of range.
    pub const FIELDS: &str = "fields";
}

/// Dead-letter reasons outside the `fields` stage (which uses
/// `missing_<field>`, `invalid_<field>`, `future_<field>`).
pub mod reason {
    /// Value (or input line) is not valid JSON.
    pub const INVALID_JSON: &str = "invalid_json";
    /// Not an object, no string `op`, or `after`/`before` not an object where needed.
    pub const INVALID_ENVELOPE: &str = "invalid_envelope";
    /// `op` is a string other than c/r/u/d/t/m.
    pub const UNKNOWN_OP: &str = "unknown_op";
    /// Aggregate type absent or null.
    pub const MISSING_AGGREGATE_TYPE: &str = "missing_aggregate_type";
    /// Aggregate type not a string.
    pub const INVALID_AGGREGATE_TYPE: &str = "invalid_aggregate_type";
    /// Event type absent or null.
    pub const MISSING_EVENT_TYPE: &str = "missing_event_type";
    /// Event type not a string.
    pub const INVALID_EVENT_TYPE: &str = "invalid_event_type";
    /// Payload not an object nor a string holding a JSON object.
    pub const INVALID_PAYLOAD: &str = "invalid_payload";
}

/// An early end of parsing (kept small so `Result<_, Stop>` stays cheap).
#[derive(Debug)]
pub(crate) enum Stop {
    /// Deliberately skipped.
    Skip(SkipReason),
    /// Dead-lettered.
    Dead(DeadLetter),
}

impl From<Stop> for Parsed {
    fn from(s: Stop) -> Parsed {
        match s {
            Stop::Skip(r) => Parsed::Skip(r),
            Stop::Dead(d) => Parsed::Dead(d),
        }
    }
}

/// Folds a layout parser's outcome into a [`Parsed`].
pub(crate) fn finish(r: Result<Parsed, Stop>) -> Parsed {
    match r {
        Ok(p) => p,
        Err(s) => s.into(),
    }
}

/// A dead letter as a [`Stop`].
pub(crate) fn dead(stage: &'static str, reason: impl Into<String>) -> Stop {
    Stop::Dead(DeadLetter::new(stage, reason))
}

/// Objects that may be the `{"schema", "payload"}` wrapper.
pub(crate) trait Wrapped<'a> {
    /// The wrapper detection of this object.
    fn wrapper(&self) -> &Wrapper<'a>;
}

/// Outcome of reading a record value.
pub(crate) enum Top<'a, T> {
    /// `null`, or a wrapper whose payload is null.
    Tombstone,
    /// The (unwrapped) value.
    Value(Shape<'a, T>),
    /// Not valid JSON.
    InvalidJson,
}

/// Parses a value, unwrapping `{"schema": …, "payload": …}` (a few levels at most).
pub(crate) fn read_top<'a, T: FromMap<'a> + Wrapped<'a>>(text: Option<&'a str>) -> Top<'a, T> {
    match text {
        None => Top::Tombstone,
        Some(text) => unwrap_top(json::from_str(text)),
    }
}

/// Classifies an already parsed value, unwrapping schema wrappers.
pub(crate) fn unwrap_top<'a, T: FromMap<'a> + Wrapped<'a>>(
    first: Result<Shape<'a, T>, serde_json::Error>,
) -> Top<'a, T> {
    let Ok(mut shape) = first else {
        return Top::InvalidJson;
    };
    for _ in 0..4 {
        let inner = match &shape {
            Shape::Null => return Top::Tombstone,
            Shape::Object(o) => match o.wrapper().unwrapped() {
                Some(inner) => inner,
                None => return Top::Value(shape),
            },
            _ => return Top::Value(shape),
        };
        shape = match json::from_str(inner.get()) {
            Ok(s) => s,
            Err(_) => return Top::InvalidJson,
        };
    }
    Top::Value(Shape::Other)
}

/// A Debezium op code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Create,
    Read,
    Update,
    Delete,
    Truncate,
    Message,
}

/// Reads the envelope `op`: not a string → `invalid_envelope`; unknown → `unknown_op`.
pub(crate) fn read_op(v: &Val) -> Result<Op, Stop> {
    let Val::Str(s) = v else {
        return Err(dead(stage::ENVELOPE, reason::INVALID_ENVELOPE));
    };
    match s.as_ref() {
        "c" => Ok(Op::Create),
        "r" => Ok(Op::Read),
        "u" => Ok(Op::Update),
        "d" => Ok(Op::Delete),
        "t" => Ok(Op::Truncate),
        "m" => Ok(Op::Message),
        _ => Err(dead(stage::OP, reason::UNKNOWN_OP)),
    }
}

/// The two aggregates of the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Aggregate {
    Assignment,
    Event,
}

/// `assignment` / `event` (exact); any other string is skipped.
pub(crate) fn aggregate_of(s: &str) -> Result<Aggregate, Stop> {
    match s {
        "assignment" => Ok(Aggregate::Assignment),
        "event" => Ok(Aggregate::Event),
        _ => Err(Stop::Skip(SkipReason::UnknownAggregateType)),
    }
}

/// The action of a known (aggregate, event type) pair; anything else,
/// mismatches included, is skipped as `unknown_event_type`.
pub(crate) fn action_of(agg: Aggregate, event_type: &str) -> Result<Action, Stop> {
    match (agg, event_type) {
        (Aggregate::Assignment, "ASSIGNMENT_CREATED" | "ASSIGNMENT_UPDATED") => Ok(Action::Upsert),
        (Aggregate::Assignment, "ASSIGNMENT_DELETED") => Ok(Action::Delete),
        (Aggregate::Event, "EVENT_CREATED") => Ok(Action::Event),
        _ => Err(Stop::Skip(SkipReason::UnknownEventType)),
    }
}

/// A type field (aggregate type, event type) that must be a string:
/// absent/null → `missing_<name>`, other types → `invalid_<name>`.
pub(crate) fn type_str<'v>(v: &'v Val, stage: &'static str, name: &str) -> Result<&'v str, Stop> {
    match v {
        Val::Str(s) => Ok(s),
        Val::Absent | Val::Null => Err(dead(stage, format!("missing_{name}"))),
        _ => Err(dead(stage, format!("invalid_{name}"))),
    }
}

/// The last `.`-separated segment of a topic name.
pub(crate) fn topic_suffix(topic: &str) -> &str {
    topic.rsplit('.').next().unwrap_or(topic)
}

/// The payload row: the object itself, or a string holding a JSON object,
/// parsed into `parsed` (which must outlive the returned row).
pub(crate) fn payload_row<'a, T: std::borrow::Borrow<super::json::Row<'a>>>(
    payload: &'a super::json::Shape<'a, T>,
    parsed: &'a mut Option<super::json::Shape<'a, super::json::Row<'a>>>,
) -> Result<&'a super::json::Row<'a>, Stop> {
    use super::json::Shape;
    match payload {
        Shape::Object(row) => Ok(row.borrow()),
        Shape::Str(text) => match parsed.insert(super::json::Row::parse_text(text)) {
            Shape::Object(row) => Ok(row),
            _ => Err(dead(stage::PAYLOAD, reason::INVALID_PAYLOAD)),
        },
        _ => Err(dead(stage::PAYLOAD, reason::INVALID_PAYLOAD)),
    }
}
