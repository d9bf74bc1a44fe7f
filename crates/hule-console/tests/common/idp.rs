//! An OpenID Connect provider the tests run themselves: discovery, keys (RSA, made by `openssl`), an authorization
//! endpoint that vouches at once for the identity the test chose (it redirects back with a code), and a token
//! endpoint that checks the client's secret, the code, the redirect URI and the PKCE verifier (S256) before it
//! returns an ID token signed RS256 with the nonce of the authorization request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Json;
use base64::Engine as _;
use openidconnect::core::{
    CoreIdToken, CoreIdTokenClaims, CoreIdTokenFields, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreResponseType, CoreRsaPrivateSigningKey, CoreSubjectIdentifierType,
    CoreTokenResponse, CoreTokenType,
};
use openidconnect::{
    AccessToken, Audience, AuthUrl, EmptyAdditionalClaims, EmptyAdditionalProviderMetadata,
    EmptyExtraTokenFields, EndUserUsername, IssuerUrl, JsonWebKeyId, JsonWebKeySetUrl, Nonce,
    PrivateSigningKey as _, ResponseTypes, StandardClaims, SubjectIdentifier, TokenUrl,
};
use sha2::Digest as _;

pub const CLIENT_ID: &str = "hule-console";

/// A spoiled ID token, which the console must refuse.
#[derive(Debug, Clone, Copy)]
pub enum Tamper {
    /// Another nonce than the authorization request's.
    Nonce,
    /// Another audience than the console's client id.
    Audience,
    /// Signed with a key the provider does not publish.
    Key,
}
pub const CLIENT_SECRET: &str = "idp-test-secret";

struct Grant {
    user: String,
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

struct Idp {
    issuer: String,
    key_pem: String,
    /// The identity the next authorization vouches for.
    next_user: Mutex<String>,
    /// How the next ID token is spoiled, if it is.
    tamper: Mutex<Option<Tamper>>,
    grants: Mutex<HashMap<String, Grant>>,
}

/// The running provider.
pub struct TestIdp {
    pub issuer: String,
    state: Arc<Idp>,
}

impl TestIdp {
    /// Starts the provider on a port of its own.
    pub async fn start() -> TestIdp {
        let out = std::process::Command::new("openssl")
            .args(["genrsa", "-traditional", "2048"])
            .output()
            .expect("openssl must be installed (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Idp {
            issuer: issuer.clone(),
            key_pem: String::from_utf8(out.stdout).expect("pem"),
            next_user: Mutex::new("nobody".into()),
            tamper: Mutex::new(None),
            grants: Mutex::new(HashMap::new()),
        });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestIdp { issuer, state }
    }

    /// The identity the next login is for.
    pub fn vouch_for(&self, user: &str) {
        *self.state.next_user.lock().expect("lock") = user.to_owned();
    }

    /// Spoils the next ID token (once).
    pub fn tamper(&self, how: Tamper) {
        *self.state.tamper.lock().expect("lock") = Some(how);
    }
}

fn key(idp: &Idp) -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(&idp.key_pem, Some(JsonWebKeyId::new("k1".into())))
        .expect("key")
}

async fn discovery(State(idp): State<Arc<Idp>>) -> Json<CoreProviderMetadata> {
    let meta = CoreProviderMetadata::new(
        IssuerUrl::new(idp.issuer.clone()).expect("issuer"),
        AuthUrl::new(format!("{}/authorize", idp.issuer)).expect("auth"),
        JsonWebKeySetUrl::new(format!("{}/jwks", idp.issuer)).expect("jwks"),
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
        EmptyAdditionalProviderMetadata {},
    )
    .set_token_endpoint(Some(
        TokenUrl::new(format!("{}/token", idp.issuer)).expect("token"),
    ));
    Json(meta)
}

async fn jwks(State(idp): State<Arc<Idp>>) -> Json<CoreJsonWebKeySet> {
    Json(CoreJsonWebKeySet::new(
        vec![key(&idp).as_verification_key()],
    ))
}

