//! File input (SPEC 2.4): one JSONL line → one [`RawRecord`].
//!
//! A line is either a record object — keys only from `topic`, `partition`,
//! `offset`, `key`, `value`, `headers`, with `value` present (it may be
//! `null`: a tombstone), `topic` a string, `partition`/`offset` integers,
//! `headers` an object; `null` in the optional ones means absent — or, when it
//! is anything else (an envelope, a schema wrapper, a JSON string, …), a bare
//! Debezium value. Partition defaults to 0, offset to the 0-based line index,
//! topic to the caller's default (the file's base name). A trailing `\r` and a
//! leading byte-order mark are ignored. Empty and whitespace-only lines are
//! not records at all ([`LineDecode::Blank`]): they are not counted, but they still
//! occupy a line index, so the offsets of later lines stay their line index.
//! A topic containing JSON escapes is not a Kafka topic name: such a line is
//! read as a bare value.

use super::common::{reason, stage};
use super::json::{self, FromMap, KeySeed, Shape, Val};
use super::raw::{Headers, RawRecord};
use super::scan::Scan;
use crate::domain::DeadLetter;
use serde::de::{Deserialize, IgnoredAny, MapAccess};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// One decoded input line.
#[derive(Clone, Debug)]
pub enum LineDecode<'a> {
    /// Empty or whitespace-only: not a record, skip it without counting it.
    Blank,
    /// A record to parse.
    Record(RawRecord<'a>),
    /// Not JSON at all: a dead letter (stage `input`, reason `invalid_json`);
    /// `record` has a null key, the line's text as value and no headers, ready
    /// for [`super::DeadLetterRecord`].
    Invalid {
        /// The record to write to the DLQ.
        record: RawRecord<'a>,
        /// Its dead letter ([`invalid_line_dead_letter`]).
        dead: DeadLetter,
    },
}

/// The dead letter of a line that is not JSON (stage `input`, reason `invalid_json`).
pub fn invalid_line_dead_letter() -> DeadLetter {
    DeadLetter::new(stage::INPUT, reason::INVALID_JSON)
}

/// The keys of a record-object line; `V` is how `value` is captured (raw
/// text for [`decode_line`], the layout's envelope for [`super::line_parse`]).
pub(crate) struct LineFields<'a, V> {
    unknown: bool,
    topic: Val<'a>,
    partition: Val<'a>,
    offset: Val<'a>,
    /// Raw text.
    key: Option<&'a str>,
    pub(crate) value: Option<V>,
    /// Raw text.
    headers: Option<&'a str>,
}

const LINE_KEYS: &[&str] = &["topic", "partition", "offset", "key", "value", "headers"];

