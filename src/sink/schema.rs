//! Arrow schemas of the Parquet datasets (SPEC 6.1–6.3) and the builders
//! that turn output rows into record batches.
//!
//! The Hive partition keys (`event_date`; `date`, `hour`) are not columns:
//! they live in the object path only (see [`super::paths`]). Non-null
//! columns are declared non-nullable; timestamps are
//! `Timestamp(Microsecond, "UTC")`, which Parquet stores as
//! `TIMESTAMP(isAdjustedToUTC = true, MICROS)`.

use super::paths::Dataset;
use crate::domain::outputs::{AggRow, EventRow, UserDailyRow};
use arrow::array::{
    ArrayRef, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, Int32Array, Int32Builder,
    Int64Builder, ListArray, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder, UInt32Array, UInt32Builder, UInt64Array, UInt8Builder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use std::sync::{Arc, OnceLock};

/// Time zone of every timestamp column.
pub const UTC: &str = "UTC";

/// `Timestamp(Microsecond, "UTC")`.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

fn f(name: &str, dt: DataType, nullable: bool) -> Field {
    Field::new(name, dt, nullable)
}

/// The non-null utf8 item field of `user_daily.journey`.
pub fn journey_item_field() -> FieldRef {
    Arc::new(Field::new_list_field(DataType::Utf8, false))
}

/// Which columns of a dataset's files have a dictionary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dictionaries {
    /// Every column but these, whose values are (nearly) unique in a file:
    /// a dictionary gains nothing but its page before the writer falls back
    /// to plain encoding.
    AllBut(&'static [&'static str]),
    /// None: a file holds too few rows for a dictionary to pay.
    None,
}

/// The dictionaries of `ds`, measured column by column on the 1M-envelope
/// bench file (README, *Parquet writer settings*).
pub fn dictionaries(ds: Dataset) -> Dictionaries {
    match ds {
        Dataset::Events => Dictionaries::AllBut(&["event_id", "timestamp", "source_offset"]),
        Dataset::UserDaily => Dictionaries::AllBut(&["user_id", "events", "first_ts", "last_ts"]),
        Dataset::AggHourly | Dataset::AggDaily => Dictionaries::None,
    }
}

/// Schema of `events` (SPEC 6.1), without the `event_date` partition key.
pub fn events_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        use DataType::*;
        Arc::new(Schema::new(vec![
            f("event_id", Utf8, false),
            f("experiment_id", UInt32, false),
            f("user_id", Utf8, false),
            f("session_id", Utf8, true),
            f("event_type", Utf8, false),
            f("timestamp", ts_type(), false),
            f("event_hour", UInt8, false),
            f("variant_id", UInt32, true),
            f("variant_key", Utf8, true),
            f("assigned_at", ts_type(), true),
            f("is_valid", Boolean, false),
            f("invalid_reason", Utf8, true),
            f("is_late", Boolean, false),
            f("is_exposure", Boolean, false),
            f("is_click", Boolean, false),
            f("is_conversion", Boolean, false),
            f("claimed_variant_id", UInt32, true),
            f("variant_mismatch", Boolean, false),
            f("page", Utf8, true),
            f("device", Utf8, true),
            f("browser", Utf8, true),
            f("value", Float64, true),
            f("score", Int64, true),
            f("properties", Utf8, false),
            f("source_topic", Utf8, false),
            f("source_partition", Int32, false),
            f("source_offset", Int64, false),
        ]))
    })
    .clone()
}

/// Schema of `agg_hourly` and `agg_daily` (SPEC 6.2), without `date`/`hour`.
pub fn agg_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        use DataType::*;
        Arc::new(Schema::new(vec![
            f("window_start", ts_type(), false),
            f("window_end", ts_type(), false),
            f("experiment_id", UInt32, false),
            f("variant_id", UInt32, false),
            f("variant_key", Utf8, true),
            f("event_type", Utf8, false),
            f("events", UInt64, false),
            f("users", UInt64, false),
            f("value_count", UInt64, false),
            f("value_sum", Float64, false),
            f("value_sum_sq", Float64, false),
            f("partition", Int32, false),
        ]))
    })
    .clone()
}

/// Schema of `user_daily` (SPEC 6.3), without the `date` partition key.
pub fn user_daily_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        use DataType::*;
        Arc::new(Schema::new(vec![
            f("experiment_id", UInt32, false),
            f("variant_id", UInt32, false),
            f("user_id", Utf8, false),
            f("variant_key", Utf8, true),
            f("events", UInt64, false),
            f("journey", List(journey_item_field()), false),
            f("value_sum", Float64, false),
            f("sessions", UInt64, false),
            f("exposed", Boolean, false),
            f("converted", Boolean, false),
            f("first_ts", ts_type(), false),
            f("last_ts", ts_type(), false),
            f("partition", Int32, false),
        ]))
    })
    .clone()
}

