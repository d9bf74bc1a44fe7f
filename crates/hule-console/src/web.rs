//! The HTTP side: the router, the handlers, and the checks every request passes (a session; for a POST, its CSRF
//! token and origin; for an action, the operator role).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::{Cookie, Key, SameSite, SignedCookieJar};
use hule_kafka::KafkaSettings;
use maud::{html, Markup};
use tokio_util::sync::CancellationToken;

use crate::auth::{self, LoginLimiter, Session, COOKIE};
use crate::config::User;
use crate::data::Data;
use crate::jobs::{Jobs, State as JobState};
use crate::pages::{layout, login, short_time};
use crate::store::Store;

/// What `hule console` runs with.
#[derive(Clone)]
pub struct ConsoleConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The cluster.
    pub kafka: KafkaSettings,
    /// The users.
    pub users: Vec<User>,
    /// The SQLite store (the audit log, the session key and the index).
    pub store: PathBuf,
    /// The services whose outboxes and health the console shows.
    pub services: Vec<crate::config::Service>,
    /// What the index keeps.
    pub retention: crate::index::Retention,
    /// No login: every request is the operator `local`. Refused unless `listen` is a loopback address.
    pub no_auth: bool,
    /// Serve HTTPS with these files (session cookies then `Secure`).
    pub tls: Option<crate::tls::TlsFiles>,
    /// Logins through an OpenID Connect provider.
    pub oidc: Option<crate::oidc::OidcConfig>,
}

/// The store's URL (a PostgreSQL store's password) is not shown.
impl std::fmt::Debug for ConsoleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleConfig")
            .field("listen", &self.listen)
            .field("users", &self.users)
            .field("store", &hule_pg::redact(&self.store.to_string_lossy()))
            .field("services", &self.services)
            .field("no_auth", &self.no_auth)
            .finish_non_exhaustive()
    }
}

/// Why the console cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The configuration cannot work.
    #[error("console configuration: {0}")]
    Config(String),
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The index cannot be opened.
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    /// The address cannot be bound or served.
    #[error("console on {addr}: {source}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

pub(crate) struct Inner {
    pub(crate) data: Arc<Data>,
    pub(crate) index: Arc<crate::index::Index>,
    pub(crate) indexer: Arc<crate::index::IndexerStatus>,
    pub(crate) services: Arc<crate::services::Services>,
    pub(crate) store: Arc<Store>,
    jobs: Arc<Jobs>,
    users: Vec<User>,
    /// The session of every request under `--no-auth`.
    pub(crate) local: Option<Session>,
    /// Cookies `Secure` (served over TLS).
    secure: bool,
    pub(crate) oidc: Option<Arc<crate::oidc::Oidc>>,
    limiter: LoginLimiter,
    /// Password checks running at once.
    hashing: tokio::sync::Semaphore,
    /// Live tails open at once (each a thread and a Kafka consumer).
    pub(crate) tails: Arc<tokio::sync::Semaphore>,
    /// Records fetched from Kafka at once for record pages and samples (each a short-lived consumer).
    pub(crate) fetches: Arc<tokio::sync::Semaphore>,
    key: Key,
}

/// The shared state of the handlers.
#[derive(Clone)]
pub struct App(pub(crate) Arc<Inner>);

impl FromRef<App> for Key {
    fn from_ref(app: &App) -> Key {
        app.0.key.clone()
    }
}

/// The console's router on `config` (its store opened, its key made or read), and its indexer started on a thread
/// of its own until `stop`.
pub fn router(config: &ConsoleConfig, stop: &CancellationToken) -> Result<Router, ConsoleError> {
    if config.no_auth && !config.listen.ip().is_loopback() {
        return Err(ConsoleError::Config(format!(
            "--no-auth is refused on {}: without a login the console may only listen on a loopback address",
            config.listen
        )));
    }
    let oidc = match &config.oidc {
        Some(o) => Some(Arc::new(
            crate::oidc::Oidc::new(o.clone()).map_err(ConsoleError::Config)?,
        )),
        None => None,
    };
    if config.users.is_empty() && !config.no_auth && oidc.is_none() {
        return Err(ConsoleError::Config(
            "no users: add a [[users]] table (name, role, password_hash from `hule console hash-password`)".into(),
        ));
    }
    // A postgres:// or postgresql:// store is PostgreSQL (several consoles then share the audit log, the session
    // key, the archive and the index); anything else a SQLite file, with the index in a file beside it.
    let location = crate::db::Location::parse(&config.store.to_string_lossy())
        .map_err(ConsoleError::Config)?;
    let store = Arc::new(Store::open_at(&location)?);
    let key = store
        .session_key()
        .map_err(|e| ConsoleError::Config(format!("session key: {e}")))?;
    crate::config::check_services(&config.services).map_err(ConsoleError::Config)?;
    // On SQLite the index is a file of its own beside the store: its writer never makes an audit insert wait.
    let index_at = match &location {
        crate::db::Location::File(p) => crate::db::Location::File(crate::index::path_beside(p)),
        pg => pg.clone(),
    };
    let index = Arc::new(crate::index::Index::open_at(&index_at)?);
    let indexer = Arc::new(crate::index::IndexerStatus::default());
    crate::index::spawn_indexer(
        config.kafka.clone(),
        index.clone(),
        indexer.clone(),
        config.retention,
        stop.clone(),
    );
    let app = App(Arc::new(Inner {
        data: Arc::new(Data::new(config.kafka.clone(), Duration::from_secs(10))),
        index,
        indexer,
        services: Arc::new(crate::services::Services::new(&config.services)),
        store,
        jobs: Arc::default(),
        users: config.users.clone(),
        local: config
            .no_auth
            .then(|| Session::new("local", crate::config::Role::Operator)),
        secure: config.tls.is_some(),
        oidc,
        limiter: LoginLimiter::default(),
        hashing: tokio::sync::Semaphore::new(2),
        tails: Arc::new(tokio::sync::Semaphore::new(crate::flow::TAILS_AT_ONCE)),
        fetches: Arc::new(tokio::sync::Semaphore::new(8)),
        key: Key::from(&key),
    }));
    Ok(Router::new()
        .route("/", get(overview))
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", post(logout))
        .route("/oidc/login", get(oidc_login))
        .route("/oidc/callback", get(oidc_callback))
        .route("/dead-letters", get(groups_page))
        .route("/dead-letters/{fingerprint}", get(group_page))
        .route("/dead-letters/{fingerprint}/replay", post(replay_submit))
        .route("/dead-letters/{fingerprint}/archive", post(archive_submit))
        .route(
            "/dead-letters/record/{topic}/{partition}/{offset}",
            get(record_page),
        )
        .route(
            "/records/{topic}/{partition}/{offset}",
            get(record_page).post(record_unmask),
        )
        .route("/trace", get(crate::flow::trace_page))
        .route("/events", get(crate::flow::events_page))
        .route("/events/{name}", get(crate::flow::event_page))
        .route("/outbox", get(crate::flow::outbox_page))
        .route("/outbox/{service}/act", post(crate::flow::outbox_act))
        .route("/tail", get(crate::flow::tail_page))
        .route("/tail/stream", get(crate::flow::tail_stream))
        .route("/live/overview", get(crate::flow::overview_stream))
        .route("/replays", get(replays_page))
        .route("/replays/{id}", get(replay_page))
        .route("/replays/{id}/cancel", post(replay_cancel))
        .route("/groups", get(groups_lag_page))
        .route("/audit", get(audit_page))
        // Last: a layer covers only the routes added before it.
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app))
}

