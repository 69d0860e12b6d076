//! Minimal inline-SVG line charts for the HTML page: a date axis, a value
//! axis, bands and lines. Colours come from CSS classes so the page's light
//! and dark themes apply.

use std::fmt::Write;

/// Chart geometry (SVG user units; the SVG scales to its container).
const W: f64 = 480.0;
const H: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A chart over one point per date.
pub struct Chart {
    dates: Vec<String>,
    lo: f64,
    hi: f64,
    body: String,
    id: String,
}

impl Chart {
    /// A chart over `dates` whose value axis spans at least `lo..hi`
    /// (widened a little, and to a non-empty range). `id` must be unique in the page.
    pub fn new(id: &str, dates: &[String], lo: f64, hi: f64) -> Chart {
        let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() && lo <= hi {
            (lo, hi)
        } else {
            (0.0, 1.0)
        };
        if hi - lo < 1e-12 {
            let pad = if lo.abs() > 1e-12 {
                lo.abs() * 0.1
            } else {
                1.0
            };
            lo -= pad;
            hi += pad;
        }
        let pad = (hi - lo) * 0.05;
        // Counts start at 0: no padding below it.
        let lo = if lo >= 0.0 {
            (lo - pad).max(0.0)
        } else {
            lo - pad
        };
        Chart {
            dates: dates.to_vec(),
            lo,
            hi: hi + pad,
            body: String::new(),
            id: id.to_string(),
        }
    }

    fn x(&self, i: usize) -> f64 {
        let n = self.dates.len();
        if n <= 1 {
            return LEFT + (W - LEFT - RIGHT) / 2.0;
        }
        LEFT + (W - LEFT - RIGHT) * i as f64 / (n - 1) as f64
    }

    fn y(&self, v: f64) -> f64 {
        let v = v.clamp(self.lo - (self.hi - self.lo), self.hi + (self.hi - self.lo));
        TOP + (H - TOP - BOTTOM) * (self.hi - v) / (self.hi - self.lo)
    }

    /// A filled band between `low` and `high` (runs where both exist).
    pub fn band(&mut self, low: &[Option<f64>], high: &[Option<f64>], class: &str) {
        for run in runs(low.len(), |i| low[i].is_some() && high[i].is_some()) {
            let mut pts: Vec<String> = run
                .clone()
                .map(|i| format!("{:.1},{:.1}", self.x(i), self.y(high[i].unwrap())))
                .collect();
            if run.len() == 1 {
                // a single date: a short vertical bar
                let i = run.start;
                let (x, yl, yh) = (self.x(i), self.y(low[i].unwrap()), self.y(high[i].unwrap()));
                let _ = write!(
                    self.body,
                    r#"<rect class="{class}" x="{:.1}" y="{yh:.1}" width="12" height="{:.1}"/>"#,
                    x - 6.0,
                    (yl - yh).max(1.0)
                );
                continue;
            }
            pts.extend(
                run.rev()
                    .map(|i| format!("{:.1},{:.1}", self.x(i), self.y(low[i].unwrap()))),
            );
            let _ = write!(
                self.body,
                r#"<polygon class="{class}" points="{}"/>"#,
                pts.join(" ")
            );
        }
    }

    /// A line through the points that exist, with a dot at each.
    pub fn line(&mut self, values: &[Option<f64>], class: &str, title: &str) {
        for run in runs(values.len(), |i| values[i].is_some()) {
            let pts: Vec<String> = run
                .clone()
                .map(|i| format!("{:.1},{:.1}", self.x(i), self.y(values[i].unwrap())))
                .collect();
            if pts.len() > 1 {
                let _ = write!(
                    self.body,
                    r#"<polyline class="{class}" points="{}"><title>{}</title></polyline>"#,
                    pts.join(" "),
                    esc(title)
                );
            }
            for i in run {
                let _ = write!(
                    self.body,
                    r#"<circle class="{class} dot" cx="{:.1}" cy="{:.1}" r="3"><title>{} {}: {}</title></circle>"#,
                    self.x(i),
                    self.y(values[i].unwrap()),
                    esc(title),
                    esc(&self.dates[i]),
                    values[i].unwrap()
                );
            }
        }
    }

