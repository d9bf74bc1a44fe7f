//! Following topics without joining a rebalancing group, for the console: its index reads every registered topic,
//! dead-letter topic and the replay ledger from where it stopped (positions it keeps itself, beside what it
//! indexed), its live tail from the end; a record page fetches one record by its offset.
//!
//! The follower assigns partitions itself (no rebalance can take one away while the index writes), reads committed
//! records only (the replay ledger is written in transactions), and commits its positions to its consumer group as
//! well, so `hule lag` shows how far behind the console's index is.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hule_consumer::Delivery;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Message as _, Offset, TopicPartitionList};

use crate::settings::KafkaSettings;
use crate::Error;

/// One record read, with its broker timestamp (milliseconds since the epoch, when it has one).
#[derive(Debug, Clone)]
pub struct Followed {
    /// The record.
    pub delivery: Delivery,
    /// Its timestamp.
    pub timestamp_ms: Option<i64>,
}

/// Where to start a partition the follower has no position for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Its first record still kept.
    Beginning,
    /// Its next record (a live tail).
    End,
}

/// A consumer of assigned partitions.
pub struct Follower {
    consumer: BaseConsumer,
    brokers: String,
    /// The partitions assigned, by (topic, partition).
    assigned: HashMap<(String, i32), ()>,
}

impl Follower {
    /// A follower in consumer group `group` (used for its committed positions only; it never subscribes), with
    /// large fetches: the index reads topics from their beginning.
    pub fn new(kafka: &KafkaSettings, group: &str) -> Result<Self, Error> {
        Self::with_buffers(kafka, group, 52_428_800, 262_144)
    }

    /// A follower for a live tail: small fetches and a small queue (it reads from the end, a few records a second
    /// reach a browser, and many may be open at once).
    pub fn small(kafka: &KafkaSettings, group: &str) -> Result<Self, Error> {
        Self::with_buffers(kafka, group, 1_048_576, 4_096)
    }

    fn with_buffers(
        kafka: &KafkaSettings,
        group: &str,
        fetch_max_bytes: u32,
        queued_kbytes: u32,
    ) -> Result<Self, Error> {
        let consumer: BaseConsumer = kafka
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("fetch.max.bytes", fetch_max_bytes.to_string())
            .set("queued.max.messages.kbytes", queued_kbytes.to_string())
            .create()?;
        Ok(Follower {
            consumer,
            brokers: kafka.brokers.clone(),
            assigned: HashMap::new(),
        })
    }

    /// The partitions of every topic of the cluster `keep` accepts: (topic, partition count).
    pub fn topics(
        &self,
        keep: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<Vec<(String, i32)>, Error> {
        let md = crate::metadata(self.consumer.client(), None, &self.brokers, timeout)?;
        let mut out: Vec<(String, i32)> = md
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && keep(t.name()))
            .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Assigns `partitions` (topic, partition), each from its position in `positions` (the next offset to read),
    /// or from `start` when it has none. Partitions assigned before keep their place in the stream when they are
    /// assigned again with the position read so far.
    pub fn assign(
        &mut self,
        partitions: &[(String, i32)],
        positions: &HashMap<(String, i32), i64>,
        start: Start,
    ) -> Result<(), Error> {
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in partitions {
            let offset = match positions.get(&(topic.clone(), *partition)) {
                Some(next) => Offset::Offset(*next),
                None => match start {
                    Start::Beginning => Offset::Beginning,
                    Start::End => Offset::End,
                },
            };
            tpl.add_partition_offset(topic, *partition, offset)?;
        }
        self.consumer.assign(&tpl)?;
        self.assigned = partitions.iter().map(|p| (p.clone(), ())).collect();
        Ok(())
    }

    /// The end offset (the high watermark: the next offset to be written) of each of `partitions`, so a tail can
    /// start exactly there and lose nothing produced after. One request per partition, all within `timeout`.
    pub fn end_offsets(
        &self,
        partitions: &[(String, i32)],
        timeout: Duration,
    ) -> Result<HashMap<(String, i32), i64>, Error> {
        let deadline = Instant::now() + timeout;
        let mut out = HashMap::new();
        for (topic, partition) in partitions {
            let left = deadline.saturating_duration_since(Instant::now());
            let (_, high) = self
                .consumer
                .fetch_watermarks(topic, *partition, left)
                .map_err(|source| Error::Unreachable {
                    brokers: self.brokers.clone(),
                    timeout,
                    source,
                })?;
            out.insert((topic.clone(), *partition), high);
        }
        Ok(out)
    }

    /// How many partitions are assigned.
    pub fn assigned(&self) -> usize {
        self.assigned.len()
    }

    /// Up to `max` records, waiting at most `wait` for the first and then taking what has arrived. An error the
    /// client reports (a broker down) is returned after the records read before it.
    pub fn poll(&self, max: usize, wait: Duration) -> (Vec<Followed>, Option<Error>) {
        let mut out = Vec::new();
        let deadline = Instant::now() + wait;
        while out.len() < max {
            let left = if out.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match self.consumer.poll(left) {
                None => {
                    if out.is_empty() && Instant::now() < deadline {
                        continue;
                    }
                    break;
                }
                Some(Ok(m)) => out.push(Followed {
                    timestamp_ms: m.timestamp().to_millis(),
                    delivery: crate::consumer::delivery_of(&m),
                }),
                Some(Err(e)) => return (out, Some(e.into())),
            }
        }
        (out, None)
    }

    /// Commits `positions` (the next offset of each partition) to the follower's group, without waiting.
    pub fn commit(&self, positions: &[((String, i32), i64)]) -> Result<(), Error> {
        if positions.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in positions {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
        }
        self.consumer.commit(&tpl, CommitMode::Async)?;
        Ok(())
    }
}

/// The record at `offset` of `topic`/`partition`, or `None` when the partition has no record there (deleted by
/// retention, compacted, or past its end).
pub fn fetch(
    kafka: &KafkaSettings,
    topic: &str,
    partition: i32,
    offset: i64,
    timeout: Duration,
) -> Result<Option<Followed>, Error> {
    let c: BaseConsumer = kafka
        .client_config()
        .set("group.id", "hule-console-fetch")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "error")
        .create()?;
    let (low, high) = c
        .fetch_watermarks(topic, partition, timeout)
        .map_err(|source| Error::Unreachable {
            brokers: kafka.brokers.clone(),
            timeout,
            source,
        })?;
    if offset < low || offset >= high {
        return Ok(None);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    c.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match c.poll(deadline.saturating_duration_since(Instant::now())) {
            // A compacted partition may skip the offset asked for: what comes next is another record.
            Some(Ok(m)) if m.offset() == offset => {
                return Ok(Some(Followed {
                    timestamp_ms: m.timestamp().to_millis(),
                    delivery: crate::consumer::delivery_of(&m),
                }))
            }
            Some(Ok(_)) => return Ok(None),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return Ok(None),
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Err(Error::Unreachable {
        brokers: kafka.brokers.clone(),
        timeout,
        source: rdkafka::error::KafkaError::MessageConsumption(
            rdkafka::types::RDKafkaErrorCode::RequestTimedOut,
        ),
    })
}
