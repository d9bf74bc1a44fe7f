//! One Kafka test suite, two backends: the same test body runs against librdkafka's in-process mock cluster and
//! against a real Apache Kafka broker.
//!
//! A test body is an `async fn(Backend)`; [`on_both_backends!`](crate::on_both_backends) turns a list of them into
//! `mock::NAME` and `real::NAME` tests. The body asks [`TestKafka::start`] for a cluster:
//!
//! - [`Backend::Mock`]: a fresh mock cluster in the process (fault injection through [`TestKafka::mock`]);
//! - [`Backend::Real`]: the broker at `$HULE_TEST_KAFKA` (default `127.0.0.1:9092`; `scripts/kafka.sh start`
//!   starts one, `scripts/test.sh` does so for the suite). When it does not answer, the test **fails** with a message
//!   that says how to start it: a missing server is never a skipped test.
//!
//! Real-broker tests of one test binary run one at a time (a process-wide lock held by [`TestKafka`]) because they
//! share topic names: [`TestKafka::create_topics`] deletes and recreates each topic, so every test starts from empty
//! topics, as on a fresh mock cluster. Group ids should come from [`TestKafka::group`], which makes them unique.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

/// The environment variable naming the real broker(s) for tests.
pub const REAL_KAFKA_ENV: &str = "HULE_TEST_KAFKA";
/// Where the real broker is looked for when [`REAL_KAFKA_ENV`] is not set (what `scripts/kafka.sh start` prints).
pub const DEFAULT_REAL_KAFKA: &str = "127.0.0.1:9092";

/// Which Kafka a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// librdkafka's in-process mock cluster.
    Mock,
    /// A real Apache Kafka cluster at `$HULE_TEST_KAFKA`.
    Real,
}

/// Serialises real-broker tests of one process (they share topic names).
static REAL_SERIAL: Mutex<()> = Mutex::new(());

/// A cluster for one test; dropping it ends the mock cluster (a real one keeps running).
pub struct TestKafka {
    backend: Backend,
    bootstrap: String,
    brokers: i32,
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
    _serial: Option<MutexGuard<'static, ()>>,
}

impl TestKafka {
    /// A cluster of the given backend. `mock_brokers` sizes the mock cluster; a real cluster is what runs.
    ///
    /// # Panics
    /// When the mock cluster cannot be created or the real broker does not answer within 15 s: a test that needs a
    /// broker fails loudly without one.
    pub fn start(backend: Backend, mock_brokers: i32) -> Self {
        match backend {
            Backend::Mock => {
                let mock = MockCluster::new(mock_brokers).expect("librdkafka mock cluster");
                TestKafka {
                    backend,
                    bootstrap: mock.bootstrap_servers(),
                    brokers: mock_brokers,
                    mock: Some(mock),
                    _serial: None,
                }
            }
            Backend::Real => {
                let serial = REAL_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
                let bootstrap = real_bootstrap();
                let brokers = match broker_count(&bootstrap, Duration::from_secs(15)) {
                    Ok(n) => n,
                    Err(e) => panic!(
                        "real Kafka must answer at {bootstrap} ({REAL_KAFKA_ENV}; `scripts/kafka.sh start` starts \
                         one, scripts/test.sh does so for the suite): {e}"
                    ),
                };
                TestKafka {
                    backend,
                    bootstrap,
                    brokers,
                    mock: None,
                    _serial: Some(serial),
                }
            }
        }
    }

    /// The backend this cluster is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The bootstrap servers.
    pub fn bootstrap_servers(&self) -> String {
        self.bootstrap.clone()
    }

    /// How many brokers the cluster has.
    pub fn broker_count(&self) -> i32 {
        self.brokers
    }

    /// The mock cluster, for fault injection; `None` on a real broker.
    pub fn mock(&self) -> Option<&MockCluster<'static, DefaultProducerContext>> {
        self.mock.as_ref()
    }

    /// A consumer group id unique to this test run, so committed offsets of earlier runs never leak into a test.
    pub fn group(&self, name: &str) -> String {
        format!("{name}-{:016x}", rand_u64())
    }

    /// Creates `topics` (name, partitions), empty. On a real cluster an existing topic of that name is deleted first
    /// and the replication factor is capped at the number of brokers.
    pub async fn create_topics(
        &self,
        topics: impl IntoIterator<Item = (String, i32)>,
        replication: i32,
    ) -> Result<(), String> {
        let topics: Vec<(String, i32)> = topics.into_iter().collect();
        match &self.mock {
            Some(mock) => crate::mock::create_topics(mock, topics, replication),
            None => recreate_real(&self.bootstrap, &topics, replication.min(self.brokers)).await,
        }
    }
}

