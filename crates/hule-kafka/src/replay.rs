//! The replay ledger and the transactional replayer: what `hule dlq replay` and the console use to republish dead
//! letters exactly once unless asked again.
//!
//! **Where the ledger lives.** In Kafka, on the compacted topic [`LEDGER_TOPIC`], one record per dead letter replayed
//! (key: the dead letter's `topic:partition:offset`; value: a [`LedgerEntry`]). Kafka because the ledger must be
//! shared by every operator's `hule` and the console and survive any of them, and the cluster is the one store they
//! all reach with the credentials they already have; compacted so that it keeps the latest entry per dead letter
//! for as long as the cluster lives, bounded by the number of dead letters ever replayed.
//!
//! **Exactly once between a replay and its entry.** A [`Replayer`] is a transactional producer: each batch's
//! replayed records and their ledger entries are committed together or not at all, so a replay that fails part-way
//! leaves a ledger that names exactly what was sent, and running it again sends the rest. Its `transactional.id` is
//! the same for every replayer, so a second replay started anywhere fences the first (whose next commit fails); the
//! ledger is read after the fence, so the second sees everything the first committed.

use std::collections::HashMap;
use std::time::Duration;

use hule_contracts::Timestamp;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde::{Deserialize, Serialize};

use crate::dlq::{scan, From};
use crate::settings::KafkaSettings;
use crate::Error;

/// The compacted topic of the replay ledger.
pub const LEDGER_TOPIC: &str = "hule.dlq.replays.v1";

/// The transactional id every replayer shares (one replay at a time per cluster).
const TRANSACTIONAL_ID: &str = "hule-dlq-replay";

/// One dead letter's latest replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The dead letter, `dlq_topic:partition:offset` (the record's key).
    pub dead_letter: String,
    /// When the dead letter was written (its `failed_at`): with the position, what identifies it, so that an entry
    /// never matches another dead letter at the same position of a topic deleted and created again.
    pub failed_at: Timestamp,
    /// The record that failed, `topic:partition:offset`.
    pub original: String,
    /// Its event id, when it decoded that far.
    #[serde(default)]
    pub event_id: Option<String>,
    /// The failure's fingerprint.
    pub fingerprint: String,
    /// Where it was sent.
    pub to_topic: String,
    /// How many times this dead letter has been replayed, this one included.
    pub replays: u32,
    /// The replay run (one `hule dlq replay`, or one console action) it was part of.
    pub replay_id: String,
    /// When.
    pub replayed_at: Timestamp,
    /// Who: `user@host`, or the console's user.
    pub by: String,
    /// The operator's note, if any.
    #[serde(default)]
    pub note: Option<String>,
}

/// `user@host` of this process, for [`LedgerEntry::by`].
pub fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".into());
    format!("{user}@{host}")
}

