//! The `OutboxStore` conformance suite (`hule_outbox::conformance`) on both backends, and the one-call
//! [`hule_outbox::Outbox`] publish on both: rollback, commit, a pair of events, options.

use std::path::PathBuf;

use hule_contracts::payloads::SpellcheckPhaseCompletedV1;
use hule_outbox::conformance::{run_all, Harness};
use hule_outbox::prepare::NewRow;
use hule_outbox::store::OutboxStore;
use hule_outbox::{Outbox, PgOutbox, PublishOptions, SqliteOutbox};
use uuid::Uuid;

struct Sqlite {
    dir: PathBuf,
}

impl Harness for Sqlite {
    type Store = SqliteOutbox;
    async fn fresh(&self) -> SqliteOutbox {
        let path = self.dir.join(format!("{}.db", Uuid::new_v4().simple()));
        SqliteOutbox::open(&path).expect("open")
    }
    async fn write(&self, store: &SqliteOutbox, rows: Vec<NewRow>, commit: bool) {
        let mut conn = hule_outbox::sqlite::open(store.path()).expect("conn");
        let tx = conn.transaction().expect("tx");
        hule_outbox::sqlite::enqueue(&tx, &rows).expect("enqueue");
        if commit {
            tx.commit().expect("commit");
        } else {
            tx.rollback().expect("rollback");
        }
    }
    async fn another(&self, store: &SqliteOutbox) -> SqliteOutbox {
        SqliteOutbox::open(store.path()).expect("open")
    }
}

/// Each fresh outbox is a schema of its own.
struct Postgres;

impl Harness for Postgres {
    type Store = PgOutbox;
    async fn fresh(&self) -> PgOutbox {
        PgOutbox::connect(&hule_outbox::testkit::pg_schema_url("hule_conf").await)
            .await
            .expect("outbox")
    }
    async fn write(&self, store: &PgOutbox, rows: Vec<NewRow>, commit: bool) {
        let url = store.url().to_owned();
        let (mut client, _wake) = hule_outbox::pg::connect(&url).await.expect("writer");
        let tx = client.transaction().await.expect("tx");
        hule_outbox::pg::enqueue(&tx, &rows).await.expect("enqueue");
        if commit {
            tx.commit().await.expect("commit");
        } else {
            tx.rollback().await.expect("rollback");
        }
    }
    async fn another(&self, store: &PgOutbox) -> PgOutbox {
        PgOutbox::connect(store.url()).await.expect("outbox")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conforms() {
    let dir = std::env::temp_dir().join(format!("hule-conf-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    run_all(&Sqlite { dir: dir.clone() }).await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conforms() {
    run_all(&Postgres).await;
}

fn payload(n: i64) -> SpellcheckPhaseCompletedV1 {
    let at = hule_contracts::Timestamp::from_datetime(chrono::Utc::now());
    SpellcheckPhaseCompletedV1 {
        entity_id: format!("essay-{n}"),
        batch_id: "batch-7".into(),
        correlation_id: "c".into(),
        status: hule_contracts::enums::ProcessingStatus::Completed,
        corrected_text_storage_id: None,
        error_code: None,
        processing_duration_ms: n,
        timestamp: at,
    }
}

/// What one-call publishing must leave in the outbox: the envelope and row the relay will send.
async fn assert_published<S: OutboxStore>(store: &S, ids: &[Uuid], correlation: Uuid) {
    let batch = store.claim(100).await.expect("claim");
    assert_eq!(batch.len(), ids.len());
    for (row, id) in batch.iter().zip(ids) {
        let env: serde_json::Value = serde_json::from_slice(&row.value).expect("json");
        assert_eq!(env["event_id"], id.to_string());
        assert_eq!(env["correlation_id"], correlation.to_string());
        assert_eq!(env["source_service"], "spellchecker_service");
        assert_eq!(
            row.topic,
            hule_contracts::Event::SpellcheckPhaseCompleted.topic()
        );
        assert_eq!(env["event_type"], row.topic);
        assert_eq!(row.key.as_deref(), Some("batch-7"), "the contract key");
        assert_eq!(
            row.headers
                .get(hule_contracts::headers::names::CORRELATION_ID),
            Some(correlation.to_string().as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_publish_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("hule-pub-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("o.db");
    let store = SqliteOutbox::open(&path).expect("open");
    let outbox = Outbox::new("spellchecker_service");
    let mut conn = hule_outbox::sqlite::open(&path).expect("conn");
    let correlation = Uuid::new_v4();

    let tx = conn.transaction().expect("tx");
    outbox
        .publish(&tx, payload(0), correlation)
        .await
        .expect("publish");
    tx.rollback().expect("rollback");
    assert_eq!(store.depth().await.expect("depth"), 0);

    let tx = conn.transaction().expect("tx");
    let (a, b) = outbox
        .publish_pair(&tx, payload(1), payload(2), correlation)
        .await
        .expect("pair");
    tx.commit().expect("commit");
    assert_published(&store, &[a, b], correlation).await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_publish_on_postgres() {
    let url = hule_outbox::testkit::pg_schema_url("hule_pub").await;
    let store = PgOutbox::connect(&url).await.expect("outbox");
    let outbox = Outbox::new("spellchecker_service");
    let (mut client, _wake) = hule_outbox::pg::connect(&url).await.expect("client");
    let correlation = Uuid::new_v4();

    let tx = client.transaction().await.expect("tx");
    outbox
        .publish(&tx, payload(0), correlation)
        .await
        .expect("publish");
    tx.rollback().await.expect("rollback");
    assert_eq!(store.depth().await.expect("depth"), 0);

    let tx = client.transaction().await.expect("tx");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let id = outbox
        .publish_with(
            &tx,
            payload(1),
            correlation,
            &PublishOptions {
                traceparent: Some(traceparent.into()),
                ..PublishOptions::default()
            },
        )
        .await
        .expect("publish");
    tx.commit().await.expect("commit");
    let batch = store.claim(100).await.expect("claim");
    assert_eq!(batch.len(), 1);
    assert_eq!(
        batch[0].headers.get("traceparent"),
        Some(traceparent),
        "the caller's trace continues"
    );
    assert!(String::from_utf8_lossy(&batch[0].value).contains(traceparent));
    store
        .delivered(vec![batch[0].seq], Default::default())
        .await
        .expect("delivered");
    let tx = client.transaction().await.expect("tx");
    let pair = outbox
        .publish_pair(&tx, payload(2), payload(3), correlation)
        .await
        .expect("pair");
    tx.commit().await.expect("commit");
    assert_ne!(pair.0, id);
    assert_published(&store, &[pair.0, pair.1], correlation).await;
}
