//! The statistics of SPEC 10.2 as pure functions over per-arm summaries
//! `(n, mean, variance)`: Welch–Satterthwaite df, absolute and relative
//! (delta method) intervals, the asymptotic confidence sequence, chance to
//! beat control, Holm / Benjamini–Hochberg adjustments and the SRM χ² test.
//!
//! Distributions come from `statrs`. No function returns NaN or infinity:
//! degenerate inputs give `None` (and a [`Degenerate`] reason).

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};

/// One arm of a comparison: users, mean and variance of a metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arm {
    /// Users.
    pub n: u64,
    /// Mean per user.
    pub mean: f64,
    /// Variance per user: m(1−m) for a proportion, else the sample variance.
    pub var: f64,
}

impl Arm {
    /// An arm from Σx and Σx² over `n` users: sample variance (denominator
    /// n−1), or m(1−m) for a proportion. `None` when `n` is 0.
    pub fn from_sums(n: u64, sum: f64, sum_sq: f64, proportion: bool) -> Option<Arm> {
        if n == 0 {
            return None;
        }
        let nf = n as f64;
        let mean = sum / nf;
        let var = if proportion {
            mean * (1.0 - mean)
        } else if n < 2 {
            0.0
        } else {
            (sum_sq - sum * sum / nf) / (nf - 1.0)
        };
        // Rounding can leave a tiny negative variance for constant data.
        Some(Arm {
            n,
            mean,
            var: var.max(0.0),
        })
    }

    /// Standard deviation √v.
    pub fn sd(&self) -> f64 {
        self.var.sqrt()
    }
}

/// Why a comparison has no (or only a partial) estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Degenerate {
    /// An arm has fewer than 2 users.
    TooFewUsers,
    /// Both arms have zero variance (the standard error is 0).
    ZeroVariance,
    /// The control mean is 0: the relative lift is undefined (the absolute
    /// difference is still given).
    ZeroControlMean,
}

impl Degenerate {
    /// The `warning` text of the output.
    pub fn message(self) -> &'static str {
        match self {
            Degenerate::TooFewUsers => "an arm has fewer than 2 users: no estimate",
            Degenerate::ZeroVariance => "zero variance in both arms: no estimate",
            Degenerate::ZeroControlMean => {
                "control mean is 0: relative lift, sequential interval and chance to beat control undefined"
            }
        }
    }
}

/// An estimate with its standard error, two-sided CI and p-value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Point estimate.
    pub estimate: f64,
    /// Standard error.
    pub se: f64,
    /// Lower bound of the 1−α interval.
    pub ci_low: f64,
    /// Upper bound of the 1−α interval.
    pub ci_high: f64,
    /// Two-sided p-value against 0.
    pub p_value: f64,
}

/// An always-valid interval and p-value (confidence sequence).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sequential {
    /// Lower bound.
    pub ci_low: f64,
    /// Upper bound.
    pub ci_high: f64,
    /// Always-valid p-value.
    pub p_value: f64,
}

/// Every statistic of one variant against control, for one metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// Welch–Satterthwaite degrees of freedom.
    pub df: Option<f64>,
    /// m_b − m_a.
    pub absolute: Option<Estimate>,
    /// (m_b − m_a) / |m_a|, delta method.
    pub relative: Option<Estimate>,
    /// Confidence sequence on the relative lift.
    pub sequential: Option<Sequential>,
    /// Φ(L / se_L).
    pub chance_to_beat_control: Option<f64>,
    /// Set when some estimate is missing.
    pub degenerate: Option<Degenerate>,
}

impl Comparison {
    fn none(why: Degenerate) -> Comparison {
        Comparison {
            df: None,
            absolute: None,
            relative: None,
            sequential: None,
            chance_to_beat_control: None,
            degenerate: Some(why),
        }
    }
}

/// Welch–Satterthwaite degrees of freedom (`None` when undefined).
pub fn welch_df(a: &Arm, b: &Arm) -> Option<f64> {
    if a.n < 2 || b.n < 2 {
        return None;
    }
    let (qa, qb) = (a.var / a.n as f64, b.var / b.n as f64);
    let den = qa * qa / (a.n as f64 - 1.0) + qb * qb / (b.n as f64 - 1.0);
    finite((qa + qb) * (qa + qb) / den).filter(|df| *df > 0.0)
}