async fn authorize(
    State(idp): State<Arc<Idp>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| q.get(k).cloned().unwrap_or_default();
    if field("client_id") != CLIENT_ID
        || field("response_type") != "code"
        || field("code_challenge_method") != "S256"
        || field("code_challenge").is_empty()
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    let redirect_uri = field("redirect_uri");
    idp.grants.lock().expect("lock").insert(
        code.clone(),
        Grant {
            user: idp.next_user.lock().expect("lock").clone(),
            nonce: field("nonce"),
            challenge: field("code_challenge"),
            redirect_uri: redirect_uri.clone(),
        },
    );
    Redirect::to(&format!(
        "{redirect_uri}?code={code}&state={}",
        field("state")
    ))
    .into_response()
}

async fn token(
    State(idp): State<Arc<Idp>>,
    headers: axum::http::HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let invalid = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "invalid_grant", "error_description": why})),
        )
            .into_response()
    };
    // Client authentication: HTTP Basic (what openidconnect sends by default) or the form's fields.
    let basic = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let from_form = format!(
        "{}:{}",
        f.get("client_id").cloned().unwrap_or_default(),
        f.get("client_secret").cloned().unwrap_or_default()
    );
    if basic.unwrap_or(from_form) != format!("{CLIENT_ID}:{CLIENT_SECRET}") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let Some(grant) = f
        .get("code")
        .and_then(|c| idp.grants.lock().expect("lock").remove(c))
    else {
        return invalid("unknown or used code");
    };
    if f.get("redirect_uri") != Some(&grant.redirect_uri) {
        return invalid("redirect_uri differs");
    }
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    if challenge != grant.challenge {
        return invalid("PKCE verifier does not match the challenge");
    }
    let tamper = idp.tamper.lock().expect("lock").take();
    let audience = match tamper {
        Some(Tamper::Audience) => "another-client",
        _ => CLIENT_ID,
    };
    let nonce = match tamper {
        Some(Tamper::Nonce) => "another-nonce".to_owned(),
        _ => grant.nonce,
    };
    let now = chrono::Utc::now();
    let claims = CoreIdTokenClaims::new(
        IssuerUrl::new(idp.issuer.clone()).expect("issuer"),
        vec![Audience::new(audience.into())],
        now + chrono::Duration::minutes(5),
        now,
        StandardClaims::new(SubjectIdentifier::new(format!("sub-{}", grant.user)))
            .set_preferred_username(Some(EndUserUsername::new(grant.user.clone()))),
        EmptyAdditionalClaims {},
    )
    .set_nonce(Some(Nonce::new(nonce)));
    let signing = match tamper {
        Some(Tamper::Key) => {
            let other = std::process::Command::new("openssl")
                .args(["genrsa", "-traditional", "2048"])
                .output()
                .expect("openssl");
            CoreRsaPrivateSigningKey::from_pem(
                &String::from_utf8(other.stdout).expect("pem"),
                Some(JsonWebKeyId::new("k1".into())),
            )
            .expect("key")
        }
        _ => key(&idp),
    };
    let id_token = CoreIdToken::new(
        claims,
        &signing,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
        None,
    )
    .expect("sign");
    let response = CoreTokenResponse::new(
        AccessToken::new("access".into()),
        CoreTokenType::Bearer,
        CoreIdTokenFields::new(Some(id_token), EmptyExtraTokenFields {}),
    );
    Json(response).into_response()
}

/// The `[oidc]` table of a console at `console_base` using this provider, `operators` being operators.
pub fn oidc_config(
    idp: &TestIdp,
    console_base: &str,
    operators: &[&str],
) -> hule_console::oidc::OidcConfig {
    toml::from_str(&format!(
        "issuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
         redirect_url = \"{console_base}/oidc/callback\"\noperators = {operators:?}\nlabel = \"Test SSO\"",
        idp.issuer
    ))
    .expect("oidc table")
}
