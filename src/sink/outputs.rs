//! [`Outputs`]: everything a run writes, the same for both drivers —
//! Parquet objects under the output root (plus dead-letter lines in file
//! mode) and rows in ClickHouse when configured.
//!
//! A commit uses it in the steps of the commit protocol
//! (`neonblue_topology::commit`): [`Outputs::encode`] turns each task's
//! segment into objects whose names are its intent, [`Outputs::publish`]
//! writes them and inserts the rows, and after a crash
//! [`Outputs::discard`] removes the objects of an unfinished intent.

use super::clickhouse::ClickHouseSink;
use super::parquet::{EncodedObject, ParquetSink, ParquetSinkOptions, Segment};
use crate::config::{ClickHouseConfig, OutputConfig};
use crate::domain::OutputBatch;
use anyhow::{Context, Result};
use neonblue_topology::{commit, Durability, TaskCommit};

/// Segment name of a join task's outputs in object names: `p0003`.
pub fn task_part(partition: u32) -> String {
    format!("p{partition:04}")
}

/// Segment name of the router's outputs (file-mode dead letters).
pub const ROUTER_PART: &str = "router";

/// The sinks of a run.
pub struct Outputs {
    parquet: ParquetSink,
    clickhouse: Option<ClickHouseSink>,
    rt: tokio::runtime::Runtime,
}

impl Outputs {
    /// Opens the output root (checking it can be written) and, when a URL is
    /// configured, ClickHouse (checking credentials and tables).
    pub fn open(output: &OutputConfig, clickhouse: &ClickHouseConfig) -> Result<Self> {
        let parquet = ParquetSink::new(
            super::OutputRoot::open_config(output)?,
            ParquetSinkOptions {
                row_group_rows: output.row_group_rows,
                zstd_level: output.zstd_level,
                ..Default::default()
            },
        )?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the output runtime")?;
        rt.block_on(parquet.root().check_access())?;
        let clickhouse = if clickhouse.url.is_empty() {
            None
        } else {
            Some(ClickHouseSink::connect(clickhouse)?)
        };
        Ok(Outputs {
            parquet,
            clickhouse,
            rt,
        })
    }

    /// Encodes segments (pure CPU, deterministic), one thread per segment.
    pub fn encode(&self, segments: &[Segment<'_>]) -> Result<Vec<Vec<EncodedObject>>> {
        if segments.len() <= 1 {
            return segments
                .iter()
                .map(|s| Ok(self.parquet.encode(s)?))
                .collect();
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = segments
                .iter()
                .map(|s| scope.spawn(move || self.parquet.encode(s)))
                .collect();
            handles
                .into_iter()
                .map(|h| match h.join() {
                    Ok(r) => Ok(r?),
                    Err(_) => Err(anyhow::anyhow!("a segment encoder panicked")),
                })
                .collect()
        })
    }

    /// Writes the objects and inserts `batches` into ClickHouse (idempotent:
    /// same names and bytes, content-hash tokens on replacing tables).
    pub fn publish(&self, objects: &[EncodedObject], batches: &[&OutputBatch]) -> Result<()> {
        self.rt
            .block_on(self.parquet.put_all(objects))
            .with_context(|| format!("writing the outputs under {}", self.parquet.root()))?;
        if let Some(ch) = &self.clickhouse {
            for b in batches {
                ch.insert(b)?;
            }
        }
        Ok(())
    }

    /// Runs the commit protocol for `commits` with the outputs of `segments`
    /// (the i-th segment is the i-th commit's; later commits have none):
    /// encodes them, records each commit's object names as its intent,
    /// publishes, then records the state. Returns the updated keys.
    pub fn commit_segments<D>(
        &self,
        durability: &mut D,
        mut commits: Vec<TaskCommit<D::Key>>,
        segments: &[Segment<'_>],
    ) -> Result<Vec<D::Key>>
    where
        D: Durability,
        anyhow::Error: From<D::Error>,
    {
        let encoded = self.encode(segments)?;
        for (c, objects) in commits.iter_mut().zip(&encoded) {
            c.intent = objects.iter().map(|o| o.path.to_string()).collect();
        }
        let objects: Vec<EncodedObject> = encoded.into_iter().flatten().collect();
        let batches: Vec<&OutputBatch> = segments.iter().map(|s| s.batch).collect();
        commit::<_, anyhow::Error>(durability, commits, || self.publish(&objects, &batches))
    }

    /// Deletes the objects of an unfinished intent (missing ones are fine).
    pub fn discard(&self, names: &[String]) -> Result<()> {
        let paths: Vec<object_store::path::Path> =
            names.iter().map(|n| n.as_str().into()).collect();
        Ok(self.rt.block_on(self.parquet.delete_all(&paths))?)
    }

    /// What is under the output root: (objects, bytes) — the plan of a reset.
    pub fn inventory(output: &OutputConfig) -> Result<(usize, u64)> {
        let root = super::OutputRoot::open_config(output)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let objects = rt.block_on(root.list(""))?;
        Ok((objects.len(), objects.iter().map(|o| o.size).sum()))
    }

    /// Deletes every object under the output root and empties the ClickHouse
    /// tables, if any (`replay --reset`). Returns the number of objects deleted.
    pub fn reset(output: &OutputConfig, clickhouse: &ClickHouseConfig) -> Result<usize> {
        if !clickhouse.url.is_empty() {
            ClickHouseSink::unchecked(clickhouse)?.truncate_all()?;
            tracing::info!(database = %clickhouse.database, "reset: ClickHouse tables truncated");
        }
        let root = super::OutputRoot::open_config(output)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(rt.block_on(root.delete_all_objects())?)
    }
}
