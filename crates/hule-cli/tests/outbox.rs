//! `hule relay` and `hule outbox`: configuration precedence, fast failures, TLS to PostgreSQL, status, retry and discard.

use std::process::{Command, Stdio};

mod common;
use common::{hule, unrelated_ca};

#[test]
fn outbox_commands_fail_fast_on_misconfiguration() {
    let (code, _, err) = hule(&["outbox", "status", "--database-url", "mysql://x"], None);
    assert_eq!(code, 2);
    assert!(err.contains("unsupported database URL"), "{err}");
    let (code, _, err) = hule(
        &[
            "outbox",
            "status",
            "--database-url",
            "sqlite:///nonexistent/dir/outbox.db",
        ],
        None,
    );
    assert_eq!(code, 2);
    assert!(err.contains("no outbox database"), "{err}");
    let (code, _, err) = hule(
        &[
            "outbox",
            "status",
            "--database-url",
            "postgres://postgres@127.0.0.1:1/test",
        ],
        None,
    );
    assert_eq!(
        code, 3,
        "a server that cannot be reached is exit status 3: {err}"
    );
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
}

/// `hule relay --config FILE` (TOML) on the real broker: the database, service name, batch size and the `[kafka]`
/// table come from the file, a flag wins over it; SIGTERM ends the relay after the batch in flight. An unknown key
/// in the file is refused with the file's name and the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_reads_its_configuration_file_and_flags_win() {
    use hule_outbox::prepare::{prepare, EnqueueOptions};
    use hule_outbox::store::OutboxStore;
    let cluster = hule_kafka::testkit::TestKafka::start(hule_kafka::testkit::Backend::Real, 1);
    let topic = hule_contracts::Event::BatchEssaysRegistered.topic();
    cluster
        .create_topics([(topic.to_owned(), 3)], 1)
        .await
        .expect("topic");
    let dir = std::env::temp_dir().join(format!(
        "hule-relay-config-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("outbox.db");
    let outbox = hule_outbox::SqliteOutbox::open(&db).expect("outbox");
    {
        let mut conn = hule_outbox::sqlite::open(outbox.path()).expect("conn");
        let tx = conn.transaction().expect("tx");
        for i in 0..50u128 {
            let env = hule_contracts::examples::example_envelope(
                hule_contracts::Event::BatchEssaysRegistered,
                uuid::Uuid::from_u128(i + 1),
                uuid::Uuid::from_u128(7),
                hule_contracts::Timestamp::from_datetime(chrono::Utc::now()),
            )
            .expect("example")
            .map_data(|d| match d {
                hule_contracts::TypedEvent::BatchEssaysRegistered(p) => p,
                _ => unreachable!("the example of BATCH_ESSAYS_REGISTERED"),
            });
            hule_outbox::sqlite::enqueue(
                &tx,
                &prepare(&env, &EnqueueOptions::default()).expect("prep"),
            )
            .expect("enqueue");
        }
        tx.commit().expect("commit");
    }
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{}\"\nservice = \"from-the-file\"\nbatch_size = 7\n\n[kafka]\nbrokers = \"{}\"\n\n[kafka.properties]\n\"client.id\" = \"hule-relay-config-test\"\n",
            db.display(),
            cluster.bootstrap_servers()
        ),
    )
    .expect("write config");
    let child = Command::new(env!("CARGO_BIN_EXE_hule"))
        .args([
            "relay",
            "--config",
            config.to_str().expect("path"),
            "--service",
            "from-the-flag",
        ])
        .env_remove("HULE_BROKERS")
        .env_remove("HULE_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hule relay");
    let started = std::time::Instant::now();
    while outbox.depth().await.expect("depth") > 0 {
        assert!(
            started.elapsed().as_secs() < 60,
            "the relay did not drain the outbox"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("relay exits");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("relay[from-the-flag]"),
        "the flag wins over the file: {err}"
    );
    assert!(
        err.contains("published 50 in 8 batches"),
        "batch_size 7 from the file: {err}"
    );

    std::fs::write(&config, "database_url = \"sqlite:///x\"\nbatchsize = 7\n").expect("write");
    let (code, _, err) = hule(&["relay", "--config", config.to_str().expect("path")], None);
    assert_eq!(code, 2);
    assert!(
        err.contains("relay.toml") && err.contains("batchsize"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `hule outbox status` over TLS: `verify-full` against the CA `scripts/setup.sh` made works; a CA that signed
/// nothing fails with exit 2 and says it is the certificate; the password of the URL is never printed.
#[test]
fn outbox_status_over_tls_verifies_the_server_certificate() {
    let ca = std::env::var("HULE_TEST_PG_CA")
        .unwrap_or_else(|_| "/var/lib/postgresql/hule-tls/ca.pem".into());
    let schema = format!("hule_tls_{}", uuid::Uuid::new_v4().simple());
    let url = format!(
        "postgres://postgres:never-shown@127.0.0.1:5432/test?sslmode=verify-full&sslrootcert={ca}&options=-csearch_path%3D{schema}"
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let admin = hule_pg::connect("postgres://postgres@127.0.0.1:5432/test")
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (scripts/setup.sh)");
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("schema");
        // An outbox to look at (`outbox status` only reads).
        hule_outbox::PgOutbox::connect(&format!(
            "postgres://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
        ))
        .await
        .expect("migrate");
    });
    let (code, out, err) = hule(&["outbox", "status", "--database-url", &url], None);
    assert_eq!(code, 0, "{out}\n{err}");
    let dir = std::env::temp_dir().join(format!("hule-wrong-ca-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let wrong_ca = unrelated_ca(&dir, "ca");
    let wrong = url.replace(&ca, &wrong_ca.display().to_string());
    let (code, out, err) = hule(&["outbox", "status", "--database-url", &wrong], None);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("sslmode verify-full") && err.contains("certificate verify failed"),
        "{err}"
    );
    assert!(!format!("{out}{err}").contains("never-shown"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn outbox_status_and_retry_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("hule-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("outbox.db");
    hule_outbox::SqliteOutbox::open(&db).expect("create");
    let url = format!("sqlite://{}", db.display());
    let (code, out, err) = hule(
        &["outbox", "status", "--database-url", &url, "--json"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(status["pending"], serde_json::json!([]));
    let (code, out, err) = hule(
        &["outbox", "retry", "--database-url", &url, "--all-parked"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("released 0 failed row(s)"), "{out}");
    let (code, _, _) = hule(&["outbox", "retry", "--database-url", &url], None);
    assert_eq!(code, 2);
    // A row parked for good (too large) holding back its key: discarded by seq with a reason, then the key goes on.
    let rows = hule_outbox::testkit::numbered_rows(0..3, 1).expect("rows");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let first = rt.block_on(async {
        use hule_outbox::store::OutboxStore;
        let mut conn = hule_outbox::sqlite::open(&db).expect("conn");
        let tx = conn.transaction().expect("tx");
        hule_outbox::sqlite::enqueue(&tx, &rows).expect("enqueue");
        tx.commit().expect("commit");
        let store = hule_outbox::SqliteOutbox::open(&db).expect("open");
        let batch = store.claim(10).await.expect("claim");
        let parks = hule_outbox::store::FailurePolicy {
            max_attempts: 1,
            ..Default::default()
        };
        store
            .failed(
                vec![hule_outbox::store::FailedAttempt::retriable(
                    batch[0].seq,
                    1,
                    "Broker: Message size too large",
                )],
                parks,
            )
            .await
            .expect("failed");
        assert!(
            store.claim(10).await.expect("claim").is_empty(),
            "the key is held back"
        );
        batch[0].seq
    });
    let (code, _, err) = hule(
        &[
            "outbox",
            "discard",
            "--database-url",
            &url,
            "--seq",
            &first.to_string(),
        ],
        None,
    );
    assert_eq!(code, 2, "a discard without a reason is refused: {err}");
    let (code, out, err) = hule(
        &[
            "outbox",
            "discard",
            "--database-url",
            &url,
            "--seq",
            &first.to_string(),
            "--reason",
            "too large for the topic",
            "--json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["discarded"][0]["seq"], first, "{out}");
    assert_eq!(
        report["discarded"][0]["last_error"],
        "Broker: Message size too large"
    );
    assert!(
        err.contains("outbox row discarded") && err.contains("too large for the topic"),
        "logged: {err}"
    );
    rt.block_on(async {
        use hule_outbox::store::OutboxStore;
        let store = hule_outbox::SqliteOutbox::open(&db).expect("open");
        assert_eq!(
            store.claim(10).await.expect("claim").len(),
            2,
            "the key goes on"
        );
    });
    let kept: i64 = hule_outbox::sqlite::open(&db)
        .expect("conn")
        .query_row(
            "SELECT count(*) FROM hule_outbox_discarded WHERE reason = 'too large for the topic'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(kept, 1, "the row is kept aside with its reason");
    std::fs::remove_dir_all(&dir).ok();
}

/// `--schema` names the PostgreSQL schema (no `?options=` by hand), and `--service NAME=URL` repeated gives one view
/// across services: a PostgreSQL outbox in its schema with a parked row, and an SQLite one. `retry --json` reports
/// what it released; `--schema` on SQLite is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_across_services_with_a_schema_and_retry_as_json() {
    use hule_outbox::store::OutboxStore;
    let schema = format!("hule_test_{}", uuid::Uuid::new_v4().simple());
    let base = "postgres://postgres@127.0.0.1:5432/test";
    let (admin, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must run on 127.0.0.1:5432 (scripts/setup.sh starts it)");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("schema");
    let pg_url = format!("{base}?options=-csearch_path%3D{schema}");
    let pg = hule_outbox::PgOutbox::connect(&pg_url)
        .await
        .expect("outbox");
    {
        let (mut client, conn) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        let tx = client.transaction().await.expect("tx");
        let rows = hule_outbox::testkit::numbered_rows(0..3, 3).expect("rows");
        hule_outbox::pg::enqueue(&tx, &rows).await.expect("enqueue");
        tx.commit().await.expect("commit");
    }
    let batch = pg.claim(10).await.expect("claim");
    pg.failed(
        vec![hule_outbox::store::FailedAttempt::permanent(
            batch[0].seq,
            1,
            "Broker: Message size too large",
        )],
        hule_outbox::store::FailurePolicy::default(),
    )
    .await
    .expect("failed");

    let dir = std::env::temp_dir().join(format!("hule-status-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("outbox.db");
    drop(hule_outbox::SqliteOutbox::open(&db).expect("sqlite outbox"));
    let sqlite_url = format!("sqlite://{}", db.display());

    let (code, out, err) = hule(
        &[
            "outbox",
            "status",
            "--database-url",
            base,
            "--schema",
            &schema,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("parked: 1"), "{out}");
    assert!(
        out.contains("after 1 attempt(s): Broker: Message size too large"),
        "a row that failed once says once: {out}"
    );
    let grading = format!("grading={base}");
    let files = format!("files={sqlite_url}");
    let (code, out, err) = hule(
        &[
            "outbox",
            "status",
            "--service",
            &grading,
            "--service",
            &files,
            "--schema",
            &schema,
        ],
        None,
    );
    // --schema applies to each service: the SQLite one refuses it.
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("SQLite outbox has no schemas"), "{err}");
    let grading = format!("grading={pg_url}");
    let (code, out, err) = hule(
        &[
            "outbox",
            "status",
            "--service",
            &grading,
            "--service",
            &files,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>())
    };
    assert_eq!(line("grading"), Some(vec!["grading", "2", "1"]), "{out}");
    assert_eq!(line("files"), Some(vec!["files", "0", "0"]), "{out}");
    assert!(out.contains("2 service(s): pending 2, parked 1"), "{out}");
    let (code, out, err) = hule(
        &[
            "outbox",
            "status",
            "--service",
            &grading,
            "--service",
            &files,
            "--json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["service"], "grading");
    assert_eq!(v[1]["service"], "files");

    let (code, out, err) = hule(
        &[
            "outbox",
            "retry",
            "--database-url",
            base,
            "--schema",
            &schema,
            "--all-parked",
            "--json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).expect("json"),
        serde_json::json!({"released": 1})
    );
    let (code, _, err) = hule(
        &[
            "outbox",
            "status",
            "--database-url",
            &sqlite_url,
            "--schema",
            "x",
        ],
        None,
    );
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = hule(
        &[
            "outbox",
            "status",
            "--database-url",
            base,
            "--schema",
            "x; DROP",
        ],
        None,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a plain schema name"), "{err}");
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop");
    let _ = std::fs::remove_dir_all(&dir);
}