/// The file schema of a dataset.
pub fn schema_of(ds: super::Dataset) -> SchemaRef {
    match ds {
        super::Dataset::Events => events_schema(),
        super::Dataset::AggHourly | super::Dataset::AggDaily => agg_schema(),
        super::Dataset::UserDaily => user_daily_schema(),
    }
}

fn utf8<'a>(it: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(it))
}

fn utf8_opt<'a>(it: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(it))
}

fn ts(it: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(it).with_timezone(UTC))
}

fn bools(it: impl Iterator<Item = bool>) -> ArrayRef {
    Arc::new(BooleanArray::from(it.collect::<Vec<_>>()))
}

/// Builds the `events` batch of `rows`, in the given order.
pub fn events_batch(rows: &[&EventRow]) -> Result<RecordBatch, ArrowError> {
    let mut columns = EventColumns::with_capacity(rows.len());
    for row in rows {
        columns.push(row);
    }
    RecordBatch::try_new(events_schema(), columns.finish())
}

/// The columns of `events`, filled a row at a time: a segment's rows are
/// read from memory once, where building a column at a time read every row
/// 27 times (the conversion was memory-bound).
struct EventColumns {
    event_id: StringBuilder,
    experiment_id: UInt32Builder,
    user_id: StringBuilder,
    session_id: StringBuilder,
    event_type: StringBuilder,
    timestamp: TimestampMicrosecondBuilder,
    event_hour: UInt8Builder,
    variant_id: UInt32Builder,
    variant_key: StringBuilder,
    assigned_at: TimestampMicrosecondBuilder,
    is_valid: BooleanBuilder,
    invalid_reason: StringBuilder,
    is_late: BooleanBuilder,
    is_exposure: BooleanBuilder,
    is_click: BooleanBuilder,
    is_conversion: BooleanBuilder,
    claimed_variant_id: UInt32Builder,
    variant_mismatch: BooleanBuilder,
    page: StringBuilder,
    device: StringBuilder,
    browser: StringBuilder,
    value: Float64Builder,
    score: Int64Builder,
    properties: StringBuilder,
    source_topic: StringBuilder,
    source_partition: Int32Builder,
    source_offset: Int64Builder,
}

impl EventColumns {
    fn with_capacity(rows: usize) -> Self {
        // Bytes per row guessed for the strings; a builder grows past them.
        let text = |bytes_per_row: usize| StringBuilder::with_capacity(rows, rows * bytes_per_row);
        EventColumns {
            event_id: text(36),
            experiment_id: UInt32Builder::with_capacity(rows),
            user_id: text(16),
            session_id: text(16),
            event_type: text(10),
            timestamp: TimestampMicrosecondBuilder::with_capacity(rows),
            event_hour: UInt8Builder::with_capacity(rows),
            variant_id: UInt32Builder::with_capacity(rows),
            variant_key: text(10),
            assigned_at: TimestampMicrosecondBuilder::with_capacity(rows),
            is_valid: BooleanBuilder::with_capacity(rows),
            invalid_reason: text(0),
            is_late: BooleanBuilder::with_capacity(rows),
            is_exposure: BooleanBuilder::with_capacity(rows),
            is_click: BooleanBuilder::with_capacity(rows),
            is_conversion: BooleanBuilder::with_capacity(rows),
            claimed_variant_id: UInt32Builder::with_capacity(rows),
            variant_mismatch: BooleanBuilder::with_capacity(rows),
            page: text(10),
            device: text(8),
            browser: text(8),
            value: Float64Builder::with_capacity(rows),
            score: Int64Builder::with_capacity(rows),
            properties: text(64),
            source_topic: text(20),
            source_partition: Int32Builder::with_capacity(rows),
            source_offset: Int64Builder::with_capacity(rows),
        }
    }

    fn push(&mut self, x: &EventRow) {
        let ev = &x.event;
        self.event_id.append_value(&ev.event_id);
        self.experiment_id.append_value(ev.experiment_id);
        self.user_id.append_value(&ev.user_id);
        self.session_id.append_option(ev.session_id.as_deref());
        self.event_type.append_value(&ev.event_type);
        self.timestamp.append_value(ev.timestamp);
        self.event_hour
            .append_value(crate::time::hour_of_day(ev.timestamp));
        self.variant_id.append_option(x.variant_id);
        self.variant_key.append_option(x.variant_key.as_deref());
        self.assigned_at.append_option(x.assigned_at);
        self.is_valid.append_value(x.is_valid);
        self.invalid_reason
            .append_option(x.invalid_reason.map(|v| v.as_str()));
        self.is_late.append_value(x.is_late);
        self.is_exposure.append_value(ev.event_type == "exposure");
        self.is_click.append_value(ev.event_type == "click");
        self.is_conversion
            .append_value(ev.event_type == "conversion");
        self.claimed_variant_id.append_option(ev.claimed_variant_id);
        self.variant_mismatch.append_value(x.variant_mismatch());
        self.page.append_option(ev.page.as_deref());
        self.device.append_option(ev.device.as_deref());
        self.browser.append_option(ev.browser.as_deref());
        self.value.append_option(ev.value);
        self.score.append_option(ev.score);
        self.properties.append_value(&ev.properties);
        self.source_topic.append_value(&*x.origin.topic);
        self.source_partition.append_value(x.origin.partition);
        self.source_offset.append_value(x.origin.offset);
    }

