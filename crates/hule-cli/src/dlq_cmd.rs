//! `hule dlq list|show|replay`: inspect dead-letter topics and republish their records.
//!
//! `list` groups dead letters by failure fingerprint (event, service, reason, the error with ids and numbers
//! normalised: [`hule_consumer::Fingerprint`]) across every DLQ topic, read together by one consumer; with
//! `--correlation-id` it finds one request's dead letters instead. `replay` consults the replay ledger
//! ([`hule_kafka::replay`]): a dead letter is replayed once unless `--again`, a replay that failed part-way resumes
//! where it stopped, and a record dead-lettered by two services is sent once.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Subcommand;
use hule_consumer::dlq::DlqFilter;
use hule_consumer::Fingerprint;
use hule_contracts::Timestamp;
use hule_kafka::dlq::{dlq_topics, read_topics, DlqMessage, From};
use hule_kafka::replay::{self, PlanOptions, Replayer};

use crate::kafka_args::{Kafka, KafkaArgs};
use crate::out;

/// Which dead letters a command acts on.
#[derive(clap::Args, Clone, Default)]
pub struct Select {
    /// One DLQ topic (default: every `*.dlq.v1` topic).
    #[arg(long)]
    pub topic: Option<String>,
    /// Only this reason (`error_type`: invalid_envelope, unknown_event, invalid_payload, oversize,
    /// invalid_headers, key_mismatch, permanent_error, retries_exhausted).
    #[arg(long)]
    pub reason: Option<String>,
    /// Only this event id.
    #[arg(long)]
    pub event_id: Option<String>,
    /// Only this failure fingerprint (the id `dlq list` shows).
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// Only dead letters of this original key.
    #[arg(long)]
    pub key: Option<String>,
    /// Only dead letters written by this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Only records that failed at or after this time (ISO 8601).
    #[arg(long)]
    pub since: Option<String>,
    /// Start at this offset of the DLQ topic's partitions (a seek: earlier records are not read).
    #[arg(long)]
    pub offset: Option<i64>,
}

const REASONS: [&str; 8] = [
    "invalid_envelope",
    "unknown_event",
    "invalid_payload",
    "oversize",
    "invalid_headers",
    "key_mismatch",
    "permanent_error",
    "retries_exhausted",
];

impl Select {
    fn filter(&self) -> anyhow::Result<DlqFilter> {
        if let Some(r) = &self.reason {
            anyhow::ensure!(
                REASONS.contains(&r.as_str()),
                "--reason {r} is not a reason; the reasons are {}",
                REASONS.join(", ")
            );
        }
        let since = self
            .since
            .as_deref()
            .map(|s| Timestamp::parse(s).map_err(|e| anyhow::anyhow!("--since: {e}")))
            .transpose()?;
        Ok(DlqFilter {
            reason: self.reason.clone(),
            event_id: self.event_id.clone(),
            since,
            key: self.key.clone(),
            service: self.service.clone(),
            fingerprint: self.fingerprint.clone(),
        })
    }

    /// The DLQ topics to read: the one named (refused when it is not a DLQ topic of the cluster, with the ones
    /// there are), or all.
    fn topics(&self, kafka: &Kafka) -> anyhow::Result<Vec<String>> {
        let all = dlq_topics(kafka, kafka.timeout)?;
        match &self.topic {
            None => Ok(all),
            Some(t) if all.contains(t) => Ok(vec![t.clone()]),
            Some(t) if !t.ends_with(".dlq.v1") => anyhow::bail!(
                "--topic {t} is not a dead-letter topic (they end in .dlq.v1); did you mean {t}.dlq.v1?"
            ),
            Some(t) => anyhow::bail!(
                "no dead-letter topic {t} on the cluster; there are {}: {}",
                all.len(),
                if all.is_empty() { "none".to_owned() } else { all.join(", ") }
            ),
        }
    }

    /// Every dead letter of the selected topics that passes the filter, in read order.
    fn read(&self, kafka: &Kafka) -> anyhow::Result<Selected> {
        self.read_keeping(kafka, false)
    }

