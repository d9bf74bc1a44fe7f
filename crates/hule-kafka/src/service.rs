//! Running a consumer in one place: [`EventConsumer::builder`] takes the connection, group and service once, the
//! handlers (with shared state, like axum's `with_state`), the dedup store, the retry policy and the dead-letter
//! sink; the topics come from the handlers; the layer order is the standard stack's (dead-letter → validate →
//! retry → dedup → handler), fixed by construction. [`EventConsumer::run`] returns when its cancellation token
//! fires, after the records in flight finish and their offsets are committed (or the drain timeout passes).
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use hule_contracts::payloads::BatchEssaysRegistered;
//! use hule_kafka::{EventConsumer, KafkaSettings};
//! use tokio_util::sync::CancellationToken;
//!
//! #[derive(Clone)]
//! struct App { /* a pool, a client… */ }
//!
//! let consumer = EventConsumer::builder(&KafkaSettings::new("127.0.0.1:9092"), "els", "essay_lifecycle_service")
//!     .state(App {})
//!     .handle(|_app: App, ctx, batch: BatchEssaysRegistered| async move {
//!         println!("{} essays in {} ({})", batch.essay_ids.len(), batch.entity_id, ctx.event_id);
//!         Ok(())
//!     })
//!     .build()?;
//! let shutdown = CancellationToken::new();
//! consumer.run(shutdown.clone()).await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hule_consumer::dedup::DedupStore;
use hule_consumer::{
    standard_stack_in, ConsumerMetrics, Context, DeadLetterSink, HandlerError, Retry, Router,
    StackError, TopicChoice,
};
use hule_contracts::Payload;
use tokio_util::sync::CancellationToken;

use crate::consumer::{run_consumer, ConsumerConfig, ConsumerStats, KafkaDeadLetterSink};
use crate::settings::KafkaSettings;
use crate::Error;

