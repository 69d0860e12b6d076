//! File mode: the whole topology in one process on a JSONL file (SPEC 2.4, 3).
//!
//! Work proceeds in chunks of lines. A reader thread reads and parses the
//! next chunk, a cache-sized block at a time (one parse thread per four
//! partitions, see `parse_workers`), while the current one is
//! routed sequentially in file order and every task runs on its share in
//! parallel; [`PARSED_AHEAD`] parsed chunks wait at most (a bounded queue). Every
//! `checkpoint_records` lines (a deterministic boundary, which the chunks
//! never cross) the segment is sealed: its state changes, counters and file
//! position are taken as they are, and a committer thread encodes and
//! publishes its outputs and then commits the rest atomically, while the
//! tasks go on with the next segment. One segment lands at a time; a
//! restart resumes after the last one that landed.

use crate::config::Config;
use crate::domain::{DeadLetterRow, Micros, Origin, OutputBatch, Parsed, Routed, Summary};
use crate::parse::line_parse::parse_line;
use crate::parse::ParseContext;
use crate::processors::join::{self, JoinTask, TaskMeta};
use crate::processors::router::{Router, RouterState};
use crate::processors::summary;
use crate::sink::{task_part, Outputs, Segment, ROUTER_PART};
use anyhow::{bail, Context, Result};
use neonblue_state::{decode, encode, CommitBatch, StateDb};
use neonblue_topology::lines::LineSource;
use neonblue_topology::{LocalDurability, Processor, TaskCommit};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Lines parsed per step (bounded memory; a checkpoint boundary may cut a step short).
const STEP_LINES: usize = 32 * 1024;
/// Parsed chunks that may wait for the tasks. More than one lets the reader
/// keep parsing while a segment is committed: with 2 partitions the
/// 300,000-envelope run took 2.97 s instead of 3.24 s (medians of 5
/// alternating runs), with 1 the same.
const PARSED_AHEAD: usize = 3;

/// What a file run needs.
#[derive(Clone, Debug)]
pub struct FileRun {
    /// JSONL input.
    pub input: PathBuf,
    /// Configuration (processing, source layout, output).
    pub config: Config,
    /// Wall clock for the "more than 24 h ahead" check.
    pub now: Micros,
    /// Show a progress bar.
    pub progress: bool,
}

/// Identity of a job, stored in the state so a state directory is not reused
/// for another input or incompatible settings by accident.
/// Stored under the metadata key [`JOB_KEY`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFingerprint {
    /// The input file (canonical path).
    pub input: String,
    /// Its size when the job started.
    pub input_bytes: u64,
    /// Input layout.
    pub layout: String,
    /// Task partitions.
    pub partitions: u32,
    /// Grace in microseconds.
    pub grace_micros: i64,
    /// Lines between checkpoints.
    pub checkpoint_records: u64,
}

/// Metadata key of the [`JobFingerprint`].
pub const JOB_KEY: &str = "job";

/// The router's checkpoint in file mode: the file position and the router's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    /// Byte position in the file: everything before it is committed.
    pub pos: u64,
    /// Line number at `pos` (the next segment's sequence number).
    pub next_line: u64,
    /// The whole file was processed.
    pub done: bool,
    /// The router's counters and stream time.
    pub router: RouterState,
}

/// Namespace of the file's router.
pub const ROUTER: &str = "router";

/// One parsed line, ready for the router.
struct LineOutcome {
    origin: Origin,
    parsed: Parsed,
    dead_letter: Option<String>,
}

