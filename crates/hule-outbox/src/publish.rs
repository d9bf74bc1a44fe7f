//! Publishing in one call: [`Outbox::publish`] takes the caller's open transaction and a typed payload and does the
//! rest — the envelope (a new event id, the time, the payload's own event and topic, this service as the source),
//! the contract's partition key, the standard headers, the size check, the row and (PostgreSQL) the `NOTIFY` that
//! wakes the relays when the transaction commits. Nothing reaches Kafka unless the caller commits.
//!
//! ```no_run
//! # async fn f(client: &mut tokio_postgres::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use hule_contracts::payloads::SpellcheckPhaseCompletedV1;
//! # let payload: SpellcheckPhaseCompletedV1 = todo!();
//! let outbox = hule_outbox::Outbox::new("spellchecker_service");
//! let tx = client.transaction().await?;
//! // ... the service's own writes in `tx` ...
//! let event_id = outbox.publish(&tx, payload, uuid::Uuid::new_v4()).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```

use std::future::Future;

use hule_contracts::{CorrelationId, EventEnvelope, Payload, Timestamp};
use uuid::Uuid;

use crate::error::Result;
use crate::metrics::OutboxMetrics;
use crate::prepare::{prepare, EnqueueOptions, NewRow, TopicMode};

/// An open transaction an outbox row can be written in: a `tokio_postgres::Transaction` or a
/// `rusqlite::Transaction` (each with its backend's feature).
pub trait OutboxTransaction {
    /// Inserts `rows` in this transaction (PostgreSQL also queues the relays' wake-up for the commit).
    fn insert(&self, rows: &[NewRow]) -> impl Future<Output = Result<()>>;
}

#[cfg(feature = "postgres")]
impl OutboxTransaction for tokio_postgres::Transaction<'_> {
    fn insert(&self, rows: &[NewRow]) -> impl Future<Output = Result<()>> {
        crate::pg::enqueue(self, rows)
    }
}

#[cfg(feature = "sqlite")]
impl OutboxTransaction for rusqlite::Transaction<'_> {
    fn insert(&self, rows: &[NewRow]) -> impl Future<Output = Result<()>> {
        std::future::ready(crate::sqlite::enqueue(self, rows))
    }
}

/// What one publish may add to the defaults.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// A key instead of the event's partition contract (recorded as `metadata.partition_key`).
    pub key: Option<String>,
    /// A W3C trace context to continue when the caller's span is not traced (e.g. taken from an incoming request).
    pub traceparent: Option<String>,
    /// Its trace state.
    pub tracestate: Option<String>,
    /// Topic mode for this publish, instead of the handle's.
    pub mode: Option<TopicMode>,
}

/// A service's handle on its outbox. Cheap to clone; holds no connection.
#[derive(Debug, Clone)]
pub struct Outbox {
    service: String,
    mode: TopicMode,
    metrics: Option<OutboxMetrics>,
}

impl Outbox {
    /// The outbox of `service` (the envelopes' `source_service`), publishing to standard topics.
    pub fn new(service: &str) -> Self {
        Outbox {
            service: service.to_owned(),
            mode: TopicMode::Standard,
            metrics: None,
        }
    }

    /// Publishes to these topics by default (the legacy → standard transition).
    pub fn topic_mode(mut self, mode: TopicMode) -> Self {
        self.mode = mode;
        self
    }

    /// Counts `outbox_events_added_total` and key resolution on these metrics.
    pub fn metrics(mut self, metrics: OutboxMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The envelope this handle would publish `payload` in: a new event id, now, the payload's event and topic.
    pub fn envelope<P: Payload>(
        &self,
        payload: P,
        correlation_id: impl Into<CorrelationId>,
    ) -> EventEnvelope<P> {
        EventEnvelope::of(
            payload,
            Uuid::new_v4(),
            Timestamp::from_datetime(chrono::Utc::now()),
            &self.service,
            correlation_id.into().0,
        )
    }

    pub(crate) fn rows<P: Payload>(
        &self,
        payload: P,
        correlation_id: CorrelationId,
        opts: &PublishOptions,
    ) -> Result<(Uuid, Vec<NewRow>)> {
        let mut envelope = self.envelope(payload, correlation_id);
        if opts.traceparent.is_some() {
            let meta = envelope.metadata.get_or_insert_with(Default::default);
            meta.traceparent = opts.traceparent.clone();
            meta.tracestate = opts.tracestate.clone();
        }
        let rows = prepare(
            &envelope,
            &EnqueueOptions {
                mode: opts.mode.unwrap_or(self.mode),
                key_override: opts.key.clone(),
                aggregate_type: None,
                metrics: self.metrics.clone(),
            },
        )?;
        Ok((envelope.event_id, rows))
    }

    /// Publishes `payload` in `tx` under `correlation_id` — `&ctx` in a handler continues the request of the event
    /// being handled, `CorrelationId::new()` starts one; returns the new event's id.
    pub async fn publish<P: Payload>(
        &self,
        tx: &impl OutboxTransaction,
        payload: P,
        correlation_id: impl Into<CorrelationId>,
    ) -> Result<Uuid> {
        self.publish_with(tx, payload, correlation_id, &PublishOptions::default())
            .await
    }

    /// [`Outbox::publish`] with options.
    pub async fn publish_with<P: Payload>(
        &self,
        tx: &impl OutboxTransaction,
        payload: P,
        correlation_id: impl Into<CorrelationId>,
        opts: &PublishOptions,
    ) -> Result<Uuid> {
        let (id, rows) = self.rows(payload, correlation_id.into(), opts)?;
        tx.insert(&rows).await?;
        Ok(id)
    }

    /// Publishes two events together in `tx` under one correlation id — a thin and a rich event (seed 002's dual
    /// events), or V1 and V2 of one event while consumers migrate: both rows or neither (both are prepared before
    /// either is written; the transaction makes the rest atomic). Returns both event ids.
    pub async fn publish_pair<A: Payload, B: Payload>(
        &self,
        tx: &impl OutboxTransaction,
        first: A,
        second: B,
        correlation_id: impl Into<CorrelationId>,
    ) -> Result<(Uuid, Uuid)> {
        let correlation_id = correlation_id.into();
        let opts = PublishOptions::default();
        let (a, mut rows) = self.rows(first, correlation_id, &opts)?;
        let (b, more) = self.rows(second, correlation_id, &opts)?;
        rows.extend(more);
        tx.insert(&rows).await?;
        Ok((a, b))
    }
}
