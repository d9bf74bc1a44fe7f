//! The pages that follow events rather than failures: Trace (one id across outbox rows, Kafka records, dead
//! letters and replays), Events (the contracts with what the index saw of each), Outbox (each service's pending and
//! parked rows, retried or discarded), the live tail, and the overview's live counters. Every list comes from the
//! index or a bounded database query; none scans a topic.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::SignedCookieJar;
use hule_contracts::{Event, EVENTS};
use hule_outbox::store::RetryTarget;
use maud::{html, Markup};

use crate::index::Hit;
use crate::pages::layout;
use crate::session_or_login;
use crate::web::{check_operator_post, index_banner, kafka_banner, ms_time, page, refused, App};

/// The thin and rich events published for one outcome (the original's dual-event pattern): (thin, rich).
pub const DUAL_EVENTS: &[(&str, &str)] = &[
    ("SPELLCHECK_PHASE_COMPLETED", "SPELLCHECK_RESULTS"),
    ("CJ_ASSESSMENT_COMPLETED", "ASSESSMENT_RESULT_PUBLISHED"),
];

fn pair_of(name: &str) -> Option<(&'static str, &'static str)> {
    DUAL_EVENTS.iter().find_map(|(thin, rich)| match name {
        n if n == *thin => Some(("rich", *rich)),
        n if n == *rich => Some(("thin", *thin)),
        _ => None,
    })
}