/// Creates the ledger topic (compacted, replicated as far as the cluster allows, up to 3) when it is missing.
pub async fn ensure_ledger(kafka: &KafkaSettings, timeout: Duration) -> Result<(), Error> {
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create()?;
    let md = crate::metadata(admin.inner(), None, &kafka.brokers, timeout)?;
    if md.topics().iter().any(|t| t.name() == LEDGER_TOPIC) {
        return Ok(());
    }
    let replication = (md.brokers().len() as i32).clamp(1, 3);
    let topic = NewTopic::new(LEDGER_TOPIC, 1, TopicReplication::Fixed(replication))
        .set("cleanup.policy", "compact")
        .set(
            "min.insync.replicas",
            if replication >= 3 { "2" } else { "1" },
        );
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(timeout)),
        )
        .await?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(Error::TopicCreation {
                    topic,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// The ledger: each replayed dead letter's latest entry, by dead letter id. Empty when the topic does not exist
/// yet. Entries that do not decode are skipped with a warning.
pub fn read_ledger(
    kafka: &KafkaSettings,
    timeout: Duration,
) -> Result<HashMap<String, LedgerEntry>, Error> {
    let mut ledger = HashMap::new();
    scan(
        kafka,
        &[LEDGER_TOPIC.to_owned()],
        From::Beginning,
        timeout,
        |d| {
            match d
                .payload
                .as_deref()
                .map(serde_json::from_slice::<LedgerEntry>)
            {
                Some(Ok(entry)) => {
                    ledger.insert(entry.dead_letter.clone(), entry);
                }
                Some(Err(e)) => {
                    tracing::warn!(at = %d.position(), error = %e, "a replay ledger record does not decode; skipped")
                }
                None => {}
            }
            true
        },
    )?;
    Ok(ledger)
}

/// One record to republish and the ledger entries it settles (one per dead letter of that record: a record
/// dead-lettered by two services is sent once).
#[derive(Debug, Clone)]
pub struct Planned {
    /// The record.
    pub replay: hule_consumer::dlq::Replay,
    /// Its dead letters' new entries.
    pub entries: Vec<LedgerEntry>,
}

/// A transactional producer for replays and their ledger entries.
pub struct Replayer {
    producer: FutureProducer,
    timeout: Duration,
}

impl Replayer {
    /// A replayer, its transactions initialised: any other replayer still running is fenced from here on. Read the
    /// ledger after this, not before.
    pub async fn open(kafka: &KafkaSettings, timeout: Duration) -> Result<Self, Error> {
        let mut config = crate::ProducerConfig::with_settings(kafka);
        config
            .extra
            .push(("transactional.id".into(), TRANSACTIONAL_ID.into()));
        let producer = config.future_producer()?;
        let p = producer.clone();
        tokio::task::spawn_blocking(move || p.init_transactions(timeout))
            .await
            .map_err(|e| Error::Replay(format!("init: {e}")))??;
        Ok(Replayer { producer, timeout })
    }

    /// Sends `batch` and its ledger entries in one transaction; on any failure the transaction is aborted and
    /// nothing of the batch counts as replayed.
    pub async fn send(&self, batch: &mut [Planned]) -> Result<(), Error> {
        self.producer.begin_transaction()?;
        let outcome = self.send_in_transaction(batch).await;
        let p = self.producer.clone();
        let timeout = self.timeout;
        match outcome {
            Ok(()) => {
                let committed = tokio::task::spawn_blocking({
                    let p = p.clone();
                    move || p.commit_transaction(timeout)
                })
                .await
                .map_err(|e| Error::Replay(format!("commit: {e}")))?;
                if let Err(e) = committed {
                    // Left open, the transaction would hold back every read-committed consumer of the topics it
                    // wrote (their last stable offset) until the broker times it out.
                    let _ = tokio::task::spawn_blocking(move || p.abort_transaction(timeout)).await;
                    return Err(e.into());
                }
                Ok(())
            }
            Err(e) => {
                let _ = tokio::task::spawn_blocking(move || p.abort_transaction(timeout)).await;
                Err(e)
            }
        }
    }

    /// Enqueues every record of the batch (in order: a key's records keep it), then awaits their delivery reports.
    async fn send_in_transaction(&self, batch: &mut [Planned]) -> Result<(), Error> {
        use futures::FutureExt;
        use tracing::Instrument;
        let mut pending = Vec::new();
        let mut ledger_values = Vec::new();
        for planned in batch.iter_mut() {
            let span = planned.replay.traced();
            let r = &planned.replay;
            let mut record = FutureRecord::to(&r.topic)
                .payload(&r.value)
                .headers(crate::consumer::owned_headers(&r.headers));
            if let Some(k) = &r.key {
                record = record.key(k);
            }
            let delivery = self
                .producer
                .send_result(record)
                .map_err(|(e, _)| Error::from(e))?;
            pending.push(delivery.instrument(span).boxed());
            for entry in &planned.entries {
                let value = serde_json::to_vec(entry).map_err(|e| Error::Replay(e.to_string()))?;
                ledger_values.push((entry.dead_letter.clone(), value));
            }
        }
        for (key, value) in &ledger_values {
            let delivery = self
                .producer
                .send_result(FutureRecord::to(LEDGER_TOPIC).key(key).payload(value))
                .map_err(|(e, _)| Error::from(e))?;
            pending.push(delivery.boxed());
        }
        for delivery in pending {
            match tokio::time::timeout(self.timeout, delivery).await {
                Ok(Ok(Ok(_))) => {}
                Ok(Ok(Err((e, _)))) => return Err(e.into()),
                Ok(Err(_)) => return Err(Error::Replay("the producer went away".into())),
                Err(_) => {
                    return Err(Error::Replay(format!(
                        "no delivery report within {:?}",
                        self.timeout
                    )))
                }
            }
        }
        Ok(())
    }
}

/// How a replay is planned.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Replay dead letters the ledger says were replayed already.
    pub again: bool,
    /// At most this many records.
    pub limit: Option<usize>,
    /// This run's id.
    pub replay_id: String,
    /// Who replays.
    pub by: String,
    /// The operator's note.
    pub note: Option<String>,
    /// Now.
    pub now: Timestamp,
    /// Send a JSON record re-serialized compactly instead of the bytes its dead letter holds.
    pub reencode: bool,
}

/// What a replay will do.
#[derive(Debug, Default)]
pub struct Plan {
    /// The records to send, in the order their dead letters were read (a key's failures keep their order).
    pub records: Vec<Planned>,
    /// Dead letters left out because the ledger has them (each one's latest entry).
    pub already: Vec<LedgerEntry>,
    /// Dead letters that cannot be replayed, and why (`dlq_topic:partition:offset`, reason).
    pub unreplayable: Vec<(String, String)>,
    /// Records left out by the limit.
    pub over_limit: usize,
}

/// The replay of `letters` (already filtered) against `ledger`: one record per original record (a record
/// dead-lettered by two services is sent once; its topic's every group receives it anyway), none for a record whose
/// dead letters the ledger names unless `again`, with `X-Replay-Count` one more than the record carried. Pure.
pub fn plan(
    letters: &[crate::dlq::DlqMessage],
    all: &[crate::dlq::DlqMessage],
    ledger: &HashMap<String, LedgerEntry>,
    opts: &PlanOptions,
) -> Plan {
    use hule_contracts::headers::names;
    let mut out = Plan::default();
    let original_of = |m: &crate::dlq::DlqMessage| {
        m.record.as_ref().ok().map(|r| {
            format!(
                "{}:{}:{}",
                r.original_topic, r.original_partition, r.original_offset
            )
        })
    };
    // The records chosen, in the order their first dead letter was read.
    let mut order: Vec<String> = Vec::new();
    for m in letters {
        match original_of(m) {
            Some(original) if !order.contains(&original) => order.push(original),
            Some(_) => {}
            None => out
                .unreplayable
                .push((m.id(), "not a dead-letter record".into())),
        }
    }
    // Every dead letter of those records, chosen or not (another service's letter of the same record, in another
    // failure group): the record is sent once for all of them, and a ledger entry of any of them counts.
    let wanted: std::collections::HashSet<&String> = order.iter().collect();
    let mut by_original: HashMap<String, Vec<&crate::dlq::DlqMessage>> = HashMap::new();
    for m in all.iter().chain(letters) {
        if let Some(original) = original_of(m).filter(|o| wanted.contains(o)) {
            let group = by_original.entry(original).or_default();
            if !group.iter().any(|g| g.id() == m.id()) {
                group.push(m);
            }
        }
    }
    for original in order {
        let group = &by_original[&original];
        let entry_of = |m: &crate::dlq::DlqMessage| {
            let failed_at = m.record.as_ref().ok()?.failed_at;
            ledger.get(&m.id()).filter(|e| e.failed_at == failed_at)
        };
        let known: Vec<&LedgerEntry> = group.iter().filter_map(|m| entry_of(m)).collect();
        if !known.is_empty() && !opts.again {
            out.already.extend(known.into_iter().cloned());
            continue;
        }
        if opts.limit.is_some_and(|l| out.records.len() >= l) {
            out.over_limit += 1;
            continue;
        }
        let first = group[0];
        let Ok(record) = &first.record else { continue };
        let mut replay = match hule_consumer::dlq::replay_record(
            record,
            &first.headers,
            &first.topic,
            first.partition,
            first.offset,
        ) {
            Ok(r) => r,
            Err(e) => {
                out.unreplayable.push((first.id(), e.to_string()));
                continue;
            }
        };
        let carried = group
            .iter()
            .filter_map(|m| {
                m.headers
                    .get(names::REPLAY_COUNT)?
                    .trim()
                    .parse::<u32>()
                    .ok()
            })
            .max()
            .unwrap_or(0);
        replay
            .headers
            .set(names::REPLAY_COUNT, (carried + 1).to_string());
        if opts.reencode && record.original_event_encoding == "json" {
            match serde_json::to_vec(&record.original_event.value()) {
                Ok(compact) => replay.value = compact,
                Err(e) => {
                    out.unreplayable.push((first.id(), e.to_string()));
                    continue;
                }
            }
        }
        let fingerprint = hule_consumer::Fingerprint::of_record(record).id;
        let entries = group
            .iter()
            .map(|m| LedgerEntry {
                dead_letter: m.id(),
                failed_at: m.record.as_ref().map_or(record.failed_at, |r| r.failed_at),
                original: original.clone(),
                event_id: record.event_id.clone(),
                fingerprint: fingerprint.clone(),
                to_topic: replay.topic.clone(),
                replays: entry_of(m).map_or(1, |e| e.replays + 1),
                replay_id: opts.replay_id.clone(),
                replayed_at: opts.now,
                by: opts.by.clone(),
                note: opts.note.clone(),
            })
            .collect();
        out.records.push(Planned { replay, entries });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::DlqMessage;
    use hule_consumer::{DeadLetter, Delivery, Failure};

    /// The dead letter of source record `offset`, failed in `service`, read at DLQ offset `at`.
    fn letter(offset: i64, service: &str, at: i64, replay_count: Option<&str>) -> DlqMessage {
        let mut headers =
            hule_contracts::Headers::from(vec![("event_id".into(), format!("e{offset}"))]);
        if let Some(n) = replay_count {
            headers.set(hule_contracts::headers::names::REPLAY_COUNT, n);
        }
        let delivery = Delivery {
            topic: "src".into(),
            partition: 0,
            offset,
            key: Some(format!("k{}", offset % 2).into_bytes()),
            headers,
            invalid_headers: Vec::new(),
            payload: Some(br#"{"event_type":"X","event_id":"e"}"#.to_vec()),
        };
        let dl = DeadLetter::build(
            &delivery,
            &Failure::Permanent(format!("refused {offset}")),
            service,
        );
        DlqMessage {
            topic: "src.dlq.v1".into(),
            partition: 0,
            offset: at,
            key: dl.key.clone(),
            headers: dl.headers.clone(),
            record: Ok(dl.record),
        }
    }

    fn opts(again: bool, limit: Option<usize>) -> PlanOptions {
        PlanOptions {
            again,
            limit,
            replay_id: "r1".into(),
            by: "op@host".into(),
            note: None,
            now: Timestamp::from_datetime(chrono::Utc::now()),
            reencode: false,
        }
    }

    #[test]
    fn a_record_dead_lettered_by_two_services_is_sent_once_and_settles_both() {
        let letters = [
            letter(5, "a", 0, None),
            letter(6, "a", 1, None),
            letter(5, "b", 2, None),
        ];
        let p = plan(&letters, &letters, &HashMap::new(), &opts(false, None));
        assert_eq!(p.records.len(), 2);
        let ids: Vec<_> = p.records[0]
            .entries
            .iter()
            .map(|e| e.dead_letter.as_str())
            .collect();
        assert_eq!(ids, ["src.dlq.v1:0:0", "src.dlq.v1:0:2"]);
        assert_eq!(p.records[0].replay.headers.get("X-Replay-Count"), Some("1"));
        assert!(p
            .records
            .iter()
            .all(|r| r.entries.iter().all(|e| e.replays == 1)));
    }

    #[test]
    fn what_the_ledger_has_is_left_out_unless_again_and_the_count_goes_up() {
        let letters = [letter(5, "a", 0, None), letter(6, "a", 1, Some("2"))];
        let first = plan(&letters, &letters, &HashMap::new(), &opts(false, None));
        let ledger: HashMap<String, LedgerEntry> = first
            .records
            .iter()
            .flat_map(|r| r.entries.clone())
            .filter(|e| e.dead_letter.ends_with(":0"))
            .map(|e| (e.dead_letter.clone(), e))
            .collect();
        let second = plan(&letters, &letters, &ledger, &opts(false, None));
        assert_eq!(second.records.len(), 1, "only what was not replayed yet");
        assert_eq!(second.already.len(), 1);
        assert_eq!(second.already[0].dead_letter, "src.dlq.v1:0:0");
        // A record that failed again after its second replay goes out as its third.
        assert_eq!(
            second.records[0].replay.headers.get("X-Replay-Count"),
            Some("3")
        );
        let again = plan(&letters, &letters, &ledger, &opts(true, None));
        assert_eq!(again.records.len(), 2);
        assert_eq!(again.records[0].entries[0].replays, 2);
    }

    #[test]
    fn an_entry_of_another_dead_letter_at_the_same_position_does_not_count() {
        let letters = [letter(5, "a", 0, None)];
        let mut ledger = HashMap::new();
        let mut stale = plan(&letters, &letters, &HashMap::new(), &opts(false, None)).records[0]
            .entries[0]
            .clone();
        stale.failed_at = Timestamp::parse("2020-01-01T00:00:00Z").expect("time");
        ledger.insert(stale.dead_letter.clone(), stale);
        let p = plan(&letters, &letters, &ledger, &opts(false, None));
        assert_eq!(
            (p.records.len(), p.already.len()),
            (1, 0),
            "a topic made again starts at offset 0 again"
        );
        assert_eq!(p.records[0].entries[0].replays, 1);
    }

    #[test]
    fn another_services_letter_of_a_record_is_settled_with_it_and_counts_as_replayed() {
        // Chosen by service `a` only; `b` dead-lettered the same record (offset 5).
        let all = [
            letter(5, "a", 0, None),
            letter(5, "b", 1, None),
            letter(6, "b", 2, None),
        ];
        let chosen = [all[0].clone()];
        let first = plan(&chosen, &all, &HashMap::new(), &opts(false, None));
        assert_eq!(first.records.len(), 1);
        let settled: Vec<_> = first.records[0]
            .entries
            .iter()
            .map(|e| e.dead_letter.clone())
            .collect();
        assert_eq!(settled, ["src.dlq.v1:0:0", "src.dlq.v1:0:1"]);
        // Replaying `b`'s letters later leaves that record out: it went to the topic, and every group got it.
        let ledger: HashMap<String, LedgerEntry> = first.records[0]
            .entries
            .iter()
            .map(|e| (e.dead_letter.clone(), e.clone()))
            .collect();
        let of_b = [all[1].clone(), all[2].clone()];
        let second = plan(&of_b, &all, &ledger, &opts(false, None));
        assert_eq!(second.records.len(), 1, "only offset 6");
        assert_eq!(second.records[0].entries[0].original, "src:0:6");
    }

    #[test]
    fn the_limit_counts_records_and_reports_the_rest() {
        let letters = [
            letter(1, "a", 0, None),
            letter(2, "a", 1, None),
            letter(3, "a", 2, None),
        ];
        let p = plan(&letters, &letters, &HashMap::new(), &opts(false, Some(2)));
        assert_eq!((p.records.len(), p.over_limit), (2, 1));
    }
}
