//! One trace from the producing service to the consumer, exported over OTLP and received by an in-process OTLP/HTTP
//! receiver that decodes what it gets (opentelemetry-proto's protobuf types): enqueue (a child of the caller's span)
//! → the relay's publish (its batch linked) → the consumer's receive, layers and handler; a poison record's dead
//! letter in the same trace; its replay a new trace linked to the one it failed in, and the replayed record's
//! consumption a child of the replay. On the mock cluster (the spans do not depend on the broker).
//!
//! One test in this file: it installs the process's global subscriber.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use hule_consumer::{standard_stack, ConsumerMetrics, Context, HandlerError, Router, TopicChoice};
use hule_contracts::payloads::SpellcheckPhaseCompletedV1;
use hule_contracts::Event;
use hule_kafka::consumer::{run_consumer, ConsumerConfig, KafkaDeadLetterSink};
use hule_kafka::testkit::{Backend, TestKafka};
use hule_kafka::{KafkaPublisher, ProducerConfig};
use hule_outbox::relay::{run_relay, RelayConfig};
use hule_outbox::store::OutboxStore;
use hule_outbox::SqliteOutbox;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

/// A received span, ids in hex.
#[derive(Debug, Clone)]
struct Got {
    name: String,
    trace: String,
    id: String,
    parent: String,
    links: Vec<(String, String)>,
    attributes: HashMap<String, String>,
}

type Received = Arc<Mutex<Vec<Got>>>;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An OTLP/HTTP receiver on 127.0.0.1: decodes each `ExportTraceServiceRequest` it is sent.
async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                let request =
                    ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
                let mut sink = sink.lock().expect("lock");
                for rs in request.resource_spans {
                    for ss in rs.scope_spans {
                        for s in ss.spans {
                            sink.push(Got {
                                name: s.name,
                                trace: hex(&s.trace_id),
                                id: hex(&s.span_id),
                                parent: hex(&s.parent_span_id),
                                links: s
                                    .links
                                    .iter()
                                    .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                                    .collect(),
                                attributes: s
                                    .attributes
                                    .iter()
                                    .map(|kv| (kv.key.clone(), format!("{:?}", kv.value)))
                                    .collect(),
                            });
                        }
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}/v1/traces"), got)
}

