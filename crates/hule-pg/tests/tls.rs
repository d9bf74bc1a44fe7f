//! `sslmode` and `sslrootcert` against the local PostgreSQL, which `scripts/setup.sh` serves with TLS on a
//! certificate for 127.0.0.1/localhost signed by a CA made on this machine (`$HULE_TEST_PG_CA`, default
//! `/var/lib/postgresql/hule-tls/ca.pem`). A CA made by the test, which signed nothing, must be refused.

use std::path::PathBuf;

const BASE: &str = "postgres://postgres@127.0.0.1:5432/test";

fn ca() -> String {
    let ca = std::env::var("HULE_TEST_PG_CA")
        .unwrap_or_else(|_| "/var/lib/postgresql/hule-tls/ca.pem".into());
    assert!(
        std::path::Path::new(&ca).exists(),
        "the test CA {ca} is missing: run scripts/setup.sh"
    );
    ca
}

fn wrong_ca() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hule-pg-wrong-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let pem = dir.join("ca.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=not the CA",
        ])
        .arg("-keyout")
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(&pem)
        .output()
        .expect("openssl");
    assert!(out.status.success());
    pem
}

async fn uses_tls(url: &str) -> Result<bool, hule_pg::ConnectError> {
    let client = hule_pg::connect(url).await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    Ok(row.get(0))
}

#[tokio::test]
async fn every_sslmode_behaves_as_libpq() {
    let ca = ca();
    assert!(!uses_tls(&format!("{BASE}?sslmode=disable"))
        .await
        .expect("disable"));
    assert!(
        uses_tls(BASE).await.expect("prefer, the default"),
        "prefer uses TLS when offered"
    );
    assert!(uses_tls(&format!("{BASE}?sslmode=require"))
        .await
        .expect("require"));
    assert!(
        uses_tls(&format!("{BASE}?sslmode=verify-ca&sslrootcert={ca}"))
            .await
            .expect("verify-ca")
    );
    assert!(
        uses_tls(&format!("{BASE}?sslmode=verify-full&sslrootcert={ca}"))
            .await
            .expect("verify-full on 127.0.0.1")
    );
    assert!(uses_tls(&format!(
        "host=localhost port=5432 user=postgres dbname=test sslmode=verify-full sslrootcert='{ca}'"
    ))
    .await
    .expect("verify-full on localhost, keyword form"));
}

#[tokio::test]
async fn a_ca_that_did_not_sign_the_server_is_refused() {
    let wrong = wrong_ca();
    for mode in ["verify-ca", "verify-full", "require"] {
        let err = uses_tls(&format!(
            "{BASE}?sslmode={mode}&sslrootcert={}",
            wrong.display()
        ))
        .await
        .expect_err("wrong CA");
        let text = err.to_string();
        assert!(text.contains("certificate verify failed"), "{mode}: {text}");
        assert!(text.contains(&format!("sslmode {mode}")), "{text}");
    }
    let err = uses_tls(&format!(
        "{BASE}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
    ))
    .await
    .expect_err("missing file");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    std::fs::remove_dir_all(wrong.parent().expect("dir")).ok();
}

#[tokio::test]
async fn verify_ca_without_a_named_ca_is_refused_as_libpq_does() {
    for url in [
        format!("{BASE}?sslmode=verify-ca"),
        format!("{BASE}?sslmode=verify-ca&sslrootcert=system"),
        "host=127.0.0.1 user=postgres dbname=test sslmode=verify-ca".to_owned(),
    ] {
        let err = uses_tls(&url).await.expect_err("verify-ca needs a CA");
        assert!(
            err.to_string().contains("verify-ca needs sslrootcert"),
            "{url}: {err}"
        );
    }
    // verify-full may use the system's store: the local CA is not in it, so the handshake (not the URL) fails.
    let err = uses_tls(&format!("{BASE}?sslmode=verify-full&sslrootcert=system"))
        .await
        .expect_err("the local CA is not a system CA");
    assert!(
        err.to_string().contains("certificate verify failed"),
        "{err}"
    );
}

