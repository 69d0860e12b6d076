//! Timestamp parsing (SPEC 2.3): ISO-8601 text and epoch numbers read by
//! magnitude, normalised to UTC microseconds. Hand-written and allocation-free.

use crate::domain::Micros;

use crate::time::{days_from_civil, days_in_month, DAY, SECOND};

/// Reads exactly `n` ASCII digits at `b[i..]`.
#[inline]
fn digits(b: &[u8], i: usize, n: usize) -> Option<u32> {
    let s = b.get(i..i + n)?;
    let mut v = 0u32;
    for &c in s {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as u32;
    }
    Some(v)
}

/// Parses an ISO-8601 timestamp to UTC microseconds since the epoch.
///
/// Accepted: `YYYY-MM-DD` + (`T` | `t` | space) + `hh:mm:ss`, an optional
/// fraction `.d+` (any number of digits; digits past the sixth are truncated),
/// then an optional zone `Z` / `z` / `±hh:mm` / `±hhmm` / `±hh` (none = UTC).
/// The date is calendar-checked (leap years included), hours are 0–23,
/// minutes and seconds 0–59 (no leap second). Anything else, including
/// surrounding whitespace, gives `None`.
pub fn parse_timestamp_str(s: &str) -> Option<Micros> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let year = digits(b, 0, 4)? as i64;
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let hour = digits(b, 11, 2)?;
    if b[13] != b':' {
        return None;
    }
    let minute = digits(b, 14, 2)?;
    if b[16] != b':' {
        return None;
    }
    let second = digits(b, 17, 2)?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }

    let mut i = 19;
    let mut micros: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..6 {
            micros *= 10;
        }
    }

    let offset_secs: i64 = match b.get(i) {
        None => 0,
        Some(b'Z') | Some(b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, i + 1, 2)?;
            i += 3;
            let om = if b.get(i) == Some(&b':') {
                let m = digits(b, i + 1, 2)?;
                i += 3;
                m
            } else if i < b.len() {
                let m = digits(b, i, 2)?;
                i += 2;
                m
            } else {
                0
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = (oh * 3600 + om * 60) as i64;
            if sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        Some(_) => return None,
    };
    if i != b.len() {
        return None;
    }

    let days = days_from_civil(year, month, day);
    let secs = (hour * 3600 + minute * 60 + second) as i64 - offset_secs;
    Some(days * DAY + secs * SECOND + micros)
}

/// Reads an integer epoch timestamp by magnitude: |n| < 1e14 is milliseconds,
/// < 1e17 microseconds, anything larger nanoseconds (floored to µs).
pub fn parse_timestamp_i64(n: i64) -> Option<Micros> {
    let a = n.unsigned_abs();
    if a < 100_000_000_000_000 {
        n.checked_mul(1000)
    } else if a < 100_000_000_000_000_000 {
        Some(n)
    } else {
        Some(n.div_euclid(1000))
    }
}

/// Like [`parse_timestamp_i64`] for unsigned integers (values above `i64::MAX`
/// are nanoseconds and always fit once converted).
pub fn parse_timestamp_u64(n: u64) -> Option<Micros> {
    match i64::try_from(n) {
        Ok(v) => parse_timestamp_i64(v),
        Err(_) => i64::try_from(n / 1000).ok(),
    }
}

/// Like [`parse_timestamp_i64`] for floats: must be finite; the result is
/// floored to whole microseconds and must fit an `i64`.
pub fn parse_timestamp_f64(n: f64) -> Option<Micros> {
    if !n.is_finite() {
        return None;
    }
    let a = n.abs();
    let us = if a < 1e14 {
        (n * 1000.0).floor()
    } else if a < 1e17 {
        n.floor()
    } else {
        (n / 1000.0).floor()
    };
    // i64 range check (2^63 is exactly representable).
    if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&us) {
        Some(us as i64)
    } else {
        None
    }
}

