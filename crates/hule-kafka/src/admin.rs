//! Reading a cluster's topics and carrying out a `hule_tooling::topics` plan through the Kafka admin API.
//! librdkafka's mock cluster has no admin API: this needs a real cluster (the plan itself is tested as pure logic).

use std::collections::BTreeMap;
use std::time::Duration;

use hule_tooling::topics::{Change, ClusterDescription, TopicState};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;

use crate::settings::KafkaSettings;
use crate::Error;

fn admin(kafka: &KafkaSettings) -> Result<AdminClient<DefaultClientContext>, Error> {
    Ok(kafka.client_config().create()?)
}

/// How many brokers the cluster has (from its metadata).
pub fn broker_count(kafka: &KafkaSettings, timeout: Duration) -> Result<i32, Error> {
    let admin = admin(kafka)?;
    let md = crate::metadata(admin.inner(), None, &kafka.brokers, timeout)?;
    Ok(md.brokers().len() as i32)
}

/// Deletes consumer groups (a finished run's); returns each group with the reason it was not deleted, if it was
/// not (`NonEmptyGroup` while members remain, `GroupIdNotFound`, an authorisation error).
pub async fn delete_groups(
    kafka: &KafkaSettings,
    groups: &[String],
    timeout: Duration,
) -> Result<Vec<(String, Option<String>)>, Error> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let admin = admin(kafka)?;
    let names: Vec<&str> = groups.iter().map(String::as_str).collect();
    let results = admin
        .delete_groups(&names, &AdminOptions::new().request_timeout(Some(timeout)))
        .await?;
    Ok(results
        .into_iter()
        .map(|r| match r {
            Ok(group) => (group, None),
            Err((group, code)) => (group, Some(format!("{code:?}"))),
        })
        .collect())
}

/// Describes the cluster's topics: partitions, replication and the non-default configuration of `wanted` topics.
pub async fn describe(
    kafka: &KafkaSettings,
    wanted: &[String],
    timeout: Duration,
) -> Result<ClusterDescription, Error> {
    let admin = admin(kafka)?;
    let md = crate::metadata(admin.inner(), None, &kafka.brokers, timeout)?;
    let mut out = ClusterDescription::new();
    for t in md.topics() {
        let partitions = t.partitions().len() as i32;
        let replication = t
            .partitions()
            .first()
            .map(|p| p.replicas().len() as i32)
            .unwrap_or(0);
        out.insert(
            t.name().to_owned(),
            TopicState {
                partitions,
                replication,
                configs: BTreeMap::new(),
            },
        );
    }
    let present: Vec<&String> = wanted.iter().filter(|t| out.contains_key(*t)).collect();
    let specs: Vec<ResourceSpecifier<'_>> = present
        .iter()
        .map(|t| ResourceSpecifier::Topic(t))
        .collect();
    if !specs.is_empty() {
        let opts = AdminOptions::new().request_timeout(Some(timeout));
        for res in admin
            .describe_configs(&specs, &opts)
            .await?
            .into_iter()
            .flatten()
        {
            let rdkafka::admin::OwnedResourceSpecifier::Topic(name) = &res.specifier else {
                continue;
            };
            if let Some(state) = out.get_mut(name) {
                for e in &res.entries {
                    if let Some(v) = &e.value {
                        state.configs.insert(e.name.clone(), v.clone());
                    }
                }
            }
        }
    }
    Ok(out)
}

/// One step of [`apply`]: what was done or what failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    /// One line for the operator.
    pub line: String,
    /// The cluster refused the step.
    pub failed: bool,
}

impl Step {
    fn ok(line: String) -> Self {
        Step {
            line,
            failed: false,
        }
    }
    fn failed(line: String) -> Self {
        Step { line, failed: true }
    }
}

