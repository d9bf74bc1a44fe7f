//! How every Kafka client of the project connects: the bootstrap servers plus any librdkafka client property
//! (security, timeouts, tuning), read from a Java-style properties file (`--kafka-config FILE`, the format Kafka
//! users already have) and `key=value` assignments (`-X key=value`), and a connection check that fails fast and says
//! whether authentication or TLS failed.
//!
//! Java client files are accepted as they are where librdkafka has the same setting under another name:
//! `sasl.jaas.config` with `username="…" password="…"` becomes `sasl.username`/`sasl.password`; Java-only settings
//! with no librdkafka equivalent (`ssl.truststore.*`, serializers) are refused with the name of the property to use
//! instead, not passed on to fail later. Values are never part of an error message or a log line (they may be
//! secrets); [`KafkaSettings`]'s `Debug` output redacts every value whose name marks it secret.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// Bootstrap servers and extra librdkafka client properties, shared by every client a command or service opens.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Extra librdkafka properties, in the order given (a later one overrides an earlier one).
    pub properties: Vec<(String, String)>,
}

/// A bad properties file or assignment: says which file or argument, which line, and what is wrong (never a value).
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {reason}")]
pub struct SettingsError {
    /// The file (with line) or argument.
    pub origin: String,
    /// What is wrong.
    pub reason: String,
}

/// The `[kafka]` table of a service's TOML configuration file, the same model as the command-line options:
///
/// ```toml
/// [kafka]
/// brokers = "kafka-1:9093,kafka-2:9093"
/// config_file = "/etc/hule/client.properties"   # a Java-style properties file, optional
/// [kafka.properties]                             # any librdkafka property, optional
/// "security.protocol" = "SASL_SSL"
/// ```
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSection {
    /// `bootstrap.servers`.
    pub brokers: Option<String>,
    /// A Java-style properties file (read first).
    pub config_file: Option<std::path::PathBuf>,
    /// librdkafka properties (applied after the file).
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
}

impl KafkaSection {
    /// Applies the section under what `settings` already has: brokers only when none are set, and properties the
    /// settings do not set themselves (so flags and environment win over the file).
    pub fn apply_under(&self, settings: &mut KafkaSettings) -> Result<(), SettingsError> {
        let mut from_file = KafkaSettings::new(self.brokers.as_deref().unwrap_or(""));
        if let Some(path) = &self.config_file {
            from_file.add_file(path)?;
        }
        for (k, v) in &self.properties {
            from_file.add(k, v, &format!("[kafka.properties] {k}"))?;
        }
        if settings.brokers.trim().is_empty() {
            settings.brokers = from_file.brokers;
        }
        let given: Vec<(String, String)> = std::mem::take(&mut settings.properties);
        settings.properties = from_file.properties;
        for (k, v) in given {
            settings.push(&k, &v);
        }
        Ok(())
    }
}

/// Asks librdkafka whether it takes `key = value`, now rather than when a client is made; the reason never holds
/// the value when the name is unknown (a misspelled `sasl.pasword`) or looks secret.
fn check_property(key: &str, value: &str) -> Result<(), String> {
    let mut cc = ClientConfig::new();
    cc.set(key, value);
    match cc.create_native_config() {
        Ok(_) => Ok(()),
        Err(KafkaError::ClientConfig(_, description, _, _)) => {
            let unknown = description.contains("No such configuration property");
            let description = if (unknown || is_secret(key)) && !value.is_empty() {
                description.replace(value, hule_secrets::MASK)
            } else {
                description
            };
            Err(if unknown {
                format!("librdkafka has no property `{key}` (is it misspelled?); its value is not shown")
            } else {
                description
            })
        }
        Err(e) => Err(format!("`{key}`: {e}")),
    }
}

/// Deserializes a duration given in milliseconds (configuration files: `commit_interval_ms = 500`).
pub fn millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_millis)
}

