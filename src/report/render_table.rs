//! `--format table`: one block per experiment for the terminal.

use super::model::{ExperimentReport, MetricResult, Report, SrmReport};
use std::fmt::Write;

/// A number with 4 significant digits (plain notation), `—` when absent.
pub fn num(x: Option<f64>) -> String {
    match x {
        None => "—".into(),
        Some(0.0) => "0".into(),
        Some(v) => {
            let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
            format!("{v:.digits$}")
        }
    }
}

/// A ratio as a signed percentage, `—` when absent.
pub fn pct(x: Option<f64>) -> String {
    x.map_or("—".into(), |v| format!("{:+.2}%", v * 100.0))
}

/// An interval of ratios as `[low, high]` in percent.
pub fn pct_interval(low: Option<f64>, high: Option<f64>) -> String {
    match (low, high) {
        (Some(l), Some(h)) => format!("[{}, {}]", pct(Some(l)), pct(Some(h))),
        _ => "—".into(),
    }
}

/// A p-value: 4 decimals, or `<0.0001`.
pub fn p(x: Option<f64>) -> String {
    match x {
        None => "—".into(),
        Some(v) if v < 1e-4 => "<0.0001".into(),
        Some(v) => format!("{v:.4}"),
    }
}

/// `id key` of a variant.
pub fn variant_label(e: &ExperimentReport, id: u32) -> String {
    match e.variant_key(id) {
        Some(k) => format!("{id} {k}"),
        None => id.to_string(),
    }
}

/// The users per variant and SRM line.
pub fn srm_line(e: &ExperimentReport, srm: &SrmReport) -> String {
    let users: Vec<String> = srm
        .users
        .0
        .iter()
        .map(|(v, n)| format!("{} {n}", variant_label(e, *v)))
        .collect();
    format!(
        "users: {}   SRM χ² {:.3}, p {} {}",
        users.join(" | "),
        srm.chi2,
        p(Some(srm.p_value)),
        if srm.flagged {
            "MISMATCH (p < 0.001): check assignment before trusting any result"
        } else {
            "ok"
        }
    )
}

/// The whole report as text.
pub fn render(report: &Report) -> String {
    let s = &report.settings;
    let mut out = String::new();
    for e in &report.experiments {
        let _ = writeln!(
            out,
            "Experiment {}  {} .. {}  control {}",
            e.experiment_id,
            e.date_from,
            e.date_to,
            variant_label(e, e.control_variant_id)
        );
        let _ = writeln!(out, "  {}", srm_line(e, &e.srm));
        if e.multi_variant_users > 0 {
            let _ = writeln!(
                out,
                "  users with more than one variant, left out: {}",
                e.multi_variant_users
            );
        }
        let ci = format!("{:.0}% CI", (1.0 - s.alpha) * 100.0);
        let _ = writeln!(
            out,
            "\n  {:<18} {:<16} {:>10} {:>10} {:>9}  {:<22} {:<22} {:>10}  {:>7}",
            "metric",
            "variant",
            "control",
            "variant",
            "lift",
            ci,
            "sequential CI",
            format!("p ({})", s.correction.name()),
            "P(beat)"
        );
        for r in &e.results {
            let _ = writeln!(out, "  {}", row(e, r, s.alpha));
        }
        let warned: Vec<&MetricResult> = e.results.iter().filter(|r| r.warning.is_some()).collect();
        for r in warned {
            let _ = writeln!(
                out,
                "  ! {} {}: {}",
                r.metric,
                variant_label(e, r.variant_id),
                r.warning.as_deref().unwrap_or_default()
            );
        }
        let _ = writeln!(
            out,
            "  * significant: adjusted p < {} ({} correction over {} comparisons)\n",
            s.alpha,
            s.correction.name(),
            e.results.len()
        );
    }
    out
}

fn row(e: &ExperimentReport, r: &MetricResult, alpha: f64) -> String {
    let mark = if r.significant(alpha) { "*" } else { " " };
    format!(
        "{:<18} {:<16} {:>10} {:>10} {:>9}  {:<22} {:<22} {:>8} {}  {:>7}",
        r.metric,
        variant_label(e, r.variant_id),
        num(r.control.mean),
        num(r.variant.mean),
        pct(r.relative.estimate),
        pct_interval(r.relative.ci_low, r.relative.ci_high),
        pct_interval(r.sequential.ci_low, r.sequential.ci_high),
        p(r.p_value_adjusted),
        mark,
        r.chance_to_beat_control
            .map_or("—".into(), |c| format!("{:.1}%", c * 100.0)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_absent_ones_are_dashes() {
        assert_eq!(num(Some(0.101234)), "0.1012");
        assert_eq!(num(Some(1234.5678)), "1235");
        assert_eq!(num(Some(4.56789)), "4.568");
        assert_eq!(num(None), "—");
        assert_eq!(pct(Some(0.1934)), "+19.34%");
        assert_eq!(pct_interval(Some(-0.01), Some(0.2)), "[-1.00%, +20.00%]");
        assert_eq!(p(Some(0.00001)), "<0.0001");
    }
}