/// Runs the topology over `run.input` to the end, resuming from a checkpoint
/// in the state directory if there is one. Returns the accounting summary.
pub fn run_file(run: &FileRun) -> Result<Summary> {
    let cfg = &run.config;
    let partitions = cfg.processing.partitions.max(1);
    let grace = cfg.processing.grace_micros();
    let checkpoint_every = cfg.processing.checkpoint_records.max(1);
    let input = std::fs::canonicalize(&run.input)
        .with_context(|| format!("cannot open input {}", run.input.display()))?;
    let default_topic: Arc<str> = default_topic(&input).into();

    let db = StateDb::open(&cfg.processing.state_dir, cfg.state.cache_bytes)
        .with_context(|| {
            format!(
                "cannot open state directory {}",
                cfg.processing.state_dir.display()
            )
        })?
        .keeping_free(cfg.state.min_free_bytes);
    let fingerprint = JobFingerprint {
        input: input.display().to_string(),
        input_bytes: std::fs::metadata(&input)?.len(),
        layout: format!("{:?}", cfg.source.layout).to_lowercase(),
        partitions,
        grace_micros: grace,
        checkpoint_records: checkpoint_every,
    };
    match db.get_meta(JOB_KEY)? {
        Some(bytes) => {
            let stored: JobFingerprint = decode(&bytes)?;
            if stored != fingerprint {
                bail!(
                    "state directory {} belongs to another job ({stored:?}); use a fresh --state directory, or delete this one to reprocess from scratch",
                    cfg.processing.state_dir.display()
                );
            }
        }
        None => db.put_meta_durable(JOB_KEY, Some(&encode(&fingerprint)))?,
    }

    let outputs = Outputs::open(&cfg.output, &cfg.clickhouse)?;
    let durability = LocalDurability::new(db.clone());
    let namespaces: Vec<String> = std::iter::once(ROUTER.to_string())
        .chain((0..partitions).map(join::namespace))
        .collect();
    for ns in &namespaces {
        let names = durability.unfinished_intent(ns)?;
        if !names.is_empty() {
            outputs.discard(&names)?;
            durability.clear_intent(ns)?;
            tracing::info!(task = %ns, objects = names.len(), "discarded the objects of an unfinished commit");
        }
    }

    let ckpt: FileCheckpoint = match durability.checkpoint(ROUTER)? {
        Some(b) => decode(&b)?,
        None => FileCheckpoint::default(),
    };
    let mut router = Router::load(&db, ROUTER, partitions, ckpt.router.clone())?;
    let mut tasks = Vec::with_capacity(partitions as usize);
    for p in 0..partitions {
        let meta: TaskMeta = match durability.checkpoint(&join::namespace(p))? {
            Some(b) => decode(&b)?,
            None => TaskMeta::default(),
        };
        tasks.push(JoinTask::load(
            &db,
            &join::namespace(p),
            p as i32,
            grace,
            meta,
        )?);
    }
    let summary_of = |router: &Router, tasks: &[JoinTask]| {
        summary([&router.counters], tasks.iter().map(|t| &t.meta.counters))
    };
    if ckpt.done {
        let len = std::fs::metadata(&input)?.len();
        if len != ckpt.pos {
            tracing::warn!(
                processed_bytes = ckpt.pos,
                file_bytes = len,
                "input changed after it was fully processed; its new content is ignored (use a fresh --state to reprocess)"
            );
        }
        tracing::info!("input already fully processed; outputs are complete");
        return Ok(summary_of(&router, &tasks));
    }

    let ctx = ParseContext {
        source: cfg.source.clone(),
        now: run.now,
    };
    let workers = parse_workers(partitions);
    let source = LineSource::open(&input, ckpt.pos, ckpt.next_line, block_bytes(workers))?;
    let bar = crate::ops::progress::bytes_bar(run.progress, source.len(), ckpt.pos);
    let mut batches: Vec<OutputBatch> = (0..partitions).map(|_| OutputBatch::default()).collect();
    let mut dead: Vec<DeadLetterRow> = Vec::new();
    let mut segment_start = ckpt.next_line;
    let mut next_line = ckpt.next_line;
    let mut pos = ckpt.pos;
    let mut inputs: Vec<Vec<Routed>> = (0..partitions).map(|_| Vec::new()).collect();

    // Not joined: a run that stops on an error must not wait for the reader
    // (blocked on a pipe, say); it ends at its next send.
    let (chunks, parsed) = std::sync::mpsc::sync_channel::<Result<ParsedChunk>>(PARSED_AHEAD);
    let (give_back, emptied) = std::sync::mpsc::channel();
    let reader = ChunkReader {
        source,
        first_line: ckpt.next_line,
        ctx,
        topic: default_topic,
        workers,
        checkpoint_every,
        emptied,
    };
    std::thread::Builder::new()
        .name("input-reader".into())
        .spawn(move || reader.run(&chunks))
        .context("cannot start the input reader thread")?;
    std::thread::scope(|scope| -> Result<()> {
        // The segment being committed in the background while the tasks go
        // on: one at a time, each landing before the next one's changes are
        // taken (its pages stay cached until then, see `Budget`).
        let mut landing: Option<Landing<'_>> = None;
        let landed = |h: Landing<'_>| {
            h.join()
                .map_err(|_| anyhow::anyhow!("the segment committer panicked"))?
        };
        let mut process = || -> Result<()> {
            loop {
                // A closed queue without an end-of-input chunk means the reader
                // stopped on an error it has sent.
                let mut chunk = parsed
                    .recv()
                    .context("the input reader stopped unexpectedly")??;
                let at_eof = chunk.lines == 0;
                if !at_eof {
                    for o in chunk.outcomes.drain(..) {
                        if let Some(line) = o.dead_letter {
                            dead.push(DeadLetterRow { line });
                        }
                        if let Some(r) = router.route(o.origin, o.parsed)? {
                            inputs[r.partition as usize].push(r.routed);
                        }
                    }
                    // The reader may have stopped: then nobody needs it.
                    let _ = give_back.send(chunk.outcomes);
                    run_tasks(&mut tasks, &mut inputs, &mut batches)?;
                    next_line = chunk.first_line + chunk.lines;
                    pos = chunk.end_pos;
                    bar.set_position(pos);
                } else {
                    for (t, out) in tasks.iter_mut().zip(batches.iter_mut()) {
                        t.end_of_input(out)?;
                    }
                }
                // The regular boundary, or earlier when uncommitted state fills its
                // share of the cache (a deterministic point: after a whole step).
                let boundary = next_boundary(segment_start, checkpoint_every);
                if at_eof || next_line >= boundary || db.budget().wants_commit() {
                    let emptied = match landing.take() {
                        Some(h) => landed(h)?,
                        None => (0..partitions).map(|_| OutputBatch::default()).collect(),
                    };
                    let ckpt = FileCheckpoint {
                        pos,
                        next_line,
                        done: at_eof,
                        router: router.state(),
                    };
                    let sealed = seal_segment(
                        &mut router,
                        &mut tasks,
                        std::mem::replace(&mut batches, emptied),
                        std::mem::take(&mut dead),
                        segment_start,
                        &ckpt,
                    );
                    let (db, outputs) = (&db, &outputs);
                    landing = Some(
                        std::thread::Builder::new()
                            .name("segment-commit".into())
                            .spawn_scoped(scope, move || land_segment(db, outputs, sealed))
                            .context("cannot start the segment committer")?,
                    );
                    segment_start = next_line;
                }
                if at_eof {
                    break;
                }
            }
            Ok(())
        };
        let processed = process();
        // The segment in flight lands or fails first: its failure is the
        // cause of any error that followed it (a state that stopped after a
        // failed write, say).
        landing.take().map(landed).transpose()?;
        processed
    })?;
    bar.finish_and_clear();
    Ok(summary_of(&router, &tasks))
}

