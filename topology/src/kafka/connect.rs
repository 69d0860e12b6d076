//! Connecting to the cluster: a metadata request that fails fast, with an
//! actionable message, when the client configuration cannot work.
//!
//! librdkafka treats every connection failure as transient and retries
//! forever, so a wrong CA, a host name the certificate does not name, a TLS
//! port spoken to in plaintext (or the reverse), a rejected client
//! certificate or failed SASL authentication would otherwise surface as a
//! metadata timeout after [`ADMIN_TIMEOUT`](super::ADMIN_TIMEOUT) with no
//! reason. [`fetch_metadata`] checks the files the configuration names,
//! collects the client's error and log events while it asks for metadata,
//! and stops as soon as one of them is a configuration problem
//! ([`diagnose`]). Brokers that are merely not reachable yet (connection
//! refused, name resolution) are retried until the timeout, whose error
//! carries the last reason seen.
//!
//! Secrets never reach errors or logs: every message passes through
//! [`redact`], which blanks the values of the configuration's secret
//! properties (`sasl.password`, `ssl.key.password`, …).

use super::KafkaError;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::metadata::Metadata;
use rdkafka::ClientConfig;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A connection problem that retrying cannot fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectProblem {
    /// What is wrong, in words.
    pub problem: String,
    /// Which properties to fix, and how.
    pub fix: String,
    /// The client library's own message (redacted).
    pub detail: String,
}

impl std::fmt::Display for ConnectProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}. {}", self.problem, self.fix)?;
        if !self.detail.is_empty() {
            write!(f, " (librdkafka: {})", self.detail)?;
        }
        Ok(())
    }
}

/// True for properties whose values must not appear in messages.
pub fn is_secret_property(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("password")
        || n.contains("secret")
        || n == "ssl.key.pem"
        || n == "ssl_key"
        || n == "sasl.oauthbearer.config"
}

/// `text` with every value of a secret property of `config` replaced by `***`.
pub fn redact(config: &ClientConfig, text: &str) -> String {
    let mut secrets: Vec<&str> = config
        .config_map()
        .iter()
        .filter(|(k, v)| is_secret_property(k) && !v.is_empty())
        .map(|(_, v)| v.as_str())
        .collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for s in secrets {
        out = out.replace(s, "***");
    }
    out
}

/// Classifies a librdkafka error or log message of a client with
/// `security_protocol` (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`).
/// `None`: not a configuration problem (or not recognised), worth retrying.
pub fn diagnose(message: &str, security_protocol: &str) -> Option<ConnectProblem> {
    let protocol = security_protocol.to_ascii_lowercase();
    let tls = protocol.ends_with("ssl");
    let sasl = protocol.starts_with("sasl");
    let m = message.to_ascii_lowercase();
    let p = |problem: &str, fix: &str| {
        Some(ConnectProblem {
            problem: problem.into(),
            fix: fix.into(),
            detail: message.trim().to_string(),
        })
    };
    let handshake = m.contains("ssl handshake failed");
    if m.contains("certificate verify failed") || m.contains("could not be verified") {
        return p(
            UNTRUSTED,
            "Set ssl.ca.location to the PEM file of the CA that signed the brokers' certificates \
             (for a public CA, install the system CA certificates and leave ssl.ca.location unset)",
        );
    }
    if m.contains("alert certificate required")
        || m.contains("alert bad certificate")
        || m.contains("alert unknown ca")
        || m.contains("alert certificate unknown")
        || (handshake && m.contains("alert handshake failure"))
    {
        return p(
            "TLS: the broker rejected the connection for want of a client certificate it trusts (mutual TLS)",
            "Set ssl.certificate.location and ssl.key.location (and ssl.key.password for an encrypted key) \
             to a client certificate signed by a CA the brokers trust",
        );
    }
    if (handshake
        && (m.contains("wrong version number")
            || m.contains("packet length too long")
            || m.contains("record layer failure")
            || m.contains("http request")))
        || (tls && m.contains("timed out in state ssl_handshake"))
    {
        return p(
            "TLS: the broker did not answer the TLS handshake; the port probably serves PLAINTEXT or SASL_PLAINTEXT",
            "Check security.protocol (PLAINTEXT or SASL_PLAINTEXT for a port without TLS) and the port in bootstrap.servers",
        );
    }
    if handshake {
        return p(
            "TLS: the handshake with the broker failed",
            "Check security.protocol and the ssl.* properties (ssl.ca.location, ssl.certificate.location, ssl.key.location)",
        );
    }
    if !tls
        && (m.contains("connecting to a ssl listener")
            || (m.contains("disconnected") && m.contains("state apiversion_query")))
    {
        return p(
            PLAINTEXT_TO_TLS,
            "Set security.protocol=SSL (or SASL_SSL with SASL), and ssl.ca.location for a private CA",
        );
    }
    if m.contains("mechanism handshake failed")
        || m.contains("unsupported sasl mechanism")
        || m.contains("no worthy mechs")
    {
        return p(
            "SASL: the broker does not accept the configured mechanism",
            "Set sasl.mechanism to one the cluster enables (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, GSSAPI, OAUTHBEARER)",
        );
    }
    if m.contains("sasl authentication error")
        || m.contains("authentication failed")
        || m.contains("invalid credentials")
        || m.contains("invalid username or password")
    {
        return p(
            "SASL: authentication failed",
            "Check sasl.mechanism, sasl.username and sasl.password (the password is not shown), \
             and that security.protocol is SASL_SSL or SASL_PLAINTEXT as the cluster expects",
        );
    }
    if !sasl
        && (m.contains("broker might require sasl authentication")
            || (m.contains("disconnected") && ms_in_state(&m, "up").is_some_and(|ms| ms < 2000)))
    {
        return p(
            SASL_REQUIRED,
            "Set security.protocol=SASL_SSL (or SASL_PLAINTEXT), sasl.mechanism, sasl.username and sasl.password",
        );
    }
    None
}

