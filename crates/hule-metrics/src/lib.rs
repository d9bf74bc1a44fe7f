/*!
Metrics and health for hule processes: counter, gauge and histogram families with labels on
[`prometheus-client`](https://docs.rs/prometheus-client) (OpenMetrics text exposition), a [`Health`] board the
relay and the consumer keep up to date, and [`serve`], which answers `GET /metrics` and `GET /healthz` on an
address (`--metrics-addr`).

Families are registered once by name and updated through cheap handles; label values are given at update time.
A series is found by hashing its label values under a read lock (prometheus-client's `Family`); nothing on the
update path takes a mutex or scans.

```
let registry = hule_metrics::Registry::new();
let messages = registry.counter("consumer_messages_total", "Records by outcome.", &["topic", "outcome"]);
messages.inc(&["huleedu.batch.essays.registered.v1", "handled"]);
assert!(registry.render().contains(
    "consumer_messages_total{topic=\"huleedu.batch.essays.registered.v1\",outcome=\"handled\"} 1"
));
```
*/
#![warn(missing_docs)]

mod health;
#[cfg(feature = "http")]
mod http;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::family::{Family, MetricConstructor};

pub use health::{Health, HealthReport};
#[cfg(feature = "http")]
pub use http::serve;

/// Default latency buckets in seconds (1 ms .. 60 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The label set of one series: the family's label names (shared) and this series' values. Equality and hash
/// are the values' (every series of a family has the same names).
#[derive(Debug, Clone)]
struct Series {
    names: Arc<[String]>,
    values: Box<[String]>,
}

impl PartialEq for Series {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}
impl Eq for Series {}
impl Hash for Series {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.values.hash(state);
    }
}

impl EncodeLabelSet for Series {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeLabel;
        for (name, value) in self.names.iter().zip(self.values.iter()) {
            (name.as_str(), value.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

type PromCounter = prometheus_client::metrics::counter::Counter<u64, AtomicU64>;
type PromGauge = prometheus_client::metrics::gauge::Gauge<f64, AtomicU64>;
type PromHistogram = prometheus_client::metrics::histogram::Histogram;

/// Makes a family's histograms with its buckets.
#[derive(Debug, Clone)]
struct Buckets(Arc<[f64]>);

impl MetricConstructor<PromHistogram> for Buckets {
    fn new_metric(&self) -> PromHistogram {
        PromHistogram::new(self.0.iter().copied())
    }
}

/// What a registered name holds, to hand the same family to a second registration.
#[derive(Debug, Clone)]
enum Registered {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

#[derive(Debug, Default)]
struct Inner {
    prom: prometheus_client::registry::Registry,
    by_name: BTreeMap<String, Registered>,
}

/// A set of metric families and the process's [`Health`].
#[derive(Debug, Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
    health: Health,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// The process-wide registry that `hule` commands expose.
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(Registry::new)
    }

    /// The health board served at `/healthz` with these metrics.
    pub fn health(&self) -> &Health {
        &self.health
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Registration and rendering only; a panic elsewhere cannot leave the registry half-written.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finds `name`'s family, or registers the one `make` builds. prometheus-client adds `_total` to a counter's
    /// name itself, so it is registered without it.
    fn register(&self, name: &str, help: &str, make: impl FnOnce() -> Registered) -> Registered {
        let mut inner = self.lock();
        if let Some(existing) = inner.by_name.get(name) {
            return existing.clone();
        }
        let made = make();
        match &made {
            Registered::Counter(c) => {
                let base = name.strip_suffix("_total").unwrap_or(name);
                inner.prom.register(base, help, c.family.clone());
            }
            Registered::Gauge(g) => inner.prom.register(name, help, g.family.clone()),
            Registered::Histogram(h) => inner.prom.register(name, help, h.family.clone()),
        }
        inner.by_name.insert(name.to_owned(), made.clone());
        made
    }

    /// Registers (or finds) a counter family. Its name should end in `_total`, as exposed.
    pub fn counter(&self, name: &str, help: &str, labels: &[&str]) -> Counter {
        let names = names(labels);
        match self.register(name, help, || {
            Registered::Counter(Counter {
                names,
                family: Family::default(),
            })
        }) {
            Registered::Counter(c) => c,
            other => panic!("metric {name} registered twice with different kinds ({other:?})"),
        }
    }

    /// Registers (or finds) a gauge family.
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Gauge {
        let names = names(labels);
        match self.register(name, help, || {
            Registered::Gauge(Gauge {
                names,
                family: Family::default(),
            })
        }) {
            Registered::Gauge(g) => g,
            other => panic!("metric {name} registered twice with different kinds ({other:?})"),
        }
    }

    /// Registers (or finds) a histogram family with upper bucket bounds `buckets` (ascending, seconds or units).
    pub fn histogram(&self, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> Histogram {
        let names = names(labels);
        let ctor = Buckets(buckets.into());
        match self.register(name, help, || {
            Registered::Histogram(Histogram {
                names,
                family: Family::new_with_constructor(ctor),
            })
        }) {
            Registered::Histogram(h) => h,
            other => panic!("metric {name} registered twice with different kinds ({other:?})"),
        }
    }

    /// The OpenMetrics text exposition of every family (ends with `# EOF`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a label value we made.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.lock().prom) {
            tracing::error!(error = %e, "metrics exposition failed");
        }
        out
    }

    /// The names of every registered family, as exposed (counters with `_total`), sorted.
    pub fn names(&self) -> Vec<String> {
        self.lock().by_name.keys().cloned().collect()
    }
}

fn names(labels: &[&str]) -> Arc<[String]> {
    labels.iter().map(|l| (*l).to_owned()).collect()
}

/// The series key for `values`, or `None` (and an error log) when their number is not the family's.
fn series(family: &str, names: &Arc<[String]>, values: &[&str]) -> Option<Series> {
    if values.len() != names.len() {
        tracing::error!(
            metric = family,
            expected = names.len(),
            got = values.len(),
            "wrong number of label values; update dropped"
        );
        return None;
    }
    Some(Series {
        names: names.clone(),
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    })
}

/// A counter family.
#[derive(Debug, Clone)]
pub struct Counter {
    names: Arc<[String]>,
    family: Family<Series, PromCounter>,
}

impl Counter {
    /// Adds one to the series with these label values.
    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1);
    }
    /// Adds `v`.
    pub fn add(&self, labels: &[&str], v: u64) {
        if let Some(s) = series("counter", &self.names, labels) {
            self.family.get_or_create(&s).inc_by(v);
        }
    }
    /// One series, resolved once: adding to it then takes no lookup, allocation or lock (a hot path's counter).
    pub fn series(&self, labels: &[&str]) -> Option<CounterSeries> {
        series("counter", &self.names, labels)
            .map(|s| CounterSeries(self.family.get_or_create(&s).clone()))
    }
    /// The current value (0 when the series does not exist yet), as a float like the other families'.
    pub fn get(&self, labels: &[&str]) -> f64 {
        series("counter", &self.names, labels)
            .and_then(|s| self.family.get(&s).map(|c| c.get() as f64))
            .unwrap_or(0.0)
    }
}

