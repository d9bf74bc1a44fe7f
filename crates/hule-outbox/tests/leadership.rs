//! Relay exclusivity on both backends: two relays started together on one outbox — one publishes, per-key order
//! holds, and the standby takes over when the leader dies. PostgreSQL runs on the local server
//! (127.0.0.1:5432, database `test`) and fails loudly when it is missing.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hule_outbox::model::Claimed;
use hule_outbox::prepare::NewRow;
use hule_outbox::relay::{run_relay, Publish, RelayConfig};
use hule_outbox::store::OutboxStore;
use hule_outbox::{PgOutbox, SqliteOutbox};
use uuid::Uuid;

/// What every relay published: (relay, key, n).
type Log = Arc<Mutex<Vec<(usize, String, i64)>>>;

struct Recorder {
    relay: usize,
    log: Log,
}

impl Publish for Recorder {
    async fn publish_batch(
        &self,
        batch: &[Claimed],
    ) -> Vec<Result<(), hule_contracts::DeliveryError>> {
        let mut log = self.log.lock().expect("lock");
        for row in batch {
            let n = hule_outbox::testkit::number_of(&row.value).expect("n");
            log.push((self.relay, row.key.clone().unwrap_or_default(), n));
        }
        batch.iter().map(|_| Ok(())).collect()
    }
}

/// Rows for events `range`, keyed over four batches.
fn rows(range: std::ops::Range<i64>) -> Vec<NewRow> {
    hule_outbox::testkit::numbered_rows(range, 4).expect("rows")
}

/// Waits until `log` holds `n` records (bounded).
async fn wait_for(log: &Log, n: usize, within: Duration) -> Duration {
    let started = Instant::now();
    while log.lock().expect("lock").len() < n {
        assert!(
            started.elapsed() < within,
            "only {} of {n} published after {within:?}",
            log.lock().expect("lock").len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// Every event `0..n` published exactly once, each key's events in order.
fn assert_once_in_key_order(log: &[(usize, String, i64)], n: i64) {
    let mut seen: Vec<i64> = log.iter().map(|(_, _, n)| *n).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..n).collect::<Vec<_>>(), "each event exactly once");
    for key in ["batch-0", "batch-1", "batch-2", "batch-3"] {
        let of_key: Vec<i64> = log
            .iter()
            .filter(|(_, k, _)| k == key)
            .map(|(_, _, n)| *n)
            .collect();
        assert!(
            of_key.windows(2).all(|w| w[0] < w[1]),
            "{key} out of order: {of_key:?}"
        );
    }
}

/// The scenario, for any backend: `open` makes one relay's store, `enqueue` commits rows.
async fn two_relays_one_leads_and_the_standby_takes_over<S, O, OF, E, EF>(
    open: O,
    enqueue: E,
) -> Duration
where
    S: OutboxStore,
    O: Fn() -> OF,
    OF: Future<Output = S> + Send + 'static,
    E: Fn(Vec<NewRow>) -> EF,
    EF: Future<Output = ()>,
{
    enqueue(rows(0..300)).await;
    let log: Log = Arc::default();
    let mut relays = Vec::new();
    let mut stops = Vec::new();
    for relay in 0..2 {
        let stop = Arc::new(AtomicBool::new(false));
        stops.push(stop.clone());
        let store = open();
        let publisher = Recorder {
            relay,
            log: log.clone(),
        };
        relays.push(tokio::spawn(async move {
            let store = store.await;
            let config = RelayConfig {
                batch_size: 16,
                poll_interval: Duration::from_millis(20),
                standby_poll: Duration::from_millis(50),
                ..RelayConfig::default()
            };
            run_relay(&store, &publisher, &config, stop)
                .await
                .expect("relay")
        }));
    }
    wait_for(&log, 300, Duration::from_secs(20)).await;
    // The leader is idle once its last batch is completed (killed between publish and completion, it would
    // leave that batch to be published again: at least once, as documented).
    let check = open().await;
    let started = Instant::now();
    while check.depth().await.expect("depth") > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "rows left pending"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let snapshot = log.lock().expect("lock").clone();
    let leader = snapshot[0].0;
    assert!(
        snapshot.iter().all(|(r, _, _)| *r == leader),
        "both relays published: {:?}",
        snapshot
            .iter()
            .map(|(r, _, _)| *r)
            .collect::<std::collections::BTreeSet<_>>()
    );
    assert_once_in_key_order(&snapshot, 300);

    // The leader dies (its task and its store with it, nothing released by hand); more events arrive.
    relays[leader].abort();
    assert!(relays.remove(leader).await.is_err_and(|e| e.is_cancelled()));
    let died = Instant::now();
    enqueue(rows(300..600)).await;
    wait_for(&log, 600, Duration::from_secs(30)).await;
    let takeover = died.elapsed();
    let all = log.lock().expect("lock").clone();
    assert!(
        all[300..].iter().all(|(r, _, _)| *r != leader),
        "the dead leader published"
    );
    assert_once_in_key_order(&all, 600);
    stops[1 - leader].store(true, Ordering::SeqCst);
    let stats = relays.remove(0).await.expect("standby");
    assert_eq!(stats.published, 300);
    takeover
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_relays_one_leads_and_the_standby_takes_over_within_a_lease() {
    let dir = std::env::temp_dir().join(format!("hule-lead-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("o.db");
    let lease = Duration::from_millis(900);
    let p = path.clone();
    let open = move || {
        let p = p.clone();
        async move { SqliteOutbox::open(&p).expect("open").with_lease(lease) }
    };
    let enqueue = |rows: Vec<NewRow>| {
        let path = path.clone();
        async move {
            let mut conn = hule_outbox::sqlite::open(&path).expect("conn");
            hule_outbox::sqlite::migrate(&conn).expect("migrate");
            let tx = conn.transaction().expect("tx");
            hule_outbox::sqlite::enqueue(&tx, &rows).expect("enqueue");
            tx.commit().expect("commit");
        }
    };
    let takeover = two_relays_one_leads_and_the_standby_takes_over(open, enqueue).await;
    eprintln!("SQLite: the standby published the rest {takeover:?} after the leader died (lease {lease:?})");
    assert!(takeover < lease + Duration::from_secs(3), "{takeover:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_relays_one_leads_and_the_standby_takes_over_when_its_session_ends() {
    let base = std::env::var("HULE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("hule_lead_{}", Uuid::new_v4().simple());
    let (admin, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must be running on 127.0.0.1:5432 (scripts/setup.sh starts it)");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    // Migrate once before the rows arrive.
    drop(PgOutbox::connect(&url).await.expect("migrate"));
    let u = url.clone();
    let open = move || {
        let u = u.clone();
        async move { PgOutbox::connect(&u).await.expect("outbox") }
    };
    let enqueue = |rows: Vec<NewRow>| {
        let url = url.clone();
        async move {
            let (mut client, _wake) = hule_outbox::pg::connect(&url).await.expect("writer");
            let tx = client.transaction().await.expect("tx");
            hule_outbox::pg::enqueue(&tx, &rows).await.expect("enqueue");
            tx.commit().await.expect("commit");
        }
    };
    let takeover = two_relays_one_leads_and_the_standby_takes_over(open, enqueue).await;
    eprintln!("PostgreSQL: the standby published the rest {takeover:?} after the leader died");
    assert!(takeover < Duration::from_secs(3), "{takeover:?}");
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop");
}
