//! Events written with the `COMMIT` (`Outbox::begin`): the outbox statement and the `COMMIT` are sent together, and
//! the events are stored exactly when the service's own writes are — on success, when the outbox statement fails
//! (the server rolls the whole transaction back), when the transaction is dropped or rolled back. The connection is
//! left outside any transaction, without a second `ROLLBACK` (whose warning the tests listen for). Every test runs
//! both ways a service writes: on a plain client (the function's call) and on a `WriterConnection` (its prepared
//! one-row insert for a transaction of one event, the function's call for several). PostgreSQL runs on the local
//! server (127.0.0.1:5432, database `test`) and the tests fail loudly when it is missing.

use std::sync::{Arc, Mutex};

use hule_contracts::enums::ProcessingStatus;
use hule_contracts::payloads::SpellcheckPhaseCompletedV1;
use hule_contracts::Timestamp;
use hule_outbox::{Outbox, PublishingTransaction, WriterConnection};
use tokio_postgres::{AsyncMessage, Client};
use uuid::Uuid;

/// Notices and warnings the server sent the writer's session.
type Notices = Arc<Mutex<Vec<String>>>;

/// The writer's connection, in one of the two ways a service writes.
enum Writer {
    /// A plain client: `Outbox::begin`.
    Plain(Client),
    /// `Outbox::begin_on`.
    Prepared(WriterConnection),
}

impl Writer {
    async fn begin<'c>(&'c mut self, outbox: &Outbox) -> PublishingTransaction<'c> {
        match self {
            Writer::Plain(client) => outbox.begin(client).await.expect("begin"),
            Writer::Prepared(conn) => outbox.begin_on(conn).await.expect("begin_on"),
        }
    }

    fn way(&self) -> &'static str {
        match self {
            Writer::Plain(_) => "plain client",
            Writer::Prepared(_) => "writer connection",
        }
    }

    /// How many times this session ran the outbox's prepared insert (0 for a plain client, which has none).
    async fn prepared_runs(&self) -> i64 {
        // (Counted per plan: a plain client has no such statement and counts 0.)
        self.query_one(
            "SELECT COALESCE(sum(generic_plans + custom_plans), 0)::bigint FROM pg_prepared_statements \
             WHERE statement LIKE 'INSERT INTO %event_outbox%'",
            &[],
        )
        .await
        .expect("prepared statements")
        .get(0)
    }
}

/// How many runs of the prepared insert `writer` should have made after `prepared` transactions of one event.
fn expected_runs(writer: &Writer, prepared: i64) -> i64 {
    match writer {
        Writer::Plain(_) => 0,
        Writer::Prepared(_) => prepared,
    }
}

impl std::ops::Deref for Writer {
    type Target = Client;

    fn deref(&self) -> &Client {
        match self {
            Writer::Plain(client) => client,
            Writer::Prepared(conn) => conn,
        }
    }
}

/// Both ways, each on a fresh schema: (the writer, its notices, an admin client on another session).
async fn setups(prefix: &str) -> Vec<(Writer, Notices, Client)> {
    let mut out = Vec::new();
    for prepared in [false, true] {
        let (client, notices, admin) = setup(prefix).await;
        let writer = if prepared {
            Writer::Prepared(WriterConnection::new(client))
        } else {
            Writer::Plain(client)
        };
        out.push((writer, notices, admin));
    }
    out
}

/// A fresh schema with the outbox and a business table; the writer's client (its notices recorded) and an admin
/// client on other sessions.
async fn setup(prefix: &str) -> (Client, Notices, Client) {
    let url = hule_outbox::testkit::pg_schema_url(prefix).await;
    let (admin, _) = hule_outbox::pg::connect(&url).await.expect("admin");
    hule_outbox::pg::migrate(&admin).await.expect("migrate");
    admin
        .batch_execute("CREATE TABLE business (name text PRIMARY KEY)")
        .await
        .expect("business table");
    let notices: Notices = Arc::default();
    let heard = notices.clone();
    let writer = hule_pg::connect_with(&url, move |m| {
        if let AsyncMessage::Notice(n) = m {
            heard
                .lock()
                .expect("notices")
                .push(format!("{}: {}", n.severity(), n.message()));
        }
    })
    .await
    .expect("writer");
    (writer, notices, admin)
}

fn payload(n: i64) -> SpellcheckPhaseCompletedV1 {
    SpellcheckPhaseCompletedV1 {
        entity_id: format!("essay-{n}"),
        batch_id: "batch-1".into(),
        correlation_id: "c".into(),
        status: ProcessingStatus::Completed,
        corrected_text_storage_id: None,
        error_code: None,
        processing_duration_ms: n,
        timestamp: Timestamp::from_datetime(chrono::Utc::now()),
    }
}

