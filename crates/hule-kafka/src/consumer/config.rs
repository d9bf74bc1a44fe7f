//! [`ConsumerConfig`]: the driver's settings, as given in code or read from a service's `[consumer]` table.

use std::sync::Arc;
use std::time::Duration;

use crate::settings::KafkaSettings;

/// Consumer settings.
///
/// It deserializes from a service's configuration file (every field optional, durations in milliseconds,
/// properties as a table): `[consumer]` with `group = "els"`, `commit_interval_ms = 500`,
/// `[consumer.properties]` `"session.timeout.ms" = "10000"`; connection settings usually come from a
/// [`KafkaSection`](crate::settings::KafkaSection) applied with [`ConsumerConfig::with_settings`].
#[derive(Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// Consumer group.
    pub group: String,
    /// `auto.offset.reset` for a group without offsets (`earliest` by default, as the original's consumers).
    pub auto_offset_reset: String,
    /// Records queued per partition; more are held beside the queue (see `held_bytes`).
    pub queue_per_partition: usize,
    /// Bytes of records (payload, key and 256 of overhead each) queued per partition (4 MiB; one record more when
    /// the queue is empty, so a record larger than this still goes through); more are held beside the queue.
    pub queue_bytes_per_partition: usize,
    /// Bytes of records (payload, key and 256 of overhead each) held beside full partition queues, all partitions
    /// together (32 MiB). Over it, the driver pauses the partitions holding at least min(queue bytes, a quarter of
    /// this); over twice it, every partition holding anything. It goes on polling all the while, and resumes each
    /// partition once the records it held have moved into its queue. Memory: the queues (partitions × queue bytes)
    /// plus about twice this.
    pub held_bytes: usize,
    /// How often processed offsets are committed (asynchronously; synchronously on revoke and stop).
    #[serde(
        rename = "commit_interval_ms",
        deserialize_with = "crate::settings::millis"
    )]
    pub commit_interval: Duration,
    /// How long a revoke waits for the record in flight before handing it back uncommitted. The wait blocks the
    /// thread that polls the consumer (librdkafka calls the rebalance callback there), so keep it short.
    #[serde(
        rename = "revoke_timeout_ms",
        deserialize_with = "crate::settings::millis"
    )]
    pub revoke_timeout: Duration,
    /// How often the lag of each owned partition (`consumer_lag`) is measured: its high watermark minus the next
    /// offset to commit.
    #[serde(
        rename = "lag_interval_ms",
        deserialize_with = "crate::settings::millis"
    )]
    pub lag_interval: Duration,
    /// Extra librdkafka properties.
    #[serde(
        rename = "properties",
        deserialize_with = "crate::settings::property_map"
    )]
    pub extra: Vec<(String, String)>,
    /// Notified after every partition assignment (tools wait on it before producing, to measure latency).
    #[serde(skip)]
    pub on_assign: Option<Arc<tokio::sync::Notify>>,
}

/// Every field, with the values of secret properties (`sasl.password`, …) masked.
impl std::fmt::Debug for ConsumerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerConfig")
            .field("brokers", &self.brokers)
            .field("group", &self.group)
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("queue_per_partition", &self.queue_per_partition)
            .field("queue_bytes_per_partition", &self.queue_bytes_per_partition)
            .field("held_bytes", &self.held_bytes)
            .field("commit_interval", &self.commit_interval)
            .field("revoke_timeout", &self.revoke_timeout)
            .field("lag_interval", &self.lag_interval)
            .field("extra", &hule_secrets::PropertyList(&self.extra))
            .finish_non_exhaustive()
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig::new("", "")
    }
}

impl ConsumerConfig {
    /// A consumer of `group` with the connection `kafka` (its properties become [`ConsumerConfig::extra`]).
    pub fn with_settings(kafka: &KafkaSettings, group: &str) -> Self {
        let mut c = ConsumerConfig::new("", group);
        c.apply_settings(kafka);
        c
    }

    /// Takes the connection from `kafka`: its brokers when this config names none, its properties before this
    /// config's own (which therefore win), for a config read from a file's `[consumer]` table.
    pub fn apply_settings(&mut self, kafka: &KafkaSettings) {
        if self.brokers.trim().is_empty() {
            self.brokers = kafka.brokers.clone();
        }
        let own = std::mem::take(&mut self.extra);
        self.extra = kafka.properties.clone();
        self.extra.extend(own);
    }

    /// Defaults: earliest, 256 records and 4 MiB queued per partition, 32 MiB held beyond full queues, commit every 500 ms,
    /// 100 ms revoke wait, lag every 5 s.
    pub fn new(brokers: &str, group: &str) -> Self {
        ConsumerConfig {
            brokers: brokers.to_owned(),
            group: group.to_owned(),
            auto_offset_reset: "earliest".into(),
            queue_per_partition: 256,
            queue_bytes_per_partition: 4 << 20,
            held_bytes: 32 << 20,
            commit_interval: Duration::from_millis(500),
            revoke_timeout: Duration::from_millis(100),
            lag_interval: Duration::from_secs(5),
            extra: Vec::new(),
            on_assign: None,
        }
    }
}
