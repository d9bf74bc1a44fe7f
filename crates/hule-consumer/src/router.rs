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

/// A handler's error, by what a retry can do about it.
///
/// The library's own errors convert with `?`, classified by the rule the relay uses for its records: what the same
/// record will meet again is `Permanent` (an event that cannot be prepared: its key, size or encoding; a database
/// refusing the statement itself: SQLSTATE classes 22 data, 23 integrity, 42 syntax or access), a dependency that is
/// down or cut off is `Unavailable` (a closed connection, SQLSTATE 08 connection, 57 operator intervention, 53
/// resources), and the rest is `Transient` (a serialization failure or deadlock, 40; a timeout).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// A retry may succeed (a timeout, a lock, a serialization failure): retried in place with the record's
    /// backoff, then dead-lettered when the retries run out.
    #[error("{0}")]
    Transient(String),
    /// A retry cannot succeed (a business rule refused the event): dead-lettered at once.
    #[error("{0}")]
    Permanent(String),
    /// A dependency the service needs is down (its database): not the record's fault, so it is never
    /// dead-lettered for it; its offset is not committed and the driver tries it again until the dependency answers.
    #[error("{0}")]
    Unavailable(String),
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
    /// A dependency that is down, from anything displayable.
    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        HandlerError::Unavailable(e.to_string())
    }
}

impl From<HandlerError> for Failure {
    fn from(e: HandlerError) -> Self {
        match e {
            HandlerError::Transient(m) => Failure::Transient(m),
            HandlerError::Permanent(m) => Failure::Permanent(m),
            HandlerError::Unavailable(m) => Failure::Unavailable(m),
        }
    }
}

/// The kind of a PostgreSQL error from its SQLSTATE (`None`: an error without one), by what a retry of the same
/// record can do: the record's own fault is permanent (data, integrity, a business rule a trigger raised); the
/// database or the service's set-up being wrong or away (a connection, resources, a shutdown, a missing table or
/// grant after a deploy, a read-only standby after a failover, a login) is unavailable: never the record's fault,
/// so never dead-lettered; the rest — a serialization failure or deadlock, a statement timeout, a foreign key not
/// there yet (events of two topics arriving out of order), an error without a code (no row where one was expected)
/// — is transient: retried, then dead-lettered.
pub fn sqlstate_class(code: Option<&str>) -> fn(String) -> HandlerError {
    let Some(code) = code else {
        return HandlerError::Transient;
    };
    match code {
        "23503" | "57014" => HandlerError::Transient,
        "25006" => HandlerError::Unavailable,
        "P0001" => HandlerError::Permanent,
        _ => match code.get(..2) {
            Some("22" | "23" | "44") => HandlerError::Permanent,
            Some("08" | "0A" | "28" | "3D" | "3F" | "42" | "53" | "57" | "58") => {
                HandlerError::Unavailable
            }
            _ => HandlerError::Transient,
        },
    }
}

/// A PostgreSQL error's class: a closed connection or an I/O error is unavailable, the rest by SQLSTATE.
#[cfg(feature = "postgres")]
fn pg_class(e: &tokio_postgres::Error) -> fn(String) -> HandlerError {
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        return HandlerError::Unavailable;
    }
    sqlstate_class(e.code().map(|c| c.code()))
}

/// A PostgreSQL error's text for a dead letter or a log: the server's message, its SQLSTATE and the constraint,
/// table or column it names, but not its DETAIL (which quotes row values: `Key (email)=(…) already exists`).
#[cfg(feature = "postgres")]
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            for (what, name) in [
                ("constraint", db.constraint()),
                ("table", db.table()),
                ("column", db.column()),
            ] {
                if let Some(name) = name {
                    text.push_str(&format!(", {what} {name}"));
                }
            }
            text
        }
        None => e.to_string(),
    }
}

/// `?` on a PostgreSQL call in a handler: classified by [`sqlstate_class`], a closed connection unavailable.
#[cfg(feature = "postgres")]
impl From<tokio_postgres::Error> for HandlerError {
    fn from(e: tokio_postgres::Error) -> Self {
        pg_class(&e)(pg_message(&e))
    }
}

