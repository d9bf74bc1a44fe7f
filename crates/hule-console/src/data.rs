//! What a replay reads: every dead letter of the cluster's DLQ topics and the replay ledger, read together (all the
//! topics at once, by one consumer, up to their high watermarks) and kept for a few seconds. A dry run and a replay
//! need every byte of their group's dead letters, which the index does not keep; the pages themselves read the
//! index ([`crate::index`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hule_kafka::dlq::{dlq_topics, read_topics, DlqMessage, FailureGroup, From};
use hule_kafka::replay::{read_ledger, LedgerEntry};
use hule_kafka::KafkaSettings;
use tokio::sync::Mutex;

/// How long a snapshot serves pages.
pub const FRESH_FOR: Duration = Duration::from_secs(5);

/// Dead letters and the ledger at one moment.
pub struct Snapshot {
    /// When it was read.
    pub at: Instant,
    /// The DLQ topics.
    pub topics: Vec<String>,
    /// Every dead letter, in read order.
    pub letters: Vec<DlqMessage>,
    /// The groups.
    pub groups: Vec<FailureGroup>,
    /// The ledger by dead letter id.
    pub ledger: HashMap<String, LedgerEntry>,
}

impl Snapshot {
    /// The ledger entry of `m`, when it is that dead letter's (same position and failure time).
    pub fn replayed(&self, m: &DlqMessage) -> Option<&LedgerEntry> {
        let failed_at = m.record.as_ref().ok()?.failed_at;
        self.ledger
            .get(&m.id())
            .filter(|e| e.failed_at == failed_at)
    }

    /// The dead letters of fingerprint `id`.
    pub fn of_group<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a DlqMessage> + 'a {
        self.letters.iter().filter(move |m| {
            m.record
                .as_ref()
                .is_ok_and(|r| hule_consumer::Fingerprint::of_record(r).id == id)
        })
    }
}

/// The snapshot in use, read again when older than [`FRESH_FOR`].
pub struct Data {
    kafka: KafkaSettings,
    timeout: Duration,
    current: Mutex<Option<Arc<Snapshot>>>,
}

impl Data {
    /// Reads `kafka`'s dead letters on demand.
    pub fn new(kafka: KafkaSettings, timeout: Duration) -> Self {
        Data {
            kafka,
            timeout,
            current: Mutex::new(None),
        }
    }

    /// The Kafka settings.
    pub fn kafka(&self) -> &KafkaSettings {
        &self.kafka
    }

    /// A fresh snapshot (one reader at a time; the others wait for its result), or why Kafka cannot be read.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, String> {
        let mut current = self.current.lock().await;
        if let Some(s) = current.as_ref().filter(|s| s.at.elapsed() < FRESH_FOR) {
            return Ok(s.clone());
        }
        let (kafka, timeout) = (self.kafka.clone(), self.timeout);
        let read = tokio::task::spawn_blocking(move || -> Result<Snapshot, String> {
            let topics = dlq_topics(&kafka, timeout).map_err(|e| e.to_string())?;
            let mut letters = Vec::new();
            read_topics(&kafka, &topics, From::Beginning, timeout, |m| {
                letters.push(m);
                true
            })
            .map_err(|e| e.to_string())?;
            let ledger = read_ledger(&kafka, timeout).map_err(|e| e.to_string())?;
            let groups = hule_kafka::dlq::group_by_fingerprint(&letters);
            Ok(Snapshot {
                at: Instant::now(),
                topics,
                letters,
                groups,
                ledger,
            })
        })
        .await
        .map_err(|e| format!("reading Kafka failed: {e}"))??;
        let snapshot = Arc::new(read);
        *current = Some(snapshot.clone());
        Ok(snapshot)
    }

    /// Forgets the snapshot (after an action changed what it shows).
    pub async fn invalidate(&self) {
        *self.current.lock().await = None;
    }
}
