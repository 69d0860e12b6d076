//! Where settings come from, in increasing precedence: defaults, the TOML
//! file (`--config`), the environment, flags.
//!
//! **The environment rule.** Every key of the file is the variable
//! `NEONBLUE_` + its path upper-cased, sections and keys joined by `__`:
//! `[kafka] commit_interval` is `NEONBLUE_KAFKA__COMMIT_INTERVAL`,
//! `[source.eventrouter] op_header` is `NEONBLUE_SOURCE__EVENTROUTER__OP_HEADER`.
//! librdkafka properties are keys of the map `[kafka.properties]` and follow
//! the same rule with `_` standing for `.` in the property name:
//! `NEONBLUE_KAFKA__PROPERTIES__SASL_PASSWORD` sets `sasl.password`. Lists
//! (`source.topics`) are comma-separated. Variables without `__`
//! (`NEONBLUE_CONFIG`, `NEONBLUE_LOG`, `NEONBLUE_LOG_JSON`) belong to the
//! process, not to the file; the names of earlier releases are refused with
//! their replacement.
//!
//! Every value remembers where it came from ([`Origin`]): `config print`
//! shows it, and every error names the key, the value's origin and what is
//! allowed. Unknown keys are errors wherever they come from.

use super::{is_secret_property, redacted_url, Config};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use toml::{Table, Value};

/// Prefix of every variable of the environment rule.
pub const ENV_PREFIX: &str = "NEONBLUE_";
/// Separator of sections and keys in variable names.
pub const ENV_SEPARATOR: &str = "__";
/// Keys whose values are maps with free keys (librdkafka property names).
const MAPS: [&str; 1] = ["kafka.properties"];
/// Variables of the process (no `__`), not settings of the file.
pub const PROCESS_VARS: [&str; 3] = ["NEONBLUE_CONFIG", "NEONBLUE_LOG", "NEONBLUE_LOG_JSON"];

/// Variables of earlier releases and what replaced them.
const RENAMED_VARS: [(&str, &str); 19] = [
    ("NEONBLUE_OUTPUT", "NEONBLUE_OUTPUT__URL"),
    ("NEONBLUE_STATE", "NEONBLUE_PROCESSING__STATE_DIR"),
    ("NEONBLUE_PARTITIONS", "NEONBLUE_PROCESSING__PARTITIONS"),
    ("NEONBLUE_GRACE", "NEONBLUE_PROCESSING__GRACE"),
    ("NEONBLUE_LAYOUT", "NEONBLUE_SOURCE__LAYOUT"),
    (
        "NEONBLUE_CHECKPOINT_RECORDS",
        "NEONBLUE_PROCESSING__CHECKPOINT_RECORDS",
    ),
    ("NEONBLUE_BROKERS", "NEONBLUE_KAFKA__BROKERS"),
    ("NEONBLUE_APP_ID", "NEONBLUE_PROCESSING__APP_ID"),
    ("NEONBLUE_TOPICS", "NEONBLUE_SOURCE__TOPICS"),
    (
        "NEONBLUE_REPARTITION_PARTITIONS",
        "NEONBLUE_KAFKA__REPARTITION_PARTITIONS",
    ),
    (
        "NEONBLUE_COMMIT_INTERVAL_MS",
        "NEONBLUE_KAFKA__COMMIT_INTERVAL (a duration, e.g. 2s)",
    ),
    (
        "NEONBLUE_MAX_RECORDS_PER_SECOND",
        "NEONBLUE_KAFKA__MAX_RECORDS_PER_SECOND",
    ),
    ("NEONBLUE_METRICS_ADDR", "NEONBLUE_METRICS__ADDR"),
    ("NEONBLUE_CLICKHOUSE_URL", "NEONBLUE_CLICKHOUSE__URL"),
    (
        "NEONBLUE_CLICKHOUSE_DATABASE",
        "NEONBLUE_CLICKHOUSE__DATABASE",
    ),
    ("NEONBLUE_CLICKHOUSE_USER", "NEONBLUE_CLICKHOUSE__USER"),
    (
        "NEONBLUE_CLICKHOUSE_PASSWORD",
        "NEONBLUE_CLICKHOUSE__PASSWORD",
    ),
    ("NEONBLUE_INPUT", "the --input flag"),
    ("NEONBLUE_NOW", "the --now flag"),
];

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(p) => write!(f, "file {}", p.display()),
            Origin::Env(v) => write!(f, "env {v}"),
            Origin::Flag(n) => write!(f, "flag {n}"),
        }
    }
}