/// What every response carries, and what every request passes first: the console's pages are never framed
/// (clickjacking); under `--no-auth` a request must name a loopback host, so a page elsewhere cannot reach the
/// console through a DNS name rebound to 127.0.0.1.
async fn guard(
    State(app): State<App>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if app.0.local.is_some() {
        let host = request
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let name = match host.rsplit_once(':') {
            Some((n, port)) if port.chars().all(|c| c.is_ascii_digit()) => n,
            _ => host,
        };
        if !matches!(name, "127.0.0.1" | "localhost" | "[::1]") {
            return refused(
                StatusCode::MISDIRECTED_REQUEST,
                "Without a login the console answers only requests to 127.0.0.1, localhost or [::1].",
                None,
            );
        }
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (k, v) in [
        ("x-frame-options", "DENY"),
        ("content-security-policy", "frame-ancestors 'none'"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ] {
        h.insert(k, axum::http::HeaderValue::from_static(v));
    }
    response
}

/// Serves the console on `config.listen` until `stop`.
pub async fn serve(config: ConsoleConfig, stop: CancellationToken) -> Result<(), ConsoleError> {
    let addr = config.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ConsoleError::Serve { addr, source })?;
    serve_on(listener, &config, stop).await
}

/// Serves the console on a listener already bound (its address known to the caller, e.g. port 0) until `stop`.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    config: &ConsoleConfig,
    stop: CancellationToken,
) -> Result<(), ConsoleError> {
    let addr = listener.local_addr().unwrap_or(config.listen);
    if config.no_auth && !addr.ip().is_loopback() {
        return Err(ConsoleError::Config(format!(
            "--no-auth is refused on {addr}: without a login the console may only listen on a loopback address"
        )));
    }
    // The certificate is read before anything starts: a bad file fails the start, not the first request.
    let tls = match &config.tls {
        Some(files) => Some(crate::tls::acceptor(files).map_err(ConsoleError::Config)?),
        None => None,
    };
    let app = router(config, &stop)?;
    let shutdown = async move { stop.cancelled().await };
    match tls {
        None => {
            tracing::info!(%addr, "console: serving on http://{addr}/");
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(acceptor) => {
            let listener = crate::tls::TlsListener::new(listener, acceptor)
                .map_err(|source| ConsoleError::Serve { addr, source })?;
            tracing::info!(%addr, "console: serving on https://{addr}/");
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
    .map_err(|source| ConsoleError::Serve { addr, source })
}

/// The session the cookie holds, its role as the configuration says now: a user removed from the file has no
/// session any more, and one whose role changed has the new one.
pub(crate) fn session_of(app: &App, jar: &SignedCookieJar) -> Option<Session> {
    if let Some(local) = &app.0.local {
        return Some(local.clone());
    }
    let mut session = jar
        .get(COOKIE)
        .and_then(|c| Session::from_cookie(c.value()))?;
    session.role = if session.sso {
        let oidc = app.0.oidc.as_ref()?;
        if oidc.is_operator(&session.user) {
            crate::config::Role::Operator
        } else {
            crate::config::Role::Viewer
        }
    } else {
        app.0.users.iter().find(|u| u.name == session.user)?.role
    };
    Some(session)
}

pub(crate) fn page(markup: Markup) -> Response {
    Html(markup.into_string()).into_response()
}

pub(crate) fn refused(status: StatusCode, why: &str, session: Option<&Session>) -> Response {
    (
        status,
        page(layout(
            "Refused",
            session,
            Some(why),
            html! { h1 { "Refused" } },
        )),
    )
        .into_response()
}

/// A POST's checks: a session, its CSRF token, and an `Origin` (when the browser sends one) naming this host.
pub(crate) fn check_post(
    app: &App,
    jar: &SignedCookieJar,
    headers: &HeaderMap,
    csrf: &str,
    what: &str,
) -> Result<Session, Box<Response>> {
    let Some(session) = session_of(app, jar) else {
        return Err(Box::new(Redirect::to("/login").into_response()));
    };
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin_ok = headers
        .get("origin")
        .and_then(|o| o.to_str().ok())
        .is_none_or(|o| o.split("://").nth(1) == Some(host));
    if csrf != session.csrf || !origin_ok {
        app.0.store.audit(
            &session.user,
            "refused",
            what,
            0,
            "forged request (CSRF token or origin)",
        );
        return Err(Box::new(refused(
            StatusCode::FORBIDDEN,
            "This request did not come from a console page (its form token or origin does not match).",
            Some(&session),
        )));
    }
    Ok(session)
}

/// [`check_post`], and the operator role: a viewer's request is refused and audited as `needs` says (e.g.
/// "replay needs the operator role").
pub(crate) fn check_operator_post(
    app: &App,
    jar: &SignedCookieJar,
    headers: &HeaderMap,
    csrf: &str,
    target: &str,
    needs: &str,
) -> Result<Session, Box<Response>> {
    let session = check_post(app, jar, headers, csrf, target)?;
    if !session.operator() {
        app.0
            .store
            .audit(&session.user, "refused", target, 0, needs);
        let mut why = needs.to_owned();
        if let Some(first) = why.get(..1).map(str::to_uppercase) {
            why.replace_range(..1, &first);
        }
        return Err(Box::new(refused(
            StatusCode::FORBIDDEN,
            &format!("{why}."),
            Some(&session),
        )));
    }
    Ok(session)
}

/// The data snapshot of a page, or the page with nothing but the banner saying why Kafka cannot be read.
macro_rules! snapshot_or_banner {
    ($app:expr, $session:expr, $title:expr) => {
        match $app.0.data.snapshot().await {
            Ok(s) => s,
            Err(e) => {
                return page(layout(
                    $title,
                    Some($session),
                    Some(&kafka_banner(&e)),
                    html! {},
                ))
            }
        }
    };
}

/// Requires a session on a page; to the login form otherwise.
#[macro_export]
#[doc(hidden)]
macro_rules! session_or_login {
    ($app:expr, $jar:expr) => {
        match $crate::web::session_of(&$app, &$jar) {
            Some(s) => s,
            None => {
                return axum::response::IntoResponse::into_response(axum::response::Redirect::to(
                    "/login",
                ))
            }
        }
    };
}

async fn login_page(State(app): State<App>, jar: SignedCookieJar) -> Response {
    if session_of(&app, &jar).is_some() {
        return Redirect::to("/").into_response();
    }
    page(login(None, app.0.oidc.as_ref().map(|o| o.label())))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

async fn login_submit(
    State(app): State<App>,
    jar: SignedCookieJar,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if headers
        .get("origin")
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| o.split("://").nth(1) != Some(host))
    {
        return refused(
            StatusCode::FORBIDDEN,
            "A login from another site is refused.",
            None,
        );
    }
    // A name is at most 64 characters: longer is no user's, and the audit log and the limiter keep it.
    let name: String = form.user.trim().chars().take(64).collect();
    // The attempt counts before the (slow) check, so that parallel guesses cannot all pass the limit.
    if !app.0.limiter.try_attempt(&name) {
        app.0.store.audit(
            &name,
            "login_refused",
            "/login",
            0,
            "too many failed logins",
        );
        return (
            StatusCode::TOO_MANY_REQUESTS,
            page(login(
                Some("Too many failed logins for this name; wait a minute."),
                app.0.oidc.as_ref().map(|o| o.label()),
            )),
        )
            .into_response();
    }
    let user = app.0.users.iter().find(|u| u.name == name);
    // The same work for an unknown name as for a wrong password.
    let hash = user
        .map_or(auth::dummy_hash(), |u| u.password_hash.as_str())
        .to_owned();
    let password = form.password;
    // At most two hashes at a time (this machine's cores): a flood of logins cannot take the console's CPU.
    let Ok(_permit) = app.0.hashing.acquire().await else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "The console is stopping.",
            None,
        );
    };
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    match user.filter(|_| ok) {
        Some(u) => {
            app.0.limiter.succeeded(&name);
            app.0.store.audit(&name, "login", "/login", 0, "ok");
            let session = Session::new(&u.name, u.role);
            (jar.add(session_cookie(&app, &session)), Redirect::to("/")).into_response()
        }
        None => {
            app.0.store.audit(
                &name,
                "login_refused",
                "/login",
                0,
                "wrong name or password",
            );
            (
                StatusCode::UNAUTHORIZED,
                page(login(
                    Some("Wrong name or password."),
                    app.0.oidc.as_ref().map(|o| o.label()),
                )),
            )
                .into_response()
        }
    }
}

/// The signed cookie of `session`: HttpOnly, SameSite (Lax for a login finished by the provider's redirect, which
/// Strict would not send on the next page), Secure under TLS; a session cookie, the session itself ending after
/// `SESSION_TTL`.
fn session_cookie(app: &App, session: &Session) -> Cookie<'static> {
    Cookie::build((COOKIE, session.to_cookie()))
        .path("/")
        .http_only(true)
        .same_site(if session.sso {
            SameSite::Lax
        } else {
            SameSite::Strict
        })
        .secure(app.0.secure)
        .build()
}