/// `Some(x)` when `x` is finite.
pub fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// A t-based two-sided interval and p-value for `estimate` with `se` > 0.
fn t_estimate(estimate: f64, se: f64, t: &StudentsT, alpha: f64) -> Option<Estimate> {
    let q = t.inverse_cdf(1.0 - alpha / 2.0);
    let p = 2.0 * t.sf((estimate / se).abs());
    Some(Estimate {
        estimate: finite(estimate)?,
        se: finite(se)?,
        ci_low: finite(estimate - q * se)?,
        ci_high: finite(estimate + q * se)?,
        p_value: finite(p.clamp(0.0, 1.0))?,
    })
}

/// Compares variant `b` with control `a` (SPEC 10.2) at level `alpha`, with
/// the sequential tuning N* `tuning`.
pub fn compare(a: &Arm, b: &Arm, alpha: f64, tuning: f64) -> Comparison {
    if a.n < 2 || b.n < 2 {
        return Comparison::none(Degenerate::TooFewUsers);
    }
    let se = (a.var / a.n as f64 + b.var / b.n as f64).sqrt();
    let Some(df) = welch_df(a, b).filter(|_| se > 0.0) else {
        return Comparison::none(Degenerate::ZeroVariance);
    };
    let Ok(t) = StudentsT::new(0.0, 1.0, df) else {
        return Comparison::none(Degenerate::ZeroVariance);
    };
    let absolute = t_estimate(b.mean - a.mean, se, &t, alpha);
    let mut out = Comparison {
        df: Some(df),
        absolute,
        relative: None,
        sequential: None,
        chance_to_beat_control: None,
        degenerate: None,
    };
    if a.mean == 0.0 {
        out.degenerate = Some(Degenerate::ZeroControlMean);
        return out;
    }
    let (ma, mb) = (a.mean, b.mean);
    let lift = (mb - ma) / ma.abs();
    let se_l =
        (b.var / (b.n as f64 * ma * ma) + a.var * mb * mb / (a.n as f64 * ma.powi(4))).sqrt();
    if se_l.is_finite() && se_l > 0.0 {
        out.relative = t_estimate(lift, se_l, &t, alpha);
        out.sequential = sequential(lift, se_l, a.n + b.n, alpha, tuning);
        out.chance_to_beat_control = finite(standard_normal().cdf(lift / se_l));
    }
    if out.relative.is_none() {
        // se_L is 0 when the variant has zero variance and mean 0.
        out.degenerate = Some(Degenerate::ZeroVariance);
    }
    out
}

fn standard_normal() -> Normal {
    Normal::new(0.0, 1.0).expect("the standard normal exists")
}

/// The asymptotic confidence sequence on a lift `l` with standard error
/// `se_l` after `n` users in both arms (SPEC 10.2; GrowthBook's sequential
/// engine): ρ from α and the tuning N*, half-width
/// se_L·√N·√(2(Nρ²+1)/(N²ρ²)·ln(√(Nρ²+1)/α)).
pub fn sequential(l: f64, se_l: f64, n: u64, alpha: f64, tuning: f64) -> Option<Sequential> {
    // `!(x > 0.0)` also rejects NaN.
    if n == 0 || se_l.is_nan() || se_l <= 0.0 || tuning.is_nan() || tuning <= 0.0 {
        return None;
    }
    let nf = n as f64;
    let rho2 = (-2.0 * alpha.ln() + (1.0 - 2.0 * alpha.ln()).ln()) / tuning;
    let nr = nf * rho2 + 1.0;
    let half = se_l * nf.sqrt() * (2.0 * nr / (nf * nf * rho2) * (nr.sqrt() / alpha).ln()).sqrt();
    let z = l / se_l;
    let p = (nr.sqrt() * (-z * z * nf * rho2 / (2.0 * nr)).exp()).min(1.0);
    Some(Sequential {
        ci_low: finite(l - half)?,
        ci_high: finite(l + half)?,
        p_value: finite(p)?,
    })
}

