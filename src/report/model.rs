//! The report as data: serde structs whose JSON is exactly SPEC 10.3's
//! `--format json`. Fields marked `#[serde(skip)]` are for the table and the
//! HTML page only. Every `Option<f64>` is finite or `None` (null).

use super::stats::Correction;
use serde::ser::{Serialize, SerializeMap, Serializer};

/// Settings the numbers depend on (shown by the table and the page).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// α of the intervals and of "significant".
    pub alpha: f64,
    /// Adjustment of the relative p-values within an experiment.
    pub correction: Correction,
    /// N* of the confidence sequence.
    pub sequential_tuning: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            alpha: 0.05,
            correction: Correction::Holm,
            sequential_tuning: 5000.0,
        }
    }
}

/// `{"experiments": [...]}`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Report {
    /// One entry per experiment, by id.
    pub experiments: Vec<ExperimentReport>,
    /// The settings used.
    #[serde(skip)]
    pub settings: Settings,
}

/// One experiment.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ExperimentReport {
    /// Experiment id.
    pub experiment_id: u32,
    /// First date of the range (`--from`, else the first date with rows).
    pub date_from: String,
    /// Last date of the range (`--to`, else the last date with rows).
    pub date_to: String,
    /// The variant every other one is compared with.
    pub control_variant_id: u32,
    /// Users with rows of more than one variant (left out of everything).
    pub multi_variant_users: u64,
    /// Sample-ratio mismatch over the whole range.
    pub srm: SrmReport,
    /// Per metric and non-control variant, over the whole range.
    pub results: Vec<MetricResult>,
    /// The same, cumulative up to each date with rows.
    pub daily: Vec<DailyResults>,
    /// Every variant (id order) with its key.
    #[serde(skip)]
    pub variants: Vec<(u32, Option<String>)>,
}

impl ExperimentReport {
    /// The key of a variant, if it has one.
    pub fn variant_key(&self, id: u32) -> Option<&str> {
        self.variants
            .iter()
            .find(|(v, _)| *v == id)
            .and_then(|(_, k)| k.as_deref())
    }
}

/// A map keyed by variant id, serialized with the ids as strings, in id order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ByVariant<T>(pub Vec<(u32, T)>);

impl<T: Serialize> Serialize for ByVariant<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (id, v) in &self.0 {
            m.serialize_entry(&id.to_string(), v)?;
        }
        m.end()
    }
}

/// `srm`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SrmReport {
    /// Analysed users per variant.
    pub users: ByVariant<u64>,
    /// Expected shares (`--weights`, default equal).
    pub weights: ByVariant<f64>,
    /// χ² statistic.
    pub chi2: f64,
    /// p-value.
    pub p_value: f64,
    /// p < 0.001.
    pub flagged: bool,
}

/// One metric, one variant against control.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MetricResult {
    /// `conversion_rate`, `value_per_user`, `events_per_user`, `sessions_per_user`.
    pub metric: String,
    /// The variant.
    pub variant_id: u32,
    /// Its key.
    pub variant_key: Option<String>,
    /// Control arm.
    pub control: ArmSummary,
    /// Variant arm.
    pub variant: ArmSummary,
    /// m_b − m_a.
    pub absolute: EstimateReport,
    /// (m_b − m_a)/|m_a|.
    pub relative: EstimateReport,
    /// Always-valid interval on the relative lift.
    pub sequential: SequentialReport,
    /// Welch df.
    pub df: Option<f64>,
    /// The relative p-value after the correction.
    pub p_value_adjusted: Option<f64>,
    /// Φ(L/se_L).
    pub chance_to_beat_control: Option<f64>,
    /// Why some values are null.
    pub warning: Option<String>,
}

impl MetricResult {
    /// Significant at α after the correction.
    pub fn significant(&self, alpha: f64) -> bool {
        self.p_value_adjusted.is_some_and(|p| p < alpha)
    }
}

/// `control` / `variant`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ArmSummary {
    /// Users.
    pub n: u64,
    /// Mean per user.
    pub mean: Option<f64>,
    /// Standard deviation per user.
    pub sd: Option<f64>,
}

/// `absolute` / `relative`.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct EstimateReport {
    /// Point estimate.
    pub estimate: Option<f64>,
    /// Standard error.
    pub se: Option<f64>,
    /// Lower bound.
    pub ci_low: Option<f64>,
    /// Upper bound.
    pub ci_high: Option<f64>,
    /// Two-sided p-value.
    pub p_value: Option<f64>,
}

/// `sequential`.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct SequentialReport {
    /// Lower bound.
    pub ci_low: Option<f64>,
    /// Upper bound.
    pub ci_high: Option<f64>,
    /// Always-valid p-value.
    pub p_value: Option<f64>,
}

/// One date of the cumulative trajectory.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DailyResults {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// As `results`, over dates ≤ `date`.
    pub results: Vec<MetricResult>,
    /// Users per variant and SRM up to this date (page only).
    #[serde(skip)]
    pub srm: SrmReport,
}
