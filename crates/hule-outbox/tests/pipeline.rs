//! The pipelined drain keeps per-key order when a record fails while the next batch is already claimed.

use std::sync::Mutex;
use std::time::Duration;

use hule_outbox::model::Claimed;
use hule_outbox::relay::{drain, Publish, RelayConfig, RelayStats};
use hule_outbox::store::{FailurePolicy, OutboxStore};
use hule_outbox::SqliteOutbox;
use uuid::Uuid;

/// Records what it publishes; refuses the first attempt of one row.
struct Recorder {
    published: Mutex<Vec<(String, i64)>>,
    fail_once: Mutex<Option<i64>>,
}

fn counter_of(row: &Claimed) -> i64 {
    hule_outbox::testkit::number_of(&row.value).expect("n")
}

impl Publish for Recorder {
    async fn publish_batch(
        &self,
        batch: &[Claimed],
    ) -> Vec<Result<(), hule_contracts::DeliveryError>> {
        let mut out = Vec::new();
        for row in batch {
            let n = counter_of(row);
            let mut fail = self.fail_once.lock().expect("lock");
            if *fail == Some(n) {
                *fail = None;
                out.push(Err(hule_contracts::DeliveryError::retriable(
                    "broker refused",
                )));
                continue;
            }
            self.published
                .lock()
                .expect("lock")
                .push((row.key.clone().unwrap_or_default(), n));
            out.push(Ok(()));
        }
        out
    }
}

/// Leads `store` (free in these tests: nothing else leads it).
async fn lead_now<S: OutboxStore>(
    store: &S,
    stop: &tokio_util::sync::CancellationToken,
) -> hule_outbox::relay::Leader {
    hule_outbox::relay::lead(store, Duration::from_millis(20), stop)
        .await
        .expect("lead")
        .expect("leader")
}

/// A SQLite outbox in a fresh directory (returned, to remove) holding `numbered_rows(range, keys)`, committed.
fn committed_outbox(
    prefix: &str,
    range: std::ops::Range<i64>,
    keys: i64,
) -> (std::path::PathBuf, SqliteOutbox) {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("o.db");
    let outbox = SqliteOutbox::open(&path).expect("open");
    let mut conn = hule_outbox::sqlite::open(&path).expect("conn");
    let tx = conn.transaction().expect("tx");
    let rows = hule_outbox::testkit::numbered_rows(range, keys).expect("rows");
    hule_outbox::sqlite::enqueue(&tx, &rows).expect("enqueue");
    tx.commit().expect("commit");
    (dir, outbox)
}

#[tokio::test]
async fn a_failure_in_one_batch_holds_back_its_key_in_the_next_claimed_batch() {
    let (dir, outbox) = committed_outbox("hule-pipe", 0..40, 4);

    // Row 5 (key batch-1) fails once; batches of 4 mean batch 2 (rows 4..8) fails while batch 3 is claimed.
    let publisher = Recorder {
        published: Mutex::default(),
        fail_once: Mutex::new(Some(5)),
    };
    let config = RelayConfig {
        batch_size: 4,
        failure: FailurePolicy {
            max_attempts: 5,
            base_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_millis(30),
        },
        ..RelayConfig::default()
    };
    let mut stats = RelayStats::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let leader = lead_now(&outbox, &stop).await;
    let mut rounds = 0;
    while outbox.depth().await.expect("depth") > 0 {
        drain(&outbox, &publisher, &config, &mut stats, &stop, &leader)
            .await
            .expect("drain");
        tokio::time::sleep(Duration::from_millis(10)).await;
        rounds += 1;
        assert!(rounds < 200, "the drain did not finish");
    }
    let published = publisher.published.lock().expect("lock").clone();
    assert_eq!(published.len(), 40, "everything published once");
    for key in 0..4 {
        let ns: Vec<i64> = published
            .iter()
            .filter(|(k, _)| *k == format!("batch-{key}"))
            .map(|(_, n)| *n)
            .collect();
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        assert_eq!(ns, sorted, "key batch-{key} out of order: {ns:?}");
    }
    // Other keys were not held back by the failure: row 6 (batch-2) went out before row 5 was retried.
    let pos = |n: i64| {
        published
            .iter()
            .position(|(_, m)| *m == n)
            .expect("published")
    };
    assert!(pos(6) < pos(5) && pos(8) < pos(5), "{published:?}");
    assert_eq!(stats.failed, 1);
    std::fs::remove_dir_all(&dir).ok();
}

