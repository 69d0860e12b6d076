//! `--html FILE`: one self-contained page (inline CSS and SVG, nothing
//! loaded from the network) with the tables and, per experiment, the
//! cumulative relative lift by day with its fixed and sequential bands per
//! metric, and users per variant by day with the SRM p-value. Readable on a
//! phone (viewport meta, fluid SVG, scrolling tables) and in dark mode
//! (`prefers-color-scheme`).

use super::model::{DailyResults, ExperimentReport, MetricResult, Report};
use super::render_table::{num, p, pct, pct_interval, variant_label};
use super::svg::{decimals_for, esc, Chart};
use std::fmt::Write;

const CSS: &str = r#"
:root { color-scheme: light dark; --bg: #ffffff; --fg: #1b1f24; --muted: #646c76; --line: #d9dde3;
  --card: #f6f7f9; --accent: #2563eb; --seq: #7c3aed; --good: #15803d; --bad: #b91c1c;
  --c0: #2563eb; --c1: #ea580c; --c2: #16a34a; --c3: #9333ea; --c4: #0891b2; --c5: #be123c; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #0f1216; --fg: #e6e9ee; --muted: #9aa3ad; --line: #2c333b; --card: #171b21;
    --accent: #60a5fa; --seq: #a78bfa; --good: #4ade80; --bad: #f87171;
    --c0: #60a5fa; --c1: #fb923c; --c2: #4ade80; --c3: #c084fc; --c4: #22d3ee; --c5: #fb7185; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 16px; }
h1 { font-size: 1.5rem; margin: 0.2em 0; } h2 { font-size: 1.25rem; margin: 1.2em 0 0.3em; }
h3 { font-size: 1.05rem; margin: 1.2em 0 0.4em; }
.meta, .note { color: var(--muted); font-size: 0.9rem; }
section.experiment { border-top: 1px solid var(--line); margin-top: 1.5em; }
.srm { padding: 8px 12px; border-radius: 8px; background: var(--card); border-left: 4px solid var(--good); }
.srm.flagged { border-left-color: var(--bad); }
.table-wrap { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; font-size: 0.9rem; }
th, td { padding: 6px 8px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th:first-child, td:first-child, table.results th:nth-child(2), table.results td:nth-child(2) { text-align: left; }
th { color: var(--muted); font-weight: 600; }
tr.significant td { font-weight: 600; }
td.up { color: var(--good); } td.down { color: var(--bad); }
.warning { color: var(--bad); font-size: 0.85rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 380px), 1fr)); gap: 12px; }
figure.chart { margin: 0; padding: 8px; background: var(--card); border-radius: 8px; }
figure.chart figcaption { font-size: 0.9rem; margin-bottom: 4px; }
.chart-svg { width: 100%; height: auto; display: block; }
.chart-svg .grid { stroke: var(--line); stroke-width: 1; }
.chart-svg .tick { fill: var(--muted); font-size: 13px; }
.chart-svg .zero { stroke: var(--muted); stroke-width: 1.5; stroke-dasharray: 4 3; }
.chart-svg .band-fixed { fill: var(--accent); fill-opacity: 0.28; }
.chart-svg .band-seq { fill: var(--seq); fill-opacity: 0.14; }
.chart-svg polyline { fill: none !important; stroke-width: 2.5; }
.chart-svg .est { stroke: var(--accent); fill: var(--accent); }
.chart-svg circle.dot { stroke: none; }
.chart-svg .s0 { stroke: var(--c0); fill: var(--c0); } .chart-svg .s1 { stroke: var(--c1); fill: var(--c1); }
.chart-svg .s2 { stroke: var(--c2); fill: var(--c2); } .chart-svg .s3 { stroke: var(--c3); fill: var(--c3); }
.chart-svg .s4 { stroke: var(--c4); fill: var(--c4); } .chart-svg .s5 { stroke: var(--c5); fill: var(--c5); }
.legend { font-size: 0.8rem; color: var(--muted); display: flex; flex-wrap: wrap; gap: 10px; margin-top: 4px; }
.key { display: inline-block; width: 12px; height: 12px; border-radius: 2px; vertical-align: -2px; margin-right: 4px; }
.key.fixed { background: var(--accent); opacity: 0.5; } .key.seq { background: var(--seq); opacity: 0.3; }
.key.k0 { background: var(--c0); } .key.k1 { background: var(--c1); } .key.k2 { background: var(--c2); }
.key.k3 { background: var(--c3); } .key.k4 { background: var(--c4); } .key.k5 { background: var(--c5); }
.flag { color: var(--bad); font-weight: 600; }
@media (max-width: 600px) { main { padding: 10px; } th, td { padding: 5px 6px; } }
"#;

