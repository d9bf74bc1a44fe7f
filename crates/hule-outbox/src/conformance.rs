//! The `OutboxStore` conformance suite, as watermill's `TestPubSub`: what every backend must do, written once and
//! run on PostgreSQL and SQLite (`tests/conformance.rs`); a store of your own can run it too.
//!
//! A backend gives the suite a [`Harness`]: a fresh, empty outbox store, a way to write prepared rows in a
//! transaction that commits or rolls back, and a second instance on the same outbox (for leadership).
//! Each check panics with what went wrong.

use std::future::Future;
use std::time::Duration;

use crate::model::Claimed;
use crate::prepare::NewRow;
use crate::store::{
    Completion, FailedAttempt, FailurePolicy, OutboxStore, RetryTarget, CLAIM_BYTES,
};
use crate::testkit::{number_of, numbered_rows};

/// One backend under test.
pub trait Harness {
    /// The store.
    type Store: OutboxStore;
    /// A fresh, empty outbox.
    fn fresh(&self) -> impl Future<Output = Self::Store>;
    /// Writes `rows` in one transaction and commits it, or rolls it back.
    fn write(
        &self,
        store: &Self::Store,
        rows: Vec<NewRow>,
        commit: bool,
    ) -> impl Future<Output = ()>;
    /// Another instance on the same outbox as `store` (another relay process).
    fn another(&self, store: &Self::Store) -> impl Future<Output = Self::Store>;
}

fn rows(range: std::ops::Range<i64>, keys: i64) -> Vec<NewRow> {
    numbered_rows(range, keys).expect("rows")
}

fn numbers(batch: &[Claimed]) -> Vec<i64> {
    batch
        .iter()
        .map(|r| number_of(&r.value).expect("a numbered row"))
        .collect()
}

/// Runs every check, each on a fresh outbox.
pub async fn run_all<H: Harness>(h: &H) {
    rollback_writes_nothing(h).await;
    commit_is_claimed_in_order_with_its_fields(h).await;
    a_failed_row_holds_back_its_key_only(h).await;
    parked_after_the_last_attempt_and_released_by_retry(h).await;
    claim_excluding_leaves_the_batch_in_flight_out(h).await;
    a_claim_stops_at_its_byte_budget(h).await;
    delivered_rows_are_deleted_or_marked_then_cleaned(h).await;
    one_instance_leads(h).await;
    discard_moves_failed_rows_aside_and_frees_their_key(h).await;
    the_relay_holds_back_a_key_behind_its_row_refused_in_the_same_batch(h).await;
}

/// `discard` removes failed rows (by seq, key, event id or all parked) into `hule_outbox_discarded` with the
/// reason, never a row that was not attempted, and the key they held back goes on; `retry` takes the same targets.
pub async fn discard_moves_failed_rows_aside_and_frees_their_key<H: Harness>(h: &H) {
    let s = h.fresh().await;
    h.write(&s, rows(0..6, 2), true).await; // keys: 0,2,4 → batch-0; 1,3,5 → batch-1
    let batch = s.claim(100).await.expect("claim");
    let parks = FailurePolicy {
        max_attempts: 1,
        ..FailurePolicy::default()
    };
    s.failed(
        vec![FailedAttempt::retriable(
            batch[0].seq,
            1,
            "message too large",
        )],
        parks,
    )
    .await
    .expect("failed");
    assert_eq!(numbers(&s.claim(100).await.expect("claim")), vec![1, 3, 5]);
    // Never-attempted rows are not discarded, whatever the target names.
    let none = s
        .discard(RetryTarget::Seq(batch[2].seq), "not failed")
        .await
        .expect("discard");
    assert!(none.is_empty(), "{none:?}");
    assert_eq!(
        s.retry(RetryTarget::Seq(batch[2].seq))
            .await
            .expect("retry"),
        0,
        "nothing to release"
    );
    let gone = s
        .discard(
            RetryTarget::Key(batch[0].key.clone().expect("key")),
            "oversize, agreed with the owner",
        )
        .await
        .expect("discard");
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0].seq, batch[0].seq);
    assert_eq!(gone[0].last_error.as_deref(), Some("message too large"));
    assert_eq!(
        numbers(&s.claim(100).await.expect("claim")),
        vec![1, 2, 3, 4, 5],
        "the key goes on after its discarded row"
    );
    assert_eq!(s.depth().await.expect("depth"), 5);
    // Retry by seq releases exactly that row.
    let again = s.claim(100).await.expect("claim");
    s.failed(
        vec![FailedAttempt::retriable(again[0].seq, 1, "refused")],
        parks,
    )
    .await
    .expect("failed");
    assert_eq!(
        s.retry(RetryTarget::Seq(again[0].seq))
            .await
            .expect("retry"),
        1
    );
    assert_eq!(
        s.retry(RetryTarget::Seq(again[0].seq))
            .await
            .expect("retry"),
        0,
        "already released"
    );
}

