//! Reading dead-letter topics for the DLQ tools: every record from the beginning up to the high watermarks seen at
//! the start, without joining a consumer group (so tools never move a service's offsets). One consumer reads all the
//! topics asked for at once (71 DLQ topics are one assignment, fetched together, not 71 reads one after another).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hule_consumer::{DeadLetterRecord, Delivery};
use hule_contracts::Headers;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message as _, Offset, TopicPartitionList};

use crate::settings::KafkaSettings;
use crate::Error;

/// One record of a dead-letter topic.
#[derive(Debug, Clone)]
pub struct DlqMessage {
    /// The DLQ topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Headers.
    pub headers: Headers,
    /// The decoded record, or why it does not decode.
    pub record: Result<DeadLetterRecord, String>,
}

impl DlqMessage {
    /// `topic:partition:offset`, the dead letter's identity (the replay ledger's key, the console's URLs).
    pub fn id(&self) -> String {
        format!("{}:{}:{}", self.topic, self.partition, self.offset)
    }
}

/// A group-less reader; `read_committed` skips aborted transactions (the replay ledger is written in them).
fn client(kafka: &KafkaSettings) -> Result<BaseConsumer, Error> {
    Ok(kafka
        .client_config()
        .set("group.id", "hule-dlq-tool")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_committed")
        .create()?)
}

/// The dead-letter topics (`*.dlq.v1`) the cluster has, sorted.
pub fn dlq_topics(kafka: &KafkaSettings, timeout: Duration) -> Result<Vec<String>, Error> {
    let c = client(kafka)?;
    let md = crate::metadata(c.client(), None, &kafka.brokers, timeout)?;
    let mut out: Vec<String> = md
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|n| n.ends_with(".dlq.v1"))
        .collect();
    out.sort();
    Ok(out)
}

/// Where to start reading each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// The low watermark.
    Beginning,
    /// This offset (clamped to the partition's range), on every partition read.
    Offset(i64),
}

/// Calls `f` for every record of `topics` that exist (from `from` up to the high watermarks seen at the start, all
/// topics read together by one consumer); `f` returns `false` to stop. Topics that do not exist are skipped. Returns
/// how many records were read.
pub fn scan(
    kafka: &KafkaSettings,
    topics: &[String],
    from: From,
    timeout: Duration,
    mut f: impl FnMut(Delivery) -> bool,
) -> Result<u64, Error> {
    let c = client(kafka)?;
    let md = crate::metadata(c.client(), None, &kafka.brokers, timeout)?;
    let mut tpl = TopicPartitionList::new();
    let mut high: HashMap<(String, i32), i64> = HashMap::new();
    for t in md
        .topics()
        .iter()
        .filter(|t| topics.iter().any(|n| n == t.name()))
    {
        // A topic the cluster does not have is skipped (the replay ledger before the first replay); any other
        // metadata error (no leader yet) would make the read partial, and says so.
        match t.error() {
            None => {}
            Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => {
                continue
            }
            Some(e) => {
                return Err(Error::Incomplete {
                    partitions: format!("{} (metadata: {e:?})", t.name()),
                    timeout,
                })
            }
        }
        for p in t.partitions() {
            let (low, hi) = c.fetch_watermarks(t.name(), p.id(), timeout)?;
            let start = match from {
                From::Beginning => low,
                From::Offset(o) => o.clamp(low, hi),
            };
            if hi > start {
                tpl.add_partition_offset(t.name(), p.id(), Offset::Offset(start))?;
                high.insert((t.name().to_owned(), p.id()), hi);
            }
        }
    }
    if high.is_empty() {
        return Ok(0);
    }
    c.assign(&tpl)?;
    let mut read = 0;
    let mut last_progress = Instant::now();
    while !high.is_empty() {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let part = (m.topic().to_owned(), m.partition());
                // A partition already read to its end goes on delivering what arrived since: not part of the read.
                let Some(hi) = high.get(&part).copied() else {
                    continue;
                };
                if m.offset() >= hi {
                    high.remove(&part);
                    continue;
                }
                last_progress = Instant::now();
                let d = crate::consumer::delivery_of(&m);
                if d.offset + 1 >= hi {
                    high.remove(&part);
                }
                read += 1;
                if !f(d) {
                    break;
                }
            }
            Some(Err(e)) => return Err(e.into()),
            None => {
                // Transaction markers and compacted-away records are never delivered: a partition whose position
                // has reached its high watermark is done although its last record was not seen.
                if let Ok(position) = c.position() {
                    for el in position.elements() {
                        if let Offset::Offset(at) = el.offset() {
                            let part = (el.topic().to_owned(), el.partition());
                            if high.get(&part).is_some_and(|hi| at >= *hi) {
                                high.remove(&part);
                            }
                        }
                    }
                }
                if !high.is_empty() && last_progress.elapsed() > timeout {
                    // A partial read must not pass for a whole one: a ledger read short would replay again what
                    // it missed. (An open transaction holds a read-committed reader below the high watermark.)
                    let mut left: Vec<String> =
                        high.keys().map(|(t, p)| format!("{t}[{p}]")).collect();
                    left.sort();
                    return Err(Error::Incomplete {
                        partitions: left.join(", "),
                        timeout,
                    });
                }
            }
        }
    }
    Ok(read)
}

