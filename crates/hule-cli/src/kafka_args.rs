//! The Kafka connection options every command that opens a Kafka client shares: `--brokers`, `--kafka-config FILE`
//! (a Java-style properties file of librdkafka settings) and repeated `-X key=value`, read into one
//! [`KafkaSettings`]. Precedence: `-X` over the file; `--brokers` (or `HULE_BROKERS`, or the Python services'
//! `KAFKA_BOOTSTRAP_SERVERS`) over the file's `bootstrap.servers`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use hule_kafka::KafkaSettings;

/// How to reach Kafka.
#[derive(Args, Clone, Default)]
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
    pub fn connect_with_file(
        &self,
        section: &hule_kafka::KafkaSection,
    ) -> anyhow::Result<KafkaSettings> {
        let mut s = self.settings_unchecked()?;
        section.apply_under(&mut s)?;
        if s.brokers.trim().is_empty() {
            anyhow::bail!(
                "no Kafka brokers: give --brokers (or HULE_BROKERS, bootstrap.servers in --kafka-config, or brokers \
                 in the [kafka] table of --config)"
            );
        }
        hule_kafka::check_connection(&s, Duration::from_secs(10))?;
        Ok(s)
    }

    /// The settings, after checking that the cluster answers with them: an authentication or TLS failure is
    /// reported as such within a second.
    pub fn connect(&self) -> anyhow::Result<KafkaSettings> {
        let s = self.settings()?;
        hule_kafka::check_connection(&s, Duration::from_secs(10))?;
        Ok(s)
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
