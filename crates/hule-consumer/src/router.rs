//! The router: event → typed async handler. Innermost service of the stack.
//!
//! A service subscribes by event and chooses, per event, the standard topic, the legacy topic or both (the
//! transition of seed 001's rollback plan). An event read from both topics is handled once: the router remembers the
//! ids of recently handled events of dual subscriptions, and a dedup layer (when configured) recognises them anyway.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use hule_contracts::{Event, Payload, TypedEvent};
use uuid::Uuid;

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
    /// Both, each event handled once.
    Both,
}

/// A type-erased handler: returns the outcome itself so that handlers owning their dedup (the PostgreSQL inbox)
/// can report duplicates.
pub type ErasedHandler =
    Arc<dyn Fn(Context, TypedEvent) -> BoxFuture<'static, Processed> + Send + Sync>;

struct Route {
    choice: TopicChoice,
    handler: ErasedHandler,
}

/// Remembers the last `capacity` event ids (bounded memory).
struct RecentIds {
    set: HashSet<Uuid>,
    order: VecDeque<Uuid>,
    capacity: usize,
}

impl RecentIds {
    fn insert(&mut self, id: Uuid) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// Maps events to handlers.
pub struct Router {
    routes: HashMap<Event, Route>,
    dual_seen: Mutex<RecentIds>,
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
            dual_seen: Mutex::new(RecentIds {
                set: HashSet::new(),
                order: VecDeque::new(),
                capacity: 100_000,
            }),
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

    /// Registers an erased handler (used by the PostgreSQL inbox and by tools that handle every event).
    pub fn on_erased(mut self, event: Event, choice: TopicChoice, handler: ErasedHandler) -> Self {
        self.routes.insert(event, Route { choice, handler });
        self
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
            let dual = route.choice == TopicChoice::Both && event.def().has_distinct_legacy_topic();
            if dual {
                let seen = self
                    .dual_seen
                    .lock()
                    .map(|s| s.set.contains(&env.event_id))
                    .unwrap_or(false);
                if seen {
                    return Ok(Outcome::Duplicate {
                        method: "dual_topic",
                    });
                }
            }
            let ctx = Context::of(msg, env);
            let outcome = (route.handler)(ctx, env.data.clone()).await?;
            if dual && outcome == Outcome::Handled {
                if let Ok(mut seen) = self.dual_seen.lock() {
                    seen.insert(env.event_id);
                }
            }
            Ok(outcome)
        }
        .boxed()
    }
}
