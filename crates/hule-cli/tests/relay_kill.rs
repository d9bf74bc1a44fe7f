//! `hule relay` killed with SIGKILL in the middle of a drain and started again: every event arrives, in per-key
//! order of first arrival; the only cost of the kill is redelivery of the batch in flight (at least once).
//! Needs PostgreSQL on 127.0.0.1:5432; the Kafka side is a mock cluster in this test process.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hule_contracts::Event;
use uuid::Uuid;

const TOTAL: i64 = 20_000;

/// A relay process, killed when dropped (also when an assertion fails).
struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn relay(url: &str, brokers: &str) -> Relay {
    Relay(
        Command::new(env!("CARGO_BIN_EXE_hule"))
            .args([
                "relay",
                "--database-url",
                url,
                "--brokers",
                brokers,
                "--batch-size",
                "100",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hule relay"),
    )
}

async fn depth(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM event_outbox WHERE published_at IS NULL",
            &[],
        )
        .await
        .expect("depth")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_killed_mid_drain_and_restarted_loses_nothing_and_keeps_key_order() {
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock");
    let topic = Event::SpellcheckPhaseCompleted.topic();
    hule_kafka::mock::create_topics(&cluster, [(topic.to_owned(), 6)], 1).expect("topic");
    let brokers = cluster.bootstrap_servers();

    let schema = format!("hule_test_{}", Uuid::new_v4().simple());
    let base = "postgres://postgres@127.0.0.1:5432/test";
    let (admin, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must run on 127.0.0.1:5432 (scripts/setup.sh starts it)");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("schema");
    let url = format!("{base}?options=-csearch_path%3D{schema}");
    let (mut client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    hule_outbox::pg::migrate(&client).await.expect("migrate");
    for chunk in 0..(TOTAL / 500) {
        let tx = client.transaction().await.expect("tx");
        let first = chunk * 500;
        let rows = hule_outbox::testkit::numbered_rows(first..first + 500, 50).expect("rows");
        hule_outbox::pg::enqueue(&tx, &rows).await.expect("enqueue");
        tx.commit().await.expect("commit");
    }

    let mut first = relay(&url, &brokers);
    let deadline = Instant::now() + Duration::from_secs(60);
    while depth(&client).await > TOTAL * 2 / 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    first.0.kill().expect("SIGKILL");
    first.0.wait().expect("wait");
    let left = depth(&client).await;
    assert!(
        left > 0,
        "the kill came after the drain finished; nothing was tested"
    );

    let second = relay(&url, &brokers);
    while depth(&client).await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        depth(&client).await,
        0,
        "the restarted relay drained the rest"
    );
    drop(second);

    let read = common::read_relayed(
        &brokers,
        topic,
        "verify-kill",
        TOTAL as usize,
        Duration::from_secs(2),
    );
    assert_eq!(read.events as i64, TOTAL, "every event arrived");
    assert!(
        read.records as i64 - TOTAL <= 100 * 6,
        "redelivery is bounded by the batch in flight: {} extra",
        read.records as i64 - TOTAL
    );
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop");
}