/// Both ends of every connection notice a dead peer within `HALF_OPEN_BOUND`: this end by its socket options, the
/// server's end (which holds advisory locks and LISTENs) by the session settings sent at startup. Settings the URL
/// gives itself win.
#[tokio::test]
async fn both_ends_of_a_connection_bound_a_half_open_session() {
    let client = hule_pg::connect(BASE).await.expect("connect");
    for (guc, want) in [
        ("tcp_keepalives_idle", "5"),
        ("tcp_keepalives_interval", "5"),
        ("tcp_keepalives_count", "3"),
        ("tcp_user_timeout", "20000"),
    ] {
        let row = client
            .query_one(&format!("SHOW {guc}"), &[])
            .await
            .expect("show");
        let got: String = row.get(0);
        assert_eq!(got, want, "{guc} on the server's end");
    }
    let client = hule_pg::connect(&format!(
        "{BASE}?options=-c%20search_path%3Dpublic%20-c%20tcp_keepalives_idle%3D7"
    ))
    .await
    .expect("connect with options");
    let idle: String = client
        .query_one("SHOW tcp_keepalives_idle", &[])
        .await
        .expect("show")
        .get(0);
    let path: String = client
        .query_one("SHOW search_path", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(
        (idle.as_str(), path.as_str()),
        ("7", "public"),
        "the URL's own options are kept"
    );
    assert!(hule_pg::HALF_OPEN_BOUND <= std::time::Duration::from_secs(30));
}

#[test]
fn passwords_in_every_url_form_are_redacted() {
    for url in [
        "postgres://relay:hunter2@db/app",
        "postgres://db/app?user=relay&password=hunter2",
        "postgresql://db/app?password=hunter2&sslmode=require",
        "host=db user=relay password=hunter2",
        "host=db user=relay password='hun ter2'",
        "postgress://relay:hunter2@db/app",
    ] {
        let shown = hule_pg::redact(url);
        assert!(
            !shown.contains("hunter2") && !shown.contains("ter2"),
            "{url} → {shown}"
        );
    }
    let err = hule_pg::split_tls("postgres://db/app?password=hunter2&sslmode=bogus")
        .expect_err("bad mode");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// `server_keepalives=off` leaves the server's settings out of the startup `options` (for a pooler that refuses
/// them); a keepalive-looking substring elsewhere in the URL does not count as the URL setting one.
#[tokio::test]
async fn server_keepalives_can_be_left_out_and_only_parameter_names_count() {
    let client = hule_pg::connect(&format!("{BASE}?server_keepalives=off"))
        .await
        .expect("connect");
    let idle: String = client
        .query_one("SHOW tcp_keepalives_idle", &[])
        .await
        .expect("show")
        .get(0);
    assert_ne!(idle, "5", "the server's keepalives were still asked for");
    let err =
        hule_pg::split_tls(&format!("{BASE}?server_keepalives=maybe")).expect_err("not on/off");
    assert!(err.to_string().contains("server_keepalives"), "{err}");
    // A database whose name holds `keepalives` still gets the settings.
    let (rest, tls) = hule_pg::split_tls("postgres://u@h/keepalives_db").expect("ok");
    assert!(tls.server_keepalives && rest.ends_with("keepalives_db"));
    for weak in ["require", "prefer", "allow", "disable"] {
        let err = hule_pg::split_tls(&format!("{BASE}?sslmode={weak}&sslrootcert=system"))
            .expect_err("a weak mode with the system's CAs");
        assert!(err.to_string().contains("verify-full"), "{weak}: {err}");
    }
    let (_, tls) = hule_pg::split_tls(&format!("{BASE}?sslrootcert=system")).expect("ok");
    assert_eq!(
        tls.mode, "verify-full",
        "libpq's default with sslrootcert=system"
    );
    // A key spelled with an escape is the key it decodes to.
    let (rest, tls) = hule_pg::split_tls(&format!("{BASE}?ssl%6Dode=disable")).expect("ok");
    assert_eq!((tls.mode.as_str(), rest.as_str()), ("disable", BASE));
}