/// A publisher that refuses row 2 (key batch-0) permanently and, as the Kafka publisher does, holds back the later
/// rows of that key in the same batch: those stay due with no attempt counted, behind the parked row; the other
/// key's rows are delivered. Discarding the refused row lets its key go on, in order.
pub async fn the_relay_holds_back_a_key_behind_its_row_refused_in_the_same_batch<H: Harness>(
    h: &H,
) {
    use crate::relay::{drain, lead, Publish, RelayConfig, RelayStats};
    struct RefusesTwo(std::sync::Mutex<Vec<i64>>);
    impl Publish for RefusesTwo {
        async fn publish_batch(
            &self,
            batch: &[Claimed],
        ) -> Vec<std::result::Result<(), hule_contracts::DeliveryError>> {
            let mut refused_key = None;
            let mut out = Vec::new();
            for row in batch {
                let n = crate::testkit::number_of(&row.value).expect("n");
                if n == 2 {
                    refused_key = row.key.clone();
                    out.push(Err(hule_contracts::DeliveryError::permanent(
                        "Broker: Message size too large",
                    )));
                } else if row.key.is_some() && row.key == refused_key {
                    out.push(Err(hule_contracts::DeliveryError::retriable("held back")));
                } else {
                    self.0.lock().expect("lock").push(n);
                    out.push(Ok(()));
                }
            }
            out
        }
    }
    let s = h.fresh().await;
    h.write(&s, rows(0..8, 2), true).await;
    let publisher = RefusesTwo(std::sync::Mutex::default());
    let config = RelayConfig::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let leader = lead(&s, Duration::from_millis(10), &stop)
        .await
        .expect("lead")
        .expect("leads");
    let mut stats = RelayStats::default();
    drain(&s, &publisher, &config, &mut stats, &stop, &leader)
        .await
        .expect("drain");
    assert_eq!(
        *publisher.0.lock().expect("lock"),
        vec![0, 1, 3, 5, 7],
        "batch-0 stops at 2"
    );
    let status = s.status().await.expect("status");
    assert_eq!(
        status.parked.iter().map(|(_, n)| n).sum::<i64>(),
        1,
        "only row 2 parked: {status:?}"
    );
    assert_eq!(
        status.last_errors.len(),
        1,
        "no attempt counted on the held-back rows: {status:?}"
    );
    assert!(
        s.claim(100).await.expect("claim").is_empty(),
        "4 and 6 wait behind 2"
    );
    let gone = s
        .discard(RetryTarget::AllParked, "too large for the topic")
        .await
        .expect("discard");
    assert_eq!(gone.len(), 1);
    drain(&s, &publisher, &config, &mut stats, &stop, &leader)
        .await
        .expect("drain");
    assert_eq!(
        *publisher.0.lock().expect("lock"),
        vec![0, 1, 3, 5, 7, 4, 6],
        "then 4 and 6, in order"
    );
}

/// A rolled-back transaction leaves no row.
pub async fn rollback_writes_nothing<H: Harness>(h: &H) {
    let s = h.fresh().await;
    h.write(&s, rows(0..5, 2), false).await;
    assert_eq!(
        s.depth().await.expect("depth"),
        0,
        "rolled-back rows are there"
    );
    assert!(s.claim(10).await.expect("claim").is_empty());
}

