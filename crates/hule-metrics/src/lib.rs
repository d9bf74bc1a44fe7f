/*!
A small Prometheus registry: counter, gauge and histogram families with labels, rendered in the text exposition
format (version 0.0.4), and [`serve`], which answers `GET /metrics` on an address (`--metrics-addr`).

Families are registered once and updated through cheap handles; label values are given at update time.

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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Default latency buckets in seconds (1 ms .. 60 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Clone)]
enum Value {
    Scalar(f64),
    Histogram {
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: Kind,
    labels: Vec<String>,
    buckets: Vec<f64>,
    series: Mutex<BTreeMap<Vec<String>, Value>>,
}

impl Family {
    fn series(&self) -> MutexGuard<'_, BTreeMap<Vec<String>, Value>> {
        // A panic while holding the lock cannot leave a series half-written (updates are single assignments).
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, labels: &[&str], f: impl FnOnce(&mut Value)) {
        if labels.len() != self.labels.len() {
            tracing::error!(metric = %self.name, expected = self.labels.len(), got = labels.len(), "wrong number of label values; update dropped");
            return;
        }
        let mut series = self.series();
        // Existing series are found without allocating (families hold few series); a new one is added once.
        if let Some(value) = series
            .iter_mut()
            .find(|(k, _)| k.iter().map(String::as_str).eq(labels.iter().copied()))
            .map(|(_, v)| v)
        {
            f(value);
            return;
        }
        let key: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        let value = series.entry(key).or_insert_with(|| match self.kind {
            Kind::Histogram => Value::Histogram {
                counts: vec![0; self.buckets.len()],
                sum: 0.0,
                count: 0,
            },
            _ => Value::Scalar(0.0),
        });
        f(value);
    }
}

/// A set of metric families.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    families: Arc<Mutex<Vec<Arc<Family>>>>,
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

    fn register(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: &[&str],
        buckets: &[f64],
    ) -> Arc<Family> {
        let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = families.iter().find(|f| f.name == name) {
            return existing.clone();
        }
        let family = Arc::new(Family {
            name: name.to_owned(),
            help: help.to_owned(),
            kind,
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            buckets: buckets.to_vec(),
            series: Mutex::new(BTreeMap::new()),
        });
        families.push(family.clone());
        family
    }

    /// Registers (or finds) a counter family.
    pub fn counter(&self, name: &str, help: &str, labels: &[&str]) -> Counter {
        Counter(self.register(name, help, Kind::Counter, labels, &[]))
    }

    /// Registers (or finds) a gauge family.
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Gauge {
        Gauge(self.register(name, help, Kind::Gauge, labels, &[]))
    }

    /// Registers (or finds) a histogram family with upper bucket bounds `buckets` (ascending, seconds or units).
    pub fn histogram(&self, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> Histogram {
        Histogram(self.register(name, help, Kind::Histogram, labels, buckets))
    }

    /// The text exposition of every family.
    pub fn render(&self) -> String {
        let families = self
            .families
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut out = String::new();
        for f in families {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {} {kind}", f.name);
            for (labels, value) in f.series().iter() {
                let pairs: Vec<(&str, &str)> = f
                    .labels
                    .iter()
                    .map(String::as_str)
                    .zip(labels.iter().map(String::as_str))
                    .collect();
                match value {
                    Value::Scalar(v) => {
                        let _ = writeln!(out, "{}{} {}", f.name, label_set(&pairs, None), num(*v));
                    }
                    Value::Histogram { counts, sum, count } => {
                        let mut cumulative = 0;
                        for (bound, c) in f.buckets.iter().zip(counts) {
                            cumulative += c;
                            let le = num(*bound);
                            let _ = writeln!(
                                out,
                                "{}_bucket{} {cumulative}",
                                f.name,
                                label_set(&pairs, Some(&le))
                            );
                        }
                        let _ = writeln!(
                            out,
                            "{}_bucket{} {count}",
                            f.name,
                            label_set(&pairs, Some("+Inf"))
                        );
                        let _ = writeln!(
                            out,
                            "{}_sum{} {}",
                            f.name,
                            label_set(&pairs, None),
                            num(*sum)
                        );
                        let _ =
                            writeln!(out, "{}_count{} {count}", f.name, label_set(&pairs, None));
                    }
                }
            }
        }
        out
    }
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_set(pairs: &[(&str, &str)], le: Option<&str>) -> String {
    if pairs.is_empty() && le.is_none() {
        return String::new();
    }
    let mut parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_value(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    format!("{{{}}}", parts.join(","))
}

/// A counter family.
#[derive(Debug, Clone)]
pub struct Counter(Arc<Family>);

impl Counter {
    /// Adds one to the series with these label values.
    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1.0);
    }
    /// Adds `v` (ignored when negative: counters only go up).
    pub fn add(&self, labels: &[&str], v: f64) {
        if v < 0.0 {
            return;
        }
        self.0.update(labels, |value| {
            if let Value::Scalar(x) = value {
                *x += v;
            }
        });
    }
    /// The current value (0 when the series does not exist yet).
    pub fn get(&self, labels: &[&str]) -> f64 {
        scalar(&self.0, labels)
    }
}

fn scalar(f: &Family, labels: &[&str]) -> f64 {
    let key: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
    match f.series().get(&key) {
        Some(Value::Scalar(v)) => *v,
        _ => 0.0,
    }
}

/// A gauge family.
#[derive(Debug, Clone)]
pub struct Gauge(Arc<Family>);

impl Gauge {
    /// Sets the series with these label values.
    pub fn set(&self, labels: &[&str], v: f64) {
        self.0.update(labels, |value| *value = Value::Scalar(v));
    }
    /// The current value.
    pub fn get(&self, labels: &[&str]) -> f64 {
        scalar(&self.0, labels)
    }
}

/// A histogram family.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<Family>);

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, labels: &[&str], v: f64) {
        let idx = self.0.buckets.iter().position(|b| v <= *b);
        self.0.update(labels, |value| {
            if let Value::Histogram { counts, sum, count } = value {
                if let Some(i) = idx {
                    counts[i] += 1;
                }
                *sum += v;
                *count += 1;
            }
        });
    }
    /// Observations so far.
    pub fn count(&self, labels: &[&str]) -> u64 {
        let key: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        match self.0.series().get(&key) {
            Some(Value::Histogram { count, .. }) => *count,
            _ => 0,
        }
    }
}

/// Serves `GET /metrics` (and `/`) with the registry's exposition until the task is dropped. Binds first, so a
/// taken address is reported to the caller instead of in a background task.
pub async fn serve(
    registry: Registry,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let mut stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "metrics endpoint cannot accept");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = if path == "/metrics" || path == "/" {
                    ("200 OK", registry.render())
                } else {
                    ("404 Not Found", "not found; try /metrics\n".to_owned())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok((local, task))
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
            text.contains("relay_batch_seconds_bucket{le=\"1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("relay_batch_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("relay_batch_seconds_count 3\n"), "{text}");
        assert_eq!(h.count(&[]), 3);
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
        assert!(!text.contains("too"), "{text}");
    }

    #[test]
    fn gauge_sets_and_registering_twice_returns_the_same_family() {
        let r = Registry::new();
        let g = r.gauge("outbox_parked", "Parked rows.", &[]);
        g.set(&[], 4.0);
        let again = r.gauge("outbox_parked", "Parked rows.", &[]);
        assert_eq!(again.get(&[]), 4.0);
        assert_eq!(r.render().matches("# TYPE outbox_parked gauge").count(), 1);
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let r = Registry::new();
        r.counter("served_total", "S.", &[]).inc(&[]);
        let (addr, task) = serve(r, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut body = String::new();
        s.read_to_string(&mut body).await.expect("read");
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("served_total 1"), "{body}");
        task.abort();
    }
}
