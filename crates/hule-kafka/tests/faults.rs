//! Faults during a run, on real Kafka and real servers of the test's own (a one-node Kafka through
//! `scripts/kafka.sh`, a PostgreSQL initialised for the test, a Redis started for it), for both ways of
//! deduplicating: the PostgreSQL inbox and Redis. While two consumers of one group work through 2,000 events
//! (each handler writes its effect as a row), the test
//!
//! 1. restarts the dedup store (PostgreSQL with `-m immediate`, as a crash; Redis with SIGKILL, losing its data),
//! 2. SIGKILLs the broker and, while it is down, one consumer — a process of its own, killed inside its handlers —
//!    then starts the broker again, so the group rebalances with a member that never answers, and lets the other
//!    take over.
//!
//! Then: every event has its effect (0 lost); with the inbox no effect is written twice (with Redis, whose restart
//! loses its markers, the count of double applications is reported); the longest time without progress is
//! stated and bounded; and the surviving consumer's metrics show the records it could not commit meanwhile.
//!
//! A third test black-holes one member's connections to the broker (no FIN, no RST: its packets dropped by
//! nftables, as when its host is cut off) while it works: the group must move on without it, and the inbox must
//! apply no event twice although the cut-off member goes on handling what it had already fetched.
//!
//! Needs Java/Maven (the broker), PostgreSQL's server binaries and `redis-server` (scripts/setup.sh installs all),
//! root (`initdb` as postgres; nftables and a cgroup for the black hole). Ports: Kafka 25092/25192, 25093/25193 and
//! 25094/25194, PostgreSQL 25432/25433/25434, Redis 26379/26380 (below the ephemeral range).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hule_consumer::inbox::TxHandler;
use hule_consumer::{
    standard_stack, ConsumerMetrics, Context, HandlerError, MemorySink, PgInbox, RedisDedup,
    Router, TopicChoice,
};
use hule_contracts::payloads::BatchEssaysRegistered;
use hule_kafka::consumer::{run_consumer, ConsumerConfig};
use hule_kafka::fault_proxy::CgroupBlackHole;
use hule_kafka::testkit::{essays_registered, produce_all, ScriptCluster};
use uuid::Uuid;

const TOPIC: &str = "huleedu.batch.essays.registered.v1";
const N: u64 = 2000;
const PARTITIONS: i32 = 4;

/// One test at a time: each starts a broker and servers of its own.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rand_suffix() -> String {
    Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A PostgreSQL server of the test's own (initdb into a temporary directory, trust auth, loopback only, no fsync).
struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
}

fn as_postgres(cmd: &str, args: &[&str]) -> std::process::Output {
    let bin = format!("/usr/lib/postgresql/{}/bin/{cmd}", pg_version());
    let root = is_root();
    let mut c = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &bin]);
        c
    } else {
        Command::new(&bin)
    };
    c.args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (PostgreSQL server binaries: scripts/setup.sh)"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

fn pg_version() -> String {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL must be installed (scripts/setup.sh)")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    versions.last().expect("a PostgreSQL version").to_string()
}

impl PrivatePostgres {
    fn start(port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("hule-pg-{port}-{}", rand_suffix()));
        std::fs::create_dir_all(&dir).expect("dir");
        if is_root() {
            let ok = Command::new("chown")
                .args(["postgres:postgres", &dir.to_string_lossy()])
                .status()
                .expect("chown");
            assert!(ok.success(), "chown of {}", dir.display());
        }
        let data = dir.join("data");
        let out = as_postgres(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = PrivatePostgres { dir, port };
        pg.up();
        pg
    }