/// Deserializes a table of librdkafka properties into ordered pairs.
pub fn property_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<(String, String)>, D::Error> {
    let pairs: Vec<(String, String)> =
        <std::collections::BTreeMap<String, String> as serde::Deserialize>::deserialize(d)?
            .into_iter()
            .collect();
    // Checked here, as `-X` and `--kafka-config` are: a client created later would report a misspelled property
    // with its value, and that value may be a password.
    for (key, value) in &pairs {
        check_property(key, value).map_err(serde::de::Error::custom)?;
    }
    Ok(pairs)
}

/// A Kafka client error for output: a configuration error names the property and never its value (librdkafka's
/// own text of it ends with the value, which may be a password).
pub fn describe_client_error(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, description, key, value) => {
            let description = if value.is_empty() {
                description.clone()
            } else {
                description.replace(value.as_str(), hule_secrets::MASK)
            };
            format!("invalid client configuration `{key}`: {description} (the value is not shown)")
        }
        other => other.to_string(),
    }
}

/// Names whose values are secrets: never printed ([`hule_secrets::is_secret_name`]; unknown and misspelled names
/// that look like one count as one).
pub fn is_secret(name: &str) -> bool {
    hule_secrets::is_secret_name(name)
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("properties", &hule_secrets::PropertyList(&self.properties))
            .finish()
    }
}

impl KafkaSettings {
    /// Bootstrap servers only (plaintext, no authentication).
    pub fn new(brokers: &str) -> Self {
        KafkaSettings {
            brokers: brokers.to_owned(),
            properties: Vec::new(),
        }
    }

    /// Adds the properties of a Java-style properties file. A `bootstrap.servers` in the file sets the brokers when
    /// none were given.
    pub fn add_file(&mut self, path: &Path) -> Result<(), SettingsError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SettingsError {
            origin: origin.clone(),
            reason: format!("cannot read the Kafka properties file: {e}"),
        })?;
        for (line, key, value) in
            parse_properties(&text).map_err(|(line, reason)| SettingsError {
                origin: format!("{origin}:{line}"),
                reason,
            })?
        {
            self.add(&key, &value, &format!("{origin}:{line}"))?;
        }
        Ok(())
    }

    /// Adds one `key=value` assignment (`-X`); `origin` names it in errors.
    pub fn add_assignment(&mut self, assignment: &str) -> Result<(), SettingsError> {
        let Some((key, value)) = assignment.split_once('=') else {
            return Err(SettingsError {
                origin: "-X".into(),
                reason:
                    "an argument is not KEY=VALUE (it is not repeated here: it may hold a secret)"
                        .into(),
            });
        };
        self.add(key.trim(), value.trim(), &format!("-X {}", key.trim()))
    }

    /// Adds one property after translating Java client names; refuses what librdkafka cannot do.
    pub fn add(&mut self, key: &str, value: &str, origin: &str) -> Result<(), SettingsError> {
        let err = |reason: String| SettingsError {
            origin: origin.to_owned(),
            reason,
        };
        if key.is_empty() {
            return Err(err("empty property name".into()));
        }
        match key {
            "bootstrap.servers" | "metadata.broker.list" => {
                if self.brokers.is_empty() {
                    self.brokers = value.to_owned();
                }
            }
            "sasl.jaas.config" => {
                let (user, pass) = jaas_credentials(value).ok_or_else(|| {
                    err("sasl.jaas.config: only the username=\"…\" password=\"…\" form (PLAIN, SCRAM) is understood; \
                         set sasl.username and sasl.password instead"
                        .into())
                })?;
                self.push("sasl.username", &user);
                self.push("sasl.password", &pass);
            }
            k if k.starts_with("ssl.truststore.") => {
                return Err(err(format!(
                    "{k} is a Java truststore setting that librdkafka does not have; give the CA certificate as a \
                     PEM file with ssl.ca.location"
                )))
            }
            k if k.ends_with(".serializer") || k.ends_with(".deserializer") => {
                return Err(err(format!(
                    "{k} is a Java client setting; hule-events (de)serializes records itself, remove it"
                )))
            }
            _ => {
                check_property(key, value).map_err(err)?;
                self.push(key, value)
            }
        }
        Ok(())
    }

    /// Sets a property as given, without translation or checks.
    fn push(&mut self, key: &str, value: &str) {
        self.properties.retain(|(k, _)| k != key);
        self.properties.push((key.to_owned(), value.to_owned()));
    }

    /// The value of a property, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A librdkafka configuration with `bootstrap.servers` and every property.
    pub fn client_config(&self) -> ClientConfig {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            cc.set(k, v);
        }
        cc
    }

    /// `security.protocol`, `PLAINTEXT` when not set.
    pub fn security_protocol(&self) -> String {
        self.get("security.protocol")
            .unwrap_or("plaintext")
            .to_ascii_uppercase()
    }
}

