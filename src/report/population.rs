//! The analysis population of SPEC 10.1, built from `user_daily` in one pass.
//!
//! Objects are listed and fetched through the sink's reader
//! ([`crate::sink::list_parts`], [`crate::sink::decode_columns`]), decoded on
//! worker threads with a column projection (only the columns the metrics
//! need), and folded in path order — that is date order — into per-user
//! totals keyed by a compact index per experiment. After each date the users
//! are summed per arm: a cumulative [`DaySnapshot`] for the daily trajectory;
//! the last snapshot is the report over the whole range.

use super::metric::{Metric, MomentSums};
use super::ReportError;
use crate::sink::{decode_columns, list_parts, Dataset, OutputRoot};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, UInt32Type, UInt64Type};
use object_store::path::Path;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

/// The `user_daily` columns the report reads.
const COLUMNS: [&str; 9] = [
    "experiment_id",
    "variant_id",
    "user_id",
    "variant_key",
    "events",
    "value_sum",
    "sessions",
    "exposed",
    "converted",
];

/// Rows per decoded batch.
const BATCH_ROWS: usize = 64 * 1024;

/// Which rows count: one experiment or all, and an inclusive date range
/// (days since 1970-01-01, UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// Only this experiment.
    pub experiment: Option<u32>,
    /// First day (inclusive).
    pub from_day: Option<i64>,
    /// Last day (inclusive).
    pub to_day: Option<i64>,
}

impl Scope {
    fn has_day(&self, day: i64) -> bool {
        self.from_day.is_none_or(|f| day >= f) && self.to_day.is_none_or(|t| day <= t)
    }
}

/// Per-metric sums of one arm's users.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ArmTotals {
    /// One entry per [`Metric::ALL`]; every entry has the same `n` (the users).
    pub metrics: [MomentSums; 4],
}

impl ArmTotals {
    /// Users in the arm.
    pub fn users(&self) -> u64 {
        self.metrics[0].n
    }

    /// The sums of `metric`.
    pub fn of(&self, metric: Metric) -> &MomentSums {
        &self.metrics[metric as usize]
    }
}

/// The population of one experiment as of the end of a date (cumulative).
#[derive(Clone, Debug, PartialEq)]
pub struct DaySnapshot {
    /// Days since 1970-01-01.
    pub day: i64,
    /// Users with rows of more than one variant so far (left out).
    pub multi_variant_users: u64,
    /// Per variant id (every variant seen so far): its analysed users' sums.
    pub arms: BTreeMap<u32, ArmTotals>,
}

/// One experiment's population.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentPopulation {
    /// Every variant with a row in range, by id, with its key (the first
    /// non-null `variant_key` seen).
    pub variants: BTreeMap<u32, Option<String>>,
    /// One cumulative snapshot per date with rows of the experiment, in date order.
    pub days: Vec<DaySnapshot>,
}

impl ExperimentPopulation {
    /// The population over the whole range (the last snapshot).
    pub fn total(&self) -> &DaySnapshot {
        self.days
            .last()
            .expect("an experiment has at least one date")
    }
}

/// Every experiment's population, by id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Population {
    /// By experiment id.
    pub experiments: BTreeMap<u32, ExperimentPopulation>,
    /// `user_daily` rows read (after the date range, before the experiment filter).
    pub rows_read: u64,
}

/// A user's totals in one experiment so far.
#[derive(Clone, Copy, Debug)]
struct UserTotals {
    /// Index into [`ExperimentState::variants`].
    variant: u16,
    multi: bool,
    exposed: bool,
    converted: bool,
    events: u64,
    sessions: u64,
    value: f64,
}

/// The running state of one experiment.
#[derive(Default)]
struct ExperimentState {
    index: FxHashMap<Box<str>, u32>,
    users: Vec<UserTotals>,
    variants: Vec<(u32, Option<String>)>,
    touched_today: bool,
    days: Vec<DaySnapshot>,
}

