//! The PostgreSQL wake protocol: writers notify only while the relay sleeps (holds the wake lock), and the relay
//! does not go to sleep while a writer's transaction that added rows is still open. Each case runs the relay with
//! a 30 s poll interval, so a row delivered within a few seconds was delivered by the protocol, not by polling.
//! PostgreSQL runs on the local server (127.0.0.1:5432, database `test`) and the test fails loudly when it is
//! missing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hule_outbox::model::Claimed;
use hule_outbox::relay::{run_relay, Publish, RelayConfig};
use hule_outbox::PgOutbox;
use tokio_util::sync::CancellationToken;

/// Keys of what the relay published.
type Log = Arc<Mutex<Vec<String>>>;

/// Records what it publishes; each batch first takes a permit of the gate (the test holds the relay awake, mid
/// batch, by giving none).
struct Recorder(Log, Arc<tokio::sync::Semaphore>);

impl Publish for Recorder {
    async fn publish_batch(
        &self,
        batch: &[Claimed],
    ) -> Vec<Result<(), hule_contracts::DeliveryError>> {
        self.1.acquire().await.expect("gate").forget();
        let mut log = self.0.lock().expect("lock");
        log.extend(batch.iter().map(|r| r.key.clone().unwrap_or_default()));
        batch.iter().map(|_| Ok(())).collect()
    }
}

const POLL: Duration = Duration::from_secs(30);
/// Far below the poll interval, far above a wake-up on a loaded machine.
const PROMPT: Duration = Duration::from_secs(5);

fn start_relay(
    url: &str,
    log: &Log,
    gate: &Arc<tokio::sync::Semaphore>,
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (url, log, gate, stop) = (url.to_owned(), log.clone(), gate.clone(), stop.clone());
    tokio::spawn(async move {
        let store = PgOutbox::connect(&url).await.expect("relay store");
        let config = RelayConfig {
            poll_interval: POLL,
            standby_poll: Duration::from_millis(50),
            ..RelayConfig::default()
        };
        run_relay(&store, &Recorder(log, gate), &config, stop)
            .await
            .expect("relay");
    })
}

/// Whether a session of this schema holds the wake lock (first key "wake") exclusively: the relay sleeps.
async fn relay_sleeps(admin: &tokio_postgres::Client, schema: &str) -> bool {
    admin
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND mode = 'ExclusiveLock'
               AND classid = x'77616b65'::int::oid AND objid = hashtext($1)::oid",
            &[&schema],
        )
        .await
        .expect("pg_locks")
        .get::<_, i64>(0)
        == 1
}

async fn wait_until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !f().await {
        assert!(started.elapsed() < PROMPT, "{what} within {PROMPT:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn write(client: &mut tokio_postgres::Client, n: i64) -> tokio_postgres::Transaction<'_> {
    let tx = client.transaction().await.expect("tx");
    let rows = hule_outbox::testkit::numbered_rows(n..n + 1, 1).expect("rows");
    hule_outbox::pg::enqueue(&tx, &rows).await.expect("enqueue");
    tx
}

fn schema_of(url: &str) -> String {
    url.rsplit("search_path%3D")
        .next()
        .expect("schema")
        .to_owned()
}

/// Both cases in one test, one after the other: `NOTIFY hule_outbox` reaches every listener of the database, so a
/// case running beside another would be woken by the other's writers, and could pass with the protocol broken.
#[tokio::test]
async fn the_wake_protocol() {
    a_relay_does_not_sleep_through_a_writer_that_did_not_notify().await;
    a_sleeping_relay_is_woken_by_a_commit_not_by_its_poll().await;
    a_relay_starts_beside_an_open_writer_transaction().await;
}

/// A relay (re)started while a writer's transaction is open finds the schema current and changes nothing: its
/// migration would otherwise wait for an exclusive lock on the table behind that transaction, and every new writer
/// would queue behind the migration.
async fn a_relay_starts_beside_an_open_writer_transaction() {
    let url = hule_outbox::testkit::pg_schema_url("hule_wake").await;
    drop(PgOutbox::connect(&url).await.expect("first start"));
    let (mut writer, _) = hule_outbox::pg::connect(&url).await.expect("writer");
    let tx = write(&mut writer, 0).await;
    let started = Instant::now();
    let again = tokio::time::timeout(PROMPT, PgOutbox::connect(&url)).await;
    assert!(
        again.is_ok(),
        "a second relay's start waited {PROMPT:?} behind an open writer transaction"
    );
    again.expect("in time").expect("second start");
    eprintln!("restarted in {:?} beside an open writer", started.elapsed());
    tx.commit().await.expect("commit");
}

async fn a_sleeping_relay_is_woken_by_a_commit_not_by_its_poll() {
    let url = hule_outbox::testkit::pg_schema_url("hule_wake").await;
    let (admin, _) = hule_outbox::pg::connect(&url).await.expect("admin");
    let schema = schema_of(&url);
    let log: Log = Arc::default();
    let stop = CancellationToken::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(1000));
    let relay = start_relay(&url, &log, &gate, &stop);
    wait_until("the relay sleeps", || relay_sleeps(&admin, &schema)).await;

    // The writer's search_path starts with another schema that exists: the function it calls still fills this
    // schema's table and takes this schema's wake lock (both are written into it when it is made).
    let other = format!("{schema}_first");
    admin
        .batch_execute(&format!("CREATE SCHEMA {other}"))
        .await
        .expect("another schema");
    let writer_url = url.replace(
        &format!("search_path%3D{schema}"),
        &format!("search_path%3D{other}%2C{schema}"),
    );
    assert_ne!(writer_url, url, "the writer's search_path was not changed");
    let (mut writer, _) = hule_outbox::pg::connect(&writer_url).await.expect("writer");
    for n in 0..3 {
        let committed = Instant::now();
        write(&mut writer, n).await.commit().await.expect("commit");
        wait_until("the row published", || async {
            log.lock().expect("lock").len() == n as usize + 1
        })
        .await;
        eprintln!(
            "row {n}: published {:?} after its commit",
            committed.elapsed()
        );
        // Back to sleep before the next row, so every row tests a wake-up.
        wait_until("the relay sleeps again", || relay_sleeps(&admin, &schema)).await;
    }
    // The same wake-up when the outbox statement goes with the COMMIT (`Outbox::begin`).
    let outbox = hule_outbox::Outbox::new("test");
    let mut tx = outbox.begin(&mut writer).await.expect("begin");
    tx.stage(hule_outbox::testkit::numbered_rows(3..4, 1).expect("rows"));
    let committed = Instant::now();
    tx.commit().await.expect("pipelined commit");
    wait_until("the row published", || async {
        log.lock().expect("lock").len() == 4
    })
    .await;
    eprintln!(
        "row 3 (statement sent with its COMMIT): published {:?} after its commit",
        committed.elapsed()
    );
    // And with a writer connection's prepared insert, whose wake key is looked up from the table its search_path
    // finds (this schema's, though the path starts with another).
    wait_until("the relay sleeps again", || relay_sleeps(&admin, &schema)).await;
    let (client, _) = hule_outbox::pg::connect(&writer_url).await.expect("writer");
    let mut conn = hule_outbox::WriterConnection::new(client);
    let mut tx = outbox.begin_on(&mut conn).await.expect("begin_on");
    tx.stage(hule_outbox::testkit::numbered_rows(4..5, 1).expect("rows"));
    let committed = Instant::now();
    tx.commit().await.expect("prepared commit");
    let runs: i64 = conn
        .query_one(
            "SELECT COALESCE(sum(generic_plans + custom_plans), 0)::bigint FROM pg_prepared_statements \
             WHERE statement LIKE 'INSERT INTO %event_outbox%'",
            &[],
        )
        .await
        .expect("prepared statements")
        .get(0);
    assert_eq!(runs, 1, "the row went through the prepared insert");
    wait_until("the row published", || async {
        log.lock().expect("lock").len() == 5
    })
    .await;
    eprintln!(
        "row 4 (a writer connection's prepared insert): published {:?} after its commit",
        committed.elapsed()
    );
    stop.cancel();
    relay.await.expect("relay task");
}