/// `N` of librdkafka's suffix `(after Nms in state STATE…)` (lower case).
fn ms_in_state(m: &str, state: &str) -> Option<u64> {
    let i = m.find("(after ")? + "(after ".len();
    let (n, rest) = m[i..].split_once("ms in state ")?;
    let s = rest.split([')', ',']).next()?;
    (s == state).then(|| n.parse().ok()).flatten()
}

const UNTRUSTED: &str = "TLS: the broker's certificate could not be verified \
     (certificate verify failed: not signed by a CA in ssl.ca.location or the system store, or expired)";
const HOSTNAME_MISMATCH: &str =
    "TLS: the broker's certificate is trusted but does not name the host it was reached at \
     (certificate verify failed: hostname mismatch)";
const SASL_REQUIRED: &str =
    "the broker closed every connection right after it was set up; it probably requires SASL authentication";
const PLAINTEXT_TO_TLS: &str =
    "the broker closed every connection before answering; the port probably expects TLS";

/// Messages that could be a passing state (a broker restarting) must be
/// seen this often before the start fails.
fn needs_repeats(p: &ConnectProblem) -> usize {
    if p.problem == PLAINTEXT_TO_TLS || p.problem == SASL_REQUIRED {
        2
    } else {
        1
    }
}

/// The features librdkafka was built with (`builtin.features`: `ssl`,
/// `sasl_scram`, `zstd`, …).
pub fn builtin_features() -> Vec<String> {
    ClientConfig::new()
        .create_native_config()
        .and_then(|c| c.get("builtin.features"))
        .map(|f| f.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default()
}

/// Checks that the files named by `*.location` properties (and the Kerberos
/// keytab) exist and can be read: librdkafka's own message for a missing CA
/// file is an OpenSSL error code.
pub fn check_files(config: &ClientConfig) -> Result<(), ConnectProblem> {
    for (k, v) in config.config_map() {
        let file_property = k.ends_with(".location") || k == "sasl.kerberos.keytab";
        if !file_property || v.is_empty() || (k == "ssl.ca.location" && v == "probe") {
            continue;
        }
        let path = Path::new(v);
        let readable = if path.is_dir() {
            std::fs::read_dir(path).map(|_| ())
        } else {
            std::fs::File::open(path).map(|_| ())
        };
        if let Err(e) = readable {
            return Err(ConnectProblem {
                problem: format!("{k}: cannot read {v}: {e}"),
                fix: format!("Set {k} to an existing, readable PEM file"),
                detail: String::new(),
            });
        }
    }
    Ok(())
}

/// Explains a client-creation error (librdkafka loads the certificate and
/// key files when the client is created).
fn creation_problem(config: &ClientConfig, e: &rdkafka::error::KafkaError) -> KafkaError {
    let text = match e {
        // Its message ends with the value, which may be a secret under a
        // misspelt name (`sasl.pasword`): name the property only.
        rdkafka::error::KafkaError::ClientConfig(_, desc, key, _) => {
            format!("{desc} (property {key})")
        }
        e => redact(config, &e.to_string()),
    };
    let m = text.to_ascii_lowercase();
    let problem = |problem: &str, fix: &str| {
        KafkaError::Connection(ConnectProblem {
            problem: problem.into(),
            fix: fix.into(),
            detail: text.clone(),
        })
    };
    if m.contains("ssl.key.location") || m.contains("ssl.key.pem") {
        problem(
            "TLS: the client's private key cannot be loaded (wrong ssl.key.password, or not a PEM private key)",
            "Check ssl.key.location and ssl.key.password (the password is not shown)",
        )
    } else if m.contains("ssl.certificate.location") || m.contains("ssl.certificate.pem") {
        problem(
            "TLS: the client certificate cannot be loaded",
            "Set ssl.certificate.location to a PEM certificate matching ssl.key.location",
        )
    } else if m.contains("ssl.ca.location") || m.contains("ssl.ca.pem") {
        problem(
            "TLS: the CA certificates cannot be loaded",
            "Set ssl.ca.location to a PEM file (or directory) of CA certificates",
        )
    } else if m.contains("ssl") || m.contains("sasl") || m.contains("security.protocol") {
        problem(
            "the security settings are not valid",
            "Check security.protocol and the ssl.* / sasl.* properties",
        )
    } else {
        KafkaError::Connection(ConnectProblem {
            problem: "invalid client configuration".into(),
            fix: "Check the Kafka properties".into(),
            detail: text,
        })
    }
}

/// Collects the messages of a probing client.
struct ProbeContext {
    secrets: ClientConfig,
    /// (message, worth a warning)
    seen: Mutex<Vec<(String, bool)>>,
}

impl ProbeContext {
    fn record(&self, message: &str, warn: bool) {
        // Log lines start with the thread name, `[thrd:…]: `.
        let message = match message.strip_prefix("[thrd:") {
            Some(rest) => rest.split_once("]: ").map_or(message, |(_, m)| m),
            None => message,
        };
        let message = redact(&self.secrets, message);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() < 1024 {
            seen.push((message, warn));
        }
    }
}

impl ClientContext for ProbeContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let level = level as i32;
        if level <= RDKafkaLogLevel::Info as i32 {
            // Connection closes are logged at info level (and not raised as
            // errors): a TLS listener spoken to in plaintext shows only there.
            self.record(log_message, level <= RDKafkaLogLevel::Warning as i32);
        } else {
            tracing::debug!(target: "librdkafka", "{fac} {}", redact(&self.secrets, log_message));
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.record(&format!("{error}: {reason}"), true);
    }
}

