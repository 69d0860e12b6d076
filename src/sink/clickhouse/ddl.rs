//! The ClickHouse DDL of `schemas/clickhouse/`, embedded in the binary for
//! `neonblue schema print|apply`.

pub use super::check_identifier;
use super::{ClickHouseError, ClickHouseSink, Table};
use crate::config::ClickHouseConfig;

/// The statements to create `database` and its tables.
pub fn statements(database: &str, legacy: bool) -> Vec<String> {
    // `database` is a checked identifier (see `check_identifier`).
    let mut out = vec![format!("CREATE DATABASE IF NOT EXISTS `{database}`;\n")];
    out.extend(Table::ALL.map(|t| t.ddl(legacy).1.to_string()));
    out
}

/// The whole DDL as one script (`schema print`).
pub fn script(database: &str, legacy: bool) -> String {
    let mut s = format!(
        "-- neonblue ClickHouse schema ({}), database `{database}`\n-- apply with: neonblue schema apply{}\n\n",
        if legacy { "ClickHouse 18.16" } else { "current releases" },
        if legacy { " --legacy" } else { "" }
    );
    for st in statements(database, legacy) {
        s.push_str(st.trim_end());
        s.push_str("\n\n");
    }
    s
}

/// Creates the database and tables (idempotent: `IF NOT EXISTS`). Without
/// an explicit `legacy`, servers older than 20.1 get the 18.16 DDL.
pub fn apply(
    cfg: &ClickHouseConfig,
    legacy: Option<bool>,
) -> Result<(usize, bool), ClickHouseError> {
    super::check_identifier("database", &cfg.database)?;
    // The database may not exist yet: create it without selecting it.
    let bootstrap = ClickHouseConfig {
        database: "default".into(),
        ..cfg.clone()
    };
    let sink = ClickHouseSink::unchecked(&bootstrap)?;
    let legacy = match legacy {
        Some(l) => l,
        None => {
            let version = sink.query("SELECT version()", "SELECT version()")?;
            let major: u32 = version
                .trim()
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(99);
            if major < 20 {
                tracing::info!(
                    version = version.trim(),
                    "old ClickHouse: applying the 18.16 DDL"
                );
            }
            major < 20
        }
    };
    let statements = statements(&cfg.database, legacy);
    sink.execute(&statements[0], "CREATE DATABASE")?;
    let sink = ClickHouseSink::unchecked(cfg)?;
    for st in &statements[1..] {
        let sql = st.trim().trim_end_matches(';');
        sink.execute(sql, "CREATE TABLE")?;
    }
    Ok((statements.len(), legacy))
}
