//! `hule lag`, `hule tail` and `hule produce` on the real broker.

mod common;
use common::hule;

/// A fresh `topic` with `partitions` on the real broker, its bootstrap address and a producer for it.
async fn real_topic(
    topic: &str,
    partitions: i32,
) -> (
    hule_kafka::testkit::TestKafka,
    String,
    rdkafka::producer::BaseProducer,
) {
    let cluster = hule_kafka::testkit::TestKafka::start(hule_kafka::testkit::Backend::Real, 1);
    cluster
        .create_topics([(topic.to_owned(), partitions)], 1)
        .await
        .expect("topic");
    let brokers = cluster.bootstrap_servers();
    let producer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    (cluster, brokers, producer)
}

/// `hule lag` on the real broker: committed offset, end offset and lag per partition of a group, its total, a group
/// without offsets, and JSON. (The mock cluster answers no group listing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_reports_each_partition_and_the_group_total_on_the_real_broker() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::producer::{BaseRecord, Producer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    let topic = "huleedu.batch.essays.registered.v1";
    let (cluster, brokers, producer) = real_topic(topic, 2).await;
    for p in [0, 0, 0, 0, 1, 1, 1, 1, 1, 1] {
        producer
            .send(BaseRecord::<(), [u8]>::to(topic).partition(p).payload(b"x"))
            .expect("send");
    }
    producer
        .flush(std::time::Duration::from_secs(10))
        .expect("flush");
    // The group has read 1 record of partition 0 and 2 of partition 1: lag 3 + 4.
    let group = cluster.group("lag");
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", &group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(1))
        .expect("p0");
    tpl.add_partition_offset(topic, 1, Offset::Offset(2))
        .expect("p1");
    c.commit(&tpl, CommitMode::Sync).expect("commit");

    let (code, out, err) = hule(
        &["lag", "--brokers", &brokers, "--group", &group, "--json"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let rows = v["partitions"].as_array().expect("partitions");
    assert_eq!(rows.len(), 2, "{v}");
    for (row, (p, committed, end, lag)) in rows.iter().zip([(0, 1, 4, 3), (1, 2, 6, 4)]) {
        assert_eq!(row["topic"], topic);
        assert_eq!(
            (
                row["partition"].as_i64(),
                row["committed"].as_i64(),
                row["end"].as_i64(),
                row["lag"].as_i64()
            ),
            (Some(p), Some(committed), Some(end), Some(lag)),
            "{row}"
        );
    }
    assert_eq!(v["groups"][0]["lag"], 7);

    assert_eq!(v["groups"][0]["state"], "Empty", "{v}");

    let (code, out, err) = hule(&["lag", "--brokers", &brokers, "--group", &group], None);
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&group))
        .expect("the group's line");
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        [group.as_str(), "Empty", "0", "2", "7"],
        "{out}"
    );
    assert!(out.contains("COMMITTED"), "{out}");
    // A group that never committed and has no members does not exist: refused, with the groups there are.
    let none = cluster.group("never-committed");
    let (code, _, err) = hule(&["lag", "--brokers", &brokers, "--group", &none], None);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("no consumer group {none}")) && err.contains(&group),
        "{err}"
    );

    // A member that holds the topic's partitions: its group is Stable, with the member's client id; the group
    // without members is summed up on one line.
    let active = cluster.group("lag-active");
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", &active)
        .set("client.id", "lag-test-member")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("member");
    member.subscribe(&[topic]).expect("subscribe");
    let joined = std::time::Instant::now();
    let mut read = 0;
    while read < 10 {
        assert!(
            joined.elapsed() < std::time::Duration::from_secs(30),
            "the member read {read} of 10"
        );
        if let Some(Ok(_)) = member.poll(std::time::Duration::from_millis(100)) {
            read += 1;
        }
    }
    member
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit");
    let (code, out, err) = hule(&["lag", "--brokers", &brokers, "--json"], None);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let g = v["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["group"] == active.as_str())
        .expect("the active group");
    assert_eq!(g["state"], "Stable", "{g}");
    assert_eq!(g["members"][0]["client_id"], "lag-test-member", "{g}");
    assert_eq!(
        (g["partitions"].as_i64(), g["lag"].as_i64()),
        (Some(2), Some(0)),
        "{g}"
    );
    let (code, out, err) = hule(&["lag", "--brokers", &brokers, "--topic", topic], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().any(|l| l.starts_with(&active)
            && l.contains("Stable")
            && l.contains("lag-test-member")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l
            .trim_start()
            .starts_with(&format!("{group} (Empty, 2 partition(s), lag 7)"))),
        "the idle group on one line: {out}"
    );
    assert!(
        !out.lines()
            .any(|l| l.starts_with(&group) && l.contains(topic)),
        "no partition rows for the idle group without --all: {out}"
    );
    let (code, out, _) = hule(&["lag", "--brokers", &brokers, "--all"], None);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.starts_with(&group) && l.contains(topic)),
        "--all shows the idle group's partitions: {out}"
    );
    // Thresholds for scripts: over is exit 1, naming the group; an unknown topic is refused.
    let (code, _, err) = hule(&["lag", "--brokers", &brokers, "--max-lag", "6"], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("{group} (7)")), "{err}");
    let (code, _, err) = hule(
        &[
            "lag",
            "--brokers",
            &brokers,
            "--topic",
            "huleedu.no.such.v1",
        ],
        None,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no such topic"), "{err}");
}

