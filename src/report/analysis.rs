//! From populations to the report model: control choice, weights, every
//! (metric, variant) comparison with its correction, and the SRM check, for
//! the whole range and for each cumulative date.

use super::metric::Metric;
use super::model::{
    ArmSummary, ByVariant, DailyResults, EstimateReport, ExperimentReport, MetricResult, Report,
    SequentialReport, Settings, SrmReport,
};
use super::population::{DaySnapshot, ExperimentPopulation, Population, Scope};
use super::stats::{self, adjust, compare, finite, Estimate};
use super::ReportError;
use crate::time::format_date;

/// What the analysis is asked for beyond the population.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Choices {
    /// `--control`: the control variant id.
    pub control: Option<u32>,
    /// `--weights`, in variant-id order.
    pub weights: Option<Vec<f64>>,
}

/// Builds the report of every experiment of `pop`.
pub fn analyse(
    pop: &Population,
    scope: &Scope,
    choices: &Choices,
    settings: Settings,
) -> Result<Report, ReportError> {
    let experiments = pop
        .experiments
        .iter()
        .map(|(id, ep)| experiment(*id, ep, scope, choices, &settings))
        .collect::<Result<_, _>>()?;
    Ok(Report {
        experiments,
        settings,
    })
}

fn experiment(
    id: u32,
    ep: &ExperimentPopulation,
    scope: &Scope,
    choices: &Choices,
    settings: &Settings,
) -> Result<ExperimentReport, ReportError> {
    let variants: Vec<(u32, Option<String>)> =
        ep.variants.iter().map(|(v, k)| (*v, k.clone())).collect();
    let control = control_of(id, &variants, choices.control)?;
    let weights = weights_of(id, &variants, choices.weights.as_deref())?;
    let daily: Vec<DailyResults> = ep
        .days
        .iter()
        .map(|snap| DailyResults {
            date: format_date(snap.day),
            results: results(snap, &variants, control, settings),
            srm: srm_of(snap, &variants, &weights),
        })
        .collect();
    let total = ep.total();
    let last = daily.last().expect("an experiment has at least one date");
    Ok(ExperimentReport {
        experiment_id: id,
        date_from: format_date(scope.from_day.unwrap_or(ep.days[0].day)),
        date_to: format_date(scope.to_day.unwrap_or(total.day)),
        control_variant_id: control,
        multi_variant_users: total.multi_variant_users,
        srm: last.srm.clone(),
        results: last.results.clone(),
        daily,
        variants,
    })
}

/// `--control`, else the variant keyed `control`, else the smallest id.
fn control_of(
    experiment: u32,
    variants: &[(u32, Option<String>)],
    chosen: Option<u32>,
) -> Result<u32, ReportError> {
    if let Some(c) = chosen {
        return if variants.iter().any(|(v, _)| *v == c) {
            Ok(c)
        } else {
            Err(ReportError::UnknownControl {
                experiment,
                control: c,
                variants: variants.iter().map(|(v, _)| *v).collect(),
            })
        };
    }
    Ok(variants
        .iter()
        .find(|(_, k)| k.as_deref() == Some("control"))
        .or(variants.first())
        .map(|(v, _)| *v)
        .expect("an experiment has at least one variant"))
}

fn weights_of(
    experiment: u32,
    variants: &[(u32, Option<String>)],
    chosen: Option<&[f64]>,
) -> Result<Vec<f64>, ReportError> {
    match chosen {
        None => Ok(vec![1.0; variants.len()]),
        Some(w) if w.len() == variants.len() => Ok(w.to_vec()),
        Some(w) => Err(ReportError::Weights {
            experiment,
            given: w.len(),
            variants: variants.iter().map(|(v, _)| *v).collect(),
        }),
    }
}

fn srm_of(snap: &DaySnapshot, variants: &[(u32, Option<String>)], weights: &[f64]) -> SrmReport {
    let users: Vec<u64> = variants
        .iter()
        .map(|(v, _)| snap.arms.get(v).map_or(0, |a| a.users()))
        .collect();
    let s = stats::srm(&users, weights);
    SrmReport {
        users: ByVariant(variants.iter().map(|(v, _)| *v).zip(users).collect()),
        weights: ByVariant(
            variants
                .iter()
                .map(|(v, _)| *v)
                .zip(weights.iter().copied())
                .collect(),
        ),
        chi2: s.chi2,
        p_value: s.p_value,
        flagged: s.flagged,
    }
}

