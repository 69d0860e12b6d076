//! Tolerant, borrowed, single-pass JSON capture for the parser's hot path.
//!
//! The envelope, the outbox row and the domain payload are read with custom
//! serde visitors that never fail on a type mismatch: every field of interest
//! is captured as a [`Val`] (scalars, strings borrowed from the input where
//! possible, containers skipped with [`IgnoredAny`]) or a [`Shape`], and the
//! parser checks the captured values afterwards, in the order SPEC 2.5 fixes.
//! Only invalid JSON syntax makes deserialisation fail.

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A captured JSON value: scalars kept, containers only noted.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Val<'a> {
    /// The key was not present.
    #[default]
    Absent,
    /// JSON `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A negative integer.
    I64(i64),
    /// A non-negative integer.
    U64(u64),
    /// A number with a fraction or exponent.
    F64(f64),
    /// A string (borrowed when it had no escapes).
    Str(Cow<'a, str>),
    /// An object (contents skipped).
    Object,
    /// An array (contents skipped).
    Array,
}

impl<'a> Val<'a> {
    /// True for an absent key or JSON `null`.
    pub fn is_missing(&self) -> bool {
        matches!(self, Val::Absent | Val::Null)
    }

    /// The string, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Captures a `serde_json::Value` (strings borrowed).
    pub fn from_json(v: &'a serde_json::Value) -> Val<'a> {
        use serde_json::Value;
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Val::U64(u)
                } else if let Some(i) = n.as_i64() {
                    Val::I64(i)
                } else {
                    Val::F64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => Val::Str(Cow::Borrowed(s)),
            Value::Array(_) => Val::Array,
            Value::Object(_) => Val::Object,
        }
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Val<'de>, E> {
        Ok(Val::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Val<'de>, E> {
        Ok(if v >= 0 {
            Val::U64(v as u64)
        } else {
            Val::I64(v)
        })
    }
    fn visit_u64<E>(self, v: u64) -> Result<Val<'de>, E> {
        Ok(Val::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Val<'de>, E> {
        Ok(Val::F64(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_none<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Val<'de>, D::Error> {
        Val::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Val::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::Object)
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

/// A value expected to be an object of type `T` (or, in some places, a string).
#[derive(Debug, Default)]
pub enum Shape<'a, T> {
    /// The key was not present.
    #[default]
    Absent,
    /// JSON `null`.
    Null,
    /// A string (e.g. a payload holding JSON text).
    Str(Cow<'a, str>),
    /// An object, captured as `T`.
    Object(T),
    /// Any other JSON value (number, boolean, array).
    Other,
}

/// Types captured from a JSON object by a tolerant map visitor.
pub trait FromMap<'de>: Sized {
    /// Reads the object's entries; must not fail on value types.
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

struct ShapeVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: FromMap<'de>> Visitor<'de> for ShapeVisitor<T> {
    type Value = Shape<'de, T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Shape::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Shape::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Shape::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Shape::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Shape::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::from_map(map).map(Shape::Object)
    }
}

impl<'de, T: FromMap<'de>> Deserialize<'de> for Shape<'de, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor(std::marker::PhantomData))
    }
}

impl<'de, T: FromMap<'de>> FromMap<'de> for Box<T> {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::from_map(map).map(Box::new)
    }
}

/// Index of a map key in a fixed key list ([`UNKNOWN_KEY`] when not listed),
/// without allocating for the key.
pub struct KeySeed(pub &'static [&'static str]);

/// Index returned by [`KeySeed`] for a key not in its list.
pub const UNKNOWN_KEY: usize = usize::MAX;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        Ok(self.0.iter().position(|k| *k == v).unwrap_or(UNKNOWN_KEY))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<usize, E> {
        Ok(UNKNOWN_KEY)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<usize, E> {
        Ok(UNKNOWN_KEY)
    }
}

/// Detection of the JsonConverter `schemas.enable=true` wrapper
/// `{"schema": …, "payload": …}` (exactly those two keys).
#[derive(Debug, Default)]
pub struct Wrapper<'a> {
    /// Number of keys seen in the object.
    pub n_keys: u32,
    /// A `schema` key was seen.
    pub schema: bool,
    /// The raw `payload` value, when seen.
    pub payload: Option<&'a RawValue>,
}

