//! The console in real headless Chromium (Debian's `chromium` driven through `chromedriver` over WebDriver), on a
//! real Kafka broker of the test's own (so it can be restarted) and a real PostgreSQL outbox:
//!
//! - a wrong password refused, then a login;
//! - a viewer sees names and emails masked and no action button, and a POST the viewer's session forges is refused;
//! - an operator replays a group of 200 dead letters over 20 keys at a rate limit by clicking, the progress reaches
//!   100 %, the audit page shows it, and clicking again sends nothing;
//! - the trace of one correlation id shows its outbox row, its record, its dead letter and its replay, in order;
//! - the live tail shows a record produced while it is open within a second;
//! - a login through an OpenID Connect provider the test runs itself;
//! - the broker killed: the overview shows the banner; started again: the banner goes by itself.
//!
//! It takes a screenshot of every page (`$HULE_CONSOLE_SCREENSHOTS`, default a temporary directory) and checks each
//! is a PNG. Without `chromedriver` or `chromium` the test fails: it never skips.

mod common;

use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hule_console::{ConsoleConfig, Role, User};
use hule_consumer::{DeadLetter, Delivery, Failure};
use hule_contracts::examples::example_envelope;
use hule_contracts::{Event, Headers, Timestamp};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

const EVENT: Event = Event::BatchEssaysRegistered;

fn topic() -> &'static str {
    EVENT.def().topic
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port()
}

