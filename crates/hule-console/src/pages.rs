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
.tag.done{background:#ecfdf5;color:#065f46}
form.act{background:#fff;border:1px solid #e5e7eb;padding:12px;margin:12px 0;display:flex;gap:12px;align-items:end;flex-wrap:wrap}
label{display:flex;flex-direction:column;font-size:12px;color:#4b5563}
input{font:inherit;padding:4px 6px}button.primary{background:#2563eb;color:#fff;border:0;border-radius:4px;padding:6px 14px;cursor:pointer}
.bar{background:#e5e7eb;border-radius:4px;height:14px;width:420px}.bar span{display:block;height:14px;background:#2563eb;border-radius:4px}
.muted{color:#6b7280}
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
pub fn login(error: Option<&str>) -> Markup {
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