async fn count(admin: &Client, sql: &str) -> i64 {
    admin.query_one(sql, &[]).await.expect(sql).get(0)
}

/// The server's notices so far, after a round trip on `writer` (a message queued before it has been answered, its
/// notices recorded, by then).
async fn notices_after_round_trip(writer: &Client, notices: &Notices) -> Vec<String> {
    writer.batch_execute("SELECT 1").await.expect("round trip");
    notices.lock().expect("notices").clone()
}

/// Asserts the server sent the writer's session no notice or warning (a second `ROLLBACK` would cause one).
async fn assert_no_warning(writer: &Client, notices: &Notices) {
    let heard = notices_after_round_trip(writer, notices).await;
    assert!(heard.is_empty(), "the server warned: {heard:?}");
}

/// A transaction on `writer` that has run the service's `write` and published `events` (numbered); their ids.
async fn written<'c>(
    outbox: &Outbox,
    writer: &'c mut Writer,
    write: &str,
    events: std::ops::Range<i64>,
) -> (PublishingTransaction<'c>, Vec<Uuid>) {
    let mut tx = writer.begin(outbox).await;
    tx.execute(write, &[]).await.expect("the service's write");
    let ids = events
        .map(|n| tx.publish(payload(n), Uuid::new_v4()).expect("publish"))
        .collect();
    (tx, ids)
}

#[tokio::test]
async fn events_are_written_with_the_commit_in_publish_order() {
    for (mut writer, notices, admin) in setups("hule_ptx").await {
        let way = writer.way();
        let outbox = Outbox::new("test");
        let mut ids = Vec::new();
        // One event (a writer connection's prepared insert), then three (the function's call).
        for (order, events) in [("order-1", 0..1), ("order-2", 1..4)] {
            let (tx, published) = written(
                &outbox,
                &mut writer,
                &format!("INSERT INTO business VALUES ('{order}')"),
                events.clone(),
            )
            .await;
            assert_eq!(tx.staged(), events.count());
            assert_eq!(
                count(&admin, "SELECT count(*) FROM event_outbox").await,
                ids.len() as i64,
                "{way}: nothing is sent before the commit"
            );
            tx.commit().await.expect("commit");
            ids.extend(published);
        }

        assert_eq!(
            count(&admin, "SELECT count(*) FROM business").await,
            2,
            "{way}: the service's writes"
        );
        let stored: Vec<Uuid> = admin
            .query("SELECT event_id FROM event_outbox ORDER BY seq", &[])
            .await
            .expect("rows")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(stored, ids, "{way}: every event, in the order published");
        assert_eq!(
            writer.prepared_runs().await,
            expected_runs(&writer, 1),
            "{way}: the prepared insert wrote the transaction of one event, and only it"
        );
        assert_no_warning(&writer, &notices).await;
    }
}

#[tokio::test]
async fn a_failing_outbox_statement_rolls_the_whole_transaction_back() {
    for (mut writer, notices, admin) in setups("hule_ptx").await {
        let way = writer.way();
        let outbox = Outbox::new("test");
        let (mut tx, _) = written(
            &outbox,
            &mut writer,
            "INSERT INTO business VALUES ('order-1')",
            0..0,
        )
        .await;
        // A row the server refuses (`event_data` is a json column): the statement fails after it was sent, with the
        // COMMIT already queued behind it. One row, so a writer connection sends its prepared insert.
        let mut bad = hule_outbox::testkit::numbered_rows(1..2, 1).expect("row");
        bad[0].event_data = "{not json".into();
        tx.stage(bad);
        let err = tx.commit().await.expect_err("the outbox statement fails");
        match &err {
            hule_outbox::StoreError::Database { op, .. } => {
                assert_eq!(*op, "enqueue", "{way}: {err}")
            }
            other => panic!("{way}: a refused statement is a database error, not {other:?}"),
        }

        assert_eq!(
            count(&admin, "SELECT count(*) FROM business").await,
            0,
            "{way}: the service's write was rolled back with the events"
        );
        assert_eq!(count(&admin, "SELECT count(*) FROM event_outbox").await, 0);
        // The session is outside any transaction: a write on it is at once visible to another session.
        writer
            .execute("INSERT INTO business VALUES ('order-2')", &[])
            .await
            .expect("write after the failed commit");
        assert_eq!(
            count(
                &admin,
                "SELECT count(*) FROM business WHERE name = 'order-2'"
            )
            .await,
            1,
            "{way}: the writer's session was left inside a transaction"
        );
        assert_no_warning(&writer, &notices).await;
        // The listener hears the warning a second ROLLBACK would cause (so its silence above means something).
        writer.batch_execute("ROLLBACK").await.expect("rollback");
        let heard = notices_after_round_trip(&writer, &notices).await;
        assert!(
            heard
                .iter()
                .any(|n| n.contains("no transaction in progress")),
            "{heard:?}"
        );
    }
}