/// `/oidc/login`: to the provider, with a fresh state, nonce and PKCE challenge.
/// The cookie that binds a login on its way through the provider to the browser that started it.
const OIDC_STATE: &str = "hule_oidc_state";

async fn oidc_login(State(app): State<App>, jar: SignedCookieJar) -> Response {
    let Some(oidc) = app.0.oidc.clone() else {
        return refused(
            StatusCode::NOT_FOUND,
            "No OpenID Connect provider is configured.",
            None,
        );
    };
    match oidc.start().await {
        Ok((url, state)) => {
            // Lax: the provider's redirect back is a top-level navigation from another site.
            let cookie = Cookie::build((OIDC_STATE, state))
                .path("/oidc")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(app.0.secure)
                .build();
            (jar.add(cookie), Redirect::to(&url)).into_response()
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            page(login(
                Some(&format!("The sign-on provider cannot be used: {e}")),
                Some(oidc.label()),
            )),
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `/oidc/callback`: the provider's answer; a session when the code, the state and the ID token check out.
async fn oidc_callback(
    State(app): State<App>,
    jar: SignedCookieJar,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(oidc) = app.0.oidc.clone() else {
        return refused(
            StatusCode::NOT_FOUND,
            "No OpenID Connect provider is configured.",
            None,
        );
    };
    // The state must be the one this browser was given: a callback URL made in another browser (an attacker's own
    // login, to sign the victim in as the attacker) is refused.
    let bound = jar.get(OIDC_STATE).map(|c| c.value().to_owned());
    let jar = jar.remove(Cookie::build(OIDC_STATE).path("/oidc"));
    let outcome = match (&q.code, &q.state, &q.error) {
        (_, _, Some(e)) => Err(format!(
            "the provider refused: {}",
            e.chars().take(200).collect::<String>()
        )),
        (Some(_), Some(state), None) if bound.as_deref() != Some(state.as_str()) => {
            Err("this login did not start in this browser; start again".into())
        }
        (Some(code), Some(state), None) => {
            oidc.finish(code, state).await.map_err(|e| e.to_string())
        }
        _ => Err("the provider's answer has no code or state".into()),
    };
    match outcome {
        Ok(user) => {
            let role = if oidc.is_operator(&user) {
                crate::config::Role::Operator
            } else {
                crate::config::Role::Viewer
            };
            app.0
                .store
                .audit(&user, "login", "/oidc", 0, "ok (sign-on)");
            let mut session = Session::new(&user, role);
            session.sso = true;
            (jar.add(session_cookie(&app, &session)), Redirect::to("/")).into_response()
        }
        Err(e) => {
            app.0.store.audit("-", "login_refused", "/oidc", 0, &e);
            (
                StatusCode::UNAUTHORIZED,
                jar,
                page(login(
                    Some(&format!("Sign-on failed: {e}")),
                    Some(oidc.label()),
                )),
            )
                .into_response()
        }
    }
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(app): State<App>,
    jar: SignedCookieJar,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    match check_post(&app, &jar, &headers, &form.csrf, "/logout") {
        Ok(s) => {
            app.0.store.audit(&s.user, "logout", "/logout", 0, "ok");
            (
                jar.remove(Cookie::build(COOKIE).path("/")),
                Redirect::to("/login"),
            )
                .into_response()
        }
        Err(r) => *r,
    }
}

async fn overview(State(app): State<App>, jar: SignedCookieJar) -> Response {
    let session = session_or_login!(app, jar);
    let now = chrono::Utc::now().timestamp_millis();
    let (index, index_read) = (app.0.index.clone(), app.0.index.clone());
    let read = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::index::IndexError>((index.reasons(now)?, index_read.groups()?))
    })
    .await;
    let (reasons, groups) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return index_banner(&session, "Overview", &e.to_string()),
        Err(e) => return index_banner(&session, "Overview", &e.to_string()),
    };
    let probes = app.0.services.probe().await;
    let total: i64 = groups.iter().map(|g| g.count).sum();
    let replayed: i64 = groups.iter().map(|g| g.replayed).sum();
    let archived: i64 = groups.iter().map(|g| g.archived).sum();
    let (indexed, partitions) = app.0.indexer.progress();
    // The banner is the live counters' too: it appears and goes as they update.
    let banner = app.0.indexer.error().map(|e| kafka_banner(&e));
    page(layout(
        "Overview",
        Some(&session),
        None,
        html! {
            div #live-banner .banner style=[banner.is_none().then_some("display:none")] { (banner.unwrap_or_default()) }
            h1 { "Overview" }
            div.cards {
                div.card { b data-live="dead_letters" { (total) } "dead letters" }
                div.card { b data-live="groups" { (groups.len()) } "failure groups" }
                div.card { b data-live="replayed" { (replayed) } "replayed (ledger)" }
                div.card { b data-live="archived" { (archived) } "archived" }
                div.card {
                    b data-live="indexed" { (indexed) }
                    @if app.0.indexer.standby() { "indexed here: another console writes the shared index" }
                    @else { "records indexed since start · " (partitions) " partitions" }
                }
            }
            h2 { "Services" }
            (services_table(&probes))
            h2 { "Dead letters by reason" }
            table {
                tr { th { "reason" } th.n { "last hour" } th.n { "last day" } th.n { "all" } }
                @for (reason, hour, day, all) in &reasons {
                    tr { td { (reason) } td.n { (hour) } td.n { (day) } td.n { (all) } }
                }
                @if reasons.is_empty() { tr { td colspan="4" .muted { "No dead letters." } } }
            }
            h2 { "Largest failure groups" }
            (groups_table(&groups, 10))
            p.muted { "Consumer groups and their lag: " a href="/groups" { "Consumer groups" } "." }
            script { (maud::PreEscaped(crate::pages::LIVE_JS)) }
        },
    ))
}

