/*!
The only crate that speaks Kafka (through `rdkafka`): the relay's publisher, the consumer driver
([`consumer::run_consumer`]) and the dead-letter producer.

[`KafkaPublisher`] implements `hule_outbox::relay::Publish`: it enqueues every record of a batch without awaiting
each (`FutureProducer::send_result`), then awaits all delivery reports. The producer is idempotent with
`acks=all`, and partitions with `murmur2_random`, so keys land where the Java and Python clients put them.

```no_run
# async fn demo() -> Result<(), Box<dyn std::error::Error>> {
let publisher = hule_kafka::KafkaPublisher::new(&hule_kafka::ProducerConfig::new("localhost:9092"))?;
# Ok(()) }
```
*/
#![warn(missing_docs)]

#[cfg(feature = "admin")]
pub mod admin;
pub mod consumer;
pub mod dlq;
#[cfg(any(test, feature = "testkit"))]
pub mod fault_proxy;
#[cfg(feature = "admin")]
pub mod follow;
pub mod lag;
pub mod mock;
#[cfg(feature = "relay")]
mod publisher;
#[cfg(feature = "admin")]
pub mod replay;
pub mod service;
pub mod settings;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

use std::time::Duration;

/// The transaction a `handle_tx` handler writes in.
#[cfg(feature = "postgres")]
pub use hule_consumer::inbox::Transaction;
use hule_contracts::{DeliveryError, FailureKind};
#[cfg(feature = "relay")]
pub use publisher::{KafkaPublisher, Relay, RelayBuilder};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
pub use service::{
    shutdown_signal, shutdown_token, BuildError, EventConsumer, EventConsumerBuilder,
};
pub use settings::{check_connection, ConnectError, KafkaSection, KafkaSettings};

/// Producer settings; deserializes from a configuration file like [`consumer::ConsumerConfig`] (every field
/// optional, properties as a table).
#[derive(Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducerConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// `compression.type` (none, lz4, gzip, snappy).
    pub compression: String,
    /// `linger.ms`.
    pub linger_ms: u32,
    /// `message.timeout.ms`: how long a record may wait for delivery before it counts as failed.
    pub message_timeout_ms: u32,
    /// Extra librdkafka properties.
    #[serde(rename = "properties", deserialize_with = "settings::property_map")]
    pub extra: Vec<(String, String)>,
}

/// Every field, with the values of secret properties (`sasl.password`, …) masked.
impl std::fmt::Debug for ProducerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerConfig")
            .field("brokers", &self.brokers)
            .field("compression", &self.compression)
            .field("linger_ms", &self.linger_ms)
            .field("message_timeout_ms", &self.message_timeout_ms)
            .field("extra", &hule_secrets::PropertyList(&self.extra))
            .finish()
    }
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig::new("")
    }
}

impl ProducerConfig {
    /// Defaults: lz4, linger 1 ms (the relay hands over whole batches at once, so a longer linger only adds
    /// latency), 30 s delivery timeout.
    pub fn new(brokers: &str) -> Self {
        ProducerConfig {
            brokers: brokers.to_owned(),
            compression: "lz4".into(),
            linger_ms: 1,
            message_timeout_ms: 30_000,
            extra: Vec::new(),
        }
    }
}

impl ProducerConfig {
    /// The defaults of [`ProducerConfig::new`] with the connection `kafka` (its properties become
    /// [`ProducerConfig::extra`], so they override the defaults).
    pub fn with_settings(kafka: &KafkaSettings) -> Self {
        let mut c = ProducerConfig::new(&kafka.brokers);
        c.extra = kafka.properties.clone();
        c
    }

