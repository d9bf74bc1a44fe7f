//! The console's handlers end to end on a Kafka (the mock cluster and the real broker): logins, roles, forged
//! requests, the dead-letter pages, and a replay of a group of 200 dead letters over 20 keys at a rate limit —
//! every record on its key's partition in its original order, progress to 100 %, the audit log, and a second replay
//! that sends nothing again.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use hule_console::{ConsoleConfig, Role, User};
use hule_consumer::{DeadLetter, Delivery, Failure};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

mod common;
use common::{csrf_of, Client, Got};

const SOURCE: &str = "huleedu.batch.essays.registered.v1";

/// 200 dead letters of 20 keys (10 each, numbered per key in failure order), all of one failure.
fn dead_letters(brokers: &str) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("producer");
    // Then 5 of another failure (key arch-k), archived in the test.
    for i in 0..205u128 {
        let key = if i < 200 {
            format!("batch-{}", i % 20)
        } else {
            "arch-k".to_owned()
        };
        let id = uuid::Uuid::from_u128(50_000 + i);
        let mut v = serde_json::to_value(
            hule_contracts::examples::example_envelope(
                hule_contracts::Event::BatchEssaysRegistered,
                id,
                uuid::Uuid::from_u128(9),
                hule_contracts::Timestamp::from_datetime(chrono::Utc::now()),
            )
            .expect("example"),
        )
        .expect("json");
        v["data"]["entity_id"] = serde_json::json!(key);
        v["data"]["essay_ids"] = serde_json::json!([format!("n-{}", i / 20)]);
        v["data"]["user_id"] = serde_json::json!("teacher-7");
        // Personal data (a name the contracts declare sensitive), masked for everyone until an operator asks.
        v["data"]["first_name"] = serde_json::json!("Ada Secretname");
        let delivery = Delivery {
            topic: SOURCE.into(),
            partition: 0,
            offset: i as i64,
            key: Some(key.clone().into_bytes()),
            headers: hule_contracts::Headers::from(vec![("event_id".into(), id.to_string())]),
            invalid_headers: Vec::new(),
            payload: Some(serde_json::to_vec(&v).expect("vec")),
        };
        let letter = DeadLetter::build(
            &delivery,
            &Failure::Permanent(if i < 200 {
                format!("essay store refused batch {i}")
            } else {
                "essay store lost the archive copy".to_owned()
            }),
            "essay-svc",
        );
        producer
            .send(
                BaseRecord::to(&letter.topic)
                    .key(letter.key.as_deref().expect("key"))
                    .payload(&letter.value)
                    .headers(hule_kafka::consumer::owned_headers(&letter.headers)),
            )
            .expect("send");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
}