    /// [`Select::read`], keeping every dead letter read in `all` too when `keep_all` (a replay needs the other
    /// dead letters of the records it sends).
    fn read_keeping(&self, kafka: &Kafka, keep_all: bool) -> anyhow::Result<Selected> {
        let filter = self.filter()?;
        let topics = self.topics(kafka)?;
        let from = self.offset.map_or(From::Beginning, From::Offset);
        let spinner = crate::progress::spinner(&format!("reading {} DLQ topic(s)", topics.len()));
        let mut chosen = Vec::new();
        let mut all = Vec::new();
        let mut unreadable = 0;
        let read = read_topics(kafka, &topics, from, kafka.timeout, |m| {
            if keep_all {
                all.push(m.clone());
            }
            match &m.record {
                Ok(r) if filter.matches(r) => chosen.push(m),
                Ok(_) => {}
                Err(_) => unreadable += 1,
            }
            true
        })?;
        spinner.finish_and_clear();
        Ok(Selected {
            topics: topics.len(),
            read,
            chosen,
            all,
            unreadable,
        })
    }
}

struct Selected {
    topics: usize,
    read: u64,
    chosen: Vec<DlqMessage>,
    /// Every dead letter read (only when asked for).
    all: Vec<DlqMessage>,
    unreadable: u64,
}

