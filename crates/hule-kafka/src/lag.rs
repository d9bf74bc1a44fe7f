//! Consumer lag for `hule lag`: for each consumer group, the committed offset, the end offset (high watermark) and
//! the lag of every partition the group has committed in, with the group's state and members as its coordinator
//! describes them. Read-only: it asks for committed offsets under the group's id but never joins the group, so
//! running it never moves a service's partitions. A coordinator still loading its offsets (right after a broker
//! start) is asked again until the timeout instead of failing the command.

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

/// Whether `e` is a coordinator that is not ready yet (loading its offsets right after a broker start, or moving),
/// or a partition without its leader yet: asking again shortly answers.
fn coordinator_not_ready(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::CoordinatorLoadInProgress
                | C::CoordinatorNotAvailable
                | C::NotCoordinator
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
        )
    )
}

/// `op`, asked again every 200 ms while the group coordinator is not ready, until `timeout` has passed.
fn patiently<T>(
    timeout: Duration,
    mut op: impl FnMut() -> Result<T, rdkafka::error::KafkaError>,
) -> Result<T, rdkafka::error::KafkaError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match op() {
            Err(e) if coordinator_not_ready(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    /// The member's `client.id`.
    pub client_id: String,
    /// Where it connects from.
    pub host: String,
}

/// A group as its coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupInfo {
    /// The consumer group.
    pub group: String,
    /// `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Empty` (no members) or `Dead` (no such group).
    pub state: String,
    /// Its members.
    pub members: Vec<Member>,
}

/// The cluster's consumer groups (or only `only`), described, sorted by name; a coordinator that is still loading
/// is asked again until `timeout`.
pub fn describe(
    kafka: &KafkaSettings,
    only: Option<&str>,
    timeout: Duration,
) -> Result<Vec<GroupInfo>, Error> {
    let c = client(kafka, "hule-lag-tool")?;
    let list = patiently(timeout, || c.fetch_group_list(only, timeout))?;
    let mut out: Vec<GroupInfo> = list
        .groups()
        .iter()
        .map(|g| GroupInfo {
            group: g.name().to_owned(),
            state: g.state().to_owned(),
            members: g
                .members()
                .iter()
                .map(|m| Member {
                    client_id: m.client_id().to_owned(),
                    host: m.client_host().trim_start_matches('/').to_owned(),
                })
                .collect(),
        })
        .collect();
    out.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(out)
}

/// The names of the cluster's topics.
pub fn topic_names(kafka: &KafkaSettings, timeout: Duration) -> Result<Vec<String>, Error> {
    let c = client(kafka, "hule-lag-tool")?;
    let md = crate::metadata(c.client(), None, &kafka.brokers, timeout)?;
    Ok(md.topics().iter().map(|t| t.name().to_owned()).collect())
}

/// The cluster's consumer groups, sorted.
pub fn groups(kafka: &KafkaSettings, timeout: Duration) -> Result<Vec<String>, Error> {
    Ok(describe(kafka, None, timeout)?
        .into_iter()
        .map(|g| g.group)
        .collect())
}

/// The lag of every partition `group` has committed in, over every topic of the cluster except Kafka's own, sorted by
/// topic and partition.
pub fn group_lag(
    kafka: &KafkaSettings,
    group: &str,
    timeout: Duration,
) -> Result<Vec<PartitionLag>, Error> {
    lag_of(kafka, &[group.to_owned()], None, timeout)
}

/// The lag of every partition each of `groups` has committed in, over `topics` (default: every topic except
/// Kafka's own), sorted by group, topic and partition. The cluster's metadata is read once and each partition's end
/// offset once, however many groups there are; all of it within twice `timeout`.
pub fn lag_of(
    kafka: &KafkaSettings,
    groups: &[String],
    topics: Option<&[String]>,
    timeout: Duration,
) -> Result<Vec<PartitionLag>, Error> {
    let Some(first) = groups.first() else {
        return Ok(Vec::new());
    };
    let meta_client = client(kafka, first)?;
    // The whole read within twice the timeout, however many groups: each request gets what is left of it.
    let deadline = std::time::Instant::now() + timeout.saturating_mul(2);
    let left = || {
        deadline
            .saturating_duration_since(std::time::Instant::now())
            .min(timeout)
    };
    let md = crate::metadata(meta_client.client(), None, &kafka.brokers, timeout)?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics().iter().filter(|t| match topics {
        Some(only) => only.iter().any(|o| o == t.name()),
        None => !t.name().starts_with("__"),
    }) {
        for p in t.partitions() {
            tpl.add_partition(t.name(), p.id());
        }
    }
    if tpl.count() == 0 {
        return Ok(Vec::new());
    }
    let mut ends: std::collections::HashMap<(String, i32), i64> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for group in groups {
        let c = client(kafka, group)?;
        let committed = patiently(left(), || c.committed_offsets(tpl.clone(), left()))?;
        let mut rows = Vec::new();
        for el in committed.elements() {
            let Offset::Offset(at) = el.offset() else {
                continue;
            };
            let key = (el.topic().to_owned(), el.partition());
            let end = match ends.get(&key) {
                Some(end) => *end,
                None => {
                    let (_, end) = patiently(left(), || {
                        c.fetch_watermarks(el.topic(), el.partition(), left())
                    })?;
                    ends.insert(key, end);
                    end
                }
            };
            rows.push(PartitionLag {
                group: group.clone(),
                topic: el.topic().to_owned(),
                partition: el.partition(),
                committed: at,
                end,
                lag: (end - at).max(0),
            });
        }
        rows.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out.extend(rows);
    }
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
    fn a_loading_coordinator_is_asked_again_and_other_errors_are_not() {
        use rdkafka::error::KafkaError;
        use rdkafka::types::RDKafkaErrorCode as C;
        let mut asked = 0;
        let answer = patiently(Duration::from_secs(5), || {
            asked += 1;
            match asked {
                1 => Err(KafkaError::GroupListFetch(C::CoordinatorLoadInProgress)),
                2 => Err(KafkaError::OffsetFetch(C::NotCoordinator)),
                _ => Ok(asked),
            }
        });
        assert_eq!(answer.expect("answered"), 3);
        let mut asked = 0;
        let answer: Result<(), _> = patiently(Duration::from_secs(5), || {
            asked += 1;
            Err(KafkaError::GroupListFetch(C::GroupAuthorizationFailed))
        });
        assert!(answer.is_err());
        assert_eq!(asked, 1, "a refusal is not retried");
        let started = std::time::Instant::now();
        let answer: Result<(), _> = patiently(Duration::from_millis(500), || {
            Err(KafkaError::GroupListFetch(C::CoordinatorLoadInProgress))
        });
        assert!(
            answer.is_err(),
            "a coordinator that never loads ends at the timeout"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
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