/// The services' verdicts: relay health, outbox backlog, oldest pending age, parked rows.
pub(crate) fn services_table(probes: &[crate::services::Probe]) -> Markup {
    html! {
        table {
            tr { th { "service" } th { "relay (/healthz)" } th.n { "pending" } th.n { "oldest pending" } th.n { "parked" } }
            @for p in probes {
                tr {
                    td { a href=(format!("/outbox?service={}", p.name)) { (p.name) } }
                    td {
                        @match &p.health {
                            None => span.muted { "not configured" },
                            Some(Ok((status, body))) => {
                                span class=(if *status == 200 { "tag done" } else { "tag bad" }) { (status) } " " (body)
                            }
                            Some(Err(e)) => span.tag.bad { (e) },
                        }
                    }
                    @match &p.outbox {
                        None => td colspan="3" .muted { "no outbox configured" },
                        Some(Ok(g)) => {
                            td.n { (g.pending) }
                            td.n { (g.oldest_pending_age_seconds.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "-".into())) }
                            td.n { @if g.parked > 0 { span.tag.bad { (g.parked) } } @else { "0" } }
                        }
                        Some(Err(e)) => td colspan="3" { span.tag.bad { "outbox cannot be read: " (e) } },
                    }
                }
            }
            @if probes.is_empty() { tr { td colspan="5" .muted { "No [[services]] in the console's configuration." } } }
        }
    }
}

pub(crate) fn index_banner(session: &Session, title: &str, e: &str) -> Response {
    page(layout(
        title,
        Some(session),
        Some(&format!("The console's index cannot be read: {e}")),
        html! {},
    ))
}

pub(crate) fn kafka_banner(e: &str) -> String {
    format!("Kafka cannot be read right now: {e}. The pages show what was indexed before; they catch up once it answers.")
}

pub(crate) fn ms_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| "-".into())
}

fn groups_table(groups: &[crate::index::Group], limit: usize) -> Markup {
    html! {
        table {
            tr { th { "fingerprint" } th.n { "count" } th.n { "replayed" } th.n { "archived" } th { "event" } th { "service" }
                 th { "reason" } th { "first" } th { "last" } th { "error" } }
            @for g in groups.iter().take(limit) {
                tr {
                    td { a href=(format!("/dead-letters/{}", g.fingerprint.id)) { code { (g.fingerprint.id) } } }
                    td.n { (g.count) }
                    td.n { (g.replayed.min(g.count)) }
                    td.n { (g.archived) }
                    td { (g.fingerprint.event_type) } td { (g.fingerprint.service) }
                    td { span.tag { (g.fingerprint.reason) } }
                    td { (ms_time(g.first_ms)) } td { (ms_time(g.last_ms)) }
                    td { (hule_contracts::sensitive::mask_text(&g.fingerprint.message).chars().take(140).collect::<String>()) }
                }
            }
            @if groups.is_empty() { tr { td colspan="10" .muted { "No dead letters." } } }
        }
    }
}