/// A flag's value for a key of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagValue {
    /// The key's path (`["processing", "grace"]`).
    pub path: Vec<String>,
    /// The flag as typed (`--grace`).
    pub flag: String,
    /// Its value as text, read like an environment variable's.
    pub value: String,
}

impl FlagValue {
    /// `key` is dotted (`processing.grace`).
    pub fn new(key: &str, flag: &str, value: impl Into<String>) -> Self {
        FlagValue {
            path: key.split('.').map(str::to_string).collect(),
            flag: flag.to_string(),
            value: value.into(),
        }
    }

    /// A librdkafka property (its name may contain dots).
    pub fn kafka_property(name: &str, flag: &str, value: impl Into<String>) -> Self {
        FlagValue {
            path: vec!["kafka".into(), "properties".into(), name.to_string()],
            flag: flag.to_string(),
            value: value.into(),
        }
    }
}

/// The inputs of [`load`].
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The TOML file, if any.
    pub file: Option<PathBuf>,
    /// The environment (every variable; those of the rule are picked).
    pub env: Vec<(String, String)>,
    /// Flag values, in order (a later one wins).
    pub flags: Vec<FlagValue>,
}

impl Sources {
    /// The process environment (non-UTF-8 variables of the rule are refused by [`load`]).
    pub fn process_env() -> Vec<(String, String)> {
        std::env::vars_os()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.into_string()
                        .unwrap_or_else(|_| "\u{fffd}<not UTF-8>".to_string()),
                )
            })
            .collect()
    }
}

