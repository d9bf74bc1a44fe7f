//! Reading dead-letter topics for the DLQ tools: every record from the beginning up to the high watermarks seen at
//! the start, without joining a consumer group (so tools never move a service's offsets).

use std::time::{Duration, Instant};

use hule_consumer::DeadLetterRecord;
use hule_contracts::Headers;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

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

fn client(kafka: &KafkaSettings) -> Result<BaseConsumer, Error> {
    Ok(kafka
        .client_config()
        .set("group.id", "hule-dlq-tool")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
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

/// Calls `f` for every record of `topic` (up to the high watermarks at the start); `f` returns `false` to stop.
/// Returns how many records were read.
pub fn read_topic(
    kafka: &KafkaSettings,
    topic: &str,
    timeout: Duration,
    mut f: impl FnMut(DlqMessage) -> bool,
) -> Result<u64, Error> {
    let c = client(kafka)?;
    let md = crate::metadata(c.client(), Some(topic), &kafka.brokers, timeout)?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut tpl = TopicPartitionList::new();
    let mut remaining = std::collections::HashMap::new();
    for p in &partitions {
        let (low, high) = c.fetch_watermarks(topic, *p, timeout)?;
        if high > low {
            tpl.add_partition_offset(topic, *p, Offset::Offset(low))?;
            remaining.insert(*p, high);
        }
    }
    if remaining.is_empty() {
        return Ok(0);
    }
    c.assign(&tpl)?;
    let mut read = 0;
    let mut last_progress = Instant::now();
    while !remaining.is_empty() {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                last_progress = Instant::now();
                let d = crate::consumer::delivery_of(&m);
                let record = match d.payload.as_deref() {
                    Some(p) => {
                        serde_json::from_slice::<DeadLetterRecord>(p).map_err(|e| e.to_string())
                    }
                    None => Err("empty value".into()),
                };
                let (partition, offset) = (d.partition, d.offset);
                if remaining
                    .get(&partition)
                    .is_some_and(|high| offset + 1 >= *high)
                {
                    remaining.remove(&partition);
                }
                read += 1;
                let go_on = f(DlqMessage {
                    topic: topic.to_owned(),
                    partition,
                    offset,
                    key: d.key,
                    headers: d.headers,
                    record,
                });
                if !go_on {
                    break;
                }
            }
            Some(Err(e)) => return Err(e.into()),
            None => {
                if last_progress.elapsed() > timeout {
                    tracing::warn!(
                        topic,
                        "no records for {timeout:?} before the high watermark; stopping"
                    );
                    break;
                }
            }
        }
    }
    Ok(read)
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
