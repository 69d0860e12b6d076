//! Field rules of SPEC 2.3 over captured values ([`Val`], [`Props`]).
//! `serde_json::Value` inputs can be used through [`Val::from_json`] and
//! [`properties_from_value`].

use super::json::{self, PropFields, Props, Val};
use super::timestamp::{
    parse_timestamp_f64, parse_timestamp_i64, parse_timestamp_str, parse_timestamp_u64,
};
use crate::domain::Micros;
use crate::domain::Text;
use compact_str::ToCompactString;
use serde_json::value::RawValue;

/// Why a required field was rejected (becomes `missing_<field>` / `invalid_<field>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldError {
    /// Absent or JSON `null`.
    Missing,
    /// Present but ill-typed, empty, out of range or unparseable.
    Invalid,
}

impl FieldError {
    /// The dead-letter reason for `field`: `missing_<field>` or `invalid_<field>`.
    pub fn reason(self, field: &str) -> String {
        match self {
            FieldError::Missing => format!("missing_{field}"),
            FieldError::Invalid => format!("invalid_{field}"),
        }
    }
}

/// `experiment_id` / `variant_id`: a JSON integer or an all-digit string
/// (ASCII digits only, no sign) within `u32`.
pub fn u32_id(v: &Val) -> Result<u32, FieldError> {
    match v {
        Val::Absent | Val::Null => Err(FieldError::Missing),
        Val::U64(n) => u32::try_from(*n).map_err(|_| FieldError::Invalid),
        Val::Str(s) => parse_digits_u32(s).ok_or(FieldError::Invalid),
        _ => Err(FieldError::Invalid),
    }
}

/// Parses a non-empty all-ASCII-digit string within `u32` (leading zeros allowed).
pub fn parse_digits_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut v: u64 = 0;
    for c in s.bytes() {
        v = v * 10 + (c - b'0') as u64;
        if v > u32::MAX as u64 {
            return None;
        }
    }
    Some(v as u32)
}

/// `user_id` and ids: a JSON integer (as its decimal text) or a non-empty
/// string (kept verbatim), so `123` and `"123"` are the same id.
pub fn text_id(v: &Val) -> Result<Text, FieldError> {
    match v {
        Val::Absent | Val::Null => Err(FieldError::Missing),
        Val::U64(n) => Ok(n.to_compact_string()),
        Val::I64(n) => Ok(n.to_compact_string()),
        Val::Str(s) if !s.is_empty() => Ok(Text::from(&**s)),
        _ => Err(FieldError::Invalid),
    }
}

/// A required non-empty string (event `event_type`).
pub fn non_empty_string(v: &Val) -> Result<Text, FieldError> {
    match v {
        Val::Absent | Val::Null => Err(FieldError::Missing),
        Val::Str(s) if !s.is_empty() => Ok(Text::from(&**s)),
        _ => Err(FieldError::Invalid),
    }
}

/// `session_id`: a string (kept as is), or an integer as its decimal text;
/// anything else is treated as absent.
pub fn session_id(v: &Val) -> Option<Text> {
    match v {
        Val::Str(s) => Some(Text::from(&**s)),
        Val::U64(n) => Some(n.to_compact_string()),
        Val::I64(n) => Some(n.to_compact_string()),
        _ => None,
    }
}

/// An optional `u32` id (claimed `variant_id`): ill-typed is absent.
pub fn opt_u32_id(v: &Val) -> Option<u32> {
    u32_id(v).ok()
}

/// An optional string (`page`, `device`, `browser`, `variant_key`): strings only.
pub fn opt_string(v: &Val) -> Option<Text> {
    v.as_str().map(Text::from)
}

/// A timestamp field: an ISO-8601 string or an epoch number read by magnitude.
pub fn timestamp(v: &Val) -> Result<Micros, FieldError> {
    let r = match v {
        Val::Absent | Val::Null => return Err(FieldError::Missing),
        Val::Str(s) => parse_timestamp_str(s),
        Val::U64(n) => parse_timestamp_u64(*n),
        Val::I64(n) => parse_timestamp_i64(*n),
        Val::F64(f) => parse_timestamp_f64(*f),
        _ => None,
    };
    r.ok_or(FieldError::Invalid)
}