async fn wait_until(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Consumes until `done` holds, then stops.
async fn consume_until(
    brokers: &str,
    group: &str,
    replayed: Arc<AtomicBool>,
    metrics: &ConsumerMetrics,
    done: impl Fn(&ConsumerMetrics) -> bool,
) {
    let topic = Event::SpellcheckPhaseCompleted.topic();
    let router = Router::new().on(
        TopicChoice::Standard,
        move |_ctx: Context, p: SpellcheckPhaseCompletedV1| {
            let replayed = replayed.clone();
            async move {
                // Event 1 is poison until it has been replayed.
                if p.processing_duration_ms == 1 && !replayed.load(Ordering::SeqCst) {
                    return Err(HandlerError::permanent("event 1 is refused"));
                }
                Ok(())
            }
        },
    );
    let stack = standard_stack(
        router,
        "trace-test",
        None,
        Arc::new(KafkaDeadLetterSink::new(brokers).expect("dlq sink")),
        metrics.clone(),
    )
    .expect("stack");
    let stop_rx = tokio_util::sync::CancellationToken::new();
    let stop_tx = stop_rx.clone();
    let mut cfg = ConsumerConfig::new(brokers, group);
    cfg.commit_interval = Duration::from_millis(50);
    let run = {
        let metrics = metrics.clone();
        let brokers_cfg = cfg.clone();
        tokio::spawn(
            async move { run_consumer(&brokers_cfg, &[topic], stack, metrics, stop_rx).await },
        )
    };
    wait_until("the consumer's outcomes", Duration::from_secs(30), || {
        done(metrics)
    })
    .await;
    stop_tx.cancel();
    run.await.expect("join").expect("consumer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_enqueue_to_handler_and_dead_letter_and_a_linked_replay() {
    let (endpoint, received) = receiver().await;
    let exporter = hule_trace::otlp::to_endpoint(&endpoint, "trace-test").expect("exporter");
    let subscriber = tracing_subscriber::registry().with(
        exporter
            .layer()
            .with_filter(tracing_subscriber::EnvFilter::new("hule=info")),
    );
    tracing::subscriber::set_global_default(subscriber)
        .expect("the only subscriber of this test binary");

    let cluster = TestKafka::start(Backend::Mock, 1);
    let topic = Event::SpellcheckPhaseCompleted.topic();
    let dlq = hule_contracts::naming::dlq_topic(topic);
    cluster
        .create_topics([(topic.to_owned(), 1), (dlq.clone(), 1)], 1)
        .await
        .expect("topics");
    let brokers = cluster.bootstrap_servers();

    // The producing service: two events enqueued inside its own request span.
    let dir = std::env::temp_dir().join(format!("hule-traces-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("outbox.db");
    let outbox = SqliteOutbox::open(&path).expect("outbox");
    {
        let request = tracing::info_span!(target: "hule", "test.request");
        let _entered = request.enter();
        let mut conn = hule_outbox::sqlite::open(&path).expect("conn");
        let tx = conn.transaction().expect("tx");
        let rows = hule_outbox::testkit::numbered_rows(0..2, 2).expect("rows");
        hule_outbox::sqlite::enqueue(&tx, &rows).expect("enqueue");
        tx.commit().expect("commit");
    }

    // The relay publishes both.
    let publisher = KafkaPublisher::new(&ProducerConfig::new(&brokers)).expect("publisher");
    let stop = tokio_util::sync::CancellationToken::new();
    let config = RelayConfig {
        poll_interval: Duration::from_millis(10),
        ..RelayConfig::default()
    };
    let relay = run_relay(&outbox, &publisher, &config, stop.clone());
    let watch = async {
        while outbox.depth().await.expect("depth") > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
    };
    let (stats, ()) = tokio::join!(relay, watch);
    assert_eq!(stats.expect("relay").published, 2);

    // The consumer handles event 0 and dead-letters event 1.
    let group = cluster.group("traces");
    let replayed = Arc::new(AtomicBool::new(false));
    let metrics = ConsumerMetrics::detached();
    consume_until(&brokers, &group, replayed.clone(), &metrics, |m| {
        m.outcomes(topic, "handled") >= 1.0 && m.outcomes(topic, "dead_lettered") >= 1.0
    })
    .await;

    // `hule dlq replay`'s steps: read the dead letter, rebuild the record, produce it inside its replay span.
    let mut letters = Vec::new();
    hule_kafka::dlq::read_topic(
        &hule_kafka::KafkaSettings::new(&brokers),
        &dlq,
        Duration::from_secs(10),
        |m| {
            letters.push(m);
            true
        },
    )
    .expect("read the dead letters");
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    let record = letter.record.as_ref().expect("a dead-letter record");
    let mut replay = hule_consumer::dlq::replay_record(
        record,
        &letter.headers,
        &letter.topic,
        letter.partition,
        letter.offset,
    )
    .expect("replayable");
    let producer = ProducerConfig::new(&brokers)
        .future_producer()
        .expect("producer");
    hule_kafka::dlq::republish(&producer, &mut replay, Duration::from_secs(10))
        .await
        .expect("replayed");
    replayed.store(true, Ordering::SeqCst);
    consume_until(&brokers, &group, replayed.clone(), &metrics, |m| {
        m.outcomes(topic, "handled") >= 2.0
    })
    .await;

    exporter.flush().expect("flush");
    let spans = received.lock().expect("lock").clone();
    let named =
        |name: &str| -> Vec<Got> { spans.iter().filter(|s| s.name == name).cloned().collect() };
    let by_id: HashMap<String, Got> = spans.iter().map(|s| (s.id.clone(), s.clone())).collect();
    let ancestors = |s: &Got| -> Vec<String> {
        let mut out = Vec::new();
        let mut at = s.parent.clone();
        while let Some(p) = by_id.get(&at) {
            out.push(p.name.clone());
            at = p.parent.clone();
        }
        out
    };
    let summary = || {
        spans
            .iter()
            .map(|s| {
                format!(
                    "{} {} {} <- {} {:?}",
                    s.name, s.trace, s.id, s.parent, s.links
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };

    let request = named("test.request");
    assert_eq!(request.len(), 1, "{}", summary());
    let trace = request[0].trace.clone();
    let enqueues = named("outbox.enqueue");
    assert_eq!(enqueues.len(), 2, "{}", summary());
    for e in &enqueues {
        assert_eq!(
            (e.trace.as_str(), e.parent.as_str()),
            (trace.as_str(), request[0].id.as_str()),
            "{}",
            summary()
        );
    }
    let batches = named("outbox.relay_batch");
    // Each enqueue's publish is its child, linked to a relay batch; each publish's receive is the publish's child.
    let publishes = named("outbox.publish");
    let receives = named("consumer.receive");
    for e in &enqueues {
        let p = publishes
            .iter()
            .find(|p| p.parent == e.id)
            .unwrap_or_else(|| panic!("no publish under {e:?}\n{}", summary()));
        assert_eq!(p.trace, trace);
        assert!(
            p.links
                .iter()
                .any(|(_, id)| batches.iter().any(|b| &b.id == id)),
            "publish not linked to its batch\n{}",
            summary()
        );
        let r = receives
            .iter()
            .find(|r| r.parent == p.id)
            .unwrap_or_else(|| panic!("no receive under {p:?}\n{}", summary()));
        assert_eq!(r.trace, trace);
    }
    // The handled record's handler, the refused record's dead letter: in the one trace, under a receive.
    let handles: Vec<Got> = named("consumer.handle")
        .into_iter()
        .filter(|h| h.trace == trace)
        .collect();
    assert_eq!(
        handles.len(),
        2,
        "event 0 handled, event 1 refused\n{}",
        summary()
    );
    for h in &handles {
        let up = ancestors(h);
        assert!(
            up.contains(&"consumer.attempt".to_owned())
                && up.contains(&"consumer.receive".to_owned()),
            "{up:?}"
        );
        assert_eq!(
            up.last().map(String::as_str),
            Some("test.request"),
            "{up:?}"
        );
    }
    let dead = named("consumer.dead_letter");
    assert_eq!(dead.len(), 1, "{}", summary());
    assert_eq!(dead[0].trace, trace);
    assert!(ancestors(&dead[0]).contains(&"consumer.receive".to_owned()));
    for layer in ["consumer.validate", "consumer.attempt"] {
        assert!(
            named(layer).iter().any(|s| s.trace == trace),
            "no {layer}\n{}",
            summary()
        );
    }

    // The replay: a trace of its own, linked to the dead letter's span in the original trace; the replayed record
    // consumed under it.
    let replays = named("dlq.replay");
    assert_eq!(replays.len(), 1, "{}", summary());
    let replay = &replays[0];
    assert_ne!(replay.trace, trace);
    assert_eq!(replay.parent, "", "a root span");
    assert_eq!(
        replay.links,
        vec![(trace.clone(), dead[0].id.clone())],
        "{}",
        summary()
    );
    let again = receives
        .iter()
        .find(|r| r.parent == replay.id)
        .unwrap_or_else(|| panic!("no receive under the replay\n{}", summary()));
    assert_eq!(again.trace, replay.trace);
    assert!(
        again
            .attributes
            .get("outcome")
            .is_some_and(|o| o.contains("handled")),
        "{again:?}"
    );
    assert!(
        named("consumer.handle")
            .iter()
            .any(|h| h.trace == replay.trace),
        "{}",
        summary()
    );
    std::fs::remove_dir_all(&dir).ok();
}
