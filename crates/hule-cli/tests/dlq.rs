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

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    let mut ids = Vec::new();
    for i in 0..6u128 {
        let id = uuid::Uuid::from_u128(1000 + i);
        ids.push(id);
        let (_, value) = {
            let (code, out, _) = hule(&["envelope", "example", "BATCH_ESSAYS_REGISTERED"], None);
            assert_eq!(code, 0);
            let mut v: serde_json::Value = serde_json::from_str(&out).expect("json");
            v["event_id"] = serde_json::json!(id.to_string());
            v["data"]["entity_id"] = serde_json::json!(format!("batch-{i}"));
            (code, serde_json::to_vec(&v).expect("vec"))
        };
        let delivery = Delivery {
            topic: source.into(),
            partition: 0,
            offset: i as i64,
            key: Some(format!("batch-{i}").into_bytes()),
            headers: hule_contracts::Headers(vec![("event_id".into(), id.to_string())]),
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
        let letter = DeadLetter::build(&delivery, &failure, "svc");
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
    producer
        .flush(std::time::Duration::from_secs(10))
        .expect("flush");

    let (code, out, err) = hule(&["dlq", "list", "--brokers", &brokers], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("permanent_error") && out.contains("retries_exhausted"),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.contains("permanent_error"))
        .expect("line");
    assert!(line.split_whitespace().any(|w| w == "4"), "{line}");

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

    let (code, out, _) = hule(
        &[
            "dlq",
            "replay",
            "--brokers",
            &brokers,
            "--topic",
            &dlq,
            "--reason",
            "retries_exhausted",
            "--dry-run",
        ],
        None,
    );
    assert_eq!(code, 0);
    assert!(out.contains("2 record(s) would be replayed"), "{out}");

    let (code, out, err) = hule(
        &[
            "dlq",
            "replay",
            "--brokers",
            &brokers,
            "--topic",
            &dlq,
            "--reason",
            "retries_exhausted",
            "--rate",
            "100",
        ],
        None,
    );
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

    // Replaying the same dead letters again puts the same events on the topic twice; a deduplicating consumer
    // applies each once.
    let (code, _, err) = hule(
        &[
            "dlq",
            "replay",
            "--brokers",
            &brokers,
            "--topic",
            &dlq,
            "--reason",
            "retries_exhausted",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
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

    let (code, _, err) = hule(
        &[
            "dlq",
            "replay",
            "--brokers",
            &brokers,
            "--topic",
            &dlq,
            "--since",
            "yesterday",
        ],
        None,
    );
    assert_eq!(code, 2);
    assert!(err.contains("--since"), "{err}");
}

hule_kafka::on_both_backends!(dlq_list_show_and_replay);
