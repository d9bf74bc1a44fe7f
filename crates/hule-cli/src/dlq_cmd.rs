//! `hule dlq list|show|replay`: inspect dead-letter topics and republish their records.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Subcommand;
use hule_consumer::dlq::{replay_record, DlqFilter};
use hule_contracts::Timestamp;
use hule_kafka::dlq::{dlq_topics, read_topic, DlqMessage};
use hule_kafka::KafkaSettings;
use rdkafka::producer::FutureProducer;

use crate::kafka_args::KafkaArgs;
use crate::out;

const TIMEOUT: Duration = Duration::from_secs(10);

/// DLQ subcommands.
#[derive(Subcommand)]
pub enum DlqCommand {
    /// Counts by source topic and reason, with the oldest and newest failure.
    List {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// One DLQ topic (default: every `*.dlq.v1` topic).
        #[arg(long)]
        topic: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Prints dead letters, decoded.
    Show {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// The DLQ topic.
        #[arg(long)]
        topic: String,
        /// Only the record at this offset.
        #[arg(long, conflicts_with = "event_id")]
        offset: Option<i64>,
        /// Only records of this event id.
        #[arg(long)]
        event_id: Option<String>,
    },
    /// Republishes dead letters to their original topic, key and headers, with `X-Replayed-From`.
    Replay {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// The DLQ topic.
        #[arg(long)]
        topic: String,
        /// Only this reason (`error_type`).
        #[arg(long)]
        reason: Option<String>,
        /// Only this event id.
        #[arg(long)]
        event_id: Option<String>,
        /// Only records that failed at or after this time (ISO 8601).
        #[arg(long)]
        since: Option<String>,
        /// Show what would be replayed; publish nothing.
        #[arg(long)]
        dry_run: bool,
        /// At most this many records per second (0.001 to 1,000,000).
        #[arg(long, value_parser = parse_rate)]
        rate: Option<f64>,
    },
}

#[derive(Default, serde::Serialize)]
struct Group {
    count: u64,
    oldest: Option<Timestamp>,
    newest: Option<Timestamp>,
}

/// Runs a DLQ subcommand.
pub fn run(cmd: &DlqCommand) -> anyhow::Result<()> {
    match cmd {
        DlqCommand::List { kafka, topic, json } => list(&kafka.connect()?, topic.as_deref(), *json),
        DlqCommand::Show {
            kafka,
            topic,
            offset,
            event_id,
        } => show(&kafka.connect()?, topic, *offset, event_id.as_deref()),
        DlqCommand::Replay {
            kafka,
            topic,
            reason,
            event_id,
            since,
            dry_run,
            rate,
        } => {
            let since = since
                .as_deref()
                .map(|s| Timestamp::parse(s).map_err(|e| anyhow::anyhow!("--since: {e}")))
                .transpose()?;
            let filter = DlqFilter {
                reason: reason.clone(),
                event_id: event_id.clone(),
                since,
            };
            replay(&kafka.connect()?, topic, &filter, *dry_run, *rate)
        }
    }
}

/// The bounds of `--rate`, in records per second: slower than one record in 1,000 s is a mistake, and faster than
/// a million a second is no limit.
const RATE_RANGE: std::ops::RangeInclusive<f64> = 0.001..=1_000_000.0;

/// Parses `--rate`: a number of records per second within [`RATE_RANGE`].
fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of records per second"))?;
    if RATE_RANGE.contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "{s} records per second is outside {}..={}",
            RATE_RANGE.start(),
            RATE_RANGE.end()
        ))
    }
}

/// When the `i`th record of a replay at `rate` records per second is due, after the start (saturating: a rate
/// within [`RATE_RANGE`] never overflows a `Duration`, and anything else is clamped rather than a panic).
fn due_after(i: usize, rate: f64) -> Duration {
    Duration::try_from_secs_f64(i as f64 / rate).unwrap_or(Duration::MAX)
}

fn list(kafka: &KafkaSettings, topic: Option<&str>, json: bool) -> anyhow::Result<()> {
    let topics = match topic {
        Some(t) => vec![t.to_owned()],
        None => dlq_topics(kafka, TIMEOUT)?,
    };
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    let mut unreadable = 0;
    for t in &topics {
        read_topic(kafka, t, TIMEOUT, |m| {
            match m.record {
                Ok(r) => {
                    let g = groups
                        .entry((r.original_topic.clone(), r.error_type.clone()))
                        .or_default();
                    g.count += 1;
                    g.oldest = Some(g.oldest.map_or(r.failed_at, |o| o.min(r.failed_at)));
                    g.newest = Some(g.newest.map_or(r.failed_at, |o| o.max(r.failed_at)));
                }
                Err(_) => unreadable += 1,
            }
            true
        })
        .with_context(|| format!("read {t}"))?;
    }
    if json {
        let rows: Vec<serde_json::Value> = groups
            .iter()
            .map(|((t, r), g)| serde_json::json!({"source_topic": t, "reason": r, "count": g.count, "oldest": g.oldest, "newest": g.newest}))
            .collect();
        out(serde_json::to_string_pretty(
            &serde_json::json!({"groups": rows, "unreadable": unreadable}),
        )?);
        return Ok(());
    }
    if groups.is_empty() {
        out(format!("no dead letters in {} topic(s)", topics.len()));
    } else {
        out(format!(
            "{:<56} {:<18} {:>7}  {:<27} {:<27}",
            "source topic", "reason", "count", "oldest", "newest"
        ));
        for ((t, r), g) in &groups {
            let ts = |x: Option<Timestamp>| x.map(|t| t.to_string()).unwrap_or_default();
            out(format!(
                "{t:<56} {r:<18} {:>7}  {:<27} {:<27}",
                g.count,
                ts(g.oldest),
                ts(g.newest)
            ));
        }
    }
    if unreadable > 0 {
        out(format!(
            "{unreadable} record(s) are not dead-letter records"
        ));
    }
    Ok(())
}