/// `hule tail` on the real broker: records decoded with their key, position and headers; an undecodable record is
/// shown with its error, not dropped; the event-id filter; the readable form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_decoded_and_undecodable_records_on_the_real_broker() {
    use rdkafka::producer::{BaseRecord, Producer};

    let topic = "huleedu.batch.essays.registered.v1";
    let (_cluster, brokers, producer) = real_topic(topic, 1).await;
    let ids = [uuid::Uuid::from_u128(0x7a11), uuid::Uuid::from_u128(0x7a12)];
    let mut values = Vec::new();
    for id in ids {
        let (code, out, _) = hule(&["envelope", "example", "BATCH_ESSAYS_REGISTERED"], None);
        assert_eq!(code, 0);
        let mut v: serde_json::Value = serde_json::from_str(&out).expect("json");
        v["event_id"] = serde_json::json!(id.to_string());
        values.push(serde_json::to_vec(&v).expect("vec"));
    }
    values.insert(1, b"{\"not\": \"an envelope\"".to_vec());
    // A valid envelope around a payload that is not the event's: the correlation id is still in the JSON.
    let mut half: serde_json::Value = serde_json::from_slice(&values[0]).expect("json");
    half["data"] = serde_json::json!(42);
    half["correlation_id"] = serde_json::json!("00000000-0000-0000-0000-00000000c0de");
    values.push(serde_json::to_vec(&half).expect("vec"));
    for v in &values {
        producer
            .send(BaseRecord::<str, [u8]>::to(topic).key("batch-1").payload(v))
            .expect("send");
    }
    // Bytes that are no JSON at all, found by hule's own header.
    let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
        key: "X-Correlation-Id",
        value: Some("corr-in-header"),
    });
    producer
        .send(
            BaseRecord::<str, [u8]>::to(topic)
                .key("batch-1")
                .payload(b"\xff\xfe not json")
                .headers(headers),
        )
        .expect("send");
    producer
        .flush(std::time::Duration::from_secs(10))
        .expect("flush");

    let args = [
        "tail",
        "--brokers",
        &brokers,
        "BATCH_ESSAYS_REGISTERED",
        "--from-beginning",
    ];
    let (code, out, err) = hule(&[&args[..], &["--count", "3", "--json"]].concat(), None);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0]["envelope"]["event_id"], ids[0].to_string());
    assert_eq!(lines[0]["key"], "batch-1");
    assert_eq!(
        (lines[0]["partition"].as_i64(), lines[0]["offset"].as_i64()),
        (Some(0), Some(0))
    );
    assert!(lines[1]["envelope"].is_null());
    assert!(
        lines[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid JSON")),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2]["envelope"]["event_id"], ids[1].to_string());

    let id = ids[1].to_string();
    let (code, out, _) = hule(
        &[&args[..], &["--count", "1", "--json", "--event-id", &id]].concat(),
        None,
    );
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1);
    assert!(out.contains(&id));

    let (code, out, _) = hule(&[&args[..], &["--count", "2"]].concat(), None);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("{topic}[0]@1 ")) && out.contains("UNDECODABLE"),
        "{out}"
    );

    // Found where they are: a correlation id in the JSON of an envelope whose payload is wrong, and one in
    // `X-Correlation-Id` on bytes that are no JSON (shown as such); the range read to its end, then the command ends.
    let base = ["tail", "--brokers", &brokers, topic, "--until-end"];
    let (code, out, err) = hule(
        &[
            &base[..],
            &[
                "--from",
                "beginning",
                "--json",
                "--correlation-id",
                "00000000-0000-0000-0000-00000000c0de",
            ],
        ]
        .concat(),
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let (code, out, err) = hule(
        &[
            &base[..],
            &[
                "--from",
                "beginning",
                "--json",
                "--correlation-id",
                "corr-in-header",
            ],
        ]
        .concat(),
        None,
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one record");
    assert_eq!(v["offset"], 4);
    assert_eq!(v["raw"]["bytes"], 11, "{v}");
    assert!(
        v["raw"]["base64"].is_string() && v["timestamp"].is_string(),
        "{v}"
    );
    // From an offset, one line per record, to the end.
    let (code, out, err) = hule(&[&base[..], &["--from", "2", "--oneline"]].concat(), None);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with(&format!("{topic}[0]@2 ")) && lines[0].contains(&ids[1].to_string()),
        "{out}"
    );
    assert!(
        lines[2].contains("correlation_id=corr-in-header") && lines[2].contains("UNDECODABLE"),
        "{out}"
    );
}

