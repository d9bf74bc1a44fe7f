//! Topic provisioning as pure logic: the topics the registry wants (by topic class; legacy and dead-letter topics
//! on request) and the plan that brings a described cluster there. `hule topics plan|apply` reads the cluster and
//! carries the plan out; this module never talks to Kafka.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use hule_contracts::naming::{dlq_topic, kafka_collision_name};
use hule_contracts::registry::{TopicClass, EVENTS};

/// What to provision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicOptions {
    /// Partitions of every event topic.
    pub partitions: i32,
    /// Replication factor.
    pub replication: i32,
    /// Also the legacy topics (during the transition).
    pub legacy: bool,
    /// Also a dead-letter topic per source topic.
    pub dlq: bool,
    /// Partitions of dead-letter topics.
    pub dlq_partitions: i32,
}

impl Default for TopicOptions {
    fn default() -> Self {
        TopicOptions {
            partitions: 6,
            replication: 3,
            legacy: false,
            dlq: false,
            dlq_partitions: 1,
        }
    }
}

/// A topic as wanted or as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicState {
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication: i32,
    /// Topic configuration (only the keys that matter are compared).
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// A cluster description: topic name → state (what `hule topics plan --described FILE` reads).
pub type ClusterDescription = BTreeMap<String, TopicState>;

