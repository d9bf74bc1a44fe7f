//! The Redis dedup store on the `redis` crate, against real servers: the local one (127.0.0.1:6379, started by
//! scripts/setup.sh) for concurrency and reconnection, and servers this test starts itself on loopback for a
//! password (`requirepass`), an ACL user with a database index, and TLS (`rediss://`, a CA made by the test). Wrong
//! passwords and untrusted certificates fail with an error that says so and never contains the password.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hule_consumer::dedup::{Claim, DedupKey, DedupStore};
use hule_consumer::RedisDedup;

fn redis_url() -> String {
    std::env::var("HULE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn key(service: &str, n: u128) -> DedupKey {
    DedupKey {
        service: service.into(),
        event_id: uuid::Uuid::from_u128(n),
        event_type: "huleedu.test.v1".into(),
        correlation_id: uuid::Uuid::nil(),
        source_service: "test".into(),
        owner: uuid::Uuid::new_v4(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_get_their_own_answers_and_a_killed_connection_is_replaced() {
    let store = Arc::new(RedisDedup::new(&redis_url()).expect("url"));
    store
        .ping()
        .await
        .expect("Redis must be running on 127.0.0.1:6379 (scripts/setup.sh starts it)");
    let service = format!("svc-{}", uuid::Uuid::new_v4().simple());
    let tasks: Vec<_> = (0..2_000u128)
        .map(|i| {
            let (store, service) = (store.clone(), service.clone());
            tokio::spawn(async move {
                let k = key(&service, i);
                let ttl = Duration::from_secs(60);
                assert_eq!(
                    store.claim(&k, ttl).await.expect("claim"),
                    Claim::Acquired,
                    "{i}"
                );
                assert_eq!(
                    store.claim(&k, ttl).await.expect("again"),
                    Claim::InProgress,
                    "{i}"
                );
                store.complete(&k, ttl).await.expect("complete");
                assert_eq!(
                    store.claim(&k, ttl).await.expect("done"),
                    Claim::AlreadyDone,
                    "{i}"
                );
                store.release(&k).await.expect("release");
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }

    // Every normal client but the admin is dropped by the server; the store reconnects by itself.
    let admin = redis::Client::open(redis_url().as_str()).expect("url");
    let mut admin = admin
        .get_multiplexed_async_connection()
        .await
        .expect("admin");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut admin)
        .await
        .expect("kill");
    assert!(killed >= 1, "the store's connection was killed");
    let started = Instant::now();
    let mut answered = false;
    while started.elapsed() < Duration::from_secs(10) {
        if store.ping().await.is_ok() {
            answered = true;
            break;
        }
    }
    assert!(answered, "the store reconnected");
    assert!(started.elapsed() < Duration::from_secs(3), "within seconds");
}

/// A redis-server of the test's own, stopped on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn start(args: &[&str], port: u16) -> Server {
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (scripts/setup.sh installs it)");
    let server = Server(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "redis-server on {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

async fn works(url: &str) -> Result<(), String> {
    let store = RedisDedup::new(url).map_err(|e| e.to_string())?;
    store.ping().await.map_err(|e| e.to_string())?;
    let k = key("svc", 1);
    store
        .claim(&k, Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    store.release(&k).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn passwords_acl_users_databases_and_tls_work_and_failures_say_why() {
    let secret = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let mut errors = Vec::new();

    // requirepass, and an ACL user limited to nothing special, with database 3.
    let port = free_port();
    let acl = format!(">{secret}");
    let _auth = start(
        &[
            "--port",
            &port.to_string(),
            "--requirepass",
            &secret,
            "--user",
            "hule",
            "on",
            &acl,
            "~*",
            "&*",
            "+@all",
        ],
        port,
    );
    works(&format!("redis://:{secret}@127.0.0.1:{port}"))
        .await
        .expect("requirepass");
    works(&format!("redis://hule:{secret}@127.0.0.1:{port}/3"))
        .await
        .expect("ACL user, db 3");
    let e = works(&format!("redis://hule:wrong-{secret}@127.0.0.1:{port}/3"))
        .await
        .expect_err("wrong password");
    assert!(
        e.contains("WRONGPASS") || e.to_lowercase().contains("auth"),
        "{e}"
    );
    errors.push(e);
    let e = works(&format!("redis://127.0.0.1:{port}"))
        .await
        .expect_err("no password");
    assert!(
        e.contains("NOAUTH") || e.to_lowercase().contains("auth"),
        "{e}"
    );
    errors.push(e);

    // TLS with a CA made here.
    let dir =
        std::env::temp_dir().join(format!("hule-redis-tls-{}", uuid::Uuid::new_v4().simple()));
    let out = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/test-ca.sh"
    ))
    .arg(&dir)
    .output()
    .expect("scripts/test-ca.sh");
    assert!(
        out.status.success(),
        "test-ca.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tls_port = free_port();
    let p = |f: &str| dir.join(f).display().to_string();
    let _tls = start(
        &[
            "--port",
            "0",
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &p("server.crt"),
            "--tls-key-file",
            &p("server.key"),
            "--tls-ca-cert-file",
            &p("ca.pem"),
            "--tls-auth-clients",
            "no",
            "--requirepass",
            &secret,
        ],
        tls_port,
    );
    works(&format!(
        "rediss://:{secret}@127.0.0.1:{tls_port}/1?sslrootcert={}",
        p("ca.pem")
    ))
    .await
    .expect("rediss:// with the CA");
    let e = works(&format!(
        "rediss://:{secret}@127.0.0.1:{tls_port}/1?sslrootcert={}",
        p("other.pem")
    ))
    .await
    .expect_err("a CA that signed nothing");
    assert!(
        e.to_lowercase().contains("certificate") || e.contains("UnknownIssuer"),
        "{e}"
    );
    errors.push(e);

    for e in &errors {
        assert!(!e.contains(&secret), "the password appeared: {e}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A renewal renews the claim's `started_at` too: the Python original deletes a `processing` value that started
/// more than 300 s ago as abandoned, so a claim kept alive longer must not look so to it. A completion is left as
/// it is.
#[tokio::test]
async fn renewing_a_claim_renews_its_start_and_leaves_a_completion_alone() {
    let store = RedisDedup::new(&redis_url()).expect("url");
    store
        .ping()
        .await
        .expect("Redis must be running on 127.0.0.1:6379 (scripts/setup.sh starts it)");
    let k = key(&format!("svc-{}", uuid::Uuid::new_v4().simple()), 1);
    let lease = Duration::from_secs(30);
    assert_eq!(
        store.claim(&k, lease).await.expect("claim"),
        Claim::Acquired
    );
    let mut conn = redis::Client::open(redis_url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("a connection of the test's own");
    let raw = store.key(&k);
    let get = |conn: &mut redis::aio::MultiplexedConnection| {
        let (mut conn, raw) = (conn.clone(), raw.clone());
        async move {
            let v: String = redis::cmd("GET")
                .arg(&raw)
                .query_async(&mut conn)
                .await
                .expect("GET");
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&raw)
                .query_async(&mut conn)
                .await
                .expect("PTTL");
            (v, ttl)
        }
    };
    // The claim as if made ten minutes ago (its text otherwise as stored).
    let (value, _) = get(&mut conn).await;
    let json = |v: &str| serde_json::from_str::<serde_json::Value>(v).expect("JSON");
    let started = json(&value)["started_at"].as_f64().expect("a number");
    let at = value.find("\"started_at\":").expect("started_at") + "\"started_at\":".len();
    let end = at + value[at..].find(',').expect("a field after it");
    let aged = format!("{}{}{}", &value[..at], started - 600.0, &value[end..]);
    redis::cmd("SET")
        .arg(&raw)
        .arg(&aged)
        .arg("PX")
        .arg(60_000)
        .query_async::<()>(&mut conn)
        .await
        .expect("SET");

    store
        .extend(&k, Duration::from_secs(20))
        .await
        .expect("renew");
    let (renewed, ttl) = get(&mut conn).await;
    let renewed = json(&renewed);
    assert!(
        renewed["started_at"].as_f64().expect("a number") >= started,
        "{renewed}"
    );
    assert!(
        ttl > 0 && ttl <= 20_000,
        "the lease renewed to 20 s: {ttl} ms"
    );
    let mut want = json(&aged);
    want["started_at"] = renewed["started_at"].clone();
    assert_eq!(renewed, want, "only started_at changes");

    store
        .complete(&k, Duration::from_secs(120))
        .await
        .expect("complete");
    let (completed, _) = get(&mut conn).await;
    store
        .extend(&k, Duration::from_secs(1))
        .await
        .expect("a late renewal");
    let (after, ttl) = get(&mut conn).await;
    assert_eq!(after, completed, "a completion is not renewed");
    assert!(ttl > 100_000, "nor its TTL shortened: {ttl} ms");
}
