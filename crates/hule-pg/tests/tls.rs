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