/// `chromedriver` on a port of its own, killed when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser() -> (Driver, Client) {
    let port = free_port();
    let child = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "chromedriver must be installed (scripts/setup.sh installs chromium-driver): {e}"
            )
        });
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--hide-scrollbars"]
        }),
    );
    let started = Instant::now();
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&driver.url)
            .await
        {
            Ok(c) => return (driver, c),
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "headless Chromium did not start through chromedriver (is /usr/bin/chromium installed?): {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The page's HTML once `done` holds for it (reloading every 300 ms), for at most `limit`.
async fn until(c: &Client, url: &str, limit: Duration, done: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        c.goto(url).await.expect("goto");
        let html = c.source().await.expect("source");
        if done(&html) {
            return html;
        }
        assert!(
            started.elapsed() < limit,
            "{url} did not show what was expected within {limit:?}: {html}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The current page's HTML once it contains `text` (after a click, the next page may still be loading).
async fn wait_for(c: &Client, text: &str) -> String {
    let started = Instant::now();
    loop {
        let html = c.source().await.expect("source");
        if html.contains(text) {
            return html;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the page did not show {text:?}: {html}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn shot(c: &Client, dir: &std::path::Path, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn login(c: &Client, base: &str, user: &str, password: &str) {
    c.goto(&format!("{base}/login")).await.expect("login page");
    c.find(Locator::Css("input[name=user]"))
        .await
        .expect("user field")
        .send_keys(user)
        .await
        .expect("type");
    c.find(Locator::Css("input[name=password]"))
        .await
        .expect("password field")
        .send_keys(password)
        .await
        .expect("type");
    c.find(Locator::Css("button[type=submit]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .expect("click");
}

/// An envelope of `EVENT` keyed `key`, correlated `correlation`, with a name and an email in it.
fn envelope(
    id: uuid::Uuid,
    correlation: uuid::Uuid,
    key: &str,
    n: u32,
) -> (serde_json::Value, Headers) {
    let env = example_envelope(
        EVENT,
        id,
        correlation,
        Timestamp::from_datetime(chrono::Utc::now()),
    )
    .expect("example");
    let mut v = serde_json::to_value(env).expect("json");
    v["data"]["entity_id"] = key.into();
    v["data"]["essay_ids"] = serde_json::json!([format!("n-{n}")]);
    v["data"]["first_name"] = "Ada Secretname".into();
    v["data"]["email"] = "ada@school.example".into();
    let headers = Headers::from(vec![
        ("event_id".into(), id.to_string()),
        ("event_type".into(), EVENT.def().value.into()),
        ("X-Correlation-Id".into(), correlation.to_string()),
    ]);
    (v, headers)
}

fn produce(p: &BaseProducer, topic: &str, key: &str, value: &[u8], headers: &Headers) {
    p.send(
        BaseRecord::to(topic)
            .key(key)
            .payload(value)
            .headers(hule_kafka::consumer::owned_headers(headers)),
    )
    .expect("send");
    p.flush(Duration::from_secs(10)).expect("flush");
}

/// A dead letter of the record `value` read at `offset` of partition 0.
fn dead_letter(
    p: &BaseProducer,
    key: &str,
    value: &[u8],
    headers: &Headers,
    offset: i64,
    error: &str,
) {
    let delivery = Delivery {
        topic: topic().into(),
        partition: 0,
        offset,
        key: Some(key.as_bytes().to_vec()),
        headers: headers.clone(),
        invalid_headers: Vec::new(),
        payload: Some(value.to_vec()),
    };
    let letter = DeadLetter::build(&delivery, &Failure::Permanent(error.into()), "essay-svc");
    p.send(
        BaseRecord::to(&letter.topic)
            .key(letter.key.as_deref().expect("key"))
            .payload(&letter.value)
            .headers(hule_kafka::consumer::owned_headers(&letter.headers)),
    )
    .expect("send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let shots = std::env::var_os("HULE_CONSOLE_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "hule-console-shots-{}",
                uuid::Uuid::new_v4().simple()
            ))
        });
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let cluster = hule_kafka::testkit::ScriptCluster::start(1, 27092);
    let brokers = cluster.bootstrap_servers();
    let dlq = format!("{}.dlq.v1", topic());
    cluster
        .create_topics(
            [
                (topic().to_owned(), 3),
                (dlq.clone(), 1),
                (hule_kafka::replay::LEDGER_TOPIC.to_owned(), 1),
            ],
            1,
        )
        .await
        .expect("topics");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");

    // The traced event: an outbox row still pending, its record, its dead letter (replayed below by clicking).
    let traced = uuid::Uuid::from_u128(0x7ace);
    let (v, h) = envelope(uuid::Uuid::from_u128(0xe1), traced, "batch-traced", 0);
    let url = hule_outbox::testkit::pg_schema_url("console_browser").await;
    let outbox = hule_outbox::PgOutbox::connect(&url).await.expect("outbox");
    drop(outbox);
    let (mut pg, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("pg");
    tokio::spawn(conn);
    let decoded =
        hule_contracts::decode(None, &serde_json::to_vec(&v).expect("bytes")).expect("decodes");
    let tx = pg.transaction().await.expect("tx");
    hule_outbox::pg::enqueue(
        &tx,
        &hule_outbox::prepare::prepare_decoded(&decoded, &Default::default()).expect("row"),
    )
    .await
    .expect("enqueue");
    tx.commit().await.expect("commit");
    let bytes = serde_json::to_vec(&v).expect("bytes");
    produce(&producer, topic(), "batch-traced", &bytes, &h);
    dead_letter(
        &producer,
        "batch-traced",
        &bytes,
        &h,
        0,
        "essay store refused the traced batch",
    );
    // 200 dead letters of 20 keys, ten each, numbered per key in failure order.
    for i in 0..200u32 {
        let key = format!("batch-{}", i % 20);
        let (v, h) = envelope(
            uuid::Uuid::from_u128(90_000 + u128::from(i)),
            uuid::Uuid::new_v4(),
            &key,
            i / 20,
        );
        let bytes = serde_json::to_vec(&v).expect("bytes");
        dead_letter(
            &producer,
            &key,
            &bytes,
            &h,
            i64::from(i) + 1,
            &format!("essay store refused batch {i}"),
        );
    }
    producer.flush(Duration::from_secs(10)).expect("flush");

    let dir = std::env::temp_dir().join(format!(
        "hule-console-browser-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let user = |name: &str, role, password: &str| User {
        name: name.into(),
        role,
        password_hash: hule_console::auth::hash_password(password).expect("hash"),
    };
    let service: hule_console::config::Service =
        toml::from_str(&format!("name = \"essays\"\noutbox = \"{url}\"")).expect("service");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let idp = common::idp::TestIdp::start().await;
    let config = ConsoleConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        kafka: hule_kafka::KafkaSettings::new(&brokers),
        users: vec![
            user("olga", Role::Operator, "op-pass"),
            user("vic", Role::Viewer, "view-pass"),
        ],
        store: dir.join("console.db"),
        services: vec![service],
        retention: Default::default(),
        no_auth: false,
        tls: None,
        oidc: Some(common::idp::oidc_config(&idp, &base, &["ada"])),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = {
        let (stop, config) = (stop.clone(), config.clone());
        tokio::spawn(async move { hule_console::serve_on(listener, &config, stop).await })
    };
    let (_driver, c) = browser().await;

    // A wrong password, then the viewer.
    login(&c, &base, "vic", "wrong").await;
    wait_for(&c, "Wrong name or password").await;
    shot(&c, &shots, "login").await;
    login(&c, &base, "vic", "view-pass").await;
    wait_for(&c, "vic · viewer").await;
    let groups = until(
        &c,
        &format!("{base}/dead-letters"),
        Duration::from_secs(30),
        |h| {
            h.contains("essay store refused batch &lt;n&gt;")
                && h.contains("essay store refused the traced batch")
        },
    )
    .await;
    let at = groups
        .find("essay store refused batch &lt;n&gt;")
        .expect("group row");
    let row_start = groups[..at].rfind("/dead-letters/").expect("group link") + 14;
    let fingerprint: String = groups[row_start..].chars().take(12).collect();
    let group = until(
        &c,
        &format!("{base}/dead-letters/{fingerprint}"),
        Duration::from_secs(5),
        |h| h.contains("200 dead letters"),
    )
    .await;
    assert!(
        !group.contains("Replay the group") && !group.contains("Archive"),
        "no action for a viewer"
    );
    c.goto(&format!("{base}/records/{dlq}/0/1"))
        .await
        .expect("record");
    let record = c.source().await.expect("html");
    assert!(
        record.contains("•••")
            && !record.contains("Ada Secretname")
            && !record.contains("ada@school.example")
    );
    assert!(
        !record.contains("Show personal data"),
        "no unmask for a viewer"
    );
    shot(&c, &shots, "record-masked").await;
    // The viewer's own session, with its own form token, asking for a replay: refused for the role.
    let status = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const token = document.querySelector('input[name=csrf]').value;
             fetch(arguments[0], {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'},
                                  body: 'csrf=' + token + '&dry_run=0', redirect: 'manual'}).then(r => done(r.status));",
            vec![serde_json::json!(format!("/dead-letters/{fingerprint}/replay"))],
        )
        .await
        .expect("fetch");
    assert_eq!(status, serde_json::json!(403));
    click(&c, "header form button").await; // log out
    wait_for(&c, "autocomplete=\"current-password\"").await;

    // The operator replays the group at 500 records/s by clicking, and follows it to 100 %.
    login(&c, &base, "olga", "op-pass").await;
    wait_for(&c, "olga · operator").await;
    c.goto(&format!("{base}/dead-letters/{fingerprint}"))
        .await
        .expect("group");
    shot(&c, &shots, "dead-letter-group").await;
    // An operator's session with a forged form token (what another site's form would send): refused.
    let status = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(arguments[0], {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'},
                                  body: 'csrf=forged&dry_run=0', redirect: 'manual'}).then(r => done(r.status));",
            vec![serde_json::json!(format!("/dead-letters/{fingerprint}/replay"))],
        )
        .await
        .expect("fetch");
    assert_eq!(status, serde_json::json!(403));
    c.find(Locator::Css("input[name=rate]"))
        .await
        .expect("rate")
        .send_keys("500")
        .await
        .expect("type");
    click(&c, "button[name=dry_run][value='0']").await;
    let started = Instant::now();
    let progress = loop {
        let html = c.source().await.expect("html");
        if html.contains("· done") {
            break html;
        }
        assert!(!html.contains("failed:"), "{html}");
        assert!(started.elapsed() < Duration::from_secs(60), "{html}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        progress.contains("200 of 200") && progress.contains("(100 %)"),
        "{progress}"
    );
    shot(&c, &shots, "replay").await;
    let audit = until(&c, &format!("{base}/audit"), Duration::from_secs(5), |h| {
        h.contains("<td class=\"n\">200</td><td>done</td>")
    })
    .await;
    assert!(
        audit.contains("login_refused") && audit.contains("forged request"),
        "{audit}"
    );
    shot(&c, &shots, "audit").await;
    // A second click on the group's replay sends nothing again.
    c.goto(&format!("{base}/dead-letters/{fingerprint}"))
        .await
        .expect("group");
    click(&c, "button[name=dry_run][value='0']").await;
    let again = loop {
        let html = c.source().await.expect("html");
        if html.contains("· done") {
            break html;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "{html}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        again.contains("0 of 0") && again.contains("200 dead letter(s) left out"),
        "{again}"
    );

    // The traced event's dead letter replayed by clicking, then its whole trace.
    let groups = until(
        &c,
        &format!("{base}/dead-letters"),
        Duration::from_secs(5),
        |_| true,
    )
    .await;
    let at = groups
        .find("essay store refused the traced batch")
        .expect("traced group");
    let start = groups[..at].rfind("/dead-letters/").expect("link") + 14;
    let traced_fp: String = groups[start..].chars().take(12).collect();
    c.goto(&format!("{base}/dead-letters/{traced_fp}"))
        .await
        .expect("group");
    click(&c, "button[name=dry_run][value='0']").await;
    let trace = until(
        &c,
        &format!("{base}/trace?q={traced}"),
        Duration::from_secs(30),
        |h| h.contains("replay (ledger)") && h.contains("record (replayed)"),
    )
    .await;
    let order = [
        "outbox row (pending)",
        ">record<",
        ">dead letter<",
        "replay (ledger)",
        "record (replayed)",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|s| {
            trace
                .find(s)
                .unwrap_or_else(|| panic!("trace lacks {s}: {trace}"))
        })
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "in time order {order:?}: {at:?}: {}",
        &trace[trace.find("<table>").unwrap_or(0)..]
    );
    shot(&c, &shots, "trace").await;

    // The other pages, for the screenshots.
    until(&c, &format!("{base}/"), Duration::from_secs(5), |h| {
        h.contains("essays")
    })
    .await;
    shot(&c, &shots, "overview").await;
    c.goto(&format!("{base}/dead-letters")).await.expect("page");
    shot(&c, &shots, "dead-letters").await;
    c.goto(&format!("{base}/outbox?service=essays"))
        .await
        .expect("page");
    shot(&c, &shots, "outbox").await;
    c.goto(&format!("{base}/events")).await.expect("page");
    shot(&c, &shots, "events").await;
    c.goto(&format!("{base}/events/{}", EVENT.def().name))
        .await
        .expect("page");
    shot(&c, &shots, "event").await;
    c.goto(&format!("{base}/groups")).await.expect("page");
    shot(&c, &shots, "consumer-groups").await;
    c.goto(&format!("{base}/records/{dlq}/0/1"))
        .await
        .expect("page");
    click(&c, "main form button").await; // show personal data (audited)
    wait_for(&c, "Ada Secretname").await;

    // The live tail shows a record produced while it is open within a second.
    c.goto(&format!("{base}/tail")).await.expect("tail");
    let started = Instant::now();
    while !c
        .source()
        .await
        .expect("html")
        .contains("id=\"state\">following<")
    {
        if started.elapsed() >= Duration::from_secs(15) {
            let html = c.source().await.expect("html");
            let at = html.find("id=\"state\"").unwrap_or(0);
            panic!(
                "the tail did not connect: {}",
                &html[at.saturating_sub(40)..(at + 200).min(html.len())]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // "following" is said once the stream is assigned at the end offsets: from then on nothing is missed.
    let live = uuid::Uuid::from_u128(0x11fe);
    let (v, h) = envelope(live, uuid::Uuid::new_v4(), "batch-live", 0);
    let produced = Instant::now();
    produce(
        &producer,
        topic(),
        "batch-live",
        &serde_json::to_vec(&v).expect("bytes"),
        &h,
    );
    loop {
        if c.source().await.expect("html").contains(&live.to_string()) {
            break;
        }
        assert!(
            produced.elapsed() < Duration::from_secs(1),
            "the tail did not show the record within a second"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shot(&c, &shots, "tail").await;

    // A login through the OpenID Connect provider the test runs: the button, the provider, back as ada (operator).
    click(&c, "header form button").await; // log out
    wait_for(&c, "Log in with Test SSO").await;
    idp.vouch_for("ada");
    click(&c, "a.sso").await;
    wait_for(&c, "ada · operator").await;

    // The broker killed: a banner; started again: the banner goes by itself.
    cluster.kill_node(1);
    until(&c, &format!("{base}/"), Duration::from_secs(60), |h| {
        h.contains("Kafka cannot be read")
    })
    .await;
    shot(&c, &shots, "kafka-down").await;
    cluster.start_node(1);
    until(&c, &format!("{base}/"), Duration::from_secs(90), |h| {
        !h.contains("Kafka cannot be read") && h.contains("dead letters")
    })
    .await;

    c.close().await.expect("close the browser");
    stop.cancel();
    serving.await.expect("join").expect("served");
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("screenshots in {}", shots.display());
}
