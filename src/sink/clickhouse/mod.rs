//! ClickHouse sink over HTTP (SPEC 6.4): `INSERT … FORMAT JSONEachRow` in
//! batches of `batch_rows`, gzip-compressed, retried with exponential
//! back-off and jitter on transient failures (network, overload, 5xx), never
//! dropping rows: the caller's commit waits (backpressure) and fails only
//! when retries are exhausted, so a restart re-delivers. Re-delivered rows
//! are harmless: the tables are `ReplacingMergeTree` on the natural key, and
//! on current releases every batch carries an `insert_deduplication_token`
//! derived from its content ([`dedup_token`]: a documented, stable hash, so
//! a retry after an upgrade of neonblue or of Rust is still recognised).
//!
//! The database name from the configuration is checked to be a plain
//! identifier before it reaches any SQL, and neither the password nor
//! credentials embedded in the URL ever appear in logs or errors.
//!
//! At start the sink checks the tables: a missing table, a missing column,
//! bad credentials or an unreachable server are clear errors. The dialect
//! follows the tables found (`timestamp_us` marks the 18.16 DDL).

pub mod ddl;
pub mod rows;
pub mod tables;

use crate::config::{redacted_url, ClickHouseConfig};
use crate::domain::OutputBatch;
use crate::metric_names as names;
use rows::{Dialect, TableRows};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};
pub use tables::Table;

/// Errors of the ClickHouse sink.
#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    /// Credentials were refused.
    #[error("ClickHouse at {url} refused the credentials of user {user:?}: {message}")]
    Auth {
        /// Server URL.
        url: String,
        /// User name.
        user: String,
        /// Server message.
        message: String,
    },
    /// A table does not exist.
    #[error("ClickHouse table {database}.{table} does not exist; create the tables with `neonblue schema apply` (or `--legacy` for ClickHouse 18.16)")]
    MissingTable {
        /// Database.
        database: String,
        /// Table.
        table: String,
    },
    /// A table lacks columns the sink writes.
    #[error("ClickHouse table {table} does not match neonblue's schema: missing columns {missing:?} (see `neonblue schema print`)")]
    SchemaMismatch {
        /// Table.
        table: String,
        /// Missing columns.
        missing: Vec<String>,
    },
    /// The server rejected a request for good (bad data, syntax, …).
    #[error("ClickHouse rejected {what}: HTTP {status}: {message}")]
    Rejected {
        /// What was sent.
        what: String,
        /// HTTP status.
        status: u16,
        /// Server message.
        message: String,
    },
    /// Transient failures outlasted the retries.
    #[error("ClickHouse {what} still failing after {attempts} attempts over {secs} s: {last}")]
    RetriesExhausted {
        /// What was sent.
        what: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        secs: u64,
        /// The last failure.
        last: String,
    },
    /// The client could not be built or the runtime started.
    #[error("ClickHouse client: {0}")]
    Client(String),
    /// A configured name is not a plain identifier.
    #[error("ClickHouse {what} {name:?} is not a plain identifier: use letters, digits and '_', not starting with a digit")]
    BadIdentifier {
        /// Which setting.
        what: &'static str,
        /// The rejected value.
        name: String,
    },
}

/// Checks that `name` (a database from the configuration) is a plain
/// identifier, `[A-Za-z_][A-Za-z0-9_]*`, so it can be written into SQL
/// (back-quoted) without escaping.
pub fn check_identifier(what: &'static str, name: &str) -> Result<(), ClickHouseError> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ClickHouseError::BadIdentifier {
            what,
            name: name.to_string(),
        })
    }
}

/// The `insert_deduplication_token` of a batch: `neonblue-v1-<table>-<rows>-<hash>`
/// where `<hash>` is the XXH3-128 of the request body (the JSONEachRow lines,
/// each followed by `\n`, before compression) in 32 lowercase hex digits.
/// XXH3 is a published, frozen algorithm: the same batch gets the same token
/// from every neonblue build, so a batch re-delivered after an upgrade is
/// still dropped by ClickHouse.
pub fn dedup_token(table: &str, rows: usize, body: &[u8]) -> String {
    format!(
        "neonblue-v1-{table}-{rows}-{:032x}",
        xxhash_rust::xxh3::xxh3_128(body)
    )
}