async fn groups_page(State(app): State<App>, jar: SignedCookieJar) -> Response {
    let session = session_or_login!(app, jar);
    let index = app.0.index.clone();
    let groups = match tokio::task::spawn_blocking(move || index.groups()).await {
        Ok(Ok(g)) => g,
        Ok(Err(e)) => return index_banner(&session, "Dead letters", &e.to_string()),
        Err(e) => return index_banner(&session, "Dead letters", &e.to_string()),
    };
    page(layout(
        "Dead letters",
        Some(&session),
        app.0.indexer.error().map(|e| kafka_banner(&e)).as_deref(),
        html! { h1 { "Dead letters by failure" } (groups_table(&groups, usize::MAX)) },
    ))
}

#[derive(serde::Deserialize)]
struct PageQuery {
    page: Option<usize>,
}

const PER_PAGE: usize = 50;

async fn group_page(
    State(app): State<App>,
    jar: SignedCookieJar,
    Path(fingerprint): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let session = session_or_login!(app, jar);
    let index = app.0.index.clone();
    let fp = fingerprint.clone();
    let at = q.page.unwrap_or(1).max(1);
    let read = tokio::task::spawn_blocking(move || {
        let group = index.group(&fp)?;
        let records = index.group_records(&fp, ((at - 1) * PER_PAGE) as i64, PER_PAGE as i64)?;
        let ids: Vec<String> = records.iter().map(crate::index::Hit::id).collect();
        let dispositions = index.dispositions(&ids)?;
        Ok::<_, crate::index::IndexError>((group, records, dispositions))
    })
    .await;
    let (group, records, dispositions) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return index_banner(&session, "Dead letters", &e.to_string()),
        Err(e) => return index_banner(&session, "Dead letters", &e.to_string()),
    };
    let Some(group) = group else {
        return refused(
            StatusCode::NOT_FOUND,
            "No failure group has this fingerprint (any more).",
            Some(&session),
        );
    };
    let pages = (group.count as usize).div_ceil(PER_PAGE).max(1);
    let at = at.min(pages);
    let id = &group.fingerprint.id;
    page(layout(
        "Dead letters",
        Some(&session),
        app.0.indexer.error().map(|e| kafka_banner(&e)).as_deref(),
        html! {
            h1 { "Failure " code { (id) } }
            p {
                span.tag { (group.fingerprint.reason) } " " (group.fingerprint.event_type) " in " b { (group.fingerprint.service) }
                " · " (group.count) " dead letters, " (ms_time(group.first_ms)) " to " (ms_time(group.last_ms))
                " · " (group.replayed.min(group.count)) " replayed · " (group.archived) " archived"
            }
            pre { (hule_contracts::sensitive::mask_text(&group.fingerprint.message)) }
            @if session.operator() {
                form.act method="post" action=(format!("/dead-letters/{id}/replay")) {
                    input type="hidden" name="csrf" value=(session.csrf);
                    label { "Records per second (empty: no limit)" input name="rate" type="number" min="0.001" max="1000000" step="any"; }
                    label { "Note for the ledger" input name="note" size="40"; }
                    button.primary type="submit" name="dry_run" value="1" { "Dry run" }
                    button.primary type="submit" name="dry_run" value="0" { "Replay the group" }
                }
                form.act method="post" action=(format!("/dead-letters/{id}/archive")) {
                    input type="hidden" name="csrf" value=(session.csrf);
                    label { "Reason (required)" input name="reason" size="50" required; }
                    button.primary type="submit" { "Archive the group" }
                }
            }
            h2 { "Records (page " (at) " of " (pages) ", newest first)" }
            form method="post" action=(format!("/dead-letters/{id}/replay")) {
                @if session.operator() { input type="hidden" name="csrf" value=(session.csrf); }
                table {
                    tr { @if session.operator() { th {} } th { "dead letter" } th { "key" } th { "event id" } th { "failed" }
                         th.n { "retries" } th { "state" } }
                    @for h in &records {
                        @let hid = h.id();
                        tr {
                            @if session.operator() { td { input type="checkbox" name="only" value=(hid); } }
                            td { a href=(format!("/records/{}/{}/{}", h.topic, h.partition, h.offset)) { code { (hid) } } }
                            td { (h.key.as_deref().unwrap_or("")) }
                            td { code { (h.event_id.as_deref().unwrap_or("-")) } }
                            td { (ms_time(h.ts_ms)) }
                            td.n { (h.retries.unwrap_or(0)) }
                            td {
                                @if let Some(d) = dispositions.get(&hid) {
                                    @if let Some(e) = &d.replayed { span.tag.done { "replayed ×" (e.replays) } " " span.muted { (e.by) } " " }
                                    @if let Some((_, by, why)) = &d.archived { span.tag { "archived" } " " span.muted { (by) ": " (why) } }
                                }
                            }
                        }
                    }
                }
                @if session.operator() {
                    div.act {
                        // This form acts on the ticked records only: nothing ticked is refused, never the group.
                        input type="hidden" name="selection" value="1";
                        input type="hidden" name="rate" value="";
                        input type="hidden" name="note" value="";
                        button.primary type="submit" name="dry_run" value="1" { "Dry run of the selection" }
                        " "
                        button.primary type="submit" name="dry_run" value="0" { "Replay the selection" }
                        " "
                        label { "Reason (to archive)" input name="reason" size="30"; }
                        button.primary type="submit" formaction=(format!("/dead-letters/{id}/archive")) { "Archive the selection" }
                    }
                }
            }
            p {
                @if at > 1 { a href=(format!("?page={}", at - 1)) { "← newer" } " " }
                @if at < pages { a href=(format!("?page={}", at + 1)) { "older →" } }
            }
        },
    ))
}

#[derive(serde::Deserialize)]
struct UnmaskForm {
    csrf: String,
}

async fn record_page(
    State(app): State<App>,
    jar: SignedCookieJar,
    Path((topic, partition, offset)): Path<(String, i32, i64)>,
) -> Response {
    let session = session_or_login!(app, jar);
    show_record(&app, &session, &topic, partition, offset, false).await
}