/// One series of a [`Counter`] family ([`Counter::series`]).
#[derive(Debug, Clone)]
pub struct CounterSeries(PromCounter);

impl CounterSeries {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }
}

/// One series of a [`Histogram`] family ([`Histogram::series`]).
#[derive(Debug, Clone)]
pub struct HistogramSeries(PromHistogram);

impl HistogramSeries {
    /// Records one observation.
    pub fn observe(&self, v: f64) {
        self.0.observe(v);
    }
}

/// A gauge family.
#[derive(Debug, Clone)]
pub struct Gauge {
    names: Arc<[String]>,
    family: Family<Series, PromGauge>,
}

impl Gauge {
    /// Sets the series with these label values.
    pub fn set(&self, labels: &[&str], v: f64) {
        if let Some(s) = series("gauge", &self.names, labels) {
            self.family.get_or_create(&s).set(v);
        }
    }
    /// The current value (0 when the series does not exist yet).
    pub fn get(&self, labels: &[&str]) -> f64 {
        series("gauge", &self.names, labels)
            .and_then(|s| self.family.get(&s).map(|g| g.get()))
            .unwrap_or(0.0)
    }
    /// Removes the series (a partition this process no longer owns).
    pub fn remove(&self, labels: &[&str]) {
        if let Some(s) = series("gauge", &self.names, labels) {
            self.family.remove(&s);
        }
    }
}

/// A histogram family.
#[derive(Debug, Clone)]
pub struct Histogram {
    names: Arc<[String]>,
    family: Family<Series, PromHistogram, Buckets>,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, labels: &[&str], v: f64) {
        if let Some(s) = series("histogram", &self.names, labels) {
            self.family.get_or_create(&s).observe(v);
        }
    }
    /// One series, resolved once ([`Counter::series`]).
    pub fn series(&self, labels: &[&str]) -> Option<HistogramSeries> {
        series("histogram", &self.names, labels)
            .map(|s| HistogramSeries(self.family.get_or_create(&s).clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_renders_cumulative_buckets() {
        let r = Registry::new();
        let h = r.histogram("relay_batch_seconds", "Batch time.", &[], &[0.1, 1.0]);
        h.observe(&[], 0.05);
        h.observe(&[], 0.5);
        h.observe(&[], 5.0);
        let text = r.render();
        assert!(
            text.contains("relay_batch_seconds_bucket{le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("relay_batch_seconds_bucket{le=\"1.0\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("relay_batch_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("relay_batch_seconds_count 3\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped_and_wrong_arity_is_dropped() {
        let r = Registry::new();
        let c = r.counter("x_total", "X.", &["reason"]);
        c.inc(&["a \"quoted\"\nline"]);
        c.inc(&["too", "many"]);
        let text = r.render();
        assert!(
            text.contains("x_total{reason=\"a \\\"quoted\\\"\\nline\"} 1"),
            "{text}"
        );
        assert!(text.contains("# TYPE x counter"), "{text}");
        assert!(!text.contains("too"), "{text}");
    }

    #[test]
    fn gauge_sets_and_registering_twice_returns_the_same_family() {
        let r = Registry::new();
        let g = r.gauge("outbox_events_parked", "Parked rows.", &[]);
        g.set(&[], 4.0);
        let again = r.gauge("outbox_events_parked", "Parked rows.", &[]);
        assert_eq!(again.get(&[]), 4.0);
        assert_eq!(
            r.render()
                .matches("# TYPE outbox_events_parked gauge")
                .count(),
            1
        );
        assert_eq!(r.names(), vec!["outbox_events_parked".to_owned()]);
        g.remove(&[]);
        assert_eq!(again.get(&[]), 0.0);
    }

    #[test]
    fn updates_from_many_threads_all_count() {
        let r = Registry::new();
        let c = r.counter("n_total", "N.", &["topic"]);
        std::thread::scope(|s| {
            for t in 0..4 {
                let c = c.clone();
                s.spawn(move || {
                    for _ in 0..10_000 {
                        c.inc(&[if t % 2 == 0 { "a" } else { "b" }]);
                    }
                });
            }
        });
        assert_eq!(c.get(&["a"]) + c.get(&["b"]), 40_000.0);
    }
}
