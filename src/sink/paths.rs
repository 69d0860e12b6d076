//! Dataset names, Hive partition directories and deterministic object names
//! (SPEC 6): `events/event_date=YYYY-MM-DD/`, `agg_hourly/date=YYYY-MM-DD/hour=HH/`,
//! `agg_daily/date=YYYY-MM-DD/`, `user_daily/date=YYYY-MM-DD/`, and
//! `part-{part}-{seq:020}.parquet` inside them; dead letters in `dlq/`.

use super::{Result, SinkError};
use crate::domain::outputs::WindowKind;
use crate::domain::records::Micros;
use object_store::path::Path;
use std::fmt;

/// Microseconds per hour.
const HOUR_MICROS: i64 = 3_600_000_000;
/// Microseconds per day.
const DAY_MICROS: i64 = 86_400_000_000;

/// Top-level directory of the dead-letter lines (file mode).
pub const DLQ_DIR: &str = "dlq";

/// One of the Parquet datasets under the output root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dataset {
    /// Enriched events (SPEC 6.1), partitioned by `event_date`.
    Events,
    /// Hourly windows (SPEC 6.2), partitioned by `date` and `hour`.
    AggHourly,
    /// Daily windows (SPEC 6.2), partitioned by `date`.
    AggDaily,
    /// Per-user daily rollups (SPEC 6.3), partitioned by `date`.
    UserDaily,
}

impl Dataset {
    /// Every dataset, in directory order.
    pub const ALL: [Dataset; 4] = [
        Dataset::Events,
        Dataset::AggHourly,
        Dataset::AggDaily,
        Dataset::UserDaily,
    ];

    /// Directory name under the output root.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Events => "events",
            Dataset::AggHourly => "agg_hourly",
            Dataset::AggDaily => "agg_daily",
            Dataset::UserDaily => "user_daily",
        }
    }

    /// The aggregate dataset of a window kind.
    pub fn of_window(kind: WindowKind) -> Dataset {
        match kind {
            WindowKind::Hourly => Dataset::AggHourly,
            WindowKind::Daily => Dataset::AggDaily,
        }
    }

    /// Hive partition keys, outermost first (they live in the path only).
    pub fn hive_keys(self) -> &'static [&'static str] {
        match self {
            Dataset::Events => &["event_date"],
            Dataset::AggHourly => &["date", "hour"],
            Dataset::AggDaily | Dataset::UserDaily => &["date"],
        }
    }

    /// The Hive directory of a partition, e.g. `agg_hourly/date=2024-05-01/hour=07`.
    pub fn dir(self, part: HivePartition) -> String {
        let date = format_date(part.day);
        match self {
            Dataset::Events => format!("events/event_date={date}"),
            Dataset::AggHourly => format!("agg_hourly/date={date}/hour={:02}", part.hour),
            Dataset::AggDaily => format!("agg_daily/date={date}"),
            Dataset::UserDaily => format!("user_daily/date={date}"),
        }
    }

    /// The partition holding a row whose partitioning timestamp is `ts`
    /// (event `timestamp`, `window_start`, user_daily `date`). The hour is
    /// kept only for `agg_hourly`.
    pub fn partition_of(self, ts: Micros) -> HivePartition {
        let hour = match self {
            Dataset::AggHourly => (ts.rem_euclid(DAY_MICROS) / HOUR_MICROS) as u8,
            _ => 0,
        };
        HivePartition {
            day: ts.div_euclid(DAY_MICROS),
            hour,
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The Hive partition values of an object: a UTC day and, for `agg_hourly`, an hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HivePartition {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    /// Hour of day 0–23 (`agg_hourly` only; 0 elsewhere).
    pub hour: u8,
}

impl HivePartition {
    /// Start of the partition's day in microseconds.
    pub fn day_start_micros(self) -> Micros {
        self.day * DAY_MICROS
    }

    /// Start of the partition's hour in microseconds (`agg_hourly`).
    pub fn hour_start_micros(self) -> Micros {
        self.day_start_micros() + i64::from(self.hour) * HOUR_MICROS
    }
}

/// Checks a segment's `part` (`p0003`, `router`): it becomes part of object names.
pub fn validate_part(part: &str) -> Result<()> {
    let ok = !part.is_empty()
        && part.len() <= 64
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SinkError::InvalidPart(part.to_string()))
    }
}

