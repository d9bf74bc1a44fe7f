//! `hule demo`: the reference pipeline reconciles on every backend and with every fault on.

mod common;
use common::hule;

/// Runs a small demo with every fault on and reads the JSON report.
fn demo_report(extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "demo",
        "--batches",
        "4",
        "--essays",
        "8",
        "--duplicate-rate",
        "0.2",
        "--poison-rate",
        "0.25",
        "--json",
        "-",
        "--no-progress",
        "--max-time",
        "90",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = hule(&args, None);
    assert_eq!(code, 0, "demo failed:\n{out}\n{err}");
    serde_json::from_str(&out).expect("JSON report")
}

fn assert_reconciled(r: &serde_json::Value) {
    assert_eq!(r["batches_completed"], 4, "{r:#}");
    assert_eq!(
        r["essays_with_results"], 32,
        "every registered essay has a result"
    );
    assert_eq!(
        r["essays_with_multiple_results"], 0,
        "no result applied twice"
    );
    assert_eq!(r["poison_injected"], 8);
    let dlq: u64 = r["dlq_by_reason"]
        .as_object()
        .expect("dlq")
        .values()
        .map(|v| v.as_u64().expect("n"))
        .sum();
    assert_eq!(dlq, 8, "every poison record is in the DLQ");
    assert!(
        r["duplicates_injected"].as_u64().expect("n") > 0,
        "duplicates were injected"
    );
    assert_eq!(
        r["duplicates_suppressed"], r["duplicates_expected"],
        "every duplicate suppressed"
    );
    // The hops per topic: the spellcheck requests were relayed, consumed and handled, each part timed.
    let by_topic = r["hops_by_topic"].as_array().expect("hops_by_topic");
    for part in [
        "outbox write → relay claim",
        "relay claim → consumer call",
        "consumer call → outcome",
    ] {
        assert!(
            by_topic
                .iter()
                .any(|h| h["topic"] == "huleedu.essay.spellcheck.requested.v1"
                    && h["part"] == part
                    && h["latency"]["count"].as_u64().unwrap_or(0) > 0),
            "{part} of the spellcheck requests: {by_topic:#?}"
        );
    }
    assert!(
        r["kendall_tau_mean"].as_f64().expect("tau") > 0.3,
        "{}",
        r["kendall_tau_mean"]
    );
    assert_eq!(r["reconciled"], true);
    for c in r["checks"].as_array().expect("checks") {
        assert_eq!(c["ok"], true, "{c}");
    }
}

#[test]
fn demo_with_every_fault_reconciles_on_sqlite_and_the_embedded_cluster() {
    let r = demo_report(&["--broker-faults"]);
    assert_reconciled(&r);
    assert_eq!(r["outbox"], "sqlite");
    assert!(!r["broker_faults"].as_array().expect("faults").is_empty());
    // The CPU over the pipeline (read from /proc on Linux): the whole machine's is at least the process's, less the
    // ticks' grain.
    if cfg!(target_os = "linux") {
        let cpu = &r["pipeline_cpu"];
        let process = cpu["cpu_seconds"].as_f64().expect("pipeline CPU read");
        let machine = cpu["machine_cpu_seconds"]
            .as_f64()
            .expect("machine CPU read");
        assert!(process > 0.0, "{cpu}");
        assert!(cpu["wall_seconds"].as_f64().expect("wall") > 0.0, "{cpu}");
        assert!(machine + 0.05 >= process, "{cpu}");
    }
}

#[test]
fn demo_reconciles_with_postgresql_outboxes() {
    let url = std::env::var("HULE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let r = demo_report(&["--database-url", &url]);
    assert_reconciled(&r);
    assert_eq!(r["outbox"], "postgres");
}

/// The demo on the real broker (PostgreSQL outboxes, duplicates and poison), twice in a row: the second run must not
/// see the first run's records (its groups start at the end of the topics), and `--broker-faults` is refused there.
#[test]
fn demo_reconciles_twice_on_the_real_broker() {
    let cluster = hule_kafka::testkit::TestKafka::start(hule_kafka::testkit::Backend::Real, 1);
    let brokers = cluster.bootstrap_servers();
    let url = std::env::var("HULE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    for _ in 0..2 {
        let r = demo_report(&["--brokers", &brokers, "--database-url", &url]);
        assert_reconciled(&r);
        assert_eq!(r["outbox"], "postgres");
        let run = r["run_id"].as_str().expect("run id");
        assert_eq!(
            leftovers(&brokers, &url, run),
            (vec![], vec![]),
            "run {run} cleaned up"
        );
    }
    let (code, _, err) = hule(
        &[
            "demo",
            "--brokers",
            &brokers,
            "--broker-faults",
            "--no-progress",
        ],
        None,
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--broker-faults needs the embedded cluster"),
        "{err}"
    );
}

/// The consumer groups (on `brokers`) and PostgreSQL schemas a demo run left behind.
fn leftovers(brokers: &str, url: &str, run: &str) -> (Vec<String>, Vec<String>) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("client");
    let groups: Vec<String> = c
        .fetch_group_list(None, std::time::Duration::from_secs(10))
        .expect("groups")
        .groups()
        .iter()
        .map(|g| g.name().to_owned())
        .filter(|g| g.ends_with(&format!("-{run}")))
        .collect();
    let mut pg = postgres_client(url);
    let schemas: Vec<String> = pg
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1",
            &[&format!("hule_demo_{run}_%")],
        )
        .expect("schemas")
        .iter()
        .map(|r| r.get(0))
        .collect();
    (groups, schemas)
}