/// One problem with the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The key (`processing.grace`), when the problem is a key's.
    pub key: Option<String>,
    /// The value as given (masked when secret).
    pub value: Option<String>,
    /// Where it came from.
    pub origin: Origin,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.key, &self.value) {
            (Some(k), Some(v)) => write!(f, "{k} = {v} ({}): {}", self.origin, self.message),
            (Some(k), None) => write!(f, "{k} ({}): {}", self.origin, self.message),
            _ => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

/// The configuration is unusable: every problem found, each naming its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The problems, in the order found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "invalid configuration: {one}"),
            many => {
                write!(f, "invalid configuration ({} problems):", many.len())?;
                for p in many {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The configuration in effect, with the origin of every value.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The settings.
    pub config: Config,
    /// Origin of every key that did not keep its default (dotted keys,
    /// property names quoted: `kafka.properties."sasl.password"`).
    pub origins: BTreeMap<String, Origin>,
    merged: Table,
}

/// The dotted form of a path; segments with dots are quoted.
pub fn key_of(path: &[String]) -> String {
    path.iter()
        .map(|s| {
            if s.is_empty()
                || !s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                format!("{s:?}")
            } else {
                s.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The environment variable of a key (property names: `.` as `_`).
pub fn env_var_of(path: &[String]) -> String {
    let parts: Vec<String> = path
        .iter()
        .map(|s| s.replace(['.', '-'], "_").to_ascii_uppercase())
        .collect();
    format!("{ENV_PREFIX}{}", parts.join(ENV_SEPARATOR))
}

fn defaults_table() -> Table {
    match Value::try_from(Config::default()) {
        Ok(Value::Table(t)) => t,
        _ => unreachable!("the default configuration serializes to a table"),
    }
}

fn lookup<'a>(table: &'a Table, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let v = table.get(first)?;
    if rest.is_empty() {
        return Some(v);
    }
    match v {
        Value::Table(t) => lookup(t, rest),
        _ => None,
    }
}

fn set(table: &mut Table, path: &[String], value: Value) {
    let (first, rest) = path.split_first().expect("a non-empty path");
    if rest.is_empty() {
        table.insert(first.clone(), value);
        return;
    }
    let entry = table
        .entry(first.clone())
        .or_insert_with(|| Value::Table(Table::new()));
    if !entry.is_table() {
        *entry = Value::Table(Table::new());
    }
    if let Value::Table(t) = entry {
        set(t, rest, value);
    }
}

fn is_map(path: &[String]) -> bool {
    MAPS.contains(&path.join(".").as_str())
}

/// Whether a value under `path` is a secret (masked when shown).
pub fn is_secret(path: &[String]) -> bool {
    match path {
        [s, k] if s == "clickhouse" && k == "password" => true,
        [s, m, name] if s == "kafka" && m == "properties" => is_secret_property(name),
        _ => false,
    }
}

/// `value` as shown: secrets masked, credentials in URLs removed.
pub fn shown(path: &[String], value: &Value) -> String {
    match value {
        Value::String(s) if is_secret(path) && !s.is_empty() => "\"****\"".into(),
        Value::String(s) if path.last().is_some_and(|k| k == "url") && s.contains('@') => {
            Value::String(redacted_url(s)).to_string()
        }
        v => v.to_string(),
    }
}

/// Why `path` is not a key: the keys allowed where it points.
fn unknown_key(defaults: &Table, path: &[String]) -> String {
    let mut table = defaults;
    for (i, seg) in path.iter().enumerate() {
        match table.get(seg) {
            Some(Value::Table(t)) if !is_map(&path[..=i]) => table = t,
            Some(_) if i + 1 == path.len() => return String::new(),
            Some(_) => return format!("{} is a setting, not a section", key_of(&path[..=i])),
            None => {
                let here = if i == 0 {
                    "sections".to_string()
                } else {
                    format!("keys of [{}]", key_of(&path[..i]))
                };
                let allowed: Vec<&str> = table.keys().map(String::as_str).collect();
                return format!(
                    "unknown key {}; {here}: {}",
                    key_of(&path[..=i]),
                    allowed.join(", ")
                );
            }
        }
    }
    format!(
        "{} is a section: set its keys ({})",
        key_of(path),
        table
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Reads `raw` (a variable's or a flag's text) as the value of `path`,
/// typed like its default.
fn typed(defaults: &Table, path: &[String], raw: &str) -> Result<Value, String> {
    if path.len() > 1 && is_map(&path[..path.len() - 1]) {
        return Ok(Value::String(raw.to_string()));
    }
    match lookup(defaults, path) {
        Some(Value::Integer(_)) => raw
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| "not a whole number".to_string()),
        Some(Value::Boolean(_)) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" => Ok(Value::Boolean(false)),
            _ => Err("expected true or false".into()),
        },
        Some(Value::Array(_)) => Ok(Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        )),
        Some(Value::Table(_)) if !is_map(path) => Err(unknown_key(defaults, path)),
        Some(Value::Table(_)) => Err(format!(
            "{} is a map: set its entries, e.g. {}",
            key_of(path),
            env_var_of(&[path.to_vec(), vec!["sasl.username".into()]].concat())
        )),
        Some(_) => Ok(Value::String(raw.to_string())),
        None => Err(unknown_key(defaults, path)),
    }
}

/// The settings of the environment rule among `env`, and the problems.
fn env_values(
    defaults: &Table,
    env: &[(String, String)],
    problems: &mut Vec<Problem>,
) -> Vec<(Vec<String>, Value, Origin)> {
    let mut out = Vec::new();
    let mut vars: Vec<&(String, String)> = env.iter().collect();
    vars.sort();
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let origin = Origin::Env(name.clone());
        if !rest.contains(ENV_SEPARATOR) {
            let renamed = RENAMED_VARS
                .iter()
                .find(|(old, _)| old == name)
                .map(|(_, new)| new.to_string())
                .or_else(|| {
                    rest.strip_prefix("KAFKA_")
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            format!("{ENV_PREFIX}KAFKA{ENV_SEPARATOR}PROPERTIES{ENV_SEPARATOR}{p}")
                        })
                });
            if let Some(new) = renamed {
                problems.push(Problem {
                    key: None,
                    value: None,
                    origin,
                    message: format!("this variable is no longer read: use {new}"),
                });
            }
            continue;
        }
        let mut path: Vec<String> = rest
            .split(ENV_SEPARATOR)
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if path.len() == 3 && is_map(&path[..2]) {
            path[2] = path[2].replace('_', ".");
        }
        let masked = if is_secret(&path) {
            "\"****\"".to_string()
        } else {
            format!("{raw:?}")
        };
        if path.iter().any(String::is_empty) || raw.starts_with('\u{fffd}') {
            problems.push(Problem {
                key: None,
                value: None,
                origin,
                message: if raw.starts_with('\u{fffd}') {
                    "the value is not UTF-8".into()
                } else {
                    format!("empty section or key name (the rule is {ENV_PREFIX}<SECTION>__<KEY>)")
                },
            });
            continue;
        }
        match typed(defaults, &path, raw) {
            Ok(v) => out.push((path, v, origin)),
            Err(message) => problems.push(Problem {
                key: Some(key_of(&path)),
                value: Some(masked),
                origin,
                message,
            }),
        }
    }
    out
}

