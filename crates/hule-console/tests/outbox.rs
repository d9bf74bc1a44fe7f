//! The console's outbox side on a real PostgreSQL: the overview's service verdicts (relay health answering 503, an
//! endpoint that refuses, the outbox's pending and parked rows), the Outbox page for a viewer (no actions, a forged
//! action refused), an operator retrying a selected parked row and discarding a key's failed rows with a reason
//! (rows that never failed untouched), and the trace of a key showing its outbox rows.

mod common;

use axum::http::StatusCode;
use common::{csrf_of, Client};
use hule_console::{ConsoleConfig, Role, User};

async fn health_503() -> String {
    let app = axum::Router::new().route(
        "/healthz",
        axum::routing::get(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "kafka: waiting for Kafka at start",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/healthz")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_rows_are_listed_retried_and_discarded_by_operators_only() {
    let url = hule_outbox::testkit::pg_schema_url("console_outbox").await;
    let outbox = hule_outbox::PgOutbox::connect(&url).await.expect("outbox");
    drop(outbox);
    let (mut client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    // Six rows: n keyed batch-{n % 3}; seq 1 and 2 parked after 5 attempts, seq 3 failed once and waiting.
    let tx = client.transaction().await.expect("tx");
    hule_outbox::pg::enqueue(
        &tx,
        &hule_outbox::testkit::numbered_rows(0..6, 3).expect("rows"),
    )
    .await
    .expect("enqueue");
    tx.commit().await.expect("commit");
    client
        .batch_execute(
            "UPDATE event_outbox SET retry_count = 5, last_error = 'broker refused: RecordTooLarge', parked_at = now()
                 WHERE seq IN (1, 2);
             UPDATE event_outbox SET retry_count = 1, last_error = 'timed out',
                 next_attempt_at = now() + interval '1 hour' WHERE seq = 3;",
        )
        .await
        .expect("fail rows");

    let cluster = hule_kafka::testkit::TestKafka::start(hule_kafka::testkit::Backend::Mock, 1);
    let dir = std::env::temp_dir().join(format!(
        "hule-console-outbox-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let user = |name: &str, role, password: &str| User {
        name: name.into(),
        role,
        password_hash: hule_console::auth::hash_password(password).expect("hash"),
    };
    let service: hule_console::config::Service = toml::from_str(&format!(
        "name = \"essays\"\noutbox = \"{url}\"\nhealth = \"{}\"",
        health_503().await
    ))
    .expect("service");
    let gone: hule_console::config::Service =
        toml::from_str("name = \"gone\"\nhealth = \"http://127.0.0.1:1/healthz\"")
            .expect("service");
    let config = ConsoleConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        kafka: hule_kafka::KafkaSettings::new(&cluster.bootstrap_servers()),
        users: vec![
            user("olga", Role::Operator, "op-pass"),
            user("vic", Role::Viewer, "view-pass"),
        ],
        store: dir.join("console.db"),
        services: vec![service, gone],
        retention: Default::default(),
        no_auth: false,
        tls: None,
        oidc: None,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let app = hule_console::router(&config, &stop).expect("router");
    let mut viewer = Client {
        app: app.clone(),
        cookie: None,
    };
    viewer.login("vic", "view-pass").await;
    let mut op = Client { app, cookie: None };
    op.login("olga", "op-pass").await;

    // The overview: the relay's 503 and its reason, the refusing endpoint, the backlog; no URL, no password.
    let overview = viewer.get("/").await;
    assert!(
        overview.body.contains("kafka: waiting for Kafka at start"),
        "{}",
        overview.body
    );
    assert!(
        overview.body.contains("cannot be reached"),
        "{}",
        overview.body
    );
    assert!(
        overview.body.contains("<span class=\"tag bad\">2</span>"),
        "two parked: {}",
        overview.body
    );
    assert!(!overview.body.contains("postgres://") && !overview.body.contains("search_path"));

    // The viewer sees the parked rows and no action; a forged action is refused.
    let parked = viewer.get("/outbox?service=essays&parked=1").await;
    assert!(
        parked.body.contains("RecordTooLarge") && !parked.body.contains("name=\"seq\""),
        "{}",
        parked.body
    );
    let token = csrf_of(&viewer.get("/").await.body);
    let refused = viewer
        .post(
            "/outbox/essays/act",
            &format!("csrf={token}&action=retry&seq=1"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // The operator retries seq 1 and discards key batch-1's failed rows (seq 2) with a reason.
    let page = op.get("/outbox?service=essays&parked=1").await;
    assert!(
        page.body.contains("name=\"seq\" value=\"1\""),
        "{}",
        page.body
    );
    let token = csrf_of(&page.body);
    let retried = op
        .post(
            "/outbox/essays/act",
            &format!("csrf={token}&action=retry&seq=1"),
        )
        .await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER);
    let no_reason = op
        .post(
            "/outbox/essays/act",
            &format!("csrf={token}&action=discard&key=batch-1"),
        )
        .await;
    assert_eq!(no_reason.status, StatusCode::BAD_REQUEST);
    let discarded = op
        .post(
            "/outbox/essays/act",
            &format!("csrf={token}&action=discard&key=batch-1&reason=poison+INC-9"),
        )
        .await;
    assert_eq!(discarded.status, StatusCode::SEE_OTHER);
    let rows = client
        .query(
            "SELECT seq, retry_count, parked_at IS NOT NULL FROM event_outbox ORDER BY seq",
            &[],
        )
        .await
        .expect("rows");
    let rows: Vec<(i64, i32, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, 0, false),
            (3, 1, false),
            (4, 0, false),
            (5, 0, false),
            (6, 0, false)
        ],
        "seq 1 due again, seq 2 discarded, seq 5 (batch-1, never failed) kept"
    );
    let reason: String = client
        .query_one(
            "SELECT reason FROM hule_outbox_discarded WHERE seq = 2",
            &[],
        )
        .await
        .expect("discarded")
        .get(0);
    assert_eq!(reason, "poison INC-9 (by olga in the console)");

    // The trace of key batch-2: its two rows still in the outbox.
    let trace = viewer.get("/trace?q=batch-2").await;
    assert_eq!(
        trace.body.matches("outbox row").count(),
        2,
        "{}",
        trace.body
    );
    let audit = op.get("/audit").await;
    assert!(
        audit.body.contains("outbox_retry") && audit.body.contains("outbox_discard"),
        "{}",
        audit.body
    );
    stop.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}
