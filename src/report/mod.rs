//! `neonblue report` (SPEC 10): is a variant better than control, and can the
//! numbers be trusted. Reads `user_daily` under an output root and computes,
//! per experiment, Welch and delta-method intervals, a confidence sequence,
//! chance to beat control, corrected p-values and the SRM check, for the
//! whole range and cumulatively per date.
//!
//! - [`population`]: `user_daily` → per-user totals → per-arm sums, per date.
//! - [`stats`]: the formulas, pure functions over (n, mean, variance).
//! - [`analysis`]: populations → the [`model::Report`].
//! - [`render_table`], [`render_json`], [`html`]: the three outputs.

pub mod analysis;
pub mod html;
pub mod metric;
pub mod model;
pub mod population;
pub mod render_json;
pub mod render_table;
pub mod stats;
mod svg;
mod user_key;

pub use analysis::Choices;
pub use model::{Report, Settings};
pub use population::Scope;
pub use stats::Correction;

use crate::sink::{OutputRoot, SinkError};

/// Why a report cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The root holds no `user_daily` objects.
    #[error("no user_daily dataset under {0}: point --output at the output root of a `neonblue run` (it holds events/, agg_hourly/, agg_daily/, user_daily/)")]
    NoUserDaily(String),
    /// `--experiment` names an experiment without rows in the range.
    #[error(
        "experiment {experiment} has no user_daily rows{range}; experiments present: {present}"
    )]
    UnknownExperiment {
        /// The id asked for.
        experiment: u32,
        /// `" from … to …"` or empty.
        range: String,
        /// The ids that do have rows, comma-separated.
        present: String,
    },
    /// No experiment has rows in the range.
    #[error("no user_daily rows{0}")]
    Empty(String),
    /// `--control` is not a variant of the experiment.
    #[error("--control {control} is not a variant of experiment {experiment} (variants: {variants:?}); pass --experiment to report one experiment")]
    UnknownControl {
        /// Experiment.
        experiment: u32,
        /// The id asked for.
        control: u32,
        /// Its variants.
        variants: Vec<u32>,
    },
    /// `--weights` does not give one weight per variant.
    #[error("--weights gives {given} weights but experiment {experiment} has {} variants {variants:?} (one weight per variant, in variant_id order)", variants.len())]
    Weights {
        /// Experiment.
        experiment: u32,
        /// Weights given.
        given: usize,
        /// Its variants.
        variants: Vec<u32>,
    },
    /// An option is out of range or malformed.
    #[error("{0}")]
    Option(String),
    /// Reading the output root failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The data is not what `user_daily` should hold.
    #[error("{0}")]
    Data(String),
}

/// Everything `report` needs besides the output format.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Output root: a directory or an object_store URL.
    pub root: String,
    /// Experiment and date range.
    pub scope: Scope,
    /// Control and weights.
    pub choices: Choices,
    /// α, correction, sequential tuning.
    pub settings: Settings,
    /// Threads decoding Parquet.
    pub workers: usize,
}

/// Reads the data and computes the report.
pub fn build(req: &Request) -> Result<Report, ReportError> {
    check(req)?;
    let root = open_existing(&req.root)?;
    let pop = population::load(&root, req.scope, req.workers)?;
    let range = range_text(&req.scope);
    if let Some(e) = req.scope.experiment {
        if !pop.experiments.contains_key(&e) {
            let all = population::load(
                &root,
                Scope {
                    experiment: None,
                    ..req.scope
                },
                req.workers,
            )?;
            let present: Vec<String> = all.experiments.keys().map(u32::to_string).collect();
            return Err(ReportError::UnknownExperiment {
                experiment: e,
                range,
                present: if present.is_empty() {
                    "none".into()
                } else {
                    present.join(", ")
                },
            });
        }
    }
    if pop.experiments.is_empty() {
        return Err(ReportError::Empty(range));
    }
    analysis::analyse(&pop, &req.scope, &req.choices, req.settings)
}

fn range_text(scope: &Scope) -> String {
    use crate::time::format_date;
    match (scope.from_day, scope.to_day) {
        (None, None) => String::new(),
        (f, t) => format!(
            " from {} to {}",
            f.map_or("the start".into(), format_date),
            t.map_or("the end".into(), format_date)
        ),
    }
}

fn check(req: &Request) -> Result<(), ReportError> {
    let s = &req.settings;
    if !(s.alpha > 0.0 && s.alpha < 0.5) {
        return Err(ReportError::Option(format!(
            "--alpha {} must be in (0, 0.5)",
            s.alpha
        )));
    }
    if !(s.sequential_tuning >= 1.0 && s.sequential_tuning.is_finite()) {
        return Err(ReportError::Option(format!(
            "--sequential-tuning {} must be at least 1",
            s.sequential_tuning
        )));
    }
    if let (Some(f), Some(t)) = (req.scope.from_day, req.scope.to_day) {
        if f > t {
            return Err(ReportError::Option("--from is after --to".into()));
        }
    }
    Ok(())
}

/// Opens the root without creating it: a local directory must exist.
fn open_existing(root: &str) -> Result<OutputRoot, ReportError> {
    let local = match url::Url::parse(root) {
        Ok(u) if u.scheme() == "file" => u.to_file_path().ok(),
        Ok(u) if u.scheme().len() > 1 => None,
        _ => Some(std::path::PathBuf::from(root)),
    };
    if let Some(dir) = local {
        if !dir.is_dir() {
            return Err(ReportError::NoUserDaily(format!(
                "{root} (no such directory)"
            )));
        }
    }
    Ok(OutputRoot::open(root)?)
}

/// Parses `--weights w1,w2,…`: finite, non-negative, at least one positive.
pub fn parse_weights(s: &str) -> Result<Vec<f64>, ReportError> {
    let w: Vec<f64> = s
        .split(',')
        .map(|x| {
            x.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    ReportError::Option(format!(
                        "--weights {s:?}: {x:?} is not a non-negative number"
                    ))
                })
        })
        .collect::<Result<_, _>>()?;
    if !w.iter().any(|v| *v > 0.0) {
        return Err(ReportError::Option(format!(
            "--weights {s:?}: at least one weight must be positive"
        )));
    }
    Ok(w)
}

/// Parses `--from` / `--to` (`YYYY-MM-DD`) into days since 1970-01-01.
pub fn parse_day(flag: &str, s: &str) -> Result<i64, ReportError> {
    crate::time::parse_date(s)
        .ok_or_else(|| ReportError::Option(format!("{flag} {s:?}: expected YYYY-MM-DD")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_checked() {
        assert_eq!(parse_weights("1, 2").unwrap(), vec![1.0, 2.0]);
        assert!(parse_weights("1,-1").is_err());
        assert!(parse_weights("0,0").is_err());
        assert!(parse_weights("a").is_err());
    }

    #[test]
    fn dates_are_checked() {
        assert_eq!(parse_day("--from", "1970-01-02").unwrap(), 1);
        assert!(parse_day("--from", "2025-02-30").is_err());
    }
}