/// The leaves of a file's table (a map's entries are leaves).
fn leaves(table: &Table, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    for (k, v) in table {
        prefix.push(k.clone());
        match v {
            Value::Table(t) if !is_map(prefix) => leaves(t, prefix, out),
            Value::Table(t) if t.is_empty() => {}
            Value::Table(t) => {
                for (name, value) in t {
                    let mut p = prefix.clone();
                    p.push(name.clone());
                    out.push((p, value.clone()));
                }
            }
            _ => out.push((prefix.clone(), v.clone())),
        }
        prefix.pop();
    }
}

/// Deserializes `table` into a [`Config`]: the path and message of the first error.
fn deserialize(table: Table) -> Result<Config, (String, String)> {
    serde_path_to_error::deserialize::<_, Config>(table).map_err(|e| {
        let path = e.path().to_string();
        let mut message = e.into_inner().message().to_string();
        for (ty, range) in [
            ("u32", "0 to 4294967295"),
            ("u64", "0 to 18446744073709551615"),
            ("usize", "0 to 18446744073709551615"),
            ("i32", "-2147483648 to 2147483647"),
            ("i64", "-9223372036854775808 to 9223372036854775807"),
        ] {
            if let Some(m) = message.strip_suffix(&format!("expected {ty}")) {
                message = format!("{m}expected a whole number, {range}");
            }
        }
        (path, message)
    })
}

