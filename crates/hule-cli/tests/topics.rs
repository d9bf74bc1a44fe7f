//! `hule topics plan` and `apply`: against a described cluster, and on the real broker with a drift to correct.

mod common;
use common::hule;

/// `hule topics apply` on the real broker: a step the cluster refuses exits 1; every registered topic (standard,
/// legacy, dead-letter) is created with its class settings and a second plan finds nothing to do; a config drift and
/// a missing partition are found by `plan` and corrected by `apply`. The mock cluster has no admin API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_apply_creates_corrects_drift_and_fails_loudly_on_the_real_broker() {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    let cluster = hule_kafka::testkit::TestKafka::start(hule_kafka::testkit::Backend::Real, 1);
    let brokers = cluster.bootstrap_servers();
    cluster
        .delete_topics_with_prefix("huleedu.")
        .await
        .expect("clean cluster");
    let want = [
        "--brokers",
        &brokers,
        "--partitions",
        "3",
        "--replication",
        "1",
        "--legacy",
        "--dlq",
    ];
    let with = |cmd: &str, extra: &[&str]| -> Vec<String> {
        let mut v = vec!["topics".to_owned(), cmd.to_owned()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        hule(&refs, None)
    };

    // Replication 3 on a one-broker cluster: refused before anything is done, plan and apply alike, naming the
    // broker count (it used to plan cleanly and then fail once per topic).
    for cmd in ["plan", "apply"] {
        let (code, out, err) = run(with(
            cmd,
            &[
                "--brokers",
                &brokers,
                "--partitions",
                "3",
                "--replication",
                "3",
            ],
        ));
        assert_eq!(code, 2, "{cmd}: {out}\n{err}");
        assert!(
            err.contains("--replication 3 needs 3 brokers; the cluster has 1"),
            "{cmd}: {err}"
        );
        assert!(!out.contains("created"), "{cmd} created topics: {out}");
    }

    let (code, out, err) = run(with("apply", &want));
    assert_eq!(code, 0, "{out}\n{err}");
    let created = out.lines().filter(|l| l.starts_with("created ")).count();
    assert!(
        created > 140,
        "standard, legacy and DLQ topics: {created}\n{out}"
    );
    let (code, out, err) = run(with("plan", &want));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("nothing to do"), "{out}");

    // Drift: a retention changed by hand and a topic with one partition too few.
    let topic = hule_contracts::Event::BatchEssaysRegistered.topic();
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("admin");
    let opts = AdminOptions::new().operation_timeout(Some(std::time::Duration::from_secs(20)));
    let drift = AlterConfig::new(ResourceSpecifier::Topic(topic)).set("retention.ms", "1000");
    for r in admin.alter_configs([&drift], &opts).await.expect("alter") {
        r.expect("altered");
    }
    let dlq_topic = format!("{topic}.dlq.v1");
    admin
        .delete_topics(&[&dlq_topic], &opts)
        .await
        .expect("delete")
        .into_iter()
        .for_each(|r| {
            r.expect("deleted");
        });
    let start = std::time::Instant::now();
    let mut plan_out;
    loop {
        let (code, out, err) = run(with("plan", &want));
        assert_eq!(code, 0, "{err}");
        plan_out = out;
        if plan_out.contains(&format!("+ create {dlq_topic}")) || start.elapsed().as_secs() > 30 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        plan_out.contains(&format!("~ configure {topic}: retention.ms 1000 → ")),
        "{plan_out}"
    );
    assert!(
        plan_out.contains(&format!("+ create {dlq_topic}")),
        "{plan_out}"
    );
    assert!(plan_out.contains("2 change(s)"), "{plan_out}");
    // The drift corrected, reported as one JSON document naming each step.
    let mut as_json = want.to_vec();
    as_json.push("--json");
    let (code, out, err) = run(with("apply", &as_json));
    assert_eq!(code, 0, "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(report["failed"], 0, "{report}");
    assert!(report["warnings"].is_array(), "{report}");
    assert!(
        report["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .any(|s| s["failed"] == false
                && s["line"]
                    .as_str()
                    .is_some_and(|l| l.starts_with(&format!("configured {topic}: retention.ms")))),
        "{report}"
    );
    let start = std::time::Instant::now();
    loop {
        let (code, out, err) = run(with("plan", &want));
        assert_eq!(code, 0, "{err}");
        if out.starts_with("nothing to do") {
            break;
        }
        assert!(start.elapsed().as_secs() < 30, "drift not corrected: {out}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // More partitions on keyed topics move keys: apply refuses without --yes and changes nothing.
    let more: Vec<&str> = want
        .iter()
        .map(|a| if *a == "3" { "4" } else { a })
        .collect();
    let (code, out, err) = run(with("apply", &more));
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains("moves keys to other partitions") && err.contains("--yes"),
        "{err}"
    );
    let (_, plan_out, _) = run(with("plan", &more));
    assert!(
        plan_out.contains("partitions of") && plan_out.contains("3 → 4"),
        "nothing was changed: {plan_out}"
    );
}

#[test]
fn topics_plan_against_a_described_cluster() {
    let dir = std::env::temp_dir().join(format!("hule-topics-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("cluster.json");
    std::fs::write(
        &file,
        r#"{
          "huleedu.assessment.result.published.v1": {"partitions": 3, "replication": 3,
              "configs": {"cleanup.policy": "delete", "retention.ms": "604800000"}},
          "huleedu.batch.spellcheck.phase.completed.v1": {"partitions": 6, "replication": 3,
              "configs": {"cleanup.policy": "delete", "retention.ms": "86400000"}},
          "huleedu.els.essay.slot.assigned.v1": {"partitions": 6, "replication": 3,
              "configs": {"cleanup.policy": "delete", "retention.ms": "86400000"}},
          "huleedu.els.essay.slot.assigned.v1.dlq.v1": {"partitions": 1, "replication": 3,
              "configs": {"cleanup.policy": "compact", "retention.ms": "2592000000"}},
          "not.ours.v1": {"partitions": 1, "replication": 1}
        }"#,
    )
    .expect("write");
    let path = file.to_str().expect("utf-8 path");
    // Dead-letter topics are planned by default (every consumer needs one); --no-dlq leaves them out.
    let (code, without, err) = hule(&["topics", "plan", "--described", path, "--no-dlq"], None);
    assert_eq!(code, 0, "{err}");
    assert!(!without.contains(".dlq.v1"), "{without}");
    let (code, out, err) = hule(&["topics", "plan", "--described", path], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("~ configure huleedu.assessment.result.published.v1: cleanup.policy delete → compact,delete"), "{out}");
    assert!(
        out.contains("~ partitions of huleedu.assessment.result.published.v1: 3 → 6"),
        "{out}"
    );
    assert!(
        out.contains(
            "+ create huleedu.assessment.result.published.v1.dlq.v1 (dead-letter, 1 partitions"
        ),
        "{out}"
    );
    // Every class: a standard topic's retention and a dead-letter topic's cleanup policy are corrected too.
    assert!(
        out.contains(
            "~ configure huleedu.els.essay.slot.assigned.v1: retention.ms 86400000 → 2592000000"
        ),
        "{out}"
    );
    assert!(
        out.contains("~ configure huleedu.els.essay.slot.assigned.v1.dlq.v1: cleanup.policy compact → delete"),
        "{out}"
    );
    assert!(
        !out.contains("+ create huleedu.batch.spellcheck.phase.completed.v1 "),
        "already as wanted: {out}"
    );
    assert!(!out.contains("not.ours"), "{out}");

    let (code, out, _) = hule(
        &["topics", "plan", "--described", path, "--json", "--no-dlq"],
        None,
    );
    assert_eq!(code, 0);
    let changes: serde_json::Value = serde_json::from_str(&out).expect("json");
    let creates = changes
        .as_array()
        .expect("array")
        .iter()
        .filter(|c| c["action"] == "create")
        .count();
    let distinct: std::collections::BTreeSet<&str> =
        hule_contracts::EVENTS.iter().map(|e| e.topic).collect();
    assert_eq!(
        creates,
        distinct.len() - 3,
        "every registry topic but the three described"
    );

    std::fs::write(&file, "{not json").expect("write");
    let (code, _, err) = hule(&["topics", "plan", "--described", path], None);
    assert_eq!(code, 2);
    assert!(err.contains("is not a cluster description"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
