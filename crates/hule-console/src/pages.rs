//! The pages, as maud markup (checked at compile time; every interpolated value is HTML-escaped). They work with
//! JavaScript off: forms post, a running replay's page reloads itself.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::auth::Session;

const STYLE: &str = "
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{background:#1f2937;color:#fff;padding:10px 20px;display:flex;gap:18px;align-items:center}
header a{color:#d1d5db;text-decoration:none}header a.on{color:#fff;font-weight:600}
header .who{margin-left:auto;color:#9ca3af}header form{display:inline}
header button{background:none;border:1px solid #6b7280;color:#e5e7eb;border-radius:4px;cursor:pointer}
main{padding:18px 24px;max-width:1400px}
h1{font-size:20px;margin:4px 0 14px}h2{font-size:16px;margin:20px 0 8px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #e5e7eb}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}
th{background:#f3f4f6;font-weight:600;font-size:12px;text-transform:uppercase;color:#4b5563}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font-family:ui-monospace,monospace;font-size:12.5px}pre{background:#fff;border:1px solid #e5e7eb;padding:10px;overflow:auto}
.banner{background:#fef2f2;border:1px solid #fecaca;color:#991b1b;padding:10px 14px;margin-bottom:14px;border-radius:4px}
.ok{background:#ecfdf5;border-color:#a7f3d0;color:#065f46}
.cards{display:flex;gap:14px;flex-wrap:wrap;margin-bottom:10px}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:12px 16px;min-width:170px}
.card b{display:block;font-size:24px}
.tag{display:inline-block;padding:1px 6px;border-radius:3px;background:#eef2ff;color:#3730a3;font-size:12px}
.tag.done{background:#ecfdf5;color:#065f46}.tag.bad{background:#fef2f2;color:#991b1b}
nav.sub{margin:0 0 12px}nav.sub a{margin-right:12px}
#tail{font-family:ui-monospace,monospace;font-size:12.5px}
form.act{background:#fff;border:1px solid #e5e7eb;padding:12px;margin:12px 0;display:flex;gap:12px;align-items:end;flex-wrap:wrap}
label{display:flex;flex-direction:column;font-size:12px;color:#4b5563}
input{font:inherit;padding:4px 6px}button.primary{background:#2563eb;color:#fff;border:0;border-radius:4px;padding:6px 14px;cursor:pointer}
.bar{background:#e5e7eb;border-radius:4px;height:14px;width:420px}.bar span{display:block;height:14px;background:#2563eb;border-radius:4px}
.muted{color:#6b7280}
a.sso{display:inline-block;background:#111827;color:#fff;padding:8px 16px;border-radius:4px;text-decoration:none}
";

/// A whole page: the navigation, the banner when Kafka cannot be read, and `body`.
pub fn layout(
    title: &str,
    session: Option<&Session>,
    banner: Option<&str>,
    body: Markup,
) -> Markup {
    let nav = [
        ("/", "Overview"),
        ("/dead-letters", "Dead letters"),
        ("/outbox", "Outbox"),
        ("/groups", "Consumer groups"),
        ("/events", "Events"),
        ("/trace", "Trace"),
        ("/tail", "Live tail"),
        ("/replays", "Replays"),
        ("/audit", "Audit"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · hule console" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "hule console" }
                    @if let Some(s) = session {
                        @for (href, name) in nav {
                            a href=(href) class=[(name == title).then_some("on")] { (name) }
                        }
                        span.who { (s.user) " · " (format!("{:?}", s.role).to_lowercase()) }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    @if let Some(b) = banner { div.banner { (b) } }
                    (body)
                }
            }
        }
    }
}

/// The login form.
pub fn login(error: Option<&str>, sso: Option<&str>) -> Markup {
    layout(
        "Log in",
        None,
        error,
        html! {
            h1 { "Log in" }
            form.act method="post" action="/login" {
                label { "User" input name="user" autocomplete="username" required; }
                label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                button.primary type="submit" { "Log in" }
            }
            @if let Some(label) = sso {
                p { a.sso href="/oidc/login" { "Log in with " (label) } }
            }
        },
    )
}

/// A short time for tables.
pub fn short_time(t: &hule_contracts::Timestamp) -> String {
    t.to_string()
        .chars()
        .take(19)
        .collect::<String>()
        .replace('T', " ")
}

/// The overview's live counters: an `EventSource` on `/live/overview` sets every `[data-live=name]` element's text
/// to the value of `name` (the page works without it; with JavaScript off it shows the counts of its load).
pub const LIVE_JS: &str = r#"
(function(){
  if (!window.EventSource) return;
  var es = new EventSource('/live/overview');
  es.addEventListener('counts', function(e){
    var c = JSON.parse(e.data);
    document.querySelectorAll('[data-live]').forEach(function(el){
      var v = c[el.getAttribute('data-live')];
      if (v !== undefined) el.textContent = v;
    });
    var b = document.getElementById('live-banner');
    if (b) { b.textContent = c.banner || ''; b.style.display = c.banner ? '' : 'none'; }
  });
})();
"#;

/// A record's value as a page shows it.
pub struct Shown {
    /// Pretty JSON, or the bytes as text when they are not JSON.
    pub text: String,
    /// Personal values masked.
    pub masked: usize,
    /// Why the value does not decode, when it does not.
    pub error: Option<String>,
}

/// `payload` of `topic` for a page: pretty JSON with personal data masked when `mask`; a dead letter's embedded
/// original event decoded and masked too; bytes that are not JSON shown escaped, with the error.
pub fn show_value(topic: &str, payload: Option<&[u8]>, mask: bool) -> Shown {
    let Some(bytes) = payload else {
        return Shown {
            text: "(no value: a tombstone)".into(),
            masked: 0,
            error: None,
        };
    };
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(mut v) => {
            let mut masked = 0;
            if mask {
                masked += hule_contracts::sensitive::mask(&mut v);
                // A dead letter's original event is embedded as JSON and masked above; one kept as base64 (its
                // bytes were not JSON) cannot be masked field by field and is hidden.
                if let Some(e) = v.get_mut("error_message") {
                    if let Some(text) = e.as_str() {
                        let shown = hule_contracts::sensitive::mask_text(text);
                        if shown != text {
                            *e = shown.into();
                            masked += 1;
                        }
                    }
                }
                if topic.ends_with(".dlq.v1") && v["original_event_encoding"] == "base64" {
                    v["original_event"] =
                        "(not JSON: hidden, it cannot be masked field by field)".into();
                    masked += 1;
                }
            }
            Shown {
                text: serde_json::to_string_pretty(&v).unwrap_or_default(),
                masked,
                error: None,
            }
        }
        Err(e) => {
            let text = String::from_utf8_lossy(bytes);
            let shown: String = text.chars().take(20_000).collect();
            Shown {
                text: if mask {
                    "(not JSON: hidden, it cannot be masked field by field)".into()
                } else {
                    shown
                },
                masked: usize::from(mask),
                error: Some(format!(
                    "This value is not JSON ({} bytes): {e}",
                    bytes.len()
                )),
            }
        }
    }
}

/// Keeps a page live without a stream: its `main` is fetched again every 5 s and swapped in (skipped while the
/// tab is hidden or a field has the focus). With JavaScript off the page is as loaded.
pub const REFRESH_JS: &str = r#"
(function(){
  setInterval(function(){
    if (document.hidden || (document.activeElement && document.activeElement.tagName === 'INPUT')) return;
    fetch(location.href, {credentials: 'same-origin'}).then(function(r){ return r.ok ? r.text() : null; })
      .then(function(html){
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var fresh = doc.querySelector('main'), old = document.querySelector('main');
        if (fresh && old) old.replaceChildren.apply(old, Array.from(fresh.childNodes));
      }).catch(function(){});
  }, 5000);
})();
"#;
