//! Output rows as ClickHouse `JSONEachRow` lines, in the current dialect
//! (`schemas/clickhouse/`: DateTime64, Bool, LowCardinality) or the legacy
//! one of ClickHouse 18.16 (`schemas/clickhouse/legacy-18.16/`: whole-second
//! DateTime plus a `<col>_us` column, UInt8 flags). Strings that are null in
//! Parquet but non-nullable in ClickHouse are sent as `''`.

use super::Table;
use crate::domain::{AggRow, EventRow, Micros, UserDailyRow, WindowKind};
use crate::time::{format_date, format_second as split_ts, hour_of_day, DAY};
use serde_json::{json, Map, Value};

/// Which DDL the tables were created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Current releases (`schemas/clickhouse/*.sql`).
    Current,
    /// ClickHouse 18.16 (`schemas/clickhouse/legacy-18.16/*.sql`).
    Legacy,
}

fn date_of(us: Micros) -> String {
    format_date(us.div_euclid(DAY))
}

impl Dialect {
    /// Puts timestamp `name` into `row` (with `name_us` in the legacy dialect).
    fn ts(self, row: &mut Map<String, Value>, name: &str, us: Option<Micros>) {
        match (self, us) {
            (Dialect::Current, Some(us)) => {
                let (t, f) = split_ts(us);
                row.insert(name.into(), json!(format!("{t}.{f:06}")));
            }
            (Dialect::Legacy, Some(us)) => {
                let (t, f) = split_ts(us);
                row.insert(name.into(), json!(t));
                row.insert(format!("{name}_us"), json!(f));
            }
            (Dialect::Current, None) => {
                row.insert(name.into(), Value::Null);
            }
            (Dialect::Legacy, None) => {
                row.insert(name.into(), Value::Null);
                row.insert(format!("{name}_us"), Value::Null);
            }
        }
    }

    /// A whole-second timestamp (window bounds): exact in both dialects.
    fn window_ts(self, us: Micros) -> Value {
        let (t, f) = split_ts(us);
        match self {
            Dialect::Current => json!(format!("{t}.{f:06}")),
            Dialect::Legacy => json!(t),
        }
    }

    fn flag(self, b: bool) -> Value {
        match self {
            Dialect::Current => json!(b),
            Dialect::Legacy => json!(b as u8),
        }
    }
}

/// One table's rows: name, column list and JSON lines.
pub struct TableRows {
    /// Table name (unqualified).
    pub table: &'static str,
    /// Columns, in the order of the first row (for `INSERT INTO t (…)`).
    pub columns: Vec<String>,
    /// One JSON object per row.
    pub lines: Vec<String>,
}

fn finish(table: &'static str, rows: Vec<Map<String, Value>>) -> TableRows {
    let columns = rows
        .first()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default();
    let lines = rows
        .into_iter()
        .map(|r| Value::Object(r).to_string())
        .collect();
    TableRows {
        table,
        columns,
        lines,
    }
}

/// `events_processed` rows.
pub fn events(d: Dialect, rows: &[EventRow]) -> TableRows {
    let out = rows
        .iter()
        .map(|r| {
            let e = &r.event;
            let mut m = Map::new();
            m.insert("event_id".into(), json!(e.event_id));
            m.insert("experiment_id".into(), json!(e.experiment_id));
            m.insert("user_id".into(), json!(e.user_id));
            m.insert(
                "session_id".into(),
                json!(e.session_id.as_deref().unwrap_or("")),
            );
            m.insert("event_type".into(), json!(e.event_type));
            d.ts(&mut m, "timestamp", Some(e.timestamp));
            m.insert("event_date".into(), json!(date_of(e.timestamp)));
            m.insert("event_hour".into(), json!(hour_of_day(e.timestamp)));
            m.insert("variant_id".into(), json!(r.variant_id));
            m.insert(
                "variant_key".into(),
                json!(r.variant_key.as_deref().unwrap_or("")),
            );
            d.ts(&mut m, "assigned_at", r.assigned_at);
            m.insert("is_valid".into(), d.flag(r.is_valid));
            m.insert(
                "invalid_reason".into(),
                json!(r.invalid_reason.map(|v| v.as_str()).unwrap_or("")),
            );
            m.insert("is_late".into(), d.flag(r.is_late));
            m.insert("is_exposure".into(), d.flag(e.event_type == "exposure"));
            m.insert("is_click".into(), d.flag(e.event_type == "click"));
            m.insert("is_conversion".into(), d.flag(e.event_type == "conversion"));
            m.insert("claimed_variant_id".into(), json!(e.claimed_variant_id));
            m.insert("variant_mismatch".into(), d.flag(r.variant_mismatch()));
            m.insert("page".into(), json!(e.page.as_deref().unwrap_or("")));
            m.insert("device".into(), json!(e.device.as_deref().unwrap_or("")));
            m.insert("browser".into(), json!(e.browser.as_deref().unwrap_or("")));
            m.insert("value".into(), json!(e.value.filter(|v| v.is_finite())));
            m.insert("score".into(), json!(e.score));
            m.insert("properties".into(), json!(e.properties));
            m.insert("source_topic".into(), json!(&*r.origin.topic));
            m.insert("source_partition".into(), json!(r.origin.partition));
            m.insert("source_offset".into(), json!(r.origin.offset));
            m
        })
        .collect();
    finish(Table::EventsProcessed.name(), out)
}