/// A multiple-comparison correction across one experiment's comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Correction {
    /// Holm–Bonferroni step-down (controls the family-wise error rate).
    #[default]
    Holm,
    /// Benjamini–Hochberg step-up (controls the false discovery rate).
    Bh,
    /// No adjustment.
    None,
}

impl Correction {
    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Correction::Holm => "holm",
            Correction::Bh => "bh",
            Correction::None => "none",
        }
    }
}

/// Adjusts p-values; missing ones stay missing and are not counted in the family.
pub fn adjust(p: &[Option<f64>], method: Correction) -> Vec<Option<f64>> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&i| p[i].is_some()).collect();
    idx.sort_by(|&i, &j| p[i].unwrap().total_cmp(&p[j].unwrap()));
    let m = idx.len() as f64;
    let mut out = vec![None; p.len()];
    match method {
        Correction::None => return p.to_vec(),
        Correction::Holm => {
            let mut running: f64 = 0.0;
            for (rank, &i) in idx.iter().enumerate() {
                let adj = ((m - rank as f64) * p[i].unwrap()).min(1.0);
                running = running.max(adj);
                out[i] = Some(running);
            }
        }
        Correction::Bh => {
            let mut running: f64 = 1.0;
            for (rank, &i) in idx.iter().enumerate().rev() {
                let adj = (m / (rank as f64 + 1.0) * p[i].unwrap()).min(1.0);
                running = running.min(adj);
                out[i] = Some(running);
            }
        }
    }
    out
}

/// The sample-ratio-mismatch test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Srm {
    /// Σ (O−E)²/E over the variants with a positive weight.
    pub chi2: f64,
    /// χ² survival function at `chi2` with (such variants − 1) df.
    pub p_value: f64,
    /// p < [`SRM_THRESHOLD`].
    pub flagged: bool,
}

/// p-value below which a sample-ratio mismatch is flagged.
pub const SRM_THRESHOLD: f64 = 0.001;

