//! Parse benchmarks' reference points (SPEC 9): the "bare parse" of a JSONL
//! file with the same JSON parser as the hot path ([`parse_file`]: generic
//! DOM trees), a minimal typed skip-parse with that parser
//! ([`parse_file_typed`]: small borrowed structs), and neonblue's own line
//! parser over the same file ([`run_parser`]: the scanner, else serde).
//!
//! The hot path ([`super::line_parse::parse_line`]) uses serde_json: sonic-rs
//! and simd-json were measured on the seed format and were slower for typed
//! capture (serde `Deserialize` into borrowed structs), so both baselines use
//! serde_json too.

use super::common::ParseContext;
use super::json::{self, FromMap, KeySeed, Shape, Val};
use super::line_parse::{parse_line, parse_line_serde};
use crate::domain::Parsed;
use serde::de::{IgnoredAny, MapAccess};
use serde_json::value::RawValue;
use serde_json::Value;
use std::path::Path;

/// Bare parse: every line, then its Debezium value (a record object's `value`,
/// else the line itself, schema wrapper removed) and the payload inside it
/// (`after.payload` or the value itself when it is a string holding JSON) are
/// parsed into `serde_json::Value` trees. Returns the number of non-blank
/// lines that were valid JSON.
pub fn parse_file(path: &Path) -> anyhow::Result<u64> {
    let mut n = 0u64;
    for_each_line(path, |line| {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return;
        };
        n += 1;
        let mut v = match v {
            Value::Object(mut m) if m.contains_key("value") && !m.contains_key("op") => {
                m.remove("value").unwrap_or(Value::Null)
            }
            other => other,
        };
        if let Value::Object(m) = &mut v {
            if m.len() == 2 && m.contains_key("schema") {
                v = m.remove("payload").unwrap_or(Value::Null);
            }
        }
        let payload = match &v {
            Value::String(s) => Some(s.as_str()),
            Value::Object(m) => m
                .get("after")
                .and_then(|a| a.get("payload"))
                .and_then(Value::as_str),
            _ => None,
        };
        if let Some(p) = payload {
            std::hint::black_box(serde_json::from_str::<Value>(p).ok());
        }
        std::hint::black_box(&v);
    })?;
    Ok(n)
}

/// Calls `f` on every non-blank line of a file (without its terminator;
/// invalid UTF-8 replaced), read in large buffered chunks so that the
/// benchmark measures parsing rather than loading the whole file. Lines are
/// checked for UTF-8 as file mode checks them ([`super::text_of`]).
fn for_each_line(path: &Path, mut f: impl FnMut(&str)) -> anyhow::Result<()> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        let text = super::text_of(&buf);
        let line = text.strip_suffix('\n').unwrap_or(&text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if !line.trim().is_empty() {
            f(line);
        }
    }
}

/// The domain payload fields (assignment and event columns).
#[derive(Default)]
struct TypedPayload<'a> {
    id: Val<'a>,
    experiment_id: Val<'a>,
    user_id: Val<'a>,
    variant_id: Val<'a>,
    variant_key: Val<'a>,
    assigned_at: Val<'a>,
    event_type: Val<'a>,
    timestamp: Val<'a>,
    session_id: Val<'a>,
    properties: Option<&'a RawValue>,
}

const PAYLOAD_KEYS: &[&str] = &[
    "id",
    "experiment_id",
    "user_id",
    "variant_id",
    "variant_key",
    "assigned_at",
    "event_type",
    "timestamp",
    "session_id",
    "properties",
];

impl<'de> FromMap<'de> for TypedPayload<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut p = TypedPayload::default();
        while let Some(k) = map.next_key_seed(KeySeed(PAYLOAD_KEYS))? {
            match k {
                0 => p.id = map.next_value()?,
                1 => p.experiment_id = map.next_value()?,
                2 => p.user_id = map.next_value()?,
                3 => p.variant_id = map.next_value()?,
                4 => p.variant_key = map.next_value()?,
                5 => p.assigned_at = map.next_value()?,
                6 => p.event_type = map.next_value()?,
                7 => p.timestamp = map.next_value()?,
                8 => p.session_id = map.next_value()?,
                9 => p.properties = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(p)
    }
}

/// The outbox row (`after`); the payload is kept as a string or an object.
#[derive(Default)]
struct TypedRow<'a> {
    aggregate_type: Val<'a>,
    event_type: Val<'a>,
    aggregate_id: Val<'a>,
    payload: Shape<'a, TypedPayload<'a>>,
}

const ROW_KEYS: &[&str] = &["aggregate_type", "event_type", "aggregate_id", "payload"];

impl<'de> FromMap<'de> for TypedRow<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut r = TypedRow::default();
        while let Some(k) = map.next_key_seed(KeySeed(ROW_KEYS))? {
            match k {
                0 => r.aggregate_type = map.next_value()?,
                1 => r.event_type = map.next_value()?,
                2 => r.aggregate_id = map.next_value()?,
                3 => r.payload = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(r)
    }
}