/// DLQ subcommands.
#[derive(Subcommand)]
pub enum DlqCommand {
    /// Dead letters grouped by failure fingerprint, with counts and first/last failure; or one request's.
    List {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        select: Select,
        /// Instead of groups, every dead letter whose event carries this correlation id (envelope field or
        /// `X-Correlation-Id` header), across every DLQ topic.
        #[arg(long)]
        correlation_id: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Prints dead letters, decoded.
    Show {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        select: Select,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Republishes dead letters to their original topic, key and headers (with `X-Replayed-From` and
    /// `X-Replay-Count`), and records each in the replay ledger: what the ledger has is left out unless `--again`.
    Replay {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        args: ReplayArgs,
    },
}

/// Runs a DLQ subcommand.
pub fn run(cmd: &DlqCommand) -> anyhow::Result<()> {
    match cmd {
        DlqCommand::List {
            kafka,
            select,
            correlation_id,
            json,
        } => {
            let kafka = kafka.connect()?;
            match correlation_id {
                Some(id) => search(&kafka, select, id, *json),
                None => list(&kafka, select, *json),
            }
        }
        DlqCommand::Show {
            kafka,
            select,
            limit,
        } => show(&kafka.connect()?, select, *limit),
        DlqCommand::Replay {
            kafka,
            select,
            args,
        } => {
            anyhow::ensure!(
                select.topic.is_some() || select.fingerprint.is_some() || select.event_id.is_some(),
                "say what to replay: --topic, --fingerprint or --event-id (a replay of every DLQ at once is refused)"
            );
            replay(&kafka.connect()?, select, args)
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

fn list(kafka: &Kafka, select: &Select, json: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let selected = select.read(kafka)?;
    let groups = hule_kafka::dlq::group_by_fingerprint(&selected.chosen);
    if json {
        out(serde_json::to_string_pretty(&serde_json::json!({
            "groups": groups, "dlq_topics": selected.topics, "dead_letters": selected.read,
            "unreadable": selected.unreadable,
        }))?);
        return Ok(());
    }
    if groups.is_empty() {
        out(format!(
            "no dead letters match in {} DLQ topic(s) ({} read)",
            selected.topics, selected.read
        ));
    } else {
        out(format!(
            "{:<12} {:>6}  {:<32} {:<20} {:<17} {:<20} {:<20} error",
            "fingerprint", "count", "event", "service", "reason", "first", "last"
        ));
        for g in &groups {
            let short = |t: Timestamp| t.to_string().chars().take(19).collect::<String>();
            let again = if g.failed_again > 0 {
                format!(" ({} failed again after a replay)", g.failed_again)
            } else {
                String::new()
            };
            out(format!(
                "{:<12} {:>6}  {:<32} {:<20} {:<17} {:<20} {:<20} {}{again}",
                g.fingerprint.id,
                g.count,
                g.fingerprint.event_type,
                g.fingerprint.service,
                g.fingerprint.reason,
                short(g.first_failed),
                short(g.last_failed),
                g.fingerprint.message.chars().take(100).collect::<String>()
            ));
        }
    }
    eprintln!(
        "{} dead letter(s) in {} DLQ topic(s) read in {:.1} s",
        selected.read,
        selected.topics,
        started.elapsed().as_secs_f64()
    );
    if selected.unreadable > 0 {
        out(format!(
            "{} record(s) are not dead-letter records",
            selected.unreadable
        ));
    }
    Ok(())
}

/// The correlation id a dead letter's event carries: the envelope's field, else the header (any case).
fn correlation_of(m: &DlqMessage) -> Option<String> {
    let from_envelope = m
        .record
        .as_ref()
        .ok()
        .and_then(|r| r.original_event.field_str("correlation_id"));
    from_envelope.or_else(|| {
        m.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(hule_contracts::headers::names::CORRELATION_ID))
            .map(|(_, v)| v.to_owned())
    })
}

fn search(kafka: &Kafka, select: &Select, id: &str, json: bool) -> anyhow::Result<()> {
    let selected = select.read(kafka)?;
    let found: Vec<&DlqMessage> = selected
        .chosen
        .iter()
        .filter(|m| correlation_of(m).as_deref() == Some(id))
        .collect();
    if json {
        let rows: Vec<serde_json::Value> = found.iter().map(|m| message_json(m)).collect();
        out(serde_json::to_string_pretty(
            &serde_json::json!({"dead_letters": rows}),
        )?);
    } else {
        for m in &found {
            let (reason, service, error) = match &m.record {
                Ok(r) => (
                    r.error_type.as_str(),
                    r.failed_by_service.as_str(),
                    r.error_message.as_str(),
                ),
                Err(_) => ("-", "-", "not a dead-letter record"),
            };
            out(format!("{}  {reason}  {service}  {error}", m.id()));
        }
        eprintln!(
            "{} dead letter(s) of correlation id {id} in {} DLQ topic(s)",
            found.len(),
            selected.topics
        );
    }
    if found.is_empty() && !json {
        return Err(crate::Problem(format!("no dead letter carries correlation id {id}")).into());
    }
    Ok(())
}

fn message_json(m: &DlqMessage) -> serde_json::Value {
    let record = match &m.record {
        Ok(r) => serde_json::to_value(r).unwrap_or_default(),
        Err(e) => serde_json::json!({"unreadable": e}),
    };
    let fingerprint = m.record.as_ref().ok().map(|r| Fingerprint::of_record(r).id);
    let headers: serde_json::Map<String, serde_json::Value> = m
        .headers
        .iter()
        .map(|(k, v)| (k.to_owned(), v.into()))
        .collect();
    serde_json::json!({
        "dlq_topic": m.topic, "partition": m.partition, "offset": m.offset, "fingerprint": fingerprint,
        "key": m.key.as_deref().map(String::from_utf8_lossy), "headers": headers, "record": record,
    })
}

fn show(kafka: &Kafka, select: &Select, limit: usize) -> anyhow::Result<()> {
    let selected = select.read(kafka)?;
    if selected.chosen.is_empty() {
        return Err(crate::Problem(format!(
            "no dead letter matches in {} DLQ topic(s) ({} read)",
            selected.topics, selected.read
        ))
        .into());
    }
    for m in selected.chosen.iter().take(limit) {
        out(serde_json::to_string_pretty(&message_json(m))?);
    }
    if selected.chosen.len() > limit {
        eprintln!(
            "{} more match; --limit to see more, --offset to start later",
            selected.chosen.len() - limit
        );
    }
    Ok(())
}

/// How `dlq replay` sends.
#[derive(clap::Args, Clone)]
pub struct ReplayArgs {
    /// Replay dead letters the ledger says were replayed already.
    #[arg(long)]
    again: bool,
    /// At most this many records.
    #[arg(long)]
    limit: Option<usize>,
    /// A note kept in the ledger with each replayed dead letter (why, a ticket).
    #[arg(long)]
    note: Option<String>,
    /// Show what would be replayed; publish nothing.
    #[arg(long)]
    dry_run: bool,
    /// At most this many records per second (0.001 to 1,000,000).
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Send JSON records re-serialized compactly (`41.50` becomes `41.5`, `\u00e9` becomes `é`) instead of the
    /// exact bytes the producer sent, which is the default.
    #[arg(long)]
    reencode: bool,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

fn replay(kafka: &Kafka, select: &Select, args: &ReplayArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The replayer first: it fences any other replay, so the ledger read next has all that one committed.
    let replayer = if args.dry_run {
        None
    } else {
        runtime.block_on(replay::ensure_ledger(kafka, kafka.timeout))?;
        Some(runtime.block_on(Replayer::open(kafka, kafka.timeout))?)
    };
    let ledger = replay::read_ledger(kafka, kafka.timeout).context("read the replay ledger")?;
    let selected = select.read_keeping(kafka, true)?;
    let replay_id = uuid::Uuid::new_v4().to_string();
    let mut plan = replay::plan(
        &selected.chosen,
        &selected.all,
        &ledger,
        &PlanOptions {
            again: args.again,
            limit: args.limit,
            replay_id: replay_id.clone(),
            by: replay::operator(),
            note: args.note.clone(),
            now: Timestamp::from_datetime(chrono::Utc::now()),
            reencode: args.reencode,
        },
    );
    let letters: usize = plan.records.iter().map(|p| p.entries.len()).sum();
    if !args.json {
        eprintln!(
            "{} dead letter(s) read from {} DLQ topic(s); {} match: {} record(s) to replay, {} already replayed{}{}",
            selected.read,
            selected.topics,
            selected.chosen.len(),
            plan.records.len(),
            plan.already.len(),
            if plan.already.is_empty() || args.again { "" } else { " (left out; --again replays them)" },
            if plan.over_limit > 0 { format!(", {} over --limit", plan.over_limit) } else { String::new() },
        );
        if let Some(last) = plan.already.iter().max_by_key(|e| e.replayed_at) {
            eprintln!(
                "last replayed {} by {} (replay {}){}",
                last.replayed_at,
                last.by,
                last.replay_id,
                last.note
                    .as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            );
        }
        for (id, why) in &plan.unreplayable {
            eprintln!("cannot replay {id}: {why}");
        }
    }
    let total = plan.records.len();
    let summary = serde_json::json!({
        "replay_id": replay_id, "dry_run": args.dry_run, "matched": selected.chosen.len(),
        "records": total, "dead_letters": letters,
        "already_replayed": plan.already.len(), "over_limit": plan.over_limit,
        "unreplayable": plan.unreplayable.iter().map(|(id, why)| serde_json::json!({"dead_letter": id, "why": why})).collect::<Vec<_>>(),
    });
    let report = |replayed: usize, seconds: f64| {
        let mut r = summary.clone();
        r["replayed"] = replayed.into();
        r["seconds"] = seconds.into();
        r
    };
    let Some(replayer) = replayer else {
        if args.json {
            let mut r = report(0, 0.0);
            r["would_replay"] = plan
                .records
                .iter()
                .map(|p| serde_json::json!({"to_topic": p.replay.topic, "bytes": p.replay.value.len(),
                    "dead_letters": p.entries.iter().map(|e| e.dead_letter.clone()).collect::<Vec<_>>(),
                    "event_id": p.entries[0].event_id}))
                .collect();
            out(serde_json::to_string_pretty(&r)?);
        } else {
            for p in &plan.records {
                let e = &p.entries[0];
                out(format!(
                    "would replay {} ({} dead letter(s), event {}) to {}, {} bytes",
                    e.dead_letter,
                    p.entries.len(),
                    e.event_id.as_deref().unwrap_or("-"),
                    p.replay.topic,
                    p.replay.value.len()
                ));
            }
            out(format!(
                "dry run: {} record(s) would be replayed",
                plan.records.len()
            ));
        }
        return Ok(());
    };
    let started = Instant::now();
    let bar = crate::progress::bar(plan.records.len() as u64, "replayed");
    // Rate-limited replays go one record per transaction; otherwise 100 at a time.
    let batch = if args.rate.is_some() { 1 } else { 100 };
    let mut replayed = 0usize;
    let result = runtime.block_on(async {
        for (n, chunk) in plan.records.chunks_mut(batch).enumerate() {
            if let Some(per_second) = args.rate {
                let due = started
                    .checked_add(due_after(n, per_second))
                    .unwrap_or(started + Duration::from_secs(86_400 * 365));
                tokio::time::sleep_until(due.into()).await;
            }
            replayer.send(chunk).await.map_err(|e| {
                anyhow::anyhow!(
                    "replay stopped after {replayed} of {total} record(s): {e}; what was replayed is in the ledger, \
                     and running the same command again replays the rest"
                )
            })?;
            replayed += chunk.len();
            bar.inc(chunk.len() as u64);
        }
        anyhow::Ok(())
    });
    bar.finish_and_clear();
    result?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        out(serde_json::to_string_pretty(&report(replayed, seconds))?);
    } else {
        out(format!(
            "replayed {replayed} record(s) ({letters} dead letter(s)) in {seconds:.1} s; replay {replay_id}, in the ledger {}",
            replay::LEDGER_TOPIC
        ));
    }
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