/// A `commit` cancelled while the server holds its statement back: the `COMMIT` already travels with it, so the
/// server commits both once it can (a statement awaited before a `COMMIT` is sent would, cancelled, roll back), and
/// no second `ROLLBACK` follows.
#[tokio::test]
async fn a_commit_cancelled_after_sending_is_finished_by_the_server() {
    for (mut writer, notices, admin) in setups("hule_ptx").await {
        let way = writer.way();
        let outbox = Outbox::new("test");
        // A writer connection prepares its insert on its first transaction, before the table is locked (preparing
        // takes the table's lock too); this one is dropped, so it rolls back.
        drop(writer.begin(&outbox).await);
        let (blocker, _) = hule_outbox::pg::connect(&hule_outbox::testkit::pg_test_url())
            .await
            .expect("blocker");
        let schema: String = admin
            .query_one("SELECT current_schema()", &[])
            .await
            .expect("schema")
            .get(0);
        blocker
            .batch_execute(&format!(
                "BEGIN; LOCK TABLE {schema}.event_outbox IN SHARE MODE"
            ))
            .await
            .expect("lock the outbox table");
        let (tx, _) = written(
            &outbox,
            &mut writer,
            "INSERT INTO business VALUES ('order-1')",
            0..1,
        )
        .await;
        // The insert waits for the lock, so the commit cannot end before the timeout cancels it.
        let cancelled =
            tokio::time::timeout(std::time::Duration::from_millis(300), tx.commit()).await;
        assert!(
            cancelled.is_err(),
            "{way}: the commit ended while the table was locked: {cancelled:?}"
        );
        assert_eq!(count(&admin, "SELECT count(*) FROM business").await, 0);
        blocker.batch_execute("COMMIT").await.expect("unlock");
        // The writer's next round trip is answered after the statement and the COMMIT queued before it.
        let heard = notices_after_round_trip(&writer, &notices).await;
        assert_eq!(
            count(&admin, "SELECT count(*) FROM business").await,
            1,
            "{way}: the service's write, committed by the COMMIT sent with the statement"
        );
        assert_eq!(count(&admin, "SELECT count(*) FROM event_outbox").await, 1);
        assert!(heard.is_empty(), "{way}: the server warned: {heard:?}");
        assert_eq!(
            writer.prepared_runs().await,
            expected_runs(&writer, 1),
            "{way}: the one event went through the prepared insert"
        );
    }
}

#[tokio::test]
async fn a_commit_the_server_refuses_after_the_statement_stores_nothing() {
    for (mut writer, notices, admin) in setups("hule_ptx").await {
        let way = writer.way();
        admin
        .batch_execute(
            "CREATE TABLE deferred (name text, CONSTRAINT unique_name UNIQUE (name) DEFERRABLE INITIALLY DEFERRED);
             INSERT INTO deferred VALUES ('taken')",
        )
        .await
        .expect("deferred table");
        let outbox = Outbox::new("test");
        // The unique constraint is checked only at the COMMIT, after the outbox statement has succeeded.
        let (tx, _) = written(
            &outbox,
            &mut writer,
            "INSERT INTO deferred VALUES ('taken')",
            0..1,
        )
        .await;
        let err = tx.commit().await.expect_err("the COMMIT is refused");
        match &err {
            hule_outbox::StoreError::Database { op, .. } => {
                assert_eq!(*op, "commit", "{way}: {err}")
            }
            other => panic!("a refused COMMIT is a database error, not {other:?}"),
        }
        assert_eq!(count(&admin, "SELECT count(*) FROM deferred").await, 1);
        assert_eq!(
            writer.prepared_runs().await,
            expected_runs(&writer, 1),
            "{way}: the one event went through the prepared insert"
        );
        assert_eq!(count(&admin, "SELECT count(*) FROM event_outbox").await, 0);
        assert_no_warning(&writer, &notices).await;
    }
}

#[tokio::test]
async fn a_dropped_or_rolled_back_transaction_publishes_nothing() {
    for (mut writer, notices, admin) in setups("hule_ptx").await {
        let outbox = Outbox::new("test");
        drop(
            written(
                &outbox,
                &mut writer,
                "INSERT INTO business VALUES ('dropped')",
                0..1,
            )
            .await,
        );
        let (tx, _) = written(
            &outbox,
            &mut writer,
            "INSERT INTO business VALUES ('rolled back')",
            1..2,
        )
        .await;
        tx.rollback().await.expect("rollback");
        assert_eq!(count(&admin, "SELECT count(*) FROM business").await, 0);
        assert_eq!(count(&admin, "SELECT count(*) FROM event_outbox").await, 0);

        // A transaction that publishes nothing commits as any other.
        let (tx, _) = written(
            &outbox,
            &mut writer,
            "INSERT INTO business VALUES ('no events')",
            0..0,
        )
        .await;
        tx.commit().await.expect("commit");
        assert_eq!(count(&admin, "SELECT count(*) FROM business").await, 1);
        assert_eq!(count(&admin, "SELECT count(*) FROM event_outbox").await, 0);
        assert_no_warning(&writer, &notices).await;
    }
}