/// An operator's request to see a record's personal data: checked as every POST, audited.
async fn record_unmask(
    State(app): State<App>,
    jar: SignedCookieJar,
    headers: HeaderMap,
    Path((topic, partition, offset)): Path<(String, i32, i64)>,
    Form(form): Form<UnmaskForm>,
) -> Response {
    let target = format!("{topic}:{partition}:{offset}");
    let session = match check_operator_post(
        &app,
        &jar,
        &headers,
        &form.csrf,
        &target,
        "unmask needs the operator role",
    ) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    // Shown only when the audit log has it.
    let (store, user, t) = (app.0.store.clone(), session.user.clone(), target.clone());
    let audited =
        tokio::task::spawn_blocking(move || store.audit_checked(&user, "unmask", &t, 1, "shown"))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
    if let Err(e) = audited {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "Personal data is shown only when the audit log records it, and it cannot now: {e}"
            ),
            Some(&session),
        );
    }
    show_record(&app, &session, &topic, partition, offset, true).await
}

/// One record fetched from Kafka by its position, at most a few at once (each is a short-lived consumer).
pub(crate) async fn fetch_record(
    app: &App,
    topic: &str,
    partition: i32,
    offset: i64,
    timeout: Duration,
) -> Result<Option<hule_kafka::follow::Followed>, String> {
    let _permit = tokio::time::timeout(timeout, app.0.fetches.acquire())
        .await
        .map_err(|_| "too many records are being read from Kafka right now".to_owned())?
        .map_err(|e| e.to_string())?;
    let (kafka, t) = (app.0.data.kafka().clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        hule_kafka::follow::fetch(&kafka, &t, partition, offset, timeout)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// A record in full: where it is, its headers, its value decoded (a dead letter's record and the original event
/// inside it), personal data masked unless `unmasked`; bytes that do not decode are shown as such.
async fn show_record(
    app: &App,
    session: &Session,
    topic: &str,
    partition: i32,
    offset: i64,
    unmasked: bool,
) -> Response {
    // Only what the console indexes: the record view is not a window on every topic of the cluster.
    if !crate::index::indexed_topic(topic) {
        return refused(
            StatusCode::NOT_FOUND,
            "The console shows records of the registered event topics, the dead-letter topics and the ledger only.",
            Some(session),
        );
    }
    let record =
        match fetch_record(app, topic, partition, offset, Duration::from_secs(10)).await {
            Ok(Some(r)) => r,
            Ok(None) => return refused(
                StatusCode::NOT_FOUND,
                "No record at this position (deleted by retention, compacted, or never written).",
                Some(session),
            ),
            Err(e) => {
                return refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &kafka_banner(&e),
                    Some(session),
                )
            }
        };
    let d = &record.delivery;
    let id = format!("{topic}:{partition}:{offset}");
    let shown = crate::pages::show_value(topic, d.payload.as_deref(), !unmasked);
    let disposition = if topic.ends_with(".dlq.v1") {
        let (index, ids) = (app.0.index.clone(), vec![id.clone()]);
        tokio::task::spawn_blocking(move || index.dispositions(&ids))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|mut m| m.remove(&id))
    } else {
        None
    };
    let key = d
        .key
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    page(layout(
        "Dead letters",
        Some(session),
        None,
        html! {
            h1 { "Record " code { (id) } }
            p { (record.timestamp_ms.map(ms_time).unwrap_or_default()) " · key " code { (key) } " · "
                (d.payload.as_ref().map_or(0, Vec::len)) " bytes · "
                a href=(format!("/trace?q={}", crate::flow::urlencode(d.headers.get("event_id").unwrap_or(&key)))) { "trace it" } }
            @if let Some(disp) = &disposition {
                @if let Some(e) = &disp.replayed {
                    p.banner.ok { "Replayed " (e.replays) " time(s), last by " (e.by) " at " (short_time(&e.replayed_at))
                        " to " (e.to_topic) @if let Some(n) = &e.note { " — " (n) } }
                }
                @if let Some((at, by, why)) = &disp.archived {
                    p.banner.ok { "Archived by " (by) " at " (at) ": " (why) }
                }
            }
            h2 { "Headers" }
            table { @for (k, v) in d.headers.iter() { tr { td { code { (k) } } td { code { (v) } } } } }
            h2 { "Value" }
            @if shown.masked > 0 {
                p.muted { (shown.masked) " personal value(s) masked (•••)." }
                @if session.operator() {
                    form method="post" action=(format!("/records/{topic}/{partition}/{offset}")) {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button.primary type="submit" { "Show personal data (audited)" }
                    }
                }
            }
            @if let Some(e) = &shown.error { p.banner { (e) } }
            pre { (shown.text) }
        },
    ))
}

#[derive(serde::Deserialize)]
struct ReplayForm {
    csrf: String,
    rate: Option<String>,
    note: Option<String>,
    dry_run: Option<String>,
    #[serde(default)]
    only: Vec<String>,
    /// From the selection form: `only` must not be empty.
    selection: Option<String>,
}

async fn replay_submit(
    State(app): State<App>,
    jar: SignedCookieJar,
    headers: HeaderMap,
    Path(fingerprint): Path<String>,
    axum_extra::extract::Form(form): axum_extra::extract::Form<ReplayForm>,
) -> Response {
    let session = match check_operator_post(
        &app,
        &jar,
        &headers,
        &form.csrf,
        &fingerprint,
        "replay needs the operator role",
    ) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let rate = match form
        .rate
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        None => None,
        Some(r) => match r.parse::<f64>() {
            Ok(v) if (0.001..=1_000_000.0).contains(&v) => Some(v),
            _ => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "The rate must be from 0.001 to 1,000,000 records per second.",
                    Some(&session),
                )
            }
        },
    };
    if form.selection.is_some() && form.only.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            "No record is ticked: tick the records to act on, or use the group's own buttons.",
            Some(&session),
        );
    }
    let note = form.note.filter(|n| !n.trim().is_empty());
    let index = app.0.index.clone();
    let fp = fingerprint.clone();
    let known = matches!(
        tokio::task::spawn_blocking(move || index.group(&fp)).await,
        Ok(Ok(Some(_)))
    );
    if !known {
        return refused(
            StatusCode::NOT_FOUND,
            "No failure group has this fingerprint.",
            Some(&session),
        );
    }
    let only: Option<std::collections::HashSet<String>> =
        (!form.only.is_empty()).then(|| form.only.into_iter().collect());
    if form.dry_run.as_deref() == Some("1") {
        return dry_run(&app, &session, &fingerprint, only.as_ref()).await;
    }
    let id = app.0.jobs.start(
        app.0.data.clone(),
        app.0.store.clone(),
        app.0.index.clone(),
        &session.user,
        &fingerprint,
        crate::jobs::Options { rate, note, only },
    );
    Redirect::to(&format!("/replays/{id}")).into_response()
}

