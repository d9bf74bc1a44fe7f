//! Network faults, not kills, on the real broker: Redis behind a fault proxy (`hule_kafka::fault_proxy`) is
//! black-holed under load — commands neither answered nor refused — while a consumer deduplicates through it. What
//! it checks: the consumer fails closed (nothing is handled while Redis cannot be asked, beyond the records whose
//! claims were answered before the hole), the retries around the hole run no handler twice, and once Redis answers
//! again the consumer is going within a claim lease (the longest pause is printed). One member only, so nothing is
//! redelivered to another: two members overlapping while one is cut off are in `faults.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hule_consumer::{
    standard_stack, ConsumerMetrics, Context, MemorySink, RedisDedup, Router, TopicChoice,
};
use hule_contracts::payloads::BatchEssaysRegistered;
use hule_kafka::consumer::{run_consumer, ConsumerConfig};
use hule_kafka::fault_proxy::{Fault, FaultProxy};
use hule_kafka::testkit::{essays_registered, produce_all, Backend, TestKafka};

const TOPIC: &str = "huleedu.batch.essays.registered.v1";

fn redis_addr() -> std::net::SocketAddr {
    let url = std::env::var("HULE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let hostport = url
        .trim_start_matches("redis://")
        .split(['/', '?'])
        .next()
        .unwrap_or("127.0.0.1:6379")
        .rsplit('@')
        .next()
        .unwrap_or("127.0.0.1:6379")
        .to_owned();
    std::net::ToSocketAddrs::to_socket_addrs(&hostport)
        .expect("Redis address")
        .next()
        .expect("an address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_redis_black_holed_under_load_handles_nothing_twice() {
    let cluster = TestKafka::start(Backend::Real, 1);
    cluster
        .create_topics([(TOPIC.to_owned(), 4)], 1)
        .await
        .expect("topic");
    let brokers = cluster.bootstrap_servers();
    let group = cluster.group("redis-hole");
    const N: u128 = 600;
    let records: Vec<_> = (0..N)
        .map(|n| essays_registered(TOPIC, n, &format!("batch-{}", n % 24)))
        .collect();
    produce_all(&brokers, TOPIC, &records).await;

    let proxy = FaultProxy::start(redis_addr()).await.expect("proxy");
    let store = RedisDedup::new(&format!("redis://{}", proxy.addr())).expect("redis url");
    store
        .ping()
        .await
        .expect("Redis must be running on 127.0.0.1:6379 (scripts/setup.sh starts it)");
    // Each event's applications, and when the last one happened.
    let applied: Arc<Mutex<HashMap<u128, u32>>> = Arc::default();
    let last_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let router = Router::new().on(TopicChoice::Standard, {
        let (applied, last_at) = (applied.clone(), last_at.clone());
        move |ctx: Context, _p: BatchEssaysRegistered| {
            let (applied, last_at) = (applied.clone(), last_at.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                *applied
                    .lock()
                    .expect("lock")
                    .entry(ctx.event_id.as_u128())
                    .or_default() += 1;
                last_at.lock().expect("lock").push(Instant::now());
                Ok(())
            }
        }
    });
    let registry = hule_metrics::Registry::new();
    let metrics = ConsumerMetrics::new(&registry, "svc", &group);
    let stack = standard_stack(
        router,
        "svc",
        Some(Arc::new(store)),
        Arc::new(MemorySink::default()),
        metrics.clone(),
    )
    .expect("stack");
    let mut cfg = ConsumerConfig::new(&brokers, &group);
    cfg.commit_interval = Duration::from_millis(100);
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn({
        let (stop, metrics) = (stop.clone(), metrics.clone());
        async move { run_consumer(&cfg, &[TOPIC], stack, metrics, stop).await }
    });
    let count = || applied.lock().expect("lock").len();
    let wait = |n: usize, within: Duration| {
        let started = Instant::now();
        async move {
            while count() < n {
                assert!(
                    started.elapsed() < within,
                    "only {} of {n} handled after {within:?}",
                    count()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait(100, Duration::from_secs(60)).await;
    proxy.set(Fault::BlackHole);
    let hole = Duration::from_secs(6);
    tokio::time::sleep(hole).await;
    let during = count();
    proxy.set(Fault::Pass);
    let healed = Instant::now();
    wait(N as usize, Duration::from_secs(90)).await;
    stop.cancel();
    run.await.expect("join").expect("run");

    let applied = applied.lock().expect("lock").clone();
    let twice: Vec<_> = applied.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    assert_eq!(applied.len(), N as usize);
    // Nothing is handled unprotected while Redis cannot be asked (fail-closed): at most the records whose claims
    // were answered before the hole opened.
    assert!(
        during < 100 + 64 * 4,
        "{during} handled while Redis was black-holed"
    );
    let times = last_at.lock().expect("lock").clone();
    let first_after = times.iter().filter(|t| **t >= healed).min().copied();
    let resumed = first_after
        .map(|t| t - healed)
        .expect("handled after the hole");
    let longest_gap = times
        .windows(2)
        .filter(|w| w[0] >= healed)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    eprintln!(
        "Redis black-holed {hole:?}: {during} handled meanwhile; going again {resumed:?} after it returned; longest \
         pause after that {longest_gap:?}"
    );
    let lease = hule_consumer::Dedup::DEFAULT_LEASE;
    assert!(
        resumed <= lease + Duration::from_secs(3),
        "stalled {resumed:?} after Redis returned (lease {lease:?})"
    );
    assert!(
        longest_gap <= lease + Duration::from_secs(3),
        "a pause of {longest_gap:?} after Redis returned"
    );
}
