//! The validate layer: two-phase decode of the record (envelope, then the payload the topic implies), and the
//! contract's rules that decoding alone does not check: the size limit, UTF-8 headers, and a key that matches the
//! event's partition contract (or the envelope's `metadata.partition_key`, which the original honours). A record
//! that fails goes to the dead-letter topic at once, with a reason that names the failure.

use futures::future::BoxFuture;
use futures::FutureExt;
use hule_contracts::headers::REQUIRED;
use hule_contracts::size::MAX_EVENT_BYTES;
use hule_contracts::{DecodeError, DecodePhase, DecodedEnvelope};

use crate::message::Message;
use crate::metrics::ConsumerMetrics;
use crate::service::{BoxService, Failure, Layer, Processed, Service};

/// Decodes every record before the inner layers see it.
#[derive(Clone)]
pub struct Validate {
    metrics: ConsumerMetrics,
}

impl Validate {
    /// A validate layer counting missing standard headers into `metrics`.
    pub fn new(metrics: ConsumerMetrics) -> Self {
        Validate { metrics }
    }
}

impl Layer for Validate {
    fn layer(self, inner: BoxService) -> BoxService {
        std::sync::Arc::new(ValidateService {
            inner,
            metrics: self.metrics,
        })
    }
}

struct ValidateService {
    inner: BoxService,
    metrics: ConsumerMetrics,
}

impl ValidateService {
    /// The record's checks and its decode.
    fn validate(&self, msg: &Message) -> Result<DecodedEnvelope, Failure> {
        let d = &msg.delivery;
        let Some(bytes) = d.payload.as_deref() else {
            return Err(Failure::Invalid(DecodeError::new(
                DecodePhase::Envelope,
                ".",
                "the record has no value (tombstone)",
            )));
        };
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(Failure::Rejected {
                reason: "oversize",
                message: format!(
                    "record of {} bytes exceeds the {MAX_EVENT_BYTES}-byte limit",
                    bytes.len()
                ),
            });
        }
        if !d.invalid_headers.is_empty() {
            return Err(Failure::Rejected {
                reason: "invalid_headers",
                message: format!("header value not UTF-8: {}", d.invalid_headers.join(", ")),
            });
        }
        let env = hule_contracts::decode(Some(&d.topic), bytes).map_err(Failure::Invalid)?;
        if let (Some(key), Some(expected)) = (d.key.as_deref(), env.data.partition_key()) {
            let hinted = env
                .metadata
                .as_ref()
                .and_then(|m| m.partition_key.as_deref());
            if key != expected.as_bytes() && hinted.is_none_or(|h| key != h.as_bytes()) {
                return Err(Failure::Rejected {
                    reason: "key_mismatch",
                    message: format!(
                        "record key `{}` is not the contract's key `{expected}` ({} of {})",
                        String::from_utf8_lossy(key),
                        env.data.event().def().key.field,
                        env.data.event().name()
                    ),
                });
            }
        }
        if !d.headers.has_all(REQUIRED) {
            self.metrics.headers_missing(env.data.event().topic());
        }
        Ok(env)
    }
}

impl Service for ValidateService {
    fn call<'a>(&'a self, msg: &'a mut Message) -> BoxFuture<'a, Processed> {
        async move {
            if msg.decoded.is_none() {
                let _validate = tracing::info_span!(target: "hule", "consumer.validate").entered();
                msg.decoded = Some(self.validate(msg)?);
            }
            self.inner.call(msg).await
        }
        .boxed()
    }

    /// Decodes the records that pass; one that fails is left undecoded, for `call` to fail it in its turn.
    fn prepare<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, ()> {
        async move {
            for msg in msgs.iter_mut().filter(|m| m.decoded.is_none()) {
                // Outside the record's `consumer.receive` span (not begun yet), so continued from its header.
                let span = tracing::info_span!(target: "hule", "consumer.validate");
                hule_trace::set_remote_parent(
                    &span,
                    msg.delivery.headers.get(hule_trace::TRACEPARENT),
                    msg.delivery.headers.get(hule_trace::TRACESTATE),
                );
                let _validate = span.entered();
                msg.decoded = self.validate(msg).ok();
            }
            self.inner.prepare(msgs).await
        }
        .boxed()
    }

    crate::service::forward_to_inner!(abandon, finish);
}