/// The page.
pub fn render(report: &Report) -> String {
    let s = &report.settings;
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<meta name=\"color-scheme\" content=\"light dark\">\n");
    h.push_str("<title>neonblue experiment report</title>\n<style>");
    h.push_str(CSS);
    h.push_str("</style>\n</head>\n<body>\n<main>\n<h1>Experiment report</h1>\n");
    let _ = writeln!(
        h,
        "<p class=\"meta\">Users exposed in the range, per variant; lift = (variant − control) / |control|. \
         {:.0}% intervals (Welch t, delta method); sequential intervals stay valid however often you look \
         (tuning N* = {}); p-values adjusted with {} across each experiment's comparisons; \
         SRM flagged at p &lt; 0.001.</p>",
        (1.0 - s.alpha) * 100.0,
        s.sequential_tuning,
        s.correction.name()
    );
    for e in &report.experiments {
        experiment(&mut h, e, report);
    }
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

fn experiment(h: &mut String, e: &ExperimentReport, report: &Report) {
    let alpha = report.settings.alpha;
    let _ = writeln!(
        h,
        "<section class=\"experiment\" id=\"experiment-{id}\">\n<h2>Experiment {id}</h2>\n\
         <p class=\"meta\">{} to {} · control {}</p>",
        esc(&e.date_from),
        esc(&e.date_to),
        esc(&variant_label(e, e.control_variant_id)),
        id = e.experiment_id
    );
    let users: Vec<String> = e
        .srm
        .users
        .0
        .iter()
        .map(|(v, n)| format!("<b>{}</b> {n}", esc(&variant_label(e, *v))))
        .collect();
    let _ = writeln!(
        h,
        "<div class=\"srm{}\">Users: {} · SRM χ² {:.3}, p {}{}{}</div>",
        if e.srm.flagged { " flagged" } else { "" },
        users.join(" · "),
        e.srm.chi2,
        p(Some(e.srm.p_value)),
        if e.srm.flagged {
            " <span class=\"flag\">sample-ratio mismatch: check assignment before trusting any result</span>"
        } else {
            ""
        },
        if e.multi_variant_users > 0 {
            format!(
                " · {} users with more than one variant left out",
                e.multi_variant_users
            )
        } else {
            String::new()
        }
    );
    results_table(h, e, alpha, report.settings.correction.name());
    h.push_str("<h3>Cumulative relative lift by day</h3>\n<div class=\"charts\">\n");
    let dates: Vec<String> = e.daily.iter().map(|d| d.date.clone()).collect();
    for (k, r) in e.results.iter().enumerate() {
        lift_chart(h, e, &dates, (k, r), alpha);
    }
    h.push_str("</div>\n<h3>Users per variant by day</h3>\n<div class=\"charts\">\n");
    users_chart(h, e, &dates);
    h.push_str("</section>\n");
}

fn results_table(h: &mut String, e: &ExperimentReport, alpha: f64, correction: &str) {
    let _ = writeln!(
        h,
        "<div class=\"table-wrap\"><table class=\"results\"><thead><tr><th>metric</th><th>variant</th>\
         <th>control</th><th>variant</th><th>lift</th><th>{:.0}% CI</th><th>sequential CI</th>\
         <th>p ({})</th><th>P(beat)</th></tr></thead><tbody>",
        (1.0 - alpha) * 100.0,
        esc(correction)
    );
    for r in &e.results {
        let dir = match r.relative.estimate {
            Some(l) if r.significant(alpha) && l > 0.0 => " class=\"up\"",
            Some(l) if r.significant(alpha) && l < 0.0 => " class=\"down\"",
            _ => "",
        };
        let _ = writeln!(
            h,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{dir}>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>",
            if r.significant(alpha) { " class=\"significant\"" } else { "" },
            esc(&r.metric),
            esc(&variant_label(e, r.variant_id)),
            num(r.control.mean),
            num(r.variant.mean),
            pct(r.relative.estimate),
            pct_interval(r.relative.ci_low, r.relative.ci_high),
            pct_interval(r.sequential.ci_low, r.sequential.ci_high),
            p(r.p_value_adjusted),
            if r.significant(alpha) { " *" } else { "" },
            r.chance_to_beat_control
                .map_or("—".into(), |c| format!("{:.1}%", c * 100.0)),
        );
    }
    h.push_str("</tbody></table></div>\n");
    for r in e.results.iter().filter(|r| r.warning.is_some()) {
        let _ = writeln!(
            h,
            "<p class=\"warning\">{} {}: {}</p>",
            esc(&r.metric),
            esc(&variant_label(e, r.variant_id)),
            esc(r.warning.as_deref().unwrap_or_default())
        );
    }
    let _ = writeln!(
        h,
        "<p class=\"note\">* significant: adjusted p &lt; {alpha}. Users and means are per user over the range.</p>"
    );
}

/// A result's series over the days (same metric and variant).
fn series<'a>(daily: &'a [DailyResults], r: &MetricResult) -> Vec<Option<&'a MetricResult>> {
    daily
        .iter()
        .map(|d| {
            d.results
                .iter()
                .find(|x| x.metric == r.metric && x.variant_id == r.variant_id)
        })
        .collect()
}