impl TestKafka {
    /// Deletes every topic whose name starts with `prefix` and waits until the cluster no longer lists them; returns
    /// how many there were. Nothing to do on the mock cluster (it starts empty).
    pub async fn delete_topics_with_prefix(&self, prefix: &str) -> Result<usize, String> {
        if self.mock.is_some() {
            return Ok(0);
        }
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .map_err(|e| e.to_string())?;
        let listed = |admin: &AdminClient<DefaultClientContext>| -> Result<Vec<String>, String> {
            let md = admin
                .inner()
                .fetch_metadata(None, Duration::from_secs(10))
                .map_err(|e| format!("metadata: {e}"))?;
            Ok(md
                .topics()
                .iter()
                .map(|t| t.name().to_owned())
                .filter(|n| n.starts_with(prefix))
                .collect())
        };
        let names = listed(&admin)?;
        if names.is_empty() {
            return Ok(0);
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        delete_topics(&admin, &refs, &opts).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !listed(&admin)?.is_empty() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "topics starting with {prefix} still listed after 60 s"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(names.len())
    }
}

/// The real broker's address: `$HULE_TEST_KAFKA` or [`DEFAULT_REAL_KAFKA`].
pub fn real_bootstrap() -> String {
    std::env::var(REAL_KAFKA_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_REAL_KAFKA.to_owned())
}

fn broker_count(bootstrap: &str, timeout: Duration) -> Result<i32, String> {
    let client: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3")
        .create()
        .map_err(|e| e.to_string())?;
    let md = client
        .client()
        .fetch_metadata(None, timeout)
        .map_err(|e| e.to_string())?;
    Ok(md.brokers().len() as i32)
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// Deletes `names`; a topic that does not exist is not an error.
async fn delete_topics(
    admin: &AdminClient<DefaultClientContext>,
    names: &[&str],
    opts: &AdminOptions,
) -> Result<(), String> {
    for r in admin
        .delete_topics(names, opts)
        .await
        .map_err(|e| format!("delete topics: {e}"))?
    {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((t, code)) => return Err(format!("delete topic {t}: {code}")),
        }
    }
    Ok(())
}

async fn recreate_real(
    bootstrap: &str,
    topics: &[(String, i32)],
    replication: i32,
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|e| e.to_string())?;
    let opts = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(20)))
        .operation_timeout(Some(Duration::from_secs(20)));
    let names: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
    delete_topics(&admin, &names, &opts).await?;
    // A deleted topic's name is free again once the controller has removed it; until then creation reports that
    // the topic exists, and is tried again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pending: Vec<(String, i32)> = topics.to_vec();
    while !pending.is_empty() {
        let new: Vec<NewTopic<'_>> = pending
            .iter()
            .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(replication)))
            .collect();
        let mut retry = Vec::new();
        for r in admin
            .create_topics(&new, &opts)
            .await
            .map_err(|e| format!("create topics: {e}"))?
        {
            match r {
                Ok(_) => {}
                Err((t, RDKafkaErrorCode::TopicAlreadyExists)) if Instant::now() < deadline => {
                    let p = pending.iter().find(|(n, _)| *n == t).map_or(1, |(_, p)| *p);
                    retry.push((t, p));
                }
                Err((t, code)) => return Err(format!("create topic {t}: {code}")),
            }
        }
        pending = retry;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Every partition has a leader before the test produces.
    loop {
        let md = admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| format!("metadata: {e}"))?;
        let ready = topics.iter().all(|(name, partitions)| {
            md.topics().iter().any(|t| {
                t.name() == name
                    && t.error().is_none()
                    && t.partitions().len() as i32 == *partitions
                    && t.partitions().iter().all(|p| p.leader() >= 0)
            })
        });
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("topics {names:?} have no leaders after 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Declares each listed `async fn NAME(backend: Backend)` as two tests, `mock::NAME` and `real::NAME`, each on a
/// two-thread tokio runtime.
///
/// ```ignore
/// async fn relays_everything(backend: hule_kafka::testkit::Backend) { /* ... */ }
/// hule_kafka::on_both_backends!(relays_everything);
/// ```
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod mock {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testkit::Backend::Mock).await
                }
            )*
        }
        mod real {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testkit::Backend::Real).await
                }
            )*
        }
    };
}

/// A cluster of its own for one test, started and stopped through `scripts/kafka.sh` (so a test can kill and
/// restart brokers). Dropping it stops every node and removes its directory.
pub struct ScriptCluster {
    dir: std::path::PathBuf,
    bootstrap: String,
}

impl ScriptCluster {
    /// Starts `nodes` (1 or 3) brokers with broker ports `port..port+nodes` and controller ports `port+100..`.
    /// Choose ports below the ephemeral range (32768 and up on Linux): a client socket of a test running in
    /// parallel may hold an ephemeral port for a while, and the broker then fails to bind it.
    ///
    /// # Panics
    /// When the script fails (no Java or Maven, ports taken, a node that does not start): the test fails loudly.
    pub fn start(nodes: u32, port: u16) -> Self {
        Self::start_with(nodes, port, &[], &[])
    }