/// Committed rows are claimed in the order written, with their topic, key, value and headers.
pub async fn commit_is_claimed_in_order_with_its_fields<H: Harness>(h: &H) {
    let s = h.fresh().await;
    let written = rows(0..10, 3);
    h.write(&s, written.clone(), true).await;
    assert_eq!(s.depth().await.expect("depth"), 10);
    let batch = s.claim(100).await.expect("claim");
    assert_eq!(
        numbers(&batch),
        (0..10).collect::<Vec<_>>(),
        "claimed out of order"
    );
    for (row, new) in batch.iter().zip(&written) {
        assert_eq!(row.topic, new.topic);
        assert_eq!(row.key.as_deref(), Some(new.event_key.as_str()));
        assert_eq!(row.value, new.event_data.as_bytes());
        assert_eq!(
            row.headers.get("event_id"),
            Some(new.event_id.to_string().as_str())
        );
        assert_eq!(row.attempts, 0);
    }
    assert!(batch.windows(2).all(|w| w[0].seq < w[1].seq));
}

/// A row whose publish failed holds back the later rows of its key, not the other keys', until it is due again.
pub async fn a_failed_row_holds_back_its_key_only<H: Harness>(h: &H) {
    let s = h.fresh().await;
    h.write(&s, rows(0..6, 2), true).await; // keys: 0,2,4 → batch-0; 1,3,5 → batch-1
    let batch = s.claim(100).await.expect("claim");
    let first = &batch[0];
    s.failed(
        vec![FailedAttempt::retriable(first.seq, 1, "broker refused")],
        FailurePolicy::default(),
    )
    .await
    .expect("failed");
    let others: Vec<i64> = batch[1..]
        .iter()
        .filter(|r| r.key != first.key)
        .map(|r| r.seq)
        .collect();
    let again = s.claim(100).await.expect("claim");
    assert_eq!(
        numbers(&again),
        vec![1, 3, 5],
        "only the other key may go on"
    );
    assert_eq!(again.iter().map(|r| r.seq).collect::<Vec<_>>(), others);
}

/// The last allowed attempt parks a row (status shows it and its error); `retry` releases it.
pub async fn parked_after_the_last_attempt_and_released_by_retry<H: Harness>(h: &H) {
    let s = h.fresh().await;
    h.write(&s, rows(0..2, 2), true).await;
    let batch = s.claim(100).await.expect("claim");
    let policy = FailurePolicy {
        max_attempts: 2,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
    };
    s.failed(
        vec![FailedAttempt::retriable(
            batch[0].seq,
            2,
            "message too large",
        )],
        policy,
    )
    .await
    .expect("failed");
    let status = s.status().await.expect("status");
    assert_eq!(
        status.parked.iter().map(|(_, n)| n).sum::<i64>(),
        1,
        "{status:?}"
    );
    assert!(
        status
            .last_errors
            .iter()
            .any(|e| e.3.contains("message too large")),
        "{status:?}"
    );
    let gauges = s.gauges().await.expect("gauges");
    assert_eq!((gauges.pending, gauges.parked), (1, 1), "{gauges:?}");
    assert_eq!(
        numbers(&s.claim(100).await.expect("claim")),
        vec![1],
        "a parked row is never claimed"
    );
    assert_eq!(s.retry(RetryTarget::AllParked).await.expect("retry"), 1);
    assert_eq!(
        s.retry(RetryTarget::AllParked).await.expect("retry"),
        0,
        "a released row is not released again"
    );
    let batch = s.claim(100).await.expect("claim");
    assert_eq!(numbers(&batch), vec![0, 1]);

    // A permanent failure parks at once, and its count stays true: one attempt.
    s.failed(
        vec![FailedAttempt::permanent(
            batch[0].seq,
            1,
            "message too large",
        )],
        FailurePolicy::default(),
    )
    .await
    .expect("failed");
    let status = s.status().await.expect("status");
    assert_eq!(
        status.parked.iter().map(|(_, n)| n).sum::<i64>(),
        1,
        "{status:?}"
    );
    assert!(
        status
            .last_errors
            .iter()
            .any(|e| e.0 == batch[0].seq && e.2 == 1),
        "one attempt reads as one: {status:?}"
    );
}

/// `claim_excluding` (the relay's pipelining) leaves out the rows still in flight and claims the rest.
pub async fn claim_excluding_leaves_the_batch_in_flight_out<H: Harness>(h: &H) {
    let s = h.fresh().await;
    h.write(&s, rows(0..10, 2), true).await;
    let first = s.claim(4).await.expect("claim");
    assert_eq!(numbers(&first), vec![0, 1, 2, 3]);
    let exclude: Vec<i64> = first.iter().map(|r| r.seq).collect();
    let next = s.claim_excluding(100, &exclude).await.expect("claim");
    assert_eq!(numbers(&next), (4..10).collect::<Vec<_>>());
}

