//! `neonblue status`: a state directory and/or an application on a broker.

use super::{load, BrokerArgs};
use crate::config::sources::FlagValue;
use crate::ops::exit::Usage;
use crate::status::{broker, local, table, Status};
use anyhow::Result;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Output format on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For an operator's terminal.
    Table,
    /// Every key always present (`null` when it does not apply).
    Json,
}

/// `status` arguments. The state directory is read when `--state` (or
/// `processing.state_dir` in the file or environment) is given; the broker
/// is asked when brokers are configured.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// State directory to inspect (read only; works while no instance runs) [processing.state_dir].
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// The application on the brokers.
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

impl StatusArgs {
    fn overrides(&self) -> Vec<FlagValue> {
        let mut v = Vec::new();
        if let Some(x) = &self.state {
            v.push(FlagValue::new(
                "processing.state_dir",
                "--state",
                x.display().to_string(),
            ));
        }
        v.extend(self.broker.overrides());
        v
    }
}

/// Runs `status`: prints the table or the JSON.
pub fn run_status(config: Option<&PathBuf>, args: &StatusArgs) -> Result<()> {
    let loaded = load(config, args.overrides())?;
    let cfg = &loaded.config;
    let want_state = !loaded.is_default("processing.state_dir");
    let want_broker = !cfg.kafka.brokers.is_empty();
    if !want_state && !want_broker {
        return Err(Usage(
            "status needs --state DIR and/or --brokers with --app-id (or kafka.brokers, processing.state_dir in the configuration)".into(),
        )
        .into());
    }
    // A running instance holds its directory; the broker can still answer.
    let (state, state_error) = match want_state.then(|| local::read(&cfg.processing.state_dir)) {
        None => (None, None),
        Some(Ok(s)) => (Some(s), None),
        Some(Err(e)) if want_broker && is_in_use(&e) => (None, Some(format!("{e:#}"))),
        Some(Err(e)) => return Err(e),
    };
    let status = Status {
        state,
        state_error,
        broker: if want_broker {
            Some(broker::read(cfg)?)
        } else {
            None
        },
    };
    match args.format {
        Format::Table => print!("{}", table::render(&status)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&status)?),
    }
    Ok(())
}

fn is_in_use(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<neonblue_state::StateError>(),
            Some(neonblue_state::StateError::InUse { .. })
        )
    })
}