/// Another schema with an outbox of its own: a client on it, and the schema's name.
async fn another_outbox() -> (Client, String) {
    let url = hule_outbox::testkit::pg_schema_url("hule_ptx").await;
    let (other, _) = hule_outbox::pg::connect(&url).await.expect("other");
    hule_outbox::pg::migrate(&other)
        .await
        .expect("migrate other");
    let schema: String = other
        .query_one("SELECT current_schema()", &[])
        .await
        .expect("schema")
        .get(0);
    (other, schema)
}

/// A writer connection is tied to the outbox its `search_path` found at its first transaction: moving the path to
/// another schema with an outbox of its own (a plain `SET`, or a `SET LOCAL` in the transaction) moves neither its
/// one-event insert nor its several-event call, so every row goes where its wake-up goes.
#[tokio::test]
async fn a_writer_connection_stays_with_its_outbox_when_the_search_path_moves() {
    let (client, notices, admin) = setup("hule_ptx").await;
    let (other, other_schema) = another_outbox().await;
    let mut writer = Writer::Prepared(WriterConnection::new(client));
    let outbox = Outbox::new("test");
    let (tx, _) = written(&outbox, &mut writer, "SELECT 1", 0..1).await;
    tx.commit().await.expect("first commit, prepared");
    writer
        .batch_execute(&format!("SET search_path = {other_schema}"))
        .await
        .expect("move the search_path");
    for events in [1..2, 2..5] {
        let (tx, _) = written(&outbox, &mut writer, "SELECT 1", events).await;
        tx.commit().await.expect("commit after the move");
    }
    let mut tx = writer.begin(&outbox).await;
    tx.batch_execute(&format!("SET LOCAL search_path = {other_schema}"))
        .await
        .expect("SET LOCAL");
    tx.publish(payload(5), Uuid::new_v4()).expect("publish");
    tx.commit().await.expect("commit after SET LOCAL");

    assert_eq!(
        count(&admin, "SELECT count(*) FROM event_outbox").await,
        6,
        "every row in the first outbox"
    );
    assert_eq!(
        count(&other, "SELECT count(*) FROM event_outbox").await,
        0,
        "nothing in the outbox the path moved to"
    );
    assert_eq!(writer.prepared_runs().await, 3);
    assert_no_warning(&writer, &notices).await;
}

/// A session that lost the prepared insert (`DEALLOCATE ALL`, `DISCARD ALL`) fails the commit that finds it gone,
/// storing nothing, and the connection prepares it again at its next transaction — into the outbox it was tied to,
/// though its `search_path` has moved to another meanwhile.
#[tokio::test]
async fn a_lost_prepared_insert_fails_one_commit_and_is_prepared_again_for_the_same_outbox() {
    let (client, _notices, admin) = setup("hule_ptx").await;
    let (other, other_schema) = another_outbox().await;
    let mut writer = Writer::Prepared(WriterConnection::new(client));
    let outbox = Outbox::new("test");
    let mut n = 0;
    for lose in [
        format!("SET search_path = {other_schema}; DEALLOCATE ALL"),
        "DISCARD ALL".to_owned(),
    ] {
        let (tx, _) = written(&outbox, &mut writer, "SELECT 1", n..n + 1).await;
        tx.commit().await.expect("commit before the loss");
        writer.batch_execute(&lose).await.expect(&lose);
        let (tx, _) = written(&outbox, &mut writer, "SELECT 1", n + 1..n + 2).await;
        let err = tx.commit().await.expect_err("the statement is gone");
        match &err {
            hule_outbox::StoreError::Database { op, .. } => {
                assert_eq!(*op, "enqueue", "{lose}: {err}")
            }
            other => panic!("{lose}: a lost statement is a database error, not {other:?}"),
        }
        let (tx, _) = written(&outbox, &mut writer, "SELECT 1", n + 2..n + 3).await;
        tx.commit().await.expect("prepared again");
        assert_eq!(
            writer.prepared_runs().await,
            1,
            "{lose}: the statement prepared again ran once"
        );
        n += 3;
    }
    assert_eq!(
        count(&admin, "SELECT count(*) FROM event_outbox").await,
        4,
        "two rows before the losses and two after, all in the first outbox"
    );
    assert_eq!(count(&other, "SELECT count(*) FROM event_outbox").await, 0);
}