/// The first checkpoint boundary after line `line`: the next multiple of
/// `every`. A chunk never crosses one, so segments are cut at the same
/// lines whenever the run is resumed.
fn next_boundary(line: u64, every: u64) -> u64 {
    (line / every + 1) * every
}

/// Parse threads of the reader. It works while the tasks run, and parsing
/// is about a fifth of a record's work, so one thread keeps up with four
/// partitions.
fn parse_workers(partitions: u32) -> usize {
    partitions.div_ceil(4).max(1) as usize
}

/// A chunk of lines, parsed.
struct ParsedChunk {
    /// Line number of its first line.
    first_line: u64,
    /// Lines in it (0: the end of the input).
    lines: u64,
    /// File position after it.
    end_pos: u64,
    /// One outcome per non-blank line, in file order.
    outcomes: Vec<LineOutcome>,
}

/// Reads and parses the input ahead of the tasks, chunk by chunk.
struct ChunkReader {
    source: LineSource,
    /// Line number of the source's position.
    first_line: u64,
    ctx: ParseContext,
    topic: Arc<str>,
    workers: usize,
    checkpoint_every: u64,
    /// Outcome vectors the tasks have emptied, to fill again: a new one for
    /// every chunk (~10 MB) had its pages faulted in afresh.
    emptied: std::sync::mpsc::Receiver<Vec<LineOutcome>>,
}

