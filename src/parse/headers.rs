//! Header lookup for the `eventrouter` layout.

use super::json::{self, raw_str, Val};
use super::raw::Headers;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Looks up `N` header names at once (an empty name is never found); the last
/// header of a name wins. A value that is not a JSON string in
/// [`Headers::Json`] is read as its JSON text, and a value of the form
/// `{"schema": …, "payload": …}` (JsonConverter header converter with schemas)
/// is unwrapped to its payload (a string payload to its text, a null payload
/// to absent). Malformed header JSON reads as no headers.
pub fn lookup<'h, const N: usize>(
    headers: &Headers<'h>,
    names: [&str; N],
) -> [Option<Cow<'h, str>>; N] {
    let mut out: [Option<Cow<'h, str>>; N] = std::array::from_fn(|_| None);
    match headers {
        Headers::None => {}
        Headers::Pairs(pairs) => {
            for (k, v) in pairs.iter() {
                for (i, n) in names.iter().enumerate() {
                    if !n.is_empty() && k == n {
                        out[i] = Some(Cow::Borrowed(v.as_str()));
                    }
                }
            }
        }
        Headers::Json(text) => {
            let seed = Collect {
                names: &names,
                out: &mut out,
            };
            let mut de = serde_json::Deserializer::from_str(text);
            if seed.deserialize(&mut de).and_then(|_| de.end()).is_err() {
                out = std::array::from_fn(|_| None);
            }
        }
    }
    for v in out.iter_mut() {
        if let Some(s) = v.as_deref() {
            if s.starts_with('{') {
                let unwrapped = unwrap_schema(s).map(Cow::into_owned);
                *v = unwrapped.map(Cow::Owned);
            }
        }
    }
    out
}

/// `{"schema": …, "payload": p}` → `Some(p as text)` (`None` for a null
/// payload); any other text is returned unchanged.
fn unwrap_schema(s: &str) -> Option<Cow<'_, str>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct W<'a> {
        #[allow(dead_code)]
        schema: &'a RawValue,
        #[serde(borrow)]
        payload: &'a RawValue,
    }
    match json::from_str::<W>(s) {
        Ok(w) => {
            let p = w.payload.get();
            if p == "null" {
                None
            } else if p.starts_with('"') {
                raw_str(w.payload)
            } else {
                Some(Cow::Borrowed(p))
            }
        }
        Err(_) => Some(Cow::Borrowed(s)),
    }
}

struct Collect<'n, 'o, 'h, const N: usize> {
    names: &'n [&'n str; N],
    out: &'o mut [Option<Cow<'h, str>>; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for Collect<'_, '_, 'de, N> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Collect<'_, '_, 'de, N> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a header object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<Val<'de>>()? {
            let v = map.next_value::<&'de RawValue>()?;
            let Some(k) = k.as_str() else { continue };
            for (i, n) in self.names.iter().enumerate() {
                if !n.is_empty() && *n == k {
                    let t = v.get();
                    self.out[i] = if t.starts_with('"') {
                        raw_str(v)
                    } else {
                        Some(Cow::Borrowed(t))
                    };
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_headers() {
        let h = Headers::Json(
            r#"{"id": "30", "eventType": "EVENT_CREATED", "n": 5, "eventType": "X\u0041"}"#,
        );
        let [a, b, c, d] = lookup(&h, ["id", "eventType", "n", "missing"]);
        assert_eq!(a.as_deref(), Some("30"));
        assert_eq!(b.as_deref(), Some("XA"));
        assert_eq!(c.as_deref(), Some("5"));
        assert_eq!(d, None);
        let [e] = lookup(&h, [""]);
        assert_eq!(e, None);
    }

    #[test]
    fn pairs_and_schema_values() {
        let pairs = vec![
            (
                "aggregateType".to_string(),
                r#"{"schema":{"type":"string","optional":false},"payload":"event"}"#.to_string(),
            ),
            ("id".to_string(), "1".to_string()),
            ("id".to_string(), "2".to_string()),
        ];
        let [a, b] = lookup(&Headers::Pairs(&pairs), ["aggregateType", "id"]);
        assert_eq!(a.as_deref(), Some("event"));
        assert_eq!(b.as_deref(), Some("2"));
        let h =
            Headers::Json(r#"{"x": {"schema": {"type": "int64"}, "payload": 4}, "y": {"a": 1}}"#);
        let [x, y] = lookup(&h, ["x", "y"]);
        assert_eq!(x.as_deref(), Some("4"));
        assert_eq!(y.as_deref(), Some(r#"{"a": 1}"#));
        let [z] = lookup(&Headers::Json("not json"), ["x"]);
        assert_eq!(z, None);
    }
}
