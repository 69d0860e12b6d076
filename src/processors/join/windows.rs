//! Tumbling hourly/daily aggregates and per-user daily rollups (SPEC 5, 6.2, 6.3).
//!
//! Hot-path notes: event types and variant keys are interned as `Arc<str>`
//! (serialised exactly like `String`, so the stored state is unchanged), and
//! lookups use borrowed keys so that owned keys are built only on insert.

use super::Id;
use crate::domain::outputs::{AggRow, EventRow, UserDailyRow, WindowKind};
use crate::domain::records::{Micros, Text};
use neonblue_state::{StateDb, StateError, Store, StoreTree, WindowStore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Grouping key of an aggregate row within a window:
/// (experiment_id, variant_id, variant_key, event_type).
pub type GroupKey = (u32, u32, Option<Sym>, Sym);

/// An interned string (an event type or a variant key). Two copies from the
/// same interner compare equal by pointer, without reading the bytes: in
/// the window stores' page searches most keys share these strings. Ordered,
/// hashed and serialised exactly like the string.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sym(Arc<str>);

impl Sym {
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Sym {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for Sym {}

impl Ord for Sym {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        self.0.cmp(&other.0)
    }
}

impl PartialOrd for Sym {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for Sym {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl std::borrow::Borrow<str> for Sym {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Interned strings (event types, variant keys); bounded, cleared when full.
/// (foldhash, seeded per process: the strings come from the input.)
#[derive(Default)]
struct Interner {
    set: hashbrown::HashSet<Sym, foldhash::fast::RandomState>,
}

const INTERNER_MAX: usize = 65_536;

impl Interner {
    fn get(&mut self, s: &str) -> Sym {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        if self.set.len() >= INTERNER_MAX {
            self.set.clear();
        }
        let a = Sym(Arc::from(s));
        self.set.insert(a.clone());
        a
    }
}

/// Running sums of one aggregate group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AggState {
    /// Valid non-late events.
    pub events: u64,
    /// Distinct users (maintained with the window's user set).
    pub users: u64,
    /// Events with a value.
    pub value_count: u64,
    /// Σ value.
    pub value_sum: f64,
    /// Σ value².
    pub value_sum_sq: f64,
}

/// Key of a per-user daily rollup within a day: (experiment_id, variant_id, user_id).
pub type UserDayKey = (u32, u32, Id);

/// Running state of one user's day in one variant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    /// Events counted.
    pub events: u64,
    /// (timestamp, event_id, event_type) of every counted event.
    pub journey: Vec<(Micros, Text, Arc<str>)>,
    /// Variant key of the first event in journey order, with its order key.
    pub first: Option<(Micros, Text, Option<Arc<str>>)>,
    /// Σ value.
    pub value_sum: f64,
    /// Distinct non-null session ids.
    pub sessions: BTreeSet<Text>,
    /// Any exposure.
    pub exposed: bool,
    /// Any conversion.
    pub converted: bool,
    /// Every (variant key, event type) group the counted events fell in,
    /// with a bit per hour of the day they fell in it (bit `h`: hour `h`):
    /// whether the user is new to a group's daily or hourly window. (The
    /// user's day outlives the hourly and daily windows of its events, and
    /// an event is counted only while its windows are open.)
    pub groups: Vec<(Option<Sym>, Sym, u32)>,
}

impl Rollup {
    /// Records an event of group (`variant_key`, `event_type`) in hour
    /// `hour` of the day; returns whether the user is new to the group's
    /// day and to its hour.
    fn see(&mut self, variant_key: &Option<Sym>, event_type: &Sym, hour: u32) -> (bool, bool) {
        let bit = 1u32 << hour;
        match self
            .groups
            .iter_mut()
            .find(|g| g.1 == *event_type && g.0 == *variant_key)
        {
            Some(g) => {
                let new_in_hour = g.2 & bit == 0;
                g.2 |= bit;
                (false, new_in_hour)
            }
            None => {
                self.groups
                    .push((variant_key.clone(), event_type.clone(), bit));
                (true, true)
            }
        }
    }
}

/// The window stores of one task.
pub struct WindowStores {
    hourly: WindowStore<GroupKey, AggState>,
    daily: WindowStore<GroupKey, AggState>,
    user_daily: WindowStore<UserDayKey, Rollup>,
    trees: Vec<StoreTree>,
    strings: Interner,
}

/// The window stores.
pub const STORES: [&str; 3] = ["agg-hourly", "agg-daily", "user-daily"];

impl WindowStores {
    /// Loads (or creates) the window stores of namespace `ns`.
    pub fn load(db: &StateDb, ns: &str) -> Result<Self, StateError> {
        let trees: Vec<StoreTree> = STORES
            .iter()
            .map(|s| db.tree(ns, s))
            .collect::<Result<_, _>>()?;
        Ok(WindowStores {
            hourly: WindowStore::load(STORES[0], &trees[0])?,
            daily: WindowStore::load(STORES[1], &trees[1])?,
            user_daily: WindowStore::load(STORES[2], &trees[2])?,
            trees,
            strings: Interner::default(),
        })
    }

    /// The stores with their trees, for a commit.
    pub fn stores_mut(&mut self) -> Vec<(&StoreTree, &mut dyn Store)> {
        let t = &self.trees;
        vec![
            (&t[0], &mut self.hourly as &mut dyn Store),
            (&t[1], &mut self.daily),
            (&t[2], &mut self.user_daily),
        ]
    }

    /// Counts a valid, non-late event in its hourly and daily windows and its user's day.
    pub fn add(&mut self, row: &EventRow) -> Result<(), StateError> {
        let ev = &row.event;
        let (Some(variant_id), true) = (row.variant_id, row.is_valid) else {
            return Ok(());
        };
        let event_type = self.strings.get(&ev.event_type);
        let variant_key = row.variant_key.as_deref().map(|k| self.strings.get(k));
        let day = WindowKind::Daily.start_of(ev.timestamp);
        let hour =
            (WindowKind::Hourly.start_of(ev.timestamp) - day) / WindowKind::Hourly.len_micros();
        let r = self.user_daily.upsert_with(
            day,
            (ev.experiment_id, variant_id, Id::from(ev.user_id.clone())),
            Rollup::default,
        )?;
        let (new_in_day, new_in_hour) = r.see(&variant_key, &event_type, hour as u32);
        r.events += 1;
        let event_id = Text::from(&ev.event_id);
        let earlier = match &r.first {
            None => true,
            Some((ts, id, _)) => (ev.timestamp, &event_id) < (*ts, id),
        };
        if earlier {
            r.first = Some((
                ev.timestamp,
                event_id.clone(),
                variant_key.as_ref().map(|k| k.0.clone()),
            ));
        }
        r.journey
            .push((ev.timestamp, event_id, event_type.0.clone()));
        if let Some(v) = ev.value {
            r.value_sum += v;
        }
        if let Some(s) = &ev.session_id {
            if !r.sessions.contains(s) {
                r.sessions.insert(s.clone());
            }
        }
        r.exposed |= ev.event_type == "exposure";
        r.converted |= ev.event_type == "conversion";
        let group: GroupKey = (ev.experiment_id, variant_id, variant_key, event_type);
        for (kind, new_user) in [
            (WindowKind::Hourly, new_in_hour),
            (WindowKind::Daily, new_in_day),
        ] {
            let aggs = match kind {
                WindowKind::Hourly => &mut self.hourly,
                WindowKind::Daily => &mut self.daily,
            };
            let agg = aggs.upsert_with(
                kind.start_of(ev.timestamp),
                group.clone(),
                AggState::default,
            )?;
            agg.events += 1;
            if new_user {
                agg.users += 1;
            }
            if let Some(v) = ev.value {
                agg.value_count += 1;
                agg.value_sum += v;
                agg.value_sum_sq += v * v;
            }
        }
        Ok(())
    }

    /// Closes every window with `end + grace <= now` (all windows when `now` is
    /// `None`), appending final rows in (window, key) order.
    pub fn close(
        &mut self,
        now: Option<Micros>,
        grace: Micros,
        partition: i32,
        aggs: &mut Vec<AggRow>,
        user_daily: &mut Vec<UserDailyRow>,
    ) -> Result<(), StateError> {
        for kind in [WindowKind::Hourly, WindowKind::Daily] {
            let before = now.map_or(i64::MAX, |t| {
                t.saturating_sub(kind.len_micros() + grace) + 1
            });
            let store = match kind {
                WindowKind::Hourly => &mut self.hourly,
                WindowKind::Daily => &mut self.daily,
            };
            while let Some((start, groups)) = store.pop_before(before)? {
                for ((experiment_id, variant_id, variant_key, event_type), a) in groups {
                    aggs.push(AggRow {
                        kind,
                        window_start: start,
                        window_end: start + kind.len_micros(),
                        experiment_id,
                        variant_id,
                        variant_key: variant_key.map(|k| k.as_str().to_owned()),
                        event_type: event_type.as_str().to_owned(),
                        events: a.events,
                        users: a.users,
                        value_count: a.value_count,
                        value_sum: a.value_sum,
                        value_sum_sq: a.value_sum_sq,
                        partition,
                    });
                }
            }
        }
        let before = now.map_or(i64::MAX, |t| {
            t.saturating_sub(WindowKind::Daily.len_micros() + grace) + 1
        });
        while let Some((day, rollups)) = self.user_daily.pop_before(before)? {
            for ((experiment_id, variant_id, user_id), mut r) in rollups {
                r.journey.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
                let first_ts = r.journey.first().map_or(day, |j| j.0);
                let last_ts = r.journey.last().map_or(day, |j| j.0);
                user_daily.push(UserDailyRow {
                    date: day,
                    experiment_id,
                    variant_id,
                    user_id: user_id.as_str().into(),
                    variant_key: r.first.and_then(|f| f.2).map(|k| k.to_string()),
                    events: r.events,
                    journey: r.journey.into_iter().map(|j| j.2.to_string()).collect(),
                    value_sum: r.value_sum,
                    sessions: r.sessions.len() as u64,
                    exposed: r.exposed,
                    converted: r.converted,
                    first_ts,
                    last_ts,
                    partition,
                });
            }
        }
        Ok(())
    }

    /// Open windows (hourly + daily).
    pub fn open_windows(&self) -> usize {
        self.hourly.window_count() + self.daily.window_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollup_is_stored_as_with_string_event_ids() {
        let stored = Rollup {
            events: 2,
            journey: vec![
                (5, Text::from("evt_1"), Arc::from("exposure")),
                (
                    6,
                    Text::from("a-36-byte-uuid-0000-0000-000000000000"),
                    Arc::from("click"),
                ),
            ],
            first: Some((5, Text::from("evt_1"), Some(Arc::from("control")))),
            value_sum: 1.5,
            sessions: BTreeSet::from([Text::from("s1")]),
            exposed: true,
            converted: false,
            groups: vec![],
        };
        let as_before = (
            2u64,
            vec![
                (5i64, "evt_1".to_string(), "exposure".to_string()),
                (
                    6,
                    "a-36-byte-uuid-0000-0000-000000000000".to_string(),
                    "click".to_string(),
                ),
            ],
            Some((5i64, "evt_1".to_string(), Some("control".to_string()))),
            1.5f64,
            BTreeSet::from(["s1".to_string()]),
            true,
            false,
            Vec::<(Option<String>, String, u32)>::new(),
        );
        let bytes = neonblue_state::encode(&stored);
        assert_eq!(bytes, neonblue_state::encode(&as_before));
        assert_eq!(neonblue_state::decode::<Rollup>(&bytes).unwrap(), stored);
    }
}
