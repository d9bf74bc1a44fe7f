//! `hule tail`: reads topics live or over a range and prints each record decoded with the registry — key, partition,
//! offset, timestamp, headers and the envelope — or, for a record that does not decode, the decode error and its
//! bytes (never dropped).
//!
//! Searching by event or correlation id looks where an operator expects the id to be: the envelope when it decodes;
//! the JSON fields when only the payload is wrong; and the headers, whatever their case (`X-Correlation-Id` as hule
//! writes it, `correlation_id` as the Python services do).

use std::collections::HashMap;
use std::time::Duration;

use clap::Args;
use hule_consumer::Delivery;
use hule_contracts::Event;
use hule_kafka::consumer::delivery_of;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message as _, Offset, TopicPartitionList};

use crate::kafka_args::KafkaArgs;
use crate::out;

/// How much of an undecodable record's bytes is shown.
const RAW_SHOWN: usize = 2048;

/// `hule tail` arguments.
#[derive(Args)]
pub struct TailArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Topics or events (`BATCH_ESSAYS_REGISTERED`, an event value, or a topic name); an event means its standard topic.
    #[arg(required = true)]
    topics: Vec<String>,
    /// Where to start in each partition: `end` (default: only new records), `beginning`, an offset, or a time
    /// (RFC 3339, e.g. 2026-12-06T03:00:00Z: the first record at or after it).
    #[arg(long, value_parser = parse_from, conflicts_with = "from_beginning")]
    from: Option<From>,
    /// The same as `--from beginning`.
    #[arg(long)]
    from_beginning: bool,
    /// Stop once every partition has been read up to where it ended when the command started.
    #[arg(long)]
    until_end: bool,
    /// Only records with this key.
    #[arg(long)]
    key: Option<String>,
    /// Only records of this event id (envelope, JSON field, or `event_id` header).
    #[arg(long)]
    event_id: Option<String>,
    /// Only records of this correlation id (envelope, JSON field, or a `correlation_id` / `X-Correlation-Id` header).
    #[arg(long)]
    correlation_id: Option<String>,
    /// One JSON object per line instead of the readable form.
    #[arg(long, conflicts_with = "oneline")]
    json: bool,
    /// One line per record: position, time, key, event type, event id, correlation id (or the error).
    #[arg(long)]
    oneline: bool,
    /// Stop after printing this many records (default: follow until interrupted, or `--until-end`).
    #[arg(long)]
    count: Option<u64>,
}

/// Where `--from` starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum From {
    /// The low watermark.
    Beginning,
    /// The high watermark.
    End,
    /// An offset (clamped to the partition's range by the broker's `auto.offset.reset`).
    Offset(i64),
    /// A time in milliseconds since the epoch.
    Time(i64),
}

fn parse_from(s: &str) -> Result<From, String> {
    match s.trim() {
        "beginning" | "earliest" | "start" => Ok(From::Beginning),
        "end" | "latest" => Ok(From::End),
        t => {
            if let Ok(n) = t.parse::<i64>() {
                return if n >= 0 {
                    Ok(From::Offset(n))
                } else {
                    Err(format!("an offset is 0 or more, got {n}"))
                };
            }
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| From::Time(d.timestamp_millis()))
                .map_err(|_| {
                    format!("`{t}` is none of beginning, end, an offset or an RFC 3339 time (2026-12-06T03:00:00Z)")
                })
        }
    }
}

/// The topic an argument names.
fn topic_of(arg: &str) -> String {
    match Event::from_name(arg).or_else(|_| Event::from_value(arg)) {
        Ok(event) => event.topic().to_owned(),
        Err(_) => arg.to_owned(),
    }
}

/// The ids a record carries, wherever they are: the envelope, its JSON fields, its headers (any case).
#[derive(Debug, Default, PartialEq)]
struct Ids {
    event_id: Vec<String>,
    correlation_id: Vec<String>,
    event_type: Option<String>,
}

