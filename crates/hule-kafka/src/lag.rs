//! Consumer lag for `hule lag`: for each consumer group, the committed offset, the end offset (high watermark) and
//! the lag of every partition the group has committed in. Read-only: it asks for committed offsets under the
//! group's id but never joins the group, so running it never moves a service's partitions.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::settings::KafkaSettings;
use crate::Error;

/// One partition of one group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionLag {
    /// The consumer group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset (the next record it will read).
    pub committed: i64,
    /// The partition's end offset (high watermark).
    pub end: i64,
    /// `end - committed`, never negative.
    pub lag: i64,
}

/// A group's totals.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupLag {
    /// The consumer group.
    pub group: String,
    /// Partitions with a committed offset.
    pub partitions: usize,
    /// The sum of their lags.
    pub lag: i64,
}

/// Sums `rows` per group, in the order groups first appear.
pub fn totals(rows: &[PartitionLag]) -> Vec<GroupLag> {
    let mut out: Vec<GroupLag> = Vec::new();
    for r in rows {
        match out.iter_mut().find(|g| g.group == r.group) {
            Some(g) => {
                g.partitions += 1;
                g.lag += r.lag;
            }
            None => out.push(GroupLag {
                group: r.group.clone(),
                partitions: 1,
                lag: r.lag,
            }),
        }
    }
    out
}

fn client(kafka: &KafkaSettings, group: &str) -> Result<BaseConsumer, Error> {
    Ok(kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?)
}

/// The cluster's consumer groups, sorted.
pub fn groups(kafka: &KafkaSettings, timeout: Duration) -> Result<Vec<String>, Error> {
    let c = client(kafka, "hule-lag-tool")?;
    let list = c.fetch_group_list(None, timeout)?;
    let mut out: Vec<String> = list.groups().iter().map(|g| g.name().to_owned()).collect();
    out.sort();
    Ok(out)
}

/// The lag of every partition `group` has committed in, over every topic of the cluster except Kafka's own, sorted by
/// topic and partition.
pub fn group_lag(
    kafka: &KafkaSettings,
    group: &str,
    timeout: Duration,
) -> Result<Vec<PartitionLag>, Error> {
    let c = client(kafka, group)?;
    let md = crate::metadata(c.client(), None, &kafka.brokers, timeout)?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics().iter().filter(|t| !t.name().starts_with("__")) {
        for p in t.partitions() {
            tpl.add_partition(t.name(), p.id());
        }
    }
    if tpl.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = c.committed_offsets(tpl, timeout)?;
    let mut out = Vec::new();
    for el in committed.elements() {
        let Offset::Offset(at) = el.offset() else {
            continue;
        };
        let (_, end) = c.fetch_watermarks(el.topic(), el.partition(), timeout)?;
        out.push(PartitionLag {
            group: group.to_owned(),
            topic: el.topic().to_owned(),
            partition: el.partition(),
            committed: at,
            end,
            lag: (end - at).max(0),
        });
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(group: &str, partition: i32, lag: i64) -> PartitionLag {
        PartitionLag {
            group: group.into(),
            topic: "t".into(),
            partition,
            committed: 10,
            end: 10 + lag,
            lag,
        }
    }

    #[test]
    fn totals_sum_per_group_in_first_seen_order() {
        let rows = [row("b", 0, 3), row("a", 0, 1), row("b", 1, 4)];
        assert_eq!(
            totals(&rows),
            vec![
                GroupLag {
                    group: "b".into(),
                    partitions: 2,
                    lag: 7
                },
                GroupLag {
                    group: "a".into(),
                    partitions: 1,
                    lag: 1
                },
            ]
        );
    }
}