/// `username="u" password="p"` out of a JAAS line.
fn jaas_credentials(value: &str) -> Option<(String, String)> {
    let field = |name: &str| -> Option<String> {
        let start = value.find(&format!("{name}=\""))? + name.len() + 2;
        let rest = &value[start..];
        let end = rest.find('"')?;
        Some(rest[..end].to_owned())
    };
    Some((field("username")?, field("password")?))
}

/// One entry of a properties file: (line, key, value).
pub type Property = (usize, String, String);

/// The last error librdkafka reported: its code (when it has one) and reason.
type LastError = Option<(Option<RDKafkaErrorCode>, String)>;

/// Parses a Java properties document (with the `java-properties` crate): `key=value`, `key: value` or
/// `key value`, `#`/`!` comments, backslash line continuations and escapes. Returns (line, key, value).
pub fn parse_properties(text: &str) -> Result<Vec<Property>, (usize, String)> {
    let mut out = Vec::new();
    for line in java_properties::PropertiesIter::new(text.as_bytes()) {
        let line = line.map_err(|e| {
            (
                e.line_number().unwrap_or(0),
                format!("not a properties file: {e}"),
            )
        })?;
        let number = line.line_number();
        if let java_properties::LineContent::KVPair(k, v) = line.consume_content() {
            out.push((number, k, v));
        }
    }
    Ok(out)
}

/// Why a connection check failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The brokers refused the credentials (SASL).
    #[error("Kafka authentication failed at `{brokers}` ({mechanism}): {detail}; check sasl.username/sasl.password and sasl.mechanism")]
    Authentication {
        /// Bootstrap servers.
        brokers: String,
        /// The SASL mechanism tried.
        mechanism: String,
        /// librdkafka's reason (never contains the password).
        detail: String,
    },
    /// The TLS handshake failed (untrusted or wrong certificate, protocol mismatch).
    #[error("Kafka TLS handshake failed at `{brokers}`: {detail}; check ssl.ca.location and that the brokers' certificate names this host")]
    Tls {
        /// Bootstrap servers.
        brokers: String,
        /// librdkafka's reason.
        detail: String,
    },
    /// Nothing answered in time.
    #[error("cannot reach Kafka brokers `{brokers}` within {timeout:?} (security.protocol {protocol}){}; check --brokers and that the cluster is up", last.as_deref().map(|l| format!(": {l}")).unwrap_or_default())]
    Unreachable {
        /// Bootstrap servers.
        brokers: String,
        /// The protocol used.
        protocol: String,
        /// How long we waited.
        timeout: Duration,
        /// The last error librdkafka reported, if any.
        last: Option<String>,
    },
    /// Every address of every bootstrap broker refused the connection, or no bootstrap name resolves: reported at
    /// once, without waiting for the timeout.
    #[error("cannot reach Kafka brokers `{brokers}` (security.protocol {protocol}): {detail}; check --brokers and that the cluster is up")]
    Refused {
        /// Bootstrap servers.
        brokers: String,
        /// The protocol used.
        protocol: String,
        /// librdkafka's reason (a refused connection, a name that does not resolve).
        detail: String,
    },
    /// The settings themselves were refused by librdkafka (unknown property, bad value).
    #[error("invalid Kafka client settings: {0}")]
    Settings(String),
}