/// Reads a JSON number as an epoch timestamp by magnitude (SPEC 2.3):
/// |n| < 1e14 → milliseconds, < 1e17 → microseconds, else nanoseconds.
/// Integers are exact; finite floats are accepted and floored to µs.
pub fn parse_timestamp_number(n: &serde_json::Number) -> Option<Micros> {
    if let Some(v) = n.as_i64() {
        parse_timestamp_i64(v)
    } else if let Some(v) = n.as_u64() {
        parse_timestamp_u64(v)
    } else {
        parse_timestamp_f64(n.as_f64()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leap_years() {
        assert!(parse_timestamp_str("2024-02-29T00:00:00Z").is_some());
        assert!(parse_timestamp_str("2000-02-29T00:00:00Z").is_some());
        assert!(parse_timestamp_str("2025-02-29T00:00:00Z").is_none());
        assert!(parse_timestamp_str("1900-02-29T00:00:00Z").is_none());
        assert!(parse_timestamp_str("2025-04-31T00:00:00Z").is_none());
        assert!(parse_timestamp_str("2025-12-31T23:59:59Z").is_some());
    }

    #[test]
    fn basic_forms() {
        let base = 20_361 * DAY + 8 * 3_600_000_000 + 59 * 60_000_000 + 59_000_000;
        let e = Some(base + 999_999);
        assert_eq!(parse_timestamp_str("2025-09-30T08:59:59.999999Z"), e);
        assert_eq!(parse_timestamp_str("2025-09-30T08:59:59.999999+00:00"), e);
        assert_eq!(parse_timestamp_str("2025-09-30 08:59:59.999999"), e);
        assert_eq!(parse_timestamp_str("2025-09-30t08:59:59.999999z"), e);
        assert_eq!(parse_timestamp_str("2025-09-30T08:59:59.9999999999Z"), e);
        assert_eq!(parse_timestamp_str("2025-09-30T08:59:59Z"), Some(base));
        assert_eq!(parse_timestamp_str("2025-09-30T08:59:59+00:00"), Some(base));
        assert_eq!(
            parse_timestamp_str("2025-09-30T08:59:59.5Z"),
            Some(base + 500_000)
        );
        assert_eq!(
            parse_timestamp_str("2025-09-30T08:59:59.000100Z"),
            Some(base + 100)
        );
        assert_eq!(parse_timestamp_str("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp_str("1969-12-31T23:59:59.999999Z"), Some(-1));
    }

    #[test]
    fn zones() {
        let utc = parse_timestamp_str("2025-09-30T10:00:00Z").unwrap();
        let h = 3_600_000_000;
        assert_eq!(parse_timestamp_str("2025-09-30T12:00:00+02:00"), Some(utc));
        assert_eq!(parse_timestamp_str("2025-09-30T12:00:00+0200"), Some(utc));
        assert_eq!(parse_timestamp_str("2025-09-30T12:00:00+02"), Some(utc));
        assert_eq!(parse_timestamp_str("2025-09-30T05:30:00-04:30"), Some(utc));
        assert_eq!(parse_timestamp_str("2025-09-30T05:30:00-0430"), Some(utc));
        assert_eq!(parse_timestamp_str("2025-09-30T10:00:00-00:00"), Some(utc));
        assert_eq!(
            parse_timestamp_str("2025-09-30T00:00:00+23:59"),
            Some(utc - 10 * h - 23 * h - 59 * 60_000_000)
        );
        // crossing the day boundary
        assert_eq!(parse_timestamp_str("2025-10-01T01:00:00+15:00"), Some(utc));
    }

    #[test]
    fn rejects() {
        for s in [
            "",
            "2025-09-30",
            "2025-09-30T10:00",
            "2025-09-30T10:00Z",
            "2025-09-30X10:00:00Z",
            "2025-9-30T10:00:00Z",
            "2025-09-30T24:00:00Z",
            "2025-09-30T23:60:00Z",
            "2025-09-30T23:59:60Z",
            "2025-13-01T00:00:00Z",
            "2025-00-01T00:00:00Z",
            "2025-01-00T00:00:00Z",
            "2025-01-32T00:00:00Z",
            "2025-09-30T10:00:00.Z",
            "2025-09-30T10:00:00.",
            "2025-09-30T10:00:00ZZ",
            "2025-09-30T10:00:00+",
            "2025-09-30T10:00:00+2",
            "2025-09-30T10:00:00+24:00",
            "2025-09-30T10:00:00+02:60",
            "2025-09-30T10:00:00+02:0",
            "2025-09-30T10:00:00+02:00:00",
            "2025-09-30T10:00:00+020",
            " 2025-09-30T10:00:00Z",
            "2025-09-30T10:00:00Z ",
            "+2025-09-30T10:00:00Z",
            "2025-09-30T10:00:00 UTC",
            "2025-09-30T1a:00:00Z",
            "２０２５-09-30T10:00:00Z",
            "2025-09-30T10:00:00.１Z",
        ] {
            assert_eq!(parse_timestamp_str(s), None, "{s:?}");
        }
    }

    #[test]
    fn extreme_years() {
        assert!(parse_timestamp_str("0000-01-01T00:00:00Z").is_some());
        assert!(parse_timestamp_str("9999-12-31T23:59:59.999999-23:59").is_some());
    }

    #[test]
    fn numbers_by_magnitude() {
        // ms
        assert_eq!(
            parse_timestamp_i64(1_759_226_535_037),
            Some(1_759_226_535_037_000)
        );
        assert_eq!(parse_timestamp_i64(0), Some(0));
        assert_eq!(parse_timestamp_i64(-1), Some(-1000));
        assert_eq!(
            parse_timestamp_i64(99_999_999_999_999),
            Some(99_999_999_999_999_000)
        );
        // µs
        assert_eq!(
            parse_timestamp_i64(100_000_000_000_000),
            Some(100_000_000_000_000)
        );
        assert_eq!(
            parse_timestamp_i64(1_759_226_535_037_104),
            Some(1_759_226_535_037_104)
        );
        // ns (floored)
        assert_eq!(
            parse_timestamp_i64(1_759_226_535_037_104_999),
            Some(1_759_226_535_037_104)
        );
        assert_eq!(
            parse_timestamp_i64(-100_000_000_000_000_001),
            Some(-100_000_000_000_001)
        );
        assert_eq!(
            parse_timestamp_i64(i64::MIN),
            Some(i64::MIN.div_euclid(1000))
        );
        assert_eq!(
            parse_timestamp_u64(u64::MAX),
            Some((u64::MAX / 1000) as i64)
        );
        assert_eq!(parse_timestamp_u64(5), Some(5000));
    }

    #[test]
    fn floats() {
        assert_eq!(
            parse_timestamp_f64(1_759_226_535_037.5),
            Some(1_759_226_535_037_500)
        );
        assert_eq!(parse_timestamp_f64(1.5e15), Some(1_500_000_000_000_000));
        assert_eq!(parse_timestamp_f64(1.5e18), Some(1_500_000_000_000_000));
        assert_eq!(parse_timestamp_f64(f64::NAN), None);
        assert_eq!(parse_timestamp_f64(f64::INFINITY), None);
        assert_eq!(parse_timestamp_f64(1e300), None);
        assert_eq!(parse_timestamp_f64(-0.0001), Some(-1));
    }

    #[test]
    fn json_numbers() {
        let n: serde_json::Number = serde_json::from_str("1759226535037104").unwrap();
        assert_eq!(parse_timestamp_number(&n), Some(1_759_226_535_037_104));
        let n: serde_json::Number = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(parse_timestamp_number(&n), Some(18_446_744_073_709_551));
        let n: serde_json::Number = serde_json::from_str("1759226535037.25").unwrap();
        assert_eq!(parse_timestamp_number(&n), Some(1_759_226_535_037_250));
    }
}
