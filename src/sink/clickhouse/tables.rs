//! The ClickHouse tables neonblue writes: the one list of their names, DDL
//! files and columns, used by the schema check, the inserts, `schema
//! print|apply` and `replay --reset`.

use super::rows::{self, Dialect};
use crate::domain::{AggRow, Event, EventRow, Origin, OutputBatch, UserDailyRow, WindowKind};

/// One table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Enriched events (Parquet `events`).
    EventsProcessed,
    /// Hourly aggregates.
    AggHourly,
    /// Daily aggregates.
    AggDaily,
    /// Per-user daily rollups (Parquet `user_daily`).
    UserJourneys,
}

impl Table {
    /// Every table, in DDL order.
    pub const ALL: [Table; 4] = [
        Table::EventsProcessed,
        Table::AggHourly,
        Table::AggDaily,
        Table::UserJourneys,
    ];

    /// The (unqualified) table name.
    pub fn name(self) -> &'static str {
        match self {
            Table::EventsProcessed => "events_processed",
            Table::AggHourly => "agg_hourly",
            Table::AggDaily => "agg_daily",
            Table::UserJourneys => "user_journeys",
        }
    }

    /// The table of a window kind's aggregates.
    pub fn of_window(kind: WindowKind) -> Table {
        match kind {
            WindowKind::Hourly => Table::AggHourly,
            WindowKind::Daily => Table::AggDaily,
        }
    }

    /// `schemas/clickhouse/` file name and text of its DDL (current
    /// releases, or ClickHouse 18.16 with `legacy`).
    pub fn ddl(self, legacy: bool) -> (&'static str, &'static str) {
        match (self, legacy) {
            (Table::EventsProcessed, false) => (
                "010_events_processed.sql",
                include_str!("../../../schemas/clickhouse/010_events_processed.sql"),
            ),
            (Table::AggHourly, false) => (
                "020_agg_hourly.sql",
                include_str!("../../../schemas/clickhouse/020_agg_hourly.sql"),
            ),
            (Table::AggDaily, false) => (
                "030_agg_daily.sql",
                include_str!("../../../schemas/clickhouse/030_agg_daily.sql"),
            ),
            (Table::UserJourneys, false) => (
                "040_user_journeys.sql",
                include_str!("../../../schemas/clickhouse/040_user_journeys.sql"),
            ),
            (Table::EventsProcessed, true) => (
                "010_events_processed.sql",
                include_str!("../../../schemas/clickhouse/legacy-18.16/010_events_processed.sql"),
            ),
            (Table::AggHourly, true) => (
                "020_agg_hourly.sql",
                include_str!("../../../schemas/clickhouse/legacy-18.16/020_agg_hourly.sql"),
            ),
            (Table::AggDaily, true) => (
                "030_agg_daily.sql",
                include_str!("../../../schemas/clickhouse/legacy-18.16/030_agg_daily.sql"),
            ),
            (Table::UserJourneys, true) => (
                "040_user_journeys.sql",
                include_str!("../../../schemas/clickhouse/legacy-18.16/040_user_journeys.sql"),
            ),
        }
    }

    /// This table's rows of `batch` as `JSONEachRow` lines.
    pub fn rows(self, d: Dialect, batch: &OutputBatch) -> rows::TableRows {
        match self {
            Table::EventsProcessed => rows::events(d, &batch.events),
            Table::AggHourly => rows::aggregates(d, WindowKind::Hourly, &batch.aggregates),
            Table::AggDaily => rows::aggregates(d, WindowKind::Daily, &batch.aggregates),
            Table::UserJourneys => rows::user_journeys(d, &batch.user_daily),
        }
    }

    /// The columns the sink writes into this table (from the rows it builds,
    /// so they cannot drift apart).
    pub fn columns(self, d: Dialect) -> Vec<String> {
        self.rows(d, &sample_batch()).columns
    }
}

/// One row of every dataset, with every optional value present.
pub(crate) fn sample_batch() -> OutputBatch {
    let event = EventRow {
        event: Event {
            event_id: String::new(),
            experiment_id: 0,
            user_id: Default::default(),
            event_type: Default::default(),
            timestamp: 0,
            session_id: None,
            claimed_variant_id: None,
            page: None,
            device: None,
            browser: None,
            value: None,
            score: None,
            properties: String::new(),
        },
        variant_id: None,
        variant_key: None,
        assigned_at: None,
        is_valid: false,
        invalid_reason: None,
        is_late: false,
        origin: Origin {
            topic: "".into(),
            partition: 0,
            offset: 0,
        },
    };
    let agg = |kind| AggRow {
        kind,
        window_start: 0,
        window_end: 0,
        experiment_id: 0,
        variant_id: 0,
        variant_key: None,
        event_type: String::new(),
        events: 0,
        users: 0,
        value_count: 0,
        value_sum: 0.0,
        value_sum_sq: 0.0,
        partition: 0,
    };
    let day = UserDailyRow {
        date: 0,
        experiment_id: 0,
        variant_id: 0,
        user_id: String::new(),
        variant_key: None,
        events: 0,
        journey: Vec::new(),
        value_sum: 0.0,
        sessions: 0,
        exposed: false,
        converted: false,
        first_ts: 0,
        last_ts: 0,
        partition: 0,
    };
    OutputBatch {
        events: vec![event],
        aggregates: vec![agg(WindowKind::Hourly), agg(WindowKind::Daily)],
        user_daily: vec![day],
        dead_letters: Vec::new(),
    }
}
