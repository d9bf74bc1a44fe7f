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
    standard_stack_in, BoxService, ConsumerMetrics, Context, DeadLetterSink, HandlerError, Layer,
    Retry, Router, StackError, TopicChoice,
};
use hule_contracts::Payload;
use tokio_util::sync::CancellationToken;

use crate::consumer::{run_consumer, ConsumerConfig, ConsumerStats, KafkaDeadLetterSink};
use crate::settings::KafkaSettings;
use crate::Error;

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or SIGTERM (what Kubernetes, systemd and Docker
/// send). A service awaits it and cancels its consumers' and relay's token.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// A token cancelled on Ctrl-C or SIGTERM: give it to `EventConsumer::run` and `Relay::run`, which then finish the
/// work in flight. A second Ctrl-C or SIGTERM during that exits at once (status 130). The handlers are installed
/// before this returns, so a signal that comes right after is not the default one that kills the process. Call it
/// inside the runtime.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    #[cfg(unix)]
    let streams = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    tokio::spawn(async move {
        #[cfg(unix)]
        if let (Ok(mut term), Ok(mut int)) = streams {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!(target: "hule", "stop signal received: finishing the work in flight (again to exit now)");
            cancel.cancel();
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::warn!(target: "hule", "second stop signal: exiting without finishing the work in flight");
            std::process::exit(130);
        }
        shutdown_signal().await;
        tracing::info!(target: "hule", "stop signal received: finishing the work in flight");
        cancel.cancel();
    });
    token
}

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
    /// A transactional handler (`handle_tx`) without an inbox to run it in.
    #[error("the consumer of group {0} has transactional handlers (handle_tx) but no inbox: add .inbox(database_url)")]
    NoInbox(String),
}

/// The PostgreSQL inbox a consumer's transactional handlers run in: connected when the consumer starts, its old
/// rows deleted on a schedule while it runs.
#[cfg(feature = "postgres")]
#[derive(Clone)]
struct InboxPlan {
    url: String,
    pool: usize,
    runs: bool,
    retention: Duration,
    slot: hule_consumer::inbox::InboxSlot,
    routes: usize,
}

/// A consumer of one group, ready to run.
pub struct EventConsumer {
    config: ConsumerConfig,
    topics: Vec<&'static str>,
    stack: hule_consumer::BoxService,
    metrics: ConsumerMetrics,
    drain_timeout: Duration,
    #[cfg(feature = "postgres")]
    inbox: Option<InboxPlan>,
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
    /// Layers around the standard stack, innermost first ([`EventConsumerBuilder::layer`]).
    outer: Vec<OuterLayer>,
    #[cfg(feature = "postgres")]
    inbox: InboxPlan,
}

/// A layer given to [`EventConsumerBuilder::layer`], applied when the consumer is built.
type OuterLayer = Box<dyn FnOnce(BoxService) -> BoxService + Send>;

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
            outer: Vec::new(),
            #[cfg(feature = "postgres")]
            inbox: InboxPlan {
                url: String::new(),
                pool: 4,
                runs: true,
                retention: Duration::from_secs(7 * 24 * 3600),
                slot: Default::default(),
                routes: 0,
            },
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
        // The inbox first: a database that cannot be reached fails the start, not every record.
        #[cfg(feature = "postgres")]
        let _cleanup = match &self.inbox {
            Some(plan) => Some(start_inbox(plan, &self.config.group, &shutdown).await?),
            None => None,
        };
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

/// Connects a consumer's inbox (migrating it) and starts its clean-up: every hour (or half the retention, if
/// shorter) rows older than the retention are deleted, 10,000 at a time. The clean-up stops with the consumer
/// (the returned guard aborts it when dropped).
#[cfg(feature = "postgres")]
async fn start_inbox(
    plan: &InboxPlan,
    group: &str,
    shutdown: &CancellationToken,
) -> Result<AbortOnDrop, Error> {
    let inbox = hule_consumer::PgInbox::connect(&plan.url, group, plan.pool).await?;
    inbox.batched_runs(plan.runs);
    let _ = plan.slot.set(inbox.clone());
    tracing::info!(target: "hule", group, pool = plan.pool, "PostgreSQL inbox connected");
    let every = (plan.retention / 2)
        .min(Duration::from_secs(3600))
        .max(Duration::from_secs(1));
    let (retention, shutdown) = (plan.retention, shutdown.clone());
    Ok(AbortOnDrop(tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            while !shutdown.is_cancelled() {
                match inbox.cleanup(retention, 10_000).await {
                    Ok(10_000) => continue,
                    Ok(n) => {
                        tracing::debug!(target: "hule", deleted = n, "inbox rows past their retention deleted");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(target: "hule", error = %e, "inbox clean-up failed; trying again later");
                        break;
                    }
                }
            }
        }
    })))
}

/// A task aborted when this is dropped.
#[cfg(feature = "postgres")]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

