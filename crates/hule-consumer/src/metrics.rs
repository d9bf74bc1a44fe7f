//! The consumer's Prometheus metrics, as handles on a [`hule_metrics::Registry`].

use hule_metrics::{
    Counter, CounterSeries, Gauge, Health, Histogram, HistogramSeries, Registry, LATENCY_BUCKETS,
};

/// Metric handles with the service and consumer group filled in.
#[derive(Debug, Clone)]
pub struct ConsumerMetrics {
    service: String,
    group: String,
    duplicates: Counter,
    headers_missing: Counter,
    messages: Counter,
    handler_seconds: Histogram,
    dlq: Counter,
    lag: Gauge,
    fail_open: Counter,
    health: Health,
}

impl ConsumerMetrics {
    /// Registers the consumer families on `registry`.
    pub fn new(registry: &Registry, service: &str, group: &str) -> Self {
        ConsumerMetrics {
            service: service.to_owned(),
            group: group.to_owned(),
            duplicates: registry.counter(
                "kafka_duplicate_events_total",
                "Deliveries recognised as already applied.",
                &["service", "consumer_group", "deduplication_method"],
            ),
            headers_missing: registry.counter(
                "kafka_event_headers_missing_total",
                "Records lacking one of the standard headers.",
                &["service", "event_type"],
            ),
            messages: registry.counter(
                "consumer_messages_total",
                "Deliveries by final outcome.",
                &["topic", "outcome"],
            ),
            handler_seconds: registry.histogram(
                "consumer_handler_seconds",
                "Time from a record's arrival at the stack to its outcome, retries included.",
                &["topic"],
                LATENCY_BUCKETS,
            ),
            dlq: registry.counter(
                "dlq_messages_total",
                "Records sent to a dead-letter topic.",
                &["topic", "reason"],
            ),
            lag: registry.gauge(
                "consumer_lag",
                "High watermark minus the next offset to commit, per partition.",
                &["consumer_group", "topic", "partition"],
            ),
            fail_open: registry.counter(
                "consumer_dedup_fail_open_total",
                "Deliveries handled without deduplication because the store was unreachable (fail-open mode).",
                &["service", "consumer_group"],
            ),
            health: registry.health().clone(),
        }
    }

    /// Reports the consumer's broker connection on the health board (`kafka:<group>`).
    pub fn broker(&self, ok: bool, detail: &str) {
        self.health
            .set(&format!("kafka:{}", self.group), ok, detail);
    }
    /// Reports whether records reach an outcome (`consumer:<group>`): unwell while a record is retried because
    /// its dedup store or dead-letter producer is unavailable.
    pub fn progressing(&self, ok: bool, detail: &str) {
        self.health
            .set(&format!("consumer:{}", self.group), ok, detail);
    }

    /// Metrics on a private registry (tests, tools), for a consumer group of their own (`detached-<n>`), so that
    /// stacks built with them never share a dedup namespace.
    pub fn detached() -> Self {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let group = format!(
            "detached-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        ConsumerMetrics::new(&Registry::new(), "test", &group)
    }

    /// Whether these are [`ConsumerMetrics::detached`] metrics (of no real consumer group).
    pub fn is_detached(&self) -> bool {
        self.group.starts_with("detached-")
    }

    /// The consumer group these metrics are labelled with; also the stack's dedup namespace.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Counts a duplicate.
    pub fn duplicate(&self, method: &str) {
        self.duplicates.inc(&[&self.service, &self.group, method]);
    }
    /// Duplicates counted so far by `method`.
    pub fn duplicates(&self, method: &str) -> f64 {
        self.duplicates.get(&[&self.service, &self.group, method])
    }
    /// Counts a record without all standard headers.
    pub fn headers_missing(&self, event_type: &str) {
        self.headers_missing.inc(&[&self.service, event_type]);
    }
    /// Counts a final outcome and its time.
    pub fn outcome(&self, topic: &str, outcome: &str, seconds: f64) {
        self.messages.inc(&[topic, outcome]);
        self.handler_seconds.observe(&[topic], seconds);
    }
    /// The outcome series of one topic, resolved once (a partition's worker records every record's outcome
    /// there without a lookup: the lookup allocated the label values and took the family's lock per record).
    pub fn for_topic(&self, topic: &str) -> TopicOutcomes {
        let outcome = |o: &str| self.messages.series(&[topic, o]);
        TopicOutcomes {
            handled: outcome("handled"),
            duplicate: outcome("duplicate"),
            ignored: outcome("ignored"),
            dead_lettered: outcome("dead_lettered"),
            not_committed: outcome("not_committed"),
            seconds: self.handler_seconds.series(&[topic]),
        }
    }
    /// Deliveries of `topic` that ended with `outcome`.
    pub fn outcomes(&self, topic: &str, outcome: &str) -> f64 {
        self.messages.get(&[topic, outcome])
    }
    /// Counts a dead-lettered record.
    pub fn dead_lettered(&self, source_topic: &str, reason: &str) {
        self.dlq.inc(&[source_topic, reason]);
    }
    /// Dead letters counted for `source_topic` and `reason`.
    pub fn dead_letters(&self, source_topic: &str, reason: &str) -> f64 {
        self.dlq.get(&[source_topic, reason])
    }
    /// Sets the lag of one partition.
    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.lag
            .set(&[&self.group, topic, &partition.to_string()], lag as f64);
    }
    /// The lag last set for one partition.
    pub fn lag(&self, topic: &str, partition: i32) -> f64 {
        self.lag.get(&[&self.group, topic, &partition.to_string()])
    }
    /// Forgets the lag of a partition this consumer no longer owns.
    pub fn forget_lag(&self, topic: &str, partition: i32) {
        self.lag
            .remove(&[&self.group, topic, &partition.to_string()]);
    }
    /// Counts a delivery handled without dedup protection.
    pub fn fail_open(&self) {
        self.fail_open.inc(&[&self.service, &self.group]);
    }
    /// Fail-open deliveries so far.
    pub fn fail_opens(&self) -> f64 {
        self.fail_open.get(&[&self.service, &self.group])
    }
}

/// One topic's outcome series ([`ConsumerMetrics::for_topic`]).
#[derive(Debug, Clone)]
pub struct TopicOutcomes {
    handled: Option<CounterSeries>,
    duplicate: Option<CounterSeries>,
    ignored: Option<CounterSeries>,
    dead_lettered: Option<CounterSeries>,
    not_committed: Option<CounterSeries>,
    seconds: Option<HistogramSeries>,
}

impl TopicOutcomes {
    /// Counts one delivery that ended with `outcome` (a label of `consumer_messages_total`) after `seconds`.
    pub fn record(&self, outcome: &str, seconds: f64) {
        let series = match outcome {
            "handled" => &self.handled,
            "duplicate" => &self.duplicate,
            "ignored" => &self.ignored,
            "dead_lettered" => &self.dead_lettered,
            _ => &self.not_committed,
        };
        if let Some(c) = series {
            c.inc();
        }
        if let Some(h) = &self.seconds {
            h.observe(seconds);
        }
    }
}