/// [`scan`] of dead-letter topics, each record decoded as a [`DeadLetterRecord`].
pub fn read_topics(
    kafka: &KafkaSettings,
    topics: &[String],
    from: From,
    timeout: Duration,
    mut f: impl FnMut(DlqMessage) -> bool,
) -> Result<u64, Error> {
    scan(kafka, topics, from, timeout, |d| {
        let record = match d.payload.as_deref() {
            Some(p) => serde_json::from_slice::<DeadLetterRecord>(p).map_err(|e| e.to_string()),
            None => Err("empty value".into()),
        };
        f(DlqMessage {
            topic: d.topic,
            partition: d.partition,
            offset: d.offset,
            key: d.key,
            headers: d.headers,
            record,
        })
    })
}

/// [`read_topics`] of one topic from the beginning.
pub fn read_topic(
    kafka: &KafkaSettings,
    topic: &str,
    timeout: Duration,
    f: impl FnMut(DlqMessage) -> bool,
) -> Result<u64, Error> {
    read_topics(kafka, &[topic.to_owned()], From::Beginning, timeout, f)
}

/// Republishes a dead letter's original record (`hule dlq replay`'s step) inside its `dlq.replay` span: a new
/// trace linked to the one it failed in, named by the record's `traceparent`.
pub async fn republish(
    producer: &rdkafka::producer::FutureProducer,
    replay: &mut hule_consumer::dlq::Replay,
    timeout: Duration,
) -> Result<rdkafka::producer::future_producer::Delivery, rdkafka::error::KafkaError> {
    use tracing::Instrument;
    let span = replay.traced();
    let mut record = rdkafka::producer::FutureRecord::to(&replay.topic)
        .payload(&replay.value)
        .headers(crate::consumer::owned_headers(&replay.headers));
    if let Some(k) = &replay.key {
        record = record.key(k);
    }
    producer
        .send(record, timeout)
        .instrument(span)
        .await
        .map_err(|(e, _)| e)
}

/// Dead letters of one failure fingerprint (see [`hule_consumer::Fingerprint`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailureGroup {
    /// The fingerprint and what it is made of.
    #[serde(flatten)]
    pub fingerprint: hule_consumer::Fingerprint,
    /// The DLQ topic of its first dead letter.
    pub dlq_topic: String,
    /// Dead letters.
    pub count: u64,
    /// The earliest failure.
    pub first_failed: hule_contracts::Timestamp,
    /// The latest failure.
    pub last_failed: hule_contracts::Timestamp,
    /// Dead letters of records that had been replayed before (`X-Replay-Count`) and failed again.
    pub failed_again: u64,
}

/// `letters` grouped by fingerprint, the largest group first (then the most recent). Records that are not dead
/// letters are left out.
pub fn group_by_fingerprint(letters: &[DlqMessage]) -> Vec<FailureGroup> {
    let mut groups: HashMap<String, FailureGroup> = HashMap::new();
    for m in letters {
        let Ok(r) = &m.record else { continue };
        let fp = hule_consumer::Fingerprint::of_record(r);
        let again = m
            .headers
            .get(hule_contracts::headers::names::REPLAY_COUNT)
            .is_some();
        let g = groups.entry(fp.id.clone()).or_insert_with(|| FailureGroup {
            fingerprint: fp,
            dlq_topic: m.topic.clone(),
            count: 0,
            first_failed: r.failed_at,
            last_failed: r.failed_at,
            failed_again: 0,
        });
        g.count += 1;
        g.first_failed = g.first_failed.min(r.failed_at);
        g.last_failed = g.last_failed.max(r.failed_at);
        g.failed_again += u64::from(again);
    }
    let mut out: Vec<FailureGroup> = groups.into_values().collect();
    out.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.last_failed.cmp(&a.last_failed))
            .then(a.fingerprint.id.cmp(&b.fingerprint.id))
    });
    out
}