/// Publishes everything; on its `steal_on`-th batch it first hands the SQLite relay lease to another owner, so the
/// recording of the batch before (which runs while this one is published) is refused.
struct Thief {
    published: Log,
    calls: Mutex<usize>,
    steal_on: usize,
    db: std::path::PathBuf,
}

impl Publish for Thief {
    async fn publish_batch(
        &self,
        batch: &[Claimed],
    ) -> Vec<Result<(), hule_contracts::DeliveryError>> {
        let call = {
            let mut calls = self.calls.lock().expect("lock");
            *calls += 1;
            *calls
        };
        if call == self.steal_on {
            let conn = hule_outbox::sqlite::open(&self.db).expect("conn");
            conn.execute(
                "UPDATE hule_relay_lease SET owner = 'thief', expires_at = 0 WHERE name = 'relay'",
                [],
            )
            .expect("steal the lease");
        }
        self.published.publish_batch(batch).await
    }
}

/// Batch n's outcomes are recorded while batch n+1 is published; when that recording is refused (here the lease
/// taken; a lost database is the same), n+1 is already out and n's rows stay pending: nothing is lost, n's rows
/// go out again after n+1's (at least once, with their event ids), and the next relay to lead finishes the table.
#[tokio::test]
async fn a_recording_refused_while_the_next_batch_is_out_loses_nothing() {
    let (dir, outbox) = committed_outbox("hule-pipe-rec", 0..12, 3);
    let publisher = Thief {
        published: Log(Mutex::default()),
        calls: Mutex::default(),
        steal_on: 2,
        db: dir.join("o.db"),
    };
    let config = RelayConfig {
        batch_size: 4,
        ..RelayConfig::default()
    };
    let mut stats = RelayStats::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let leader = lead_now(&outbox, &stop).await;
    let first = drain(&outbox, &publisher, &config, &mut stats, &stop, &leader).await;
    assert!(
        matches!(first, Err(hule_outbox::StoreError::LeadershipLost)),
        "the refused recording ends the drain: {first:?}"
    );
    assert_eq!(
        *publisher.published.0.lock().expect("lock"),
        (0..8).collect::<Vec<_>>(),
        "batch 2 was published while batch 1 was being recorded, and nothing after the refusal"
    );
    assert_eq!(
        stats.published, 0,
        "nothing counted as delivered: no recording succeeded"
    );
    assert_eq!(
        outbox.depth().await.expect("depth"),
        12,
        "every row still pending"
    );
    // The thief's lease has expired (expires_at 0): this relay leads again and finishes.
    let leader = lead_now(&outbox, &stop).await;
    while outbox.depth().await.expect("depth") > 0 {
        drain(&outbox, &publisher, &config, &mut stats, &stop, &leader)
            .await
            .expect("drain");
    }
    let published = publisher.published.0.lock().expect("lock").clone();
    assert_eq!(
        published[8..],
        (0..12).collect::<Vec<_>>(),
        "the second drain sends every row again, in order"
    );
    assert_eq!(stats.published, 12);
    std::fs::remove_dir_all(&dir).ok();
}

/// A SQLite outbox whose completions are twisted: the first fails with a database error (the lease intact), as a
/// database that drops one statement; or each waits until a claim made after it began has returned (at most 2 s:
/// the last completion of a drain has no claim beside it), so that the claim beside a completion surely runs
/// before the completed rows are gone.
struct Twisted {
    inner: SqliteOutbox,
    twist: Twist,
}

enum Twist {
    DropsOneCompletion(std::sync::atomic::AtomicBool),
    CompletesAfterTheNextClaim {
        claims: std::sync::atomic::AtomicU64,
        claimed: tokio::sync::Notify,
        /// Completions made after a claim beside them (not after the bound).
        overlapped: std::sync::atomic::AtomicU64,
    },
}

impl Twisted {
    fn dropping_one(inner: SqliteOutbox) -> Self {
        let twist = Twist::DropsOneCompletion(std::sync::atomic::AtomicBool::new(false));
        Twisted { inner, twist }
    }

    fn completing_after_claims(inner: SqliteOutbox) -> Self {
        let twist = Twist::CompletesAfterTheNextClaim {
            claims: std::sync::atomic::AtomicU64::new(0),
            claimed: tokio::sync::Notify::new(),
            overlapped: std::sync::atomic::AtomicU64::new(0),
        };
        Twisted { inner, twist }
    }
}

