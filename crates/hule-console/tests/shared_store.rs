//! Two consoles sharing one PostgreSQL store: a session made on one works on the other (one session key), the
//! audit log is one, one console writes the index and both serve pages from it, and an archive made on one shows on
//! the other.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{csrf_of, Client};
use hule_console::{ConsoleConfig, Role, User};
use hule_consumer::{DeadLetter, Delivery, Failure};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

const SOURCE: &str = "huleedu.batch.essays.registered.v1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consoles_share_sessions_audit_index_and_archive() {
    let url = hule_outbox::testkit::pg_schema_url("console_shared").await;
    let cluster = hule_kafka::testkit::TestKafka::start(hule_kafka::testkit::Backend::Mock, 1);
    let dlq = format!("{SOURCE}.dlq.v1");
    cluster
        .create_topics([(SOURCE.to_owned(), 1), (dlq.clone(), 1)], 1)
        .await
        .expect("topics");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .expect("producer");
    for i in 0..3i64 {
        let delivery = Delivery {
            topic: SOURCE.into(),
            partition: 0,
            offset: i,
            key: Some(b"batch-1".to_vec()),
            headers: Default::default(),
            invalid_headers: Vec::new(),
            payload: Some(br#"{"event_id":"e","event_type":"x","correlation_id":"c"}"#.to_vec()),
        };
        let letter = DeadLetter::build(
            &delivery,
            &Failure::Permanent("shared failure".into()),
            "svc",
        );
        producer
            .send(
                BaseRecord::to(&letter.topic)
                    .key(letter.key.as_deref().expect("key"))
                    .payload(&letter.value),
            )
            .expect("send");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");

    let hash = hule_console::auth::hash_password("op-pass").expect("hash");
    let config = ConsoleConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        kafka: hule_kafka::KafkaSettings::new(&cluster.bootstrap_servers()),
        users: vec![User {
            name: "olga".into(),
            role: Role::Operator,
            password_hash: hash,
        }],
        store: url.clone().into(),
        services: Vec::new(),
        retention: Default::default(),
        no_auth: false,
        tls: None,
        oidc: None,
    };
    // A store URL's password is not shown when the configuration is printed.
    let mut with_password = config.clone();
    with_password.store = "postgresql://console:s3cret-pw@db.example/hule".into();
    assert!(
        !format!("{with_password:?}").contains("s3cret-pw"),
        "{with_password:?}"
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let a = hule_console::router(&config, &stop).expect("console a");
    let b = hule_console::router(&config, &stop).expect("console b");

    let mut on_a = Client {
        app: a,
        cookie: None,
    };
    assert_eq!(
        on_a.login("olga", "op-pass").await.status,
        StatusCode::SEE_OTHER
    );
    // The same browser on the other console: the session is valid there (one key), and so is its form token.
    let mut on_b = Client {
        app: b,
        cookie: on_a.cookie.clone(),
    };
    let overview = on_b.get("/").await;
    assert!(
        overview.body.contains("olga · operator"),
        "{}",
        overview.body
    );

    // The index, written by one console, serves both.
    let started = Instant::now();
    let fingerprint = loop {
        let page = on_b.get("/dead-letters").await.body;
        if let Some(at) = page.find("shared failure") {
            let start = page[..at].rfind("/dead-letters/").expect("link") + 14;
            break page[start..].chars().take(12).collect::<String>();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not indexed: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let on_a_page = on_a.get(&format!("/dead-letters/{fingerprint}")).await;
    assert!(
        on_a_page.body.contains("3 dead letters"),
        "{}",
        on_a_page.body
    );
    let rows: i64 = {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("pg");
        tokio::spawn(conn);
        client
            .query_one("SELECT count(*) FROM idx_records WHERE kind = 1", &[])
            .await
            .expect("count")
            .get(0)
    };
    assert_eq!(
        rows, 3,
        "each record indexed once, by one of the two consoles"
    );
    let standby = [on_a.get("/").await.body, on_b.get("/").await.body]
        .iter()
        .filter(|b| b.contains("another console writes the shared index"))
        .count();
    assert_eq!(
        standby, 1,
        "one console writes the shared index, the other waits"
    );

    // An archive made on a shows on b; the audit log is one.
    let token = csrf_of(&on_a_page.body);
    let archived = on_a
        .post(
            &format!("/dead-letters/{fingerprint}/archive"),
            &format!("csrf={token}&reason=shared+INC"),
        )
        .await;
    assert_eq!(archived.status, StatusCode::SEE_OTHER);
    let on_b_page = on_b.get(&format!("/dead-letters/{fingerprint}")).await;
    assert!(on_b_page.body.contains("3 archived"), "{}", on_b_page.body);
    let audit = on_b.get("/audit").await;
    assert!(
        audit.body.contains("<td>archive</td>") && audit.body.contains("<td>login</td>"),
        "{}",
        audit.body
    );
    stop.cancel();
}
