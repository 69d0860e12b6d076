//! Reading the datasets back from an output root: Arrow record batches (with
//! or without the Hive keys re-added) and the domain row structs. Used by
//! `demo`, `report` and tests; not a query engine.

use super::paths::{self, Dataset, HivePartition};
use super::schema;
use super::store::OutputRoot;
use super::{Result, SinkError};
use crate::domain::outputs::{
    AggRow, DeadLetterRow, EventRow, InvalidReason, UserDailyRow, WindowKind,
};
use crate::domain::records::{Event, Origin};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array,
    RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array, UInt64Array, UInt8Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use std::sync::Arc;

/// One Parquet object of a dataset, decoded.
#[derive(Clone, Debug)]
pub struct DatasetFile {
    /// Object path relative to the root.
    pub path: Path,
    /// Partition values parsed from the path.
    pub partition: HivePartition,
    /// The file's rows (file schema, without the Hive keys).
    pub batches: Vec<RecordBatch>,
}

/// The `part-*.parquet` objects of a dataset with their Hive partitions,
/// sorted by path (so by date). Other objects (staging files, `_SUCCESS`) are
/// ignored; a missing dataset is empty.
pub async fn list_parts(root: &OutputRoot, ds: Dataset) -> Result<Vec<(Path, HivePartition)>> {
    let mut out = Vec::new();
    for meta in root.list(ds.name()).await? {
        let is_part = meta
            .location
            .filename()
            .is_some_and(|f| f.starts_with("part-") && f.ends_with(".parquet"));
        if is_part {
            let partition = paths::parse_partition(ds, &meta.location)?;
            out.push((meta.location, partition));
        }
    }
    Ok(out)
}

/// Decodes only `columns` of one Parquet object of `ds` (a projection: the
/// other column chunks are not decompressed), in batches of `batch_rows`.
/// Each column must have the dataset's name and type.
pub fn decode_columns(
    ds: Dataset,
    path: &Path,
    bytes: bytes::Bytes,
    columns: &[&str],
    batch_rows: usize,
) -> Result<Vec<RecordBatch>> {
    let perr = |source| SinkError::Parquet {
        path: path.to_string(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(perr)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(batch_rows.max(1))
        .build()
        .map_err(perr)?;
    let expected = schema::schema_of(ds);
    let mut out = Vec::new();
    for b in reader {
        let b = b.map_err(|e| perr(e.into()))?;
        for name in columns {
            let want = expected.field_with_name(name).ok().map(|f| f.data_type());
            let schema = b.schema();
            let got = schema.field_with_name(name).ok().map(|f| f.data_type());
            if want != got {
                return Err(SinkError::Decode {
                    path: path.to_string(),
                    reason: format!(
                        "column {name} missing or not of type {want:?} (found {got:?})"
                    ),
                });
            }
        }
        out.push(b);
    }
    Ok(out)
}

/// Reads every `part-*.parquet` object of a dataset, sorted by path. Other
/// objects (staging files, `_SUCCESS`) are ignored; a missing dataset is empty.
pub async fn read_files(root: &OutputRoot, ds: Dataset) -> Result<Vec<DatasetFile>> {
    let expected = schema::schema_of(ds);
    let mut out = Vec::new();
    for (location, partition) in list_parts(root, ds).await? {
        let bytes = root.get(&location).await?;
        let perr = |source| SinkError::Parquet {
            path: location.to_string(),
            source,
        };
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(perr)?
            .build()
            .map_err(perr)?;
        let mut batches = Vec::new();
        for b in reader {
            let b = b.map_err(|e| perr(e.into()))?;
            if b.schema().fields() != expected.fields() {
                return Err(SinkError::Decode {
                    path: location.to_string(),
                    reason: format!("schema {:?} is not that of {ds}", b.schema()),
                });
            }
            batches.push(b);
        }
        out.push(DatasetFile {
            path: location,
            partition,
            batches,
        });
    }
    Ok(out)
}

/// Reads a whole dataset as record batches with the Hive keys appended as
/// columns, like DuckDB/pyarrow do: `event_date` / `date` as `Date32`,
/// `hour` as `Int32`.
pub async fn read_dataset(root: &OutputRoot, ds: Dataset) -> Result<Vec<RecordBatch>> {
    let mut fields: Vec<Arc<Field>> = schema::schema_of(ds).fields().iter().cloned().collect();
    for key in ds.hive_keys() {
        let dt = if *key == "hour" {
            DataType::Int32
        } else {
            DataType::Date32
        };
        fields.push(Arc::new(Field::new(*key, dt, false)));
    }
    let full = Arc::new(Schema::new(fields));
    let mut out = Vec::new();
    for file in read_files(root, ds).await? {
        for b in file.batches {
            let n = b.num_rows();
            let mut cols: Vec<ArrayRef> = b.columns().to_vec();
            for key in ds.hive_keys() {
                cols.push(if *key == "hour" {
                    Arc::new(Int32Array::from(vec![i32::from(file.partition.hour); n]))
                } else {
                    Arc::new(Date32Array::from(vec![file.partition.day as i32; n]))
                });
            }
            let b =
                RecordBatch::try_new(full.clone(), cols).map_err(|source| SinkError::Arrow {
                    dataset: ds.name(),
                    source,
                })?;
            out.push(b);
        }
    }
    Ok(out)
}

/// Typed access to the columns of one batch.
struct Cols<'a> {
    b: &'a RecordBatch,
    path: &'a Path,
}

impl<'a> Cols<'a> {
    fn get<T: Array + 'static>(&self, name: &str) -> Result<&'a T> {
        self.b
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<T>())
            .ok_or_else(|| SinkError::Decode {
                path: self.path.to_string(),
                reason: format!("column {name} missing or of another type"),
            })
    }
    fn s(&self, n: &str) -> Result<&'a StringArray> {
        self.get(n)
    }
    fn u32(&self, n: &str) -> Result<&'a UInt32Array> {
        self.get(n)
    }
    fn u64(&self, n: &str) -> Result<&'a UInt64Array> {
        self.get(n)
    }
    fn f64(&self, n: &str) -> Result<&'a Float64Array> {
        self.get(n)
    }
    fn i32(&self, n: &str) -> Result<&'a Int32Array> {
        self.get(n)
    }
    fn i64(&self, n: &str) -> Result<&'a Int64Array> {
        self.get(n)
    }
    fn ts(&self, n: &str) -> Result<&'a TimestampMicrosecondArray> {
        self.get(n)
    }
    fn b(&self, n: &str) -> Result<&'a BooleanArray> {
        self.get(n)
    }
}