fn print_message(m: &DlqMessage) -> anyhow::Result<()> {
    let record = match &m.record {
        Ok(r) => serde_json::to_value(r)?,
        Err(e) => serde_json::json!({"unreadable": e}),
    };
    let headers: serde_json::Map<String, serde_json::Value> = m
        .headers
        .iter()
        .map(|(k, v)| (k.to_owned(), v.into()))
        .collect();
    out(serde_json::to_string_pretty(&serde_json::json!({
        "dlq_topic": m.topic, "partition": m.partition, "offset": m.offset,
        "key": m.key.as_deref().map(String::from_utf8_lossy), "headers": headers, "record": record,
    }))?);
    Ok(())
}

fn show(
    kafka: &KafkaSettings,
    topic: &str,
    offset: Option<i64>,
    event_id: Option<&str>,
) -> anyhow::Result<()> {
    let mut shown = 0;
    let mut error = None;
    read_topic(kafka, topic, TIMEOUT, |m| {
        let wanted = offset.is_none_or(|o| o == m.offset)
            && event_id.is_none_or(|id| {
                m.record
                    .as_ref()
                    .is_ok_and(|r| r.event_id.as_deref() == Some(id))
            });
        if wanted {
            shown += 1;
            if let Err(e) = print_message(&m) {
                error = Some(e);
                return false;
            }
        }
        true
    })?;
    if let Some(e) = error {
        return Err(e);
    }
    if shown == 0 {
        anyhow::bail!("no dead letter in {topic} matches");
    }
    Ok(())
}

fn replay(
    kafka: &KafkaSettings,
    topic: &str,
    filter: &DlqFilter,
    dry_run: bool,
    rate: Option<f64>,
) -> anyhow::Result<()> {
    let mut chosen = Vec::new();
    let mut skipped_unreadable = 0;
    let read = read_topic(kafka, topic, TIMEOUT, |m| {
        match &m.record {
            Ok(r) if filter.matches(r) => chosen.push(m),
            Ok(_) => {}
            Err(_) => skipped_unreadable += 1,
        }
        true
    })?;
    eprintln!(
        "{read} dead letters read from {topic}; {} match",
        chosen.len()
    );
    if skipped_unreadable > 0 {
        eprintln!("{skipped_unreadable} record(s) are not dead-letter records and are skipped");
    }
    let mut plan = Vec::new();
    for m in &chosen {
        let Ok(r) = &m.record else { continue };
        let replay = replay_record(r, &m.headers, &m.topic, m.partition, m.offset)?;
        plan.push((m.offset, r.event_id.clone(), r.error_type.clone(), replay));
    }
    if dry_run {
        for (offset, id, reason, r) in &plan {
            out(format!(
                "would replay offset {offset} ({reason}, event {}) to {}, {} bytes",
                id.as_deref().unwrap_or("-"),
                r.topic,
                r.value.len()
            ));
        }
        out(format!(
            "dry run: {} record(s) would be replayed",
            plan.len()
        ));
        return Ok(());
    }
    // The project's one producer configuration: the replayed record lands on its key's partition.
    let producer: FutureProducer =
        hule_kafka::ProducerConfig::with_settings(kafka).future_producer()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let bar = crate::progress::bar(plan.len() as u64, "replayed");
    runtime.block_on(async {
        for (i, (offset, _, _, r)) in plan.iter_mut().enumerate() {
            if let Some(per_second) = rate {
                // Saturating: a due time past what an Instant holds is as good as never.
                let due = started
                    .checked_add(due_after(i, per_second))
                    .unwrap_or(started + Duration::from_secs(86_400 * 365));
                tokio::time::sleep_until(due.into()).await;
            }
            let to = r.topic.clone();
            hule_kafka::dlq::republish(&producer, r, Duration::from_secs(30))
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "replay of offset {offset} to {to} failed after {i} replayed: {e}"
                    )
                })?;
            bar.inc(1);
        }
        anyhow::Ok(())
    })?;
    bar.finish_and_clear();
    out(format!(
        "replayed {} record(s) from {topic} in {:.1} s",
        plan.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rates_outside_the_range_are_refused_with_the_range() {
        for bad in ["1e-300", "0", "-1", "NaN", "inf", "1e7", "fast"] {
            let err = parse_rate(bad).expect_err(bad);
            assert!(err.contains("records per second"), "{bad}: {err}");
        }
        assert_eq!(parse_rate("2.5"), Ok(2.5));
    }

    proptest! {
        /// Any text gives a rate in range or an error, and any accepted rate gives due times without a panic.
        #[test]
        fn no_rate_panics(s in "\\PC{0,20}", f in proptest::num::f64::ANY, i in 0usize..10_000_000) {
            for text in [s, f.to_string()] {
                if let Ok(rate) = parse_rate(&text) {
                    prop_assert!(RATE_RANGE.contains(&rate));
                    let _ = due_after(i, rate);
                }
            }
        }
    }
}