/// File name of a segment's object: `part-{part}-{seq:020}.{ext}`.
pub fn file_name(part: &str, seq: u64, ext: &str) -> String {
    format!("part-{part}-{seq:020}.{ext}")
}

/// Object path of a segment's Parquet file in one partition of a dataset.
pub fn parquet_path(ds: Dataset, hp: HivePartition, part: &str, seq: u64) -> Path {
    Path::from(format!(
        "{}/{}",
        ds.dir(hp),
        file_name(part, seq, "parquet")
    ))
}

/// Object path of a segment's dead letters: `dlq/part-{part}-{seq:020}.jsonl`.
pub fn dlq_path(part: &str, seq: u64) -> Path {
    Path::from(format!("{DLQ_DIR}/{}", file_name(part, seq, "jsonl")))
}

/// Parses the Hive partition of an object path below `ds`'s directory,
/// e.g. `agg_hourly/date=2024-05-01/hour=07/part-p0000-….parquet`.
pub fn parse_partition(ds: Dataset, path: &Path) -> Result<HivePartition> {
    let bad = |reason: String| SinkError::Decode {
        path: path.to_string(),
        reason,
    };
    let parts: Vec<_> = path.parts().collect();
    let keys = ds.hive_keys();
    // dataset / key=value… / file
    if parts.len() != keys.len() + 2 || parts[0].as_ref() != ds.name() {
        return Err(bad(format!(
            "expected {}/{}/<file>",
            ds.name(),
            keys.iter()
                .map(|k| format!("{k}=…"))
                .collect::<Vec<_>>()
                .join("/")
        )));
    }
    let mut hp = HivePartition { day: 0, hour: 0 };
    for (key, seg) in keys.iter().zip(&parts[1..]) {
        let seg = seg.as_ref();
        let value = seg
            .strip_prefix(key)
            .and_then(|s| s.strip_prefix('='))
            .ok_or_else(|| bad(format!("segment {seg:?} is not {key}=…")))?;
        match *key {
            "hour" => {
                hp.hour = value
                    .parse::<u8>()
                    .ok()
                    .filter(|h| *h < 24)
                    .ok_or_else(|| bad(format!("bad hour {value:?}")))?;
            }
            _ => hp.day = parse_date(value).ok_or_else(|| bad(format!("bad date {value:?}")))?,
        }
    }
    Ok(hp)
}

/// Formats days since the epoch as `YYYY-MM-DD` (proleptic Gregorian, UTC).
pub fn format_date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses `YYYY-MM-DD` into days since the epoch (calendar-checked).
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = &s[r];
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 → (year, month, day); H. Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn partitions_and_paths() {
        // 2024-05-01T23:59:59.999999Z and the next microsecond.
        let ts = 1_714_607_999_999_999;
        let hp = Dataset::AggHourly.partition_of(ts);
        assert_eq!(hp.hour, 23);
        assert_eq!(
            parquet_path(Dataset::AggHourly, hp, "p0003", 42).as_ref(),
            "agg_hourly/date=2024-05-01/hour=23/part-p0003-00000000000000000042.parquet"
        );
        let next = Dataset::Events.partition_of(ts + 1);
        assert_eq!(Dataset::Events.dir(next), "events/event_date=2024-05-02");
        assert_eq!(next.hour, 0);
        let p = parquet_path(Dataset::AggHourly, hp, "router", 7);
        assert_eq!(parse_partition(Dataset::AggHourly, &p).unwrap(), hp);
        assert!(parse_partition(Dataset::AggDaily, &p).is_err());
        assert_eq!(
            dlq_path("p0000", 1).as_ref(),
            "dlq/part-p0000-00000000000000000001.jsonl"
        );
        assert!(validate_part("p0003").is_ok());
        assert!(validate_part("a/b").is_err());
        assert!(validate_part("").is_err());
    }
}