fn opt<A: Array, T>(a: &A, i: usize, v: impl FnOnce(usize) -> T) -> Option<T> {
    a.is_valid(i).then(|| v(i))
}

fn opt_s<T: for<'a> From<&'a str>>(a: &StringArray, i: usize) -> Option<T> {
    opt(a, i, |i| T::from(a.value(i)))
}

/// Reads every `events` row, ordered by object path then row.
pub async fn read_events(root: &OutputRoot) -> Result<Vec<EventRow>> {
    let mut out = Vec::new();
    for file in read_files(root, Dataset::Events).await? {
        for b in &file.batches {
            let c = Cols {
                b,
                path: &file.path,
            };
            let (event_id, experiment_id, user_id) =
                (c.s("event_id")?, c.u32("experiment_id")?, c.s("user_id")?);
            let (session_id, event_type, timestamp) =
                (c.s("session_id")?, c.s("event_type")?, c.ts("timestamp")?);
            let (variant_id, variant_key, assigned_at) = (
                c.u32("variant_id")?,
                c.s("variant_key")?,
                c.ts("assigned_at")?,
            );
            let (is_valid, invalid_reason, is_late) =
                (c.b("is_valid")?, c.s("invalid_reason")?, c.b("is_late")?);
            let claimed = c.u32("claimed_variant_id")?;
            let (page, device, browser) = (c.s("page")?, c.s("device")?, c.s("browser")?);
            let (value, score, properties) = (c.f64("value")?, c.i64("score")?, c.s("properties")?);
            let (topic, partition, offset) = (
                c.s("source_topic")?,
                c.i32("source_partition")?,
                c.i64("source_offset")?,
            );
            // Checked for presence/type only; they are derived from the columns above.
            c.get::<UInt8Array>("event_hour")?;
            let mut last_topic: Option<Arc<str>> = None;
            for i in 0..b.num_rows() {
                let reason = match opt(invalid_reason, i, |i| invalid_reason.value(i)) {
                    None => None,
                    Some("unassigned") => Some(InvalidReason::Unassigned),
                    Some("before_assignment") => Some(InvalidReason::BeforeAssignment),
                    Some(other) => {
                        return Err(SinkError::Decode {
                            path: file.path.to_string(),
                            reason: format!("unknown invalid_reason {other:?}"),
                        })
                    }
                };
                let t = topic.value(i);
                let topic = match &last_topic {
                    Some(a) if &**a == t => a.clone(),
                    _ => {
                        let a: Arc<str> = Arc::from(t);
                        last_topic = Some(a.clone());
                        a
                    }
                };
                out.push(EventRow {
                    event: Event {
                        event_id: event_id.value(i).to_string(),
                        experiment_id: experiment_id.value(i),
                        user_id: user_id.value(i).into(),
                        event_type: event_type.value(i).into(),
                        timestamp: timestamp.value(i),
                        session_id: opt_s(session_id, i),
                        claimed_variant_id: opt(claimed, i, |i| claimed.value(i)),
                        page: opt_s(page, i),
                        device: opt_s(device, i),
                        browser: opt_s(browser, i),
                        value: opt(value, i, |i| value.value(i)),
                        score: opt(score, i, |i| score.value(i)),
                        properties: properties.value(i).to_string(),
                    },
                    variant_id: opt(variant_id, i, |i| variant_id.value(i)),
                    variant_key: opt_s(variant_key, i),
                    assigned_at: opt(assigned_at, i, |i| assigned_at.value(i)),
                    is_valid: is_valid.value(i),
                    invalid_reason: reason,
                    is_late: is_late.value(i),
                    origin: Origin {
                        topic,
                        partition: partition.value(i),
                        offset: offset.value(i),
                    },
                });
            }
        }
    }
    Ok(out)
}

