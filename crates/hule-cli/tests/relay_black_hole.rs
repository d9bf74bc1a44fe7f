//! Two `hule relay` processes on one SQLite outbox, on the real broker, and the leader cut off from the broker in
//! the middle of a drain for longer than its lease (nftables drops its packets: no FIN, no RST): the standby must not
//! publish what the leader has in flight. When the hole closes, every event is on the topic once per publish, no row
//! was published by both relays, and each key's events arrived in order.
//!
//! Needs root and nftables (scripts/setup.sh installs it) and the broker at `$HULE_TEST_KAFKA` (127.0.0.1:9092).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hule_contracts::Event;
use hule_kafka::fault_proxy::CgroupBlackHole;
use hule_kafka::testkit::{Backend, TestKafka};

const TOTAL: i64 = 6_000;

/// A relay process, killed when dropped (also when an assertion fails).
struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `hule relay` on `db`; in `cgroup` (before it opens a socket) when given.
fn relay(db: &std::path::Path, brokers: &str, cgroup: Option<&std::path::Path>) -> Relay {
    let url = format!("sqlite://{}", db.display());
    let args = [
        "relay",
        "--database-url",
        &url,
        "--brokers",
        brokers,
        "--batch-size",
        "100",
    ];
    let mut command = match cgroup {
        None => Command::new(env!("CARGO_BIN_EXE_hule")),
        Some(dir) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg("echo $$ > \"$0/cgroup.procs\" && exec \"$@\"")
                .arg(dir)
                .arg(env!("CARGO_BIN_EXE_hule"));
            c
        }
    };
    Relay(
        command
            .args(args)
            .stdout(Stdio::null())
            .stderr(match std::env::var_os("HULE_TEST_LOG") {
                Some(_) => Stdio::inherit(),
                None => Stdio::null(),
            })
            .spawn()
            .expect("spawn hule relay"),
    )
}

fn depth(db: &std::path::Path) -> i64 {
    let conn = hule_outbox::sqlite::open(db).expect("open");
    conn.query_row(
        "SELECT count(*) FROM event_outbox WHERE published_at IS NULL",
        [],
        |r| r.get(0),
    )
    .expect("depth")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_broker_longer_than_its_lease_is_not_doubled_by_the_standby() {
    let kafka = TestKafka::start(Backend::Real, 1);
    let brokers = kafka.bootstrap_servers();
    let port: u16 = brokers
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("HULE_TEST_KAFKA is one host:port");
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    // A topic of the test's own: the outbox rows name it.
    let prefix = format!("{}.blackhole-", Event::SpellcheckPhaseCompleted.topic());
    let topic = format!("{prefix}{}", &suffix[..8]);
    kafka
        .create_topics([(topic.clone(), 6)], 1)
        .await
        .expect("topic");

    let dir = std::env::temp_dir().join(format!("hule-relay-hole-{suffix}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("outbox.db");
    {
        let _outbox = hule_outbox::SqliteOutbox::open(&db).expect("outbox");
        let mut conn = hule_outbox::sqlite::open(&db).expect("conn");
        let tx = conn.transaction().expect("tx");
        let mut rows = hule_outbox::testkit::numbered_rows(0..TOTAL, 50).expect("rows");
        for row in &mut rows {
            row.topic = topic.clone();
        }
        hule_outbox::sqlite::enqueue(&tx, &rows).expect("enqueue");
        tx.commit().expect("commit");
    }

    let hole = CgroupBlackHole::new(port);
    let leader = relay(&db, &brokers, Some(hole.cgroup()));
    let deadline = Instant::now() + Duration::from_secs(120);
    while depth(&db) > TOTAL * 2 / 3 {
        assert!(Instant::now() < deadline, "the leader published nothing");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The leader is cut off mid-drain; a standby starts beside it and waits out the hole, which lasts longer than
    // the 15 s lease.
    hole.on();
    let cut_depth = depth(&db);
    let standby = relay(&db, &brokers, None);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let depth_in_hole = depth(&db);
    hole.off();
    while depth(&db) > 0 {
        assert!(
            Instant::now() < deadline,
            "{} rows left after the hole closed",
            depth(&db)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(standby);
    drop(leader);
    drop(hole);

    let read = common::read_relayed(
        &brokers,
        &topic,
        &format!("verify-{suffix}"),
        TOTAL as usize,
        Duration::from_secs(3),
    );
    let _ = kafka.delete_topics_with_prefix(&topic).await;
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "relay black hole: cut at {cut_depth} rows left; {depth_in_hole} left after 20 s in the hole; {} of {TOTAL} \
         events on the topic, {} records",
        read.events,
        read.records
    );
    // The leader's database is not cut off, only its broker: the batches it had in flight when the hole opened
    // (the one publishing and the one claimed beside it, 100 rows each), acknowledged just before, may still be
    // completed. Anything more left the outbox during the hole through the standby, which would have drained
    // thousands of rows in 20 s.
    assert!(
        cut_depth - depth_in_hole <= 200,
        "{} rows were published while the leader was cut off: by the standby",
        cut_depth - depth_in_hole
    );
    assert_eq!(read.events as i64, TOTAL, "every event arrived");
    assert_eq!(read.records as i64, TOTAL, "no event was published twice");
}
