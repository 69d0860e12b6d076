//! Time units and the calendar, in one place.
//!
//! Every timestamp inside neonblue is [`Micros`]: microseconds since the Unix
//! epoch, UTC. Dates are days since 1970-01-01 in the proleptic Gregorian
//! calendar (Howard Hinnant's `days_from_civil` / `civil_from_days`).

/// Microseconds since the Unix epoch, UTC.
pub type Micros = i64;

/// One millisecond in microseconds (Kafka's record times are milliseconds).
pub const MILLISECOND: Micros = 1_000;
/// One second in microseconds.
pub const SECOND: Micros = 1_000 * MILLISECOND;
/// One minute in microseconds.
pub const MINUTE: Micros = 60 * SECOND;
/// One hour in microseconds.
pub const HOUR: Micros = 60 * MINUTE;
/// One day in microseconds.
pub const DAY: Micros = 24 * HOUR;

/// `seconds` as [`Micros`], saturating.
pub fn from_secs(seconds: u64) -> Micros {
    i64::try_from(seconds)
        .unwrap_or(i64::MAX)
        .saturating_mul(SECOND)
}

/// `d` as [`Micros`], exactly: `None` when it has a sub-microsecond part
/// (nothing is truncated) or does not fit (about 292,000 years).
pub fn from_duration(d: std::time::Duration) -> Option<Micros> {
    if d.subsec_micros() * 1_000 != d.subsec_nanos() {
        return None;
    }
    i64::try_from(d.as_micros()).ok()
}

/// `d` as [`Micros`], saturating at `i64::MAX` and rounding a
/// sub-microsecond part up (for settings validated with [`from_duration`]).
pub fn from_duration_saturating(d: std::time::Duration) -> Micros {
    let us = d.as_micros() + u128::from(d.subsec_micros() * 1_000 != d.subsec_nanos());
    i64::try_from(us).unwrap_or(i64::MAX)
}

/// Start (midnight, UTC) of the day containing `ts`.
pub fn day_start(ts: Micros) -> Micros {
    ts.div_euclid(DAY) * DAY
}

/// Hour of the day (0–23, UTC) of `ts`.
pub fn hour_of_day(ts: Micros) -> u8 {
    (ts.rem_euclid(DAY) / HOUR) as u8
}

/// True for Gregorian leap years.
pub fn is_leap_year(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Number of days of month `m` (1..=12) in year `y`; 0 for another `m`.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of the date `y-m-d` (`m` in 1..=12, `d` in 1..=31).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let m = m as i64;
    let mp = if m > 2 { m - 3 } else { m + 9 }; // [0, 11]
    let doy = (153 * mp + 2) / 5 + d as i64 - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of `days` since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DD` of `days` since the epoch.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since the epoch of a `YYYY-MM-DD` date (calendar-checked).
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = &s[r];
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)? as i64, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// `YYYY-MM-DD hh:mm:ss` of the second containing `ts`, and the
/// microseconds within that second.
pub fn format_second(ts: Micros) -> (String, u32) {
    let secs = ts.div_euclid(SECOND);
    let sod = secs.rem_euclid(86_400);
    let text = format!(
        "{} {:02}:{:02}:{:02}",
        format_date(secs.div_euclid(86_400)),
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    (text, ts.rem_euclid(SECOND) as u32)
}

/// ISO-8601 `YYYY-MM-DDThh:mm:ss.ffffffZ` of `ts`.
pub fn format_iso(ts: Micros) -> String {
    let (text, frac) = format_second(ts);
    format!("{}T{}.{frac:06}Z", &text[..10], &text[11..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        for days in [-719_468, -1, 0, 1, 10_957, 20_361, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(format_date(20_361), "2025-09-30");
        assert_eq!(parse_date("2025-09-30"), Some(20_361));
        assert_eq!(parse_date("2024-02-29"), Some(days_from_civil(2024, 2, 29)));
        assert_eq!(parse_date("2025-02-29"), None);
        assert_eq!(parse_date("2025-9-30"), None);
        assert!(is_leap_year(2000) && !is_leap_year(1900) && is_leap_year(2024));
    }

    #[test]
    fn units_and_formats() {
        let ts = 20_361 * DAY + 10 * HOUR + MINUTE + 42 * SECOND + 7;
        assert_eq!(day_start(ts), 20_361 * DAY);
        assert_eq!(hour_of_day(ts), 10);
        assert_eq!(hour_of_day(-1), 23);
        assert_eq!(format_iso(ts), "2025-09-30T10:01:42.000007Z");
        assert_eq!(format_second(ts), ("2025-09-30 10:01:42".to_string(), 7));
        assert_eq!(from_secs(300), 5 * MINUTE);
        assert_eq!(from_secs(u64::MAX), i64::MAX);
        use std::time::Duration;
        assert_eq!(from_duration(Duration::from_millis(250)), Some(250_000));
        assert_eq!(from_duration(Duration::from_secs(300)), Some(5 * MINUTE));
        assert_eq!(from_duration(Duration::from_nanos(1_500)), None);
        assert_eq!(from_duration(Duration::from_secs(u64::MAX)), None);
        assert_eq!(from_duration_saturating(Duration::from_nanos(1_500)), 2);
        assert_eq!(from_duration_saturating(Duration::MAX), i64::MAX);
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(-1), "1969-12-31");
        assert_eq!(format_date(19_782), "2024-02-29");
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2024-13-01"), None);
        assert_eq!(parse_date("2024-1-01"), None);
        for day in (-719_000..2_900_000).step_by(997) {
            assert_eq!(parse_date(&format_date(day)), Some(day), "day {day}");
        }
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2025, 9, 30), 20_361);
        assert_eq!(days_from_civil(0, 1, 1), -719_528);
        assert_eq!(days_from_civil(9999, 12, 31), 2_932_896);
    }
}
