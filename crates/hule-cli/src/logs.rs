//! Logging for the `hule` binary: `HULE_LOG` (a tracing filter) or a per-command default, to stderr, with
//! librdkafka's own log lines de-duplicated.
//!
//! librdkafka logs every failed connection of every broker thread (`FAIL [thrd:…]: Connect to … failed`) and every
//! resulting global error; `hule demo --broker-faults` rides out a broker outage that used to print 24 such lines.
//! A line from `librdkafka`/`rdkafka` is now shown only when nothing of its kind (its facility and reason, without
//! addresses, thread names and numbers) was shown in the last 30 seconds; the count of lines held back is added to
//! the next one that is shown.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// How long a kind of librdkafka line stays quiet after it was shown.
pub const QUIET_FOR: Duration = Duration::from_secs(30);

/// The kind of a librdkafka log line: its words without addresses, thread tags, labels and numbers.
pub fn kind_of(message: &str) -> String {
    let mut out = String::new();
    for word in message.split_whitespace() {
        // Thread tags, broker names, addresses and the labels before them (`GroupCoordinator:`, `127.0.0.1:9092/2:`).
        if word.contains(':') || word.contains('#') {
            continue;
        }
        let w: String = word.chars().filter(|c| !c.is_ascii_digit()).collect();
        if !w.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&w);
        }
    }
    out
}

/// Passes everything but repeated librdkafka lines.
#[derive(Default)]
struct BrokerLogFilter {
    shown: Mutex<HashMap<String, Instant>>,
    held_back: AtomicU64,
}

/// An event's message, and the `log` crate's target for events bridged from it (their own target is `log`).
#[derive(Default)]
struct Message {
    text: String,
    log_target: Option<String>,
}

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.text = format!("{value:?}"),
            "log.target" => {
                self.log_target = Some(format!("{value:?}").trim_matches('"').to_owned())
            }
            _ => {}
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.text = value.to_owned(),
            "log.target" => self.log_target = Some(value.to_owned()),
            _ => {}
        }
    }
}

impl BrokerLogFilter {
    fn allow(&self, message: &str, now: Instant) -> bool {
        let kind = kind_of(message);
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        match shown.get(&kind) {
            Some(at) if now.duration_since(*at) < QUIET_FOR => {
                self.held_back.fetch_add(1, Ordering::Relaxed);
                false
            }
            _ => {
                shown.insert(kind, now);
                let held = self.held_back.swap(0, Ordering::Relaxed);
                if held > 0 {
                    eprintln!("({held} similar librdkafka log line(s) held back)");
                }
                true
            }
        }
    }
}

impl BrokerLogFilter {
    /// Whether `event` is shown: anything not from librdkafka, and librdkafka lines of a kind not shown lately.
    fn passes(&self, event: &Event<'_>) -> bool {
        let mut m = Message::default();
        event.record(&mut m);
        let target = m
            .log_target
            .as_deref()
            .unwrap_or_else(|| event.metadata().target());
        if !(target.starts_with("librdkafka") || target.starts_with("rdkafka")) {
            return true;
        }
        self.allow(&m.text, Instant::now())
    }
}

/// A layer that passes everything to `inner` except the librdkafka lines [`BrokerLogFilter`] holds back, and, when
/// the subscriber's filter also serves the span exporter, the events the log's own filter (`shown`) leaves out.
/// (A per-layer `Filter` does not see events bridged from the `log` crate, which is how rdkafka logs; and a
/// per-layer filter with target directives loses the next event whenever the `log` crate asks whether a level is
/// enabled — rdkafka asks constantly — tokio-rs/tracing#2519; so the filters here are global or plain checks.)
struct Quiet<L> {
    inner: L,
    filter: BrokerLogFilter,
    shown: Option<tracing_subscriber::filter::Targets>,
}

impl<S, L> Layer<S> for Quiet<L>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        cx: Context<'_, S>,
    ) {
        self.inner.on_new_span(attrs, id, cx)
    }
    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        cx: Context<'_, S>,
    ) {
        self.inner.on_record(id, values, cx)
    }
    fn on_follows_from(
        &self,
        id: &tracing::span::Id,
        follows: &tracing::span::Id,
        cx: Context<'_, S>,
    ) {
        self.inner.on_follows_from(id, follows, cx)
    }
    fn on_event(&self, event: &Event<'_>, cx: Context<'_, S>) {
        if let Some(shown) = &self.shown {
            let meta = event.metadata();
            let mut m = Message::default();
            event.record(&mut m);
            let target = m.log_target.as_deref().unwrap_or_else(|| meta.target());
            if !shown.would_enable(target, meta.level()) {
                return;
            }
        }
        if self.filter.passes(event) {
            self.inner.on_event(event, cx)
        }
    }
    fn on_enter(&self, id: &tracing::span::Id, cx: Context<'_, S>) {
        self.inner.on_enter(id, cx)
    }
    fn on_exit(&self, id: &tracing::span::Id, cx: Context<'_, S>) {
        self.inner.on_exit(id, cx)
    }
    fn on_close(&self, id: tracing::span::Id, cx: Context<'_, S>) {
        self.inner.on_close(id, cx)
    }
    fn enabled(&self, meta: &Metadata<'_>, cx: Context<'_, S>) -> bool {
        self.inner.enabled(meta, cx)
    }
}

