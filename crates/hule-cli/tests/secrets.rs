//! No secret reaches the terminal: a misspelled URL scheme, a password in a URL's query or the keyword form, a
//! misspelled Kafka property (as `-X` and in a `--kafka-config` file) each fail with a message that names the
//! problem and never the secret.

mod common;
use common::hule;

const SECRET: &str = "hunter2-s3cret";

fn assert_hidden(what: &str, code: i32, out: &str, err: &str) {
    assert_ne!(code, 0, "{what}: should fail\n{err}");
    assert!(
        !out.contains(SECRET) && !err.contains(SECRET),
        "{what}: the secret was shown:\n{out}\n{err}"
    );
    assert!(
        !err.contains("ter2"),
        "{what}: part of the secret was shown:\n{err}"
    );
}

#[test]
fn database_urls_never_echo_their_password() {
    for url in [
        format!("postgress://relay:{SECRET}@127.0.0.1:1/app"),
        format!("mysql://relay:{SECRET}@db/app"),
        format!("postgres://127.0.0.1:1/app?user=relay&password={SECRET}"),
        format!("host=127.0.0.1 port=1 user=relay password={SECRET}"),
        format!("postgres://relay:{SECRET}@127.0.0.1:1/app?sslmode=bogus"),
    ] {
        for cmd in [
            &["outbox", "status"][..],
            &["outbox", "retry", "--all-parked"][..],
        ] {
            let mut args: Vec<&str> = cmd.to_vec();
            args.extend(["--database-url", &url]);
            let (code, out, err) = hule(&args, None);
            assert_hidden(&format!("{cmd:?} {url}"), code, &out, &err);
        }
    }
}

/// `outbox status --service NAME=URL`: a forgotten name before a password holding `=`, a bad scheme, an unreachable
/// server — none shows the password or a piece of it.
#[test]
fn service_arguments_never_echo_their_password() {
    let with_eq = "hunter2=s3cret";
    for arg in [
        format!("postgres://relay:{with_eq}@127.0.0.1:1/app"),
        format!("grading=postgress://relay:{SECRET}@127.0.0.1:1/app"),
        format!("grading=postgres://relay:{SECRET}@127.0.0.1:1/app"),
        format!("grading=postgres://relay:{SECRET}@127.0.0.1:1/app?sslmode=bogus"),
    ] {
        let (code, out, err) = hule(&["outbox", "status", "--service", &arg], None);
        assert_hidden(&arg, code, &out, &err);
        assert!(!err.contains("s3cret"), "{arg}: {err}");
    }
}

#[test]
fn a_misspelled_kafka_property_never_echoes_its_value() {
    let (code, out, err) = hule(
        &[
            "lag",
            "--brokers",
            "127.0.0.1:1",
            "-X",
            &format!("sasl.pasword={SECRET}"),
        ],
        None,
    );
    assert_hidden("-X sasl.pasword", code, &out, &err);
    assert!(err.contains("sasl.pasword"), "the name is shown: {err}");
    let dir = std::env::temp_dir().join(format!("hule-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("client.properties");
    std::fs::write(
        &file,
        format!("bootstrap.servers=127.0.0.1:1\nsasl.pasword={SECRET}\n"),
    )
    .expect("write");
    let (code, out, err) = hule(
        &["lag", "--kafka-config", file.to_str().expect("utf-8")],
        None,
    );
    assert_hidden("--kafka-config with sasl.pasword", code, &out, &err);
    assert!(err.contains("sasl.pasword"), "the name is shown: {err}");
    std::fs::remove_dir_all(dir).ok();
}