    /// The arrays, in the schema's order.
    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.experiment_id.finish()),
            Arc::new(self.user_id.finish()),
            Arc::new(self.session_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.timestamp.finish().with_timezone(UTC)),
            Arc::new(self.event_hour.finish()),
            Arc::new(self.variant_id.finish()),
            Arc::new(self.variant_key.finish()),
            Arc::new(self.assigned_at.finish().with_timezone(UTC)),
            Arc::new(self.is_valid.finish()),
            Arc::new(self.invalid_reason.finish()),
            Arc::new(self.is_late.finish()),
            Arc::new(self.is_exposure.finish()),
            Arc::new(self.is_click.finish()),
            Arc::new(self.is_conversion.finish()),
            Arc::new(self.claimed_variant_id.finish()),
            Arc::new(self.variant_mismatch.finish()),
            Arc::new(self.page.finish()),
            Arc::new(self.device.finish()),
            Arc::new(self.browser.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.score.finish()),
            Arc::new(self.properties.finish()),
            Arc::new(self.source_topic.finish()),
            Arc::new(self.source_partition.finish()),
            Arc::new(self.source_offset.finish()),
        ]
    }
}

/// Builds the `agg_hourly` / `agg_daily` batch of `rows`, in the given order.
pub fn agg_batch(rows: &[&AggRow]) -> Result<RecordBatch, ArrowError> {
    let r = || rows.iter().copied();
    let cols: Vec<ArrayRef> = vec![
        ts(r().map(|x| x.window_start)),
        ts(r().map(|x| x.window_end)),
        Arc::new(UInt32Array::from_iter_values(r().map(|x| x.experiment_id))),
        Arc::new(UInt32Array::from_iter_values(r().map(|x| x.variant_id))),
        utf8_opt(r().map(|x| x.variant_key.as_deref())),
        utf8(r().map(|x| x.event_type.as_str())),
        Arc::new(UInt64Array::from_iter_values(r().map(|x| x.events))),
        Arc::new(UInt64Array::from_iter_values(r().map(|x| x.users))),
        Arc::new(UInt64Array::from_iter_values(r().map(|x| x.value_count))),
        Arc::new(Float64Array::from_iter_values(r().map(|x| x.value_sum))),
        Arc::new(Float64Array::from_iter_values(r().map(|x| x.value_sum_sq))),
        Arc::new(Int32Array::from_iter_values(r().map(|x| x.partition))),
    ];
    RecordBatch::try_new(agg_schema(), cols)
}

