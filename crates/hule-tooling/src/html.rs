//! The event catalog as one self-contained HTML page: no network at view time (inline CSS, script and SVG).
//!
//! The page has a search box (name, value, topic, service, domain, class, key or payload field; `#q=text` in the
//! address pre-fills it), a diagram of producers → topics → consumers drawn here as inline SVG (clicking a
//! service or a topic highlights its edges), one card per event with its topics, key, class, retention, cleanup,
//! services, payload fields from its JSON Schema and an example payload, and the dual-event pairs.
//! When its script has run, the page's `<body>` carries `data-ready` (the number of event cards) and `data-shown`
//! (how many match the search); a script error sets `data-error` instead. `docs/catalog.html` is this output.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::Value;

use crate::catalog::{days, list, DUAL_EVENT_PAIRS};
use hule_contracts::examples::example_json;
use hule_contracts::registry::{EventDef, TopicClass, EVENTS};

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Row height of the diagram, in pixels.
const ROW: f64 = 20.0;
/// Space above the first row, for the column titles.
const TOP: f64 = 40.0;
/// Diagram columns: producer labels end at `PRODUCER_X`, topic boxes span `TOPIC_X..TOPIC_X + TOPIC_W`, consumer
/// labels start at `CONSUMER_X`.
const PRODUCER_X: f64 = 230.0;
const TOPIC_X: f64 = 400.0;
const TOPIC_W: f64 = 370.0;
const CONSUMER_X: f64 = 940.0;
const WIDTH: f64 = 1180.0;

/// Where the diagram puts things: topics in registry order grouped by domain, services on each side ordered by
/// the mean row of the topics they touch (fewer crossings) and spread over the full height.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Topic rows: (event index in [`EVENTS`], y of the row's centre).
    pub topics: Vec<(usize, f64)>,
    /// Producing services with their y.
    pub producers: Vec<(&'static str, f64)>,
    /// Consuming services with their y.
    pub consumers: Vec<(&'static str, f64)>,
    /// Total height.
    pub height: f64,
}

fn side(
    topics: &[(usize, f64)],
    services_of: impl Fn(&EventDef) -> &'static [&'static str],
    height: f64,
) -> Vec<(&'static str, f64)> {
    let mut rows: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for (i, y) in topics {
        for s in services_of(&EVENTS[*i]) {
            rows.entry(s).or_default().push(*y);
        }
    }
    let mut order: Vec<(&'static str, f64)> = rows
        .into_iter()
        .map(|(s, ys)| (s, ys.iter().sum::<f64>() / ys.len() as f64))
        .collect();
    order.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)));
    let n = order.len().max(1) as f64;
    let span = height - TOP - ROW;
    order
        .into_iter()
        .enumerate()
        .map(|(k, (s, _))| (s, TOP + ROW / 2.0 + span * (k as f64 + 0.5) / n))
        .collect()
}

/// Lays the diagram out.
pub fn layout() -> Layout {
    let mut order: Vec<usize> = (0..EVENTS.len()).collect();
    order.sort_by_key(|i| (EVENTS[*i].domain(), *i));
    let topics: Vec<(usize, f64)> = order
        .into_iter()
        .enumerate()
        .map(|(row, i)| (i, TOP + ROW * row as f64 + ROW / 2.0))
        .collect();
    let height = TOP + ROW * topics.len() as f64 + ROW;
    let producers = side(&topics, |d| d.producers, height);
    let consumers = side(&topics, |d| d.consumers, height);
    Layout {
        topics,
        producers,
        consumers,
        height,
    }
}

fn class_colour(class: TopicClass) -> &'static str {
    match class {
        TopicClass::Result => "#1b7f5b",
        TopicClass::PhaseCompletion => "#a15c00",
        TopicClass::Standard => "#2b5797",
        TopicClass::DeadLetter => "#8b1e3f",
    }
}

