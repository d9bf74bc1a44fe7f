//! Pure preparation of outbox rows from typed envelopes: topic mode, key, headers, size check. No I/O.

use hule_contracts::headers::standard_headers;
use hule_contracts::size::{check_size, SizeVerdict};
use hule_contracts::{EventEnvelope, Payload};
use uuid::Uuid;

use crate::error::StoreError;

/// Which topic(s) an event is written to during the legacy → standard transition (seed 001's rollback plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopicMode {
    /// The standard topic only.
    #[default]
    Standard,
    /// The legacy topic only.
    Legacy,
    /// Both: the same event (same event id) on each, so legacy and standard consumers both receive it.
    Both,
}

/// Options for one enqueue.
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// Topic mode.
    pub mode: TopicMode,
    /// A key that overrides the event's partition contract.
    pub key_override: Option<String>,
    /// The aggregate type stored in the original's `aggregate_type` column (defaults to the key concept).
    pub aggregate_type: Option<String>,
    /// Counts `outbox_events_added_total` and `partition_key_resolution_seconds` (none: not counted).
    pub metrics: Option<crate::metrics::OutboxMetrics>,
}

/// One row ready to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRow {
    /// Row id (the original's `id` column).
    pub id: Uuid,
    /// The event id, as in the envelope.
    pub event_id: Uuid,
    /// The aggregate id (the key).
    pub aggregate_id: String,
    /// The aggregate type.
    pub aggregate_type: String,
    /// The envelope's `event_type`.
    pub event_type: String,
    /// The exact record value: the envelope as pydantic would encode it.
    pub event_data: String,
    /// The partition key.
    pub event_key: String,
    /// The target topic.
    pub topic: String,
    /// The standard headers as a JSON object.
    pub headers: String,
    /// Whether the size is over the warning threshold.
    pub oversize_warning: bool,
}

/// Prepares the rows of one event. Row ids are derived from the event id and topic, so preparing twice yields the
/// same rows.
pub fn prepare<P: Payload>(
    envelope: &EventEnvelope<P>,
    opts: &EnqueueOptions,
) -> Result<Vec<NewRow>, StoreError> {
    prepare_with(P::EVENT, envelope, opts, || {
        hule_contracts::keys::partition_key_of(&envelope.data)
    })
}

/// [`prepare`] for an envelope decoded at run time (a file of envelopes, `hule produce`): the event is the
/// payload's.
pub fn prepare_decoded(
    envelope: &hule_contracts::DecodedEnvelope,
    opts: &EnqueueOptions,
) -> Result<Vec<NewRow>, StoreError> {
    prepare_with(envelope.data.event(), envelope, opts, || {
        hule_contracts::keys::partition_key_of_typed(&envelope.data)
    })
}

fn prepare_with<T: serde::Serialize + Clone>(
    event: hule_contracts::Event,
    envelope: &EventEnvelope<T>,
    opts: &EnqueueOptions,
    key_of: impl FnOnce() -> Result<String, hule_contracts::KeyError>,
) -> Result<Vec<NewRow>, StoreError> {
    let def = event.def();
    let key_started = std::time::Instant::now();
    let key = match &opts.key_override {
        Some(k) if !k.is_empty() => k.clone(),
        Some(_) => {
            return Err(StoreError::Prepare {
                event: def.name,
                reason: "key override is empty".into(),
            })
        }
        None => key_of().map_err(|e| StoreError::Prepare {
            event: def.name,
            reason: e.to_string(),
        })?,
    };
    let key_seconds = key_started.elapsed().as_secs_f64();
    // The enqueue span: a child of the caller's span when that is traced, else of the trace context the envelope
    // carries. When traced, its context replaces the envelope's, so the relay's publish is its child.
    let span = tracing::info_span!(target: "hule", "outbox.enqueue", event = def.name, event_id = %envelope.event_id, key = %key);
    let given = envelope.metadata.as_ref();
    if hule_trace::wire_context(&tracing::Span::current()).is_none() {
        hule_trace::set_remote_parent(
            &span,
            given.and_then(|m| m.traceparent.as_deref()),
            given.and_then(|m| m.tracestate.as_deref()),
        );
    }
    let _entered = span.enter();
    let trace = hule_trace::wire_context(&span);
    // An overriding key is recorded as `metadata.partition_key` (the hint the original's OutboxManager honours and
    // the consumer's key check accepts); without it every such record was dead-lettered as `key_mismatch`.
    let hint = opts.key_override.as_ref().filter(|k| {
        envelope
            .metadata
            .as_ref()
            .and_then(|m| m.partition_key.as_deref())
            != Some(k.as_str())
    });
    let rewritten;
    let envelope = if hint.is_some() || trace.is_some() {
        let mut copy = envelope.clone();
        let meta = copy.metadata.get_or_insert_with(Default::default);
        if let Some(k) = hint {
            meta.partition_key = Some(k.clone());
        }
        if let Some(t) = trace {
            meta.traceparent = Some(t.traceparent);
            meta.tracestate = t.tracestate;
        }
        rewritten = copy;
        &rewritten
    } else {
        envelope
    };
    let data = envelope.to_json().map_err(|e| StoreError::Prepare {
        event: def.name,
        reason: e.to_string(),
    })?;
    let verdict = check_size(data.len()).map_err(|e| StoreError::Prepare {
        event: def.name,
        reason: e.to_string(),
    })?;
    let data = String::from_utf8(data).map_err(|e| StoreError::Prepare {
        event: def.name,
        reason: e.to_string(),
    })?;
    if opts.mode == TopicMode::Both && def.legacy_topic_collides() {
        return Err(StoreError::Prepare {
            event: def.name,
            reason: format!(
                "TopicMode::Both is impossible for this event: its legacy topic `{}` and standard topic `{}` are one \
                 name to Kafka ('.' and '_' collide), so a cluster holds only one of them; use TopicMode::Standard or \
                 TopicMode::Legacy",
                def.legacy_topic, def.topic
            ),
        });
    }
    let topics: &[&str] = match opts.mode {
        TopicMode::Standard => &[def.topic],
        TopicMode::Legacy => &[def.legacy_topic],
        TopicMode::Both if def.has_distinct_legacy_topic() => &[def.topic, def.legacy_topic],
        TopicMode::Both => &[def.topic],
    };
    let aggregate_type = opts
        .aggregate_type
        .clone()
        .unwrap_or_else(|| def.key.concept.as_str().to_owned());
    if let Some(m) = &opts.metrics {
        m.added(topics.len(), key_seconds);
    }
    Ok(topics
        .iter()
        .map(|topic| NewRow {
            id: Uuid::new_v5(&envelope.event_id, topic.as_bytes()),
            event_id: envelope.event_id,
            aggregate_id: key.clone(),
            aggregate_type: aggregate_type.clone(),
            event_type: envelope.event_type.clone(),
            event_data: data.clone(),
            event_key: key.clone(),
            topic: (*topic).to_owned(),
            headers: standard_headers(envelope, topic, &key).to_json(),
            oversize_warning: verdict == SizeVerdict::Warn,
        })
        .collect())
}
