//! Logging in through an OpenID Connect provider: the authorization code flow with PKCE (S256), a one-time `state`
//! and a `nonce` kept on the server, the code exchanged with the client's secret, and the ID token checked by
//! `openidconnect` (signature against the provider's published keys, issuer, audience, expiry, nonce).
//!
//! Who is an operator is the configuration's `operators` list (matched against `preferred_username`, else `email`,
//! else `sub`); every other identity the provider vouches for is a viewer. The role is read from the configuration
//! on every request, as for local users.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _,
};

/// The `[oidc]` table.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL (its discovery document is `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// The console's client id at the provider.
    pub client_id: String,
    /// The client secret (or `$HULE_CONSOLE_OIDC_CLIENT_SECRET`); never shown.
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back: `https://<console>/oidc/callback`.
    pub redirect_url: String,
    /// Identities that are operators.
    #[serde(default)]
    pub operators: Vec<String>,
    /// The login button's label.
    pub label: Option<String>,
}

/// The secret is not shown.
impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("redirect_url", &self.redirect_url)
            .field("operators", &self.operators)
            .finish_non_exhaustive()
    }
}

impl OidcConfig {
    /// The URLs parse and the redirect ends in `/oidc/callback`.
    pub fn check(&self) -> Result<(), String> {
        IssuerUrl::new(self.issuer.clone()).map_err(|e| format!("[oidc] issuer: {e}"))?;
        let redirect = RedirectUrl::new(self.redirect_url.clone())
            .map_err(|e| format!("[oidc] redirect_url: {e}"))?;
        if !redirect.url().path().ends_with("/oidc/callback") {
            return Err("[oidc] redirect_url must be the console's /oidc/callback".into());
        }
        if self.client_id.trim().is_empty() {
            return Err("[oidc] client_id is empty".into());
        }
        Ok(())
    }
}

/// A login on its way through the provider.
struct Pending {
    verifier: PkceCodeVerifier,
    nonce: Nonce,
    started: Instant,
}

/// How long a browser has to come back from the provider.
const PENDING_FOR: Duration = Duration::from_secs(600);
/// Logins on their way at most (older ones are dropped first).
const MAX_PENDING: usize = 10_000;

/// The provider as the console uses it.
pub struct Oidc {
    config: OidcConfig,
    secret: Option<String>,
    http: Http,
    metadata: tokio::sync::Mutex<Option<(CoreProviderMetadata, Instant)>>,
    /// The last failed discovery, remembered a few seconds so that logins during a provider outage fail at once
    /// instead of each waiting out its own request.
    failed: Mutex<Option<(String, Instant)>>,
    pending: Mutex<HashMap<String, Pending>>,
}

/// Why a login through the provider failed (shown on the login page; no token or secret in it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OidcError(String);

/// The HTTP errors the `openidconnect` client sees.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// The `openidconnect` client's HTTP, through the console's reqwest (owned futures: the handlers' futures stay
/// `Send`).
#[derive(Clone)]
struct Http(reqwest::Client);

type HttpFuture<'c> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<openidconnect::HttpResponse, HttpError>>
            + Send
            + Sync
            + 'c,
    >,
>;

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = HttpFuture<'c>;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| HttpError(format!("the provider did not answer: {e}")))?;
            let mut out = openidconnect::http::Response::builder().status(response.status());
            for (k, v) in response.headers() {
                out = out.header(k, v);
            }
            let body = response
                .bytes()
                .await
                .map_err(|e| HttpError(format!("the provider's answer was cut: {e}")))?;
            out.body(body.to_vec())
                .map_err(|e| HttpError(e.to_string()))
        })
    }
}

