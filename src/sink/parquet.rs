//! The Parquet sink: deterministic in-memory encoding of a writer's segment
//! into Hive-partitioned objects, then idempotent uploads (SPEC 6, 7).

use super::paths::{self, Dataset, HivePartition};
use super::schema::{self, Dictionaries};
use super::store::OutputRoot;
use super::{Result, SinkError};
use crate::domain::outputs::{AggRow, EventRow, OutputBatch, UserDailyRow};
use arrow::array::RecordBatch;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterPropertiesPtr};
use parquet::schema::types::ColumnPath;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Tuning of the Parquet sink. `Default` suits the embedded mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParquetSinkOptions {
    /// Maximum rows per Parquet row group (config `output.row_group_rows`).
    pub row_group_rows: usize,
    /// zstd level (1–22).
    pub zstd_level: i32,
    /// Concurrent object uploads/deletes in [`ParquetSink::put_all`] / [`ParquetSink::delete_all`].
    pub max_concurrency: usize,
    /// Objects larger than this many bytes are uploaded with multipart uploads.
    pub multipart_threshold: usize,
    /// Part size of multipart uploads (≥ 5 MiB for S3).
    pub multipart_part_size: usize,
}

impl Default for ParquetSinkOptions {
    fn default() -> Self {
        ParquetSinkOptions {
            row_group_rows: 128 * 1024,
            zstd_level: 3,
            max_concurrency: 8,
            multipart_threshold: 16 * 1024 * 1024,
            multipart_part_size: 8 * 1024 * 1024,
        }
    }
}

/// Everything one writer emitted between two checkpoints.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    /// Writer name used in object names: `p0003` (task partition) or `router`.
    pub part: &'a str,
    /// The segment's first input offset / sequence number.
    pub seq: u64,
    /// The rows, in emission order.
    pub batch: &'a OutputBatch,
}

/// One encoded object, ready to upload; `path` is relative to the output root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedObject {
    /// Object path, e.g. `events/event_date=2024-05-01/part-p0000-00000000000000000042.parquet`.
    pub path: Path,
    /// The complete object.
    pub bytes: Bytes,
}

/// Writes output segments as Parquet (and DLQ JSONL) objects under an output root.
#[derive(Clone, Debug)]
pub struct ParquetSink {
    root: OutputRoot,
    opts: ParquetSinkOptions,
    /// Writer properties by dataset (which columns have a dictionary).
    props: BTreeMap<Dataset, WriterPropertiesPtr>,
}