/// Every (metric, variant ≠ control) of one snapshot, p-values adjusted together.
fn results(
    snap: &DaySnapshot,
    variants: &[(u32, Option<String>)],
    control: u32,
    settings: &Settings,
) -> Vec<MetricResult> {
    let mut out = Vec::new();
    for metric in Metric::ALL {
        let arm = |v: u32| snap.arms.get(&v).and_then(|a| a.of(metric).arm(metric));
        let a = arm(control);
        for (v, key) in variants.iter().filter(|(v, _)| *v != control) {
            let b = arm(*v);
            out.push(one(metric, *v, key.clone(), a, b, snap, control, settings));
        }
    }
    let adjusted = adjust(
        &out.iter().map(|r| r.relative.p_value).collect::<Vec<_>>(),
        settings.correction,
    );
    for (r, p) in out.iter_mut().zip(adjusted) {
        r.p_value_adjusted = p.and_then(finite);
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn one(
    metric: Metric,
    variant: u32,
    key: Option<String>,
    a: Option<stats::Arm>,
    b: Option<stats::Arm>,
    snap: &DaySnapshot,
    control: u32,
    settings: &Settings,
) -> MetricResult {
    let users = |v: u32| snap.arms.get(&v).map_or(0, |a| a.users());
    let summary = |n: u64, arm: Option<stats::Arm>| ArmSummary {
        n,
        mean: arm.and_then(|a| finite(a.mean)),
        sd: arm.and_then(|a| finite(a.sd())),
    };
    let mut r = MetricResult {
        metric: metric.name().to_string(),
        variant_id: variant,
        variant_key: key,
        control: summary(users(control), a),
        variant: summary(users(variant), b),
        absolute: EstimateReport::default(),
        relative: EstimateReport::default(),
        sequential: SequentialReport::default(),
        df: None,
        p_value_adjusted: None,
        chance_to_beat_control: None,
        warning: None,
    };
    let (Some(a), Some(b)) = (a, b) else {
        r.warning = Some(stats::Degenerate::TooFewUsers.message().to_string());
        return r;
    };
    let c = compare(&a, &b, settings.alpha, settings.sequential_tuning);
    r.df = c.df;
    r.absolute = estimate(c.absolute);
    r.relative = estimate(c.relative);
    if let Some(s) = c.sequential {
        r.sequential = SequentialReport {
            ci_low: Some(s.ci_low),
            ci_high: Some(s.ci_high),
            p_value: Some(s.p_value),
        };
    }
    r.chance_to_beat_control = c.chance_to_beat_control;
    r.warning = c.degenerate.map(|d| d.message().to_string());
    r
}

fn estimate(e: Option<Estimate>) -> EstimateReport {
    e.map(|e| EstimateReport {
        estimate: Some(e.estimate),
        se: Some(e.se),
        ci_low: Some(e.ci_low),
        ci_high: Some(e.ci_high),
        p_value: Some(e.p_value),
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::metric::MomentSums;
    use crate::report::population::ArmTotals;
    use std::collections::BTreeMap;

    /// An arm of `n` users whose metrics all take the values `xs` in turn.
    fn arm(n: u64, xs: &[f64]) -> ArmTotals {
        let mut m = MomentSums::default();
        for i in 0..n as usize {
            m.add(xs[i % xs.len()]);
        }
        ArmTotals { metrics: [m; 4] }
    }

    fn population(arms: [(u32, ArmTotals); 2]) -> Population {
        let variants = BTreeMap::from([(1, Some("control".into())), (2, Some("b".into()))]);
        let days = vec![DaySnapshot {
            day: 20_000,
            multi_variant_users: 0,
            arms: arms.into_iter().collect(),
        }];
        Population {
            experiments: BTreeMap::from([(7, ExperimentPopulation { variants, days })]),
            rows_read: 0,
        }
    }

    fn report(pop: &Population) -> Report {
        analyse(
            pop,
            &Scope::default(),
            &Choices::default(),
            Settings::default(),
        )
        .unwrap()
    }

    fn json(r: &Report) -> String {
        crate::report::render_json::render(r)
    }

    #[test]
    fn an_arm_with_one_user_gives_nulls_and_a_warning() {
        let r = report(&population([
            (1, arm(1, &[1.0])),
            (2, arm(50, &[0.0, 1.0])),
        ]));
        let x = &r.experiments[0].results[0];
        assert_eq!(x.relative.estimate, None);
        assert_eq!(x.p_value_adjusted, None);
        assert_eq!(
            x.warning.as_deref(),
            Some("an arm has fewer than 2 users: no estimate")
        );
        assert_eq!((x.control.n, x.variant.n), (1, 50));
        assert!(!json(&r).contains("NaN"));
    }

    #[test]
    fn constant_metrics_give_nulls_and_a_warning() {
        let r = report(&population([(1, arm(10, &[1.0])), (2, arm(10, &[1.0]))]));
        for x in &r.experiments[0].results {
            assert_eq!(x.absolute.estimate, None, "{}", x.metric);
            assert!(x.warning.as_deref().unwrap().contains("zero variance"));
        }
    }

    #[test]
    fn a_control_mean_of_zero_keeps_the_absolute_difference() {
        let r = report(&population([
            (1, arm(10, &[0.0])),
            (2, arm(10, &[0.0, 2.0])),
        ]));
        let x = &r.experiments[0].results[1]; // value_per_user
        assert_eq!(x.absolute.estimate, Some(1.0));
        assert_eq!(x.relative.estimate, None);
        assert_eq!(x.chance_to_beat_control, None);
        assert!(x.warning.as_deref().unwrap().contains("control mean is 0"));
    }

    #[test]
    fn a_variant_without_users_is_reported_with_n_zero() {
        let mut pop = population([(1, arm(100, &[0.0, 1.0])), (2, arm(100, &[0.0, 1.0]))]);
        let e = pop.experiments.get_mut(&7).unwrap();
        e.variants.insert(3, None);
        let r = report(&pop);
        let e = &r.experiments[0];
        let x = e.results.iter().find(|x| x.variant_id == 3).unwrap();
        assert_eq!((x.variant.n, x.variant.mean), (0, None));
        assert!(x.warning.is_some());
        assert_eq!(e.srm.users.0, vec![(1, 100), (2, 100), (3, 0)]);
        assert!(e.srm.flagged, "200 users expected in thirds: {:?}", e.srm);
    }

    #[test]
    fn control_defaults_to_the_variant_keyed_control_else_the_smallest_id() {
        let v = |k: &[(u32, Option<&str>)]| -> Vec<(u32, Option<String>)> {
            k.iter().map(|(i, s)| (*i, s.map(String::from))).collect()
        };
        assert_eq!(
            control_of(1, &v(&[(4, None), (9, Some("control"))]), None).unwrap(),
            9
        );
        assert_eq!(
            control_of(1, &v(&[(4, None), (9, Some("b"))]), None).unwrap(),
            4
        );
        assert!(control_of(1, &v(&[(4, None)]), Some(5)).is_err());
    }
}