impl<'de, V: Deserialize<'de>> FromMap<'de> for LineFields<'de, V> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut f = LineFields::empty();
        while let Some(k) = map.next_key_seed(KeySeed(LINE_KEYS))? {
            match k {
                0 => f.topic = map.next_value()?,
                1 => f.partition = map.next_value()?,
                2 => f.offset = map.next_value()?,
                3 => f.key = Some(map.next_value::<&'de RawValue>()?.get()),
                4 => f.value = Some(map.next_value::<V>()?),
                5 => f.headers = Some(map.next_value::<&'de RawValue>()?.get()),
                _ => {
                    f.unknown = true;
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(f)
    }
}

/// `None` for JSON `null`, else the raw text.
fn non_null(raw: Option<&str>) -> Option<&str> {
    raw.filter(|t| *t != "null")
}

impl<'a, V> LineFields<'a, V> {
    /// No key seen yet.
    fn empty() -> Self {
        LineFields {
            unknown: false,
            topic: Val::Absent,
            partition: Val::Absent,
            offset: Val::Absent,
            key: None,
            value: None,
            headers: None,
        }
    }

    /// The scanner's capture of a line object, exactly as [`FromMap`]
    /// captures it; `value` reads the `value` member. `None`: leave the
    /// line to the serde path.
    pub(crate) fn scan(
        s: &mut Scan<'a>,
        mut value: impl FnMut(&mut Scan<'a>) -> Option<V>,
    ) -> Option<Self> {
        let mut f = LineFields::empty();
        s.object(|s, key| {
            match key {
                "topic" => f.topic = s.val()?,
                "partition" => f.partition = s.val()?,
                "offset" => f.offset = s.val()?,
                "key" => f.key = Some(s.raw()?),
                "value" => f.value = Some(value(s)?),
                "headers" => f.headers = Some(s.raw()?),
                _ => {
                    f.unknown = true;
                    s.raw()?;
                }
            }
            Some(())
        })?;
        Some(f)
    }

    /// The record of a record-object line, with `value: None` (the caller
    /// fills it), or `None` if the object is not a record object.
    pub(crate) fn record(&self, line_index: u64, default_topic: &'a str) -> Option<RawRecord<'a>> {
        if self.unknown || self.value.is_none() {
            return None;
        }
        let topic = match &self.topic {
            Val::Absent | Val::Null => default_topic,
            Val::Str(Cow::Borrowed(t)) => t,
            _ => return None,
        };
        let partition = match &self.partition {
            Val::Absent | Val::Null => 0,
            Val::U64(n) => i32::try_from(*n).ok()?,
            Val::I64(n) => i32::try_from(*n).ok()?,
            _ => return None,
        };
        let offset = match &self.offset {
            Val::Absent | Val::Null => i64::try_from(line_index).unwrap_or(i64::MAX),
            Val::U64(n) => i64::try_from(*n).ok()?,
            Val::I64(n) => *n,
            _ => return None,
        };
        let headers = match non_null(self.headers) {
            None => Headers::None,
            Some(t) if t.starts_with('{') => Headers::Json(t),
            Some(_) => return None,
        };
        Some(RawRecord {
            topic,
            partition,
            offset,
            key: non_null(self.key),
            value: None,
            headers,
        })
    }
}

/// A line without its terminator and byte-order mark, and its trimmed text.
pub(crate) fn clean_line(line: &str) -> (&str, &str) {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    (
        line,
        line.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r')),
    )
}

/// Decodes one JSONL line (see the module documentation).
pub fn decode_line<'a>(line: &'a str, line_index: u64, default_topic: &'a str) -> LineDecode<'a> {
    let (line, text) = clean_line(line);
    let offset = i64::try_from(line_index).unwrap_or(i64::MAX);
    let bare = |value: Option<&'a str>| RawRecord {
        topic: default_topic,
        partition: 0,
        offset,
        key: None,
        value,
        headers: Headers::None,
    };
    if text.is_empty() {
        return LineDecode::Blank;
    }
    match json::from_str::<Shape<LineFields<&RawValue>>>(text) {
        Err(_) => LineDecode::Invalid {
            record: bare(Some(line)),
            dead: invalid_line_dead_letter(),
        },
        Ok(Shape::Null) => LineDecode::Record(bare(None)),
        Ok(Shape::Object(f)) => match f.record(line_index, default_topic) {
            Some(r) => LineDecode::Record(RawRecord {
                value: non_null(f.value.map(RawValue::get)),
                ..r
            }),
            None => LineDecode::Record(bare(Some(text))),
        },
        Ok(_) => LineDecode::Record(bare(Some(text))),
    }
}

/// Writes `text` (raw JSON when it is valid JSON, else as a JSON string) to `out`.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::DeadLetterRecord;
    use serde_json::{json, Value};

    fn rec(l: LineDecode) -> RawRecord {
        match l {
            LineDecode::Record(r) => r,
            other => panic!("not a record: {other:?}"),
        }
    }

    #[test]
    fn record_objects() {
        let r = rec(decode_line(
            r#"{"topic": "t", "key": {"id": 4}, "value": {"op": "c"}, "headers": {"a": "b"}}"#,
            7,
            "cdc.jsonl",
        ));
        assert_eq!((r.topic, r.partition, r.offset), ("t", 0, 7));
        assert_eq!(r.key, Some(r#"{"id": 4}"#));
        assert_eq!(r.value, Some(r#"{"op": "c"}"#));
        assert!(matches!(r.headers, Headers::Json(r#"{"a": "b"}"#)));
        let r = rec(decode_line(
            r#"{"value": null, "partition": 3, "offset": 99}"#,
            1,
            "d",
        ));
        assert_eq!(
            (r.topic, r.partition, r.offset, r.value, r.key),
            ("d", 3, 99, None, None)
        );
        let r = rec(decode_line("{\"value\": \"abc\"}\r", 0, "d"));
        assert_eq!(r.value, Some("\"abc\""));
    }

    #[test]
    fn bare_values() {
        let line = r#"{"before": null, "after": {}, "op": "c"}"#;
        let r = rec(decode_line(line, 5, "cdc.jsonl"));
        assert_eq!(
            (r.topic, r.offset, r.value, r.key),
            ("cdc.jsonl", 5, Some(line), None)
        );
        // unknown key, ill-typed partition, missing value: bare
        for l in [
            r#"{"value": 1, "x": 2}"#,
            r#"{"value": 1, "partition": "0"}"#,
            r#"{"topic": "t"}"#,
            r#"{"value": 1, "headers": []}"#,
        ] {
            assert_eq!(rec(decode_line(l, 0, "d")).value, Some(l));
        }
        assert_eq!(
            rec(decode_line("\"payload text\"", 0, "d")).value,
            Some("\"payload text\"")
        );
        assert_eq!(rec(decode_line(" null ", 0, "d")).value, None);
        assert_eq!(
            rec(decode_line("\u{feff}{\"value\": 1}", 0, "d")).value,
            Some("1")
        );
    }

    #[test]
    fn blank_and_invalid() {
        assert!(matches!(decode_line("", 0, "d"), LineDecode::Blank));
        assert!(matches!(decode_line("  \t\r", 0, "d"), LineDecode::Blank));
        let LineDecode::Invalid { record: r, dead } = decode_line("not json {\r", 3, "f") else {
            panic!()
        };
        assert_eq!(dead, invalid_line_dead_letter());
        assert_eq!(
            (r.topic, r.offset, r.value, r.key),
            ("f", 3, Some("not json {"), None)
        );
        let d = DeadLetterRecord {
            record: &r,
            dead: &invalid_line_dead_letter(),
        }
        .json_line();
        let v: Value = serde_json::from_str(&d).unwrap();
        assert_eq!(
            v,
            json!({"topic": "f", "partition": 0, "offset": 3, "key": null, "value": "not json {",
                   "headers": {}, "reason": "invalid_json", "stage": "input"})
        );
    }
}