/// A client context that keeps the last error librdkafka reported instead of logging every retry: the connection
/// check reads it to say why a connection failed.
#[derive(Clone, Default)]
pub struct ErrorCapture {
    last: Arc<Mutex<Seen>>,
}

/// What the connection check has heard from librdkafka.
#[derive(Clone, Default)]
struct Seen {
    /// The last error, with its code.
    last: LastError,
    /// The addresses that refused a connection, and the last such reason.
    refused: std::collections::HashSet<std::net::SocketAddr>,
    refused_reason: Option<String>,
    /// A bootstrap name that did not resolve, and why.
    unresolved: Option<String>,
}

impl ErrorCapture {
    fn take(&self) -> LastError {
        self.last.lock().map(|g| g.last.clone()).unwrap_or(None)
    }

    /// Why the cluster cannot be reached however long one waits: every address of every bootstrap broker
    /// (`expected`) refused the connection, or (`expected` empty: no bootstrap name resolved here either) librdkafka
    /// could not resolve them. One refused address is not enough: `localhost` is `::1` and `127.0.0.1`, a load
    /// balancer's name many addresses, and the next may answer.
    fn refused(
        &self,
        expected: &std::collections::HashSet<std::net::SocketAddr>,
    ) -> Option<String> {
        let g = self.last.lock().ok()?;
        if expected.is_empty() {
            return g.unresolved.clone();
        }
        expected
            .is_subset(&g.refused)
            .then(|| g.refused_reason.clone())
            .flatten()
    }
}

/// The address in a librdkafka connection failure: `… Connect to ipv4#127.0.0.1:1 failed: Connection refused …`.
fn refused_address(reason: &str) -> Option<std::net::SocketAddr> {
    if !reason.contains("Connection refused") {
        return None;
    }
    let rest = &reason[reason.find("Connect to ")? + "Connect to ".len()..];
    let token = rest.split_whitespace().next()?;
    token.rsplit('#').next()?.parse().ok()
}

/// Every address the bootstrap servers resolve to here (empty when none resolves).
fn bootstrap_addresses(brokers: &str) -> std::collections::HashSet<std::net::SocketAddr> {
    use std::net::ToSocketAddrs as _;
    brokers
        .split(',')
        .map(|b| b.trim())
        .map(|b| b.rsplit("://").next().unwrap_or(b))
        .filter(|b| !b.is_empty())
        .filter_map(|b| b.to_socket_addrs().ok())
        .flatten()
        .collect()
}

impl ClientContext for ErrorCapture {
    fn log(&self, _level: RDKafkaLogLevel, _fac: &str, _log_message: &str) {}

    fn error(&self, error: KafkaError, reason: &str) {
        if let Ok(mut g) = self.last.lock() {
            let code = error.rdkafka_error_code();
            if let Some(addr) = refused_address(reason) {
                g.refused.insert(addr);
                g.refused_reason = Some(reason.to_owned());
            } else if code == Some(RDKafkaErrorCode::Resolve)
                || reason.contains("Failed to resolve")
            {
                g.unresolved = Some(reason.to_owned());
            }
            g.last = Some((code, reason.to_owned()));
        }
    }
}

impl ConsumerContext for ErrorCapture {}

