//! [`KafkaDeadLetterSink`]: dead letters produced with the project's idempotent producer, acknowledged before the
//! failed record's offset counts as done.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use hule_consumer::{DeadLetter, DeadLetterSink};
use hule_contracts::DeliveryError;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::records::owned_headers;
use crate::settings::KafkaSettings;
use crate::Error;

/// Sends dead letters with an idempotent producer and waits for the broker's acknowledgement. Clones share the
/// producer: the consumers of one process may dead-letter through one set of connections, and a fatal error of
/// that producer then ends every consumer that dead-letters through it.
#[derive(Clone)]
pub struct KafkaDeadLetterSink {
    producer: FutureProducer,
    timeout: Duration,
}

impl KafkaDeadLetterSink {
    /// A sink on `brokers` (plaintext).
    pub fn new(brokers: &str) -> Result<Self, Error> {
        Self::with_settings(&KafkaSettings::new(brokers))
    }

    /// A sink with the connection `kafka`.
    pub fn with_settings(kafka: &KafkaSettings) -> Result<Self, Error> {
        let mut config = crate::ProducerConfig::with_settings(kafka);
        config.message_timeout_ms = 10_000;
        let producer = config.future_producer()?;
        Ok(KafkaDeadLetterSink {
            producer,
            timeout: Duration::from_secs(10),
        })
    }
}

impl DeadLetterSink for KafkaDeadLetterSink {
    fn send(&self, letter: DeadLetter) -> BoxFuture<'_, Result<(), DeliveryError>> {
        async move {
            let mut record = FutureRecord::to(&letter.topic)
                .payload(&letter.value)
                .headers(owned_headers(&letter.headers));
            if let Some(k) = &letter.key {
                record = record.key(k);
            }
            self.producer
                .send(record, self.timeout)
                .await
                .map(|_| ())
                .map_err(|(e, _)| crate::delivery_error(&e))
        }
        .boxed()
    }
}