/// Why a consumer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No handler: nothing to consume.
    #[error("the consumer of group {0} has no handler: add one with .handle(…)")]
    NoHandlers(String),
    /// The stack cannot keep its promises (see [`StackError`]).
    #[error(transparent)]
    Stack(#[from] StackError),
    /// The dead-letter producer could not be made.
    #[error("dead-letter producer: {0}")]
    DeadLetters(#[from] Error),
}

/// A consumer of one group, ready to run.
pub struct EventConsumer {
    config: ConsumerConfig,
    topics: Vec<&'static str>,
    stack: hule_consumer::BoxService,
    metrics: ConsumerMetrics,
    drain_timeout: Duration,
}

/// Builds an [`EventConsumer`]; `S` is the state every handler receives (a clone each call).
pub struct EventConsumerBuilder<S = ()> {
    kafka: KafkaSettings,
    group: String,
    service: String,
    state: S,
    router: Router,
    dedup: Option<Arc<dyn DedupStore>>,
    dedup_namespace: Option<String>,
    retry: Retry,
    dead_letters: Option<Arc<dyn DeadLetterSink>>,
    registry: hule_metrics::Registry,
    config: ConsumerConfig,
    drain_timeout: Duration,
}

impl EventConsumer {
    /// A consumer of `group` for `service` (the dead letters' `failed_service`); its dedup records are kept under
    /// the group (see [`EventConsumerBuilder::dedup_namespace`]).
    pub fn builder(kafka: &KafkaSettings, group: &str, service: &str) -> EventConsumerBuilder<()> {
        EventConsumerBuilder {
            kafka: kafka.clone(),
            group: group.to_owned(),
            service: service.to_owned(),
            state: (),
            router: Router::new(),
            dedup: None,
            dedup_namespace: None,
            retry: Retry::default(),
            dead_letters: None,
            registry: hule_metrics::Registry::global().clone(),
            config: ConsumerConfig::with_settings(kafka, group),
            drain_timeout: Duration::from_secs(30),
        }
    }

    /// The topics it subscribes to (from its handlers).
    pub fn topics(&self) -> &[&'static str] {
        &self.topics
    }

    /// Its metrics (outcomes, duplicates, dead letters, lag), as registered.
    pub fn metrics(&self) -> &ConsumerMetrics {
        &self.metrics
    }

    /// Its consumer group.
    pub fn group(&self) -> &str {
        &self.config.group
    }

    /// Consumes until `shutdown` is cancelled, then lets the records in flight finish, commits and leaves the
    /// group — within the drain timeout (30 s unless set); a record still running then is not committed and is
    /// redelivered to the group's next owner (dedup makes that harmless). Ends early with an error on a fatal
    /// client error.
    pub async fn run(self, shutdown: CancellationToken) -> Result<ConsumerStats, Error> {
        // The driver gets a token of its own: cancelled when `shutdown` is, and then given the drain timeout.
        let stop = CancellationToken::new();
        let run = run_consumer(
            &self.config,
            &self.topics,
            self.stack,
            self.metrics,
            stop.clone(),
        );
        tokio::pin!(run);
        tokio::select! {
            result = &mut run => return result,
            () = shutdown.cancelled() => {}
        }
        stop.cancel();
        match tokio::time::timeout(self.drain_timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(Error::ShutdownTimeout(self.drain_timeout)),
        }
    }
}

impl<S: Clone + Send + Sync + 'static> EventConsumerBuilder<S> {
    /// The state every handler receives (a pool, a client, your service's struct); replaces the previous state, so
    /// give it before the handlers.
    pub fn state<T: Clone + Send + Sync + 'static>(self, state: T) -> EventConsumerBuilder<T> {
        EventConsumerBuilder {
            kafka: self.kafka,
            group: self.group,
            service: self.service,
            state,
            router: self.router,
            dedup: self.dedup,
            dedup_namespace: self.dedup_namespace,
            retry: self.retry,
            dead_letters: self.dead_letters,
            registry: self.registry,
            config: self.config,
            drain_timeout: self.drain_timeout,
        }
    }

    /// Handles `P`'s event from its standard topic.
    pub fn handle<P, F, Fut>(self, handler: F) -> Self
    where
        P: Payload,
        F: Fn(S, Context, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.handle_from(TopicChoice::Standard, handler)
    }

    /// Handles `P`'s event from the standard topic, the legacy one, or both (both needs a dedup store).
    pub fn handle_from<P, F, Fut>(mut self, choice: TopicChoice, handler: F) -> Self
    where
        P: Payload,
        F: Fn(S, Context, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let state = self.state.clone();
        self.router = self.router.on(choice, move |ctx: Context, payload: P| {
            handler(state.clone(), ctx, payload)
        });
        self
    }

    /// Deduplicates deliveries with `store` (Redis, memory, or your own) before the handlers run.
    pub fn dedup(mut self, store: impl DedupStore + 'static) -> Self {
        self.dedup = Some(Arc::new(store));
        self
    }

    /// Deduplicates with a store shared with other consumers of the process.
    pub fn dedup_shared(mut self, store: Arc<dyn DedupStore>) -> Self {
        self.dedup = Some(store);
        self
    }

    /// Keeps dedup records under `namespace` instead of the consumer group: for a consumer moving from a release
    /// that namespaced Redis dedup by the service, give the service's name, so the markers written before the
    /// upgrade still count (switching namespace later forgets them: redeliveries within one completion TTL are then
    /// handled again). Two groups must not share a namespace (each would skip the other's events).
    pub fn dedup_namespace(mut self, namespace: &str) -> Self {
        self.dedup_namespace = Some(namespace.to_owned());
        self
    }

    /// Takes the routes of a router built elsewhere (a service's own route table), replacing those given so far;
    /// `handle` may add more after it.
    pub fn router(mut self, router: Router) -> Self {
        self.router = router;
        self
    }

    /// Retries transient handler failures with this policy (records' `X-Max-Retries` / `X-Backoff-Ms` headers
    /// within its limits); the default retries up to 10 times.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Sends dead letters to this sink instead of a Kafka producer on the same connection.
    pub fn dead_letters(mut self, sink: impl DeadLetterSink + 'static) -> Self {
        self.dead_letters = Some(Arc::new(sink));
        self
    }

    /// Registers the metrics on this registry instead of the process-wide one.
    pub fn metrics(mut self, registry: &hule_metrics::Registry) -> Self {
        self.registry = registry.clone();
        self
    }

    /// Adjusts the driver's settings (queue sizes, commit interval, librdkafka properties).
    pub fn configure(mut self, f: impl FnOnce(&mut ConsumerConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// How long `run` waits for the records in flight after its token fires (30 s).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The consumer; refuses one without handlers, or reading an event from two topics without dedup.
    pub fn build(self) -> Result<EventConsumer, BuildError> {
        let topics = self.router.topics();
        if topics.is_empty() {
            return Err(BuildError::NoHandlers(self.group));
        }
        let metrics = ConsumerMetrics::new(&self.registry, &self.service, &self.group);
        let dead_letters = match self.dead_letters {
            Some(sink) => sink,
            None => Arc::new(KafkaDeadLetterSink::with_settings(&self.kafka)?),
        };
        let stack = standard_stack_in(
            self.router,
            &self.service,
            self.dedup_namespace.as_deref().unwrap_or(&self.group),
            self.dedup,
            self.retry,
            dead_letters,
            metrics.clone(),
        )?;
        Ok(EventConsumer {
            config: self.config,
            topics,
            stack,
            metrics,
            drain_timeout: self.drain_timeout,
        })
    }
}