impl OutboxStore for Twisted {
    async fn claim(&self, limit: usize) -> hule_outbox::error::Result<Vec<Claimed>> {
        self.claim_excluding(limit, &[]).await
    }
    async fn delivered(
        &self,
        seqs: Vec<i64>,
        completion: hule_outbox::store::Completion,
    ) -> hule_outbox::error::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        match &self.twist {
            Twist::DropsOneCompletion(dropped) => {
                if !dropped.swap(true, SeqCst) {
                    return Err(hule_outbox::StoreError::Database {
                        op: "complete",
                        source: "connection reset by peer".into(),
                    });
                }
            }
            Twist::CompletesAfterTheNextClaim {
                claims,
                claimed,
                overlapped,
            } => {
                let before = claims.load(SeqCst);
                let waited = tokio::time::timeout(Duration::from_secs(2), async {
                    loop {
                        let woken = claimed.notified();
                        if claims.load(SeqCst) > before {
                            break;
                        }
                        woken.await;
                    }
                })
                .await;
                if waited.is_ok() {
                    overlapped.fetch_add(1, SeqCst);
                }
            }
        }
        self.inner.delivered(seqs, completion).await
    }
    async fn failed(
        &self,
        failures: Vec<hule_outbox::store::FailedAttempt>,
        policy: FailurePolicy,
    ) -> hule_outbox::error::Result<()> {
        self.inner.failed(failures, policy).await
    }
    async fn claim_excluding(
        &self,
        limit: usize,
        exclude: &[i64],
    ) -> hule_outbox::error::Result<Vec<Claimed>> {
        let claimed = self.inner.claim_excluding(limit, exclude).await;
        if let Twist::CompletesAfterTheNextClaim {
            claims, claimed, ..
        } = &self.twist
        {
            claims.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            claimed.notify_waiters();
        }
        claimed
    }
    async fn wait_for_work(&self, timeout: Duration) {
        self.inner.wait_for_work(timeout).await
    }
    async fn cleanup(&self, retention: Duration, limit: usize) -> hule_outbox::error::Result<u64> {
        self.inner.cleanup(retention, limit).await
    }
    async fn status(&self) -> hule_outbox::error::Result<hule_outbox::model::Status> {
        self.inner.status().await
    }
    async fn gauges(&self) -> hule_outbox::error::Result<hule_outbox::model::Gauges> {
        self.inner.gauges().await
    }
    async fn retry(
        &self,
        target: hule_outbox::store::RetryTarget,
    ) -> hule_outbox::error::Result<u64> {
        self.inner.retry(target).await
    }
    async fn discard(
        &self,
        target: hule_outbox::store::RetryTarget,
        reason: &str,
    ) -> hule_outbox::error::Result<Vec<hule_outbox::model::Discarded>> {
        self.inner.discard(target, reason).await
    }
    async fn depth(&self) -> hule_outbox::error::Result<i64> {
        self.inner.depth().await
    }
    async fn try_lead(&self) -> hule_outbox::error::Result<bool> {
        self.inner.try_lead().await
    }
    async fn renew_leadership(&self) -> hule_outbox::error::Result<bool> {
        self.inner.renew_leadership().await
    }
    fn renew_every(&self) -> Duration {
        self.inner.renew_every()
    }
}

/// Records every row it publishes, in order.
struct Log(Mutex<Vec<i64>>);

impl Publish for Log {
    async fn publish_batch(
        &self,
        batch: &[Claimed],
    ) -> Vec<Result<(), hule_contracts::DeliveryError>> {
        let mut log = self.0.lock().expect("lock");
        batch
            .iter()
            .map(|row| {
                log.push(counter_of(row));
                Ok(())
            })
            .collect()
    }
}