/// A blocking PostgreSQL client on its own runtime (the tests here are synchronous).
fn postgres_client(url: &str) -> SyncPg {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL must run on 127.0.0.1:5432 (scripts/setup.sh starts it)");
        tokio::spawn(conn);
        client
    });
    SyncPg { rt, client }
}

struct SyncPg {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl SyncPg {
    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        self.rt.block_on(self.client.query(sql, params))
    }
}

/// A demo on the real broker stopped by SIGTERM in the middle of its run stops its pipeline, reports that it was
/// interrupted (exit 1), and leaves neither consumer groups nor schemas behind.
#[test]
fn an_interrupted_demo_removes_its_groups_and_schemas() {
    let cluster = hule_kafka::testkit::TestKafka::start(hule_kafka::testkit::Backend::Real, 1);
    let brokers = cluster.bootstrap_servers();
    let url = std::env::var("HULE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hule"))
        .args([
            "demo",
            "--brokers",
            &brokers,
            "--database-url",
            &url,
            "--batches",
            "400",
            "--essays",
            "30",
            "--no-progress",
            "--json",
            "-",
            "--max-time",
            "120",
        ])
        .env("HULE_LOG", "warn,hule_demo=info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn hule demo");
    // Interrupt once the batches are being registered (the groups have joined, the schemas exist).
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    loop {
        let line = lines
            .next()
            .expect("the demo stopped before registering batches")
            .expect("stderr");
        if line.contains("registering batches") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(1),
        "an interrupted run is not reconciled"
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let check = r["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "not interrupted")
        .expect("the interruption check")
        .clone();
    assert_eq!(check["ok"], false, "{check}");
    let run = r["run_id"].as_str().expect("run id");
    assert_eq!(
        leftovers(&brokers, &url, run),
        (vec![], vec![]),
        "run {run} cleaned up"
    );
}

/// `hule demo --redis-url` deduplicates in a password-protected Redis (an ACL user and database 3, on a server the
/// test starts); a wrong password fails at once with exit 2, saying so, without printing the password.
#[test]
fn demo_deduplicates_in_a_password_protected_redis() {
    let secret = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let acl = format!(">{secret}");
    let mut server = std::process::Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args([
            "--user", "default", "off", "--user", "hule", "on", &acl, "~*", "&*", "+@all",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server (scripts/setup.sh installs it)");
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed().as_secs() < 10,
            "redis-server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let url = format!("redis://hule:{secret}@127.0.0.1:{port}/3");
    let r = demo_report(&["--redis-url", &url]);
    assert_reconciled(&r);
    assert_eq!(
        r["dedup"],
        format!("redis (redis://hule:***@127.0.0.1:{port}/3)")
    );
    let wrong = format!("redis://hule:wrong-{secret}@127.0.0.1:{port}/3");
    let (code, out, err) = hule(&["demo", "--redis-url", &wrong, "--no-progress"], None);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("--redis-url") && err.to_lowercase().contains("authentication failed"),
        "{err}"
    );
    assert!(!format!("{out}{err}").contains(&secret), "{err}");
}

#[test]
fn demo_refuses_bad_settings() {
    let (code, _, err) = hule(&["demo", "--duplicate-rate", "1.5", "--no-progress"], None);
    assert_eq!(code, 2);
    assert!(
        err.contains("--duplicate-rate must be between 0 and 1"),
        "{err}"
    );
    let (code, _, err) = hule(&["demo", "--batches", "0", "--no-progress"], None);
    assert_eq!(code, 2);
    assert!(err.contains("at least 1"), "{err}");
}

/// One HTTP/1.1 request to the console; returns (status line, headers, body).
fn http(addr: &str, request: &str) -> (String, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the console");
    s.write_all(request.as_bytes()).expect("send");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_owned(), body.to_owned())
}

/// `hule demo --console`: the console starts before the run (to watch it), serves the embedded cluster's dead
/// letters to the printed one-time user once its index has them, stays up with the services after the run until
/// SIGTERM, and the process then reports a reconciled run and ends cleanly.
#[test]
fn demo_console_serves_the_embedded_clusters_dead_letters_until_stopped() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hule"))
        .args([
            "demo",
            "--batches",
            "3",
            "--essays",
            "8",
            "--poison-rate",
            "0.2",
            "--no-progress",
            "--console",
            "--console-listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn hule demo --console");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let line = loop {
        let line = lines
            .next()
            .expect("the console line before stderr ends")
            .expect("stderr");
        if line.starts_with("console: http://") {
            break line;
        }
    };
    // Keep draining stderr so the process never blocks on a full pipe; say when the run is over.
    let (ended_tx, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.starts_with("demo: the run is done") {
                let _ = ended_tx.send(());
            }
        }
    });
    let addr = line["console: http://".len()..]
        .split('/')
        .next()
        .expect("addr")
        .to_owned();
    let password = line
        .split("password ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .expect("the password")
        .to_owned();
    let form = format!("user=demo&password={password}");
    let (status, headers, _) = http(
        &addr,
        &format!(
            "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        ),
    );
    assert!(status.contains("303"), "{status}");
    let cookie = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    ended
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the run ends and the console stays up");
    // The index catches up with the dead letters within seconds.
    let started = std::time::Instant::now();
    let groups = loop {
        let (status, _, body) = http(
            &addr,
            &format!("GET /dead-letters HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"),
        );
        assert!(status.contains("200"), "{status}");
        if body.contains("/dead-letters/") && body.contains("invalid_") {
            break body;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the poison records' groups: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // The services are still running: a replayed poison group is consumed again and fails again, into the same
    // group, which then holds twice as many dead letters.
    let at = groups.find("/dead-letters/").expect("a group") + 14;
    let fingerprint: String = groups[at..].chars().take(12).collect();
    let count_of = |body: &str| -> u64 {
        let at = body.find(" dead letters,").expect("the group's count");
        body[..at]
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a number")
    };
    let get = |path: &str| {
        http(
            &addr,
            &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"),
        )
        .2
    };
    // Read once the index has the whole group: the same count a second apart (the run is over, nothing new is
    // dead-lettered until the replay).
    let mut page = get(&format!("/dead-letters/{fingerprint}"));
    let started = std::time::Instant::now();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let again = get(&format!("/dead-letters/{fingerprint}"));
        if count_of(&again) == count_of(&page) {
            break;
        }
        page = again;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the group kept growing"
        );
    }
    let before = count_of(&page);
    let token_at = page.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    let token: String = page[token_at..].chars().take_while(|c| *c != '"').collect();
    let form = format!("csrf={token}&dry_run=0");
    let (status, _, _) = http(
        &addr,
        &format!(
            "POST /dead-letters/{fingerprint}/replay HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        ),
    );
    assert!(status.contains("303"), "the replay started: {status}");
    let started = std::time::Instant::now();
    loop {
        let now = count_of(&get(&format!("/dead-letters/{fingerprint}")));
        if now == 2 * before {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the replayed poison records were not consumed again: {now} dead letters, {before} before"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the demo did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

/// The `hule` process runs without transparent huge pages (their first-touch zeroing was a quarter of the demo's
/// CPU): the kernel's own word, `THP_enabled` in the running process's `/proc/<pid>/status`.
#[cfg(target_os = "linux")]
#[test]
fn the_hule_process_runs_without_transparent_huge_pages() {
    use std::time::{Duration, Instant};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hule"))
        .args(["demo", "--no-progress", "--max-time", "60"])
        .env_remove("MIMALLOC_ALLOW_THP")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start hule demo");
    let status = format!("/proc/{}/status", child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    // The flag is set as `main` starts; until then the status shows the parent's.
    while Instant::now() < deadline {
        last = std::fs::read_to_string(&status).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("THP_enabled:"))
                .map(|v| v.trim().to_owned())
        });
        if last.as_deref() == Some("0") {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        last.as_deref(),
        Some("0"),
        "THP_enabled of the running hule"
    );
}
