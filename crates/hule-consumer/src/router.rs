//! The router: event → typed async handler. Innermost service of the stack.
//!
//! A service subscribes by event and chooses, per event, the standard topic, the legacy topic or both (the
//! transition of seed 001's rollback plan). An event read from both topics arrives twice, on different partitions
//! that may belong to different members of the group and run concurrently; only a shared dedup record can make it
//! handled once. So a dual subscription needs a dedup store (the [`crate::Dedup`] layer) or a handler that dedups
//! itself ([`crate::PgInbox::route`]); [`crate::standard_stack`] refuses it otherwise
//! ([`Router::dual_routes_without_dedup`]). (An in-process memory of handled ids, which the first version kept,
//! raced between the two copies and forgot across restarts and members.)

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use hule_contracts::{Event, Payload, TypedEvent};
use tracing::Instrument;

use crate::message::{Context, Message};
use crate::service::{Failure, Outcome, Processed, Service};

/// A handler's error: retrying helps, or it does not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// A retry may succeed (a timeout, a lock, an unavailable dependency).
    #[error("{0}")]
    Transient(String),
    /// A retry cannot succeed (a business rule refused the event).
    #[error("{0}")]
    Permanent(String),
}

impl HandlerError {
    /// A transient error from anything displayable.
    pub fn transient(e: impl std::fmt::Display) -> Self {
        HandlerError::Transient(e.to_string())
    }
    /// A permanent error from anything displayable.
    pub fn permanent(e: impl std::fmt::Display) -> Self {
        HandlerError::Permanent(e.to_string())
    }
}

impl From<HandlerError> for Failure {
    fn from(e: HandlerError) -> Self {
        match e {
            HandlerError::Transient(m) => Failure::Transient(m),
            HandlerError::Permanent(m) => Failure::Permanent(m),
        }
    }
}

/// Which topics of an event a service reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicChoice {
    /// The standard topic only.
    Standard,
    /// The legacy topic only.
    Legacy,
    /// Both; each event is handled once through the dedup store (required: see the module docs).
    Both,
}

/// A type-erased handler: returns the outcome itself so that handlers owning their dedup (the PostgreSQL inbox)
/// can report duplicates.
pub type ErasedHandler =
    Arc<dyn Fn(Context, TypedEvent) -> BoxFuture<'static, Processed> + Send + Sync>;

struct Route {
    choice: TopicChoice,
    handler: ErasedHandler,
    /// The handler records the event id atomically with its effect (the PostgreSQL inbox).
    dedups_itself: bool,
}

/// Maps events to handlers.
pub struct Router {
    routes: HashMap<Event, Route>,
}

impl Default for Router {
    fn default() -> Self {
        Router::new()
    }
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Router {
            routes: HashMap::new(),
        }
    }

    /// Registers a typed handler for `P`'s event.
    pub fn on<P, F, Fut>(self, choice: TopicChoice, handler: F) -> Self
    where
        P: Payload,
        F: Fn(Context, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), crate::HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.on_erased(
            P::EVENT,
            choice,
            Arc::new(move |ctx, typed| {
                let handler = handler.clone();
                async move {
                    let payload = P::from_typed(typed).map_err(|other| {
                        Failure::Permanent(format!(
                            "router gave {:?} to the handler of {:?}",
                            other,
                            P::EVENT
                        ))
                    })?;
                    handler(ctx, payload).await?;
                    Ok(Outcome::Handled)
                }
                .boxed()
            }),
        )
    }

    /// Registers an erased handler (used by tools that handle every event).
    pub fn on_erased(mut self, event: Event, choice: TopicChoice, handler: ErasedHandler) -> Self {
        self.routes.insert(
            event,
            Route {
                choice,
                handler,
                dedups_itself: false,
            },
        );
        self
    }

    /// Registers an erased handler that records each event id atomically with its effect, so that it is a
    /// duplicate-proof route on its own (the PostgreSQL inbox).
    pub fn on_erased_deduplicating(
        mut self,
        event: Event,
        choice: TopicChoice,
        handler: ErasedHandler,
    ) -> Self {
        self.routes.insert(
            event,
            Route {
                choice,
                handler,
                dedups_itself: true,
            },
        );
        self
    }

    /// Events read from two distinct topics whose handler does not dedup itself: with no dedup store such an event
    /// could be handled twice, so [`crate::standard_stack`] refuses them.
    pub fn dual_routes_without_dedup(&self) -> Vec<Event> {
        let mut events: Vec<Event> = self
            .routes
            .iter()
            .filter(|(event, route)| {
                route.choice == TopicChoice::Both
                    && event.def().has_distinct_legacy_topic()
                    && !route.dedups_itself
            })
            .map(|(event, _)| *event)
            .collect();
        events.sort_unstable_by_key(|e| e.value());
        events
    }

    /// The topics to subscribe to, sorted and without repeats.
    pub fn topics(&self) -> Vec<&'static str> {
        let mut topics: Vec<&'static str> = self
            .routes
            .iter()
            .flat_map(|(event, route)| {
                let def = event.def();
                match route.choice {
                    TopicChoice::Standard => vec![def.topic],
                    TopicChoice::Legacy => vec![def.legacy_topic],
                    TopicChoice::Both => vec![def.topic, def.legacy_topic],
                }
            })
            .collect();
        topics.sort_unstable();
        topics.dedup();
        topics
    }

    /// The registered events.
    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        self.routes.keys().copied()
    }
}

impl Service for Router {
    fn call<'a>(&'a self, msg: &'a mut Message) -> BoxFuture<'a, Processed> {
        async move {
            let Some(env) = msg.decoded.as_ref() else {
                return Err(Failure::Permanent(
                    "router reached without a decoded envelope (validate layer missing)".into(),
                ));
            };
            let event = env.data.event();
            let Some(route) = self.routes.get(&event) else {
                return Ok(Outcome::Ignored);
            };
            let ctx = Context::of(msg, env);
            let span = tracing::info_span!(target: "hule", "consumer.handle", event = event.name(), event_id = %env.event_id);
            (route.handler)(ctx, env.data.clone())
                .instrument(span)
                .await
        }
        .boxed()
    }
}