#[cfg(feature = "postgres")]
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(feature = "postgres")]
impl<S: Clone + Send + Sync + 'static> EventConsumerBuilder<S> {
    /// The PostgreSQL inbox the transactional handlers run in (`postgres://…`; `options=-csearch_path%3D…` for a
    /// schema): the table `hule_inbox` is created if missing when the consumer starts, and rows older than the
    /// retention (7 days) are deleted while it runs. A record's inbox row, its handler's writes and its outbox
    /// rows commit together or not at all: its effect happens once, however often it is delivered.
    pub fn inbox(mut self, database_url: &str) -> Self {
        self.inbox.url = database_url.to_owned();
        self
    }

    /// Connections in the inbox's pool (4). A partition's run of waiting records holds one for its transaction
    /// (a record alone holds one for its own); the driver works on one run per assigned partition at a time, so
    /// more connections than this member's partitions are idle, and fewer make the partitions' runs take turns.
    pub fn inbox_pool(mut self, connections: usize) -> Self {
        self.inbox.pool = connections.max(1);
        self
    }

    /// Whether the records waiting in a partition's queue share one inbox transaction (on): one commit per run
    /// instead of one per record. Turn it off (`false`) when a handler must not share its transaction with the
    /// records before it: it reads their effects or writes their rows through another connection, or sets
    /// transaction-scoped state (`SET LOCAL`, `set_config(…, true)` for row-level security) the next handler must
    /// not inherit. Each record then has a transaction of its own.
    pub fn inbox_runs(mut self, on: bool) -> Self {
        self.inbox.runs = on;
        self
    }

    /// How long inbox rows are kept (7 days): a redelivery older than this would be handled again, so keep it
    /// above the topics' retention if replays of old records must stay exactly-once.
    pub fn inbox_retention(mut self, retention: Duration) -> Self {
        self.inbox.retention = retention;
        self
    }

    /// Handles `P`'s event from its standard topic inside the inbox's transaction: `handler` is a plain
    /// `async fn(state, &Transaction<'_>, Context, payload) -> Result<(), HandlerError>`; its writes, its
    /// `Outbox::publish` calls in that transaction and the inbox row commit together after it returns `Ok`, and
    /// are rolled back on an error. A redelivered record finds its inbox row and is skipped as a duplicate.
    pub fn handle_tx<P, F>(self, handler: F) -> Self
    where
        P: Payload,
        F: for<'t> hule_consumer::inbox::TxHandlerFn<'t, S, P>,
    {
        self.handle_tx_from(TopicChoice::Standard, handler)
    }

    /// [`EventConsumerBuilder::handle_tx`] from the standard topic, the legacy one, or both (the inbox makes
    /// both safe: one row per event id).
    pub fn handle_tx_from<P, F>(mut self, choice: TopicChoice, handler: F) -> Self
    where
        P: Payload,
        F: for<'t> hule_consumer::inbox::TxHandlerFn<'t, S, P>,
    {
        self.router = hule_consumer::inbox::route_in_slot(
            &self.inbox.slot,
            self.router,
            choice,
            self.state.clone(),
            handler,
        );
        self.inbox.routes += 1;
        self
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
            outer: self.outer,
            #[cfg(feature = "postgres")]
            inbox: self.inbox,
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
        // The transactional routes given before are gone with the routes they were in.
        #[cfg(feature = "postgres")]
        {
            self.inbox.routes = 0;
        }
        self
    }

    /// Retries transient handler failures with this policy. The default follows each record's `X-Max-Retries` /
    /// `X-Backoff-Ms` headers — 3 retries after 1, 5 and 15 s when the record has none — within
    /// [`hule_consumer::RetryLimit`]'s bounds (at most 10 retries, 60 s per delay, 5 min in all).
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

    /// Wraps the standard stack (dead-letter → validate → retry → dedup → router) in `layer`, outside the
    /// dead-letter layer: it sees every record and its final outcome (timing, auditing). Layers given later wrap
    /// the earlier ones.
    pub fn layer(mut self, layer: impl Layer + Send + 'static) -> Self {
        self.outer.push(Box::new(move |inner| layer.layer(inner)));
        self
    }

    /// The consumer; refuses one without handlers, or reading an event from two topics without dedup.
    pub fn build(self) -> Result<EventConsumer, BuildError> {
        let topics = self.router.topics();
        if topics.is_empty() {
            return Err(BuildError::NoHandlers(self.group));
        }
        #[cfg(feature = "postgres")]
        let inbox = match (self.inbox.routes, self.inbox.url.is_empty()) {
            (0, _) => None,
            (_, true) => return Err(BuildError::NoInbox(self.group)),
            (_, false) => Some(self.inbox.clone()),
        };
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
        let stack = self
            .outer
            .into_iter()
            .fold(stack, |inner, wrap| wrap(inner));
        Ok(EventConsumer {
            config: self.config,
            topics,
            stack,
            metrics,
            drain_timeout: self.drain_timeout,
            #[cfg(feature = "postgres")]
            inbox,
        })
    }
}