fn svg(l: &Layout) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg id="diagram" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {h}" width="{WIDTH}" height="{h}" role="img" aria-label="producers, topics and consumers">"#,
        h = l.height
    );
    let _ = write!(
        o,
        r#"<text class="col" x="{PRODUCER_X}" y="20" text-anchor="end">producers</text><text class="col" x="{}" y="20" text-anchor="middle">topics</text><text class="col" x="{CONSUMER_X}" y="20">consumers</text>"#,
        TOPIC_X + TOPIC_W / 2.0
    );
    let y_of = |list: &[(&'static str, f64)], s: &str| {
        list.iter()
            .find(|(n, _)| *n == s)
            .map(|(_, y)| *y)
            .unwrap_or(0.0)
    };
    let mid = (PRODUCER_X + TOPIC_X) / 2.0;
    let mid2 = (TOPIC_X + TOPIC_W + CONSUMER_X) / 2.0;
    o.push_str(r#"<g class="edges">"#);
    for (i, y) in &l.topics {
        let d = &EVENTS[*i];
        for p in d.producers {
            let py = y_of(&l.producers, p);
            let _ = write!(
                o,
                r#"<path data-s="{p}" data-e="{}" d="M{x0} {py} C{mid} {py} {mid} {y} {TOPIC_X} {y}"/>"#,
                d.name,
                x0 = PRODUCER_X + 6.0
            );
        }
        for c in d.consumers {
            let cy = y_of(&l.consumers, c);
            let _ = write!(
                o,
                r#"<path data-s="{c}" data-e="{}" d="M{x0} {y} C{mid2} {y} {mid2} {cy} {x1} {cy}"/>"#,
                d.name,
                x0 = TOPIC_X + TOPIC_W,
                x1 = CONSUMER_X - 6.0
            );
        }
    }
    o.push_str("</g>");
    for (i, y) in &l.topics {
        let d = &EVENTS[*i];
        let _ = write!(
            o,
            r##"<g class="topic" data-e="{name}"><a href="#e-{name}"><rect x="{TOPIC_X}" y="{ry}" width="{TOPIC_W}" height="{rh}" rx="3" fill="{fill}"/><text x="{tx}" y="{ty}">{topic}</text></a><title>{name} ({class}, key {key})</title></g>"##,
            name = d.name,
            ry = y - ROW / 2.0 + 1.5,
            rh = ROW - 3.0,
            fill = class_colour(d.class),
            tx = TOPIC_X + 6.0,
            ty = y + 4.0,
            topic = escape(d.topic),
            class = d.class.as_str(),
            key = escape(d.key.field),
        );
    }
    for (s, y) in &l.producers {
        let _ = write!(
            o,
            r#"<text class="svc" data-s="{s}" x="{PRODUCER_X}" y="{ty}" text-anchor="end">{s}</text><circle cx="{cx}" cy="{y}" r="3"/>"#,
            ty = y + 4.0,
            cx = PRODUCER_X + 4.0
        );
    }
    for (s, y) in &l.consumers {
        let _ = write!(
            o,
            r#"<circle cx="{cx}" cy="{y}" r="3"/><text class="svc" data-s="{s}" x="{CONSUMER_X}" y="{ty}">{s}</text>"#,
            ty = y + 4.0,
            cx = CONSUMER_X - 4.0
        );
    }
    o.push_str("</svg>");
    o
}

/// `text` escaped, with its Markdown code spans (`` `x` ``) as `<code>`.
fn code_spans(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{}</code>", escape(part))
            } else {
                escape(part)
            }
        })
        .collect()
}

/// The payload's fields (type, required, constraints, the Python field mirrored), and their names for the search.
fn fields_table(def: &EventDef) -> (String, Vec<String>) {
    let fields = crate::schema::payload_fields(def.event);
    let mut o = String::from(
        "<table class=\"fields\"><tr><th>field</th><th>type</th><th></th><th>constraints</th><th>description</th></tr>",
    );
    for f in &fields {
        let _ = write!(
            o,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&f.name),
            escape(&f.ty),
            if f.required { "required" } else { "" },
            escape(&f.constraints),
            code_spans(&f.description)
        );
    }
    o.push_str("</table>");
    (o, fields.into_iter().map(|f| f.name).collect())
}