/// `hule produce` on the real broker: a file with an invalid envelope sends nothing and says which line; valid
/// envelopes go out with the contract key and the standard headers (read back with `hule tail`); `--topic-mode
/// both` from standard input writes the standard and the legacy topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_validates_then_publishes_with_key_and_headers_on_the_real_broker() {
    use rdkafka::consumer::{BaseConsumer, Consumer};

    let event = hule_contracts::Event::BatchSpellcheckInitiateCommand;
    let (topic, legacy) = (event.topic(), event.def().legacy_topic);
    let (cluster, brokers, _producer) = real_topic(topic, 3).await;
    cluster
        .create_topics([(legacy.to_owned(), 1)], 1)
        .await
        .expect("legacy topic");
    let ids = [uuid::Uuid::from_u128(0x9001), uuid::Uuid::from_u128(0x9002)];
    let mut lines = Vec::new();
    for id in ids {
        let (code, out, _) = hule(&["envelope", "example", event.name()], None);
        assert_eq!(code, 0);
        let mut v: serde_json::Value = serde_json::from_str(&out).expect("json");
        v["event_id"] = serde_json::json!(id.to_string());
        lines.push(v.to_string());
    }
    let dir = std::env::temp_dir().join(format!("hule-produce-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let end_of = |t: &str| -> i64 {
        let c: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("consumer");
        let md = c
            .fetch_metadata(Some(t), std::time::Duration::from_secs(10))
            .expect("metadata");
        md.topics()[0]
            .partitions()
            .iter()
            .map(|p| {
                c.fetch_watermarks(t, p.id(), std::time::Duration::from_secs(10))
                    .expect("watermarks")
                    .1
            })
            .sum()
    };

    // One invalid envelope: nothing sent, the line named.
    let bad_file = dir.join("bad.jsonl");
    let mut broken: serde_json::Value = serde_json::from_str(&lines[1]).expect("json");
    broken["data"]
        .as_object_mut()
        .expect("data")
        .remove("entity_id");
    std::fs::write(&bad_file, format!("{}\n{broken}\n", lines[0])).expect("write");
    let (code, _, err) = hule(
        &[
            "produce",
            "--brokers",
            &brokers,
            bad_file.to_str().expect("path"),
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("line 2: ") && err.contains("entity_id") && err.contains("nothing was sent"),
        "{err}"
    );
    assert_eq!(end_of(topic), 0, "nothing may be sent");

    // Valid: both published, each line saying where.
    let good = dir.join("good.jsonl");
    std::fs::write(&good, lines.join("\n")).expect("write");
    let (code, out, err) = hule(
        &[
            "produce",
            "--brokers",
            &brokers,
            good.to_str().expect("path"),
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.lines().all(|l| l.starts_with(&format!("{topic}["))),
        "{out}"
    );
    let (code, out, err) = hule(
        &[
            "tail",
            "--brokers",
            &brokers,
            topic,
            "--from-beginning",
            "--count",
            "2",
            "--json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let mut seen = Vec::new();
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let envelope = &v["envelope"];
        let decoded =
            hule_contracts::decode(Some(topic), envelope.to_string().as_bytes()).expect("decodes");
        let key = hule_contracts::keys::partition_key_of_typed(&decoded.data).expect("key");
        assert_eq!(v["key"], key, "the contract key: {v}");
        assert_eq!(v["headers"]["event_id"], envelope["event_id"], "{v}");
        assert_eq!(v["headers"]["event_type"], envelope["event_type"], "{v}");
        assert!(
            v["headers"][hule_contracts::headers::names::IDEMPOTENCY_KEY]
                .as_str()
                .is_some_and(|k| k.starts_with(topic)),
            "{v}"
        );
        seen.push(envelope["event_id"].as_str().expect("id").to_owned());
    }
    seen.sort();
    assert_eq!(seen, ids.map(|i| i.to_string()));

    // Both topics, from standard input.
    let (code, out, err) = hule(
        &[
            "produce",
            "--brokers",
            &brokers,
            "--topic-mode",
            "both",
            "-",
        ],
        Some(lines[0].as_bytes()),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{legacy}[0]@0")), "{out}");
    assert_eq!((end_of(topic), end_of(legacy)), (3, 1));

    // --json reports each record with its position; --raw sends a deliberately broken record unvalidated.
    let (code, out, err) = hule(
        &["produce", "--brokers", &brokers, "--json", "-"],
        Some(lines[1].as_bytes()),
    );
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(report["count"], 1, "{report}");
    assert_eq!(report["sent"][0]["topic"], topic);
    assert_eq!(report["sent"][0]["offset"], 3, "{report}");
    let (code, out, err) = hule(
        &[
            "produce",
            "--brokers",
            &brokers,
            "--raw",
            "--raw-topic",
            topic,
            "--key",
            "batch-x",
            "-",
        ],
        Some(b"{not an envelope"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("raw (16 bytes, not validated)"), "{out}");
    assert_eq!(end_of(topic), 5);
    let nowhere = format!("huleedu.no.such.{}.v1", uuid::Uuid::new_v4().simple());
    let (code, _, err) = hule(
        &[
            "produce",
            "--brokers",
            &brokers,
            "--raw",
            "--raw-topic",
            &nowhere,
            "-",
        ],
        Some(b"x"),
    );
    assert_ne!(code, 0);
    assert!(err.contains("no such topic"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