impl ExperimentState {
    fn variant_index(&mut self, id: u32, key: Option<&str>) -> Result<u16, ReportError> {
        if let Some(i) = self.variants.iter().position(|(v, _)| *v == id) {
            let slot = &mut self.variants[i].1;
            if slot.is_none() {
                *slot = key.map(str::to_string);
            }
            return Ok(i as u16);
        }
        if self.variants.len() >= u16::MAX as usize {
            return Err(ReportError::Data(
                "more than 65535 variants in one experiment".into(),
            ));
        }
        self.variants.push((id, key.map(str::to_string)));
        Ok((self.variants.len() - 1) as u16)
    }

    /// Sums the analysed users per arm: the cumulative state at the end of `day`.
    fn snapshot(&mut self, day: i64) {
        let mut arms = vec![ArmTotals::default(); self.variants.len()];
        let mut multi = 0;
        for u in &self.users {
            if u.multi {
                multi += 1;
                continue;
            }
            if !u.exposed {
                continue;
            }
            let m = &mut arms[u.variant as usize].metrics;
            m[0].add(if u.converted { 1.0 } else { 0.0 });
            m[1].add(u.value);
            m[2].add(u.events as f64);
            m[3].add(u.sessions as f64);
        }
        let arms = self.variants.iter().map(|(id, _)| *id).zip(arms).collect();
        self.days.push(DaySnapshot {
            day,
            multi_variant_users: multi,
            arms,
        });
    }
}

/// Folds decoded batches into per-experiment state.
struct Folder {
    scope: Scope,
    experiments: BTreeMap<u32, ExperimentState>,
    rows_read: u64,
}

impl Folder {
    fn fold(&mut self, b: &RecordBatch, path: &Path) -> Result<(), ReportError> {
        let col = |name: &str| {
            b.column_by_name(name).ok_or_else(|| {
                ReportError::Data(format!("{path}: column {name} missing after decoding"))
            })
        };
        let exp = col("experiment_id")?.as_primitive::<UInt32Type>();
        let var = col("variant_id")?.as_primitive::<UInt32Type>();
        let user = col("user_id")?.as_string::<i32>();
        let key = col("variant_key")?.as_string::<i32>();
        let events = col("events")?.as_primitive::<UInt64Type>();
        let value = col("value_sum")?.as_primitive::<Float64Type>();
        let sessions = col("sessions")?.as_primitive::<UInt64Type>();
        let exposed = col("exposed")?.as_boolean();
        let converted = col("converted")?.as_boolean();
        self.rows_read += b.num_rows() as u64;
        let only = self.scope.experiment;
        let experiments = &mut self.experiments;
        let mut current: Option<(u32, &mut ExperimentState)> = None;
        for i in 0..b.num_rows() {
            let e = exp.value(i);
            if only.is_some_and(|x| x != e) {
                continue;
            }
            if current.as_ref().is_none_or(|(id, _)| *id != e) {
                current = Some((e, experiments.entry(e).or_default()));
            }
            let st = &mut *current.as_mut().expect("set above").1;
            st.touched_today = true;
            let k = key.is_valid(i).then(|| key.value(i));
            let v = st.variant_index(var.value(i), k)?;
            let uid = user.value(i);
            let idx = match st.index.get(uid) {
                Some(&idx) => idx as usize,
                None => {
                    let idx = st.users.len();
                    st.index.insert(Box::from(uid), idx as u32);
                    st.users.push(UserTotals {
                        variant: v,
                        multi: false,
                        exposed: false,
                        converted: false,
                        events: 0,
                        sessions: 0,
                        value: 0.0,
                    });
                    idx
                }
            };
            let u = &mut st.users[idx];
            u.multi |= u.variant != v;
            u.exposed |= exposed.value(i);
            u.converted |= converted.value(i);
            u.events += events.value(i);
            u.sessions += sessions.value(i);
            u.value += value.value(i);
        }
        Ok(())
    }

