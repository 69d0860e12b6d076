//! The dead-letter record (SPEC 2.5): the original record with the reason
//! and stage it was rejected for, in both of its forms — a JSON line under
//! `dlq/` in file mode, and the original key, value and headers plus
//! `neonblue.*` headers on the `<app_id>-dlq` topic in Kafka mode.

use super::fields::compact_json;
use super::json;
use super::raw::{Headers, RawRecord};
use crate::domain::DeadLetter;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

/// A rejected input record.
#[derive(Clone, Copy, Debug)]
pub struct DeadLetterRecord<'a> {
    /// The record as received.
    pub record: &'a RawRecord<'a>,
    /// Why and where it was rejected.
    pub dead: &'a DeadLetter,
}

impl DeadLetterRecord<'_> {
    /// The file-mode DLQ line (no trailing newline):
    /// `{"topic","partition","offset","key","value","headers","reason","stage"}`.
    /// Key and value are the original JSON verbatim (text that is not JSON,
    /// such as a non-JSON input line, becomes a JSON string; `null` when
    /// absent); headers are the original object, or `{}`.
    pub fn json_line(&self) -> String {
        let (rec, dl) = (self.record, self.dead);
        let mut out = String::with_capacity(
            96 + rec.topic.len()
                + rec.key.map_or(4, str::len)
                + rec.value.map_or(4, str::len)
                + dl.reason.len(),
        );
        out.push_str("{\"topic\":");
        push_string(&mut out, rec.topic);
        out.push_str(",\"partition\":");
        out.push_str(&rec.partition.to_string());
        out.push_str(",\"offset\":");
        out.push_str(&rec.offset.to_string());
        out.push_str(",\"key\":");
        match rec.key {
            Some(k) => push_json_or_string(&mut out, k),
            None => out.push_str("null"),
        }
        out.push_str(",\"value\":");
        match rec.value {
            Some(v) => push_json_or_string(&mut out, v),
            None => out.push_str("null"),
        }
        out.push_str(",\"headers\":");
        match rec.headers {
            Headers::None => out.push_str("{}"),
            Headers::Json(t) => match json::from_str::<&RawValue>(t) {
                Ok(raw) if raw.get().starts_with('{') => push_json_or_string(&mut out, raw.get()),
                _ => out.push_str("{}"),
            },
            Headers::Pairs(pairs) => {
                let map: serde_json::Map<String, serde_json::Value> = pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect();
                out.push_str(&serde_json::Value::Object(map).to_string());
            }
        }
        out.push_str(",\"reason\":");
        push_string(&mut out, &dl.reason);
        out.push_str(",\"stage\":");
        push_string(&mut out, dl.stage);
        out.push('}');
        out
    }

    /// The headers added to the original ones on the Kafka DLQ topic:
    /// `neonblue.reason`, `neonblue.stage`, `neonblue.topic`,
    /// `neonblue.partition`, `neonblue.offset`.
    pub fn kafka_headers(&self) -> [(&'static str, String); 5] {
        [
            ("neonblue.reason", self.dead.reason.clone()),
            ("neonblue.stage", self.dead.stage.to_string()),
            ("neonblue.topic", self.record.topic.to_string()),
            ("neonblue.partition", self.record.partition.to_string()),
            ("neonblue.offset", self.record.offset.to_string()),
        ]
    }
}

fn push_json_or_string(out: &mut String, text: &str) {
    if json::from_str::<IgnoredAny>(text).is_ok() {
        if text.contains(['\n', '\r']) {
            out.push_str(&compact_json(text.trim()));
        } else {
            out.push_str(text.trim());
        }
    } else {
        push_string(out, text);
    }
}

fn push_string(out: &mut String, s: &str) {
    // Serialising a &str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::file_line::{decode_line, LineDecode};
    use serde_json::{json, Value};

    fn rec(l: LineDecode) -> RawRecord {
        match l {
            LineDecode::Record(r) => r,
            other => panic!("not a record: {other:?}"),
        }
    }

    #[test]
    fn dlq_keeps_originals_verbatim() {
        let line =
            r#"{"topic": "t", "key": {"id": 4}, "value": {"op": "zz"}, "headers": {"h": "1"}}"#;
        let r = rec(decode_line(line, 2, "d"));
        let dead = DeadLetter::new("op", "unknown_op");
        let d = DeadLetterRecord {
            record: &r,
            dead: &dead,
        }
        .json_line();
        assert_eq!(
            d,
            r#"{"topic":"t","partition":0,"offset":2,"key":{"id": 4},"value":{"op": "zz"},"headers":{"h": "1"},"reason":"unknown_op","stage":"op"}"#
        );
        let pairs = vec![("a".to_string(), "x\"y".to_string())];
        let r = RawRecord {
            topic: "k",
            partition: 1,
            offset: 9,
            key: Some("not json"),
            value: Some("{\n\"a\": 1\n}"),
            headers: Headers::Pairs(&pairs),
        };
        let dead = DeadLetter::new("envelope", "invalid_envelope");
        let d = DeadLetterRecord {
            record: &r,
            dead: &dead,
        }
        .json_line();
        assert_eq!(
            DeadLetterRecord {
                record: &r,
                dead: &dead
            }
            .kafka_headers()[4],
            ("neonblue.offset", "9".to_string())
        );
        assert!(!d.contains('\n'));
        let v: Value = serde_json::from_str(&d).unwrap();
        assert_eq!(v["key"], json!("not json"));
        assert_eq!(v["value"], json!({"a": 1}));
        assert_eq!(v["headers"], json!({"a": "x\"y"}));
    }
}