/// Builds the `user_daily` batch of `rows`, in the given order.
pub fn user_daily_batch(rows: &[&UserDailyRow]) -> Result<RecordBatch, ArrowError> {
    let r = || rows.iter().copied();
    let items =
        StringArray::from_iter_values(r().flat_map(|x| x.journey.iter().map(String::as_str)));
    let offsets = OffsetBuffer::<i32>::from_lengths(r().map(|x| x.journey.len()));
    let journey = ListArray::try_new(journey_item_field(), offsets, Arc::new(items), None)?;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(r().map(|x| x.experiment_id))),
        Arc::new(UInt32Array::from_iter_values(r().map(|x| x.variant_id))),
        utf8(r().map(|x| x.user_id.as_str())),
        utf8_opt(r().map(|x| x.variant_key.as_deref())),
        Arc::new(UInt64Array::from_iter_values(r().map(|x| x.events))),
        Arc::new(journey),
        Arc::new(Float64Array::from_iter_values(r().map(|x| x.value_sum))),
        Arc::new(UInt64Array::from_iter_values(r().map(|x| x.sessions))),
        bools(r().map(|x| x.exposed)),
        bools(r().map(|x| x.converted)),
        ts(r().map(|x| x.first_ts)),
        ts(r().map(|x| x.last_ts)),
        Arc::new(Int32Array::from_iter_values(r().map(|x| x.partition))),
    ];
    RecordBatch::try_new(user_daily_schema(), cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_partition_keys_in_files() {
        for s in [events_schema(), agg_schema(), user_daily_schema()] {
            for key in ["event_date", "date", "hour"] {
                assert!(
                    s.field_with_name(key).is_err(),
                    "{key} must live in the path only"
                );
            }
        }
        assert_eq!(events_schema().fields().len(), 27);
        assert_eq!(events_schema().field(5).data_type(), &ts_type());
    }

    #[test]
    fn the_columns_without_a_dictionary_are_columns_of_their_dataset() {
        for ds in Dataset::ALL {
            if let Dictionaries::AllBut(plain) = dictionaries(ds) {
                for c in plain {
                    assert!(schema_of(ds).field_with_name(c).is_ok(), "{ds:?}: {c}");
                }
            }
        }
    }

    /// Every column of `events` holds its own field: the values of columns
    /// of one type differ (the six booleans in their pattern over three
    /// rows), so two such columns swapped would show.
    #[test]
    fn each_events_column_holds_its_field() {
        use crate::domain::outputs::InvalidReason;
        use crate::domain::records::{Event, Origin};
        use arrow::util::display::array_value_to_string;
        let row = EventRow {
            event: Event {
                event_id: "e-1".into(),
                experiment_id: 11,
                user_id: "u-2".into(),
                event_type: "click".into(),
                timestamp: 3_600_000_000 * 5 + 7,
                session_id: Some("s-3".into()),
                claimed_variant_id: Some(12),
                page: Some("/pricing".into()),
                device: Some("mobile".into()),
                browser: Some("firefox".into()),
                value: Some(2.5),
                score: Some(-4),
                properties: "{\"page\":\"/pricing\"}".into(),
            },
            variant_id: Some(13),
            variant_key: Some("treatment".into()),
            assigned_at: Some(1_000_000),
            is_valid: false,
            invalid_reason: Some(InvalidReason::BeforeAssignment),
            is_late: true,
            origin: Origin {
                topic: "topic-x".into(),
                partition: 14,
                offset: 15,
            },
        };
        let mut conversion = row.clone();
        (conversion.event.event_type, conversion.is_valid) = ("conversion".into(), true);
        conversion.event.claimed_variant_id = None;
        let mut exposure = row.clone();
        (exposure.event.event_type, exposure.is_valid) = ("exposure".into(), true);
        exposure.is_late = false;
        let batch = events_batch(&[&row, &conversion, &exposure]).unwrap();
        // Timestamps as their microseconds (arrow's display of a named
        // time zone needs a feature this crate does not build).
        let cell_of = |name: &str, i: usize| {
            let column = batch.column_by_name(name).unwrap();
            match column.as_any().downcast_ref::<TimestampMicrosecondArray>() {
                Some(ts) => ts.value(i).to_string(),
                None => array_value_to_string(column, i).unwrap(),
            }
        };
        let cell = |name: &str| cell_of(name, 0);
        let expected = [
            ("event_id", "e-1"),
            ("experiment_id", "11"),
            ("user_id", "u-2"),
            ("session_id", "s-3"),
            ("event_type", "click"),
            ("timestamp", "18000000007"),
            ("event_hour", "5"),
            ("variant_id", "13"),
            ("variant_key", "treatment"),
            ("assigned_at", "1000000"),
            ("is_valid", "false"),
            ("invalid_reason", "before_assignment"),
            ("is_late", "true"),
            ("is_exposure", "false"),
            ("is_click", "true"),
            ("is_conversion", "false"),
            ("claimed_variant_id", "12"),
            ("variant_mismatch", "true"),
            ("page", "/pricing"),
            ("device", "mobile"),
            ("browser", "firefox"),
            ("value", "2.5"),
            ("score", "-4"),
            ("properties", "{\"page\":\"/pricing\"}"),
            ("source_topic", "topic-x"),
            ("source_partition", "14"),
            ("source_offset", "15"),
        ];
        assert_eq!(expected.len(), events_schema().fields().len());
        for (name, value) in expected {
            assert_eq!(cell(name), value, "column {name}");
        }
        let booleans = [
            ("is_valid", "false true true"),
            ("is_late", "true true false"),
            ("is_exposure", "false false true"),
            ("is_click", "true false false"),
            ("is_conversion", "false true false"),
            ("variant_mismatch", "true false true"),
        ];
        for (name, pattern) in booleans {
            let cells: Vec<String> = (0..3).map(|i| cell_of(name, i)).collect();
            assert_eq!(cells.join(" "), pattern, "column {name}");
        }
    }

    #[test]
    fn empty_batches_build() {
        assert_eq!(events_batch(&[]).unwrap().num_rows(), 0);
        assert_eq!(agg_batch(&[]).unwrap().num_rows(), 0);
        assert_eq!(user_daily_batch(&[]).unwrap().num_rows(), 0);
    }
}