/// When recording batch n fails while batch n+1 is published, the drain records n+1 (its records are out), claims
/// and publishes nothing more, and returns the error; n's rows, still pending, go out again with the next drain,
/// and every count is right.
#[tokio::test]
async fn a_failed_recording_ends_the_drain_after_recording_the_batch_in_flight() {
    let (dir, outbox) = committed_outbox("hule-pipe-drop", 0..12, 3);
    let store = Twisted::dropping_one(outbox);
    let publisher = Log(Mutex::default());
    let config = RelayConfig {
        batch_size: 4,
        ..RelayConfig::default()
    };
    let mut stats = RelayStats::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let leader = lead_now(&store, &stop).await;
    let first = drain(&store, &publisher, &config, &mut stats, &stop, &leader).await;
    assert!(
        matches!(first, Err(hule_outbox::StoreError::Database { .. })),
        "the failed recording ends the drain: {first:?}"
    );
    assert_eq!(
        *publisher.0.lock().expect("lock"),
        (0..8).collect::<Vec<_>>(),
        "batch 2 went out while batch 1 was recorded; batch 3 (claimed at the same time) was dropped unpublished"
    );
    assert_eq!(
        stats.published, 4,
        "batch 2 recorded and counted; batch 1 not"
    );
    assert_eq!(
        store.depth().await.expect("depth"),
        8,
        "batch 1 and batch 3 pending"
    );
    while store.depth().await.expect("depth") > 0 {
        drain(&store, &publisher, &config, &mut stats, &stop, &leader)
            .await
            .expect("drain");
    }
    let published = publisher.0.lock().expect("lock").clone();
    assert_eq!(
        published[8..],
        [0, 1, 2, 3, 8, 9, 10, 11],
        "batch 1 sent again, then batch 3"
    );
    assert_eq!(stats.published, 12, "each row counted once, when recorded");
    std::fs::remove_dir_all(&dir).ok();
}

/// The claim made beside a completion runs while the completed rows are still in the table (the store here
/// completes only once that claim has returned): it leaves them out, and every row goes out once, in order.
#[tokio::test]
async fn the_claim_beside_a_completion_leaves_the_completing_rows_out() {
    let (dir, outbox) = committed_outbox("hule-pipe-beside", 0..12, 3);
    let store = Twisted::completing_after_claims(outbox);
    let publisher = Log(Mutex::default());
    let config = RelayConfig {
        batch_size: 4,
        ..RelayConfig::default()
    };
    let mut stats = RelayStats::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let leader = lead_now(&store, &stop).await;
    while store.depth().await.expect("depth") > 0 {
        drain(&store, &publisher, &config, &mut stats, &stop, &leader)
            .await
            .expect("drain");
    }
    assert_eq!(
        *publisher.0.lock().expect("lock"),
        (0..12).collect::<Vec<_>>(),
        "each row once, in order"
    );
    assert_eq!(stats.published, 12);
    // Batches 1 and 2 were completed beside the claims of batches 3 and 4 (empty); batch 3 alone, after the bound.
    let Twist::CompletesAfterTheNextClaim { overlapped, .. } = &store.twist else {
        unreachable!("made above")
    };
    assert_eq!(overlapped.load(std::sync::atomic::Ordering::SeqCst), 2);
    std::fs::remove_dir_all(&dir).ok();
}

/// Fails every record with one kind of error.
struct Failing(hule_contracts::FailureKind);

impl Publish for Failing {
    async fn publish_batch(
        &self,
        batch: &[Claimed],
    ) -> Vec<Result<(), hule_contracts::DeliveryError>> {
        let e = hule_contracts::DeliveryError {
            kind: self.0,
            message: "broker says no".into(),
        };
        batch.iter().map(|_| Err(e.clone())).collect()
    }
}