/// `inner` with repeated librdkafka lines held back, and only the events `shown` enables when given.
fn quiet<L>(inner: L, shown: Option<tracing_subscriber::filter::Targets>) -> Quiet<L> {
    Quiet {
        inner,
        filter: BrokerLogFilter::default(),
        shown,
    }
}

/// Installs the `hule` binary's logging: `HULE_LOG` or `default_filter`, stderr, librdkafka lines de-duplicated;
/// and, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set, the OTLP exporter of the `hule` spans
/// (`HULE_TRACE` filters them, `hule=info` by default). Keep the returned exporter until the end of `main`:
/// dropping it sends the spans still batched.
pub fn init(default_filter: &str) -> Option<hule_trace::otlp::Exporter> {
    let log = targets_from_env("HULE_LOG", default_filter);
    // Colour only on a terminal, and never with NO_COLOR set: a log written to a file or a pipe has no escape codes.
    let colour = {
        use std::io::IsTerminal as _;
        std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let exporter = match hule_trace::otlp::from_env("hule") {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("warning: {e}; spans are not exported");
            None
        }
    };
    // One global filter (see [`Quiet`] for why not one per layer): the log's, or, with an exporter, the union of
    // the log's and the spans' (each target at the more verbose of the two), the log then checking its own.
    let (global, shown) = match &exporter {
        Some(_) => {
            let spans = targets_from_env("HULE_TRACE", "hule=info");
            (union(&log, &spans), Some(log))
        }
        None => (log, None),
    };
    let otel = exporter.as_ref().map(|x| x.layer());
    tracing_subscriber::registry()
        .with(global)
        .with(quiet(fmt, shown))
        .with(otel)
        .init();
    if let Some(x) = &exporter {
        eprintln!("hule: exporting spans over OTLP/HTTP to {}", x.endpoint);
    }
    exporter
}

/// The filter in environment variable `var` (`warn`, `hule=debug`, `info,rdkafka=warn`: a level and targets), or
/// `default` when it is unset or not such a list (said once on stderr).
fn targets_from_env(var: &str, default: &str) -> tracing_subscriber::filter::Targets {
    let fallback = || default.parse().unwrap_or_default();
    match std::env::var(var) {
        Err(_) => fallback(),
        Ok(spec) => spec.parse().unwrap_or_else(|e| {
            eprintln!("warning: {var}={spec:?} is not a list of levels and targets ({e}); using {default:?}");
            fallback()
        }),
    }
}

/// The level at which `targets` lets `target` through (its most specific directive's).
fn effective(
    targets: &tracing_subscriber::filter::Targets,
    target: &str,
) -> tracing::level_filters::LevelFilter {
    use tracing::Level;
    [
        Level::TRACE,
        Level::DEBUG,
        Level::INFO,
        Level::WARN,
        Level::ERROR,
    ]
    .into_iter()
    .find(|l| targets.would_enable(target, l))
    .map_or(tracing::level_filters::LevelFilter::OFF, Into::into)
}

