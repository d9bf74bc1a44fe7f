//! The validate layer: two-phase decode of the record (envelope, then the payload the topic implies). A record
//! that fails goes to the dead-letter topic at once, with the phase, field path and reason.

use futures::future::BoxFuture;
use futures::FutureExt;
use hule_contracts::headers::REQUIRED;
use hule_contracts::{DecodeError, DecodePhase};

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

impl Service for ValidateService {
    fn call<'a>(&'a self, msg: &'a mut Message) -> BoxFuture<'a, Processed> {
        async move {
            if msg.decoded.is_none() {
                let d = &msg.delivery;
                let Some(bytes) = d.payload.as_deref() else {
                    return Err(Failure::Invalid(DecodeError::new(
                        DecodePhase::Envelope,
                        ".",
                        "the record has no value (tombstone)",
                    )));
                };
                let env =
                    hule_contracts::decode(Some(&d.topic), bytes).map_err(Failure::Invalid)?;
                if REQUIRED.iter().any(|h| d.headers.get(h).is_none()) {
                    self.metrics.headers_missing(env.data.event().topic());
                }
                msg.decoded = Some(env);
            }
            self.inner.call(msg).await
        }
        .boxed()
    }
}