    /// The one producer configuration of the project, used by the relay, the dead-letter sink, `hule dlq replay` and
    /// the demo: idempotent with `acks=all` (no duplicates or reordering on retries) and the `murmur2_random`
    /// partitioner, so a keyed record lands on the partition the Java and Python clients choose (librdkafka's
    /// default, `consistent_random`, hashes with CRC32 and would put a replayed or dead-lettered event on another
    /// partition than its key's live stream). `extra` comes last and may override anything.
    pub fn client_config(&self) -> ClientConfig {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &self.brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", &self.compression)
            .set("linger.ms", self.linger_ms.to_string())
            .set("message.timeout.ms", self.message_timeout_ms.to_string())
            .set("partitioner", "murmur2_random");
        for (k, v) in &self.extra {
            cc.set(k, v);
        }
        cc
    }

    /// A `FutureProducer` with [`ProducerConfig::client_config`].
    pub fn future_producer(&self) -> Result<FutureProducer, Error> {
        Ok(self.client_config().create()?)
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client could not be created or the broker not reached.
    #[error("kafka client error: {}", settings::describe_client_error(.0))]
    Client(#[from] KafkaError),
    /// The cluster refused to create a topic.
    #[error("cannot create topic {topic}: {reason}")]
    TopicCreation {
        /// The topic.
        topic: String,
        /// The broker's reason.
        reason: String,
    },
    /// A client failed in a way that makes it unusable (fenced, authentication, librdkafka fatal); the consumer
    /// stopped without committing the record it was on.
    #[error("fatal Kafka error: {0}")]
    Fatal(String),
    /// The records in flight did not finish within the drain timeout after shutdown; they were not committed and
    /// go to the group's next owner.
    #[error("records still in flight {0:?} after shutdown; stopped without committing them")]
    ShutdownTimeout(Duration),
    /// The consumer's PostgreSQL inbox could not be connected or migrated at start.
    #[cfg(feature = "postgres")]
    #[error(transparent)]
    Inbox(#[from] hule_consumer::inbox::InboxError),
    /// A replay could not be sent or recorded (see [`replay`]); nothing of the batch counts as replayed.
    #[cfg(feature = "admin")]
    #[error("replay: {0}")]
    Replay(String),
    /// A read up to the high watermarks got no record for a while before reaching them (a partition without a
    /// leader, a transaction left open); nothing of it is to be taken as complete.
    #[error("reading stopped short of the end of {partitions}: no record for {timeout:?} (a partition without a leader, or a transaction still open)")]
    Incomplete {
        /// The partitions not read to their end.
        partitions: String,
        /// How long nothing came.
        timeout: Duration,
    },
    /// The brokers did not answer.
    #[error(
        "cannot reach Kafka brokers `{brokers}` within {timeout:?}; check --brokers and that the cluster is up"
    )]
    Unreachable {
        /// The bootstrap list.
        brokers: String,
        /// How long we waited.
        timeout: Duration,
        /// The cause.
        #[source]
        source: KafkaError,
    },
}

/// The class of a Kafka client error (see [`hule_contracts::delivery`]), by librdkafka's error code: errors that
/// make the client unusable are fatal, errors that the same record will meet again are permanent, the rest are
/// retriable (librdkafka has already retried those internally for as long as `message.timeout.ms` allowed).
pub fn classify(e: &KafkaError) -> FailureKind {
    use RDKafkaErrorCode as C;
    if matches!(e, KafkaError::MessageConsumptionFatal(_)) {
        return FailureKind::Fatal;
    }
    match e.rdkafka_error_code() {
        Some(
            C::Fatal
            | C::Fenced
            | C::ProducerFenced
            | C::InvalidProducerEpoch
            | C::Authentication
            | C::SaslAuthenticationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed,
        ) => FailureKind::Fatal,
        Some(
            C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::InvalidMessage
            | C::InvalidRecord
            | C::InvalidTopic
            | C::InvalidRequiredAcks
            | C::PolicyViolation
            | C::BadMessage
            | C::InvalidArgument
            | C::InvalidTimestamp,
        ) => FailureKind::Permanent,
        _ => FailureKind::Retriable,
    }
}

/// A Kafka error as a classified [`DeliveryError`].
pub fn delivery_error(e: &KafkaError) -> DeliveryError {
    DeliveryError {
        kind: classify(e),
        message: e.to_string(),
    }
}

/// Fetches the metadata of `topic` (or of the whole cluster) through `client`; an unanswered request is
/// [`Error::Unreachable`], naming the brokers and the timeout.
pub(crate) fn metadata<C: rdkafka::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: Option<&str>,
    brokers: &str,
    timeout: Duration,
) -> Result<rdkafka::metadata::Metadata, Error> {
    client
        .fetch_metadata(topic, timeout)
        .map_err(|source| Error::Unreachable {
            brokers: brokers.to_owned(),
            timeout,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_config_shows_a_secret_in_debug() {
        let mut kafka = KafkaSettings::new("b:9092");
        for (k, v) in [
            ("sasl.username", "alice"),
            ("sasl.password", "hunter2-a"),
            ("ssl.key.password", "hunter2-b"),
            ("sasl.oauthbearer.client.secret", "hunter2-c"),
            ("sasl.pasword", "hunter2-d"),
        ] {
            kafka.properties.push((k.to_owned(), v.to_owned()));
        }
        let consumer = consumer::ConsumerConfig::with_settings(&kafka, "g");
        let producer = ProducerConfig::with_settings(&kafka);
        for shown in [
            format!("{kafka:?}"),
            format!("{consumer:?}"),
            format!("{producer:?}"),
            format!("{consumer:#?}"),
        ] {
            assert!(
                shown.contains("alice"),
                "names and plain values stay: {shown}"
            );
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }

    #[test]
    fn a_misspelled_property_never_shows_its_value() {
        // From a configuration file's properties table: refused when read, the value masked.
        let toml = "brokers = \"b:9092\"\n[properties]\n\"sasl.pasword\" = \"hunter2-e\"\n";
        let Err(err) = toml::from_str::<ProducerConfig>(toml) else {
            panic!("a misspelled property was accepted");
        };
        assert!(err.to_string().contains("sasl.pasword"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        // And if a client is created with one anyway, its error names the property only.
        let mut config = ProducerConfig::new("b:9092");
        config
            .extra
            .push(("sasl.pasword".into(), "hunter2-f".into()));
        let Err(err) = config.future_producer() else {
            panic!("a misspelled property was accepted");
        };
        assert!(err.to_string().contains("sasl.pasword"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn errors_are_classified_as_librdkafka_would() {
        let produce = |c| KafkaError::MessageProduction(c);
        for (e, kind) in [
            (
                produce(RDKafkaErrorCode::MessageSizeTooLarge),
                FailureKind::Permanent,
            ),
            // An ACL is fixed while the outage lasts: retried (the relay parks the row after its attempts), so a
            // row is not parked for good at the first refusal.
            (
                produce(RDKafkaErrorCode::TopicAuthorizationFailed),
                FailureKind::Retriable,
            ),
            (
                produce(RDKafkaErrorCode::InvalidRecord),
                FailureKind::Permanent,
            ),
            (
                produce(RDKafkaErrorCode::NotLeaderForPartition),
                FailureKind::Retriable,
            ),
            (
                produce(RDKafkaErrorCode::RequestTimedOut),
                FailureKind::Retriable,
            ),
            (
                produce(RDKafkaErrorCode::MessageTimedOut),
                FailureKind::Retriable,
            ),
            (produce(RDKafkaErrorCode::QueueFull), FailureKind::Retriable),
            (
                produce(RDKafkaErrorCode::ProducerFenced),
                FailureKind::Fatal,
            ),
            (produce(RDKafkaErrorCode::Fatal), FailureKind::Fatal),
            (
                produce(RDKafkaErrorCode::SaslAuthenticationFailed),
                FailureKind::Fatal,
            ),
            (
                KafkaError::MessageConsumptionFatal(RDKafkaErrorCode::UnknownMemberId),
                FailureKind::Fatal,
            ),
            (KafkaError::Canceled, FailureKind::Retriable),
        ] {
            assert_eq!(classify(&e), kind, "{e}");
            assert_eq!(delivery_error(&e).kind, kind);
        }
    }
}