fn card(def: &EventDef) -> String {
    let (fields, names) = fields_table(def);
    let haystack = [
        def.name,
        def.value,
        def.topic,
        def.legacy_topic,
        def.payload_type,
        def.domain(),
        def.class.as_str(),
        def.key.field,
    ]
    .iter()
    .map(|s| s.to_lowercase())
    .chain(
        def.producers
            .iter()
            .chain(def.consumers)
            .map(|s| s.to_lowercase()),
    )
    .chain(names.iter().map(|s| s.to_lowercase()))
    .collect::<Vec<_>>()
    .join(" ");
    let legacy = if def.has_distinct_legacy_topic() {
        format!("<code>{}</code>", escape(def.legacy_topic))
    } else {
        "same".to_owned()
    };
    let example = example_json(def.event)
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_default();
    format!(
        r#"<article class="event" id="e-{name}" data-text="{hay}">
<h3><span class="dot" style="background:{colour}"></span>{name} <small>{value}</small></h3>
<dl><dt>topic</dt><dd><code>{topic}</code></dd><dt>legacy topic</dt><dd>{legacy}</dd>
<dt>payload</dt><dd><code>{payload}</code> v{version}</dd><dt>partition key</dt><dd>{concept} (<code>{field}</code>)</dd>
<dt>class</dt><dd>{class}: {retention}, <code>cleanup.policy={cleanup}</code></dd>
<dt>producers</dt><dd>{producers}</dd><dt>consumers</dt><dd>{consumers}</dd></dl>
<details><summary>payload fields</summary>{fields}</details>
<details><summary>example payload</summary><pre>{example}</pre></details>
</article>
"#,
        name = def.name,
        hay = escape(&haystack),
        colour = class_colour(def.class),
        value = escape(def.value),
        topic = escape(def.topic),
        payload = escape(def.payload_type),
        version = def.version(),
        concept = def.key.concept.as_str(),
        field = escape(def.key.field),
        class = def.class.as_str(),
        retention = days(def.class.retention_ms()),
        cleanup = def.class.cleanup_policy(),
        producers = escape(&list(def.producers)),
        consumers = escape(&list(def.consumers)),
        example = escape(&example),
    )
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:10px 24px;z-index:2}
header h1{font-size:20px;margin:0 0 6px}
#q{width:420px;max-width:90%;padding:6px 8px;font-size:14px}
#count{margin-left:12px;color:#555}
main{padding:0 24px 40px}
.legend span{display:inline-block;margin-right:14px}
.dot{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
#diagram{background:#fff;border:1px solid #ddd;margin:12px 0;max-width:100%;height:auto}
#diagram text{font:11px ui-monospace,Menlo,Consolas,monospace;fill:#222}
#diagram .topic text{fill:#fff}
#diagram text.col{font:bold 13px system-ui,sans-serif}
#diagram text.svc{cursor:pointer}
#diagram .edges path{fill:none;stroke:#9aa5b1;stroke-width:1;opacity:.55}
#diagram .edges path.on{stroke:#d9480f;stroke-width:2;opacity:1}
#diagram .topic.off{opacity:.15}
#diagram text.svc.on{font-weight:bold;fill:#d9480f}
.events{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}
.event{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 14px}
.event h3{font-size:15px;margin:4px 0}
.event h3 small{font-weight:normal;color:#666;margin-left:6px}
.event dl{display:grid;grid-template-columns:110px 1fr;margin:4px 0;gap:2px 8px}
.event dt{color:#666}.event dd{margin:0}
.event pre{background:#f4f4f4;padding:8px;overflow:auto;max-height:320px;font-size:12px}
.fields{border-collapse:collapse;font-size:12px;display:block;overflow-x:auto;max-width:100%}.fields td,.fields th{padding:2px 8px;text-align:left;border-bottom:1px solid #eee}
.hidden{display:none}
table.pairs{border-collapse:collapse;background:#fff}.pairs td,.pairs th{border:1px solid #ddd;padding:4px 8px;text-align:left}
"#;

const SCRIPT: &str = r#"
window.addEventListener('error', function (e) { document.body.dataset.error = String(e.message || e); });
(function () {
  var cards = Array.prototype.slice.call(document.querySelectorAll('article.event'));
  var topics = Array.prototype.slice.call(document.querySelectorAll('#diagram .topic'));
  var edges = Array.prototype.slice.call(document.querySelectorAll('#diagram .edges path'));
  var services = Array.prototype.slice.call(document.querySelectorAll('#diagram text.svc'));
  var q = document.getElementById('q');
  var count = document.getElementById('count');
  function filter() {
    var words = q.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = {};
    var n = 0;
    cards.forEach(function (c) {
      var hit = words.every(function (w) { return c.dataset.text.indexOf(w) >= 0; });
      c.classList.toggle('hidden', !hit);
      if (hit) { shown[c.id.slice(2)] = true; n += 1; }
    });
    topics.forEach(function (t) { t.classList.toggle('off', words.length > 0 && !shown[t.dataset.e]); });
    edges.forEach(function (p) { p.classList.toggle('on', words.length > 0 && !!shown[p.dataset.e]); });
    count.textContent = n + ' of ' + cards.length + ' events';
    document.body.dataset.shown = String(n);
  }
  function highlight(attr, value) {
    edges.forEach(function (p) { p.classList.toggle('on', p.dataset[attr] === value); });
    services.forEach(function (s) { s.classList.toggle('on', attr === 's' && s.dataset.s === value); });
  }
  services.forEach(function (s) { s.addEventListener('click', function () { highlight('s', s.dataset.s); }); });
  topics.forEach(function (t) { t.addEventListener('mouseenter', function () { highlight('e', t.dataset.e); }); });
  q.addEventListener('input', function () { history.replaceState(null, '', '#q=' + encodeURIComponent(q.value)); filter(); });
  var m = /^#q=(.*)$/.exec(location.hash);
  if (m) { try { q.value = decodeURIComponent(m[1]); } catch (e) { q.value = m[1]; } }
  filter();
  document.body.dataset.ready = String(cards.length);
})();
"#;

/// The catalog page.
pub fn html() -> String {
    let l = layout();
    let mut by_domain: BTreeMap<&str, Vec<&EventDef>> = BTreeMap::new();
    for def in EVENTS {
        by_domain.entry(def.domain()).or_default().push(def);
    }
    let services: BTreeSet<&str> = EVENTS
        .iter()
        .flat_map(|d| d.producers.iter().chain(d.consumers))
        .copied()
        .collect();
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>HuleEdu event catalog</title><style>{STYLE}</style></head>
<body>
<header><h1>HuleEdu event catalog</h1>
<input id="q" type="search" placeholder="Search events, topics, services, fields…" autofocus><span id="count"></span>
<div class="legend">"#
    );
    for class in [
        TopicClass::Standard,
        TopicClass::Result,
        TopicClass::PhaseCompletion,
    ] {
        let _ = write!(
            o,
            r#"<span><span class="dot" style="background:{}"></span>{} ({}, {})</span>"#,
            class_colour(class),
            class.as_str(),
            days(class.retention_ms()),
            class.cleanup_policy()
        );
    }
    let _ = write!(
        o,
        r#"</div></header>
<main>
<p>{} events in {} domains, {} services. Generated by <code>hule catalog --format html</code> from the registry; do not edit by hand. Click a service to follow its edges; search filters the cards and the diagram.</p>
{}
"#,
        EVENTS.len(),
        by_domain.len(),
        services.len(),
        svg(&l)
    );
    for (domain, defs) in &by_domain {
        let _ = write!(
            o,
            "<h2>{}</h2>\n<section class=\"events\">\n",
            escape(domain)
        );
        for def in defs {
            o.push_str(&card(def));
        }
        o.push_str("</section>\n");
    }
    o.push_str("<h2>Dual-event pairs</h2>\n<table class=\"pairs\"><tr><th>thin (state)</th><th>rich (business data)</th><th>purpose</th></tr>\n");
    for (thin, rich, purpose) in DUAL_EVENT_PAIRS {
        let _ = writeln!(
            o,
            "<tr><td><a href=\"#e-{t}\">{t}</a></td><td><a href=\"#e-{r}\">{r}</a></td><td>{}</td></tr>",
            escape(purpose),
            t = thin.name(),
            r = rich.name()
        );
    }
    let _ = write!(
        o,
        "</table>\n</main>\n<script>{SCRIPT}</script>\n</body></html>\n"
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diagram_has_every_topic_and_one_edge_per_service_link() {
        let l = layout();
        assert_eq!(l.topics.len(), EVENTS.len());
        let page = html();
        let links: usize = EVENTS
            .iter()
            .map(|d| d.producers.len() + d.consumers.len())
            .sum();
        assert_eq!(page.matches("<path data-s=").count(), links);
        assert_eq!(
            page.matches("<article class=\"event\"").count(),
            EVENTS.len()
        );
        // Self-contained: nothing is fetched at view time.
        for needle in ["src=\"http", "href=\"http", "@import", "url("] {
            assert!(!page.contains(needle), "{needle}");
        }
    }

    #[test]
    fn escaping_covers_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
