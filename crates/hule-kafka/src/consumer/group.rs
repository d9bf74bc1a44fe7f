//! Group helpers for tools: an assignment signal for plain rdkafka consumers, and positioning a new group at the
//! end of its topics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::settings::KafkaSettings;
use crate::Error;

/// A consumer context that only signals assignments (for plain rdkafka consumers in tools).
pub struct AssignSignal(pub Arc<tokio::sync::Notify>);

impl ClientContext for AssignSignal {}

impl ConsumerContext for AssignSignal {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.0.notify_one();
        }
    }
}

/// Makes a new consumer group start at the current end of `topics`: commits each partition's high watermark for
/// `group` (a group nobody has joined yet accepts such commits). For a run on a shared cluster that must only see
/// what it produces itself, like `hule demo --brokers`; `auto.offset.reset` would either replay the topics' history
/// (`earliest`) or race the first records (`latest`). Topics the cluster does not have are skipped (a topic created
/// later holds only new records). Returns the number of partitions positioned.
pub fn start_group_at_end(
    kafka: &KafkaSettings,
    group: &str,
    topics: &[&str],
    timeout: Duration,
) -> Result<usize, Error> {
    let brokers = &kafka.brokers;
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let md = crate::metadata(consumer.client(), Some(topic), brokers, timeout)?;
        for t in md.topics().iter().filter(|t| t.error().is_none()) {
            for p in t.partitions() {
                // A topic created a moment ago may not have settled its leaders yet: retry until the timeout.
                let deadline = Instant::now() + timeout;
                let high = loop {
                    match consumer.fetch_watermarks(t.name(), p.id(), timeout) {
                        Ok((_, high)) => break high,
                        Err(e) if Instant::now() < deadline => {
                            tracing::debug!(topic = t.name(), partition = p.id(), error = %e, "watermarks, retrying");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        Err(e) => return Err(e.into()),
                    }
                };
                tpl.add_partition_offset(t.name(), p.id(), Offset::Offset(high))?;
            }
        }
    }
    if tpl.count() > 0 {
        consumer.commit(&tpl, CommitMode::Sync)?;
    }
    Ok(tpl.count())
}