/// A filter that lets through whatever `a` or `b` does: each directive of either at the more verbose of the two
/// filters' levels for it, the default at the more verbose default. (Targets match by prefix and the most specific
/// directive wins, so the union's most specific match for a target is at least as specific as each one's.)
fn union(
    a: &tracing_subscriber::filter::Targets,
    b: &tracing_subscriber::filter::Targets,
) -> tracing_subscriber::filter::Targets {
    let names: std::collections::BTreeSet<String> = a
        .iter()
        .chain(b.iter())
        .map(|(t, _)| t.to_owned())
        .collect();
    let mut out = tracing_subscriber::filter::Targets::new().with_targets(
        names
            .iter()
            .map(|t| (t.clone(), effective(a, t).max(effective(b, t))))
            .collect::<Vec<_>>(),
    );
    let default = a.default_level().max(b.default_level());
    if let Some(level) = default {
        out = out.with_default(level);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_one_kind_are_shown_once_per_window_whatever_their_addresses() {
        let a = "librdkafka: FAIL [thrd:127.0.0.1:40705/2]: 127.0.0.1:40705/2: Connect to ipv4#127.0.0.1:40705 failed: Connection refused (after 0ms in state CONNECT)";
        let b = "librdkafka: FAIL [thrd:127.0.0.1:40711/3]: 127.0.0.1:40711/3: Connect to ipv4#127.0.0.1:40711 failed: Connection refused (after 1ms in state CONNECT)";
        let other =
            "librdkafka: Global error: BrokerTransportFailure (Local: Broker transport failure)";
        let coordinator = "librdkafka: FAIL [thrd:GroupCoordinator]: GroupCoordinator: 127.0.0.1:40303: Connect to ipv4#127.0.0.1:40303 failed: Connection refused (after 0ms in state CONNECT)";
        assert_eq!(kind_of(a), kind_of(b));
        assert_eq!(kind_of(a), kind_of(coordinator));
        assert_ne!(kind_of(a), kind_of(other));
        let f = BrokerLogFilter::default();
        let t0 = Instant::now();
        assert!(f.allow(a, t0));
        assert!(!f.allow(b, t0 + Duration::from_secs(1)));
        assert!(f.allow(other, t0 + Duration::from_secs(2)));
        assert_eq!(
            f.held_back.load(Ordering::Relaxed),
            0,
            "the count went out with the next shown line"
        );
        assert!(!f.allow(a, t0 + Duration::from_secs(29)));
        assert!(f.allow(b, t0 + QUIET_FOR + Duration::from_secs(1)));
    }
}

#[cfg(test)]
mod wiring {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_filter_holds_back_repeated_broker_lines_in_a_subscriber() {
        let lines = Lines::default();
        let w = lines.clone();
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || w.clone());
        let subscriber = tracing_subscriber::registry().with(quiet(fmt, None));
        tracing::subscriber::with_default(subscriber, || {
            for port in 1..=5 {
                tracing::error!(target: "librdkafka", "librdkafka: FAIL [thrd:127.0.0.1:{port}/2]: Connect to ipv4#127.0.0.1:{port} failed: Connection refused");
            }
            tracing::warn!(target: "hule", "a line of ours");
        });
        let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf8");
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn the_union_lets_through_what_either_filter_does() {
        use tracing::Level;
        let log: tracing_subscriber::filter::Targets = "warn,hule=debug,hule_outbox::relay=info"
            .parse()
            .expect("log");
        let spans: tracing_subscriber::filter::Targets =
            "hule=info,hule::kafka_args=trace".parse().expect("spans");
        let both = union(&log, &spans);
        for (target, level) in [
            ("hule::demo", Level::DEBUG),
            ("hule::kafka_args", Level::TRACE),
            ("hule_outbox::relay", Level::INFO),
            ("rdkafka::client", Level::WARN),
        ] {
            assert!(both.would_enable(target, &level), "{target} at {level}");
            assert_eq!(
                both.would_enable(target, &level),
                log.would_enable(target, &level) || spans.would_enable(target, &level)
            );
        }
        assert!(!both.would_enable("rdkafka::client", &Level::INFO));
        assert!(!both.would_enable("hule::demo", &Level::TRACE));
    }

    #[test]
    fn with_an_exporter_the_log_keeps_to_its_own_targets_under_the_wider_filter() {
        let lines = Lines::default();
        let w = lines.clone();
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || w.clone());
        let shown = "warn,hule_outbox::relay=info".parse().ok();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(
                "warn,hule_outbox::relay=info,hule=info",
            ))
            .with(quiet(fmt, shown));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "hule::demo", "a span-level line the log leaves out");
            tracing::info!(target: "hule_outbox::relay", "the relay leads");
            tracing::warn!(target: "hule::kafka_args", "a warning");
        });
        let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf8");
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains("the relay leads") && text.contains("a warning"),
            "{text}"
        );
    }

    #[test]
    fn it_holds_them_back_when_they_come_through_the_log_crate_as_rdkafka_logs() {
        let lines = Lines::default();
        let w = lines.clone();
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || w.clone());
        tracing_subscriber::registry().with(quiet(fmt, None)).init();
        for port in 1..=5 {
            log::error!(target: "librdkafka", "librdkafka: FAIL [thrd:127.0.0.1:{port}/2]: Connect to ipv4#127.0.0.1:{port} failed: Connection refused");
        }
        log::warn!(target: "hule", "a line of ours");
        let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf8");
        assert_eq!(text.lines().count(), 2, "{text}");
    }
}