/// Runs a blocking index read off the async threads.
async fn indexed<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&crate::index::Index) -> Result<T, crate::index::IndexError> + Send + 'static,
) -> Result<T, String> {
    let index = app.0.index.clone();
    tokio::task::spawn_blocking(move || f(&index))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

fn record_link(h: &Hit) -> Markup {
    html! { a href=(format!("/records/{}/{}/{}", h.topic, h.partition, h.offset)) { code { (h.id()) } } }
}

#[derive(serde::Deserialize)]
pub(crate) struct TraceQuery {
    q: Option<String>,
}

/// One line of a trace.
struct Step {
    ts_ms: i64,
    what: &'static str,
    markup: Markup,
}

/// `/trace?q=`: every outbox row, Kafka record, dead letter and replay of an event id, correlation id or key, in
/// time order.
pub(crate) async fn trace_page(
    State(app): State<App>,
    jar: SignedCookieJar,
    Query(q): Query<TraceQuery>,
) -> Response {
    let session = session_or_login!(app, jar);
    let q: String = q.q.unwrap_or_default().trim().chars().take(255).collect();
    let form = html! {
        h1 { "Trace" }
        form.act method="get" action="/trace" {
            label { "Event id, correlation id or key" input name="q" size="60" value=(q) autofocus; }
            button.primary type="submit" { "Trace" }
        }
    };
    if q.is_empty() {
        return page(layout(
            "Trace",
            Some(&session),
            None,
            html! { (form)
            p.muted { "One id is followed across the services' outboxes (rows not yet published or parked), every \
                       registered topic, the dead-letter topics and the replay ledger." } },
        ));
    }
    let query = q.clone();
    let hits = match indexed(&app, move |i| i.trace(&query, 2_000)).await {
        Ok(h) => h,
        Err(e) => return index_banner(&session, "Trace", &e),
    };
    let dead_letters: Vec<String> = hits.iter().filter(|h| h.dead_letter).map(Hit::id).collect();
    let ids = dead_letters.clone();
    let dispositions = indexed(&app, move |i| i.dispositions(&ids))
        .await
        .unwrap_or_default();
    let outbox = app.0.services.find(&q).await;
    let mut steps: Vec<Step> = Vec::new();
    let mut banners: Vec<String> = Vec::new();
    for (service, found) in &outbox {
        match found {
            Ok(rows) => steps.extend(rows.iter().map(|r| Step {
                ts_ms: r.created_ms,
                what: if r.parked { "outbox row (parked)" } else { "outbox row (pending)" },
                markup: html! {
                    a href=(format!("/outbox?service={service}")) { (service) } " #" (r.seq) " → " (r.topic)
                    " · key " code { (r.key.as_deref().unwrap_or("-")) } " · " (r.event_type)
                    @if r.attempts > 0 { " · " (r.attempts) " failed attempt(s): " (r.last_error.as_deref().unwrap_or("")) }
                },
            })),
            Err(e) => banners.push(format!("The outbox of {service} cannot be read: {e}")),
        }
    }
    for h in &hits {
        let (what, markup) = if h.dead_letter {
            (
                "dead letter",
                html! {
                    (record_link(h)) " · " span.tag.bad { (h.reason.as_deref().unwrap_or("-")) }
                    " failed at " code { (h.original.as_deref().unwrap_or("-")) } " · "
                    a href=(format!("/dead-letters/{}", h.fingerprint.as_deref().unwrap_or(""))) { "group " code { (h.fingerprint.as_deref().unwrap_or("-")) } }
                    br; span.muted { (hule_contracts::sensitive::mask_text(h.error.as_deref().unwrap_or("")).chars().take(200).collect::<String>()) }
                },
            )
        } else {
            (
                if h.replayed_from.is_some() {
                    "record (replayed)"
                } else {
                    "record"
                },
                html! {
                    (record_link(h)) " · " (h.event_type.as_deref().unwrap_or("-")) " · key " code { (h.key.as_deref().unwrap_or("-")) }
                    " · " (h.size) " B"
                    @if let Some(from) = &h.replayed_from { " · replayed from " code { (from) } }
                },
            )
        };
        steps.push(Step {
            ts_ms: h.ts_ms,
            what,
            markup,
        });
    }
    for (id, d) in &dispositions {
        if let Some(e) = &d.replayed {
            steps.push(Step {
                ts_ms: e.replayed_at.as_datetime().timestamp_millis(),
                what: "replay (ledger)",
                markup: html! {
                    code { (id) } " → " (e.to_topic) " by " (e.by) " (×" (e.replays) ", run " code { (e.replay_id) } ")"
                    @if let Some(n) = &e.note { " — " (n) }
                },
            });
        }
        if let Some((at, by, why)) = &d.archived {
            let ts = chrono::DateTime::parse_from_rfc3339(at).map_or(0, |t| t.timestamp_millis());
            steps.push(Step {
                ts_ms: ts,
                what: "archived",
                markup: html! { code { (id) } " by " (by) ": " (why) },
            });
        }
    }
    // Within one millisecond, the order things happen in: a row is published, fails, is replayed (the ledger entry
    // is written with the replayed record, in one transaction), and the replay lands.
    let rank = |what: &str| match what {
        w if w.starts_with("outbox row") => 0,
        "record" => 1,
        "dead letter" => 2,
        "archived" | "replay (ledger)" => 3,
        _ => 4,
    };
    steps.sort_by_key(|s| (s.ts_ms, rank(s.what)));
    let banner = app.0.indexer.error().map(|e| kafka_banner(&e));
    page(layout(
        "Trace",
        Some(&session),
        banner.as_deref(),
        html! {
            (form)
            @for b in &banners { div.banner { (b) } }
            p { b { (steps.len()) } " step(s) for " code { (q) } "." }
            @if hits.len() >= 2_000 {
                div.banner { "Only the oldest 2,000 records of this id are shown: a key of a busy entity has more. Trace an \
                             event id or a correlation id to narrow it." }
            }
            table {
                tr { th { "time" } th { "step" } th { "where and what" } }
                @for s in &steps {
                    tr { td { (ms_time(s.ts_ms)) } td { span.tag { (s.what) } } td { (s.markup) } }
                }
                @if steps.is_empty() { tr { td colspan="3" .muted { "Nothing indexed or pending has this id." } } }
            }
        },
    ))
}

/// `/events`: the 71 contracts with, per event, records in the last hour, all indexed and dead letters.
pub(crate) async fn events_page(State(app): State<App>, jar: SignedCookieJar) -> Response {
    let session = session_or_login!(app, jar);
    let since = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let counts = match indexed(&app, move |i| i.event_counts(since)).await {
        Ok(c) => c,
        Err(e) => return index_banner(&session, "Events", &e),
    };
    page(layout(
        "Events",
        Some(&session),
        app.0.indexer.error().map(|e| kafka_banner(&e)).as_deref(),
        html! {
            h1 { "Events (" (EVENTS.len()) " contracts)" }
            table {
                tr { th { "event" } th { "topic" } th { "key" } th { "payload" } th { "pair" } th.n { "last hour" }
                     th.n { "indexed" } th.n { "dead letters" } }
                @for d in EVENTS {
                    @let c = counts.get(d.value).or_else(|| counts.get(d.topic)).cloned().unwrap_or_default();
                    tr {
                        td { a href=(format!("/events/{}", d.name)) { (d.name) } }
                        td { code { (d.topic) } }
                        td { code { (d.key.field) } }
                        td { (d.payload_type) }
                        td { @if let Some((kind, other)) = pair_of(d.name) { (kind) ": " a href=(format!("/events/{other}")) { (other) } } }
                        td.n { (c.recent) } td.n { (c.total) }
                        td.n { @if c.dead_letters > 0 { span.tag.bad { (c.dead_letters) } } @else { "0" } }
                    }
                }
            }
        },
    ))
}

/// `/events/{name}`: one contract, the consumer groups reading its topic with their lag, and a recent sample.
pub(crate) async fn event_page(
    State(app): State<App>,
    jar: SignedCookieJar,
    Path(name): Path<String>,
) -> Response {
    let session = session_or_login!(app, jar);
    let Ok(event) = Event::lookup(&name) else {
        return refused(
            StatusCode::NOT_FOUND,
            "No event of this name.",
            Some(&session),
        );
    };
    let d = event.def();
    let since = chrono::Utc::now().timestamp_millis() - 3_600_000;
    // The envelope's `event_type` is the event's value for the original's producers and its topic for others.
    let names = (d.value.to_owned(), d.topic.to_owned());
    let read = indexed(&app, move |i| {
        let counts = i.event_counts(since)?;
        let name = if counts.contains_key(&names.0) {
            &names.0
        } else {
            &names.1
        };
        let recent = i.recent_of(name, 20)?;
        Ok((counts, recent))
    })
    .await;
    let (counts, recent) = match read {
        Ok(r) => r,
        Err(e) => return index_banner(&session, "Events", &e),
    };
    let c = counts
        .get(d.value)
        .or_else(|| counts.get(d.topic))
        .cloned()
        .unwrap_or_default();
    // The groups reading its topic, with their lag: one bounded read of the cluster's groups.
    let lag = crate::web::read_lag(&app, Some(d.topic.to_owned())).await;
    // The newest record's value, masked unless the reader is an operator who asks on the record's page.
    let sample = match recent.first() {
        Some(h) => crate::web::fetch_record(
            &app,
            &h.topic,
            h.partition,
            h.offset,
            Duration::from_secs(5),
        )
        .await
        .ok()
        .flatten()
        .map(|r| crate::pages::show_value(d.topic, r.delivery.payload.as_deref(), true)),
        None => None,
    };
    page(layout(
        "Events",
        Some(&session),
        None,
        html! {
            h1 { (d.name) }
            table {
                tr { th { "value" } td { code { (d.value) } } }
                tr { th { "topic" } td { code { (d.topic) } @if d.has_distinct_legacy_topic() { " (legacy " code { (d.legacy_topic) } ")" } } }
                tr { th { "key" } td { code { (d.key.field) } " (" (format!("{:?}", d.key.concept)) ")" } }
                tr { th { "payload" } td { (d.payload_type) " (its fields: `hule catalog`, docs/catalog.html)" } }
                tr { th { "class" } td { (d.class.as_str()) } }
                tr { th { "producers" } td { (d.producers.join(", ")) } }
                tr { th { "consumers" } td { (d.consumers.join(", ")) } }
                @if let Some((kind, other)) = pair_of(d.name) { tr { th { "pair" } td { (kind) ": " a href=(format!("/events/{other}")) { (other) } } } }
            }
            div.cards {
                div.card { b { (c.recent) } "records in the last hour" }
                div.card { b { (c.total) } "indexed" }
                div.card { b { (c.dead_letters) } "dead letters" }
            }
            h2 { "Consumer groups reading " code { (d.topic) } }
            @if lag.as_ref().is_ok_and(|(_, partial)| *partial) { div.banner { (crate::web::PARTIAL_LAG) } }
            @match lag.as_ref().map(|(rows, _)| rows) {
                Ok(rows) => table {
                    tr { th { "group" } th.n { "partition" } th.n { "committed" } th.n { "end" } th.n { "lag" } }
                    @for r in rows { tr { td { code { (r.group) } } td.n { (r.partition) } td.n { (r.committed) } td.n { (r.end) } td.n { (r.lag) } } }
                    @if rows.is_empty() { tr { td colspan="5" .muted { "No group has committed an offset on this topic." } } }
                },
                Err(e) => div.banner { "Consumer groups cannot be read: " (e) },
            }
            h2 { "Recent records" }
            table {
                tr { th { "record" } th { "time" } th { "key" } th { "event id" } th { "correlation id" } th.n { "bytes" } }
                @for h in &recent {
                    tr { td { (record_link(h)) } td { (ms_time(h.ts_ms)) } td { code { (h.key.as_deref().unwrap_or("-")) } }
                         td { a href=(format!("/trace?q={}", urlencode(h.event_id.as_deref().unwrap_or("")))) { code { (h.event_id.as_deref().unwrap_or("-")) } } }
                         td { a href=(format!("/trace?q={}", urlencode(h.correlation_id.as_deref().unwrap_or("")))) { code { (h.correlation_id.as_deref().unwrap_or("-")) } } }
                         td.n { (h.size) } }
                }
                @if recent.is_empty() { tr { td colspan="6" .muted { "Nothing indexed yet." } } }
            }
            @if let Some(s) = &sample {
                h2 { "Sample (the newest record, personal data masked)" }
                pre { (s.text) }
            }
        },
    ))
}

#[derive(serde::Deserialize)]
pub(crate) struct OutboxQuery {
    service: Option<String>,
    parked: Option<String>,
}

/// `/outbox?service=&parked=1`: a service's pending or parked rows, with retry and discard for operators.
pub(crate) async fn outbox_page(
    State(app): State<App>,
    jar: SignedCookieJar,
    Query(q): Query<OutboxQuery>,
) -> Response {
    let session = session_or_login!(app, jar);
    let names: Vec<String> = app
        .0
        .services
        .names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let probes = app.0.services.probe().await;
    let Some(service) = q.service.or_else(|| names.first().cloned()) else {
        return page(layout(
            "Outbox",
            Some(&session),
            None,
            html! {
                h1 { "Outbox" }
                p.muted { "No [[services]] with an outbox in the console's configuration." }
            },
        ));
    };
    if !names.contains(&service) {
        return refused(
            StatusCode::NOT_FOUND,
            "No service of this name.",
            Some(&session),
        );
    }
    let parked = q.parked.as_deref() == Some("1");
    let rows = app.0.services.rows(&service, parked, 500).await;
    page(layout(
        "Outbox",
        Some(&session),
        rows.as_ref()
            .err()
            .map(|e| format!("The outbox of {service} cannot be read: {e}"))
            .as_deref(),
        html! {
            h1 { "Outbox" }
            (crate::web::services_table(&probes))
            nav.sub {
                @for n in &names { a href=(format!("/outbox?service={n}")) class=[(n == &service).then_some("on")] { (n) } }
            }
            h2 { (service) ": " (if parked { "parked rows" } else { "pending rows" }) " "
                 a href=(format!("/outbox?service={service}&parked={}", if parked { "0" } else { "1" })) {
                     "(show " (if parked { "pending" } else { "parked" }) ")" } }
            form method="post" action=(format!("/outbox/{service}/act")) {
                @if session.operator() { input type="hidden" name="csrf" value=(session.csrf); }
                table {
                    tr { @if session.operator() { th {} } th.n { "seq" } th { "committed" } th { "event" } th { "topic" } th { "key" }
                         th { "event id" } th.n { "attempts" } th { "last error" } }
                    @for r in rows.as_deref().unwrap_or_default() {
                        tr {
                            @if session.operator() { td { input type="checkbox" name="seq" value=(r.seq); } }
                            td.n { (r.seq) } td { (ms_time(r.created_ms)) } td { (r.event_type) } td { code { (r.topic) } }
                            td { a href=(format!("/trace?q={}", urlencode(r.key.as_deref().unwrap_or("")))) { code { (r.key.as_deref().unwrap_or("-")) } } }
                            td { a href=(format!("/trace?q={}", urlencode(r.event_id.as_deref().unwrap_or("")))) { code { (r.event_id.as_deref().unwrap_or("-")) } } }
                            td.n { (r.attempts) } td { (r.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                    @if rows.as_ref().is_ok_and(|r| r.is_empty()) { tr { td colspan="9" .muted { "No rows." } } }
                }
                @if session.operator() {
                    div.act {
                        label { "Key (retry or discard every failed row of it)" input name="key" size="30"; }
                        label { "Reason (discard)" input name="reason" size="40"; }
                        button.primary type="submit" name="action" value="retry" { "Retry" }
                        " "
                        button.primary type="submit" name="action" value="discard" { "Discard" }
                    }
                    p.muted { "Retry makes the selected rows (or the key's failed rows) due now; discard removes failed rows, \
                               keeping each in hule_outbox_discarded with the reason. Rows that never failed are not touched." }
                }
            }
        },
    ))
}

#[derive(serde::Deserialize)]
pub(crate) struct OutboxForm {
    csrf: String,
    action: String,
    #[serde(default)]
    seq: Vec<i64>,
    key: Option<String>,
    reason: Option<String>,
}

/// Retries or discards outbox rows: the selected ones, or every failed row of a key.
pub(crate) async fn outbox_act(
    State(app): State<App>,
    jar: SignedCookieJar,
    headers: HeaderMap,
    Path(service): Path<String>,
    axum_extra::extract::Form(form): axum_extra::extract::Form<OutboxForm>,
) -> Response {
    let target_name = format!("outbox:{service}");
    let session = match check_operator_post(
        &app,
        &jar,
        &headers,
        &form.csrf,
        &target_name,
        "outbox actions need the operator role",
    ) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if !app.0.services.names().contains(&service.as_str()) {
        return refused(
            StatusCode::NOT_FOUND,
            "No service of this name.",
            Some(&session),
        );
    }
    let key = form
        .key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned);
    let mut targets: Vec<RetryTarget> = form.seq.iter().map(|s| RetryTarget::Seq(*s)).collect();
    if let Some(k) = &key {
        targets.push(RetryTarget::Key(k.clone()));
    }
    if targets.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            "Select rows or give a key.",
            Some(&session),
        );
    }
    let what = match &key {
        Some(k) => format!("{target_name} key {k} + {} row(s)", form.seq.len()),
        None => format!("{target_name} {} row(s)", form.seq.len()),
    };
    let mut done = 0u64;
    let mut error = None;
    for t in targets {
        let r = match form.action.as_str() {
            "retry" => app.0.services.retry(&service, t).await,
            "discard" => {
                let reason = form.reason.as_deref().map(str::trim).unwrap_or("");
                if reason.is_empty() {
                    return refused(
                        StatusCode::BAD_REQUEST,
                        "Discarding needs a reason.",
                        Some(&session),
                    );
                }
                let reason = format!("{reason} (by {} in the console)", session.user);
                app.0
                    .services
                    .discard(&service, t, reason)
                    .await
                    .map(|n| n as u64)
            }
            _ => return refused(StatusCode::BAD_REQUEST, "Unknown action.", Some(&session)),
        };
        match r {
            Ok(n) => done += n,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let action = format!("outbox_{}", form.action);
    match error {
        None => {
            app.0
                .store
                .audit(&session.user, &action, &what, done as i64, "ok");
            Redirect::to(&format!("/outbox?service={service}&parked=1")).into_response()
        }
        Some(e) => {
            app.0.store.audit(
                &session.user,
                &action,
                &what,
                done as i64,
                &format!("failed: {e}"),
            );
            refused(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("The outbox of {service}: {e}"),
                Some(&session),
            )
        }
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct TailQuery {
    event: Option<String>,
    q: Option<String>,
}

/// Live tails open at once on one console.
pub const TAILS_AT_ONCE: usize = 16;

/// What the browser is sent per second at most: a busy topic is sampled, and the stream says how much it left out.
pub const TAIL_PER_SECOND: usize = 20;

fn tail_topics(event: Option<&str>) -> Result<Vec<String>, String> {
    match event.filter(|e| !e.is_empty()) {
        None => {
            let mut t: Vec<String> = EVENTS.iter().map(|d| d.topic.to_owned()).collect();
            t.sort();
            t.dedup();
            Ok(t)
        }
        Some(e) => Event::lookup(e)
            .map(|e| vec![e.def().topic.to_owned()])
            .map_err(|_| format!("no event `{e}`")),
    }
}

/// `/tail`: the live tail's page. With JavaScript it follows the stream; without, it lists the newest records the
/// index has for the filter.
pub(crate) async fn tail_page(
    State(app): State<App>,
    jar: SignedCookieJar,
    Query(q): Query<TailQuery>,
) -> Response {
    let session = session_or_login!(app, jar);
    let event = q.event.unwrap_or_default();
    let filter: String = q.q.unwrap_or_default().trim().chars().take(255).collect();
    let stream = format!(
        "/tail/stream?event={}&q={}",
        urlencode(&event),
        urlencode(&filter)
    );
    page(layout(
        "Live tail",
        Some(&session),
        None,
        html! {
            h1 { "Live tail" }
            form.act method="get" action="/tail" {
                label { "Event" select name="event" {
                    option value="" { "every event topic" }
                    @for d in EVENTS { option value=(d.name) selected[d.name == event] { (d.name) } }
                } }
                label { "Key, event id or correlation id (empty: all)" input name="q" size="40" value=(filter); }
                button.primary type="submit" { "Follow" }
            }
            p { button #pause type="button" { "Pause" } " " span #state .muted { "connecting…" } }
            noscript { p.banner { "The live tail needs JavaScript; the Trace page finds any record without it." } }
            table #tail {
                tr { th { "time" } th { "record" } th { "event" } th { "key" } th { "event id" } th { "value (personal data masked)" } }
            }
            script data-stream=(stream) { (maud::PreEscaped(TAIL_JS)) }
        },
    ))
}

/// `s` for a URL's query.
pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The tail's script: an `EventSource`, at most 200 rows kept on the page, pause and resume.
const TAIL_JS: &str = r#"
(function(){
  var url = document.currentScript.getAttribute('data-stream');
  var table = document.getElementById('tail'), state = document.getElementById('state');
  var btn = document.getElementById('pause'), es = null;
  function cell(tr, text, mono){ var td = document.createElement('td'); td.textContent = text; if (mono) td.style.whiteSpace='pre-wrap'; tr.appendChild(td); }
  function open(){
    es = new EventSource(url);
    es.onopen = function(){ state.textContent = 'connecting…'; };
    es.addEventListener('ready', function(){ state.textContent = 'following'; });
    es.onerror = function(){ state.textContent = 'reconnecting…'; };
    es.addEventListener('record', function(e){
      var r = JSON.parse(e.data), tr = document.createElement('tr');
      cell(tr, r.time); var td = document.createElement('td'); var a = document.createElement('a');
      a.href = '/records/' + r.topic + '/' + r.partition + '/' + r.offset; a.textContent = r.topic + ':' + r.partition + ':' + r.offset;
      td.appendChild(a); tr.appendChild(td);
      cell(tr, r.event_type || '-'); cell(tr, r.key || '-'); cell(tr, r.event_id || '-'); cell(tr, r.value, true);
      table.insertBefore(tr, table.rows[1] || null);
      while (table.rows.length > 201) table.deleteRow(table.rows.length - 1);
    });
    es.addEventListener('sampled', function(e){ state.textContent = 'following · busy: ' + e.data + ' record(s) not shown in the last second (sampled)'; });
    es.addEventListener('problem', function(e){ state.textContent = e.data; });
  }
  btn.onclick = function(){
    if (es) { es.close(); es = null; btn.textContent = 'Resume'; state.textContent = 'paused'; }
    else { open(); btn.textContent = 'Pause'; }
  };
  open();
})();
"#;

#[derive(serde::Serialize)]
struct TailRecord {
    time: String,
    topic: String,
    partition: i32,
    offset: i64,
    event_type: Option<String>,
    key: Option<String>,
    event_id: Option<String>,
    value: String,
}

/// `/tail/stream`: server-sent events of the records produced from now on, filtered, masked unless the reader is
/// an operator (operators see masked values here too: unmasking is per record and audited), and at most
/// [`TAIL_PER_SECOND`] a second.
pub(crate) async fn tail_stream(
    State(app): State<App>,
    jar: SignedCookieJar,
    Query(q): Query<TailQuery>,
) -> Response {
    let Some(session) = crate::web::session_of(&app, &jar) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    // At most TAILS_AT_ONCE tails (each a thread and a Kafka consumer); the permit lives as long as the stream.
    let Ok(permit) = app.0.tails.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many live tails are open on this console; close one and try again",
        )
            .into_response();
    };
    let topics = match tail_topics(q.event.as_deref()) {
        Ok(t) => t,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let filter: String = q.q.unwrap_or_default().trim().chars().take(255).collect();
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(64);
    let kafka = app.0.data.kafka().clone();
    // The stream ends when the session does (the `--no-auth` operator's never does).
    let expires = if app.0.local.is_some() {
        i64::MAX
    } else {
        session.expires
    };
    std::thread::Builder::new()
        .name("console-tail".into())
        .spawn(move || {
            let _permit = permit;
            follow_tail(&kafka, &topics, &filter, &tx, expires)
        })
        .ok();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The tail's reading loop (a thread per open tail): it ends when the browser goes away.
fn follow_tail(
    kafka: &hule_kafka::KafkaSettings,
    topics: &[String],
    filter: &str,
    tx: &tokio::sync::mpsc::Sender<SseEvent>,
    session_expires: i64,
) {
    let send = |e: SseEvent| tx.blocking_send(e).is_ok();
    let group = format!("hule-console-tail-{}", uuid::Uuid::new_v4().simple());
    let mut follower = match hule_kafka::follow::Follower::small(kafka, &group) {
        Ok(f) => f,
        Err(e) => {
            send(
                SseEvent::default()
                    .event("problem")
                    .data(kafka_banner(&e.to_string())),
            );
            return;
        }
    };
    let wanted: HashSet<&str> = topics.iter().map(String::as_str).collect();
    let mut assigned = false;
    let mut window = Instant::now();
    let (mut sent, mut skipped) = (0usize, 0usize);
    while !tx.is_closed() {
        if chrono::Utc::now().timestamp() >= session_expires {
            send(
                SseEvent::default()
                    .event("problem")
                    .data("the session ended; log in again"),
            );
            return;
        }
        if !assigned {
            match follower.topics(|t| wanted.contains(t), Duration::from_secs(5)) {
                Ok(t) => {
                    let parts: Vec<(String, i32)> = t
                        .iter()
                        .flat_map(|(t, n)| (0..*n).map(move |p| (t.clone(), p)))
                        .collect();
                    // Started at the end offsets asked for now: every record produced after "ready" reaches the
                    // page (an `End` assignment would resolve the end only at the first fetch, later).
                    let assignment = follower
                        .end_offsets(&parts, Duration::from_secs(5))
                        .and_then(|ends| {
                            follower.assign(&parts, &ends, hule_kafka::follow::Start::End)
                        });
                    let said = match assignment {
                        Ok(()) => {
                            assigned = true;
                            SseEvent::default().event("ready").data("following")
                        }
                        Err(e) => SseEvent::default()
                            .event("problem")
                            .data(kafka_banner(&e.to_string())),
                    };
                    if !send(said) {
                        return;
                    }
                    if !assigned {
                        std::thread::sleep(Duration::from_secs(2));
                        continue;
                    }
                }
                Err(e) => {
                    if !send(
                        SseEvent::default()
                            .event("problem")
                            .data(kafka_banner(&e.to_string())),
                    ) {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(2));
                    continue;
                }
            }
        }
        let (batch, error) = follower.poll(500, Duration::from_millis(250));
        if let Some(e) = error {
            if !send(
                SseEvent::default()
                    .event("problem")
                    .data(kafka_banner(&e.to_string())),
            ) {
                return;
            }
        }
        for r in batch {
            let row = crate::index::extract(&r.delivery, r.timestamp_ms.unwrap_or(0));
            let matches = filter.is_empty()
                || [&row.key, &row.event_id, &row.correlation_id]
                    .iter()
                    .any(|v| v.as_deref() == Some(filter));
            if !matches {
                continue;
            }
            if sent >= TAIL_PER_SECOND {
                skipped += 1;
                continue;
            }
            let shown = crate::pages::show_value(&row.topic, r.delivery.payload.as_deref(), true);
            let rec = TailRecord {
                time: ms_time(row.ts_ms),
                topic: row.topic,
                partition: row.partition,
                offset: row.offset,
                event_type: row.event_type,
                key: row.key,
                event_id: row.event_id,
                // One line per record: the table stays readable on a busy topic; the record's page has it whole.
                value: serde_json::from_str::<serde_json::Value>(&shown.text)
                    .map_or(shown.text, |v| v.to_string())
                    .chars()
                    .take(400)
                    .collect(),
            };
            let data = serde_json::to_string(&rec).unwrap_or_default();
            if !send(SseEvent::default().event("record").data(data)) {
                return;
            }
            sent += 1;
        }
        if window.elapsed() >= Duration::from_secs(1) {
            if skipped > 0
                && !send(
                    SseEvent::default()
                        .event("sampled")
                        .data(skipped.to_string()),
                )
            {
                return;
            }
            window = Instant::now();
            sent = 0;
            skipped = 0;
        }
    }
}

/// `/live/overview`: the overview's counters every two seconds.
pub(crate) async fn overview_stream(State(app): State<App>, jar: SignedCookieJar) -> Response {
    let Some(session) = crate::web::session_of(&app, &jar) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    // The stream ends with the session (the `--no-auth` operator's never does).
    let expires = if app.0.local.is_some() {
        i64::MAX
    } else {
        session.expires
    };
    let stream = futures::stream::unfold(app, move |app| async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if chrono::Utc::now().timestamp() >= expires {
            return None;
        }
        let groups = indexed(&app, |i| i.groups()).await.unwrap_or_default();
        let (indexed_n, _) = app.0.indexer.progress();
        let counts = serde_json::json!({
            "dead_letters": groups.iter().map(|g| g.count).sum::<i64>(),
            "groups": groups.len(),
            "replayed": groups.iter().map(|g| g.replayed).sum::<i64>(),
            "archived": groups.iter().map(|g| g.archived).sum::<i64>(),
            "indexed": indexed_n,
            "banner": app.0.indexer.error().map(|e| kafka_banner(&e)),
        });
        Some((
            Ok::<_, Infallible>(SseEvent::default().event("counts").data(counts.to_string())),
            app,
        ))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dual_event_names_a_registered_event() {
        for (thin, rich) in DUAL_EVENTS {
            assert!(
                Event::lookup(thin).is_ok() && Event::lookup(rich).is_ok(),
                "{thin} {rich}"
            );
        }
        assert_eq!(
            pair_of("SPELLCHECK_RESULTS"),
            Some(("thin", "SPELLCHECK_PHASE_COMPLETED"))
        );
    }

    #[test]
    fn the_tail_reads_every_event_topic_or_one() {
        assert!(tail_topics(None).expect("all").len() > 50);
        assert_eq!(
            tail_topics(Some("SPELLCHECK_RESULTS")).expect("one").len(),
            1
        );
        assert!(tail_topics(Some("nope")).is_err());
        assert_eq!(urlencode("a b&c"), "a%20b%26c");
    }
}