impl ChunkReader {
    /// Sends every chunk, then an empty one at the end of the input; stops
    /// at the first error (sent) or when the receiver is gone.
    fn run(mut self, out: &std::sync::mpsc::SyncSender<Result<ParsedChunk>>) {
        let mut next_line = self.first_line;
        loop {
            let chunk = match self.next(next_line) {
                Ok(c) => c,
                Err(e) => {
                    let _ = out.send(Err(e));
                    return;
                }
            };
            let end = chunk.lines == 0;
            next_line = chunk.first_line + chunk.lines;
            if out.send(Ok(chunk)).is_err() || end {
                return;
            }
        }
    }

    /// The next chunk: up to [`STEP_LINES`] lines, never past a boundary.
    fn next(&mut self, next_line: u64) -> Result<ParsedChunk> {
        let boundary = next_boundary(next_line, self.checkpoint_every);
        let want = ((boundary - next_line) as usize).min(STEP_LINES);
        let mut outcomes = self.emptied.try_recv().unwrap_or_default();
        outcomes.reserve(want);
        let span = self.source.next_lines(want, |block| {
            let lines: Vec<&[u8]> = block.lines().collect();
            parse_parallel(
                &self.ctx,
                &lines,
                block.first_line,
                &self.topic,
                self.workers,
                &mut outcomes,
            );
        })?;
        Ok(match span {
            Some(span) => ParsedChunk {
                first_line: span.first_line,
                lines: span.lines,
                end_pos: span.end_pos,
                outcomes,
            },
            None => ParsedChunk {
                first_line: next_line,
                lines: 0,
                end_pos: 0,
                outcomes,
            },
        })
    }
}

/// Bytes the reader reads at a time. One parse thread parses each block while
/// it is still in its core's cache (256 KiB: the run's input-reader thread
/// took 8% less CPU than with 4 MiB reads into a 40 MB chunk); several get
/// bigger blocks, enough lines for each.
fn block_bytes(workers: usize) -> usize {
    if workers <= 1 {
        256 << 10
    } else {
        workers * (4 << 20)
    }
}

/// Parses lines on `workers` threads, appending the outcomes in order.
fn parse_parallel(
    ctx: &ParseContext,
    lines: &[&[u8]],
    first_line: u64,
    topic: &Arc<str>,
    workers: usize,
    out: &mut Vec<LineOutcome>,
) {
    if workers <= 1 || lines.len() < 1024 {
        return parse_lines(ctx, lines, first_line, topic, out);
    }
    let per = lines.len().div_ceil(workers);
    std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(per)
            .enumerate()
            .map(|(i, part)| {
                s.spawn(move || {
                    let mut part_out = Vec::with_capacity(part.len());
                    parse_lines(
                        ctx,
                        part,
                        first_line + (i * per) as u64,
                        topic,
                        &mut part_out,
                    );
                    part_out
                })
            })
            .collect();
        for h in handles {
            out.extend(h.join().expect("parse worker panicked"));
        }
    })
}

fn parse_lines(
    ctx: &ParseContext,
    lines: &[&[u8]],
    first_line: u64,
    default_topic: &Arc<str>,
    out: &mut Vec<LineOutcome>,
) {
    let mut topic_cache: Arc<str> = default_topic.clone();
    for (i, bytes) in lines.iter().enumerate() {
        let index = first_line + i as u64;
        let text = crate::parse::text_of(bytes);
        let Some(line) = parse_line(ctx, &text, index, default_topic) else {
            continue; // blank line: not a record
        };
        if *topic_cache != *line.topic {
            topic_cache = Arc::from(line.topic);
        }
        let origin = Origin {
            topic: topic_cache.clone(),
            partition: line.partition,
            offset: line.offset,
        };
        out.push(LineOutcome {
            origin,
            parsed: line.parsed,
            dead_letter: line.dlq,
        });
    }
}