/// χ² goodness of fit of `observed` users per variant against `weights`
/// (same order). Fewer than two positive weights or no users: χ² 0, p 1.
pub fn srm(observed: &[u64], weights: &[f64]) -> Srm {
    let pairs: Vec<(f64, f64)> = observed
        .iter()
        .zip(weights)
        .filter(|(_, w)| **w > 0.0)
        .map(|(o, w)| (*o as f64, *w))
        .collect();
    let total: f64 = pairs.iter().map(|(o, _)| o).sum();
    let wsum: f64 = pairs.iter().map(|(_, w)| w).sum();
    let none = Srm {
        chi2: 0.0,
        p_value: 1.0,
        flagged: false,
    };
    if pairs.len() < 2 || total == 0.0 {
        return none;
    }
    let chi2: f64 = pairs
        .iter()
        .map(|(o, w)| {
            let e = w / wsum * total;
            (o - e) * (o - e) / e
        })
        .sum();
    let Ok(dist) = ChiSquared::new((pairs.len() - 1) as f64) else {
        return none;
    };
    let p = dist.sf(chi2).clamp(0.0, 1.0);
    match (finite(chi2), finite(p)) {
        (Some(chi2), Some(p_value)) => Srm {
            chi2,
            p_value,
            flagged: p_value < SRM_THRESHOLD,
        },
        _ => none,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round5(x: f64) -> f64 {
        (x * 1e5).round() / 1e5
    }

    /// GrowthBook's published frequentist example (gbstats' unit test
    /// `TestTwoSidedTTest.test_two_sided_ttest`): a mean metric given as sums.
    /// The published figures are reproduced to 5 decimals with the sample
    /// variance (denominator n−1) and the Welch df, the conventions of SPEC
    /// 10.2; with the n denominator they would miss in the 4th decimal
    /// (relative CI −0.03515 instead of −0.03526).
    fn growthbook_arms() -> (Arm, Arm) {
        let a = Arm::from_sums(3407, 1396.87, 52377.9767, false).unwrap();
        let b = Arm::from_sums(3461, 2422.7, 134698.29, false).unwrap();
        (a, b)
    }

    #[test]
    fn growthbook_relative_lift() {
        let (a, b) = growthbook_arms();
        let r = compare(&a, &b, 0.05, 5000.0).relative.unwrap();
        assert_eq!(round5(r.estimate), 0.70732);
        assert_eq!((round5(r.ci_low), round5(r.ci_high)), (-0.03526, 1.44989));
        assert_eq!(round5(r.p_value), 0.06191);
    }

    #[test]
    fn growthbook_absolute_difference() {
        let (a, b) = growthbook_arms();
        let r = compare(&a, &b, 0.05, 5000.0).absolute.unwrap();
        assert_eq!(round5(r.estimate), 0.29);
        assert_eq!((round5(r.ci_low), round5(r.ci_high)), (0.04538, 0.53462));
        assert_eq!(round5(r.p_value), 0.02016);
    }

    #[test]
    fn means_and_sample_variances_come_from_the_sums() {
        let (a, b) = growthbook_arms();
        assert!((a.mean - 0.41).abs() < 1e-12 && (a.var - 15.21).abs() < 1e-9);
        assert!((b.mean - 0.7).abs() < 1e-12 && (b.var - 38.44).abs() < 1e-9);
    }

    #[test]
    fn welch_df_matches_the_formula() {
        // scipy: ttest_ind_from_stats(0.41, sqrt(15.21), 3407, 0.7, sqrt(38.44), 3461, equal_var=False).df
        let (a, b) = growthbook_arms();
        assert!((welch_df(&a, &b).unwrap() - 5841.742032093565).abs() < 1e-6);
    }

    #[test]
    fn proportion_variance_is_m_one_minus_m() {
        let a = Arm::from_sums(1000, 100.0, 100.0, true).unwrap();
        assert!((a.var - 0.09).abs() < 1e-15);
    }

    #[test]
    fn sequential_interval_is_wider_than_the_fixed_one() {
        let (a, b) = growthbook_arms();
        let c = compare(&a, &b, 0.05, 5000.0);
        let (r, s) = (c.relative.unwrap(), c.sequential.unwrap());
        assert!(s.ci_low < r.ci_low && s.ci_high > r.ci_high);
        assert!(s.p_value >= r.p_value && s.p_value <= 1.0);
        assert!((s.ci_low + s.ci_high) / 2.0 - r.estimate < 1e-12);
    }

    #[test]
    fn sequential_matches_the_spec_formula() {
        // Computed by hand from SPEC 10.2 for L = 0.1, se_L = 0.05, N = 10000, α = 0.05, N* = 5000.
        let s = sequential(0.1, 0.05, 10_000, 0.05, 5000.0).unwrap();
        let rho2 = (-2.0 * 0.05f64.ln() + (1.0 - 2.0 * 0.05f64.ln()).ln()) / 5000.0;
        let nr = 10_000.0 * rho2 + 1.0;
        let half = 0.05 * 100.0 * (2.0 * nr / (1e8 * rho2) * (nr.sqrt() / 0.05).ln()).sqrt();
        assert!((s.ci_high - 0.1 - half).abs() < 1e-15);
        let p = nr.sqrt() * (-(4.0) * 10_000.0 * rho2 / (2.0 * nr)).exp();
        assert!((s.p_value - p.min(1.0)).abs() < 1e-15);
    }

    #[test]
    fn chance_to_beat_control_is_the_normal_cdf_of_z() {
        let (a, b) = growthbook_arms();
        let c = compare(&a, &b, 0.05, 5000.0);
        let r = c.relative.unwrap();
        let want = standard_normal().cdf(r.estimate / r.se);
        assert_eq!(c.chance_to_beat_control, Some(want));
        assert!(want > 0.9 && want < 1.0);
    }

    #[test]
    fn holm_matches_statsmodels() {
        // statsmodels.stats.multitest.multipletests([0.01, 0.04, 0.03, 0.005], method="holm")
        let p = [Some(0.01), Some(0.04), Some(0.03), Some(0.005)];
        let adj: Vec<f64> = adjust(&p, Correction::Holm)
            .into_iter()
            .map(Option::unwrap)
            .collect();
        let want = [0.03, 0.06, 0.06, 0.02];
        for (x, w) in adj.iter().zip(want) {
            assert!((x - w).abs() < 1e-12, "{adj:?}");
        }
    }

    #[test]
    fn bh_matches_statsmodels() {
        // multipletests([0.01, 0.04, 0.03, 0.005], method="fdr_bh")
        let p = [Some(0.01), Some(0.04), Some(0.03), Some(0.005)];
        let adj: Vec<f64> = adjust(&p, Correction::Bh)
            .into_iter()
            .map(Option::unwrap)
            .collect();
        let want = [0.02, 0.04, 0.04, 0.02];
        for (x, w) in adj.iter().zip(want) {
            assert!((x - w).abs() < 1e-12, "{adj:?}");
        }
    }

    #[test]
    fn missing_p_values_are_outside_the_family() {
        let p = [Some(0.02), None, Some(0.04)];
        assert_eq!(
            adjust(&p, Correction::Holm),
            vec![Some(0.04), None, Some(0.04)]
        );
        assert_eq!(adjust(&p, Correction::None), p.to_vec());
    }

    #[test]
    fn srm_matches_scipy_chisquare() {
        // scipy.stats.chisquare([5100, 4900], [5000, 5000]) -> (4.0, 0.04550026389635842)
        let s = srm(&[5100, 4900], &[1.0, 1.0]);
        assert!((s.chi2 - 4.0).abs() < 1e-12);
        assert!((s.p_value - 0.04550026389635842).abs() < 1e-12);
        assert!(!s.flagged);
        // chisquare([600, 400], [500, 500]): chi2 40, p 2.5e-10
        assert!(srm(&[600, 400], &[1.0, 1.0]).flagged);
    }

    #[test]
    fn srm_uses_the_weights_and_skips_zero_weights() {
        // chisquare([2000, 1000], [2000, 1000]) -> 0, 1
        let s = srm(&[2000, 1000, 7], &[2.0, 1.0, 0.0]);
        assert!(s.chi2.abs() < 1e-12 && (s.p_value - 1.0).abs() < 1e-12);
    }

    #[test]
    fn srm_without_two_variants_or_users_is_p_one() {
        assert_eq!(srm(&[10], &[1.0]).p_value, 1.0);
        assert_eq!(srm(&[0, 0], &[1.0, 1.0]).p_value, 1.0);
        assert_eq!(srm(&[10, 3], &[1.0, 0.0]).p_value, 1.0);
    }

    #[test]
    fn an_arm_with_fewer_than_two_users_gives_no_estimate() {
        let a = Arm::from_sums(1, 1.0, 1.0, false).unwrap();
        let (_, b) = growthbook_arms();
        let c = compare(&a, &b, 0.05, 5000.0);
        assert_eq!(c.degenerate, Some(Degenerate::TooFewUsers));
        assert!(c.absolute.is_none() && c.relative.is_none() && c.df.is_none());
    }

    #[test]
    fn zero_variance_in_both_arms_gives_no_estimate() {
        let a = Arm::from_sums(100, 100.0, 100.0, false).unwrap();
        let b = Arm::from_sums(100, 200.0, 400.0, false).unwrap();
        let c = compare(&a, &b, 0.05, 5000.0);
        assert_eq!(c.degenerate, Some(Degenerate::ZeroVariance));
        assert!(c.absolute.is_none() && c.sequential.is_none());
        // a proportion of 0 in both arms: m(1−m) = 0
        let z = Arm::from_sums(50, 0.0, 0.0, true).unwrap();
        assert_eq!(
            compare(&z, &z, 0.05, 5000.0).degenerate,
            Some(Degenerate::ZeroVariance)
        );
    }

    #[test]
    fn a_control_mean_of_zero_keeps_only_the_absolute_difference() {
        let a = Arm::from_sums(100, 0.0, 0.0, true).unwrap();
        let b = Arm::from_sums(100, 10.0, 10.0, true).unwrap();
        let c = compare(&a, &b, 0.05, 5000.0);
        assert_eq!(c.degenerate, Some(Degenerate::ZeroControlMean));
        assert!(c.absolute.is_some());
        assert!(c.relative.is_none() && c.sequential.is_none());
        assert!(c.chance_to_beat_control.is_none());
    }
}