    /// A cluster with the SASL_PLAINTEXT (`port+200`) and SASL_SSL (`port+300`) listeners of
    /// `scripts/kafka.sh start --secure`; user `hule` with `password`.
    pub fn start_secure(nodes: u32, port: u16, password: &str) -> Self {
        Self::start_with(
            nodes,
            port,
            &["--secure"],
            &[("HULE_KAFKA_SASL_PASSWORD", password)],
        )
    }

    fn start_with(nodes: u32, port: u16, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("hule-kafka-{port}-{:016x}", rand_u64()));
        let (nodes, port, dir_s) = (
            nodes.to_string(),
            port.to_string(),
            dir.to_string_lossy().into_owned(),
        );
        let mut args = vec!["start", "--nodes", &nodes, "--port", &port, "--dir", &dir_s];
        args.extend_from_slice(extra);
        let bootstrap = run_script_env(&args, env);
        ScriptCluster { dir, bootstrap }
    }

    /// The directory of the cluster (client property files of a secure cluster are there).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The bootstrap servers of a secure cluster's SASL_SSL listeners.
    pub fn sasl_ssl_bootstrap(&self) -> String {
        self.read("sasl-ssl-bootstrap")
    }

    /// The bootstrap servers of a secure cluster's SASL_PLAINTEXT listeners.
    pub fn sasl_plaintext_bootstrap(&self) -> String {
        self.read("sasl-plaintext-bootstrap")
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name))
            .unwrap_or_else(|e| panic!("{name} of the cluster in {}: {e}", self.dir.display()))
            .trim()
            .to_owned()
    }

    /// The bootstrap servers (every node).
    pub fn bootstrap_servers(&self) -> String {
        self.bootstrap.clone()
    }

    /// Creates `topics` (name, partitions) with the given replication factor, empty.
    pub async fn create_topics(
        &self,
        topics: impl IntoIterator<Item = (String, i32)>,
        replication: i32,
    ) -> Result<(), String> {
        let topics: Vec<(String, i32)> = topics.into_iter().collect();
        recreate_real(&self.bootstrap, &topics, replication).await
    }

    /// SIGKILLs node `n` (1-based): no controlled shutdown, in-flight requests are lost.
    pub fn kill_node(&self, n: u32) {
        run_script(&[
            "kill-node",
            &n.to_string(),
            "--dir",
            &self.dir.to_string_lossy(),
        ]);
    }

    /// Starts node `n` again on its storage and waits until every node answers and sees the whole cluster.
    pub fn start_node(&self, n: u32) {
        run_script(&[
            "start-node",
            &n.to_string(),
            "--dir",
            &self.dir.to_string_lossy(),
        ]);
    }
}

impl Drop for ScriptCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(script_path())
            .args(["stop", "--dir", &self.dir.to_string_lossy()])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn script_path() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/kafka.sh").to_owned()
}

/// Runs `scripts/kafka.sh ARGS`; returns the last line of its output.
fn run_script(args: &[&str]) -> String {
    run_script_env(args, &[])
}

fn run_script_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(script_path())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/kafka.sh: {e}"));
    assert!(
        out.status.success(),
        "scripts/kafka.sh {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// A `BatchEssaysRegistered` record for `topic`: event id `id`, its batch (and key) `key`, standard headers.
pub fn essays_registered(
    topic: &str,
    id: u128,
    key: &str,
) -> (String, Vec<u8>, hule_contracts::Headers) {
    use hule_contracts::{Event, Timestamp, TypedEvent};
    let mut env = hule_contracts::examples::example_envelope(
        Event::BatchEssaysRegistered,
        uuid::Uuid::from_u128(id),
        uuid::Uuid::from_u128(1),
        Timestamp::from_datetime(chrono::Utc::now()),
    )
    .expect("every event has an example");
    if let TypedEvent::BatchEssaysRegistered(p) = &mut env.data {
        p.entity_id = key.to_owned();
    }
    let headers = hule_contracts::headers::standard_headers(&env, topic, key);
    (
        key.to_owned(),
        env.to_json().expect("an example encodes"),
        headers,
    )
}

/// Produces `records` (key, value, headers) to `topic` with an idempotent murmur2 producer and waits for every
/// acknowledgement.
///
/// # Panics
/// When a record is not delivered within 30 s: the test fails loudly.
pub async fn produce_all(
    brokers: &str,
    topic: &str,
    records: &[(String, Vec<u8>, hule_contracts::Headers)],
) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    let sends: Vec<_> = records
        .iter()
        .map(|(k, v, h)| {
            producer.send(
                FutureRecord::to(topic)
                    .key(k)
                    .payload(v)
                    .headers(crate::consumer::owned_headers(h)),
                Duration::from_secs(30),
            )
        })
        .collect();
    for s in futures::future::join_all(sends).await {
        s.expect("delivered");
    }
}