    fn end_of_day(&mut self, day: i64) {
        for st in self.experiments.values_mut() {
            if std::mem::take(&mut st.touched_today) {
                st.snapshot(day);
            }
        }
    }
}

/// Reads `user_daily` under `root` and builds the population of `scope`.
/// Errors when the root has no `user_daily` objects at all.
pub fn load(root: &OutputRoot, scope: Scope, workers: usize) -> Result<Population, ReportError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| ReportError::Data(format!("cannot start the I/O runtime: {e}")))?;
    let parts = rt.block_on(list_parts(root, Dataset::UserDaily))?;
    if parts.is_empty() {
        return Err(ReportError::NoUserDaily(root.to_string()));
    }
    let files: Vec<(Path, i64)> = parts
        .into_iter()
        .filter(|(_, hp)| scope.has_day(hp.day))
        .map(|(p, hp)| (p, hp.day))
        .collect();
    let mut folder = Folder {
        scope,
        experiments: BTreeMap::new(),
        rows_read: 0,
    };
    let next = AtomicUsize::new(0);
    let workers = workers.clamp(1, files.len().max(1));
    // Decoded files wait here until their turn (files are folded in path order).
    let pending: Mutex<BTreeMap<usize, Result<Vec<RecordBatch>, ReportError>>> =
        Mutex::new(BTreeMap::new());
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    // At most this many decoded files wait ahead of the folder.
    let ahead = workers * 2;
    let (permit_tx, permit_rx) = mpsc::sync_channel::<()>(ahead);
    let permit_rx = Mutex::new(permit_rx);
    for _ in 0..ahead {
        permit_tx.send(()).expect("fresh channel");
    }
    let handle = rt.handle().clone();
    std::thread::scope(|s| -> Result<(), ReportError> {
        for _ in 0..workers {
            let (files, next, pending, ready_tx, permit_rx, handle) = (
                &files,
                &next,
                &pending,
                ready_tx.clone(),
                &permit_rx,
                handle.clone(),
            );
            s.spawn(move || loop {
                if permit_rx.lock().unwrap().recv().is_err() {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, _)) = files.get(i) else {
                    return;
                };
                let decoded = handle
                    .block_on(root.get(path))
                    .map_err(ReportError::from)
                    .and_then(|bytes| {
                        decode_columns(Dataset::UserDaily, path, bytes, &COLUMNS, BATCH_ROWS)
                            .map_err(ReportError::from)
                    });
                pending.lock().unwrap().insert(i, decoded);
                if ready_tx.send(()).is_err() {
                    return;
                }
            });
        }
        drop(ready_tx);
        let mut day = None;
        for (i, (path, file_day)) in files.iter().enumerate() {
            let batches = loop {
                if let Some(r) = pending.lock().unwrap().remove(&i) {
                    break r;
                }
                if ready_rx.recv().is_err() {
                    return Err(ReportError::Data("a decoding thread stopped".into()));
                }
            };
            // Let a worker start the next file before this one is folded.
            let _ = permit_tx.send(());
            let batches = match batches {
                Ok(b) => b,
                Err(e) => {
                    drop(permit_tx);
                    return Err(e);
                }
            };
            if day.is_some_and(|d| d != *file_day) {
                folder.end_of_day(day.unwrap());
            }
            day = Some(*file_day);
            for b in &batches {
                folder.fold(b, path)?;
            }
        }
        drop(permit_tx);
        if let Some(d) = day {
            folder.end_of_day(d);
        }
        Ok(())
    })?;
    let experiments = folder
        .experiments
        .into_iter()
        .filter(|(_, st)| !st.days.is_empty())
        .map(|(id, st)| {
            let variants = st.variants.into_iter().collect();
            (
                id,
                ExperimentPopulation {
                    variants,
                    days: st.days,
                },
            )
        })
        .collect();
    Ok(Population {
        experiments,
        rows_read: folder.rows_read,
    })
}