impl ConsumerContext for ProbeContext {}

/// `message` without librdkafka's variable suffix `(after 3ms in state …)`.
fn stem(message: &str) -> &str {
    message.find(" (after ").map_or(message, |i| &message[..i])
}

/// Cluster metadata (all topics) from the brokers of `config`, within
/// `timeout`; fails within seconds on a configuration problem (see the
/// module documentation).
pub fn fetch_metadata(config: &ClientConfig, timeout: Duration) -> Result<Metadata, KafkaError> {
    check_files(config).map_err(KafkaError::Connection)?;
    match probe(config, timeout) {
        Err(KafkaError::Connection(p))
            if p.problem == UNTRUSTED
                && config.get("ssl.endpoint.identification.algorithm") != Some("none") =>
        {
            // Trusted once the host name is not checked: the CA is right and
            // the name is wrong.
            let mut relaxed = config.clone();
            relaxed.set("ssl.endpoint.identification.algorithm", "none");
            if probe(&relaxed, Duration::from_secs(5)).is_ok() {
                return Err(KafkaError::Connection(ConnectProblem {
                    problem: HOSTNAME_MISMATCH.into(),
                    fix: "Reach the brokers by a host name their certificates name (bootstrap.servers, and the \
                          brokers' advertised listeners), or have the certificates issued for those names; \
                          ssl.endpoint.identification.algorithm=none turns the check off (not recommended)"
                        .into(),
                    detail: p.detail,
                }));
            }
            Err(KafkaError::Connection(p))
        }
        other => other,
    }
}