/// The inbox's own errors (connecting, migrating) are a database that is not usable yet.
#[cfg(feature = "postgres")]
impl From<crate::inbox::InboxError> for HandlerError {
    fn from(e: crate::inbox::InboxError) -> Self {
        HandlerError::Unavailable(e.to_string())
    }
}

/// `?` on [`hule_outbox::Outbox::publish`] in a handler: an event that cannot be prepared (key, size, encoding) is
/// the record's fault and permanent; a database error is classified as a PostgreSQL error is (SQLSTATE), or
/// transient when it is not one; a bad configuration or an outbox another relay took over is the service's state,
/// not the record's: unavailable.
#[cfg(feature = "outbox")]
impl From<hule_outbox::StoreError> for HandlerError {
    fn from(e: hule_outbox::StoreError) -> Self {
        use hule_outbox::StoreError as E;
        let class: fn(String) -> HandlerError = match &e {
            E::Prepare { .. } => HandlerError::Permanent,
            #[cfg(feature = "postgres")]
            E::Database { source, op } => {
                if let Some(pg) = source.downcast_ref::<tokio_postgres::Error>() {
                    return pg_class(pg)(format!("outbox {op}: {}", pg_message(pg)));
                }
                HandlerError::Transient
            }
            #[cfg(not(feature = "postgres"))]
            E::Database { .. } => HandlerError::Transient,
            // A bad configuration, a fatal publisher, an outbox another relay leads, and whatever a later
            // version adds: the service's state, not the record's.
            _ => HandlerError::Unavailable,
        };
        class(e.to_string())
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
    /// The inbox a transactional handler runs in, and the handler for a record of a batched run.
    #[cfg(feature = "postgres")]
    in_run: Option<(crate::inbox::InboxSlot, crate::inbox::RunHandler)>,
}

impl Route {
    fn new(choice: TopicChoice, handler: ErasedHandler, dedups_itself: bool) -> Self {
        Route {
            choice,
            handler,
            dedups_itself,
            #[cfg(feature = "postgres")]
            in_run: None,
        }
    }
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
        self.routes
            .insert(event, Route::new(choice, handler, false));
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
        self.routes.insert(event, Route::new(choice, handler, true));
        self
    }

    /// Registers an inbox handler: `alone` for a record in a transaction of its own, `in_run` for a record of a
    /// batched run in the inbox that `slot` holds.
    #[cfg(feature = "postgres")]
    pub(crate) fn on_inbox(
        mut self,
        event: Event,
        choice: TopicChoice,
        alone: ErasedHandler,
        slot: crate::inbox::InboxSlot,
        in_run: crate::inbox::RunHandler,
    ) -> Self {
        let mut route = Route::new(choice, alone, true);
        route.in_run = Some((slot, in_run));
        self.routes.insert(event, route);
        self
    }