/// Error codes that retrying cannot fix.
const PERMANENT_CODES: [u32; 16] = [
    16, 27, 36, 41, 47, 53, 60, 62, 70, 72, 81, 117, 192, 193, 194, 516,
];
const AUTH_CODES: [u32; 4] = [192, 193, 194, 516];

/// `Code: NNN` of a ClickHouse error message.
fn error_code(body: &str) -> Option<u32> {
    let rest = &body[body.find("Code: ")? + 6..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

enum Failure {
    Retry(String),
    Fatal(ClickHouseError),
}

/// What an insert wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InsertStats {
    /// Rows sent.
    pub rows: u64,
    /// HTTP requests that succeeded.
    pub batches: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
}

/// The ClickHouse sink.
pub struct ClickHouseSink {
    client: reqwest::Client,
    cfg: ClickHouseConfig,
    dialect: Dialect,
    rt: tokio::runtime::Runtime,
}

impl ClickHouseSink {
    /// A client without the schema check (for DDL).
    pub fn unchecked(cfg: &ClickHouseConfig) -> Result<Self, ClickHouseError> {
        check_identifier("database", &cfg.database)?;
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout.max(Duration::from_millis(1)))
            .build()
            .map_err(|e| ClickHouseError::Client(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClickHouseError::Client(e.to_string()))?;
        Ok(ClickHouseSink {
            client,
            cfg: cfg.clone(),
            dialect: Dialect::Current,
            rt,
        })
    }

    /// Connects, checks credentials and the four tables, picks the dialect.
    pub fn connect(cfg: &ClickHouseConfig) -> Result<Self, ClickHouseError> {
        let mut sink = Self::unchecked(cfg)?;
        let q = format!(
            "SELECT table, name FROM system.columns WHERE database = '{}' AND table IN ({}) FORMAT TabSeparated",
            cfg.database, // a checked identifier: no quote can occur
            Table::ALL
                .map(|t| format!("'{}'", t.name()))
                .join(", ")
        );
        let text = sink.query(&q, "the schema check")?;
        let mut tables: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for line in text.lines() {
            if let Some((t, c)) = line.split_once('\t') {
                tables.entry(t).or_default().insert(c);
            }
        }
        let legacy = tables
            .get(Table::EventsProcessed.name())
            .is_some_and(|c| c.contains("timestamp_us"));
        sink.dialect = if legacy {
            Dialect::Legacy
        } else {
            Dialect::Current
        };
        for table in Table::ALL {
            let (table, expected) = (table.name(), table.columns(sink.dialect));
            let Some(have) = tables.get(table) else {
                return Err(ClickHouseError::MissingTable {
                    database: cfg.database.clone(),
                    table: table.to_string(),
                });
            };
            let missing: Vec<String> = expected
                .iter()
                .filter(|c| !have.contains(c.as_str()))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(ClickHouseError::SchemaMismatch {
                    table: table.to_string(),
                    missing,
                });
            }
        }
        tracing::info!(url = %redacted_url(&cfg.url), database = %cfg.database, dialect = ?sink.dialect, "ClickHouse sink ready");
        Ok(sink)
    }

    /// The dialect of the tables found.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Runs a query and returns its text output (retried like inserts).
    pub fn query(&self, sql: &str, what: &str) -> Result<String, ClickHouseError> {
        self.with_retries(what, None, || {
            self.request(Vec::new(), sql.as_bytes().to_vec(), false)
        })
    }

    /// Empties every table (`replay --reset`).
    pub fn truncate_all(&self) -> Result<(), ClickHouseError> {
        for t in Table::ALL {
            self.execute(
                &format!("TRUNCATE TABLE IF EXISTS {}", t.name()),
                "TRUNCATE",
            )?;
        }
        Ok(())
    }

    /// Runs a statement (DDL) with `sql` as the request body.
    pub fn execute(&self, sql: &str, what: &str) -> Result<(), ClickHouseError> {
        self.with_retries(what, None, || {
            self.request(Vec::new(), sql.as_bytes().to_vec(), false)
        })
        .map(|_| ())
    }

    /// Inserts every row of `batch` (events, aggregates, user days).
    pub fn insert(&self, batch: &OutputBatch) -> Result<InsertStats, ClickHouseError> {
        let d = self.dialect;
        let tables = Table::ALL.map(|t| t.rows(d, batch));
        let mut stats = InsertStats::default();
        for t in tables.iter().filter(|t| !t.lines.is_empty()) {
            for chunk in t.lines.chunks(self.cfg.batch_rows.max(1)) {
                let started = Instant::now();
                let retries = self.insert_chunk(t, chunk)?;
                stats.rows += chunk.len() as u64;
                stats.batches += 1;
                stats.retries += retries;
                metrics::counter!(names::CLICKHOUSE_ROWS_TOTAL, "table" => t.table)
                    .increment(chunk.len() as u64);
                metrics::histogram!(names::CLICKHOUSE_INSERT_SECONDS)
                    .record(started.elapsed().as_secs_f64());
            }
        }
        Ok(stats)
    }

    fn insert_chunk(&self, t: &TableRows, lines: &[String]) -> Result<u64, ClickHouseError> {
        let mut body = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in lines {
            body.extend_from_slice(l.as_bytes());
            body.push(b'\n');
        }
        let mut params = vec![(
            "query",
            format!(
                "INSERT INTO {} ({}) FORMAT JSONEachRow",
                t.table,
                t.columns
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )];
        if self.dialect == Dialect::Current {
            // Same content, same token: a re-delivered batch is dropped.
            params.push((
                "insert_deduplication_token",
                dedup_token(t.table, lines.len(), &body),
            ));
        }
        let body = if self.cfg.compression {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&body)
                .and_then(|_| gz.finish())
                .map_err(|e| ClickHouseError::Client(e.to_string()))?
        } else {
            body
        };
        let mut retries = 0;
        self.with_retries(&format!("insert into {}", t.table), Some(t.table), || {
            retries += 1;
            self.request(params.clone(), body.clone(), self.cfg.compression)
        })?;
        Ok(retries - 1)
    }

    fn request(
        &self,
        params: Vec<(&str, String)>,
        body: Vec<u8>,
        gzip: bool,
    ) -> Result<String, Failure> {
        let mut req = self
            .client
            .post(&self.cfg.url)
            .query(&[("database", self.cfg.database.as_str())])
            .query(&params)
            .basic_auth(&self.cfg.user, Some(&self.cfg.password))
            .body(body);
        if gzip {
            req = req.header("Content-Encoding", "gzip");
        }
        self.rt.block_on(async {
            let resp = req.send().await.map_err(|e| {
                // The error's URL would carry the whole query: leave it out.
                Failure::Retry(format!(
                    "cannot reach {}: {}",
                    redacted_url(&self.cfg.url),
                    error_chain(&e.without_url())
                ))
            })?;
            let status = resp.status().as_u16();
            let text = resp.text().await.map_err(|e| {
                Failure::Retry(format!(
                    "reading the response: {}",
                    error_chain(&e.without_url())
                ))
            })?;
            if status < 300 {
                return Ok(text);
            }
            let message = text.trim().chars().take(600).collect::<String>();
            let code = error_code(&text);
            if status == 401 || status == 403 || code.is_some_and(|c| AUTH_CODES.contains(&c)) {
                return Err(Failure::Fatal(ClickHouseError::Auth {
                    url: redacted_url(&self.cfg.url),
                    user: self.cfg.user.clone(),
                    message,
                }));
            }
            if code == Some(60) || code == Some(81) {
                let table = message
                    .split('`')
                    .nth(1)
                    .or_else(|| message.split_whitespace().nth(4))
                    .unwrap_or("?")
                    .to_string();
                return Err(Failure::Fatal(ClickHouseError::MissingTable {
                    database: self.cfg.database.clone(),
                    table,
                }));
            }
            let permanent = code.is_some_and(|c| PERMANENT_CODES.contains(&c))
                || (400..500).contains(&status) && status != 408 && status != 429;
            if permanent {
                Err(Failure::Fatal(ClickHouseError::Rejected {
                    what: "the request".into(),
                    status,
                    message,
                }))
            } else {
                Err(Failure::Retry(format!("HTTP {status}: {message}")))
            }
        })
    }

    /// Retries transient failures with exponential back-off and jitter
    /// (half the cap plus up to half again). Each retry logs one short line:
    /// the table (or request), the attempt, the wait and the cause.
    fn with_retries(
        &self,
        what: &str,
        table: Option<&str>,
        mut attempt: impl FnMut() -> Result<String, Failure>,
    ) -> Result<String, ClickHouseError> {
        let started = Instant::now();
        let mut n = 0u32;
        loop {
            n += 1;
            match attempt() {
                Ok(text) => return Ok(text),
                Err(Failure::Fatal(ClickHouseError::Rejected {
                    status, message, ..
                })) => {
                    return Err(ClickHouseError::Rejected {
                        what: what.to_string(),
                        status,
                        message,
                    })
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(last)) => {
                    if n > self.cfg.max_retries {
                        return Err(ClickHouseError::RetriesExhausted {
                            what: what.to_string(),
                            attempts: n,
                            secs: started.elapsed().as_secs(),
                            last,
                        });
                    }
                    let wait = backoff(&self.cfg, n);
                    metrics::counter!(names::CLICKHOUSE_RETRIES_TOTAL).increment(1);
                    tracing::warn!(
                        table = table.unwrap_or("-"),
                        request = if table.is_some() { "insert" } else { what },
                        attempt = format!("{n}/{}", self.cfg.max_retries + 1),
                        wait = %crate::config::duration::format(wait),
                        cause = %short(&last, 200),
                        "ClickHouse request failed; retrying"
                    );
                    std::thread::sleep(wait);
                }
            }
        }
    }
}