/// A change envelope, or a schema wrapper (`payload` holds the envelope).
#[derive(Default)]
struct TypedEnvelope<'a> {
    op: Val<'a>,
    after: Shape<'a, TypedRow<'a>>,
    payload: Shape<'a, Box<TypedEnvelope<'a>>>,
}

const ENV_KEYS: &[&str] = &["op", "after", "payload"];

impl<'de> FromMap<'de> for TypedEnvelope<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut e = TypedEnvelope::default();
        while let Some(k) = map.next_key_seed(KeySeed(ENV_KEYS))? {
            match k {
                0 => e.op = map.next_value()?,
                1 => e.after = map.next_value()?,
                2 => e.payload = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(e)
    }
}

/// A line: a record object (`value` holds the envelope) or a bare envelope.
#[derive(Default)]
struct TypedLine<'a> {
    topic: Val<'a>,
    partition: Val<'a>,
    offset: Val<'a>,
    key: Option<&'a RawValue>,
    headers: Option<&'a RawValue>,
    value: Shape<'a, TypedEnvelope<'a>>,
    op: Val<'a>,
    after: Shape<'a, TypedRow<'a>>,
}

const LINE_KEYS: &[&str] = &[
    "topic",
    "partition",
    "offset",
    "key",
    "headers",
    "value",
    "op",
    "after",
];

impl<'de> FromMap<'de> for TypedLine<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut l = TypedLine::default();
        while let Some(k) = map.next_key_seed(KeySeed(LINE_KEYS))? {
            match k {
                0 => l.topic = map.next_value()?,
                1 => l.partition = map.next_value()?,
                2 => l.offset = map.next_value()?,
                3 => l.key = Some(map.next_value()?),
                4 => l.headers = Some(map.next_value()?),
                5 => l.value = map.next_value()?,
                6 => l.op = map.next_value()?,
                7 => l.after = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(l)
    }
}

/// Reads a captured payload (an object, or a string holding one).
fn typed_payload(p: &Shape<TypedPayload>) -> u64 {
    let parsed;
    let row = match p {
        Shape::Object(row) => row,
        Shape::Str(text) => {
            parsed = json::from_str::<Shape<TypedPayload>>(text);
            match &parsed {
                Ok(Shape::Object(row)) => row,
                _ => return 0,
            }
        }
        _ => return 0,
    };
    std::hint::black_box((
        &row.id,
        &row.experiment_id,
        &row.user_id,
        &row.variant_id,
        &row.variant_key,
        &row.assigned_at,
        &row.event_type,
        &row.timestamp,
        &row.session_id,
        row.properties.map(RawValue::get),
    ));
    1
}

/// Typed skip-parse: every line into small borrowed structs (record fields,
/// envelope `op`, the outbox row's types and id, `after.payload`), everything
/// else skipped (still validated); then the payload JSON string into the
/// payload fields. A line whose value does not fit these structs (e.g. a
/// non-object `after`) does not count. Returns the number of non-blank lines
/// that were read.
pub fn parse_file_typed(path: &Path) -> anyhow::Result<u64> {
    let mut n = 0u64;
    let mut payloads = 0u64;
    for_each_line(path, |line| {
        let Ok(Shape::Object(l)) = json::from_str::<Shape<TypedLine>>(line) else {
            return;
        };
        n += 1;
        std::hint::black_box((&l.topic, &l.partition, &l.offset, l.key, l.headers));
        let (op, after) = match &l.value {
            Shape::Object(env) => match &env.payload {
                Shape::Object(inner) => (&inner.op, &inner.after),
                _ => (&env.op, &env.after),
            },
            _ => (&l.op, &l.after),
        };
        std::hint::black_box(op);
        if let Shape::Object(row) = after {
            std::hint::black_box((&row.aggregate_type, &row.event_type, &row.aggregate_id));
            payloads += typed_payload(&row.payload);
        }
    })?;
    std::hint::black_box(payloads);
    Ok(n)
}

/// Runs the hot path's line parser ([`parse_line`], as file mode does; or
/// without its scanner) over a JSONL file; returns the number of domain records (changes and
/// deletes by id) produced.
pub fn run_parser(path: &Path, ctx: &ParseContext, scanner: bool) -> anyhow::Result<u64> {
    let topic = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (mut n, mut i) = (0u64, 0u64);
    for_each_line(path, |line| {
        let parsed = if scanner {
            parse_line(ctx, line, i, &topic)
        } else {
            parse_line_serde(ctx, line, i, &topic)
        };
        let parsed = parsed.map(|p| p.parsed);
        if matches!(parsed, Some(Parsed::Change { .. } | Parsed::DeleteById(_))) {
            n += 1;
        }
        i += 1;
    })?;
    Ok(n)
}

/// Counts the non-blank lines of a file (the reading cost of the baselines).
#[cfg(test)]
pub(crate) fn count_lines(path: &Path, n: &mut u64) -> anyhow::Result<()> {
    for_each_line(path, |_| *n += 1)
}