    /// The inbox run of `msg`, if its route has one and the inbox is connected.
    #[cfg(feature = "postgres")]
    fn inbox_of(&self, msg: &Message) -> Option<Arc<crate::PgInbox>> {
        let env = msg.decoded.as_ref()?;
        let (slot, _) = self.routes.get(&env.data.event())?.in_run.as_ref()?;
        slot.get().filter(|inbox| inbox.runs_batched()).cloned()
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
            #[cfg(feature = "postgres")]
            if let Some(tie) = &msg.inbox_run {
                match (&route.in_run, tie.member) {
                    (Some((_, in_run)), true) => {
                        return in_run(ctx, env.data.clone(), tie.run.clone())
                            .instrument(span)
                            .await;
                    }
                    // Handled elsewhere: the run's records before it commit first, so that its effect follows
                    // theirs even if their commit fails (they are then processed again before it).
                    _ => {
                        if !tie.run.commit().await {
                            return Err(Failure::Undone(
                                "the inbox run before this record did not commit".into(),
                            ));
                        }
                    }
                }
            }
            (route.handler)(ctx, env.data.clone())
                .instrument(span)
                .await
        }
        .boxed()
    }

    /// Makes the inbox records of the run one batched run ([`crate::inbox`]): those of the first record's inbox,
    /// fresh, at most [`crate::inbox::RUN_MEMBERS`], when there are two or more and no dedup layer decides the run's
    /// duplicates. The records after the run's first that are not in it are tied to it too: they commit it first.
    #[cfg(feature = "postgres")]
    fn prepare<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, ()> {
        if msgs.iter().any(|m| m.dedup_layer || m.attempt > 1) {
            return Box::pin(std::future::ready(()));
        }
        let inboxes: Vec<Option<Arc<crate::PgInbox>>> =
            msgs.iter().map(|m| self.inbox_of(m)).collect();
        let Some((first, inbox)) = inboxes
            .iter()
            .enumerate()
            .find_map(|(i, x)| x.clone().map(|x| (i, x)))
        else {
            return Box::pin(std::future::ready(()));
        };
        let mut members = vec![false; msgs.len()];
        let mut count = 0;
        for (i, x) in inboxes.iter().enumerate() {
            if count < crate::inbox::RUN_MEMBERS
                && x.as_ref().is_some_and(|x| Arc::ptr_eq(x, &inbox))
            {
                members[i] = true;
                count += 1;
            }
        }
        if count >= 2 {
            let rows = msgs
                .iter()
                .zip(&members)
                .filter(|(_, member)| **member)
                .filter_map(|(m, _)| crate::inbox::InboxRow::of_message(m))
                .collect();
            let run = inbox.open_run(rows);
            for (msg, member) in msgs.iter_mut().zip(members).skip(first) {
                msg.inbox_run = Some(crate::inbox::RunRef {
                    run: run.clone(),
                    member,
                });
            }
        }
        Box::pin(std::future::ready(()))
    }

    /// Commits the batched runs of `msgs` and names their records whose effect was rolled back.
    #[cfg(feature = "postgres")]
    fn finish<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, crate::Finished> {
        async move {
            let mut runs: Vec<Arc<crate::inbox::Run>> = Vec::new();
            for tie in msgs.iter().filter_map(|m| m.inbox_run.as_ref()) {
                if !runs.iter().any(|r| Arc::ptr_eq(r, &tie.run)) {
                    runs.push(tie.run.clone());
                }
            }
            if runs.is_empty() {
                return crate::Finished::All;
            }
            for run in &runs {
                run.commit().await;
            }
            let redo: Vec<usize> = msgs
                .iter()
                .enumerate()
                .filter(|(_, m)| {
                    m.inbox_run
                        .as_ref()
                        .is_some_and(|t| t.member && t.run.name_if_lost(m.delivery.offset))
                })
                .map(|(i, _)| i)
                .collect();
            for msg in msgs.iter_mut() {
                msg.inbox_run = None;
            }
            if redo.is_empty() {
                crate::Finished::All
            } else {
                crate::Finished::Redo(redo)
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod sqlstate_tests {
    use super::*;

    fn kind(code: Option<&str>) -> &'static str {
        match sqlstate_class(code)(String::new()) {
            HandlerError::Permanent(_) => "permanent",
            HandlerError::Transient(_) => "transient",
            HandlerError::Unavailable(_) => "unavailable",
        }
    }

    #[test]
    fn sqlstates_are_classified_by_what_a_retry_of_the_record_can_do() {
        for (code, want) in [
            (Some("23505"), "permanent"), // unique violation: the same record meets it again
            (Some("23514"), "permanent"), // check violation
            (Some("22P02"), "permanent"), // invalid text representation
            (Some("P0001"), "permanent"), // a trigger's business rule
            (Some("23503"), "transient"), // foreign key: the parent may arrive later
            (Some("40001"), "transient"), // serialization failure
            (Some("40P01"), "transient"), // deadlock
            (Some("57014"), "transient"), // statement timeout or a cancel
            (Some("57P01"), "unavailable"), // admin shutdown
            (Some("08006"), "unavailable"), // connection failure
            (Some("53300"), "unavailable"), // too many connections
            (Some("42P01"), "unavailable"), // undefined table: a deploy, not the record
            (Some("42501"), "unavailable"), // insufficient privilege
            (Some("25006"), "unavailable"), // read-only transaction: a standby after a failover
            (Some("28P01"), "unavailable"), // password authentication failed
            (None, "transient"),          // no code: no row where one was expected, a type mismatch
        ] {
            assert_eq!(kind(code), want, "{code:?}");
        }
    }
}
