//! What a layer sees: the raw Kafka record, what has been decoded from it so far, and the attempt number.

use hule_contracts::{headers::names, DecodedEnvelope, Event, Headers};

/// One Kafka record as the driver received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The topic it was read from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The record key.
    pub key: Option<Vec<u8>>,
    /// The record headers; a header whose value is not UTF-8 is kept with its bytes replaced (`U+FFFD`) and named
    /// in `invalid_headers`.
    pub headers: Headers,
    /// Names of headers whose values were not UTF-8 (the validate layer dead-letters such records).
    pub invalid_headers: Vec<String>,
    /// The record value; `None` for a tombstone.
    pub payload: Option<Vec<u8>>,
}

impl Delivery {
    /// `topic[partition]@offset`, for logs and errors.
    pub fn position(&self) -> String {
        format!("{}[{}]@{}", self.topic, self.partition, self.offset)
    }

    /// The key as text (lossy), for logs and DLQ records.
    pub fn key_text(&self) -> Option<String> {
        self.key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
    }
}

/// A delivery on its way through the layers.
#[derive(Debug)]
pub struct Message {
    /// The record.
    pub delivery: Delivery,
    /// Set by the validate layer.
    pub decoded: Option<DecodedEnvelope>,
    /// 1 for the first attempt; set by the retry layer.
    pub attempt: u32,
    /// The dedup layer's claim, made for a run of records by its `prepare`, taken by its `call`.
    pub(crate) claim: Option<crate::dedup::Prepared>,
    /// Set by the dedup layer's `prepare`: the driver calls `finish` for this record after its outcome.
    pub(crate) in_run: bool,
    /// The completion marker `call` left for `finish` to store.
    pub(crate) completion: Option<(crate::dedup::DedupKey, std::time::Duration)>,
    /// Set by the dedup layer's `prepare`: a dedup store decides this run's duplicates (the inbox then handles
    /// each record in a transaction of its own, so that the store's completion marker never precedes the commit).
    pub(crate) dedup_layer: bool,
    /// The inbox run `prepare` made this record part of, or the run before it that must commit first.
    #[cfg(feature = "postgres")]
    pub(crate) inbox_run: Option<crate::inbox::RunRef>,
}

impl Message {
    /// A message that no layer has touched yet.
    pub fn new(delivery: Delivery) -> Self {
        Message {
            delivery,
            decoded: None,
            attempt: 1,
            claim: None,
            in_run: false,
            completion: None,
            dedup_layer: false,
            #[cfg(feature = "postgres")]
            inbox_run: None,
        }
    }
}

impl Message {
    /// Handled in a batched run's transaction (the PostgreSQL inbox): its outcome is durable only once
    /// [`crate::Service::finish`] has completed it, and completing the records before it waits for it.
    pub fn in_batched_run(&self) -> bool {
        #[cfg(feature = "postgres")]
        {
            self.inbox_run.as_ref().is_some_and(|t| t.member)
        }
        #[cfg(not(feature = "postgres"))]
        {
            false
        }
    }

    /// Tied to a batched run that only [`crate::Service::finish`] completes. After `finish`, a record still tied
    /// means a layer passed `prepare` on but not `finish`: its effect would be rolled back while its offset counted
    /// as done, so a driver must stop rather than count it.
    pub fn awaits_finish(&self) -> bool {
        #[cfg(feature = "postgres")]
        {
            self.inbox_run.is_some()
        }
        #[cfg(not(feature = "postgres"))]
        {
            false
        }
    }
}

/// What a handler is told besides the payload.
#[derive(Debug, Clone)]
pub struct Context {
    /// The event, from the topic.
    pub event: Event,
    /// The envelope's `event_id`.
    pub event_id: uuid::Uuid,
    /// The envelope's `correlation_id`.
    pub correlation_id: uuid::Uuid,
    /// The envelope's `source_service`.
    pub source_service: String,
    /// The envelope's `event_timestamp`.
    pub event_timestamp: hule_contracts::Timestamp,
    /// Topic the record came from (standard or legacy).
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Record headers.
    pub headers: Headers,
    /// 1 on the first attempt.
    pub attempt: u32,
    /// W3C `traceparent`, from the header or else the envelope metadata.
    pub traceparent: Option<String>,
}

impl Context {
    /// Builds the context of a decoded message.
    pub fn of(msg: &Message, env: &DecodedEnvelope) -> Context {
        let d = &msg.delivery;
        let traceparent = d
            .headers
            .get(names::TRACEPARENT)
            .map(str::to_owned)
            .or_else(|| env.traceparent().map(str::to_owned));
        Context {
            event: env.data.event(),
            event_id: env.event_id,
            correlation_id: env.correlation_id,
            source_service: env.source_service.clone(),
            event_timestamp: env.event_timestamp,
            topic: d.topic.clone(),
            partition: d.partition,
            offset: d.offset,
            headers: d.headers.clone(),
            attempt: msg.attempt,
            traceparent,
        }
    }
}

/// The correlation id of the event being handled: `outbox.publish(&tx, follow_up, &ctx)` continues its request.
impl From<&Context> for hule_contracts::CorrelationId {
    fn from(ctx: &Context) -> Self {
        hule_contracts::CorrelationId(ctx.correlation_id)
    }
}