/// Carries out `changes`; returns one step per change (a refused step does not stop the others). Config changes resend the topic's other non-default,
/// writable settings with the new values, because the AlterConfigs request replaces a topic's whole configuration.
pub async fn apply(
    kafka: &KafkaSettings,
    changes: &[Change],
    timeout: Duration,
) -> Result<Vec<Step>, Error> {
    let admin = admin(kafka)?;
    let opts = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    let mut done = Vec::new();
    for change in changes {
        match change {
            Change::Create {
                topic,
                partitions,
                replication,
                configs,
                ..
            } => {
                let mut nt =
                    NewTopic::new(topic, *partitions, TopicReplication::Fixed(*replication));
                for (k, v) in configs {
                    nt = nt.set(k, v);
                }
                for r in admin.create_topics([&nt], &opts).await? {
                    match r {
                        Ok(t) => done.push(Step::ok(format!("created {t}"))),
                        Err((t, code)) => {
                            done.push(Step::failed(format!("create {t} failed: {code}")))
                        }
                    }
                }
            }
            Change::AlterConfig { topic, changes } => {
                let spec = ResourceSpecifier::Topic(topic);
                let current = admin.describe_configs([&spec], &opts).await?;
                let mut settings: BTreeMap<String, String> = BTreeMap::new();
                for res in current.into_iter().flatten() {
                    for e in res.entries {
                        if !e.is_default && !e.is_read_only && !e.is_sensitive {
                            if let Some(v) = e.value {
                                settings.insert(e.name, v);
                            }
                        }
                    }
                }
                for (k, (_, v)) in changes {
                    settings.insert(k.clone(), v.clone());
                }
                let mut ac = AlterConfig::new(ResourceSpecifier::Topic(topic));
                for (k, v) in &settings {
                    ac = ac.set(k, v);
                }
                for r in admin.alter_configs([&ac], &opts).await? {
                    match r {
                        Ok(_) => done.push(Step::ok(format!(
                            "configured {topic}: {}",
                            changes.keys().cloned().collect::<Vec<_>>().join(", ")
                        ))),
                        Err((_, code)) => {
                            done.push(Step::failed(format!("configure {topic} failed: {code}")))
                        }
                    }
                }
            }
            Change::AddPartitions { topic, to, .. } => {
                let np = NewPartitions::new(topic, *to as usize);
                for r in admin.create_partitions([&np], &opts).await? {
                    match r {
                        Ok(t) => done.push(Step::ok(format!("{t} now has {to} partitions"))),
                        Err((t, code)) => done.push(Step::failed(format!(
                            "add partitions to {t} failed: {code}"
                        ))),
                    }
                }
            }
            Change::Warning { topic, message } => {
                done.push(Step::ok(format!("left as is: {topic} {message}")))
            }
        }
    }
    Ok(done)
}

/// Creates those of `topics` (name, partitions) the cluster does not have, with replication
/// `min(replication, brokers)`, and waits until every one of them has a leader for each partition; returns the
/// names it created. Consumers subscribed to a topic that does not exist yet would only see it at their next
/// metadata refresh (minutes), so a tool that is about to consume makes sure first.
pub async fn ensure_topics(
    kafka: &KafkaSettings,
    topics: &[(String, i32)],
    replication: i32,
    timeout: Duration,
) -> Result<Vec<String>, Error> {
    let admin = admin(kafka)?;
    let md = crate::metadata(admin.inner(), None, &kafka.brokers, timeout)?;
    let brokers = md.brokers().len().max(1) as i32;
    let existing: std::collections::HashSet<&str> = md.topics().iter().map(|t| t.name()).collect();
    let missing: Vec<NewTopic<'_>> = topics
        .iter()
        .filter(|(t, _)| !existing.contains(t.as_str()))
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(replication.min(brokers))))
        .collect();
    let mut created = Vec::new();
    if !missing.is_empty() {
        let opts = AdminOptions::new()
            .request_timeout(Some(timeout))
            .operation_timeout(Some(timeout));
        for r in admin.create_topics(&missing, &opts).await? {
            match r {
                Ok(t) => created.push(t),
                // Created meanwhile by someone else (or auto-created): fine.
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(Error::TopicCreation {
                        topic,
                        reason: code.to_string(),
                    })
                }
            }
        }
    }
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let md = crate::metadata(admin.inner(), None, &kafka.brokers, timeout)?;
        let ready = topics.iter().all(|(name, _)| {
            md.topics().iter().any(|t| {
                t.name() == name
                    && t.error().is_none()
                    && !t.partitions().is_empty()
                    && t.partitions().iter().all(|p| p.leader() >= 0)
            })
        });
        if ready {
            return Ok(created);
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::TopicCreation {
                topic: topics
                    .iter()
                    .map(|(t, _)| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                reason: format!("not every partition had a leader within {timeout:?}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
