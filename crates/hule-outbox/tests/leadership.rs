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
        record(&self.log, self.relay, batch);
        batch.iter().map(|_| Ok(())).collect()
    }
}

/// Logs what `relay` publishes of `batch`.
fn record(log: &Log, relay: usize, batch: &[Claimed]) {
    let mut log = log.lock().expect("lock");
    for row in batch {
        let n = hule_outbox::testkit::number_of(&row.value).expect("n");
        log.push((relay, row.key.clone().unwrap_or_default(), n));
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

/// Waits (bounded) until the outbox in `schema` holds no row: everything published is also recorded. A batch's rows
/// are deleted while the next is published, so a test that cuts a leader off waits for this first; a row published
/// and not recorded before a cut goes out again (at least once, as documented).
async fn wait_recorded(admin: &tokio_postgres::Client, schema: &str) {
    let started = Instant::now();
    while admin
        .query_one(&format!("SELECT count(*) FROM {schema}.event_outbox"), &[])
        .await
        .expect("count")
        .get::<_, i64>(0)
        > 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the leader did not record its batches"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
        let stop = tokio_util::sync::CancellationToken::new();
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
    stops[1 - leader].cancel();
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

/// A publisher that takes `delay` per batch (a broker slow to acknowledge), optionally by blocking its thread on
/// the first batch (a relay process that stalls: nothing of it runs, not even its lease renewal).
struct Slow {
    relay: usize,
    log: Log,
    delay: Duration,
    stall_first: AtomicBool,
}

impl Publish for Slow {
    async fn publish_batch(
        &self,
        batch: &[Claimed],
    ) -> Vec<Result<(), hule_contracts::DeliveryError>> {
        record(&self.log, self.relay, batch);
        if self.stall_first.swap(false, Ordering::SeqCst) {
            // Long enough for the relay to claim its next batch meanwhile, then the stall.
            tokio::time::sleep(Duration::from_millis(50)).await;
            std::thread::sleep(self.delay);
        } else {
            tokio::time::sleep(self.delay).await;
        }
        batch.iter().map(|_| Ok(())).collect()
    }
}

fn sqlite_file(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("hule-{tag}-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("o.db");
    let mut conn = hule_outbox::sqlite::open(&path).expect("conn");
    hule_outbox::sqlite::migrate(&conn).expect("migrate");
    let tx = conn.transaction().expect("tx");
    hule_outbox::sqlite::enqueue(&tx, &rows(0..40)).expect("enqueue");
    tx.commit().expect("commit");
    (dir, path)
}

fn spawn_relay(
    path: &std::path::Path,
    lease: Duration,
    publisher: Slow,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<hule_outbox::relay::RelayStats> {
    let store = SqliteOutbox::open(path).expect("open").with_lease(lease);
    tokio::spawn(async move {
        let config = RelayConfig {
            batch_size: 10,
            poll_interval: Duration::from_millis(20),
            standby_poll: Duration::from_millis(50),
            ..RelayConfig::default()
        };
        run_relay(&store, &publisher, &config, stop)
            .await
            .expect("relay")
    })
}

/// A broker slower than the lease: every batch takes three leases to acknowledge. The leader renews its lease
/// while the batch is in flight, so the standby never takes over a live leader's rows: each event published once,
/// by one relay, in key order. (Before the lease was renewed in flight, the standby took over during the first
/// batch and both published it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn sqlite_a_publish_slower_than_the_lease_keeps_its_leadership() {
    let (dir, path) = sqlite_file("slow-lease");
    let lease = Duration::from_millis(300);
    let log: Log = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let relays: Vec<_> = (0..2)
        .map(|relay| {
            let publisher = Slow {
                relay,
                log: log.clone(),
                delay: lease * 3,
                stall_first: AtomicBool::new(false),
            };
            spawn_relay(&path, lease, publisher, stop.clone())
        })
        .collect();
    wait_for(&log, 40, Duration::from_secs(30)).await;
    // Long enough for a standby to have taken over (and published again) had the leader let its lease run out.
    tokio::time::sleep(lease * 4).await;
    stop.cancel();
    for r in relays {
        r.await.expect("relay");
    }
    let all = log.lock().expect("lock").clone();
    let leader = all[0].0;
    assert!(
        all.iter().all(|(r, _, _)| *r == leader),
        "both relays published: {all:?}"
    );
    assert_once_in_key_order(&all, 40);
    std::fs::remove_dir_all(&dir).ok();
}

/// A leader that stalls past its lease (nothing of it runs) loses the outbox to the standby, which publishes
/// everything; when the stalled relay wakes it finds the lease taken and publishes nothing more: not the batch it
/// had claimed next, not its completion. The batch in flight during the stall is the one the standby publishes a
/// second time (at least once, as documented: a record handed to the producer cannot be called back).
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn sqlite_a_leader_that_stalled_past_its_lease_publishes_nothing_more() {
    let (dir, path) = sqlite_file("stall-lease");
    let lease = Duration::from_millis(300);
    let log: Log = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    // The stalling relay runs on a thread and runtime of its own, so that its stall stops all of it (as a stopped
    // process) and nothing else.
    let stalling = {
        let (path, log, stop) = (path.clone(), log.clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let publisher = Slow {
                    relay: 0,
                    log,
                    delay: lease * 5,
                    stall_first: AtomicBool::new(true),
                };
                spawn_relay(&path, lease, publisher, stop)
                    .await
                    .expect("relay 0")
            })
        })
    };
    // Relay 0 leads and is inside its first (stalling) batch before the standby starts.
    wait_for(&log, 10, Duration::from_secs(10)).await;
    let standby = spawn_relay(
        &path,
        lease,
        Slow {
            relay: 1,
            log: log.clone(),
            delay: Duration::ZERO,
            stall_first: AtomicBool::new(false),
        },
        stop.clone(),
    );
    wait_for(&log, 50, Duration::from_secs(30)).await;
    // The stalled relay wakes after 5 leases; give it as long again to publish anything it still would.
    tokio::time::sleep(lease * 8).await;
    stop.cancel();
    let stats0 = stalling.join().expect("relay 0");
    standby.await.expect("relay 1");
    let all = log.lock().expect("lock").clone();
    let by0: Vec<i64> = all
        .iter()
        .filter(|(r, _, _)| *r == 0)
        .map(|(_, _, n)| *n)
        .collect();
    let by1: Vec<(usize, String, i64)> = all.iter().filter(|(r, _, _)| *r == 1).cloned().collect();
    assert_eq!(
        by0,
        (0..10).collect::<Vec<_>>(),
        "the stalled relay published more than its stalled batch"
    );
    assert_eq!(
        stats0.published, 0,
        "the stalled relay completed rows it no longer owned"
    );
    assert_once_in_key_order(&by1, 40);
    std::fs::remove_dir_all(&dir).ok();
}

/// Black-holes one TCP connection on loopback (no FIN, no RST: every packet of it dropped, both ways) with an
/// nftables table of its own, removed on drop. Needs root and `nft` (scripts/setup.sh installs nftables).
struct BlackHole {
    table: String,
}

impl BlackHole {
    fn port(port: u16) -> Self {
        let table = format!("hule_bh_{port}_{}", std::process::id());
        let nft = |args: &str| {
            let out = std::process::Command::new("nft")
                .args(args.split_whitespace())
                .output()
                .unwrap_or_else(|e| {
                    panic!("nft must be installed (scripts/setup.sh installs nftables): {e}")
                });
            assert!(
                out.status.success(),
                "nft {args}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        nft(&format!("add table inet {table}"));
        nft(&format!(
            "add chain inet {table} c {{ type filter hook input priority -10 ; policy accept ; }}"
        ));
        nft(&format!("add rule inet {table} c tcp sport {port} drop"));
        nft(&format!("add rule inet {table} c tcp dport {port} drop"));
        BlackHole { table }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .output();
    }
}

/// A half-open outage of the leader: its PostgreSQL connection is black-holed (as by a host crash or a partition:
/// no FIN, no RST). The server's end of the session notices within `hule_pg::HALF_OPEN_BOUND` (the keepalives
/// the relay's connection asks for), drops it and with it the advisory lock, and the standby leads and publishes
/// the rest — every event once, each key in order. Without those settings the server holds the dead session, and
/// the lock, for the operating system's keepalive time (2 h by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_black_holed_leader_is_replaced_within_the_half_open_bound() {
    let base = hule_outbox::testkit::pg_test_url();
    let url = hule_outbox::testkit::pg_schema_url("hule_blackhole").await;
    let admin = hule_pg::connect(&base).await.expect("admin");
    let enqueue = |range: std::ops::Range<i64>| {
        let url = url.clone();
        async move {
            let (mut client, _wake) = hule_outbox::pg::connect(&url).await.expect("writer");
            let tx = client.transaction().await.expect("tx");
            hule_outbox::pg::enqueue(&tx, &rows(range))
                .await
                .expect("enqueue");
            tx.commit().await.expect("commit");
        }
    };
    drop(PgOutbox::connect(&url).await.expect("migrate"));
    enqueue(0..100).await;
    let log: Log = Arc::default();
    let config = RelayConfig {
        batch_size: 16,
        poll_interval: Duration::from_millis(100),
        standby_poll: Duration::from_millis(200),
        ..RelayConfig::default()
    };
    let leader_store = PgOutbox::connect(&url).await.expect("leader");
    let stop = tokio_util::sync::CancellationToken::new();
    // The leader's own stop, set at the cut: once its process's connection comes back after the hole (its end
    // gives up after the same 20 s), it would race the standby for the lock; what is tested is that the server
    // frees the lock of a half-open session within the bound, so the standby, not a reconnected leader, goes on.
    let leader_stop = tokio_util::sync::CancellationToken::new();
    let leader = tokio::spawn({
        let (log, config, stop) = (log.clone(), config.clone(), leader_stop.clone());
        async move {
            let publisher = Recorder { relay: 0, log };
            run_relay(&leader_store, &publisher, &config, stop).await
        }
    });
    wait_for(&log, 100, Duration::from_secs(20)).await;
    let schema = url
        .rsplit("search_path%3D")
        .next()
        .expect("schema")
        .to_owned();
    // Cut once the leader has recorded all 100, so that what follows is the takeover alone.
    wait_recorded(&admin, &schema).await;
    let standby = tokio::spawn({
        let (log, config, stop, url) = (log.clone(), config.clone(), stop.clone(), url.clone());
        async move {
            let store = PgOutbox::connect(&url).await.expect("standby");
            let publisher = Recorder { relay: 1, log };
            run_relay(&store, &publisher, &config, stop).await
        }
    });
    // The leader's session: the one holding the relay's leadership lock (first key "hule") in this schema.
    let port: i32 = admin
        .query_one(
            "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.objid = hashtext($1)::oid
               AND l.classid = x'68756c65'::int::oid",
            &[&schema],
        )
        .await
        .expect("the leader holds the advisory lock")
        .get(0);
    let hole = BlackHole::port(u16::try_from(port).expect("a port"));
    let cut = Instant::now();
    leader_stop.cancel();
    enqueue(100..200).await;
    wait_for(&log, 200, Duration::from_secs(60)).await;
    let takeover = cut.elapsed();
    drop(hole);
    eprintln!(
        "PostgreSQL: the standby published the rest {takeover:?} after the leader's connection was black-holed \
         (bound {:?} + the standby's poll)",
        hule_pg::HALF_OPEN_BOUND
    );
    assert!(
        takeover <= hule_pg::HALF_OPEN_BOUND + Duration::from_secs(5),
        "took over after {takeover:?}"
    );
    let all = log.lock().expect("lock").clone();
    assert!(
        all[100..].iter().all(|(r, _, _)| *r == 1),
        "the black-holed leader published after the cut"
    );
    assert_once_in_key_order(&all, 200);
    stop.cancel();
    let _ = leader.await.expect("leader task");
    standby.await.expect("standby task").expect("standby");
}

/// The server ends the leading relay's session (a restart or failover does the same to every session): the relay
/// loses its lock with it, connects again, leads again and publishes the rest, rather than ending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_relay_whose_session_the_server_ends_connects_again_and_leads() {
    sessions_ended(Ended::Both).await;
}

/// Only the completion session ended: the leading session completes, and every row still goes out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_relay_whose_completion_session_the_server_ends_goes_on() {
    sessions_ended(Ended::CompletionOnly).await;
}

