//! The analysis population of SPEC 10.1, built from `user_daily` in one pass.
//!
//! Objects are listed and fetched through the sink's reader
//! ([`crate::sink::list_parts`], [`crate::sink::decode_columns`]) and decoded
//! on worker threads with a column projection (only the columns the metrics
//! need); the decoders also hash each row's user id. Users are split by that
//! hash into a fixed number of shards, folded in parallel, each shard in path
//! order — that is date order — into per-user totals keyed by a compact index
//! per experiment (ids inline in the map, see [`super::user_key`]), while each
//! shard keeps its arms' sums current. After each date the shards' sums are
//! added into one cumulative [`DaySnapshot`] for the daily trajectory; the
//! last snapshot is the report over the whole range. The shard count is fixed, so
//! the sums are added in the same order on any machine.

use super::metric::{Metric, MomentSums};
use super::user_key::UserKey;
use super::ReportError;
use crate::sink::{decode_columns, list_parts, Dataset, OutputRoot};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, UInt32Type, UInt64Type};
use hashbrown::HashTable;
use object_store::path::Path;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

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

/// User shards (fixed: the order in which sums are added must not depend on
/// the machine's cores).
const SHARDS: usize = 4;

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

    fn merge(&mut self, other: &ArmTotals) {
        for (a, b) in self.metrics.iter_mut().zip(&other.metrics) {
            a.merge(b);
        }
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

impl DaySnapshot {
    fn merge(&mut self, other: &DaySnapshot) {
        self.multi_variant_users += other.multi_variant_users;
        for (v, t) in &other.arms {
            self.arms.entry(*v).or_default().merge(t);
        }
    }
}

/// One experiment's population.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentPopulation {
    /// Every variant with a row in range, by id, with its key (the first
    /// non-null `variant_key` in path and row order).
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

/// Where a variant's key was first seen: (file, row) and the key.
type KeySeen = Option<((usize, usize), String)>;

/// The running state of one experiment in one shard.
#[derive(Default)]
struct ExperimentState {
    /// Each user's id and totals, in one table entry: a lookup touches one
    /// place in memory.
    users: HashTable<(UserKey, UserTotals)>,
    variants: Vec<(u32, KeySeen)>,
    /// Per variant (same index as `variants`): the sums over its analysed
    /// users, kept current row by row (a user's old contribution out, the
    /// new one in), so that a date's snapshot is a copy.
    arms: Vec<ArmTotals>,
    multi_variant_users: u64,
    touched_today: bool,
    days: Vec<DaySnapshot>,
}

/// The values of one `user_daily` row that the metrics sum.
struct RowValues {
    exposed: bool,
    converted: bool,
    events: u64,
    sessions: u64,
    value: f64,
}

impl UserTotals {
    /// The user's arm and metric values while they count (exposed, one variant).
    fn contribution(&self) -> Option<(usize, [f64; 4])> {
        (self.exposed && !self.multi).then(|| {
            let conv = if self.converted { 1.0 } else { 0.0 };
            let x = [conv, self.value, self.events as f64, self.sessions as f64];
            (self.variant as usize, x)
        })
    }
}

impl ExperimentState {
    fn variant_index(
        &mut self,
        id: u32,
        key: Option<&str>,
        at: (usize, usize),
    ) -> Result<u16, ReportError> {
        let i = match self.variants.iter().position(|(v, _)| *v == id) {
            Some(i) => i,
            None => {
                if self.variants.len() >= u16::MAX as usize {
                    return Err(ReportError::Data(
                        "more than 65535 variants in one experiment".into(),
                    ));
                }
                self.variants.push((id, None));
                self.arms.push(ArmTotals::default());
                self.variants.len() - 1
            }
        };
        let slot = &mut self.variants[i].1;
        if let (None, Some(k)) = (&slot, key) {
            *slot = Some((at, k.to_string()));
        }
        Ok(i as u16)
    }

    /// Adds one row to its user's totals and the arm sums.
    fn add_row(&mut self, hash: u64, uid: &str, variant: u16, row: &RowValues) {
        let u = &mut self
            .users
            .entry(
                hash,
                |e| e.0.as_str() == uid,
                |e| hasher().hash_one(e.0.as_str()),
            )
            .or_insert_with(|| {
                let totals = UserTotals {
                    variant,
                    multi: false,
                    exposed: false,
                    converted: false,
                    events: 0,
                    sessions: 0,
                    value: 0.0,
                };
                (UserKey::from(uid), totals)
            })
            .into_mut()
            .1;
        let before = u.contribution();
        let was_multi = u.multi;
        u.multi |= u.variant != variant;
        u.exposed |= row.exposed;
        u.converted |= row.converted;
        u.events += row.events;
        u.sessions += row.sessions;
        u.value += row.value;
        let after = u.contribution();
        if u.multi && !was_multi {
            self.multi_variant_users += 1;
        }
        if let Some((arm, x)) = before {
            for (m, x) in self.arms[arm].metrics.iter_mut().zip(x) {
                m.remove(x);
            }
        }
        if let Some((arm, x)) = after {
            for (m, x) in self.arms[arm].metrics.iter_mut().zip(x) {
                m.add(x);
            }
        }
    }

    /// The cumulative state at the end of `day`.
    fn snapshot(&mut self, day: i64) {
        let arms = self
            .variants
            .iter()
            .map(|(id, _)| *id)
            .zip(self.arms.iter().copied())
            .collect();
        self.days.push(DaySnapshot {
            day,
            multi_variant_users: self.multi_variant_users,
            arms,
        });
    }
}

/// One shard's experiments, with the shard's id.
type Shard = (usize, BTreeMap<u32, ExperimentState>);

/// One decoded object, shared by the shard threads.
struct Decoded {
    file: usize,
    day: i64,
    batches: Vec<RecordBatch>,
    /// Per batch, per row: the hash of `user_id`.
    hashes: Vec<Vec<u64>>,
}

fn hasher() -> rustc_hash::FxBuildHasher {
    rustc_hash::FxBuildHasher
}

/// The shard of a user id's hash (bits the hash table does not use for
/// buckets or tags).
fn shard_of(hash: u64) -> usize {
    ((hash >> 32) as usize) % SHARDS
}

fn decode(
    root: &OutputRoot,
    rt: &tokio::runtime::Handle,
    path: &Path,
) -> Result<Decoded, ReportError> {
    let bytes = rt.block_on(root.get(path))?;
    let batches = decode_columns(Dataset::UserDaily, path, bytes, &COLUMNS, BATCH_ROWS)?;
    let hashes = batches
        .iter()
        .map(|b| {
            let users = b
                .column_by_name("user_id")
                .expect("decode_columns checked the columns")
                .as_string::<i32>();
            let h = hasher();
            (0..users.len())
                .map(|i| h.hash_one(users.value(i)))
                .collect()
        })
        .collect();
    Ok(Decoded {
        file: 0,
        day: 0,
        batches,
        hashes,
    })
}

/// Folds the rows of some shards, file after file.
struct ShardFolder {
    /// Shards this folder owns: `shard % threads == me`.
    me: usize,
    threads: usize,
    only: Option<u32>,
    /// Per owned shard: experiments.
    shards: Vec<BTreeMap<u32, ExperimentState>>,
}

impl ShardFolder {
    fn fold(&mut self, d: &Decoded) -> Result<(), ReportError> {
        for (bi, (b, hashes)) in d.batches.iter().zip(&d.hashes).enumerate() {
            let col = |name: &str| b.column_by_name(name).expect("decode_columns checked it");
            let exp = col("experiment_id").as_primitive::<UInt32Type>();
            let var = col("variant_id").as_primitive::<UInt32Type>();
            let user = col("user_id").as_string::<i32>();
            let key = col("variant_key").as_string::<i32>();
            let events = col("events").as_primitive::<UInt64Type>();
            let value = col("value_sum").as_primitive::<Float64Type>();
            let sessions = col("sessions").as_primitive::<UInt64Type>();
            let exposed = col("exposed").as_boolean();
            let converted = col("converted").as_boolean();
            for (i, &h) in hashes.iter().enumerate() {
                let shard = shard_of(h);
                if shard % self.threads != self.me {
                    continue;
                }
                let e = exp.value(i);
                if self.only.is_some_and(|x| x != e) {
                    continue;
                }
                let st = self.shards[shard / self.threads].entry(e).or_default();
                st.touched_today = true;
                let k = key.is_valid(i).then(|| key.value(i));
                let v = st.variant_index(var.value(i), k, (d.file, bi * BATCH_ROWS + i))?;
                let row = RowValues {
                    exposed: exposed.value(i),
                    converted: converted.value(i),
                    events: events.value(i),
                    sessions: sessions.value(i),
                    value: value.value(i),
                };
                st.add_row(h, user.value(i), v, &row);
            }
        }
        Ok(())
    }

    fn end_of_day(&mut self, day: i64) {
        for shard in &mut self.shards {
            for st in shard.values_mut() {
                if std::mem::take(&mut st.touched_today) {
                    st.snapshot(day);
                }
            }
        }
    }

    /// Folds every file sent on `rx`; returns its shards, by shard id.
    fn run(mut self, rx: mpsc::Receiver<Arc<Decoded>>) -> Result<Vec<Shard>, ReportError> {
        let mut day = None;
        for d in rx {
            if day.is_some_and(|x| x != d.day) {
                self.end_of_day(day.unwrap());
            }
            day = Some(d.day);
            self.fold(&d)?;
        }
        if let Some(x) = day {
            self.end_of_day(x);
        }
        let (me, threads) = (self.me, self.threads);
        Ok(self
            .shards
            .into_iter()
            .enumerate()
            .map(|(k, s)| (k * threads + me, s))
            .collect())
    }
}

/// Reads `user_daily` under `root` and builds the population of `scope` with
/// `workers` decoding and `workers` folding threads. Errors when the root has
/// no `user_daily` objects at all.
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
    let decoders = workers.clamp(1, files.len().max(1));
    let folders = workers.clamp(1, SHARDS);
    let next = AtomicUsize::new(0);
    // Decoded files wait here until their turn (files are folded in path order).
    let pending: Mutex<BTreeMap<usize, Result<Decoded, ReportError>>> = Mutex::new(BTreeMap::new());
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    // At most this many decoded files wait ahead of the folders.
    let ahead = decoders * 2;
    let (permit_tx, permit_rx) = mpsc::sync_channel::<()>(ahead);
    let permit_rx = Mutex::new(permit_rx);
    for _ in 0..ahead {
        permit_tx.send(()).expect("fresh channel");
    }
    let handle = rt.handle().clone();
    let mut rows_read = 0u64;
    let shards = std::thread::scope(|s| -> Result<_, ReportError> {
        for _ in 0..decoders {
            let (files, next, pending, ready_tx, permit_rx, handle) = (
                &files,
                &next,
                &pending,
                ready_tx.clone(),
                &permit_rx,
                &handle,
            );
            s.spawn(move || loop {
                if permit_rx.lock().unwrap().recv().is_err() {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, day)) = files.get(i) else {
                    return;
                };
                let decoded = decode(root, handle, path).map(|mut d| {
                    d.file = i;
                    d.day = *day;
                    d
                });
                pending.lock().unwrap().insert(i, decoded);
                if ready_tx.send(()).is_err() {
                    return;
                }
            });
        }
        drop(ready_tx);
        let mut to_folders = Vec::new();
        let mut folder_threads = Vec::new();
        for me in 0..folders {
            let (tx, rx) = mpsc::sync_channel::<Arc<Decoded>>(2);
            to_folders.push(tx);
            let folder = ShardFolder {
                me,
                threads: folders,
                only: scope.experiment,
                shards: (0..SHARDS)
                    .filter(|k| k % folders == me)
                    .map(|_| BTreeMap::new())
                    .collect(),
            };
            folder_threads.push(s.spawn(move || folder.run(rx)));
        }
        let mut failed = None;
        for i in 0..files.len() {
            let decoded = loop {
                if let Some(r) = pending.lock().unwrap().remove(&i) {
                    break r;
                }
                if ready_rx.recv().is_err() {
                    break Err(ReportError::Data("a decoding thread stopped".into()));
                }
            };
            // Let a decoder start on the next file.
            let _ = permit_tx.send(());
            match decoded {
                Ok(d) => {
                    rows_read += d.batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                    let d = Arc::new(d);
                    // A folder that stopped reports its error when joined.
                    for tx in &to_folders {
                        let _ = tx.send(d.clone());
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        drop(permit_tx);
        drop(to_folders);
        let mut shards = Vec::new();
        for t in folder_threads {
            shards.extend(t.join().expect("a folding thread panicked")?);
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(shards),
        }
    })?;
    Ok(Population {
        experiments: merge(shards),
        rows_read,
    })
}

/// Adds the shards' snapshots per experiment and date (shard order fixed),
/// and picks each variant's key from its first sighting.
fn merge(mut shards: Vec<Shard>) -> BTreeMap<u32, ExperimentPopulation> {
    shards.sort_by_key(|(k, _)| *k);
    let ids: std::collections::BTreeSet<u32> =
        shards.iter().flat_map(|(_, s)| s.keys().copied()).collect();
    let mut out = BTreeMap::new();
    for id in ids {
        let parts: Vec<&ExperimentState> = shards.iter().filter_map(|(_, s)| s.get(&id)).collect();
        let mut days: Vec<i64> = parts
            .iter()
            .flat_map(|p| p.days.iter().map(|d| d.day))
            .collect();
        days.sort_unstable();
        days.dedup();
        if days.is_empty() {
            continue;
        }
        let mut keys: BTreeMap<u32, KeySeen> = BTreeMap::new();
        for p in &parts {
            for (v, seen) in &p.variants {
                let slot = keys.entry(*v).or_default();
                if let Some((at, k)) = seen {
                    if slot.as_ref().is_none_or(|(best, _)| at < best) {
                        *slot = Some((*at, k.clone()));
                    }
                }
            }
        }
        let snapshots = days
            .iter()
            .map(|&day| {
                let mut total = DaySnapshot {
                    day,
                    multi_variant_users: 0,
                    arms: BTreeMap::new(),
                };
                for p in &parts {
                    // The shard's state at the end of `day`: its last snapshot so far.
                    if let Some(s) = p.days.iter().rev().find(|s| s.day <= day) {
                        total.merge(s);
                    }
                }
                total
            })
            .collect();
        out.insert(
            id,
            ExperimentPopulation {
                variants: keys
                    .into_iter()
                    .map(|(v, seen)| (v, seen.map(|(_, k)| k)))
                    .collect(),
                days: snapshots,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outputs::UserDailyRow;
    use crate::sink::paths::parquet_path;
    use crate::sink::schema::user_daily_batch;
    use crate::sink::HivePartition;
    use crate::time::parse_date;

    const DAY_US: i64 = 86_400_000_000;

    /// A `user_daily` row of experiment 1 on `date` (variant 11 = control, 12).
    fn row(date: &str, user: &str, variant: u32, exposed: bool, converted: bool) -> UserDailyRow {
        let day = parse_date(date).unwrap();
        UserDailyRow {
            date: day * DAY_US,
            experiment_id: 1,
            variant_id: variant,
            user_id: user.into(),
            variant_key: Some(if variant == 11 { "control" } else { "b" }.into()),
            events: 2,
            journey: vec!["exposure".into(), "page_view".into()],
            value_sum: if converted { 10.0 } else { 0.0 },
            sessions: 1,
            exposed,
            converted,
            first_ts: day * DAY_US,
            last_ts: day * DAY_US + 1,
            partition: 0,
        }
    }

    /// Writes the rows as one Parquet object per date, as the sink lays them out.
    fn root_with(rows: &[UserDailyRow]) -> (tempfile::TempDir, OutputRoot) {
        let dir = tempfile::tempdir().unwrap();
        let mut by_day: BTreeMap<i64, Vec<&UserDailyRow>> = BTreeMap::new();
        for r in rows {
            by_day.entry(r.date / DAY_US).or_default().push(r);
        }
        for (day, rows) in by_day {
            let path = parquet_path(
                Dataset::UserDaily,
                HivePartition { day, hour: 0 },
                "p0000",
                0,
            );
            let file = dir.path().join(path.as_ref());
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            let batch = user_daily_batch(&rows).unwrap();
            let mut w = parquet::arrow::ArrowWriter::try_new(
                std::fs::File::create(file).unwrap(),
                batch.schema(),
                None,
            )
            .unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
        }
        let root = OutputRoot::open(dir.path().to_str().unwrap()).unwrap();
        (dir, root)
    }

    fn users(s: &DaySnapshot) -> Vec<(u32, u64)> {
        s.arms.iter().map(|(v, a)| (*v, a.users())).collect()
    }

    #[test]
    fn a_user_counts_from_their_first_exposed_row_and_sums_every_row() {
        let (_d, root) = root_with(&[
            row("2025-10-01", "a", 11, false, false),
            row("2025-10-02", "a", 11, true, true),
            row("2025-10-01", "b", 12, true, false),
            row("2025-10-02", "c", 12, false, false),
        ]);
        let pop = load(&root, Scope::default(), 2).unwrap();
        let e = &pop.experiments[&1];
        assert_eq!(e.days.len(), 2);
        // day 1: a not exposed yet, b exposed; c never exposed
        assert_eq!(users(&e.days[0]), [(11, 0), (12, 1)]);
        assert_eq!(users(&e.days[1]), [(11, 1), (12, 1)]);
        let a = e.total().arms[&11];
        assert_eq!(a.of(Metric::ConversionRate).sum, 1.0);
        assert_eq!(a.of(Metric::EventsPerUser).sum, 4.0, "both of a's rows");
        assert_eq!(e.variants[&11].as_deref(), Some("control"));
        assert_eq!(pop.rows_read, 4);
    }

    #[test]
    fn a_user_seen_in_two_variants_is_left_out_from_then_on() {
        let (_d, root) = root_with(&[
            row("2025-10-01", "a", 11, true, false),
            row("2025-10-02", "a", 12, true, true),
            row("2025-10-01", "b", 12, true, false),
        ]);
        let e = &load(&root, Scope::default(), 1).unwrap().experiments[&1];
        assert_eq!(users(&e.days[0]), [(11, 1), (12, 1)]);
        assert_eq!(e.days[0].multi_variant_users, 0);
        assert_eq!(users(&e.days[1]), [(11, 0), (12, 1)]);
        assert_eq!(e.days[1].multi_variant_users, 1);
    }

    #[test]
    fn the_scope_picks_dates_and_the_experiment() {
        let (_d, root) = root_with(&[
            row("2025-10-01", "a", 11, true, false),
            row("2025-10-02", "b", 12, true, false),
            row("2025-10-03", "c", 12, true, false),
        ]);
        let scope = Scope {
            experiment: Some(1),
            from_day: parse_date("2025-10-02"),
            to_day: parse_date("2025-10-02"),
        };
        let e = &load(&root, scope, 2).unwrap().experiments[&1];
        assert_eq!(e.days.len(), 1);
        assert_eq!(users(&e.days[0]), [(12, 1)]);
        let other = Scope {
            experiment: Some(2),
            ..Scope::default()
        };
        assert!(load(&root, other, 2).unwrap().experiments.is_empty());
    }

    #[test]
    fn a_root_without_user_daily_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = OutputRoot::open(dir.path().to_str().unwrap()).unwrap();
        assert!(matches!(
            load(&root, Scope::default(), 2),
            Err(ReportError::NoUserDaily(_))
        ));
    }
}