/// Loads the configuration: every problem is reported, each with its key,
/// its value (masked when secret), its origin and what is allowed.
pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    let defaults = defaults_table();
    let mut problems = Vec::new();
    let mut values: Vec<(Vec<String>, Value, Origin)> = Vec::new();
    if let Some(path) = &sources.file {
        let origin = Origin::File(path.clone());
        match std::fs::read_to_string(path) {
            Err(e) => problems.push(Problem {
                key: None,
                value: None,
                origin,
                message: format!("cannot read the file: {e}"),
            }),
            Ok(text) => match text.parse::<Table>() {
                Err(e) => problems.push(Problem {
                    key: None,
                    value: None,
                    origin,
                    message: format!("not valid TOML: {}", e.to_string().trim_end()),
                }),
                Ok(table) => {
                    let mut found = Vec::new();
                    leaves(&table, &mut Vec::new(), &mut found);
                    for (path, v) in found {
                        let known = lookup(&defaults, &path).is_some_and(|d| !d.is_table())
                            || (path.len() > 1 && is_map(&path[..path.len() - 1]));
                        if !known {
                            problems.push(Problem {
                                key: Some(key_of(&path)),
                                value: None,
                                origin: origin.clone(),
                                message: unknown_key(&defaults, &path),
                            });
                        } else if path.len() > 1 && is_map(&path[..path.len() - 1]) && !v.is_str() {
                            problems.push(Problem {
                                key: Some(key_of(&path)),
                                value: Some(if is_secret(&path) {
                                    "****".into()
                                } else {
                                    v.to_string()
                                }),
                                origin: origin.clone(),
                                message: "librdkafka properties are strings: quote the value"
                                    .into(),
                            });
                        } else {
                            values.push((path, v, origin.clone()));
                        }
                    }
                }
            },
        }
    }
    values.extend(env_values(&defaults, &sources.env, &mut problems));
    for f in &sources.flags {
        let origin = Origin::Flag(f.flag.clone());
        if f.path.iter().any(|s| s.trim().is_empty()) {
            // Not echoed: the argument may hold a secret.
            problems.push(Problem {
                key: None,
                value: None,
                origin,
                message: "expects NAME=VALUE (an argument lacks the name or '=')".into(),
            });
            continue;
        }
        match typed(&defaults, &f.path, &f.value) {
            Ok(v) => values.push((f.path.clone(), v, origin)),
            Err(message) => problems.push(Problem {
                key: Some(key_of(&f.path)),
                value: Some(if is_secret(&f.path) {
                    "\"****\"".into()
                } else {
                    format!("{:?}", f.value)
                }),
                origin,
                message,
            }),
        }
    }
    // Later sources win; the winner of each key is checked on its own, so
    // every bad value is reported, not just the first.
    let mut merged = defaults.clone();
    let mut origins: BTreeMap<String, Origin> = BTreeMap::new();
    let mut winners: BTreeMap<String, (Vec<String>, Value, Origin)> = BTreeMap::new();
    for (path, v, origin) in values {
        set(&mut merged, &path, v.clone());
        origins.insert(key_of(&path), origin.clone());
        winners.insert(key_of(&path), (path, v, origin));
    }
    for (key, (path, v, origin)) in &winners {
        let mut one = defaults.clone();
        set(&mut one, path, v.clone());
        if let Err((_, message)) = deserialize(one) {
            let secret = is_secret(path);
            problems.push(Problem {
                key: Some(key.clone()),
                value: Some(if secret {
                    "****".into()
                } else {
                    shown(path, v)
                }),
                origin: origin.clone(),
                // serde's message may quote the value.
                message: if secret {
                    "expected a string (the value is not shown: a secret)".into()
                } else {
                    message
                },
            });
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    let config = deserialize(merged.clone()).map_err(|(key, message)| ConfigError {
        problems: vec![Problem {
            origin: origins.get(&key).cloned().unwrap_or(Origin::Default),
            key: Some(key),
            value: None,
            message,
        }],
    })?;
    let invalid = config.validate();
    if !invalid.is_empty() {
        return Err(ConfigError {
            problems: invalid
                .into_iter()
                .map(|(key, message)| {
                    let path: Vec<String> = key.split('.').map(str::to_string).collect();
                    Problem {
                        value: lookup(&merged, &path).map(|v| shown(&path, v)),
                        origin: origins.get(&key).cloned().unwrap_or(Origin::Default),
                        key: Some(key),
                        message,
                    }
                })
                .collect(),
        });
    }
    Ok(Loaded {
        config,
        origins,
        merged,
    })
}

impl Loaded {
    /// Where `key` (dotted) came from.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    /// True when `key` kept its built-in default.
    pub fn is_default(&self, key: &str) -> bool {
        self.origin(key) == Origin::Default
    }

    /// The settings as TOML, each value followed by its origin; secrets masked.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# neonblue: the configuration in effect, each value with where it came from\n\
             # (default < file < env NEONBLUE_<SECTION>__<KEY> < flag); secrets masked.\n",
        );
        // The values in effect, in canonical form (durations as `1s 500ms`).
        let effective = match Value::try_from(&self.config) {
            Ok(Value::Table(t)) => t,
            _ => self.merged.clone(),
        };
        render_table(&effective, &mut Vec::new(), &self.origins, &mut out);
        out
    }
}

