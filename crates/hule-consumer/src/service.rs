//! The layer model, in the tower style: a [`Service`] processes a [`Message`]; a [`Layer`] wraps one service in
//! another. The runtime's stack, outermost first, is dead-letter → validate → retry → dedup → router.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use hule_contracts::DecodeError;

use crate::message::Message;

/// How a delivery ended; every outcome lets the driver commit its offset once [`Service::finish`] has completed
/// the record (for a record of a batched inbox run, that is when its transaction commits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A handler ran and its effect (and dedup record) is durable — in a batched inbox run, once `finish` has
    /// committed the run.
    Handled,
    /// The event was already applied; the handler did not run.
    Duplicate {
        /// Which store recognised it (`redis`, `postgres_inbox`, `memory`, `dual_topic`).
        method: &'static str,
    },
    /// No handler is registered for this event: nothing to do.
    Ignored,
    /// The record went to the dead-letter topic, and the broker acknowledged it.
    DeadLettered {
        /// The DLQ reason (`error_type` of the record).
        reason: String,
    },
}

/// Why a delivery has not ended (yet).
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The record does not decode: dead-letter at once.
    Invalid(DecodeError),
    /// The record decodes but breaks a rule of the contract: dead-letter at once.
    Rejected {
        /// The DLQ reason: `oversize`, `invalid_headers`, `key_mismatch`.
        reason: &'static str,
        /// What exactly is wrong.
        message: String,
    },
    /// The handler says retrying cannot help.
    Permanent(String),
    /// The handler failed in a way a retry may fix.
    Transient(String),
    /// Every allowed attempt failed transiently.
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: String,
    },
    /// Infrastructure (dedup store, DLQ producer) is unreachable: do not commit; the driver retries later.
    Unavailable(String),
    /// A client the stack depends on is unusable (the DLQ producer was fenced or failed authentication): do not
    /// commit, and stop the consumer with this error instead of retrying forever.
    Fatal(String),
    /// The transaction the record was handled in together with others of its run (the PostgreSQL inbox's batched
    /// runs) was rolled back, by its own handler's failure or another's: nothing of it is kept. The driver completes
    /// the run's records before it ([`Service::finish`], which names those to process again) and then processes this
    /// one again, alone, where its own failure, if any, gets its own outcome.
    Undone(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Invalid(e) => write!(f, "invalid record: {e}"),
            Failure::Rejected { reason, message } => write!(f, "rejected ({reason}): {message}"),
            Failure::Permanent(m) => write!(f, "permanent handler error: {m}"),
            Failure::Transient(m) => write!(f, "transient handler error: {m}"),
            Failure::Exhausted { attempts, last } => {
                write!(f, "retries exhausted after {attempts} attempts: {last}")
            }
            Failure::Unavailable(m) => write!(f, "infrastructure unavailable: {m}"),
            Failure::Fatal(m) => write!(f, "fatal: {m}"),
            Failure::Undone(m) => write!(f, "batched transaction rolled back: {m}"),
        }
    }
}

/// The result of a service.
pub type Processed = Result<Outcome, Failure>;

/// What [`Service::finish`] made of the records handed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "records to process again must be processed before any offset after them counts as done"]
pub enum Finished {
    /// Every record is complete: its offset may count as done.
    All,
    /// The records at these indices (ascending) are not: the transaction their outcome was reached in did not
    /// commit. The driver processes each again, alone and in order, before any of them or any record after the first
    /// of them counts as done; the others are complete.
    Redo(Vec<usize>),
}

/// Something that processes messages.
///
/// A driver calls [`Service::call`] for each record of a partition in offset order. It may first hand the
/// records already waiting in the partition's queue to [`Service::prepare`] in one slice, so that a layer can do
/// for all of them at once what it would otherwise do one by one (the validate layer decodes them, the dedup layer
/// claims them in one round trip); `call` then uses what `prepare` left in each [`Message`] and does the rest,
/// each record still getting its own outcome. After the records of a prepared run that reached their outcomes, and
/// before their offsets may be committed, the driver hands them to [`Service::finish`] (the dedup layer stores
/// their completion markers in one round trip; the PostgreSQL inbox commits the run's transaction), which may name
/// records whose outcome was undone ([`Finished::Redo`]): the driver processes those again, alone. Records
/// prepared but not called (their partition was revoked) are handed to [`Service::abandon`]. Layers pass all three
/// on to their inner service; the defaults do nothing.
///
/// A layer that passes `prepare` on must call its inner service for every record it is then called with (or
/// `abandon` it): the inner layers may have begun work for the run (a claim, a transaction) that only `call`,
/// `finish` or `abandon` ends.
pub trait Service: Send + Sync + 'static {
    /// Processes one message.
    fn call<'a>(&'a self, msg: &'a mut Message) -> BoxFuture<'a, Processed>;

    /// Prepares records that will be called in this order (none may have been called yet).
    fn prepare<'a>(&'a self, _msgs: &'a mut [Message]) -> BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }

    /// Undoes what [`Service::prepare`] left for records that will not be called.
    fn abandon<'a>(&'a self, _msgs: &'a mut [Message]) -> BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }

    /// Completes what `call` left pending for prepared records that reached their outcomes; names those whose
    /// outcome could not be made durable.
    fn finish<'a>(&'a self, _msgs: &'a mut [Message]) -> BoxFuture<'a, Finished> {
        Box::pin(std::future::ready(Finished::All))
    }
}

/// Passes the named run hooks ([`Service::prepare`], [`Service::abandon`], [`Service::finish`]) of a layer on to its
/// `inner` service unchanged; used inside the layer's `impl Service`.
macro_rules! forward_to_inner {
    ($($hook:ident),+) => {$(
        crate::service::forward_to_inner!(@one $hook);
    )+};
    (@one finish) => {
        fn finish<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, crate::service::Finished> {
            self.inner.finish(msgs)
        }
    };
    (@one $hook:ident) => {
        fn $hook<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, ()> {
            self.inner.$hook(msgs)
        }
    };
}
pub(crate) use forward_to_inner;

/// A type-erased, shareable service.
pub type BoxService = Arc<dyn Service>;

impl Service for BoxService {
    fn call<'a>(&'a self, msg: &'a mut Message) -> BoxFuture<'a, Processed> {
        (**self).call(msg)
    }
    fn prepare<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, ()> {
        (**self).prepare(msgs)
    }
    fn abandon<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, ()> {
        (**self).abandon(msgs)
    }
    fn finish<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, Finished> {
        (**self).finish(msgs)
    }
}

/// Wraps a service in another.
pub trait Layer {
    /// Returns the wrapped service.
    fn layer(self, inner: BoxService) -> BoxService;
}

/// Builds a stack from the innermost service outwards: `Stack::new(router).layer(dedup).layer(retry)...`.
pub struct Stack(BoxService);

impl Stack {
    /// Starts with the innermost service.
    pub fn new(inner: impl Service) -> Self {
        Stack(Arc::new(inner))
    }

    /// Wraps the stack so far in `layer`.
    pub fn layer(self, layer: impl Layer) -> Self {
        Stack(layer.layer(self.0))
    }

    /// The finished service.
    pub fn build(self) -> BoxService {
        self.0
    }
}
