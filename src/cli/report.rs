//! `neonblue report`: the experiment report of SPEC 10 from `user_daily`.

use crate::report::{self, Choices, Correction, Request, Scope, Settings};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Output format on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One block per experiment for the terminal.
    Table,
    /// SPEC 10.3's JSON.
    Json,
}

/// `report` arguments.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Output root of a run: a directory or an object_store URL (file:///…, s3://bucket/prefix).
    #[arg(long, env = "NEONBLUE_OUTPUT")]
    pub output: String,
    /// Only this experiment (default: every experiment).
    #[arg(long)]
    pub experiment: Option<u32>,
    /// First date, YYYY-MM-DD (default: the first date present).
    #[arg(long)]
    pub from: Option<String>,
    /// Last date, YYYY-MM-DD, inclusive (default: the last date present).
    #[arg(long)]
    pub to: Option<String>,
    /// Control variant id (default: the variant keyed `control`, else the smallest id).
    #[arg(long)]
    pub control: Option<u32>,
    /// Significance level α of the intervals and of "significant".
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Multiple-comparison correction across an experiment's (metric, variant) comparisons.
    #[arg(long, value_enum, default_value_t = Correction::Holm)]
    pub correction: Correction,
    /// Expected traffic shares for the SRM check, in variant_id order (default: equal).
    #[arg(long)]
    pub weights: Option<String>,
    /// Tuning N* of the sequential interval (the sample size where it is tightest).
    #[arg(long, default_value_t = 5000.0)]
    pub sequential_tuning: f64,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also write the self-contained HTML page with charts to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

impl ReportArgs {
    /// The request these arguments describe.
    pub fn request(&self) -> Result<Request> {
        let day = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
            Ok(match v {
                Some(s) => Some(report::parse_day(flag, s)?),
                None => None,
            })
        };
        Ok(Request {
            root: self.output.clone(),
            scope: Scope {
                experiment: self.experiment,
                from_day: day("--from", &self.from)?,
                to_day: day("--to", &self.to)?,
            },
            choices: Choices {
                control: self.control,
                weights: match &self.weights {
                    Some(w) => Some(report::parse_weights(w)?),
                    None => None,
                },
            },
            settings: Settings {
                alpha: self.alpha,
                correction: self.correction,
                sequential_tuning: self.sequential_tuning,
            },
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        })
    }
}

/// Runs `report`: prints the table or JSON, writes the page if asked.
pub fn run_report(args: &ReportArgs) -> Result<()> {
    let report = report::build(&args.request()?)?;
    if let Some(path) = &args.html {
        std::fs::write(path, report::html::render(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    match args.format {
        Format::Table => print!("{}", report::render_table::render(&report)),
        Format::Json => print!("{}", report::render_json::render(&report)),
    }
    Ok(())
}
