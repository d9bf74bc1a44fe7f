//! The Kafka connection options every command that opens a Kafka client shares: `--brokers`, `--kafka-config FILE`
//! (a Java-style properties file of librdkafka settings) and repeated `-X key=value`, read into one
//! [`KafkaSettings`]. Precedence: `-X` over the file; `--brokers` (or `HULE_BROKERS`, or the Python services'
//! `KAFKA_BOOTSTRAP_SERVERS`) over the file's `bootstrap.servers`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use hule_kafka::KafkaSettings;

/// How to reach Kafka.
#[derive(Args, Clone)]
pub struct KafkaArgs {
    /// Bootstrap servers, host:port[,host:port…] [env: HULE_BROKERS, or KAFKA_BOOTSTRAP_SERVERS].
    #[arg(long)]
    pub brokers: Option<String>,
    /// A Java-style properties file of librdkafka client settings (security.protocol, sasl.*, ssl.*, …).
    #[arg(long, env = "HULE_KAFKA_CONFIG", value_name = "FILE")]
    pub kafka_config: Option<PathBuf>,
    /// One librdkafka client property, KEY=VALUE; repeatable, applied after --kafka-config. Prefer the file for
    /// secrets: a command line is visible to other users of the machine.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub kafka_property: Vec<String>,
    /// How long to wait for the cluster to answer one request (`500ms`, `10s`, `2m`; 100 ms to 1 h). A refused
    /// connection or a name that does not resolve fails at once instead.
    #[arg(long, env = "HULE_KAFKA_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

impl Default for KafkaArgs {
    fn default() -> Self {
        KafkaArgs {
            brokers: None,
            kafka_config: None,
            kafka_property: Vec::new(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Kafka settings a command connected with, and how long it waits for one request.
#[derive(Debug, Clone)]
pub struct Kafka {
    /// The client settings.
    pub settings: KafkaSettings,
    /// `--timeout`.
    pub timeout: Duration,
}

impl std::ops::Deref for Kafka {
    type Target = KafkaSettings;

    fn deref(&self) -> &KafkaSettings {
        &self.settings
    }
}

/// The bounds of `--timeout`.
const TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(3600);

/// Parses `--timeout`: a duration with its unit, within [`TIMEOUT_RANGE`].
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration ({e}); write it as 500ms, 10s or 2m"))?;
    if !TIMEOUT_RANGE.contains(&d) {
        return Err(format!(
            "{text} is outside 100ms..1h: shorter fails before a healthy cluster answers, longer is not a timeout"
        ));
    }
    Ok(d)
}

/// The flags, with the values of secret `-X` properties masked.
impl std::fmt::Debug for KafkaArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let props: Vec<String> = self
            .kafka_property
            .iter()
            .map(|a| match a.split_once('=') {
                Some((k, v)) => format!("{k}={}", hule_secrets::redact_property(k.trim(), v)),
                // No `=`: the whole argument may be a pasted secret.
                None => hule_secrets::MASK.to_owned(),
            })
            .collect();
        f.debug_struct("KafkaArgs")
            .field("brokers", &self.brokers)
            .field("kafka_config", &self.kafka_config)
            .field("kafka_property", &props)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl KafkaArgs {
    /// Whether any broker was named (flag, environment or file).
    pub fn given(&self) -> bool {
        self.brokers.is_some()
            || env_brokers().is_some()
            || self.kafka_config.is_some()
            || !self.kafka_property.is_empty()
    }

    /// The settings from flags and environment; the brokers may still be empty.
    fn settings_unchecked(&self) -> anyhow::Result<KafkaSettings> {
        let brokers = self
            .brokers
            .clone()
            .or_else(env_brokers)
            .unwrap_or_default();
        let mut s = KafkaSettings::new(&brokers);
        if let Some(path) = &self.kafka_config {
            s.add_file(path)?;
        }
        for a in &self.kafka_property {
            s.add_assignment(a)?;
        }
        Ok(s)
    }

    /// Whether brokers or client settings were named by a flag (or `HULE_KAFKA_CONFIG`), not only by
    /// `HULE_BROKERS`: the commands whose default is the embedded cluster use this.
    pub fn on_command_line(&self) -> bool {
        self.brokers.is_some() || self.kafka_config.is_some() || !self.kafka_property.is_empty()
    }

    /// The settings, without connecting.
    pub fn settings(&self) -> anyhow::Result<KafkaSettings> {
        let s = self.settings_unchecked()?;
        if s.brokers.trim().is_empty() {
            anyhow::bail!(
                "no Kafka brokers: give --brokers (or HULE_BROKERS, or bootstrap.servers in --kafka-config)"
            );
        }
        Ok(s)
    }

    /// The settings with a configuration file's `[kafka]` table under them (flags and environment win), after
    /// checking that the cluster answers.
    pub fn connect_with_file(&self, section: &hule_kafka::KafkaSection) -> anyhow::Result<Kafka> {
        let mut s = self.settings_unchecked()?;
        section.apply_under(&mut s)?;
        if s.brokers.trim().is_empty() {
            anyhow::bail!(
                "no Kafka brokers: give --brokers (or HULE_BROKERS, bootstrap.servers in --kafka-config, or brokers \
                 in the [kafka] table of --config)"
            );
        }
        hule_kafka::check_connection(&s, self.timeout)?;
        Ok(Kafka {
            settings: s,
            timeout: self.timeout,
        })
    }

    /// [`KafkaArgs::connect_with_file`] for a long-running command (`hule relay`): while the cluster cannot be
    /// reached it logs why and tries again (after 1 s, doubling up to 15 s) instead of exiting, as it rides out a
    /// later outage. A refused login, a certificate or a setting is not waited for.
    pub fn connect_with_file_waiting(
        &self,
        section: &hule_kafka::KafkaSection,
        who: &str,
    ) -> anyhow::Result<Kafka> {
        let mut wait = Duration::from_secs(1);
        loop {
            match self.connect_with_file(section) {
                Err(e)
                    if matches!(
                        e.downcast_ref::<hule_kafka::ConnectError>(),
                        Some(
                            hule_kafka::ConnectError::Unreachable { .. }
                                | hule_kafka::ConnectError::Refused { .. }
                        )
                    ) =>
                {
                    tracing::warn!(
                        "{e}; {who} tries again in {}s (Ctrl-C stops it)",
                        wait.as_secs()
                    );
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(15));
                }
                other => return other,
            }
        }
    }

    /// The settings, after checking that the cluster answers with them: an authentication or TLS failure is
    /// reported as such within a second.
    pub fn connect(&self) -> anyhow::Result<Kafka> {
        let s = self.settings()?;
        hule_kafka::check_connection(&s, self.timeout)?;
        Ok(Kafka {
            settings: s,
            timeout: self.timeout,
        })
    }
}

fn env_brokers() -> Option<String> {
    ["HULE_BROKERS", "KAFKA_BOOTSTRAP_SERVERS"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_secret_properties() {
        let args = KafkaArgs {
            brokers: Some("b:9092".into()),
            kafka_config: None,
            timeout: Duration::from_secs(10),
            kafka_property: vec![
                "sasl.username=alice".into(),
                "sasl.password=hunter2".into(),
                "sasl.pasword=hunter2".into(),
                "hunter2".into(),
            ],
        };
        let shown = format!("{args:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