/// Reads every `agg_hourly` or `agg_daily` row, ordered by object path then row.
pub async fn read_aggregates(root: &OutputRoot, kind: WindowKind) -> Result<Vec<AggRow>> {
    let mut out = Vec::new();
    for file in read_files(root, Dataset::of_window(kind)).await? {
        for b in &file.batches {
            let c = Cols {
                b,
                path: &file.path,
            };
            let (ws, we) = (c.ts("window_start")?, c.ts("window_end")?);
            let (exp, var, key) = (
                c.u32("experiment_id")?,
                c.u32("variant_id")?,
                c.s("variant_key")?,
            );
            let (et, events, users) = (c.s("event_type")?, c.u64("events")?, c.u64("users")?);
            let (vc, vs, vsq) = (
                c.u64("value_count")?,
                c.f64("value_sum")?,
                c.f64("value_sum_sq")?,
            );
            let partition = c.i32("partition")?;
            for i in 0..b.num_rows() {
                out.push(AggRow {
                    kind,
                    window_start: ws.value(i),
                    window_end: we.value(i),
                    experiment_id: exp.value(i),
                    variant_id: var.value(i),
                    variant_key: opt_s(key, i),
                    event_type: et.value(i).to_string(),
                    events: events.value(i),
                    users: users.value(i),
                    value_count: vc.value(i),
                    value_sum: vs.value(i),
                    value_sum_sq: vsq.value(i),
                    partition: partition.value(i),
                });
            }
        }
    }
    Ok(out)
}

/// Reads every `user_daily` row (with `date` from the path), ordered by object path then row.
pub async fn read_user_daily(root: &OutputRoot) -> Result<Vec<UserDailyRow>> {
    let mut out = Vec::new();
    for file in read_files(root, Dataset::UserDaily).await? {
        let date = file.partition.day_start_micros();
        for b in &file.batches {
            let c = Cols {
                b,
                path: &file.path,
            };
            let (exp, var, user, key) = (
                c.u32("experiment_id")?,
                c.u32("variant_id")?,
                c.s("user_id")?,
                c.s("variant_key")?,
            );
            let journey = b
                .column_by_name("journey")
                .and_then(|a| a.as_list_opt::<i32>())
                .ok_or_else(|| SinkError::Decode {
                    path: file.path.to_string(),
                    reason: "column journey missing or not a list".into(),
                })?;
            let (events, value_sum, sessions) =
                (c.u64("events")?, c.f64("value_sum")?, c.u64("sessions")?);
            let (exposed, converted) = (c.b("exposed")?, c.b("converted")?);
            let (first, last, partition) =
                (c.ts("first_ts")?, c.ts("last_ts")?, c.i32("partition")?);
            for i in 0..b.num_rows() {
                let items = journey.value(i);
                let items = items
                    .as_string_opt::<i32>()
                    .ok_or_else(|| SinkError::Decode {
                        path: file.path.to_string(),
                        reason: "journey items are not utf8".into(),
                    })?;
                out.push(UserDailyRow {
                    date,
                    experiment_id: exp.value(i),
                    variant_id: var.value(i),
                    user_id: user.value(i).to_string(),
                    variant_key: opt_s(key, i),
                    events: events.value(i),
                    journey: items
                        .iter()
                        .map(|s| s.unwrap_or_default().to_string())
                        .collect(),
                    value_sum: value_sum.value(i),
                    sessions: sessions.value(i),
                    exposed: exposed.value(i),
                    converted: converted.value(i),
                    first_ts: first.value(i),
                    last_ts: last.value(i),
                    partition: partition.value(i),
                });
            }
        }
    }
    Ok(out)
}

/// Reads every dead-letter line of `dlq/*.jsonl`, ordered by object path then line.
pub async fn read_dead_letters(root: &OutputRoot) -> Result<Vec<DeadLetterRow>> {
    let mut out = Vec::new();
    for meta in root.list(paths::DLQ_DIR).await? {
        if !meta
            .location
            .filename()
            .is_some_and(|f| f.ends_with(".jsonl"))
        {
            continue;
        }
        let bytes = root.get(&meta.location).await?;
        let text = std::str::from_utf8(&bytes).map_err(|e| SinkError::Decode {
            path: meta.location.to_string(),
            reason: e.to_string(),
        })?;
        out.extend(text.lines().map(|l| DeadLetterRow {
            line: l.to_string(),
        }));
    }
    Ok(out)
}