impl<'a> Wrapper<'a> {
    /// The wrapped payload's raw text when the object was exactly `{schema, payload}`.
    pub fn unwrapped(&self) -> Option<&'a RawValue> {
        if self.n_keys == 2 && self.schema {
            self.payload
        } else {
            None
        }
    }
}

/// A properties value as found in a payload or row.
#[derive(Debug, Default)]
pub enum Props<'a> {
    /// Not present.
    #[default]
    Absent,
    /// JSON `null`.
    Null,
    /// An object (the verbatim text of a valid JSON object).
    Object(&'a str),
    /// A string (possibly holding JSON text).
    Str(Cow<'a, str>),
    /// Any other JSON value.
    Other,
}

impl<'a> Props<'a> {
    /// Classifies a raw JSON value.
    pub fn from_raw(raw: &'a RawValue) -> Props<'a> {
        Self::from_text(raw.get())
    }

    /// [`Self::from_raw`] on the text of a valid JSON value.
    pub fn from_text(t: &'a str) -> Props<'a> {
        match t.as_bytes().first() {
            Some(b'{') => Props::Object(t),
            Some(b'"') => match unescape(t) {
                Some(s) => Props::Str(s),
                None => Props::Other,
            },
            Some(b'n') => Props::Null,
            _ => Props::Other,
        }
    }
}

/// The contents of a raw JSON string value (borrowed when it has no escapes).
pub fn raw_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    unescape(raw.get())
}

/// The index of the first byte at or after `i` that ends a run of plain
/// string bytes (`"`, `\\` or a control character), or `b.len()`. Eight
/// bytes at a time: the lowest flagged byte of a word is exact, since the
/// tests' borrows only run upwards.
#[inline]
pub(crate) fn plain_run(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v;
    while let Some(word) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let flagged = (zero_byte(x ^ (ONES * u64::from(b'"')))
            | zero_byte(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x))
            & HIGH;
        if flagged != 0 {
            return i + (flagged.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && b[i] != b'"' && b[i] != b'\\' && b[i] >= 0x20 {
        i += 1;
    }
    i
}

/// Decodes a JSON string token (quotes included): borrowed when it has no
/// escapes, else unescaped by a fast loop (serde_json's decoder on anything
/// unusual, such as surrogate escapes). `None` when it is not a valid string.
pub fn unescape(tok: &str) -> Option<Cow<'_, str>> {
    let inner = tok.strip_prefix('"').and_then(|t| t.strip_suffix('"'));
    let Some(inner) = inner else {
        return serde_json::from_str::<String>(tok).ok().map(Cow::Owned);
    };
    let b = inner.as_bytes();
    let first = plain_run(b, 0);
    if first == b.len() {
        return Some(Cow::Borrowed(inner));
    }
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = first;
    out.extend_from_slice(&b[..i]);
    while i < b.len() {
        let c = b[i];
        i += 1;
        if c != b'\\' {
            return None; // a quote or a control character
        }
        let e = *b.get(i)?;
        i += 1;
        let c = match e {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'u' => {
                let hex = b
                    .get(i..i + 4)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
                let cp = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u32::from_str_radix(h, 16).ok())?;
                match char::from_u32(cp) {
                    Some(ch) => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        i += 4;
                        let run = plain_run(b, i);
                        out.extend_from_slice(&b[i..run]);
                        i = run;
                        continue;
                    }
                    // A surrogate: pairing rules are serde_json's.
                    None => return serde_json::from_str::<String>(tok).ok().map(Cow::Owned),
                }
            }
            _ => return None,
        };
        out.push(c);
        let run = plain_run(b, i);
        out.extend_from_slice(&b[i..run]);
        i = run;
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

impl<'a, T: FromMap<'a>> Shape<'a, T> {
    /// Classifies a raw JSON value: a string is unescaped, an object parsed as `T`.
    pub fn from_raw(raw: &'a RawValue) -> Shape<'a, T> {
        Self::from_text(raw.get())
    }

    /// [`Self::from_raw`] on the text of a valid JSON value.
    pub fn from_text(t: &'a str) -> Shape<'a, T> {
        match t.as_bytes().first() {
            Some(b'"') => unescape(t).map_or(Shape::Other, Shape::Str),
            Some(b'{') => from_str::<Shape<'a, T>>(t).unwrap_or(Shape::Other),
            Some(b'n') => Shape::Null,
            _ => Shape::Other,
        }
    }
}

/// The fields of a domain payload or table row that the parser reads
/// (assignment and event columns share one capture).
#[derive(Debug, Default)]
pub struct Row<'a> {
    /// `id`.
    pub id: Val<'a>,
    /// `experiment_id`.
    pub experiment_id: Val<'a>,
    /// `user_id`.
    pub user_id: Val<'a>,
    /// `variant_id` (an assignment's variant, an event's claim).
    pub variant_id: Val<'a>,
    /// `variant_key`.
    pub variant_key: Val<'a>,
    /// `assigned_at`.
    pub assigned_at: Val<'a>,
    /// `event_type` (the domain type: `click`, …).
    pub event_type: Val<'a>,
    /// `timestamp`.
    pub timestamp: Val<'a>,
    /// `session_id`.
    pub session_id: Val<'a>,
    /// `properties`.
    pub properties: Props<'a>,
    /// Schema-wrapper detection (for a top-level value).
    pub wrapper: Wrapper<'a>,
}

const ROW_KEYS: &[&str] = &[
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
    "schema",
    "payload",
];

impl<'de> FromMap<'de> for Row<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut r = Row::default();
        while let Some(k) = map.next_key_seed(KeySeed(ROW_KEYS))? {
            r.wrapper.n_keys += 1;
            match k {
                0 => r.id = map.next_value()?,
                1 => r.experiment_id = map.next_value()?,
                2 => r.user_id = map.next_value()?,
                3 => r.variant_id = map.next_value()?,
                4 => r.variant_key = map.next_value()?,
                5 => r.assigned_at = map.next_value()?,
                6 => r.event_type = map.next_value()?,
                7 => r.timestamp = map.next_value()?,
                8 => r.session_id = map.next_value()?,
                9 => r.properties = Props::from_raw(map.next_value::<&'de RawValue>()?),
                10 => {
                    r.wrapper.schema = true;
                    map.next_value::<IgnoredAny>()?;
                }
                11 => r.wrapper.payload = Some(map.next_value::<&'de RawValue>()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(r)
    }
}

/// The properties fields the event columns are extracted from.
#[derive(Debug, Default)]
pub struct PropFields<'a> {
    /// `page`.
    pub page: Val<'a>,
    /// `device`.
    pub device: Val<'a>,
    /// `browser`.
    pub browser: Val<'a>,
    /// `value`.
    pub value: Val<'a>,
    /// `score`.
    pub score: Val<'a>,
}

const PROP_KEYS: &[&str] = &["page", "device", "browser", "value", "score"];

impl<'de> FromMap<'de> for PropFields<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut p = PropFields::default();
        while let Some(k) = map.next_key_seed(KeySeed(PROP_KEYS))? {
            match k {
                0 => p.page = map.next_value()?,
                1 => p.device = map.next_value()?,
                2 => p.browser = map.next_value()?,
                3 => p.value = map.next_value()?,
                4 => p.score = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(p)
    }
}

/// Parses `text` as a whole JSON document into `T` (trailing garbage is an error).
pub fn from_str<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn val_capture() {
        let v: Val = from_str("\"abc\"").unwrap();
        assert!(matches!(v, Val::Str(Cow::Borrowed("abc"))));
        let v: Val = from_str("\"a\\nb\"").unwrap();
        assert_eq!(v, Val::Str(Cow::Owned("a\nb".into())));
        assert_eq!(from_str::<Val>("-3").unwrap(), Val::I64(-3));
        assert_eq!(from_str::<Val>("3").unwrap(), Val::U64(3));
        assert_eq!(from_str::<Val>("3.5").unwrap(), Val::F64(3.5));
        assert_eq!(from_str::<Val>("null").unwrap(), Val::Null);
        assert_eq!(from_str::<Val>("[1,{\"a\":[]}]").unwrap(), Val::Array);
        assert_eq!(from_str::<Val>("{\"a\":[1,2]}").unwrap(), Val::Object);
        assert!(from_str::<Val>("{\"a\":").is_err());
    }

    #[test]
    fn row_capture_and_wrapper() {
        let r: Shape<Row> =
            from_str(r#"{"id": 5, "user_id": "u", "properties": {"a": 1}, "x": [1], "id": 6}"#)
                .unwrap();
        let Shape::Object(r) = r else { panic!() };
        assert_eq!(r.id, Val::U64(6));
        assert!(matches!(r.properties, Props::Object(p) if p == r#"{"a": 1}"#));
        assert!(r.wrapper.unwrapped().is_none());
        let r: Shape<Row> = from_str(r#"{"schema": {"type": "string"}, "payload": "x"}"#).unwrap();
        let Shape::Object(r) = r else { panic!() };
        assert_eq!(r.wrapper.unwrapped().unwrap().get(), "\"x\"");
        let r: Shape<Row> = from_str("\"text\"").unwrap();
        assert!(matches!(r, Shape::Str(_)));
        let r: Shape<Row> = from_str("12").unwrap();
        assert!(matches!(r, Shape::Other));
    }

    #[test]
    fn unescaping_matches_serde_json() {
        for tok in [
            r#""plain""#,
            r#""""#,
            r#""{\"id\": 11, \"a\": \"x\\ny\"}""#,
            r#""\u00e9\uD83D\uDE80 \/ \b\f\n\r\t \u0001 caf\u00E9""#,
            r#""ends with escape\"""#,
            r#""\\""#,
            "\"raw é 完了 🚀\"",
        ] {
            let want: String = serde_json::from_str(tok).unwrap();
            assert_eq!(unescape(tok).as_deref(), Some(want.as_str()), "{tok}");
        }
        for bad in [
            r#""\x""#,
            r#""\uZZZZ""#,
            r#""\uD800""#,
            r#""abc"#,
            "\"a\u{1}b\"",
            r#""\u12""#,
            r#""\""#,
        ] {
            assert_eq!(unescape(bad), None, "{bad}");
        }
        assert!(matches!(unescape(r#""abc""#), Some(Cow::Borrowed("abc"))));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Tokens built from runs of plain text, escapes, quotes and control
        /// characters, long enough for the eight-byte scan: decoded as
        /// serde_json decodes them, refused where it refuses them.
        #[test]
        fn unescaping_matches_serde_json_on_any_token(
            parts in proptest::collection::vec(proptest::prop_oneof![
                8 => "[a-zA-Z0-9 é✓]{0,20}",
                3 => proptest::strategy::Just("\\\"".to_string()),
                3 => proptest::strategy::Just("\\n".to_string()),
                3 => proptest::strategy::Just("\\u00e9".to_string()),
                1 => proptest::strategy::Just("\\u12".to_string()),
                1 => proptest::strategy::Just("\\".to_string()),
                1 => proptest::strategy::Just("\"".to_string()),
                1 => proptest::strategy::Just("\u{1}".to_string()),
                1 => proptest::strategy::Just("\\q".to_string()),
            ], 0..10),
        ) {
            let tok = format!("\"{}\"", parts.concat());
            let want = serde_json::from_str::<String>(&tok).ok();
            proptest::prop_assert_eq!(unescape(&tok).map(Cow::into_owned), want, "{}", tok);
            let inner = tok.as_bytes();
            let stop = plain_run(inner, 1);
            let want_stop = (1..inner.len())
                .find(|&i| matches!(inner[i], b'"' | b'\\' | 0..=0x1f))
                .unwrap_or(inner.len());
            proptest::prop_assert_eq!(stop, want_stop);
        }
    }

    #[test]
    fn props_classification() {
        let raw: &RawValue = from_str(r#""{\"a\": 1}""#).unwrap();
        assert!(matches!(Props::from_raw(raw), Props::Str(s) if s == "{\"a\": 1}"));
        let raw: &RawValue = from_str("null").unwrap();
        assert!(matches!(Props::from_raw(raw), Props::Null));
        let raw: &RawValue = from_str("[1]").unwrap();
        assert!(matches!(Props::from_raw(raw), Props::Other));
    }
}