#[derive(serde::Deserialize)]
struct ArchiveForm {
    csrf: String,
    reason: String,
    #[serde(default)]
    only: Vec<String>,
    /// From the selection form: `only` must not be empty.
    selection: Option<String>,
}

/// Archives a group's dead letters (or the selected ones) with a reason: they show as archived and a replay of
/// the group leaves them out.
async fn archive_submit(
    State(app): State<App>,
    jar: SignedCookieJar,
    headers: HeaderMap,
    Path(fingerprint): Path<String>,
    axum_extra::extract::Form(form): axum_extra::extract::Form<ArchiveForm>,
) -> Response {
    let session = match check_operator_post(
        &app,
        &jar,
        &headers,
        &form.csrf,
        &fingerprint,
        "archive needs the operator role",
    ) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if form.selection.is_some() && form.only.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            "No record is ticked: tick the records to act on, or use the group's own buttons.",
            Some(&session),
        );
    }
    let reason = form.reason.trim().chars().take(500).collect::<String>();
    if reason.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            "Archiving needs a reason.",
            Some(&session),
        );
    }
    if app.0.jobs.running(&fingerprint) {
        return refused(
            StatusCode::CONFLICT,
            "A replay of this group is running: cancel it or let it finish before archiving (what it already sent \
             stays sent).",
            Some(&session),
        );
    }
    let (index, fp, user) = (
        app.0.index.clone(),
        fingerprint.clone(),
        session.user.clone(),
    );
    let only = form.only;
    let done = tokio::task::spawn_blocking(move || {
        let ids: Vec<(String, String)> = index
            .group_records(&fp, 0, i64::MAX)?
            .iter()
            .map(|h| (h.id(), fp.clone()))
            .filter(|(id, _)| only.is_empty() || only.contains(id))
            .collect();
        index.archive(&ids, &user, &reason).map(|n| (n, ids.len()))
    })
    .await;
    match done {
        Ok(Ok((n, of))) => {
            app.0.store.audit(
                &session.user,
                "archive",
                &fingerprint,
                n as i64,
                &format!("ok ({of} selected)"),
            );
            Redirect::to(&format!("/dead-letters/{fingerprint}")).into_response()
        }
        Ok(Err(e)) => index_banner(&session, "Dead letters", &e.to_string()),
        Err(e) => index_banner(&session, "Dead letters", &e.to_string()),
    }
}

async fn dry_run(
    app: &App,
    session: &Session,
    fingerprint: &str,
    only: Option<&std::collections::HashSet<String>>,
) -> Response {
    let snapshot = snapshot_or_banner!(app, session, "Dead letters");
    let (letters, archived_out) =
        match crate::jobs::choose(&app.0.index, &snapshot, fingerprint, only).await {
            Ok(c) => c,
            Err(e) => return refused(StatusCode::CONFLICT, &e, Some(session)),
        };
    let plan = hule_kafka::replay::plan(
        &letters,
        &snapshot.letters,
        &snapshot.ledger,
        &hule_kafka::replay::PlanOptions {
            again: false,
            limit: None,
            replay_id: "dry-run".into(),
            by: session.user.clone(),
            note: None,
            now: hule_contracts::Timestamp::from_datetime(chrono::Utc::now()),
            reencode: false,
        },
    );
    app.0.store.audit(
        &session.user,
        "replay_dry_run",
        fingerprint,
        plan.records.len() as i64,
        "ok",
    );
    page(layout(
        "Dead letters",
        Some(session),
        None,
        html! {
            h1 { "Dry run of " code { (fingerprint) } }
            p { b { (plan.records.len()) } " record(s) would be sent; " (plan.already.len())
                " dead letter(s) left out because the ledger has them; " (archived_out) " archived and left out; "
                (plan.unreplayable.len()) " cannot be replayed." }
            table {
                tr { th { "dead letter(s)" } th { "to topic" } th { "key" } th { "event id" } th { "bytes" } }
                @for p in plan.records.iter().take(500) {
                    tr {
                        td { @for e in &p.entries { code { (e.dead_letter) } " " } }
                        td { (p.replay.topic) }
                        td { (p.replay.key.as_deref().map(String::from_utf8_lossy).unwrap_or_default()) }
                        td { code { (p.entries[0].event_id.as_deref().unwrap_or("-")) } }
                        td.n { (p.replay.value.len()) }
                    }
                }
            }
            @for (id, why) in &plan.unreplayable { p.banner { (id) ": " (why) } }
            p { a href=(format!("/dead-letters/{fingerprint}")) { "← back to the group" } }
        },
    ))
}

async fn replays_page(State(app): State<App>, jar: SignedCookieJar) -> Response {
    let session = session_or_login!(app, jar);
    let jobs = app.0.jobs.all();
    page(layout(
        "Replays",
        Some(&session),
        None,
        html! {
            h1 { "Replays started here" }
            table {
                tr { th { "replay" } th { "by" } th { "fingerprint" } th { "sent" } th { "state" } }
                @for j in &jobs {
                    tr {
                        td { a href=(format!("/replays/{}", j.id)) { code { (j.id) } } }
                        td { (j.user) } td { code { (j.fingerprint) } }
                        td.n { (j.sent) " / " (j.total) } td { (state_text(&j.state)) }
                    }
                }
                @if jobs.is_empty() { tr { td colspan="5" .muted { "None yet. Every replay, from here or the CLI, is in the ledger (hule.dlq.replays.v1)." } } }
            }
        },
    ))
}