    /// A horizontal reference line at `v` (e.g. zero lift).
    pub fn rule(&mut self, v: f64, class: &str) {
        if v >= self.lo && v <= self.hi {
            let y = self.y(v);
            let _ = write!(
                self.body,
                r#"<line class="{class}" x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/>"#,
                W - RIGHT
            );
        }
    }

    /// The finished `<svg>` with axes; `fmt(value, tick step)` labels the value axis.
    pub fn finish(self, label: &str, fmt: impl Fn(f64, f64) -> String) -> String {
        let mut s = format!(
            r#"<svg class="chart-svg" viewBox="0 0 {W} {H}" role="img" aria-label="{}" preserveAspectRatio="xMidYMid meet">"#,
            esc(label)
        );
        let _ = write!(
            s,
            r#"<defs><clipPath id="clip-{id}"><rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}"/></clipPath></defs>"#,
            W - LEFT - RIGHT,
            H - TOP - BOTTOM,
            id = self.id
        );
        let step = nice_step((self.hi - self.lo) / 5.0);
        let mut v = (self.lo / step).ceil() * step;
        while v <= self.hi + step * 1e-9 {
            let y = self.y(v);
            // `+ 0.0` turns -0 into 0
            let label = fmt(if v.abs() < step * 1e-9 { 0.0 } else { v } + 0.0, step);
            let _ = write!(
                s,
                r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                W - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                esc(&label)
            );
            v += step;
        }
        let n = self.dates.len();
        let step = n.div_ceil(6).max(1);
        for i in (0..n).filter(|i| i % step == 0 || *i == n - 1) {
            let _ = write!(
                s,
                r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="{}">{}</text>"#,
                self.x(i),
                H - BOTTOM + 18.0,
                if n > 1 && i == n - 1 { "end" } else { "middle" },
                esc(self.dates[i].get(5..).unwrap_or(&self.dates[i]))
            );
        }
        let _ = write!(
            s,
            r#"<g clip-path="url(#clip-{})">{}</g></svg>"#,
            self.id, self.body
        );
        s
    }
}

/// A round tick step (1, 2 or 5 × 10^k) near `raw`.
fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// Decimals that tell ticks `step` apart.
pub fn decimals_for(step: f64) -> usize {
    if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    }
}

/// Maximal runs of consecutive indices in `0..n` where `ok` holds.
fn runs(n: usize, ok: impl Fn(usize) -> bool) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for i in 0..=n {
        match (i < n && ok(i), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_step(0.23), 0.5);
        assert_eq!(nice_step(0.012), 0.02);
        assert_eq!(nice_step(300.0), 500.0);
        assert_eq!(decimals_for(0.02), 2);
        assert_eq!(decimals_for(5.0), 0);
    }

    #[test]
    fn runs_split_at_gaps() {
        let v = [Some(1), None, Some(2), Some(3)];
        assert_eq!(runs(4, |i| v[i].is_some()), vec![0..1, 2..4]);
    }

    #[test]
    fn a_chart_is_an_svg_with_its_series() {
        let dates = vec!["2025-09-30".to_string(), "2025-10-01".to_string()];
        let mut c = Chart::new("t", &dates, -0.1, 0.3);
        c.band(&[Some(-0.1), Some(0.0)], &[Some(0.3), Some(0.2)], "band");
        c.line(&[Some(0.1), Some(0.1)], "est", "lift <b>");
        let s = c.finish("test", |v, _| format!("{v:.2}"));
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(s.contains("<polygon class=\"band\"") && s.contains("lift &lt;b&gt;"));
        assert!(!s.contains("NaN") && !s.contains("inf"));
    }
}