/// Rows of one dataset partition, in emission order.
enum Rows<'a> {
    Events(Vec<&'a EventRow>),
    Agg(Vec<&'a AggRow>),
    UserDaily(Vec<&'a UserDailyRow>),
}

impl ParquetSink {
    /// Opens the sink on `root` (local path or object_store URL, see [`OutputRoot::open`]).
    pub fn open(root: &str, opts: ParquetSinkOptions) -> Result<Self> {
        Self::new(OutputRoot::open(root)?, opts)
    }

    /// Builds the sink on an already opened root.
    pub fn new(root: OutputRoot, opts: ParquetSinkOptions) -> Result<Self> {
        let level = ZstdLevel::try_new(opts.zstd_level).map_err(|source| SinkError::Parquet {
            path: String::new(),
            source,
        })?;
        // created_by stays parquet-rs's constant default; nothing time-dependent is written.
        let base = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(opts.row_group_rows.max(1)));
        let props = Dataset::ALL
            .into_iter()
            .map(|ds| {
                let props = match schema::dictionaries(ds) {
                    Dictionaries::AllBut(plain) => plain.iter().fold(base.clone(), |b, column| {
                        b.set_column_dictionary_enabled(ColumnPath::from(*column), false)
                    }),
                    Dictionaries::None => base.clone().set_dictionary_enabled(false),
                };
                (ds, Arc::new(props.build()))
            })
            .collect();
        Ok(ParquetSink { root, opts, props })
    }

    /// The output root.
    pub fn root(&self) -> &OutputRoot {
        &self.root
    }

    /// The options in use.
    pub fn options(&self) -> &ParquetSinkOptions {
        &self.opts
    }

    /// Encodes a segment (pure CPU, deterministic): one Parquet object per
    /// dataset and Hive partition holding rows of the segment, named
    /// `part-{part}-{seq:020}.parquet`, plus `dlq/part-{part}-{seq:020}.jsonl`
    /// when there are dead letters. Rows keep their emission order within an
    /// object; objects are returned sorted by dataset then partition, DLQ last.
    /// An empty segment yields no objects.
    pub fn encode(&self, seg: &Segment<'_>) -> Result<Vec<EncodedObject>> {
        paths::validate_part(seg.part)?;
        let mut groups: BTreeMap<(Dataset, HivePartition), Rows<'_>> = BTreeMap::new();
        for row in &seg.batch.events {
            let key = (
                Dataset::Events,
                Dataset::Events.partition_of(row.event.timestamp),
            );
            match groups
                .entry(key)
                .or_insert_with(|| Rows::Events(Vec::new()))
            {
                Rows::Events(v) => v.push(row),
                _ => unreachable!("events key holds event rows"),
            }
        }
        for row in &seg.batch.aggregates {
            let ds = Dataset::of_window(row.kind);
            let key = (ds, ds.partition_of(row.window_start));
            match groups.entry(key).or_insert_with(|| Rows::Agg(Vec::new())) {
                Rows::Agg(v) => v.push(row),
                _ => unreachable!("aggregate key holds aggregate rows"),
            }
        }
        for row in &seg.batch.user_daily {
            let key = (
                Dataset::UserDaily,
                Dataset::UserDaily.partition_of(row.date),
            );
            match groups
                .entry(key)
                .or_insert_with(|| Rows::UserDaily(Vec::new()))
            {
                Rows::UserDaily(v) => v.push(row),
                _ => unreachable!("user_daily key holds user_daily rows"),
            }
        }

        let mut out = Vec::with_capacity(groups.len() + 1);
        for ((ds, hp), rows) in groups {
            let batch = match &rows {
                Rows::Events(v) => schema::events_batch(v),
                Rows::Agg(v) => schema::agg_batch(v),
                Rows::UserDaily(v) => schema::user_daily_batch(v),
            }
            .map_err(|source| SinkError::Arrow {
                dataset: ds.name(),
                source,
            })?;
            let path = paths::parquet_path(ds, hp, seg.part, seg.seq);
            let bytes = self.write_parquet(ds, &path, &batch)?;
            out.push(EncodedObject { path, bytes });
        }

        if !seg.batch.dead_letters.is_empty() {
            let len = seg
                .batch
                .dead_letters
                .iter()
                .map(|d| d.line.len() + 1)
                .sum();
            let mut buf = Vec::with_capacity(len);
            for d in &seg.batch.dead_letters {
                buf.extend_from_slice(d.line.as_bytes());
                buf.push(b'\n');
            }
            out.push(EncodedObject {
                path: paths::dlq_path(seg.part, seg.seq),
                bytes: Bytes::from(buf),
            });
        }
        Ok(out)
    }

    /// Encodes one record batch of dataset `ds` as a complete Parquet file in memory.
    pub fn write_parquet(&self, ds: Dataset, path: &Path, batch: &RecordBatch) -> Result<Bytes> {
        let err = |source| SinkError::Parquet {
            path: path.to_string(),
            source,
        };
        let mut buf = Vec::with_capacity(batch.get_array_memory_size() / 4 + 4096);
        let props = (*self.props[&ds]).clone();
        let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).map_err(err)?;
        w.write(batch).map_err(err)?;
        w.close().map_err(err)?;
        Ok(Bytes::from(buf))
    }

    /// Uploads the objects concurrently (at most `max_concurrency` at once).
    /// Each object appears atomically; uploading the same object again
    /// overwrites it (idempotent). Objects above `multipart_threshold` bytes
    /// use a multipart upload.
    pub async fn put_all(&self, objs: &[EncodedObject]) -> Result<()> {
        futures::stream::iter(objs.iter().map(|o| self.put_one(o)))
            .buffer_unordered(self.opts.max_concurrency.max(1))
            .try_collect::<()>()
            .await
    }

    async fn put_one(&self, obj: &EncodedObject) -> Result<()> {
        let store = self.root.store();
        let err = |source| SinkError::Store {
            op: "put",
            path: obj.path.to_string(),
            source,
        };
        let started = std::time::Instant::now();
        if obj.bytes.len() <= self.opts.multipart_threshold {
            store
                .put(&obj.path, PutPayload::from_bytes(obj.bytes.clone()))
                .await
                .map_err(err)?;
        } else {
            let upload = store.put_multipart(&obj.path).await.map_err(err)?;
            let part = self.opts.multipart_part_size.max(1);
            let mut w = WriteMultipart::new_with_chunk_size(upload, part);
            let mut off = 0;
            while off < obj.bytes.len() {
                let end = (off + part).min(obj.bytes.len());
                if let Err(e) = w.wait_for_capacity(self.opts.max_concurrency.max(1)).await {
                    let _ = w.abort().await;
                    return Err(err(e));
                }
                w.put(obj.bytes.slice(off..end));
                off = end;
            }
            w.finish().await.map_err(err)?;
        }
        tracing::debug!(
            path = %obj.path,
            bytes = obj.bytes.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "parquet sink put"
        );
        Ok(())
    }

    /// Deletes objects (e.g. of an intent that will not be completed);
    /// objects that do not exist are fine.
    /// On a local filesystem an upload interrupted by a crash leaves its
    /// staging file (`<name>#<n>`, object_store's naming) beside the object:
    /// those go too.
    pub async fn delete_all(&self, paths: &[Path]) -> Result<()> {
        let store = self.root.store();
        if let Some(dir) = self.root.local_dir() {
            for p in paths {
                remove_staging_files(&dir.join(p.as_ref()));
            }
        }
        futures::stream::iter(paths.iter().map(|p| async move {
            match store.delete(p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(source) => Err(SinkError::Store {
                    op: "delete",
                    path: p.to_string(),
                    source,
                }),
            }
        }))
        .buffer_unordered(self.opts.max_concurrency.max(1))
        .try_collect::<()>()
        .await
    }

    /// Convenience for callers without an intent log: encodes and uploads a
    /// segment, returning the object paths written.
    pub async fn write_segment(&self, seg: &Segment<'_>) -> Result<Vec<Path>> {
        let objs = self.encode(seg)?;
        self.put_all(&objs).await?;
        Ok(objs.into_iter().map(|o| o.path).collect())
    }
}

/// Removes `<file>#<n>` staging files left beside `file` by interrupted
/// local uploads (best effort: the directory may not exist).
fn remove_staging_files(file: &std::path::Path) {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return;
    };
    let prefix = format!("{}#", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