fn render_table(
    table: &Table,
    path: &mut Vec<String>,
    origins: &BTreeMap<String, Origin>,
    out: &mut String,
) {
    let leaf_rows: Vec<(String, String)> = table
        .iter()
        .filter(|(_, v)| !v.is_table())
        .map(|(k, v)| {
            path.push(k.clone());
            let row = (
                format!("{} = {}", key_of(std::slice::from_ref(k)), shown(path, v)),
                origins
                    .get(&key_of(path))
                    .cloned()
                    .unwrap_or(Origin::Default)
                    .to_string(),
            );
            path.pop();
            row
        })
        .collect();
    if !path.is_empty() && (!leaf_rows.is_empty() || is_map(path)) {
        out.push_str(&format!("\n[{}]\n", key_of(path)));
        if leaf_rows.is_empty() {
            out.push_str("# (none)\n");
        }
    }
    let width = leaf_rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    for (line, origin) in leaf_rows {
        out.push_str(&format!("{line:width$}  # {origin}\n"));
    }
    for (k, v) in table {
        if let Value::Table(t) = v {
            path.push(k.clone());
            render_table(t, path, origins, out);
            path.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("neonblue.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn precedence_is_default_file_env_flag() {
        let (_d, path) = file(
            "[processing]\ngrace = \"10m\"\npartitions = 3\napp_id = \"from-file\"\n\
             [kafka]\ncommit_interval = \"5s\"\n[kafka.properties]\n\"sasl.username\" = \"file-user\"\n\
             \"security.protocol\" = \"SSL\"\n",
        );
        let loaded = load(&Sources {
            file: Some(path.clone()),
            env: env(&[
                ("NEONBLUE_PROCESSING__GRACE", "250ms"),
                ("NEONBLUE_PROCESSING__PARTITIONS", "4"),
                ("NEONBLUE_KAFKA__PROPERTIES__SASL_PASSWORD", "s3cret"),
                ("NEONBLUE_KAFKA__PROPERTIES__SECURITY_PROTOCOL", "SASL_SSL"),
                ("NEONBLUE_SOURCE__TOPICS", "a, b"),
                ("NEONBLUE_TEST_BROKERS", "ignored: not a setting"),
                ("NEONBLUE_LOG", "debug"),
                ("HOME", "/root"),
            ]),
            flags: vec![
                FlagValue::new("processing.partitions", "--partitions", "5"),
                FlagValue::kafka_property("sasl.username", "--kafka-property", "flag-user"),
            ],
        })
        .unwrap();
        let c = &loaded.config;
        assert_eq!(
            c.processing.grace,
            Duration::from_millis(250),
            "env over file"
        );
        assert_eq!(
            c.processing.grace_micros(),
            250_000,
            "sub-second grace honoured"
        );
        assert_eq!(c.processing.partitions, 5, "flag over env over file");
        assert_eq!(c.processing.app_id, "from-file");
        assert_eq!(c.kafka.commit_interval, Duration::from_secs(5));
        assert_eq!(c.kafka.session_timeout, Duration::from_secs(10), "default");
        assert_eq!(c.source.topics, ["a", "b"]);
        let p = &c.kafka.properties;
        assert_eq!(p["sasl.username"], "flag-user");
        assert_eq!(p["sasl.password"], "s3cret");
        assert_eq!(p["security.protocol"], "SASL_SSL");
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(
            loaded.origin("processing.partitions"),
            Origin::Flag("--partitions".into())
        );
        assert_eq!(
            loaded.origin("processing.grace"),
            Origin::Env("NEONBLUE_PROCESSING__GRACE".into())
        );
        assert_eq!(loaded.origin("processing.app_id"), Origin::File(path));
        assert_eq!(loaded.origin("kafka.session_timeout"), Origin::Default);
        assert_eq!(
            loaded.origin("kafka.properties.\"sasl.password\""),
            Origin::Env("NEONBLUE_KAFKA__PROPERTIES__SASL_PASSWORD".into())
        );
        let text = loaded.render();
        assert!(text.contains("grace = \"250ms\""), "{text}");
        assert!(text.contains("# env NEONBLUE_PROCESSING__GRACE"), "{text}");
        assert!(text.contains("\"sasl.password\" = \"****\""), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("# flag --partitions"), "{text}");
        // The printed configuration reads back to the same settings.
        let (_d2, again) = file(&text);
        let mut back = load(&Sources {
            file: Some(again),
            ..Default::default()
        })
        .unwrap()
        .config;
        back.kafka
            .properties
            .insert("sasl.password".into(), "s3cret".into());
        assert_eq!(&back, c);
    }

    #[test]
    fn every_problem_names_its_key_origin_and_what_is_allowed() {
        let (_d, path) = file(
            "[processing]\ngrace_seconds = 300\ngrace = 300\n[procesing]\nx = 1\n\
             [source]\nlayout = \"csv\"\n[clickhouse]\npassword = 7\n",
        );
        let err = load(&Sources {
            file: Some(path),
            env: env(&[
                ("NEONBLUE_KAFKA__COMMIT_INTERVAL", "2"),
                ("NEONBLUE_PROCESSING__PARTITIONS", "many"),
                ("NEONBLUE_KAFKA__NOPE", "1"),
                ("NEONBLUE_KAFKA_SASL_PASSWORD", "old-style"),
                ("NEONBLUE_BROKERS", "old:9092"),
            ]),
            flags: vec![FlagValue::new(
                "processing.grace",
                "--grace",
                "99999999999999999999s",
            )],
        })
        .unwrap_err();
        let text = err.to_string();
        let has = |s: &str| assert!(text.contains(s), "missing {s:?} in:\n{text}");
        has("processing.grace_seconds (file ");
        has("unknown key processing.grace_seconds; keys of [processing]: app_id, grace,");
        has("unknown key procesing; sections: source, processing, output, kafka, metrics, clickhouse");
        has("source.layout = \"csv\"");
        has("unknown variant `csv`, expected one of `outbox`, `eventrouter`, `tables`");
        has("clickhouse.password = **** (file ");
        assert!(!text.contains("integer `7`"), "{text}");
        has("kafka.commit_interval = \"2\" (env NEONBLUE_KAFKA__COMMIT_INTERVAL): \"2\" has no unit");
        has("processing.partitions = \"many\" (env NEONBLUE_PROCESSING__PARTITIONS): not a whole number");
        has("unknown key kafka.nope; keys of [kafka]: brokers, properties,");
        has("env NEONBLUE_KAFKA_SASL_PASSWORD: this variable is no longer read: use NEONBLUE_KAFKA__PROPERTIES__SASL_PASSWORD");
        has("env NEONBLUE_BROKERS: this variable is no longer read: use NEONBLUE_KAFKA__BROKERS");
        has("processing.grace = \"99999999999999999999s\" (flag --grace): invalid duration");
        has("too large");
        assert!(!text.contains("old-style"), "{text}");
        assert_eq!(err.problems.len(), 10, "{text}");
    }

    #[test]
    fn semantic_checks_name_the_origin() {
        let err = load(&Sources {
            env: env(&[
                ("NEONBLUE_PROCESSING__GRACE", "1500ns"),
                ("NEONBLUE_CLICKHOUSE__PASSWORD", "pw"),
            ]),
            flags: vec![FlagValue::new("processing.partitions", "--partitions", "0")],
            ..Default::default()
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("processing.grace = \"1500ns\" (env NEONBLUE_PROCESSING__GRACE): a whole number of microseconds"),
            "{text}"
        );
        assert!(
            text.contains("processing.partitions = 0 (flag --partitions): at least 1"),
            "{text}"
        );
    }

    #[test]
    fn every_key_has_a_variable_and_the_example_documents_every_key() {
        let defaults = defaults_table();
        let mut all = Vec::new();
        leaves(&defaults, &mut Vec::new(), &mut all);
        let example_text = include_str!("../../docs/neonblue.example.toml");
        let example: Table = example_text.parse().unwrap();
        for (path, v) in &all {
            // The variable of every key sets it.
            let raw = match v {
                Value::String(s) => s.clone(),
                Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            let var = env_var_of(path);
            let loaded = load(&Sources {
                env: vec![(var.clone(), raw)],
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("{var}: {e}"));
            assert_eq!(loaded.origin(&key_of(path)), Origin::Env(var));
            // The example sets it, with a comment just above.
            assert!(
                lookup(&example, path).is_some(),
                "docs/neonblue.example.toml lacks {}",
                key_of(path)
            );
        }
        let lines: Vec<&str> = example_text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if !l.starts_with('#') && !l.starts_with('[') && l.contains(" = ") {
                assert!(
                    i > 0 && lines[i - 1].starts_with('#'),
                    "docs/neonblue.example.toml: {l:?} has no comment above it"
                );
            }
        }
        let loaded = load(&Sources {
            file: Some(PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/docs/neonblue.example.toml"
            ))),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            loaded.config,
            Config::default(),
            "the example shows the defaults"
        );
    }
}
