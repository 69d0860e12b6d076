//! The per-user metrics of SPEC 10.1 and the running sums an arm keeps of them.

use super::stats::Arm;

/// A per-user metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// 1 when any of the user's rows has `converted`, else 0 (a proportion).
    ConversionRate,
    /// Σ `value_sum`.
    ValuePerUser,
    /// Σ `events`.
    EventsPerUser,
    /// Σ `sessions`.
    SessionsPerUser,
}

impl Metric {
    /// Every metric, in output order.
    pub const ALL: [Metric; 4] = [
        Metric::ConversionRate,
        Metric::ValuePerUser,
        Metric::EventsPerUser,
        Metric::SessionsPerUser,
    ];

    /// Name in the output (`metric`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::ConversionRate => "conversion_rate",
            Metric::ValuePerUser => "value_per_user",
            Metric::EventsPerUser => "events_per_user",
            Metric::SessionsPerUser => "sessions_per_user",
        }
    }

    /// A proportion: variance m(1−m) instead of the sample variance.
    pub fn is_proportion(self) -> bool {
        self == Metric::ConversionRate
    }
}

/// n, Σx and Σx² of one metric over an arm's users.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MomentSums {
    /// Users.
    pub n: u64,
    /// Σx.
    pub sum: f64,
    /// Σx².
    pub sum_sq: f64,
}

impl MomentSums {
    /// Adds one user's value.
    #[inline]
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        self.sum_sq += x * x;
    }

    /// Takes one user's value out again (it changed).
    #[inline]
    pub fn remove(&mut self, x: f64) {
        self.n -= 1;
        self.sum -= x;
        self.sum_sq -= x * x;
    }

    /// Adds another set of users' sums.
    pub fn merge(&mut self, other: &MomentSums) {
        self.n += other.n;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
    }

    /// The arm's (n, mean, variance) for `metric`; `None` without users.
    pub fn arm(&self, metric: Metric) -> Option<Arm> {
        Arm::from_sums(self.n, self.sum, self.sum_sq, metric.is_proportion())
    }
}
