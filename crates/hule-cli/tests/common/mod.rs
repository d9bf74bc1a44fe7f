//! What the `hule` binary's test files share: running the binary, and a CA that signed nothing.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `hule` with `args` (and `stdin`); returns its exit code, stdout and stderr.
pub fn hule(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hule"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hule");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A self-signed CA in `dir` (`<name>.pem`) that signed nothing the tests' servers present.
pub fn unrelated_ca(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let pem = dir.join(format!("{name}.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=not the CA",
        ])
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(&pem)
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    pem
}

/// What [`read_relayed`] found on a topic.
pub struct Relayed {
    /// Distinct event ids.
    pub events: usize,
    /// Records, second copies included.
    pub records: usize,
}

/// Reads `topic` from the start (a group of its own) until `total` distinct events are in and no record came for
/// `settle` (stray second copies), or 60 s pass. Each event's first copy must arrive after its key's earlier events
/// (the rows' `processing_duration_ms` numbers them per key, as `hule_outbox::testkit::numbered_rows` makes them).
pub fn read_relayed(
    brokers: &str,
    topic: &str,
    group: &str,
    total: usize,
    settle: std::time::Duration,
) -> Relayed {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message as _;
    use std::time::{Duration, Instant};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut seen = std::collections::HashSet::new();
    let mut last: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let mut records = 0usize;
    let mut idle = Instant::now();
    let read_until = Instant::now() + Duration::from_secs(60);
    while (seen.len() < total || idle.elapsed() < settle) && Instant::now() < read_until {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        idle = Instant::now();
        records += 1;
        let v: serde_json::Value =
            serde_json::from_slice(m.payload().expect("value")).expect("json");
        let id = v["event_id"].as_str().expect("id").to_owned();
        if !seen.insert(id) {
            continue; // a second copy: counted in `records`
        }
        let key = String::from_utf8_lossy(m.key().expect("key")).into_owned();
        let n = v["data"]["processing_duration_ms"].as_i64().expect("n");
        if let Some(prev) = last.insert(key.clone(), n) {
            assert!(n > prev, "key {key}: {n} first arrived after {prev}");
        }
    }
    Relayed {
        events: seen.len(),
        records,
    }
}
