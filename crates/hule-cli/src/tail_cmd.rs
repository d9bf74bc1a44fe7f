//! `hule tail`: follows topics live and prints each record decoded with the registry — key, partition and offset,
//! headers and the envelope — or, for a record that does not decode, the decode error (never dropped).

use std::time::Duration;

use clap::Args;
use hule_contracts::Event;
use hule_kafka::consumer::delivery_of;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka_args::KafkaArgs;
use crate::out;

const TIMEOUT: Duration = Duration::from_secs(10);

/// `hule tail` arguments.
#[derive(Args)]
pub struct TailArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Topics or events (`BATCH_ESSAYS_REGISTERED`, an event value, or a topic name); an event means its standard topic.
    #[arg(required = true)]
    topics: Vec<String>,
    /// Start at the beginning of each partition instead of its end.
    #[arg(long)]
    from_beginning: bool,
    /// Only records with this key.
    #[arg(long)]
    key: Option<String>,
    /// Only records of this event id (envelope or `event_id` header).
    #[arg(long)]
    event_id: Option<String>,
    /// Only records of this correlation id (envelope or `correlation_id` header).
    #[arg(long)]
    correlation_id: Option<String>,
    /// One JSON object per line instead of the readable form.
    #[arg(long)]
    json: bool,
    /// Stop after printing this many records (default: follow until interrupted).
    #[arg(long)]
    count: Option<u64>,
}

/// The topic an argument names.
fn topic_of(arg: &str) -> String {
    match Event::from_name(arg).or_else(|_| Event::from_value(arg)) {
        Ok(event) => event.topic().to_owned(),
        Err(_) => arg.to_owned(),
    }
}

/// Runs `hule tail`.
pub fn run(args: &TailArgs) -> anyhow::Result<()> {
    let kafka = args.kafka.connect()?;
    // Assigned, not subscribed: no group is joined and no offset is committed.
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", "hule-tail")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let start = if args.from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    let mut tpl = TopicPartitionList::new();
    for arg in &args.topics {
        let topic = topic_of(arg);
        let md = consumer.fetch_metadata(Some(&topic), TIMEOUT)?;
        let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
            anyhow::bail!("topic `{topic}` not found");
        };
        if t.partitions().is_empty() {
            anyhow::bail!("topic `{topic}` does not exist on the cluster ({arg})");
        }
        for p in t.partitions() {
            tpl.add_partition_offset(&topic, p.id(), start)?;
        }
    }
    consumer.assign(&tpl)?;
    eprintln!(
        "tail: following {} partition(s) of {}{}",
        tpl.count(),
        args.topics.join(", "),
        if args.count.is_some() {
            ""
        } else {
            " (Ctrl-C stops)"
        }
    );
    let mut printed = 0u64;
    while args.count.is_none_or(|n| printed < n) {
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) if hule_kafka::classify(&e) == hule_contracts::FailureKind::Fatal => {
                return Err(e.into())
            }
            Err(e) => {
                eprintln!("tail: {e}");
                continue;
            }
        };
        let d = delivery_of(&msg);
        let decoded = d
            .payload
            .as_deref()
            .map(|p| hule_contracts::decode(Some(&d.topic), p));
        let key = d.key_text();
        let header = |name: &str| d.headers.get(name).map(str::to_owned);
        let (event_id, correlation_id) = match &decoded {
            Some(Ok(env)) => (
                Some(env.event_id.to_string()),
                Some(env.correlation_id.to_string()),
            ),
            _ => (header("event_id"), header("correlation_id")),
        };
        if args.key.as_ref().is_some_and(|k| key.as_ref() != Some(k))
            || args
                .event_id
                .as_ref()
                .is_some_and(|id| event_id.as_ref() != Some(id))
            || args
                .correlation_id
                .as_ref()
                .is_some_and(|id| correlation_id.as_ref() != Some(id))
        {
            continue;
        }
        let (envelope, error) = match decoded {
            Some(Ok(env)) => (
                env.to_json()
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()),
                None,
            ),
            Some(Err(e)) => (None, Some(e.to_string())),
            None => (
                None,
                Some("the record has no value (a tombstone)".to_owned()),
            ),
        };
        let headers: serde_json::Map<String, serde_json::Value> = d
            .headers
            .iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
            .collect();
        if args.json {
            out(serde_json::json!({
                "topic": d.topic, "partition": d.partition, "offset": d.offset, "key": key,
                "headers": headers, "envelope": envelope, "error": error,
            }));
        } else {
            out(format!(
                "{} key={}",
                d.position(),
                key.as_deref().unwrap_or("(none)")
            ));
            for (k, v) in d.headers.iter() {
                out(format!("  {k}: {v}"));
            }
            match (&envelope, &error) {
                (Some(env), _) => out(serde_json::to_string_pretty(env).unwrap_or_default()),
                (None, Some(e)) => out(format!("  UNDECODABLE: {e}")),
                (None, None) => {}
            }
        }
        printed += 1;
    }
    Ok(())
}
