//! One duration syntax for the configuration file, the environment and the
//! command line: humantime's (`250ms`, `2s`, `5m`, `1h 30m`, `1.5s`, `30d`).
//! A bare number has no unit and is rejected; a value too large for the
//! clock is an error, never a wrap-around. Each setting says which precision
//! it honours ([`crate::config::Config::validate`]): a finer value is
//! rejected there, never truncated.

use std::time::Duration;

/// Parses a duration such as `250ms`, `2s`, `5m`, `1h 30m`, `1.5s`, `30d`.
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(
            "empty duration: write a number and a unit, e.g. \"2s\", \"5m\" or \"250ms\"".into(),
        );
    }
    if t.parse::<f64>().is_ok() {
        return Err(format!(
            "{t:?} has no unit: write e.g. \"{t}s\", \"{t}ms\" or \"{t}m\" (units: ns, us, ms, s, m, h, d)"
        ));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("invalid duration {t:?}: {e} (e.g. \"2s\", \"5m\", \"250ms\", \"1h 30m\")")
    })
}

/// The canonical text of `d` (`5m`, `250ms`, `1h 30m`), which [`parse`] reads back.
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `#[serde(with = "crate::config::duration")]` for `Duration` fields:
/// written as text ([`format`]), read with [`parse`].
pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// See [`serialize`].
pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a duration as a string with a unit, e.g. \"2s\", \"5m\" or \"250ms\"")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
            parse(v).map_err(E::custom)
        }
    }
    d.deserialize_str(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_sub_second_values() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse(" 2s "), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("1500us"), Ok(Duration::from_micros(1500)));
    }

    #[test]
    fn bare_numbers_garbage_and_overflow_are_errors() {
        for bad in ["300", "0", "1.5", "", "soon", "5x", "-1s", "s"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse("300").unwrap_err().contains("no unit"));
        let e = parse("99999999999999999999s").unwrap_err();
        assert!(e.contains("too large"), "{e}");
        assert!(parse("1000000000000y").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for d in [
            Duration::from_millis(250),
            Duration::from_secs(300),
            Duration::from_millis(90_250),
            Duration::from_micros(7),
            Duration::ZERO,
        ] {
            assert_eq!(parse(&format(d)), Ok(d), "{}", format(d));
        }
        assert_eq!(format(Duration::from_secs(300)), "5m");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
    }
}
