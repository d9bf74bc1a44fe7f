//! The retry layer: blocking retries, so per-partition order holds. Attempts and delays come from the record's
//! `X-Max-Retries` and `X-Backoff-Ms` headers (defaults 3 and `1000,5000,15000`). Transient errors are retried;
//! when the attempts are used up the failure becomes [`Failure::Exhausted`], which the dead-letter layer handles.

use futures::future::BoxFuture;
use futures::FutureExt;
use hule_contracts::RetryPolicy;

use crate::message::Message;
use crate::service::{BoxService, Failure, Layer, Processed, Service};

/// Retries transient failures of the inner layers.
#[derive(Debug, Clone, Default)]
pub struct Retry {
    /// Used when the record carries no (or unreadable) retry headers.
    pub default: RetryPolicy,
}

impl Layer for Retry {
    fn layer(self, inner: BoxService) -> BoxService {
        std::sync::Arc::new(RetryService {
            inner,
            default: self.default,
        })
    }
}

struct RetryService {
    inner: BoxService,
    default: RetryPolicy,
}

impl RetryService {
    fn policy(&self, msg: &Message) -> RetryPolicy {
        match msg.delivery.headers.retry_policy() {
            Ok(p) if has_retry_headers(msg) => p,
            Ok(_) => self.default.clone(),
            Err(e) => {
                tracing::warn!(at = %msg.delivery.position(), error = %e, "unreadable retry header; using the default policy");
                self.default.clone()
            }
        }
    }
}

fn has_retry_headers(msg: &Message) -> bool {
    use hule_contracts::headers::names;
    let h = &msg.delivery.headers;
    h.get(names::MAX_RETRIES).is_some() || h.get(names::BACKOFF_MS).is_some()
}

impl Service for RetryService {
    fn call<'a>(&'a self, msg: &'a mut Message) -> BoxFuture<'a, Processed> {
        async move {
            let policy = self.policy(msg);
            let mut attempt = 1;
            loop {
                msg.attempt = attempt;
                match self.inner.call(msg).await {
                    Err(Failure::Transient(last)) => {
                        if attempt > policy.max_retries {
                            return Err(Failure::Exhausted {
                                attempts: attempt,
                                last,
                            });
                        }
                        let delay = policy.delay_before_retry(attempt);
                        tracing::info!(at = %msg.delivery.position(), attempt, ?delay, error = %last, "transient failure; retrying");
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        }
        .boxed()
    }
}
