//! `hule produce`: validates envelopes from a file or standard input and publishes them as the relay would — the
//! contract's partition key, the standard headers, the topic mode — for testing a service by hand. Every envelope
//! is checked before anything is sent: one bad envelope sends nothing.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use hule_contracts::Headers;
use hule_kafka::consumer::owned_headers;
use hule_outbox::prepare::{prepare_decoded, EnqueueOptions, NewRow, TopicMode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

use crate::kafka_args::KafkaArgs;
use crate::out;

/// Which topics an event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The event's standard topic.
    Standard,
    /// Its legacy topic.
    Legacy,
    /// Both (the same event id on each), as during the legacy → standard transition.
    Both,
}

/// `hule produce` arguments.
#[derive(Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Envelopes: one JSON object per line (JSON Lines), or one JSON array, or one object; `-` or nothing reads
    /// standard input.
    file: Option<PathBuf>,
    /// Which topics each event is published to.
    #[arg(long, value_enum, default_value = "standard")]
    topic_mode: Mode,
    /// A key for every record instead of each event's contract key (recorded as `metadata.partition_key`).
    #[arg(long)]
    key: Option<String>,
    /// Validate and show what would be sent; send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Send the input's bytes as one record to `--raw-topic`, unvalidated (with `--key`, if given): a deliberately
    /// broken record to test a consumer's dead-letter path.
    #[arg(long, requires = "raw_topic")]
    raw: bool,
    /// The topic of a `--raw` record.
    #[arg(long, requires = "raw")]
    raw_topic: Option<String>,
    /// One JSON document on stdout: {"sent": [{topic, partition, offset, key, event_id}], "count"} (with --dry-run,
    /// {"would_send": [{topic, key, event_id, bytes}], "count"}).
    #[arg(long)]
    json: bool,
}

/// The envelopes of `text` with where each is (`line 3`, `element 2`): a JSON array, one object, or JSON Lines.
fn split(text: &str) -> Vec<(String, String)> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        if let Ok(items) = serde_json::from_str::<Vec<serde_json::Value>>(text) {
            return items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("element {}", i + 1), v.to_string()))
                .collect();
        }
    }
    // A single object spread over several lines (a pretty-printed envelope).
    if trimmed.starts_with('{')
        && serde_json::from_str::<serde_json::Value>(text).is_ok()
        && text.trim().lines().count() > 1
    {
        return vec![("the document".to_owned(), text.to_owned())];
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (format!("line {}", i + 1), l.to_owned()))
        .collect()
}

/// The rows of every envelope, or every problem found (where, and what).
pub fn validate(text: &str, opts: &EnqueueOptions) -> Result<Vec<NewRow>, Vec<String>> {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (at, item) in split(text) {
        let decoded = match hule_contracts::decode(None, item.as_bytes()) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{at}: {e}"));
                continue;
            }
        };
        match prepare_decoded(&decoded, opts) {
            Ok(r) => rows.extend(r),
            Err(e) => problems.push(format!("{at}: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

/// Runs `hule produce`.
pub fn run(args: &ProduceArgs) -> anyhow::Result<()> {
    let bytes = match args.file.as_deref() {
        None => read_stdin()?,
        Some(p) if p.as_os_str() == "-" => read_stdin()?,
        Some(p) => std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
    };
    if args.raw {
        // Any bytes, binary poison included.
        return send_raw(args, bytes);
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "the input is not UTF-8 text (byte {}); envelopes are JSON — `--raw` sends bytes as they are",
            e.utf8_error().valid_up_to()
        )
    })?;
    let opts = EnqueueOptions {
        mode: match args.topic_mode {
            Mode::Standard => TopicMode::Standard,
            Mode::Legacy => TopicMode::Legacy,
            Mode::Both => TopicMode::Both,
        },
        key_override: args.key.clone(),
        ..EnqueueOptions::default()
    };
    let rows = match validate(&text, &opts) {
        Ok(rows) if rows.is_empty() => anyhow::bail!("no envelopes in the input"),
        Ok(rows) => rows,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            anyhow::bail!("{} invalid envelope(s); nothing was sent", problems.len());
        }
    };
    if args.dry_run && args.json {
        let would: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| serde_json::json!({"topic": r.topic, "key": r.event_key, "event_id": r.event_id, "bytes": r.event_data.len()}))
            .collect();
        out(serde_json::json!({"would_send": would, "count": rows.len()}));
        return Ok(());
    }
    if args.dry_run {
        for r in &rows {
            out(format!(
                "would send {} key={} event_id={} ({} bytes)",
                r.topic,
                r.event_key,
                r.event_id,
                r.event_data.len()
            ));
        }
        out(format!(
            "dry run: {} record(s) valid, nothing sent",
            rows.len()
        ));
        return Ok(());
    }
    let kafka = args.kafka.connect()?;
    // The project's one producer configuration (idempotent, acks=all, the Java client's partitioner).
    let producer: FutureProducer =
        hule_kafka::ProducerConfig::with_settings(&kafka).future_producer()?;
    refuse_missing_topics(&producer, &kafka.brokers, kafka.timeout, &rows)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut sent = Vec::new();
    runtime.block_on(async {
        for (i, r) in rows.iter().enumerate() {
            let headers = Headers::from_json(&r.headers).context("headers of a prepared row")?;
            let record = FutureRecord::to(&r.topic)
                .key(&r.event_key)
                .payload(&r.event_data)
                .headers(owned_headers(&headers));
            let delivered = producer
                .send(record, kafka.timeout.max(Duration::from_secs(30)))
                .await
                .map_err(|(e, _)| {
                    anyhow::anyhow!(
                        "record {} of {} to {} failed after {i} sent: {e}",
                        i + 1,
                        rows.len(),
                        r.topic
                    )
                })?;
            if args.json {
                sent.push(serde_json::json!({
                    "topic": r.topic, "partition": delivered.partition, "offset": delivered.offset,
                    "key": r.event_key, "event_id": r.event_id,
                }));
            } else {
                out(format!(
                    "{}[{}]@{} key={} event_id={}",
                    r.topic, delivered.partition, delivered.offset, r.event_key, r.event_id
                ));
            }
        }
        anyhow::Ok(())
    })?;
    if args.json {
        out(serde_json::json!({"sent": sent, "count": rows.len()}));
    } else {
        eprintln!("sent {} record(s)", rows.len());
    }
    Ok(())
}

