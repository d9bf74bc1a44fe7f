//! The retry layer: blocking retries, so per-partition order holds. Attempts and delays come from the record's
//! `X-Max-Retries` and `X-Backoff-Ms` headers (defaults 3 and `1000,5000,15000`), **bounded by the consumer's own
//! [`RetryLimit`]**: a producer must not be able to stall a partition for hours (every record carries the headers,
//! and retries block the partition). Transient errors are retried; when the attempts are used up the failure
//! becomes [`Failure::Exhausted`], which the dead-letter layer handles.

use futures::future::BoxFuture;
use futures::FutureExt;
use hule_contracts::RetryPolicy;
use tracing::Instrument;

use crate::message::Message;
use crate::service::{BoxService, Failure, Layer, Processed, Service};

/// Retries transient failures of the inner layers.
#[derive(Debug, Clone, Default)]
pub struct Retry {
    /// Used when the record carries no (or unreadable) retry headers.
    pub default: RetryPolicy,
    /// The most a record's headers may ask for.
    pub limit: RetryLimit,
}

/// The consumer's bounds on a record's retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryLimit {
    /// At most this many retries (default 10).
    pub max_retries: u32,
    /// No single delay longer than this (default 60 s).
    pub max_backoff_ms: u64,
    /// All delays of one record together at most this (default 5 min); retries beyond it are dropped.
    pub max_total_backoff_ms: u64,
}

impl Default for RetryLimit {
    fn default() -> Self {
        RetryLimit {
            max_retries: 10,
            max_backoff_ms: 60_000,
            max_total_backoff_ms: 300_000,
        }
    }
}

impl RetryLimit {
    /// `policy` within these bounds.
    pub fn bound(&self, policy: RetryPolicy) -> RetryPolicy {
        let backoff_ms: Vec<u64> = policy
            .backoff_ms
            .iter()
            .map(|d| (*d).min(self.max_backoff_ms))
            .collect();
        let bounded = RetryPolicy {
            max_retries: policy.max_retries.min(self.max_retries),
            backoff_ms,
        };
        let mut total: u64 = 0;
        let mut retries = 0;
        while retries < bounded.max_retries {
            let next = bounded.delay_before_retry(retries + 1).as_millis() as u64;
            if total.saturating_add(next) > self.max_total_backoff_ms {
                break;
            }
            total += next;
            retries += 1;
        }
        RetryPolicy {
            max_retries: retries,
            ..bounded
        }
    }
}

impl Layer for Retry {
    fn layer(self, inner: BoxService) -> BoxService {
        std::sync::Arc::new(RetryService {
            inner,
            default: self.default,
            limit: self.limit,
        })
    }
}

struct RetryService {
    inner: BoxService,
    default: RetryPolicy,
    limit: RetryLimit,
}

impl RetryService {
    fn policy(&self, msg: &Message) -> RetryPolicy {
        match msg.delivery.headers.retry_policy() {
            Ok(p) if has_retry_headers(msg) => self.limit.bound(p),
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
                let span = tracing::info_span!(target: "hule", "consumer.attempt", attempt);
                match self.inner.call(msg).instrument(span).await {
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
    crate::service::forward_to_inner!(prepare, abandon, finish);
}