fn probe(config: &ClientConfig, timeout: Duration) -> Result<Metadata, KafkaError> {
    let mut secrets = ClientConfig::new();
    for (k, v) in config.config_map() {
        if is_secret_property(k) {
            secrets.set(k, v);
        }
    }
    let protocol = config.get("security.protocol").unwrap_or("plaintext");
    let mut probe_config = config.clone();
    probe_config.set("allow.auto.create.topics", "false");
    // A TLS client on a plaintext port waits this long for the broker's
    // half of the handshake (librdkafka's default: 30 s).
    super::set_unless_given(
        &mut probe_config,
        "socket.connection.setup.timeout.ms",
        "8000",
    );
    let context = ProbeContext {
        secrets,
        seen: Mutex::new(Vec::new()),
    };
    let consumer: BaseConsumer<ProbeContext> = probe_config
        .create_with_context(context)
        .map_err(|e| creation_problem(config, &e))?;
    let deadline = Instant::now() + timeout;
    let mut step = Duration::from_millis(250);
    let mut warned: Vec<String> = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let result = consumer.fetch_metadata(None, step.min(left).max(Duration::from_millis(1)));
        // Serve the queued error and log events into the context.
        for _ in 0..64 {
            let _ = consumer.poll(Duration::ZERO);
        }
        let seen = consumer
            .context()
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let e = match result {
            Ok(md) => return Ok(md),
            Err(e) => e,
        };
        let mut counts: Vec<(ConnectProblem, usize)> = Vec::new();
        for p in seen.iter().filter_map(|(m, _)| diagnose(m, protocol)) {
            match counts.iter_mut().find(|(q, _)| q.problem == p.problem) {
                Some((_, n)) => *n += 1,
                None => counts.push((p, 1)),
            }
        }
        if let Some((p, _)) = counts.into_iter().find(|(p, n)| *n >= needs_repeats(p)) {
            return Err(KafkaError::Connection(p));
        }
        for (m, warn) in &seen {
            let s = stem(m);
            if *warn && !s.contains("AllBrokersDown") && !warned.iter().any(|w| w == s) {
                tracing::warn!("connecting to the brokers: {s}");
                warned.push(s.to_string());
            }
        }
        if Instant::now() >= deadline {
            let last = seen
                .iter()
                .rev()
                .find(|(m, _)| !m.contains("AllBrokersDown"))
                .map(|(m, _)| format!("; last error: {m}"))
                .unwrap_or_default();
            return Err(KafkaError::Timeout(format!(
                "no metadata from the brokers within {timeout:?} ({}){last}",
                redact(config, &e.to_string())
            )));
        }
        step = (step * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secret_values() {
        let mut c = ClientConfig::new();
        c.set("sasl.password", "hunter2-pw")
            .set("ssl.key.password", "k3y")
            .set("sasl.username", "alice");
        let r = redact(&c, "user alice pw hunter2-pw key k3y");
        assert_eq!(r, "user alice pw *** key ***");
        assert!(is_secret_property("sasl.oauthbearer.client.secret"));
        assert!(!is_secret_property("ssl.ca.location"));
    }

    /// The client is built with what secured and compressed clusters need.
    #[test]
    fn built_with_tls_sasl_and_codecs() {
        let features = builtin_features();
        for f in [
            "ssl",
            "sasl",
            "sasl_plain",
            "sasl_scram",
            "sasl_gssapi",
            "sasl_oauthbearer",
            "zstd",
            "lz4",
            "snappy",
            "gzip",
        ] {
            assert!(
                features.iter().any(|x| x == f),
                "librdkafka lacks {f}: {features:?}"
            );
        }
    }

    #[test]
    fn a_misspelt_secret_property_is_not_echoed() {
        let mut c = ClientConfig::new();
        c.set("sasl.pasword", "hunter2-pw");
        let e = fetch_metadata(&c, Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sasl.pasword"), "{e}");
        assert!(!e.contains("hunter2-pw"), "{e}");
    }

    #[test]
    fn missing_files_are_named() {
        let mut c = ClientConfig::new();
        c.set("ssl.ca.location", "/nonexistent/ca.pem");
        let e = check_files(&c).unwrap_err();
        assert!(e.problem.contains("ssl.ca.location"), "{e}");
        assert!(e.problem.contains("/nonexistent/ca.pem"), "{e}");
        c.set("ssl.ca.location", "probe");
        assert!(check_files(&c).is_ok());
    }

    /// Messages of librdkafka 2.12 captured against Tansu behind stunnel.
    #[test]
    fn diagnoses_real_messages() {
        let cases: [(&str, &str, &str, &str); 8] = [
            (
                "ssl://localhost:19600/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: \
                 broker certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA \
                 certificates are installed (install ca-certificates package) (after 4ms in state SSL_HANDSHAKE)",
                "SSL",
                "certificate verify failed",
                "ssl.ca.location",
            ),
            (
                "ssl://localhost:19601/bootstrap: Receive failed: error:0A00045C:SSL routines::tlsv13 alert certificate required: \
                 SSL alert number 116 (after 5ms in state APIVERSION_QUERY)",
                "SSL",
                "client certificate",
                "ssl.certificate.location",
            ),
            (
                "localhost:19600/bootstrap: Disconnected: connection reset by peer (after 11ms in state APIVERSION_QUERY)",
                "PLAINTEXT",
                "expects TLS",
                "security.protocol=SSL",
            ),
            (
                "ssl://127.0.0.1:19610/bootstrap: Connection setup timed out in state SSL_HANDSHAKE (after 8000ms in state SSL_HANDSHAKE)",
                "SSL",
                "PLAINTEXT",
                "security.protocol",
            ),
            (
                "ssl://localhost:19602/bootstrap: Disconnected: SSL connection closed by peer (after 0ms in state UP)",
                "SSL",
                "requires SASL",
                "sasl.mechanism",
            ),
            (
                "sasl_ssl://localhost:19602/bootstrap: SASL authentication error: SASL SCRAM authentication failed: \
                 broker responded with unknown-user (after 124ms in state AUTH_REQ)",
                "SASL_SSL",
                "SASL: authentication failed",
                "sasl.password",
            ),
            (
                "sasl_ssl://localhost:19602/bootstrap: SASL PLAIN mechanism handshake failed: Local: Broker transport failure: \
                 broker's supported mechanisms: (n/a) (after 0ms in state DOWN)",
                "SASL_SSL",
                "mechanism",
                "sasl.mechanism",
            ),
            (
                "localhost:19600/bootstrap: SSL handshake failed: error:0A00010B:SSL routines::wrong version number (after 1ms in state SSL_HANDSHAKE)",
                "SSL",
                "PLAINTEXT",
                "security.protocol",
            ),
        ];
        for (message, protocol, problem, property) in cases {
            let p =
                diagnose(message, protocol).unwrap_or_else(|| panic!("not diagnosed: {message}"));
            assert!(p.problem.contains(problem), "{message}: {p}");
            assert!(p.fix.contains(property), "{message}: {p}");
        }
        for transient in [
            "127.0.0.1:19699/bootstrap: Connect to ipv4#127.0.0.1:19699 failed: Connection refused (after 0ms in state CONNECT)",
            "Global error: AllBrokersDown (Local: All broker connections are down): 1/1 brokers are down",
            "kafka:9092/bootstrap: Failed to resolve 'kafka:9092': Name or service not known (after 2ms in state CONNECT)",
        ] {
            for protocol in ["PLAINTEXT", "SSL", "SASL_SSL"] {
                assert_eq!(diagnose(transient, protocol), None, "{transient}");
            }
        }
        // A connection closed long after it came up: the broker's idle reaper.
        assert_eq!(
            diagnose(
                "ssl://b:9093/1: Disconnected: SSL connection closed by peer (after 600012ms in state UP)",
                "SSL"
            ),
            None
        );
        assert_eq!(
            ms_in_state(
                "x (after 12ms in state up, 1 identical error(s) suppressed)",
                "up"
            ),
            Some(12)
        );
        // A disconnect during the handshake of a TLS client is no hint of a TLS port.
        assert_eq!(
            diagnose(
                "Disconnected: connection reset by peer (after 1ms in state APIVERSION_QUERY)",
                "SASL_SSL"
            ),
            None
        );
    }
}