fn ids_of(
    d: &Delivery,
    decoded: Option<&Result<hule_contracts::DecodedEnvelope, hule_contracts::DecodeError>>,
) -> Ids {
    let mut ids = Ids::default();
    match decoded {
        Some(Ok(env)) => {
            ids.event_id.push(env.event_id.to_string());
            ids.correlation_id.push(env.correlation_id.to_string());
            ids.event_type = Some(env.event_type.clone());
        }
        _ => {
            // A valid envelope around an invalid payload, or a half-right record: its JSON fields still say whose it is.
            if let Some(v) = d
                .payload
                .as_deref()
                .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
            {
                let field = |name: &str| v.get(name).and_then(|x| x.as_str()).map(str::to_owned);
                ids.event_id.extend(field("event_id"));
                ids.correlation_id.extend(field("correlation_id"));
                ids.event_type = field("event_type");
            }
        }
    }
    for (k, v) in d.headers.iter() {
        let k = k.to_ascii_lowercase();
        if k == "event_id" || k == "x-event-id" {
            ids.event_id.push(v.to_owned());
        } else if k == "correlation_id" || k == "x-correlation-id" {
            ids.correlation_id.push(v.to_owned());
        }
    }
    ids
}

/// An undecodable record's bytes for a reader: its text when it is UTF-8, else base64; at most [`RAW_SHOWN`] bytes.
fn raw_of(payload: &[u8]) -> serde_json::Value {
    use base64::Engine as _;
    let shown = &payload[..payload.len().min(RAW_SHOWN)];
    let cut = payload.len() > RAW_SHOWN;
    match std::str::from_utf8(shown) {
        Ok(text) => serde_json::json!({"text": text, "bytes": payload.len(), "truncated": cut}),
        Err(_) => serde_json::json!({
            "base64": base64::engine::general_purpose::STANDARD.encode(shown), "bytes": payload.len(), "truncated": cut,
        }),
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
    let from = match (args.from, args.from_beginning) {
        (Some(f), _) => f,
        (None, true) => From::Beginning,
        (None, false) => From::End,
    };
    let mut tpl = TopicPartitionList::new();
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    for arg in &args.topics {
        let topic = topic_of(arg);
        let md = consumer.fetch_metadata(Some(&topic), kafka.timeout)?;
        let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
            anyhow::bail!("topic `{topic}` not found");
        };
        if t.partitions().is_empty() {
            anyhow::bail!("topic `{topic}` does not exist on the cluster ({arg})");
        }
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(&topic, p.id(), kafka.timeout)?;
            let start = match from {
                From::Beginning => Offset::Offset(low),
                From::End => Offset::Offset(high),
                From::Offset(o) => Offset::Offset(o.clamp(low, high)),
                From::Time(ms) => {
                    let mut q = TopicPartitionList::new();
                    q.add_partition_offset(&topic, p.id(), Offset::Offset(ms))?;
                    let found = consumer.offsets_for_times(q, kafka.timeout)?;
                    match found.find_partition(&topic, p.id()).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) if o >= 0 => Offset::Offset(o),
                        // No record at or after the time: the partition's end.
                        _ => Offset::Offset(high),
                    }
                }
            };
            if let Offset::Offset(s) = start {
                if s < high {
                    ends.insert((topic.clone(), p.id()), high);
                }
            }
            tpl.add_partition_offset(&topic, p.id(), start)?;
        }
    }
    consumer.assign(&tpl)?;
    eprintln!(
        "tail: {} partition(s) of {}{}",
        tpl.count(),
        args.topics.join(", "),
        if args.until_end {
            " up to their current end"
        } else if args.count.is_some() {
            ""
        } else {
            " (Ctrl-C stops)"
        }
    );
    let mut printed = 0u64;
    while args.count.is_none_or(|n| printed < n) {
        if args.until_end && ends.is_empty() {
            break;
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            if args.until_end {
                // Transaction markers are never delivered: a partition whose position reached its end is done
                // although its last offset was not seen.
                if let Ok(position) = consumer.position() {
                    for el in position.elements() {
                        if let Offset::Offset(at) = el.offset() {
                            let part = (el.topic().to_owned(), el.partition());
                            if ends.get(&part).is_some_and(|end| at >= *end) {
                                ends.remove(&part);
                            }
                        }
                    }
                }
            }
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
        let part = (d.topic.clone(), d.partition);
        if ends.get(&part).is_some_and(|end| d.offset + 1 >= *end) {
            ends.remove(&part);
        }
        let timestamp = msg
            .timestamp()
            .to_millis()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        let decoded = d
            .payload
            .as_deref()
            .map(|p| hule_contracts::decode(Some(&d.topic), p));
        let key = d.key_text();
        let ids = ids_of(&d, decoded.as_ref());
        if args.key.as_ref().is_some_and(|k| key.as_ref() != Some(k))
            || args
                .event_id
                .as_ref()
                .is_some_and(|id| !ids.event_id.contains(id))
            || args
                .correlation_id
                .as_ref()
                .is_some_and(|id| !ids.correlation_id.contains(id))
        {
            continue;
        }
        let (envelope, error) = match &decoded {
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
        let raw = match (&envelope, d.payload.as_deref()) {
            (None, Some(p)) => Some(raw_of(p)),
            _ => None,
        };
        let headers: serde_json::Map<String, serde_json::Value> = d
            .headers
            .iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
            .collect();
        if args.json {
            out(serde_json::json!({
                "topic": d.topic, "partition": d.partition, "offset": d.offset, "timestamp": timestamp, "key": key,
                "headers": headers, "envelope": envelope, "error": error, "raw": raw,
            }));
        } else if args.oneline {
            let first = |v: &[String]| v.first().cloned().unwrap_or_else(|| "-".into());
            out(format!(
                "{} {} key={} {} event_id={} correlation_id={}{}",
                d.position(),
                timestamp.as_deref().unwrap_or("-"),
                key.as_deref().unwrap_or("(none)"),
                ids.event_type.as_deref().unwrap_or("-"),
                first(&ids.event_id),
                first(&ids.correlation_id),
                error
                    .as_deref()
                    .map(|e| format!(" UNDECODABLE: {}", e.replace('\n', " ")))
                    .unwrap_or_default()
            ));
        } else {
            out(format!(
                "{} {} key={}",
                d.position(),
                timestamp.as_deref().unwrap_or("-"),
                key.as_deref().unwrap_or("(none)")
            ));
            for (k, v) in d.headers.iter() {
                out(format!("  {k}: {v}"));
            }
            match (&envelope, &error) {
                (Some(env), _) => out(serde_json::to_string_pretty(env).unwrap_or_default()),
                (None, Some(e)) => {
                    out(format!("  UNDECODABLE: {e}"));
                    if let Some(raw) = &raw {
                        out(format!("  bytes: {raw}"));
                    }
                }
                (None, None) => {}
            }
        }
        printed += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(payload: &[u8], headers: &[(&str, &str)]) -> Delivery {
        Delivery {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key: None,
            headers: headers.iter().copied().collect(),
            invalid_headers: Vec::new(),
            payload: Some(payload.to_vec()),
        }
    }

    #[test]
    fn ids_are_found_in_json_fields_and_in_headers_of_any_case() {
        let half_right =
            br#"{"event_id": "e-1", "correlation_id": "c-1", "event_type": "x", "data": 42}"#;
        let d = delivery(half_right, &[("X-Correlation-Id", "c-2")]);
        let ids = ids_of(&d, Some(&hule_contracts::decode(Some("t"), half_right)));
        assert_eq!(ids.event_id, ["e-1"]);
        assert_eq!(ids.correlation_id, ["c-1", "c-2"]);
        let not_json = delivery(
            b"\xff\xfe garbage",
            &[("correlation_id", "c-3"), ("EVENT_ID", "e-3")],
        );
        let ids = ids_of(&not_json, None);
        assert_eq!(
            (ids.event_id, ids.correlation_id),
            (vec!["e-3".to_owned()], vec!["c-3".to_owned()])
        );
    }

    #[test]
    fn from_takes_names_offsets_and_times_and_refuses_the_rest() {
        assert_eq!(parse_from("beginning"), Ok(From::Beginning));
        assert_eq!(parse_from("end"), Ok(From::End));
        assert_eq!(parse_from("42"), Ok(From::Offset(42)));
        assert_eq!(parse_from("1970-01-01T00:00:01Z"), Ok(From::Time(1000)));
        for bad in ["-1", "yesterday", ""] {
            assert!(parse_from(bad).is_err(), "{bad}");
        }
        assert_eq!(raw_of(b"abc")["text"], "abc");
        assert!(raw_of(b"\xff").get("base64").is_some());
    }
}