async fn console_end_to_end(backend: hule_kafka::testkit::Backend) {
    let cluster = hule_kafka::testkit::TestKafka::start(backend, 1);
    let dlq = format!("{SOURCE}.dlq.v1");
    let mut topics = vec![(SOURCE.to_owned(), 3), (dlq.clone(), 1)];
    if cluster.mock().is_some() {
        // The mock cluster has no CreateTopics; on a real one the first replay creates the ledger topic.
        topics.push((hule_kafka::replay::LEDGER_TOPIC.to_owned(), 1));
    }
    cluster.create_topics(topics, 1).await.expect("topics");
    let brokers = cluster.bootstrap_servers();
    dead_letters(&brokers);

    let dir = std::env::temp_dir().join(format!("hule-console-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let user = |name: &str, role, password: &str| User {
        name: name.into(),
        role,
        password_hash: hule_console::auth::hash_password(password).expect("hash"),
    };
    let config = ConsoleConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        kafka: hule_kafka::KafkaSettings::new(&brokers),
        users: vec![
            user("olga", Role::Operator, "op-pass"),
            user("vic", Role::Viewer, "view-pass"),
        ],
        store: dir.join("console.db"),
        services: Vec::new(),
        retention: Default::default(),
        no_auth: false,
        tls: None,
        oidc: None,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let app = hule_console::router(&config, &stop).expect("router");

    // No page without a login; a wrong password is refused.
    let mut viewer = Client {
        app: app.clone(),
        cookie: None,
    };
    let got = viewer.get("/dead-letters").await;
    assert_eq!(
        (got.status, got.location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/login"))
    );
    assert_eq!(
        viewer.login("vic", "wrong").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        viewer.login("nobody", "wrong").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        viewer.login("vic", "view-pass").await.status,
        StatusCode::SEE_OTHER
    );
    // Five failed logins a minute per name, the sixth refused before its password is checked.
    let mut guesser = Client {
        app: app.clone(),
        cookie: None,
    };
    for _ in 0..4 {
        assert_eq!(
            guesser.login("nobody", "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        guesser.login("nobody", "guess").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // The viewer sees the group (once the index has read the dead-letter topic), no action, and no personal data.
    let groups = eventually(&mut viewer, "/dead-letters", |b| {
        b.contains("essay store refused batch")
    })
    .await;
    assert_eq!(groups.status, StatusCode::OK);
    let fp_at = groups.body.find("/dead-letters/").expect("a group link") + 14;
    let fingerprint: String = groups.body[fp_at..].chars().take(12).collect();
    assert!(
        groups.body.contains("essay store refused batch &lt;n&gt;"),
        "normalised error shown escaped"
    );
    let group = viewer.get(&format!("/dead-letters/{fingerprint}")).await;
    assert!(group.body.contains("200 dead letters"), "{}", group.body);
    assert!(
        !group.body.contains("Replay the group"),
        "no action for a viewer"
    );
    let record = viewer.get(&format!("/records/{dlq}/0/0")).await;
    assert_eq!(record.status, StatusCode::OK);
    assert!(
        !record.body.contains("Ada Secretname")
            && record.body.contains("personal value(s) masked")
            && record.body.contains("teacher-7")
            && !record.body.contains("Show personal data"),
        "{}",
        record.body
    );
    let token = csrf_of(&viewer.get("/").await.body);
    let unmask = viewer
        .post(&format!("/records/{dlq}/0/0"), &format!("csrf={token}"))
        .await;
    assert_eq!(unmask.status, StatusCode::FORBIDDEN);
    assert!(!unmask.body.contains("Ada Secretname"));
    // A viewer's POST, with its own valid token, is refused for the role; with a forged token, as forged.
    let token = csrf_of(&viewer.get("/").await.body);
    let got = viewer
        .post(
            &format!("/dead-letters/{fingerprint}/replay"),
            &format!("csrf={token}&dry_run=0"),
        )
        .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    // The audit log is the operators'.
    assert_eq!(viewer.get("/audit").await.status, StatusCode::FORBIDDEN);

    // The operator: a dry run, then the replay at 400 records/s.
    let mut op = Client {
        app: app.clone(),
        cookie: None,
    };
    op.login("olga", "op-pass").await;
    let page = op.get(&format!("/dead-letters/{fingerprint}")).await;
    assert!(page.body.contains("Replay the group"));
    let record = op.get(&format!("/dead-letters/record/{dlq}/0/0")).await;
    assert!(
        !record.body.contains("Ada Secretname") && record.body.contains("Show personal data"),
        "operators see personal data only when they ask"
    );
    let token = csrf_of(&page.body);
    let shown = op
        .post(&format!("/records/{dlq}/0/0"), &format!("csrf={token}"))
        .await;
    assert!(shown.body.contains("Ada Secretname"), "{}", shown.body);
    // An operator's session with a forged token (a cross-site form) is refused, and so is another site's origin.
    let forged = op
        .post(
            &format!("/dead-letters/{fingerprint}/replay"),
            "csrf=forged&dry_run=1",
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let mut cross = op.request(
        "POST",
        &format!("/dead-letters/{fingerprint}/replay"),
        Some(format!("csrf={token}&dry_run=1")),
    );
    cross
        .headers_mut()
        .insert("origin", "https://evil.example".parse().expect("origin"));
    assert_eq!(op.send(cross).await.status, StatusCode::FORBIDDEN);
    // A made-up fingerprint starts nothing.
    let made_up = op
        .post(
            "/dead-letters/000000000000/replay",
            &format!("csrf={token}&dry_run=0"),
        )
        .await;
    assert_eq!(made_up.status, StatusCode::NOT_FOUND);
    let dry = op
        .post(
            &format!("/dead-letters/{fingerprint}/replay"),
            &format!("csrf={token}&dry_run=1"),
        )
        .await;
    assert!(
        dry.body.contains("<b>200</b> record(s) would be sent"),
        "{}",
        dry.body
    );
    let started = op
        .post(
            &format!("/dead-letters/{fingerprint}/replay"),
            &format!("csrf={token}&dry_run=0&rate=400&note=INC-7"),
        )
        .await;
    let job = started.location.expect("to the replay's page");
    // A second click while it runs is the same replay.
    let again = op
        .post(
            &format!("/dead-letters/{fingerprint}/replay"),
            &format!("csrf={token}&dry_run=0&rate=400"),
        )
        .await;
    assert_eq!(again.location.as_deref(), Some(job.as_str()));
    let waited = Instant::now();
    loop {
        let p = op.get(&job).await;
        if p.body.contains("· done") {
            assert!(
                p.body.contains("200 of 200") && p.body.contains("(100 %)"),
                "{}",
                p.body
            );
            break;
        }
        assert!(!p.body.contains("failed"), "{}", p.body);
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "replay not done: {}",
            p.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every record on its key's partition, each key's in their original order, none twice.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", cluster.group("console-verify"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[SOURCE]).expect("subscribe");
    let mut per_key: std::collections::HashMap<String, Vec<i64>> = Default::default();
    let mut records = 0;
    let read = Instant::now();
    while (records < 200 || read.elapsed() < Duration::from_secs(3))
        && read.elapsed() < Duration::from_secs(30)
    {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        records += 1;
        let key = m.key().expect("key");
        assert_eq!(
            m.partition() as u32,
            hule_contracts::keys::partition_for(key, 3)
        );
        let v: serde_json::Value =
            serde_json::from_slice(m.payload().expect("value")).expect("json");
        let n: i64 = v["data"]["essay_ids"][0].as_str().expect("n")[2..]
            .parse()
            .expect("number");
        per_key
            .entry(String::from_utf8_lossy(key).into_owned())
            .or_default()
            .push(n);
    }
    assert_eq!(records, 200, "each dead letter replayed once");
    consumer
        .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .expect("commit");
    let groups = viewer.get("/groups").await;
    if cluster.mock().is_some() {
        assert!(
            groups.body.contains("does not list consumer groups"),
            "{}",
            groups.body
        );
    } else {
        assert!(
            groups.body.contains("console-verify"),
            "the verifying consumer's group: {}",
            groups.body
        );
    }
    for (key, ns) in &per_key {
        assert_eq!(
            ns,
            &(0..10).collect::<Vec<_>>(),
            "key {key} in its original order"
        );
    }

    // Replayed records show as such (once the index has read the ledger); the same replay again sends nothing; the
    // audit log has it all.
    eventually(&mut op, &format!("/dead-letters/{fingerprint}"), |b| {
        b.contains("replayed ×1")
    })
    .await;
    let second = op
        .post(
            &format!("/dead-letters/{fingerprint}/replay"),
            &format!("csrf={token}&dry_run=0"),
        )
        .await;
    let job2 = second.location.expect("a second replay");
    assert_ne!(job2, job);
    let waited = Instant::now();
    loop {
        let p = op.get(&job2).await;
        if p.body.contains("· done") {
            assert!(
                p.body.contains("0 of 0") && p.body.contains("200 dead letter(s) left out"),
                "{}",
                p.body
            );
            break;
        }
        assert!(waited.elapsed() < Duration::from_secs(30), "{}", p.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The trace of one key: its ten dead letters, their replays in the ledger and the replayed records.
    let trace = eventually(&mut viewer, "/trace?q=batch-3", |b| {
        b.matches("record (replayed)").count() == 10
    })
    .await;
    assert_eq!(
        trace.body.matches(">dead letter<").count(),
        10,
        "{}",
        trace.body
    );
    assert_eq!(
        trace.body.matches("replay (ledger)").count(),
        10,
        "{}",
        trace.body
    );
    let (d, r) = (
        trace.body.find(">dead letter<").expect("dead letter"),
        trace.body.find("replay (ledger)").expect("replay"),
    );
    assert!(d < r, "time order: the dead letters before their replays");
    // The event's page: counts, recent records, a masked sample.
    let events = viewer.get("/events").await;
    assert!(events.body.contains("/events/BATCH_ESSAYS_REGISTERED"));
    let event = viewer.get("/events/BATCH_ESSAYS_REGISTERED").await;
    assert!(
        event.body.contains("Recent records")
            && event.body.contains("•••")
            && !event.body.contains("Ada Secretname"),
        "{}",
        event.body
    );

    // Archiving a group with a reason, before any replay of it: shown, audited, and a replay of it sends none.
    let groups = op.get("/dead-letters").await.body;
    let at = groups
        .find("essay store lost the archive copy")
        .expect("the second group");
    let start = groups[..at].rfind("/dead-letters/").expect("its link") + 14;
    let second: String = groups[start..].chars().take(12).collect();
    // The selection form with nothing ticked acts on nothing (never the whole group).
    let nothing = op
        .post(
            &format!("/dead-letters/{second}/archive"),
            &format!("csrf={token}&selection=1&reason=oops"),
        )
        .await;
    assert_eq!(nothing.status, StatusCode::BAD_REQUEST);
    let archived = op
        .post(
            &format!("/dead-letters/{second}/archive"),
            &format!("csrf={token}&reason=INC-7+handled+by+hand"),
        )
        .await;
    assert_eq!(archived.status, StatusCode::SEE_OTHER);
    let page = op.get(&format!("/dead-letters/{second}")).await;
    assert!(
        page.body.contains("5 archived") && page.body.contains("INC-7 handled by hand"),
        "{}",
        page.body
    );
    let dry = op
        .post(
            &format!("/dead-letters/{second}/replay"),
            &format!("csrf={token}&dry_run=1"),
        )
        .await;
    assert!(
        dry.body.contains("<b>0</b> record(s) would be sent")
            && dry.body.contains("5 archived and left out"),
        "{}",
        dry.body
    );

    let audit = op.get("/audit").await;
    for expected in [
        "login_refused",
        "too many failed logins",
        "replay_dry_run",
        "forged request",
        "replay needs the operator role",
        "<td>unmask</td>",
        "<td>archive</td>",
    ] {
        assert!(audit.body.contains(expected), "audit lacks {expected}");
    }
    assert!(
        audit.body.contains("<td class=\"n\">200</td><td>done</td>"),
        "{}",
        audit.body
    );
    stop.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}

/// GETs `uri` until `done` holds for the body (the index catches up in the background), for at most 30 s.
async fn eventually(client: &mut Client, uri: &str, done: impl Fn(&str) -> bool) -> Got {
    let started = Instant::now();
    loop {
        let got = client.get(uri).await;
        if done(&got.body) {
            return got;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{uri} did not show what was expected within 30 s: {}",
            got.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

hule_kafka::on_both_backends!(console_end_to_end);

#[tokio::test]
async fn no_auth_is_refused_off_loopback_and_serves_the_local_operator_on_it() {
    let dir = std::env::temp_dir().join(format!(
        "hule-console-noauth-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut config = ConsoleConfig {
        listen: "0.0.0.0:8470".parse().expect("addr"),
        kafka: hule_kafka::KafkaSettings::new("127.0.0.1:1"),
        users: Vec::new(),
        store: dir.join("console.db"),
        services: Vec::new(),
        retention: Default::default(),
        no_auth: true,
        tls: None,
        oidc: None,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let Err(refused) = hule_console::router(&config, &stop) else {
        panic!("--no-auth on 0.0.0.0 must be refused")
    };
    assert!(
        refused.to_string().contains("--no-auth is refused"),
        "{refused}"
    );
    config.listen = "127.0.0.1:8470".parse().expect("addr");
    let mut local = Client {
        app: hule_console::router(&config, &stop).expect("router"),
        cookie: None,
    };
    // Requests naming a loopback host are served; another name (a DNS name another site rebound to 127.0.0.1)
    // is refused.
    let on = |host: &str| {
        let mut r = local.request("GET", "/audit", None);
        r.headers_mut().insert("host", host.parse().expect("host"));
        r
    };
    let (loopback, rebound) = (on("127.0.0.1:8470"), on("evil.example:8470"));
    let audit = local.send(loopback).await;
    assert_eq!(
        audit.status,
        StatusCode::OK,
        "the local operator reads the audit log"
    );
    assert!(audit.body.contains("local · operator"));
    let refused = local.send(rebound).await;
    assert_eq!(refused.status, StatusCode::MISDIRECTED_REQUEST);
    assert!(!refused.body.contains("local · operator"));
    stop.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_served_with_secure_cookies_and_a_silent_client_blocks_no_one() {
    let dir = std::env::temp_dir().join(format!(
        "hule-console-tls-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed (scripts/setup.sh installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let config = ConsoleConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        kafka: hule_kafka::KafkaSettings::new("127.0.0.1:1"),
        users: vec![User {
            name: "olga".into(),
            role: Role::Operator,
            password_hash: hule_console::auth::hash_password("op-pass").expect("hash"),
        }],
        store: dir.join("console.db"),
        services: Vec::new(),
        retention: Default::default(),
        no_auth: false,
        tls: Some(hule_console::tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        oidc: None,
    };
    // A key that is not PKCS#8 fails the start and says how to convert it.
    let mut bad = config.clone();
    bad.tls = Some(hule_console::tls::TlsFiles {
        cert: cert.clone(),
        key: cert.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let stop = tokio_util::sync::CancellationToken::new();
    let refused = hule_console::serve_on(listener, &bad, stop.clone())
        .await
        .expect_err("a certificate as key");
    assert!(
        refused.to_string().contains("not a PKCS#8 PEM key"),
        "{refused}"
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let serving = {
        let (config, stop) = (config.clone(), stop.clone());
        tokio::spawn(async move { hule_console::serve_on(listener, &config, stop).await })
    };
    // A client that connects and never speaks holds no handshake slot others wait on.
    let _silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&cert).expect("cert")).expect("pem"),
        )
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let login = client
        .get(format!("https://{addr}/login"))
        .send()
        .await
        .expect("the login page over TLS while a client stays silent");
    assert_eq!(login.status(), 200);
    let posted = client
        .post(format!("https://{addr}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=olga&password=op-pass")
        .send()
        .await
        .expect("login");
    assert_eq!(posted.status(), 303);
    let cookie = posted.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // Plain HTTP on the TLS port gets no page.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/login"))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200));
    stop.cancel();
    serving.await.expect("join").expect("served");
    let _ = std::fs::remove_dir_all(&dir);
}
