//! Logging in through an OpenID Connect provider the test runs itself: the console sends the browser to the
//! provider with a PKCE challenge, state and nonce; the provider checks the client's secret and the PKCE verifier
//! when the console exchanges the code, and signs the ID token; an identity in `operators` is an operator, any
//! other a viewer; a callback replayed (its state used), with a made-up state, or with the provider's error is
//! refused, and every outcome is in the audit log.

mod common;

use axum::http::StatusCode;
use common::idp::{oidc_config, Tamper, TestIdp};
use common::Client;
use hule_console::ConsoleConfig;

/// Follows the console's redirect to the provider and the provider's back: the console's callback path and query.
async fn through_provider(console: &mut Client) -> String {
    let to_idp = console.get("/oidc/login").await;
    assert_eq!(to_idp.status, StatusCode::SEE_OTHER, "{}", to_idp.body);
    let idp_url = to_idp.location.expect("to the provider");
    assert!(
        idp_url.contains("code_challenge_method=S256") && idp_url.contains("nonce="),
        "{idp_url}"
    );
    let back = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(&idp_url)
        .send()
        .await
        .expect("the provider");
    let location = back.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let at = location
        .find("/oidc/callback")
        .expect("back to the console");
    location[at..].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_through_the_provider_gives_the_configured_role() {
    let idp = TestIdp::start().await;
    let dir = std::env::temp_dir().join(format!(
        "hule-console-oidc-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = ConsoleConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        kafka: hule_kafka::KafkaSettings::new("127.0.0.1:1"),
        users: Vec::new(),
        store: dir.join("console.db"),
        services: Vec::new(),
        retention: Default::default(),
        no_auth: false,
        tls: None,
        oidc: Some(oidc_config(&idp, "http://console.test", &["ada"])),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let app = hule_console::router(&config, &stop).expect("router");

    let mut ada = Client {
        app: app.clone(),
        cookie: None,
    };
    assert!(ada
        .get("/login")
        .await
        .body
        .contains("Log in with Test SSO"));
    idp.vouch_for("ada");
    let callback = through_provider(&mut ada).await;
    let done = ada.get(&callback).await;
    assert_eq!(
        (done.status, done.location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/")),
        "{}",
        done.body
    );
    let audit = ada.get("/audit").await;
    assert_eq!(audit.status, StatusCode::OK, "ada is an operator");
    assert!(
        audit.body.contains("ada · operator") && audit.body.contains("ok (sign-on)"),
        "{}",
        audit.body
    );

    // The same callback in another browser (no state cookie: an attacker's login URL sent to a victim) is refused.
    let mut replay = Client {
        app: app.clone(),
        cookie: None,
    };
    let again = replay.get(&callback).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(
        again.body.contains("did not start in this browser"),
        "{}",
        again.body
    );
    // Started in this browser, but its callback used twice: the second is refused.
    let mut twice = Client {
        app: app.clone(),
        cookie: None,
    };
    idp.vouch_for("ada");
    let callback2 = through_provider(&mut twice).await;
    let state_cookie = twice.cookie.clone();
    assert_eq!(twice.get(&callback2).await.status, StatusCode::SEE_OTHER);
    let mut again = Client {
        app: app.clone(),
        cookie: state_cookie,
    };
    let used = again.get(&callback2).await;
    assert!(
        used.body.contains("unknown or already used"),
        "{}",
        used.body
    );
    // A spoiled ID token (another nonce, another audience, a key the provider does not publish) is refused.
    for how in [Tamper::Nonce, Tamper::Audience, Tamper::Key] {
        let mut eve = Client {
            app: app.clone(),
            cookie: None,
        };
        idp.vouch_for("ada");
        idp.tamper(how);
        let callback = through_provider(&mut eve).await;
        let refused = eve.get(&callback).await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{how:?}: {}",
            refused.body
        );
        assert!(
            refused.body.contains("the ID token was refused"),
            "{how:?}: {}",
            refused.body
        );
        assert_eq!(
            eve.get("/").await.location.as_deref(),
            Some("/login"),
            "{how:?}: no session"
        );
    }
    // A made-up state and the provider's own refusal.
    let made_up = replay.get("/oidc/callback?code=x&state=made-up").await;
    assert_eq!(made_up.status, StatusCode::UNAUTHORIZED);
    let denied = replay
        .get("/oidc/callback?error=access_denied&state=s")
        .await;
    assert!(denied.body.contains("the provider refused: access_denied"));
    assert_eq!(
        replay.get("/").await.location.as_deref(),
        Some("/login"),
        "no session from any of them"
    );

    // Another identity is a viewer.
    let mut bob = Client { app, cookie: None };
    idp.vouch_for("bob");
    let callback = through_provider(&mut bob).await;
    bob.get(&callback).await;
    let overview = bob.get("/").await;
    assert!(overview.body.contains("bob · viewer"), "{}", overview.body);
    assert_eq!(bob.get("/audit").await.status, StatusCode::FORBIDDEN);
    let audit = ada.get("/audit").await;
    assert!(
        audit.body.contains("did not start in this browser")
            && audit.body.contains("unknown or already used")
            && audit.body.contains("the ID token was refused")
            && audit.body.contains("access_denied")
    );
    stop.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}