/// Which of a leading relay's two sessions the server ends.
#[derive(PartialEq)]
enum Ended {
    Both,
    CompletionOnly,
}

async fn sessions_ended(ended: Ended) {
    let name = format!("relay-{}", Uuid::new_v4().simple());
    let url = format!(
        "{}&application_name={name}",
        hule_outbox::testkit::pg_schema_url("hule_lead").await
    );
    let (admin, conn) =
        tokio_postgres::connect(&hule_outbox::testkit::pg_test_url(), tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL must be running (scripts/setup.sh starts it)");
    tokio::spawn(conn);
    let store = PgOutbox::connect(&url).await.expect("outbox");
    let enqueue = |rows: Vec<NewRow>| {
        let url = url.clone();
        async move {
            let (mut client, _wake) = hule_outbox::pg::connect(&url).await.expect("writer");
            let tx = client.transaction().await.expect("tx");
            hule_outbox::pg::enqueue(&tx, &rows).await.expect("enqueue");
            tx.commit().await.expect("commit");
        }
    };
    enqueue(rows(0..20)).await;
    let log: Log = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let relay = tokio::spawn({
        let (log, stop) = (log.clone(), stop.clone());
        async move {
            let config = RelayConfig {
                batch_size: 10,
                poll_interval: Duration::from_millis(20),
                standby_poll: Duration::from_millis(50),
                ..RelayConfig::default()
            };
            run_relay(&store, &Recorder { relay: 0, log }, &config, stop).await
        }
    });
    wait_for(&log, 20, Duration::from_secs(20)).await;
    let schema = url
        .rsplit("search_path%3D")
        .next()
        .and_then(|rest| rest.split('&').next())
        .expect("schema")
        .to_owned();
    wait_recorded(&admin, &schema).await;
    let sessions = |name: String| {
        let admin = &admin;
        async move {
            admin
                .query(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
                    &[&name],
                )
                .await
                .expect("sessions")
                .iter()
                .map(|r| r.get::<_, i32>(0))
                .collect::<Vec<i32>>()
        }
    };
    // Its own session, holding the leadership lock, and the one it completes delivered rows on (opened in the
    // background when it took the lead): both ended, as a server restart ends them.
    let waited = Instant::now();
    let old = loop {
        let old = sessions(name.clone()).await;
        if old.len() == 2 {
            break old;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the relay's two sessions: {old:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let leading: Vec<i32> = admin
        .query(
            "SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = ANY($1)",
            &[&old],
        )
        .await
        .expect("locks")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        leading.len(),
        1,
        "one session leads: {leading:?} of {old:?}"
    );
    let old: Vec<i32> = match ended {
        Ended::Both => old,
        Ended::CompletionOnly => old.into_iter().filter(|p| *p != leading[0]).collect(),
    };
    for pid in &old {
        admin
            .execute("SELECT pg_terminate_backend($1)", &[pid])
            .await
            .expect("terminate");
    }
    // Gone before more rows arrive: what follows can only go out through new sessions.
    let waited = Instant::now();
    while sessions(name.clone())
        .await
        .iter()
        .any(|pid| old.contains(pid))
    {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the sessions did not end"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    enqueue(rows(20..40)).await;
    let resumed = Instant::now();
    while log.lock().expect("lock").len() < 40 {
        if relay.is_finished() {
            panic!("the relay ended with its session: {:?}", relay.await);
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(20),
            "the rest was not published in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = resumed.elapsed();
    // The rest completed too (through a new completion session, or the leading one).
    wait_recorded(&admin, &schema).await;
    match ended {
        // Both replaced: the new completion session opens in the background, so it is waited for (bounded).
        Ended::Both => {
            let waited = Instant::now();
            loop {
                let now = sessions(name.clone()).await;
                if now.len() == 2 && !now.iter().any(|pid| old.contains(pid)) {
                    break;
                }
                assert!(
                    waited.elapsed() < Duration::from_secs(10),
                    "new sessions in place of the old: {old:?} → {now:?}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // Within the minute, no new completion session: the leading one completed the rest.
        Ended::CompletionOnly => assert_eq!(
            sessions(name.clone()).await,
            leading,
            "the leading session alone goes on"
        ),
    }
    stop.cancel();
    relay.await.expect("join").expect("relay");
    assert_once_in_key_order(&log.lock().expect("lock"), 40);
    eprintln!("PostgreSQL: the relay led again and published the rest {after:?} after its session was ended");
}