/// Runs every task over its input, in parallel when there are several.
///
/// File order is the truth: every record is processed, whatever its
/// `offset` says (the offset only labels the record's origin in the
/// outputs). Nothing needs de-duplicating by position, because a restart
/// resumes at the checkpointed file position with the state of that point.
fn run_tasks(
    tasks: &mut [JoinTask],
    inputs: &mut [Vec<Routed>],
    outputs: &mut [OutputBatch],
) -> Result<()> {
    let work = |task: &mut JoinTask, input: &mut Vec<Routed>, out: &mut OutputBatch| {
        for r in input.drain(..) {
            task.process(r, out)?;
        }
        Ok::<(), neonblue_state::StateError>(())
    };
    if tasks.len() == 1 {
        return Ok(work(&mut tasks[0], &mut inputs[0], &mut outputs[0])?);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = tasks
            .iter_mut()
            .zip(inputs.iter_mut())
            .zip(outputs.iter_mut())
            .map(|((t, i), o)| s.spawn(move || work(t, i, o)))
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a task thread panicked"))??;
        }
        Ok(())
    })
}

/// The committer of a sealed segment; it returns the emptied output batches.
type Landing<'scope> = std::thread::ScopedJoinHandle<'scope, Result<Vec<OutputBatch>>>;

/// A segment whose state changes and checkpoints are taken, on its way to
/// durability.
struct SealedSegment {
    /// Its first line (the sequence number of its objects).
    seq: u64,
    /// Every task's outputs, by partition.
    batches: Vec<OutputBatch>,
    /// The router's dead letters.
    dead: Vec<DeadLetterRow>,
    /// Every task's changes and checkpoint, then the router's (with the file
    /// position); their intents are filled in when the outputs are encoded.
    commits: Vec<TaskCommit<String>>,
}

/// Ends a segment (the lines from `segment_start`): takes every task's and
/// the router's state changes and checkpoints, and the outputs, as they are
/// now. The tasks may go on at once; [`land_segment`] commits it.
fn seal_segment(
    router: &mut Router,
    tasks: &mut [JoinTask],
    batches: Vec<OutputBatch>,
    dead: Vec<DeadLetterRow>,
    segment_start: u64,
    ckpt: &FileCheckpoint,
) -> SealedSegment {
    let mut commits = Vec::with_capacity(tasks.len() + 1);
    for (p, t) in tasks.iter_mut().enumerate() {
        let mut changes = CommitBatch::default();
        t.add_changes(&mut changes);
        commits.push(TaskCommit {
            key: join::namespace(p as u32),
            intent: Vec::new(),
            checkpoint: encode(&t.meta),
            changes,
        });
    }
    let mut changes = CommitBatch::default();
    router.add_changes(&mut changes);
    commits.push(TaskCommit {
        key: ROUTER.to_string(),
        intent: Vec::new(),
        checkpoint: encode(ckpt),
        changes,
    });
    SealedSegment {
        seq: segment_start,
        batches,
        dead,
        commits,
    }
}

/// Commits a sealed segment: encodes its outputs, then every task's outputs
/// behind its intent, then every task's state and checkpoint with the file
/// position, in one local transaction (`neonblue_topology::commit`).
/// Returns the output batches emptied, for a later segment to fill.
fn land_segment(
    db: &StateDb,
    outputs: &Outputs,
    sealed: SealedSegment,
) -> Result<Vec<OutputBatch>> {
    let SealedSegment {
        seq,
        mut batches,
        dead,
        commits,
    } = sealed;
    let dlq = OutputBatch {
        dead_letters: dead,
        ..Default::default()
    };
    let parts: Vec<String> = (0..batches.len() as u32).map(task_part).collect();
    let segments: Vec<Segment<'_>> = parts
        .iter()
        .map(String::as_str)
        .chain([ROUTER_PART])
        .zip(batches.iter().chain([&dlq]))
        .map(|(part, batch)| Segment { part, seq, batch })
        .collect();
    outputs.commit_segments(&mut LocalDurability::new(db.clone()), commits, &segments)?;
    drop(segments);
    // Kept for a later segment (no re-growth).
    for out in batches.iter_mut() {
        out.recycle();
    }
    Ok(batches)
}

/// Default topic of a file's records: its base name (SPEC 2.4).
pub fn default_topic(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