/// `properties.value`: a JSON number, or a string in strict JSON number
/// syntax (`"12.30"`, no surrounding spaces), as a finite `f64`; else `None`.
pub fn number_value(v: &Val) -> Option<f64> {
    match v {
        Val::U64(n) => Some(*n as f64),
        Val::I64(n) => Some(*n as f64),
        Val::F64(f) if f.is_finite() => Some(*f),
        Val::Str(s) if is_json_number(s) => s.parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// `properties.score`: a JSON integer within `i64`, or an integral float
/// (`42.0`) within `i64`; else `None`.
pub fn score(v: &Val) -> Option<i64> {
    match v {
        Val::U64(n) => i64::try_from(*n).ok(),
        Val::I64(n) => Some(*n),
        Val::F64(f)
            if f.is_finite()
                && f.fract() == 0.0
                && *f >= -9.223_372_036_854_776e18
                && *f < 9.223_372_036_854_776e18 =>
        {
            Some(*f as i64)
        }
        _ => None,
    }
}

/// True when `s` is exactly a JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
pub fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    i == b.len()
}

/// Compact, canonical JSON text of a valid JSON document: the same text as
/// `serde_json::to_string` of its `serde_json::Value` (preserve_order: key
/// order kept), produced without building the tree. Insignificant whitespace
/// is dropped, strings with escapes are re-escaped the serde_json way (so
/// `"\u00e9"` and `"é"` give the same text), non-integer numbers are
/// re-printed as serde_json prints an `f64`. Duplicate keys are all kept.
/// Text that is not valid JSON gives unspecified output (never a panic).
pub fn compact_json(text: &str) -> String {
    let b = text.as_bytes();
    let sub = |a: usize, z: usize| text.get(a..z.min(b.len())).unwrap_or("");
    let mut out = String::with_capacity(b.len());
    let mut last = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\n' | b'\r' | b'\t' => {
                out.push_str(sub(last, i));
                i += 1;
                last = i;
            }
            b'"' => {
                let start = i;
                let mut escaped = false;
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\\' => {
                            escaped = true;
                            i += 2;
                        }
                        b'"' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
                if escaped {
                    out.push_str(sub(last, start));
                    let tok = sub(start, i);
                    match serde_json::from_str::<String>(tok) {
                        Ok(s) => out.push_str(&serde_json::to_string(&s).unwrap_or_default()),
                        Err(_) => out.push_str(tok),
                    }
                    last = i.min(b.len());
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                let mut float = false;
                while i < b.len() && matches!(b[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    float |= matches!(b[i], b'.' | b'e' | b'E');
                    i += 1;
                }
                let tok = sub(start, i);
                if float
                    || (tok.parse::<u64>().is_err() && tok.parse::<i64>().is_err())
                    || tok == "-0"
                {
                    out.push_str(sub(last, start));
                    match serde_json::from_str::<serde_json::Value>(tok) {
                        Ok(v) => out.push_str(&v.to_string()),
                        Err(_) => out.push_str(tok),
                    }
                    last = i;
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(sub(last, b.len()));
    out
}

/// The event columns taken from `properties` (SPEC 2.3, 6.1).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExtractedProps {
    /// The properties object as compact JSON (`{}` when absent or not an object).
    pub properties: String,
    /// `page` when a string.
    pub page: Option<Text>,
    /// `device` when a string.
    pub device: Option<Text>,
    /// `browser` when a string.
    pub browser: Option<Text>,
    /// `value` (number or numeric string).
    pub value: Option<f64>,
    /// `score` (integral number).
    pub score: Option<i64>,
}

impl ExtractedProps {
    /// Empty properties: `{}` and no extracted columns.
    pub fn empty() -> Self {
        ExtractedProps {
            properties: "{}".to_owned(),
            ..Default::default()
        }
    }
}

/// Reads the columns of a raw JSON object (text must be a valid object).
fn extract_object(raw: &str) -> ExtractedProps {
    match PropFields::parse_text(raw) {
        Some(p) => ExtractedProps {
            properties: compact_json(raw),
            page: opt_string(&p.page),
            device: opt_string(&p.device),
            browser: opt_string(&p.browser),
            value: number_value(&p.value),
            score: score(&p.score),
        },
        _ => ExtractedProps::empty(),
    }
}

/// `properties` rules: an object is used as is; a string holding a JSON
/// object is parsed; anything else (null, absent, other JSON, text that is
/// not JSON, e.g. jsonb `"null"`) becomes `{}`.
pub fn properties(p: &Props) -> ExtractedProps {
    match p {
        Props::Object(raw) => extract_object(raw),
        Props::Str(s) => match json::from_str::<&RawValue>(s) {
            Ok(raw) if raw.get().starts_with('{') => extract_object(raw.get()),
            _ => ExtractedProps::empty(),
        },
        Props::Absent | Props::Null | Props::Other => ExtractedProps::empty(),
    }
}

/// [`properties`] for a `serde_json::Value` (object, string holding JSON, or other).
pub fn properties_from_value(v: &serde_json::Value) -> ExtractedProps {
    match v {
        serde_json::Value::Object(_) => extract_object(&v.to_string()),
        serde_json::Value::String(s) => properties(&Props::Str(s.as_str().into())),
        _ => ExtractedProps::empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::borrow::Cow;

    fn s(x: &str) -> Val<'_> {
        Val::Str(Cow::Borrowed(x))
    }

    #[test]
    fn u32_ids() {
        assert_eq!(u32_id(&Val::U64(7)), Ok(7));
        assert_eq!(u32_id(&s("007")), Ok(7));
        assert_eq!(u32_id(&s("4294967295")), Ok(u32::MAX));
        assert_eq!(u32_id(&s("4294967296")), Err(FieldError::Invalid));
        assert_eq!(u32_id(&Val::U64(4_294_967_296)), Err(FieldError::Invalid));
        assert_eq!(u32_id(&Val::I64(-1)), Err(FieldError::Invalid));
        assert_eq!(u32_id(&s("")), Err(FieldError::Invalid));
        assert_eq!(u32_id(&s("+1")), Err(FieldError::Invalid));
        assert_eq!(u32_id(&s(" 1")), Err(FieldError::Invalid));
        assert_eq!(u32_id(&s("1.0")), Err(FieldError::Invalid));
        assert_eq!(u32_id(&Val::F64(1.0)), Err(FieldError::Invalid));
        assert_eq!(u32_id(&Val::Null), Err(FieldError::Missing));
        assert_eq!(u32_id(&Val::Absent), Err(FieldError::Missing));
        assert_eq!(
            u32_id(&s("99999999999999999999999")),
            Err(FieldError::Invalid)
        );
        assert_eq!(
            FieldError::Invalid.reason("experiment_id"),
            "invalid_experiment_id"
        );
    }

    #[test]
    fn text_ids() {
        assert_eq!(text_id(&Val::U64(123)), Ok("123".into()));
        assert_eq!(text_id(&s("123")), Ok("123".into()));
        assert_eq!(text_id(&Val::I64(-4)), Ok("-4".into()));
        assert_eq!(text_id(&s("")), Err(FieldError::Invalid));
        assert_eq!(text_id(&Val::F64(1.5)), Err(FieldError::Invalid));
        assert_eq!(text_id(&Val::Bool(true)), Err(FieldError::Invalid));
        assert_eq!(text_id(&Val::Object), Err(FieldError::Invalid));
        assert_eq!(text_id(&Val::Null), Err(FieldError::Missing));
        assert_eq!(non_empty_string(&Val::U64(1)), Err(FieldError::Invalid));
    }

    #[test]
    fn optional_fields() {
        assert_eq!(session_id(&s("x")), Some("x".into()));
        assert_eq!(session_id(&Val::U64(10)), Some("10".into()));
        assert_eq!(session_id(&Val::F64(1.5)), None);
        assert_eq!(session_id(&Val::Null), None);
        assert_eq!(opt_u32_id(&s("abc")), None);
        assert_eq!(opt_string(&Val::U64(1)), None);
    }

    #[test]
    fn values_and_scores() {
        assert_eq!(number_value(&s("19.99")), Some(19.99));
        assert_eq!(number_value(&s("12.30")), Some(12.3));
        assert_eq!(number_value(&s("-5.0")), Some(-5.0));
        assert_eq!(number_value(&s("1e3")), Some(1000.0));
        assert_eq!(number_value(&Val::U64(0)), Some(0.0));
        assert_eq!(number_value(&Val::F64(-5.0)), Some(-5.0));
        for bad in [
            "", " 1", "1 ", "01", "1.", ".5", "+1", "NaN", "inf", "1e", "0x10", "1e999", "abc",
        ] {
            assert_eq!(number_value(&s(bad)), None, "{bad:?}");
        }
        assert_eq!(number_value(&Val::Bool(true)), None);
        assert_eq!(score(&Val::U64(85)), Some(85));
        assert_eq!(score(&Val::F64(42.0)), Some(42));
        assert_eq!(score(&Val::F64(-0.0)), Some(0));
        assert_eq!(score(&Val::F64(42.5)), None);
        assert_eq!(score(&Val::F64(1e19)), None);
        assert_eq!(score(&Val::U64(u64::MAX)), None);
        assert_eq!(score(&s("42")), None);
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(&s("1970-01-01T00:00:01Z")), Ok(1_000_000));
        assert_eq!(timestamp(&Val::U64(1000)), Ok(1_000_000));
        assert_eq!(timestamp(&s("yesterday")), Err(FieldError::Invalid));
        assert_eq!(timestamp(&Val::Bool(false)), Err(FieldError::Invalid));
        assert_eq!(timestamp(&Val::Absent), Err(FieldError::Missing));
    }

    #[test]
    fn compact_equals_serde_json() {
        for t in [
            r#"{"a": "x y", "b": [1, 2, -3], "c": "q\" z", "d": {"e": null, "f": true, "g": []}}"#,
            r#"{"t": "\u00e9\uD83D\uDE80 \/ \n \u0001 \t", "u": "caf\u00e9"}"#,
            r#"{"f": 1.50, "g": 1E5, "h": -0.0, "i": 29.99, "j": 120.0, "k": 100000000000000000000, "l": -0, "m": 1e-7}"#,
            r#"{"n": 18446744073709551615, "o": -9223372036854775808, "p": 0, "q": [ ], "r": { } }"#,
            "{\n\t\"a\" :\r\n 1 }",
            r#"{"page": "/café/ü", "title": "Bestätigung – 完了 🚀"}"#,
        ] {
            let v: serde_json::Value = serde_json::from_str(t).unwrap();
            assert_eq!(compact_json(t), v.to_string(), "{t}");
        }
        // garbage never panics
        for t in ["\"\\", "\"\\é", "-é", "{\"a\": 1", "\"abc"] {
            let _ = compact_json(t);
        }
    }

    #[test]
    fn compacting() {
        assert_eq!(
            compact_json(r#"{"a": "x y", "b": [1, 2], "c": "q\" z"}"#),
            r#"{"a":"x y","b":[1,2],"c":"q\" z"}"#
        );
        assert_eq!(compact_json("{\n\t\"a\" : \"\\\\\" }"), "{\"a\":\"\\\\\"}");
        assert_eq!(
            compact_json(r#"{"café": "完了 🚀"}"#),
            r#"{"café":"完了 🚀"}"#
        );
    }

    #[test]
    fn properties_rules() {
        let p = properties_from_value(
            &json!({"page": "/x", "value": "19.99", "score": 70, "device": 3}),
        );
        assert_eq!(
            p.properties,
            r#"{"page":"/x","value":"19.99","score":70,"device":3}"#
        );
        assert_eq!(p.page.as_deref(), Some("/x"));
        assert_eq!(p.value, Some(19.99));
        assert_eq!(p.score, Some(70));
        assert_eq!(p.device, None);
        let p = properties_from_value(&json!("{\"page\": \"/p\", \"value\": 29.99}"));
        assert_eq!(p.properties, r#"{"page":"/p","value":29.99}"#);
        assert_eq!(p.value, Some(29.99));
        for v in [
            json!(null),
            json!("null"),
            json!("[1]"),
            json!("not json"),
            json!(5),
            json!([1]),
            json!(""),
        ] {
            assert_eq!(properties_from_value(&v), ExtractedProps::empty(), "{v}");
        }
        assert_eq!(properties(&Props::Absent), ExtractedProps::empty());
        let p = properties_from_value(&json!({"meta": {"page": "inner"}}));
        assert_eq!(p.page, None);
    }
}