/// Connects with `settings` and fetches the cluster's metadata; returns the number of brokers. Fails as soon as
/// librdkafka reports an authentication or TLS failure (within a second, not after the timeout and not after a
/// storm of retries), naming which it was, and as soon as every address of every bootstrap broker has refused the
/// connection, or no bootstrap name resolves ([`ConnectError::Refused`]); a broker that accepts the connection and
/// never answers costs `timeout`.
pub fn check_connection(
    settings: &KafkaSettings,
    timeout: Duration,
) -> Result<usize, ConnectError> {
    let mut cc = settings.client_config();
    cc.set("log_level", "0");
    let client: BaseConsumer<ErrorCapture> = cc
        .create_with_context(ErrorCapture::default())
        .map_err(|e| ConnectError::Settings(e.to_string()))?;
    let capture = client.context().clone();
    let expected = bootstrap_addresses(&settings.brokers);
    let deadline = Instant::now() + timeout;
    loop {
        let step =
            Duration::from_millis(250).min(deadline.saturating_duration_since(Instant::now()));
        if let Ok(md) = client.fetch_metadata(None, step) {
            return Ok(md.brokers().len());
        }
        // Error events reach the context only when the client's queue is served.
        let _ = client.poll(Duration::ZERO);
        if let Some((code, reason)) = capture.take() {
            match code {
                Some(RDKafkaErrorCode::Authentication) => {
                    return Err(ConnectError::Authentication {
                        brokers: settings.brokers.clone(),
                        mechanism: settings
                            .get("sasl.mechanism")
                            .unwrap_or("GSSAPI")
                            .to_owned(),
                        detail: reason,
                    })
                }
                Some(RDKafkaErrorCode::SSL) => {
                    return Err(ConnectError::Tls {
                        brokers: settings.brokers.clone(),
                        detail: reason,
                    })
                }
                _ => {}
            }
        }
        if let Some(detail) = capture.refused(&expected) {
            return Err(ConnectError::Refused {
                brokers: settings.brokers.clone(),
                protocol: settings.security_protocol(),
                detail,
            });
        }
        if Instant::now() >= deadline {
            return Err(ConnectError::Unreachable {
                brokers: settings.brokers.clone(),
                protocol: settings.security_protocol(),
                timeout,
                last: capture.take().map(|(_, r)| r),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_counts_as_refusing_only_when_every_address_refused() {
        let v4 = "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)";
        let v6 = "localhost:1/bootstrap: Connect to ipv6#[::1]:1 failed: Connection refused (after 0ms in state CONNECT)";
        assert_eq!(refused_address(v4), "127.0.0.1:1".parse().ok());
        assert_eq!(refused_address(v6), "[::1]:1".parse().ok());
        assert_eq!(
            refused_address("Connect to ipv4#127.0.0.1:1 failed: Connection reset by peer"),
            None
        );
        let capture = ErrorCapture::default();
        let expected: std::collections::HashSet<std::net::SocketAddr> = [
            "[::1]:1".parse().expect("v6"),
            "127.0.0.1:1".parse().expect("v4"),
        ]
        .into();
        capture.error(
            KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
            v6,
        );
        assert_eq!(
            capture.refused(&expected),
            None,
            "127.0.0.1 has not refused yet"
        );
        capture.error(
            KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
            v4,
        );
        assert_eq!(capture.refused(&expected).as_deref(), Some(v4));
        // No bootstrap name resolves: librdkafka's resolve failure is the answer.
        let none = std::collections::HashSet::new();
        assert_eq!(ErrorCapture::default().refused(&none), None);
        let capture = ErrorCapture::default();
        capture.error(
            KafkaError::Global(RDKafkaErrorCode::Resolve),
            "x.invalid:9092/bootstrap: Failed to resolve 'x.invalid:9092'",
        );
        assert!(capture.refused(&none).is_some());
    }

    #[test]
    fn java_files_are_read_and_translated() {
        let text = "# a Java client file\n\
                    bootstrap.servers=b1:9093,b2:9093\n\
                    security.protocol = SASL_SSL\n\
                    sasl.mechanism: SCRAM-SHA-512\n\
                    sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n\
                    \x20   username=\"svc\" password=\"p@ss=word\";\n\
                    ssl.ca.location=/etc/ca.pem\n";
        let mut s = KafkaSettings::default();
        for (line, k, v) in parse_properties(text).expect("parses") {
            s.add(&k, &v, &format!("f:{line}")).expect("accepted");
        }
        assert_eq!(s.brokers, "b1:9093,b2:9093");
        assert_eq!(s.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(s.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(s.get("sasl.username"), Some("svc"));
        assert_eq!(s.get("sasl.password"), Some("p@ss=word"));
        assert!(!format!("{s:?}").contains("p@ss"), "Debug redacts secrets");
        // --brokers given first wins over the file's bootstrap.servers.
        let mut given = KafkaSettings::new("mine:9092");
        given
            .add("bootstrap.servers", "theirs:9092", "f")
            .expect("ok");
        assert_eq!(given.brokers, "mine:9092");
    }

    #[test]
    fn a_service_reads_its_kafka_consumer_and_producer_tables_from_toml() {
        #[derive(serde::Deserialize)]
        struct Service {
            kafka: KafkaSection,
            consumer: crate::consumer::ConsumerConfig,
            producer: crate::ProducerConfig,
        }
        let text = r#"
            [kafka]
            brokers = "b1:9093"
            [kafka.properties]
            "security.protocol" = "SASL_SSL"
            "sasl.password" = "from-file"
            [consumer]
            group = "els"
            commit_interval_ms = 250
            [consumer.properties]
            "session.timeout.ms" = "10000"
            [producer]
            linger_ms = 5
        "#;
        let svc: Service = toml::from_str(text).expect("parses");
        // The command line gave a password: it wins over the file's; the file gives the rest.
        let mut settings = KafkaSettings::default();
        settings
            .add("sasl.password", "from-flag", "-X")
            .expect("ok");
        svc.kafka.apply_under(&mut settings).expect("applies");
        assert_eq!(settings.brokers, "b1:9093");
        assert_eq!(settings.get("sasl.password"), Some("from-flag"));
        assert_eq!(settings.get("security.protocol"), Some("SASL_SSL"));
        let mut consumer = svc.consumer;
        consumer.apply_settings(&settings);
        assert_eq!(
            (consumer.brokers.as_str(), consumer.group.as_str()),
            ("b1:9093", "els")
        );
        assert_eq!(consumer.commit_interval, Duration::from_millis(250));
        assert_eq!(
            consumer.queue_per_partition, 256,
            "defaults for what the file leaves out"
        );
        assert!(consumer
            .extra
            .contains(&("session.timeout.ms".into(), "10000".into())));
        assert!(consumer
            .extra
            .contains(&("security.protocol".into(), "SASL_SSL".into())));
        assert_eq!(svc.producer.linger_ms, 5);
        assert_eq!(svc.producer.compression, "lz4");
        assert!(
            toml::from_str::<Service>("[kafka]\nbroker = \"x\"\n[consumer]\n[producer]\n").is_err()
        );
    }

    #[test]
    fn java_only_settings_and_bad_assignments_are_refused_without_their_values() {
        let mut s = KafkaSettings::new("b:1");
        let e = s
            .add("ssl.truststore.location", "/secret/path.jks", "f:3")
            .expect_err("refused");
        assert!(e.to_string().contains("ssl.ca.location") && e.to_string().starts_with("f:3"));
        assert!(!e.to_string().contains("/secret/path.jks"));
        let e = s.add_assignment("sasl.passwordhunter2").expect_err("no =");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        s.add_assignment("sasl.password=hunter2").expect("ok");
        s.add_assignment("sasl.password=hunter3").expect("ok");
        assert_eq!(s.get("sasl.password"), Some("hunter3"), "the last one wins");
        assert_eq!(s.properties.len(), 1);
        assert!(s
            .add(
                "sasl.jaas.config",
                "OAuthBearerLoginModule required;",
                "f:9"
            )
            .is_err());
    }
}