/// `agg_hourly` or `agg_daily` rows of one window kind.
pub fn aggregates(d: Dialect, kind: WindowKind, rows: &[AggRow]) -> TableRows {
    let out = rows
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| {
            let mut m = Map::new();
            m.insert("window_start".into(), d.window_ts(r.window_start));
            m.insert("window_end".into(), d.window_ts(r.window_end));
            m.insert("experiment_id".into(), json!(r.experiment_id));
            m.insert("variant_id".into(), json!(r.variant_id));
            m.insert(
                "variant_key".into(),
                json!(r.variant_key.as_deref().unwrap_or("")),
            );
            m.insert("event_type".into(), json!(r.event_type));
            m.insert("events".into(), json!(r.events));
            m.insert("users".into(), json!(r.users));
            m.insert("value_count".into(), json!(r.value_count));
            m.insert("value_sum".into(), json!(r.value_sum));
            m.insert("value_sum_sq".into(), json!(r.value_sum_sq));
            m.insert("partition".into(), json!(r.partition));
            m.insert("date".into(), json!(date_of(r.window_start)));
            if kind == WindowKind::Hourly {
                m.insert("hour".into(), json!(hour_of_day(r.window_start)));
            }
            m
        })
        .collect();
    let table = Table::of_window(kind).name();
    finish(table, out)
}

/// `user_journeys` rows.
pub fn user_journeys(d: Dialect, rows: &[UserDailyRow]) -> TableRows {
    let out = rows
        .iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert("experiment_id".into(), json!(r.experiment_id));
            m.insert("variant_id".into(), json!(r.variant_id));
            m.insert("user_id".into(), json!(r.user_id));
            m.insert(
                "variant_key".into(),
                json!(r.variant_key.as_deref().unwrap_or("")),
            );
            m.insert("events".into(), json!(r.events));
            m.insert("journey".into(), json!(r.journey));
            m.insert("value_sum".into(), json!(r.value_sum));
            m.insert("sessions".into(), json!(r.sessions));
            m.insert("exposed".into(), d.flag(r.exposed));
            m.insert("converted".into(), d.flag(r.converted));
            d.ts(&mut m, "first_ts", Some(r.first_ts));
            d.ts(&mut m, "last_ts", Some(r.last_ts));
            m.insert("partition".into(), json!(r.partition));
            m.insert("date".into(), json!(date_of(r.date)));
            m
        })
        .collect();
    finish(Table::UserJourneys.name(), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_both_dialects() {
        let us = 1_759_276_800_123_456; // 2025-10-01T00:00:00.123456Z
        let mut m = Map::new();
        Dialect::Current.ts(&mut m, "t", Some(us));
        assert_eq!(m["t"], json!("2025-10-01 00:00:00.123456"));
        let mut m = Map::new();
        Dialect::Legacy.ts(&mut m, "t", Some(us));
        assert_eq!(m["t"], json!("2025-10-01 00:00:00"));
        assert_eq!(m["t_us"], json!(123456));
        let mut m = Map::new();
        Dialect::Legacy.ts(&mut m, "t", None);
        assert_eq!(m["t_us"], Value::Null);
        assert_eq!(split_ts(-1).0, "1969-12-31 23:59:59");
        assert_eq!(date_of(us), "2025-10-01");
    }
}
