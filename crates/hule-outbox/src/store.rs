//! The store trait that both backends implement, and the pure retry arithmetic the relay uses.

use std::future::Future;
use std::time::Duration;

use crate::error::Result;
use crate::model::{Claimed, Gauges, Status};

/// Which failed rows `retry` releases and `discard` removes: rows not yet published that failed at least once
/// (parked, or waiting for their next attempt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryTarget {
    /// Every parked row.
    AllParked,
    /// The rows of one event id.
    EventId(uuid::Uuid),
    /// One row, by its sequence number (as `hule outbox status` lists it, `#seq`).
    Seq(i64),
    /// Every failed row of one partition key.
    Key(String),
}

/// What happens to delivered rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Completion {
    /// Delete them at once (default).
    #[default]
    Delete,
    /// Mark them published; `cleanup` deletes them after the retention, in small batches.
    Mark {
        /// How long published rows are kept.
        retention: Duration,
    },
}

/// One failed attempt to publish a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAttempt {
    /// The row.
    pub seq: i64,
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// Why it failed.
    pub error: String,
    /// Retrying cannot help (the record is too large, say): park the row now, whatever its count.
    pub permanent: bool,
}

impl FailedAttempt {
    /// A failure a later attempt may overcome.
    pub fn retriable(seq: i64, attempts: i32, error: impl Into<String>) -> Self {
        FailedAttempt {
            seq,
            attempts,
            error: error.into(),
            permanent: false,
        }
    }

    /// A failure no attempt will overcome: the row parks at once.
    pub fn permanent(seq: i64, attempts: i32, error: impl Into<String>) -> Self {
        FailedAttempt {
            permanent: true,
            ..FailedAttempt::retriable(seq, attempts, error)
        }
    }
}

/// Failure handling of the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicy {
    /// Attempts before a row is parked.
    pub max_attempts: i32,
    /// Delay after the first failure; doubles with each further failure.
    pub base_backoff: Duration,
    /// Upper bound of the delay.
    pub max_backoff: Duration,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy {
            max_attempts: 5,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl FailurePolicy {
    /// The delay before the next attempt after `attempts` failed attempts (1-based).
    pub fn backoff(&self, attempts: i32) -> Duration {
        let exp = attempts.clamp(1, 30) as u32 - 1;
        self.base_backoff
            .saturating_mul(1u32 << exp.min(20))
            .min(self.max_backoff)
    }

    /// Whether a row with `attempts` failed attempts is parked.
    pub fn parks(&self, attempts: i32) -> bool {
        attempts >= self.max_attempts
    }
}

/// What [`OutboxStore::idle`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// The relay now sleeps: writers from here on wake it. It looks once more first, for rows committed just
    /// before.
    FellAsleep,
    /// It already slept (or the store has no such protocol): wait for a wake-up or the poll interval.
    Asleep,
    /// Writers are inside transactions that added rows and have not ended: look again shortly.
    WritersInFlight,
}

/// The most `event_data` bytes one claim returns (the first row always, whatever its size): with the relay's
/// batches of 2,000 rows and two batches of events in memory, events near the 1 MiB limit would otherwise hold
/// gigabytes (PostgreSQL still reads the claim's rows to count their bytes; after a claim the budget cut, it asks
/// for fewer rows next time). 16 MiB is 16,000 events of 1 KB, so batches of small events are bounded by their row count only.
pub const CLAIM_BYTES: usize = 16 << 20;

/// The relay's view of an outbox table.
pub trait OutboxStore: Send + Sync + 'static {
    /// Claims up to `limit` publishable rows in sequence order: not published, not parked, due, and not behind an
    /// earlier row of the same key that is waiting or parked; fewer when their `event_data` passes [`CLAIM_BYTES`]
    /// (never none when one is claimable).
    fn claim(&self, limit: usize) -> impl Future<Output = Result<Vec<Claimed>>> + Send;
    /// Completes delivered rows.
    fn delivered(
        &self,
        seqs: Vec<i64>,
        completion: Completion,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Records failed attempts: each row's attempts so far (this one included) and error; a row parks when the
    /// policy says so or when the failure was permanent.
    fn failed(
        &self,
        failures: Vec<FailedAttempt>,
        policy: FailurePolicy,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Like `claim`, leaving out the rows in `exclude` (the batch still in flight).
    fn claim_excluding(
        &self,
        limit: usize,
        exclude: &[i64],
    ) -> impl Future<Output = Result<Vec<Claimed>>> + Send;
    /// Waits until new rows may be there or `timeout` passes.
    fn wait_for_work(&self, timeout: Duration) -> impl Future<Output = ()> + Send;
    /// Called by the relay when a claim found nothing, before it waits: a store whose writers wake the relay only
    /// while it sleeps (PostgreSQL) lets them know, or says that writers are in the middle of a transaction that
    /// will add rows (then the relay looks again shortly instead of sleeping). Stores without such a protocol
    /// (polling, or a wake-up on every write) answer [`Idle::Asleep`].
    fn idle(&self) -> impl Future<Output = Result<Idle>> + Send {
        std::future::ready(Ok(Idle::Asleep))
    }
    /// Called by the relay when it wakes: writers stop sending wake-ups.
    fn awake(&self) -> impl Future<Output = Result<()>> + Send {
        std::future::ready(Ok(()))
    }
    /// Deletes published rows older than `retention`, at most `limit` per call; returns how many.
    fn cleanup(
        &self,
        retention: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<u64>> + Send;
    /// Counts for `hule outbox status`.
    fn status(&self) -> impl Future<Output = Result<Status>> + Send;
    /// The relay's gauges, in one pass over the unpublished rows (`status` takes four).
    fn gauges(&self) -> impl Future<Output = Result<Gauges>> + Send;
    /// Releases parked rows for another round of attempts; returns how many.
    fn retry(&self, target: RetryTarget) -> impl Future<Output = Result<u64>> + Send;
    /// Removes failed rows for good, each moved with `reason` to `hule_outbox_discarded` in one transaction (so
    /// the key they held back goes on); returns what was removed. Only rows that cannot be in a relay's batch are
    /// touched: parked, or waiting for their next attempt (never a row that is due, nor one never attempted).
    fn discard(
        &self,
        target: RetryTarget,
        reason: &str,
    ) -> impl Future<Output = Result<Vec<crate::model::Discarded>>> + Send;
    /// Rows not yet published (pending and parked).
    fn depth(&self) -> impl Future<Output = Result<i64>> + Send;
    /// Tries once to become the outbox's one relay; `true` when this instance leads (or already did).
    fn try_lead(&self) -> impl Future<Output = Result<bool>> + Send;
    /// Confirms that this instance still leads, renewing its lease where the backend has one; `false` when
    /// leadership was lost (another relay may lead now).
    fn renew_leadership(&self) -> impl Future<Output = Result<bool>> + Send;
    /// How often a leader must renew (the relay never waits longer than this between renewals).
    fn renew_every(&self) -> Duration {
        Duration::from_secs(3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = FailurePolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(500));
        assert_eq!(p.backoff(2), Duration::from_secs(1));
        assert_eq!(p.backoff(3), Duration::from_secs(2));
        assert_eq!(p.backoff(30), Duration::from_secs(60));
        assert!(!p.parks(4));
        assert!(p.parks(5));
    }
}