/// The topics the registry wants, with their class.
pub fn desired(opts: &TopicOptions) -> BTreeMap<String, (TopicClass, TopicState)> {
    let mut out = BTreeMap::new();
    let state = |class: TopicClass, partitions: i32| TopicState {
        partitions,
        replication: opts.replication,
        configs: BTreeMap::from([
            (
                "cleanup.policy".to_owned(),
                class.cleanup_policy().to_owned(),
            ),
            ("retention.ms".to_owned(), class.retention_ms().to_string()),
        ]),
    };
    for def in EVENTS {
        let mut sources = vec![def.topic];
        if opts.legacy && def.has_distinct_legacy_topic() {
            sources.push(def.legacy_topic);
        }
        for t in sources {
            out.entry(t.to_owned())
                .or_insert_with(|| (def.class, state(def.class, opts.partitions)));
            if opts.dlq {
                out.entry(dlq_topic(t)).or_insert_with(|| {
                    (
                        TopicClass::DeadLetter,
                        state(TopicClass::DeadLetter, opts.dlq_partitions),
                    )
                });
            }
        }
    }
    out
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change {
    /// Create a missing topic.
    Create {
        /// Topic.
        topic: String,
        /// Its class.
        class: TopicClass,
        /// Partitions.
        partitions: i32,
        /// Replication factor.
        replication: i32,
        /// Configuration.
        configs: BTreeMap<String, String>,
    },
    /// Set configuration keys that differ.
    AlterConfig {
        /// Topic.
        topic: String,
        /// Key → (found, wanted); found is `None` when unset.
        changes: BTreeMap<String, (Option<String>, String)>,
    },
    /// Add partitions (Kafka cannot remove them).
    AddPartitions {
        /// Topic.
        topic: String,
        /// Found.
        from: i32,
        /// Wanted.
        to: i32,
    },
    /// A difference the plan cannot fix (more partitions than wanted, another replication factor).
    Warning {
        /// Topic.
        topic: String,
        /// What differs.
        message: String,
    },
}

/// The changes that bring `cluster` to what `opts` wants; topics the registry does not know are left alone.
pub fn plan(cluster: &ClusterDescription, opts: &TopicOptions) -> Vec<Change> {
    let mut out = Vec::new();
    let wanted = desired(opts);
    // Standard topics win a collision between two wanted names (a legacy topic and its standard one).
    let standard: std::collections::BTreeSet<String> = EVENTS
        .iter()
        .flat_map(|d| [d.topic.to_owned(), dlq_topic(d.topic)])
        .collect();
    for (topic, (class, want)) in &wanted {
        let (topic, class, want) = (topic.clone(), *class, want.clone());
        let Some(have) = cluster.get(&topic) else {
            let unified = kafka_collision_name(&topic);
            let existing = cluster
                .keys()
                .find(|t| **t != topic && kafka_collision_name(t) == unified);
            let wanted_rival = wanted.keys().find(|t| {
                **t != topic && kafka_collision_name(t) == unified && standard.contains(*t)
            });
            if let Some(other) = existing.or(wanted_rival) {
                let why = if existing.is_some() {
                    "existing topic"
                } else {
                    "standard topic"
                };
                out.push(Change::Warning {
                    topic,
                    message: format!(
                        "cannot be created: Kafka treats it as the same name as the {why} `{other}` ('.' and '_' \
                         collide in topic names); only one of the two can exist on a cluster, so migrate this \
                         event by switching topics, not by publishing to both"
                    ),
                });
                continue;
            }
            out.push(Change::Create {
                topic,
                class,
                partitions: want.partitions,
                replication: want.replication,
                configs: want.configs,
            });
            continue;
        };
        let changes: BTreeMap<String, (Option<String>, String)> = want
            .configs
            .iter()
            .filter(|(k, v)| have.configs.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), (have.configs.get(k).cloned(), v.clone())))
            .collect();
        if !changes.is_empty() {
            out.push(Change::AlterConfig {
                topic: topic.clone(),
                changes,
            });
        }
        if have.partitions < want.partitions {
            out.push(Change::AddPartitions {
                topic: topic.clone(),
                from: have.partitions,
                to: want.partitions,
            });
        } else if have.partitions > want.partitions {
            out.push(Change::Warning {
                topic: topic.clone(),
                message: format!(
                    "has {} partitions, more than the {} wanted; Kafka cannot remove partitions (left as is)",
                    have.partitions, want.partitions
                ),
            });
        }
        if have.replication != want.replication {
            out.push(Change::Warning {
                topic,
                message: format!(
                    "replication factor {} instead of {}; change it with a partition reassignment",
                    have.replication, want.replication
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_kafka_treats_as_one_are_never_both_planned() {
        // Legacy topics wanted on an empty cluster: the standard name wins each collision.
        let opts = TopicOptions {
            legacy: true,
            dlq: true,
            ..TopicOptions::default()
        };
        let changes = plan(&ClusterDescription::new(), &opts);
        let created: Vec<&str> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Create { topic, .. } => Some(topic.as_str()),
                _ => None,
            })
            .collect();
        let unified: std::collections::BTreeSet<String> =
            created.iter().map(|t| kafka_collision_name(t)).collect();
        assert_eq!(
            unified.len(),
            created.len(),
            "no two planned creates collide"
        );
        assert!(created.contains(&"huleedu.cj.assessment.completed.v1"));
        assert!(!created.contains(&"huleedu.cj_assessment.completed.v1"));
        let colliding = EVENTS.iter().filter(|d| d.legacy_topic_collides()).count();
        assert_eq!(colliding, 14);
        let warned = changes
            .iter()
            .filter(|c| matches!(c, Change::Warning { message, .. } if message.contains("collide")))
            .count();
        assert_eq!(
            warned,
            2 * colliding,
            "each colliding legacy topic and its DLQ"
        );
        // A cluster where the Python services already created the legacy name: the standard one is not planned.
        let mut cluster = ClusterDescription::new();
        cluster.insert(
            "huleedu.cj_assessment.completed.v1".into(),
            TopicState {
                partitions: 6,
                replication: 3,
                configs: BTreeMap::new(),
            },
        );
        let changes = plan(&cluster, &TopicOptions::default());
        assert!(changes.iter().any(|c| matches!(c,
            Change::Warning { topic, message } if topic == "huleedu.cj.assessment.completed.v1"
                && message.contains("existing topic `huleedu.cj_assessment.completed.v1`"))));
        assert!(!changes.iter().any(|c| matches!(c,
            Change::Create { topic, .. } if topic == "huleedu.cj.assessment.completed.v1")));
    }

    #[test]
    fn an_empty_cluster_gets_every_topic_with_its_class_settings() {
        let opts = TopicOptions {
            dlq: true,
            ..TopicOptions::default()
        };
        let changes = plan(&ClusterDescription::new(), &opts);
        let creates: Vec<&Change> = changes
            .iter()
            .filter(|c| matches!(c, Change::Create { .. }))
            .collect();
        assert_eq!(creates.len(), changes.len());
        let distinct: std::collections::BTreeSet<&str> = EVENTS.iter().map(|e| e.topic).collect();
        assert_eq!(creates.len(), distinct.len() * 2, "each topic and its DLQ");
        for c in creates {
            if let Change::Create {
                topic,
                class,
                configs,
                partitions,
                ..
            } = c
            {
                assert_eq!(configs["cleanup.policy"], class.cleanup_policy());
                assert_eq!(configs["retention.ms"], class.retention_ms().to_string());
                if topic.ends_with(".dlq.v1") {
                    assert_eq!((*class, *partitions), (TopicClass::DeadLetter, 1));
                } else {
                    assert_eq!(*partitions, 6);
                }
            }
        }
    }

    #[test]
    fn differences_become_config_changes_partition_additions_and_warnings() {
        let opts = TopicOptions::default();
        let want = desired(&opts);
        let mut cluster: ClusterDescription = want
            .iter()
            .map(|(t, (_, s))| (t.clone(), s.clone()))
            .collect();
        assert!(
            plan(&cluster, &opts).is_empty(),
            "a cluster as wanted needs nothing"
        );
        let result_topic = "huleedu.assessment.result.published.v1";
        assert_eq!(want[result_topic].0, TopicClass::Result);
        let t = cluster.get_mut(result_topic).expect("topic");
        t.configs.insert("cleanup.policy".into(), "delete".into());
        t.partitions = 3;
        let phase_topic = "huleedu.batch.spellcheck.phase.completed.v1";
        let p = cluster.get_mut(phase_topic).expect("topic");
        p.partitions = 12;
        p.replication = 1;
        p.configs.remove("retention.ms");
        cluster.insert(
            "someone.else.v1".into(),
            TopicState {
                partitions: 1,
                replication: 1,
                configs: BTreeMap::new(),
            },
        );
        let changes = plan(&cluster, &opts);
        assert!(changes.contains(&Change::AlterConfig {
            topic: result_topic.into(),
            changes: BTreeMap::from([(
                "cleanup.policy".into(),
                (Some("delete".into()), "compact,delete".into())
            )]),
        }));
        assert!(changes.contains(&Change::AddPartitions {
            topic: result_topic.into(),
            from: 3,
            to: 6
        }));
        assert!(changes.contains(&Change::AlterConfig {
            topic: phase_topic.into(),
            changes: BTreeMap::from([("retention.ms".into(), (None, "86400000".into()))]),
        }));
        let warnings = changes
            .iter()
            .filter(|c| matches!(c, Change::Warning { topic, .. } if topic == phase_topic))
            .count();
        assert_eq!(warnings, 2, "{changes:?}");
        assert_eq!(
            changes.len(),
            5,
            "nothing about the unmanaged topic: {changes:?}"
        );
    }

    #[test]
    fn legacy_topics_are_added_on_request() {
        let with = desired(&TopicOptions {
            legacy: true,
            ..TopicOptions::default()
        });
        let without = desired(&TopicOptions::default());
        assert!(with.contains_key("huleedu.els.spellcheck.initiate.command.v1"));
        assert!(!without.contains_key("huleedu.els.spellcheck.initiate.command.v1"));
    }
}
