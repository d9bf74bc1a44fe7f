//! `hule dlq list`, `show` and `replay`, on the mock cluster and the real broker.

mod common;
use common::hule;

/// On the mock cluster and on the real broker (`hule_kafka::testkit`): dead letters listed, shown, replayed to their
/// key's partition, and applied once by a deduplicating consumer when replayed twice.
async fn dlq_list_show_and_replay(backend: hule_kafka::testkit::Backend) {
    use hule_consumer::{DeadLetter, Delivery, Failure};
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers as _, Message as _};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::ClientConfig;

    let source = "huleedu.batch.essays.registered.v1";
    let dlq = format!("{source}.dlq.v1");
    let cluster = hule_kafka::testkit::TestKafka::start(backend, 1);
    cluster
        .create_topics([(source.to_owned(), 2), (dlq.clone(), 1)], 1)
        .await
        .expect("topics");
    let brokers = cluster.bootstrap_servers();
    // `hule dlq replay` on this test's DLQ topic, with `extra` flags.
    let replay = |extra: &[&str]| {
        let base = [
            "dlq",
            "replay",
            "--brokers",
            brokers.as_str(),
            "--topic",
            dlq.as_str(),
        ];
        hule(&[&base[..], extra].concat(), None)
    };
    if cluster.mock().is_some() {
        // The mock cluster has no CreateTopics; `hule dlq replay` creates the ledger topic on a real one.
        cluster
            .create_topics([(hule_kafka::replay::LEDGER_TOPIC.to_owned(), 1)], 1)
            .await
            .expect("ledger topic");
    }

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    let mut ids = Vec::new();
    let mut originals = Vec::new();
    for i in 0..6u128 {
        let id = uuid::Uuid::from_u128(1000 + i);
        ids.push(id);
        let (_, value) = {
            let (code, out, _) = hule(&["envelope", "example", "BATCH_ESSAYS_REGISTERED"], None);
            assert_eq!(code, 0);
            let mut v: serde_json::Value = serde_json::from_str(&out).expect("json");
            v["event_id"] = serde_json::json!(id.to_string());
            v["data"]["entity_id"] = serde_json::json!(format!("batch-{i}"));
            v["correlation_id"] = serde_json::json!(uuid::Uuid::from_u128(7000 + i).to_string());
            let compact = serde_json::to_string(&v).expect("json");
            // Record 4 in the form Python's json.dumps writes (a space after each separator): a replay sends
            // these bytes, not a re-serialization.
            let value = if i == 4 {
                compact.replace("\":", "\": ").replace(",\"", ", \"")
            } else {
                compact
            };
            (code, value.into_bytes())
        };
        originals.push(value.clone());
        let delivery = Delivery {
            topic: source.into(),
            partition: 0,
            offset: i as i64,
            key: Some(format!("batch-{i}").into_bytes()),
            headers: hule_contracts::Headers::from(vec![("event_id".into(), id.to_string())]),
            invalid_headers: Vec::new(),
            payload: Some(value),
        };
        let failure = if i < 4 {
            Failure::Permanent("refused".into())
        } else {
            Failure::Exhausted {
                attempts: 4,
                last: "timeout".into(),
            }
        };
        let mut letters = vec![DeadLetter::build(&delivery, &failure, "svc")];
        if i == 0 {
            // A second service failed on the same record: two dead letters, one record to replay.
            letters.push(DeadLetter::build(&delivery, &failure, "svc2"));
        }
        for letter in letters {
            let headers = hule_kafka::consumer::owned_headers(&letter.headers);
            producer
                .send(
                    BaseRecord::to(&letter.topic)
                        .key(letter.key.as_deref().expect("key"))
                        .payload(&letter.value)
                        .headers(headers),
                )
                .expect("send");
        }
    }
    producer
        .flush(std::time::Duration::from_secs(10))
        .expect("flush");

    let (code, out, err) = hule(&["dlq", "list", "--brokers", &brokers], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("permanent_error") && out.contains("retries_exhausted"),
        "{out}"
    );
    // Grouped by fingerprint: one group per (event, service, reason, error).
    let line = out
        .lines()
        .find(|l| l.contains("permanent_error") && l.contains(" svc "))
        .expect("line");
    assert!(line.split_whitespace().any(|w| w == "4"), "{line}");
    assert!(
        out.lines()
            .any(|l| l.contains("permanent_error") && l.contains(" svc2 ")),
        "{out}"
    );

    // One request's dead letters, across every DLQ topic.
    let wanted = uuid::Uuid::from_u128(7003).to_string();
    let (code, out, err) = hule(
        &[
            "dlq",
            "list",
            "--brokers",
            &brokers,
            "--correlation-id",
            &wanted,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with(&format!("{dlq}:0:")), "{out}");
    let (code, _, err) = hule(
        &[
            "dlq",
            "list",
            "--brokers",
            &brokers,
            "--correlation-id",
            "nobody",
        ],
        None,
    );
    assert_eq!(code, 1, "no match is exit status 1: {err}");

    // The record both services dead-lettered is one record to replay.
    let (code, out, err) = hule(
        &[
            "dlq",
            "replay",
            "--brokers",
            &brokers,
            "--topic",
            &dlq,
            "--event-id",
            &ids[0].to_string(),
            "--dry-run",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(2 dead letter(s)"), "{out}");
    assert!(out.contains("1 record(s) would be replayed"), "{out}");

    // A typo in --reason or --topic is refused with what there is.
    let (code, _, err) = replay(&["--reason", "retries", "--dry-run"]);
    assert_ne!(code, 0);
    assert!(err.contains("retries_exhausted"), "{err}");
    let (code, _, err) = hule(
        &[
            "dlq",
            "replay",
            "--brokers",
            &brokers,
            "--topic",
            source,
            "--dry-run",
        ],
        None,
    );
    assert_ne!(code, 0, "a source topic is not a DLQ");
    assert!(err.contains("not a dead-letter topic"), "{err}");

    let target = ids[2].to_string();
    let (code, out, err) = hule(
        &[
            "dlq",
            "show",
            "--brokers",
            &brokers,
            "--topic",
            &dlq,
            "--event-id",
            &target,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(shown["record"]["event_id"], target.as_str());
    assert_eq!(shown["key"], "batch-2");

    let (code, out, _) = replay(&["--reason", "retries_exhausted", "--dry-run"]);
    assert_eq!(code, 0);
    assert!(out.contains("2 record(s) would be replayed"), "{out}");

    let (code, out, err) = replay(&["--reason", "retries_exhausted", "--rate", "100"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("replayed 2 record(s)"), "{out}");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", cluster.group("verify-replay"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[source]).expect("subscribe");
    let mut got = Vec::new();
    let start = std::time::Instant::now();
    while got.len() < 2 && start.elapsed() < std::time::Duration::from_secs(20) {
        if let Some(Ok(m)) = consumer.poll(std::time::Duration::from_millis(100)) {
            let replayed = m.headers().and_then(|h| {
                h.iter()
                    .find(|h| h.key == "X-Replayed-From")
                    .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
            });
            let v: serde_json::Value =
                serde_json::from_slice(m.payload().expect("value")).expect("envelope");
            let key = m.key().expect("key");
            assert_eq!(
                m.partition() as u32,
                hule_contracts::keys::partition_for(key, 2),
                "a replayed record lands on its key's partition (murmur2, as the relay and Java clients)"
            );
            if key == b"batch-4" {
                assert_eq!(
                    m.payload(),
                    Some(&originals[4][..]),
                    "a replay sends the bytes the producer sent"
                );
            }
            got.push((
                String::from_utf8_lossy(key).into_owned(),
                v["event_id"].as_str().expect("id").to_owned(),
                replayed,
            ));
        }
    }
    got.sort();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, "batch-4");
    assert_eq!(got[0].1, ids[4].to_string());
    assert!(
        got[0]
            .2
            .as_deref()
            .is_some_and(|r| r.starts_with(&format!("{dlq}:0:"))),
        "{:?}",
        got[0]
    );

    // The same replay again sends nothing: the ledger has both.
    let (code, out, err) = replay(&["--reason", "retries_exhausted"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("replayed 0 record(s)"), "{out}");
    assert!(
        err.contains("2 already replayed (left out; --again replays them)"),
        "{err}"
    );
    // On the topic: the two records of the first replay, nothing more.
    let (code, out, err) = hule(
        &[
            "tail",
            "--brokers",
            &brokers,
            source,
            "--from",
            "beginning",
            "--until-end",
            "--oneline",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().count(),
        2,
        "each dead letter replayed once: {out}"
    );
    // Asked explicitly, it replays them again: the same events twice on the topic, applied once by a
    // deduplicating consumer.
    let (code, out, err) = replay(&["--reason", "retries_exhausted", "--again", "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["replayed"], 2, "{report}");
    let applied = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let metrics = hule_consumer::ConsumerMetrics::detached();
    let a = applied.clone();
    let router = hule_consumer::Router::new().on(
        hule_consumer::TopicChoice::Standard,
        move |ctx: hule_consumer::Context, _p: hule_contracts::payloads::BatchEssaysRegistered| {
            let a = a.clone();
            async move {
                a.lock().expect("lock").push(ctx.event_id);
                Ok(())
            }
        },
    );
    let stack = hule_consumer::standard_stack(
        router,
        "replay-test",
        Some(std::sync::Arc::new(hule_consumer::MemoryDedup::new())),
        std::sync::Arc::new(hule_consumer::MemorySink::default()),
        metrics.clone(),
    )
    .expect("stack");
    {
        let stop_rx = tokio_util::sync::CancellationToken::new();
        let stop_tx = stop_rx.clone();
        let cfg =
            hule_kafka::consumer::ConsumerConfig::new(&brokers, &cluster.group("replay-consumer"));
        let m = metrics.clone();
        let driver = tokio::spawn(async move {
            hule_kafka::consumer::run_consumer(&cfg, &[source], stack, m, stop_rx).await
        });
        let start = std::time::Instant::now();
        while metrics.outcomes(source, "handled") + metrics.outcomes(source, "duplicate") < 4.0 {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "replayed records not consumed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        stop_tx.cancel();
        driver.await.expect("join").expect("driver");
    }
    let mut applied = applied.lock().expect("lock").clone();
    applied.sort();
    assert_eq!(
        applied,
        vec![ids[4], ids[5]],
        "each replayed event applied exactly once"
    );
    assert_eq!(metrics.duplicates("memory"), 2.0);

    let (code, _, err) = replay(&["--since", "yesterday"]);
    assert_eq!(code, 2);
    assert!(err.contains("--since"), "{err}");
}

hule_kafka::on_both_backends!(dlq_list_show_and_replay);