/// The race the protocol closes: a writer inserts while the relay is awake (so it does not notify) and commits
/// after the relay found nothing. The relay must not go to sleep on that writer: it cannot take the wake lock
/// while the writer holds it shared, so it looks again.
async fn a_relay_does_not_sleep_through_a_writer_that_did_not_notify() {
    let url = hule_outbox::testkit::pg_schema_url("hule_wake").await;
    let (admin, _) = hule_outbox::pg::connect(&url).await.expect("admin");
    let schema = schema_of(&url);
    let log: Log = Arc::default();
    let stop = CancellationToken::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let relay = start_relay(&url, &log, &gate, &stop);
    wait_until("the relay sleeps", || relay_sleeps(&admin, &schema)).await;
    let (mut first, _) = hule_outbox::pg::connect(&url).await.expect("writer");
    let (mut second, _) = hule_outbox::pg::connect(&url).await.expect("writer");
    // A listener beside the relay counts the wake-ups writers send.
    let (listener, heard) = hule_outbox::pg::connect(&url).await.expect("listener");
    listener
        .batch_execute("LISTEN hule_outbox")
        .await
        .expect("listen");
    // Row 0 wakes the relay, which then waits at the gate in the middle of its batch: awake, so writers do not
    // notify.
    write(&mut first, 0).await.commit().await.expect("commit");
    tokio::time::timeout(PROMPT, heard.notified())
        .await
        .expect("row 0's writer, finding the relay asleep, notified");
    wait_until("the relay awake", || async {
        !relay_sleeps(&admin, &schema).await
    })
    .await;
    // Row 1 is inserted now, without a wake-up, and stays uncommitted while the relay finishes and finds nothing.
    let tx = write(&mut second, 1).await;
    gate.add_permits(1000);
    wait_until("row 0 published", || async {
        log.lock().expect("lock").len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !relay_sleeps(&admin, &schema).await,
        "the relay went to sleep while a writer that added rows was still in its transaction"
    );
    assert_eq!(
        log.lock().expect("lock").len(),
        1,
        "published an uncommitted row"
    );
    let committed = Instant::now();
    tx.commit().await.expect("commit");
    wait_until("row 1 published without a wake-up", || async {
        log.lock().expect("lock").len() == 2
    })
    .await;
    eprintln!("published {:?} after the commit", committed.elapsed());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), heard.notified())
            .await
            .is_err(),
        "a writer that found the relay awake sent a NOTIFY (each one serialises commits)"
    );
    wait_until("the relay sleeps once no writer is in flight", || {
        relay_sleeps(&admin, &schema)
    })
    .await;
    stop.cancel();
    relay.await.expect("relay task");
}