    fn up(&self) {
        let data = self.dir.join("data");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log");
        let out = as_postgres(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-o",
                &opts,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server as a crash would (`-m immediate`: no checkpoint, every connection cut).
    fn crash(&self) {
        let data = self.dir.join("data");
        let out = as_postgres(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = as_postgres(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis server of the test's own: loopback, no persistence (a restart loses everything, the worst case).
struct PrivateRedis {
    port: u16,
    child: Child,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = Self::spawn(port);
        PrivateRedis { port, child }
    }

    fn spawn(port: u16) -> Child {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/setup.sh)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// SIGKILL (everything it held is lost).
    fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again, empty.
    fn up(&mut self) {
        self.child = Self::spawn(self.port);
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Store {
    Inbox,
    Redis,
}

/// The consumer both processes run: the standard stack over a handler that writes the event's effect as a row
/// (inside the inbox's transaction, or on its own with Redis deduplicating), taking 5 ms.
async fn consumer(
    store: Store,
    brokers: &str,
    group: &str,
    pg_url: &str,
    redis_url: &str,
    metrics: ConsumerMetrics,
    stop: tokio_util::sync::CancellationToken,
) -> Result<(), String> {
    consumer_taking(
        store, brokers, group, pg_url, redis_url, metrics, stop, HANDLER,
    )
    .await
}

/// How long a handler takes by default (besides its insert).
const HANDLER: Duration = Duration::from_millis(5);

/// [`consumer`] with handlers that take `handler` each.
#[allow(clippy::too_many_arguments)]
async fn consumer_taking(
    store: Store,
    brokers: &str,
    group: &str,
    pg_url: &str,
    redis_url: &str,
    metrics: ConsumerMetrics,
    stop: tokio_util::sync::CancellationToken,
    handler: Duration,
) -> Result<(), String> {
    let mut cfg = ConsumerConfig::new(brokers, group);
    cfg.commit_interval = Duration::from_millis(100);
    // The driver's own session and rebalance timeouts (10 s, 30 s) are what is tested.
    let sink = Arc::new(MemorySink::default());
    let stack = match store {
        Store::Inbox => {
            let inbox = PgInbox::connect(pg_url, group, 2)
                .await
                .map_err(|e| e.to_string())?;
            let handler: Arc<TxHandler<BatchEssaysRegistered>> = Arc::new(move |tx, ctx, _p| {
                Box::pin(async move {
                    tokio::time::sleep(handler).await;
                    tx.execute(
                        "INSERT INTO effects (event_id) VALUES ($1)",
                        &[&ctx.event_id],
                    )
                    .await
                    .map_err(HandlerError::transient)?;
                    Ok(())
                })
            });
            let router = inbox.route(Router::new(), TopicChoice::Standard, handler);
            standard_stack(router, "faults", None, sink, metrics.clone())
                .map_err(|e| e.to_string())?
        }
        Store::Redis => {
            let effects = Arc::new(tokio::sync::Mutex::new(
                hule_pg::connect(pg_url).await.map_err(|e| e.to_string())?,
            ));
            let pg_url = pg_url.to_owned();
            let router = Router::new().on(
                TopicChoice::Standard,
                move |ctx: Context, _p: BatchEssaysRegistered| {
                    let (effects, pg_url) = (effects.clone(), pg_url.clone());
                    async move {
                        tokio::time::sleep(handler).await;
                        let mut client = effects.lock().await;
                        if client.is_closed() {
                            *client = hule_pg::connect(&pg_url)
                                .await
                                .map_err(HandlerError::transient)?;
                        }
                        client
                            .execute(
                                "INSERT INTO effects (event_id) VALUES ($1)",
                                &[&ctx.event_id],
                            )
                            .await
                            .map_err(HandlerError::transient)?;
                        Ok(())
                    }
                },
            );
            let redis = Arc::new(RedisDedup::new(redis_url).map_err(|e| e.to_string())?);
            standard_stack(router, "faults", Some(redis), sink, metrics.clone())
                .map_err(|e| e.to_string())?
        }
    };
    run_consumer(&cfg, &[TOPIC], stack, metrics, stop)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The child consumer process, SIGKILLed when dropped: a test that fails before killing it must not leave a consumer
/// behind that joins the next run's group on the same fixed ports (one did, and applied every event a second time
/// through an inbox of its own group).
struct ChildConsumer(Child);

impl ChildConsumer {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildConsumer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The consumer in a process of its own (this test binary, running `child_consumer`), so it can be SIGKILLed.
fn spawn_child(
    store: Store,
    brokers: &str,
    group: &str,
    pg_url: &str,
    redis_url: &str,
) -> ChildConsumer {
    spawn_child_in(store, brokers, group, pg_url, redis_url, None, HANDLER)
}

/// [`spawn_child`], the process placed in `cgroup` (a cgroup v2 directory) before it runs, so that every socket it
/// opens belongs to that cgroup and an nftables rule on the cgroup reaches its connections and no one else's.
fn spawn_child_in(
    store: Store,
    brokers: &str,
    group: &str,
    pg_url: &str,
    redis_url: &str,
    cgroup: Option<&std::path::Path>,
    handler: Duration,
) -> ChildConsumer {
    let exe = std::env::current_exe().expect("exe");
    let args = [
        "--exact",
        "child_consumer",
        "--ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ];
    let mut command = match cgroup {
        None => Command::new(&exe),
        Some(dir) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg("echo $$ > \"$0/cgroup.procs\" && exec \"$@\"")
                .arg(dir)
                .arg(&exe);
            c
        }
    };
    let child = command
        .args(args)
        .env("HULE_FAULT_STORE", format!("{store:?}"))
        .env("HULE_FAULT_BROKERS", brokers)
        .env("HULE_FAULT_GROUP", group)
        .env("HULE_FAULT_PG", pg_url)
        .env("HULE_FAULT_REDIS", redis_url)
        .env("HULE_FAULT_HANDLER_MS", handler.as_millis().to_string())
        .stdout(Stdio::null())
        .stderr(match std::env::var_os("HULE_TEST_LOG") {
            Some(_) => Stdio::inherit(),
            None => Stdio::null(),
        })
        .spawn()
        .expect("child consumer");
    ChildConsumer(child)
}

/// Run by the fault tests as a child process (see `spawn_child`); consumes until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the fault tests run this in a child process of their own and SIGKILL it"]
async fn child_consumer() {
    logs();
    let var =
        |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set by the fault tests"));
    let store = if var("HULE_FAULT_STORE") == "Inbox" {
        Store::Inbox
    } else {
        Store::Redis
    };
    let stop_rx = tokio_util::sync::CancellationToken::new();
    let _stop_tx = stop_rx.clone();
    let handler = std::env::var("HULE_FAULT_HANDLER_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(HANDLER, Duration::from_millis);
    consumer_taking(
        store,
        &var("HULE_FAULT_BROKERS"),
        &var("HULE_FAULT_GROUP"),
        &var("HULE_FAULT_PG"),
        &var("HULE_FAULT_REDIS"),
        // The group's members share its dedup namespace.
        ConsumerMetrics::new(
            &hule_metrics::Registry::new(),
            "faults",
            &var("HULE_FAULT_GROUP"),
        ),
        stop_rx,
        handler,
    )
    .await
    .expect("child consumer");
}

/// Effects written: (distinct events, rows), read on a connection of its own; `None` while PostgreSQL is down.
async fn effects(pg_url: &str) -> Option<(i64, i64)> {
    let client = hule_pg::connect(pg_url).await.ok()?;
    let row = client
        .query_one(
            "SELECT count(DISTINCT event_id), count(*) FROM effects",
            &[],
        )
        .await
        .ok()?;
    Some((row.get(0), row.get(1)))
}

/// The effects table on `pg_url` (each effect says which member applied it — the members connect under application
/// names of their own — and when), a one-node cluster of the test's own on `kafka_port` with the topic, the `N`
/// events produced to it, and a consumer group name of this run.
async fn backlog(pg_url: &str, kafka_port: u16) -> (ScriptCluster, String, String) {
    let c = hule_pg::connect(pg_url).await.expect("private PostgreSQL");
    c.batch_execute(
        "CREATE TABLE effects (event_id uuid NOT NULL, who text DEFAULT current_setting('application_name'), \
         at timestamptz NOT NULL DEFAULT clock_timestamp())",
    )
    .await
    .expect("effects");
    let cluster = ScriptCluster::start(1, kafka_port);
    let brokers = cluster.bootstrap_servers();
    cluster
        .create_topics([(TOPIC.to_owned(), PARTITIONS)], 1)
        .await
        .expect("topic");
    let records: Vec<_> = (0..N)
        .map(|n| essays_registered(TOPIC, u128::from(n) + 1, &format!("batch-{}", n % 40)))
        .collect();
    produce_all(&brokers, TOPIC, &records).await;
    (cluster, brokers, format!("faults-{}", rand_suffix()))
}

/// `HULE_TEST_LOG=info` (a tracing filter) shows the consumers' logs on stderr.
fn logs() {
    if let Ok(filter) = std::env::var("HULE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

async fn run_with_faults(store: Store, kafka_port: u16, pg_port: u16, redis_port: u16) {
    let _serial = SERIAL.lock().await;
    logs();
    let pg = PrivatePostgres::start(pg_port);
    let mut redis = PrivateRedis::start(redis_port);
    let (pg_url, redis_url) = (pg.url(), redis.url());
    let (cluster, brokers, group) = backlog(&pg_url, kafka_port).await;

    // Two members: a child process (to be killed) and one in this process (the survivor, whose metrics we read).
    let mut child = spawn_child(store, &brokers, &group, &pg_url, &redis_url);
    let metrics = ConsumerMetrics::new(&hule_metrics::Registry::new(), "faults", &group);
    let stop_rx = tokio_util::sync::CancellationToken::new();
    let stop_tx = stop_rx.clone();
    let mut survivor = tokio::spawn({
        let (brokers, group, pg_url, redis_url, metrics) = (
            brokers.clone(),
            group.clone(),
            pg_url.clone(),
            redis_url.clone(),
            metrics.clone(),
        );
        async move {
            consumer(
                store, &brokers, &group, &pg_url, &redis_url, metrics, stop_rx,
            )
            .await
        }
    });

    // Progress is watched from outside; each fault is injected once progress passes its mark.
    let started = Instant::now();
    let (mut last, mut last_change, mut longest_stall) = (0i64, Instant::now(), Duration::ZERO);
    let mut log: Vec<String> = Vec::new();
    let mut step = 0;
    let deadline = Duration::from_secs(240);
    loop {
        if survivor.is_finished() {
            // It runs until told to stop: ending early is a failure of its own (at start, or mid-run).
            let ended = (&mut survivor).await.expect("join");
            panic!("the surviving consumer ended early: {ended:?}; faults: {log:?}");
        }
        let now = effects(&pg_url).await;
        let done = now.map_or(last, |(distinct, _)| distinct);
        if done > last {
            longest_stall = longest_stall.max(last_change.elapsed());
            last = done;
            last_change = Instant::now();
        }
        if done >= N as i64 {
            break;
        }
        assert!(
            started.elapsed() < deadline,
            "{done} of {N} events applied after {deadline:?}; faults: {log:?}"
        );
        let at = Instant::now();
        match step {
            0 if done >= N as i64 / 5 => {
                // Down until the survivor has met the outage (a record it could not commit), then up again.
                let before = metrics.outcomes(TOPIC, "not_committed");
                match store {
                    Store::Inbox => pg.crash(),
                    Store::Redis => redis.crash(),
                }
                while metrics.outcomes(TOPIC, "not_committed") <= before {
                    assert!(
                        !survivor.is_finished(),
                        "the surviving consumer ended early"
                    );
                    assert!(
                        at.elapsed() < Duration::from_secs(30),
                        "the outage went unnoticed"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                match store {
                    Store::Inbox => pg.up(),
                    Store::Redis => redis.up(),
                }
                log.push(format!(
                    "store crashed at {done}, down {:?}, restarted",
                    at.elapsed()
                ));
                step += 1;
            }
            1 if done >= N as i64 * 2 / 5 => {
                // The broker dies, and so does a member while it is down: when the broker is back, the group
                // rebalances with a member that never answers — the worst moment to lose one (the coordinator
                // waits for it up to the rebalance timeout; librdkafka's default of 300 s stalled this test until
                // the driver set 30 s).
                cluster.kill_node(1);
                child.kill();
                cluster.start_node(1);
                log.push(format!(
                    "broker and one consumer process SIGKILLed at {done}, broker back in {:?}",
                    at.elapsed()
                ));
                step += 2;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    longest_stall = longest_stall.max(last_change.elapsed());
    child.kill();
    stop_tx.cancel();
    let survived = tokio::time::timeout(Duration::from_secs(60), survivor)
        .await
        .expect("the survivor stops")
        .expect("join");
    survived.expect("the surviving consumer ran to the end");

    let (distinct, rows) = effects(&pg_url).await.expect("effects");
    let stalls = metrics.outcomes(TOPIC, "not_committed");
    eprintln!(
        "{store:?}: {distinct} of {N} events applied, {} applied twice, in {:?}; longest time without progress \
         {longest_stall:?}; survivor's records not committed (retried) {stalls}; {}",
        rows - distinct,
        started.elapsed(),
        log.join("; ")
    );
    assert_eq!(step, 3, "every fault was injected: {log:?}");
    assert_eq!(distinct, N as i64, "0 events lost");
    if store == Store::Inbox {
        assert_eq!(rows, distinct, "0 events applied twice with the inbox");
    }
    assert!(
        longest_stall < Duration::from_secs(60),
        "progress stalled for {longest_stall:?}"
    );
    let mut handled: HashMap<&str, f64> = HashMap::new();
    for o in ["handled", "duplicate", "not_committed"] {
        handled.insert(o, metrics.outcomes(TOPIC, o));
    }
    assert!(
        handled["handled"] > 0.0,
        "the survivor handled events: {handled:?}"
    );
    assert!(
        handled["not_committed"] > 0.0,
        "the survivor's metrics show the outage it rode out: {handled:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_consumers_survive_a_postgres_crash_a_broker_kill_and_a_killed_member() {
    run_with_faults(Store::Inbox, 25092, 25432, 26379).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_consumers_survive_a_redis_crash_a_broker_kill_and_a_killed_member() {
    run_with_faults(Store::Redis, 25093, 25433, 26380).await;
}

/// Handlers slow enough (25 ms; 4 partitions: 160 events/s) that both members are still working when one is cut off.
const SLOW_HANDLER: Duration = Duration::from_millis(25);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_black_holed_from_the_broker_is_replaced_and_the_inbox_applies_nothing_twice() {
    let _serial = SERIAL.lock().await;
    logs();
    let (kafka_port, pg_port) = (25094, 25434);
    let pg = PrivatePostgres::start(pg_port);
    let pg_url = pg.url();
    let (_cluster, brokers, group) = backlog(&pg_url, kafka_port).await;

    let hole = CgroupBlackHole::new(kafka_port);
    let child_url = format!("{pg_url}?application_name=child");
    let mut child = spawn_child_in(
        Store::Inbox,
        &brokers,
        &group,
        &child_url,
        "redis://unused",
        Some(hole.cgroup()),
        SLOW_HANDLER,
    );
    // The child first, alone, until it applies events; then the survivor joins and takes half the partitions.
    let waited = Instant::now();
    while applied_by(&pg_url, "child").await == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the child consumer applied nothing in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = ConsumerMetrics::new(&hule_metrics::Registry::new(), "faults", &group);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut survivor = tokio::spawn({
        let (brokers, group, pg_url, metrics, stop) = (
            brokers.clone(),
            group.clone(),
            format!("{pg_url}?application_name=survivor"),
            metrics.clone(),
            stop.clone(),
        );
        async move {
            consumer_taking(
                Store::Inbox,
                &brokers,
                &group,
                &pg_url,
                "redis://unused",
                metrics,
                stop,
                SLOW_HANDLER,
            )
            .await
        }
    });

    let started = Instant::now();
    let (mut last, mut last_change, mut longest_stall) = (0i64, Instant::now(), Duration::ZERO);
    let mut cut_at: Option<(Instant, i64, i64)> = None;
    // The last 2.5 s of samples (taken every 0.1 s) of what each member has applied: with the inbox's batched runs a
    // member's effects commit a run at a time (up to 64 records of this 25 ms handler, 1.6 s), so "applying right
    // now" is judged over that window.
    let mut window: std::collections::VecDeque<(i64, i64)> = std::collections::VecDeque::new();
    loop {
        if survivor.is_finished() {
            let ended = (&mut survivor).await.expect("join");
            panic!("the surviving consumer ended early: {ended:?}");
        }
        let done = effects(&pg_url)
            .await
            .map_or(last, |(distinct, _)| distinct);
        if done > last {
            longest_stall = longest_stall.max(last_change.elapsed());
            last = done;
            last_change = Instant::now();
        }
        if done >= N as i64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "{done} of {N} events applied after 180 s; black hole at {cut_at:?}"
        );
        // Cut the child off while both members work: the survivor has applied events, and the child is applying
        // some right now.
        let (by_child, by_survivor) = (
            applied_by(&pg_url, "child").await,
            applied_by(&pg_url, "survivor").await,
        );
        let (child_before, survivor_before) = window.front().copied().unwrap_or((0, 0));
        if cut_at.is_none()
            && by_child > child_before
            && by_survivor > survivor_before
            && window.back().is_some_and(|&(_, survivor)| survivor >= 20)
        {
            hole.on();
            cut_at = Some((Instant::now(), done, by_child));
        }
        window.push_back((by_child, by_survivor));
        if window.len() > 25 {
            window.pop_front();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    longest_stall = longest_stall.max(last_change.elapsed());
    let (cut, cut_done, child_at_cut) = cut_at.expect("the black hole was made");
    let after_cut = cut.elapsed();
    hole.off();
    child.kill();
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(60), survivor)
        .await
        .expect("the survivor stops")
        .expect("join")
        .expect("the surviving consumer ran to the end");

    let (distinct, rows) = effects(&pg_url).await.expect("effects");
    let duplicates = metrics.outcomes(TOPIC, "duplicate");
    let (by_child, by_survivor) = (
        applied_by(&pg_url, "child").await,
        applied_by(&pg_url, "survivor").await,
    );
    eprintln!(
        "black hole: one member's broker connections dropped at {cut_done} of {N} (it had applied \
         {child_at_cut}); all {distinct} applied {after_cut:?} later, {} applied twice; the cut-off member applied \
         {} more from what it had fetched; longest time without progress {longest_stall:?}; redeliveries the \
         survivor found already applied (inbox duplicates) {duplicates}",
        rows - distinct,
        by_child - child_at_cut
    );
    assert_eq!(
        by_child + by_survivor,
        rows,
        "every effect names its member"
    );
    // The group moved on: the partitions the child was working on when it went quiet were finished by the survivor.
    let client = hule_pg::connect(&pg_url).await.expect("PostgreSQL");
    let taken_over: i64 = client
        .query_one(
            "WITH quiet AS (SELECT max(at) AS at FROM effects WHERE who = 'child'),
                  childs AS (SELECT DISTINCT i.partition FROM effects e JOIN hule_inbox i USING (event_id), quiet
                             WHERE e.who = 'child' AND e.at > quiet.at - interval '1 second')
             SELECT count(*) FROM effects e JOIN hule_inbox i USING (event_id), quiet
             WHERE e.who = 'survivor' AND e.at > quiet.at AND i.partition IN (SELECT partition FROM childs)",
            &[],
        )
        .await
        .expect("takeover query")
        .get(0);
    assert!(
        taken_over > 0,
        "the survivor applied nothing of the cut-off member's partitions after it went quiet"
    );
    assert_eq!(distinct, N as i64, "0 events lost");
    assert_eq!(rows, distinct, "0 events applied twice with the inbox");
    // The group noticed within the member's session timeout (10 s) and a rebalance.
    assert!(
        longest_stall < Duration::from_secs(45),
        "progress stalled for {longest_stall:?}"
    );
    drop(hole);
}

/// Effects applied by the member connected as `who`.
async fn applied_by(pg_url: &str, who: &str) -> i64 {
    let Ok(client) = hule_pg::connect(pg_url).await else {
        return 0;
    };
    client
        .query_one("SELECT count(*) FROM effects WHERE who = $1", &[&who])
        .await
        .map_or(0, |r| r.get(0))
}