#[tokio::test]
async fn a_fatal_publisher_error_stops_the_relay_and_leaves_every_row_due() {
    let (dir, outbox) = committed_outbox("hule-fatal", 0..10, 2);
    let stop = tokio_util::sync::CancellationToken::new();
    let result = hule_outbox::relay::run_relay(
        &outbox,
        &Failing(hule_contracts::FailureKind::Fatal),
        &RelayConfig::default(),
        stop,
    )
    .await;
    let err = result.expect_err("a fatal error must stop the relay");
    assert!(
        matches!(&err, hule_outbox::StoreError::PublisherFatal(m) if m.contains("broker says no")),
        "{err}"
    );
    // Not the rows' fault: nothing counted against them, nothing parked, all still due.
    let status = outbox.status().await.expect("status");
    assert!(
        status.parked.is_empty() && status.last_errors.is_empty(),
        "{status:?}"
    );
    assert_eq!(outbox.depth().await.expect("depth"), 10);
    let gauges = outbox.gauges().await.expect("gauges");
    assert_eq!((gauges.pending, gauges.parked), (10, 0), "{gauges:?}");
    assert!(
        gauges
            .oldest_pending_age_seconds
            .is_some_and(|a| (0.0..60.0).contains(&a)),
        "{gauges:?}"
    );
    assert_eq!(outbox.claim(100).await.expect("claim").len(), 10);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_permanent_publisher_error_parks_its_row_at_the_first_attempt() {
    let (dir, outbox) = committed_outbox("hule-perm", 0..3, 3);
    let stop = tokio_util::sync::CancellationToken::new();
    let leader = lead_now(&outbox, &stop).await;
    let mut stats = RelayStats::default();
    let config = RelayConfig::default();
    hule_outbox::relay::relay_once(
        &outbox,
        &Failing(hule_contracts::FailureKind::Permanent),
        &config,
        &mut stats,
        &leader,
    )
    .await
    .expect("relay");
    let status = outbox.status().await.expect("status");
    assert_eq!(stats.failed, 3);
    let gauges = outbox.gauges().await.expect("gauges");
    assert_eq!((gauges.pending, gauges.parked), (0, 3), "{gauges:?}");
    assert_eq!(
        status.parked.iter().map(|(_, n)| n).sum::<i64>(),
        3,
        "{status:?}"
    );
    assert!(
        status
            .last_errors
            .iter()
            .all(|e| e.2 == 1 && e.3.contains("permanent")),
        "parked after its one attempt, and the count says one: {status:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `/healthz`'s board: a leading relay whose broker refuses every record is unwell (`kafka`), well again once
/// records are acknowledged; its database and leadership parts say so.
#[tokio::test]
async fn the_health_board_follows_the_relay() {
    let (dir, outbox) = committed_outbox("hule-health", 0..10, 2);
    let registry = hule_metrics::Registry::new();
    let config = RelayConfig {
        metrics: Some(hule_outbox::metrics::OutboxMetrics::new(&registry, "svc")),
        poll_interval: Duration::from_millis(10),
        ..RelayConfig::default()
    };
    let part = |name: &str| {
        registry
            .health()
            .report()
            .parts
            .into_iter()
            .find(|(p, _, _)| p == name)
            .map(|(_, ok, detail)| (ok, detail))
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let refusing = Failing(hule_contracts::FailureKind::Retriable);
    let relay = hule_outbox::relay::run_relay(&outbox, &refusing, &config, stop.clone());
    let watch = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while part("kafka").is_none_or(|(ok, _)| ok) {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                registry.health().report()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
    };
    let (result, ()) = tokio::join!(relay, watch);
    result.expect("relay");
    let report = registry.health().report();
    assert!(!report.ok, "{report:?}");
    let (_, detail) = part("kafka").expect("kafka");
    assert!(detail.contains("none acknowledged"), "{detail}");
    assert_eq!(part("relay"), Some((true, "leading".to_owned())));
    assert_eq!(part("database"), Some((true, "connected".to_owned())));

    // Acknowledged again: well. (Rows wait out their backoff, so the second relay runs until it has published.)
    let recorder = Recorder {
        published: Mutex::default(),
        fail_once: Mutex::new(None),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let relay = hule_outbox::relay::run_relay(&outbox, &recorder, &config, stop.clone());
    let watch = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !registry.health().report().ok {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                registry.health().report()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
    };
    let (result, ()) = tokio::join!(relay, watch);
    result.expect("relay");
    assert_eq!(part("kafka"), Some((true, "acknowledging".to_owned())));
    assert!(!recorder.published.lock().expect("lock").is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

/// The relay's one stop signal is noticed while it waits for work (and while a standby waits to lead): with a
/// 5 s poll interval, an idle relay and a standby both return well within it once the token is cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_relay_and_a_standby_stop_at_once() {
    let (dir, outbox) = committed_outbox("hule-stop", 0..0, 1);
    let standby_store = SqliteOutbox::open(outbox.path()).expect("open");
    let recorder = Recorder {
        published: Mutex::default(),
        fail_once: Mutex::default(),
    };
    let config = RelayConfig {
        poll_interval: Duration::from_secs(5),
        standby_poll: Duration::from_secs(5),
        ..RelayConfig::default()
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let started = std::time::Instant::now();
    let (leader, standby, ()) = tokio::join!(
        hule_outbox::relay::run_relay(&outbox, &recorder, &config, stop.clone()),
        hule_outbox::relay::run_relay(&standby_store, &recorder, &config, stop.clone()),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop.cancel();
        }
    );
    leader.expect("leader");
    standby.expect("standby");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stopped after {:?}",
        started.elapsed()
    );
    std::fs::remove_dir_all(dir).ok();
}