fn lift_chart(
    h: &mut String,
    e: &ExperimentReport,
    dates: &[String],
    (k, r): (usize, &MetricResult),
    alpha: f64,
) {
    let pts = series(&e.daily, r);
    let get = |f: fn(&MetricResult) -> Option<f64>| -> Vec<Option<f64>> {
        pts.iter().map(|x| x.and_then(f)).collect()
    };
    let est = get(|x| x.relative.estimate);
    let (lo, hi) = (get(|x| x.relative.ci_low), get(|x| x.relative.ci_high));
    let (slo, shi) = (get(|x| x.sequential.ci_low), get(|x| x.sequential.ci_high));
    let fixed: Vec<f64> = est
        .iter()
        .chain(&lo)
        .chain(&hi)
        .flatten()
        .copied()
        .collect();
    let mut min = fixed.iter().copied().fold(0.0_f64, f64::min);
    let mut max = fixed.iter().copied().fold(0.0_f64, f64::max);
    let span = (max - min).max(1e-9);
    min = slo
        .iter()
        .flatten()
        .copied()
        .fold(min, f64::min)
        .max(min - span);
    max = shi
        .iter()
        .flatten()
        .copied()
        .fold(max, f64::max)
        .min(max + span);
    let mut c = Chart::new(&format!("lift-{}-{k}", e.experiment_id), dates, min, max);
    c.band(&slo, &shi, "band-seq");
    c.band(&lo, &hi, "band-fixed");
    c.rule(0.0, "zero");
    c.line(&est, "est", "relative lift");
    let label = format!(
        "{}: cumulative relative lift of {} against control by day",
        r.metric,
        variant_label(e, r.variant_id)
    );
    let svg = c.finish(&label, |v, step| {
        let d = decimals_for(step * 100.0);
        format!("{:+.d$}%", v * 100.0)
    });
    let _ = writeln!(
        h,
        "<figure class=\"chart lift\" data-metric=\"{}\" data-variant=\"{}\"><figcaption><b>{}</b> · {} vs control · now {} {}</figcaption>{svg}\
         <div class=\"legend\"><span><i class=\"key fixed\"></i>fixed {:.0}% CI</span><span><i class=\"key seq\"></i>sequential CI</span></div></figure>",
        esc(&r.metric),
        r.variant_id,
        esc(&r.metric),
        esc(&variant_label(e, r.variant_id)),
        pct(r.relative.estimate),
        pct_interval(r.relative.ci_low, r.relative.ci_high),
        100.0 * (1.0 - alpha),
    );
}

fn users_chart(h: &mut String, e: &ExperimentReport, dates: &[String]) {
    let per_variant: Vec<(u32, Vec<Option<f64>>)> = e
        .variants
        .iter()
        .map(|(v, _)| {
            let ys = e
                .daily
                .iter()
                .map(|d| {
                    d.srm
                        .users
                        .0
                        .iter()
                        .find(|(id, _)| id == v)
                        .map(|(_, n)| *n as f64)
                })
                .collect();
            (*v, ys)
        })
        .collect();
    let max = per_variant
        .iter()
        .flat_map(|(_, ys)| ys.iter().flatten())
        .copied()
        .fold(0.0, f64::max);
    let mut c = Chart::new(&format!("users-{}", e.experiment_id), dates, 0.0, max);
    for (i, (v, ys)) in per_variant.iter().enumerate() {
        c.line(ys, &format!("s{}", i % 6), &variant_label(e, *v));
    }
    let svg = c.finish(
        &format!("users per variant by day, experiment {}", e.experiment_id),
        |v, step| format!("{v:.*}", decimals_for(step)),
    );
    let legend: Vec<String> = per_variant
        .iter()
        .enumerate()
        .map(|(i, (v, _))| {
            format!(
                "<span><i class=\"key k{}\"></i>{}</span>",
                i % 6,
                esc(&variant_label(e, *v))
            )
        })
        .collect();
    let _ = writeln!(
        h,
        "<figure class=\"chart users\"><figcaption>Exposed users per variant, cumulative · SRM p now {}</figcaption>{svg}<div class=\"legend\">{}</div></figure>",
        p(Some(e.srm.p_value)),
        legend.join("")
    );
    h.push_str("</div>\n");
    let mut head = String::from("<th>date</th>");
    for (v, _) in &e.variants {
        let _ = write!(head, "<th>{}</th>", esc(&variant_label(e, *v)));
    }
    let _ = writeln!(
        h,
        "<div class=\"table-wrap\"><table class=\"srm-daily\"><thead><tr>{head}<th>SRM χ²</th><th>SRM p</th></tr></thead><tbody>"
    );
    for d in &e.daily {
        let mut row = format!("<td>{}</td>", esc(&d.date));
        for (_, n) in &d.srm.users.0 {
            let _ = write!(row, "<td>{n}</td>");
        }
        let _ = writeln!(
            h,
            "<tr>{row}<td>{:.3}</td><td{}>{}</td></tr>",
            d.srm.chi2,
            if d.srm.flagged { " class=\"flag\"" } else { "" },
            p(Some(d.srm.p_value))
        );
    }
    h.push_str("</tbody></table></div>\n");
}
