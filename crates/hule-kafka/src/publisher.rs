//! [`KafkaPublisher`]: the relay's `Publish` on an idempotent producer (feature `relay`).

use std::time::Duration;

use futures::future::join_all;
use hule_contracts::DeliveryError;
use hule_outbox::model::Claimed;
use hule_outbox::relay::Publish;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::{consumer, delivery_error, metadata, Error, ProducerConfig};

/// Publishes relay batches to Kafka. Clones share the producer: the relays of one process (one per outbox) may
/// publish through one set of connections, the producer keeping each partition's order. They share its fate too:
/// a fatal error (librdkafka's belong to the whole client) stops every relay publishing through it, and a
/// partition's timeout that makes the idempotent producer drain and bump its epoch holds them all meanwhile.
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: FutureProducer,
}

impl KafkaPublisher {
    /// Creates the idempotent producer.
    pub fn new(config: &ProducerConfig) -> Result<Self, Error> {
        Ok(KafkaPublisher {
            producer: config.future_producer()?,
        })
    }

    /// Checks that the brokers answer, failing fast with a clear message.
    pub fn check_reachable(&self, brokers: &str, timeout: Duration) -> Result<(), Error> {
        metadata(self.producer.client(), None, brokers, timeout).map(|_| ())
    }

    /// The underlying producer.
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }
}

impl Publish for KafkaPublisher {
    async fn publish_batch(&self, batch: &[Claimed]) -> Vec<Result<(), DeliveryError>> {
        // Each record gets an `outbox.publish` span continuing its event's trace (only when spans are exported:
        // without an OpenTelemetry layer nothing per record is made), and its `traceparent` header names that span.
        let batch_span = tracing::Span::current();
        let batch_context = hule_trace::wire_context(&batch_span);
        let mut futures = Vec::with_capacity(batch.len());
        // Keys whose row the producer refused at once (too large, say): their later rows in this batch are not
        // sent, so they cannot overtake it; the relay leaves them due behind it.
        let mut refused: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for row in batch {
            if row.key.as_deref().is_some_and(|k| refused.contains(k)) {
                futures.push((
                    Err(DeliveryError::retriable(
                        "held back: an earlier row of its key was refused",
                    )),
                    tracing::Span::none(),
                ));
                continue;
            }
            let span = match &batch_context {
                Some(batch_cx) => publish_span(row, batch_cx),
                None => tracing::Span::none(),
            };
            let trace = hule_trace::wire_context(&span);
            let headers = consumer::owned_headers_traced(&row.headers, trace.as_ref());
            let mut record = FutureRecord::to(&row.topic)
                .payload(&row.value)
                .headers(headers);
            if let Some(key) = &row.key {
                record = record.key(key.as_bytes());
            }
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        futures.push((Ok(delivery), span));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(5));
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((e, _)) => {
                        tracing::warn!(topic = %row.topic, error = %e, "record refused by the producer");
                        if let Some(k) = row.key.as_deref() {
                            refused.insert(k);
                        }
                        futures.push((Err(delivery_error(&e)), span));
                        break;
                    }
                }
            }
        }
        join_all(futures.into_iter().map(|(f, span)| async move {
            let result = match f {
                Ok(delivery) => match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(delivery_error(&e)),
                    Err(_) => Err(DeliveryError::retriable(
                        "delivery report lost (producer closed)",
                    )),
                },
                Err(refused) => Err(refused),
            };
            match &result {
                Ok(()) => span.record("outcome", "acknowledged"),
                Err(e) => span.record("outcome", e.to_string().as_str()),
            };
            result
        }))
        .await
    }
}

/// The `outbox.publish` span of one row: a child of the span its row's `traceparent` names (the enqueue), linked to
/// the relay's batch.
fn publish_span(row: &Claimed, batch: &hule_trace::WireContext) -> tracing::Span {
    let span = tracing::info_span!(target: "hule", "outbox.publish", topic = %row.topic, seq = row.seq, outcome = tracing::field::Empty);
    hule_trace::set_remote_parent(
        &span,
        row.headers.get(hule_trace::TRACEPARENT),
        row.headers.get(hule_trace::TRACESTATE),
    );
    hule_trace::link(&span, &batch.traceparent, batch.tracestate.as_deref());
    span
}

/// A relay ready to run: an outbox store, a producer, its settings. The same shape as
/// [`EventConsumer`](crate::EventConsumer): a builder, then `run` until a cancellation token fires; leadership
/// (one relay per outbox, the others standing by) is part of running.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use hule_kafka::{KafkaSettings, Relay};
/// let store = hule_outbox::PgOutbox::connect("postgres://relay@db/bos").await?;
/// let relay = Relay::builder(store, &KafkaSettings::new("kafka:9092"))
///     .service("batch_orchestrator_service")
///     .build()?;
/// relay.run(tokio_util::sync::CancellationToken::new()).await?;
/// # Ok(()) }
/// ```
pub struct Relay<S: hule_outbox::OutboxStore> {
    store: S,
    publisher: KafkaPublisher,
    config: hule_outbox::relay::RelayConfig,
}

/// Builds a [`Relay`].
pub struct RelayBuilder<S: hule_outbox::OutboxStore> {
    store: S,
    producer: ProducerConfig,
    service: String,
    registry: hule_metrics::Registry,
    config: hule_outbox::relay::RelayConfig,
}

impl<S: hule_outbox::OutboxStore> Relay<S> {
    /// A relay of `store`'s rows to the cluster `kafka`.
    pub fn builder(store: S, kafka: &crate::KafkaSettings) -> RelayBuilder<S> {
        RelayBuilder {
            store,
            producer: ProducerConfig::with_settings(kafka),
            service: "hule-relay".to_owned(),
            registry: hule_metrics::Registry::global().clone(),
            config: hule_outbox::relay::RelayConfig::default(),
        }
    }

    /// Relays until `shutdown` is cancelled, finishing the batch in flight; returns what it did.
    pub async fn run(
        self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<hule_outbox::relay::RelayStats, hule_outbox::StoreError> {
        hule_outbox::relay::run_relay(&self.store, &self.publisher, &self.config, shutdown).await
    }
}

impl<S: hule_outbox::OutboxStore> RelayBuilder<S> {
    /// The service whose outbox this is (the metrics' `service` label).
    pub fn service(mut self, service: &str) -> Self {
        self.service = service.to_owned();
        self
    }
    /// Registers the metrics on this registry instead of the process-wide one.
    pub fn metrics(mut self, registry: &hule_metrics::Registry) -> Self {
        self.registry = registry.clone();
        self
    }
    /// Rows claimed per batch (default [`hule_outbox::relay::DEFAULT_BATCH_SIZE`], 2,000; a claim also stops at 16 MiB of events).
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.config.batch_size = rows.max(1);
        self
    }
    /// Keeps published rows this long (marked, then cleaned up) instead of deleting them at once.
    pub fn keep_published(mut self, retention: Duration) -> Self {
        self.config.completion = hule_outbox::store::Completion::Mark { retention };
        self
    }
    /// Adjusts the producer (compression, linger, librdkafka properties).
    pub fn producer(mut self, f: impl FnOnce(&mut ProducerConfig)) -> Self {
        f(&mut self.producer);
        self
    }
    /// The relay, its producer created.
    pub fn build(mut self) -> Result<Relay<S>, Error> {
        self.config.metrics = Some(hule_outbox::metrics::OutboxMetrics::new(
            &self.registry,
            &self.service,
        ));
        Ok(Relay {
            publisher: KafkaPublisher::new(&self.producer)?,
            store: self.store,
            config: self.config,
        })
    }
}