/// The wait before retry `n` (1-based): `retry_initial` doubling per retry,
/// capped at `retry_max`, then half of it plus a random part of the other half.
fn backoff(cfg: &ClickHouseConfig, n: u32) -> Duration {
    let cap = cfg
        .retry_initial
        .saturating_mul(1 << (n.max(1) - 1).min(16))
        .min(cfg.retry_max);
    let half = cap / 2;
    let spread = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX - 1);
    half + Duration::from_nanos(jitter(spread + 1))
}

/// An error with its sources, `a: b: c`, each said once.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// The first line of `text`, at most `max` characters (for log lines).
fn short(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() <= max {
        line.to_string()
    } else {
        let cut: String = line.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// A pseudo-random number below `n` (jitter; not cryptographic).
fn jitter(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x % n.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes() {
        assert_eq!(
            error_code("Code: 60, e.displayText() = DB::Exception: Table x.y doesn't exist"),
            Some(60)
        );
        assert_eq!(
            error_code("Code: 516. DB::Exception: default: Authentication failed"),
            Some(516)
        );
        assert_eq!(error_code("boom"), None);
    }

    #[test]
    fn columns_per_dialect() {
        let cur = |t: Table| t.columns(Dialect::Current);
        let leg = |t: Table| t.columns(Dialect::Legacy);
        assert!(cur(Table::EventsProcessed).contains(&"timestamp".to_string()));
        assert!(!cur(Table::EventsProcessed).contains(&"timestamp_us".to_string()));
        assert!(leg(Table::EventsProcessed).contains(&"timestamp_us".to_string()));
        assert!(leg(Table::UserJourneys).contains(&"first_ts_us".to_string()));
        assert!(cur(Table::AggHourly).contains(&"hour".to_string()));
        assert!(!cur(Table::AggDaily).contains(&"hour".to_string()));
    }

    #[test]
    fn jitter_is_bounded() {
        for n in [1, 2, 100] {
            assert!(jitter(n) < n);
        }
    }

    #[test]
    fn dedup_token_is_the_published_xxh3_128_of_the_body() {
        // The expected hash is computed by the reference implementation
        // (python-xxhash: `xxhash.xxh3_128_intdigest`), not by this crate.
        let body = b"{\"a\":1}\n{\"a\":2}\n";
        assert_eq!(
            dedup_token("agg_daily", 2, body),
            "neonblue-v1-agg_daily-2-b0f50a1de50c8d4d55e73022c3e319a2"
        );
    }

    #[test]
    fn only_plain_identifiers_reach_sql() {
        for ok in ["neonblue", "_x", "db_2"] {
            assert!(check_identifier("database", ok).is_ok(), "{ok}");
        }
        for bad in ["", "2db", "a-b", "a`b", "x'; DROP TABLE t; --", "a.b", "é"] {
            let e = check_identifier("database", bad).unwrap_err().to_string();
            assert!(e.contains("not a plain identifier"), "{bad}: {e}");
        }
        let cfg = ClickHouseConfig {
            url: "http://127.0.0.1:1".into(),
            database: "x`y".into(),
            ..Default::default()
        };
        assert!(matches!(
            ClickHouseSink::unchecked(&cfg),
            Err(ClickHouseError::BadIdentifier { .. })
        ));
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redacted_url("http://alice:s3cret@ch:8123/"),
            "http://alice:****@ch:8123/"
        );
        assert_eq!(redacted_url("http://ch:8123"), "http://ch:8123");
        let cfg = ClickHouseConfig {
            url: "http://alice:s3cret@ch:8123/".into(),
            password: "hunter2".into(),
            ..Default::default()
        };
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("hunter2"),
            "{shown}"
        );
        let mut kafka = crate::config::KafkaConfig::default();
        for (k, v) in [
            ("sasl.password", "p1"),
            ("ssl.key.password", "p2"),
            ("sasl.oauthbearer.client.secret", "p3"),
            ("sasl.username", "bob"),
        ] {
            kafka.properties.insert(k.into(), v.into());
        }
        let shown = format!("{kafka:?}");
        assert!(shown.contains("bob"), "{shown}");
        for secret in ["p1", "p2", "p3"] {
            assert!(!shown.contains(&format!("\"{secret}\"")), "{shown}");
        }
    }

    #[test]
    fn an_unreachable_server_error_names_neither_password_nor_query() {
        let cfg = ClickHouseConfig {
            url: "http://alice:s3cret@127.0.0.1:9/".into(),
            password: "hunter2".into(),
            max_retries: 0,
            ..Default::default()
        };
        let sink = ClickHouseSink::unchecked(&cfg).unwrap();
        let e = sink
            .query("SELECT 'the query text'", "probe")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret") && !e.contains("hunter2"), "{e}");
        assert!(!e.contains("query text"), "{e}");
    }

    #[test]
    fn a_retry_logs_one_short_line_with_table_attempt_wait_and_cause() {
        use std::io::{Read, Write};
        // A server that fails every request with a long message echoing the query.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 65536];
                let _ = stream.read(&mut buf);
                let body = format!(
                    "Code: 202. DB::Exception: Too many simultaneous queries. {}",
                    "INSERT%20INTO%20x ".repeat(100)
                );
                let _ = write!(
                    stream,
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        let cfg = ClickHouseConfig {
            url: format!("http://{addr}/"),
            max_retries: 2,
            retry_initial: Duration::from_millis(5),
            retry_max: Duration::from_millis(8),
            ..Default::default()
        };
        let sink = ClickHouseSink::unchecked(&cfg).unwrap();
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let err = tracing::subscriber::with_default(subscriber, || {
            sink.insert(&tables::sample_batch()).unwrap_err()
        });
        assert!(
            matches!(err, ClickHouseError::RetriesExhausted { attempts: 3, .. }),
            "{err}"
        );
        let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        for (i, line) in lines.iter().enumerate() {
            assert!(line.len() < 400, "{} chars: {line}", line.len());
            assert!(
                line.contains("table=\"events_processed\"")
                    || line.contains("table=events_processed"),
                "{line}"
            );
            assert!(
                line.contains(&format!("attempt=\"{}/3\"", i + 1))
                    || line.contains(&format!("attempt={}/3", i + 1)),
                "{line}"
            );
            assert!(line.contains("wait="), "{line}");
            assert!(
                line.contains(
                    "cause=HTTP 503: Code: 202. DB::Exception: Too many simultaneous queries."
                ),
                "{line}"
            );
        }
        assert_eq!(short("abc\ndef", 10), "abc");
        assert_eq!(short("abcdef", 3), "abc…");
        let b = backoff(&cfg, 1);
        assert!(
            b >= Duration::from_micros(2500) && b <= Duration::from_millis(5),
            "{b:?}"
        );
        assert!(backoff(&cfg, 30) <= Duration::from_millis(8));
    }
}
