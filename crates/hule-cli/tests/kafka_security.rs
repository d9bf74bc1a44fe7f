//! Every Kafka command over SASL and TLS listeners: good credentials work, bad ones or an untrusted CA fail fast, and the password is never printed.

use std::process::Command;

mod common;
use common::{hule, unrelated_ca};

/// Kafka with SASL_SSL (SCRAM-SHA-256) and SASL_PLAINTEXT (PLAIN, SCRAM-SHA-512) listeners, a cluster of the test's
/// own (`scripts/kafka.sh start --secure`): topics apply/plan, dlq list and the demo work through `--kafka-config`
/// and `-X`; a wrong password and an untrusted CA each fail within seconds with exit 2 and a one-line error that
/// says which. No output of any of these runs contains the password.
#[test]
fn secure_listeners_work_and_bad_credentials_or_ca_fail_fast_without_leaking_the_password() {
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    // Ports 19092 (broker), 19192 (controller), 19292 (SASL_PLAINTEXT), 19392 (SASL_SSL): below Linux's ephemeral
    // range (32768–60999), where a client socket of another test could hold a port the broker needs (seen in CI).
    let cluster = hule_kafka::testkit::ScriptCluster::start_secure(1, 19092, &password);
    let ssl = cluster.sasl_ssl_bootstrap();
    let plain = cluster.sasl_plaintext_bootstrap();
    let ssl_file = cluster.dir().join("client-sasl-ssl.properties");
    let ssl_file = ssl_file.to_str().expect("path");
    let mut outputs = Vec::new();
    let mut run = |args: &[&str]| {
        let (code, out, err) = hule(args, None);
        outputs.push(format!("{out}\n{err}"));
        (code, out, err)
    };
    let want = ["--partitions", "2", "--replication", "1", "--dlq"];

    let mut apply = vec![
        "topics",
        "apply",
        "--brokers",
        &ssl,
        "--kafka-config",
        ssl_file,
    ];
    apply.extend_from_slice(&want);
    let (code, out, err) = run(&apply);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("created huleedu.batch.essays.registered.v1"),
        "{out}"
    );
    let mut plan = vec![
        "topics",
        "plan",
        "--brokers",
        &ssl,
        "--kafka-config",
        ssl_file,
    ];
    plan.extend_from_slice(&want);
    let (code, out, err) = run(&plan);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("nothing to do"), "{out}");

    // SASL_PLAINTEXT with PLAIN, entirely from -X.
    let pw = format!("sasl.password={password}");
    let x_plain = [
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        "sasl.mechanism=PLAIN",
        "-X",
        "sasl.username=hule",
        "-X",
        &pw,
    ];
    let mut list = vec!["dlq", "list", "--brokers", &plain];
    list.extend_from_slice(&x_plain);
    let (code, out, err) = run(&list);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("no dead letters"), "{out}");

    // The demo end to end over SASL_SSL, with poison in the DLQ.
    let (code, out, err) = run(&[
        "demo",
        "--brokers",
        &ssl,
        "--kafka-config",
        ssl_file,
        "--batches",
        "3",
        "--essays",
        "6",
        "--poison-rate",
        "0.2",
        "--no-progress",
        "--max-time",
        "90",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("all counts reconcile"), "{out}");

    // Wrong password: authentication, fast.
    let started = std::time::Instant::now();
    let (code, _, err) = run(&[
        "dlq",
        "list",
        "--brokers",
        &ssl,
        "--kafka-config",
        ssl_file,
        "-X",
        "sasl.password=not-the-password",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("authentication failed"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "fails fast"
    );
    // A CA that did not sign the brokers' certificate: TLS, fast.
    let other = unrelated_ca(cluster.dir(), "other-ca");
    let ca = format!("ssl.ca.location={}", other.display());
    let started = std::time::Instant::now();
    let (code, _, err) = run(&[
        "topics",
        "plan",
        "--brokers",
        &ssl,
        "--kafka-config",
        ssl_file,
        "-X",
        &ca,
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("TLS handshake failed") && err.contains("certificate verify failed"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "fails fast"
    );
    // A malformed -X does not echo what might be a secret.
    let (code, _, err) = run(&[
        "dlq",
        "list",
        "--brokers",
        &ssl,
        "-X",
        &format!("sasl.password{password}"),
    ]);
    assert_eq!(code, 2, "{err}");

    // --help of every command that takes a URL, with URLs holding the password in the environment.
    for cmd in [
        &["relay", "--help"][..],
        &["outbox", "status", "--help"],
        &["demo", "--help"],
        &["bench", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hule"))
            .args(cmd)
            .env("HULE_DATABASE_URL", format!("postgres://u:{password}@h/db"))
            .env("HULE_REDIS_URL", format!("redis://:{password}@h:6379"))
            .output()
            .expect("help");
        assert!(out.status.success());
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    for o in &outputs {
        assert!(
            !o.contains(&password),
            "the password appeared in output:\n{o}"
        );
    }
}