fn state_text(s: &JobState) -> String {
    match s {
        JobState::Failed(e) => format!("failed: {e}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

async fn replay_page(
    State(app): State<App>,
    jar: SignedCookieJar,
    Path(id): Path<String>,
) -> Response {
    let session = session_or_login!(app, jar);
    let Some(job) = app.0.jobs.get(&id) else {
        return refused(
            StatusCode::NOT_FOUND,
            "No replay with this id on this console.",
            Some(&session),
        );
    };
    let percent =
        (job.sent * 100)
            .checked_div(job.total)
            .unwrap_or(if job.state == JobState::Running {
                0
            } else {
                100
            });
    let running = job.state == JobState::Running;
    let body = html! {
        h1 { "Replay " code { (job.id) } }
        p { "Fingerprint " a href=(format!("/dead-letters/{}", job.fingerprint)) { code { (job.fingerprint) } } ", started by " (job.user) }
        div.bar { span style=(format!("width:{percent}%")) {} }
        p { b { (job.sent) " of " (job.total) } " record(s) sent (" (percent) " %), " (job.already)
            " dead letter(s) left out because the ledger has them · " (state_text(&job.state)) }
        @if running && session.operator() {
            form method="post" action=(format!("/replays/{}/cancel", job.id)) {
                input type="hidden" name="csrf" value=(session.csrf);
                button.primary type="submit" { "Cancel" }
            }
        }
    };
    let mut html = layout("Replays", Some(&session), None, body).into_string();
    if running {
        // Reloads itself while the replay runs (no JavaScript needed).
        html = html.replacen(
            "<head>",
            "<head><meta http-equiv=\"refresh\" content=\"1\">",
            1,
        );
    }
    Html(html).into_response()
}

async fn replay_cancel(
    State(app): State<App>,
    jar: SignedCookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let session = match check_operator_post(
        &app,
        &jar,
        &headers,
        &form.csrf,
        &id,
        "cancelling needs the operator role",
    ) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if uuid::Uuid::parse_str(&id).is_err() {
        return refused(
            StatusCode::NOT_FOUND,
            "No replay with this id.",
            Some(&session),
        );
    }
    app.0.jobs.cancel(&id);
    app.0
        .store
        .audit(&session.user, "replay_cancel", &id, 0, "asked");
    Redirect::to(&format!("/replays/{id}")).into_response()
}

#[derive(serde::Deserialize)]
struct AuditQuery {
    q: Option<String>,
}

async fn audit_page(
    State(app): State<App>,
    jar: SignedCookieJar,
    Query(q): Query<AuditQuery>,
) -> Response {
    let session = session_or_login!(app, jar);
    if !session.operator() {
        // The log holds what people typed as user names at failed logins (often a password by mistake).
        return refused(
            StatusCode::FORBIDDEN,
            "The audit log is for operators.",
            Some(&session),
        );
    }
    let filter = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let (store, wanted) = (app.0.store.clone(), filter.map(str::to_owned));
    let entries = tokio::task::spawn_blocking(move || store.audit_log(wanted.as_deref(), 500))
        .await
        .map_err(|e| crate::db::DbError(e.to_string()))
        .and_then(|r| r);
    page(layout(
        "Audit",
        Some(&session),
        entries
            .as_ref()
            .err()
            .map(|e| format!("The audit log cannot be read: {e}"))
            .as_deref(),
        html! {
            h1 { "Audit" }
            form method="get" { label { "User or action" input name="q" value=[filter]; } }
            table {
                tr { th { "when" } th { "who" } th { "what" } th { "on" } th { "records" } th { "result" } }
                @for e in entries.as_deref().unwrap_or_default() {
                    tr { td { (e.at) } td { (e.user) } td { (e.action) } td { code { (e.target) } } td.n { (e.records) } td { (e.result) } }
                }
            }
        },
    ))
}

/// What a lag read that ran out of time says.
pub(crate) const PARTIAL_LAG: &str =
    "Not every consumer group answered within 8 seconds: the groups shown are those read in time.";

/// Every consumer group's committed and end offsets (only `topic`'s, when given), read one group after another
/// within 8 seconds in all: what was read by then is returned, with `true` when some groups were not reached.
pub(crate) async fn read_lag(
    app: &App,
    topic: Option<String>,
) -> Result<(Vec<hule_kafka::lag::PartitionLag>, bool), String> {
    let kafka = app.0.data.kafka().clone();
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(8);
        let left = || deadline.saturating_duration_since(std::time::Instant::now());
        let mut rows = Vec::new();
        for g in
            hule_kafka::lag::groups(&kafka, Duration::from_secs(5)).map_err(|e| e.to_string())?
        {
            if left().is_zero() {
                return Ok((rows, true));
            }
            let lag = hule_kafka::lag::group_lag(&kafka, &g, left().min(Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
            rows.extend(
                lag.into_iter()
                    .filter(|r| topic.as_ref().is_none_or(|t| &r.topic == t)),
            );
        }
        Ok((rows, false))
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn groups_lag_page(State(app): State<App>, jar: SignedCookieJar) -> Response {
    let session = session_or_login!(app, jar);
    let read = read_lag(&app, None).await;
    let (rows, partial) = match read {
        Ok(r) => r,
        Err(e) => {
            let why = if e.contains("UnsupportedFeature") {
                format!("This cluster does not list consumer groups ({e}); the embedded demo cluster is such a one.")
            } else {
                kafka_banner(&e)
            };
            return page(layout(
                "Consumer groups",
                Some(&session),
                Some(&why),
                html! {},
            ));
        }
    };
    let sums = hule_kafka::lag::totals(&rows);
    page(layout(
        "Consumer groups",
        Some(&session),
        partial.then_some(PARTIAL_LAG),
        html! {
            h1 { "Consumer groups" }
            p.muted { "Live: read again every 5 seconds." }
            script { (maud::PreEscaped(crate::pages::REFRESH_JS)) }
            table {
                tr { th { "group" } th.n { "partitions" } th.n { "lag" } }
                @for g in &sums { tr { td { code { (g.group) } } td.n { (g.partitions) } td.n { (g.lag) } } }
                @if sums.is_empty() { tr { td colspan="3" .muted { "No group has committed offsets." } } }
            }
            h2 { "Partitions" }
            table {
                tr { th { "group" } th { "topic" } th.n { "partition" } th.n { "committed" } th.n { "end" } th.n { "lag" } }
                @for r in &rows {
                    tr { td { code { (r.group) } } td { (r.topic) } td.n { (r.partition) } td.n { (r.committed) }
                         td.n { (r.end) } td.n { (r.lag) } }
                }
            }
        },
    ))
}