impl Oidc {
    /// The provider of `config` (its discovery document is read on the first login).
    pub fn new(config: OidcConfig) -> Result<Self, String> {
        config.check()?;
        let secret = config
            .client_secret
            .clone()
            .or_else(|| std::env::var("HULE_CONSOLE_OIDC_CLIENT_SECRET").ok());
        let http = reqwest::Client::builder()
            // The provider's redirects are not followed (the token endpoint must answer itself).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map(Http)
            .map_err(|e| format!("[oidc]: {e}"))?;
        Ok(Oidc {
            config,
            secret,
            http,
            metadata: tokio::sync::Mutex::new(None),
            failed: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// The login button's label.
    pub fn label(&self) -> &str {
        self.config.label.as_deref().unwrap_or("single sign-on")
    }

    /// Whether `user` is an operator.
    pub fn is_operator(&self, user: &str) -> bool {
        self.config.operators.iter().any(|o| o == user)
    }

    /// The discovery document, read again after an hour.
    async fn metadata(&self) -> Result<CoreProviderMetadata, OidcError> {
        if let Some((e, at)) = self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            if at.elapsed() < Duration::from_secs(5) {
                return Err(OidcError(e.clone()));
            }
        }
        let mut slot = self.metadata.lock().await;
        if let Some((m, at)) = slot.as_ref() {
            if at.elapsed() < Duration::from_secs(3600) {
                return Ok(m.clone());
            }
        }
        // Again under the lock: logins that waited for a discovery that failed fail with it, not one by one.
        if let Some((e, at)) = self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            if at.elapsed() < Duration::from_secs(5) {
                return Err(OidcError(e.clone()));
            }
        }
        let issuer =
            IssuerUrl::new(self.config.issuer.clone()).map_err(|e| OidcError(e.to_string()))?;
        let m = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| {
                let why = format!("the provider's discovery document: {}", error_chain(&e));
                *self.failed.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((why.clone(), Instant::now()));
                OidcError(why)
            })?;
        *slot = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    fn client(
        &self,
        metadata: CoreProviderMetadata,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        OidcError,
    > {
        let redirect = RedirectUrl::new(self.config.redirect_url.clone())
            .map_err(|e| OidcError(e.to_string()))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// Where to send the browser: the provider's authorization URL with a fresh state, nonce and PKCE challenge;
    /// and the state, which the caller binds to the browser (a cookie the callback must bring back).
    pub async fn start(&self) -> Result<(String, String), OidcError> {
        let client = self.client(self.metadata().await?)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| p.started.elapsed() < PENDING_FOR);
        if pending.len() >= MAX_PENDING {
            if let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.started)
                .map(|(k, _)| k.clone())
            {
                pending.remove(&oldest);
            }
        }
        pending.insert(
            state.secret().clone(),
            Pending {
                verifier,
                nonce,
                started: Instant::now(),
            },
        );
        Ok((url.to_string(), state.secret().clone()))
    }

    /// The identity the provider vouches for, from the callback's `code` and `state` (each state once).
    pub async fn finish(&self, code: &str, state: &str) -> Result<String, OidcError> {
        let Pending {
            verifier,
            nonce,
            started,
        } = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(state)
            .ok_or_else(|| {
                OidcError("this login is unknown or already used; start again".into())
            })?;
        if started.elapsed() >= PENDING_FOR {
            return Err(OidcError("this login took too long; start again".into()));
        }
        let client = self.client(self.metadata().await?)?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError(format!("the provider has no token endpoint: {e}")))?
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError(format!("the code exchange failed: {}", error_chain(&e))))?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| OidcError("the provider returned no ID token".into()))?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &nonce)
            .map_err(|e| OidcError(format!("the ID token was refused: {e}")))?;
        let name = claims
            .preferred_username()
            .map(|u| u.as_str().to_owned())
            // An email only when the provider says it verified it.
            .or_else(|| {
                claims
                    .email()
                    .filter(|_| claims.email_verified() == Some(true))
                    .map(|e| e.as_str().to_owned())
            })
            .unwrap_or_else(|| claims.subject().as_str().to_owned());
        Ok(name.chars().take(128).collect())
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
