//! Dataset names, Hive partition directories and deterministic object names
//! (SPEC 6): `events/event_date=YYYY-MM-DD/`, `agg_hourly/date=YYYY-MM-DD/hour=HH/`,
//! `agg_daily/date=YYYY-MM-DD/`, `user_daily/date=YYYY-MM-DD/`, and
//! `part-{part}-{seq:020}.parquet` inside them; dead letters in `dlq/`.

use super::{Result, SinkError};
use crate::domain::outputs::WindowKind;
use crate::time::{format_date, hour_of_day, parse_date, Micros, DAY, HOUR};
use object_store::path::Path;
use std::fmt;

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
            Dataset::AggHourly => hour_of_day(ts),
            _ => 0,
        };
        HivePartition {
            day: ts.div_euclid(DAY),
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
        self.day * DAY
    }

    /// Start of the partition's hour in microseconds (`agg_hourly`).
    pub fn hour_start_micros(self) -> Micros {
        self.day_start_micros() + i64::from(self.hour) * HOUR
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

#[cfg(test)]
mod tests {
    use super::*;

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