/// A claim holds no more than [`CLAIM_BYTES`] of events: a row is claimed only while the rows claimed before it
/// hold fewer bytes, whatever the row limit; the rows of the batch in flight count for nothing in the next claim.
pub async fn a_claim_stops_at_its_byte_budget<H: Harness>(h: &H) {
    let s = h.fresh().await;
    let mut big = rows(0..40, 3);
    for row in &mut big {
        let mut v: serde_json::Value = serde_json::from_str(&row.event_data).expect("json");
        v["data"]["error_code"] = "x".repeat(1_000_000).into();
        row.event_data = v.to_string();
    }
    // The rule, from the rows' own sizes: row i is claimed while rows 0..i hold fewer than CLAIM_BYTES.
    let fits = |from: usize| {
        let mut held = 0;
        big[from..]
            .iter()
            .take_while(|r| {
                let fits = held < CLAIM_BYTES;
                held += r.event_data.len();
                fits
            })
            .count()
    };
    let (first_n, second_n) = (fits(0), fits(fits(0)));
    assert!(first_n + second_n < 40, "the budget must bind in this test");
    h.write(&s, big, true).await;
    // A row limit below the budget's cut is the limit.
    let few = s.claim(5).await.expect("claim");
    assert_eq!(numbers(&few), (0..5).collect::<Vec<_>>());
    let first = s.claim(2_000).await.expect("claim");
    assert_eq!(numbers(&first), (0..first_n as i64).collect::<Vec<_>>());
    let exclude: Vec<i64> = first.iter().map(|r| r.seq).collect();
    let next = s.claim_excluding(2_000, &exclude).await.expect("claim");
    assert_eq!(
        numbers(&next),
        (first_n as i64..(first_n + second_n) as i64).collect::<Vec<_>>(),
        "the rows in flight do not count against the next claim's budget"
    );
    // After a cut the store may ask for fewer rows, never for none while any is claimable, and the rows come in
    // order to the end.
    let mut rest = Vec::new();
    let mut seen: Vec<i64> = first.iter().chain(&next).map(|r| r.seq).collect();
    loop {
        let more = s.claim_excluding(2_000, &seen).await.expect("claim");
        if more.is_empty() {
            break;
        }
        seen.extend(more.iter().map(|r| r.seq));
        rest.extend(numbers(&more));
    }
    assert_eq!(
        rest,
        ((first_n + second_n) as i64..40).collect::<Vec<_>>(),
        "every row claimed, in order"
    );
}

/// Delivered rows are deleted, or marked and removed by `cleanup` after their retention.
pub async fn delivered_rows_are_deleted_or_marked_then_cleaned<H: Harness>(h: &H) {
    let s = h.fresh().await;
    h.write(&s, rows(0..4, 2), true).await;
    let batch = s.claim(100).await.expect("claim");
    s.delivered(vec![batch[0].seq, batch[1].seq], Completion::Delete)
        .await
        .expect("delivered");
    assert_eq!(s.depth().await.expect("depth"), 2);
    let retention = Duration::from_millis(50);
    s.delivered(
        vec![batch[2].seq, batch[3].seq],
        Completion::Mark { retention },
    )
    .await
    .expect("delivered");
    assert_eq!(
        s.depth().await.expect("depth"),
        0,
        "marked rows are published"
    );
    assert!(
        s.claim(100).await.expect("claim").is_empty(),
        "published rows are never claimed again"
    );
    tokio::time::sleep(retention * 3).await;
    assert_eq!(s.cleanup(retention, 1000).await.expect("cleanup"), 2);
}

/// Of two instances on one outbox, one leads; the other does not while the first holds on.
pub async fn one_instance_leads<H: Harness>(h: &H) {
    let a = h.fresh().await;
    let b = h.another(&a).await;
    assert!(
        a.try_lead().await.expect("lead"),
        "the first instance must lead an unled outbox"
    );
    assert!(
        !b.try_lead().await.expect("lead"),
        "two instances lead one outbox"
    );
    assert!(a.renew_leadership().await.expect("renew"));
    assert!(
        !b.try_lead().await.expect("lead"),
        "leadership moved while its holder renewed"
    );
}