/// `--raw`: the bytes as one record, unvalidated, to a topic that must exist.
fn send_raw(args: &ProduceArgs, value: Vec<u8>) -> anyhow::Result<()> {
    let topic = args.raw_topic.clone().unwrap_or_default();
    if args.dry_run {
        if args.json {
            out(
                serde_json::json!({"would_send": [{"topic": topic, "key": args.key, "bytes": value.len()}], "count": 1}),
            );
        } else {
            out(format!("would send {} raw byte(s) to {topic}", value.len()));
        }
        return Ok(());
    }
    let kafka = args.kafka.connect()?;
    let producer: FutureProducer =
        hule_kafka::ProducerConfig::with_settings(&kafka).future_producer()?;
    let known = producer
        .client()
        .fetch_metadata(None, kafka.timeout)
        .map(|md| md.topics().iter().any(|t| t.name() == topic))
        .map_err(|e| anyhow::anyhow!("cannot read the topics of {}: {e}", kafka.brokers))?;
    anyhow::ensure!(known, "--raw-topic {topic}: no such topic on the cluster");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut record = FutureRecord::<str, [u8]>::to(&topic).payload(&value);
    if let Some(k) = &args.key {
        record = record.key(k.as_str());
    }
    let (partition, offset) = runtime
        .block_on(producer.send(record, kafka.timeout.max(Duration::from_secs(30))))
        .map(|d| (d.partition, d.offset))
        .map_err(|(e, _)| anyhow::anyhow!("the raw record to {topic} failed: {e}"))?;
    if args.json {
        out(
            serde_json::json!({"sent": [{"topic": topic, "partition": partition, "offset": offset, "key": args.key, "bytes": value.len()}], "count": 1}),
        );
    } else {
        out(format!(
            "{topic}[{partition}]@{offset} raw ({} bytes, not validated)",
            value.len()
        ));
    }
    Ok(())
}

/// Refuses at once, before anything is sent, when a target topic is not on the cluster (the producer would wait
/// `message.timeout.ms` and then fail each record): names each missing topic, and says so when it is a legacy
/// topic Kafka cannot hold beside its standard one.
fn refuse_missing_topics(
    producer: &FutureProducer,
    brokers: &str,
    timeout: Duration,
    rows: &[hule_outbox::prepare::NewRow],
) -> anyhow::Result<()> {
    let md = producer
        .client()
        .fetch_metadata(None, timeout)
        .map_err(|e| anyhow::anyhow!("cannot read the topics of {brokers}: {e}"))?;
    let existing: std::collections::HashSet<&str> = md.topics().iter().map(|t| t.name()).collect();
    let mut missing: Vec<String> = Vec::new();
    let mut reported: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for topic in rows.iter().map(|r| r.topic.as_str()) {
        if existing.contains(topic) || !reported.insert(topic) {
            continue;
        }
        let collides = hule_contracts::EVENTS
            .iter()
            .find(|d| d.legacy_topic == topic && d.legacy_topic_collides());
        missing.push(match collides {
            Some(d) => format!(
                "{topic} (the legacy topic of {}: Kafka treats it as the same name as its standard topic {}, so a \
                 cluster holds only one of them; use --topic-mode standard)",
                d.name, d.topic
            ),
            None => format!("{topic} (`hule topics apply` creates the registry's topics)"),
        });
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "not on the cluster, so nothing was sent:\n  {}",
            missing.join("\n  ")
        );
    }
    Ok(())
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .context("cannot read standard input")?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> serde_json::Value {
        let env = hule_contracts::examples::example_envelope(
            hule_contracts::Event::BatchEssaysRegistered,
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
            hule_contracts::Timestamp::from_datetime(chrono::Utc::now()),
        )
        .expect("example");
        serde_json::from_slice(&env.to_json().expect("json")).expect("value")
    }

    #[test]
    fn lines_arrays_and_one_document_are_read_and_problems_say_where() {
        let one = example().to_string();
        let lines = format!("{one}\n\n{one}\n");
        assert_eq!(
            validate(&lines, &EnqueueOptions::default())
                .expect("valid")
                .len(),
            2
        );
        let array = format!("[{one}, {one}, {one}]");
        assert_eq!(
            validate(&array, &EnqueueOptions::default())
                .expect("valid")
                .len(),
            3
        );
        let pretty = serde_json::to_string_pretty(&example()).expect("pretty");
        assert_eq!(
            validate(&pretty, &EnqueueOptions::default())
                .expect("valid")
                .len(),
            1
        );

        let mut bad = example();
        bad["data"]
            .as_object_mut()
            .expect("data")
            .remove("entity_id");
        let text = format!("{one}\n{bad}\nnot json\n");
        let problems = validate(&text, &EnqueueOptions::default()).expect_err("invalid");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("line 2: ") && problems[0].contains("entity_id"),
            "{problems:?}"
        );
        assert!(problems[1].starts_with("line 3: "), "{problems:?}");
    }
}
