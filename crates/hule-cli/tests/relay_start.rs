//! `hule relay` started while Kafka cannot be reached: it says so, waits and tries again instead of exiting, and
//! publishes once the cluster answers (as it rides out an outage that starts later). The cluster is a mock one in
//! this process behind a fault proxy that resets every connection until the test lets it through.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hule_contracts::Event;
use hule_kafka::fault_proxy::{Fault, FaultProxy};

const TOTAL: i64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_started_while_kafka_is_down_waits_then_publishes() {
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock");
    let topic = Event::SpellcheckPhaseCompleted.topic();
    hule_kafka::mock::create_topics(&cluster, [(topic.to_owned(), 3)], 1).expect("topic");
    let upstream = cluster
        .bootstrap_servers()
        .parse()
        .expect("the mock's bootstrap is one address");
    let proxy = FaultProxy::start(upstream).await.expect("proxy");
    proxy.set(Fault::Reset);

    let dir = std::env::temp_dir().join(format!(
        "hule-relay-start-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("outbox.db");
    {
        let _outbox = hule_outbox::SqliteOutbox::open(&db).expect("outbox");
        let mut conn = hule_outbox::sqlite::open(&db).expect("conn");
        let tx = conn.transaction().expect("tx");
        let rows = hule_outbox::testkit::numbered_rows(0..TOTAL, 10).expect("rows");
        hule_outbox::sqlite::enqueue(&tx, &rows).expect("enqueue");
        tx.commit().expect("commit");
    }

    let mut relay = Command::new(env!("CARGO_BIN_EXE_hule"))
        .args([
            "relay",
            "--database-url",
            &format!("sqlite://{}", db.display()),
            "--brokers",
            &proxy.addr().to_string(),
            "--timeout",
            "1s",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hule relay");
    let stderr = relay.stderr.take().expect("stderr");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });

    // It says why it waits, twice (it tried again), and is still running; its metrics address comes first.
    let mut waiting = Vec::new();
    let mut metrics = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while waiting.len() < 2 {
        assert!(Instant::now() < deadline, "no waiting line: {waiting:?}");
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            if let Some(rest) = line.strip_prefix("relay: metrics on http://") {
                metrics = rest.split('/').next().map(str::to_owned);
            }
            if line.contains("the relay tries again") {
                waiting.push(line);
            }
        }
    }
    // Its /healthz says what it waits for (503, the `kafka` part unwell), so a probe sees it.
    let addr = metrics.expect("the metrics line before the wait");
    let health = {
        use std::io::{Read as _, Write as _};
        let mut conn = std::net::TcpStream::connect(&addr).expect("connect to /healthz");
        conn.write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .expect("request");
        let mut text = String::new();
        conn.read_to_string(&mut text).expect("response");
        text
    };
    assert!(
        health.starts_with("HTTP/1.1 503") && health.contains("waiting for Kafka"),
        "{health}"
    );
    assert!(
        waiting[0].contains("cannot reach Kafka brokers"),
        "{waiting:?}"
    );
    assert!(
        relay.try_wait().expect("poll").is_none(),
        "the relay exited"
    );

    proxy.set(Fault::Pass);
    let read = common::read_relayed(
        &cluster.bootstrap_servers(),
        topic,
        "verify-relay-start",
        TOTAL as usize,
        Duration::from_millis(500),
    );
    let _ = relay.kill();
    let _ = relay.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        read.events as i64, TOTAL,
        "every row published once Kafka answered"
    );
}
